//! The only place that builds rustls configurations: TLS 1.2 minimum (1.3
//! when asked), the certificate chain and host name verified against the
//! system trust store plus the anchors the user adds, and, when keys are
//! pinned, the server's public key checked against the pins too (or, with
//! pin-only, instead of the chain). There is no way to turn verification off.
//!
//! A configuration is built once per [`Client`](crate::Client) and shared by
//! all its connections, so they share rustls' session cache: the second
//! connection of a client resumes the first one's TLS session. The system
//! store is read only by a configuration that uses it, and at most once per
//! process.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, OtherError,
    RootCertStore, SignatureScheme,
};
use zeroize::Zeroizing;

use crate::error::Error;

/// Which certificate authorities a connection trusts.
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    system: bool,
    extra: Vec<CertificateDer<'static>>,
}

impl Default for TrustAnchors {
    fn default() -> Self {
        Self {
            system: true,
            extra: Vec::new(),
        }
    }
}

impl TrustAnchors {
    /// Whether to trust the operating system's store (default: yes).
    pub fn system(mut self, enabled: bool) -> Self {
        self.system = enabled;
        self
    }

    /// Adds every certificate of a PEM bundle.
    pub fn add_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|error| {
                Error::Config(format!("a trust anchor is not valid PEM: {error}"))
            })?;
            self.extra.push(certificate);
            added += 1;
        }
        if added == 0 {
            return Err(Error::Config(
                "no certificate found in the trust anchor PEM (expected -----BEGIN CERTIFICATE-----)"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// Adds every certificate of a PEM file.
    pub fn add_pem_file(self, path: &Path) -> Result<Self, Error> {
        let pem = std::fs::read(path).map_err(|error| {
            Error::Config(format!("cannot read CA file {}: {error}", path.display()))
        })?;
        self.add_pem(&pem)
            .map_err(|error| Error::Config(format!("CA file {}: {error}", path.display())))
    }

    /// Adds one DER certificate.
    pub fn add_der(mut self, der: Vec<u8>) -> Self {
        self.extra.push(CertificateDer::from(der));
        self
    }

    /// The anchors to verify chains with. `system` gives the system
    /// store's anchors; it is called only when the system store is enabled.
    fn root_store(&self, system: SystemAnchors<'_>) -> Result<RootCertStore, Error> {
        let mut roots = RootCertStore::empty();
        if self.system {
            roots.extend(system().iter().cloned());
        }
        for certificate in &self.extra {
            roots.add(certificate.clone()).map_err(|error| {
                Error::Config(format!("a trust anchor cannot be used: {error}"))
            })?;
        }
        if roots.is_empty() {
            return Err(Error::Config(
                "no trusted certificate authority: the system store is empty or disabled; \
                 install ca-certificates or give --ca-file"
                    .into(),
            ));
        }
        Ok(roots)
    }
}

/// Where a configuration gets the system store's anchors from.
type SystemAnchors<'a> = &'a dyn Fn() -> &'static [TrustAnchor<'static>];

/// The system store's anchors, read on first use and kept for the life of
/// the process (a second client, or a second route of a queue flush, reads
/// nothing). Certificates that do not parse are skipped; only an empty
/// store in the end matters (the configuration then refuses to build, unless
/// the user added anchors).
fn system_anchors() -> &'static [TrustAnchor<'static>] {
    static ANCHORS: OnceLock<Vec<TrustAnchor<'static>>> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(system_certificates());
        store.roots
    })
}

/// The system store's certificates: the platform's single bundle file when
/// there is one (one read, instead of a file per certificate), else what
/// rustls-native-certs finds (the certificate directory, the macOS and
/// Windows stores). `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured as
/// rustls-native-certs honours them: when either is set, they replace the
/// platform's locations.
fn system_certificates() -> Vec<CertificateDer<'static>> {
    let file = std::env::var_os("SSL_CERT_FILE");
    let dirs = std::env::var_os("SSL_CERT_DIR");
    if let Some(bundle) = bundle_file(file.as_deref(), dirs.as_deref(), &|path| path.is_file())
        && let Ok(certificates) = CertificateDer::pem_file_iter(&bundle)
    {
        let certificates: Vec<_> = certificates.filter_map(Result::ok).collect();
        if !certificates.is_empty() {
            return certificates;
        }
    }
    rustls_native_certs::load_native_certs().certs
}

/// The distributions' single-file bundles, the one each keeps in sync with
/// its certificate directory (the list Go's crypto/x509 reads on Linux).
#[cfg(all(unix, not(target_os = "macos")))]
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Gentoo, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
    "/etc/ssl/cert.pem",                  // Alpine, FreeBSD, OpenBSD
];
/// macOS and Windows keep their stores elsewhere (rustls-native-certs asks
/// the operating system).
#[cfg(not(all(unix, not(target_os = "macos"))))]
const BUNDLES: &[&str] = &[];

/// The one file that holds the system store, if there is one: `SSL_CERT_FILE`
/// when it is set and `SSL_CERT_DIR` is not (with a directory,
/// rustls-native-certs reads both), else the first platform bundle that
/// exists. `None` leaves it to rustls-native-certs.
fn bundle_file(
    cert_file: Option<&OsStr>,
    cert_dirs: Option<&OsStr>,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let dirs_set = cert_dirs
        .is_some_and(|dirs| std::env::split_paths(dirs).any(|dir| !dir.as_os_str().is_empty()));
    match (cert_file, dirs_set) {
        (_, true) => None,
        (Some(file), false) => Some(PathBuf::from(file)),
        (None, false) => BUNDLES
            .iter()
            .map(Path::new)
            .find(|path| exists(path))
            .map(Path::to_path_buf),
    }
}

/// The oldest TLS version a connection accepts. Nothing older than TLS 1.2
/// can be chosen.
///
/// ```
/// use tls_mailer::TlsVersion;
///
/// assert_eq!(TlsVersion::default(), TlsVersion::Tls12);
/// assert!(TlsVersion::Tls13 > TlsVersion::Tls12);
/// assert_eq!(TlsVersion::Tls13.to_string(), "TLS 1.3");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246) or later: the default, what RFC 8314 asks of
    /// mail submission.
    #[default]
    Tls12,
    /// TLS 1.3 (RFC 8446) only.
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tls12 => "TLS 1.2",
            Self::Tls13 => "TLS 1.3",
        })
    }
}

impl TlsVersion {
    fn protocol_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        const FROM_TLS12: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            Self::Tls12 => FROM_TLS12,
            Self::Tls13 => TLS13_ONLY,
        }
    }
}

/// A pinned public key: the SHA-256 of a certificate's
/// SubjectPublicKeyInfo (the DER structure holding the algorithm and the
/// key), as curl's `--pinnedpubkey sha256//...` takes it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pin([u8; 32]);

impl Pin {
    /// Reads a base64 pin (44 characters), with or without curl's
    /// `sha256//` prefix.
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let trimmed = text.trim();
        let encoded = trimmed.strip_prefix("sha256//").unwrap_or(trimmed);
        let shown = text.escape_debug();
        let bytes = BASE64.decode(encoded).map_err(|error| {
            Error::Config(format!(
                "the pin {shown:?} is not base64 ({error}); a pin is the base64 SHA-256 of the \
                 server's public key, 44 characters ending in '=' (see \
                 ClientBuilder::pin_sha256 for the openssl command that computes it)"
            ))
        })?;
        let digest: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::Config(format!(
                "the pin {shown:?} decodes to {} bytes, and a SHA-256 is 32: give the base64 \
                 SHA-256 of the server's public key (44 characters ending in '='), not the key \
                 or the certificate itself",
                bytes.len()
            ))
        })?;
        Ok(Self(digest))
    }

    /// The pin of a SubjectPublicKeyInfo (DER).
    fn of_spki(spki: &[u8]) -> Self {
        let hash = digest::digest(&digest::SHA256, spki);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(hash.as_ref());
        Self(bytes)
    }

    /// The pin of a certificate's public key; `None` if it does not parse.
    pub(crate) fn of_certificate(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Self::of_spki(certificate.tbs_certificate.subject_pki.raw))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// The server's key matches none of the pins: what was expected and what
/// the server presented, both in base64.
#[derive(Debug)]
pub(crate) struct PinMismatch {
    expected: Vec<Pin>,
    presented: Pin,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected: Vec<String> = self.expected.iter().map(Pin::to_string).collect();
        write!(
            f,
            "the server's public key matches no pin: expected {}, the server presented {}",
            expected.join(" or "),
            self.presented
        )
    }
}

impl std::error::Error for PinMismatch {}

/// A client certificate chain and its key, checked to belong together.
#[derive(Clone)]
pub(crate) struct ClientIdentity {
    key: Arc<CertifiedKey>,
    subject: Option<String>,
}

impl fmt::Debug for ClientIdentity {
    /// The subject only: never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 RSA or SEC1 EC) and checks that the key is the
    /// leaf's.
    pub(crate) fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let mut chain = Vec::new();
        for certificate in CertificateDer::pem_slice_iter(chain_pem) {
            chain.push(certificate.map_err(|error| {
                Error::Config(format!("the client certificate is not valid PEM: {error}"))
            })?);
        }
        if chain.is_empty() {
            return Err(Error::Config(
                "no certificate found in the client certificate PEM (expected -----BEGIN \
                 CERTIFICATE-----; were the certificate and the key swapped?)"
                    .into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| {
            let encrypted = key_pem
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|window| window == b"ENCRYPTED PRIVATE KEY");
            Error::Config(if encrypted {
                "the client key is encrypted, which is not supported: decrypt it into a \
                 file only you can read (openssl pkey -in key.pem -out plain-key.pem)"
                    .into()
            } else {
                format!(
                    "no private key found in the client key PEM ({error}); expected -----BEGIN \
                     PRIVATE KEY-----, -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC \
                     PRIVATE KEY-----"
                )
            })
        })?;
        let subject = certificate_subject(&chain[0]);
        let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|error| {
            Error::Config(match error {
                rustls::Error::InconsistentKeys(_) => "the client key does not belong to the \
                     client certificate (the first certificate of the PEM must be the one \
                     issued for this key)"
                    .into(),
                other => format!("the client key cannot be used: {other}"),
            })
        })?;
        Ok(Self {
            key: Arc::new(certified),
            subject,
        })
    }

    /// Reads the chain and the key from files; the key is held in memory
    /// that is wiped when dropped.
    pub(crate) fn from_pem_files(chain: &Path, key: &Path) -> Result<Self, Error> {
        let chain_pem = std::fs::read(chain).map_err(|error| {
            Error::Config(format!(
                "cannot read the client certificate {}: {error}",
                chain.display()
            ))
        })?;
        let key_pem = Zeroizing::new(std::fs::read(key).map_err(|error| {
            Error::Config(format!(
                "cannot read the client key {}: {error}",
                key.display()
            ))
        })?);
        Self::from_pem(&chain_pem, &key_pem).map_err(|error| {
            Error::Config(format!(
                "client certificate {} with key {}: {error}",
                chain.display(),
                key.display()
            ))
        })
    }
}

/// How a connection's TLS is set up: everything [`client_config`] needs.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsOptions {
    pub(crate) anchors: TrustAnchors,
    pub(crate) pins: Vec<Pin>,
    pub(crate) pin_only: bool,
    pub(crate) client_identity: Option<ClientIdentity>,
    pub(crate) min_version: TlsVersion,
    /// Keeps the chain each server presents (for a probe; verification is
    /// unchanged).
    pub(crate) recorder: Option<CertificateRecorder>,
}

/// The certificates servers presented, in the order of the handshakes:
/// what a probe shows, even of a chain that does not verify.
#[derive(Clone, Debug, Default)]
pub(crate) struct CertificateRecorder(Arc<std::sync::Mutex<Vec<CertificateDer<'static>>>>);

impl CertificateRecorder {
    /// The last chain presented (leaf first), and forgets it.
    pub(crate) fn take(&self) -> Vec<CertificateDer<'static>> {
        self.0
            .lock()
            .map(|mut chain| std::mem::take(&mut *chain))
            .unwrap_or_default()
    }
}

/// Records the presented chain, then lets the real verifier decide.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    recorder: CertificateRecorder,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.recorder.0.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|der| der.clone().into_owned())
                .collect();
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a handshake failure is explained with.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TlsPolicy {
    pub(crate) min_version: TlsVersion,
    pub(crate) pin_only: bool,
    pub(crate) client_certificate: bool,
}

impl TlsOptions {
    pub(crate) fn policy(&self) -> TlsPolicy {
        TlsPolicy {
            min_version: self.min_version,
            pin_only: self.pin_only,
            client_certificate: self.client_identity.is_some(),
        }
    }
}

/// The one crypto provider: aws-lc-rs.
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The rustls client configuration: TLS 1.3 and 1.2 (or 1.3 only), the
/// aws-lc-rs provider, the webpki verifier (chain and host name), wrapped by
/// the pin check when keys are pinned or replaced by it with pin-only, and
/// the client certificate when there is one. Its in-memory session cache
/// lets the connections that share it resume each other's sessions.
pub(crate) fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, Error> {
    client_config_with(options, &system_anchors)
}

fn client_config_with(
    options: &TlsOptions,
    system: SystemAnchors<'_>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(options.min_version.protocol_versions())
        .map_err(|error| Error::Config(format!("TLS configuration: {error}")))?;
    if options.pin_only && options.pins.is_empty() {
        return Err(Error::Config(
            "pin-only verification needs at least one pin (ClientBuilder::pin_sha256): \
             without a pin and without the certificate chain, nothing would be verified"
                .into(),
        ));
    }
    let webpki = |system: SystemAnchors<'_>| -> Result<Arc<WebPkiServerVerifier>, Error> {
        let roots = Arc::new(options.anchors.root_store(system)?);
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|error| Error::Config(format!("TLS configuration: {error}")))
    };
    let verifier: Option<Arc<dyn ServerCertVerifier>> = if options.pins.is_empty() {
        match options.recorder {
            Some(_) => Some(webpki(system)?),
            None => None,
        }
    } else {
        Some(Arc::new(PinningVerifier {
            webpki: if options.pin_only {
                None
            } else {
                Some(webpki(system)?)
            },
            pins: options.pins.clone(),
            algorithms: provider.signature_verification_algorithms,
        }))
    };
    let verifier = match (verifier, &options.recorder) {
        (Some(inner), Some(recorder)) => Some(Arc::new(RecordingVerifier {
            inner,
            recorder: recorder.clone(),
        }) as Arc<dyn ServerCertVerifier>),
        (verifier, _) => verifier,
    };
    let builder = match verifier {
        None => builder.with_root_certificates(options.anchors.root_store(system)?),
        Some(verifier) => builder
            .dangerous()
            .with_custom_certificate_verifier(verifier),
    };
    let mut config = match &options.client_identity {
        Some(identity) => builder
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key.clone()))),
        None => builder.with_no_client_auth(),
    };
    // rustls' default, said here because resumption depends on it: up to 256
    // sessions in memory, TLS 1.3 tickets and TLS 1.2 session ids or
    // tickets. No early data (0-RTT): SMTP commands must not be replayable.
    config.resumption = Resumption::in_memory_sessions(256);
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

/// Checks the server's public key against the pins: after the webpki
/// verifier (chain and host name), or, with pin-only, instead of it. The
/// handshake signatures are verified as always, with the provider's
/// algorithms, so the server proves it holds the pinned key.
#[derive(Debug)]
struct PinningVerifier {
    /// The chain and host name check; `None` with pin-only.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<Pin>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(webpki) = &self.webpki {
            webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?;
        }
        let presented = Pin::of_certificate(end_entity).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        if self.pins.contains(&presented) {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(PinMismatch {
                expected: self.pins.clone(),
                presented,
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The name checked against the certificate: a DNS name, or an IP address
/// matched against the certificate's IP SANs.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| {
        Error::InvalidInput(tls_mailer_proto::InvalidInput {
            what: "host",
            input: host.escape_debug().to_string(),
            reason: "not a valid DNS name or IP address",
        })
    })
}

/// A sentence for a handshake failure (or a TLS alert right after it),
/// naming the usual fix.
pub(crate) fn explain(error: &rustls::Error, host: &str, policy: &TlsPolicy) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if other.0.downcast_ref::<PinMismatch>().is_some() =>
        {
            let mode = if policy.pin_only {
                "pin-only verification"
            } else {
                "its certificate chain verified, but the key is pinned"
            };
            format!(
                "the certificate of {host} was refused ({mode}): {}; if the server's key \
                 changed on purpose, pin the new one",
                other.0
            )
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => format!(
            "{host} requires a client certificate{}",
            if policy.client_certificate {
                ", and did not accept the one given"
            } else {
                " (ClientBuilder::client_certificate), and none was given"
            }
        ),
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied
            // A chain signature that does not verify (an issuer of the
            // same name, but another key).
            | AlertDescription::DecryptError),
        ) if policy.client_certificate => format!(
            "{host} refused the client certificate (TLS alert {alert:?}): it must be signed by \
             an authority the server trusts for clients, and be valid now"
        ),
        rustls::Error::AlertReceived(AlertDescription::ProtocolVersion)
        | rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered
            | rustls::PeerIncompatible::Tls12NotOfferedOrEnabled
            | rustls::PeerIncompatible::SupportedVersionsExtensionRequired
            | rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13,
        ) => {
            let allowed = match policy.min_version {
                TlsVersion::Tls12 => "TLS 1.3 or TLS 1.2",
                TlsVersion::Tls13 => "TLS 1.3 only (the minimum was raised to TLS 1.3)",
            };
            format!(
                "{host} and this client have no TLS version in common: this client allows \
                 {allowed} ({error})"
            )
        }
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer => format!(
                "the certificate of {host} is not signed by a trusted authority \
                 (for a private CA, add it with --ca-file)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the certificate is not valid for the name {host:?} ({certificate:?})")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the certificate of {host} has expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the certificate of {host} is not valid yet (check the clock)")
            }
            other => format!("the certificate of {host} was refused: {other:?}"),
        },
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

/// A TLS failure inside an I/O error: what rustls reports through
/// `Read`/`Write` (a refused handshake, or an alert received after it).
pub(crate) fn rustls_error(error: &std::io::Error) -> Option<rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
}

/// The peer certificate's subject, for verbose output.
pub(crate) fn certificate_subject(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.subject().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    /// The demo server's certificate (`tls-mailer-cli/src/demo_certs/server.pem`).
    const DEMO_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIB8jCCAZigAwIBAgIRAPck5cmKVxHxXQITtKuOgukwCgYIKoZIzj0EAwIwODE2
MDQGA1UEAwwtdGxzLW1haWxlciBkZW1vIENBICh0cnVzdGVkIGJ5IHRoZSBkZW1v
IG9ubHkpMCAXDTAwMDEwMTAwMDAwMFoYDzIxMjYwMTAxMDAwMDAwWjAUMRIwEAYD
VQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ5Ro/6ID9P
90lt8mbEU2R5cJS7u86WX+nqNz8jyXDxudpXleOuVf+CNPayhCeojlG4inMQ/tep
fJhSKm58C7nio4GkMIGhMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMG
A1UdJQQMMAoGCCsGAQUFBwMBMCwGA1UdEQQlMCOCCWxvY2FsaG9zdIcEfwAAAYcQ
AAAAAAAAAAAAAAAAAAAAATAdBgNVHQ4EFgQUDho7eX8EIaCTHJ0+ZWVQ+SnUB2Uw
HwYDVR0jBBgwFoAUePNaqE+GuoxZbvilz1TLzAGDwA8wCgYIKoZIzj0EAwIDSAAw
RQIhAOy8GLnUmC9A9Dsk+PCvbj5gl8FbupQmSz20TGbYucCeAiBydjC1aa+T8vun
Y47+SxzEWXFczeO/PfaijIp+jr7EbA==
-----END CERTIFICATE-----
";

    #[test]
    fn the_pin_of_a_certificate_is_what_openssl_computes() {
        // openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin -outform der
        //   | openssl dgst -sha256 -binary | base64
        let der = CertificateDer::from_pem_slice(DEMO_CERT.as_bytes()).unwrap();
        let pin = Pin::of_certificate(&der).unwrap();
        assert_eq!(
            pin.to_string(),
            "sjSqqCCxscymdFdhGEcL2f5jSNz+ntGvWyuqPVwe12o="
        );
        assert_eq!(
            Pin::parse("sjSqqCCxscymdFdhGEcL2f5jSNz+ntGvWyuqPVwe12o=").unwrap(),
            pin
        );
        assert_eq!(
            Pin::parse(" sha256//sjSqqCCxscymdFdhGEcL2f5jSNz+ntGvWyuqPVwe12o=\n").unwrap(),
            pin
        );
        assert_eq!(Pin::of_certificate(b"not a certificate"), None);
    }

    #[test]
    fn a_mismatch_names_every_pin_expected_and_the_one_presented() {
        let expected = [Pin([1; 32]), Pin([2; 32])];
        let mismatch = PinMismatch {
            expected: expected.to_vec(),
            presented: Pin([3; 32]),
        };
        assert_eq!(
            mismatch.to_string(),
            format!(
                "the server's public key matches no pin: expected {} or {}, the server \
                 presented {}",
                BASE64.encode([1; 32]),
                BASE64.encode([2; 32]),
                BASE64.encode([3; 32])
            )
        );
        let error = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
            Arc::new(mismatch),
        )));
        let pinned = explain(&error, "smtp.example.org", &TlsPolicy::default());
        assert!(pinned.starts_with("the certificate of smtp.example.org was refused (its certificate chain verified, but the key is pinned)"), "{pinned}");
        let pin_only = TlsPolicy {
            pin_only: true,
            ..TlsPolicy::default()
        };
        assert!(explain(&error, "h", &pin_only).contains("(pin-only verification)"));
    }

    #[test]
    fn pins_must_be_32_bytes_of_base64() {
        for (text, says) in [
            ("%%%", "is not base64"),
            ("c2hvcnQ=", "decodes to 5 bytes"),
            ("sha256//c2hvcnQ=", "decodes to 5 bytes"),
        ] {
            let error = Pin::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
            assert!(error.contains("SHA-256"), "{error}");
        }
        let control = Pin::parse("a\u{1b}b").unwrap_err().to_string();
        assert!(control.contains("\\u{1b}"), "{control}");
    }

    /// A system store that must not be read.
    fn unread() -> &'static [TrustAnchor<'static>] {
        panic!("the system trust store was read")
    }

    /// The demo certificate as the only system anchor.
    fn demo_anchor() -> &'static [TrustAnchor<'static>] {
        static ANCHOR: OnceLock<Vec<TrustAnchor<'static>>> = OnceLock::new();
        ANCHOR.get_or_init(|| {
            let der = CertificateDer::from_pem_slice(DEMO_CERT.as_bytes()).unwrap();
            let mut store = RootCertStore::empty();
            store.add(der).unwrap();
            store.roots
        })
    }

    #[test]
    fn pin_only_needs_a_pin_and_never_reads_the_trust_store() {
        let refused = client_config_with(
            &TlsOptions {
                pin_only: true,
                ..TlsOptions::default()
            },
            &unread,
        )
        .unwrap_err();
        assert!(refused.to_string().contains("needs at least one pin"));
        // Pin-only with the system store left on: still not read.
        let options = TlsOptions {
            pins: vec![Pin([0; 32])],
            pin_only: true,
            ..TlsOptions::default()
        };
        assert!(client_config_with(&options, &unread).is_ok());
        // No anchors at all: with pin-only, the configuration still builds.
        let options = TlsOptions {
            anchors: TrustAnchors::default().system(false),
            ..options
        };
        assert!(client_config_with(&options, &unread).is_ok());
        let without_pin_only = TlsOptions {
            pin_only: false,
            ..options
        };
        assert!(
            client_config_with(&without_pin_only, &unread).is_err(),
            "no anchor to verify the chain"
        );
    }

    #[test]
    fn the_system_store_is_read_only_when_it_is_used() {
        let own_ca = TrustAnchors::default()
            .system(false)
            .add_pem(DEMO_CERT.as_bytes())
            .unwrap();
        // An own CA without the system store, with or without a pin.
        for pins in [vec![], vec![Pin([0; 32])]] {
            let options = TlsOptions {
                anchors: own_ca.clone(),
                pins,
                ..TlsOptions::default()
            };
            assert!(client_config_with(&options, &unread).is_ok());
        }
        // The system store on: read once per configuration, pinned or not.
        for pins in [vec![], vec![Pin([0; 32])]] {
            let reads = std::cell::Cell::new(0);
            let counting = || {
                reads.set(reads.get() + 1);
                demo_anchor()
            };
            let options = TlsOptions {
                pins,
                ..TlsOptions::default()
            };
            assert!(client_config_with(&options, &counting).is_ok());
            assert_eq!(reads.get(), 1);
        }
        // An empty system store and nothing added: refused.
        let empty = || -> &'static [TrustAnchor<'static>] { &[] };
        let error = client_config_with(&TlsOptions::default(), &empty).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no trusted certificate authority"),
            "{error}"
        );
    }

    #[test]
    fn the_system_store_comes_from_one_bundle_file_where_there_is_one() {
        let everything = |_: &Path| true;
        let nothing = |_: &Path| false;
        let os = |text: &'static str| Some(OsStr::new(text));
        // SSL_CERT_FILE alone is the bundle.
        assert_eq!(
            bundle_file(os("/tmp/roots.pem"), None, &nothing),
            Some(PathBuf::from("/tmp/roots.pem"))
        );
        // SSL_CERT_DIR (alone or with a file): rustls-native-certs reads both.
        assert_eq!(bundle_file(None, os("/tmp/certs"), &everything), None);
        assert_eq!(
            bundle_file(os("/tmp/roots.pem"), os("/tmp/certs"), &everything),
            None
        );
        // An empty SSL_CERT_DIR counts as unset, as in rustls-native-certs.
        assert_eq!(
            bundle_file(os("/tmp/roots.pem"), os(""), &nothing),
            Some(PathBuf::from("/tmp/roots.pem"))
        );
        // Neither: the first platform bundle that exists.
        assert_eq!(
            bundle_file(None, None, &everything).as_deref(),
            BUNDLES.first().map(Path::new)
        );
        assert_eq!(bundle_file(None, None, &nothing), None);
        #[cfg(target_os = "linux")]
        {
            let fedora = |path: &Path| path == Path::new("/etc/pki/tls/certs/ca-bundle.crt");
            assert_eq!(
                bundle_file(None, None, &fedora),
                Some(PathBuf::from("/etc/pki/tls/certs/ca-bundle.crt"))
            );
            assert_eq!(
                bundle_file(None, None, &everything),
                Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt"))
            );
        }
    }

    #[test]
    fn versions_offered() {
        assert_eq!(TlsVersion::Tls12.protocol_versions().len(), 2);
        assert_eq!(
            TlsVersion::Tls13.protocol_versions()[0].version,
            rustls::ProtocolVersion::TLSv1_3
        );
        assert_eq!(TlsVersion::Tls13.protocol_versions().len(), 1);
    }
}
