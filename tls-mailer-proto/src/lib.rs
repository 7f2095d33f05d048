//! The sans-IO SMTP submission engine of tls-mailer.
//!
//! Nothing here opens a socket, reads a clock or speaks TLS. A driver feeds
//! the server's bytes to a [`Session`], writes what it asks to write, and acts
//! on its [`Event`]s; the blocking and async clients of the `tls-mailer` crate
//! are such drivers, and so are the tests.
//!
//! ```
//! use std::time::Instant;
//! use tls_mailer_proto::{Domain, Event, Security, Session, SessionConfig};
//!
//! let config = SessionConfig::new(Domain::new("client.example.org").unwrap(), Security::ImplicitTls);
//! let now = Instant::now(); // the driver's clock; the engine never reads one
//! let mut session = Session::new(config, now);
//! let mut wire = Vec::new();
//!
//! // Implicit TLS: the handshake comes first, on the engine's word.
//! assert_eq!(session.poll_event(), Some(Event::UpgradeToTls));
//! session.tls_established(now).unwrap();
//!
//! session.handle_input(now, b"220 mx.example.org ESMTP\r\n");
//! assert!(session.poll_transmit(&mut wire));
//! assert_eq!(wire, b"EHLO client.example.org\r\n");
//!
//! session.handle_input(now, b"250-mx.example.org\r\n250 PIPELINING\r\n");
//! assert_eq!(session.poll_event(), Some(Event::Ready));
//! assert!(session.capabilities().unwrap().pipelining);
//! ```
#![warn(missing_docs)]

pub mod address;
pub mod body;
pub mod capabilities;
pub mod command;
pub mod error;
pub mod options;
mod pipeline;
pub mod reply;
pub mod sasl;
mod scram;
pub mod server;
pub mod session;
pub mod sniff;

pub use address::{Address, Domain, Envelope, ReversePath};
pub use body::{BdatFramer, CrlfNormalizer, DotStuffer};
pub use capabilities::Capabilities;
pub use command::{BodyType, Command, CommandKind, MailParameters, RcptParameters};
pub use error::{ApiMisuse, InvalidInput, ProtocolError, Rejection, SessionError, Unsupported};
pub use options::{Dsn, DsnReturn, MailOptions, Notify, RecipientDsn};
pub use reply::{EnhancedCode, Reply, ReplyCode, ReplyLimits, ReplyParser};
pub use sasl::{Credentials, Mechanism, Secret};
pub use session::{
    BodyDemand, BodyInfo, BodyMode, Delivery, Event, Phase, Protocol, RecipientOutcome,
    RecipientPolicy, Security, Session, SessionConfig, Timeouts, Trace,
};
