//! What a session is told before it starts: the security mode, credentials,
//! policies and deadlines.

use std::time::Duration;

use crate::address::Domain;
use crate::reply::ReplyLimits;
use crate::sasl::{Credentials, Mechanism};
use crate::session::Phase;

/// How the connection is protected. There is no mode that silently falls
/// back to plaintext.
///
/// The same type says what the user asks for (`Client`, CLI) and, in a
/// report, what was used ([`Security::ImplicitTlsOrStartTls`] never appears
/// there: it resolves to one of the first two).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Security {
    /// TLS from the first byte (RFC 8314), port 465 by default.
    #[default]
    ImplicitTls,
    /// Plaintext greeting, then STARTTLS is required (RFC 3207), port 587 by
    /// default. Fails before AUTH or MAIL if the server does not offer it.
    StartTls,
    /// Implicit TLS; only when that port does not speak TLS at all
    /// (connection refused or reset, or a plaintext SMTP greeting), the
    /// STARTTLS port with STARTTLS required. A certificate failure is an
    /// error, never a reason to fall back. Never plaintext. A session given
    /// this mode speaks implicit TLS: falling back is a new connection.
    ImplicitTlsOrStartTls,
    /// No TLS at all. Drivers refuse it unless every address of the host is
    /// loopback: for local tests only.
    DangerousPlaintext,
}

impl Security {
    /// The port used when none is given.
    pub fn default_port(self) -> u16 {
        match self {
            Self::ImplicitTls | Self::ImplicitTlsOrStartTls => 465,
            Self::StartTls => 587,
            Self::DangerousPlaintext => 25,
        }
    }

    /// TLS is set up before the first SMTP byte.
    pub fn is_implicit_tls(self) -> bool {
        matches!(self, Self::ImplicitTls | Self::ImplicitTlsOrStartTls)
    }
}

/// Which protocol the session speaks.
///
/// ```
/// use tls_mailer_proto::{Domain, Protocol, Security, SessionConfig};
///
/// let mut config = SessionConfig::new(Domain::new("client.example").unwrap(), Security::StartTls);
/// assert_eq!(config.protocol, Protocol::Smtp);
/// config.protocol = Protocol::Lmtp;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// SMTP submission (RFC 5321, 6409): EHLO, one reply after the data.
    #[default]
    Smtp,
    /// LMTP (RFC 2033), to a local delivery agent: LHLO instead of EHLO (no
    /// HELO fallback), and after the end of data one reply per recipient
    /// the server accepted, in RCPT order. Each decides its recipient
    /// ([`crate::RecipientOutcome`]), so a mail may be delivered to some
    /// recipients and refused for others.
    Lmtp,
}

impl Protocol {
    /// The protocol's name, as users write it (`smtp`, `lmtp`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Smtp => "smtp",
            Self::Lmtp => "lmtp",
        }
    }
}

/// What to do when the server refuses some recipients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipientPolicy {
    /// Send to the recipients the server accepted; report the others.
    #[default]
    AcceptedOnly,
    /// Send nothing unless every recipient was accepted (the transaction is reset).
    AllOrNone,
}

/// Deadlines, each started by the engine from the `now` it is given.
/// Defaults follow RFC 5321 4.5.3.2 for replies once the session is open;
/// the TLS handshake and the greeting get 20 s each, so that a server that
/// accepts the connection and says nothing (or a wrong port or security
/// mode) is reported in well under 30 s.
///
/// ```
/// use std::time::Duration;
/// use tls_mailer_proto::{Phase, Timeouts};
///
/// let mut timeouts = Timeouts::default();
/// timeouts.data_end = Duration::from_secs(60);
/// timeouts.message = Some(Duration::from_secs(300));
/// assert_eq!(timeouts.for_phase(Phase::DataEnd), Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// TCP connect, per address (used by drivers before a session exists).
    pub connect: Duration,
    /// Each TLS handshake (implicit, or after STARTTLS).
    pub tls_handshake: Duration,
    /// The `220` greeting.
    pub greeting: Duration,
    /// EHLO, STARTTLS, AUTH, RSET, NOOP.
    pub command: Duration,
    /// The reply to MAIL.
    pub mail_from: Duration,
    /// The reply to each RCPT.
    pub rcpt_to: Duration,
    /// The `354` to DATA.
    pub data_init: Duration,
    /// Each BDAT chunk's reply, and the base allowance of the body upload.
    pub data_block: Duration,
    /// The reply after the whole message.
    pub data_end: Duration,
    /// The reply to QUIT: short, since the mail is already accepted.
    pub quit: Duration,
    /// The slowest upload accepted, in bytes per second: by any moment of the
    /// upload, the body handed over so far must have taken at most
    /// `data_block` plus its size at this rate. A server that drains a few
    /// bytes per socket timeout cannot stretch the upload for ever.
    pub min_upload_rate: u64,
    /// An optional bound on one whole mail, from `start_mail` to its final reply.
    pub message: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            connect: Duration::from_secs(15),
            tls_handshake: Duration::from_secs(20),
            greeting: Duration::from_secs(20),
            command: minutes(5),
            mail_from: minutes(5),
            rcpt_to: minutes(5),
            data_init: minutes(2),
            data_block: minutes(3),
            data_end: minutes(10),
            quit: Duration::from_secs(10),
            min_upload_rate: 8 * 1024,
            message: None,
        }
    }
}

impl Timeouts {
    /// The same deadline for every wait (connect, handshake, each reply, the
    /// body's base allowance); QUIT keeps at most its default.
    pub fn uniform(timeout: Duration) -> Self {
        Self {
            connect: timeout,
            tls_handshake: timeout,
            greeting: timeout,
            command: timeout,
            mail_from: timeout,
            rcpt_to: timeout,
            data_init: timeout,
            data_block: timeout,
            data_end: timeout,
            quit: timeout.min(Self::default().quit),
            ..Self::default()
        }
    }

    /// The deadline for a reply awaited in `phase`.
    pub fn for_phase(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Greeting => self.greeting,
            Phase::TlsHandshake => self.tls_handshake,
            Phase::MailFrom => self.mail_from,
            Phase::RcptTo => self.rcpt_to,
            Phase::DataInit => self.data_init,
            Phase::DataBlock => self.data_block,
            Phase::DataEnd => self.data_end,
            Phase::Quit => self.quit,
            Phase::Command | Phase::Ready | Phase::Closed => self.command,
        }
    }

    /// How long handing over a body of `bytes` may take in all.
    pub fn upload_allowance(&self, bytes: u64) -> Duration {
        let rate = self.min_upload_rate.max(1);
        self.data_block
            .saturating_add(Duration::from_secs(bytes / rate))
    }
}

/// Settings of one session. Build with [`SessionConfig::new`], then change
/// fields; more may be added.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// SMTP (the default) or LMTP.
    pub protocol: Protocol,
    /// The name given in EHLO (LHLO under LMTP).
    pub ehlo_name: Domain,
    /// Credentials for AUTH, if any.
    pub credentials: Option<Credentials>,
    /// The AUTH mechanisms to use, best first (default: PLAIN, then LOGIN).
    pub auth_mechanisms: Vec<Mechanism>,
    /// How the connection is protected.
    pub security: Security,
    /// Allow AUTH without TLS. Drivers set it only for loopback targets in
    /// dangerous plaintext mode.
    pub allow_plaintext_auth: bool,
    /// What to do with refused recipients.
    pub recipient_policy: RecipientPolicy,
    /// Bounds on the server's replies.
    pub reply_limits: ReplyLimits,
    /// Use PIPELINING when offered.
    pub use_pipelining: bool,
    /// Use CHUNKING (BDAT) when offered.
    pub use_chunking: bool,
    /// Most BDAT chunks written before their replies are in (with PIPELINING;
    /// one otherwise). Keeps a blocking driver from writing without end while
    /// the server waits for its replies to be read.
    pub max_chunks_in_flight: usize,
    /// Most mails whose end of data is written before their outcome is in
    /// (with PIPELINING: the next mail's commands may go before the last
    /// one's final reply; one at a time otherwise). Bounds what the server
    /// buffers and what a broken connection leaves undecided.
    pub max_mails_in_flight: usize,
    /// Every deadline.
    pub timeouts: Timeouts,
    /// A fresh random nonce for SCRAM (printable ASCII, no comma; 24 bytes
    /// of randomness in base64 will do). The engine has no random source:
    /// without a nonce it does not use SCRAM-SHA-256.
    pub sasl_nonce: Option<String>,
    /// Record [`crate::Trace`] lines.
    pub trace: bool,
}

impl SessionConfig {
    /// Defaults: SMTP, no credentials, accept partial recipient lists, pipelining and
    /// chunking on, default deadlines, no trace.
    pub fn new(ehlo_name: Domain, security: Security) -> Self {
        Self {
            protocol: Protocol::Smtp,
            ehlo_name,
            credentials: None,
            auth_mechanisms: Mechanism::ALL.to_vec(),
            security,
            allow_plaintext_auth: false,
            recipient_policy: RecipientPolicy::AcceptedOnly,
            reply_limits: ReplyLimits::default(),
            use_pipelining: true,
            use_chunking: true,
            max_chunks_in_flight: 8,
            max_mails_in_flight: 8,
            timeouts: Timeouts::default(),
            sasl_nonce: None,
            trace: false,
        }
    }
}
