//! The SMTP client state machine for one connection, serving any number of
//! mails. It never touches a socket, a clock or TLS:
//!
//! - inputs: [`Session::handle_input`] (the server's bytes, with `now`),
//!   [`Session::handle_eof`], [`Session::handle_timeout`];
//! - outputs: [`Session::poll_transmit`] (bytes to write),
//!   [`Session::poll_event`] (what happened, what to do),
//!   [`Session::poll_timeout`] (the one deadline to arm),
//!   [`Session::wants_read`];
//! - commands: [`Session::start_mail`], [`Session::write_body`],
//!   [`Session::finish_body`], [`Session::noop`], [`Session::reset`],
//!   [`Session::quit`], [`Session::tls_established`].
//!
//! Time is a parameter: every call that can start a wait takes `now`, and
//! the session computes each deadline (RFC 5321 4.5.3.2 per phase, the whole
//! body upload, an optional bound per mail) from it.

mod auth;
mod config;
mod event;
mod transaction;

use std::collections::VecDeque;
use std::time::Instant;

use zeroize::Zeroize;

use crate::address::Envelope;
use crate::capabilities::Capabilities;
use crate::command::{BodyType, Command, CommandKind, MailParameters, RcptParameters};
use crate::error::{ApiMisuse, ProtocolError, Rejection, SessionError, Unsupported};
use crate::options::{Dsn, MailOptions};
use crate::pipeline::{Expect, PendingReplies};
use crate::reply::{Reply, ReplyParser};
use crate::sniff::{self, FirstBytes};

pub use config::{Protocol, RecipientPolicy, Security, SessionConfig, Timeouts};
pub use event::{BodyDemand, BodyInfo, BodyMode, Delivery, Event, Phase, RecipientOutcome, Trace};
use transaction::{BodyEncoder, BodyStart, Transaction};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The driver is doing a TLS handshake.
    TlsHandshake,
    /// Greeting, EHLO, STARTTLS, AUTH in progress.
    Opening,
    /// Idle.
    Ready,
    /// A NOOP or RSET outside a mail is in flight.
    Command,
    /// Mails are in flight: the open one's commands are written and
    /// replies are coming, or only finished mails await their replies.
    Transaction,
    /// The driver is writing the open mail's body.
    Body,
    /// QUIT is queued or written; replies to earlier commands are read and
    /// dropped.
    Closing,
    Closed,
}

/// The SMTP client engine for one connection.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tls_mailer_proto::{Domain, Event, Security, Session, SessionConfig};
///
/// let config = SessionConfig::new(Domain::new("client.example.org").unwrap(), Security::StartTls);
/// let start = Instant::now();
/// let mut session = Session::new(config, start);
/// let mut wire = Vec::new();
///
/// // The greeting deadline is the engine's: 20 s by default.
/// assert_eq!(session.poll_timeout(), Some(start + Duration::from_secs(20)));
/// session.handle_input(start, b"220 mx.example.org ESMTP\r\n");
/// assert!(session.poll_transmit(&mut wire));
/// assert_eq!(wire, b"EHLO client.example.org\r\n");
///
/// // No STARTTLS offered: the session fails before anything else is sent.
/// session.handle_input(start, b"250 mx.example.org\r\n");
/// assert!(matches!(session.poll_event(), Some(Event::Failed(_))));
/// ```
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    parser: ReplyParser,
    pending: PendingReplies,
    state: State,
    tls_active: bool,
    /// QUIT is queued behind the mail in flight.
    quitting: bool,
    capabilities: Option<Capabilities>,
    /// The mail whose body is not complete yet.
    transaction: Option<Transaction>,
    /// Mails whose end of data is written, oldest first: their replies
    /// come before the open mail's.
    finished: VecDeque<Transaction>,
    /// A failed mail left the server holding its transaction: the next
    /// mail starts with RSET, in the same write.
    reset_owed: bool,
    /// The SCRAM exchange in progress, if any.
    scram: Option<crate::scram::ScramClient>,
    /// The TLS 1.3 exporter for channel binding (RFC 9266), once the
    /// driver gave it.
    channel_binding: Option<[u8; 32]>,
    /// The server said `421` to a mail's command while mails were in
    /// flight: no new mail starts, the replies already on their way still
    /// decide the mails they answer, and the session closes once none is
    /// left (or at the end of the stream).
    server_closing: Option<Reply>,
    transmit: Vec<u8>,
    events: VecDeque<Event>,
    trace: VecDeque<Trace>,
    /// When the wait for the reply at the front began: the last reply, or
    /// the command queued when nothing was due.
    waiting_since: Instant,
    /// When the current TLS handshake was asked for.
    handshake_started: Instant,
    /// Whether any byte came from the server yet.
    heard_from_server: bool,
}

impl Session {
    /// A session on a connection opened at `now`. In implicit TLS mode it
    /// first asks for the handshake ([`Event::UpgradeToTls`]); otherwise it
    /// waits for the greeting.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let mut session = Self {
            parser: ReplyParser::with_limits(config.reply_limits),
            pending: PendingReplies::default(),
            state: State::Opening,
            tls_active: false,
            quitting: false,
            capabilities: None,
            transaction: None,
            finished: VecDeque::new(),
            reset_owed: false,
            server_closing: None,
            scram: None,
            channel_binding: None,
            transmit: Vec::new(),
            events: VecDeque::new(),
            trace: VecDeque::new(),
            waiting_since: now,
            handshake_started: now,
            heard_from_server: false,
            config,
        };
        if session.config.security.is_implicit_tls() {
            session.state = State::TlsHandshake;
            session.events.push_back(Event::UpgradeToTls);
        } else {
            session.pending.expect(Expect::Greeting);
        }
        session
    }

    /// Bytes received from the server at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if matches!(self.state, State::Closed | State::TlsHandshake) || bytes.is_empty() {
            return;
        }
        if !self.heard_from_server {
            self.heard_from_server = true;
            if sniff::classify(bytes) == FirstBytes::Tls {
                self.fail_connection(ProtocolError::TlsWhereSmtpExpected.into());
                return;
            }
        }
        self.parser.feed(bytes);
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    self.waiting_since = now;
                    self.trace_reply(&reply);
                    if let Err(error) = self.handle_reply(now, reply) {
                        self.fail_connection(error);
                    }
                    if matches!(self.state, State::Closed | State::TlsHandshake) {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    self.fail_connection(error.into());
                    return;
                }
            }
        }
    }

    /// The server closed the connection (end of stream).
    pub fn handle_eof(&mut self) {
        match self.state {
            State::Closed => {}
            State::Closing => self.close(),
            _ if self.server_closing.is_some() => {
                // The mail whose command got the 421 has its outcome; the
                // others in flight end with the connection.
                self.report_decided_failure();
                self.end_after_server_closing();
            }
            _ => {
                self.report_decided_failure();
                let awaiting = self.pending.front().map(Expect::command);
                self.events.push_back(Event::Failed(
                    ProtocolError::ConnectionClosed { awaiting }.into(),
                ));
                self.close();
            }
        }
    }

    /// Time passed: if the deadline of [`Session::poll_timeout`] is reached
    /// at `now`, the session fails with [`SessionError::Timeout`] and closes
    /// (while quitting, it just closes). Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.state != State::Closing {
            self.report_decided_failure();
            let phase = self.phase();
            self.events
                .push_back(Event::Failed(SessionError::Timeout { phase }));
        }
        self.close();
    }

    /// The TLS handshake the session asked for succeeded at `now`. After
    /// STARTTLS it says EHLO again and forgets everything learnt before
    /// (RFC 3207 4.2); in implicit TLS mode it waits for the greeting.
    pub fn tls_established(&mut self, now: Instant) -> Result<(), ApiMisuse> {
        if self.state != State::TlsHandshake {
            return Err(ApiMisuse::NoTlsUpgradePending);
        }
        self.state = State::Opening;
        self.waiting_since = now;
        self.tls_active = true;
        if self.heard_from_server {
            // After STARTTLS.
            self.capabilities = None;
            self.send_hello();
        } else {
            // Implicit TLS: the greeting comes inside the TLS session.
            self.pending.expect(Expect::Greeting);
        }
        Ok(())
    }

    /// Appends the bytes to write to `out`; true when there are any.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let mut commands = std::mem::take(&mut self.transmit);
        self.encode_sendable(&mut commands);
        self.transmit = commands;
        let any = !self.transmit.is_empty();
        out.extend_from_slice(&self.transmit);
        // AUTH lines carry secrets: leave no copy behind.
        self.transmit.zeroize();
        any
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next trace line, if tracing is on.
    #[must_use]
    pub fn poll_trace(&mut self) -> Option<Trace> {
        self.trace.pop_front()
    }

    /// The one deadline the driver must arm: when it passes, call
    /// [`Session::handle_timeout`]. `None` while nothing is awaited (idle, or
    /// closed).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeouts = &self.config.timeouts;
        match self.state {
            State::Closed => return None,
            State::TlsHandshake => {
                return Some(self.handshake_started + timeouts.tls_handshake);
            }
            _ => {}
        }
        let reply = self
            .pending
            .front()
            .map(|expect| self.waiting_since + timeouts.for_phase(phase_of(expect)));
        let transaction = self.transaction.as_ref();
        let body = transaction
            .filter(|_| self.state == State::Body)
            .and_then(Transaction::body_deadline);
        let mail = transaction
            .into_iter()
            .chain(&self.finished)
            .filter_map(|transaction| transaction.deadline)
            .min();
        [reply, body, mail].into_iter().flatten().min()
    }

    /// A reply is due: the driver should read (until the deadline).
    #[must_use]
    pub fn wants_read(&self) -> bool {
        self.pending.is_waiting() && !matches!(self.state, State::Closed | State::TlsHandshake)
    }

    /// Idle: [`Session::start_mail`], [`Session::noop`] and
    /// [`Session::reset`] may be called now.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.state == State::Ready && !self.quitting
    }

    /// Whether [`Session::start_mail`] may be called now: when idle, and,
    /// with PIPELINING, as soon as the mail before has its end of data
    /// written (RFC 2920: transactions pipelined, up to
    /// [`SessionConfig::max_mails_in_flight`] awaiting their outcome).
    /// Outcomes ([`Event::Accepted`], [`Event::MailFailed`]) come in the
    /// order the mails were started.
    #[must_use]
    pub fn can_start_mail(&self) -> bool {
        match self.state {
            _ if self.quitting || self.server_closing.is_some() => false,
            State::Ready => true,
            State::Transaction => {
                self.transaction.is_none()
                    && self.pipelining()
                    && self.finished.len() < self.config.max_mails_in_flight.max(1)
            }
            _ => false,
        }
    }

    /// Mails started whose outcome is not reported yet.
    #[must_use]
    pub fn mails_in_flight(&self) -> usize {
        self.finished.len() + usize::from(self.transaction.is_some())
    }

    /// Closed, or quitting: no mail can be sent on this connection any more.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closing | State::Closed)
            || self.quitting
            || self.server_closing.is_some()
    }

    /// The capabilities from the last EHLO.
    #[must_use]
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// Gives the session the TLS session's channel binding: the 32 bytes
    /// of the TLS 1.3 exporter with the label `EXPORTER-Channel-Binding` and
    /// no context (RFC 9266). Call it after the handshake, before
    /// [`Session::tls_established`]; not over TLS 1.2. With it,
    /// SCRAM-SHA-256-PLUS is spoken where offered and allowed
    /// ([`crate::Mechanism::ScramSha256Plus`]), and plain SCRAM tells the
    /// server the client could have bound (so a stripped `-PLUS` shows).
    pub fn set_channel_binding(&mut self, tls_exporter: [u8; 32]) {
        self.channel_binding = Some(tls_exporter);
    }

    /// The TLS layer is up (implicit, or after STARTTLS).
    #[must_use]
    pub fn is_encrypted(&self) -> bool {
        self.tls_active
    }

    /// The security mode the session was configured with.
    #[must_use]
    pub fn security(&self) -> Security {
        self.config.security
    }

    /// Where the conversation is.
    #[must_use]
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Closed => Phase::Closed,
            State::TlsHandshake => Phase::TlsHandshake,
            State::Body => Phase::DataBlock,
            State::Ready if self.pending.front().is_none() => Phase::Ready,
            _ => self.pending.front().map_or(Phase::Command, phase_of),
        }
    }

    /// Starts a mail at `now`: MAIL FROM and one RCPT TO per recipient
    /// (pipelined when the server allows). Checks SIZE, SMTPUTF8 and
    /// 8BITMIME first, so a message the server cannot take is refused before
    /// anything is sent (the session stays idle then). The same as
    /// [`Session::start_mail_with`] without options.
    pub fn start_mail(
        &mut self,
        now: Instant,
        envelope: Envelope,
        body: BodyInfo,
    ) -> Result<(), SessionError> {
        self.start_mail_with(now, envelope, body, &MailOptions::default())
    }

    /// Starts a mail at `now` with [`MailOptions`]: DSN parameters on MAIL
    /// (`RET`, `ENVID`) and on each RCPT (`NOTIFY`, `ORCPT`), `REQUIRETLS`,
    /// `SMTPUTF8` for the header section.
    ///
    /// Everything is checked against the server's EHLO before anything is
    /// sent, and a refusal leaves the session idle:
    /// [`Unsupported::RequireTlsWithoutTls`] on a connection that is not
    /// encrypted, [`Unsupported::RequireTls`], [`Unsupported::Dsn`] (unless
    /// DSN is optional: then the mail goes without its parameters),
    /// [`Unsupported::EightBitMime`] for a body known to be 8-bit,
    /// [`Unsupported::SmtpUtf8`] naming the address, [`Unsupported::Size`].
    pub fn start_mail_with(
        &mut self,
        now: Instant,
        envelope: Envelope,
        body: BodyInfo,
        options: &MailOptions,
    ) -> Result<(), SessionError> {
        if !self.can_start_mail() {
            self.check_idle()?;
        }
        let capabilities = self.capabilities.clone().unwrap_or_default();
        if options.require_tls {
            if !self.tls_active {
                return Err(Unsupported::RequireTlsWithoutTls.into());
            }
            if !capabilities.requiretls {
                return Err(Unsupported::RequireTls.into());
            }
        }
        let dsn = match &options.dsn {
            Some(dsn) if options.wants_dsn() => {
                if capabilities.dsn {
                    Some(dsn)
                } else if options.dsn_optional {
                    None
                } else {
                    return Err(Unsupported::Dsn.into());
                }
            }
            _ => None,
        };
        if body.binary && !(capabilities.binary_mime && self.chunking()) {
            return Err(Unsupported::BinaryMime.into());
        }
        if body.eight_bit == Some(true) && !body.binary && !capabilities.eight_bit_mime {
            return Err(Unsupported::EightBitMime.into());
        }
        let utf8_address = envelope.first_needing_smtputf8();
        let smtputf8 = utf8_address.is_some() || options.utf8_headers;
        if smtputf8 && !capabilities.smtputf8 {
            return Err(Unsupported::SmtpUtf8 {
                address: utf8_address.map(str::to_owned),
            }
            .into());
        }
        if let (Some(size), Some(limit)) = (body.size, capabilities.size_limit())
            && size > limit
        {
            return Err(Unsupported::Size { size, limit }.into());
        }
        let parameters = MailParameters {
            size: body.size.filter(|_| capabilities.size.is_some()),
            body: if body.binary {
                Some(BodyType::BinaryMime)
            } else if capabilities.eight_bit_mime && body.eight_bit != Some(false) {
                Some(BodyType::EightBitMime)
            } else {
                None
            },
            smtputf8,
            ret: dsn.and_then(Dsn::ret_value),
            envid: dsn.and_then(Dsn::envid_xtext).map(str::to_owned),
            requiretls: options.require_tls,
        };
        let accepted_only = self.config.recipient_policy == RecipientPolicy::AcceptedOnly;
        let body_start = match (self.pipelining() && accepted_only, self.chunking()) {
            (true, true) => BodyStart::PipelinedBdat,
            (true, false) => BodyStart::PipelinedData,
            (false, _) => BodyStart::AfterRecipients,
        };
        self.touch(now);
        // Behind a BDAT mail whose outcome is not in yet, RSET first: if
        // that mail fails, the server may still hold its transaction.
        let behind_bdat = self
            .finished
            .back()
            .is_some_and(|mail| mail.mode() == Some(BodyMode::Bdat));
        if std::mem::take(&mut self.reset_owed) || behind_bdat {
            self.send(Command::Rset, Expect::Rset);
        }
        self.pending.queue(
            Command::MailFrom(envelope.sender().clone(), parameters),
            Expect::MailFrom,
        );
        for (index, recipient) in envelope.recipients().iter().enumerate() {
            let (notify, orcpt) = dsn
                .map(|dsn| dsn.for_recipient(recipient))
                .unwrap_or_default();
            let parameters = RcptParameters { notify, orcpt };
            self.pending.queue(
                Command::RcptTo(recipient.clone(), parameters),
                Expect::RcptTo(index),
            );
        }
        if body_start == BodyStart::PipelinedData {
            self.pending.queue(Command::Data, Expect::Data);
        }
        let timeouts = self.config.timeouts;
        let mut transaction = Transaction::new(
            envelope,
            body_start,
            timeouts,
            timeouts.message.map(|limit| now + limit),
            self.config.protocol == Protocol::Lmtp,
        );
        // A binary body needs CHUNKING (checked above), so it goes by BDAT.
        transaction.binary = body.binary;
        self.state = State::Transaction;
        if body_start == BodyStart::PipelinedBdat {
            let framer = transaction.bdat_framer();
            let mode = transaction.start_body(BodyEncoder::Bdat(framer), now);
            self.state = State::Body;
            self.events.push_back(Event::SendBody(mode));
        }
        self.transaction = Some(transaction);
        Ok(())
    }

    /// Whether the session wants more of the body now.
    #[must_use]
    pub fn body_demand(&self) -> BodyDemand {
        if self.state != State::Body {
            return BodyDemand::Stop;
        }
        let Some(transaction) = self.transaction.as_ref() else {
            return BodyDemand::Stop;
        };
        // Until the recipients are known one frame may go ahead of them.
        let limit = if !self.pipelining() || !transaction.recipients_known() {
            1
        } else {
            self.config.max_chunks_in_flight.max(1)
        };
        match transaction.mode() {
            Some(BodyMode::Bdat) if transaction.chunks_in_flight >= limit => BodyDemand::Wait,
            Some(_) => BodyDemand::More,
            None => BodyDemand::Stop,
        }
    }

    /// Encodes a piece of the message into `out`: dot-stuffed for DATA; for
    /// BDAT the piece is held back and the one before it is framed, so the
    /// last frame carries `LAST` itself.
    pub fn write_body(
        &mut self,
        now: Instant,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ApiMisuse> {
        if self.state != State::Body {
            return Err(ApiMisuse::NotInBody);
        }
        // Commands not written yet (MAIL and RCPT, when BDAT follows them
        // in the same group) go first.
        self.encode_sendable(out);
        let idle = self.pending.is_idle();
        let Some(transaction) = self.transaction.as_mut() else {
            return Err(ApiMisuse::NotInBody);
        };
        transaction.body_bytes += chunk.len() as u64;
        match &mut transaction.body {
            Some(BodyEncoder::Data(stuffer)) => stuffer.encode(chunk, out),
            Some(BodyEncoder::Bdat(framer)) => {
                if let Some(size) = framer.encode(chunk, out) {
                    if idle {
                        self.waiting_since = now;
                    }
                    transaction.frame_written();
                    self.pending.expect(Expect::Bdat);
                    if self.config.trace {
                        self.trace
                            .push_back(Trace::Client(format!("BDAT {size} <data>")));
                    }
                }
            }
            None => return Err(ApiMisuse::NotInBody),
        }
        Ok(())
    }

    /// Ends the message into `out`: `CRLF.CRLF` for DATA, or the held piece
    /// as `BDAT n LAST`.
    pub fn finish_body(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<(), ApiMisuse> {
        if self.state != State::Body {
            return Err(ApiMisuse::NotInBody);
        }
        self.encode_sendable(out);
        self.touch(now);
        let Some(transaction) = self.transaction.as_mut() else {
            return Err(ApiMisuse::NotInBody);
        };
        let summary = match &mut transaction.body {
            Some(BodyEncoder::Data(stuffer)) => {
                stuffer.finish(out);
                format!("<message: {} bytes>", transaction.body_bytes)
            }
            Some(BodyEncoder::Bdat(framer)) => {
                let size = framer.finish(out);
                format!(
                    "BDAT {size} LAST <data; message: {} bytes>",
                    transaction.body_bytes
                )
            }
            None => return Err(ApiMisuse::NotInBody),
        };
        if self.config.trace {
            self.trace.push_back(Trace::Client(summary));
        }
        self.pending.expect(Expect::DataEnd);
        self.state = State::Transaction;
        if let Some(transaction) = self.transaction.take() {
            self.finished.push_back(transaction);
        }
        Ok(())
    }

    /// Asks the server whether it is still there (NOOP) at `now`;
    /// [`Event::Ready`] follows its reply.
    pub fn noop(&mut self, now: Instant) -> Result<(), ApiMisuse> {
        self.check_idle()?;
        self.touch(now);
        self.send(Command::Noop, Expect::Noop);
        self.state = State::Command;
        Ok(())
    }

    /// Resets at `now` (RSET): from idle, or to abandon a mail whose body
    /// has not reached the wire while no other mail is in flight (its
    /// replies are then read and dropped, and no event reports it).
    /// [`Event::Ready`] follows the reply.
    pub fn reset(&mut self, now: Instant) -> Result<(), ApiMisuse> {
        match self.state {
            State::Ready if !self.quitting => {}
            State::Transaction | State::Body
                if !self.quitting && self.finished.is_empty() && self.body_not_started() =>
            {
                self.abandon_open_mail();
            }
            State::Body => return Err(ApiMisuse::ResetDuringBody),
            State::Closing | State::Closed => return Err(ApiMisuse::Closed),
            _ => return Err(ApiMisuse::NotIdle),
        }
        self.reset_owed = false;
        self.touch(now);
        self.send(Command::Rset, Expect::Rset);
        self.state = State::Command;
        Ok(())
    }

    /// Ends the conversation politely at `now`: QUIT, then [`Event::Closed`]
    /// after its reply. Behind mails whose body is complete, QUIT is queued
    /// so it can travel in the same write (RFC 2920) and their outcomes are
    /// still reported. A mail whose body has not reached the wire is
    /// abandoned. In the middle of a body, or during a TLS handshake,
    /// nothing can be said safely: the session closes at once (the server
    /// discards a message cut off).
    pub fn quit(&mut self, now: Instant) {
        let open_unsent = self.body_not_started();
        let outcomes_due =
            !self.finished.is_empty() || (self.transaction.is_some() && !open_unsent);
        match self.state {
            State::Closed | State::Closing => {}
            _ if self.quitting => {}
            State::TlsHandshake => self.close(),
            State::Body if !open_unsent => self.close(),
            State::Transaction | State::Body if outcomes_due => {
                if open_unsent {
                    self.abandon_open_mail();
                }
                self.touch(now);
                self.quitting = true;
                self.send(Command::Quit, Expect::Quit);
            }
            _ => {
                self.abandon_open_mail();
                self.touch(now);
                self.state = State::Closing;
                self.send(Command::Quit, Expect::Quit);
            }
        }
    }

    /// Encodes the commands that may be written now into `out`.
    fn encode_sendable(&mut self, out: &mut Vec<u8>) {
        let pipelining = self.pipelining();
        for command in self.pending.take_sendable(pipelining) {
            if self.config.trace {
                self.trace.push_back(Trace::Client(command.redacted()));
            }
            command.encode(out);
        }
    }

    fn check_idle(&self) -> Result<(), ApiMisuse> {
        if self.is_closed() {
            Err(ApiMisuse::Closed)
        } else if self.state != State::Ready {
            Err(ApiMisuse::NotIdle)
        } else {
            Ok(())
        }
    }

    /// The open mail has no body byte on the wire.
    fn body_not_started(&self) -> bool {
        self.transaction
            .as_ref()
            .is_some_and(|transaction| !transaction.body_on_wire())
    }

    /// Gives up the open mail: its commands not written are dropped, the
    /// replies to those written are read and dropped, and no event reports
    /// it (not even a pending [`Event::SendBody`]).
    fn abandon_open_mail(&mut self) {
        if self.transaction.take().is_some() {
            self.pending.drop_queued();
            self.events
                .retain(|event| !matches!(event, Event::SendBody(_)));
            if self.state == State::Body {
                self.state = State::Transaction;
            }
        } else {
            self.pending.drop_queued();
        }
    }

    /// A command is about to be queued at `now`: if nothing was awaited, the
    /// wait for its reply starts now.
    fn touch(&mut self, now: Instant) {
        if self.pending.is_idle() {
            self.waiting_since = now;
        }
    }

    fn pipelining(&self) -> bool {
        self.config.use_pipelining
            && self
                .capabilities
                .as_ref()
                .is_some_and(|capabilities| capabilities.pipelining)
    }

    fn chunking(&self) -> bool {
        self.config.use_chunking
            && self
                .capabilities
                .as_ref()
                .is_some_and(|capabilities| capabilities.chunking)
    }

    fn send(&mut self, command: Command, expect: Expect) {
        self.pending.queue(command, expect);
    }

    fn trace_reply(&mut self, reply: &Reply) {
        if !self.config.trace {
            return;
        }
        let count = reply.lines().len();
        for (index, line) in reply.lines().iter().enumerate() {
            let separator = if index + 1 == count { ' ' } else { '-' };
            self.trace
                .push_back(Trace::Server(format!("{}{separator}{line}", reply.code())));
        }
    }

    fn close(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.quitting = false;
            self.server_closing = None;
            self.transaction = None;
            self.finished.clear();
            self.pending.clear();
            self.events.push_back(Event::Closed);
        }
    }

    /// A failure that ends the connection. After a refusal the session says
    /// QUIT politely; after a protocol error, a timeout or a `421` it closes
    /// at once. While already closing it just closes.
    fn fail_connection(&mut self, error: SessionError) {
        if matches!(self.state, State::Closing | State::Closed) {
            self.close();
            return;
        }
        let polite = match &error {
            SessionError::Rejected(rejection) => !rejection.is_service_closing(),
            SessionError::Unsupported(_)
            | SessionError::CredentialsWithoutTls
            | SessionError::InvalidInput(_) => true,
            SessionError::Protocol(_)
            | SessionError::Timeout { .. }
            | SessionError::ServiceClosing(_)
            | SessionError::RecipientsRejected(_)
            | SessionError::ApiMisuse(_) => false,
        };
        self.report_decided_failure();
        self.transaction = None;
        self.finished.clear();
        self.events.push_back(Event::Failed(error));
        if polite && self.state != State::TlsHandshake {
            self.pending.drop_queued();
            self.quitting = false;
            self.state = State::Closing;
            self.send(Command::Quit, Expect::Quit);
        } else {
            self.close();
        }
    }

    fn handle_reply(&mut self, now: Instant, reply: Reply) -> Result<(), SessionError> {
        let Some(expect) = self.pending.next_due() else {
            if reply.code().value() == 421 {
                return Err(SessionError::ServiceClosing(reply));
            }
            return Err(ProtocolError::UnsolicitedReply(reply).into());
        };
        if self.state == State::Closing && expect != Expect::Quit {
            // A reply to a command of a conversation being given up.
            self.discard_reply(expect, &reply);
            return Ok(());
        }
        let rejection = Rejection {
            command: expect.command(),
            reply,
        };
        if rejection.is_service_closing() && expect != Expect::Quit {
            if !expect.is_mail_command() || self.mails_in_flight() == 0 {
                return Err(SessionError::Rejected(rejection));
            }
            // Mails pipelined behind this one may already be decided by
            // replies on their way: read them rather than guess.
            self.server_closing = Some(rejection.reply.clone());
        }
        let Rejection { reply, .. } = rejection;
        match expect {
            Expect::Greeting => self.handle_greeting(reply),
            Expect::Ehlo | Expect::Lhlo => self.handle_ehlo(expect, reply),
            Expect::StartTls => self.handle_starttls(now, reply),
            Expect::Auth(step) => self.handle_auth_reply(step, reply),
            Expect::MailFrom
            | Expect::RcptTo(_)
            | Expect::Data
            | Expect::Bdat
            | Expect::DataEnd
            | Expect::DiscardedDataEnd => {
                self.handle_mail_reply(now, expect, reply);
                if self.server_closing.is_some() && self.mails_in_flight() == 0 {
                    self.end_after_server_closing();
                }
                Ok(())
            }
            Expect::Rset | Expect::Noop => self.handle_command_reply(expect, reply),
            Expect::Quit => {
                self.close();
                Ok(())
            }
        }
    }

    /// A reply the session no longer needs; a `354` still needs a lone dot
    /// so the server leaves DATA (RFC 2920 3.1).
    fn discard_reply(&mut self, expect: Expect, reply: &Reply) {
        if expect == Expect::Data && reply.code().value() == 354 {
            self.transmit.extend_from_slice(b".\r\n");
            self.pending.expect(Expect::DiscardedDataEnd);
        }
    }

    fn handle_greeting(&mut self, reply: Reply) -> Result<(), SessionError> {
        let code = reply.code();
        if code.value() == 220 {
            self.send_hello();
            return Ok(());
        }
        Err(refusal_or_violation(CommandKind::Greeting, reply))
    }

    /// EHLO, or LHLO under LMTP: there is no HELO fallback either way.
    fn send_hello(&mut self) {
        let name = self.config.ehlo_name.clone();
        match self.config.protocol {
            Protocol::Smtp => self.send(Command::Ehlo(name), Expect::Ehlo),
            Protocol::Lmtp => self.send(Command::Lhlo(name), Expect::Lhlo),
        }
    }

    /// The reply to EHLO or LHLO: the capabilities.
    fn handle_ehlo(&mut self, expect: Expect, reply: Reply) -> Result<(), SessionError> {
        if reply.code().value() != 250 {
            return Err(refusal_or_violation(expect.command(), reply));
        }
        let capabilities = Capabilities::from_ehlo_reply(&reply);
        self.after_ehlo(capabilities)
    }

    fn handle_starttls(&mut self, now: Instant, reply: Reply) -> Result<(), SessionError> {
        if reply.code().value() != 220 {
            return Err(refusal_or_violation(CommandKind::StartTls, reply));
        }
        if !self.parser.is_empty() {
            return Err(ProtocolError::BytesAfterStartTls.into());
        }
        self.state = State::TlsHandshake;
        self.handshake_started = now;
        self.events.push_back(Event::UpgradeToTls);
        Ok(())
    }

    /// The reply to a NOOP or an RSET outside a mail (or after a failed one).
    fn handle_command_reply(&mut self, expect: Expect, reply: Reply) -> Result<(), SessionError> {
        if !reply.code().is_positive_completion() {
            return Err(refusal_or_violation(expect.command(), reply));
        }
        if self.state == State::Command && !self.pending.is_waiting() {
            self.become_ready();
        }
        Ok(())
    }

    /// The connection is ending: the oldest mail in flight that the server
    /// already refused (its other replies still due) gets that refusal as
    /// its outcome, rather than the connection's end. A server that answers
    /// a BDAT chunk with 552 and then breaks the conversation still said
    /// 552.
    ///
    /// Under LMTP, a mail whose replies after the data had begun keeps
    /// what they said: delivered to the recipients that got a `250`.
    fn report_decided_failure(&mut self) {
        if let Some(mail) = self.finished.front()
            && mail.awaits_data_replies()
        {
            let outcome = mail.lmtp_outcome();
            self.finished.pop_front();
            self.events.push_back(outcome);
            return;
        }
        if let Some(failure) = self.take_refusal() {
            self.events.push_back(Event::MailFailed(failure));
        }
    }

    /// The refusal the server already gave the oldest mail in flight, whose
    /// other replies are still due (`None` when it gave none). For a driver
    /// whose socket failed: that refusal, not the broken socket, is the
    /// mail's outcome.
    pub fn take_refusal(&mut self) -> Option<SessionError> {
        let oldest = self.finished.front_mut().or(self.transaction.as_mut());
        oldest.and_then(|mail| mail.failure.take())
    }

    /// The server said `421` and every mail it answered has its outcome.
    fn end_after_server_closing(&mut self) {
        if let Some(reply) = self.server_closing.take() {
            self.events
                .push_back(Event::Failed(SessionError::ServiceClosing(reply)));
        }
        self.close();
    }

    fn become_ready(&mut self) {
        self.state = State::Ready;
        self.events.push_back(Event::Ready);
    }
}

/// A negative reply is a refusal; a positive one of the wrong kind breaks
/// the protocol.
fn refusal_or_violation(command: CommandKind, reply: Reply) -> SessionError {
    let code = reply.code();
    if code.is_positive_completion() || code.is_positive_intermediate() {
        ProtocolError::UnexpectedReply { command, reply }.into()
    } else {
        SessionError::Rejected(Rejection { command, reply })
    }
}

fn phase_of(expect: Expect) -> Phase {
    match expect {
        Expect::Greeting => Phase::Greeting,
        Expect::MailFrom => Phase::MailFrom,
        Expect::RcptTo(_) => Phase::RcptTo,
        Expect::Data => Phase::DataInit,
        Expect::Bdat => Phase::DataBlock,
        Expect::DataEnd | Expect::DiscardedDataEnd => Phase::DataEnd,
        Expect::Quit => Phase::Quit,
        Expect::Ehlo
        | Expect::Lhlo
        | Expect::StartTls
        | Expect::Auth(_)
        | Expect::Rset
        | Expect::Noop => Phase::Command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Domain;

    #[test]
    #[allow(clippy::disallowed_methods)] // one real instant as the base; time then moves by hand
    fn implicit_tls_starts_with_the_handshake_and_its_deadline() {
        let start = Instant::now();
        let config = SessionConfig::new(Domain::new("c.example").unwrap(), Security::ImplicitTls);
        let mut session = Session::new(config, start);
        assert_eq!(session.poll_event(), Some(Event::UpgradeToTls));
        assert!(!session.wants_read());
        assert_eq!(session.phase(), Phase::TlsHandshake);
        let deadline = session.poll_timeout().unwrap();
        assert_eq!(deadline - start, Timeouts::default().tls_handshake);
        session.handle_timeout(deadline);
        assert_eq!(
            session.poll_event(),
            Some(Event::Failed(SessionError::Timeout {
                phase: Phase::TlsHandshake
            }))
        );
        assert_eq!(session.poll_event(), Some(Event::Closed));
    }
}
