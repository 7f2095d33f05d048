//! What the pool tests of both drivers share: the server, the client, the
//! messages and what the server must have seen.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tls_mailer::{Client, Credentials, Envelope, Security, Timeouts};
use tls_mailer_testkit::{Extensions, Fault, Mode, ReceivedMessage, Stage, TestServer};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";

/// An implicit-TLS server with AUTH and these faults.
pub fn server(faults: &[Fault]) -> TestServer {
    server_with(Extensions::default(), faults)
}

/// A server without CHUNKING: the body waits for DATA's 354, so a mail
/// refused at MAIL has not had its body read, and may go again.
#[allow(dead_code)] // not every test file uses it
pub fn data_only_server(faults: &[Fault]) -> TestServer {
    server_with(
        Extensions {
            chunking: false,
            ..Extensions::default()
        },
        faults,
    )
}

fn server_with(extensions: Extensions, faults: &[Fault]) -> TestServer {
    let mut builder = TestServer::builder()
        .mode(Mode::ImplicitTls)
        .extensions(extensions)
        .auth(USER, PASSWORD);
    for fault in faults {
        builder = builder.fault(fault.clone());
    }
    builder.start().unwrap()
}

/// A client of `server`, trusting only its CA, with 10 s deadlines.
pub fn client(server: &TestServer) -> Client {
    Client::builder("127.0.0.1")
        .port(server.port())
        .security(Security::ImplicitTls)
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(10)))
        .build()
        .unwrap()
}

/// The envelope and message of message number `n`, told apart by their
/// recipient and subject.
pub fn message(n: usize) -> (Envelope, Vec<u8>) {
    let to = format!("user{n}@example.org");
    let envelope = Envelope::new("alice@example.org", [to.as_str()]).unwrap();
    let body =
        format!("From: alice@example.org\r\nTo: {to}\r\nSubject: message {n}\r\n\r\nHello {n}\r\n");
    (envelope, body.into_bytes())
}

/// The server closes a connection idle for half a second, with or without
/// a `421` (long enough for a loaded machine between two commands of one
/// operation; the tests wait for the close rather than for a time).
pub fn idle_close(with_421: bool) -> Fault {
    Fault::CloseWhenIdle {
        after: Duration::from_millis(500),
        with_421,
    }
}

/// Every second mail the server sees gets this fault at `stage`.
pub fn every_second(fault: Fault) -> Fault {
    Fault::EveryNth {
        n: 2,
        fault: Box::new(fault),
    }
}

/// `421` to MAIL FROM.
pub fn refuse_mail_421() -> Fault {
    Fault::Reply {
        stage: Stage::MailFrom,
        code: 421,
        text: "4.3.2 Service shutting down".into(),
    }
}

/// Waits (at most 10 s) until the server has closed `count` connections
/// for being idle.
pub fn wait_for_idle_closes(server: &TestServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.transcript().matches("-- closed: idle").count() < count {
        assert!(Instant::now() < deadline, "{}", server.transcript());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that the server accepted messages `0..count` exactly once each.
pub fn assert_each_accepted_once(server: &TestServer, count: usize) -> Vec<ReceivedMessage> {
    let messages = server.wait_for_messages(count, Duration::from_secs(10));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for message in &messages {
        *seen.entry(message.rcpt_to.join(",")).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..count)
        .map(|n| (format!("user{n}@example.org"), 1))
        .collect();
    assert_eq!(seen, expected, "each message accepted exactly once");
    messages
}

/// How many messages each connection (by the server's number) carried.
pub fn messages_per_connection(messages: &[ReceivedMessage]) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for message in messages {
        *counts.entry(message.connection).or_default() += 1;
    }
    counts
}

/// How many times the client said `command` (a verb, e.g. `NOOP`).
pub fn said(server: &TestServer, command: &str) -> usize {
    let prefix = format!("C: {command}");
    server
        .transcript()
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .count()
}

/// [`client`], also counting the MAIL commands it writes (from its trace).
pub fn counting_client(
    server: &TestServer,
) -> (Client, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let written = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let client = Client::builder("127.0.0.1")
        .port(server.port())
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .on_trace(move |event| {
            if let tls_mailer::TraceEvent::Client(line) = event
                && line.starts_with("MAIL FROM")
            {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    (client, written)
}
