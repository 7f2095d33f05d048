//! The e-mail model of tls-mailer: an immutable [`Email`] value that builds
//! correct MIME messages ([`Email::to_bytes`]), imports existing ones
//! ([`Email::parse`]), validates them before sending ([`Email::validate`]),
//! derives the SMTP envelope ([`Email::envelope`]), summarises them for logs
//! ([`Email::dump`]) and DKIM-signs them ([`DkimSigner`]). A message that
//! exists only as bytes is read with [`RawMessage`]: its envelope by the
//! same rules, Bcc removed, the body streamed.
//!
//! MIME headers are written by mail-builder, decoding is done by
//! mail-parser and DKIM by mail-auth; this crate is the model, the rules
//! and the validation, and it streams part bodies itself: an attachment
//! read from a file ([`Content::from_path`]) is read and encoded a chunk at
//! a time when the message is written ([`Email::write_to`],
//! [`Email::reader`], [`DkimSigner::signed_reader`]), so a message with a
//! gigabyte attachment is composed, signed and sent in a few megabytes.
//!
//! ```
//! use tls_mailer_message::Email;
//!
//! let email = Email::new()
//!     .with_from("alice@example.com".parse()?)
//!     .with_to("bob@example.com".parse()?)
//!     .with_subject("Hi")
//!     .with_text("Hello!\n");
//! let bytes = email.to_bytes()?;
//! let back = Email::parse(&bytes)?;
//! assert_eq!(back.subject(), Some("Hi"));
//! assert_eq!(back.text(), Some("Hello!\n"));
//! # Ok::<(), tls_mailer_message::MessageError>(())
//! ```
#![warn(missing_docs)]

mod address;
mod content;
mod dkim;
mod dump;
mod email;
mod envelope;
mod error;
mod export;
mod header;
mod import;
mod raw;
mod stream;
/// The integration tests' sample messages, for the unit tests that compare
/// writers.
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_samples;
#[cfg(test)]
extern crate self as tls_mailer_message;

pub use address::Mailbox;
pub use content::{Content, Disposition, Part, guess_content_type};
pub use dkim::{DkimSigner, spool_to_tempfile};
pub use dump::{EmailDump, PartDump};
pub use email::Email;
pub use error::MessageError;
pub use raw::{MAX_HEADER_SECTION, RawMessage};
pub use stream::EmailReader;
