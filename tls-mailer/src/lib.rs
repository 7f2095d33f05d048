//! Submit e-mail to an SMTP server over implicit TLS (RFC 8314) by default,
//! or with required STARTTLS (RFC 3207), and never silently in plaintext.
//!
//! - [`send_mail`]: one call, shaped like Go's `net/smtp.SendMail`.
//! - [`Client`]: configured once (security mode, credentials, trust anchors,
//!   timeouts), then used for any number of sends.
//! - [`Email`]: an immutable message builder (text, HTML, inline images,
//!   attachments, Cc/Bcc) that can also import an existing message; send it
//!   with [`Client::send_email`].
//!
//! The SMTP conversation itself lives in the sans-IO engine
//! [`tls_mailer_proto`]; this crate adds sockets, TLS (rustls) and deadlines.
#![warn(missing_docs)]

mod blocking;
mod client;
mod config;
mod error;
mod signing;
mod tls;

pub use client::{
    Client, ClientBuilder, Protection, SendReport, TlsDetails, TraceEvent, send_mail,
};
pub use config::{Security, Timeouts};
pub use error::Error;
pub use tls::TrustAnchors;
pub use tls_mailer_message::{Content, DkimSigner, Email, Mailbox, MessageError};
pub use tls_mailer_proto as proto;
pub use tls_mailer_proto::{
    BodyInfo, Credentials, Envelope, Mechanism, Phase, RecipientOutcome, RecipientPolicy,
    Rejection, Reply,
};

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
