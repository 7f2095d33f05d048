//! The one HTTP exchange OAuth 2.0 needs: a form POST over verified TLS,
//! and the answer. Made for token endpoints, not as a general client: one
//! request per connection, no redirect followed, every part of the answer
//! bounded, the bytes that carry secrets wiped when dropped.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Instant;

use zeroize::Zeroizing;

use crate::blocking;
use crate::client::Settings;
use crate::error::Error;
use crate::oauth::OAuthError;

/// The status line and headers of an answer may take this many bytes.
const HEAD_LIMIT: usize = 16 * 1024;
/// A token endpoint's JSON is a few hundred bytes; an error page may be
/// longer, but nothing OAuth sends comes near this.
const BODY_LIMIT: usize = 256 * 1024;

/// An `https://host[:port]/path` URL: nothing else is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpsUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The path and query, starting with `/`.
    pub(crate) target: String,
}

impl HttpsUrl {
    pub(crate) fn parse(text: &str) -> Result<Self, OAuthError> {
        let invalid = |reason: &'static str| OAuthError::InvalidUrl {
            url: text.to_owned(),
            reason,
        };
        let rest = text.strip_prefix("https://").ok_or_else(|| {
            invalid("it must start with https:// (a token never goes in plaintext)")
        })?;
        if rest.contains('#') {
            return Err(invalid("a fragment (#...) has no place in an endpoint"));
        }
        if text.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(invalid("it holds a space or a control character"));
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(invalid(
                "a user name or password in the URL is not used: remove it",
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("an IPv6 address without its closing ]"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("it names no host"));
        }
        let port = match port {
            None => 443,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| invalid("the port is not a number from 1 to 65535"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The `Host` header: the port only when it is not 443.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            443 => host,
            port => format!("{host}:{port}"),
        }
    }
}

impl fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}{}", self.authority(), self.target)
    }
}

/// `application/x-www-form-urlencoded` (the WHATWG form encoding OAuth
/// specifies, RFC 6749 appendix B): unreserved bytes as they are, space as
/// `+`, every other byte as `%XX`.
pub(crate) fn form_encode(fields: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode_into(&mut out, name);
        out.push('=');
        encode_into(&mut out, value);
    }
    out
}

fn encode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
        }
    }
}

/// The whole request: a POST of `body` (already form-encoded).
pub(crate) fn post_request(url: &HttpsUrl, body: &str) -> Zeroizing<Vec<u8>> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tls-mailer/{}\r\n\
         Accept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        url.target,
        url.authority(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let mut request = Zeroizing::new(Vec::with_capacity(head.len() + body.len()));
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body.as_bytes());
    request
}

/// A complete answer.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// The body may hold a token: never shown.
impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_length", &self.body.len())
            .finish()
    }
}

/// How the body of an answer ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// Neither header: the body runs until the server closes.
    UntilClose,
}

/// Reads an answer from the bytes as they arrive (no I/O of its own).
pub(crate) struct ResponseReader {
    received: Zeroizing<Vec<u8>>,
}

impl ResponseReader {
    pub(crate) fn new() -> Self {
        Self {
            received: Zeroizing::new(Vec::new()),
        }
    }

    /// Takes more bytes: the answer once it is complete.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<Response>, String> {
        if self.received.len() + bytes.len() > HEAD_LIMIT + BODY_LIMIT {
            return Err(format!(
                "the answer is longer than {} KiB, far more than a token endpoint sends",
                (HEAD_LIMIT + BODY_LIMIT) / 1024
            ));
        }
        self.received.extend_from_slice(bytes);
        self.parse(false)
    }

    /// The server closed the connection: the answer, if it is complete.
    pub(crate) fn finish(&mut self) -> Result<Response, String> {
        match self.parse(true)? {
            Some(response) => Ok(response),
            None if self.received.is_empty() => {
                Err("the server closed the connection without an answer".into())
            }
            None => Err("the server closed the connection in the middle of its answer".into()),
        }
    }

    fn parse(&self, closed: bool) -> Result<Option<Response>, String> {
        let mut start = 0;
        // Interim 1xx answers come before the real one: skip them.
        loop {
            let Some(head) = head_of(&self.received[start..])? else {
                return Ok(None);
            };
            let (status, content_type, framing) = parse_head(head)?;
            let body_start = start + head.len() + 4;
            if (100..200).contains(&status) {
                start = body_start;
                continue;
            }
            let body = &self.received[body_start..];
            let body = match framing {
                Framing::Length(length) if body.len() >= length => Some(body[..length].to_vec()),
                Framing::Length(_) => None,
                Framing::Chunked => dechunk(body)?,
                Framing::UntilClose => closed.then(|| body.to_vec()),
            };
            return Ok(body.map(|body| Response {
                status,
                content_type,
                body: Zeroizing::new(body),
            }));
        }
    }
}

/// The status line and headers, without the blank line, once all came.
fn head_of(bytes: &[u8]) -> Result<Option<&[u8]>, String> {
    match bytes.windows(4).position(|window| window == b"\r\n\r\n") {
        Some(end) if end <= HEAD_LIMIT => Ok(Some(&bytes[..end])),
        Some(_) => Err(too_long_head()),
        None if bytes.len() > HEAD_LIMIT => Err(too_long_head()),
        None => Ok(None),
    }
}

fn too_long_head() -> String {
    format!(
        "the status line and headers of the answer run past {} KiB",
        HEAD_LIMIT / 1024
    )
}

fn parse_head(head: &[u8]) -> Result<(u16, Option<String>, Framing), String> {
    let head = std::str::from_utf8(head)
        .map_err(|_| "the headers of the answer are not text".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..600).contains(code))
        .ok_or_else(|| {
            format!(
                "this is not an HTTP answer: {:?}",
                status_line.chars().take(80).collect::<String>()
            )
        })?;
    let mut content_type = None;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a header line without a colon: {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .parse::<usize>()
                .map_err(|_| format!("Content-Length is not a number: {value:?}"))?;
            if length.is_some_and(|earlier| earlier != parsed) {
                return Err("two different Content-Length headers".into());
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(format!(
                    "a Transfer-Encoding this client does not read: {value:?}"
                ));
            }
            chunked = true;
        }
    }
    let framing = match (chunked, length) {
        // RFC 9112 6.3: chunked wins over a length.
        (true, _) => Framing::Chunked,
        (false, Some(length)) if length > BODY_LIMIT => {
            return Err(format!(
                "the body would be {length} bytes, more than a token endpoint sends"
            ));
        }
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::UntilClose,
    };
    Ok((status, content_type, framing))
}

/// The body of a chunked answer (RFC 9112 7.1), once its last chunk and
/// trailers are in.
fn dechunk(mut bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = bytes.windows(2).position(|window| window == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&bytes[..line_end])
            .map_err(|_| "a chunk size line that is not text".to_owned())?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| format!("a chunk size that is not hexadecimal: {size:?}"))?;
        if body.len() + size > BODY_LIMIT {
            return Err("the chunked body runs past what a token endpoint sends".into());
        }
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            // Trailers, each a line, end with an empty line.
            let mut rest = bytes;
            loop {
                let Some(end) = rest.windows(2).position(|window| window == b"\r\n") else {
                    return Ok(None);
                };
                if end == 0 {
                    return Ok(Some(body));
                }
                rest = &rest[end + 2..];
            }
        }
        if bytes.len() < size + 2 {
            return Ok(None);
        }
        if &bytes[size..size + 2] != b"\r\n" {
            return Err("a chunk is not followed by CRLF".into());
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

/// POSTs `form` to `url` over a verified TLS connection, by `deadline`.
pub(crate) fn post_form(
    settings: &Settings,
    url: &HttpsUrl,
    form: &[(&str, &str)],
    deadline: Instant,
) -> Result<Response, Error> {
    let bad = |reason: String| {
        Error::OAuth(OAuthError::BadResponse {
            endpoint: url.to_string(),
            reason,
        })
    };
    let timed_out = || {
        Error::OAuth(OAuthError::Timeout {
            endpoint: url.to_string(),
        })
    };
    let mut stream = blocking::open_tls(settings, url.port)?;
    let body = form_encode(form);
    let request = post_request(url, &body);
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let _ = stream
        .sock
        .set_write_timeout(Some(remaining().max(MIN_WAIT)));
    stream
        .write_all(&request)
        .and_then(|()| stream.flush())
        .map_err(|error| io_failure(url, error, timed_out))?;
    let mut reader = ResponseReader::new();
    let mut buffer = Zeroizing::new([0u8; 8192]);
    loop {
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        let _ = stream
            .sock
            .set_read_timeout(Some(remaining().max(MIN_WAIT)));
        match stream.read(&mut buffer[..]) {
            Ok(0) => return reader.finish().map_err(bad),
            Ok(read) => {
                if let Some(response) = reader.feed(&buffer[..read]).map_err(bad)? {
                    tracing::debug!(target: "tls_mailer", "POST {url}: HTTP {}", response.status);
                    return Ok(response);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // A server that closes without TLS's close_notify: what it sent
            // is judged as it is (a cut JSON body does not parse).
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return reader.finish().map_err(bad);
            }
            Err(error) => return Err(io_failure(url, error, timed_out)),
        }
    }
}

/// A socket timeout of zero means "no timeout" to std: never set that.
const MIN_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

fn io_failure(url: &HttpsUrl, error: io::Error, timed_out: impl Fn() -> Error) -> Error {
    if matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return timed_out();
    }
    Error::OAuth(OAuthError::BadResponse {
        endpoint: url.to_string(),
        reason: format!("the connection broke: {error}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    #[test]
    fn urls_are_https_only_with_host_port_and_target() {
        let url = HttpsUrl::parse("https://oauth2.googleapis.com/token").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("oauth2.googleapis.com", 443, "/token")
        );
        let url = HttpsUrl::parse("https://[::1]:8443/a?b=c").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8443));
        assert_eq!(url.to_string(), "https://[::1]:8443/a?b=c");
        assert_eq!(HttpsUrl::parse("https://h?x=1").unwrap().target, "/?x=1");
        for bad in [
            "http://example.org/token",
            "https://user:pw@example.org/",
            "https://example.org:0/",
            "https://example.org:99999/",
            "https:///token",
            "https://example.org/a b",
            "https://example.org/#x",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_encode_reserved_bytes_and_spaces() {
        let body = form_encode(&[("scope", "a b/c"), ("x", "é&=+")]);
        assert_eq!(body.as_str(), "scope=a+b%2Fc&x=%C3%A9%26%3D%2B");
    }

    #[test]
    fn the_request_is_one_post_with_its_length() {
        let url = HttpsUrl::parse("https://localhost:8443/token").unwrap();
        let request = post_request(&url, "a=b");
        let text = String::from_utf8(request.to_vec()).unwrap();
        assert!(text.starts_with("POST /token HTTP/1.1\r\nHost: localhost:8443\r\n"));
        assert!(text.contains("\r\nContent-Length: 3\r\n"));
        assert!(text.ends_with("\r\n\r\na=b"));
    }

    fn read_all(pieces: &[&[u8]], close: bool) -> Result<Option<Response>, String> {
        let mut reader = ResponseReader::new();
        for piece in pieces {
            if let Some(response) = reader.feed(piece)? {
                return Ok(Some(response));
            }
        }
        if close {
            reader.finish().map(Some)
        } else {
            Ok(None)
        }
    }

    #[test]
    fn a_length_framed_answer_is_complete_at_its_length_in_any_pieces() {
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        for split in 1..answer.len() {
            let response = read_all(&[&answer[..split], &answer[split..]], false)
                .unwrap()
                .unwrap();
            assert_eq!((response.status, &response.body[..]), (200, &b"{}"[..]));
            assert_eq!(response.content_type.as_deref(), Some("application/json"));
        }
        assert!(
            read_all(&[&answer[..answer.len() - 1]], false)
                .unwrap()
                .is_none()
        );
        assert!(read_all(&[&answer[..answer.len() - 1]], true).is_err());
    }

    #[test]
    fn chunked_answers_are_decoded_with_extensions_and_trailers() {
        let answer = b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n\
            4;x=y\r\n{\"er\r\n3\r\nror\r\n2\r\n\":\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 1..answer.len() {
            let response = read_all(&[&answer[..split], &answer[split..]], false)
                .unwrap()
                .unwrap();
            assert_eq!(
                (response.status, &response.body[..]),
                (400, &b"{\"error\":"[..])
            );
        }
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(read_all(&[bad], false).is_err());
    }

    #[test]
    fn interim_answers_are_skipped_and_close_ends_an_unframed_body() {
        let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n{\"a\":1}";
        let response = read_all(&[answer], true).unwrap().unwrap();
        assert_eq!(&response.body[..], b"{\"a\":1}");
    }

    /// The verdict on a whole answer, comparable across splits.
    fn verdict(pieces: &[&[u8]]) -> Result<Option<(u16, Vec<u8>)>, String> {
        read_all(pieces, true)
            .map(|response| response.map(|response| (response.status, response.body.to_vec())))
    }

    proptest::proptest! {
        /// Any bytes, cut anywhere: no panic, and the same verdict as the
        /// bytes in one piece (a complete answer is complete however the
        /// network cut it).
        #[test]
        fn any_answer_in_any_pieces_gets_one_verdict(
            head in proptest::sample::select(vec![
                &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..],
                b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"HTTP/1.0 200 OK\r\n\r\n",
                b"",
            ]),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cut in 0usize..400,
        ) {
            let mut bytes = head.to_vec();
            bytes.extend_from_slice(&tail);
            let cut = cut.min(bytes.len());
            let whole = verdict(&[&bytes]);
            let split = verdict(&[&bytes[..cut], &bytes[cut..]]);
            // Complete in one piece means complete once both pieces came.
            if let Ok(Some(answer)) = &whole {
                proptest::prop_assert_eq!(split, Ok(Some(answer.clone())));
            }
        }
    }

    #[test]
    fn hostile_answers_fail_cleanly_and_bounded() {
        // Headers for ever: refused once past the limit.
        let mut reader = ResponseReader::new();
        let mut failed = None;
        reader.feed(b"HTTP/1.1 200 OK\r\n").unwrap();
        for _ in 0..10_000 {
            if let Err(error) = reader.feed(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n") {
                failed = Some(error);
                break;
            }
        }
        assert!(failed.unwrap().contains("16 KiB"));
        for answer in [
            &b"SMTP 220 hello\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert!(read_all(&[answer], true).is_err(), "{answer:?}");
        }
        assert!(
            read_all(&[], true)
                .unwrap_err()
                .contains("without an answer")
        );
    }
}
