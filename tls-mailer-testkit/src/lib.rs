//! A scriptable SMTP server on loopback, for the tests and the benchmarks.
//!
//! It speaks implicit TLS, STARTTLS or plaintext, offers AUTH PLAIN and
//! LOGIN, PIPELINING, CHUNKING, SIZE, 8BITMIME, SMTPUTF8, records a transcript
//! and every message it accepts, and can be told to misbehave ([`Fault`]).
//! It shares no code with the client: its command parser is its own, so a
//! parsing bug cannot hide on both sides.
//!
//! ```
//! use tls_mailer_testkit::{Mode, TestServer};
//!
//! let server = TestServer::builder().mode(Mode::ImplicitTls).auth("alice", "secret").start()?;
//! assert!(server.addr().ip().is_loopback());
//! assert!(server.ca_pem().contains("BEGIN CERTIFICATE"));
//! assert!(server.messages().is_empty());
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

mod certs;
pub mod dns;
pub mod oauth;
pub mod proxy;
pub mod real_servers;
mod server;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::CertificateDer;

pub use certs::{CertKind, ClientCert, TestCa};

/// Which transport the server speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// TLS from the first byte (port 465 style).
    #[default]
    ImplicitTls,
    /// Plaintext greeting, STARTTLS offered (port 587 style).
    StartTls,
    /// No TLS at all.
    Plaintext,
}

/// Which TLS versions the server accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.3 and 1.2.
    #[default]
    Both,
    /// TLS 1.2 only: a server that refuses a client asking for 1.3 or later.
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
}

/// The extensions the server advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// PIPELINING.
    pub pipelining: bool,
    /// CHUNKING (BDAT).
    pub chunking: bool,
    /// SIZE with this limit.
    pub size: Option<u64>,
    /// 8BITMIME.
    pub eight_bit_mime: bool,
    /// BINARYMIME (RFC 3030; off by default, as at most real servers).
    pub binary_mime: bool,
    /// SMTPUTF8.
    pub smtputf8: bool,
    /// STARTTLS (in [`Mode::StartTls`], before TLS).
    pub starttls: bool,
    /// ENHANCEDSTATUSCODES.
    pub enhanced_status_codes: bool,
    /// DSN.
    pub dsn: bool,
    /// REQUIRETLS (RFC 8689), advertised only once TLS is up.
    pub requiretls: bool,
}

impl Default for Extensions {
    fn default() -> Self {
        Self {
            pipelining: true,
            chunking: true,
            size: Some(50 << 20),
            eight_bit_mime: true,
            binary_mime: false,
            smtputf8: true,
            starttls: true,
            enhanced_status_codes: true,
            dsn: true,
            requiretls: false,
        }
    }
}

impl Extensions {
    /// Nothing advertised: a bare RFC 5321 server.
    pub fn none() -> Self {
        Self {
            pipelining: false,
            chunking: false,
            size: None,
            eight_bit_mime: false,
            binary_mime: false,
            smtputf8: false,
            starttls: false,
            enhanced_status_codes: false,
            dsn: false,
            requiretls: false,
        }
    }
}

/// A stage of the conversation at which a [`Fault`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The `220` greeting.
    Greeting,
    /// The reply to EHLO.
    Ehlo,
    /// The reply to STARTTLS.
    StartTls,
    /// The final reply to AUTH.
    Auth,
    /// The reply to MAIL FROM.
    MailFrom,
    /// The reply to RCPT TO.
    RcptTo,
    /// The reply to DATA (the `354`).
    Data,
    /// The reply after the final dot or `BDAT LAST`.
    DataEnd,
    /// The reply to QUIT.
    Quit,
}

/// A way for the server to misbehave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this stage with this reply instead (text may start with an enhanced code).
    Reply {
        /// Where.
        stage: Stage,
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// Refuse this RCPT TO address with this reply; accept the others.
    RejectRecipient {
        /// The address, as in `RCPT TO:<address>`.
        address: String,
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// Close the connection instead of answering.
    Drop {
        /// Where.
        stage: Stage,
    },
    /// Never answer (until the client goes away or the server is dropped).
    Stall {
        /// Where.
        stage: Stage,
    },
    /// Send these raw bytes as the reply.
    Garbage {
        /// Where.
        stage: Stage,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Send an endless line of `A` without CRLF (stops after 64 MiB).
    EndlessLine {
        /// Where.
        stage: Stage,
    },
    /// Send these bytes in the same write as the `220` to STARTTLS
    /// (response injection, RFC 3207 5).
    InjectAfterStartTls(Vec<u8>),
    /// Never advertise STARTTLS.
    NoStartTls,
    /// Answer STARTTLS with `454 4.7.0 TLS not available`.
    RefuseStartTls,
    /// Read the message body slowly (512 bytes per 50 ms), as a server that
    /// keeps every write alive without ever catching up.
    TrickleBody,
    /// Send `421` right behind the `250` that accepts a message, in the same
    /// write, and close.
    CloseAfterAccept,
    /// Apply `fault` to every `n`th mail the server sees (counted over all
    /// connections, from 1): for soak tests that mix faults with successes.
    EveryNth {
        /// The period, in mails.
        n: usize,
        /// The fault for those mails (a stage fault).
        fault: Box<Fault>,
    },
    /// After this many accepted messages on one connection, close it (as
    /// servers with a per-connection message limit do).
    MessagesPerConnection(usize),
    /// After this many accepted messages on one connection, answer the
    /// next MAIL with `421` and close (as most servers with such a limit
    /// do: the client then knows that mail was not taken).
    LimitPerConnection(usize),
    /// LMTP ([`TestServerBuilder::lmtp`]): after the data, refuse this
    /// recipient with this reply, and deliver to the others.
    RejectAfterData {
        /// The address, as in `RCPT TO:<address>`.
        address: String,
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// LMTP: after the data, give this many of the per-recipient replies,
    /// then close the connection.
    DropAfterRecipientReplies(usize),
    /// Close a connection that sent no command for `after` while no mail
    /// is in progress (as servers close idle connections), first saying
    /// `421` when `with_421`, else without a word.
    CloseWhenIdle {
        /// How long a connection may be idle.
        after: Duration,
        /// Say `421 4.4.2 ... idle` before closing.
        with_421: bool,
    },
}

/// A message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The address inside `MAIL FROM:<>`.
    pub mail_from: String,
    /// The parameters after it (`SIZE=..`, `BODY=8BITMIME`, ...).
    pub mail_params: Vec<String>,
    /// The accepted recipients.
    pub rcpt_to: Vec<String>,
    /// The parameters after each accepted recipient (`NOTIFY=..`,
    /// `ORCPT=..`), in the order of `rcpt_to`.
    pub rcpt_params: Vec<Vec<String>>,
    /// The message as stored: DATA un-stuffed (without the final dot line) or
    /// the BDAT chunks concatenated.
    pub data: Vec<u8>,
    /// Sent with BDAT.
    pub via_bdat: bool,
    /// The connection was encrypted.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub auth_user: Option<String>,
    /// The name the client gave in EHLO.
    pub ehlo: String,
    /// The subject of the certificate the client presented (`CN=...`), when
    /// the server asked for one ([`TestServerBuilder::require_client_cert`]).
    pub client_subject: Option<String>,
    /// The number of the connection that carried it (from 1, in the order
    /// of [`TestServer::connections`]).
    pub connection: usize,
}

/// Everything the server was told to do.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) hostname: String,
    pub(crate) auth: Option<(String, String)>,
    pub(crate) auth_mechanisms: Vec<String>,
    pub(crate) extensions: Extensions,
    pub(crate) faults: Vec<Fault>,
    pub(crate) maildir: Option<PathBuf>,
    pub(crate) discard_bodies: bool,
    /// Speak LMTP (RFC 2033).
    pub(crate) lmtp: bool,
}

/// What the connection threads share with the [`TestServer`] handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) messages: Mutex<Vec<ReceivedMessage>>,
    pub(crate) transcript: Mutex<Vec<String>>,
    pub(crate) connections: Mutex<usize>,
    /// Connections open now, and the most ever open at once.
    pub(crate) open: Mutex<(usize, usize)>,
    /// MAIL commands seen, over all connections (for [`Fault::EveryNth`]).
    pub(crate) mails: std::sync::atomic::AtomicUsize,
    pub(crate) live: Mutex<Vec<server::Socket>>,
    pub(crate) stop: AtomicBool,
}

/// Configures a [`TestServer`].
#[derive(Debug)]
#[must_use]
pub struct TestServerBuilder {
    config: Config,
    bind: SocketAddr,
    ca: Option<TestCa>,
    cert: CertKind,
    tls_versions: TlsVersions,
    require_client_cert: bool,
    unix_socket: Option<PathBuf>,
}

impl TestServerBuilder {
    /// Speak LMTP (RFC 2033): greet as LMTP, take LHLO (and refuse EHLO and
    /// HELO), and after the data give one reply per accepted recipient, in
    /// RCPT order ([`Fault::RejectAfterData`] refuses one). A message is
    /// recorded with the recipients it was delivered to.
    pub fn lmtp(mut self) -> Self {
        self.config.lmtp = true;
        self
    }

    /// Listen on a Unix socket at `path` (created; it must not exist)
    /// instead of TCP. There is no TLS there: the mode becomes
    /// [`Mode::Plaintext`].
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.unix_socket = Some(path.into());
        self.config.mode = Mode::Plaintext;
        self
    }

    /// Reads message bodies (BDAT chunks or DATA lines) and throws them
    /// away: a message is accepted (and recorded) with empty `data`,
    /// whatever its size, so a benchmark can stream gigabytes without the
    /// server holding them. The SIZE limit still applies to `SIZE=` in MAIL.
    pub fn discard_bodies(mut self) -> Self {
        self.config.discard_bodies = true;
        self
    }

    /// The transport (default [`Mode::ImplicitTls`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Where to listen (default `127.0.0.1:0`); only loopback addresses.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Use this CA (to share one trust anchor between servers).
    pub fn ca(mut self, ca: TestCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// The certificate to present (default [`CertKind::Valid`]).
    pub fn cert(mut self, kind: CertKind) -> Self {
        self.cert = kind;
        self
    }

    /// Offer AUTH and accept these credentials; MAIL before AUTH gets 530.
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.config.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// The mechanisms to advertise (default PLAIN and LOGIN).
    pub fn auth_mechanisms(mut self, mechanisms: &[&str]) -> Self {
        self.config.auth_mechanisms = mechanisms.iter().map(|m| m.to_string()).collect();
        self
    }

    /// The extensions to advertise.
    pub fn extensions(mut self, extensions: Extensions) -> Self {
        self.config.extensions = extensions;
        self
    }

    /// Misbehave this way (may be called several times).
    pub fn fault(mut self, fault: Fault) -> Self {
        self.config.faults.push(fault);
        self
    }

    /// Also write each accepted message to `dir` as `<n>.eml`.
    pub fn maildir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.maildir = Some(dir.into());
        self
    }

    /// The name in the greeting and the EHLO reply (default `localhost`).
    pub fn hostname(mut self, name: &str) -> Self {
        self.config.hostname = name.to_owned();
        self
    }

    /// The TLS versions to accept (default [`TlsVersions::Both`]).
    pub fn tls_versions(mut self, versions: TlsVersions) -> Self {
        self.tls_versions = versions;
        self
    }

    /// Require a client certificate signed by the server's CA (see
    /// [`TestServer::ca`], [`TestCa::client_cert`]) in every TLS handshake;
    /// a client without one, or with another, is refused. The subject of
    /// the certificate is recorded in the transcript
    /// (`-- client certificate: CN=...`) and in
    /// [`ReceivedMessage::client_subject`].
    pub fn require_client_cert(mut self) -> Self {
        self.require_client_cert = true;
        self
    }

    /// Starts listening.
    pub fn start(self) -> std::io::Result<TestServer> {
        if !self.bind.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the test server listens on loopback addresses only",
            ));
        }
        if let Some(dir) = &self.config.maildir {
            std::fs::create_dir_all(dir)?;
        }
        let ca = self.ca.unwrap_or_default();
        let issued = ca.issue(self.cert).map_err(std::io::Error::other)?;
        let spki_sha256 = BASE64.encode(digest::digest(&digest::SHA256, &issued.spki));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.tls_versions {
            TlsVersions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersions::Tls12Only => &[&rustls::version::TLS12],
            TlsVersions::Tls13Only => &[&rustls::version::TLS13],
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(std::io::Error::other)?;
        let builder = if self.require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from(ca.der()))
                .map_err(std::io::Error::other)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(std::io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let tls = builder
            .with_single_cert(issued.chain, issued.key)
            .map_err(std::io::Error::other)?;
        let (listener, addr) = match &self.unix_socket {
            Some(path) => {
                let listener = UnixListener::bind(path)?;
                listener.set_nonblocking(true)?;
                (server::Listener::Unix(listener), self.bind)
            }
            None => {
                let listener = TcpListener::bind(self.bind)?;
                let addr = listener.local_addr()?;
                listener.set_nonblocking(true)?;
                (server::Listener::Tcp(listener), addr)
            }
        };
        let shared = Arc::new(Shared::default());
        let accept = server::spawn_acceptor(
            listener,
            Arc::new(self.config),
            Arc::new(tls),
            shared.clone(),
        );
        Ok(TestServer {
            addr,
            unix_socket: self.unix_socket,
            ca,
            spki_sha256,
            shared,
            acceptor: Some(accept),
        })
    }
}

/// A running server. Dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    unix_socket: Option<PathBuf>,
    ca: TestCa,
    spki_sha256: String,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A builder with the defaults: implicit TLS, a valid certificate, every
    /// extension, no AUTH, `127.0.0.1:0`.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            config: Config {
                mode: Mode::ImplicitTls,
                hostname: "localhost".into(),
                auth: None,
                auth_mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
                extensions: Extensions::default(),
                faults: Vec::new(),
                maildir: None,
                discard_bodies: false,
                lmtp: false,
            },
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ca: None,
            cert: CertKind::Valid,
            tls_versions: TlsVersions::Both,
            require_client_cert: false,
            unix_socket: None,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Unix socket listened on, if not TCP.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The CA a client must trust (PEM).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA a client must trust (DER).
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca.der()
    }

    /// The CA that signed the server's certificate (unless it is
    /// [`CertKind::UntrustedCa`] or [`CertKind::SelfSigned`]) and that signs
    /// the client certificates it accepts.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The pin of the server's certificate: the base64 SHA-256 of its
    /// SubjectPublicKeyInfo, computed from the key rcgen made (not from the
    /// certificate), so a client's own extraction is checked against it.
    pub fn spki_sha256(&self) -> String {
        self.spki_sha256.clone()
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        lock(&self.shared.messages).clone()
    }

    /// Waits until `count` messages are in (or `timeout` passes) and returns them.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() >= deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The conversation of every connection: `C:` / `S:` lines, AUTH
    /// payloads redacted, message bodies summarised.
    pub fn transcript(&self) -> String {
        let mut text = lock(&self.shared.transcript).join("\n");
        text.push('\n');
        text
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        *lock(&self.shared.connections)
    }

    /// The most connections that were open at once. A connection counts
    /// from its accept until the server has read its QUIT (before the
    /// `221`), read its end, or is about to close it, so a client that
    /// waits for the `221` or the close before opening another is never
    /// counted twice.
    pub fn peak_connections(&self) -> usize {
        lock(&self.shared.open).1
    }

    /// How many MAIL commands the server received, over all connections
    /// (each one a delivery attempt, whatever came of it).
    pub fn mail_commands(&self) -> usize {
        self.shared.mails.load(Ordering::SeqCst)
    }

    /// Stops the server (the same as dropping it).
    pub fn shutdown(self) {}
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for stream in lock(&self.shared.live).drain(..) {
            stream.shutdown();
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        if let Some(path) = &self.unix_socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads and throws away what the client sends until it hangs up or `stop`
/// is set: a server that stalls. The stream's read timeout is what lets it
/// look at `stop`.
pub(crate) fn drain_until_stopped(stream: &mut impl std::io::Read, stop: &AtomicBool) {
    let mut sink = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
}

/// Locks, ignoring poisoning: a panicking connection thread must not hide
/// what was recorded.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
