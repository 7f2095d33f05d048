//! The SMTP client state machine. Feed it the server's bytes with
//! [`Session::handle_input`], write what [`Session::poll_transmit`] gives, and
//! act on each [`Event`] from [`Session::poll_event`]. It never touches a
//! socket, a clock or TLS: the driver does, when an event tells it to.

use std::collections::VecDeque;

use crate::address::{Domain, Envelope};
use crate::body::{BdatFramer, DotStuffer};
use crate::capabilities::Capabilities;
use crate::command::{Command, CommandKind, MailParameters};
use crate::error::{ApiMisuse, ProtocolError, Rejection, SessionError, Unsupported};
use crate::pipeline::{AuthStep, Expect, PendingReplies};
use crate::reply::{Reply, ReplyLimits, ReplyParser};
use crate::sasl::{Credentials, Mechanism};

/// How the connection is protected when the session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS is already up (implicit TLS, RFC 8314).
    ImplicitTls,
    /// Plaintext now; STARTTLS is required before anything else (RFC 3207).
    StartTls,
    /// Plaintext throughout: only for loopback tests.
    DangerousPlaintext,
}

/// What to do when the server refuses some recipients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecipientPolicy {
    /// Send to the recipients the server accepted; report the others.
    #[default]
    AcceptedOnly,
    /// Send nothing unless every recipient was accepted (the transaction is reset).
    AllOrNone,
}

/// Settings of one session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The name given in EHLO.
    pub ehlo_name: Domain,
    /// Credentials for AUTH, if any.
    pub credentials: Option<Credentials>,
    /// The AUTH mechanisms to use, best first (default: PLAIN, then LOGIN).
    pub auth_mechanisms: Vec<Mechanism>,
    /// How the connection starts.
    pub transport: Transport,
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
    /// Record [`Trace`] lines.
    pub trace: bool,
}

impl SessionConfig {
    /// Defaults: no credentials, accept partial recipient lists, pipelining and
    /// chunking on, no trace.
    pub fn new(ehlo_name: Domain, transport: Transport) -> Self {
        Self {
            ehlo_name,
            credentials: None,
            auth_mechanisms: Mechanism::ALL.to_vec(),
            transport,
            allow_plaintext_auth: false,
            recipient_policy: RecipientPolicy::AcceptedOnly,
            reply_limits: ReplyLimits::default(),
            use_pipelining: true,
            use_chunking: true,
            max_chunks_in_flight: 8,
            trace: false,
        }
    }
}

/// Where the conversation is; each phase has its own timeout (RFC 5321 4.5.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for the `220` greeting (RFC: 5 minutes).
    Greeting,
    /// Waiting for a reply to EHLO, STARTTLS, AUTH, RSET, NOOP (a command timeout).
    Command,
    /// The driver is doing the TLS handshake after STARTTLS.
    TlsHandshake,
    /// Waiting for the reply to MAIL (RFC: 5 minutes).
    MailFrom,
    /// Waiting for a reply to RCPT (RFC: 5 minutes).
    RcptTo,
    /// Waiting for the `354` to DATA (RFC: 2 minutes).
    DataInit,
    /// The message is being written, or a BDAT chunk's reply is due (RFC: 3 minutes per block).
    DataBlock,
    /// Waiting for the reply after the whole message (RFC: 10 minutes).
    DataEnd,
    /// Authenticated and idle: the driver may start a mail or quit.
    Ready,
    /// Waiting for the reply to QUIT.
    Quit,
    /// Nothing more will happen.
    Closed,
}

/// How the driver must send the message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMode {
    /// After `354`: [`Session::write_body`] dot-stuffs.
    Data,
    /// BDAT chunks (RFC 3030): [`Session::write_body`] frames.
    Bdat,
}

/// What the server said to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The recipient address.
    pub address: String,
    /// The server's reply to its RCPT.
    pub reply: Reply,
}

impl RecipientOutcome {
    /// The server accepted this recipient.
    pub fn accepted(&self) -> bool {
        self.reply.is_positive()
    }
}

/// A message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The final reply (after the dot or `BDAT LAST`).
    pub reply: Reply,
    /// One outcome per recipient, in envelope order.
    pub recipients: Vec<RecipientOutcome>,
}

impl Delivery {
    /// The queue id the server gave, from the common `queued as ID` form.
    pub fn queue_id(&self) -> Option<String> {
        let text = self.reply.text();
        let lower = text.to_ascii_lowercase();
        let start = lower.find("queued as ")? + "queued as ".len();
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
    /// The size in bytes, if known: declared with SIZE and checked against
    /// the server's limit before anything is sent.
    pub size: Option<u64>,
    /// Whether the body has bytes above 127. `None` (unknown) declares
    /// `BODY=8BITMIME` when the server offers it, which is always safe.
    pub eight_bit: Option<bool>,
}

impl BodyInfo {
    /// Size and 8-bit-ness of a message held in memory.
    pub fn of(message: &[u8]) -> Self {
        Self {
            size: Some(message.len() as u64),
            eight_bit: Some(!message.is_ascii()),
        }
    }
}

/// Something the driver must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The server agreed to STARTTLS and sent nothing after its `220`. The
    /// driver must do the TLS handshake on the same socket, then call
    /// [`Session::tls_established`].
    UpgradeToTls,
    /// Greeted, EHLO done, TLS and AUTH done as configured. The driver may
    /// call [`Session::start_mail`] (now or after each finished mail) or
    /// [`Session::quit`].
    Ready(Capabilities),
    /// The recipients are in: the driver must stream the message with
    /// [`Session::write_body`] and end it with [`Session::finish_body`].
    SendBody(BodyMode),
    /// The server refused recipient `index` of the envelope. Informational:
    /// the mail goes on to the others unless the policy says otherwise.
    RecipientRejected {
        /// Index in the envelope's recipient list.
        index: usize,
        /// The server's refusal.
        rejection: Rejection,
    },
    /// The server accepted the message. The session is ready for another mail.
    Accepted(Delivery),
    /// The send failed. For a refused mail the session is ready for another
    /// mail ([`Session::phase`] is `Ready`); otherwise the driver should write
    /// what [`Session::poll_transmit`] gives (a QUIT, when polite) and close.
    Failed(SessionError),
    /// The conversation is over; the driver closes the connection.
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

#[derive(Debug)]
enum BodyEncoder {
    Data(DotStuffer),
    Bdat(BdatFramer),
}

#[derive(Debug)]
struct Transaction {
    envelope: Envelope,
    outcomes: Vec<Option<Reply>>,
    mail_accepted: bool,
    body: Option<BodyEncoder>,
    body_bytes: u64,
    /// A refusal seen while other replies of the group were still due;
    /// reported once they are all in.
    failure: Option<SessionError>,
    data_pipelined: bool,
}

impl Transaction {
    fn outcomes(&self) -> Vec<RecipientOutcome> {
        self.envelope
            .recipients()
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(address, reply)| {
                reply.as_ref().map(|reply| RecipientOutcome {
                    address: address.to_string(),
                    reply: reply.clone(),
                })
            })
            .collect()
    }

    fn accepted_count(&self) -> usize {
        self.outcomes
            .iter()
            .flatten()
            .filter(|reply| reply.is_positive())
            .count()
    }

    fn all_rcpt_replies_in(&self) -> bool {
        self.outcomes.iter().all(Option::is_some)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Greeting, EHLO, STARTTLS, AUTH in progress.
    Opening,
    TlsHandshake,
    Ready,
    Transaction,
    /// The driver is writing the body.
    Body,
    Quitting,
    /// A connection-level failure: only QUIT or close remain.
    Broken,
    Closed,
}

/// The SMTP client engine for one connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    parser: ReplyParser,
    pending: PendingReplies,
    state: State,
    tls_active: bool,
    capabilities: Option<Capabilities>,
    transaction: Option<Transaction>,
    transmit: Vec<u8>,
    events: VecDeque<Event>,
    trace: VecDeque<Trace>,
    replies_received: u64,
}

impl Session {
    /// A session waiting for the server's greeting.
    pub fn new(config: SessionConfig) -> Self {
        let mut parser = ReplyParser::with_limits(config.reply_limits);
        parser.feed(&[]);
        let mut pending = PendingReplies::default();
        pending.expect(Expect::Greeting);
        Self {
            tls_active: config.transport == Transport::ImplicitTls,
            config,
            parser,
            pending,
            state: State::Opening,
            capabilities: None,
            transaction: None,
            transmit: Vec::new(),
            events: VecDeque::new(),
            trace: VecDeque::new(),
            replies_received: 0,
        }
    }

    /// Bytes received from the server.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Broken | State::Closed) {
            return;
        }
        self.parser.feed(bytes);
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    self.replies_received += 1;
                    self.trace_reply(&reply);
                    if let Err(error) = self.handle_reply(reply) {
                        self.fail_connection(error);
                        return;
                    }
                    if matches!(
                        self.state,
                        State::Broken | State::Closed | State::TlsHandshake
                    ) {
                        return;
                    }
                }
                Ok(None) => break,
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
            State::Closed | State::Broken => {}
            State::Quitting => self.close(),
            _ => {
                let awaiting = match self.pending.front() {
                    Some(Expect::Greeting) => None,
                    Some(expect) => Some(expect.command()),
                    None => None,
                };
                self.state = State::Broken;
                self.events.push_back(Event::Failed(
                    ProtocolError::ConnectionClosed { awaiting }.into(),
                ));
                self.close();
            }
        }
    }

    /// The TLS handshake after STARTTLS succeeded: say EHLO again and forget
    /// everything learnt before (RFC 3207 4.2).
    pub fn tls_established(&mut self) -> Result<(), ApiMisuse> {
        if self.state != State::TlsHandshake {
            return Err(ApiMisuse("tls_established() without a pending STARTTLS"));
        }
        self.tls_active = true;
        self.capabilities = None;
        self.state = State::Opening;
        self.send(Command::Ehlo(self.config.ehlo_name.clone()), Expect::Ehlo);
        Ok(())
    }

    /// Appends the bytes to write to `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        let pipelining = self.pipelining();
        for command in self.pending.take_sendable(pipelining) {
            if self.config.trace {
                self.trace.push_back(Trace::Client(command.redacted()));
            }
            command.encode(&mut self.transmit);
        }
        out.append(&mut self.transmit);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next trace line, if tracing is on.
    pub fn poll_trace(&mut self) -> Option<Trace> {
        self.trace.pop_front()
    }

    /// A reply is due: the driver should read (with the phase's timeout).
    pub fn wants_read(&self) -> bool {
        self.pending.is_waiting() && !matches!(self.state, State::Broken | State::Closed)
    }

    /// How many complete replies have arrived: a driver restarts its
    /// deadline when this moves.
    pub fn replies_received(&self) -> u64 {
        self.replies_received
    }

    /// The capabilities from the last EHLO.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The TLS layer is up (implicit, or after STARTTLS).
    pub fn is_encrypted(&self) -> bool {
        self.tls_active
    }

    /// Where the conversation is, for the driver's timeouts.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Closed | State::Broken => return Phase::Closed,
            State::TlsHandshake => return Phase::TlsHandshake,
            State::Body => return Phase::DataBlock,
            _ => {}
        }
        match self.pending.front() {
            Some(Expect::Greeting) => Phase::Greeting,
            Some(Expect::MailFrom) => Phase::MailFrom,
            Some(Expect::RcptTo(_)) => Phase::RcptTo,
            Some(Expect::Data) => Phase::DataInit,
            Some(Expect::Bdat) => Phase::DataBlock,
            Some(Expect::DataEnd | Expect::DiscardedDataEnd) => Phase::DataEnd,
            Some(Expect::Quit) => Phase::Quit,
            Some(_) => Phase::Command,
            None if self.state == State::Ready => Phase::Ready,
            None => Phase::Command,
        }
    }

    /// Starts a mail: MAIL FROM and one RCPT TO per recipient (pipelined when
    /// the server allows). Checks SIZE and SMTPUTF8 first, so a message the
    /// server cannot take is refused before anything is sent.
    pub fn start_mail(&mut self, envelope: Envelope, body: BodyInfo) -> Result<(), SessionError> {
        if self.state != State::Ready || !self.pending.is_idle() {
            return Err(SessionError::ApiMisuse(ApiMisuse(
                "start_mail() is allowed only when the session is Ready",
            )));
        }
        let capabilities = self.capabilities.clone().unwrap_or_default();
        let smtputf8 = envelope.needs_smtputf8();
        if smtputf8 && !capabilities.smtputf8 {
            return Err(Unsupported::SmtpUtf8.into());
        }
        if let (Some(size), Some(limit)) = (body.size, capabilities.size_limit())
            && size > limit
        {
            return Err(Unsupported::Size { size, limit }.into());
        }
        let parameters = MailParameters {
            size: body.size.filter(|_| capabilities.size.is_some()),
            eight_bit_mime: capabilities.eight_bit_mime && body.eight_bit != Some(false),
            smtputf8,
        };
        let chunking = self.config.use_chunking && capabilities.chunking;
        let data_pipelined = self.pipelining()
            && !chunking
            && self.config.recipient_policy == RecipientPolicy::AcceptedOnly;
        self.pending.queue(
            Command::MailFrom(envelope.sender().clone(), parameters),
            Expect::MailFrom,
        );
        for (index, recipient) in envelope.recipients().iter().enumerate() {
            self.pending
                .queue(Command::RcptTo(recipient.clone()), Expect::RcptTo(index));
        }
        if data_pipelined {
            self.pending.queue(Command::Data, Expect::Data);
        }
        self.transaction = Some(Transaction {
            outcomes: vec![None; envelope.recipients().len()],
            envelope,
            mail_accepted: false,
            body: None,
            body_bytes: 0,
            failure: None,
            data_pipelined,
        });
        self.state = State::Transaction;
        Ok(())
    }

    /// With BDAT, whether another chunk may be written now; when false the
    /// driver must read replies first. Always true for DATA.
    pub fn can_write_body(&self) -> bool {
        let limit = if self.pipelining() {
            self.config.max_chunks_in_flight.max(1)
        } else {
            1
        };
        self.state == State::Body
            && match self.body_mode() {
                Some(BodyMode::Bdat) => self.pending.chunks_in_flight() < limit,
                _ => true,
            }
    }

    /// Encodes a piece of the message into `out` (dot-stuffed for DATA, one
    /// BDAT frame for CHUNKING).
    pub fn write_body(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), ApiMisuse> {
        if self.state != State::Body {
            return Err(ApiMisuse("write_body() outside of the body phase"));
        }
        let Some(transaction) = self.transaction.as_mut() else {
            return Err(ApiMisuse("write_body() without a mail"));
        };
        transaction.body_bytes += chunk.len() as u64;
        match &mut transaction.body {
            Some(BodyEncoder::Data(stuffer)) => stuffer.encode(chunk, out),
            Some(BodyEncoder::Bdat(framer)) => {
                if let Some(size) = framer.encode(chunk, out) {
                    self.pending.expect(Expect::Bdat);
                    if self.config.trace {
                        self.trace
                            .push_back(Trace::Client(format!("BDAT {size} <data>")));
                    }
                }
            }
            None => return Err(ApiMisuse("write_body() before SendBody")),
        }
        Ok(())
    }

    /// Ends the message (`CRLF.CRLF` or `BDAT n LAST`) into `out`.
    pub fn finish_body(&mut self, out: &mut Vec<u8>) -> Result<(), ApiMisuse> {
        self.finish_body_with(&[], out)
    }

    /// Encodes the last piece of the message and ends it, in one BDAT frame
    /// (`BDAT n LAST`) rather than a frame and an empty `BDAT 0 LAST`.
    pub fn finish_body_with(&mut self, last: &[u8], out: &mut Vec<u8>) -> Result<(), ApiMisuse> {
        if self.state != State::Body {
            return Err(ApiMisuse("finish_body() outside of the body phase"));
        }
        let Some(transaction) = self.transaction.as_mut() else {
            return Err(ApiMisuse("finish_body() without a mail"));
        };
        transaction.body_bytes += last.len() as u64;
        let summary = match &mut transaction.body {
            Some(BodyEncoder::Data(stuffer)) => {
                stuffer.encode(last, out);
                stuffer.finish(out);
                format!("<message: {} bytes>", transaction.body_bytes)
            }
            Some(BodyEncoder::Bdat(framer)) => {
                let size = framer.finish_with(last, out);
                format!(
                    "BDAT {size} LAST <data; message: {} bytes>",
                    transaction.body_bytes
                )
            }
            None => return Err(ApiMisuse("finish_body() before SendBody")),
        };
        if self.config.trace {
            self.trace.push_back(Trace::Client(summary));
        }
        self.pending.expect(Expect::DataEnd);
        self.state = State::Transaction;
        Ok(())
    }

    /// Ends the conversation politely: QUIT, then [`Event::Closed`].
    pub fn quit(&mut self) {
        match self.state {
            State::Closed | State::Quitting => {}
            State::Broken => self.close(),
            _ => {
                self.state = State::Quitting;
                self.send(Command::Quit, Expect::Quit);
            }
        }
    }

    fn pipelining(&self) -> bool {
        self.config.use_pipelining
            && self
                .capabilities
                .as_ref()
                .is_some_and(|capabilities| capabilities.pipelining)
    }

    fn body_mode(&self) -> Option<BodyMode> {
        match self.transaction.as_ref()?.body.as_ref()? {
            BodyEncoder::Data(_) => Some(BodyMode::Data),
            BodyEncoder::Bdat(_) => Some(BodyMode::Bdat),
        }
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
            self.pending.clear();
            self.events.push_back(Event::Closed);
        }
    }

    /// A failure that ends the connection. Protocol errors close at once; a
    /// refusal is followed by a polite QUIT.
    fn fail_connection(&mut self, error: SessionError) {
        self.transaction = None;
        self.pending.clear();
        let polite = !matches!(error, SessionError::Protocol(_));
        self.events.push_back(Event::Failed(error));
        if polite {
            self.state = State::Quitting;
            self.send(Command::Quit, Expect::Quit);
        } else {
            self.state = State::Broken;
        }
    }

    fn handle_reply(&mut self, reply: Reply) -> Result<(), SessionError> {
        let Some(expect) = self.pending.next_due() else {
            return Err(ProtocolError::UnsolicitedReply(reply).into());
        };
        let code = reply.code();
        let reject = |reply: Reply| -> SessionError {
            SessionError::Rejected(Rejection {
                command: expect.command(),
                reply,
            })
        };
        let unexpected = |reply: Reply| -> SessionError {
            ProtocolError::UnexpectedReply {
                command: expect.command(),
                reply,
            }
            .into()
        };
        match expect {
            Expect::Greeting => match code.value() {
                220 => self.send(Command::Ehlo(self.config.ehlo_name.clone()), Expect::Ehlo),
                _ if code.is_positive_completion() || code.is_positive_intermediate() => {
                    return Err(unexpected(reply));
                }
                _ => return Err(reject(reply)),
            },
            Expect::Ehlo => {
                if code.value() != 250 {
                    return Err(if code.is_positive_completion() {
                        unexpected(reply)
                    } else {
                        reject(reply)
                    });
                }
                let capabilities = Capabilities::from_ehlo_reply(&reply);
                self.after_ehlo(capabilities)?;
            }
            Expect::StartTls => {
                if code.value() != 220 {
                    return Err(if code.is_positive_completion() {
                        unexpected(reply)
                    } else {
                        reject(reply)
                    });
                }
                if !self.parser.is_empty() {
                    return Err(ProtocolError::BytesAfterStartTls.into());
                }
                self.state = State::TlsHandshake;
                self.events.push_back(Event::UpgradeToTls);
            }
            Expect::Auth(step) => self.handle_auth_reply(step, reply)?,
            Expect::MailFrom => {
                let Some(transaction) = self.transaction.as_mut() else {
                    return Err(unexpected(reply));
                };
                if code.is_positive_completion() {
                    transaction.mail_accepted = true;
                } else {
                    transaction.failure.get_or_insert(reject(reply));
                }
                self.after_transaction_reply();
            }
            Expect::RcptTo(index) => {
                let Some(transaction) = self.transaction.as_mut() else {
                    return Err(unexpected(reply));
                };
                if !code.is_positive_completion() && transaction.mail_accepted {
                    self.events.push_back(Event::RecipientRejected {
                        index,
                        rejection: Rejection {
                            command: CommandKind::RcptTo,
                            reply: reply.clone(),
                        },
                    });
                }
                if let Some(slot) = transaction.outcomes.get_mut(index) {
                    *slot = Some(reply);
                }
                self.after_transaction_reply();
            }
            Expect::Data => {
                let Some(transaction) = self.transaction.as_mut() else {
                    return Err(unexpected(reply));
                };
                if code.value() == 354 {
                    if transaction.failure.is_some() || transaction.accepted_count() == 0 {
                        // RFC 2920 3.1: the server accepted DATA although no
                        // recipient (or MAIL) was: end it with a lone dot.
                        self.transmit.extend_from_slice(b".\r\n");
                        self.pending.expect(Expect::DiscardedDataEnd);
                    } else {
                        transaction.body = Some(BodyEncoder::Data(DotStuffer::new()));
                        self.state = State::Body;
                        self.events.push_back(Event::SendBody(BodyMode::Data));
                    }
                } else if code.is_positive_completion() {
                    return Err(unexpected(reply));
                } else {
                    transaction.failure.get_or_insert(reject(reply));
                }
                self.after_transaction_reply();
            }
            Expect::Bdat => {
                let Some(transaction) = self.transaction.as_mut() else {
                    return Err(unexpected(reply));
                };
                if !code.is_positive_completion() {
                    transaction.failure.get_or_insert(reject(reply));
                    // Stop streaming: what remains of the message is pointless.
                    if self.state == State::Body {
                        self.state = State::Transaction;
                    }
                }
                self.after_transaction_reply();
            }
            Expect::DataEnd => {
                let Some(transaction) = self.transaction.as_mut() else {
                    return Err(unexpected(reply));
                };
                if code.is_positive_completion() && transaction.failure.is_none() {
                    let delivery = Delivery {
                        reply,
                        recipients: transaction.outcomes(),
                    };
                    self.transaction = None;
                    self.state = State::Ready;
                    self.events.push_back(Event::Accepted(delivery));
                } else {
                    if !code.is_positive_completion() {
                        transaction.failure.get_or_insert(reject(reply));
                    }
                    self.after_transaction_reply();
                }
            }
            Expect::DiscardedDataEnd => self.after_transaction_reply(),
            Expect::Rset => {
                if self.state == State::Transaction {
                    self.after_transaction_reply();
                }
            }
            Expect::Quit => self.close(),
        }
        Ok(())
    }

    fn after_ehlo(&mut self, capabilities: Capabilities) -> Result<(), SessionError> {
        let starttls_needed = self.config.transport == Transport::StartTls && !self.tls_active;
        let starttls = capabilities.starttls;
        let mechanisms = capabilities.auth_mechanisms.clone();
        self.capabilities = Some(capabilities);
        if starttls_needed {
            if !starttls {
                return Err(Unsupported::StartTls.into());
            }
            self.send(Command::StartTls, Expect::StartTls);
            return Ok(());
        }
        let Some(credentials) = self.config.credentials.clone() else {
            self.become_ready();
            return Ok(());
        };
        if !self.tls_active && !self.config.allow_plaintext_auth {
            return Err(SessionError::CredentialsWithoutTls);
        }
        match Mechanism::choose(&mechanisms, &self.config.auth_mechanisms) {
            Some(Mechanism::Plain) => self.send(
                Command::Auth {
                    mechanism: Mechanism::Plain.name(),
                    initial_response: Some(credentials.plain_response()),
                },
                Expect::Auth(AuthStep::Plain),
            ),
            Some(Mechanism::Login) => self.send(
                Command::Auth {
                    mechanism: Mechanism::Login.name(),
                    initial_response: None,
                },
                Expect::Auth(AuthStep::LoginStart),
            ),
            None => {
                return Err(Unsupported::Auth {
                    offered: mechanisms,
                }
                .into());
            }
        }
        Ok(())
    }

    fn handle_auth_reply(&mut self, step: AuthStep, reply: Reply) -> Result<(), SessionError> {
        let code = reply.code();
        let rejected = |reply| {
            SessionError::Rejected(Rejection {
                command: CommandKind::Auth,
                reply,
            })
        };
        if code.is_transient_negative() || code.is_permanent_negative() {
            return Err(rejected(reply));
        }
        match (step, code.value()) {
            (AuthStep::Plain | AuthStep::LoginPassword, 235) => self.become_ready(),
            (AuthStep::LoginStart, 334) => {
                let [user, _] = self.login_responses()?;
                self.send(
                    Command::AuthResponse(user),
                    Expect::Auth(AuthStep::LoginUser),
                );
            }
            (AuthStep::LoginUser, 334) => {
                let [_, password] = self.login_responses()?;
                self.send(
                    Command::AuthResponse(password),
                    Expect::Auth(AuthStep::LoginPassword),
                );
            }
            _ => {
                return Err(ProtocolError::UnexpectedReply {
                    command: CommandKind::Auth,
                    reply,
                }
                .into());
            }
        }
        Ok(())
    }

    fn login_responses(&self) -> Result<[crate::sasl::Secret; 2], SessionError> {
        match &self.config.credentials {
            Some(credentials) => Ok(credentials.login_responses()),
            None => Err(ApiMisuse("AUTH reply without credentials").into()),
        }
    }

    fn become_ready(&mut self) {
        self.state = State::Ready;
        if let Some(capabilities) = self.capabilities.clone() {
            self.events.push_back(Event::Ready(capabilities));
        }
    }

    /// After a MAIL, RCPT, DATA, BDAT or RSET reply inside a transaction:
    /// decide what comes next once the replies that matter are in.
    fn after_transaction_reply(&mut self) {
        let chunking = self.config.use_chunking
            && self
                .capabilities
                .as_ref()
                .is_some_and(|capabilities| capabilities.chunking);
        let policy = self.config.recipient_policy;
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if transaction.failure.is_none()
            && transaction.body.is_none()
            && !transaction.data_pipelined
            && transaction.mail_accepted
            && transaction.all_rcpt_replies_in()
            && !self.pending.is_waiting()
        {
            // The recipients are known: send the body, or give up.
            let accepted = transaction.accepted_count();
            let refused = transaction.outcomes.len() - accepted;
            if accepted == 0 || (policy == RecipientPolicy::AllOrNone && refused > 0) {
                transaction.failure =
                    Some(SessionError::RecipientsRejected(transaction.outcomes()));
            } else if chunking {
                transaction.body = Some(BodyEncoder::Bdat(BdatFramer::new()));
                self.state = State::Body;
                self.events.push_back(Event::SendBody(BodyMode::Bdat));
                return;
            } else {
                self.pending.queue(Command::Data, Expect::Data);
                return;
            }
        }
        if transaction.data_pipelined
            && transaction.failure.is_none()
            && transaction.mail_accepted
            && transaction.all_rcpt_replies_in()
            && transaction.accepted_count() == 0
        {
            transaction.failure = Some(SessionError::RecipientsRejected(transaction.outcomes()));
        }
        if self.pending.is_waiting() || self.state == State::Body {
            return;
        }
        if let Some(failure) = transaction.failure.take() {
            // Every reply of the group is in: reset the transaction so the
            // connection can carry another mail, and report.
            let mail_started = transaction.mail_accepted;
            self.transaction = None;
            self.state = State::Ready;
            if mail_started {
                self.send(Command::Rset, Expect::Rset);
            }
            self.events.push_back(Event::Failed(failure));
        }
    }
}
