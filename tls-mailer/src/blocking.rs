//! The blocking driver: std::net + rustls around the sans-IO [`Session`](tls_mailer_proto::Session).
//! It moves bytes, arms the one deadline the session gives, does TLS when
//! told and streams the body; every SMTP decision, and every deadline, is
//! the session's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use tls_mailer_message::Email;
use tls_mailer_proto::{
    ApiMisuse, BodyDemand, BodyInfo, Capabilities, Credentials, Envelope, Event, MailOptions,
    Phase, Security,
};

use crate::batch::{BatchStep, Mail, Pipeline};
use crate::client::{SendReport, Settings, TlsDetails};
use crate::driver::{self, Conversation, Ended, MailStep, Next, Reuse, unexpected};
use crate::error::Error;
use crate::{signing, tls};

/// The pipeline of a blocking batch: bodies boxed, so signing can swap them.
type BatchPipeline<'m, I> = Pipeline<I, Box<dyn Read + 'm>>;

/// What a mail's body is read from: bytes in memory can be read again
/// for a resend, a reader only once.
enum Body<'b> {
    Bytes(&'b [u8]),
    Reader(&'b mut dyn Read),
}

/// The socket, before or after TLS; a Unix socket never has TLS.
enum Stream {
    Plain(TcpStream),
    Unix(UnixStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket, if this is one.
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Plain(tcp) => Some(tcp),
            Self::Tls(tls) => Some(&tls.sock),
            Self::Unix(_) => None,
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Unix(unix) => unix.set_read_timeout(timeout),
            _ => self
                .tcp()
                .map_or(Ok(()), |tcp| tcp.set_read_timeout(timeout)),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Unix(unix) => unix.set_write_timeout(timeout),
            _ => self
                .tcp()
                .map_or(Ok(()), |tcp| tcp.set_write_timeout(timeout)),
        }
    }
}

impl Stream {
    /// Reads without writing first (a TLS stream writes its pending records
    /// before a read, which fails once the server stopped reading).
    fn read_only(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Self::Tls(tls) = self else {
            return self.read(buf);
        };
        loop {
            match tls.conn.reader().read(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                read => return read,
            }
            if tls.conn.read_tls(&mut tls.sock)? == 0 {
                return Ok(0);
            }
            tls.conn
                .process_new_packets()
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Unix(unix) => unix.read(buf),
            Self::Tls(tls) => match tls.read(buf) {
                // A record that does not decrypt fails the read even when
                // good records came before it: hand those over first (the
                // error comes again on the next read).
                Err(error) => match tls.conn.reader().read(buf) {
                    Ok(read) if read > 0 => Ok(read),
                    _ => Err(error),
                },
                read => read,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Unix(unix) => unix.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Unix(unix) => unix.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}

/// Resolves `host:port`; every address, in the resolver's order.
pub(crate) fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    driver::resolved(host, (driver::lookup_name(host)?, port).to_socket_addrs())
}

fn connect_tcp(
    settings: &Settings,
    addresses: &[SocketAddr],
    port: u16,
) -> Result<TcpStream, Error> {
    let note = |address: &SocketAddr| driver::note_connecting(settings, address);
    match connect_first(addresses, settings.timeouts.connect, &note) {
        Ok(tcp) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Err(error) => Err(driver::connect_failed(settings, port, error)),
    }
}

/// Happy Eyeballs (RFC 8305): the addresses, families interleaved, each
/// given `timeout`; the next starts when the one before fails or stays
/// unanswered for [`driver::CONNECTION_ATTEMPT_DELAY`], and the first to
/// connect wins (the others are closed when they finish). The last error
/// if none connects.
fn connect_first(
    addresses: &[SocketAddr],
    timeout: Duration,
    note: &dyn Fn(&SocketAddr),
) -> Result<TcpStream, Option<io::Error>> {
    let order = driver::interleave_families(addresses);
    if let [only] = order[..] {
        note(&only);
        return TcpStream::connect_timeout(&only, timeout).map_err(Some);
    }
    let (sender, results) = std::sync::mpsc::channel();
    let mut waiting = order.into_iter();
    let mut running = 0;
    let mut last_error = None;
    // Each turn starts the next attempt: at first, after a failure, or
    // after an attempt delay without an answer.
    loop {
        if let Some(address) = waiting.next() {
            note(&address);
            let sender = sender.clone();
            std::thread::spawn(move || {
                let _ = sender.send(TcpStream::connect_timeout(&address, timeout));
            });
            running += 1;
        }
        if running == 0 {
            return Err(last_error);
        }
        let more = waiting.len() > 0;
        let result = if more {
            results.recv_timeout(driver::CONNECTION_ATTEMPT_DELAY)
        } else {
            results
                .recv()
                .map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected)
        };
        match result {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(error)) => {
                running -= 1;
                last_error = Some(error);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(last_error),
        }
    }
}

/// The TCP connection to the mail server: direct, or through the proxy's
/// tunnel once its handshake is done.
fn open_tcp(settings: &Settings, port: u16, security: Security) -> Result<TcpStream, Error> {
    let Some(proxy) = &settings.proxy else {
        let addresses = resolve(&settings.host, port)?;
        driver::check_plaintext(settings, security, &addresses)?;
        return connect_tcp(settings, &addresses, port);
    };
    let resolved = if proxy.resolves_locally() {
        Some(resolve(&settings.host, port)?)
    } else {
        None
    };
    let target = driver::proxy_target(&settings.host, port, resolved.as_deref());
    let addresses = resolve(proxy.host(), proxy.port())?;
    let mut tcp = connect_tcp(settings, &addresses, proxy.port())
        .map_err(|error| driver::proxy_connect_failed(proxy, error))?;
    let (mut handshake, deadline) = driver::proxy_handshake(settings, proxy, target)?;
    let mut buffer = [0u8; 512];
    loop {
        let out = handshake.transmit();
        if !out.is_empty() {
            let _ = tcp.set_write_timeout(Some(remaining(deadline)));
            tcp.write_all(&out)
                .map_err(|error| driver::proxy_io_failed(proxy, &error))?;
        }
        if handshake.is_done() {
            return Ok(tcp);
        }
        let wanted = handshake.wants().min(buffer.len());
        let _ = tcp.set_read_timeout(Some(remaining(deadline)));
        match tcp.read(&mut buffer[..wanted]) {
            Ok(0) => {
                let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                return Err(driver::proxy_io_failed(proxy, &eof));
            }
            Ok(read) => handshake.feed(&buffer[..read])?,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(driver::proxy_io_failed(proxy, &error)),
        }
    }
}

/// A verified TLS stream to `settings.host` on `port`, directly or through
/// the proxy, for a request that is not SMTP (the OAuth token endpoint):
/// the same connect, proxy and certificate checks as a mail connection.
pub(crate) fn open_tls(
    settings: &Settings,
    port: u16,
) -> Result<StreamOwned<ClientConnection, TcpStream>, Error> {
    let tcp = open_tcp(settings, port, Security::ImplicitTls)?;
    let deadline = Instant::now() + settings.timeouts.tls_handshake;
    handshake(settings, tcp, port, Security::ImplicitTls, deadline).map_err(|failure| match failure
    {
        HandshakeFailure::Timeout => Error::Timeout {
            phase: Phase::TlsHandshake,
        },
        HandshakeFailure::Error(error) => error,
    })
}

/// Records the first bytes the server sends during the handshake, so the
/// engine can tell a plaintext SMTP server from a TLS failure.
struct Sniffer<'a> {
    tcp: &'a mut TcpStream,
    first_bytes: Vec<u8>,
}

impl Read for Sniffer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.tcp.read(buf)?;
        driver::sniff_into(&mut self.first_bytes, &buf[..read]);
        Ok(read)
    }
}

impl Write for Sniffer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Time left until `deadline`, for a socket timeout (never zero, which
/// std would refuse).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// An open SMTP connection, greeted, encrypted and authenticated as the
/// [`crate::Client`] was configured, that sends any number of messages.
/// Get one from [`crate::Client::connect`]; QUIT is sent by
/// [`Connection::quit`], or (bounded by the QUIT deadline) on drop.
///
/// ```no_run
/// use tls_mailer::{Client, Credentials, Envelope};
///
/// let client = Client::builder("smtp.example.org")
///     .credentials(Credentials::new("alice@example.org", "app-password"))
///     .build()?;
/// let mut connection = client.connect()?;
/// for to in ["bob@example.org", "carol@example.org"] {
///     let envelope = Envelope::new("alice@example.org", [to])?;
///     let report = connection.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n")?;
///     println!("{to}: {}", report.reply);
/// }
/// connection.noop()?; // still there?
/// connection.quit()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Connection {
    conversation: Conversation,
    stream: Option<Stream>,
    reuse: Reuse,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.conversation.describe("Connection", f)
    }
}

impl Connection {
    /// Connects to `port` with `security` (never the fallback mode: the
    /// client resolves that) and drives the session until it is idle.
    pub(crate) fn open(
        settings: Arc<Settings>,
        credentials: Option<Credentials>,
        port: u16,
        security: Security,
    ) -> Result<Self, Error> {
        let (stream, local_ip) = match &settings.socket {
            // No TLS over a Unix socket (the client's builder made sure of
            // it): its file permissions protect it.
            Some(path) => {
                driver::note_connecting_unix(&settings, path);
                let unix = UnixStream::connect(path)
                    .map_err(|error| driver::unix_connect_failed(path, error))?;
                (Stream::Unix(unix), None)
            }
            None => {
                let tcp = open_tcp(&settings, port, security)?;
                let local_ip = tcp.local_addr().map(|address| address.ip()).ok();
                (Stream::Plain(tcp), local_ip)
            }
        };
        let mut connection = Self {
            conversation: Conversation::new(settings, credentials, port, security, local_ip),
            stream: Some(stream),
            reuse: Reuse::new(),
        };
        connection.run(|_, event| match event {
            Event::Ready => Ok(Some(())),
            other => Err(unexpected(other)),
        })?;
        Ok(connection)
    }

    /// Sends a message held in memory (RFC 5322 bytes; line endings are
    /// normalised to CRLF on the wire, and SIZE declares that size), with
    /// the client's [`MailOptions`].
    pub fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<SendReport, Error> {
        let settings = self.conversation.settings.clone();
        self.send_with(envelope, message, &settings.mail_options)
    }

    /// [`Connection::send`] with `options` for this message (delivery
    /// status notifications, REQUIRETLS, SMTPUTF8 for the header) instead
    /// of the client's. What the server does not offer is refused before
    /// anything is sent, and the connection stays usable.
    ///
    /// ```no_run
    /// use tls_mailer::{Address, Client, Dsn, Envelope, MailOptions, Notify, RecipientDsn};
    ///
    /// let mut connection = Client::builder("smtp.example.org").build()?.connect()?;
    /// let bob = Address::new("bob@example.org")?;
    /// let dsn = Dsn::new().recipient(&bob, RecipientDsn::new().notify(Notify::FAILURE).orcpt(&bob)?);
    /// let options = MailOptions::new().with_dsn(dsn).with_dsn_optional(true);
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// connection.send_with(&envelope, b"Subject: hi\r\n\r\nHello\r\n", &options)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        options: &MailOptions,
    ) -> Result<SendReport, Error> {
        if let Some(signer) = &self.conversation.settings.dkim {
            let signed = signing::sign_bytes(signer, message)?;
            let info = BodyInfo::of(&signed);
            return self.transmit_with(envelope, Body::Bytes(&signed), info, options);
        }
        self.transmit_with(
            envelope,
            Body::Bytes(message),
            BodyInfo::of(message),
            options,
        )
    }

    /// Sends a message read from `message` in constant memory. `info` says
    /// what is known of it in advance (its size on the wire for SIZE, its
    /// 8-bit-ness). With DKIM signing configured, the message is first
    /// spooled to a private temporary file (signing needs a pass over the
    /// whole body).
    pub fn send_reader(
        &mut self,
        envelope: &Envelope,
        message: &mut dyn Read,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        let settings = self.conversation.settings.clone();
        self.send_reader_with(envelope, message, info, &settings.mail_options)
    }

    /// [`Connection::send_reader`] with `options` for this message instead
    /// of the client's.
    pub fn send_reader_with(
        &mut self,
        envelope: &Envelope,
        message: &mut dyn Read,
        info: BodyInfo,
        options: &MailOptions,
    ) -> Result<SendReport, Error> {
        let settings = self.conversation.settings.clone();
        let mail = signing::prepare(
            &settings,
            Mail::new(envelope.clone(), Box::new(message), info),
        )?;
        let info = mail.info();
        self.transmit_with(envelope, Body::Reader(&mut mail.into_body()), info, options)
    }

    /// Sends several messages, pipelined (RFC 2920): each message's
    /// commands and body go out as soon as the one before is written,
    /// without waiting for its reply, up to a window of mails in flight;
    /// with CHUNKING a small message is one write. Each message gets its
    /// own outcome, in order. A refused message (or recipient) is an
    /// outcome like any other; the connection stays open.
    ///
    /// When the connection ends midway, the message whose reply was due
    /// gets the error, those after it in flight an error saying their
    /// outcome is unknown, and the results stop there: the messages not in
    /// them were never started, so they can be sent again on another
    /// connection. With DKIM signing configured, each message is signed
    /// first (spooled like [`Connection::send_reader`]).
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Envelope, Mail};
    ///
    /// let mut connection = Client::builder("smtp.example.org").build()?.connect()?;
    /// let messages = [b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"];
    /// let mails = messages.iter().map(|message| {
    ///     let envelope = Envelope::new("alice@example.org", ["bob@example.org"]).unwrap();
    ///     Mail::from_bytes(envelope, &message[..])
    /// });
    /// for result in connection.send_batch(mails) {
    ///     match result {
    ///         Ok(report) => println!("queued as {:?}", report.queue_id),
    ///         Err(error) => eprintln!("not sent: {error}"),
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch<'m, R: Read + 'm>(
        &mut self,
        mails: impl IntoIterator<Item = Mail<R>>,
    ) -> Vec<Result<SendReport, Error>> {
        let options = self.conversation.settings.mail_options.clone();
        let boxed = mails.into_iter().map(Mail::boxed);
        let mut pipeline = Pipeline::new(boxed, options);
        let outcome = self.wait_until_idle().and_then(|()| {
            self.start_more(&mut pipeline);
            if pipeline.is_done() {
                return Ok(());
            }
            self.run(|connection, event| {
                if let BatchStep::SendBody = pipeline.on_event(event, &connection.conversation)?
                    && let Some(mut body) = pipeline.take_body()
                {
                    connection.stream_body(&mut body)?;
                }
                connection.start_more(&mut pipeline);
                Ok(pipeline.is_done().then_some(()))
            })
        });
        self.settle();
        if let Err(error) = outcome {
            pipeline.fail(error);
        }
        pipeline.finish()
    }

    /// Starts the batch's next mails while the session takes them.
    fn start_more<'m>(
        &mut self,
        pipeline: &mut BatchPipeline<'m, impl Iterator<Item = Mail<Box<dyn Read + 'm>>>>,
    ) {
        let settings = self.conversation.settings.clone();
        while let Some((index, mail)) = pipeline.next_to_start(&self.conversation) {
            match signing::prepare(&settings, mail) {
                Ok(mail) => pipeline.start(index, &mut self.conversation, mail),
                Err(error) => pipeline.refuse(index, error),
            }
        }
    }

    /// Sends an [`Email`]: checks it ([`Email::validate`] and the client's
    /// required sender), takes its envelope, and sends the exported
    /// message, in which Bcc never appears.
    ///
    /// The message is streamed ([`Email::reader`]): attachments read from
    /// files are read and encoded as they are sent, so memory does not grow
    /// with their size. SIZE declares the exact size, known in advance.
    /// With DKIM signing configured, a first pass over the message signs it
    /// ([`DkimSigner::signed_reader`](tls_mailer_message::DkimSigner::signed_reader))
    /// and the second one sends it: no temporary copy. An attachment file
    /// that cannot be read while sending is [`Error::ReadMessage`] naming it
    /// (before the first byte: [`Error::Message`]), and the mail is not
    /// completed.
    pub fn send_email(&mut self, email: &Email) -> Result<SendReport, Error> {
        self.conversation.settings.check_email(email)?;
        let envelope = email.envelope()?;
        let mut message = match &self.conversation.settings.dkim {
            Some(signer) => signer.signed_reader(email)?,
            None => email.reader()?,
        };
        let info = BodyInfo {
            size: Some(message.size()),
            eight_bit: Some(message.is_eight_bit()),
            binary: false,
        };
        // Signed already when a signer is configured: sent as it is.
        self.transmit(&envelope, &mut message, info)
    }

    /// Checks that the server is still there (NOOP).
    pub fn noop(&mut self) -> Result<(), Error> {
        self.wait_until_idle()?;
        self.conversation.session.noop(Instant::now())?;
        self.run(|_, event| match event {
            Event::Ready => Ok(Some(())),
            other => Err(unexpected(other)),
        })?;
        self.settle();
        self.reuse.operation_done();
        Ok(())
    }

    /// Says QUIT, waits (at most the QUIT deadline) for the reply and closes.
    /// A failed QUIT is reported but changes nothing already sent.
    pub fn quit(mut self) -> Result<(), Error> {
        self.close_politely()
    }

    /// The connection can carry another message: open and not quitting.
    pub fn is_open(&self) -> bool {
        self.stream.is_some() && !self.conversation.session.is_closed()
    }

    /// How the connection is protected: [`Security::ImplicitTls`],
    /// [`Security::StartTls`] or [`Security::DangerousPlaintext`].
    pub fn security(&self) -> Security {
        self.conversation.security
    }

    /// What the server offered in its last EHLO (after TLS): SIZE, DSN,
    /// AUTH mechanisms, ...
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.conversation.session.capabilities()
    }

    /// The TLS version, cipher suite and certificate subject, when TLS is up.
    pub fn tls(&self) -> Option<TlsDetails> {
        self.conversation.tls.clone()
    }

    /// When it was opened, how many mails it carried, since when it is idle.
    pub(crate) fn reuse(&self) -> &Reuse {
        &self.reuse
    }

    /// The next message goes out with QUIT behind its last bytes (one write
    /// fewer for a one-shot send).
    pub(crate) fn quit_after_next_message(&mut self) {
        self.conversation.quit_after_next = true;
    }

    /// One mail: start it, stream the body when the session asks, and
    /// return its outcome. The connection stays open unless it failed. The
    /// body is sent as it is (the outbox stores messages already signed).
    pub(crate) fn transmit(
        &mut self,
        envelope: &Envelope,
        body: &mut dyn Read,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        let settings = self.conversation.settings.clone();
        self.transmit_with(envelope, Body::Reader(body), info, &settings.mail_options)
    }

    /// [`Connection::transmit`] with these options. A connection that
    /// waited idle may have been closed by the server meanwhile: the mail
    /// then moves, once, to a new connection, by the rule of [`Reuse`].
    fn transmit_with(
        &mut self,
        envelope: &Envelope,
        mut body: Body<'_>,
        info: BodyInfo,
        options: &MailOptions,
    ) -> Result<SendReport, Error> {
        let replayable = matches!(body, Body::Bytes(_));
        if self.reuse.begin_send(&self.conversation, replayable) && self.server_left() {
            self.reconnect()?;
        }
        loop {
            let result = match &mut body {
                Body::Bytes(bytes) => self.mail(envelope, &mut &bytes[..], info, options),
                Body::Reader(reader) => self.mail(envelope, &mut **reader, info, options),
            };
            match result {
                Err(error) if self.reuse.retry_after(&error) => self.reconnect()?,
                result => break self.reuse.operation_done_with(result),
            }
        }
    }

    /// One attempt at a mail on this connection.
    fn mail(
        &mut self,
        envelope: &Envelope,
        body: &mut dyn Read,
        info: BodyInfo,
        options: &MailOptions,
    ) -> Result<SendReport, Error> {
        self.wait_until_idle()?;
        self.conversation.start_mail(envelope, info, options)?;
        self.reuse.mail_started();
        let delivery = self.run(|connection, event| match driver::mail_step(event)? {
            MailStep::SendBody => {
                connection.reuse.body_started();
                connection.stream_body(body)?;
                connection.conversation.body_sent();
                Ok(None)
            }
            MailStep::Continue => Ok(None),
            MailStep::Done(outcome) => Ok(Some(outcome)),
        });
        self.settle();
        self.conversation.report(delivery?)
    }

    /// Whether the server closed (or is closing) this idle connection: a
    /// look at the socket without blocking finds the end of the stream, an
    /// error, or bytes nobody asked for.
    fn server_left(&self) -> bool {
        // A Unix socket is not looked at (std cannot peek at one): a
        // server that left shows at the next command.
        let Some(tcp) = self.stream.as_ref().and_then(Stream::tcp) else {
            return false;
        };
        if tcp.set_nonblocking(true).is_err() {
            return true;
        }
        let peeked = tcp.peek(&mut [0; 1]);
        let restored = tcp.set_nonblocking(false);
        driver::left_while_idle(Some(peeked)) || restored.is_err()
    }

    /// Replaces this connection with a new one to the same port, with the
    /// same protection; the old socket closes without QUIT (the server has
    /// given it up).
    fn reconnect(&mut self) -> Result<(), Error> {
        self.stream = None;
        let (settings, port, security) = driver::reconnect_target(&self.conversation);
        let credentials = driver::credentials(&settings)?;
        *self = Self::open(settings, credentials, port, security)?;
        self.reuse.reconnected();
        Ok(())
    }

    /// Takes the events queued behind an operation's outcome.
    fn settle(&mut self) {
        if self.conversation.settle() {
            self.abandon();
        }
    }

    /// A failed mail leaves an RSET to finish: drive the session to idle.
    fn wait_until_idle(&mut self) -> Result<(), Error> {
        if self.conversation.needs_reset(self.is_open())? {
            self.run(|_, event| match event {
                Event::Ready => Ok(Some(())),
                other => Err(unexpected(other)),
            })?;
        }
        Ok(())
    }

    /// The main loop: write what the session gives, act on its events, read
    /// until its deadline when it awaits a reply. `on_event` decides when an
    /// operation is done; a TLS upgrade, a failure and the close are handled
    /// here for every operation.
    fn run<T>(
        &mut self,
        mut on_event: impl FnMut(&mut Self, Event) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        loop {
            self.flush()?;
            match self.conversation.next()? {
                Next::Upgrade => self.upgrade()?,
                Next::Event(event) => {
                    if let Some(done) = on_event(self, event)? {
                        self.forward_trace();
                        return Ok(done);
                    }
                }
                Next::Read => self.read_some()?,
                Next::Ended(ended) => return Err(self.end(ended)),
            }
        }
    }

    /// The connection is over: its last words, if any, then close.
    fn end(&mut self, ended: Ended) -> Error {
        if ended.last_words {
            self.abandon();
        }
        self.stream = None;
        ended.error
    }

    /// Writes what the session queued.
    fn flush(&mut self) -> Result<(), Error> {
        if let Some(out) = self.conversation.transmit() {
            self.write_by_deadline(&out)?;
        }
        self.forward_trace();
        Ok(())
    }

    /// Writes `bytes` before the session's deadline, which the session also
    /// keeps across a whole body upload: a server that drains a few bytes
    /// per socket timeout cannot stretch it.
    fn write_by_deadline(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        loop {
            if self.conversation.writes_lost {
                return Ok(());
            }
            let timeout = remaining(self.conversation.deadline());
            let phase = self.conversation.session.phase();
            let stream = self.stream_mut()?;
            let _ = stream.set_write_timeout(Some(timeout));
            // Write until everything is taken, then flush (TLS records the
            // writes left buffered); a write that took bytes is never repeated.
            let result = if bytes.is_empty() {
                stream.flush().map(|()| None)
            } else {
                stream.write(bytes).map(Some)
            };
            match result {
                Ok(None) => return Ok(()),
                Ok(Some(0)) => {
                    return Err(Error::Io {
                        phase,
                        source: io::ErrorKind::WriteZero.into(),
                    });
                }
                Ok(Some(written)) => bytes = &bytes[written..],
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_timeout(&error) => {
                    if let Some(ended) = self.conversation.timer_fired() {
                        return Err(self.end(ended));
                    }
                }
                Err(source) if self.conversation.write_refused(&source) => {}
                Err(source) => return Err(self.io_failure(phase, source)),
            }
        }
    }

    /// Reads once, until the session's deadline.
    fn read_some(&mut self) -> Result<(), Error> {
        let timeout = remaining(self.conversation.deadline());
        let phase = self.conversation.session.phase();
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::ApiMisuse(ApiMisuse::Closed));
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let buffer = &mut self.conversation.read_buffer;
        let read = if self.conversation.writes_lost {
            stream.read_only(buffer)
        } else {
            stream.read(buffer)
        };
        let read = match read {
            Err(error) if is_timeout(&error) => None,
            read => Some(read),
        };
        let fed = self.conversation.feed(read);
        fed.map_err(|source| self.io_failure(phase, source))
    }

    /// Streams the message while the session wants it: read a chunk, let
    /// the session encode it, write it; read replies when it says wait.
    fn stream_body(&mut self, body: &mut dyn Read) -> Result<(), Error> {
        let (mut chunk, mut out) = self.conversation.take_body_buffers();
        loop {
            match self.conversation.session.body_demand() {
                BodyDemand::Stop => {
                    self.conversation.keep_body_buffers(chunk, out);
                    return Ok(());
                }
                BodyDemand::Wait => {
                    self.read_some()?;
                    continue;
                }
                BodyDemand::More => {}
            }
            let read = fill(body, &mut chunk);
            let complete = self
                .conversation
                .encode_body(read, &chunk, &mut out)
                // The message could not be read: the session closed.
                .inspect_err(|_| self.stream = None)?;
            self.write_by_deadline(&out)?;
            self.forward_trace();
            if complete {
                self.conversation.keep_body_buffers(chunk, out);
                return Ok(());
            }
        }
    }

    /// Does the TLS handshake the session asked for, by its deadline.
    fn upgrade(&mut self) -> Result<(), Error> {
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(Error::ApiMisuse(ApiMisuse::NoTlsUpgradePending));
        };
        let conversation = &mut self.conversation;
        let deadline = conversation.deadline();
        let (settings, port, security) = (
            &conversation.settings,
            conversation.port,
            conversation.security,
        );
        match handshake(settings, tcp, port, security, deadline) {
            Ok(mut tls) => {
                let secured = conversation.secured(&mut tls.conn);
                self.stream = Some(Stream::Tls(Box::new(tls)));
                secured
            }
            Err(HandshakeFailure::Timeout) => Err(conversation.handshake_failed(None)),
            Err(HandshakeFailure::Error(error)) => Err(conversation.handshake_failed(Some(error))),
        }
    }

    /// A failed read or write ends the connection.
    fn io_failure(&mut self, phase: Phase, source: io::Error) -> Error {
        self.stream = None;
        self.conversation.io_failure(phase, source)
    }

    fn stream_mut(&mut self) -> Result<&mut Stream, Error> {
        self.stream
            .as_mut()
            .ok_or(Error::ApiMisuse(ApiMisuse::Closed))
    }

    /// After a failure: write what the session still has to say (a QUIT,
    /// when polite), without waiting for an answer, and close.
    fn abandon(&mut self) {
        if let Some(out) = self.conversation.transmit()
            && let Some(stream) = self.stream.as_mut()
        {
            let _ = stream.set_write_timeout(Some(driver::ABANDON_WRITE));
            let _ = stream.write_all(&out).and_then(|()| stream.flush());
        }
        self.forward_trace();
        self.stream = None;
    }

    /// QUIT, and its reply within the QUIT deadline.
    fn close_politely(&mut self) -> Result<(), Error> {
        if !self.conversation.start_quit(self.stream.is_some()) {
            self.stream = None;
            return Ok(());
        }
        let result = self.run(|_, event| driver::quit_step(event).map(|()| None));
        self.stream = None;
        driver::quit_outcome(result)
    }

    fn forward_trace(&mut self) {
        self.conversation.forward_trace();
    }
}

impl Drop for Connection {
    /// QUIT on the way out, bounded by the QUIT deadline.
    fn drop(&mut self) {
        let _ = self.close_politely();
    }
}

/// Reads until `buffer` is full or the message ends; the number of bytes read.
fn fill(body: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match body.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

enum HandshakeFailure {
    Timeout,
    Error(Error),
}

/// Runs the TLS handshake on `tcp` until `deadline`, verifying the
/// certificate for the host.
fn handshake(
    settings: &Settings,
    mut tcp: TcpStream,
    port: u16,
    security: Security,
    deadline: Instant,
) -> Result<StreamOwned<ClientConnection, TcpStream>, HandshakeFailure> {
    let fail = HandshakeFailure::Error;
    let name = tls::server_name(&settings.host).map_err(fail)?;
    let mut connection = ClientConnection::new(settings.tls_config.clone(), name)
        .map_err(|error| fail(driver::tls_failure(settings, error)))?;
    let mut sniffer = Sniffer {
        tcp: &mut tcp,
        first_bytes: Vec::new(),
    };
    while connection.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(HandshakeFailure::Timeout);
        }
        let timeout = remaining(deadline);
        let _ = sniffer.tcp.set_read_timeout(Some(timeout));
        let _ = sniffer.tcp.set_write_timeout(Some(timeout));
        let Err(error) = connection.complete_io(&mut sniffer) else {
            continue;
        };
        if is_timeout(&error) && !driver::speaks_plaintext_smtp(security, &sniffer.first_bytes) {
            continue;
        }
        let first_bytes = &sniffer.first_bytes;
        return Err(fail(driver::handshake_error(
            settings,
            port,
            security,
            first_bytes,
            error,
        )));
    }
    Ok(StreamOwned::new(connection, tcp))
}

#[cfg(test)]
mod happy_eyeballs_tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use std::net::TcpListener;

    use super::*;

    #[test]
    fn an_address_that_never_answers_costs_an_attempt_delay_not_the_timeout() {
        let (_hole, _held, silent) = driver::black_hole();
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let reachable = open.local_addr().unwrap();
        let tried = std::sync::Mutex::new(Vec::new());
        let note = |address: &SocketAddr| tried.lock().unwrap().push(*address);
        let timeout = Duration::from_secs(20);
        let started = Instant::now();
        let tcp = connect_first(&[silent, reachable], timeout, &note).unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), reachable);
        assert!(started.elapsed() < timeout / 4, "{:?}", started.elapsed());
        assert_eq!(*tried.lock().unwrap(), [silent, reachable]);
    }

    #[test]
    fn a_refusal_moves_on_at_once_and_all_refused_gives_the_last_error() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = closed.local_addr().unwrap();
        drop(closed);
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let reachable = open.local_addr().unwrap();
        let tcp = connect_first(&[refused, reachable], Duration::from_secs(5), &|_| {}).unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), reachable);
        let error = connect_first(&[refused, refused], Duration::from_secs(5), &|_| {})
            .unwrap_err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
