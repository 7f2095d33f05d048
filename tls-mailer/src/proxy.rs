//! Getting out through a proxy: SOCKS5 (RFC 1928, with RFC 1929 user name
//! and password) and HTTP CONNECT (RFC 9110 9.3.6). The handshake is
//! sans-IO, like the SMTP engine: [`Handshake`] says what to write and how
//! many bytes to read, so both drivers run the same code, and it never
//! reads past its own answer (the SMTP greeting that may follow is the
//! session's). TLS to the mail server runs inside the tunnel as always:
//! the proxy sees only ciphertext and the target's name.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::error::Error;

/// A proxy to reach the mail server through.
///
/// ```
/// use tls_mailer::Proxy;
/// let proxy = Proxy::parse("socks5h://user:secret@127.0.0.1:1080")?;
/// assert_eq!(proxy.to_string(), "socks5h://user@127.0.0.1:1080");
/// let proxy = Proxy::parse("http://proxy.example.org:3128")?;
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.example.org", 3128));
/// # Ok::<(), tls_mailer::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, Zeroizing<String>)>,
}

/// Which protocol the proxy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// SOCKS5, the mail server's name resolved by the proxy (`socks5h://`):
    /// no DNS query leaves this machine.
    Socks5RemoteDns,
    /// SOCKS5, the name resolved here and the address given (`socks5://`).
    Socks5,
    /// HTTP CONNECT (`http://`); the name goes to the proxy.
    HttpConnect,
}

impl Proxy {
    /// A proxy of `kind` at `host:port`, without credentials.
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Reads `socks5h://[user:password@]host[:port]` (port 1080 by
    /// default), `socks5://...` or `http://[user:password@]host[:port]`
    /// (port 8080 by default). User name and password may be
    /// percent-encoded.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Config(format!(
                "proxy {:?}: {why} (expected socks5h://[user:password@]host:port, \
                 socks5://... or http://host:port)",
                redact_url(url)
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "socks5h" => (ProxyKind::Socks5RemoteDns, 1080),
            "socks5" => (ProxyKind::Socks5, 1080),
            "http" => (ProxyKind::HttpConnect, 8080),
            _ => return Err(bad("unknown scheme")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(bad("a proxy URL has no path"));
        }
        let (userinfo, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => (Some(userinfo), authority),
            None => (None, rest),
        };
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let mut proxy = Self::new(kind, host, port.unwrap_or(default_port));
        if let Some(userinfo) = userinfo {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let user = percent_decode(user).ok_or_else(|| bad("bad percent-encoding"))?;
            let password = percent_decode(password).ok_or_else(|| bad("bad percent-encoding"))?;
            proxy = proxy.credentials(user, password);
        }
        Ok(proxy)
    }

    /// Logs in to the proxy: SOCKS5 user name and password (RFC 1929, at
    /// most 255 bytes each), or HTTP `Proxy-Authorization: Basic`.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), Zeroizing::new(password.into())));
        self
    }

    /// The protocol.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the mail server's name is resolved here (`socks5://`).
    pub(crate) fn resolves_locally(&self) -> bool {
        self.kind == ProxyKind::Socks5
    }
}

/// Never the password.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Socks5RemoteDns => "socks5h",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::HttpConnect => "http",
        };
        write!(f, "{scheme}://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({self})")
    }
}

/// The mail server as the proxy is asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A name the proxy resolves.
    Name(String, u16),
    /// An address resolved here.
    Address(IpAddr, u16),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name, port) => write!(f, "{name}:{port}"),
            Self::Address(IpAddr::V6(ip), port) => write!(f, "[{ip}]:{port}"),
            Self::Address(ip, port) => write!(f, "{ip}:{port}"),
        }
    }
}

/// The longest HTTP CONNECT answer read (status line and headers).
const MAX_HTTP_RESPONSE: usize = 8 * 1024;

/// One proxy handshake: write [`Handshake::transmit`], read exactly
/// [`Handshake::wants`] bytes and [`Handshake::feed`] them, until
/// [`Handshake::is_done`].
pub(crate) struct Handshake {
    proxy: Proxy,
    target: Target,
    state: State,
    out: Vec<u8>,
    /// What was read of the answer in progress.
    read: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// SOCKS5: the method the proxy chose (2 bytes).
    Method,
    /// SOCKS5: the answer to user name and password (2 bytes).
    Login,
    /// SOCKS5: the reply's head (4 bytes: version, code, reserved, address type).
    ReplyHead,
    /// SOCKS5: the length of a domain name in the reply (1 byte).
    ReplyNameLength,
    /// SOCKS5: the rest of the reply's bound address and port.
    ReplyAddress(usize),
    /// HTTP: the status line and headers, up to the empty line.
    HttpResponse,
    Done,
}

impl Handshake {
    pub(crate) fn new(proxy: &Proxy, target: Target) -> Result<Self, Error> {
        let mut handshake = Self {
            proxy: proxy.clone(),
            target,
            state: State::Done,
            out: Vec::new(),
            read: Vec::new(),
        };
        match proxy.kind {
            ProxyKind::HttpConnect => {
                let target = handshake.target.to_string();
                let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
                if let Some((user, password)) = &proxy.credentials {
                    let pair = Zeroizing::new(format!("{user}:{}", password.as_str()));
                    let encoded = Zeroizing::new(BASE64.encode(pair.as_bytes()));
                    request.push_str(&format!(
                        "Proxy-Authorization: Basic {}\r\n",
                        encoded.as_str()
                    ));
                }
                request.push_str("\r\n");
                handshake.out = request.into_bytes();
                handshake.state = State::HttpResponse;
            }
            ProxyKind::Socks5 | ProxyKind::Socks5RemoteDns => {
                if let Some((user, password)) = &proxy.credentials
                    && (user.is_empty() || user.len() > 255 || password.len() > 255)
                {
                    return Err(handshake.failure(
                        "a SOCKS5 user name must be 1 to 255 bytes and a password at most 255 \
                         (RFC 1929)",
                    ));
                }
                if let Target::Name(name, _) = &handshake.target
                    && name.len() > 255
                {
                    return Err(handshake.failure("the host name is longer than SOCKS5 allows"));
                }
                // Version 5; "no authentication", and user name and
                // password when there are credentials.
                handshake.out = if proxy.credentials.is_some() {
                    vec![5, 2, 0, 2]
                } else {
                    vec![5, 1, 0]
                };
                handshake.state = State::Method;
            }
        }
        Ok(handshake)
    }

    /// Bytes to write now (empty when nothing is due).
    pub(crate) fn transmit(&mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(std::mem::take(&mut self.out))
    }

    /// How many bytes to read next: exactly that many, never more, so
    /// nothing after the proxy's answer is consumed. 0 once done.
    pub(crate) fn wants(&self) -> usize {
        match self.state {
            State::Method | State::Login => 2,
            State::ReplyHead => 4,
            State::ReplyNameLength | State::HttpResponse => 1,
            State::ReplyAddress(length) => length,
            State::Done => 0,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The proxy's next bytes (as many as [`Handshake::wants`] said, or fewer).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.read.extend_from_slice(bytes);
        if self.state == State::HttpResponse {
            return self.http_response();
        }
        if self.read.len() < self.wants() {
            return Ok(());
        }
        let answer = std::mem::take(&mut self.read);
        match self.state {
            State::Method => self.method(&answer),
            State::Login => {
                if answer[1] != 0 {
                    return Err(self.failure("the proxy refused the user name and password"));
                }
                self.connect_request();
                Ok(())
            }
            State::ReplyHead => self.reply_head(&answer),
            State::ReplyNameLength => {
                self.state = State::ReplyAddress(usize::from(answer[0]) + 2);
                Ok(())
            }
            State::ReplyAddress(_) => {
                self.state = State::Done;
                Ok(())
            }
            State::HttpResponse | State::Done => Ok(()),
        }
    }

    fn method(&mut self, answer: &[u8]) -> Result<(), Error> {
        if answer[0] != 5 {
            return Err(self.failure("the proxy does not speak SOCKS5"));
        }
        match (answer[1], &self.proxy.credentials) {
            (0, _) => {
                self.connect_request();
                Ok(())
            }
            (2, Some((user, password))) => {
                let mut login = Vec::with_capacity(3 + user.len() + password.len());
                login.push(1);
                login.push(user.len() as u8);
                login.extend_from_slice(user.as_bytes());
                login.push(password.len() as u8);
                login.extend_from_slice(password.as_bytes());
                self.out = login;
                self.state = State::Login;
                Ok(())
            }
            (0xFF, None) => Err(self.failure(
                "the proxy wants a login: give its user name and password in the proxy URL",
            )),
            _ => Err(self.failure("the proxy accepts none of the login methods offered")),
        }
    }

    fn connect_request(&mut self) {
        let mut request = vec![5, 1, 0];
        let port = match &self.target {
            Target::Name(name, port) => {
                request.push(3);
                request.push(name.len() as u8);
                request.extend_from_slice(name.as_bytes());
                *port
            }
            Target::Address(IpAddr::V4(ip), port) => {
                request.push(1);
                request.extend_from_slice(&ip.octets());
                *port
            }
            Target::Address(IpAddr::V6(ip), port) => {
                request.push(4);
                request.extend_from_slice(&ip.octets());
                *port
            }
        };
        request.extend_from_slice(&port.to_be_bytes());
        self.out = request;
        self.state = State::ReplyHead;
    }

    fn reply_head(&mut self, head: &[u8]) -> Result<(), Error> {
        if head[0] != 5 {
            return Err(self.failure("the proxy's reply is not SOCKS5"));
        }
        if head[1] != 0 {
            let reason = match head[1] {
                1 => "general failure",
                2 => "not allowed by its rules",
                3 => "network unreachable",
                4 => "host unreachable",
                5 => "connection refused by the mail server",
                6 => "TTL expired",
                7 => "command not supported",
                8 => "address type not supported",
                _ => "an unknown error",
            };
            let mut error = self.failure(&format!(
                "the proxy could not reach {}: {reason} (SOCKS5 reply {})",
                self.target, head[1]
            ));
            if let Error::Proxy { temporary, .. } = &mut error {
                *temporary = matches!(head[1], 1 | 3..=6);
            }
            return Err(error);
        }
        self.state = match head[3] {
            1 => State::ReplyAddress(4 + 2),
            4 => State::ReplyAddress(16 + 2),
            3 => State::ReplyNameLength,
            _ => return Err(self.failure("the proxy's reply has an unknown address type")),
        };
        Ok(())
    }

    fn http_response(&mut self) -> Result<(), Error> {
        // The status line alone tells a server that is no HTTP proxy (an
        // SMTP greeting, say): no need to wait for an empty line it will
        // never send.
        if self.read.ends_with(b"\r\n")
            && self.read.iter().filter(|&&byte| byte == b'\n').count() == 1
            && !self.read.starts_with(b"HTTP/1.")
        {
            let line = String::from_utf8_lossy(&self.read).trim_end().to_owned();
            return Err(self.failure(&format!(
                "the proxy does not speak HTTP: {:?}",
                line.escape_debug().to_string()
            )));
        }
        if !self.read.ends_with(b"\r\n\r\n") {
            if self.read.len() >= MAX_HTTP_RESPONSE {
                return Err(self.failure("the proxy's answer to CONNECT has no end"));
            }
            return Ok(());
        }
        let response = String::from_utf8_lossy(&self.read).into_owned();
        let status_line = response.lines().next().unwrap_or_default().to_owned();
        let mut words = status_line.split_whitespace();
        let version = words.next().unwrap_or_default();
        let status: u16 = words.next().and_then(|code| code.parse().ok()).unwrap_or(0);
        self.read.clear();
        if !version.starts_with("HTTP/1.") {
            return Err(self.failure(&format!(
                "the proxy does not speak HTTP: {:?}",
                status_line.escape_debug().to_string()
            )));
        }
        match status {
            200..=299 => {
                self.state = State::Done;
                Ok(())
            }
            407 => Err(self.failure(
                "the proxy wants a login (407): give its user name and password in the proxy \
                 URL, or check them",
            )),
            _ => Err(self.failure(&format!(
                "the proxy refused CONNECT {}: {}",
                self.target,
                status_line.escape_debug()
            ))),
        }
    }

    fn failure(&self, reason: &str) -> Error {
        Error::Proxy {
            proxy: self.proxy.to_string(),
            reason: reason.to_owned(),
            temporary: false,
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), Some(port.parse().ok()?))),
        None => Some((authority.to_owned(), None)),
    }
    .filter(|(host, _)| !host.is_empty() && !host.contains(':'))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL for an error message, without its password.
fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    /// Runs a handshake against scripted proxy answers; what was written.
    fn run(proxy: &Proxy, target: Target, answers: &[u8]) -> Result<Vec<u8>, Error> {
        let mut handshake = Handshake::new(proxy, target)?;
        let mut written = Vec::new();
        let mut answers = answers;
        loop {
            written.extend_from_slice(&handshake.transmit());
            if handshake.is_done() {
                assert!(answers.is_empty(), "read past the answer: {answers:?}");
                return Ok(written);
            }
            let wanted = handshake.wants();
            assert!(
                wanted > 0 && answers.len() >= wanted,
                "stuck: wants {wanted}"
            );
            let (now, later) = answers.split_at(wanted);
            answers = later;
            handshake.feed(now)?;
        }
    }

    #[test]
    fn socks5_with_remote_dns_sends_the_name_and_reads_only_its_reply() {
        let proxy = Proxy::parse("socks5h://127.0.0.1:1080").unwrap();
        let target = Target::Name("smtp.example.org".into(), 465);
        // Method "none", then success with a bound IPv4 address.
        let written = run(
            &proxy,
            target,
            &[5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38],
        )
        .unwrap();
        let mut expected = vec![5, 1, 0, 5, 1, 0, 3, 16];
        expected.extend_from_slice(b"smtp.example.org");
        expected.extend_from_slice(&465u16.to_be_bytes());
        assert_eq!(written, expected);
    }

    #[test]
    fn socks5_login_and_an_address_target() {
        let proxy = Proxy::parse("socks5://us%40er:p%3Ass@[::1]:9050").unwrap();
        assert_eq!(proxy.to_string(), "socks5://us@er@[::1]:9050");
        let target = Target::Address("192.0.2.7".parse().unwrap(), 587);
        let answers = [5, 2, 1, 0, 5, 0, 0, 3, 4, b'h', b'o', b's', b't', 0, 25];
        let written = run(&proxy, target, &answers).unwrap();
        let mut expected = vec![5, 2, 0, 2, 1, 5];
        expected.extend_from_slice(b"us@er");
        expected.push(4);
        expected.extend_from_slice(b"p:ss");
        expected.extend_from_slice(&[5, 1, 0, 1, 192, 0, 2, 7, 2, 75]);
        assert_eq!(written, expected);
    }

    #[test]
    fn socks5_refusals_say_what_the_proxy_said() {
        let proxy = Proxy::parse("socks5h://proxy.example:1080").unwrap();
        let target = || Target::Name("smtp.example.org".into(), 465);
        let error = run(&proxy, target(), &[5, 0, 5, 5, 0, 1]).unwrap_err();
        assert!(error.to_string().contains("connection refused"), "{error}");
        let error = run(&proxy, target(), &[5, 0xFF]).unwrap_err();
        assert!(error.to_string().contains("wants a login"), "{error}");
        let error = run(&proxy, target(), &[4, 0]).unwrap_err();
        assert!(error.to_string().contains("SOCKS5"), "{error}");
        let with_login = proxy.clone().credentials("u", "wrong");
        let error = run(&with_login, target(), &[5, 2, 1, 1]).unwrap_err();
        assert!(
            error.to_string().contains("refused the user name"),
            "{error}"
        );
        assert!(!format!("{error:?}").contains("wrong"));
    }

    #[test]
    fn http_connect_reads_up_to_the_empty_line_and_no_further() {
        let proxy = Proxy::parse("http://user:pw@proxy.example:3128").unwrap();
        let target = Target::Name("smtp.example.org".into(), 587);
        let written = run(
            &proxy,
            target.clone(),
            b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            "CONNECT smtp.example.org:587 HTTP/1.1\r\nHost: smtp.example.org:587\r\n\
             Proxy-Authorization: Basic dXNlcjpwdw==\r\n\r\n"
        );
        let error = run(
            &proxy,
            target.clone(),
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("407"), "{error}");
        let error = run(&proxy, target.clone(), b"HTTP/1.0 403 Forbidden\r\n\r\n").unwrap_err();
        assert!(error.to_string().contains("403 Forbidden"), "{error}");
        let error = run(&proxy, target, b"220 smtp ready\r\n\r\n").unwrap_err();
        assert!(error.to_string().contains("does not speak HTTP"), "{error}");
    }

    #[test]
    fn an_endless_http_answer_is_cut_off() {
        let proxy = Proxy::parse("http://proxy.example").unwrap();
        assert_eq!(proxy.port(), 8080);
        let mut handshake =
            Handshake::new(&proxy, Target::Name("smtp.example.org".into(), 465)).unwrap();
        let _ = handshake.transmit();
        let mut result = Ok(());
        for _ in 0..MAX_HTTP_RESPONSE {
            result = handshake.feed(b"x");
            if result.is_err() {
                break;
            }
        }
        assert!(result.unwrap_err().to_string().contains("no end"));
    }

    #[test]
    fn bad_proxy_urls_are_config_errors_without_the_password() {
        for url in [
            "ftp://proxy:21",
            "socks5h://proxy:notaport",
            "socks5h://",
            "http://proxy:8080/path",
            "proxy:1080",
            "socks5h://u:secret@proxy:99999",
        ] {
            let error = Proxy::parse(url).unwrap_err();
            assert!(matches!(error, Error::Config(_)), "{url}: {error:?}");
            assert!(!error.to_string().contains("secret"), "{error}");
        }
    }
}
