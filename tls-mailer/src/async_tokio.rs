//! The async driver (feature `tokio`): tokio + tokio-rustls around the
//! sans-IO [`Session`](tls_mailer_proto::Session), the same byte pump as the blocking driver. It moves
//! bytes, arms the one deadline the session gives (one
//! `tokio::time::sleep_until` per wait), does TLS when told and streams the
//! body; every SMTP decision, and every deadline, is the session's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tls_mailer_message::{DkimSigner, Email};
use tls_mailer_proto::{
    ApiMisuse, BodyDemand, BodyInfo, Credentials, Envelope, Event, Phase, Security,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::batch::{BatchStep, Mail, Pipeline};
use crate::client::{SendReport, Settings, TlsDetails};
use crate::driver::{self, BODY_CHUNK, Conversation, Ended, MailStep, Next, Reuse, unexpected};
use crate::error::Error;
use crate::{signing, tls};

/// Plain TCP, or TLS over it; or a Unix socket, never with TLS.
enum Stream {
    Plain(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<Sniffer>>),
}

/// The TCP stream under TLS. It records the first bytes the server sends
/// during the handshake, so the engine can tell a plaintext SMTP server
/// from a TLS failure.
struct Sniffer {
    tcp: TcpStream,
    first_bytes: Vec<u8>,
}

impl AsyncRead for Sniffer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            driver::sniff_into(&mut this.first_bytes, &buf.filled()[before..]);
        }
        result
    }
}

impl AsyncWrite for Sniffer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Unix(unix) => Pin::new(unix).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Unix(unix) => Pin::new(unix).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Unix(unix) => Pin::new(unix).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Unix(unix) => Pin::new(unix).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Runs `io` until `deadline` (one timer armed): `None` when the deadline
/// came first.
async fn by_deadline<F: Future>(deadline: Instant, io: F) -> Option<F::Output> {
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::select! {
        biased;
        output = io => Some(output),
        () = timer => None,
    }
}

/// Resolves `host:port`; every address, in the resolver's order.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let name = driver::lookup_name(host)?;
    driver::resolved(host, tokio::net::lookup_host((name, port)).await)
}

async fn connect_tcp(
    settings: &Settings,
    addresses: &[SocketAddr],
    port: u16,
) -> Result<TcpStream, Error> {
    let note = |address: &SocketAddr| driver::note_connecting(settings, address);
    match connect_first(addresses, settings.timeouts.connect, &note).await {
        Ok(tcp) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Err(error) => Err(driver::connect_failed(settings, port, error)),
    }
}

/// Happy Eyeballs (RFC 8305), as the blocking driver's `connect_first`: the
/// next attempt starts when one fails or stays unanswered for the attempt
/// delay; the first to connect wins, the others are dropped.
async fn connect_first(
    addresses: &[SocketAddr],
    timeout: std::time::Duration,
    note: &(dyn Fn(&SocketAddr) + Sync),
) -> Result<TcpStream, Option<io::Error>> {
    let mut waiting = driver::interleave_families(addresses).into_iter();
    let mut attempts = tokio::task::JoinSet::new();
    let mut last_error = None;
    loop {
        if let Some(address) = waiting.next() {
            note(&address);
            attempts.spawn(async move {
                by_deadline(Instant::now() + timeout, TcpStream::connect(address))
                    .await
                    .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
            });
        }
        if attempts.is_empty() {
            return Err(last_error);
        }
        let delay = tokio::time::sleep(driver::CONNECTION_ATTEMPT_DELAY);
        tokio::select! {
            Some(joined) = attempts.join_next() => match joined {
                Ok(Ok(tcp)) => return Ok(tcp),
                Ok(Err(error)) => last_error = Some(error),
                Err(join) => last_error = Some(io::Error::other(join)),
            },
            () = delay, if waiting.len() > 0 => {}
        }
    }
}

/// The TCP connection to the mail server: direct, or through the proxy's
/// tunnel once its handshake is done (the blocking driver's `open_tcp`).
async fn open_tcp(settings: &Settings, port: u16, security: Security) -> Result<TcpStream, Error> {
    let Some(proxy) = &settings.proxy else {
        let addresses = resolve(&settings.host, port).await?;
        driver::check_plaintext(settings, security, &addresses)?;
        return connect_tcp(settings, &addresses, port).await;
    };
    let resolved = if proxy.resolves_locally() {
        Some(resolve(&settings.host, port).await?)
    } else {
        None
    };
    let target = driver::proxy_target(&settings.host, port, resolved.as_deref());
    let addresses = resolve(proxy.host(), proxy.port()).await?;
    let mut tcp = connect_tcp(settings, &addresses, proxy.port())
        .await
        .map_err(|error| driver::proxy_connect_failed(proxy, error))?;
    let (mut handshake, deadline) = driver::proxy_handshake(settings, proxy, target)?;
    let mut buffer = [0u8; 512];
    let timed_out = || io::Error::from(io::ErrorKind::TimedOut);
    loop {
        let out = handshake.transmit();
        if !out.is_empty() {
            by_deadline(deadline, tcp.write_all(&out))
                .await
                .unwrap_or_else(|| Err(timed_out()))
                .map_err(|error| driver::proxy_io_failed(proxy, &error))?;
        }
        if handshake.is_done() {
            return Ok(tcp);
        }
        let wanted = handshake.wants().min(buffer.len());
        let read = by_deadline(deadline, tcp.read(&mut buffer[..wanted]))
            .await
            .unwrap_or_else(|| Err(timed_out()))
            .map_err(|error| driver::proxy_io_failed(proxy, &error))?;
        if read == 0 {
            let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
            return Err(driver::proxy_io_failed(proxy, &eof));
        }
        handshake.feed(&buffer[..read])?;
    }
}

/// An open SMTP connection driven by tokio, greeted, encrypted and
/// authenticated as the [`crate::Client`] was configured, that sends any
/// number of messages. Get one from [`crate::Client::connect_async`]; say
/// QUIT with [`AsyncConnection::quit`]. Dropping it closes the socket
/// without QUIT (a drop cannot wait for the server); the server discards
/// nothing that was already accepted.
///
/// An operation whose future is dropped before it completes (a timeout
/// around it, a `select!` branch not taken) leaves the conversation half
/// way, a command half written or a reply unread: the connection is then
/// unusable, [`AsyncConnection::is_open`] says so, and the next operation
/// closes it and fails with [`Error::ApiMisuse`]. A mail cut off that way
/// is not delivered unless the server had already accepted it.
///
/// ```no_run
/// use tls_mailer::{Client, Credentials, Envelope};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder("smtp.example.org")
///     .credentials(Credentials::new("alice@example.org", "app-password"))
///     .build()?;
/// let mut connection = client.connect_async().await?;
/// for to in ["bob@example.org", "carol@example.org"] {
///     let envelope = Envelope::new("alice@example.org", [to])?;
///     let report = connection
///         .send(&envelope, b"Subject: hi\r\n\r\nHello\r\n")
///         .await?;
///     println!("{to}: {}", report.reply);
/// }
/// connection.noop().await?; // still there?
/// connection.quit().await?;
/// # Ok(())
/// # }
/// ```
pub struct AsyncConnection {
    conversation: Conversation,
    stream: Option<Stream>,
    /// An operation began and has not finished (its future may have been
    /// dropped half way).
    in_flight: bool,
    reuse: Reuse,
}

impl std::fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.conversation.describe("AsyncConnection", f)
    }
}

/// The credentials for a new connection; a token source may fetch a token
/// over the network, which is not done on the runtime.
pub(crate) async fn credentials_off_the_runtime(
    settings: &Arc<Settings>,
) -> Result<Option<Credentials>, Error> {
    if settings.token_source.is_none() {
        return Ok(settings.credentials.clone());
    }
    let settings = settings.clone();
    off_the_runtime(move || driver::credentials(&settings)).await
}

/// Runs blocking `work` (a token fetch) on tokio's blocking threads.
pub(crate) async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Error::Config("fetching an OAuth token panicked".into()))?
}

impl AsyncConnection {
    /// Connects to `port` with `security` (never the fallback mode: the
    /// client resolves that) and drives the session until it is idle.
    pub(crate) async fn open(
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
                    .await
                    .map_err(|error| driver::unix_connect_failed(path, error))?;
                (Stream::Unix(unix), None)
            }
            None => {
                let tcp = open_tcp(&settings, port, security).await?;
                let local_ip = tcp.local_addr().map(|address| address.ip()).ok();
                (Stream::Plain(tcp), local_ip)
            }
        };
        let mut connection = Self {
            conversation: Conversation::new(settings, credentials, port, security, local_ip),
            stream: Some(stream),
            in_flight: false,
            reuse: Reuse::new(),
        };
        connection.until_ready().await?;
        Ok(connection)
    }

    /// Sends a message held in memory (RFC 5322 bytes; line endings are
    /// normalised to CRLF on the wire, and SIZE declares that size).
    ///
    /// ```no_run
    /// # async fn example(mut connection: tls_mailer::AsyncConnection) -> Result<(), tls_mailer::Error> {
    /// let envelope = tls_mailer::Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let report = connection.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await?;
    /// println!("queued as {:?}", report.queue_id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<SendReport, Error> {
        if let Some(signer) = &self.conversation.settings.dkim {
            let signed = signing::sign_bytes(signer, message)?;
            let info = BodyInfo::of(&signed);
            return self.transmit(envelope, Some(&signed), &b""[..], info).await;
        }
        self.transmit(envelope, Some(message), &b""[..], BodyInfo::of(message))
            .await
    }

    /// Streams a message from an [`AsyncRead`] in constant memory; `info`
    /// is what is known of it beforehand (the size on the wire, for SIZE,
    /// and whether it is 8-bit). A client with DKIM signing first spools
    /// the message to a private temporary file, since the signature needs
    /// the whole body; the signing pass runs on tokio's blocking pool.
    ///
    /// ```no_run
    /// # async fn example(mut connection: tls_mailer::AsyncConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// use tls_mailer::{BodyInfo, Envelope};
    ///
    /// let file = tokio::fs::File::open("message.eml").await?;
    /// let size = file.metadata().await?.len();
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let info = BodyInfo::sized(Some(size));
    /// connection.send_reader(&envelope, file, info).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_reader(
        &mut self,
        envelope: &Envelope,
        mut message: impl AsyncRead + Unpin,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        let Some(signer) = self.conversation.settings.dkim.clone() else {
            return self.transmit(envelope, None, message, info).await;
        };
        let (header, spool, info) = sign(signer, &mut message, info).await?;
        let body = header.as_slice().chain(tokio::fs::File::from_std(spool));
        self.transmit(envelope, None, body, info).await
    }

    /// Sends several messages, pipelined, each with its own outcome in
    /// order: [`crate::Connection::send_batch`] for tokio.
    ///
    /// ```no_run
    /// # async fn example(mut connection: tls_mailer::AsyncConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// use tls_mailer::{Envelope, Mail};
    ///
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let mails = [Mail::from_bytes(envelope, b"Subject: hi\r\n\r\nHello\r\n")];
    /// for result in connection.send_batch(mails).await {
    ///     println!("{:?}", result.map(|report| report.queue_id));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_batch<'m, R: AsyncRead + Unpin + Send + 'm>(
        &mut self,
        mails: impl IntoIterator<Item = Mail<R>>,
    ) -> Vec<Result<SendReport, Error>> {
        let options = self.conversation.settings.mail_options.clone();
        let mut pipeline = Pipeline::new(mails.into_iter().map(Mail::boxed_async), options);
        if let Err(error) = self.begin() {
            pipeline.fail(error);
            return pipeline.finish();
        }
        let outcome = self.batch(&mut pipeline).await;
        self.settle().await;
        self.in_flight = false;
        if let Err(error) = outcome {
            pipeline.fail(error);
        }
        pipeline.finish()
    }

    async fn batch<'m>(
        &mut self,
        pipeline: &mut AsyncPipeline<'m, impl Iterator<Item = Mail<AsyncBody<'m>>>>,
    ) -> Result<(), Error> {
        self.wait_until_idle().await?;
        self.start_more(pipeline).await;
        while !pipeline.is_done() {
            let event = self.next_event().await?;
            if let BatchStep::SendBody = pipeline.on_event(event, &self.conversation)?
                && let Some(mut body) = pipeline.take_body()
            {
                self.stream_body(&mut body).await?;
            }
            self.start_more(pipeline).await;
        }
        Ok(())
    }

    /// Starts the batch's next mails while the session takes them.
    async fn start_more<'m>(
        &mut self,
        pipeline: &mut AsyncPipeline<'m, impl Iterator<Item = Mail<AsyncBody<'m>>>>,
    ) {
        while let Some((index, mail)) = pipeline.next_to_start(&self.conversation) {
            match prepare(&self.conversation.settings, mail).await {
                Ok(mail) => pipeline.start(index, &mut self.conversation, mail),
                Err(error) => pipeline.refuse(index, error),
            }
        }
    }

    /// Sends an [`Email`]: checks it ([`Email::validate`] and the client's
    /// required sender), takes its envelope, and sends the exported
    /// message, in which Bcc never appears.
    ///
    /// ```no_run
    /// # async fn example(mut connection: tls_mailer::AsyncConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// use tls_mailer::Email;
    ///
    /// let email = Email::new()
    ///     .with_from("alice@example.org".parse()?)
    ///     .with_to("bob@example.org".parse()?)
    ///     .with_subject("Hi")
    ///     .with_text("Hello Bob\n");
    /// connection.send_email(&email).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The message is streamed as in the blocking
    /// [`Connection::send_email`](crate::Connection::send_email): read and
    /// encoded as it is sent, its exact SIZE known in advance, signed (with
    /// DKIM configured) by a first pass rather than a copy. The passes that
    /// read files (measuring, signing, then each chunk sent) run on tokio's
    /// blocking pool.
    pub async fn send_email(&mut self, email: &Email) -> Result<SendReport, Error> {
        /// The message read on tokio's blocking pool, a chunk at a time:
        /// its file parts are read with blocking reads.
        struct OnBlockingPool {
            idle: Option<(tls_mailer_message::EmailReader, Vec<u8>)>,
            filled: usize,
            at: usize,
            ended: bool,
            busy: Option<tokio::task::JoinHandle<ChunkRead>>,
        }
        type ChunkRead = (tls_mailer_message::EmailReader, Vec<u8>, io::Result<usize>);

        impl AsyncRead for OnBlockingPool {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let this = &mut *self;
                loop {
                    if buf.remaining() == 0 || this.ended {
                        return Poll::Ready(Ok(()));
                    }
                    if let Some((_, chunk)) = &this.idle
                        && let Some(pending) = chunk.get(this.at..this.filled)
                        && !pending.is_empty()
                    {
                        let n = pending.len().min(buf.remaining());
                        buf.put_slice(pending.get(..n).unwrap_or_default());
                        this.at += n;
                        return Poll::Ready(Ok(()));
                    }
                    if let Some(handle) = &mut this.busy {
                        let (reader, chunk, result) = match Pin::new(handle).poll(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(done)) => done,
                            Poll::Ready(Err(error)) => {
                                return Poll::Ready(Err(io::Error::other(error)));
                            }
                        };
                        this.busy = None;
                        this.idle = Some((reader, chunk));
                        this.at = 0;
                        this.filled = 0;
                        this.filled = result?;
                        this.ended = this.filled == 0;
                        continue;
                    }
                    let Some((mut reader, mut chunk)) = this.idle.take() else {
                        return Poll::Ready(Ok(()));
                    };
                    this.busy = Some(tokio::task::spawn_blocking(move || {
                        let result = std::io::Read::read(&mut reader, &mut chunk);
                        (reader, chunk, result)
                    }));
                }
            }
        }

        self.conversation.settings.check_email(email)?;
        let envelope = email.envelope()?;
        let message = {
            let email = email.clone();
            let signer = self.conversation.settings.dkim.clone();
            tokio::task::spawn_blocking(move || match &signer {
                Some(signer) => signer.signed_reader(&email),
                None => email.reader(),
            })
            .await
            .map_err(|error| Error::ReadMessage(io::Error::other(error)))??
        };
        let info = BodyInfo {
            size: Some(message.size()),
            eight_bit: Some(message.is_eight_bit()),
            binary: false,
        };
        let body = OnBlockingPool {
            idle: Some((message, vec![0; BODY_CHUNK])),
            filled: 0,
            at: 0,
            ended: false,
            busy: None,
        };
        // Signed already when a signer is configured: sent as it is.
        self.transmit(&envelope, None, body, info).await
    }

    /// Checks that the server is still there (NOOP).
    pub async fn noop(&mut self) -> Result<(), Error> {
        self.begin()?;
        let result = self.noop_now().await;
        self.in_flight = false;
        result
    }

    async fn noop_now(&mut self) -> Result<(), Error> {
        self.wait_until_idle().await?;
        self.conversation.session.noop(Instant::now())?;
        self.until_ready().await?;
        self.settle().await;
        self.reuse.operation_done();
        Ok(())
    }

    /// Starts an operation; after one that never finished (its future was
    /// dropped), the connection closes instead.
    fn begin(&mut self) -> Result<(), Error> {
        if self.in_flight {
            self.stream = None;
            return Err(Error::ApiMisuse(ApiMisuse::Closed));
        }
        self.in_flight = true;
        Ok(())
    }

    /// Says QUIT, waits (at most the QUIT deadline) for the reply and closes.
    /// A failed QUIT is reported but changes nothing already sent.
    pub async fn quit(mut self) -> Result<(), Error> {
        let open = !self.in_flight && self.stream.is_some();
        if !self.conversation.start_quit(open) {
            self.stream = None;
            return Ok(());
        }
        let error = loop {
            let step = self.next_event().await.and_then(driver::quit_step);
            if let Err(error) = step {
                break error;
            }
        };
        self.stream = None;
        driver::quit_outcome(Err(error))
    }

    /// Whether another message can go over this connection (the socket is
    /// open and QUIT was not said).
    pub fn is_open(&self) -> bool {
        !self.in_flight && self.connected()
    }

    /// The socket is open and the session not closing.
    fn connected(&self) -> bool {
        self.stream.is_some() && !self.conversation.session.is_closed()
    }

    /// The protection in use: TLS from the first byte
    /// ([`Security::ImplicitTls`]), after STARTTLS ([`Security::StartTls`]),
    /// or none, to loopback only ([`Security::DangerousPlaintext`]).
    pub fn security(&self) -> Security {
        self.conversation.security
    }

    /// What TLS settled (version, cipher suite, the certificate's
    /// subject), when there is TLS.
    pub fn tls(&self) -> Option<TlsDetails> {
        self.conversation.tls.clone()
    }

    /// When it was opened, how many mails it carried, since when it is idle.
    pub(crate) fn reuse(&self) -> &Reuse {
        &self.reuse
    }

    /// QUIT follows the next message in the same write (a one-shot send).
    pub(crate) fn quit_after_next_message(&mut self) {
        self.conversation.quit_after_next = true;
    }

    /// One mail: start it, stream the body when the session asks, and
    /// return its outcome. The connection stays open unless it failed. A
    /// connection that waited idle may have been closed by the server
    /// meanwhile: the mail then moves, once, to a new connection, by the
    /// rule of [`Reuse`].
    /// The body is `bytes` when in memory (it can then go again after a
    /// 421 to MAIL), else read from `body`.
    async fn transmit(
        &mut self,
        envelope: &Envelope,
        bytes: Option<&[u8]>,
        mut body: impl AsyncRead + Unpin,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        self.begin()?;
        let replayable = bytes.is_some();
        let mut gone = self.reuse.begin_send(&self.conversation, replayable) && self.server_left();
        let result = loop {
            if gone && let Err(error) = self.reconnect().await {
                break Err(error);
            }
            let result = match bytes {
                Some(bytes) => self.mail(envelope, &mut &bytes[..], info).await,
                None => self.mail(envelope, &mut body, info).await,
            };
            gone = matches!(&result, Err(error) if self.reuse.retry_after(error));
            if !gone {
                break result;
            }
        };
        self.in_flight = false;
        self.reuse.operation_done_with(result)
    }

    async fn mail(
        &mut self,
        envelope: &Envelope,
        body: &mut (impl AsyncRead + Unpin),
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        self.wait_until_idle().await?;
        let options = self.conversation.settings.mail_options.clone();
        self.conversation.start_mail(envelope, info, &options)?;
        self.reuse.mail_started();
        let delivery = loop {
            let step = match self.next_event().await {
                Ok(event) => driver::mail_step(event),
                Err(error) => Err(error),
            };
            match step {
                Ok(MailStep::SendBody) => {
                    self.reuse.body_started();
                    if let Err(error) = self.stream_body(body).await {
                        break Err(error);
                    }
                    self.conversation.body_sent();
                }
                Ok(MailStep::Continue) => {}
                Ok(MailStep::Done(outcome)) => break Ok(outcome),
                Err(error) => break Err(error),
            }
        };
        self.settle().await;
        self.conversation.report(delivery?)
    }

    /// Whether the server closed (or is closing) this idle connection: a
    /// look at the socket that does not wait finds the end of the stream,
    /// an error, or bytes nobody asked for.
    fn server_left(&self) -> bool {
        let tcp = match &self.stream {
            Some(Stream::Plain(tcp)) => tcp,
            Some(Stream::Tls(tls)) => &tls.get_ref().0.tcp,
            // Not looked at, as in the blocking driver: a server that left
            // shows at the next command.
            Some(Stream::Unix(_)) | None => return false,
        };
        let mut byte = [0; 1];
        let mut buffer = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let peeked = match tcp.poll_peek(&mut cx, &mut buffer) {
            Poll::Ready(peeked) => Some(peeked),
            Poll::Pending => None,
        };
        driver::left_while_idle(peeked)
    }

    /// Replaces this connection with a new one to the same port, with the
    /// same protection, for the operation in progress; the old socket
    /// closes (the server has given it up).
    async fn reconnect(&mut self) -> Result<(), Error> {
        self.stream = None;
        let (settings, port, security) = driver::reconnect_target(&self.conversation);
        let credentials = credentials_off_the_runtime(&settings).await?;
        *self = Self::open(settings, credentials, port, security).await?;
        self.in_flight = true;
        self.reuse.reconnected();
        Ok(())
    }

    /// Takes the events queued behind an operation's outcome.
    async fn settle(&mut self) {
        if self.conversation.settle() {
            self.abandon().await;
        }
    }

    /// A failed mail leaves an RSET to finish: drive the session to idle.
    async fn wait_until_idle(&mut self) -> Result<(), Error> {
        if self.conversation.needs_reset(self.connected())? {
            self.until_ready().await?;
        }
        Ok(())
    }

    async fn until_ready(&mut self) -> Result<(), Error> {
        match self.next_event().await? {
            Event::Ready => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The main loop: write what the session gives, act on its events, read
    /// until its deadline when it awaits a reply. Returns the next event
    /// the operation in progress must judge; a TLS upgrade, a failure and
    /// the close are handled here for every operation.
    async fn next_event(&mut self) -> Result<Event, Error> {
        loop {
            self.flush().await?;
            match self.conversation.next()? {
                Next::Upgrade => self.upgrade().await?,
                Next::Event(event) => return Ok(event),
                Next::Read => self.read_some().await?,
                Next::Ended(ended) => return Err(self.end(ended).await),
            }
        }
    }

    /// The connection is over: its last words, if any, then close.
    async fn end(&mut self, ended: Ended) -> Error {
        if ended.last_words {
            self.abandon().await;
        }
        self.stream = None;
        ended.error
    }

    /// Writes what the session queued.
    async fn flush(&mut self) -> Result<(), Error> {
        if let Some(out) = self.conversation.transmit() {
            self.write_by_deadline(&out).await?;
        }
        self.forward_trace();
        Ok(())
    }

    /// Writes `bytes` before the session's deadline, which the session also
    /// keeps across a whole body upload: a server that drains a few bytes
    /// per wait cannot stretch it.
    async fn write_by_deadline(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        loop {
            if self.conversation.writes_lost {
                return Ok(());
            }
            let deadline = self.conversation.deadline();
            let phase = self.conversation.session.phase();
            let stream = self.stream_mut()?;
            // Write until everything is taken, then flush (TLS records the
            // writes left buffered); a write that took bytes is never repeated.
            let result = if bytes.is_empty() {
                by_deadline(deadline, stream.flush())
                    .await
                    .map(|flushed| flushed.map(|()| None))
            } else {
                by_deadline(deadline, stream.write(bytes))
                    .await
                    .map(|written| written.map(Some))
            };
            match result {
                None => {
                    if let Some(ended) = self.conversation.timer_fired() {
                        return Err(self.end(ended).await);
                    }
                }
                Some(Ok(None)) => return Ok(()),
                Some(Ok(Some(0))) => {
                    return Err(Error::Io {
                        phase,
                        source: io::ErrorKind::WriteZero.into(),
                    });
                }
                Some(Ok(Some(written))) => bytes = &bytes[written..],
                Some(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(source)) if self.conversation.write_refused(&source) => {}
                Some(Err(source)) => return Err(self.io_failure(phase, source)),
            }
        }
    }

    /// Reads once, until the session's deadline.
    async fn read_some(&mut self) -> Result<(), Error> {
        let deadline = self.conversation.deadline();
        let phase = self.conversation.session.phase();
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::ApiMisuse(ApiMisuse::Closed));
        };
        let buffer = &mut self.conversation.read_buffer;
        let read = match by_deadline(deadline, stream.read(buffer)).await {
            // A record that does not decrypt fails the read even when good
            // records came before it: hand those over first (the error
            // comes again on the next read).
            Some(Err(error)) => match stream {
                Stream::Tls(tls) => {
                    match std::io::Read::read(&mut tls.get_mut().1.reader(), buffer) {
                        Ok(read) if read > 0 => Some(Ok(read)),
                        _ => Some(Err(error)),
                    }
                }
                Stream::Plain(_) | Stream::Unix(_) => Some(Err(error)),
            },
            read => read,
        };
        let fed = self.conversation.feed(read);
        fed.map_err(|source| self.io_failure(phase, source))
    }

    /// Streams the message while the session wants it: read a chunk, let
    /// the session encode it, write it; read replies when it says wait.
    async fn stream_body(&mut self, body: &mut (impl AsyncRead + Unpin)) -> Result<(), Error> {
        let (mut chunk, mut out) = self.conversation.take_body_buffers();
        loop {
            match self.conversation.session.body_demand() {
                BodyDemand::Stop => {
                    self.conversation.keep_body_buffers(chunk, out);
                    return Ok(());
                }
                BodyDemand::Wait => {
                    self.read_some().await?;
                    continue;
                }
                BodyDemand::More => {}
            }
            let read = fill(body, &mut chunk).await;
            let complete = self
                .conversation
                .encode_body(read, &chunk, &mut out)
                // The message could not be read: the session closed.
                .inspect_err(|_| self.stream = None)?;
            self.write_by_deadline(&out).await?;
            self.forward_trace();
            if complete {
                self.conversation.keep_body_buffers(chunk, out);
                return Ok(());
            }
        }
    }

    /// Does the TLS handshake the session asked for, by its deadline.
    async fn upgrade(&mut self) -> Result<(), Error> {
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(Error::ApiMisuse(ApiMisuse::NoTlsUpgradePending));
        };
        let conversation = &mut self.conversation;
        let deadline = conversation.deadline();
        let name = match tls::server_name(&conversation.settings.host) {
            Ok(name) => name,
            Err(error) => {
                conversation.session.quit(Instant::now());
                return Err(error);
            }
        };
        let sniffer = Sniffer {
            tcp,
            first_bytes: Vec::new(),
        };
        let connect = TlsConnector::from(conversation.settings.tls_config.clone())
            .connect(name, sniffer)
            .into_fallible();
        match by_deadline(deadline, connect).await {
            Some(Ok(mut tls)) => {
                let secured = conversation.secured(tls.get_mut().1);
                self.stream = Some(Stream::Tls(Box::new(tls)));
                secured
            }
            None => Err(conversation.handshake_failed(None)),
            Some(Err((error, sniffer))) => {
                let error = driver::handshake_error(
                    &conversation.settings,
                    conversation.port,
                    conversation.security,
                    &sniffer.first_bytes,
                    error,
                );
                Err(conversation.handshake_failed(Some(error)))
            }
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
    async fn abandon(&mut self) {
        if let Some(out) = self.conversation.transmit()
            && let Some(stream) = self.stream.as_mut()
        {
            let deadline = Instant::now() + driver::ABANDON_WRITE;
            let write = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            let _ = by_deadline(deadline, write).await;
        }
        self.forward_trace();
        self.stream = None;
    }

    fn forward_trace(&mut self) {
        self.conversation.forward_trace();
    }
}

/// Reads the message until `buffer` is full or the message ends; how much
/// was read.
async fn fill(body: &mut (impl AsyncRead + Unpin), buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match body.read(&mut buffer[filled..]).await {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() != io::ErrorKind::Interrupted => return Err(error),
            Err(_) => {}
        }
    }
    Ok(filled)
}

/// A message body in an async batch: boxed, so signing can swap it.
type AsyncBody<'m> = Box<dyn AsyncRead + Unpin + Send + 'm>;

/// The pipeline of an async batch.
type AsyncPipeline<'m, I> = Pipeline<I, AsyncBody<'m>>;

/// What is sent for a streamed mail: itself, or with DKIM signing
/// configured, its signed copy, spooled to a private temporary file (the
/// signing pass runs on tokio's blocking pool).
async fn prepare<'m>(
    settings: &Settings,
    mail: Mail<AsyncBody<'m>>,
) -> Result<Mail<AsyncBody<'m>>, Error> {
    let Some(signer) = settings.dkim.clone() else {
        return Ok(mail);
    };
    let info = mail.info();
    let (envelope, mut message) = mail.into_parts();
    let (header, spool, info) = sign(signer, &mut message, info).await?;
    let body: AsyncBody<'m> =
        Box::new(std::io::Cursor::new(header).chain(tokio::fs::File::from_std(spool)));
    Ok(Mail::new(envelope, body, info))
}

/// Spools `message` and signs it: the DKIM-Signature header, the
/// normalised message in a rewound private temporary file, and what is
/// known of the two together.
async fn sign(
    signer: DkimSigner,
    message: &mut (impl AsyncRead + Unpin),
    info: BodyInfo,
) -> Result<(Vec<u8>, std::fs::File, BodyInfo), Error> {
    let mut spool = signing::Spool::new()?;
    let mut chunk = vec![0; BODY_CHUNK];
    loop {
        match message.read(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => spool.push(&chunk[..read])?,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Error::ReadMessage(error)),
        }
    }
    let (header, spool, length) = tokio::task::spawn_blocking(move || spool.sign(&signer))
        .await
        .map_err(|error| Error::ReadMessage(io::Error::other(error)))??;
    let info = BodyInfo {
        size: Some(header.len() as u64 + length),
        eight_bit: info.eight_bit,
        binary: info.binary,
    };
    Ok((header, spool, info))
}

#[cfg(test)]
mod happy_eyeballs_tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    #[tokio::test]
    async fn an_address_that_never_answers_costs_an_attempt_delay_not_the_timeout() {
        let (_hole, _held, silent) = driver::black_hole();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let reachable = open.local_addr().unwrap();
        let tried = std::sync::Mutex::new(Vec::new());
        let note = |address: &SocketAddr| tried.lock().unwrap().push(*address);
        let timeout = std::time::Duration::from_secs(20);
        let started = Instant::now();
        let tcp = connect_first(&[silent, reachable], timeout, &note)
            .await
            .unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), reachable);
        assert!(started.elapsed() < timeout / 4, "{:?}", started.elapsed());
        assert_eq!(*tried.lock().unwrap(), [silent, reachable]);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = closed.local_addr().unwrap();
        drop(closed);
        let error = connect_first(&[refused, refused], timeout, &|_| {})
            .await
            .unwrap_err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
