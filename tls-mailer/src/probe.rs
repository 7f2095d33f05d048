//! What a server says about itself before any credential
//! ([`ClientBuilder::probe`](crate::ClientBuilder::probe)): the outcome of
//! one connection attempt, the TLS it spoke, the certificates it presented
//! (kept even when they do not verify) and its EHLO capabilities.

use std::time::Duration;

use tls_mailer_proto::{Capabilities, Security};

use crate::client::TlsDetails;
use crate::error::Error;
use crate::tls::Pin;

/// One port, one security mode: what connecting to it showed.
#[derive(Debug)]
pub struct Probe {
    /// The mode tried: [`Security::ImplicitTls`] or [`Security::StartTls`].
    pub security: Security,
    /// The port tried.
    pub port: u16,
    /// From the start of the TCP connect to the end of EHLO (or the
    /// failure): DNS, TCP, TLS and two or three SMTP round trips.
    pub elapsed: Duration,
    /// The server's first line (`220 ...`), when it spoke.
    pub greeting: Option<String>,
    /// Its EHLO capabilities (after TLS), when the connection got that far.
    pub capabilities: Option<Capabilities>,
    /// The TLS version and cipher suite, when TLS is up.
    pub tls: Option<TlsDetails>,
    /// The chain the server presented, leaf first, whether it verifies or not.
    pub certificates: Vec<PeerCertificate>,
    /// Why the connection did not get to EHLO; `None` when it did.
    pub error: Option<Error>,
}

impl Probe {
    /// The port is usable in this mode: TLS verified and EHLO answered.
    pub fn is_usable(&self) -> bool {
        self.error.is_none()
    }
}

/// One certificate of a presented chain, as a person checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject (`CN=smtp.example.org`).
    pub subject: String,
    /// Who issued it.
    pub issuer: String,
    /// The DNS names and IP addresses it is for (subjectAltName).
    pub names: Vec<String>,
    /// Not valid before (RFC 2822 date).
    pub not_before: String,
    /// Not valid after (RFC 2822 date).
    pub not_after: String,
    /// The base64 SHA-256 of its public key, as `pin_sha256` and
    /// `--pin-sha256` take it.
    pub pin: String,
}

impl PeerCertificate {
    /// Reads a DER certificate; `None` when it does not parse.
    pub(crate) fn parse(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let names = certificate
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|extension| {
                extension
                    .value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(name) => Some((*name).to_owned()),
                        GeneralName::IPAddress(bytes) => ip_address(bytes),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let validity = certificate.validity();
        let date = |time: &x509_parser::time::ASN1Time| {
            time.to_rfc2822().unwrap_or_else(|_| time.to_string())
        };
        Some(Self {
            subject: certificate.subject().to_string(),
            issuer: certificate.issuer().to_string(),
            names,
            not_before: date(&validity.not_before),
            not_after: date(&validity.not_after),
            pin: Pin::of_certificate(der).map(|pin| pin.to_string())?,
        })
    }
}

fn ip_address(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|octets| std::net::Ipv4Addr::from(octets).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|octets| std::net::Ipv6Addr::from(octets).to_string()),
        _ => None,
    }
}
