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
    ApiMisuse, BodyInfo, CommandKind, Credentials, Delivery, Domain, Envelope, Event, MailOptions,
    Phase, ProtocolError, Security, Session, SessionConfig, SessionError, Trace,
};
use zeroize::Zeroizing;

use crate::client::{SendReport, Settings, TlsDetails, TraceEvent};
use crate::error::Error;
use crate::proxy::{Handshake, Proxy, Target};
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

/// RFC 8305 5: how long a connection attempt may go unanswered before the
/// next address is tried beside it (Happy Eyeballs).
pub(crate) const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// RFC 8305 4: the addresses with the families interleaved, the resolver's
/// first family first (IPv6 and IPv4 alternate), each family in the
/// resolver's order. One family that does not work then costs one attempt
/// delay, not a connect timeout per address.
pub(crate) fn interleave_families(addresses: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addresses.first() else {
        return Vec::new();
    };
    let (mut preferred, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
        .iter()
        .partition(|address| address.is_ipv6() == first.is_ipv6());
    let mut order = Vec::with_capacity(addresses.len());
    preferred.reverse();
    other.reverse();
    while let Some(address) = preferred.pop() {
        order.push(address);
        if let Some(address) = other.pop() {
            order.push(address);
        }
    }
    order.extend(other.into_iter().rev());
    order
}

/// What the proxy is asked for: the mail server's name, or (with
/// `socks5://`, [`Proxy::resolves_locally`]) its first address, `resolved`
/// here.
pub(crate) fn proxy_target(host: &str, port: u16, resolved: Option<&[SocketAddr]>) -> Target {
    match resolved.and_then(|addresses| addresses.first()) {
        Some(address) => Target::Address(address.ip(), port),
        None => Target::Name(host.to_owned(), port),
    }
}

/// Connecting to the proxy's own address failed: the error names the proxy.
pub(crate) fn proxy_connect_failed(proxy: &Proxy, error: Error) -> Error {
    match error {
        Error::Connect { source, .. } => Error::Connect {
            target: format!("the proxy {proxy}"),
            source,
        },
        other => other,
    }
}

/// The TCP connection to the proxy is up: the handshake that asks it for
/// `target`, and its deadline (the connect timeout).
pub(crate) fn proxy_handshake(
    settings: &Settings,
    proxy: &Proxy,
    target: Target,
) -> Result<(Handshake, Instant), Error> {
    settings.note(format!("asking the proxy {proxy} for {target}"));
    let deadline = Instant::now() + settings.timeouts.connect;
    Ok((Handshake::new(proxy, target)?, deadline))
}

/// The proxy broke off or did not answer during its handshake.
pub(crate) fn proxy_io_failed(proxy: &Proxy, error: &io::Error) -> Error {
    let reason = if matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        "it did not answer within the connect timeout".to_owned()
    } else if error.kind() == io::ErrorKind::UnexpectedEof {
        "it closed the connection during its handshake".to_owned()
    } else {
        format!("its connection failed during the handshake: {error}")
    };
    Error::Proxy {
        proxy: proxy.to_string(),
        reason,
        temporary: true,
    }
}

/// Says which Unix socket is being tried; connecting to it failed.
pub(crate) fn note_connecting_unix(settings: &Settings, path: &std::path::Path) {
    settings.note(format!("connecting to the Unix socket {}", path.display()));
}

/// The Unix socket did not take the connection.
pub(crate) fn unix_connect_failed(path: &std::path::Path, error: io::Error) -> Error {
    Error::Connect {
        target: format!("the Unix socket {}", path.display()),
        source: error,
    }
}

/// Says which address is being tried.
pub(crate) fn note_connecting(settings: &Settings, address: &SocketAddr) {
    settings.note(format!("connecting to {address}"));
}

/// Where a send that moves to a new connection goes: the same port, with
/// the same protection (a fallback already made is not made again).
pub(crate) fn reconnect_target(conversation: &Conversation) -> (Arc<Settings>, u16, Security) {
    let settings = conversation.settings.clone();
    settings.note("the server gave up the idle connection; reconnecting".to_owned());
    (settings, conversation.port, conversation.security)
}

/// No address of the host took the connection.
pub(crate) fn connect_failed(settings: &Settings, port: u16, last: Option<io::Error>) -> Error {
    Error::Connect {
        target: format!("{}:{port}", settings.host),
        source: last.unwrap_or_else(|| io::Error::other("no address to connect to")),
    }
}

/// The credentials for a new connection: the configured ones, or a token
/// from the token source (which may fetch one, so this comes before the
/// connection is opened).
pub(crate) fn credentials(settings: &Settings) -> Result<Option<Credentials>, Error> {
    match &settings.token_source {
        Some((user, source)) => Ok(Some(Credentials::bearer_token(
            user.as_str(),
            source.token()?.as_str(),
        ))),
        None => Ok(settings.credentials.clone()),
    }
}

/// The session for a connection made at `now` from `local_ip` with
/// `security` (plaintext only reaches here for loopback addresses).
pub(crate) fn session(
    settings: &Settings,
    credentials: Option<Credentials>,
    security: Security,
    local_ip: Option<IpAddr>,
    now: Instant,
) -> Session {
    let ehlo_name = match &settings.ehlo_name {
        Some(name) => name.clone(),
        None => default_ehlo_name(local_ip),
    };
    let mut config = SessionConfig::new(ehlo_name, security);
    config.protocol = settings.protocol;
    config.credentials = credentials;
    config.auth_mechanisms = settings.auth_mechanisms.clone();
    config.allow_plaintext_auth = security == Security::DangerousPlaintext;
    config.recipient_policy = settings.recipient_policy;
    config.use_pipelining = settings.pipelining;
    config.use_chunking = settings.chunking;
    config.timeouts = settings.timeouts;
    config.trace = settings.traces();
    config.sasl_nonce = scram_nonce();
    Session::new(config, now)
}

/// A fresh nonce for SCRAM: 18 random bytes from the provider rustls uses,
/// in base64 (no comma). Without a random source, SCRAM is not offered to
/// the session rather than run with a guessable nonce.
fn scram_nonce() -> Option<String> {
    use aws_lc_rs::rand::SecureRandom as _;
    use base64::Engine as _;
    let mut bytes = [0u8; 18];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
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
/// the first read after it. Either way the driver closes without another
/// word.
pub(crate) fn io_failure(settings: &Settings, phase: Phase, source: io::Error) -> Error {
    match tls::rustls_error(&source) {
        // An alert: the server's word (a refused client certificate...).
        Some(tls_error @ rustls::Error::AlertReceived(_)) => tls_failure(settings, tls_error),
        Some(tls_error) => Error::Tls {
            reason: format!(
                "the TLS session with {} broke after the handshake ({phase:?}): {tls_error}",
                settings.host
            ),
            source: Some(tls_error),
        },
        None => Error::Io { phase, source },
    }
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
        settings.emit(&match line {
            Trace::Client(text) => TraceEvent::Client(text),
            Trace::Server(text) => TraceEvent::Server(text),
        });
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

/// Judges an event while QUIT's reply is awaited: a late RCPT verdict or
/// the idle session is passed over; anything else ends the wait.
pub(crate) fn quit_step(event: Event) -> Result<(), Error> {
    match event {
        Event::Ready | Event::RecipientRejected { .. } => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// What the wait for QUIT's reply comes to: the session closing after the
/// reply, as it should, is success.
pub(crate) fn quit_outcome(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(Error::ApiMisuse(ApiMisuse::Closed)) | Ok(()) => Ok(()),
        Err(error) => Err(error),
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
    let accepted = delivery
        .recipients
        .iter()
        .filter(|outcome| outcome.accepted())
        .count();
    let recipients = delivery.recipients.len();
    tracing::info!(
        target: "tls_mailer",
        accepted,
        recipients,
        "accepted for {accepted} of {recipients} recipients: {}",
        delivery.reply
    );
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
    /// The body chunk and its encoding, kept between the mails of the
    /// connection: a small mail does not allocate and zero 64 KiB again.
    body_buffers: Option<(Vec<u8>, Vec<u8>)>,
    /// The server stopped reading (a write met a broken pipe or a reset,
    /// typically after a `421` and close while pipelined mails were still
    /// being written): what is written from now on is dropped, and the
    /// replies it sent before are still read, so the mails they answer get
    /// their outcome instead of an unknown one.
    pub(crate) writes_lost: bool,
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
        credentials: Option<Credentials>,
        port: u16,
        security: Security,
        local_ip: Option<IpAddr>,
    ) -> Self {
        Self {
            session: session(&settings, credentials, security, local_ip, Instant::now()),
            settings,
            port,
            security,
            quit_after_next: false,
            tls: None,
            read_buffer: vec![0; READ_BUFFER],
            body_buffers: None,
            writes_lost: false,
        }
    }

    /// The buffers a body is streamed through (a chunk read from the
    /// message, and its encoding); give them back with
    /// [`Conversation::keep_body_buffers`].
    pub(crate) fn take_body_buffers(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.body_buffers.take().unwrap_or_else(|| {
            (
                vec![0; BODY_CHUNK],
                Vec::with_capacity(BODY_CHUNK + BODY_CHUNK / 8),
            )
        })
    }

    /// Keeps the body buffers for the next mail.
    pub(crate) fn keep_body_buffers(&mut self, chunk: Vec<u8>, mut out: Vec<u8>) {
        out.clear();
        self.body_buffers = Some((chunk, out));
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

    /// Says QUIT unless the driver cannot (`open` false) or the session
    /// already closed; whether its reply is then to be awaited.
    pub(crate) fn start_quit(&mut self, open: bool) -> bool {
        if !open || self.session.phase() == Phase::Closed {
            return false;
        }
        self.session.quit(Instant::now());
        true
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

    /// A failed read or write: the socket is done with (reset, broken, or
    /// a TLS failure after which nothing can be said, not even QUIT), so
    /// the session closes and no mail on it is reported accepted.
    pub(crate) fn io_failure(&mut self, phase: Phase, source: io::Error) -> Error {
        // A refusal the server gave before the socket failed is the mail's
        // outcome (a 552 to a BDAT chunk, then a server that breaks off).
        let error = match self.session.take_refusal() {
            Some(refusal) => refusal.into(),
            None => io_failure(&self.settings, phase, source),
        };
        self.session.quit(Instant::now());
        self.session.handle_eof();
        error
    }

    /// A write failed with `error`: true when it means the server stopped
    /// reading, and writing stops while its replies are still read.
    pub(crate) fn write_refused(&mut self, error: &io::Error) -> bool {
        let stopped_reading = matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ) && tls::rustls_error(error).is_none();
        if stopped_reading && !self.session.is_closed() {
            self.settings.note(format!(
                "the server stopped reading ({error}); reading its last replies"
            ));
        }
        self.writes_lost |= stopped_reading;
        stopped_reading
    }

    /// The handshake succeeded: what it settled, and the session's next step.
    pub(crate) fn secured(&mut self, connection: &mut ClientConnection) -> Result<(), Error> {
        self.tls = Some(established(&self.settings, connection));
        // Channel binding for SCRAM-SHA-256-PLUS: the TLS 1.3 exporter only
        // (RFC 9266 2: over TLS 1.2 it needs extended master secret).
        if connection.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
            && let Ok(exporter) =
                connection.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        {
            self.session.set_channel_binding(exporter);
        }
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

/// What the server did with an idle connection, as a look at its socket
/// without blocking (a peek) tells: `None` when nothing is there to read.
pub(crate) fn left_while_idle(peeked: Option<io::Result<usize>>) -> bool {
    match peeked {
        // Nothing waiting: the server has not spoken.
        None => false,
        Some(Err(error)) if error.kind() == io::ErrorKind::WouldBlock => false,
        Some(Err(error)) if error.kind() == io::ErrorKind::Interrupted => false,
        // The end of the stream, a reset, or bytes nobody asked for (a `421`,
        // a TLS alert or close_notify): an idle connection with any of these
        // is going away.
        Some(Ok(_) | Err(_)) => true,
    }
}

/// A connection's life as a pool and the reconnect rule see it: when it was
/// opened, how many mails it carried, since when it is idle, and whether the
/// send in progress may still move to a new connection.
///
/// The reconnect rule: a send may open a new connection, once, when the
/// connection it was given was not opened for it (it waited idle for the
/// caller, since it was opened or since its last operation), and either
///
/// - before the mail, a look at the idle socket finds the server gone
///   ([`left_while_idle`]): nothing of the mail was written; or
/// - the mail failed before any reply to its MAIL FROM and before any byte
///   of its body was handed over: a `421` to MAIL FROM, or the connection
///   closed or broken while that reply was due ([`refused_before_mail`]).
///   Replies come in order, so the server answered nothing after MAIL
///   either: it cannot have taken the message.
///
/// Anything later (a reply to MAIL came, or the body began) is reported,
/// never resent, so a message is never delivered twice.
#[derive(Debug)]
pub(crate) struct Reuse {
    opened: Instant,
    idle_since: Instant,
    mails: u32,
    /// The send in progress may still reconnect.
    may_reconnect: bool,
    /// The send in progress has started its mail (MAIL FROM is queued).
    in_mail: bool,
    /// The session asked for the body of the mail in progress.
    body_started: bool,
    /// The body of the send in progress can be read again (bytes in
    /// memory, not a reader).
    replayable: bool,
}

impl Reuse {
    /// A connection opened just now.
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Self {
            opened: now,
            idle_since: now,
            mails: 0,
            may_reconnect: false,
            in_mail: false,
            body_started: false,
            replayable: false,
        }
    }

    /// A send begins on this connection, which waited idle for the caller
    /// (the rule never applies to a one-shot connection, opened for this
    /// very message). True when the driver is to look at its socket first:
    /// when no reply is due on it. A reply still due (the RSET after a
    /// failed mail, whose answer may be waiting in the socket) is read
    /// instead, and a server gone meanwhile fails that RSET, before the mail.
    pub(crate) fn begin_send(&mut self, conversation: &Conversation, replayable: bool) -> bool {
        self.may_reconnect = !conversation.quit_after_next;
        self.replayable = replayable;
        self.in_mail = false;
        self.body_started = false;
        let session = &conversation.session;
        self.may_reconnect && session.is_idle() && !session.wants_read()
    }

    /// The new connection of a send that reconnected: it may not move again.
    pub(crate) fn reconnected(&mut self) {
        self.may_reconnect = false;
    }

    /// A mail starts (counted for the pool's cap per connection).
    pub(crate) fn mail_started(&mut self) {
        self.mails += 1;
        self.in_mail = true;
        self.body_started = false;
    }

    /// The session asked for the body: from now on the mail is never resent.
    pub(crate) fn body_started(&mut self) {
        self.body_started = true;
    }

    /// Whether a send that failed with `error` moves to a new connection:
    /// before its mail began (finishing the RSET of an earlier mail), when
    /// the connection was lost; during it, by [`refused_before_mail`].
    /// Spends the send's one reconnect.
    pub(crate) fn retry_after(&mut self, error: &Error) -> bool {
        let safe = match (self.in_mail, self.body_started) {
            (false, _) => connection_lost(error),
            (true, false) => refused_before_mail(error),
            // With CHUNKING and PIPELINING the body leaves with MAIL. A 421
            // to MAIL still means the server took nothing of it (without
            // MAIL it refuses the BDAT too); bytes in memory can go again,
            // a reader already read cannot.
            (true, true) => {
                self.replayable
                    && matches!(
                        error,
                        Error::Rejected(rejection)
                            if rejection.command == CommandKind::MailFrom
                                && rejection.is_service_closing()
                    )
            }
        };
        let retry = self.may_reconnect && safe;
        self.may_reconnect &= !retry;
        retry
    }

    /// An operation ended: the connection is idle from now.
    pub(crate) fn operation_done(&mut self) {
        self.idle_since = Instant::now();
        self.may_reconnect = false;
    }

    /// [`Reuse::operation_done`], passing the operation's outcome through.
    pub(crate) fn operation_done_with<T>(&mut self, outcome: T) -> T {
        self.operation_done();
        outcome
    }

    /// When the connection was opened.
    pub(crate) fn opened(&self) -> Instant {
        self.opened
    }

    /// Since when the connection is idle.
    pub(crate) fn idle_since(&self) -> Instant {
        self.idle_since
    }

    /// How many mails were started on it.
    pub(crate) fn mails(&self) -> u32 {
        self.mails
    }
}

/// The connection is gone: closed, broken, or closing with a `421`.
fn connection_lost(error: &Error) -> bool {
    match error {
        Error::Rejected(rejection) => rejection.is_service_closing(),
        Error::Protocol(ProtocolError::ConnectionClosed { .. })
        | Error::Io { .. }
        | Error::ServiceClosing(_) => true,
        _ => false,
    }
}

/// The server refused or never read the MAIL FROM of a mail: a `421` to
/// it, or the connection closed or broken while its reply was due. A
/// timeout is not among them (a slow server may yet act on it).
pub(crate) fn refused_before_mail(error: &Error) -> bool {
    match error {
        Error::Rejected(rejection) => {
            rejection.command == CommandKind::MailFrom && rejection.is_service_closing()
        }
        Error::Protocol(ProtocolError::ConnectionClosed { awaiting }) => {
            *awaiting == Some(CommandKind::MailFrom)
        }
        Error::Io { phase, .. } => *phase == Phase::MailFrom,
        _ => false,
    }
}

#[cfg(test)]
mod reconnect_rule_tests {
    use tls_mailer_proto::{Rejection, Reply, ReplyCode};

    use super::*;

    fn rejected(command: CommandKind, code: u16) -> Error {
        let reply = Reply::new(ReplyCode::new(code).unwrap(), vec!["4.3.2 bye".into()]);
        Error::Rejected(Rejection { command, reply })
    }

    fn closed(awaiting: Option<CommandKind>) -> Error {
        Error::Protocol(ProtocolError::ConnectionClosed { awaiting })
    }

    fn io(phase: Phase) -> Error {
        Error::Io {
            phase,
            source: io::ErrorKind::ConnectionReset.into(),
        }
    }

    /// A send in progress on a connection that waited idle.
    fn sending() -> Reuse {
        let mut reuse = Reuse::new();
        reuse.may_reconnect = true;
        reuse
    }

    #[test]
    fn only_a_refused_or_unanswered_mail_from_is_sent_again() {
        for error in [
            rejected(CommandKind::MailFrom, 421),
            closed(Some(CommandKind::MailFrom)),
            io(Phase::MailFrom),
        ] {
            assert!(refused_before_mail(&error), "{error:?}");
        }
        for error in [
            rejected(CommandKind::MailFrom, 451),
            rejected(CommandKind::RcptTo, 421),
            rejected(CommandKind::DataEnd, 421),
            closed(Some(CommandKind::RcptTo)),
            closed(Some(CommandKind::DataEnd)),
            io(Phase::RcptTo),
            io(Phase::DataBlock),
            io(Phase::DataEnd),
            Error::Timeout {
                phase: Phase::MailFrom,
            },
        ] {
            assert!(!refused_before_mail(&error), "{error:?}");
        }
    }

    #[test]
    fn a_send_moves_once_and_never_after_its_body_began() {
        let mut reuse = sending();
        reuse.mail_started();
        assert!(reuse.retry_after(&rejected(CommandKind::MailFrom, 421)));
        assert!(
            !reuse.retry_after(&rejected(CommandKind::MailFrom, 421)),
            "once"
        );

        let mut reuse = sending();
        reuse.mail_started();
        reuse.body_started();
        assert!(!reuse.retry_after(&closed(Some(CommandKind::MailFrom))));

        // Before its mail began (finishing an earlier mail's RSET), a lost
        // connection moves the send; a refusal of the mail itself does not.
        let mut reuse = sending();
        assert!(reuse.retry_after(&closed(Some(CommandKind::Rset))));
        let mut reuse = sending();
        assert!(!reuse.retry_after(&Error::Unsupported(tls_mailer_proto::Unsupported::Dsn)));

        // Not on a connection that did not wait (a one-shot send, a reconnect).
        let mut reuse = Reuse::new();
        reuse.mail_started();
        assert!(!reuse.retry_after(&rejected(CommandKind::MailFrom, 421)));
    }

    #[test]
    fn an_idle_socket_with_anything_to_read_is_going_away() {
        assert!(!left_while_idle(None));
        assert!(!left_while_idle(Some(
            Err(io::ErrorKind::WouldBlock.into())
        )));
        assert!(left_while_idle(Some(Ok(0))));
        assert!(left_while_idle(Some(Ok(1))));
        assert!(left_while_idle(Some(Err(
            io::ErrorKind::ConnectionReset.into()
        ))));
    }
}

#[cfg(test)]
mod happy_eyeballs_tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    #[test]
    fn happy_eyeballs_interleaves_the_families_first_family_first() {
        let address = |text: &str| text.parse::<SocketAddr>().unwrap();
        let v6a = address("[2001:db8::1]:465");
        let v6b = address("[2001:db8::2]:465");
        let v4a = address("192.0.2.1:465");
        let v4b = address("192.0.2.2:465");
        let v4c = address("192.0.2.3:465");
        assert_eq!(
            interleave_families(&[v6a, v6b, v4a, v4b, v4c]),
            [v6a, v4a, v6b, v4b, v4c]
        );
        assert_eq!(interleave_families(&[v4a, v6a, v4b]), [v4a, v6a, v4b]);
        assert_eq!(interleave_families(&[v4a, v4b]), [v4a, v4b]);
        assert!(interleave_families(&[]).is_empty());
    }
}

/// A loopback address whose SYNs are dropped, for the Happy Eyeballs tests
/// of both drivers: a listener on 127.0.0.2 whose accept queue is full, so
/// a connect to it hangs. Keep the listener and the streams alive.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // test support: a panic is a test failure
pub(crate) fn black_hole() -> (std::net::TcpListener, Vec<std::net::TcpStream>, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut held = Vec::new();
    while let Ok(stream) =
        std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200))
    {
        held.push(stream);
        assert!(held.len() < 10_000, "the accept queue never filled");
    }
    (listener, held, address)
}
