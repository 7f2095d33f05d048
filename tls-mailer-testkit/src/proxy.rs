//! Proxies on loopback for the proxy tests: SOCKS5 (RFC 1928, RFC 1929
//! login) and HTTP CONNECT, each relaying to the target it is asked for,
//! written from the RFCs on their own (nothing shared with the client).
//! They refuse any target that is not a loopback address or `localhost`,
//! so a test can never reach past this machine, and they record what each
//! client asked for (the name, to prove the client left DNS to the proxy).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread;

/// Which protocol a [`TestProxy`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// SOCKS5.
    Socks5,
    /// HTTP CONNECT.
    HttpConnect,
}

/// A proxy listening on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct TestProxy {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    /// Starts a proxy; with `login`, it requires that user name and password.
    pub fn start(protocol: ProxyProtocol, login: Option<(&str, &str)>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let login = login.map(|(user, password)| (user.to_owned(), password.to_owned()));
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let recorded = recorded.clone();
                let login = login.clone();
                thread::spawn(move || {
                    let _ = match protocol {
                        ProxyProtocol::Socks5 => socks5(client, login, &recorded),
                        ProxyProtocol::HttpConnect => http_connect(client, login, &recorded),
                    };
                });
            }
        });
        Ok(Self { port, requests })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every target asked for, as `host:port` (a name as the client sent
    /// it, an address as text), in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A target this proxy may reach: loopback only.
fn loopback(host: &str, port: u16) -> Option<TcpStream> {
    let allowed = host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if !allowed {
        return None;
    }
    let addresses = (host, port).to_socket_addrs().ok()?;
    addresses
        .filter(|address| address.ip().is_loopback())
        .find_map(|address| TcpStream::connect(address).ok())
}

fn socks5(
    mut client: TcpStream,
    login: Option<(String, String)>,
    recorded: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods)?;
    let wanted = if login.is_some() { 2 } else { 0 };
    if head[0] != 5 || !methods.contains(&wanted) {
        return client.write_all(&[5, 0xFF]);
    }
    client.write_all(&[5, wanted])?;
    if let Some((user, password)) = &login {
        let mut version_and_length = [0u8; 2];
        client.read_exact(&mut version_and_length)?;
        let mut given_user = vec![0u8; usize::from(version_and_length[1])];
        client.read_exact(&mut given_user)?;
        let mut length = [0u8; 1];
        client.read_exact(&mut length)?;
        let mut given_password = vec![0u8; usize::from(length[0])];
        client.read_exact(&mut given_password)?;
        let ok = given_user == user.as_bytes() && given_password == password.as_bytes();
        client.write_all(&[1, if ok { 0 } else { 1 }])?;
        if !ok {
            return Ok(());
        }
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let host = match request[3] {
        1 => {
            let mut octets = [0u8; 4];
            client.read_exact(&mut octets)?;
            Ipv4Addr::from(octets).to_string()
        }
        4 => {
            let mut octets = [0u8; 16];
            client.read_exact(&mut octets)?;
            Ipv6Addr::from(octets).to_string()
        }
        3 => {
            let mut length = [0u8; 1];
            client.read_exact(&mut length)?;
            let mut name = vec![0u8; usize::from(length[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    let port = u16::from_be_bytes(port);
    if let Ok(mut requests) = recorded.lock() {
        requests.push(format!("{host}:{port}"));
    }
    if request[1] != 1 {
        return client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    let Some(server) = loopback(&host, port) else {
        // 2: not allowed by the rules (this proxy reaches loopback only).
        return client.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    };
    // Bound address: a domain name, so the client must read its length.
    client.write_all(&[
        5, 0, 0, 3, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0, 0,
    ])?;
    relay(client, server)
}

fn http_connect(
    client: TcpStream,
    login: Option<(String, String)>,
    recorded: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("proxy-authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let mut client = client;
    let mut words = request_line.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        return client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
    };
    if let Ok(mut requests) = recorded.lock() {
        requests.push(target.to_owned());
    }
    if let Some((user, password)) = &login {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        if authorization.as_deref() != Some(expected.as_str()) {
            return client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            );
        }
    }
    let (host, port) = match target.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_start_matches('[').trim_end_matches(']'),
            port.parse().unwrap_or(0),
        ),
        None => (target, 0),
    };
    let Some(server) = loopback(host, port) else {
        return client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\nVia: 1.1 tls-mailer-testkit\r\n\r\n")?;
    relay(client, server)
}

/// Copies both ways until either side closes.
fn relay(client: TcpStream, server: TcpStream) -> io::Result<()> {
    let (mut client_reader, mut server_writer) = (client.try_clone()?, server.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut client_reader, &mut server_writer);
        let _ = server_writer.shutdown(Shutdown::Write);
    });
    let (mut server_reader, mut client_writer) = (server, client);
    let _ = io::copy(&mut server_reader, &mut client_writer);
    let _ = client_writer.shutdown(Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}
