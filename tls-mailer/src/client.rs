//! The public client: [`Client`] (configured once, used for many sends) and
//! the one-call [`send_mail`].

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tls_mailer_proto::{
    BodyInfo, Credentials, Domain, Envelope, InvalidInput, MailOptions, Mechanism, Protocol,
    RecipientOutcome, RecipientPolicy, Reply, Security, Timeouts,
};

use tls_mailer_message::{DkimSigner, Email};

use crate::blocking::Connection;
use crate::driver::Attempts;
use crate::error::Error;
use crate::probe::{PeerCertificate, Probe};
use crate::proxy::Proxy;
use crate::tls::{self, ClientIdentity, Pin, TlsVersion, TrustAnchors};

/// A line of the conversation, for `-v` output and logs. Credentials are
/// already replaced by `<redacted>`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceEvent {
    /// A line the client sent (the body is summarised as `<message: N bytes>`).
    Client(String),
    /// A line the server sent.
    Server(String),
    /// What the client is doing: connecting, TLS established, fallback.
    Note(String),
}

type TraceFn = Arc<dyn Fn(&TraceEvent) + Send + Sync>;

/// What TLS protected the conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsDetails {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    /// The negotiated cipher suite.
    pub cipher_suite: String,
    /// The subject of the server's certificate.
    pub peer_subject: Option<String>,
    /// The handshake resumed an earlier session of the same [`Client`]
    /// (rustls' `HandshakeKind::Resumed`): no certificate was sent, the one
    /// verified when the session began still stands.
    pub resumed: bool,
}

/// What the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    /// The server's final reply for the message.
    pub reply: Reply,
    /// The queue id, when the reply names one (`queued as ID`).
    pub queue_id: Option<String>,
    /// The reply to every recipient, in envelope order.
    pub recipients: Vec<RecipientOutcome>,
    /// How the connection was protected: [`Security::ImplicitTls`],
    /// [`Security::StartTls`] (also after a fallback) or
    /// [`Security::DangerousPlaintext`].
    pub security: Security,
    /// TLS details, when TLS was used.
    pub tls: Option<TlsDetails>,
}

impl SendReport {
    /// Recipients the server refused: the message did not go to them.
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientOutcome> {
        self.recipients.iter().filter(|outcome| !outcome.accepted())
    }

    /// Every recipient was accepted.
    pub fn all_accepted(&self) -> bool {
        self.rejected().next().is_none()
    }
}

/// Settings shared by every send of a [`Client`].
pub(crate) struct Settings {
    pub(crate) host: String,
    /// A Unix socket to connect to instead of `host:port` (no TLS there).
    pub(crate) socket: Option<PathBuf>,
    pub(crate) protocol: Protocol,
    pub(crate) port: u16,
    pub(crate) security: Security,
    pub(crate) starttls_port: u16,
    pub(crate) ehlo_name: Option<Domain>,
    pub(crate) credentials: Option<Credentials>,
    /// Where OAuth 2.0 tokens come from, and for which user: asked at
    /// each connection, in place of `credentials`.
    pub(crate) token_source: Option<(String, Arc<dyn crate::oauth::TokenSource>)>,
    pub(crate) auth_mechanisms: Vec<Mechanism>,
    pub(crate) tls_config: Arc<rustls::ClientConfig>,
    pub(crate) timeouts: Timeouts,
    pub(crate) recipient_policy: RecipientPolicy,
    pub(crate) pipelining: bool,
    pub(crate) chunking: bool,
    pub(crate) trace: Option<TraceFn>,
    pub(crate) required_from: Option<String>,
    pub(crate) dkim: Option<DkimSigner>,
    /// What the TLS configuration requires, to explain a refused handshake.
    pub(crate) tls_policy: tls::TlsPolicy,
    /// The options of every send that does not give its own.
    pub(crate) mail_options: MailOptions,
    /// The proxy every connection goes through, if any.
    pub(crate) proxy: Option<Proxy>,
}

impl Settings {
    /// What [`Client::send_email`] checks before anything is sent.
    pub(crate) fn check_email(&self, email: &Email) -> Result<(), Error> {
        email.validate()?;
        if let Some(required) = &self.required_from {
            email.check_from_matches(required)?;
        }
        Ok(())
    }

    pub(crate) fn note(&self, note: String) {
        self.emit(&TraceEvent::Note(note));
    }

    /// A trace event, to the `on_trace` callback and as a `tracing` event:
    /// the wire at TRACE under `tls_mailer::wire` (credentials already
    /// redacted by the engine), what the client does at DEBUG under
    /// `tls_mailer`.
    pub(crate) fn emit(&self, event: &TraceEvent) {
        if let Some(trace) = &self.trace {
            trace(event);
        }
        match event {
            TraceEvent::Client(line) => {
                tracing::trace!(target: WIRE_TARGET, direction = "client", "{line}");
            }
            TraceEvent::Server(line) => {
                tracing::trace!(target: WIRE_TARGET, direction = "server", "{line}");
            }
            TraceEvent::Note(note) => tracing::debug!(target: "tls_mailer", "{note}"),
        }
    }

    /// Whether the engine should produce trace lines at all.
    pub(crate) fn traces(&self) -> bool {
        self.trace.is_some() || tracing::enabled!(target: WIRE_TARGET, tracing::Level::TRACE)
    }
}

/// The `tracing` target of the SMTP conversation, line by line.
pub const WIRE_TARGET: &str = "tls_mailer::wire";

/// An SMTP submission client. Cheap to clone. [`Client::connect`] opens a
/// connection for many messages; [`Client::send`] and friends open one per
/// message.
///
/// ```no_run
/// use tls_mailer::{Client, Credentials, Envelope};
///
/// let client = Client::builder("smtp.example.org")
///     .credentials(Credentials::new("alice@example.org", "app-password"))
///     .build()?;
/// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
/// let report = client.send(&envelope, b"Subject: hi\r\n\r\nHello Bob\r\n")?;
/// println!("queued as {:?}", report.queue_id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Client {
    settings: Arc<Settings>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.settings.host)
            .field("port", &self.settings.port)
            .field("security", &self.settings.security)
            .field("credentials", &self.settings.credentials)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for a client of `host` (a name, an IPv4 address, or an IPv6
    /// address with or without brackets). Implicit TLS on port 465 unless told otherwise.
    pub fn builder(host: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            host: host.into(),
            socket: None,
            protocol: Protocol::Smtp,
            port: None,
            security: Security::ImplicitTls,
            starttls_port: None,
            ehlo_name: None,
            credentials: None,
            token_source: None,
            auth_mechanisms: Mechanism::ALL.to_vec(),
            anchors: TrustAnchors::default(),
            timeouts: Timeouts::default(),
            recipient_policy: RecipientPolicy::AcceptedOnly,
            pipelining: true,
            chunking: true,
            trace: None,
            required_from: None,
            dkim: None,
            pins: Vec::new(),
            pin_only: false,
            client_identity: None,
            min_tls_version: TlsVersion::default(),
            mail_options: MailOptions::default(),
            proxy: None,
        }
    }

    /// A builder for a client of the server listening on the Unix socket
    /// at `path`, typically a local delivery agent speaking LMTP (choose it
    /// with [`ClientBuilder::protocol`]). There is no TLS over the socket,
    /// and none is needed: the socket's file permissions decide who may
    /// talk to it, so the conversation is plaintext and AUTH, if
    /// credentials are given, goes over it too. Asking for TLS
    /// ([`ClientBuilder::security`]) is refused by [`ClientBuilder::build`].
    /// The plaintext rule for TCP is unchanged: loopback only.
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Envelope, Protocol};
    ///
    /// let client = Client::unix_socket("/run/dovecot/lmtp")
    ///     .protocol(Protocol::Lmtp)
    ///     .build()?;
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org", "carol@example.org"])?;
    /// let report = client.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n")?;
    /// // LMTP answers each recipient after the data: some may be refused.
    /// for refused in report.rejected() {
    ///     println!("not delivered to {}: {}", refused.address, refused.reply);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unix_socket(path: impl Into<PathBuf>) -> ClientBuilder {
        let mut builder = Self::builder("localhost").security(Security::DangerousPlaintext);
        builder.socket = Some(path.into());
        builder
    }

    /// Opens a connection (implicit TLS first, or as configured), greeted,
    /// encrypted and authenticated, that sends any number of messages. See
    /// [`Connection`].
    pub fn connect(&self) -> Result<Connection, Error> {
        let Some((user, source)) = &self.settings.token_source else {
            return self.connect_once(self.settings.credentials.as_ref());
        };
        // One token per attempt, handed down: a short-lived token is not
        // fetched twice for one connection.
        let token = source.token()?;
        match self.connect_once(Some(&Credentials::bearer_token(user, token.as_str()))) {
            Err(error) if error.is_authentication_failure() => {
                source.refused(&token)?;
                let token = source.token()?;
                self.connect_once(Some(&Credentials::bearer_token(user, token.as_str())))
            }
            outcome => outcome,
        }
    }

    fn connect_once(&self, credentials: Option<&Credentials>) -> Result<Connection, Error> {
        let mut attempts = Attempts::new(&self.settings);
        loop {
            let (port, security) = attempts.target();
            let attempt =
                Connection::open(self.settings.clone(), credentials.cloned(), port, security);
            if let Some(outcome) = attempts.outcome(attempt) {
                return outcome;
            }
        }
    }

    /// Sends a message held in memory (RFC 5322 bytes; line endings are
    /// normalised to CRLF on the wire) over a new connection, then QUIT.
    pub fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<SendReport, Error> {
        self.send_once(|connection| connection.send(envelope, message))
    }

    /// Sends a message read from `message` in constant memory over a new
    /// connection. `info` says what is known of it in advance (size on the
    /// wire for SIZE, 8-bit-ness). With DKIM signing configured, the message
    /// is first spooled to a private temporary file.
    pub fn send_reader(
        &self,
        envelope: &Envelope,
        message: &mut dyn Read,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        self.send_once(|connection| connection.send_reader(envelope, message, info))
    }

    /// [`Client::send`] with `options` for this message instead of the
    /// client's ([`ClientBuilder::mail_options`]).
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Dsn, DsnReturn, Envelope, MailOptions, Notify};
    ///
    /// let client = Client::builder("smtp.example.org").build()?;
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let dsn = Dsn::new().notify(Notify::SUCCESS | Notify::FAILURE).ret(DsnReturn::Headers).envid("invoice-42")?;
    /// let options = MailOptions::new().with_dsn(dsn).with_require_tls(true);
    /// client.send_with(&envelope, b"Subject: hi\r\n\r\nHello\r\n", &options)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with(
        &self,
        envelope: &Envelope,
        message: &[u8],
        options: &MailOptions,
    ) -> Result<SendReport, Error> {
        self.send_once(|connection| connection.send_with(envelope, message, options))
    }

    /// [`Client::send_reader`] with `options` for this message instead of
    /// the client's.
    pub fn send_reader_with(
        &self,
        envelope: &Envelope,
        message: &mut dyn Read,
        info: BodyInfo,
        options: &MailOptions,
    ) -> Result<SendReport, Error> {
        self.send_once(|connection| connection.send_reader_with(envelope, message, info, options))
    }

    /// Sends an [`Email`] over a new connection: checks it
    /// ([`Email::validate`], and the configured sender, see
    /// [`ClientBuilder::require_from`]), derives the envelope (sender from
    /// Sender or From, recipients To + Cc + Bcc) and sends the exported
    /// message, in which Bcc never appears.
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Content, Credentials, Email};
    ///
    /// let email = Email::new()
    ///     .with_from("Alice <alice@example.org>".parse()?)
    ///     .with_to("bob@example.org".parse()?)
    ///     .with_bcc("archive@example.org".parse()?)
    ///     .with_subject("Report")
    ///     .with_text("See the attachment.\n")
    ///     .with_attachment("report.pdf", Content::from_path("report.pdf")?)?;
    /// let client = Client::builder("smtp.example.org")
    ///     .credentials(Credentials::new("alice@example.org", "app-password"))
    ///     .build()?;
    /// client.send_email(&email)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_email(&self, email: &Email) -> Result<SendReport, Error> {
        // Refused before connecting.
        self.settings.check_email(email)?;
        self.send_once(|connection| connection.send_email(email))
    }

    /// Connect, send one message with QUIT behind it, close. Trouble with
    /// QUIT never changes the outcome; after a failure that left the
    /// session usable (a refusal, or a message the server cannot take), the
    /// connection still ends with QUIT.
    fn send_once(
        &self,
        send: impl FnOnce(&mut Connection) -> Result<SendReport, Error>,
    ) -> Result<SendReport, Error> {
        let mut connection = self.connect()?;
        connection.quit_after_next_message();
        let outcome = send(&mut connection);
        let _ = connection.quit();
        outcome
    }

    /// A pool of connections made by this client, for many messages from
    /// many threads (see [`Pool`](crate::Pool)). Nothing is opened yet.
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Envelope, PoolConfig};
    ///
    /// let pool = Client::builder("smtp.example.org").build()?.pool(PoolConfig::default());
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// pool.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(&self, config: crate::PoolConfig) -> crate::Pool {
        crate::Pool::new(self.clone(), config)
    }

    /// The host this client sends to.
    pub fn host(&self) -> &str {
        &self.settings.host
    }

    /// The port of the first connection attempt.
    pub fn port(&self) -> u16 {
        self.settings.port
    }

    /// The security mode.
    pub fn security(&self) -> Security {
        self.settings.security
    }

    /// SMTP or LMTP.
    pub fn protocol(&self) -> Protocol {
        self.settings.protocol
    }

    /// The Unix socket this client connects to, if not TCP.
    pub fn socket(&self) -> Option<&Path> {
        self.settings.socket.as_deref()
    }

    /// The settings (for the outbox's route).
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// The async driver: the same client, over tokio (feature `tokio`).
#[cfg(feature = "tokio")]
impl Client {
    /// Opens a connection driven by tokio, as [`Client::connect`] does
    /// (implicit TLS first, or as configured; the same fallback rule),
    /// greeted, encrypted and authenticated, that sends any number of
    /// messages. See [`AsyncConnection`](crate::AsyncConnection).
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Credentials, Envelope};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::builder("smtp.example.org")
    ///     .credentials(Credentials::new("alice@example.org", "app-password"))
    ///     .build()?;
    /// let mut connection = client.connect_async().await?;
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// connection.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await?;
    /// connection.quit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_async(&self) -> Result<crate::AsyncConnection, Error> {
        let Some((user, source)) = &self.settings.token_source else {
            return self
                .connect_once_async(self.settings.credentials.as_ref())
                .await;
        };
        let fetch = || {
            let source = source.clone();
            crate::async_tokio::off_the_runtime(move || source.token())
        };
        let token = fetch().await?;
        let credentials = Credentials::bearer_token(user, token.as_str());
        match self.connect_once_async(Some(&credentials)).await {
            Err(error) if error.is_authentication_failure() => {
                crate::async_tokio::off_the_runtime({
                    let source = source.clone();
                    move || source.refused(&token)
                })
                .await?;
                let token = fetch().await?;
                let credentials = Credentials::bearer_token(user, token.as_str());
                self.connect_once_async(Some(&credentials)).await
            }
            outcome => outcome,
        }
    }

    async fn connect_once_async(
        &self,
        credentials: Option<&Credentials>,
    ) -> Result<crate::AsyncConnection, Error> {
        let mut attempts = Attempts::new(&self.settings);
        loop {
            let (port, security) = attempts.target();
            let attempt = crate::AsyncConnection::open(
                self.settings.clone(),
                credentials.cloned(),
                port,
                security,
            )
            .await;
            if let Some(outcome) = attempts.outcome(attempt) {
                return outcome;
            }
        }
    }

    /// [`Client::send`] over tokio: a new connection, the message with QUIT
    /// behind it, close.
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Envelope};
    ///
    /// # async fn example(client: Client) -> Result<(), tls_mailer::Error> {
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let report = client
    ///     .send_async(&envelope, b"Subject: hi\r\n\r\nHello Bob\r\n")
    ///     .await?;
    /// println!("queued as {:?}", report.queue_id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_async(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<SendReport, Error> {
        self.send_once_async(async |connection| connection.send(envelope, message).await)
            .await
    }

    /// [`Client::send_reader`] over tokio: the message is read from an
    /// [`AsyncRead`](tokio::io::AsyncRead) in constant memory.
    ///
    /// ```no_run
    /// use tls_mailer::{BodyInfo, Client, Envelope};
    ///
    /// # async fn example(client: Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let file = tokio::fs::File::open("message.eml").await?;
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// client.send_reader_async(&envelope, file, BodyInfo::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_reader_async(
        &self,
        envelope: &Envelope,
        message: impl tokio::io::AsyncRead + Unpin,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        self.send_once_async(async |connection| {
            connection.send_reader(envelope, message, info).await
        })
        .await
    }

    /// [`Client::send_email`] over tokio.
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Email};
    ///
    /// # async fn example(client: Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let email = Email::new()
    ///     .with_from("alice@example.org".parse()?)
    ///     .with_to("bob@example.org".parse()?)
    ///     .with_subject("Hi")
    ///     .with_text("Hello Bob\n");
    /// client.send_email_async(&email).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_email_async(&self, email: &Email) -> Result<SendReport, Error> {
        // Refused before connecting.
        self.settings.check_email(email)?;
        self.send_once_async(async |connection| connection.send_email(email).await)
            .await
    }

    /// [`Client::send_once`] over tokio: the same outcome and the same
    /// QUIT, which a dropped async connection could not say.
    async fn send_once_async(
        &self,
        send: impl AsyncFnOnce(&mut crate::AsyncConnection) -> Result<SendReport, Error>,
    ) -> Result<SendReport, Error> {
        let mut connection = self.connect_async().await?;
        connection.quit_after_next_message();
        let outcome = send(&mut connection).await;
        let _ = connection.quit().await;
        outcome
    }
}

/// Configures a [`Client`].
#[must_use]
pub struct ClientBuilder {
    host: String,
    socket: Option<PathBuf>,
    protocol: Protocol,
    port: Option<u16>,
    security: Security,
    starttls_port: Option<u16>,
    ehlo_name: Option<String>,
    credentials: Option<Credentials>,
    token_source: Option<(String, Arc<dyn crate::oauth::TokenSource>)>,
    auth_mechanisms: Vec<Mechanism>,
    anchors: TrustAnchors,
    timeouts: Timeouts,
    recipient_policy: RecipientPolicy,
    pipelining: bool,
    chunking: bool,
    trace: Option<TraceFn>,
    required_from: Option<String>,
    dkim: Option<DkimSigner>,
    pins: Vec<Pin>,
    pin_only: bool,
    client_identity: Option<ClientIdentity>,
    min_tls_version: TlsVersion,
    mail_options: MailOptions,
    proxy: Option<Proxy>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("host", &self.host)
            .field("socket", &self.socket)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The port (default: 465 for implicit TLS, 587 for STARTTLS).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The security mode (default [`Security::ImplicitTls`]).
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// SMTP (the default) or LMTP (RFC 2033): LHLO instead of EHLO, and
    /// one reply per recipient after the data, so a message may be
    /// delivered to some recipients and refused for others (they are in
    /// [`SendReport::rejected`], as recipients refused at RCPT are). Over
    /// TCP, LMTP takes the same security modes as SMTP.
    ///
    /// ```
    /// use tls_mailer::{Client, Protocol, Security};
    ///
    /// let client = Client::builder("lmtp.example.org")
    ///     .port(24)
    ///     .security(Security::StartTls)
    ///     .protocol(Protocol::Lmtp)
    ///     .build()?;
    /// assert_eq!(client.protocol(), Protocol::Lmtp);
    /// # Ok::<(), tls_mailer::Error>(())
    /// ```
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The port tried with STARTTLS when [`Security::ImplicitTlsOrStartTls`]
    /// falls back (default 587).
    pub fn starttls_fallback_port(mut self, port: u16) -> Self {
        self.starttls_port = Some(port);
        self
    }

    /// The name given in EHLO (default: the host name when fully qualified,
    /// else the local address literal).
    pub fn ehlo_name(mut self, name: impl Into<String>) -> Self {
        self.ehlo_name = Some(name.into());
        self
    }

    /// Credentials for AUTH PLAIN or LOGIN; sent only over TLS.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Logs in as `user` with OAuth 2.0 access tokens from `source`
    /// (AUTH OAUTHBEARER or XOAUTH2), in place of
    /// [`ClientBuilder::credentials`]: asked for a token at each
    /// connection, and told when the server refuses one, after which the
    /// connection is tried once more with a new token. See
    /// [`crate::oauth`].
    pub fn oauth(
        mut self,
        user: impl Into<String>,
        source: Arc<dyn crate::oauth::TokenSource>,
    ) -> Self {
        self.token_source = Some((user.into(), source));
        self.credentials = None;
        self
    }

    /// Limits AUTH to these mechanisms, best first (default: PLAIN, then
    /// LOGIN). The send fails if the server offers none of them.
    pub fn auth_mechanisms(mut self, mechanisms: &[Mechanism]) -> Self {
        self.auth_mechanisms = mechanisms.to_vec();
        self
    }

    /// Trusts the certificates of a PEM bundle, in addition to the system store.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.anchors = self.anchors.add_pem(pem)?;
        Ok(self)
    }

    /// Trusts the certificates of a PEM file, in addition to the system store.
    pub fn add_root_certificates_file(mut self, path: impl AsRef<Path>) -> Result<Self, Error> {
        self.anchors = self.anchors.add_pem_file(path.as_ref())?;
        Ok(self)
    }

    /// Whether to trust the system store (default: yes). Turning it off
    /// leaves only the anchors added explicitly, and the store is then not
    /// read at all. When on, it is read once per process, by the first
    /// client built that uses it.
    pub fn system_roots(mut self, enabled: bool) -> Self {
        self.anchors = self.anchors.system(enabled);
        self
    }

    /// Deadlines (default: [`Timeouts::default`]).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// What to do when some recipients are refused (default: send to the others).
    pub fn recipient_policy(mut self, policy: RecipientPolicy) -> Self {
        self.recipient_policy = policy;
        self
    }

    /// Use PIPELINING when the server offers it (default: yes).
    pub fn pipelining(mut self, enabled: bool) -> Self {
        self.pipelining = enabled;
        self
    }

    /// Use CHUNKING (BDAT) when the server offers it (default: yes).
    pub fn chunking(mut self, enabled: bool) -> Self {
        self.chunking = enabled;
        self
    }

    /// Refuse to [`Client::send_email`] a message whose sender (Sender, else
    /// From) is not `address`: many providers reject such mismatches after
    /// the whole message was transferred.
    pub fn require_from(mut self, address: impl Into<String>) -> Self {
        self.required_from = Some(address.into());
        self
    }

    /// DKIM-sign every message sent (RFC 6376), e.g. with
    /// `DkimSigner::from_pem_file("dkim.pem", "selector", "example.org")`.
    pub fn dkim(mut self, signer: DkimSigner) -> Self {
        self.dkim = Some(signer);
        self
    }

    /// Options for every message this client sends ([`Client::send`],
    /// [`Client::send_email`], a [`Connection`]'s sends, outbox flushes):
    /// delivery status notifications, REQUIRETLS. A `*_with` send gives its
    /// own options instead. Each is checked against the server before
    /// anything is sent (see [`tls_mailer_proto::Session::start_mail_with`]).
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Dsn, MailOptions, Notify};
    ///
    /// let client = Client::builder("smtp.example.org")
    ///     .mail_options(
    ///         MailOptions::new()
    ///             .with_dsn(Dsn::new().notify(Notify::FAILURE | Notify::DELAY))
    ///             .with_require_tls(true),
    ///     )
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mail_options(mut self, options: MailOptions) -> Self {
        self.mail_options = options;
        self
    }

    /// Connects through `proxy` (SOCKS5 or HTTP CONNECT): TLS and SMTP run
    /// inside the tunnel as always, so the proxy sees only the server's
    /// name and ciphertext; with `socks5h://` (and HTTP) the proxy also
    /// resolves the name. The handshake with the proxy counts against the
    /// connect timeout. Not with [`Security::DangerousPlaintext`], which
    /// only goes to a loopback address.
    ///
    /// ```
    /// use tls_mailer::{Client, Proxy};
    /// let client = Client::builder("smtp.example.org")
    ///     .proxy(Proxy::parse("socks5h://127.0.0.1:9050")?)
    ///     .build()?;
    /// # Ok::<(), tls_mailer::Error>(())
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Called with every line of the conversation (credentials redacted).
    pub fn on_trace(mut self, trace: impl Fn(&TraceEvent) + Send + Sync + 'static) -> Self {
        self.trace = Some(Arc::new(trace));
        self
    }

    /// Checks the settings and loads the trust anchors.
    pub fn build(self) -> Result<Client, Error> {
        self.build_with(None)
    }

    /// What the server on this host, port and security mode says about
    /// itself, without logging in or sending mail: connects, does TLS
    /// (verified as always), reads the greeting and EHLO, says QUIT. The
    /// credentials, if any, are not used. The certificates the server
    /// presented are kept even when they do not verify, so
    /// [`Probe::certificates`] shows what is wrong with them.
    ///
    /// ```no_run
    /// use tls_mailer::{Client, Security};
    /// let probe = Client::builder("smtp.example.org")
    ///     .security(Security::StartTls)
    ///     .probe();
    /// match &probe.error {
    ///     None => println!("AUTH {:?}", probe.capabilities.unwrap().auth_mechanisms),
    ///     Some(error) => eprintln!("{error}"),
    /// }
    /// for certificate in &probe.certificates {
    ///     println!("{} (pin {})", certificate.subject, certificate.pin);
    /// }
    /// ```
    pub fn probe(mut self) -> Probe {
        self.credentials = None;
        let greeting = Arc::new(std::sync::Mutex::new(None::<String>));
        let earlier = self.trace.take();
        let first_line = greeting.clone();
        self.trace = Some(Arc::new(move |event: &TraceEvent| {
            if let (TraceEvent::Server(line), Ok(mut greeting)) = (event, first_line.lock()) {
                greeting.get_or_insert_with(|| line.clone());
            }
            if let Some(earlier) = &earlier {
                earlier(event);
            }
        }));
        let recorder = tls::CertificateRecorder::default();
        let security = self.security;
        let port = self.port.unwrap_or(security.default_port());
        let started = std::time::Instant::now();
        let connected = self
            .build_with(Some(recorder.clone()))
            .and_then(|client| client.connect());
        let elapsed = started.elapsed();
        let certificates = recorder
            .take()
            .iter()
            .filter_map(|der| PeerCertificate::parse(der))
            .collect();
        let greeting = greeting.lock().ok().and_then(|mut line| line.take());
        match connected {
            Ok(connection) => {
                let probe = Probe {
                    security,
                    port,
                    elapsed,
                    greeting,
                    capabilities: connection.capabilities().cloned(),
                    tls: connection.tls(),
                    certificates,
                    error: None,
                };
                let _ = connection.quit();
                probe
            }
            Err(error) => Probe {
                security,
                port,
                elapsed,
                greeting,
                capabilities: None,
                tls: None,
                certificates,
                error: Some(error),
            },
        }
    }

    fn build_with(self, recorder: Option<tls::CertificateRecorder>) -> Result<Client, Error> {
        tls::server_name(&self.host)?;
        if self.proxy.is_some() && self.security == Security::DangerousPlaintext {
            return Err(Error::Config(
                "plaintext goes only to a loopback address, never through a proxy".into(),
            ));
        }
        if self.proxy.is_some() && self.socket.is_some() {
            return Err(Error::Config(
                "a Unix socket is local: it is never reached through a proxy".into(),
            ));
        }
        if let Some(path) = &self.socket
            && self.security != Security::DangerousPlaintext
        {
            return Err(Error::InvalidInput(InvalidInput {
                what: "security",
                input: format!(
                    "{:?} over the Unix socket {}",
                    self.security,
                    path.display()
                ),
                reason: "a Unix socket carries no TLS (its file permissions protect it): \
                         leave the security mode unset",
            }));
        }
        if let Some(credentials) = &self.credentials
            && !credentials.fits_plain()
        {
            return Err(Error::InvalidInput(InvalidInput {
                what: "credentials",
                input: credentials.username().escape_debug().to_string(),
                reason: "a user name or password cannot contain NUL (RFC 4616)",
            }));
        }
        let ehlo_name = self.ehlo_name.as_deref().map(Domain::new).transpose()?;
        let tls_options = tls::TlsOptions {
            anchors: self.anchors,
            pins: self.pins,
            pin_only: self.pin_only,
            client_identity: self.client_identity,
            min_version: self.min_tls_version,
            recorder,
        };
        let tls_config = tls::client_config(&tls_options)?;
        Ok(Client {
            settings: Arc::new(Settings {
                port: self.port.unwrap_or(self.security.default_port()),
                starttls_port: self.starttls_port.unwrap_or(587),
                host: self.host,
                socket: self.socket,
                protocol: self.protocol,
                security: self.security,
                ehlo_name,
                credentials: self.credentials,
                token_source: self.token_source,
                auth_mechanisms: self.auth_mechanisms,
                tls_config,
                timeouts: self.timeouts,
                recipient_policy: self.recipient_policy,
                pipelining: self.pipelining,
                chunking: self.chunking,
                trace: self.trace,
                required_from: self.required_from,
                dkim: self.dkim,
                tls_policy: tls_options.policy(),
                mail_options: self.mail_options,
                proxy: self.proxy,
            }),
        })
    }
}

/// TLS options: public-key pins, a client certificate, the minimum version.
/// Each applies to implicit TLS and to STARTTLS alike.
impl ClientBuilder {
    /// Pins the server's public key: `pin` is the base64 SHA-256 of the
    /// SubjectPublicKeyInfo of the server's (leaf) certificate, 44
    /// characters, with or without curl's `sha256//` prefix. May be called
    /// several times (a current and a next key): the server must match one.
    ///
    /// By default the pin is checked **in addition to** the usual
    /// verification: the chain must lead to a trusted authority, the
    /// certificate must be valid for the host name, and its key must match
    /// a pin. With [`ClientBuilder::pin_only`], the pin replaces the chain
    /// and host-name checks. A key that matches no pin fails the handshake
    /// with [`Error::Tls`], whose reason names the pins expected and the one
    /// the server presented.
    ///
    /// The pin of a server's current key:
    ///
    /// ```text
    /// openssl s_client -connect smtp.example.org:465 </dev/null \
    ///   | openssl x509 -pubkey -noout \
    ///   | openssl pkey -pubin -outform der \
    ///   | openssl dgst -sha256 -binary | base64
    /// ```
    ///
    /// (For a STARTTLS port: `openssl s_client -starttls smtp -connect
    /// smtp.example.org:587`.)
    ///
    /// ```
    /// use tls_mailer::Client;
    ///
    /// let builder = Client::builder("smtp.example.org")
    ///     .pin_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")?;
    /// // Not base64, or not 32 bytes: refused, with what a pin should be.
    /// let error = Client::builder("smtp.example.org").pin_sha256("c2hvcnQ=").unwrap_err();
    /// assert!(error.to_string().contains("decodes to 5 bytes"));
    /// # Ok::<(), tls_mailer::Error>(())
    /// ```
    pub fn pin_sha256(mut self, pin: &str) -> Result<Self, Error> {
        let pin = Pin::parse(pin)?;
        if !self.pins.contains(&pin) {
            self.pins.push(pin);
        }
        Ok(self)
    }

    /// Whether the pins replace the certificate authorities (default: no,
    /// they are checked in addition). With `true`, a server is accepted
    /// when, and only when, the public key of its certificate matches a
    /// pin ([`ClientBuilder::pin_sha256`]): a self-signed certificate, or
    /// one from an authority nobody trusts, is then fine. The certificate's
    /// host names and validity dates are **not** checked (the key is what
    /// is pinned), and trust anchors are not consulted. The handshake still
    /// proves that the server holds the pinned key. [`ClientBuilder::build`]
    /// refuses pin-only without a pin: nothing turns verification off.
    ///
    /// ```
    /// use tls_mailer::Client;
    ///
    /// let client = Client::builder("mail.internal.example")
    ///     .pin_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")?
    ///     .pin_only(true)
    ///     .build()?;
    /// assert!(Client::builder("mail.internal.example").pin_only(true).build().is_err());
    /// # Ok::<(), tls_mailer::Error>(())
    /// ```
    pub fn pin_only(mut self, enabled: bool) -> Self {
        self.pin_only = enabled;
        self
    }

    /// Presents a client certificate when the server asks for one (TLS
    /// client authentication): `chain_pem` holds the certificate, then any
    /// intermediates; `key_pem` its private key (PKCS#8, PKCS#1 RSA or
    /// SEC1 EC, unencrypted). Refused when either holds nothing usable or
    /// the key is not the certificate's. A server that refuses the
    /// certificate fails the send with [`Error::Tls`].
    ///
    /// ```no_run
    /// use tls_mailer::Client;
    ///
    /// let chain = std::fs::read("client.pem")?;
    /// let key = std::fs::read("client.key")?;
    /// let client = Client::builder("smtp.example.org")
    ///     .client_certificate(&chain, &key)?
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_certificate(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        self.client_identity = Some(ClientIdentity::from_pem(chain_pem, key_pem)?);
        Ok(self)
    }

    /// [`ClientBuilder::client_certificate`] from two PEM files (they may be
    /// the same file); the key is read into memory that is wiped after use.
    ///
    /// ```no_run
    /// use tls_mailer::Client;
    ///
    /// let client = Client::builder("smtp.example.org")
    ///     .client_certificate_files("client.pem", "client.key")?
    ///     .build()?;
    /// # Ok::<(), tls_mailer::Error>(())
    /// ```
    pub fn client_certificate_files(
        mut self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        self.client_identity = Some(ClientIdentity::from_pem_files(
            chain.as_ref(),
            key.as_ref(),
        )?);
        Ok(self)
    }

    /// The oldest TLS version accepted (default [`TlsVersion::Tls12`]);
    /// [`TlsVersion::Tls13`] refuses servers that only speak TLS 1.2, with
    /// [`Error::Tls`]. Nothing older than TLS 1.2 is ever offered.
    ///
    /// ```
    /// use tls_mailer::{Client, TlsVersion};
    ///
    /// let builder = Client::builder("smtp.example.org").min_tls_version(TlsVersion::Tls13);
    /// ```
    pub fn min_tls_version(mut self, version: TlsVersion) -> Self {
        self.min_tls_version = version;
        self
    }
}

/// Sends one message over implicit TLS, like Go's `net/smtp.SendMail` but
/// encrypted from the first byte: connects to `addr` (`"host:port"`),
/// verifies the certificate against the system trust store, authenticates
/// when `auth` is given, sends `msg` from `from` to every address in `to`,
/// and says QUIT.
///
/// ```no_run
/// use tls_mailer::{send_mail, Credentials};
///
/// let auth = Credentials::new("alice@example.org", "app-password");
/// send_mail(
///     "smtp.example.org:465",
///     Some(&auth),
///     "alice@example.org",
///     &["bob@example.org"],
///     b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n",
/// )?;
/// # Ok::<(), tls_mailer::Error>(())
/// ```
pub fn send_mail(
    addr: &str,
    auth: Option<&Credentials>,
    from: &str,
    to: &[&str],
    msg: &[u8],
) -> Result<SendReport, Error> {
    let (host, port) = split_host_port(addr)?;
    let mut builder = Client::builder(host).port(port);
    if let Some(credentials) = auth {
        builder = builder.credentials(credentials.clone());
    }
    let envelope = Envelope::new(from, to)?;
    builder.build()?.send(&envelope, msg)
}

/// Splits `host:port`, `[v6]:port` or a bare host (port 465).
pub(crate) fn split_host_port(addr: &str) -> Result<(&str, u16), Error> {
    let invalid = |reason| {
        Error::InvalidInput(tls_mailer_proto::InvalidInput {
            what: "server address",
            input: addr.escape_debug().to_string(),
            reason,
        })
    };
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(invalid("expected ':port' after ']'")),
        }
    } else if addr.matches(':').count() > 1 {
        (addr, None)
    } else {
        match addr.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (addr, None),
        }
    };
    if host.is_empty() {
        return Err(invalid(
            "the host is empty; write host:port, e.g. smtp.example.org:465",
        ));
    }
    let port = match port {
        Some(port) => port
            .parse()
            .map_err(|_| invalid("the port must be a number from 1 to 65535"))?,
        None => 465,
    };
    if port == 0 {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    Ok((host, port))
}

/// The transport of an HTTPS request made beside the mail (the OAuth token
/// endpoint): the same trust anchors, proxy and deadlines as a mail
/// connection, verified the same way.
pub(crate) fn https_settings(
    host: &str,
    port: u16,
    anchors: TrustAnchors,
    proxy: Option<Proxy>,
    timeouts: Timeouts,
) -> Result<Arc<Settings>, Error> {
    let mut builder = Client::builder(host).port(port);
    builder.anchors = anchors;
    builder.proxy = proxy;
    builder.timeouts = timeouts;
    Ok(builder.build()?.settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_forms() {
        assert_eq!(
            split_host_port("smtp.example.org:587").unwrap(),
            ("smtp.example.org", 587)
        );
        assert_eq!(
            split_host_port("smtp.example.org").unwrap(),
            ("smtp.example.org", 465)
        );
        assert_eq!(split_host_port("[::1]:2465").unwrap(), ("::1", 2465));
        assert_eq!(split_host_port("::1").unwrap(), ("::1", 465));
        assert_eq!(split_host_port("127.0.0.1:25").unwrap(), ("127.0.0.1", 25));
        for bad in ["", ":465", "host:x", "host:0", "host:70000", "[::1"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
