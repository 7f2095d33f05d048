//! What the first bytes from a server say about the protocol it speaks, for
//! the wrong-security-mode diagnosis ("that port speaks plaintext SMTP").

/// The protocol the server's first bytes belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirstBytes {
    /// An SMTP reply line: `NNN ` or `NNN-`.
    PlaintextSmtp,
    /// A TLS record: handshake (22) or alert (21), version 3.x.
    Tls,
    /// Too few bytes, or something else.
    Unknown,
}

/// Classifies the first bytes a server sent.
///
/// ```
/// use tls_mailer_proto::sniff::{classify, FirstBytes};
/// assert_eq!(classify(b"220 mx ESMTP\r\n"), FirstBytes::PlaintextSmtp);
/// assert_eq!(classify(&[0x16, 0x03, 0x03, 0x00]), FirstBytes::Tls);
/// assert_eq!(classify(b"HTTP/1.1"), FirstBytes::Unknown);
/// ```
pub fn classify(bytes: &[u8]) -> FirstBytes {
    match bytes {
        [a, b, c, d, ..]
            if [a, b, c].iter().all(|byte| byte.is_ascii_digit()) && matches!(d, b' ' | b'-') =>
        {
            FirstBytes::PlaintextSmtp
        }
        [21 | 22, 3, ..] => FirstBytes::Tls,
        _ => FirstBytes::Unknown,
    }
}
