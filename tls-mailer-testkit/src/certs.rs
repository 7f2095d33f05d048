//! Throwaway certificates made at run time: a test CA and leaf certificates
//! that are valid, expired, for the wrong host, or from an untrusted CA.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd};
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

    /// A certificate chain and key of the given kind.
    pub(crate) fn issue(
        &self,
        kind: CertKind,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), rcgen::Error> {
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
        let certificate = if kind == CertKind::UntrustedCa {
            // Another name too: a verifier must not even find a candidate issuer.
            let stranger = TestCa::try_new("untrusted stranger CA")?;
            let issuer = Issuer::new(stranger.inner.params.clone(), &stranger.inner.key);
            params.signed_by(&key, &issuer)?
        } else {
            let issuer = Issuer::new(self.inner.params.clone(), &self.inner.key);
            params.signed_by(&key, &issuer)?
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![certificate.der().clone()], key))
    }
}
