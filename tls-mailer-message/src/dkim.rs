//! DKIM signing (RFC 6376) through mail-auth.
//!
//! The body hash is computed incrementally: mail-auth 0.13's streaming
//! signer buffers only the header section and feeds the body through the
//! hash as it is read, so [`DkimSigner::sign_file`] and
//! [`DkimSigner::sign_reader`] run in memory bounded by the header size.
//! Transmitting a signed file is then a second pass over it; input that
//! cannot be re-read (stdin) is first copied with [`spool_to_tempfile`].
//!
//! An [`Email`] needs no copy: [`DkimSigner::signed_reader`] reads the
//! exported message once to sign it and gives a reader of the same bytes
//! (same headers and boundaries, bodies read again) behind the signature,
//! so a message with attachments of any size is signed and sent in
//! bounded memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mail_auth::common::crypto::{Algorithm, DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner as AuthSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use tls_mailer_proto::CrlfNormalizer;

use crate::email::Email;
use crate::error::MessageError;
use crate::stream::{EmailReader, message_error};

/// Headers signed by default (those present in the message are signed).
const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

const CHUNK: usize = 64 * 1024;

/// The signing key, shared between signers (mail-auth takes keys by value).
#[derive(Clone)]
struct SharedKey(Arc<DkimKey>);

impl SigningKey for SharedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

/// A DKIM signer: a private key (RSA or Ed25519), a selector, a domain,
/// the list of headers to sign and the canonicalization (relaxed/relaxed
/// by default).
///
/// ```no_run
/// use tls_mailer_message::{DkimSigner, Email};
///
/// let signer = DkimSigner::from_pem_file("dkim.pem", "mail2024", "example.com")?;
/// let email = Email::new()
///     .with_from("alice@example.com".parse()?)
///     .with_to("bob@example.org".parse()?)
///     .with_text("Signed.");
/// let signed: Vec<u8> = signer.sign_email(&email)?;
/// assert!(signed.starts_with(b"DKIM-Signature: v=1;"));
/// # Ok::<(), tls_mailer_message::MessageError>(())
/// ```
#[derive(Clone)]
pub struct DkimSigner {
    key: SharedKey,
    selector: String,
    domain: String,
    headers: Vec<String>,
    relaxed_headers: bool,
    relaxed_body: bool,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("algorithm", &self.algorithm())
            .field("selector", &self.selector)
            .field("domain", &self.domain)
            .field("headers", &self.headers)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn dkim_error(context: &str, error: impl std::fmt::Display) -> MessageError {
    MessageError::Dkim(format!("{context}: {error}"))
}

impl DkimSigner {
    /// Loads a private key from a PEM file: RSA in PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`), or Ed25519
    /// in PKCS#8. The algorithm (rsa-sha256 or ed25519-sha256) follows the key.
    pub fn from_pem_file(
        path: impl AsRef<Path>,
        selector: &str,
        domain: &str,
    ) -> Result<DkimSigner, MessageError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| MessageError::io(Some(path), e))?;
        DkimSigner::from_pem(&pem, selector, domain)
    }

    /// Like [`from_pem_file`](DkimSigner::from_pem_file), from PEM bytes.
    pub fn from_pem(pem: &[u8], selector: &str, domain: &str) -> Result<DkimSigner, MessageError> {
        for (what, value) in [("selector", selector), ("domain", domain)] {
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return Err(MessageError::Dkim(format!(
                    "invalid {what} {value:?}: use letters, digits, `-`, `_` and `.`"
                )));
            }
        }
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| dkim_error("no PKCS#1 or PKCS#8 private key in the PEM data", e))?;
        let key = match der {
            PrivateKeyDer::Pkcs1(_) => DkimKey::Rsa(
                RsaKey::<Sha256>::from_key_der(der).map_err(|e| dkim_error("RSA key", e))?,
            ),
            PrivateKeyDer::Pkcs8(pkcs8) => load_pkcs8(pkcs8)?,
            _ => {
                return Err(MessageError::Dkim(
                    "unsupported key type: use an RSA or Ed25519 key in PKCS#1 or PKCS#8 PEM"
                        .to_string(),
                ));
            }
        };
        Ok(DkimSigner {
            key: SharedKey(Arc::new(key)),
            selector: selector.to_string(),
            domain: domain.to_string(),
            headers: DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect(),
            relaxed_headers: true,
            relaxed_body: true,
        })
    }

    /// Replaces the list of headers to sign (`From` is always added).
    pub fn with_headers<I, S>(mut self, headers: I) -> DkimSigner
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.headers = headers.into_iter().map(Into::into).collect();
        if !self.headers.iter().any(|h| h.eq_ignore_ascii_case("from")) {
            self.headers.insert(0, "From".to_string());
        }
        self
    }

    /// Sets header and body canonicalization: `true` for relaxed (the
    /// default), `false` for simple.
    pub fn with_canonicalization(
        mut self,
        relaxed_headers: bool,
        relaxed_body: bool,
    ) -> DkimSigner {
        self.relaxed_headers = relaxed_headers;
        self.relaxed_body = relaxed_body;
        self
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key.algorithm() {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::RsaSha1 => "rsa-sha1",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    fn signer(&self) -> AuthSigner<SharedKey, Done> {
        let canon = |relaxed| {
            if relaxed {
                Canonicalization::Relaxed
            } else {
                Canonicalization::Simple
            }
        };
        AuthSigner::from_key(self.key.clone())
            .domain(self.domain.clone())
            .selector(self.selector.clone())
            .headers(self.headers.clone())
            .header_canonicalization(canon(self.relaxed_headers))
            .body_canonicalization(canon(self.relaxed_body))
    }

    /// Signs a complete message held in memory and returns the
    /// `DKIM-Signature` header field (folded, ending in CRLF) to prepend.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, MessageError> {
        let signature = self
            .signer()
            .sign(message)
            .map_err(|e| dkim_error("signing failed", e))?;
        Ok(header_bytes(&signature.to_header()))
    }

    /// Signs a message read from `reader` in one streaming pass (memory
    /// bounded by the header section) and returns the `DKIM-Signature`
    /// header field to prepend. The caller must transmit exactly the bytes
    /// that were read.
    pub fn sign_reader(&self, mut reader: impl Read) -> Result<Vec<u8>, MessageError> {
        self.sign_stream(&mut reader, None)
    }

    /// Signs a message file (streaming, see [`sign_reader`](DkimSigner::sign_reader));
    /// send the returned header followed by the file, read again.
    pub fn sign_file(&self, path: impl AsRef<Path>) -> Result<Vec<u8>, MessageError> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| MessageError::io(Some(path), e))?;
        self.sign_stream(&mut file, Some(path.to_path_buf()))
    }

    fn sign_stream(
        &self,
        reader: &mut dyn Read,
        path: Option<PathBuf>,
    ) -> Result<Vec<u8>, MessageError> {
        let signer = self.signer();
        let mut stream = signer.sign_streaming();
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if path.is_some() => return Err(MessageError::io(path.as_deref(), e)),
                Err(e) => return Err(message_error(e)),
            };
            stream.write(buffer.get(..n).unwrap_or_default());
        }
        let signature = stream
            .finish()
            .map_err(|e| dkim_error("signing failed", e))?;
        Ok(header_bytes(&signature.to_header()))
    }

    /// Exports `email` and signs it without holding it in memory: a first
    /// pass over [`Email::reader`]'s bytes (CRLF-normalised as the server
    /// will store them) computes the body hash and the signature, and the
    /// reader returned gives the `DKIM-Signature` header followed by the
    /// same bytes, read again. Its [`size`](EmailReader::size) includes the
    /// header. A part's file must not change between the two passes (a
    /// change of size or, for text, of what decides its encoding is an
    /// error of the second pass; any other change would break the
    /// signature).
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use tls_mailer_message::{Content, DkimSigner, Email};
    ///
    /// let signer = DkimSigner::from_pem_file("dkim.pem", "mail2024", "example.com")?;
    /// let email = Email::new()
    ///     .with_from("alice@example.com".parse()?)
    ///     .with_to("bob@example.org".parse()?)
    ///     .with_text("The video is attached.\n")
    ///     .with_attachment("talk.mp4", Content::from_path("talk.mp4")?)?;
    /// let mut signed = signer.signed_reader(&email)?;
    /// let size = signed.size();
    /// let mut start = [0u8; 20];
    /// signed.read_exact(&mut start)?;
    /// assert!(start.starts_with(b"DKIM-Signature: v=1;"));
    /// # let _ = size;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signed_reader(&self, email: &Email) -> Result<EmailReader, MessageError> {
        let reader = email.reader()?;
        let mut normalized = Normalized::new(reader.replay());
        let header = self.sign_stream(&mut normalized, None)?;
        Ok(reader.with_prefix(header))
    }

    /// Exports `email` and returns the signed message: the DKIM-Signature
    /// header followed by the exported bytes.
    pub fn sign_email(&self, email: &Email) -> Result<Vec<u8>, MessageError> {
        let message = email.to_bytes()?;
        let mut signed = self.sign(&message)?;
        signed.extend_from_slice(&message);
        Ok(signed)
    }
}

/// The header as mail-auth writes it, except for one fold: when the `b=`
/// value fills its last line exactly, mail-auth breaks the line before the
/// closing `;`. mail-auth hashes the header with the `b=` value and all
/// whitespace around it deleted (RFC 6376 3.7), i.e. `b=;`. Verifiers such
/// as dkimpy delete only the base64 and the folding inside it and keep the
/// FWS that the tag grammar (RFC 6376 3.2) places between a value and the
/// `;`, so after relaxed canonicalization (3.4.2 reduces the fold to one
/// space but does not remove it) they hash `b= ;` and reject a valid
/// signature. Joining the `;` to the value leaves no whitespace for the two
/// readings to disagree on and changes nothing that is signed; the line
/// becomes 77 characters, within RFC 5322's 78.
fn header_bytes(header: &str) -> Vec<u8> {
    let mut bytes = header.as_bytes().to_vec();
    for fold in [&b"\r\n\t;\r\n"[..], b"\r\n ;\r\n"] {
        if bytes.ends_with(fold) {
            bytes.truncate(bytes.len() - fold.len());
            bytes.extend_from_slice(b";\r\n");
        }
    }
    bytes
}

fn load_pkcs8(pkcs8: PrivatePkcs8KeyDer<'_>) -> Result<DkimKey, MessageError> {
    let der = pkcs8.secret_pkcs8_der().to_vec();
    match RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(pkcs8)) {
        Ok(rsa) => Ok(DkimKey::Rsa(rsa)),
        Err(rsa_error) => Ed25519Key::from_pkcs8_maybe_unchecked_der(&der)
            .map(DkimKey::Ed25519)
            .map_err(|ed_error| {
                MessageError::Dkim(format!(
                    "the PKCS#8 key is neither RSA ({rsa_error}) nor Ed25519 ({ed_error})"
                ))
            }),
    }
}

/// A reader's bytes with line ends normalised as the wire will send them
/// (bare CR or LF as CRLF, a final line break added): what the signature
/// must cover.
struct Normalized<R> {
    inner: R,
    normalizer: CrlfNormalizer,
    buffer: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> Normalized<R> {
    fn new(inner: R) -> Self {
        Normalized {
            inner,
            normalizer: CrlfNormalizer::new(),
            buffer: vec![0; CHUNK],
            out: Vec::with_capacity(CHUNK + CHUNK / 8),
            at: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for Normalized<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(pending) = self.out.get(self.at..)
                && !pending.is_empty()
            {
                let n = pending.len().min(buf.len());
                buf[..n].copy_from_slice(&pending[..n]);
                self.at += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.out.clear();
            self.at = 0;
            let n = self.inner.read(&mut self.buffer)?;
            if n == 0 {
                self.normalizer.finish(&mut self.out);
                self.done = true;
            } else {
                self.normalizer
                    .encode(self.buffer.get(..n).unwrap_or_default(), &mut self.out);
            }
        }
    }
}

/// Copies `reader` (e.g. stdin) into a private temporary file (deleted when
/// closed) and returns it rewound, so that a message can be signed in one
/// pass and transmitted in a second one.
pub fn spool_to_tempfile(mut reader: impl Read) -> Result<File, MessageError> {
    let mut file = tempfile::tempfile().map_err(|e| MessageError::io(None, e))?;
    std::io::copy(&mut reader, &mut file).map_err(|e| MessageError::io(None, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| MessageError::io(None, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::header_bytes;

    #[test]
    fn the_closing_semicolon_is_joined_to_a_full_last_line() {
        let value = "A".repeat(75);
        let folded = format!("DKIM-Signature: v=1; bh=x; b=AAAA\r\n\t{value}\r\n\t;\r\n");
        let joined = format!("DKIM-Signature: v=1; bh=x; b=AAAA\r\n\t{value};\r\n");
        assert_eq!(header_bytes(&folded), joined.as_bytes());
        assert_eq!(header_bytes(&joined), joined.as_bytes());
        let short = "DKIM-Signature: v=1; bh=x; b=AAAA\r\n\tBBBB;\r\n";
        assert_eq!(header_bytes(short), short.as_bytes());
    }
}
