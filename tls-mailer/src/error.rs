//! One error type for every way a send can fail, grouped by who is at fault.

use std::fmt;
use std::io;

use tls_mailer_proto::{
    ApiMisuse, InvalidInput, Phase, ProtocolError, RecipientOutcome, Rejection, Reply, Security,
    SessionError, Unsupported,
};

/// Why a send failed. [`Error::is_transient`] says whether trying again later
/// can help.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The host name could not be resolved.
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No connection could be made (TCP, or a Unix socket).
    Connect {
        /// `host:port`, or `the Unix socket PATH`.
        target: String,
        /// The last connect error.
        source: io::Error,
    },
    /// The proxy ([`crate::ClientBuilder::proxy`]) did not open the way to
    /// the mail server: its login or its rules refused it, it could not
    /// reach the server, or it does not speak the protocol named.
    Proxy {
        /// The proxy, without its password.
        proxy: String,
        /// What it said, and the usual fix.
        reason: String,
        /// It could not reach the server for now (unreachable, refused, a
        /// general failure): trying again later may help.
        temporary: bool,
    },
    /// The TLS handshake failed (certificate refused, no common version...).
    Tls {
        /// What failed, with the usual fix.
        reason: String,
        /// The rustls error, when there is one.
        source: Option<rustls::Error>,
    },
    /// The server greeted in plaintext SMTP on a port where implicit TLS was
    /// asked for.
    WrongSecurity {
        /// The port.
        port: u16,
        /// The security mode that was asked for.
        expected: Security,
    },
    /// A deadline passed.
    Timeout {
        /// What the client was waiting for.
        phase: Phase,
    },
    /// The connection broke (reset, closed while writing).
    Io {
        /// Where the conversation was.
        phase: Phase,
        /// The I/O error.
        source: io::Error,
    },
    /// The server broke the protocol.
    Protocol(ProtocolError),
    /// The server refused a command.
    Rejected(Rejection),
    /// The server refused recipients, so nothing was sent.
    RecipientsRejected(Vec<RecipientOutcome>),
    /// The server lacks something required (STARTTLS, an AUTH mechanism, SMTPUTF8, SIZE).
    Unsupported(Unsupported),
    /// Credentials would have been sent without TLS.
    CredentialsWithoutTls,
    /// The server announced it is closing an idle connection (`421`).
    ServiceClosing(Reply),
    /// Plaintext mode was asked for a host that is not loopback.
    PlaintextNotLoopback {
        /// The host.
        host: String,
    },
    /// Implicit TLS failed and so did the STARTTLS fallback.
    FallbackFailed {
        /// Why implicit TLS failed.
        implicit_tls: Box<Error>,
        /// Why STARTTLS failed.
        starttls: Box<Error>,
    },
    /// Bad input refused before anything was sent: an address, the EHLO name, the host.
    InvalidInput(InvalidInput),
    /// The e-mail cannot be sent as it is (no recipient, no From, header injection...).
    Message(tls_mailer_message::MessageError),
    /// A setting cannot be used (unreadable CA file, empty trust store...).
    Config(String),
    /// The message could not be read from its source.
    ReadMessage(io::Error),
    /// The library was used wrongly.
    ApiMisuse(ApiMisuse),
    /// Every connection of a [`crate::Pool`] (or, with the `tokio`
    /// feature, an `AsyncPool`) stayed in use for as long as a checkout may
    /// wait.
    PoolTimeout {
        /// How long the checkout waited.
        waited: std::time::Duration,
        /// The pool's cap on connections, all of them in use.
        max_connections: usize,
    },
    /// No OAuth 2.0 access token could be obtained from the token endpoint
    /// ([`crate::oauth`]).
    OAuth(crate::oauth::OAuthError),
}

impl Error {
    /// Trying again later may help: 4xx replies, network failures, timeouts.
    /// Not for 5xx replies, TLS verification failures or bad input.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Resolve { source, .. } => is_temporary_resolve_failure(source),
            Self::Proxy { temporary, .. } => *temporary,
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Io { .. }
            | Self::PoolTimeout { .. } => true,
            Self::Rejected(rejection) => rejection.is_transient(),
            Self::RecipientsRejected(outcomes) => outcomes
                .iter()
                .filter(|outcome| !outcome.accepted())
                .all(|outcome| outcome.reply.is_transient()),
            Self::FallbackFailed { starttls, .. } => starttls.is_transient(),
            Self::OAuth(error) => error.is_transient(),
            Self::Protocol(ProtocolError::ConnectionClosed { .. }) | Self::ServiceClosing(_) => {
                true
            }
            Self::Tls { .. }
            | Self::WrongSecurity { .. }
            | Self::Protocol(_)
            | Self::Unsupported(_)
            | Self::CredentialsWithoutTls
            | Self::PlaintextNotLoopback { .. }
            | Self::InvalidInput(_)
            | Self::Message(_)
            | Self::Config(_)
            | Self::ReadMessage(_)
            | Self::ApiMisuse(_) => false,
        }
    }

    /// The server refused the credentials (or required them); the engine
    /// classifies the reply ([`Rejection::is_authentication_failure`]).
    pub fn is_authentication_failure(&self) -> bool {
        match self {
            Self::Rejected(rejection) => rejection.is_authentication_failure(),
            Self::FallbackFailed { starttls, .. } => starttls.is_authentication_failure(),
            _ => false,
        }
    }
}

/// glibc says "Temporary failure in name resolution" for EAI_AGAIN; std gives
/// no kind for it.
pub(crate) fn is_temporary_resolve_failure(error: &io::Error) -> bool {
    error.to_string().contains("Temporary failure")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { host, source } => write!(f, "cannot resolve host {host:?}: {source}"),
            Self::Connect { target, source } => write!(f, "cannot connect to {target}: {source}"),
            Self::Proxy { proxy, reason, .. } => write!(f, "proxy {proxy}: {reason}"),
            Self::Tls { reason, .. } => f.write_str(reason),
            Self::WrongSecurity { port, .. } => write!(
                f,
                "the server on port {port} answered in plaintext SMTP, not TLS: this port \
                 expects STARTTLS (Security::StartTls); implicit TLS is usually on port 465"
            ),
            Self::Timeout { phase } => write!(f, "timed out {}", phase.waiting_for()),
            Self::Io { phase, source } => {
                write!(f, "connection lost {}: {source}", phase.waiting_for())
            }
            Self::Protocol(error) => error.fmt(f),
            Self::Rejected(rejection) => rejection.fmt(f),
            Self::RecipientsRejected(outcomes) => {
                SessionError::RecipientsRejected(outcomes.clone()).fmt(f)
            }
            Self::Unsupported(unsupported) => unsupported.fmt(f),
            Self::CredentialsWithoutTls => {
                f.write_str("refusing to send credentials over an unencrypted connection")
            }
            Self::ServiceClosing(reply) => {
                write!(f, "the server closed the idle connection: {reply}")
            }
            Self::PlaintextNotLoopback { host } => write!(
                f,
                "plaintext SMTP is allowed only to loopback addresses, and {host} is not one"
            ),
            Self::FallbackFailed {
                implicit_tls,
                starttls,
            } => write!(
                f,
                "implicit TLS failed ({implicit_tls}), and so did STARTTLS: {starttls}"
            ),
            Self::InvalidInput(input) => input.fmt(f),
            Self::Message(error) => error.fmt(f),
            Self::Config(message) => f.write_str(message),
            Self::ReadMessage(error) => write!(f, "cannot read the message: {error}"),
            Self::ApiMisuse(misuse) => misuse.fmt(f),
            Self::PoolTimeout {
                waited,
                max_connections,
            } => write!(
                f,
                "no pooled connection became free within {waited:?}: all {max_connections} \
                 were in use (PoolConfig::max_connections, PoolConfig::checkout_timeout)"
            ),
            Self::OAuth(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Resolve { source, .. } | Self::Connect { source, .. } => Some(source),
            Self::Io { source, .. } | Self::ReadMessage(source) => Some(source),
            Self::Tls {
                source: Some(source),
                ..
            } => Some(source),
            Self::Protocol(error) => Some(error),
            Self::Rejected(rejection) => Some(rejection),
            Self::Unsupported(unsupported) => Some(unsupported),
            Self::InvalidInput(input) => Some(input),
            Self::Message(error) => Some(error),
            _ => None,
        }
    }
}

/// Every engine error has its own variant: the engine's error is exhaustive,
/// so a new case there must be placed here.
impl From<SessionError> for Error {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Protocol(error) => Self::Protocol(error),
            SessionError::Rejected(rejection) => Self::Rejected(rejection),
            SessionError::RecipientsRejected(outcomes) => Self::RecipientsRejected(outcomes),
            SessionError::Unsupported(unsupported) => Self::Unsupported(unsupported),
            SessionError::CredentialsWithoutTls => Self::CredentialsWithoutTls,
            SessionError::InvalidInput(input) => Self::InvalidInput(input),
            SessionError::Timeout { phase } => Self::Timeout { phase },
            SessionError::ServiceClosing(reply) => Self::ServiceClosing(reply),
            SessionError::ApiMisuse(misuse) => Self::ApiMisuse(misuse),
        }
    }
}

impl From<InvalidInput> for Error {
    fn from(error: InvalidInput) -> Self {
        Self::InvalidInput(error)
    }
}

impl From<ApiMisuse> for Error {
    fn from(error: ApiMisuse) -> Self {
        Self::ApiMisuse(error)
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Self {
        Self::Protocol(error)
    }
}

impl From<tls_mailer_message::MessageError> for Error {
    fn from(error: tls_mailer_message::MessageError) -> Self {
        Self::Message(error)
    }
}
