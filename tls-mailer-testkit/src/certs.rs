//! Throwaway certificates made at run time: a test CA, leaf certificates
//! that are valid, expired, for the wrong host, from an untrusted CA or
//! self-signed, and client certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    PublicKeyData, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Which certificate the server presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertKind {
    /// Signed by the test CA, for `localhost`, `127.0.0.1` and `::1`.
    #[default]
    Valid,
    /// Signed by the test CA, but expired in 2020.
    Expired,
    /// Signed by the test CA, for `wrong.example.invalid` only.
    WrongHost,
    /// For `localhost`, but signed by a fresh CA nobody trusts.
    UntrustedCa,
    /// For `localhost`, signed by its own key: no CA vouches for it.
    SelfSigned,
}

/// A certificate the server presents, with what a client may pin of it.
pub(crate) struct Issued {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// The leaf's SubjectPublicKeyInfo (DER), as rcgen encoded it.
    pub(crate) spki: Vec<u8>,
}

/// A client certificate and its key, in PEM, signed by a [`TestCa`].
#[derive(Clone)]
pub struct ClientCert {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The subject the certificate names, as the server records it
    /// ([`crate::ReceivedMessage::client_subject`]): `CN=<common name>`.
    pub subject: String,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl ClientCert {
    /// Writes `client.pem` and `client.key` (the key readable by its owner
    /// only, as a secret file should be) into `dir`; returns their paths.
    pub fn write_pem_files(&self, dir: impl AsRef<Path>) -> std::io::Result<(PathBuf, PathBuf)> {
        let cert = dir.as_ref().join("client.pem");
        let key = dir.as_ref().join("client.key");
        std::fs::write(&cert, &self.cert_pem)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&key)?, self.key_pem.as_bytes())?;
        Ok((cert, key))
    }
}

/// A certificate authority made at run time. Cheap to clone: several servers
/// can share one, so one trust anchor covers them all.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<CaInner>,
}

struct CaInner {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA with a fresh key.
    ///
    /// # Panics
    /// If the crypto provider cannot make a key (never with aws-lc-rs).
    pub fn new() -> Self {
        Self::try_new("tls-mailer test CA").expect("generate a test CA")
    }

    /// A new CA with a fresh key and this common name (the default is
    /// `tls-mailer test CA`: two CAs of one name differ only by their keys).
    ///
    /// # Panics
    /// If the crypto provider cannot make a key (never with aws-lc-rs).
    pub fn named(common_name: &str) -> Self {
        Self::try_new(common_name).expect("generate a test CA")
    }

    fn try_new(common_name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate()?;
        let certificate = params.self_signed(&key)?;
        Ok(Self {
            inner: Arc::new(CaInner {
                pem: certificate.pem(),
                der: certificate.der().clone(),
                params,
                key,
            }),
        })
    }

    /// The CA certificate in PEM: what a client must trust.
    pub fn pem(&self) -> String {
        self.inner.pem.clone()
    }

    /// The CA certificate in DER.
    pub fn der(&self) -> Vec<u8> {
        self.inner.der.to_vec()
    }

    /// Writes the PEM to `path`.
    pub fn write_pem(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.pem())
    }

    /// A client certificate for `common_name`, signed by this CA (for TLS
    /// client authentication: extended key usage `clientAuth`).
    ///
    /// # Panics
    /// If the crypto provider cannot make a key (never with aws-lc-rs).
    pub fn client_cert(&self, common_name: &str) -> ClientCert {
        self.try_client_cert(common_name)
            .expect("generate a client certificate")
    }

    fn try_client_cert(&self, common_name: &str) -> Result<ClientCert, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(self.inner.params.clone(), &self.inner.key);
        let certificate = params.signed_by(&key, &issuer)?;
        Ok(ClientCert {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            subject: format!("CN={common_name}"),
        })
    }

    /// A valid server certificate chain (`localhost`, `127.0.0.1`, `::1`)
    /// and its key, signed by this CA: for a bench's own TLS server.
    ///
    /// # Panics
    /// If the crypto provider cannot make a key (never with aws-lc-rs).
    pub fn server_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let issued = self
            .issue(CertKind::Valid)
            .expect("issue a server certificate");
        (issued.chain, issued.key)
    }

    /// A certificate chain and key of the given kind.
    pub(crate) fn issue(&self, kind: CertKind) -> Result<Issued, rcgen::Error> {
        let names = match kind {
            CertKind::WrongHost => vec!["wrong.example.invalid".to_owned()],
            _ => vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ],
        };
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        if kind == CertKind::Expired {
            params.not_before = date_time_ymd(2019, 1, 1);
            params.not_after = date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate()?;
        let certificate = match kind {
            CertKind::UntrustedCa => {
                // Another name too: a verifier must not even find a candidate issuer.
                let stranger = TestCa::try_new("untrusted stranger CA")?;
                let issuer = Issuer::new(stranger.inner.params.clone(), &stranger.inner.key);
                params.signed_by(&key, &issuer)?
            }
            CertKind::SelfSigned => params.self_signed(&key)?,
            CertKind::Valid | CertKind::Expired | CertKind::WrongHost => {
                let issuer = Issuer::new(self.inner.params.clone(), &self.inner.key);
                params.signed_by(&key, &issuer)?
            }
        };
        let spki = key.subject_public_key_info();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(Issued {
            chain: vec![certificate.der().clone()],
            key,
            spki,
        })
    }
}
