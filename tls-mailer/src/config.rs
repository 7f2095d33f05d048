//! How to connect: security mode, timeouts.

use std::time::Duration;

use tls_mailer_proto::Phase;

/// How the connection is protected. There is no mode that silently falls
/// back to plaintext.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// TLS from the first byte (RFC 8314), port 465 by default.
    #[default]
    ImplicitTls,
    /// Plaintext greeting, then STARTTLS is required (RFC 3207), port 587 by
    /// default. Fails before AUTH or MAIL if the server does not offer it.
    StartTls,
    /// Implicit TLS; only if the TCP connect or the TLS handshake fails, the
    /// STARTTLS port with STARTTLS required. Never plaintext.
    ImplicitTlsOrStartTls,
    /// No TLS at all. Refused unless every address of the host is loopback:
    /// for local tests only.
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
}

/// Deadlines per phase. Defaults follow RFC 5321 4.5.3.2, except the
/// greeting (60 s instead of 5 minutes) so that a wrong port or security
/// mode is reported quickly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, per address.
    pub connect: Duration,
    /// The TLS handshake.
    pub tls_handshake: Duration,
    /// The `220` greeting.
    pub greeting: Duration,
    /// EHLO, STARTTLS, AUTH, RSET, QUIT.
    pub command: Duration,
    /// The reply to MAIL.
    pub mail_from: Duration,
    /// The reply to each RCPT.
    pub rcpt_to: Duration,
    /// The `354` to DATA.
    pub data_init: Duration,
    /// Each write of the body, and each BDAT reply.
    pub data_block: Duration,
    /// The reply after the whole message.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            connect: Duration::from_secs(30),
            tls_handshake: Duration::from_secs(60),
            greeting: Duration::from_secs(60),
            command: minutes(5),
            mail_from: minutes(5),
            rcpt_to: minutes(5),
            data_init: minutes(2),
            data_block: minutes(3),
            data_end: minutes(10),
        }
    }
}

impl Timeouts {
    /// The same deadline for every phase.
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
        }
    }

    /// The deadline for a phase of the engine.
    pub fn for_phase(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Greeting => self.greeting,
            Phase::TlsHandshake => self.tls_handshake,
            Phase::MailFrom => self.mail_from,
            Phase::RcptTo => self.rcpt_to,
            Phase::DataInit => self.data_init,
            Phase::DataBlock => self.data_block,
            Phase::DataEnd => self.data_end,
            // The message is already accepted: a server slow to say goodbye
            // must not hold the caller for minutes.
            Phase::Quit => self.command.min(Duration::from_secs(10)),
            _ => self.command,
        }
    }
}
