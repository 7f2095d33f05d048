//! What a session tells its driver: events, phases, outcomes, trace lines.

use crate::body;
use crate::command::CommandKind;
use crate::error::{Rejection, SessionError};
use crate::reply::Reply;

/// Where the conversation is; each phase has its own deadline (RFC 5321 4.5.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for the `220` greeting.
    Greeting,
    /// Waiting for a reply to EHLO, STARTTLS, AUTH, RSET or NOOP.
    Command,
    /// The driver is doing a TLS handshake (implicit TLS, or after STARTTLS).
    TlsHandshake,
    /// Waiting for the reply to MAIL.
    MailFrom,
    /// Waiting for a reply to RCPT.
    RcptTo,
    /// Waiting for the `354` to DATA.
    DataInit,
    /// The message is being written, or a BDAT chunk's reply is due.
    DataBlock,
    /// Waiting for the reply after the whole message.
    DataEnd,
    /// Idle: the driver may start a mail, NOOP, RSET or quit.
    Ready,
    /// Waiting for the reply to QUIT.
    Quit,
    /// Nothing more will happen.
    Closed,
}

impl Phase {
    /// What the session waits for in this phase, for error messages
    /// ("timed out waiting for ...").
    pub fn waiting_for(self) -> &'static str {
        match self {
            Self::Greeting => {
                "waiting for the server's greeting (a port that expects implicit TLS, \
                 usually 465, says nothing until the TLS handshake: use implicit TLS there)"
            }
            Self::TlsHandshake => "during the TLS handshake",
            Self::MailFrom => "waiting for the reply to MAIL FROM",
            Self::RcptTo => "waiting for the reply to RCPT TO",
            Self::DataInit => "waiting for the reply to DATA",
            Self::DataBlock => "sending the message",
            Self::DataEnd => "waiting for the server to accept the message",
            Self::Quit => "waiting for the reply to QUIT",
            Self::Command | Self::Ready | Self::Closed => "waiting for the server's reply",
        }
    }
}

/// How the driver must send the message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyMode {
    /// After `354`: [`crate::Session::write_body`] dot-stuffs.
    Data,
    /// BDAT chunks (RFC 3030): [`crate::Session::write_body`] frames.
    Bdat,
}

/// Whether the session wants more of the body now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyDemand {
    /// Hand over the next piece ([`crate::Session::write_body`]) or the end
    /// ([`crate::Session::finish_body`]).
    More,
    /// Too many BDAT chunks await their replies: read first.
    Wait,
    /// The body is not wanted (any more): the server refused a chunk, or no
    /// body is being sent. Stop streaming; what happened is an event.
    Stop,
}

/// What the server said to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The recipient address.
    pub address: String,
    /// The reply that decided this recipient: the reply to its RCPT, or,
    /// under LMTP for a recipient whose RCPT was accepted, its own reply
    /// after the end of data (RFC 2033 4.2).
    pub reply: Reply,
    /// The command `reply` answers: [`CommandKind::RcptTo`], or
    /// [`CommandKind::DataEnd`] for LMTP's replies after the data. When an
    /// LMTP server broke off before a recipient's reply after the data, the
    /// session records a `451 4.4.2` of its own there (delivered or not is
    /// unknown: the same doubt as a connection lost after SMTP's final dot).
    pub command: CommandKind,
}

impl RecipientOutcome {
    /// The server accepted this recipient.
    pub fn accepted(&self) -> bool {
        self.reply.is_positive()
    }
}

/// A message the server accepted (under LMTP: for at least one recipient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The final reply (after the dot or `BDAT LAST`; under LMTP the first
    /// accepting one of the per-recipient replies).
    pub reply: Reply,
    /// One outcome per recipient, in envelope order; under LMTP a
    /// recipient refused after the data is among [`Delivery::rejected`].
    pub recipients: Vec<RecipientOutcome>,
}

impl Delivery {
    /// The queue id the server gave: Postfix's and most servers' `queued
    /// as ID`, or Exim's `OK id=ID`.
    ///
    /// ```
    /// # use tls_mailer_proto::{Delivery, Reply, ReplyCode};
    /// let delivery = |text: &str| Delivery {
    ///     reply: Reply::new(ReplyCode::new(250).unwrap(), vec![text.into()]),
    ///     recipients: Vec::new(),
    /// };
    /// assert_eq!(delivery("2.0.0 Ok: queued as 4Xbc1").queue_id().as_deref(), Some("4Xbc1"));
    /// assert_eq!(delivery("OK id=1tTw9r-000ABC-3d").queue_id().as_deref(), Some("1tTw9r-000ABC-3d"));
    /// assert_eq!(delivery("OK").queue_id(), None);
    /// ```
    pub fn queue_id(&self) -> Option<String> {
        let text = self.reply.text();
        let lower = text.to_ascii_lowercase();
        let start = match lower.find("queued as ") {
            Some(at) => at + "queued as ".len(),
            None => {
                let at = lower.find("ok id=")? + "ok id=".len();
                if at > "ok id=".len() && !lower[..at - "ok id=".len()].ends_with(' ') {
                    return None;
                }
                at
            }
        };
        let id: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
            .collect();
        let id = id.trim_end_matches('.');
        (!id.is_empty()).then(|| id.to_owned())
    }

    /// The recipients the server refused.
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientOutcome> {
        self.recipients.iter().filter(|outcome| !outcome.accepted())
    }
}

/// What the caller knows about the body before sending it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyInfo {
    /// The size in bytes on the wire (line endings normalised to CRLF), if
    /// known: declared with SIZE and checked against the server's limit
    /// before anything is sent.
    pub size: Option<u64>,
    /// Whether the body has bytes above 127. `None` (unknown) declares
    /// `BODY=8BITMIME` when the server offers it, which is always safe.
    pub eight_bit: Option<bool>,
    /// Whether the body is binary MIME content (RFC 3030) that must reach
    /// the server byte for byte: it then goes by BDAT with
    /// `BODY=BINARYMIME`, without line-ending normalisation (so `size` is
    /// its length as it is), and a server without BINARYMIME and CHUNKING
    /// refuses it before anything is sent ([`crate::Unsupported::BinaryMime`]).
    /// `false` (the default) is text: line ends normalised to CRLF.
    pub binary: bool,
}

impl BodyInfo {
    /// Size on the wire, 8-bit-ness and binary-ness of a message held in
    /// memory. A message with a NUL byte is binary: no text line (7-bit or
    /// 8BITMIME, RFC 6152 3) may hold one.
    ///
    /// ```
    /// use tls_mailer_proto::BodyInfo;
    /// // Bare LFs become CRLF on the wire, and SIZE counts them.
    /// assert_eq!(BodyInfo::of(b"Subject: x\n\nhi\n").size, Some(18));
    /// assert!(!BodyInfo::of(b"Subject: x\n\nhi\n").binary);
    /// // A binary body goes as it is.
    /// let binary = BodyInfo::of(b"Subject: x\r\n\r\n\x00\n");
    /// assert!(binary.binary);
    /// assert_eq!(binary.size, Some(16));
    /// ```
    pub fn of(message: &[u8]) -> Self {
        let binary = memchr::memchr(0, message).is_some();
        Self {
            size: Some(if binary {
                message.len() as u64
            } else {
                body::normalized_size(message)
            }),
            eight_bit: Some(!message.is_ascii()),
            binary,
        }
    }

    /// What the caller knows of a body it streams: its size on the wire, if
    /// known; a text body whose 8-bit-ness is not known.
    ///
    /// ```
    /// use tls_mailer_proto::BodyInfo;
    /// let info = BodyInfo::sized(Some(1024));
    /// assert_eq!((info.size, info.eight_bit, info.binary), (Some(1024), None, false));
    /// ```
    pub fn sized(size: Option<u64>) -> Self {
        Self {
            size,
            ..Self::default()
        }
    }
}

/// Something the driver must act on. Every variant says what to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Do a TLS handshake on the socket now (at the start in implicit TLS
    /// mode; after STARTTLS once the server's `220` came with no byte after
    /// it), then call [`crate::Session::tls_established`]. Nothing is read
    /// or written meanwhile.
    UpgradeToTls,
    /// The session is idle: greeted, EHLO, TLS and AUTH done, and every
    /// earlier mail, NOOP or RSET finished. Start a mail
    /// ([`crate::Session::start_mail`]), `noop`, `reset` or `quit`. Comes
    /// once after the opening and again after each of those.
    Ready,
    /// The recipients are in: stream the message with
    /// [`crate::Session::write_body`] and end it with
    /// [`crate::Session::finish_body`], while
    /// [`crate::Session::body_demand`] says so.
    SendBody(BodyMode),
    /// The server refused recipient `index` of the envelope. Informational:
    /// the mail goes on to the others unless the policy says otherwise.
    RecipientRejected {
        /// Index in the envelope's recipient list.
        index: usize,
        /// The server's refusal.
        rejection: Rejection,
    },
    /// The server accepted the message. [`Event::Ready`] follows unless the
    /// session is quitting.
    Accepted(Delivery),
    /// This mail failed (MAIL, every recipient, or the message refused);
    /// the connection stays usable and [`Event::Ready`] follows (after an
    /// RSET when one is needed) unless the session is quitting.
    MailFailed(SessionError),
    /// The connection failed; no mail in progress was accepted. Write what
    /// [`crate::Session::poll_transmit`] gives (a QUIT, when polite) and
    /// wait for [`Event::Closed`].
    Failed(SessionError),
    /// The conversation is over: close the connection.
    Closed,
}

/// A line of the conversation for logs; secrets already redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trace {
    /// A line the client sent (or a summary of the message body).
    Client(String),
    /// A line the server sent.
    Server(String),
}
