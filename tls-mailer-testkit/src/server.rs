//! The server side of one connection: its own line reader and command
//! handling, written independently of the client's parser.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::{Config, Fault, Mode, ReceivedMessage, Shared, Stage, lock};

const MAX_LINE: usize = 4096;
const MAX_MESSAGE: usize = 200 << 20;
const MAX_RECIPIENTS: usize = 1000;

/// Where the server listens: loopback TCP, or a Unix socket (plaintext).
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn accept(&self) -> io::Result<Socket> {
        match self {
            Self::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                let _ = stream.set_nonblocking(false);
                // A reply is written in pieces (text, then CRLF): without
                // this, Nagle's algorithm holds the last piece until the
                // client's delayed ACK, some 40 ms, as no real server does.
                let _ = stream.set_nodelay(true);
                Ok(Socket::Tcp(stream))
            }
            Self::Unix(listener) => {
                let (stream, _) = listener.accept()?;
                let _ = stream.set_nonblocking(false);
                Ok(Socket::Unix(stream))
            }
        }
    }
}

/// An accepted connection's socket.
#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Tcp(tcp) => Self::Tcp(tcp.try_clone()?),
            Self::Unix(unix) => Self::Unix(unix.try_clone()?),
        })
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(tcp) => tcp.set_read_timeout(timeout),
            Self::Unix(unix) => unix.set_read_timeout(timeout),
        }
    }

    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Self::Tcp(tcp) => tcp.shutdown(std::net::Shutdown::Both),
            Self::Unix(unix) => unix.shutdown(std::net::Shutdown::Both),
        };
    }
}

pub(crate) fn spawn_acceptor(
    listener: Listener,
    config: Arc<Config>,
    tls: Arc<ServerConfig>,
    shared: Arc<Shared>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut workers = Vec::new();
        while !shared.stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok(stream) => {
                    // A client that goes silent cannot keep a thread forever.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
                    if let Ok(clone) = stream.try_clone() {
                        lock(&shared.live).push(clone);
                    }
                    let number = {
                        let mut connections = lock(&shared.connections);
                        *connections += 1;
                        *connections
                    };
                    {
                        let mut open = lock(&shared.open);
                        open.0 += 1;
                        open.1 = open.1.max(open.0);
                    }
                    let (config, tls, shared) = (config.clone(), tls.clone(), shared.clone());
                    workers.push(std::thread::spawn(move || {
                        let mut connection = Connection::new(stream, number, config, tls, shared);
                        let _ = connection.run();
                        connection.leave();
                        connection.close();
                    }));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        for worker in workers {
            let _ = worker.join();
        }
    })
}

enum Stream {
    Plain(TcpStream),
    Unix(UnixStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Unix(unix) => unix.read(buf),
            Self::Tls(tls) => tls.read(buf),
            Self::Gone => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Unix(unix) => unix.write(buf),
            Self::Tls(tls) => tls.write(buf),
            Self::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Unix(unix) => unix.flush(),
            Self::Tls(tls) => tls.flush(),
            Self::Gone => Ok(()),
        }
    }
}

/// What to do at a stage: the normal reply, or a fault.
enum Action {
    Normal,
    Reply(String),
    Drop,
    Stall,
    Raw(Vec<u8>),
    Endless,
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    mail_params: Vec<String>,
    rcpt_to: Vec<String>,
    rcpt_params: Vec<Vec<String>>,
    data: Vec<u8>,
    /// Body bytes read and thrown away (`discard_bodies`).
    discarded: usize,
    bdat_failed: bool,
}

struct Connection {
    number: usize,
    config: Arc<Config>,
    tls_config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    stream: Stream,
    /// Bytes read and not yet taken: `buffer[consumed..]` (lines are taken
    /// by moving `consumed`, so a body of short lines is not shifted down
    /// once a line).
    buffer: Vec<u8>,
    consumed: usize,
    tls: bool,
    ehlo: Option<String>,
    auth_user: Option<String>,
    transaction: Transaction,
    queue_counter: u32,
    /// Reading the body slowly ([`Fault::TrickleBody`]).
    trickling: bool,
    /// The subject of the client's certificate, when it gave one.
    client_subject: Option<String>,
    /// The server-wide number of the current mail, from 1.
    mail_number: usize,
    /// Messages accepted on this connection.
    accepted_here: usize,
    /// No longer counted among the open connections.
    left: bool,
    /// The last read ended because the connection was idle too long
    /// ([`Fault::CloseWhenIdle`]).
    idled: bool,
}

impl Connection {
    fn new(
        socket: Socket,
        number: usize,
        config: Arc<Config>,
        tls_config: Arc<ServerConfig>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            number,
            config,
            tls_config,
            shared,
            stream: match socket {
                Socket::Tcp(tcp) => Stream::Plain(tcp),
                Socket::Unix(unix) => Stream::Unix(unix),
            },
            buffer: Vec::new(),
            consumed: 0,
            tls: false,
            ehlo: None,
            auth_user: None,
            transaction: Transaction::default(),
            queue_counter: 0,
            trickling: false,
            client_subject: None,
            mail_number: 0,
            accepted_here: 0,
            left: false,
            idled: false,
        }
    }

    /// Stops counting this connection as open (once).
    fn leave(&mut self) {
        if !std::mem::replace(&mut self.left, true) {
            lock(&self.shared.open).0 -= 1;
        }
    }

    fn set_read_timeout(&self, timeout: Duration) {
        let _ = match &self.stream {
            Stream::Plain(tcp) => tcp.set_read_timeout(Some(timeout)),
            Stream::Unix(unix) => unix.set_read_timeout(Some(timeout)),
            Stream::Tls(tls) => tls.sock.set_read_timeout(Some(timeout)),
            Stream::Gone => Ok(()),
        };
    }

    /// [`Fault::CloseWhenIdle`], when configured.
    fn idle_limit(&self) -> Option<(Duration, bool)> {
        self.config.faults.iter().find_map(|fault| match fault {
            Fault::CloseWhenIdle { after, with_421 } => Some((*after, *with_421)),
            _ => None,
        })
    }

    /// Reads the next command line; between mails, a connection idle for
    /// longer than [`Fault::CloseWhenIdle`] allows ends it.
    fn read_command(&mut self) -> io::Result<Option<Vec<u8>>> {
        let limit = self
            .idle_limit()
            .filter(|_| self.transaction.mail_from.is_none());
        let Some((after, with_421)) = limit else {
            return self.read_line();
        };
        self.set_read_timeout(after);
        let line = self.read_line();
        self.set_read_timeout(Duration::from_secs(120));
        if self.idled {
            self.log("-- closed: idle".into());
            self.leave();
            if with_421 {
                self.send("421 4.4.2 localhost Idle for too long, closing connection")?;
            }
        }
        line
    }

    /// Closes the socket (the acceptor keeps a clone for shutdown, so
    /// dropping ours alone would leave it open).
    fn close(&mut self) {
        let _ = match &self.stream {
            Stream::Plain(tcp) => tcp.shutdown(std::net::Shutdown::Both),
            Stream::Unix(unix) => unix.shutdown(std::net::Shutdown::Both),
            Stream::Tls(tls) => tls.sock.shutdown(std::net::Shutdown::Both),
            Stream::Gone => Ok(()),
        };
    }

    fn log(&self, line: String) {
        lock(&self.shared.transcript).push(line);
    }

    fn run(&mut self) -> io::Result<()> {
        let mode = match self.config.mode {
            Mode::ImplicitTls => "implicit TLS",
            Mode::StartTls => "STARTTLS",
            Mode::Plaintext => "plaintext",
        };
        self.log(format!("-- connection {} ({mode})", self.number));
        if self.config.mode == Mode::ImplicitTls {
            self.start_tls()?;
        }
        let hostname = self.config.hostname.clone();
        let protocol = if self.config.lmtp { "LMTP" } else { "ESMTP" };
        if !self.respond(
            Stage::Greeting,
            format!("220 {hostname} {protocol} tls-mailer-testkit"),
        )? {
            return Ok(());
        }
        while let Some(line) = self.read_command()? {
            let text = String::from_utf8_lossy(&line).into_owned();
            let (verb, argument) = match text.split_once(' ') {
                Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.to_owned()),
                None => (text.to_ascii_uppercase(), String::new()),
            };
            let shown = if verb == "AUTH" {
                format!(
                    "AUTH {} <redacted>",
                    argument.split(' ').next().unwrap_or_default()
                )
            } else {
                text.clone()
            };
            self.log(format!("C: {shown}"));
            let keep_going = match verb.as_str() {
                // RFC 2033 4.1: LMTP has LHLO, and neither EHLO nor HELO.
                "EHLO" | "HELO" if self.config.lmtp => {
                    self.send("500 5.5.1 This is LMTP: say LHLO")?
                }
                "LHLO" if !self.config.lmtp => self.send("500 5.5.2 Command not recognised")?,
                "EHLO" | "LHLO" => self.ehlo(&argument, true)?,
                "HELO" => self.ehlo(&argument, false)?,
                "STARTTLS" => self.starttls()?,
                "AUTH" => self.auth(&argument)?,
                "MAIL" => self.mail(&argument)?,
                "RCPT" => self.rcpt(&argument)?,
                "DATA" => self.data()?,
                "BDAT" => self.bdat(&argument)?,
                "RSET" => {
                    self.transaction = Transaction::default();
                    self.send("250 2.0.0 Ok")?
                }
                "NOOP" => self.send("250 2.0.0 Ok")?,
                "QUIT" => {
                    self.leave();
                    self.respond(Stage::Quit, "221 2.0.0 Bye".into())?;
                    false
                }
                _ => self.send("500 5.5.2 Command not recognised")?,
            };
            if !keep_going {
                break;
            }
        }
        Ok(())
    }

    fn start_tls(&mut self) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let connection =
            ServerConnection::new(self.tls_config.clone()).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(connection, tcp);
        while tls.conn.is_handshaking() {
            if let Err(error) = tls.conn.complete_io(&mut tls.sock) {
                self.log(format!("-- TLS handshake failed: {error}"));
                return Err(error);
            }
        }
        self.client_subject = tls
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|certificate| x509_parser::parse_x509_certificate(certificate).ok())
            .map(|(_, certificate)| certificate.subject().to_string());
        if let Some(subject) = &self.client_subject {
            self.log(format!("-- client certificate: {subject}"));
        }
        self.stream = Stream::Tls(Box::new(tls));
        self.tls = true;
        // Nothing said before TLS counts after it.
        self.buffer.clear();
        self.consumed = 0;
        self.ehlo = None;
        self.auth_user = None;
        self.transaction = Transaction::default();
        self.log("-- TLS established".into());
        Ok(())
    }

    /// Reads one line (without CRLF); `None` when the client closed.
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.next_line()?.map(|line| self.buffer[line].to_vec()))
    }

    /// Takes the next line from the buffer, reading as needed, and returns
    /// where it lies in the buffer (without CRLF), valid until the next
    /// read; `None` when the client closed.
    fn next_line(&mut self) -> io::Result<Option<std::ops::Range<usize>>> {
        loop {
            let pending = &self.buffer[self.consumed..];
            if let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let start = self.consumed;
                self.consumed += end + 1;
                let mut end = start + end;
                if end > start && self.buffer[end - 1] == b'\r' {
                    end -= 1;
                }
                return Ok(Some(start..end));
            }
            if pending.len() > MAX_LINE {
                self.send("500 5.5.2 Line too long")?;
                return Ok(None);
            }
            self.compact();
            let mut chunk = [0u8; 16 * 1024];
            match self.read_some(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.idled = matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    );
                    return Ok(None);
                }
            }
        }
    }

    /// Drops the bytes already taken from the front of the buffer.
    fn compact(&mut self) {
        self.buffer.drain(..self.consumed);
        self.consumed = 0;
    }

    /// One read from the client; a trickle while [`Fault::TrickleBody`] holds.
    fn read_some(&mut self, chunk: &mut [u8]) -> io::Result<usize> {
        if self.trickling {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let end = chunk.len().min(512);
            return self.stream.read(&mut chunk[..end]);
        }
        self.stream.read(chunk)
    }

    /// Reads exactly `count` bytes (BDAT).
    fn read_exact_bytes(&mut self, count: usize) -> io::Result<Option<Vec<u8>>> {
        self.compact();
        while self.buffer.len() < count {
            let mut chunk = [0u8; 64 * 1024];
            match self.read_some(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(self.buffer.drain(..count).collect()))
    }

    fn send(&mut self, reply: &str) -> io::Result<bool> {
        for line in reply.split("\r\n") {
            self.log(format!("S: {line}"));
        }
        self.stream.write_all(reply.as_bytes())?;
        self.stream.write_all(b"\r\n")?;
        self.stream.flush()?;
        Ok(true)
    }

    fn action(&self, stage: Stage) -> Action {
        for fault in &self.config.faults {
            if let Some(action) = self.fault_action(fault, stage) {
                return action;
            }
        }
        Action::Normal
    }

    fn fault_action(&self, fault: &Fault, stage: Stage) -> Option<Action> {
        match fault {
            Fault::Reply {
                stage: s,
                code,
                text,
            } if *s == stage => Some(Action::Reply(format!("{code} {text}"))),
            Fault::Drop { stage: s } if *s == stage => Some(Action::Drop),
            Fault::Stall { stage: s } if *s == stage => Some(Action::Stall),
            Fault::Garbage { stage: s, bytes } if *s == stage => Some(Action::Raw(bytes.clone())),
            Fault::EndlessLine { stage: s } if *s == stage => Some(Action::Endless),
            Fault::EveryNth { n, fault }
                if *n > 0 && self.mail_number > 0 && self.mail_number % n == 0 =>
            {
                self.fault_action(fault, stage)
            }
            _ => None,
        }
    }

    /// Sends `normal` unless a fault says otherwise; false when the
    /// connection must end.
    fn respond(&mut self, stage: Stage, normal: String) -> io::Result<bool> {
        match self.action(stage) {
            Action::Normal => self.send(&normal),
            Action::Reply(reply) => {
                self.send(&reply)?;
                // A refused greeting ends the connection, as real servers do.
                Ok(stage != Stage::Greeting)
            }
            Action::Drop => {
                self.log("-- dropped".into());
                Ok(false)
            }
            Action::Stall => {
                self.log("-- stalled".into());
                crate::drain_until_stopped(&mut self.stream, &self.shared.stop);
                Ok(false)
            }
            Action::Raw(bytes) => {
                self.log(format!("S: <raw {} bytes>", bytes.len()));
                self.stream.write_all(&bytes)?;
                self.stream.flush()?;
                Ok(true)
            }
            Action::Endless => {
                self.log("S: <endless line>".into());
                let chunk = [b'A'; 64 * 1024];
                for _ in 0..1024 {
                    if self.stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                Ok(false)
            }
        }
    }

    fn has_fault(&self, wanted: &Fault) -> bool {
        self.config.faults.contains(wanted)
    }

    fn ehlo(&mut self, name: &str, extended: bool) -> io::Result<bool> {
        self.ehlo = Some(name.to_owned());
        self.transaction = Transaction::default();
        let hostname = self.config.hostname.clone();
        if !extended {
            return self.respond(Stage::Ehlo, format!("250 {hostname}"));
        }
        let extensions = self.config.extensions;
        let mut lines = vec![hostname];
        if extensions.pipelining {
            lines.push("PIPELINING".into());
        }
        if let Some(size) = extensions.size {
            lines.push(format!("SIZE {size}"));
        }
        if extensions.eight_bit_mime {
            lines.push("8BITMIME".into());
        }
        if extensions.binary_mime {
            lines.push("BINARYMIME".into());
        }
        if extensions.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if extensions.chunking {
            lines.push("CHUNKING".into());
        }
        if extensions.enhanced_status_codes {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        if extensions.dsn {
            lines.push("DSN".into());
        }
        // RFC 8689 2: offered only over TLS.
        if extensions.requiretls && self.tls {
            lines.push("REQUIRETLS".into());
        }
        let starttls_offered = self.config.mode == Mode::StartTls
            && !self.tls
            && extensions.starttls
            && !self.has_fault(&Fault::NoStartTls);
        if starttls_offered {
            lines.push("STARTTLS".into());
        }
        // Like real servers, AUTH is offered on a STARTTLS port only after TLS.
        let auth_offered =
            self.config.auth.is_some() && (self.tls || self.config.mode == Mode::Plaintext);
        if auth_offered {
            lines.push(format!("AUTH {}", self.config.auth_mechanisms.join(" ")));
        }
        let count = lines.len();
        let reply: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(index, line)| format!("250{}{line}", if index + 1 == count { ' ' } else { '-' }))
            .collect();
        self.respond(Stage::Ehlo, reply.join("\r\n"))
    }

    fn starttls(&mut self) -> io::Result<bool> {
        let offered =
            self.config.mode == Mode::StartTls && !self.tls && !self.has_fault(&Fault::NoStartTls);
        if !offered {
            return self.send("502 5.5.1 STARTTLS not offered");
        }
        if self.has_fault(&Fault::RefuseStartTls) {
            return self.send("454 4.7.0 TLS not available");
        }
        let injected = self.config.faults.iter().find_map(|fault| match fault {
            Fault::InjectAfterStartTls(bytes) => Some(bytes.clone()),
            _ => None,
        });
        match self.action(Stage::StartTls) {
            Action::Normal => {
                let mut reply = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
                self.log("S: 220 2.0.0 Ready to start TLS".into());
                if let Some(bytes) = injected {
                    self.log(format!("S: <injected {} bytes>", bytes.len()));
                    reply.extend_from_slice(&bytes);
                }
                self.stream.write_all(&reply)?;
                self.stream.flush()?;
                if self.start_tls().is_err() {
                    return Ok(false);
                }
                Ok(true)
            }
            _ => self.respond(Stage::StartTls, String::new()),
        }
    }

    fn auth(&mut self, argument: &str) -> io::Result<bool> {
        let Some((user, password)) = self.config.auth.clone() else {
            return self.send("503 5.5.1 AUTH not offered");
        };
        if self.config.mode == Mode::StartTls && !self.tls {
            return self
                .send("538 5.7.11 Encryption required for requested authentication mechanism");
        }
        let mut words = argument.split(' ');
        let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
        let initial = words.next().map(str::to_owned);
        let offered = self
            .config
            .auth_mechanisms
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&mechanism));
        if !offered {
            return self.send("504 5.5.4 Unrecognised authentication type");
        }
        let decode = |text: &str| BASE64.decode(text.trim()).ok();
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(response) => response,
                    None => {
                        self.send("334 ")?;
                        match self.read_auth_line()? {
                            Some(line) => line,
                            None => return Ok(false),
                        }
                    }
                };
                if response == "*" {
                    return self.send("501 5.7.0 Authentication cancelled");
                }
                decode(&response).and_then(|raw| {
                    let mut fields = raw.split(|&b| b == 0);
                    let _authzid = fields.next()?;
                    let user = String::from_utf8(fields.next()?.to_vec()).ok()?;
                    let password = String::from_utf8(fields.next()?.to_vec()).ok()?;
                    Some((user, password))
                })
            }
            "LOGIN" => {
                self.send("334 VXNlcm5hbWU6")?;
                let Some(user_line) = self.read_auth_line()? else {
                    return Ok(false);
                };
                if user_line == "*" {
                    return self.send("501 5.7.0 Authentication cancelled");
                }
                self.send("334 UGFzc3dvcmQ6")?;
                let Some(password_line) = self.read_auth_line()? else {
                    return Ok(false);
                };
                if password_line == "*" {
                    return self.send("501 5.7.0 Authentication cancelled");
                }
                decode(&user_line)
                    .zip(decode(&password_line))
                    .and_then(|(u, p)| {
                        Some((String::from_utf8(u).ok()?, String::from_utf8(p).ok()?))
                    })
            }
            // RFC 2195: a challenge, then "user hex(HMAC-MD5(password, challenge))".
            "CRAM-MD5" => {
                let challenge = format!("<{}.{}@localhost>", std::process::id(), self.number);
                self.send(&format!("334 {}", BASE64.encode(&challenge)))?;
                let Some(line) = self.read_auth_line()? else {
                    return Ok(false);
                };
                let expected = format!(
                    "{user} {}",
                    hmac_md5_hex(password.as_bytes(), challenge.as_bytes())
                );
                decode(&line)
                    .filter(|given| *given == expected.as_bytes())
                    .map(|_| (user.clone(), password.clone()))
            }
            "SCRAM-SHA-256" | "SCRAM-SHA-256-PLUS" => {
                let Some(first) = initial.as_deref().and_then(decode) else {
                    return self.send("501 5.5.2 SCRAM needs an initial response");
                };
                let plus = mechanism.ends_with("-PLUS");
                match self.scram(plus, &first, &user, &password)? {
                    Some(ok) => ok.then(|| (user.clone(), password.clone())),
                    None => return Ok(false),
                }
            }
            // OAuth 2.0 bearer tokens: the configured password is the
            // token. A wrong one gets the JSON error challenge, and the
            // refusal after the client's empty answer (RFC 7628 3.2.2).
            "XOAUTH2" | "OAUTHBEARER" => {
                let given = initial
                    .as_deref()
                    .and_then(decode)
                    .and_then(|raw| bearer_fields(&mechanism, &raw));
                if given
                    .as_ref()
                    .is_some_and(|(u, t)| *u == user && *t == password)
                {
                    given
                } else {
                    let error = BASE64
                        .encode(br#"{"status":"invalid_token","schemes":"bearer","scope":"mail"}"#);
                    self.send(&format!("334 {error}"))?;
                    if self.read_auth_line()?.is_none() {
                        return Ok(false);
                    }
                    None
                }
            }
            _ => None,
        };
        match credentials {
            Some((given_user, given_password))
                if given_user == user && given_password == password =>
            {
                self.auth_user = Some(given_user);
                self.respond(Stage::Auth, "235 2.7.0 Authentication successful".into())
            }
            _ => self.respond(
                Stage::Auth,
                "535 5.7.8 Authentication credentials invalid".into(),
            ),
        }
    }

    /// The server side of SCRAM-SHA-256 (RFC 5802) after the client's
    /// first message: its own reading of the RFC, sharing nothing with the
    /// client. `Some(true)` when the client proved the password (and the
    /// server then proved it too), `None` when the client went away.
    fn scram(
        &mut self,
        plus: bool,
        first: &[u8],
        user: &str,
        password: &str,
    ) -> io::Result<Option<bool>> {
        use aws_lc_rs::{digest, hmac, pbkdf2};
        const ITERATIONS: u32 = 4096;
        const SALT: &[u8] = b"tls-mailer-testkit salt";
        let first = String::from_utf8_lossy(first).into_owned();
        // RFC 5802 6 and 7: -PLUS needs "p=tls-exporter"; without it, "n",
        // or "y" (the client could bind) unless this server offered -PLUS,
        // which means someone removed it from the EHLO reply.
        let offers_plus = self
            .config
            .auth_mechanisms
            .iter()
            .any(|m| m.eq_ignore_ascii_case("SCRAM-SHA-256-PLUS"));
        let (header, bare) = match first.split_once(",,") {
            Some(("p=tls-exporter", bare)) if plus => ("p=tls-exporter,,", bare),
            Some(("n", bare)) if !plus => ("n,,", bare),
            Some(("y", bare)) if !plus && !offers_plus => ("y,,", bare),
            _ => return Ok(Some(false)),
        };
        let mut binding = header.as_bytes().to_vec();
        if plus {
            let Some(exporter) = self.tls_exporter() else {
                return Ok(Some(false));
            };
            binding.extend_from_slice(&exporter);
        }
        let expected_c = BASE64.encode(&binding);
        let bare = bare.to_owned();
        let mut given_user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            if let Some(name) = attribute.strip_prefix("n=") {
                given_user = Some(name.replace("=2C", ",").replace("=3D", "="));
            } else if let Some(nonce) = attribute.strip_prefix("r=") {
                client_nonce = Some(nonce.to_owned());
            }
        }
        let (Some(given_user), Some(client_nonce)) = (given_user, client_nonce) else {
            return Ok(Some(false));
        };
        let nonce = format!("{client_nonce}{}srv", self.number);
        let server_first = format!("r={nonce},s={},i={ITERATIONS}", BASE64.encode(SALT));
        self.send(&format!("334 {}", BASE64.encode(&server_first)))?;
        let Some(line) = self.read_auth_line()? else {
            return Ok(None);
        };
        let Some(client_final) = BASE64
            .decode(line.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
        else {
            return Ok(Some(false));
        };
        let Some((without_proof, proof)) = client_final.rsplit_once(",p=") else {
            return Ok(Some(false));
        };
        let Ok(proof) = BASE64.decode(proof) else {
            return Ok(Some(false));
        };
        if given_user != user || without_proof != format!("c={expected_c},r={nonce}") {
            return Ok(Some(false));
        }
        let mut salted = [0u8; 32];
        let iterations = std::num::NonZeroU32::new(ITERATIONS).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            SALT,
            password.as_bytes(),
            &mut salted,
        );
        let salted_key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let recovered: Vec<u8> = proof
            .iter()
            .zip(signature.as_ref())
            .map(|(p, s)| p ^ s)
            .collect();
        if proof.len() != 32
            || digest::digest(&digest::SHA256, &recovered).as_ref() != stored_key.as_ref()
        {
            return Ok(Some(false));
        }
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let server_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        let server_final = format!("v={}", BASE64.encode(server_signature.as_ref()));
        self.send(&format!("334 {}", BASE64.encode(server_final)))?;
        Ok(self.read_auth_line()?.map(|line| line.trim().is_empty()))
    }

    /// The TLS 1.3 exporter for channel binding (RFC 9266), as the client
    /// must compute it too.
    fn tls_exporter(&self) -> Option<[u8; 32]> {
        let Stream::Tls(tls) = &self.stream else {
            return None;
        };
        if tls.conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return None;
        }
        tls.conn
            .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
            .ok()
    }

    fn read_auth_line(&mut self) -> io::Result<Option<String>> {
        let line = self.read_line()?;
        if line.is_some() {
            self.log("C: <redacted>".into());
        }
        Ok(line.map(|line| String::from_utf8_lossy(&line).into_owned()))
    }

    fn mail(&mut self, argument: &str) -> io::Result<bool> {
        if self.ehlo.is_none() {
            return self.send("503 5.5.1 Say EHLO first");
        }
        if self.config.auth.is_some() && self.auth_user.is_none() {
            return self.send("530 5.7.0 Authentication required");
        }
        if self.transaction.mail_from.is_some() {
            return self.send("503 5.5.1 Nested MAIL command");
        }
        let limit = self.config.faults.iter().find_map(|fault| match fault {
            Fault::LimitPerConnection(limit) => Some(*limit),
            _ => None,
        });
        if limit.is_some_and(|limit| self.accepted_here >= limit) {
            self.send("421 4.7.0 Too many messages on this connection, closing")?;
            self.log("-- closed: message limit of this connection reached".into());
            return Ok(false);
        }
        let Some((path, params)) = parse_path(argument, "FROM:") else {
            return self.send("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        if let Some(unknown) = self.unoffered_param(&params) {
            return self.send(&format!("555 5.5.4 Unsupported option: {unknown}"));
        }
        let limit = self.config.extensions.size;
        for param in &params {
            if let (Some(size), Some(limit)) = (
                param
                    .strip_prefix("SIZE=")
                    .and_then(|s| s.parse::<u64>().ok()),
                limit,
            ) && size > limit
            {
                return self.send("552 5.3.4 Message size exceeds fixed limit");
            }
        }
        self.mail_number = self.shared.mails.fetch_add(1, Ordering::SeqCst) + 1;
        let normal = "250 2.1.0 Ok".to_owned();
        let accepted = matches!(self.action(Stage::MailFrom), Action::Normal);
        let keep_going = self.respond(Stage::MailFrom, normal)?;
        if accepted {
            self.transaction.mail_from = Some(path);
            self.transaction.mail_params = params;
        }
        Ok(keep_going)
    }

    fn rcpt(&mut self, argument: &str) -> io::Result<bool> {
        if self.transaction.mail_from.is_none() {
            return self.send("503 5.5.1 Need MAIL before RCPT");
        }
        let Some((address, params)) = parse_path(argument, "TO:") else {
            return self.send("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if let Some(unknown) = self.unoffered_param(&params) {
            return self.send(&format!("555 5.5.4 Unsupported option: {unknown}"));
        }
        if self.transaction.rcpt_to.len() >= MAX_RECIPIENTS {
            return self.send("452 4.5.3 Too many recipients");
        }
        let refusal = self.config.faults.iter().find_map(|fault| match fault {
            Fault::RejectRecipient {
                address: refused,
                code,
                text,
            } if *refused == address => Some(format!("{code} {text}")),
            _ => None,
        });
        if let Some(reply) = refusal {
            return self.send(&reply);
        }
        let accepted = matches!(self.action(Stage::RcptTo), Action::Normal);
        let keep_going = self.respond(Stage::RcptTo, "250 2.1.5 Ok".into())?;
        if accepted {
            self.transaction.rcpt_to.push(address);
            self.transaction.rcpt_params.push(params);
        }
        Ok(keep_going)
    }

    fn data(&mut self) -> io::Result<bool> {
        if self.transaction.mail_from.is_none() {
            return self.send("503 5.5.1 Need MAIL command");
        }
        if self.transaction.rcpt_to.is_empty() {
            return self.send("554 5.5.1 No valid recipients");
        }
        // RFC 3030 3: a BINARYMIME body can only come by BDAT.
        if self
            .transaction
            .mail_params
            .iter()
            .any(|param| param.eq_ignore_ascii_case("BODY=BINARYMIME"))
        {
            return self.send("503 5.5.1 BODY=BINARYMIME requires BDAT");
        }
        let proceed = matches!(self.action(Stage::Data), Action::Normal);
        if !self.respond(Stage::Data, "354 End data with <CR><LF>.<CR><LF>".into())? || !proceed {
            return Ok(proceed
                || !matches!(
                    self.action(Stage::Data),
                    Action::Drop | Action::Stall | Action::Endless
                ));
        }
        self.trickling = self.has_fault(&Fault::TrickleBody);
        let mut data = Vec::new();
        let mut too_large = false;
        loop {
            let Some(range) = self.next_line()? else {
                return Ok(false);
            };
            let line = &self.buffer[range];
            if line == b"." {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(line);
            if self.config.discard_bodies {
                self.transaction.discarded += line.len() + 2;
                continue;
            }
            if data.len() + line.len() + 2 > MAX_MESSAGE {
                too_large = true;
                continue;
            }
            data.extend_from_slice(line);
            data.extend_from_slice(b"\r\n");
        }
        let size = data.len() + self.transaction.discarded;
        self.log(format!("C: <message: {size} bytes>"));
        self.finish_message(data, false, too_large)
    }

    fn bdat(&mut self, argument: &str) -> io::Result<bool> {
        let mut words = argument.split_whitespace();
        let size = words.next().and_then(|size| size.parse::<usize>().ok());
        let last = words
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case("LAST"));
        let Some(size) = size else {
            return self.send("501 5.5.4 Syntax: BDAT size [LAST]");
        };
        if size > MAX_MESSAGE {
            self.send("552 5.3.4 Chunk too large")?;
            return Ok(false);
        }
        self.trickling = self.has_fault(&Fault::TrickleBody);
        let Some(chunk) = self.read_exact_bytes(size)? else {
            return Ok(false);
        };
        if !self.config.extensions.chunking {
            return self.send("502 5.5.1 CHUNKING not offered");
        }
        if self.transaction.mail_from.is_none() || self.transaction.rcpt_to.is_empty() {
            self.transaction.bdat_failed = true;
            return self.send("554 5.5.1 No valid recipients");
        }
        if self.config.discard_bodies {
            self.transaction.discarded += chunk.len();
        } else if self.transaction.data.len() + chunk.len() > MAX_MESSAGE {
            self.transaction.bdat_failed = true;
        } else {
            self.transaction.data.extend_from_slice(&chunk);
        }
        if !last {
            return self.send(&format!("250 2.0.0 {size} octets received"));
        }
        let data = std::mem::take(&mut self.transaction.data);
        let size = data.len() + self.transaction.discarded;
        self.log(format!("C: <message: {size} bytes>"));
        let failed = self.transaction.bdat_failed;
        self.finish_message(data, true, failed)
    }

    fn finish_message(
        &mut self,
        data: Vec<u8>,
        via_bdat: bool,
        too_large: bool,
    ) -> io::Result<bool> {
        let transaction = std::mem::take(&mut self.transaction);
        let limit = self.config.extensions.size.unwrap_or(MAX_MESSAGE as u64);
        if too_large || data.len() as u64 > limit {
            return self.send("552 5.3.4 Message size exceeds fixed limit");
        }
        self.queue_counter += 1;
        let id = format!("{:04X}{:04X}", self.number, self.queue_counter);
        if self.config.lmtp {
            return self.finish_lmtp_message(transaction, data, via_bdat, id);
        }
        let accepted = matches!(self.action(Stage::DataEnd), Action::Normal);
        let keep_going = if accepted && self.has_fault(&Fault::CloseAfterAccept) {
            self.send(&format!(
                "250 2.0.0 Ok: queued as {id}\r\n421 4.3.2 shutting down"
            ))?;
            false
        } else {
            self.respond(Stage::DataEnd, format!("250 2.0.0 Ok: queued as {id}"))?
        };
        if accepted {
            let more = self.record(transaction, data, via_bdat)?;
            return Ok(more && keep_going);
        }
        Ok(keep_going)
    }

    /// LMTP (RFC 2033 4.2): one reply per accepted recipient, in RCPT
    /// order; [`Fault::RejectAfterData`] refuses one, and
    /// [`Fault::DropAfterRecipientReplies`] breaks off part way. The
    /// message is recorded with the recipients it was delivered to.
    fn finish_lmtp_message(
        &mut self,
        mut transaction: Transaction,
        data: Vec<u8>,
        via_bdat: bool,
        id: String,
    ) -> io::Result<bool> {
        let drop_after = self.config.faults.iter().find_map(|fault| match fault {
            Fault::DropAfterRecipientReplies(count) => Some(*count),
            _ => None,
        });
        let mut delivered = Vec::new();
        let mut delivered_params = Vec::new();
        let recipients = std::mem::take(&mut transaction.rcpt_to);
        let params = std::mem::take(&mut transaction.rcpt_params);
        for (index, (address, params)) in recipients.into_iter().zip(params).enumerate() {
            if drop_after == Some(index) {
                self.log("-- dropped between the replies after the data".into());
                return Ok(false);
            }
            let refusal = self.config.faults.iter().find_map(|fault| match fault {
                Fault::RejectAfterData {
                    address: refused,
                    code,
                    text,
                } if *refused == address => Some(format!("{code} {text}")),
                _ => None,
            });
            match refusal {
                Some(reply) => {
                    self.send(&reply)?;
                }
                None => {
                    self.send(&format!("250 2.0.0 <{address}> {id} Saved"))?;
                    delivered.push(address);
                    delivered_params.push(params);
                }
            }
        }
        if delivered.is_empty() {
            return Ok(true);
        }
        transaction.rcpt_to = delivered;
        transaction.rcpt_params = delivered_params;
        self.record(transaction, data, via_bdat)
    }

    /// Keeps an accepted message; false when the connection must end.
    fn record(
        &mut self,
        transaction: Transaction,
        data: Vec<u8>,
        via_bdat: bool,
    ) -> io::Result<bool> {
        {
            let message = ReceivedMessage {
                mail_from: transaction.mail_from.unwrap_or_default(),
                mail_params: transaction.mail_params,
                rcpt_to: transaction.rcpt_to,
                rcpt_params: transaction.rcpt_params,
                data,
                via_bdat,
                tls: self.tls,
                auth_user: self.auth_user.clone(),
                ehlo: self.ehlo.clone().unwrap_or_default(),
                client_subject: self.client_subject.clone(),
                connection: self.number,
            };
            let mut messages = lock(&self.shared.messages);
            if let Some(dir) = &self.config.maildir {
                let _ = std::fs::write(
                    dir.join(format!("{}.eml", messages.len() + 1)),
                    &message.data,
                );
            }
            messages.push(message);
            self.accepted_here += 1;
            let limit = self.config.faults.iter().find_map(|fault| match fault {
                Fault::MessagesPerConnection(limit) => Some(*limit),
                _ => None,
            });
            if limit.is_some_and(|limit| self.accepted_here >= limit) {
                self.log("-- closed: message limit of this connection reached".into());
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// `FROM:<a@b> PARAM=x` into the address and the parameters.
impl Connection {
    /// The first DSN or REQUIRETLS parameter this server did not offer on
    /// this connection, as real servers refuse them (RFC 5321 4.1.1.11).
    fn unoffered_param<'a>(&self, params: &'a [String]) -> Option<&'a str> {
        let extensions = self.config.extensions;
        params.iter().map(String::as_str).find(|param| {
            let keyword = param
                .split_once('=')
                .map_or(*param, |(keyword, _)| keyword)
                .to_ascii_uppercase();
            match keyword.as_str() {
                "RET" | "ENVID" | "NOTIFY" | "ORCPT" => !extensions.dsn,
                "REQUIRETLS" => !(extensions.requiretls && self.tls),
                _ => false,
            }
        })
    }
}

fn parse_path(argument: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = argument
        .get(..prefix.len())?
        .eq_ignore_ascii_case(prefix)
        .then(|| &argument[prefix.len()..])?;
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('<')?;
    let (address, params) = rest.split_once('>')?;
    Some((
        address.to_owned(),
        params.split_whitespace().map(str::to_owned).collect(),
    ))
}

/// The user and the token of an XOAUTH2 (`user=U^Aauth=Bearer T^A^A`) or
/// OAUTHBEARER (`n,a=U,^Aauth=Bearer T^A^A`, RFC 7628) initial response.
fn bearer_fields(mechanism: &str, raw: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8(raw.to_vec()).ok()?;
    let (user, pairs) = if mechanism == "XOAUTH2" {
        let rest = text.strip_prefix("user=")?;
        let (user, pairs) = rest.split_once('\x01')?;
        (user.to_owned(), pairs)
    } else {
        let rest = text.strip_prefix("n,a=")?;
        let (user, pairs) = rest.split_once(",\x01")?;
        (user.replace("=2C", ",").replace("=3D", "="), pairs)
    };
    let token = pairs
        .split('\x01')
        .find_map(|pair| pair.strip_prefix("auth=Bearer "))?;
    Some((user, token.to_owned()))
}

/// HMAC-MD5 (RFC 2104) as lowercase hex, for CRAM-MD5: the testkit's own
/// HMAC, so a mistake in the client's is not repeated here.
fn hmac_md5_hex(key: &[u8], message: &[u8]) -> String {
    use md5::Digest as _;
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..16].copy_from_slice(&md5::Md5::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = md5::Md5::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = md5::Md5::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|byte| format!("{byte:02x}")).collect()
}
