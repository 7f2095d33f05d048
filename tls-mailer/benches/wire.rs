#![allow(clippy::unwrap_used)] // a bench: a panic is a failed run
//! The wire benchmarks of BENCHMARKS.md, side by side with lettre in one
//! run: server flights and round trips through a delay proxy, throughput on
//! loopback, one big message against a bare rustls copy.
//!
//! ```sh
//! cargo bench -p tls-mailer --features tokio --bench wire            # everything
//! cargo bench -p tls-mailer --features tokio --bench wire -- flights # one section
//! ```
//!
//! Without `--bench` (what `cargo test --benches` passes) every section
//! runs once at a tiny size, as a smoke test: seconds, loopback only.
//! Sections: `flights`, `rtt`, `throughput`, `big`.
//!
//! Go's net/smtp beside them (never in CI): build `bench/go` and name the
//! binary in `TLS_MAILER_BENCH_GO`; the `rtt` and `throughput` sections then
//! run it, as a child process, against a server of their own in turn with
//! the other cases.
//!
//! ```sh
//! (cd bench/go && go build -o /tmp/smtpbench .)
//! TLS_MAILER_BENCH_GO=/tmp/smtpbench cargo bench -p tls-mailer --features tokio --bench wire -- rtt throughput
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::{Credentials as LCredentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::ServerName;
use tls_mailer::{BodyInfo, Client, Credentials, Envelope, Mail, Security, Timeouts};
use tls_mailer_testkit::{Extensions, Mode, TestServer};

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

#[derive(Clone, Copy)]
struct Sizes {
    /// One-way delay of the proxy.
    delay: Duration,
    /// Messages per connection in the round-trip section.
    rtt_messages: usize,
    /// Messages in the throughput section.
    throughput_messages: usize,
    /// Bytes of the big message.
    big: u64,
    /// Interleaved repetitions of each throughput case.
    rounds: usize,
    /// Pairs of big-message runs (tls-mailer, then bare rustls).
    big_rounds: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|arg| arg == "--bench");
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let sizes = if full {
        Sizes {
            delay: Duration::from_millis(25),
            rtt_messages: 100,
            throughput_messages: 10_000,
            big: 1 << 30,
            rounds: 7,
            big_rounds: 5,
        }
    } else {
        Sizes {
            delay: Duration::from_millis(3),
            rtt_messages: 3,
            throughput_messages: 40,
            big: 2 << 20,
            rounds: 1,
            big_rounds: 1,
        }
    };
    let run = |name: &str| wanted.is_empty() || wanted.contains(&name);
    if run("flights") {
        flights(sizes);
    }
    if run("rtt") {
        round_trips(sizes);
    }
    if run("throughput") {
        throughput(sizes);
    }
    if run("big") {
        big_message(sizes);
    }
}

// ---------------------------------------------------------------- servers

fn server(mode: Mode, extensions: Extensions) -> TestServer {
    TestServer::builder()
        .mode(mode)
        .auth(USER, PASSWORD)
        .extensions(extensions)
        .start()
        .unwrap()
}

fn client(server: &TestServer, port: u16, security: Security) -> Client {
    Client::builder("localhost")
        .port(port)
        .security(security)
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(60)))
        .build()
        .unwrap()
}

fn message(size: usize, n: usize) -> Vec<u8> {
    let mut message =
        format!("From: a@example.org\r\nTo: b@example.org\r\nSubject: bench {n}\r\n\r\n")
            .into_bytes();
    let line = b"body line of the benchmark message, seventy-odd bytes long, padding.\r\n";
    while message.len() + line.len() <= size {
        message.extend_from_slice(line);
    }
    message.resize(size - 2, b'x');
    message.extend_from_slice(b"\r\n");
    message
}

fn recipients(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("r{n}@example.org")).collect()
}

fn envelope(count: usize) -> Envelope {
    Envelope::new("a@example.org", recipients(count)).unwrap()
}

/// lettre's connection over implicit TLS or STARTTLS, authenticated.
fn lettre_connect(server: &TestServer, port: u16, starttls: bool) -> SmtpConnection {
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    let hello = ClientId::Domain("bench.example.org".into());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Some(Duration::from_secs(60));
    let mut connection = if starttls {
        let mut connection = SmtpConnection::connect(addr, timeout, &hello, None, None).unwrap();
        connection.starttls(&tls, &hello).unwrap();
        connection
    } else {
        SmtpConnection::connect(addr, timeout, &hello, Some(&tls), None).unwrap()
    };
    connection
        .auth(
            &[Mechanism::Plain],
            &LCredentials::new(USER.into(), PASSWORD.into()),
        )
        .unwrap();
    connection
}

fn lettre_envelope(count: usize) -> lettre::address::Envelope {
    lettre::address::Envelope::new(
        Some("a@example.org".parse().unwrap()),
        recipients(count)
            .iter()
            .map(|r| r.parse().unwrap())
            .collect(),
    )
    .unwrap()
}

// ---------------------------------------------------------------- Go's net/smtp

/// The Go client of `bench/go`, when `TLS_MAILER_BENCH_GO` names it.
fn go_client() -> Option<String> {
    std::env::var("TLS_MAILER_BENCH_GO")
        .ok()
        .filter(|path| !path.is_empty())
}

/// One run of the Go client: its own clock, so its process start and
/// message building are not counted.
struct GoRun {
    /// TCP, TLS, greeting, EHLO, AUTH.
    open: Duration,
    /// The messages after the opening.
    send: Duration,
    /// Messages a second over both.
    rate: f64,
}

/// Runs the Go client: `messages` × 2 KiB to 127.0.0.1:`port` (the server
/// itself or a proxy in front of it), trusting `server`'s CA; RSET after
/// each message if `rset`.
fn go_run(go: &str, server: &TestServer, port: u16, messages: usize, rset: bool) -> GoRun {
    let ca = std::env::temp_dir().join(format!(
        "tls-mailer-wire-ca-{}-{}.pem",
        std::process::id(),
        server.port()
    ));
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let output = Command::new(go)
        .arg("-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-ca")
        .arg(&ca)
        .arg("-n")
        .arg(messages.to_string())
        .arg(format!("-rset={rset}"))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&ca);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{go}: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |key: &str| -> f64 {
        stdout
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {stdout:?}"))
    };
    GoRun {
        open: Duration::from_secs_f64(field("open_s")),
        send: Duration::from_secs_f64(field("send_s")),
        rate: field("msgs_per_s"),
    }
}

// ---------------------------------------------------------------- the delay proxy

/// A TCP proxy on 127.0.0.1 that delays every byte by `delay` in each
/// direction: a reader thread per direction stamps what it reads and queues
/// it, a writer thread sends each chunk when its time comes (so delays
/// overlap, as on a long link, instead of adding up per read). It records
/// the direction changes as seen by the reader side.
struct DelayProxy {
    port: u16,
    log: Arc<Mutex<Vec<Direction>>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    ToServer,
    ToClient,
}

impl DelayProxy {
    fn start(upstream: SocketAddr, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&log);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(upstream).unwrap();
                client.set_nodelay(true).unwrap();
                server.set_nodelay(true).unwrap();
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    delay,
                    Direction::ToServer,
                    Arc::clone(&shared),
                );
                pump(
                    server,
                    client,
                    delay,
                    Direction::ToClient,
                    Arc::clone(&shared),
                );
            }
        });
        Self { port, log }
    }

    /// Takes the log so far: how many times the server spoke after the
    /// client (a run of chunks towards the client, after one towards the
    /// server, is one flight).
    fn take_flights(&self) -> usize {
        let log = std::mem::take(&mut *self.log.lock().unwrap());
        let mut flights = 0;
        let mut last = Direction::ToServer;
        for direction in log {
            if direction == Direction::ToClient && last == Direction::ToServer {
                flights += 1;
            }
            last = direction;
        }
        flights
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    direction: Direction,
    log: Arc<Mutex<Vec<Direction>>>,
) {
    let (queue, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    log.lock().unwrap().push(direction);
                    if queue
                        .send((Instant::now() + delay, buffer[..read].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        for (at, bytes) in due {
            let now = Instant::now();
            if at > now {
                thread::sleep(at - now);
            }
            if to.write_all(&bytes).is_err() {
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Time through the proxy in round trips, and the direction count.
struct Measured {
    rtts: f64,
    flights: usize,
}

fn measure(proxy: &DelayProxy, rtt: Duration, work: impl FnOnce()) -> Measured {
    proxy.take_flights();
    let started = Instant::now();
    work();
    let elapsed = started.elapsed();
    // The last writes may still be in the proxy's queues.
    thread::sleep(rtt);
    Measured {
        rtts: elapsed.as_secs_f64() / rtt.as_secs_f64(),
        flights: proxy.take_flights(),
    }
}

// ---------------------------------------------------------------- flights

fn flights(sizes: Sizes) {
    let rtt = sizes.delay * 2;
    println!(
        "\n## Server flights (one message, one-shot send through a {} ms RTT proxy)",
        rtt.as_millis()
    );
    println!(
        "| case | recipients | tls-mailer flights (time/RTT, direction changes) | lettre | target | ratio lettre/tls-mailer |"
    );
    println!("|---|---|---|---|---|---|");
    let body = message(2048, 0);
    let cases = [
        (
            "implicit TLS, CHUNKING",
            Mode::ImplicitTls,
            Extensions::default(),
            Some(5),
        ),
        (
            "implicit TLS, DATA only",
            Mode::ImplicitTls,
            Extensions {
                chunking: false,
                ..Extensions::default()
            },
            None,
        ),
        (
            "STARTTLS, CHUNKING",
            Mode::StartTls,
            Extensions::default(),
            Some(7),
        ),
    ];
    for (name, mode, extensions, target) in cases {
        let server = server(mode, extensions);
        let proxy = DelayProxy::start(server.addr(), sizes.delay);
        let security = match mode {
            Mode::StartTls => Security::StartTls,
            _ => Security::ImplicitTls,
        };
        let ours_client = client(&server, proxy.port, security);
        // A warm-up send (lazy statics), not measured; no session
        // resumption across clients: each measured send has a new Client.
        ours_client.send(&envelope(1), &body).unwrap();
        for count in [1, 10] {
            let ours_client = client(&server, proxy.port, security);
            let ours = measure(&proxy, rtt, || {
                ours_client.send(&envelope(count), &body).unwrap();
            });
            let theirs = measure(&proxy, rtt, || {
                let mut connection = lettre_connect(&server, proxy.port, mode == Mode::StartTls);
                connection.send(&lettre_envelope(count), &body).unwrap();
                connection.quit().unwrap();
            });
            let target = target.map_or("-".to_owned(), |t| t.to_string());
            println!(
                "| {name} | {count} | **{:.0}** ({:.2}, {}) | {:.0} ({:.2}, {}) | {target} | {:.2}× |",
                ours.rtts.round(),
                ours.rtts,
                ours.flights,
                theirs.rtts.round(),
                theirs.rtts,
                theirs.flights,
                theirs.rtts.round() / ours.rtts.round(),
            );
        }
    }
}

// ---------------------------------------------------------------- round trips per message

fn round_trips(sizes: Sizes) {
    let rtt = sizes.delay * 2;
    let n = sizes.rtt_messages;
    println!(
        "\n## Round trips per extra message ({n} × 2 KiB on one connection, {} ms RTT)",
        rtt.as_millis()
    );
    let server = server(Mode::ImplicitTls, Extensions::default());
    let proxy = DelayProxy::start(server.addr(), sizes.delay);
    let ours = client(&server, proxy.port, Security::ImplicitTls);
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| message(2048, i)).collect();
    let env = envelope(1);
    ours.connect().unwrap().quit().unwrap(); // warm-up

    // Sequential: open, n × send, quit; the opening timed on its own.
    let mut connection = None;
    let open = measure(&proxy, rtt, || connection = Some(ours.connect().unwrap()));
    let mut connection = connection.unwrap();
    let sequential = measure(&proxy, rtt, || {
        for body in &bodies {
            connection.send(&env, body).unwrap();
        }
    });
    connection.quit().unwrap();

    // Pipelined: the whole conversation, opening and QUIT included.
    let mut opening = 0.0;
    let total = measure(&proxy, rtt, || {
        let started = Instant::now();
        let mut connection = ours.connect().unwrap();
        opening = started.elapsed().as_secs_f64() / rtt.as_secs_f64();
        let mails = bodies.iter().map(|b| Mail::from_bytes(env.clone(), b));
        for result in connection.send_batch(mails) {
            result.unwrap();
        }
        connection.quit().unwrap();
    });

    // lettre: one connection, n sequential sends.
    let lenv = lettre_envelope(1);
    let mut lettre = None;
    let lettre_open = measure(&proxy, rtt, || {
        lettre = Some(lettre_connect(&server, proxy.port, false));
    });
    let mut lettre = lettre.unwrap();
    let lettre_seq = measure(&proxy, rtt, || {
        for body in &bodies {
            lettre.send(&lenv, body).unwrap();
        }
    });
    lettre.quit().unwrap();
    assert!(server.messages().len() >= 3 * n);

    // Go's net/smtp, with and without RSET after each message: its own
    // clock splits the opening from the messages; the proxy's direction
    // changes cover both.
    let go_runs: Vec<(bool, GoRun, usize)> = go_client()
        .map(|go| {
            [true, false]
                .into_iter()
                .map(|rset| {
                    proxy.take_flights();
                    let before = server.messages().len();
                    let run = go_run(&go, &server, proxy.port, n, rset);
                    thread::sleep(rtt);
                    assert_eq!(server.messages().len(), before + n);
                    (rset, run, proxy.take_flights())
                })
                .collect()
        })
        .unwrap_or_default();

    let per = |m: &Measured| m.rtts / n as f64;
    println!(
        "| client | opening (RTT) | per extra message (RTT) | {n} messages in all (RTT) | target |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| tls-mailer `send` ×{n} | {:.2} | **{:.2}** | {:.1} | ≤ 1 |",
        open.rtts,
        per(&sequential),
        open.rtts + sequential.rtts
    );
    println!(
        "| tls-mailer `send_batch` of {n} | {opening:.2} | **{:.3}** | **{:.1}** (QUIT included) | far below 1; ≤ 30 in all |",
        (total.rtts - opening) / n as f64,
        total.rtts
    );
    println!(
        "| lettre `send` ×{n} | {:.2} | {:.2} | {:.1} | |",
        lettre_open.rtts,
        per(&lettre_seq),
        lettre_open.rtts + lettre_seq.rtts
    );
    for (rset, run, flights) in &go_runs {
        let open = run.open.as_secs_f64() / rtt.as_secs_f64();
        let send = run.send.as_secs_f64() / rtt.as_secs_f64();
        println!(
            "| Go net/smtp {} ×{n} | {open:.2} | {:.2} | {:.1} ({flights} direction changes) | |",
            if *rset {
                "MAIL RCPT DATA RSET"
            } else {
                "MAIL RCPT DATA"
            },
            send / n as f64,
            open + send,
        );
    }
    println!(
        "ratio per extra message: lettre / tls-mailer sequential {:.2}×, sequential / pipelined {:.1}×",
        per(&lettre_seq) / per(&sequential),
        per(&sequential) / ((total.rtts - opening) / n as f64)
    );
    for (rset, run, _) in &go_runs {
        let go = run.send.as_secs_f64() / rtt.as_secs_f64() / n as f64;
        println!(
            "ratio per extra message: Go{} / tls-mailer sequential {:.2}×, / pipelined {:.1}×",
            if *rset { " with RSET" } else { " without RSET" },
            go / per(&sequential),
            go / ((total.rtts - opening) / n as f64)
        );
    }
}

// ---------------------------------------------------------------- throughput

fn rate(messages: usize, elapsed: Duration) -> f64 {
    messages as f64 / elapsed.as_secs_f64()
}

fn blocking_batches(server: &TestServer, connections: usize, bodies: &Arc<Vec<Vec<u8>>>) -> f64 {
    let ours = Arc::new(client(server, server.port(), Security::ImplicitTls));
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|k| {
            let ours = Arc::clone(&ours);
            let bodies = Arc::clone(bodies);
            thread::spawn(move || {
                let env = envelope(1);
                let mut connection = ours.connect().unwrap();
                let mails = bodies
                    .iter()
                    .skip(k)
                    .step_by(connections)
                    .map(|b| Mail::from_bytes(env.clone(), b));
                for result in connection.send_batch(mails) {
                    result.unwrap();
                }
                connection.quit().unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    rate(bodies.len(), started.elapsed())
}

/// The tokio runtime of an async throughput case: `None` the current-thread
/// runtime, `Some(n)` the multi-threaded one with `n` workers.
#[cfg(feature = "tokio")]
fn async_batches(
    server: &TestServer,
    connections: usize,
    bodies: &Arc<Vec<Vec<u8>>>,
    workers: Option<usize>,
) -> f64 {
    let ours = Arc::new(client(server, server.port(), Security::ImplicitTls));
    let runtime = match workers {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(workers) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build(),
    }
    .unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|k| {
                let ours = Arc::clone(&ours);
                let bodies = Arc::clone(bodies);
                tokio::spawn(async move {
                    let env = envelope(1);
                    let mut connection = ours.connect_async().await.unwrap();
                    let mut mails: Vec<Mail<&[u8]>> = Vec::new();
                    for body in bodies.iter().skip(k).step_by(connections) {
                        mails.push(Mail::from_bytes(env.clone(), body));
                    }
                    for result in connection.send_batch(mails).await {
                        result.unwrap();
                    }
                    connection.quit().await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        rate(bodies.len(), started.elapsed())
    })
}

/// The server's ceiling: a raw rustls client that writes pre-encoded,
/// pipelined `MAIL RCPT BDAT n LAST` groups as fast as the server takes
/// them (at most 256 messages unanswered) and counts the replies.
fn raw_ceiling(server: &TestServer, bodies: &[Vec<u8>]) -> f64 {
    let mut wire = Vec::new();
    let groups: Vec<Vec<u8>> = bodies
        .iter()
        .map(|body| {
            let mut group = format!(
                "MAIL FROM:<a@example.org>\r\nRCPT TO:<r0@example.org>\r\nBDAT {} LAST\r\n",
                body.len()
            )
            .into_bytes();
            group.extend_from_slice(body);
            group
        })
        .collect();
    let started = Instant::now();
    let mut tls = tls_client(server, server.addr());
    let mut replies = ReplyCounter::default();
    replies.until(&mut tls, 1); // greeting
    tls.write_all(b"EHLO raw.example.org\r\n").unwrap();
    replies.until(&mut tls, 2);
    let plain = base64_plain();
    tls.write_all(format!("AUTH PLAIN {plain}\r\n").as_bytes())
        .unwrap();
    replies.until(&mut tls, 3);
    let opened = replies.finals;
    let window = 128;
    for (sent, chunk) in groups.chunks(window).enumerate() {
        wire.clear();
        for group in chunk {
            wire.extend_from_slice(group);
        }
        tls.write_all(&wire).unwrap();
        tls.flush().unwrap();
        let written = sent * window + chunk.len();
        // Keep up to one more window in flight.
        let answered = written.saturating_sub(window);
        replies.until(&mut tls, opened + 3 * answered);
    }
    replies.until(&mut tls, opened + 3 * bodies.len());
    tls.write_all(b"QUIT\r\n").unwrap();
    rate(bodies.len(), started.elapsed())
}

fn base64_plain() -> String {
    // "\0bench\0bench-password"
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("\0{USER}\0{PASSWORD}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Counts final reply lines (`NNN ` rather than `NNN-`).
#[derive(Default)]
struct ReplyCounter {
    finals: usize,
    line: Vec<u8>,
}

impl ReplyCounter {
    fn until(&mut self, stream: &mut impl Read, finals: usize) {
        let mut buffer = [0u8; 16 * 1024];
        while self.finals < finals {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0, "server closed");
            for &byte in &buffer[..read] {
                if byte == b'\n' {
                    assert!(
                        self.line.first().is_some_and(|c| matches!(c, b'2' | b'3')),
                        "refused: {}",
                        String::from_utf8_lossy(&self.line)
                    );
                    if self.line.get(3) == Some(&b' ') {
                        self.finals += 1;
                    }
                    self.line.clear();
                } else {
                    self.line.push(byte);
                }
            }
        }
    }
}

fn tls_config(server: &TestServer) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.ca_der().into()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tls_client(
    server: &TestServer,
    addr: SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let connection = rustls::ClientConnection::new(
        tls_config(server),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

fn throughput(sizes: Sizes) {
    let n = sizes.throughput_messages;
    println!("\n## Throughput ({n} × 2 KiB, loopback, implicit TLS + AUTH)");
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..n).map(|i| message(2048, i)).collect());
    let fresh = || server(Mode::ImplicitTls, Extensions::default());
    // Warm-up.
    blocking_batches(&fresh(), 1, &Arc::new(bodies[..n.min(200)].to_vec()));

    let lettre_rate = {
        let server = fresh();
        let env = lettre_envelope(1);
        // lettre takes tens of milliseconds a message here (see
        // BENCHMARKS.md): at most 500 of them, the rate is the same.
        let count = n.min(500);
        let started = Instant::now();
        let mut connection = lettre_connect(&server, server.port(), false);
        for body in &bodies[..count] {
            connection.send(&env, body).unwrap();
        }
        connection.quit().unwrap();
        let rate = rate(count, started.elapsed());
        assert_eq!(server.messages().len(), count);
        rate
    };
    println!("lettre, sequential `send`, 1 connection: {lettre_rate:.0} msgs/s");

    // Each case on a fresh server, the cases in turn, `rounds` times over
    // (the machine is shared: the median of interleaved runs).
    type Case<'a> = (&'static str, usize, Box<dyn Fn() -> f64 + 'a>);
    let mut cases: Vec<Case> = Vec::new();
    for connections in [1, 4] {
        let bodies = &bodies;
        cases.push((
            "tls-mailer blocking `send_batch`",
            connections,
            Box::new(move || {
                let server = fresh();
                let value = blocking_batches(&server, connections, bodies);
                assert_eq!(server.messages().len(), n);
                value
            }),
        ));
    }
    // The async cases on the default runtime (as many workers as cores),
    // then on one thread: the second tells the driver's cost from the
    // runtime's scheduling on a small machine.
    #[cfg(feature = "tokio")]
    let cores = thread::available_parallelism().map_or(1, usize::from);
    #[cfg(feature = "tokio")]
    for (name, connections, workers) in [
        ("tls-mailer async `send_batch`", 1, Some(cores)),
        ("tls-mailer async `send_batch`", 4, Some(cores)),
        (
            "tls-mailer async `send_batch`, current-thread runtime",
            1,
            None,
        ),
        (
            "tls-mailer async `send_batch`, current-thread runtime",
            4,
            None,
        ),
    ] {
        let bodies = &bodies;
        cases.push((
            name,
            connections,
            Box::new(move || {
                let server = fresh();
                let value = async_batches(&server, connections, bodies, workers);
                assert_eq!(server.messages().len(), n);
                value
            }),
        ));
    }
    if let Some(go) = go_client() {
        for (name, rset) in [
            ("Go net/smtp, MAIL RCPT DATA RSET a message", true),
            ("Go net/smtp, MAIL RCPT DATA a message", false),
        ] {
            let go = go.clone();
            cases.push((
                name,
                1,
                Box::new(move || {
                    let server = fresh();
                    let value = go_run(&go, &server, server.port(), n, rset).rate;
                    assert_eq!(server.messages().len(), n);
                    value
                }),
            ));
        }
    }
    for connections in [1, 4] {
        let bodies = &bodies;
        cases.push((
            "raw pre-encoded pipelined client (server's ceiling)",
            connections,
            Box::new(move || raw_rate(&fresh(), connections, bodies)),
        ));
    }
    // `TLS_MAILER_BENCH_CASES=WORD` keeps the cases whose name holds WORD
    // (to profile one of them).
    if let Ok(word) = std::env::var("TLS_MAILER_BENCH_CASES") {
        cases.retain(|case| case.0.contains(&word));
    }
    let mut rates = vec![Vec::new(); cases.len()];
    // CPU time of the whole process (client, server threads, and a child
    // once reaped) per message: the same server work in every case, so
    // the differences are the clients'.
    let mut cpu = vec![Vec::new(); cases.len()];
    for _ in 0..sizes.rounds {
        for ((case, rates), cpu) in cases.iter().zip(&mut rates).zip(&mut cpu) {
            let before = process_cpu();
            rates.push((case.2)());
            cpu.push((process_cpu() - before).as_secs_f64() * 1e6 / n as f64);
        }
    }
    let by_round = rates.clone();
    println!();
    println!(
        "| client | connections | msgs/s median (min to max) | ratio to lettre | CPU µs a message, client + server (median) |"
    );
    println!("|---|---|---|---|---|");
    for ((case, rates), cpu) in cases.iter().zip(&mut rates).zip(&mut cpu) {
        rates.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "| {} | {} | **{median:.0}** ({:.0} to {:.0}) | {:.0}× | {:.0} |",
            case.0,
            case.1,
            rates[0],
            rates[rates.len() - 1],
            median / lettre_rate,
            cpu[cpu.len() / 2]
        );
    }
    #[cfg(not(feature = "tokio"))]
    println!("| tls-mailer async | - | (build with `--features tokio`) | |");
    // Against Go, round by round: each case's i-th run beside Go's i-th
    // run, in the same round.
    for go in cases
        .iter()
        .enumerate()
        .filter(|(_, case)| case.0.starts_with("Go"))
        .map(|(index, _)| index)
    {
        println!();
        println!(
            "| ratio to {}, round by round | connections | median (min to max) |",
            cases[go].0
        );
        println!("|---|---|---|");
        for (case, mine) in cases.iter().zip(&by_round) {
            if case.0.starts_with("tls-mailer") {
                let mut ratios: Vec<f64> = mine
                    .iter()
                    .zip(&by_round[go])
                    .map(|(ours, go)| ours / go)
                    .collect();
                ratios.sort_by(f64::total_cmp);
                println!(
                    "| {} | {} | **{:.2}×** ({:.2} to {:.2}) |",
                    case.0,
                    case.1,
                    ratios[ratios.len() / 2],
                    ratios[0],
                    ratios[ratios.len() - 1]
                );
            }
        }
    }
}

/// User and system CPU time of this process and its reaped children
/// (`/proc/self/stat`, in clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which ends with the last ')'.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime: fields 14 to 17, here 11 to 14.
    let ticks: u64 = fields.iter().skip(11).take(4).sum();
    Duration::from_millis(ticks * 10)
}

fn raw_rate(server: &TestServer, connections: usize, bodies: &[Vec<u8>]) -> f64 {
    let n = bodies.len();
    let shares: Vec<Vec<Vec<u8>>> = (0..connections)
        .map(|k| {
            bodies
                .iter()
                .skip(k)
                .step_by(connections)
                .cloned()
                .collect()
        })
        .collect();
    let started = Instant::now();
    thread::scope(|scope| {
        for mine in &shares {
            scope.spawn(move || raw_ceiling(server, mine));
        }
    });
    let value = rate(n, started.elapsed());
    // The server records a message just after its reply.
    assert_eq!(
        server.wait_for_messages(n, Duration::from_secs(10)).len(),
        n
    );
    value
}

// ---------------------------------------------------------------- one big message

/// `size` bytes of a message: a header, then 78-byte lines.
struct BigMessage {
    header: io::Cursor<&'static [u8]>,
    left: u64,
}

const BIG_HEADER: &[u8] = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: big\r\n\r\n";
const BIG_LINE: &[u8; 78] =
    b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123\r\n";

impl BigMessage {
    fn new(size: u64) -> Self {
        Self {
            header: io::Cursor::new(BIG_HEADER),
            left: size - BIG_HEADER.len() as u64,
        }
    }
}

impl Read for BigMessage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.header.read(buf)?;
        if read > 0 {
            return Ok(read);
        }
        let lines = (buf.len() / BIG_LINE.len()).max(1);
        let mut written = 0;
        for _ in 0..lines {
            if self.left == 0 {
                break;
            }
            let take = (self.left as usize)
                .min(BIG_LINE.len())
                .min(buf.len() - written);
            buf[written..written + take].copy_from_slice(&BIG_LINE[..take]);
            written += take;
            self.left -= take as u64;
        }
        Ok(written)
    }
}

/// Resets the peak resident memory of this process (Linux: `clear_refs` 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A TLS server on loopback that reads everything and throws it away,
/// then answers one byte; with the testkit's CA and certificate.
fn tls_sink(server: &TestServer) -> (SocketAddr, thread::JoinHandle<u64>) {
    let (chain, key) = server.ca().server_identity();
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let connection = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match tls.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => total += read as u64,
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(error) => panic!("sink: {error}"),
            }
        }
        total
    });
    (addr, handle)
}

fn big_message(sizes: Sizes) {
    let size = sizes.big;
    println!(
        "\n## One big message ({} MiB via `send_reader`, loopback, implicit TLS + AUTH, BDAT)",
        size >> 20
    );
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            size: None,
            ..Extensions::default()
        })
        .discard_bodies()
        .start()
        .unwrap();
    let ours = client(&server, server.port(), Security::ImplicitTls);
    // Warm-up, then measure.
    ours.send(&envelope(1), &message(2048, 0)).unwrap();
    let mut runs = Vec::new();
    for _ in 0..sizes.big_rounds {
        reset_peak();
        let before = peak_kib();
        let started = Instant::now();
        let mut connection = ours.connect().unwrap();
        connection
            .send_reader(
                &envelope(1),
                &mut BigMessage::new(size),
                BodyInfo::default(),
            )
            .unwrap();
        connection.quit().unwrap();
        let ours_time = started.elapsed();
        let ours_peak = peak_kib();
        // The last line is cut short; the client ends it with CRLF.
        let transcript = server.transcript();
        assert!(
            transcript.contains(&format!("<message: {size} bytes>"))
                || transcript.contains(&format!("<message: {} bytes>", size + 2)),
            "the server did not get all {size} bytes"
        );

        reset_peak();
        let rustls_before = peak_kib();
        let (addr, sink) = tls_sink(&server);
        let started = Instant::now();
        let mut tls = tls_client(&server, addr);
        let mut source = BigMessage::new(size);
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = source.read(&mut buffer).unwrap();
            if read == 0 {
                break;
            }
            tls.write_all(&buffer[..read]).unwrap();
        }
        tls.flush().unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        let _ = tls.sock.shutdown(Shutdown::Write);
        let received = sink.join().unwrap();
        let bare_time = started.elapsed();
        let bare_peak = peak_kib();
        assert_eq!(received, size);

        runs.push((
            ours_time,
            ours_peak,
            before,
            bare_time,
            bare_peak,
            rustls_before,
        ));
    }
    let mbs = |t: Duration| size as f64 / 1e6 / t.as_secs_f64();
    println!(
        "| run | tls-mailer `send_reader` MB/s | peak RSS (RSS before) | bare rustls copy MB/s (ceiling) | peak RSS (RSS before) | ratio of MB/s |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (k, (ours_time, ours_peak, before, bare_time, bare_peak, rustls_before)) in
        runs.iter().enumerate()
    {
        let ratio = mbs(*ours_time) / mbs(*bare_time);
        ratios.push(ratio);
        println!(
            "| {} | **{:.0}** ({:.2} s) | {ours_peak} KiB ({before} KiB) | {:.0} ({:.2} s) | {bare_peak} KiB ({rustls_before} KiB) | {ratio:.2}× |",
            k + 1,
            mbs(*ours_time),
            ours_time.as_secs_f64(),
            mbs(*bare_time),
            bare_time.as_secs_f64(),
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio {:.2}×", ratios[ratios.len() / 2]);
}
