//! Errors of the engine, grouped by who is at fault.

use std::fmt;

use crate::command::CommandKind;
use crate::reply::{EnhancedCode, Reply, ReplyCode};

/// The server broke the protocol: a malformed, unexpected or oversized reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A reply line that is not `NNN[ -]text`.
    MalformedReply {
        /// The offending line, made printable.
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A reply line longer than the limit.
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A multi-line reply with more lines than the limit.
    TooManyLines {
        /// The limit in lines.
        limit: usize,
    },
    /// The server sent bytes after its `220` to STARTTLS and before the TLS
    /// handshake (RFC 3207 5: a response-injection attack or a broken server).
    BytesAfterStartTls,
    /// The server sent a reply when none was expected.
    UnsolicitedReply(Reply),
    /// A reply code that makes no sense for the command it answers.
    UnexpectedReply {
        /// The command it answered.
        command: CommandKind,
        /// The reply.
        reply: Reply,
    },
    /// The server closed the connection while a reply was still due.
    ConnectionClosed {
        /// The command whose reply never came (`None` for the greeting).
        awaiting: Option<CommandKind>,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedReply { line, reason } => {
                write!(f, "malformed reply from the server ({reason}): {line:?}")
            }
            Self::LineTooLong { limit } => {
                write!(f, "the server sent a reply line longer than {limit} bytes")
            }
            Self::TooManyLines { limit } => {
                write!(f, "the server sent a reply of more than {limit} lines")
            }
            Self::BytesAfterStartTls => write!(
                f,
                "the server sent data after its 220 to STARTTLS and before the TLS handshake \
                 (possible response injection); refusing to continue"
            ),
            Self::UnsolicitedReply(reply) => {
                write!(f, "the server sent a reply nobody asked for: {reply}")
            }
            Self::UnexpectedReply { command, reply } => {
                write!(f, "unexpected reply to {command}: {reply}")
            }
            Self::ConnectionClosed {
                awaiting: Some(command),
            } => write!(
                f,
                "the server closed the connection before answering {command}"
            ),
            Self::ConnectionClosed { awaiting: None } => {
                write!(f, "the server closed the connection before its greeting")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The server said no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The command the server refused (`Greeting` for a 554 greeting).
    pub command: CommandKind,
    /// The server's reply.
    pub reply: Reply,
}

impl Rejection {
    /// The reply code.
    pub fn code(&self) -> ReplyCode {
        self.reply.code()
    }

    /// The enhanced status code, when the server gave one.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.reply.enhanced()
    }

    /// The server's text.
    pub fn text(&self) -> String {
        self.reply.text()
    }

    /// A 4xx reply: the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        self.reply.is_transient()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server refused {}: {}", self.command, self.reply)
    }
}

impl std::error::Error for Rejection {}

/// The server lacks something this send requires.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsupported {
    /// STARTTLS was required but the server does not advertise it.
    StartTls,
    /// Credentials were given but the server offers no mechanism we speak.
    Auth {
        /// The mechanisms the server offered (empty: AUTH not advertised).
        offered: Vec<String>,
    },
    /// An address is internationalised but the server lacks SMTPUTF8 (RFC 6531).
    SmtpUtf8,
    /// The message is larger than the server's SIZE limit (RFC 1870).
    Size {
        /// The message size in bytes.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StartTls => write!(
                f,
                "the server does not offer STARTTLS, so the connection cannot be encrypted; \
                 nothing was sent (try implicit TLS on port 465)"
            ),
            Self::Auth { offered } if offered.is_empty() => write!(
                f,
                "credentials were given but the server does not offer AUTH on this connection"
            ),
            Self::Auth { offered } => write!(
                f,
                "the server offers AUTH {} but none of PLAIN, LOGIN",
                offered.join(" ")
            ),
            Self::SmtpUtf8 => write!(
                f,
                "an address contains non-ASCII characters but the server does not support SMTPUTF8"
            ),
            Self::Size { size, limit } => write!(
                f,
                "the message is {size} bytes but the server accepts at most {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for Unsupported {}

/// The caller used the engine in a way its state does not allow. Never caused
/// by data from the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiMisuse(pub &'static str);

impl fmt::Display for ApiMisuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "API misuse: {}", self.0)
    }
}

impl std::error::Error for ApiMisuse {}

/// Input refused before anything was sent: a bad address or EHLO name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidInput {
    /// What was being checked (`"sender address"`, `"EHLO name"`, ...).
    pub what: &'static str,
    /// The input, made printable.
    pub input: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: {}", self.what, self.input, self.reason)
    }
}

impl std::error::Error for InvalidInput {}

/// Why a session failed, as reported by [`crate::Session`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The server broke the protocol.
    Protocol(ProtocolError),
    /// The server refused a command.
    Rejected(Rejection),
    /// The server refused recipients, so nothing was sent: every one of them,
    /// or, under [`crate::RecipientPolicy::AllOrNone`], at least one.
    RecipientsRejected(Vec<crate::RecipientOutcome>),
    /// The server lacks something required.
    Unsupported(Unsupported),
    /// Credentials would have gone over an unencrypted connection.
    CredentialsWithoutTls,
    /// The caller used the session wrongly.
    ApiMisuse(ApiMisuse),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(error) => error.fmt(f),
            Self::Rejected(rejection) => rejection.fmt(f),
            Self::RecipientsRejected(outcomes) => {
                let refused: Vec<String> = outcomes
                    .iter()
                    .filter(|outcome| !outcome.accepted())
                    .map(|outcome| format!("<{}>: {}", outcome.address, outcome.reply))
                    .collect();
                write!(
                    f,
                    "nothing was sent: the server refused {}",
                    refused.join("; ")
                )
            }
            Self::Unsupported(unsupported) => unsupported.fmt(f),
            Self::CredentialsWithoutTls => write!(
                f,
                "refusing to send credentials over an unencrypted connection"
            ),
            Self::ApiMisuse(misuse) => misuse.fmt(f),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<ProtocolError> for SessionError {
    fn from(error: ProtocolError) -> Self {
        Self::Protocol(error)
    }
}

impl From<Unsupported> for SessionError {
    fn from(error: Unsupported) -> Self {
        Self::Unsupported(error)
    }
}

impl From<ApiMisuse> for SessionError {
    fn from(error: ApiMisuse) -> Self {
        Self::ApiMisuse(error)
    }
}
