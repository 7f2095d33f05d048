//! What the two drivers (blocking.rs, async_tokio.rs) share: the rules
//! decided before and around the byte pump (loopback-only plaintext, the
//! STARTTLS fallback, the session's configuration), and the reading of what
//! sockets and TLS report. Nothing here does I/O.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use tls_mailer_proto::sniff::{self, FirstBytes};
use tls_mailer_proto::{
    ApiMisuse, BodyInfo, Delivery, Domain, Envelope, Event, MailOptions, Phase, Security, Session,
    SessionConfig, SessionError, Trace,
};
use zeroize::Zeroizing;

use crate::client::{SendReport, Settings, TlsDetails, TraceEvent};
use crate::error::Error;
use crate::tls;

/// How much of the message is read and encoded at a time (and the size of
/// a BDAT frame).
pub(crate) const BODY_CHUNK: usize = 64 * 1024;

/// The size of the buffer a driver reads the server's bytes into.
pub(crate) const READ_BUFFER: usize = 16 * 1024;

/// How long a driver tries to write its last words (a QUIT after a
/// failure) without waiting for an answer.
pub(crate) const ABANDON_WRITE: Duration = Duration::from_secs(2);

/// How many bytes of the server's first flight are kept to tell a plaintext
/// SMTP server from a TLS failure.
const SNIFFED: usize = 8;

/// The host as the resolver takes it (no brackets). Names under `.invalid`
/// never resolve (RFC 6761 6.4): refused here, and no query is sent.
pub(crate) fn lookup_name(host: &str) -> Result<&str, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let lower = bare.trim_end_matches('.').to_ascii_lowercase();
    if lower == "invalid" || lower.ends_with(".invalid") {
        return Err(Error::Resolve {
            host: host.to_owned(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "names under .invalid never resolve (RFC 6761)",
            ),
        });
    }
    Ok(bare)
}

/// What the resolver found for `host`: every address, in its order.
pub(crate) fn resolved(
    host: &str,
    found: io::Result<impl Iterator<Item = SocketAddr>>,
) -> Result<Vec<SocketAddr>, Error> {
    let addresses: Vec<SocketAddr> = found
        .map_err(|source| Error::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(Error::Resolve {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
        });
    }
    Ok(addresses)
}

/// Plaintext goes to loopback addresses only: every address of the host
/// must be one.
pub(crate) fn check_plaintext(
    settings: &Settings,
    security: Security,
    addresses: &[SocketAddr],
) -> Result<(), Error> {
    if security == Security::DangerousPlaintext
        && !addresses.iter().all(|address| address.ip().is_loopback())
    {
        return Err(Error::PlaintextNotLoopback {
            host: settings.host.clone(),
        });
    }
    Ok(())
}

/// Says which address is being tried.
pub(crate) fn note_connecting(settings: &Settings, address: &SocketAddr) {
    settings.note(format!("connecting to {address}"));
}

/// No address of the host took the connection.
pub(crate) fn connect_failed(settings: &Settings, port: u16, last: Option<io::Error>) -> Error {
    Error::Connect {
        target: format!("{}:{port}", settings.host),
        source: last.unwrap_or_else(|| io::Error::other("no address to connect to")),
    }
}

/// The session for a connection made at `now` from `local_ip` with
/// `security` (plaintext only reaches here for loopback addresses).
pub(crate) fn session(
    settings: &Settings,
    security: Security,
    local_ip: Option<IpAddr>,
    now: Instant,
) -> Session {
    let ehlo_name = match &settings.ehlo_name {
        Some(name) => name.clone(),
        None => default_ehlo_name(local_ip),
    };
    let mut config = SessionConfig::new(ehlo_name, security);
    config.credentials = settings.credentials.clone();
    config.auth_mechanisms = settings.auth_mechanisms.clone();
    config.allow_plaintext_auth = security == Security::DangerousPlaintext;
    config.recipient_policy = settings.recipient_policy;
    config.use_pipelining = settings.pipelining;
    config.use_chunking = settings.chunking;
    config.timeouts = settings.timeouts;
    config.trace = settings.trace.is_some();
    Session::new(config, now)
}

/// The machine's host name when it is a fully qualified name, else the
/// address literal of the local end of the connection (RFC 5321 4.1.4).
pub(crate) fn default_ehlo_name(local_ip: Option<IpAddr>) -> Domain {
    let host = gethostname::gethostname();
    if let Some(domain) = host.to_str().and_then(|name| Domain::new(name).ok())
        && domain.is_fqdn()
    {
        return domain;
    }
    Domain::literal(local_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)))
}

/// The connection attempts of a client: one, or with
/// [`Security::ImplicitTlsOrStartTls`] implicit TLS and then, only when that
/// port does not speak TLS at all, STARTTLS on the fallback port.
pub(crate) struct Attempts<'a> {
    settings: &'a Settings,
    implicit_failure: Option<Error>,
}

impl<'a> Attempts<'a> {
    pub(crate) fn new(settings: &'a Settings) -> Self {
        Self {
            settings,
            implicit_failure: None,
        }
    }

    /// Where to connect next, and how.
    pub(crate) fn target(&self) -> (u16, Security) {
        let settings = self.settings;
        match settings.security {
            Security::ImplicitTlsOrStartTls if self.implicit_failure.is_some() => {
                (settings.starttls_port, Security::StartTls)
            }
            Security::ImplicitTlsOrStartTls => (settings.port, Security::ImplicitTls),
            security => (settings.port, security),
        }
    }

    /// Judges an attempt: the outcome, or `None` when the fallback is to be
    /// tried (at [`Attempts::target`]).
    pub(crate) fn outcome<C>(&mut self, attempt: Result<C, Error>) -> Option<Result<C, Error>> {
        let settings = self.settings;
        if settings.security != Security::ImplicitTlsOrStartTls {
            return Some(attempt);
        }
        match (attempt, self.implicit_failure.take()) {
            (Err(implicit_error), None) if falls_back(&implicit_error) => {
                settings.note(format!(
                    "implicit TLS on port {} is not spoken there ({implicit_error}); \
                     trying STARTTLS on port {}",
                    settings.port, settings.starttls_port
                ));
                self.implicit_failure = Some(implicit_error);
                None
            }
            (Err(starttls), Some(implicit_error)) => Some(Err(Error::FallbackFailed {
                implicit_tls: Box::new(implicit_error),
                starttls: Box::new(starttls),
            })),
            (attempt, _) => Some(attempt),
        }
    }
}

/// Fallback to STARTTLS happens only when implicit TLS is not spoken on the
/// port: the connection is refused or cannot be made, it is reset or closed
/// before TLS got anywhere, or the server greets in plaintext SMTP. A TLS
/// failure (an untrusted, expired or wrong-host certificate: a possible
/// interception) is an error, never a reason to try elsewhere.
fn falls_back(error: &Error) -> bool {
    matches!(
        error,
        Error::Connect { .. }
            | Error::WrongSecurity { .. }
            | Error::Io {
                phase: Phase::TlsHandshake,
                ..
            }
    )
}

/// The one deadline of the wait at hand: the session's, or (when the
/// session awaits nothing, as for a last write) the command timeout.
pub(crate) fn deadline(session: &Session, settings: &Settings) -> Instant {
    session
        .poll_timeout()
        .unwrap_or_else(|| Instant::now() + settings.timeouts.command)
}

/// Keeps the first bytes the server sends during a handshake.
pub(crate) fn sniff_into(first_bytes: &mut Vec<u8>, read: &[u8]) {
    if first_bytes.len() < SNIFFED {
        let take = read.len().min(SNIFFED - first_bytes.len());
        first_bytes.extend_from_slice(&read[..take]);
    }
}

/// The implicit-TLS port answered the handshake in plaintext SMTP.
pub(crate) fn speaks_plaintext_smtp(security: Security, first_bytes: &[u8]) -> bool {
    security.is_implicit_tls() && sniff::classify(first_bytes) == FirstBytes::PlaintextSmtp
}

/// What a failed handshake means: the wrong security mode for the port, a
/// TLS failure, or a connection closed or reset before TLS got anywhere.
pub(crate) fn handshake_error(
    settings: &Settings,
    port: u16,
    security: Security,
    first_bytes: &[u8],
    error: io::Error,
) -> Error {
    if speaks_plaintext_smtp(security, first_bytes) {
        return Error::WrongSecurity {
            port,
            expected: security,
        };
    }
    match tls::rustls_error(&error) {
        Some(tls_error) => tls_failure(settings, tls_error),
        // Closed or reset before TLS got anywhere: nothing speaks TLS here.
        None => Error::Io {
            phase: Phase::TlsHandshake,
            source: error,
        },
    }
}

/// The handshake's deadline passed: the session's verdict.
pub(crate) fn handshake_timed_out(session: &mut Session) -> Error {
    session.handle_timeout(Instant::now());
    match session.poll_event() {
        Some(Event::Failed(error)) => error.into(),
        _ => SessionError::Timeout {
            phase: Phase::TlsHandshake,
        }
        .into(),
    }
}

/// A TLS failure, with its explanation.
pub(crate) fn tls_failure(settings: &Settings, error: rustls::Error) -> Error {
    Error::Tls {
        reason: tls::explain(&error, &settings.host, &settings.tls_policy),
        source: Some(error),
    }
}

/// A failed read or write. A TLS error in it is a TLS failure, not a lost
/// connection: a TLS 1.3 server checks the client certificate after the
/// client has finished its handshake, so a refusal arrives as an alert on
/// the first read after it. TLS is then over: the driver closes without
/// another word (see [`is_tls_failure`]).
pub(crate) fn io_failure(settings: &Settings, phase: Phase, source: io::Error) -> Error {
    match tls::rustls_error(&source) {
        Some(tls_error) => tls_failure(settings, tls_error),
        None => Error::Io { phase, source },
    }
}

/// Nothing more can be said on the connection after this error.
pub(crate) fn is_tls_failure(error: &Error) -> bool {
    matches!(error, Error::Tls { .. })
}

/// The handshake is done: bounds what rustls buffers, notes what was
/// settled, and returns it.
pub(crate) fn established(settings: &Settings, connection: &mut ClientConnection) -> TlsDetails {
    connection.set_buffer_limit(Some(256 * 1024));
    let details = tls_details_of(connection);
    settings.note(format!(
        "TLS established: {} {}, certificate subject {}{}",
        details.version,
        details.cipher_suite,
        details.peer_subject.as_deref().unwrap_or("(unknown)"),
        if details.resumed {
            ", session resumed"
        } else {
            ""
        }
    ));
    details
}

fn tls_details_of(connection: &ClientConnection) -> TlsDetails {
    TlsDetails {
        version: connection
            .protocol_version()
            .map(|version| format!("{version:?}"))
            .unwrap_or_default(),
        cipher_suite: connection
            .negotiated_cipher_suite()
            .map(|suite| format!("{:?}", suite.suite()))
            .unwrap_or_default(),
        peer_subject: connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|certificate| tls::certificate_subject(certificate)),
        resumed: connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    }
}

/// Hands the trace lines the session produced to the client's callback.
pub(crate) fn forward_trace(session: &mut Session, settings: &Settings) {
    while let Some(line) = session.poll_trace() {
        if let Some(trace) = &settings.trace {
            match line {
                Trace::Client(text) => trace(&TraceEvent::Client(text)),
                Trace::Server(text) => trace(&TraceEvent::Server(text)),
            }
        }
    }
}

/// An event the operation in progress has no use for: the session told the
/// driver to do something it did not ask for.
pub(crate) fn unexpected(event: Event) -> Error {
    match event {
        Event::MailFailed(error) => error.into(),
        _ => Error::ApiMisuse(ApiMisuse::NotIdle),
    }
}

/// What an event means to a mail in progress.
pub(crate) enum MailStep {
    /// Stream the body now.
    SendBody,
    /// Keep going.
    Continue,
    /// The mail's outcome.
    Done(Result<Delivery, SessionError>),
}

/// Judges an event during a mail.
pub(crate) fn mail_step(event: Event) -> Result<MailStep, Error> {
    match event {
        Event::SendBody(_) => Ok(MailStep::SendBody),
        Event::RecipientRejected { .. } | Event::Ready => Ok(MailStep::Continue),
        Event::Accepted(delivery) => Ok(MailStep::Done(Ok(delivery))),
        Event::MailFailed(error) => Ok(MailStep::Done(Err(error))),
        other => Err(unexpected(other)),
    }
}

/// The report of an accepted mail.
pub(crate) fn report(
    delivery: Delivery,
    security: Security,
    tls: Option<TlsDetails>,
) -> SendReport {
    SendReport {
        queue_id: delivery.queue_id(),
        reply: delivery.reply,
        recipients: delivery.recipients,
        security,
        tls,
    }
}

/// Encodes the next piece of the body into `out` (`chunk` empty: the end
/// of the message); true when the message is complete.
fn encode_body(session: &mut Session, chunk: &[u8], out: &mut Vec<u8>) -> Result<bool, Error> {
    out.clear();
    let now = Instant::now();
    if chunk.is_empty() {
        session.finish_body(now, out)?;
        Ok(true)
    } else {
        session.write_body(now, chunk, out)?;
        Ok(false)
    }
}

/// Reading the message failed midway: the session closes, and the server
/// discards what it got.
fn message_unreadable(session: &mut Session, error: io::Error) -> Error {
    session.quit(Instant::now());
    Error::ReadMessage(error)
}

/// What a connection is apart from its socket, kept by both drivers: the
/// session, the settings it was made with, where it goes and how it is
/// protected.
pub(crate) struct Conversation {
    pub(crate) settings: Arc<Settings>,
    pub(crate) session: Session,
    pub(crate) port: u16,
    pub(crate) security: Security,
    /// QUIT is queued behind the next message's last bytes.
    pub(crate) quit_after_next: bool,
    /// What the TLS handshake settled, kept after the socket closes.
    pub(crate) tls: Option<TlsDetails>,
    /// What the driver reads the server's bytes into.
    pub(crate) read_buffer: Vec<u8>,
}

/// The connection is over: the error to report, and whether the session
/// still has last words (a QUIT, when polite) to write without waiting for
/// an answer before the socket closes.
pub(crate) struct Ended {
    pub(crate) error: Error,
    pub(crate) last_words: bool,
}

impl Ended {
    fn failed(error: SessionError) -> Self {
        Self {
            error: error.into(),
            last_words: true,
        }
    }

    fn closed() -> Self {
        Self {
            error: Error::ApiMisuse(ApiMisuse::Closed),
            last_words: false,
        }
    }
}

/// What the main loop does next, as the session says.
pub(crate) enum Next {
    /// Do the TLS handshake.
    Upgrade,
    /// The connection failed or closed.
    Ended(Ended),
    /// An event for the operation in progress to judge.
    Event(Event),
    /// Read, until the session's deadline.
    Read,
}

impl Conversation {
    /// The conversation on a connection made from `local_ip` to `port`.
    pub(crate) fn new(
        settings: Arc<Settings>,
        port: u16,
        security: Security,
        local_ip: Option<IpAddr>,
    ) -> Self {
        Self {
            session: session(&settings, security, local_ip, Instant::now()),
            settings,
            port,
            security,
            quit_after_next: false,
            tls: None,
            read_buffer: vec![0; READ_BUFFER],
        }
    }

    /// The `Debug` output of a connection called `name`.
    pub(crate) fn describe(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("host", &self.settings.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("phase", &self.session.phase())
            .finish_non_exhaustive()
    }

    /// The one deadline of the wait at hand.
    pub(crate) fn deadline(&self) -> Instant {
        deadline(&self.session, &self.settings)
    }

    pub(crate) fn forward_trace(&mut self) {
        forward_trace(&mut self.session, &self.settings);
    }

    /// The main loop's next step, once what the session queued is written.
    pub(crate) fn next(&mut self) -> Result<Next, Error> {
        let next = match self.session.poll_event() {
            Some(Event::UpgradeToTls) => Next::Upgrade,
            Some(Event::Failed(error)) => Next::Ended(Ended::failed(error)),
            Some(Event::Closed) => Next::Ended(Ended::closed()),
            Some(event) => Next::Event(event),
            // Nothing to write, read or do: the operation cannot finish.
            None if !self.session.wants_read() => return Err(Error::ApiMisuse(ApiMisuse::NotIdle)),
            None => Next::Read,
        };
        self.forward_trace();
        Ok(next)
    }

    /// The deadline's timer fired: the session judges (an early wake-up
    /// changes nothing, `None`; a passed deadline fails the session).
    pub(crate) fn timer_fired(&mut self) -> Option<Ended> {
        self.session.handle_timeout(Instant::now());
        match self.session.poll_event() {
            Some(Event::Failed(error)) => Some(Ended::failed(error)),
            Some(Event::Closed) => Some(Ended::closed()),
            Some(_) | None => None,
        }
    }

    /// The bytes the session queued, if any, in a buffer wiped when
    /// dropped (command lines may carry AUTH secrets).
    pub(crate) fn transmit(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::new());
        self.session.poll_transmit(&mut out).then_some(out)
    }

    /// Takes the events already queued behind an operation's outcome: the
    /// `Ready` that follows it, or a server that closed right after (a `421`
    /// in the same read as the final `250`: the mail stays accepted). True
    /// when the connection ended: the driver writes what is left and closes.
    pub(crate) fn settle(&mut self) -> bool {
        let mut ended = false;
        while let Some(event) = self.session.poll_event() {
            ended |= matches!(event, Event::Failed(_) | Event::Closed);
        }
        self.forward_trace();
        ended
    }

    /// Whether a failed mail left an RSET to finish before the next
    /// operation (the driver then runs until `Ready`); an error when the
    /// connection is closed.
    pub(crate) fn needs_reset(&self, open: bool) -> Result<bool, Error> {
        if self.session.is_idle() {
            return Ok(false);
        }
        if !open {
            return Err(Error::ApiMisuse(ApiMisuse::Closed));
        }
        Ok(true)
    }

    /// Hands the session what a read into `read_buffer` brought: bytes,
    /// the end of the stream, or (`None`) the passing of the deadline. An
    /// error it cannot judge is returned.
    pub(crate) fn feed(&mut self, read: Option<io::Result<usize>>) -> io::Result<()> {
        let now = Instant::now();
        match read {
            None => self.session.handle_timeout(now),
            Some(Ok(0)) => self.session.handle_eof(),
            Some(Ok(read)) => self.session.handle_input(now, &self.read_buffer[..read]),
            Some(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
            // A TLS peer that closes without close_notify: end of stream.
            Some(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                self.session.handle_eof();
            }
            Some(Err(error)) => return Err(error),
        }
        self.forward_trace();
        Ok(())
    }

    /// Encodes what was read of the body into `chunk` (`Ok(0)`: the end of
    /// the message) into `out`; true when the message is complete. A failed
    /// read closes the session, and the server discards what it got.
    pub(crate) fn encode_body(
        &mut self,
        read: io::Result<usize>,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        match read {
            Ok(filled) => encode_body(&mut self.session, &chunk[..filled], out),
            Err(error) => Err(message_unreadable(&mut self.session, error)),
        }
    }

    /// A failed read or write, and whether the socket is done with: after a
    /// TLS failure nothing more can be said on the connection, not even
    /// QUIT.
    pub(crate) fn io_failure(&mut self, phase: Phase, source: io::Error) -> (Error, bool) {
        let error = io_failure(&self.settings, phase, source);
        let over = is_tls_failure(&error);
        if over {
            self.session.quit(Instant::now());
        }
        (error, over)
    }

    /// The handshake succeeded: what it settled, and the session's next step.
    pub(crate) fn secured(&mut self, connection: &mut ClientConnection) -> Result<(), Error> {
        self.tls = Some(established(&self.settings, connection));
        self.session.tls_established(Instant::now())?;
        Ok(())
    }

    /// The handshake failed with `error` (`None`: its deadline passed);
    /// the session closes.
    pub(crate) fn handshake_failed(&mut self, error: Option<Error>) -> Error {
        match error {
            None => handshake_timed_out(&mut self.session),
            Some(error) => {
                self.session.quit(Instant::now());
                error
            }
        }
    }

    /// Starts a mail, once the session is idle.
    pub(crate) fn start_mail(
        &mut self,
        envelope: &Envelope,
        info: BodyInfo,
        options: &MailOptions,
    ) -> Result<(), Error> {
        self.session
            .start_mail_with(Instant::now(), envelope.clone(), info, options)?;
        Ok(())
    }

    /// The body is complete: QUIT goes behind it when asked for.
    pub(crate) fn body_sent(&mut self) {
        if self.quit_after_next {
            self.session.quit(Instant::now());
        }
    }

    /// The report of a mail's outcome.
    pub(crate) fn report(
        &self,
        delivery: Result<Delivery, SessionError>,
    ) -> Result<SendReport, Error> {
        Ok(report(delivery?, self.security, self.tls.clone()))
    }
}
