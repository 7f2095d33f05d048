//! The only place that builds rustls configurations: TLS 1.2 minimum,
//! certificate chain and host name always verified, against the system trust
//! store plus the anchors the user adds.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};

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

    fn root_store(&self) -> Result<RootCertStore, Error> {
        let mut roots = RootCertStore::empty();
        if self.system {
            // Unreadable system certificates are skipped; only an empty result matters.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
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

/// The rustls client configuration: TLS 1.3 and 1.2 only, aws-lc-rs provider,
/// the webpki verifier (chain and host name).
pub(crate) fn client_config(anchors: &TrustAnchors) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| Error::Config(format!("TLS configuration: {error}")))?
        .with_root_certificates(anchors.root_store()?)
        .with_no_client_auth();
    Ok(Arc::new(config))
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

/// A sentence for a handshake failure, naming the usual fix.
pub(crate) fn explain(error: &rustls::Error, host: &str) -> String {
    match error {
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

/// The peer certificate's subject, for verbose output.
pub(crate) fn certificate_subject(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.subject().to_string())
}
