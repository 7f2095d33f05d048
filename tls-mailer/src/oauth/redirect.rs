//! The loopback redirect of a browser sign-in (RFC 8252 7.3): a listener on
//! 127.0.0.1 that waits for the browser to come back with the code. It
//! reads request lines only (bounded), answers every request with a short
//! page, and ignores what is not the redirect (a favicon, a probe).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::Error;
use crate::oauth::OAuthError;

/// The most a request line and headers may take.
const HEAD_LIMIT: usize = 8 * 1024;
/// How long one connection may take to send its request.
const REQUEST_WAIT: Duration = Duration::from_secs(5);

/// What the browser brought back.
pub(crate) enum Redirect {
    Code(Zeroizing<String>),
    /// The authorization server's error (`access_denied`...), and its text.
    Refused(String, Option<String>),
}

/// A listener for the redirect, on a port of its own.
pub(crate) struct RedirectListener {
    listener: TcpListener,
    port: u16,
}

impl RedirectListener {
    pub(crate) fn bind() -> Result<Self, Error> {
        let failed = |error: io::Error| {
            Error::Config(format!(
                "cannot listen on 127.0.0.1 for the sign-in's redirect: {error}"
            ))
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(failed)?;
        let port = listener.local_addr().map_err(failed)?.port();
        listener.set_nonblocking(true).map_err(failed)?;
        Ok(Self { listener, port })
    }

    /// The `redirect_uri` to give the authorization server.
    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Waits until `deadline` for the redirect that carries `state`; a
    /// redirect with another state is answered and ignored (it is not the
    /// answer to this sign-in).
    pub(crate) fn wait(&self, state: &str, deadline: Instant) -> Result<Redirect, Error> {
        loop {
            if Instant::now() >= deadline {
                return Err(Error::OAuth(OAuthError::SignInTimedOut));
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(redirect) = answer(stream, state) {
                        return Ok(redirect);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(Error::Config(format!(
                        "the sign-in's redirect listener failed: {error}"
                    )));
                }
            }
        }
    }
}

/// Reads one request and answers it; the redirect if this was it.
fn answer(mut stream: TcpStream, state: &str) -> Option<Redirect> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(REQUEST_WAIT));
    let _ = stream.set_write_timeout(Some(REQUEST_WAIT));
    let head = read_head(&mut stream)?;
    let target = request_target(&head);
    let redirect = target.and_then(|target| redirect_of(target, state));
    let page = match &redirect {
        Some(Redirect::Code(_)) => {
            "Signed in. tls-mailer has the authorization; you can close this window."
        }
        Some(Redirect::Refused(..)) => {
            "The sign-in was not completed; tls-mailer says why in the terminal."
        }
        None => "This is tls-mailer's sign-in listener; it waits for the sign-in's redirect.",
    };
    let status = if redirect.is_some() || target == Some("/") {
        "200 OK"
    } else {
        "404 Not Found"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = stream.write_all(response.as_bytes());
    redirect
}

fn read_head(stream: &mut TcpStream) -> Option<Zeroizing<Vec<u8>>> {
    let mut head = Zeroizing::new(Vec::with_capacity(1024));
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > HEAD_LIMIT {
            return None;
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    Some(head)
}

/// The target of a `GET TARGET HTTP/1.x` request line.
fn request_target(head: &[u8]) -> Option<&str> {
    let line_end = head.windows(2).position(|window| window == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut words = line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    (method == "GET" && version.starts_with("HTTP/1.") && words.next().is_none()).then_some(target)
}

/// The code (or error) of a redirect to `/?...` whose state is `state`.
fn redirect_of(target: &str, state: &str) -> Option<Redirect> {
    let query = target.strip_prefix("/?")?;
    let fields = form_decode(query)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, value)| value.as_str())
    };
    // A redirect without this sign-in's state is not its answer (RFC 6749
    // 10.12: a forged one would log the user in to another account).
    if field("state") != Some(state) {
        return None;
    }
    if let Some(code) = field("code").filter(|code| !code.is_empty()) {
        return Some(Redirect::Code(Zeroizing::new(code.to_owned())));
    }
    let error = field("error")?;
    Some(Redirect::Refused(
        printable(error),
        field("error_description").map(printable),
    ))
}

fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// `application/x-www-form-urlencoded` pairs; `None` for a bad escape or
/// bytes that are not UTF-8.
fn form_decode(query: &str) -> Option<Vec<(Zeroizing<String>, Zeroizing<String>)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(name)?, unescape(value)?))
        })
        .collect()
}

fn unescape(text: &str) -> Option<Zeroizing<String>> {
    let bytes = text.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out.to_vec()).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    fn code_of(redirect: Option<Redirect>) -> Option<String> {
        match redirect {
            Some(Redirect::Code(code)) => Some(code.to_string()),
            _ => None,
        }
    }

    #[test]
    fn the_redirect_with_this_state_gives_its_code() {
        assert_eq!(
            code_of(redirect_of("/?code=a%2Fb+c&state=s1", "s1")).as_deref(),
            Some("a/b c")
        );
        assert!(redirect_of("/?code=x&state=other", "s1").is_none());
        assert!(redirect_of("/?code=x", "s1").is_none());
        assert!(redirect_of("/favicon.ico", "s1").is_none());
        assert!(redirect_of("/?code=%zz&state=s1", "s1").is_none());
        let Some(Redirect::Refused(error, text)) = redirect_of(
            "/?error=access_denied&error_description=no%0Athanks&state=s1",
            "s1",
        ) else {
            panic!("a refusal")
        };
        assert_eq!(
            (error.as_str(), text.as_deref()),
            ("access_denied", Some("nothanks"))
        );
    }

    #[test]
    fn the_listener_ignores_strays_and_takes_the_redirect() {
        let listener = RedirectListener::bind().unwrap();
        let uri = listener.redirect_uri();
        let port: u16 = uri
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let browser = std::thread::spawn(move || {
            let mut pages = Vec::new();
            for target in [
                "/favicon.ico",
                "/?code=forged&state=wrong",
                "/?code=c1&state=s1",
            ] {
                let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
                write!(stream, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
                let mut page = String::new();
                stream.read_to_string(&mut page).unwrap();
                pages.push(page);
            }
            pages
        });
        let redirect = listener
            .wait("s1", Instant::now() + Duration::from_secs(10))
            .unwrap();
        assert_eq!(code_of(Some(redirect)).as_deref(), Some("c1"));
        let pages = browser.join().unwrap();
        assert!(pages[0].starts_with("HTTP/1.1 404"));
        assert!(pages[2].contains("Signed in"));
        // Nobody comes: the deadline ends the wait.
        let error = listener.wait("s1", Instant::now() + Duration::from_millis(100));
        assert!(matches!(
            error,
            Err(Error::OAuth(OAuthError::SignInTimedOut))
        ));
    }
}
