//! The blocking driver: std::net + rustls around the sans-IO [`Session`].
//! It only moves bytes, keeps deadlines and does TLS when told; every SMTP
//! decision is the session's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use tls_mailer_proto::{
    BodyInfo, Delivery, Domain, Envelope, Event, Phase, Session, SessionConfig, Trace, Transport,
};

use crate::client::{Settings, TlsDetails, TraceEvent};
use crate::error::Error;
use crate::tls;

/// How much of the message is encoded and written at a time (and the size
/// of a BDAT frame).
const BODY_CHUNK: usize = 64 * 1024;

/// The socket, before or after TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}

/// Resolves `host:port`; every address, in the resolver's order.
pub(crate) fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|source| Error::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(Error::Resolve {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
        });
    }
    Ok(addresses)
}

fn connect_tcp(
    settings: &Settings,
    addresses: &[SocketAddr],
    port: u16,
) -> Result<TcpStream, Error> {
    let mut last_error = None;
    for address in addresses {
        settings.note(format!("connecting to {address}"));
        match TcpStream::connect_timeout(address, settings.timeouts.connect) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(Error::Connect {
        target: format!("{}:{port}", settings.host),
        source: last_error.unwrap_or_else(|| io::Error::other("no address to connect to")),
    })
}

/// Records the first bytes the server sends during the handshake, to tell a
/// plaintext SMTP server from a TLS failure.
struct Sniffer<'a> {
    tcp: &'a mut TcpStream,
    first_bytes: Vec<u8>,
}

impl Read for Sniffer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.tcp.read(buf)?;
        if self.first_bytes.len() < 8 {
            let take = read.min(8 - self.first_bytes.len());
            self.first_bytes.extend_from_slice(&buf[..take]);
        }
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

fn looks_like_smtp_reply(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes[..3].iter().all(u8::is_ascii_digit) && matches!(bytes[3], b' ' | b'-')
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Runs the TLS handshake on `tcp`, verifying the certificate for `host`.
fn handshake(
    settings: &Settings,
    mut tcp: TcpStream,
    port: u16,
    starttls: bool,
) -> Result<Stream, Error> {
    let name = tls::server_name(&settings.host)?;
    let mut connection =
        ClientConnection::new(settings.tls_config.clone(), name).map_err(|error| Error::Tls {
            reason: tls::explain(&error, &settings.host),
            source: Some(error),
        })?;
    let deadline = Instant::now() + settings.timeouts.tls_handshake;
    let mut sniffer = Sniffer {
        tcp: &mut tcp,
        first_bytes: Vec::new(),
    };
    while connection.is_handshaking() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Timeout {
                phase: Phase::TlsHandshake,
            });
        }
        let _ = sniffer.tcp.set_read_timeout(Some(remaining));
        let _ = sniffer.tcp.set_write_timeout(Some(remaining));
        if let Err(error) = connection.complete_io(&mut sniffer) {
            if !starttls && looks_like_smtp_reply(&sniffer.first_bytes) {
                return Err(Error::WrongSecurity {
                    port,
                    hint: format!(
                        "the server on port {port} answered in plaintext SMTP, not TLS: \
                         use --security starttls (Security::StartTls), or port 465 for implicit TLS"
                    ),
                });
            }
            if is_timeout(&error) {
                return Err(Error::Timeout {
                    phase: Phase::TlsHandshake,
                });
            }
            let tls_error = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned();
            return Err(match tls_error {
                Some(tls_error) => Error::Tls {
                    reason: tls::explain(&tls_error, &settings.host),
                    source: Some(tls_error),
                },
                None => Error::Tls {
                    reason: format!(
                        "TLS handshake with {} failed: {error} (the server closed the connection; \
                         is this a TLS port?)",
                        settings.host
                    ),
                    source: None,
                },
            });
        }
    }
    let details = tls_details_of(&connection);
    settings.note(format!(
        "TLS established: {} {}, certificate subject {}",
        details.version,
        details.cipher_suite,
        details.peer_subject.as_deref().unwrap_or("(unknown)")
    ));
    let mut stream = StreamOwned::new(connection, tcp);
    stream.conn.set_buffer_limit(Some(256 * 1024));
    Ok(Stream::Tls(Box::new(stream)))
}

/// An open SMTP connection, ready to be driven.
pub(crate) struct Connection<'a> {
    settings: &'a Settings,
    stream: Option<Stream>,
    session: Session,
    port: u16,
    deadline: Option<(u64, Phase, Instant)>,
    read_buffer: Vec<u8>,
}

/// How to open the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opening {
    ImplicitTls,
    StartTls,
    Plaintext,
}

impl<'a> Connection<'a> {
    pub(crate) fn open(settings: &'a Settings, port: u16, opening: Opening) -> Result<Self, Error> {
        let addresses = resolve(&settings.host, port)?;
        if opening == Opening::Plaintext
            && !addresses.iter().all(|address| address.ip().is_loopback())
        {
            return Err(Error::PlaintextNotLoopback {
                host: settings.host.clone(),
            });
        }
        let tcp = connect_tcp(settings, &addresses, port)?;
        let local_ip = tcp.local_addr().map(|address| address.ip()).ok();
        let stream = match opening {
            Opening::ImplicitTls => handshake(settings, tcp, port, false)?,
            Opening::StartTls | Opening::Plaintext => Stream::Plain(tcp),
        };
        let transport = match opening {
            Opening::ImplicitTls => Transport::ImplicitTls,
            Opening::StartTls => Transport::StartTls,
            Opening::Plaintext => Transport::DangerousPlaintext,
        };
        let ehlo_name = match &settings.ehlo_name {
            Some(name) => name.clone(),
            None => default_ehlo_name(local_ip),
        };
        let mut config = SessionConfig::new(ehlo_name, transport);
        config.credentials = settings.credentials.clone();
        config.auth_mechanisms = settings.auth_mechanisms.clone();
        // Plaintext is only reachable for loopback addresses (checked above).
        config.allow_plaintext_auth = opening == Opening::Plaintext;
        config.recipient_policy = settings.recipient_policy;
        config.use_pipelining = settings.pipelining;
        config.use_chunking = settings.chunking;
        config.trace = settings.trace.is_some();
        Ok(Self {
            settings,
            stream: Some(stream),
            session: Session::new(config),
            port,
            deadline: None,
            read_buffer: vec![0; 16 * 1024],
        })
    }

    /// Runs the whole conversation for one message.
    pub(crate) fn send(
        mut self,
        envelope: &Envelope,
        body: &mut dyn Read,
        info: BodyInfo,
    ) -> Result<(Delivery, Option<TlsDetails>), Error> {
        let mut delivery: Option<Delivery> = None;
        loop {
            if let Err(error) = self.flush() {
                return self.finish_after_quit(delivery, error);
            }
            let mut acted = false;
            while let Some(event) = self.session.poll_event() {
                acted = true;
                match event {
                    Event::UpgradeToTls => self.upgrade()?,
                    Event::Ready(_) => {
                        if let Err(error) = self.session.start_mail(envelope.clone(), info) {
                            self.quit_quietly();
                            return Err(error.into());
                        }
                    }
                    Event::SendBody(_) => self.stream_body(body)?,
                    Event::RecipientRejected { .. } => {}
                    Event::Accepted(accepted) => {
                        delivery = Some(accepted);
                        self.session.quit();
                    }
                    Event::Failed(error) => {
                        self.quit_quietly();
                        return Err(error.into());
                    }
                    Event::Closed => {
                        let tls = self.tls_details();
                        return match delivery {
                            Some(delivery) => Ok((delivery, tls)),
                            None => Err(tls_mailer_proto::ProtocolError::ConnectionClosed {
                                awaiting: None,
                            }
                            .into()),
                        };
                    }
                    _ => {}
                }
            }
            self.forward_trace();
            if acted {
                // What the events led to is written at the top of the loop.
                continue;
            }
            if self.session.wants_read() {
                if let Err(error) = self.read_some() {
                    return self.finish_after_quit(delivery, error);
                }
            } else {
                // Nothing to write, read or do: only a finished mail gets here.
                let tls = self.tls_details();
                return delivery.map(|d| (d, tls)).ok_or(Error::ApiMisuse(
                    tls_mailer_proto::ApiMisuse("the session stalled without a reply due"),
                ));
            }
        }
    }

    fn tls_details(&self) -> Option<TlsDetails> {
        match self.stream.as_ref()? {
            Stream::Tls(tls) => Some(tls_details_of(&tls.conn)),
            Stream::Plain(_) => None,
        }
    }

    fn stream(&mut self) -> Result<&mut Stream, Error> {
        self.stream
            .as_mut()
            .ok_or(Error::ApiMisuse(tls_mailer_proto::ApiMisuse(
                "connection used after a failed TLS upgrade",
            )))
    }

    fn upgrade(&mut self) -> Result<(), Error> {
        self.forward_trace();
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(Error::ApiMisuse(tls_mailer_proto::ApiMisuse(
                "STARTTLS on a connection that is already encrypted",
            )));
        };
        self.stream = Some(handshake(self.settings, tcp, self.port, true)?);
        self.session.tls_established()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        let mut out = Vec::new();
        self.session.poll_transmit(&mut out);
        self.forward_trace();
        if out.is_empty() {
            return Ok(());
        }
        let timeout = self.settings.timeouts.command;
        self.write_all(&out, timeout)
    }

    fn write_all(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), Error> {
        let phase = self.session.phase();
        let stream = self.stream()?;
        let _ = stream.tcp().set_write_timeout(Some(timeout));
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|source| io_error(phase, source))
    }

    /// Reads once, with the deadline of the phase; restarts the deadline
    /// whenever a reply arrives or the phase changes.
    fn read_some(&mut self) -> Result<(), Error> {
        let phase = self.session.phase();
        let replies = self.session.replies_received();
        let deadline = match self.deadline {
            Some((seen, seen_phase, deadline)) if seen == replies && seen_phase == phase => {
                deadline
            }
            _ => {
                let deadline = Instant::now() + self.settings.timeouts.for_phase(phase);
                self.deadline = Some((replies, phase, deadline));
                deadline
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Timeout { phase });
        }
        let mut buffer = std::mem::take(&mut self.read_buffer);
        let result = {
            let stream = self.stream()?;
            let _ = stream.tcp().set_read_timeout(Some(remaining));
            stream.read(&mut buffer)
        };
        let outcome = match result {
            Ok(0) => {
                self.session.handle_eof();
                Ok(())
            }
            Ok(read) => {
                self.session.handle_input(&buffer[..read]);
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(error) if is_timeout(&error) => Err(Error::Timeout { phase }),
            // A TLS peer that closes without close_notify: treat as end of stream.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                self.session.handle_eof();
                Ok(())
            }
            Err(error) => Err(io_error(phase, error)),
        };
        self.read_buffer = buffer;
        self.forward_trace();
        outcome
    }

    /// Streams the message: read a chunk, let the session encode it, write it.
    /// Chunks are filled before they are encoded and the last one is read
    /// ahead, so BDAT frames are full and the last carries `LAST` itself.
    /// With BDAT, reads replies whenever the session has too many chunks in flight.
    fn stream_body(&mut self, body: &mut dyn Read) -> Result<(), Error> {
        let mut current = vec![0; BODY_CHUNK];
        let mut next = vec![0; BODY_CHUNK];
        let mut out = Vec::with_capacity(BODY_CHUNK + BODY_CHUNK / 8);
        let block_timeout = self.settings.timeouts.data_block;
        let mut filled = self.fill(body, &mut current)?;
        loop {
            let ahead = if filled == 0 {
                0
            } else {
                self.fill(body, &mut next)?
            };
            loop {
                if self.session.phase() != Phase::DataBlock {
                    // The server refused a chunk: stop sending; the failure is an event.
                    return Ok(());
                }
                if self.session.can_write_body() {
                    break;
                }
                self.read_some()?;
            }
            out.clear();
            if ahead == 0 {
                self.session
                    .finish_body_with(&current[..filled], &mut out)?;
                self.write_all(&out, block_timeout)?;
                self.forward_trace();
                return Ok(());
            }
            self.session.write_body(&current[..filled], &mut out)?;
            self.write_all(&out, block_timeout)?;
            std::mem::swap(&mut current, &mut next);
            filled = ahead;
        }
    }

    /// Reads until `buffer` is full or the message ends; the number of bytes read.
    fn fill(&mut self, body: &mut dyn Read, buffer: &mut [u8]) -> Result<usize, Error> {
        let mut filled = 0;
        while filled < buffer.len() {
            match body.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.quit_quietly();
                    return Err(Error::ReadMessage(error));
                }
            }
        }
        Ok(filled)
    }

    /// After the server accepted the message, trouble with QUIT does not
    /// make the send fail.
    fn finish_after_quit(
        &self,
        delivery: Option<Delivery>,
        error: Error,
    ) -> Result<(Delivery, Option<TlsDetails>), Error> {
        match delivery {
            Some(delivery) => Ok((delivery, self.tls_details())),
            None => Err(error),
        }
    }

    /// Best effort: send what the session queued (a QUIT) and close.
    fn quit_quietly(&mut self) {
        self.session.quit();
        let mut out = Vec::new();
        self.session.poll_transmit(&mut out);
        self.forward_trace();
        if let Some(stream) = self.stream.as_mut() {
            let _ = stream.tcp().set_write_timeout(Some(Duration::from_secs(5)));
            let _ = stream.write_all(&out).and_then(|()| stream.flush());
        }
    }

    fn forward_trace(&mut self) {
        while let Some(line) = self.session.poll_trace() {
            if let Some(trace) = &self.settings.trace {
                match line {
                    Trace::Client(text) => trace(&TraceEvent::Client(text)),
                    Trace::Server(text) => trace(&TraceEvent::Server(text)),
                }
            }
        }
    }
}

fn io_error(phase: Phase, source: io::Error) -> Error {
    if is_timeout(&source) {
        Error::Timeout { phase }
    } else {
        Error::Io { phase, source }
    }
}

/// The machine's host name when it is a fully qualified name, else the
/// address literal of the local end of the connection (RFC 5321 4.1.4).
pub(crate) fn default_ehlo_name(local_ip: Option<std::net::IpAddr>) -> Domain {
    let host = gethostname::gethostname();
    if let Some(domain) = host.to_str().and_then(|name| Domain::new(name).ok())
        && domain.is_fqdn()
    {
        return domain;
    }
    Domain::literal(local_ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)))
}

fn tls_details_of(connection: &ClientConnection) -> TlsDetails {
    TlsDetails {
        version: connection
            .protocol_version()
            .map(|version| format!("{version:?}"))
            .unwrap_or_default(),
        cipher_suite: connection
            .negotiated_cipher_suite()
            .map(|suite| format!("{:?}", suite.suite()))
            .unwrap_or_default(),
        peer_subject: connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|certificate| tls::certificate_subject(certificate)),
    }
}
