//! The small SMTP server that `tls-mailer demo` sends to: loopback only,
//! implicit TLS, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA, BDAT. Every line and
//! every message has a bound; each message it accepts is written to a new
//! file in the spool directory it is given.
//!
//! Its parser is its own, written apart from the client's, so the demo shows
//! two independent sides agreeing.
//!
//! The certificates are fixed and built in (made by `src/demo_certs/make.sh`).
//! The server's private key is public: it is in the source and in every
//! binary, so anyone can present this certificate, and nothing but the demo's
//! client (which trusts this CA and nothing else, and only for the demo) may
//! trust it.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The demo CA, the only anchor the demo's client trusts.
pub const CA_PEM: &str = include_str!("demo_certs/ca.pem");
/// The server certificate: localhost, 127.0.0.1 and ::1, until 2126.
const CERT_PEM: &str = include_str!("demo_certs/server.pem");
/// The server certificate's private key. Public on purpose: see the module
/// documentation.
const KEY_PEM: &str = include_str!("demo_certs/server.key");

/// The name in the greeting and the EHLO reply.
const HOSTNAME: &str = "demo.localhost";
/// The longest command or message line, CRLF included (RFC 5321 4.5.3.1.6).
const MAX_LINE: usize = 1000;
/// The largest message accepted, announced as SIZE.
const MAX_MESSAGE: usize = 10 << 20;
/// The most recipients of one message.
const MAX_RECIPIENTS: usize = 100;
/// How long the server waits for the client to say something.
const IDLE: Duration = Duration::from_secs(30);

/// A message the server accepted and stored.
#[derive(Debug)]
pub struct Received {
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub rcpt_to: Vec<String>,
    /// Where the message was written.
    pub path: PathBuf,
    /// The message as received (CRLF line endings, dots unstuffed).
    pub data: Vec<u8>,
    /// Whether it came with BDAT rather than DATA.
    pub via_bdat: bool,
}

/// The running server; it serves one connection at a time until the process
/// ends.
#[derive(Debug)]
pub struct DemoServer {
    addr: SocketAddr,
    received: Receiver<Received>,
}

impl DemoServer {
    /// Listens on 127.0.0.1 (a free port) for clients that log in as `user`
    /// with `password`, and writes what they send into `spool`.
    pub fn start(spool: &Path, user: &str, password: &str) -> io::Result<Self> {
        let tls = Arc::new(tls_config()?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let (sender, received) = channel();
        let settings = Settings {
            tls,
            spool: spool.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            sender,
        };
        std::thread::spawn(move || serve(&listener, &settings));
        Ok(Self { addr, received })
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next message the server stores, if one comes within `timeout`.
    pub fn wait_for_message(&self, timeout: Duration) -> Option<Received> {
        self.received.recv_timeout(timeout).ok()
    }
}

fn tls_config() -> io::Result<ServerConfig> {
    let invalid = |error: rustls::pki_types::pem::Error| io::Error::other(error.to_string());
    let chain = vec![CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).map_err(invalid)?];
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).map_err(invalid)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)
}

struct Settings {
    tls: Arc<ServerConfig>,
    spool: PathBuf,
    user: String,
    password: String,
    sender: Sender<Received>,
}

fn serve(listener: &TcpListener, settings: &Settings) {
    let mut stored = 0;
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { continue };
        // Anything that is not loopback is not the demo's client.
        if !tcp.peer_addr().is_ok_and(|peer| peer.ip().is_loopback()) {
            continue;
        }
        let _ = tcp.set_read_timeout(Some(IDLE));
        let _ = tcp.set_write_timeout(Some(IDLE));
        let Ok(connection) = ServerConnection::new(settings.tls.clone()) else {
            continue;
        };
        let mut session = Session {
            settings,
            stream: StreamOwned::new(connection, tcp),
            input: Vec::new(),
            authenticated: false,
            greeted: false,
            transaction: Transaction::default(),
            stored: &mut stored,
        };
        let _ = session.run();
        session.close();
    }
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// BDAT chunks so far.
    chunks: Vec<u8>,
}

/// What the connection does after a command.
enum Next {
    Continue,
    Close,
}

struct Session<'a> {
    settings: &'a Settings,
    stream: StreamOwned<ServerConnection, TcpStream>,
    /// Bytes read but not used yet.
    input: Vec<u8>,
    authenticated: bool,
    greeted: bool,
    transaction: Transaction,
    stored: &'a mut usize,
}

impl Session<'_> {
    fn run(&mut self) -> io::Result<()> {
        while self.stream.conn.is_handshaking() {
            self.stream.conn.complete_io(&mut self.stream.sock)?;
        }
        self.reply(&format!("220 {HOSTNAME} ESMTP tls-mailer demo server"))?;
        loop {
            let Some(line) = self.read_line()? else {
                return self.reply("500 5.5.2 Line too long");
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            let (verb, argument) = line.split_once(' ').unwrap_or((&line, ""));
            let next = match verb.to_ascii_uppercase().as_str() {
                "EHLO" => self.ehlo(argument, true)?,
                "HELO" => self.ehlo(argument, false)?,
                "AUTH" => self.auth(argument)?,
                "MAIL" => self.mail(argument)?,
                "RCPT" => self.rcpt(argument)?,
                "DATA" => self.data()?,
                "BDAT" => self.bdat(argument)?,
                "RSET" => {
                    self.transaction = Transaction::default();
                    self.ok("250 2.0.0 Ok")?
                }
                "NOOP" => self.ok("250 2.0.0 Ok")?,
                "QUIT" => {
                    self.reply("221 2.0.0 Bye")?;
                    Next::Close
                }
                _ => self.ok("500 5.5.2 Command not recognised")?,
            };
            if let Next::Close = next {
                return Ok(());
            }
        }
    }

    /// Ends the connection so that the last reply arrives: TLS close_notify,
    /// then, before the socket is dropped, what the client still sends is
    /// read and thrown away for a moment (unread input would make the kernel
    /// reset the connection, and the client might lose that reply).
    fn close(&mut self) {
        self.stream.conn.send_close_notify();
        let _ = self.stream.flush();
        let tcp = &mut self.stream.sock;
        let _ = tcp.shutdown(std::net::Shutdown::Write);
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
        let mut sink = [0u8; 16 * 1024];
        for _ in 0..64 {
            match tcp.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn reply(&mut self, reply: &str) -> io::Result<()> {
        self.stream.write_all(reply.as_bytes())?;
        self.stream.write_all(b"\r\n")?;
        self.stream.flush()
    }

    fn ok(&mut self, reply: &str) -> io::Result<Next> {
        self.reply(reply)?;
        Ok(Next::Continue)
    }

    /// Reads more input; an error when the client closed the connection.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(read) => {
                    self.input.extend_from_slice(&chunk[..read]);
                    return Ok(());
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// The next line without its line ending; `None` when it is longer than
    /// [`MAX_LINE`].
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.input.iter().position(|&byte| byte == b'\n') {
                if end + 1 > MAX_LINE {
                    return Ok(None);
                }
                let mut line: Vec<u8> = self.input.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.input.len() >= MAX_LINE {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Moves the next `count` bytes into `into` (`None`: thrown away).
    fn read_exact_into(
        &mut self,
        mut count: usize,
        mut into: Option<&mut Vec<u8>>,
    ) -> io::Result<()> {
        while count > 0 {
            if self.input.is_empty() {
                self.fill()?;
            }
            let take = count.min(self.input.len());
            let bytes = self.input.drain(..take);
            if let Some(into) = into.as_deref_mut() {
                into.extend(bytes);
            } else {
                drop(bytes);
            }
            count -= take;
        }
        Ok(())
    }

    fn ehlo(&mut self, name: &str, extended: bool) -> io::Result<Next> {
        if name.trim().is_empty() {
            return self.ok("501 5.5.4 Give your name");
        }
        self.greeted = true;
        self.transaction = Transaction::default();
        if !extended {
            return self.ok(&format!("250 {HOSTNAME}"));
        }
        let lines = [
            format!("{HOSTNAME} greets {}", name.trim()),
            "PIPELINING".to_owned(),
            format!("SIZE {MAX_MESSAGE}"),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            "CHUNKING".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "AUTH PLAIN LOGIN".to_owned(),
        ];
        let last = lines.len() - 1;
        let reply: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(index, line)| format!("250{}{line}", if index == last { ' ' } else { '-' }))
            .collect();
        self.ok(&reply.join("\r\n"))
    }

    fn auth(&mut self, argument: &str) -> io::Result<Next> {
        if !self.greeted {
            return self.ok("503 5.5.1 Say EHLO first");
        }
        if self.authenticated {
            return self.ok("503 5.5.1 Already authenticated");
        }
        let mut words = argument.split_whitespace();
        let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
        let initial = words.next().map(str::to_owned);
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let Some(response) = self.response(initial, "")? else {
                    return self.ok("501 5.7.0 Authentication cancelled");
                };
                // authzid NUL authcid NUL passwd (RFC 4616)
                response.and_then(|raw| {
                    let mut fields = raw.split(|&byte| byte == 0);
                    let _authzid = fields.next()?;
                    let user = fields.next()?.to_vec();
                    let password = fields.next()?.to_vec();
                    fields.next().is_none().then_some((user, password))
                })
            }
            "LOGIN" => {
                let Some(user) = self.response(initial, "VXNlcm5hbWU6")? else {
                    return self.ok("501 5.7.0 Authentication cancelled");
                };
                let Some(password) = self.response(None, "UGFzc3dvcmQ6")? else {
                    return self.ok("501 5.7.0 Authentication cancelled");
                };
                user.zip(password)
            }
            _ => return self.ok("504 5.5.4 Unrecognised authentication type"),
        };
        let expected = (
            self.settings.user.as_bytes(),
            self.settings.password.as_bytes(),
        );
        match credentials {
            Some((user, password)) if (user.as_slice(), password.as_slice()) == expected => {
                self.authenticated = true;
                self.ok("235 2.7.0 Authentication successful")
            }
            _ => self.ok("535 5.7.8 Authentication credentials invalid"),
        }
    }

    /// The client's base64 answer: `initial` if given, else the line that
    /// follows a `334 {prompt}`. `None` when the client cancelled (`*`);
    /// `Some(None)` when it is not base64.
    fn response(
        &mut self,
        initial: Option<String>,
        prompt: &str,
    ) -> io::Result<Option<Option<Vec<u8>>>> {
        let answer = match initial {
            // "=" is an empty initial response (RFC 4954).
            Some(initial) if initial == "=" => return Ok(Some(Some(Vec::new()))),
            Some(initial) => initial,
            None => {
                self.reply(&format!("334 {prompt}"))?;
                let Some(line) = self.read_line()? else {
                    return Ok(Some(None));
                };
                String::from_utf8_lossy(&line).into_owned()
            }
        };
        if answer == "*" {
            return Ok(None);
        }
        Ok(Some(BASE64.decode(answer.trim()).ok()))
    }

    fn mail(&mut self, argument: &str) -> io::Result<Next> {
        if !self.greeted {
            return self.ok("503 5.5.1 Say EHLO first");
        }
        if !self.authenticated {
            return self.ok("530 5.7.0 Authentication required");
        }
        if self.transaction.mail_from.is_some() {
            return self.ok("503 5.5.1 Nested MAIL command");
        }
        let Some((address, parameters)) = path(argument, "FROM:") else {
            return self.ok("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        let declared = parameters.split_whitespace().find_map(|parameter| {
            let (name, value) = parameter.split_once('=')?;
            name.eq_ignore_ascii_case("SIZE")
                .then(|| value.parse::<u64>().ok())
                .flatten()
        });
        if declared.is_some_and(|size| size > MAX_MESSAGE as u64) {
            return self.ok("552 5.3.4 Message size exceeds fixed limit");
        }
        self.transaction.mail_from = Some(address);
        self.ok("250 2.1.0 Ok")
    }

    fn rcpt(&mut self, argument: &str) -> io::Result<Next> {
        if self.transaction.mail_from.is_none() {
            return self.ok("503 5.5.1 Need MAIL before RCPT");
        }
        let Some((address, _)) = path(argument, "TO:") else {
            return self.ok("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if address.is_empty() {
            return self.ok("501 5.1.3 A recipient needs an address");
        }
        if self.transaction.rcpt_to.len() >= MAX_RECIPIENTS {
            return self.ok("452 4.5.3 Too many recipients");
        }
        self.transaction.rcpt_to.push(address);
        self.ok("250 2.1.5 Ok")
    }

    fn data(&mut self) -> io::Result<Next> {
        if self.transaction.mail_from.is_none() || self.transaction.rcpt_to.is_empty() {
            return self.ok("554 5.5.1 No valid recipients");
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        let mut data = Vec::new();
        let mut too_large = false;
        loop {
            let Some(line) = self.read_line()? else {
                self.reply("500 5.5.2 Line too long")?;
                return Ok(Next::Close);
            };
            if line == b"." {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + line.len() + 2 > MAX_MESSAGE {
                too_large = true;
                continue;
            }
            data.extend_from_slice(line);
            data.extend_from_slice(b"\r\n");
        }
        self.finish(data, false, too_large)
    }

    fn bdat(&mut self, argument: &str) -> io::Result<Next> {
        let mut words = argument.split_whitespace();
        let size = words.next().and_then(|size| size.parse::<usize>().ok());
        let last = match (words.next(), words.next()) {
            (None, _) => Some(false),
            (Some(word), None) if word.eq_ignore_ascii_case("LAST") => Some(true),
            _ => None,
        };
        let (Some(size), Some(last)) = (size, last) else {
            // The chunk's length is unknown, so the stream cannot be followed.
            self.reply("501 5.5.4 Syntax: BDAT size [LAST]")?;
            return Ok(Next::Close);
        };
        let ready = self.transaction.mail_from.is_some() && !self.transaction.rcpt_to.is_empty();
        let fits = self.transaction.chunks.len() + size <= MAX_MESSAGE;
        if !ready || !fits {
            self.read_exact_into(size, None)?;
            self.transaction = Transaction::default();
            return if ready {
                self.ok("552 5.3.4 Message size exceeds fixed limit")
            } else {
                self.ok("554 5.5.1 No valid recipients")
            };
        }
        let mut chunks = std::mem::take(&mut self.transaction.chunks);
        self.read_exact_into(size, Some(&mut chunks))?;
        if !last {
            self.transaction.chunks = chunks;
            return self.ok(&format!("250 2.0.0 {size} octets received"));
        }
        self.finish(chunks, true, false)
    }

    fn finish(&mut self, data: Vec<u8>, via_bdat: bool, too_large: bool) -> io::Result<Next> {
        let transaction = std::mem::take(&mut self.transaction);
        if too_large {
            return self.ok("552 5.3.4 Message size exceeds fixed limit");
        }
        let number = *self.stored + 1;
        let path = self.settings.spool.join(format!("{number}.eml"));
        // create_new: never through a link or over a file already there.
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| file.write_all(&data).and_then(|()| file.sync_all()));
        if let Err(error) = written {
            return self.ok(&format!("451 4.3.0 Cannot store the message: {error}"));
        }
        *self.stored = number;
        let _ = self.settings.sender.send(Received {
            mail_from: transaction.mail_from.unwrap_or_default(),
            rcpt_to: transaction.rcpt_to,
            path,
            data,
            via_bdat,
        });
        self.ok(&format!("250 2.0.0 Ok: queued as DEMO{number}"))
    }
}

/// `FROM:<a@b> PARAM=x` into the address and the parameters.
fn path(argument: &str, prefix: &str) -> Option<(String, String)> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument[prefix.len()..].trim_start().strip_prefix('<')?;
    let (address, parameters) = rest.split_once('>')?;
    Some((address.to_owned(), parameters.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    use super::*;

    const USER: &str = "demo";
    const PASSWORD: &str = "demo-pässword";

    /// A raw TLS client that trusts only the demo CA.
    struct Talk {
        stream: StreamOwned<ClientConnection, TcpStream>,
        input: Vec<u8>,
    }

    impl Talk {
        fn connect(server: &DemoServer, name: &str) -> Self {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(CA_PEM.as_bytes()).unwrap())
                .unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(name.to_owned()).unwrap();
            let connection = ClientConnection::new(Arc::new(config), name).unwrap();
            let tcp = TcpStream::connect(server.addr()).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut talk = Self {
                stream: StreamOwned::new(connection, tcp),
                input: Vec::new(),
            };
            assert!(talk.reply().starts_with("220 demo.localhost "));
            talk
        }

        /// One reply, its lines joined with '\n'; "" at the end of the stream.
        fn reply(&mut self) -> String {
            let mut lines = Vec::new();
            loop {
                while !self.input.contains(&b'\n') {
                    let mut chunk = [0u8; 4096];
                    let read = match self.stream.read(&mut chunk) {
                        Ok(read) => read,
                        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => 0,
                        Err(error) => panic!("{error}"),
                    };
                    if read == 0 {
                        return lines.join("\n");
                    }
                    self.input.extend_from_slice(&chunk[..read]);
                }
                let end = self.input.iter().position(|&b| b == b'\n').unwrap();
                let line: Vec<u8> = self.input.drain(..=end).collect();
                let line = String::from_utf8(line).unwrap();
                let line = line.trim_end_matches("\r\n").to_owned();
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return lines.join("\n");
                }
            }
        }

        fn say(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).unwrap();
            self.stream.flush().unwrap();
        }

        fn command(&mut self, line: &str) -> String {
            self.say(format!("{line}\r\n").as_bytes());
            self.reply()
        }
    }

    fn start() -> (DemoServer, tempfile::TempDir) {
        let spool = tempfile::tempdir().unwrap();
        let server = DemoServer::start(spool.path(), USER, PASSWORD).unwrap();
        (server, spool)
    }

    fn base64(bytes: &[u8]) -> String {
        BASE64.encode(bytes)
    }

    #[test]
    fn data_after_auth_login_is_unstuffed_and_written() {
        let (server, spool) = start();
        assert!(server.addr().ip().is_loopback());
        let mut talk = Talk::connect(&server, "localhost");
        assert_eq!(
            talk.command("MAIL FROM:<a@example.org>"),
            "503 5.5.1 Say EHLO first"
        );
        let ehlo = talk.command("EHLO client.example.org");
        assert!(ehlo.starts_with("250-demo.localhost"), "{ehlo}");
        for extension in [
            "PIPELINING",
            "CHUNKING",
            "SIZE 10485760",
            "AUTH PLAIN LOGIN",
        ] {
            assert!(ehlo.lines().any(|line| line[4..] == *extension), "{ehlo}");
        }
        assert_eq!(
            talk.command("MAIL FROM:<a@example.org>"),
            "530 5.7.0 Authentication required"
        );
        // A wrong password, then the right one.
        for (password, outcome) in [("wrong", "535 "), (PASSWORD, "235 ")] {
            assert_eq!(talk.command("AUTH LOGIN"), "334 VXNlcm5hbWU6");
            assert_eq!(talk.command(&base64(USER.as_bytes())), "334 UGFzc3dvcmQ6");
            let reply = talk.command(&base64(password.as_bytes()));
            assert!(reply.starts_with(outcome), "{password}: {reply}");
        }
        assert_eq!(
            talk.command("MAIL FROM:<a@example.org> BODY=8BITMIME"),
            "250 2.1.0 Ok"
        );
        assert_eq!(talk.command("DATA"), "554 5.5.1 No valid recipients");
        assert_eq!(talk.command("RCPT TO:<b@example.org>"), "250 2.1.5 Ok");
        assert_eq!(talk.command("RCPT TO:<c@example.org>"), "250 2.1.5 Ok");
        assert!(talk.command("DATA").starts_with("354 "));
        talk.say(b"Subject: dots\r\n\r\n..leading dot\r\n.\r\n");
        assert_eq!(talk.reply(), "250 2.0.0 Ok: queued as DEMO1");
        let received = server.wait_for_message(Duration::from_secs(5)).unwrap();
        assert_eq!(received.mail_from, "a@example.org");
        assert_eq!(received.rcpt_to, ["b@example.org", "c@example.org"]);
        assert!(!received.via_bdat);
        assert_eq!(received.data, b"Subject: dots\r\n\r\n.leading dot\r\n");
        assert_eq!(received.path, spool.path().join("1.eml"));
        assert_eq!(std::fs::read(&received.path).unwrap(), received.data);
        assert_eq!(talk.command("QUIT"), "221 2.0.0 Bye");
        assert_eq!(talk.reply(), "", "closed after QUIT");
    }

    #[test]
    fn pipelined_bdat_after_auth_plain_joins_the_chunks() {
        let (server, spool) = start();
        // The certificate also names the address.
        let mut talk = Talk::connect(&server, "127.0.0.1");
        talk.command("EHLO client.example.org");
        let plain = base64(format!("\0{USER}\0{PASSWORD}").as_bytes());
        assert_eq!(
            talk.command(&format!("AUTH PLAIN {plain}")),
            "235 2.7.0 Authentication successful"
        );
        talk.say(
            b"MAIL FROM:<a@example.org> SIZE=13\r\nRCPT TO:<b@example.org>\r\n\
              BDAT 5\r\nHelloBDAT 8 LAST\r\n world\r\n",
        );
        assert_eq!(talk.reply(), "250 2.1.0 Ok");
        assert_eq!(talk.reply(), "250 2.1.5 Ok");
        assert_eq!(talk.reply(), "250 2.0.0 5 octets received");
        assert_eq!(talk.reply(), "250 2.0.0 Ok: queued as DEMO1");
        let received = server.wait_for_message(Duration::from_secs(5)).unwrap();
        assert!(received.via_bdat);
        assert_eq!(received.data, b"Hello world\r\n");
        // A second message on the same connection gets the next file.
        talk.command("MAIL FROM:<> SIZE=99999999999");
        assert_eq!(talk.command("RSET"), "250 2.0.0 Ok");
        talk.command("MAIL FROM:<>");
        talk.command("RCPT TO:<b@example.org>");
        assert_eq!(talk.command("BDAT 0 LAST"), "250 2.0.0 Ok: queued as DEMO2");
        let second = server.wait_for_message(Duration::from_secs(5)).unwrap();
        assert_eq!(second.mail_from, "");
        assert_eq!(std::fs::read(spool.path().join("2.eml")).unwrap(), b"");
    }

    #[test]
    fn limits_are_enforced() {
        let (server, _spool) = start();
        let mut talk = Talk::connect(&server, "localhost");
        talk.command("EHLO client.example.org");
        assert_eq!(
            talk.command("MAIL FROM:<a@example.org> SIZE=10485761"),
            "530 5.7.0 Authentication required",
            "AUTH first"
        );
        let plain = base64(format!("\0{USER}\0{PASSWORD}").as_bytes());
        talk.command(&format!("AUTH PLAIN {plain}"));
        assert_eq!(
            talk.command("MAIL FROM:<a@example.org> SIZE=10485761"),
            "552 5.3.4 Message size exceeds fixed limit"
        );
        talk.command("MAIL FROM:<a@example.org>");
        for n in 0..MAX_RECIPIENTS {
            assert_eq!(
                talk.command(&format!("RCPT TO:<r{n}@example.org>")),
                "250 2.1.5 Ok"
            );
        }
        assert_eq!(
            talk.command("RCPT TO:<one-too-many@example.org>"),
            "452 4.5.3 Too many recipients"
        );
        // A chunk that would pass the limit is read past and refused.
        talk.say(format!("BDAT {} LAST\r\n", MAX_MESSAGE + 1).as_bytes());
        talk.say(&vec![b'x'; MAX_MESSAGE + 1]);
        assert_eq!(talk.reply(), "552 5.3.4 Message size exceeds fixed limit");
        assert_eq!(
            talk.command("NOOP"),
            "250 2.0.0 Ok",
            "the stream is still in step"
        );
        // A line longer than RFC 5321's 1000 octets ends the connection.
        talk.say(&[b'A'; 2 * MAX_LINE]);
        talk.say(b"\r\n");
        assert_eq!(talk.reply(), "500 5.5.2 Line too long");
        assert_eq!(talk.reply(), "");
        assert!(
            server
                .wait_for_message(Duration::from_millis(100))
                .is_none()
        );
    }

    #[test]
    fn the_built_in_certificates_cover_any_clock_until_2126() {
        let ca = CertificateDer::from_pem_slice(CA_PEM.as_bytes()).unwrap();
        let leaf = CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        for certificate in [&ca, &leaf] {
            let validity = certificate.validity();
            // 2000-01-01 and 2126-01-01, 00:00 UTC.
            assert!(validity.not_before.timestamp() <= 946_684_800);
            assert!(validity.not_after.timestamp() >= 4_922_899_200);
        }
        assert_eq!(leaf.issuer(), ca.subject());
        assert!(ca.is_ca() && !leaf.is_ca());
        use x509_parser::extensions::GeneralName;
        let names = leaf.subject_alternative_name().unwrap().unwrap();
        let names = &names.value.general_names;
        assert!(
            names.contains(&GeneralName::DNSName("localhost")),
            "{names:?}"
        );
        let v4 = std::net::Ipv4Addr::LOCALHOST.octets();
        let v6 = std::net::Ipv6Addr::LOCALHOST.octets();
        assert!(names.contains(&GeneralName::IPAddress(&v4)), "{names:?}");
        assert!(names.contains(&GeneralName::IPAddress(&v6)), "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_name_in_the_spool_is_never_written_through() {
        let (server, spool) = start();
        let target = spool.path().join("target");
        std::fs::write(&target, b"untouched").unwrap();
        std::os::unix::fs::symlink(&target, spool.path().join("1.eml")).unwrap();
        let mut talk = Talk::connect(&server, "localhost");
        talk.command("EHLO client.example.org");
        let plain = base64(format!("\0{USER}\0{PASSWORD}").as_bytes());
        talk.command(&format!("AUTH PLAIN {plain}"));
        talk.command("MAIL FROM:<a@example.org>");
        talk.command("RCPT TO:<b@example.org>");
        let reply = talk.command("BDAT 4 LAST\r\nmail");
        assert!(
            reply.starts_with("451 4.3.0 Cannot store the message"),
            "{reply}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        assert!(
            server
                .wait_for_message(Duration::from_millis(100))
                .is_none()
        );
    }
}
