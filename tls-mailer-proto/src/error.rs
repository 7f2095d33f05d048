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
    /// The server closed the connection while a reply was due, or while
    /// the session was idle.
    ConnectionClosed {
        /// The command whose reply never came ([`CommandKind::Greeting`] for
        /// the greeting); `None` when no reply was due (an idle connection).
        awaiting: Option<CommandKind>,
    },
    /// The server answered in TLS where a plaintext SMTP greeting was due:
    /// the port speaks implicit TLS.
    TlsWhereSmtpExpected,
    /// SCRAM: the server's signature is wrong, so it does not know the
    /// password (RFC 5802 5: not the server it claims to be).
    ScramServerNotVerified,
    /// SCRAM: the server asked for more PBKDF2 iterations than the client
    /// computes.
    ScramIterations {
        /// The most iterations the client accepts.
        limit: u32,
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
                awaiting: Some(CommandKind::Greeting),
            } => write!(f, "the server closed the connection before its greeting"),
            Self::ConnectionClosed {
                awaiting: Some(command),
            } => write!(
                f,
                "the server closed the connection before answering {command}"
            ),
            Self::ConnectionClosed { awaiting: None } => {
                write!(f, "the server closed the idle connection")
            }
            Self::TlsWhereSmtpExpected => write!(
                f,
                "the server answered with TLS where a plaintext SMTP greeting was due: \
                 this port speaks implicit TLS (use Security::ImplicitTls)"
            ),
            Self::ScramServerNotVerified => write!(
                f,
                "SCRAM-SHA-256: the server could not prove it knows the password \
                 (its signature is wrong); not logging in"
            ),
            Self::ScramIterations { limit } => write!(
                f,
                "SCRAM-SHA-256: the server asked for more than {limit} PBKDF2 iterations"
            ),
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

    /// The server refused the credentials, or requires them: any refusal of
    /// AUTH, and the codes RFC 4954 6 gives for it elsewhere (530
    /// authentication required, 534 mechanism too weak, 535 credentials
    /// invalid, 538 encryption required), or their enhanced codes (5.7.8,
    /// 5.7.9, 5.7.11, 4.7.12) on any command.
    pub fn is_authentication_failure(&self) -> bool {
        self.command == CommandKind::Auth
            || matches!(self.code().value(), 530 | 534 | 535 | 538)
            || self.enhanced().is_some_and(|code| {
                matches!(
                    (code.class, code.subject, code.detail),
                    (5, 7, 8) | (5, 7, 9) | (5, 7, 11) | (4, 7, 12)
                )
            })
    }

    /// A `421`: the server is closing the connection (RFC 5321 3.8).
    pub fn is_service_closing(&self) -> bool {
        self.code().value() == 421
    }

    /// The enhanced code is `class.subject.detail` (any class when
    /// `class` is `None`).
    fn enhanced_is(&self, class: Option<u8>, subject: u16, detail: Option<u16>) -> bool {
        self.enhanced().is_some_and(|code| {
            class.is_none_or(|class| code.class == class)
                && code.subject == subject
                && detail.is_none_or(|detail| code.detail == detail)
        })
    }

    /// A refusal for security or policy reasons: enhanced code `5.7.x`
    /// (RFC 3463 3.8), such as a sender the account may not use, a message
    /// judged spam, or a relay that cannot keep REQUIRETLS (`5.7.30`).
    ///
    /// ```
    /// use tls_mailer_proto::{CommandKind, Rejection, Reply, ReplyCode};
    /// let reply = Reply::new(ReplyCode::new(553).unwrap(), vec!["5.7.1 Sender not owned".into()]);
    /// let rejection = Rejection { command: CommandKind::MailFrom, reply };
    /// assert!(rejection.is_policy());
    /// assert!(!rejection.is_mailbox_full());
    /// ```
    pub fn is_policy(&self) -> bool {
        self.enhanced_is(Some(5), 7, None)
    }

    /// The recipient's mailbox is full: enhanced code `x.2.2` (RFC 3463
    /// 3.3); usually transient (`4.2.2`).
    pub fn is_mailbox_full(&self) -> bool {
        self.enhanced_is(None, 2, Some(2))
    }

    /// The mailbox does not exist: enhanced code `x.1.1` (RFC 3463 3.2).
    pub fn is_no_such_mailbox(&self) -> bool {
        self.enhanced_is(None, 1, Some(1))
    }

    /// The message is too big for the server or the mailbox: enhanced code
    /// `x.3.4` (system limit) or `x.2.3` (mailbox limit).
    pub fn is_message_too_big(&self) -> bool {
        self.enhanced_is(None, 3, Some(4)) || self.enhanced_is(None, 2, Some(3))
    }

    /// A relay on the way cannot keep the REQUIRETLS promise: enhanced code
    /// `5.7.30` (RFC 8689 5).
    pub fn is_requiretls_failure(&self) -> bool {
        self.enhanced_is(Some(5), 7, Some(30))
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
    /// An address, or the header section, is internationalised but the
    /// server lacks SMTPUTF8 (RFC 6531).
    SmtpUtf8 {
        /// The first address that needs it; `None` when only the header
        /// section does ([`crate::MailOptions::utf8_headers`]).
        address: Option<String>,
    },
    /// Delivery status notifications were asked for but the server does
    /// not offer DSN (RFC 3461), and they were not marked optional
    /// ([`crate::MailOptions::dsn_optional`]).
    Dsn,
    /// REQUIRETLS was asked for but the server does not offer it (RFC 8689).
    RequireTls,
    /// REQUIRETLS was asked for on a connection that is not encrypted.
    RequireTlsWithoutTls,
    /// The message has 8-bit bytes but the server lacks 8BITMIME (RFC 6152).
    EightBitMime,
    /// The body is binary ([`crate::BodyInfo::binary`]) but the server
    /// lacks BINARYMIME or CHUNKING (RFC 3030).
    BinaryMime,
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
                "the server offers AUTH {} but none that tls-mailer speaks (PLAIN, LOGIN, \
                 SCRAM-SHA-256, CRAM-MD5 with a password; OAUTHBEARER, XOAUTH2 with a token)",
                offered.join(" ")
            ),
            Self::SmtpUtf8 {
                address: Some(address),
            } => write!(
                f,
                "the address <{address}> contains non-ASCII characters but the server does not \
                 support SMTPUTF8 (RFC 6531); nothing was sent: use an ASCII address, or a \
                 server that offers SMTPUTF8"
            ),
            Self::SmtpUtf8 { address: None } => write!(
                f,
                "the message's header has non-ASCII addresses or text that need SMTPUTF8, but \
                 the server does not support it (RFC 6531); nothing was sent: encode the header \
                 as ASCII, or use a server that offers SMTPUTF8"
            ),
            Self::Dsn => write!(
                f,
                "delivery status notifications were asked for but the server does not offer DSN \
                 (RFC 3461); nothing was sent: send without them, or mark them optional"
            ),
            Self::RequireTls => write!(
                f,
                "REQUIRETLS was asked for but the server does not offer it (RFC 8689), so it \
                 cannot promise to relay the message over TLS only; nothing was sent"
            ),
            Self::RequireTlsWithoutTls => write!(
                f,
                "REQUIRETLS was asked for on a connection that is not encrypted; it is only \
                 sent over TLS (RFC 8689); nothing was sent"
            ),
            Self::EightBitMime => write!(
                f,
                "the message has 8-bit bytes but the server does not offer 8BITMIME (RFC 6152); \
                 nothing was sent: re-encode the message as 7-bit (quoted-printable or base64 \
                 parts), or send it to a server that offers 8BITMIME"
            ),
            Self::BinaryMime => write!(
                f,
                "the message is binary (it holds NUL bytes, or was declared binary) but the \
                 server does not offer BINARYMIME with CHUNKING (RFC 3030); nothing was sent: \
                 encode its binary parts as base64, or send it to a server that offers both"
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// `start_mail`, `noop` or `reset` while the session is not idle (wait
    /// for [`crate::Event::Ready`]).
    NotIdle,
    /// `write_body` or `finish_body` outside the body phase (wait for
    /// [`crate::Event::SendBody`]).
    NotInBody,
    /// `reset` while the body is being written (end it first).
    ResetDuringBody,
    /// `tls_established` without an [`crate::Event::UpgradeToTls`] pending.
    NoTlsUpgradePending,
    /// The session is quitting or closed: it takes no new command.
    Closed,
}

impl fmt::Display for ApiMisuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotIdle => {
                "API misuse: a mail, NOOP or RSET was started while the session was busy \
                 (wait for Event::Ready)"
            }
            Self::NotInBody => {
                "API misuse: message data was written outside the body phase \
                 (wait for Event::SendBody)"
            }
            Self::ResetDuringBody => "API misuse: RSET while the message body is being written",
            Self::NoTlsUpgradePending => {
                "API misuse: tls_established() without a pending Event::UpgradeToTls"
            }
            Self::Closed => "API misuse: the session is closed or quitting",
        })
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

/// Why a session, or one mail of it, failed, as reported by
/// [`crate::Session`].
///
/// Deliberately exhaustive: the drivers in `tls-mailer` classify every case
/// (transient or not, exit codes), and a new case must make them decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The server broke the protocol, or closed the connection early.
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
    /// Input the protocol cannot carry (a NUL in a PLAIN user name or
    /// password, RFC 4616).
    InvalidInput(InvalidInput),
    /// A deadline passed (RFC 5321 4.5.3.2 per phase, or the whole upload of
    /// the message body).
    Timeout {
        /// What the session was waiting for.
        phase: crate::Phase,
    },
    /// The server announced it is closing the connection (`421`) while no
    /// reply was due: an idle connection it no longer wants.
    ServiceClosing(Reply),
    /// The caller used the session wrongly.
    ApiMisuse(ApiMisuse),
}

impl SessionError {
    /// Trying again later may help: 4xx replies, a closed connection, a
    /// timeout. Not 5xx replies, missing extensions or bad input.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Protocol(ProtocolError::ConnectionClosed { .. }) => true,
            Self::Rejected(rejection) => rejection.is_transient(),
            Self::RecipientsRejected(outcomes) => outcomes
                .iter()
                .filter(|outcome| !outcome.accepted())
                .all(|outcome| outcome.reply.is_transient()),
            Self::Timeout { .. } | Self::ServiceClosing(_) => true,
            Self::Protocol(_)
            | Self::Unsupported(_)
            | Self::CredentialsWithoutTls
            | Self::InvalidInput(_)
            | Self::ApiMisuse(_) => false,
        }
    }
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
                // Under LMTP a recipient may be refused after the data.
                let after_data = outcomes
                    .iter()
                    .any(|outcome| outcome.command == crate::CommandKind::DataEnd);
                let nothing = if after_data { "delivered" } else { "sent" };
                write!(
                    f,
                    "nothing was {nothing}: the server refused {}",
                    refused.join("; ")
                )
            }
            Self::Unsupported(unsupported) => unsupported.fmt(f),
            Self::CredentialsWithoutTls => write!(
                f,
                "refusing to send credentials over an unencrypted connection"
            ),
            Self::InvalidInput(input) => input.fmt(f),
            Self::Timeout { phase } => write!(f, "timed out {}", phase.waiting_for()),
            Self::ServiceClosing(reply) => {
                write!(f, "the server closed the idle connection: {reply}")
            }
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

impl From<InvalidInput> for SessionError {
    fn from(error: InvalidInput) -> Self {
        Self::InvalidInput(error)
    }
}

impl From<ApiMisuse> for SessionError {
    fn from(error: ApiMisuse) -> Self {
        Self::ApiMisuse(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(code: u16, text: &str) -> Rejection {
        Rejection {
            command: CommandKind::RcptTo,
            reply: Reply::new(ReplyCode::new(code).unwrap(), vec![text.into()]),
        }
    }

    #[test]
    fn enhanced_status_classes() {
        let full = rejection(452, "4.2.2 Mailbox full");
        assert!(full.is_mailbox_full() && !full.is_policy());
        assert!(rejection(552, "5.2.2 Over quota").is_mailbox_full());
        assert!(rejection(550, "5.1.1 No such user").is_no_such_mailbox());
        assert!(rejection(552, "5.3.4 Too big").is_message_too_big());
        assert!(rejection(552, "5.2.3 Too big for the mailbox").is_message_too_big());
        let requiretls = rejection(550, "5.7.30 REQUIRETLS support required");
        assert!(requiretls.is_policy() && requiretls.is_requiretls_failure());
        assert!(rejection(554, "5.7.1 Spam").is_policy());
        // 4.7.x is a temporary policy refusal (greylisting), not a 5.7.x one.
        assert!(!rejection(450, "4.7.1 Try later").is_policy());
        // Without an enhanced code nothing is claimed.
        let bare = rejection(550, "mailbox full");
        assert!(!bare.is_mailbox_full() && !bare.is_policy() && !bare.is_no_such_mailbox());
    }
}
