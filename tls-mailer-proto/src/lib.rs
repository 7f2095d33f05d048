//! The sans-IO SMTP submission engine of tls-mailer.
//!
//! Nothing here opens a socket, reads a clock or speaks TLS. A driver feeds
//! the server's bytes to a [`Session`], writes what it asks to write, and acts
//! on its [`Event`]s; the blocking and async clients of the `tls-mailer` crate
//! are such drivers, and so are the tests.
//!
//! ```
//! use tls_mailer_proto::{Domain, Event, Session, SessionConfig, Transport};
//!
//! let config = SessionConfig::new(Domain::new("client.example.org").unwrap(), Transport::ImplicitTls);
//! let mut session = Session::new(config);
//! let mut wire = Vec::new();
//!
//! session.handle_input(b"220 mx.example.org ESMTP\r\n");
//! session.poll_transmit(&mut wire);
//! assert_eq!(wire, b"EHLO client.example.org\r\n");
//!
//! session.handle_input(b"250-mx.example.org\r\n250 PIPELINING\r\n");
//! assert!(matches!(session.poll_event(), Some(Event::Ready(c)) if c.pipelining));
//! ```
#![warn(missing_docs)]

pub mod address;
pub mod body;
pub mod capabilities;
pub mod command;
pub mod error;
mod pipeline;
pub mod reply;
pub mod sasl;
pub mod session;

pub use address::{Address, Domain, Envelope, ReversePath};
pub use body::{BdatFramer, CrlfNormalizer, DotStuffer};
pub use capabilities::Capabilities;
pub use command::{Command, CommandKind, MailParameters};
pub use error::{ApiMisuse, InvalidInput, ProtocolError, Rejection, SessionError, Unsupported};
pub use reply::{EnhancedCode, Reply, ReplyCode, ReplyLimits, ReplyParser};
pub use sasl::{Credentials, Mechanism, Secret};
pub use session::{
    BodyInfo, BodyMode, Delivery, Event, Phase, RecipientOutcome, RecipientPolicy, Session,
    SessionConfig, Trace, Transport,
};
