//! Submit e-mail to an SMTP server over implicit TLS (RFC 8314) by default,
//! or with required STARTTLS (RFC 3207), and never silently in plaintext.
//!
//! - [`send_mail`]: one call, shaped like Go's `net/smtp.SendMail`.
//! - [`Client`]: configured once (security mode, credentials, trust anchors,
//!   timeouts), then used for any number of sends; [`Client::connect`] gives
//!   a [`Connection`] that sends many messages over one session.
//! - With the `tokio` feature, the same client over tokio:
//!   `Client::connect_async` gives an `AsyncConnection`, and
//!   `Client::send_async` sends one message.
//! - [`Email`]: an immutable message builder (text, HTML, inline images,
//!   attachments, Cc/Bcc) that can also import an existing message; send it
//!   with [`Client::send_email`].
//! - [`Pool`]: connections shared between threads, reused up to the limits of
//!   a [`PoolConfig`] (with the `tokio` feature, `AsyncPool` too); a
//!   connection the server closed while idle is replaced before the next
//!   mail, and a mail is never sent twice.
//! - [`Outbox`]: a durable spool for messages that could not be sent now,
//!   flushed later; nothing in it is ever lost.
//!
//! The SMTP conversation itself lives in the sans-IO engine
//! [`tls_mailer_proto`], which also computes every deadline; this crate adds
//! sockets, TLS (rustls) and the clock.
//!
//! # Start-up cost
//!
//! Build one [`Client`] and keep it: [`ClientBuilder::build`] makes the
//! rustls configuration once, and every connection of the client (and of its
//! clones) shares it, with its session cache, so a second connection
//! resumes the first one's TLS session ([`TlsDetails::resumed`]). The system
//! trust store is read only when the client uses it (not with
//! [`ClientBuilder::system_roots`]`(false)` and your own CA, not with
//! pin-only), at most once per process, from the distribution's single
//! bundle file where there is one.
//!
//! The first TLS handshake of a process also pays for seeding the
//! random-number generator. rustls' crypto provider, aws-lc-rs, by default
//! collects CPU jitter entropy for that, once per process: about 30 to 50 ms
//! of CPU on a typical machine, before the first ClientHello. A long-lived
//! program pays it once; a short-lived one (a send per process) pays it on
//! every run. To avoid it, build with the environment variable
//! `AWS_LC_SYS_NO_JITTER_ENTROPY=1` (for example in your workspace's
//! `.cargo/config.toml`: `[env]` then `AWS_LC_SYS_NO_JITTER_ENTROPY = "1"`).
//! aws-lc then seeds its generator from the operating system's
//! (`getrandom(2)` on Linux), as ring and OpenSSL do, and gives up only the
//! second, independent source (its "rule of two"); FIPS builds cannot turn
//! it off. This crate's own binary, `tls-mailer`, is built that way in this
//! workspace.
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod async_tokio;
mod batch;
mod blocking;
mod client;
mod discovery;
mod driver;
mod error;
pub mod oauth;
pub mod outbox;
mod pool;
#[cfg(feature = "tokio")]
mod pool_async;
mod probe;
mod proxy;
mod signing;
mod tls;

#[cfg(feature = "tokio")]
pub use async_tokio::AsyncConnection;
pub use batch::Mail;
pub use blocking::Connection;
pub use client::{
    Client, ClientBuilder, SendReport, TlsDetails, TraceEvent, WIRE_TARGET, send_mail,
};
pub use discovery::{SubmissionServer, discover};
pub use error::Error;
pub use outbox::Outbox;
pub use pool::{Pool, PoolConfig, PooledConnection};
#[cfg(feature = "tokio")]
pub use pool_async::{AsyncPool, AsyncPooledConnection};
pub use probe::{PeerCertificate, Probe};
pub use proxy::{Proxy, ProxyKind};
pub use tls::{TlsVersion, TrustAnchors};
pub use tls_mailer_message::{Content, DkimSigner, Email, Mailbox, MessageError, RawMessage};
pub use tls_mailer_proto as proto;
pub use tls_mailer_proto::{
    Address, BodyInfo, CommandKind, Credentials, Dsn, DsnReturn, Envelope, MailOptions, Mechanism,
    Notify, Phase, Protocol, RecipientDsn, RecipientOutcome, RecipientPolicy, Rejection, Reply,
    Security, Timeouts,
};

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
