//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while building, exporting, importing,
/// validating or signing an e-mail.
///
/// Each variant names the problem and, in its `Display` text, what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum MessageError {
    /// An e-mail address (or a display name around it) was not accepted.
    InvalidAddress {
        /// The text that was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A header value contains CR, LF, NUL or another control character
    /// but HTAB (or the name is not a valid RFC 5322 field name): refused
    /// when the value is set, imported or exported.
    HeaderInjection {
        /// The header concerned.
        name: String,
    },
    /// A custom header would override a header this crate writes itself
    /// (MIME structure, addresses, subject).
    ReservedHeader {
        /// The header concerned.
        name: String,
    },
    /// A Content-ID for an inline part is empty or contains forbidden characters.
    InvalidContentId {
        /// The Content-ID that was given.
        cid: String,
    },
    /// A content type is not of the form `type/subtype`.
    InvalidContentType {
        /// The content type that was given.
        content_type: String,
    },
    /// The message has no To, Cc or Bcc recipient.
    NoRecipients,
    /// The message has no From address.
    NoFrom,
    /// The message has several From addresses but no Sender header.
    MultipleFromWithoutSender,
    /// The From address is not the sender configured for the account.
    FromMismatch {
        /// The From address of the message.
        from: String,
        /// The configured sender.
        sender: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file concerned, if there is one.
        path: Option<PathBuf>,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes given to [`Email::parse`](crate::Email::parse) are not a
    /// message that can be imported.
    Parse(String),
    /// DKIM key loading or signing failed.
    Dkim(String),
    /// [`RawMessage::read`](crate::RawMessage::read) found no empty line
    /// ending the header section within `limit` bytes.
    HeaderSectionTooLong {
        /// The largest header section accepted, in bytes.
        limit: usize,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::InvalidAddress { input, reason } => write!(
                f,
                "invalid e-mail address {input:?}: {reason}; use the form `user@example.com` or `Name <user@example.com>`"
            ),
            MessageError::HeaderInjection { name } => write!(
                f,
                "header {name:?} contains a line break (CR or LF), NUL or another control character, or its name is not a valid field name; remove line breaks and control characters"
            ),
            MessageError::ReservedHeader { name } => write!(
                f,
                "header {name:?} is written by the message builder and cannot be set as a custom header; use the matching `with_*` method"
            ),
            MessageError::InvalidContentId { cid } => write!(
                f,
                "invalid Content-ID {cid:?}: use a non-empty id without spaces, quotes, angle brackets or control characters"
            ),
            MessageError::InvalidContentType { content_type } => write!(
                f,
                "invalid content type {content_type:?}: use the form `type/subtype`, e.g. `application/pdf`"
            ),
            MessageError::NoRecipients => {
                f.write_str("the message has no recipient: add at least one To, Cc or Bcc address")
            }
            MessageError::NoFrom => f.write_str("the message has no From address: set one"),
            MessageError::MultipleFromWithoutSender => f.write_str(
                "the message has several From addresses: set a Sender header naming the one who sends it",
            ),
            MessageError::FromMismatch { from, sender } => write!(
                f,
                "the From address {from:?} is not the account's sender {sender:?}: change the From address or the configured sender"
            ),
            MessageError::Io {
                path: Some(path),
                source,
            } => write!(f, "I/O error on {}: {source}", path.display()),
            MessageError::Io { path: None, source } => write!(f, "I/O error: {source}"),
            MessageError::Parse(reason) => write!(f, "cannot import the message: {reason}"),
            MessageError::Dkim(reason) => write!(f, "DKIM: {reason}"),
            MessageError::HeaderSectionTooLong { limit } => write!(
                f,
                "the message has no empty line ending its header section within the first {} MiB; \
                 is it an RFC 5322 message (header fields, an empty line, then the body)?",
                limit >> 20
            ),
        }
    }
}

impl std::error::Error for MessageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MessageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl MessageError {
    pub(crate) fn io(path: Option<&std::path::Path>, source: std::io::Error) -> Self {
        MessageError::Io {
            path: path.map(std::path::Path::to_path_buf),
            source,
        }
    }
}
