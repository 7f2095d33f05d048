//! An OAuth 2.0 authorization server on loopback HTTPS, for the tests of
//! an OAuth client: the refresh-token grant (RFC 6749 section 6), the
//! device authorization grant (RFC 8628) and the authorization code grant
//! (RFC 6749 section 4.1) with PKCE (RFC 7636, `S256` only) and a loopback
//! redirect (RFC 8252 section 7.3).
//!
//! It is written from the RFCs on its own, sharing no code with the
//! client: its HTTP/1.1 request parser and its form decoder are its own,
//! so a parsing bug cannot hide on both sides. It answers one request per
//! connection (`Connection: close`), records every request it receives
//! ([`TokenEndpoint::requests`]) and can be told to misbehave
//! ([`EndpointFault`]).
//!
//! ```
//! use tls_mailer_testkit::oauth::TokenEndpoint;
//!
//! let endpoint = TokenEndpoint::builder().refresh_token("refresh-1").start()?;
//! assert!(endpoint.token_url().starts_with("https://localhost:"));
//! assert!(endpoint.ca_pem().contains("BEGIN CERTIFICATE"));
//! assert!(endpoint.requests().is_empty());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::{CertKind, TestCa, lock};

/// The most a request head (request line and headers) may take.
const MAX_HEAD: usize = 16 * 1024;
/// The most a request body may take.
const MAX_BODY: usize = 64 * 1024;
/// RFC 8628 section 3.4.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How long a silent client may hold a connection thread.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// [`EndpointFault::EndlessHeaders`] gives up after this much, should the
/// client never hang up.
const ENDLESS_LIMIT: usize = 64 << 20;

/// A way for the endpoint to misbehave; it applies to every response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointFault {
    /// Behave.
    #[default]
    None,
    /// Answer `HTTP/1.1 200 OK` with `Content-Type: application/json` and
    /// a body that is not JSON.
    Garbage,
    /// Send the normal response with `Transfer-Encoding: chunked` instead
    /// of `Content-Length`, in chunks of a few bytes each written on its
    /// own, the first carrying a chunk extension (which RFC 9112 section
    /// 7.1.1 says a recipient ignores), with an empty trailer section.
    Chunked,
    /// Send a status line, then header lines forever (until the client
    /// hangs up, the endpoint is dropped, or 64 MiB are out).
    EndlessHeaders,
    /// Complete the TLS handshake and read the request, then never answer
    /// (until the client hangs up or the endpoint is dropped).
    Stall,
    /// Answer `500 Internal Server Error` with a `text/html` body.
    ServerError,
}

/// One request the endpoint received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The method (`POST`, ...); empty when the request line was unreadable.
    pub method: String,
    /// The request target as sent (the path, and the query if any); empty
    /// when the request line was unreadable.
    pub path: String,
    /// The body's fields, decoded, in order: empty unless the body is
    /// `application/x-www-form-urlencoded` and decodes. For a `GET` of
    /// `/authorize`, whose parameters travel in the query (RFC 6749
    /// section 3.1), the query's fields instead.
    pub form: Vec<(String, String)>,
    /// The raw `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// The raw `Content-Type` header value, if any.
    pub content_type: Option<String>,
}

impl TokenRequest {
    /// The value of the first field (of the body, or of an authorization
    /// request's query) called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What the endpoint was told to do.
#[derive(Clone, Debug)]
struct Config {
    client_id: String,
    client_secret: Option<String>,
    refresh_tokens: Vec<String>,
    access_tokens: Vec<(String, Option<u64>)>,
    rotate: Option<String>,
    scope: Option<String>,
    /// The user code and the number of `authorization_pending` polls.
    device: Option<(String, u32)>,
    slow_down_once: bool,
    deny_device: bool,
    interval: u64,
    device_expires_in: u64,
    authorization_code: bool,
    deny_authorization: bool,
    wrong_state: bool,
    fault: EndpointFault,
}

/// Configures a [`TokenEndpoint`].
#[derive(Debug)]
#[must_use]
pub struct TokenEndpointBuilder {
    config: Config,
    ca: Option<TestCa>,
}

impl TokenEndpointBuilder {
    /// The one client the endpoint knows (default `test-client`, public).
    /// A confidential client (`secret` given) authenticates with HTTP Basic
    /// or with `client_id` and `client_secret` in the body (RFC 6749
    /// section 2.3.1); a public client sends `client_id` alone.
    pub fn client(mut self, id: &str, secret: Option<&str>) -> Self {
        self.config.client_id = id.to_owned();
        self.config.client_secret = secret.map(str::to_owned);
        self
    }

    /// Accept this refresh token (may be called several times).
    pub fn refresh_token(mut self, token: &str) -> Self {
        self.config.refresh_tokens.push(token.to_owned());
        self
    }

    /// Queue an access token to issue, with its `expires_in` (omitted from
    /// the response when `None`). Grants take the queued tokens in order;
    /// the last one is issued again for every later grant. Without any,
    /// every grant gets `access-token-1` for 3600 seconds.
    pub fn access_token(mut self, token: &str, expires_in: Option<u64>) -> Self {
        self.config
            .access_tokens
            .push((token.to_owned(), expires_in));
        self
    }

    /// Every successful refresh-token grant answers with `refresh_token`
    /// set to `new`, which is accepted from then on (the old one stays
    /// accepted too).
    pub fn rotate_refresh_token(mut self, new: &str) -> Self {
        self.config.rotate = Some(new.to_owned());
        self
    }

    /// The scope granted (a space-separated list). A request that asks for
    /// a scope outside it gets `invalid_scope`; token responses carry the
    /// scope asked for, or this one. Default: none, any scope is accepted
    /// and responses carry no `scope`.
    pub fn scope(mut self, scope: &str) -> Self {
        self.config.scope = Some(scope.to_owned());
        self
    }

    /// Serve the device authorization endpoint (`/device`). Each request
    /// to it hands out a new device code (`dev-1`, `dev-2`, ...) with this
    /// user code; the first `pending_polls` token requests for a code get
    /// `authorization_pending`, the next one a token, with the first
    /// refresh token configured ([`Self::refresh_token`]) or else
    /// `refresh-from-device` (then accepted for refresh grants). A code
    /// gets `invalid_grant` once it has been exchanged.
    pub fn device_flow(mut self, user_code: &str, pending_polls: u32) -> Self {
        self.config.device = Some((user_code.to_owned(), pending_polls));
        self
    }

    /// The first poll for each device code gets `slow_down`, before the
    /// `authorization_pending` ones: that poll does not count as one of
    /// them.
    pub fn slow_down_once(mut self) -> Self {
        self.config.slow_down_once = true;
        self
    }

    /// After the pending polls, every poll gets `access_denied` instead of
    /// a token.
    pub fn deny_device(mut self) -> Self {
        self.config.deny_device = true;
        self
    }

    /// The `interval` in the device authorization response, in seconds
    /// (default 1; 0 is allowed). Polling faster is not punished.
    pub fn interval(mut self, seconds: u64) -> Self {
        self.config.interval = seconds;
        self
    }

    /// The `expires_in` of device codes, in seconds (default 600): a poll
    /// that many seconds after the code was handed out gets
    /// `expired_token`, and with 0 the first poll does.
    pub fn device_expires_in(mut self, seconds: u64) -> Self {
        self.config.device_expires_in = seconds;
        self
    }

    /// Serve the authorization endpoint (`/authorize`) and take the
    /// `authorization_code` grant. Every valid authorization request is
    /// approved at once (there is no user to ask) and redirected to its
    /// `redirect_uri` with a new code (`code-1`, `code-2`, ...). The
    /// redirect URI must be a loopback one (`http`, host `127.0.0.1`,
    /// `[::1]` or `localhost`, with a port), and PKCE with `S256` is
    /// required. A code is exchanged once; the token response carries the
    /// first refresh token configured ([`Self::refresh_token`]) or else
    /// `refresh-from-code` (then accepted for refresh grants).
    pub fn authorization_code(mut self) -> Self {
        self.config.authorization_code = true;
        self
    }

    /// Valid authorization requests are redirected with
    /// `error=access_denied` instead of a code, as when the user says no.
    pub fn deny_authorization(mut self) -> Self {
        self.config.deny_authorization = true;
        self
    }

    /// Authorization redirects carry a `state` other than the one the
    /// request sent (`not-` before it, also when none was sent): a client
    /// must refuse such a redirect (RFC 6749 section 10.12).
    pub fn wrong_state(mut self) -> Self {
        self.config.wrong_state = true;
        self
    }

    /// Misbehave this way (default [`EndpointFault::None`]).
    pub fn fault(mut self, fault: EndpointFault) -> Self {
        self.config.fault = fault;
        self
    }

    /// Use this CA (to share one trust anchor with other servers).
    pub fn ca(mut self, ca: TestCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// Starts listening on `127.0.0.1`, on a port of the system's choosing.
    pub fn start(self) -> io::Result<TokenEndpoint> {
        let ca = self.ca.unwrap_or_default();
        let issued = ca.issue(CertKind::Valid).map_err(io::Error::other)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(issued.chain, issued.key)
            .map_err(io::Error::other)?;
        // HTTP/1.1 only: a client that offers nothing else is refused in
        // the handshake rather than misunderstood after it.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let config = self.config;
        let grants = Grants {
            accepted: config.refresh_tokens.clone(),
            access: config.access_tokens.iter().cloned().collect(),
            ..Grants::default()
        };
        let shared = Arc::new(Shared {
            config,
            port,
            stop: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            grants: Mutex::new(grants),
            live: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            let tls = Arc::new(tls);
            std::thread::spawn(move || accept(&listener, &tls, &shared))
        };
        Ok(TokenEndpoint {
            port,
            ca,
            shared,
            acceptor: Some(acceptor),
        })
    }
}

/// A running endpoint. Dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct TokenEndpoint {
    port: u16,
    ca: TestCa,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TokenEndpoint {
    /// A builder with the defaults: client `test-client` (public), no
    /// refresh token accepted, `access-token-1` for 3600 seconds, no scope,
    /// no device flow, no authorization code grant, no fault.
    pub fn builder() -> TokenEndpointBuilder {
        TokenEndpointBuilder {
            config: Config {
                client_id: "test-client".into(),
                client_secret: None,
                refresh_tokens: Vec::new(),
                access_tokens: Vec::new(),
                rotate: None,
                scope: None,
                device: None,
                slow_down_once: false,
                deny_device: false,
                interval: 1,
                device_expires_in: 600,
                authorization_code: false,
                deny_authorization: false,
                wrong_state: false,
                fault: EndpointFault::None,
            },
            ca: None,
        }
    }

    /// The token endpoint: `https://localhost:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("https://localhost:{}/token", self.port)
    }

    /// The device authorization endpoint: `https://localhost:PORT/device`.
    pub fn device_url(&self) -> String {
        format!("https://localhost:{}/device", self.port)
    }

    /// The authorization endpoint: `https://localhost:PORT/authorize`
    /// (served after [`TokenEndpointBuilder::authorization_code`]).
    pub fn authorize_url(&self) -> String {
        format!("https://localhost:{}/authorize", self.port)
    }

    /// The listening port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the endpoint's certificate (valid for
    /// `localhost`, `127.0.0.1` and `::1`), in PEM: what a client must trust.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Every request received so far, in order, refused ones included.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.shared.requests).clone()
    }

    /// From now on, `refresh_token` gets `invalid_grant`.
    pub fn revoke(&self, refresh_token: &str) {
        lock(&self.shared.grants)
            .revoked
            .insert(refresh_token.to_owned());
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor from accept(); if that fails, it is left to
        // the next client rather than waited for.
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let woken = TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take()
            && woken
        {
            let _ = acceptor.join();
        }
    }
}

/// What the connection threads share with the [`TokenEndpoint`] handle.
#[derive(Debug)]
struct Shared {
    config: Config,
    port: u16,
    stop: AtomicBool,
    requests: Mutex<Vec<TokenRequest>>,
    grants: Mutex<Grants>,
    /// The open connections, to shut down when the endpoint stops.
    live: Mutex<Vec<(u64, TcpStream)>>,
}

/// The tokens, device codes and authorization codes, as grants change
/// them.
#[derive(Debug, Default)]
struct Grants {
    accepted: Vec<String>,
    revoked: HashSet<String>,
    access: VecDeque<(String, Option<u64>)>,
    devices: HashMap<String, Device>,
    handed_out: u64,
    codes: HashMap<String, Code>,
    codes_issued: u64,
}

impl Grants {
    fn next_access(&mut self) -> (String, Option<u64>) {
        if self.access.len() > 1 {
            if let Some(next) = self.access.pop_front() {
                return next;
            }
        }
        self.access
            .front()
            .cloned()
            .unwrap_or_else(|| ("access-token-1".into(), Some(3600)))
    }

    fn accept(&mut self, token: &str) {
        if !self.accepted.iter().any(|known| known == token) {
            self.accepted.push(token.to_owned());
        }
    }
}

/// A device code handed out.
#[derive(Debug)]
struct Device {
    handed_out: Instant,
    polls: u32,
    exchanged: bool,
}

/// An authorization code issued, with what its exchange must match.
#[derive(Debug)]
struct Code {
    redirect_uri: String,
    challenge: String,
    scope: Option<String>,
    exchanged: bool,
}

fn accept(listener: &TcpListener, tls: &Arc<ServerConfig>, shared: &Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut number = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        number += 1;
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.live).push((number, clone));
        }
        workers.retain(|worker| !worker.is_finished());
        let (tls, shared) = (tls.clone(), shared.clone());
        workers.push(std::thread::spawn(move || {
            let _ = serve(stream, tls, &shared);
            lock(&shared.live).retain(|(id, _)| *id != number);
        }));
    }
    for (_, stream) in lock(&shared.live).drain(..) {
        let _ = stream.shutdown(Shutdown::Both);
    }
    for worker in workers {
        let _ = worker.join();
    }
}

/// One connection: one request, one response, close.
fn serve(stream: TcpStream, tls: Arc<ServerConfig>, shared: &Shared) -> io::Result<()> {
    // A response is written in pieces; Nagle would hold the last one back.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let connection = ServerConnection::new(tls).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(connection, stream);
    let Some(incoming) = read_request(&mut tls)? else {
        return Ok(());
    };
    let form = if incoming.method == "GET" && route(&incoming.target) == "/authorize" {
        decode_query(&incoming.target)
    } else {
        decode_body(&incoming)
    };
    lock(&shared.requests).push(TokenRequest {
        method: incoming.method.clone(),
        path: incoming.target.clone(),
        form: form.clone().unwrap_or_default(),
        authorization: incoming.header("authorization").map(str::to_owned),
        content_type: incoming.header("content-type").map(str::to_owned),
    });
    let response = match incoming.refusal.clone() {
        Some(refusal) => refusal,
        None => handle(shared, &incoming, form),
    };
    match shared.config.fault {
        EndpointFault::None => tls.write_all(&response.encode())?,
        EndpointFault::Chunked => write_chunked(&mut tls, &response)?,
        EndpointFault::Garbage => {
            let body = b"<html>not JSON at all{\"a\"".to_vec();
            tls.write_all(&Response::new(200, "OK", "application/json", body).encode())?;
        }
        EndpointFault::ServerError => {
            let body = b"<html><body><h1>500 Internal Server Error</h1></body></html>\n".to_vec();
            let response = Response::new(500, "Internal Server Error", "text/html", body);
            tls.write_all(&response.encode())?;
        }
        EndpointFault::EndlessHeaders => return endless_headers(&mut tls, shared),
        EndpointFault::Stall => return stall(&mut tls.sock, shared),
    }
    tls.flush()?;
    close(tls);
    Ok(())
}

/// Says close_notify, then reads what the client still sends until it
/// hangs up, so unread request bytes do not turn the close into a reset
/// that could destroy the response (RFC 9112 section 9.6).
fn close(mut tls: StreamOwned<ServerConnection, TcpStream>) {
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Write);
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_BODY * 4 {
        match tls.sock.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn endless_headers(
    tls: &mut StreamOwned<ServerConnection, TcpStream>,
    shared: &Shared,
) -> io::Result<()> {
    tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")?;
    let mut sent = 0;
    let mut line = 0u64;
    while sent < ENDLESS_LIMIT && !shared.stop.load(Ordering::SeqCst) {
        line += 1;
        let header = format!("X-Filler-{line}: {}\r\n", "a".repeat(200));
        tls.write_all(header.as_bytes())?;
        tls.flush()?;
        sent += header.len();
    }
    Ok(())
}

/// Holds the connection, reading and ignoring, until the client hangs up
/// or the endpoint stops (which shuts the socket down).
fn stall(socket: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    crate::drain_until_stopped(socket, &shared.stop);
    Ok(())
}

/// The response body in chunks of growing size, each written and flushed
/// on its own so that they travel in separate TLS records.
fn write_chunked(
    tls: &mut StreamOwned<ServerConnection, TcpStream>,
    response: &Response,
) -> io::Result<()> {
    tls.write_all(&response.head(None))?;
    tls.flush()?;
    let mut rest = response.body.as_slice();
    let mut size = 1;
    let mut first = true;
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        let extension = if first { ";note=\"ignore me\"" } else { "" };
        first = false;
        let mut piece = format!("{:X}{extension}\r\n", chunk.len()).into_bytes();
        piece.extend_from_slice(chunk);
        piece.extend_from_slice(b"\r\n");
        tls.write_all(&piece)?;
        tls.flush()?;
        rest = after;
        size = (size * 3).min(40);
    }
    tls.write_all(b"0\r\n\r\n")
}

/// A response before framing.
#[derive(Clone, Debug)]
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, reason: &'static str, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            reason,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// A JSON response; token responses must not be cached (RFC 6749
    /// section 5.1), and error responses are kept alike.
    fn json(status: u16, reason: &'static str, body: String) -> Self {
        let mut response = Self::new(status, reason, "application/json", body.into_bytes());
        response
            .headers
            .push(("Cache-Control", "no-store".to_owned()));
        response.headers.push(("Pragma", "no-cache".to_owned()));
        response
    }

    /// A plain-text refusal at the HTTP level.
    fn text(status: u16, reason: &'static str, text: &str) -> Self {
        Self::new(
            status,
            reason,
            "text/plain; charset=utf-8",
            format!("{text}\n").into_bytes(),
        )
    }

    /// An OAuth error (RFC 6749 section 5.2).
    fn oauth_error(status: u16, error: &str, description: Option<&str>) -> Self {
        let mut fields = vec![("error", Json::Str(error))];
        if let Some(description) = description {
            fields.push(("error_description", Json::Str(description)));
        }
        let reason = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            _ => "Error",
        };
        Self::json(status, reason, json_object(&fields))
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The status line and headers; with `Some(length)` framed by
    /// Content-Length, else chunked.
    fn head(&self, length: Option<usize>) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n",
            self.status, self.reason, self.content_type
        );
        match length {
            Some(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
            None => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        head.into_bytes()
    }

    fn encode(&self) -> Vec<u8> {
        let mut bytes = self.head(Some(self.body.len()));
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A JSON value in a response.
enum Json<'a> {
    Str(&'a str),
    Num(u64),
}

fn json_object(fields: &[(&str, Json<'_>)]) -> String {
    let mut out = String::from("{");
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        json_string(&mut out, name);
        out.push(':');
        match value {
            Json::Str(text) => json_string(&mut out, text),
            Json::Num(number) => out.push_str(&number.to_string()),
        }
    }
    out.push('}');
    out
}

fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A request as read off the wire.
#[derive(Debug, Default)]
struct Incoming {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Refused before it reaches the endpoint's logic, with this answer.
    refusal: Option<Response>,
}

impl Incoming {
    fn refused(mut self, response: Response) -> Self {
        self.refusal = Some(response);
        self
    }

    /// The first header of this name.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .count()
    }
}

/// Reads one request (RFC 9112). `None`: the client closed before sending
/// anything. A request the endpoint will not take comes back with its
/// refusal; an I/O error or a close in mid-head is an error.
fn read_request(stream: &mut impl Read) -> io::Result<Option<Incoming>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let (start, end) = loop {
        if let Some(found) = find_head(&buffer) {
            break found;
        }
        if buffer.len() > MAX_HEAD {
            return Ok(Some(Incoming::default().refused(Response::text(
                431,
                "Request Header Fields Too Large",
                "request head over 16 KiB",
            ))));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            if buffer.iter().all(|&b| b == b'\r' || b == b'\n') {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let mut incoming = match parse_head(&buffer[start..end]) {
        Ok(incoming) => incoming,
        Err(incoming) => return Ok(Some(*incoming)),
    };
    if end - start > MAX_HEAD {
        return Ok(Some(incoming.refused(Response::text(
            431,
            "Request Header Fields Too Large",
            "request head over 16 KiB",
        ))));
    }
    let length = match body_length(&incoming) {
        Ok(length) => length,
        Err(refusal) => return Ok(Some(incoming.refused(refusal))),
    };
    if length > MAX_BODY {
        return Ok(Some(incoming.refused(Response::text(
            413,
            "Content Too Large",
            "request body over 64 KiB",
        ))));
    }
    let mut body = buffer.split_off(end);
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(Some(incoming.refused(Response::text(
                400,
                "Bad Request",
                "request body shorter than its Content-Length",
            ))));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    // Anything past the body would be a pipelined request: not read here.
    body.truncate(length);
    incoming.body = body;
    Ok(Some(incoming))
}

/// Where the head is in `buffer`: after any empty lines before the
/// request line (RFC 9112 section 2.2), up to and including the empty line
/// that ends it. Lines may end in a bare LF.
fn find_head(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut start = None;
    let mut line_start = 0;
    for (index, &byte) in buffer.iter().enumerate() {
        if byte != b'\n' {
            continue;
        }
        let line = &buffer[line_start..index];
        let empty = line.is_empty() || line == b"\r";
        match (empty, start) {
            (true, Some(start)) => return Some((start, index + 1)),
            (false, None) => start = Some(line_start),
            _ => {}
        }
        line_start = index + 1;
    }
    None
}

/// Parses the request line and header fields; a refusal keeps what was
/// understood of the request line.
fn parse_head(head: &[u8]) -> Result<Incoming, Box<Incoming>> {
    let bad = |incoming: Incoming, why: &str| {
        Box::new(incoming.refused(Response::text(400, "Bad Request", why)))
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return Err(bad(Incoming::default(), "request head is not UTF-8"));
    };
    let mut lines = head
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .take_while(|line| !line.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(bad(Incoming::default(), "malformed request line"));
    };
    let mut incoming = Incoming {
        method: method.to_owned(),
        target: target.to_owned(),
        ..Incoming::default()
    };
    if !is_token(method) || target.is_empty() || target.chars().any(char::is_control) {
        return Err(bad(incoming, "malformed request line"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ if version.len() == 8 && version.starts_with("HTTP/") => {
            return Err(Box::new(incoming.refused(Response::text(
                505,
                "HTTP Version Not Supported",
                "only HTTP/1.1 and HTTP/1.0",
            ))));
        }
        _ => return Err(bad(incoming, "malformed HTTP version")),
    };
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding (RFC 9112 section 5.2).
            return Err(bad(incoming, "obsolete line folding"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(incoming, "header line without a colon"));
        };
        // No whitespace between the name and the colon (section 5.1).
        if !is_token(name) {
            return Err(bad(incoming, "malformed header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(bad(incoming, "control character in a header value"));
        }
        incoming.headers.push((name.to_owned(), value.to_owned()));
    }
    // Exactly one Host in HTTP/1.1 (RFC 9112 section 3.2).
    if http11 && incoming.header_count("host") != 1 {
        return Err(bad(incoming, "an HTTP/1.1 request needs exactly one Host"));
    }
    for unique in ["authorization", "content-type"] {
        if incoming.header_count(unique) > 1 {
            return Err(bad(incoming, "repeated header"));
        }
    }
    Ok(incoming)
}

/// A token (RFC 9110 section 5.6.2).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The body's length (RFC 9112 section 6): Content-Length, or none at all.
/// A transfer coding is refused: this endpoint wants the length up front.
fn body_length(incoming: &Incoming) -> Result<usize, Response> {
    let lengths: Vec<&str> = incoming
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.as_str())
        .collect();
    if incoming.header("transfer-encoding").is_some() {
        if !lengths.is_empty() {
            return Err(Response::text(
                400,
                "Bad Request",
                "both Transfer-Encoding and Content-Length",
            ));
        }
        return Err(Response::text(
            411,
            "Length Required",
            "send the body with a Content-Length, not a transfer coding",
        ));
    }
    let Some(first) = lengths.first() else {
        return Ok(0);
    };
    let invalid = || Response::text(400, "Bad Request", "invalid Content-Length");
    if lengths.iter().any(|length| length != first)
        || first.is_empty()
        || !first.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    // Too long to parse is too long to take.
    Ok(first.parse().unwrap_or(usize::MAX))
}

/// The body's fields, if it is a form; `Err` says why it is not one.
fn decode_body(incoming: &Incoming) -> Result<Vec<(String, String)>, &'static str> {
    let media_type = incoming
        .header("content-type")
        .map(|value| value.split(';').next().unwrap_or_default().trim());
    match media_type {
        None if incoming.body.is_empty() => Ok(Vec::new()),
        Some(media) if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") => {
            decode_form(&incoming.body)
        }
        _ => Err("the body must be application/x-www-form-urlencoded"),
    }
}

/// Decodes `application/x-www-form-urlencoded` (the WHATWG URL standard,
/// section 5.1): `&`-separated pairs split at the first `=`, `+` as a
/// space, `%XX` as a byte, the result UTF-8. Stricter than the standard:
/// a `%` not followed by two hex digits is malformed, not literal.
fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Ok((form_unescape(name)?, form_unescape(value)?))
        })
        .collect()
}

fn form_unescape(bytes: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or("malformed percent-encoding in the body")?;
                out.push(hex);
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out).map_err(|_| "the body's fields are not UTF-8")
}

/// The query's fields: the authorization endpoint takes its parameters
/// form-encoded in the query (RFC 6749 section 3.1).
fn decode_query(target: &str) -> Result<Vec<(String, String)>, &'static str> {
    let before_fragment = target.split('#').next().unwrap_or_default();
    let query = before_fragment
        .split_once('?')
        .map_or("", |(_, query)| query);
    decode_form(query.as_bytes())
}

/// Percent-encodes all but the unreserved characters (RFC 3986 section 2.3).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The request's path: the target without any query, and without scheme
/// and authority if it came in absolute form.
fn route(target: &str) -> &str {
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => target,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

/// A form field; empty values count as absent (RFC 6749 section 3.2).
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

fn handle(
    shared: &Shared,
    incoming: &Incoming,
    form: Result<Vec<(String, String)>, &'static str>,
) -> Response {
    let path = route(&incoming.target);
    if path == "/authorize" && shared.config.authorization_code {
        if incoming.method != "GET" {
            return Response::text(405, "Method Not Allowed", "GET only")
                .with_header("Allow", "GET");
        }
        return authorize(shared, form);
    }
    let device = path == "/device";
    if !(path == "/token" || device && shared.config.device.is_some()) {
        return Response::text(404, "Not Found", "no such endpoint");
    }
    if incoming.method != "POST" {
        return Response::text(405, "Method Not Allowed", "POST only").with_header("Allow", "POST");
    }
    let form = match form {
        Ok(form) => form,
        Err(why) => return Response::oauth_error(400, "invalid_request", Some(why)),
    };
    // Parameters must not repeat (RFC 6749 section 3.1 and 3.2).
    for (index, (name, _)) in form.iter().enumerate() {
        if form[..index].iter().any(|(earlier, _)| earlier == name) {
            return Response::oauth_error(
                400,
                "invalid_request",
                Some("a parameter is included more than once"),
            );
        }
    }
    if let Err(refusal) = authenticate(&shared.config, incoming.header("authorization"), &form) {
        return refusal;
    }
    if device {
        return device_authorization(shared, &form);
    }
    match field(&form, "grant_type") {
        None => Response::oauth_error(400, "invalid_request", Some("missing grant_type")),
        Some("refresh_token") => refresh_grant(shared, &form),
        Some(DEVICE_GRANT) => device_grant(shared, &form),
        Some("authorization_code") if shared.config.authorization_code => code_grant(shared, &form),
        Some(_) => Response::oauth_error(400, "unsupported_grant_type", None),
    }
}

/// Client authentication (RFC 6749 section 2.3.1): HTTP Basic with the
/// form-urlencoded id and secret, or `client_id` (and `client_secret`) in
/// the body, never both.
fn authenticate(
    config: &Config,
    authorization: Option<&str>,
    form: &[(String, String)],
) -> Result<(), Response> {
    let refuse = |basic: bool| {
        let response = Response::oauth_error(401, "invalid_client", None);
        Err(if basic {
            response.with_header("WWW-Authenticate", "Basic realm=\"tls-mailer-testkit\"")
        } else {
            response
        })
    };
    let secret = config.client_secret.as_deref().unwrap_or_default();
    if let Some(authorization) = authorization {
        let Some((scheme, credentials)) = authorization.split_once(' ') else {
            return refuse(true);
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return refuse(true);
        }
        let decoded = BASE64
            .decode(credentials.trim_start_matches(' '))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some((id, given)) = decoded.as_deref().and_then(|text| text.split_once(':')) else {
            return refuse(true);
        };
        let (Ok(id), Ok(given)) = (
            form_unescape(id.as_bytes()),
            form_unescape(given.as_bytes()),
        ) else {
            return refuse(true);
        };
        if id != config.client_id || given != secret {
            return refuse(true);
        }
        if field(form, "client_secret").is_some() {
            return Err(Response::oauth_error(
                400,
                "invalid_request",
                Some("more than one client authentication method"),
            ));
        }
        // A client_id in the body as well must name the same client.
        return match field(form, "client_id") {
            Some(other) if other != id => refuse(true),
            _ => Ok(()),
        };
    }
    if field(form, "client_id") != Some(config.client_id.as_str())
        || field(form, "client_secret").unwrap_or_default() != secret
    {
        return refuse(false);
    }
    Ok(())
}

/// Whether every scope in `asked` is in `granted` (RFC 6749 section 3.3).
fn scope_within(asked: &str, granted: &str) -> bool {
    let granted: HashSet<&str> = granted.split(' ').filter(|s| !s.is_empty()).collect();
    asked
        .split(' ')
        .filter(|s| !s.is_empty())
        .all(|scope| granted.contains(scope))
}

/// The scope asked for, checked against the configured one: the scope for
/// the token response, or the refusal.
fn check_scope<'a>(
    config: &'a Config,
    form: &'a [(String, String)],
) -> Result<Option<&'a str>, Response> {
    match (field(form, "scope"), config.scope.as_deref()) {
        (Some(asked), Some(granted)) if !scope_within(asked, granted) => {
            Err(Response::oauth_error(400, "invalid_scope", None))
        }
        (asked, Some(granted)) => Ok(Some(asked.unwrap_or(granted))),
        (_, None) => Ok(None),
    }
}

/// A successful token response (RFC 6749 section 5.1).
fn token_response(
    access: &(String, Option<u64>),
    refresh_token: Option<&str>,
    scope: Option<&str>,
) -> Response {
    let mut fields = vec![
        ("access_token", Json::Str(&access.0)),
        ("token_type", Json::Str("Bearer")),
    ];
    if let Some(expires_in) = access.1 {
        fields.push(("expires_in", Json::Num(expires_in)));
    }
    if let Some(refresh_token) = refresh_token {
        fields.push(("refresh_token", Json::Str(refresh_token)));
    }
    if let Some(scope) = scope {
        fields.push(("scope", Json::Str(scope)));
    }
    Response::json(200, "OK", json_object(&fields))
}

/// The refresh-token grant (RFC 6749 section 6).
fn refresh_grant(shared: &Shared, form: &[(String, String)]) -> Response {
    let Some(token) = field(form, "refresh_token") else {
        return Response::oauth_error(400, "invalid_request", Some("missing refresh_token"));
    };
    let scope = match check_scope(&shared.config, form) {
        Ok(scope) => scope,
        Err(refusal) => return refusal,
    };
    let mut grants = lock(&shared.grants);
    if grants.revoked.contains(token) || !grants.accepted.iter().any(|known| known == token) {
        return Response::oauth_error(
            400,
            "invalid_grant",
            Some("Token has been expired or revoked."),
        );
    }
    let access = grants.next_access();
    let rotated = shared.config.rotate.as_deref();
    if let Some(new) = rotated {
        grants.accept(new);
    }
    token_response(&access, rotated, scope)
}

/// The device authorization request (RFC 8628 section 3.1 and 3.2).
fn device_authorization(shared: &Shared, form: &[(String, String)]) -> Response {
    let Some((user_code, _)) = &shared.config.device else {
        return Response::text(404, "Not Found", "no such endpoint");
    };
    if let Err(refusal) = check_scope(&shared.config, form) {
        return refusal;
    }
    let device_code = {
        let mut grants = lock(&shared.grants);
        grants.handed_out += 1;
        let device_code = format!("dev-{}", grants.handed_out);
        grants.devices.insert(
            device_code.clone(),
            Device {
                handed_out: Instant::now(),
                polls: 0,
                exchanged: false,
            },
        );
        device_code
    };
    let verification_uri = format!("https://localhost:{}/activate", shared.port);
    let complete = format!("{verification_uri}?user_code={}", percent_encode(user_code));
    Response::json(
        200,
        "OK",
        json_object(&[
            ("device_code", Json::Str(&device_code)),
            ("user_code", Json::Str(user_code)),
            ("verification_uri", Json::Str(&verification_uri)),
            ("verification_uri_complete", Json::Str(&complete)),
            ("expires_in", Json::Num(shared.config.device_expires_in)),
            ("interval", Json::Num(shared.config.interval)),
        ]),
    )
}

/// A device access token request (RFC 8628 section 3.4 and 3.5).
fn device_grant(shared: &Shared, form: &[(String, String)]) -> Response {
    let config = &shared.config;
    let Some(code) = field(form, "device_code") else {
        return Response::oauth_error(400, "invalid_request", Some("missing device_code"));
    };
    let error = |code: &str| Response::oauth_error(400, code, None);
    let mut grants = lock(&shared.grants);
    let Some(device) = grants.devices.get_mut(code) else {
        return error("invalid_grant");
    };
    if device.exchanged {
        return error("invalid_grant");
    }
    if device.handed_out.elapsed() >= Duration::from_secs(config.device_expires_in) {
        return error("expired_token");
    }
    let mut poll = device.polls;
    device.polls = device.polls.saturating_add(1);
    if config.slow_down_once {
        if poll == 0 {
            return error("slow_down");
        }
        poll -= 1;
    }
    let pending = config.device.as_ref().map_or(0, |(_, pending)| *pending);
    if poll < pending {
        return error("authorization_pending");
    }
    if config.deny_device {
        return error("access_denied");
    }
    device.exchanged = true;
    let refresh_token = config
        .refresh_tokens
        .first()
        .cloned()
        .unwrap_or_else(|| "refresh-from-device".to_owned());
    grants.accept(&refresh_token);
    let access = grants.next_access();
    token_response(&access, Some(&refresh_token), config.scope.as_deref())
}

/// Whether `uri` is a loopback redirect URI for a native app (RFC 8252
/// section 7.3): `http`, the host `127.0.0.1`, `[::1]` or `localhost`, an
/// explicit port, a path, and no fragment (RFC 6749 section 3.1.2). Only
/// visible ASCII, so that it can go into a `Location` header as it is.
fn loopback_redirect(uri: &str) -> bool {
    if !uri.bytes().all(|b| b.is_ascii_graphic()) || uri.contains('#') {
        return false;
    }
    let Some(rest) = uri
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .and_then(|_| uri.get(7..))
    else {
        return false;
    };
    let Some((authority, _path)) = rest.find('/').map(|at| rest.split_at(at)) else {
        return false;
    };
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    let host_ok = host == "127.0.0.1" || host == "[::1]" || host.eq_ignore_ascii_case("localhost");
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port != 0);
    host_ok && port_ok
}

/// A PKCE code verifier or code challenge: 43 to 128 unreserved
/// characters (RFC 7636 sections 4.1 and 4.2).
fn pkce_shaped(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A `302 Found` to `uri` with `params` and then `state` (if any) added
/// to its query.
fn redirect(uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut location = uri.to_owned();
    if !location.ends_with(['?', '&']) {
        location.push(if uri.contains('?') { '&' } else { '?' });
    }
    let state = state.map(|state| ("state", state));
    for (index, (name, value)) in params.iter().chain(&state).enumerate() {
        if index > 0 {
            location.push('&');
        }
        location.push_str(&format!("{name}={}", percent_encode(value)));
    }
    Response::new(302, "Found", "text/plain; charset=utf-8", Vec::new())
        .with_header("Location", &location)
}

/// The value of a parameter given exactly once, and not empty.
fn once<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut values = query.iter().filter(|(key, _)| key == name);
    match (values.next(), values.next()) {
        (Some((_, value)), None) if !value.is_empty() => Some(value),
        _ => None,
    }
}

/// The authorization request (RFC 6749 section 4.1.1, RFC 7636 section
/// 4.3), approved at once when valid: there is no user to ask.
fn authorize(shared: &Shared, query: Result<Vec<(String, String)>, &'static str>) -> Response {
    let config = &shared.config;
    let bad = |why: &str| Response::text(400, "Bad Request", why);
    let Ok(query) = query else {
        return bad("the query does not decode");
    };
    // Until the client and its redirect URI check out, an error is told
    // to the user, never redirected (RFC 6749 section 4.1.2.1).
    if once(&query, "client_id") != Some(config.client_id.as_str()) {
        return bad("unknown or missing client_id");
    }
    let Some(redirect_uri) = once(&query, "redirect_uri").filter(|uri| loopback_redirect(uri))
    else {
        return bad("redirect_uri must be a loopback http URI with a port (RFC 8252 section 7.3)");
    };
    let sent_state = field(&query, "state");
    let wrong_state = format!("not-{}", sent_state.unwrap_or_default());
    let state = if config.wrong_state {
        Some(wrong_state.as_str())
    } else {
        sent_state
    };
    let answer = |params: &[(&str, &str)]| redirect(redirect_uri, params, state);
    let invalid = |why: &str| {
        redirect(
            redirect_uri,
            &[("error", "invalid_request"), ("error_description", why)],
            state,
        )
    };
    for (index, (name, _)) in query.iter().enumerate() {
        if query[..index].iter().any(|(earlier, _)| earlier == name) {
            return invalid("a parameter is included more than once");
        }
    }
    match field(&query, "response_type") {
        Some("code") => {}
        None => return invalid("missing response_type"),
        Some(_) => return answer(&[("error", "unsupported_response_type")]),
    }
    // Without a method the challenge would be `plain` (RFC 7636 section
    // 4.3), which this endpoint does not take.
    if field(&query, "code_challenge_method") != Some("S256") {
        return invalid("code_challenge_method must be S256");
    }
    let Some(challenge) = field(&query, "code_challenge").filter(|c| pkce_shaped(c)) else {
        return invalid("missing or malformed code_challenge");
    };
    let Ok(scope) = check_scope(config, &query) else {
        return answer(&[("error", "invalid_scope")]);
    };
    if config.deny_authorization {
        return answer(&[("error", "access_denied")]);
    }
    let code = {
        let mut grants = lock(&shared.grants);
        grants.codes_issued += 1;
        let code = format!("code-{}", grants.codes_issued);
        grants.codes.insert(
            code.clone(),
            Code {
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                scope: scope.map(str::to_owned),
                exchanged: false,
            },
        );
        code
    };
    answer(&[("code", &code)])
}

/// The authorization code's access token request (RFC 6749 section
/// 4.1.3), with the PKCE check (RFC 7636 section 4.6). A refused exchange
/// leaves the code unused.
fn code_grant(shared: &Shared, form: &[(String, String)]) -> Response {
    let config = &shared.config;
    let invalid = |why| Response::oauth_error(400, "invalid_request", Some(why));
    let Some(code) = field(form, "code") else {
        return invalid("missing code");
    };
    let Some(redirect_uri) = field(form, "redirect_uri") else {
        return invalid("missing redirect_uri");
    };
    let Some(verifier) = field(form, "code_verifier") else {
        return invalid("missing code_verifier");
    };
    if !pkce_shaped(verifier) {
        return invalid("code_verifier must be 43 to 128 unreserved characters");
    }
    let challenge = BASE64URL.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    let refuse = |why| Response::oauth_error(400, "invalid_grant", Some(why));
    let mut grants = lock(&shared.grants);
    let Some(issued) = grants.codes.get_mut(code) else {
        return refuse("unknown authorization code");
    };
    if issued.exchanged {
        return refuse("authorization code already used");
    }
    if issued.redirect_uri != redirect_uri {
        return refuse("redirect_uri differs from the authorization request's");
    }
    if issued.challenge != challenge {
        return refuse("code_verifier does not match the code_challenge");
    }
    issued.exchanged = true;
    let scope = issued.scope.clone();
    let refresh_token = config
        .refresh_tokens
        .first()
        .cloned()
        .unwrap_or_else(|| "refresh-from-code".to_owned());
    grants.accept(&refresh_token);
    let access = grants.next_access();
    token_response(&access, Some(&refresh_token), scope.as_deref())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    /// A response as the test client saw it.
    struct Reply {
        status: u16,
        head: String,
        /// The body, de-chunked when it came chunked.
        body: String,
        /// The chunk sizes, when it came chunked.
        chunks: Vec<usize>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
        }
    }

    /// A TLS client connected to `endpoint` (trusting only `ca_pem()`,
    /// checking the name `localhost`) that has sent `raw`.
    fn connect(endpoint: &TokenEndpoint, raw: &[u8]) -> StreamOwned<ClientConnection, TcpStream> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(endpoint.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let connection = ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, endpoint.port())).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = StreamOwned::new(connection, tcp);
        tls.write_all(raw).unwrap();
        tls
    }

    /// Sends `raw` and reads until the endpoint closes.
    fn exchange(endpoint: &TokenEndpoint, raw: &[u8]) -> Vec<u8> {
        let mut tls = connect(endpoint, raw);
        let mut out = Vec::new();
        tls.read_to_end(&mut out).unwrap();
        out
    }

    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        let mut reply = Reply {
            status,
            head: head.to_owned(),
            body: String::new(),
            chunks: Vec::new(),
        };
        if reply.header("transfer-encoding") == Some("chunked") {
            let mut rest = body;
            loop {
                let (size_line, after) = rest.split_once("\r\n").unwrap();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap(), 16).unwrap();
                if size == 0 {
                    assert_eq!(after, "\r\n", "empty trailer section");
                    break;
                }
                reply.body.push_str(&after[..size]);
                assert_eq!(&after[size..size + 2], "\r\n");
                reply.chunks.push(size);
                rest = &after[size + 2..];
            }
        } else {
            let length: usize = reply.header("content-length").unwrap().parse().unwrap();
            assert_eq!(body.len(), length);
            reply.body = body.to_owned();
        }
        reply
    }

    fn post(endpoint: &TokenEndpoint, path: &str, extra: &str, body: &str) -> Reply {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost:{}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n{extra}\r\n{body}",
            endpoint.port(),
            body.len()
        );
        parse(&exchange(endpoint, raw.as_bytes()))
    }

    fn token(endpoint: &TokenEndpoint, body: &str) -> Reply {
        post(endpoint, "/token", "", body)
    }

    const REFRESH: &str = "grant_type=refresh_token&refresh_token=r-1&client_id=test-client";

    #[test]
    fn refresh_grant_answers_json_and_revoke_turns_it_into_invalid_grant() {
        let endpoint = TokenEndpoint::builder()
            .refresh_token("r-1")
            .access_token("a-1", Some(60))
            .access_token("a-2", None)
            .scope("mail")
            .start()
            .unwrap();
        let reply = token(&endpoint, REFRESH);
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            r#"{"access_token":"a-1","token_type":"Bearer","expires_in":60,"scope":"mail"}"#
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        // The last queued token is issued again and again, without expires_in.
        for _ in 0..2 {
            let reply = token(&endpoint, REFRESH);
            assert_eq!(
                reply.body,
                r#"{"access_token":"a-2","token_type":"Bearer","scope":"mail"}"#
            );
        }
        endpoint.revoke("r-1");
        let reply = token(&endpoint, REFRESH);
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.body,
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#
        );
        let unknown = token(&endpoint, &REFRESH.replace("r-1", "r-2"));
        assert_eq!(unknown.status, 400);
        assert!(unknown.body.contains("invalid_grant"));
        let requests = endpoint.requests();
        assert_eq!(requests.len(), 5);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/token");
        assert_eq!(requests[0].field("refresh_token"), Some("r-1"));
        assert_eq!(requests[4].field("refresh_token"), Some("r-2"));
        assert_eq!(
            requests[0].content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn rotation_hands_out_a_new_refresh_token_that_is_accepted() {
        let endpoint = TokenEndpoint::builder()
            .refresh_token("r-1")
            .rotate_refresh_token("r-new")
            .start()
            .unwrap();
        let reply = token(&endpoint, REFRESH);
        assert_eq!(
            reply.body,
            r#"{"access_token":"access-token-1","token_type":"Bearer","expires_in":3600,"refresh_token":"r-new"}"#
        );
        assert_eq!(
            token(&endpoint, &REFRESH.replace("r-1", "r-new")).status,
            200
        );
        assert_eq!(token(&endpoint, REFRESH).status, 200);
    }

    #[test]
    fn basic_and_form_client_authentication() {
        let endpoint = TokenEndpoint::builder()
            .client("my client", Some("s3cr:t/"))
            .refresh_token("r-1")
            .start()
            .unwrap();
        let grant = "grant_type=refresh_token&refresh_token=r-1";
        // Basic over the form-urlencoded id and secret (RFC 6749 2.3.1).
        let basic = format!(
            "Authorization: Basic {}\r\n",
            BASE64.encode("my+client:s3cr%3At%2F")
        );
        let reply = post(&endpoint, "/token", &basic, grant);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let form = format!("{grant}&client_id=my+client&client_secret=s3cr%3At%2F");
        assert_eq!(token(&endpoint, &form).status, 200);

        let wrong = format!(
            "Authorization: Basic {}\r\n",
            BASE64.encode("my+client:nope")
        );
        let reply = post(&endpoint, "/token", &wrong, grant);
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, r#"{"error":"invalid_client"}"#);
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .starts_with("Basic")
        );

        let reply = token(
            &endpoint,
            &format!("{grant}&client_id=my+client&client_secret=no"),
        );
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, r#"{"error":"invalid_client"}"#);
        assert_eq!(reply.header("www-authenticate"), None);
        assert_eq!(token(&endpoint, grant).status, 401);

        // Two methods at once are refused.
        let both = post(&endpoint, "/token", &basic, &form);
        assert_eq!(both.status, 400);
        assert!(both.body.contains("invalid_request"));

        let requests = endpoint.requests();
        assert!(
            requests[0]
                .authorization
                .as_deref()
                .unwrap()
                .starts_with("Basic ")
        );
        assert_eq!(requests[1].authorization, None);
        assert_eq!(requests[1].field("client_id"), Some("my client"));
        assert_eq!(requests[1].field("client_secret"), Some("s3cr:t/"));
    }

    #[test]
    fn device_flow_is_pending_then_issues_a_token_once() {
        let endpoint = TokenEndpoint::builder()
            .device_flow("WDJB-MJHT", 2)
            .interval(0)
            .start()
            .unwrap();
        let port = endpoint.port();
        let reply = post(&endpoint, "/device", "", "client_id=test-client&scope=mail");
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            format!(
                r#"{{"device_code":"dev-1","user_code":"WDJB-MJHT","verification_uri":"https://localhost:{port}/activate","verification_uri_complete":"https://localhost:{port}/activate?user_code=WDJB-MJHT","expires_in":600,"interval":0}}"#
            )
        );
        let poll = format!(
            "grant_type={}&device_code=dev-1&client_id=test-client",
            percent_encode(DEVICE_GRANT)
        );
        for _ in 0..2 {
            let reply = token(&endpoint, &poll);
            assert_eq!(reply.status, 400);
            assert_eq!(reply.body, r#"{"error":"authorization_pending"}"#);
        }
        let reply = token(&endpoint, &poll);
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            r#"{"access_token":"access-token-1","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-from-device"}"#
        );
        assert_eq!(token(&endpoint, &poll).body, r#"{"error":"invalid_grant"}"#);
        let unknown = poll.replace("dev-1", "dev-9");
        assert_eq!(
            token(&endpoint, &unknown).body,
            r#"{"error":"invalid_grant"}"#
        );
        // The device's refresh token is good for a refresh grant.
        let refresh = REFRESH.replace("r-1", "refresh-from-device");
        assert_eq!(token(&endpoint, &refresh).status, 200);
        assert_eq!(
            endpoint.requests()[1].field("grant_type"),
            Some(DEVICE_GRANT)
        );
    }

    #[test]
    fn slow_down_comes_first_then_pending_then_denied_or_expired() {
        let endpoint = TokenEndpoint::builder()
            .device_flow("CODE", 1)
            .slow_down_once()
            .deny_device()
            .start()
            .unwrap();
        let reply = post(&endpoint, "/device", "", "client_id=test-client");
        assert!(reply.body.contains(r#""interval":1"#));
        let poll = format!("grant_type={DEVICE_GRANT}&device_code=dev-1&client_id=test-client");
        let errors: Vec<String> = (0..4).map(|_| token(&endpoint, &poll).body).collect();
        assert_eq!(
            errors,
            [
                r#"{"error":"slow_down"}"#,
                r#"{"error":"authorization_pending"}"#,
                r#"{"error":"access_denied"}"#,
                r#"{"error":"access_denied"}"#,
            ]
        );

        let expired = TokenEndpoint::builder()
            .device_flow("CODE", 0)
            .device_expires_in(0)
            .start()
            .unwrap();
        post(&expired, "/device", "", "client_id=test-client");
        assert_eq!(token(&expired, &poll).body, r#"{"error":"expired_token"}"#);
    }

    #[test]
    fn chunked_fault_frames_the_normal_body_in_several_chunks() {
        let endpoint = TokenEndpoint::builder()
            .refresh_token("r-1")
            .fault(EndpointFault::Chunked)
            .start()
            .unwrap();
        let raw = format!(
            "POST /token HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{REFRESH}",
            REFRESH.len()
        );
        let raw = exchange(&endpoint, raw.as_bytes());
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.to_ascii_lowercase().contains("content-length"));
        assert!(text.contains(";note="), "a chunk extension to skip");
        let reply = parse(&raw);
        assert_eq!(reply.status, 200);
        assert!(reply.chunks.len() > 3, "{:?}", reply.chunks);
        assert_eq!(
            reply.body,
            r#"{"access_token":"access-token-1","token_type":"Bearer","expires_in":3600}"#
        );
    }

    #[test]
    fn other_faults() {
        let garbage = TokenEndpoint::builder()
            .fault(EndpointFault::Garbage)
            .start()
            .unwrap();
        let reply = token(&garbage, REFRESH);
        assert_eq!(reply.status, 200);
        assert!(reply.body.starts_with("<html>"));
        let server_error = TokenEndpoint::builder()
            .fault(EndpointFault::ServerError)
            .start()
            .unwrap();
        let reply = token(&server_error, REFRESH);
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("content-type"), Some("text/html"));
    }

    #[test]
    fn http_level_refusals_are_answered_and_recorded() {
        let endpoint = TokenEndpoint::builder()
            .device_flow("C", 0)
            .start()
            .unwrap();
        let send = |raw: &str| parse(&exchange(&endpoint, raw.as_bytes()));
        let chunked = send(
            "POST /token HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na=b\r\n0\r\n\r\n",
        );
        assert_eq!(chunked.status, 411);
        let huge = format!(
            "POST /token HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(send(&huge).status, 431);
        let too_long = format!(
            "POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(send(&too_long).status, 413);
        assert_eq!(send("POST /token HTTP/1.1\r\n\r\n").status, 400, "no Host");
        assert_eq!(send("GET /token HTTP/1.1\r\nHost: x\r\n\r\n").status, 405);
        assert_eq!(send("POST /nope HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
        let missing = send("POST /token HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(missing.status, 401, "no client named");
        let reply = token(&endpoint, "client_id=test-client");
        assert_eq!(reply.status, 400);
        assert!(reply.body.contains("invalid_request"));
        let reply = token(&endpoint, "client_id=test-client&grant_type=password");
        assert_eq!(reply.body, r#"{"error":"unsupported_grant_type"}"#);
        let reply = token(&endpoint, "client_id=test-client&grant_type=%zz");
        assert_eq!(reply.status, 400);
        assert!(reply.body.contains("invalid_request"));
        assert_eq!(endpoint.requests().len(), 10);
        assert_eq!(endpoint.requests()[0].path, "/token");

        let no_device = TokenEndpoint::builder().start().unwrap();
        assert_eq!(
            post(&no_device, "/device", "", "client_id=test-client").status,
            404
        );
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            decode_form(b"a=b+c&&d=%41%e2%82%AC&e&f=").unwrap(),
            [
                ("a".to_owned(), "b c".to_owned()),
                ("d".to_owned(), "A\u{20ac}".to_owned()),
                ("e".to_owned(), String::new()),
                ("f".to_owned(), String::new()),
            ]
        );
        assert!(decode_form(b"a=%4").is_err());
        assert!(decode_form(b"a=%ff").is_err());
        assert_eq!(route("https://localhost:1/token?x=1"), "/token");
    }

    fn get(endpoint: &TokenEndpoint, target: &str) -> Reply {
        let raw = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\n\r\n",
            endpoint.port()
        );
        parse(&exchange(endpoint, raw.as_bytes()))
    }

    /// RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    /// An authorization request's target, redirecting to `redirect_uri`.
    fn authorization(redirect_uri: &str, state: &str) -> String {
        format!(
            "/authorize?response_type=code&client_id=test-client&redirect_uri={}\
             &scope=mail&state={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
            percent_encode(redirect_uri),
            percent_encode(state)
        )
    }

    fn exchange_code(code: &str, redirect_uri: &str, verifier: &str) -> String {
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}\
             &code_verifier={verifier}&client_id=test-client",
            percent_encode(redirect_uri)
        )
    }

    #[test]
    fn authorization_code_with_pkce_is_redirected_then_exchanged_once() {
        let endpoint = TokenEndpoint::builder()
            .authorization_code()
            .scope("mail other")
            .start()
            .unwrap();
        assert_eq!(
            endpoint.authorize_url(),
            format!("https://localhost:{}/authorize", endpoint.port())
        );
        let redirect_uri = "http://127.0.0.1:4711/";
        let target = authorization(redirect_uri, "s t/ate");
        let reply = get(&endpoint, &target);
        assert_eq!(reply.status, 302);
        assert_eq!(
            reply.header("location"),
            Some("http://127.0.0.1:4711/?code=code-1&state=s%20t%2Fate")
        );
        assert_eq!(reply.header("content-length"), Some("0"));
        let request = &endpoint.requests()[0];
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, target);
        assert_eq!(request.field("state"), Some("s t/ate"));
        assert_eq!(request.field("redirect_uri"), Some(redirect_uri));

        // A wrong verifier or another redirect_uri: refused, the code kept.
        let wrong = VERIFIER.replace('d', "e");
        for body in [
            exchange_code("code-1", redirect_uri, &wrong),
            exchange_code("code-1", "http://127.0.0.1:4712/", VERIFIER),
            exchange_code("code-9", redirect_uri, VERIFIER),
        ] {
            let reply = token(&endpoint, &body);
            assert_eq!(reply.status, 400);
            assert!(
                reply.body.contains(r#""error":"invalid_grant""#),
                "{}",
                reply.body
            );
        }
        let short = token(&endpoint, &exchange_code("code-1", redirect_uri, "abc"));
        assert!(short.body.contains(r#""error":"invalid_request""#));
        let odd = format!("{VERIFIER}%21");
        let odd = token(&endpoint, &exchange_code("code-1", redirect_uri, &odd));
        assert!(odd.body.contains(r#""error":"invalid_request""#));

        let body = exchange_code("code-1", redirect_uri, VERIFIER);
        let reply = token(&endpoint, &body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.body,
            r#"{"access_token":"access-token-1","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-from-code","scope":"mail"}"#
        );
        let again = token(&endpoint, &body);
        assert_eq!(again.status, 400);
        assert!(again.body.contains(r#""error":"invalid_grant""#));
        let refresh = REFRESH.replace("r-1", "refresh-from-code");
        assert_eq!(token(&endpoint, &refresh).status, 200);

        // A redirect URI with a query of its own; [::1]; no state.
        let redirect_uri = "http://[::1]:9/cb?x=1";
        let target = authorization(redirect_uri, "").replace("&state=", "");
        let reply = get(&endpoint, &target);
        assert_eq!(
            reply.header("location"),
            Some("http://[::1]:9/cb?x=1&code=code-2")
        );
    }

    #[test]
    fn code_grant_authenticates_a_confidential_client_and_hands_out_its_refresh_token() {
        let endpoint = TokenEndpoint::builder()
            .client("test-client", Some("pw"))
            .refresh_token("r-1")
            .authorization_code()
            .start()
            .unwrap();
        let redirect_uri = "http://localhost:1234/";
        let reply = get(&endpoint, &authorization(redirect_uri, "s"));
        assert_eq!(
            reply.header("location"),
            Some("http://localhost:1234/?code=code-1&state=s")
        );
        let body = exchange_code("code-1", redirect_uri, VERIFIER);
        assert_eq!(token(&endpoint, &body).status, 401);
        let reply = token(&endpoint, &format!("{body}&client_secret=pw"));
        assert_eq!(
            reply.body,
            r#"{"access_token":"access-token-1","token_type":"Bearer","expires_in":3600,"refresh_token":"r-1"}"#
        );
    }

    #[test]
    fn bad_client_or_redirect_uri_gets_400_and_no_redirect() {
        let endpoint = TokenEndpoint::builder()
            .authorization_code()
            .start()
            .unwrap();
        for redirect_uri in [
            "https://127.0.0.1:4711/",
            "http://example.com:4711/",
            "http://127.0.0.1/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:4711",
            "http://127.0.0.2:4711/",
            "http://localhost.example:4711/",
            "http://user@127.0.0.1:4711/",
            "http://127.0.0.1:4711/#fragment",
            "http://127.0.0.1:4711/a b",
            "",
        ] {
            let reply = get(&endpoint, &authorization(redirect_uri, "s"));
            assert_eq!(reply.status, 400, "{redirect_uri}");
            assert_eq!(reply.header("location"), None, "{redirect_uri}");
        }
        let good = authorization("http://127.0.0.1:4711/", "s");
        let other_client = good.replace("client_id=test-client", "client_id=other");
        assert_eq!(get(&endpoint, &other_client).status, 400);
        let twice = format!("{good}&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2F");
        assert_eq!(get(&endpoint, &twice).status, 400);
        assert_eq!(get(&endpoint, &format!("{good}&x=%zz")).status, 400);
        assert_eq!(endpoint.requests().len(), 14);
        assert!(endpoint.requests()[0].field("redirect_uri").is_some());
    }

    #[test]
    fn bad_authorization_requests_are_redirected_with_the_error() {
        let endpoint = TokenEndpoint::builder()
            .authorization_code()
            .scope("mail")
            .start()
            .unwrap();
        let good = authorization("http://127.0.0.1:4711/", "s");
        // The redirect's first field, as name=value.
        let first_of = |target: &str| {
            let reply = get(&endpoint, target);
            assert_eq!(reply.status, 302, "{target}");
            let location = reply.header("location").unwrap().to_owned();
            let query = location.strip_prefix("http://127.0.0.1:4711/?").unwrap();
            let fields = decode_form(query.as_bytes()).unwrap();
            assert_eq!(fields.last().unwrap(), &("state".into(), "s".into()));
            format!("{}={}", fields[0].0, fields[0].1)
        };
        for (from, to) in [
            ("&code_challenge_method=S256", ""),
            ("code_challenge_method=S256", "code_challenge_method=plain"),
            ("code_challenge=", "x="),
            (CHALLENGE, "short"),
            ("response_type=code", "response_type="),
            ("&scope=mail", "&scope=mail&scope=mail"),
        ] {
            assert_eq!(
                first_of(&good.replace(from, to)),
                "error=invalid_request",
                "{to}"
            );
        }
        let token_type = good.replace("response_type=code", "response_type=token");
        assert_eq!(first_of(&token_type), "error=unsupported_response_type");
        assert_eq!(
            first_of(&good.replace("scope=mail", "scope=all")),
            "error=invalid_scope"
        );
        assert_eq!(first_of(&good), "code=code-1");

        let post = post(&endpoint, "/authorize", "", "");
        assert_eq!(post.status, 405);
        assert_eq!(post.header("allow"), Some("GET"));
    }

    #[test]
    fn denied_or_wrong_state_redirects_and_without_the_grant_404() {
        let denied = TokenEndpoint::builder()
            .authorization_code()
            .deny_authorization()
            .start()
            .unwrap();
        let reply = get(&denied, &authorization("http://127.0.0.1:4711/", "s"));
        assert_eq!(
            reply.header("location"),
            Some("http://127.0.0.1:4711/?error=access_denied&state=s")
        );

        let wrong = TokenEndpoint::builder()
            .authorization_code()
            .wrong_state()
            .start()
            .unwrap();
        let reply = get(&wrong, &authorization("http://127.0.0.1:4711/", "s"));
        assert_eq!(
            reply.header("location"),
            Some("http://127.0.0.1:4711/?code=code-1&state=not-s")
        );

        let without = TokenEndpoint::builder().start().unwrap();
        let target = authorization("http://127.0.0.1:4711/", "s");
        assert_eq!(get(&without, &target).status, 404);
        let body = exchange_code("code-1", "http://127.0.0.1:4711/", VERIFIER);
        assert_eq!(
            token(&without, &body).body,
            r#"{"error":"unsupported_grant_type"}"#
        );
    }

    const BARE: &str = "POST /token HTTP/1.1\r\nHost: localhost\r\n\r\n";

    #[test]
    fn stall_answers_nothing_until_the_endpoint_is_dropped() {
        let endpoint = TokenEndpoint::builder()
            .fault(EndpointFault::Stall)
            .start()
            .unwrap();
        let mut client = connect(&endpoint, BARE.as_bytes());
        client
            .sock
            .set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let mut byte = [0u8; 1];
        let error = client.read(&mut byte).unwrap_err();
        assert!(matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert_eq!(endpoint.requests().len(), 1, "the request was read");
        let started = Instant::now();
        drop(endpoint);
        assert!(started.elapsed() < Duration::from_secs(1));
        client
            .sock
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        // Closed without a word (no close_notify: an error, or the end).
        assert!(!matches!(client.read(&mut byte), Ok(n) if n > 0));
    }

    #[test]
    fn endless_headers_go_on_until_the_client_hangs_up() {
        let endpoint = TokenEndpoint::builder()
            .fault(EndpointFault::EndlessHeaders)
            .start()
            .unwrap();
        let mut client = connect(&endpoint, BARE.as_bytes());
        let mut head = vec![0u8; 256 << 10];
        client.read_exact(&mut head).unwrap();
        let text = String::from_utf8_lossy(&head);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(!text.contains("\r\n\r\n"));
        assert!(text.matches("X-Filler-").count() > 1000);
        drop(client);
        let started = Instant::now();
        drop(endpoint);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
