#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! One table of scripted conversations against both drivers: each case runs
//! through the blocking `Connection` and (with the `tokio` feature) through
//! the `AsyncConnection`, each against a fresh loopback server built the same
//! way. Both must reach the expected outcome, and the servers must have seen
//! the same conversation (their transcripts, queue ids aside) and stored the
//! same messages.

use std::io::Read as _;
use std::time::Duration;

use tls_mailer::{
    BodyInfo, Client, ClientBuilder, Credentials, Envelope, Error, Protocol, Security, SendReport,
    Timeouts,
};
use tls_mailer_testkit::{CertKind, Extensions, Fault, Mode, Stage, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const MESSAGE: &[u8] = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: test\r\n\r\nHello\r\n.leading dot\r\n";
/// The recipients of the three messages sent over one connection; the
/// second is refused by the server.
const THREE: [&str; 3] = ["b@x.org", "nobody@x.org", "c@x.org"];
/// The size of the streamed message sent to the trickling server.
const BIG: u64 = 24 << 20;

/// What the client does in a case.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// One message, one connection (`send`).
    One,
    /// [`THREE`] over one connection, then QUIT.
    ThreeOnOneConnection,
    /// A [`BIG`] message streamed from a reader (`send_reader`).
    BigStream,
    /// [`batch`] pipelined over one connection (`send_batch`), then QUIT.
    Batch,
    /// [`BINARY`], a message with NUL bytes and bare line ends (`send`).
    Binary,
    /// One message to all of [`THREE`] (`send`).
    OneToThree,
}

/// A binary message (RFC 3030): it must arrive byte for byte.
const BINARY: &[u8] = b"From: alice@example.org\r\nSubject: png\r\n\r\n\x89PNG\r\n\x1a\n\0\0\r.\n";

/// A server offering BINARYMIME (with CHUNKING) or not.
fn binary_server(binary_mime: bool) -> Vec<TestServer> {
    vec![
        TestServer::builder()
            .auth(USER, PASSWORD)
            .extensions(Extensions {
                binary_mime,
                ..Extensions::default()
            })
            .start()
            .unwrap(),
    ]
}

/// Ten mails for one batch; the fifth one's only recipient is refused.
fn batch() -> Vec<tls_mailer::Mail<&'static [u8]>> {
    (0..10)
        .map(|index| {
            let to = if index == 4 {
                THREE[1].to_owned()
            } else {
                format!("r{index}@x.org")
            };
            tls_mailer::Mail::from_bytes(envelope(&to), MESSAGE)
        })
        .collect()
}

/// A row of the table.
struct Case {
    /// The servers (none, one, or an implicit-TLS port and its fallback).
    servers: fn() -> Vec<TestServer>,
    /// The client's settings against them.
    client: fn(&[TestServer]) -> ClientBuilder,
    script: Script,
    /// What each step comes to: a piece of its [`outcome`].
    expect: &'static [&'static str],
    /// Longest a run may take.
    within: Duration,
}

fn server(mode: Mode, faults: &[Fault]) -> TestServer {
    let mut builder = TestServer::builder().mode(mode).auth(USER, PASSWORD);
    for fault in faults {
        builder = builder.fault(fault.clone());
    }
    builder.start().unwrap()
}

/// A client of `server` trusting only its CA.
fn client(server: &TestServer, security: Security, timeout: Duration) -> ClientBuilder {
    Client::builder("localhost")
        .port(server.port())
        .security(security)
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(timeout))
}

fn envelope(to: &str) -> Envelope {
    Envelope::new("alice@example.org", [to]).unwrap()
}

fn to_three() -> Envelope {
    Envelope::new("alice@example.org", THREE).unwrap()
}

/// An LMTP server on a fresh Unix socket in the temporary directory
/// (removed when the server is dropped).
fn lmtp_socket_server(extensions: Extensions, faults: &[Fault]) -> TestServer {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "tls-mailer-lmtp-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_file(&path);
    let mut builder = TestServer::builder()
        .lmtp()
        .unix_socket(path)
        .extensions(extensions);
    for fault in faults {
        builder = builder.fault(fault.clone());
    }
    builder.start().unwrap()
}

/// An LMTP client of a server on a Unix socket.
fn lmtp_socket_client(server: &TestServer) -> ClientBuilder {
    Client::unix_socket(server.unix_socket().unwrap())
        .protocol(Protocol::Lmtp)
        .timeouts(Timeouts::uniform(QUICK))
}

/// A step's result, in words both drivers must agree on.
fn outcome(result: &Result<SendReport, Error>) -> String {
    match result {
        Ok(report) => {
            let mut words = format!(
                "accepted: {} recipient(s) over {:?}, TLS {}",
                report.recipients.len(),
                report.security,
                report.tls.is_some()
            );
            let refused: Vec<String> = report
                .rejected()
                .map(|o| format!("{} {} {:?}", o.address, o.reply.code().value(), o.command))
                .collect();
            if !refused.is_empty() {
                words.push_str(&format!("; refused: {}", refused.join(", ")));
            }
            words
        }
        Err(error) => failure(error),
    }
}

fn failure(error: &Error) -> String {
    match error {
        Error::Timeout { phase } => format!("timeout: {phase:?}"),
        Error::Tls { reason, .. } => format!("tls: {reason}"),
        Error::Protocol(error) => format!("protocol: {error:?}"),
        Error::Unsupported(what) => format!("unsupported: {what:?}"),
        Error::Rejected(rejection) => format!(
            "rejected: {:?} {}",
            rejection.command,
            rejection.code().value()
        ),
        Error::RecipientsRejected(outcomes) => {
            let refused: Vec<String> = outcomes
                .iter()
                .map(|outcome| format!("{} {}", outcome.address, outcome.reply.code().value()))
                .collect();
            format!("recipients rejected: {}", refused.join(", "))
        }
        Error::Io { phase, source } => format!("io: {phase:?} {:?}", source.kind()),
        Error::PlaintextNotLoopback { host } => format!("plaintext refused: {host}"),
        Error::FallbackFailed {
            implicit_tls,
            starttls,
        } => format!(
            "fallback failed: {} / {}",
            failure(implicit_tls),
            failure(starttls)
        ),
        other => format!("other: {other}"),
    }
}

fn quit_outcome(result: Result<(), Error>) -> String {
    match result {
        Ok(()) => "quit".into(),
        Err(error) => format!("quit: {}", failure(&error)),
    }
}

fn big_header() -> &'static [u8] {
    b"Subject: big\r\n\r\n"
}

fn run_blocking(client: &Client, script: Script) -> Vec<String> {
    match script {
        Script::One => vec![outcome(&client.send(&envelope(THREE[0]), MESSAGE))],
        Script::OneToThree => vec![outcome(&client.send(&to_three(), MESSAGE))],
        Script::ThreeOnOneConnection => {
            let mut connection = match client.connect() {
                Ok(connection) => connection,
                Err(error) => return vec![failure(&error)],
            };
            let mut steps: Vec<String> = THREE
                .iter()
                .map(|to| outcome(&connection.send(&envelope(to), MESSAGE)))
                .collect();
            steps.push(quit_outcome(connection.quit()));
            steps
        }
        Script::BigStream => {
            let mut body = big_header().chain(std::io::repeat(b'a').take(BIG));
            let result = client.send_reader(&envelope(THREE[0]), &mut body, BodyInfo::default());
            vec![outcome(&result)]
        }
        Script::Batch => {
            let mut connection = match client.connect() {
                Ok(connection) => connection,
                Err(error) => return vec![failure(&error)],
            };
            let mut steps: Vec<String> =
                connection.send_batch(batch()).iter().map(outcome).collect();
            steps.push(quit_outcome(connection.quit()));
            steps
        }
        Script::Binary => vec![outcome(&client.send(&envelope(THREE[0]), BINARY))],
    }
}

#[cfg(feature = "tokio")]
fn run_async(client: &Client, script: Script) -> Vec<String> {
    use tokio::io::AsyncReadExt;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match script {
            Script::One => vec![outcome(
                &client.send_async(&envelope(THREE[0]), MESSAGE).await,
            )],
            Script::OneToThree => vec![outcome(&client.send_async(&to_three(), MESSAGE).await)],
            Script::ThreeOnOneConnection => {
                let mut connection = match client.connect_async().await {
                    Ok(connection) => connection,
                    Err(error) => return vec![failure(&error)],
                };
                let mut steps = Vec::new();
                for to in THREE {
                    steps.push(outcome(&connection.send(&envelope(to), MESSAGE).await));
                }
                steps.push(quit_outcome(connection.quit().await));
                steps
            }
            Script::BigStream => {
                let body = AsyncReadExt::chain(big_header(), tokio::io::repeat(b'a').take(BIG));
                let result = client
                    .send_reader_async(&envelope(THREE[0]), body, BodyInfo::default())
                    .await;
                vec![outcome(&result)]
            }
            Script::Batch => {
                let mut connection = match client.connect_async().await {
                    Ok(connection) => connection,
                    Err(error) => return vec![failure(&error)],
                };
                let results = connection.send_batch(batch()).await;
                let mut steps: Vec<String> = results.iter().map(outcome).collect();
                steps.push(quit_outcome(connection.quit().await));
                steps
            }
            Script::Binary => vec![outcome(
                &client.send_async(&envelope(THREE[0]), BINARY).await,
            )],
        }
    })
}

/// What a server saw: its transcript once it stops changing (it handles the
/// client's last words on its own threads), queue ids replaced, and the
/// messages it stored.
fn seen(server: &TestServer) -> (String, Vec<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut transcript = server.transcript();
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = server.transcript();
        if now == transcript {
            break;
        }
        transcript = now;
    }
    // A TLS ClientHello sent to a plaintext server is random bytes, of
    // which the server reads as many "lines" as arrive before the client
    // hangs up: one `<not SMTP>` stands for all of them, and its 500s.
    const NOT_SMTP: &str = "C: <not SMTP>";
    let mut lines: Vec<String> = Vec::new();
    for line in transcript.lines() {
        let line =
            if line.starts_with("C: ") && line.chars().any(|c| c.is_control() || c == '\u{fffd}') {
                NOT_SMTP.to_owned()
            } else if let Some(at) = line.find("queued as ") {
                format!("{}queued as <id>", &line[..at])
            } else if line.starts_with("S: 334 ") {
                // SASL challenges: SCRAM's hold fresh nonces.
                "S: 334 <challenge>".to_owned()
            } else {
                line.to_owned()
            };
        let after_not_smtp = lines.last().is_some_and(|last| last == NOT_SMTP);
        // Random bytes hold line ends, so some "lines" are empty or
        // printable: after a `<not SMTP>`, every client line is part of it.
        if after_not_smtp && (line.starts_with("C: ") || line.starts_with("S: 500 ")) {
            continue;
        }
        lines.push(line);
    }
    // Whether a pipelined mail starts with RSET depends on whether the one
    // before still awaited its outcome at that moment: timing, not protocol.
    let mut kept: Vec<String> = Vec::new();
    for line in lines {
        let after_rset = kept.last().is_some_and(|last| last == "C: RSET");
        if after_rset && line.starts_with("S: 250") {
            kept.pop();
            continue;
        }
        kept.push(line);
    }
    let transcript = kept.join("\n");
    let messages = server
        .messages()
        .iter()
        .map(|message| {
            format!(
                "{} -> {:?}, {} bytes, TLS {}, user {:?}, {}",
                message.mail_from,
                message.rcpt_to,
                message.data.len(),
                message.tls,
                message.auth_user,
                if message.data == MESSAGE {
                    "as sent"
                } else {
                    "altered"
                }
            )
        })
        .collect();
    (transcript, messages)
}

/// One run of a case through one driver: the steps' outcomes and what each
/// server saw.
type Run = (Vec<String>, Vec<(String, Vec<String>)>);

fn run_once(case: &Case, driver: &str, run: fn(&Client, Script) -> Vec<String>) -> Run {
    let servers = (case.servers)();
    let client = (case.client)(&servers).build().unwrap();
    let started = std::time::Instant::now();
    let steps = run(&client, case.script);
    let elapsed = started.elapsed();
    assert!(
        elapsed < case.within,
        "{driver}: took {elapsed:?}, {steps:?}"
    );
    assert_eq!(steps.len(), case.expect.len(), "{driver}: {steps:?}");
    for (step, expected) in steps.iter().zip(case.expect) {
        assert!(
            step.contains(expected),
            "{driver}: {step:?} is not {expected:?}; all steps: {steps:?}"
        );
    }
    (steps, servers.iter().map(seen).collect())
}

fn check(case: Case) {
    let blocking = run_once(&case, "blocking", run_blocking);
    #[cfg(feature = "tokio")]
    {
        let tokio = run_once(&case, "tokio", run_async);
        assert_eq!(blocking.0, tokio.0, "outcomes differ");
        for (index, (blocking, tokio)) in blocking.1.iter().zip(&tokio.1).enumerate() {
            assert_eq!(
                blocking.0, tokio.0,
                "server {index}: transcripts differ (blocking, then tokio)"
            );
            assert_eq!(
                blocking.1, tokio.1,
                "server {index}: stored messages differ"
            );
        }
    }
    #[cfg(not(feature = "tokio"))]
    let _ = blocking;
}

/// The table: one test per row.
macro_rules! table {
    ($($name:ident => $case:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check($case);
            }
        )*
    };
}

const QUICK: Duration = Duration::from_secs(10);

table! {
    scram_sha_256_plus_bound_to_the_tls_session => Case {
        servers: || vec![TestServer::builder()
            .auth(USER, PASSWORD)
            .auth_mechanisms(&["SCRAM-SHA-256-PLUS"])
            .start()
            .unwrap()],
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK)
            .auth_mechanisms(&[tls_mailer::Mechanism::ScramSha256Plus]),
        script: Script::One,
        expect: &["accepted: 1 recipient(s)"],
        within: QUICK,
    };
    binary_message_goes_verbatim_to_a_binarymime_server => Case {
        servers: || binary_server(true),
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::Binary,
        expect: &["accepted: 1 recipient(s)"],
        within: QUICK,
    };
    binary_message_is_refused_before_mail_without_binarymime => Case {
        servers: || binary_server(false),
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::Binary,
        expect: &["unsupported: BinaryMime"],
        within: QUICK,
    };
    implicit_tls_with_auth => Case {
        servers: || vec![server(Mode::ImplicitTls, &[])],
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::One,
        expect: &["accepted: 1 recipient(s) over ImplicitTls, TLS true"],
        within: QUICK,
    };
    starttls => Case {
        servers: || vec![server(Mode::StartTls, &[])],
        client: |servers| client(&servers[0], Security::StartTls, QUICK),
        script: Script::One,
        expect: &["accepted: 1 recipient(s) over StartTls, TLS true"],
        within: QUICK,
    };
    three_messages_accepted_refused_accepted_over_one_connection => Case {
        servers: || vec![server(Mode::ImplicitTls, &[Fault::RejectRecipient {
            address: THREE[1].into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        }])],
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::ThreeOnOneConnection,
        expect: &[
            "accepted: 1 recipient(s)",
            "recipients rejected: nobody@x.org 550",
            "accepted: 1 recipient(s)",
            "quit",
        ],
        within: QUICK,
    };
    starttls_not_offered => Case {
        servers: || vec![server(Mode::StartTls, &[Fault::NoStartTls])],
        client: |servers| client(&servers[0], Security::StartTls, QUICK),
        script: Script::One,
        expect: &["unsupported: StartTls"],
        within: QUICK,
    };
    response_injection_after_starttls => Case {
        servers: || vec![server(Mode::StartTls, &[Fault::InjectAfterStartTls(
            b"250-evil\r\n250 AUTH PLAIN\r\n".to_vec(),
        )])],
        client: |servers| client(&servers[0], Security::StartTls, QUICK),
        script: Script::One,
        expect: &["protocol: BytesAfterStartTls"],
        within: QUICK,
    };
    a_stall_at_the_final_reply_times_out_in_data_end => Case {
        servers: || vec![server(Mode::ImplicitTls, &[Fault::Stall { stage: Stage::DataEnd }])],
        client: |servers| client(&servers[0], Security::ImplicitTls, Duration::from_secs(1)),
        script: Script::One,
        expect: &["timeout: DataEnd"],
        within: Duration::from_secs(5),
    };
    garbage_greeting => Case {
        servers: || vec![server(Mode::ImplicitTls, &[Fault::Garbage {
            stage: Stage::Greeting,
            bytes: b"HTTP/1.1 400 Bad Request\r\n".to_vec(),
        }])],
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::One,
        expect: &["protocol: MalformedReply"],
        within: QUICK,
    };
    untrusted_certificate => Case {
        servers: || vec![TestServer::builder()
            .cert(CertKind::UntrustedCa)
            .auth(USER, PASSWORD)
            .start()
            .unwrap()],
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::One,
        expect: &["not signed by a trusted authority"],
        within: QUICK,
    };
    a_trickling_server_cannot_stretch_the_body_upload => Case {
        servers: || vec![TestServer::builder()
            .mode(Mode::Plaintext)
            .fault(Fault::TrickleBody)
            .start()
            .unwrap()],
        client: |servers| {
            let mut timeouts = Timeouts::uniform(Duration::from_secs(1));
            // After a 1 s allowance the upload must average 1 MiB/s; the
            // server takes about 10 KiB/s, each write still making progress.
            timeouts.min_upload_rate = 1 << 20;
            Client::builder("127.0.0.1")
                .port(servers[0].port())
                .security(Security::DangerousPlaintext)
                .timeouts(timeouts)
        },
        script: Script::BigStream,
        expect: &["timeout: DataBlock"],
        within: Duration::from_secs(10),
    };
    fallback_to_starttls_when_the_implicit_port_speaks_plaintext => Case {
        servers: || vec![
            TestServer::builder().mode(Mode::Plaintext).start().unwrap(),
            server(Mode::StartTls, &[]),
        ],
        client: |servers| client(&servers[1], Security::ImplicitTlsOrStartTls, QUICK)
            .port(servers[0].port())
            .starttls_fallback_port(servers[1].port()),
        script: Script::One,
        expect: &["accepted: 1 recipient(s) over StartTls, TLS true"],
        within: QUICK,
    };
    a_certificate_failure_on_the_implicit_port_never_falls_back => Case {
        servers: || vec![
            TestServer::builder().cert(CertKind::UntrustedCa).start().unwrap(),
            server(Mode::StartTls, &[]),
        ],
        client: |servers| client(&servers[1], Security::ImplicitTlsOrStartTls, QUICK)
            .port(servers[0].port())
            .starttls_fallback_port(servers[1].port()),
        script: Script::One,
        expect: &["tls: "],
        within: QUICK,
    };
    a_batch_of_ten_pipelined_with_one_refused => Case {
        servers: || vec![server(Mode::ImplicitTls, &[Fault::RejectRecipient {
            address: THREE[1].into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        }])],
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::Batch,
        expect: &[
            "accepted: 1", "accepted: 1", "accepted: 1", "accepted: 1",
            "recipients rejected: nobody@x.org 550",
            "accepted: 1", "accepted: 1", "accepted: 1", "accepted: 1", "accepted: 1",
            "quit",
        ],
        within: QUICK,
    };
    a_batch_over_a_server_without_chunking => Case {
        servers: || vec![TestServer::builder()
            .auth(USER, PASSWORD)
            .extensions(Extensions { chunking: false, ..Extensions::default() })
            .fault(Fault::RejectRecipient {
                address: THREE[1].into(),
                code: 550,
                text: "5.1.1 no such user".into(),
            })
            .start()
            .unwrap()],
        client: |servers| client(&servers[0], Security::ImplicitTls, QUICK),
        script: Script::Batch,
        expect: &[
            "accepted: 1", "accepted: 1", "accepted: 1", "accepted: 1",
            "recipients rejected: nobody@x.org 550",
            "accepted: 1", "accepted: 1", "accepted: 1", "accepted: 1", "accepted: 1",
            "quit",
        ],
        within: QUICK,
    };
    lmtp_over_a_unix_socket_delivers_to_every_recipient => Case {
        servers: || vec![lmtp_socket_server(Extensions::default(), &[])],
        client: |servers| lmtp_socket_client(&servers[0]),
        script: Script::OneToThree,
        expect: &["accepted: 3 recipient(s) over DangerousPlaintext, TLS false"],
        within: QUICK,
    };
    lmtp_one_recipient_refused_after_the_data_with_bdat => Case {
        servers: || vec![lmtp_socket_server(Extensions::default(), &[Fault::RejectAfterData {
            address: THREE[1].into(),
            code: 452,
            text: "4.2.2 Mailbox is full".into(),
        }])],
        client: |servers| lmtp_socket_client(&servers[0]),
        script: Script::OneToThree,
        expect: &["accepted: 3 recipient(s) over DangerousPlaintext, TLS false; \
                   refused: nobody@x.org 452 DataEnd"],
        within: QUICK,
    };
    lmtp_one_recipient_refused_after_the_data_with_data => Case {
        servers: || vec![lmtp_socket_server(
            Extensions { chunking: false, ..Extensions::default() },
            &[Fault::RejectAfterData {
                address: THREE[1].into(),
                code: 550,
                text: "5.2.1 Mailbox disabled".into(),
            }],
        )],
        client: |servers| lmtp_socket_client(&servers[0]),
        script: Script::OneToThree,
        expect: &["refused: nobody@x.org 550 DataEnd"],
        within: QUICK,
    };
    lmtp_a_recipient_refused_at_rcpt_gets_no_reply_after_the_data => Case {
        servers: || vec![lmtp_socket_server(Extensions::default(), &[Fault::RejectRecipient {
            address: THREE[1].into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        }])],
        client: |servers| lmtp_socket_client(&servers[0]),
        script: Script::OneToThree,
        expect: &["accepted: 3 recipient(s) over DangerousPlaintext, TLS false; \
                   refused: nobody@x.org 550 RcptTo"],
        within: QUICK,
    };
    lmtp_every_recipient_refused_after_the_data_is_a_failure => Case {
        servers: || vec![lmtp_socket_server(Extensions::default(), &[Fault::RejectAfterData {
            address: THREE[0].into(),
            code: 550,
            text: "5.2.1 Mailbox disabled".into(),
        }])],
        client: |servers| lmtp_socket_client(&servers[0]),
        script: Script::One,
        expect: &["recipients rejected: b@x.org 550"],
        within: QUICK,
    };
    lmtp_a_server_gone_between_the_replies_keeps_the_delivery_it_reported => Case {
        servers: || vec![lmtp_socket_server(
            Extensions::default(),
            &[Fault::DropAfterRecipientReplies(1)],
        )],
        client: |servers| lmtp_socket_client(&servers[0]),
        script: Script::OneToThree,
        expect: &["accepted: 3 recipient(s) over DangerousPlaintext, TLS false; \
                   refused: nobody@x.org 451 DataEnd, c@x.org 451 DataEnd"],
        within: QUICK,
    };
    lmtp_over_tcp_takes_starttls_and_auth_as_smtp_does => Case {
        servers: || vec![TestServer::builder()
            .mode(Mode::StartTls)
            .lmtp()
            .auth(USER, PASSWORD)
            .start()
            .unwrap()],
        client: |servers| client(&servers[0], Security::StartTls, QUICK).protocol(Protocol::Lmtp),
        script: Script::OneToThree,
        expect: &["accepted: 3 recipient(s) over StartTls, TLS true"],
        within: QUICK,
    };
    plaintext_is_refused_for_a_host_that_is_not_loopback => Case {
        // 192.0.2.1 is TEST-NET-1: the check happens before any connection.
        servers: Vec::new,
        client: |_| Client::builder("192.0.2.1").security(Security::DangerousPlaintext),
        script: Script::One,
        expect: &["plaintext refused: 192.0.2.1"],
        within: QUICK,
    };
}

/// The async futures can be spawned on a multi-threaded runtime.
#[cfg(feature = "tokio")]
#[test]
fn the_async_connection_and_its_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = Client::builder("localhost").build().unwrap();
    let envelope = envelope("b@x.org");
    let connect = client.connect_async();
    assert_send(&connect);
    let send = client.send_async(&envelope, MESSAGE);
    assert_send(&send);
    let stream = client.send_reader_async(&envelope, &b"x"[..], BodyInfo::default());
    assert_send(&stream);
    fn assert_connection_send<T: Send + 'static>() {}
    assert_connection_send::<tls_mailer::AsyncConnection>();
}

/// A send whose future is dropped half way (a timeout around it) leaves the
/// connection unusable, and says so; nothing is delivered.
#[cfg(feature = "tokio")]
#[test]
fn an_async_send_dropped_half_way_leaves_the_connection_closed() {
    let server = server(
        Mode::ImplicitTls,
        &[Fault::Stall {
            stage: Stage::DataEnd,
        }],
    );
    let client = client(&server, Security::ImplicitTls, QUICK)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = client.connect_async().await.unwrap();
        assert!(connection.is_open());
        let to = envelope(THREE[0]);
        let send = connection.send(&to, MESSAGE);
        let cut_off = tokio::time::timeout(Duration::from_millis(300), send).await;
        assert!(cut_off.is_err(), "{cut_off:?}");
        assert!(!connection.is_open());
        let error = connection.noop().await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::ApiMisuse(tls_mailer::proto::ApiMisuse::Closed)
            ),
            "{error:?}"
        );
        connection.quit().await.unwrap();
    });
    assert!(server.messages().is_empty());
    assert!(!server.transcript().contains("C: NOOP"));
}

/// A server that says `421` to the fourth MAIL in the middle of a
/// pipelined batch (and, being the testkit, goes on answering what it had
/// already read): through both drivers the three before are accepted, the
/// fourth gets the 421, the mails in flight behind it get the outcomes the
/// server gave them, no new mail starts, and the results stop there. Every
/// mail reported accepted was stored once; none stored is reported failed.
#[test]
fn a_batch_cut_by_a_421_reports_each_mail_as_the_server_decided() {
    fn check_run(driver: &str, server: &TestServer, results: Vec<Result<SendReport, Error>>) {
        assert!((4..=10).contains(&results.len()), "{driver}: {results:?}");
        assert!(
            results[..3].iter().all(Result::is_ok),
            "{driver}: {results:?}"
        );
        assert!(
            matches!(&results[3], Err(Error::Rejected(r)) if r.code().value() == 421),
            "{driver}: {:?}",
            results[3]
        );
        let stored: Vec<Vec<String>> = server.messages().into_iter().map(|m| m.rcpt_to).collect();
        let accepted: Vec<Vec<String>> = results
            .iter()
            .filter_map(|result| result.as_ref().ok())
            .map(|report| {
                report
                    .recipients
                    .iter()
                    .map(|r| r.address.clone())
                    .collect()
            })
            .collect();
        assert_eq!(stored, accepted, "{driver}: {results:?}");
        for result in &results {
            if let Err(error) = result {
                assert!(error.is_transient(), "{driver}: {error}");
            }
        }
    }
    let fault = Fault::EveryNth {
        n: 4,
        fault: Box::new(Fault::Reply {
            stage: Stage::MailFrom,
            code: 421,
            text: "4.3.2 shutting down".into(),
        }),
    };
    batch_through_both_drivers(&[fault], check_run);
}

/// A server that takes three messages per connection, then answers the
/// next MAIL with 421 and closes while the client is still writing the
/// mails pipelined behind it. Through both drivers: no mail is reported
/// accepted that the server did not store, every failure is temporary, and
/// when the 421 was read (the close can reset the connection first, and a
/// reset discards replies not read yet) the mails behind it say the server
/// took nothing more, so they may go again.
#[test]
fn a_batch_meeting_a_connection_limit_gets_every_known_outcome() {
    fn check_run(driver: &str, server: &TestServer, results: Vec<Result<SendReport, Error>>) {
        assert_eq!(server.messages().len(), 3, "{driver}");
        let accepted = results.iter().filter(|result| result.is_ok()).count();
        assert!(accepted <= 3, "{driver}: {results:?}");
        assert!(
            results[..accepted].iter().all(Result::is_ok),
            "{driver}: {results:?}"
        );
        for error in results.iter().filter_map(|result| result.as_ref().err()) {
            assert!(error.is_transient(), "{driver}: {error}");
        }
        let refused_at = results.iter().position(
            |result| matches!(result, Err(Error::Rejected(r)) if r.code().value() == 421),
        );
        if let Some(at) = refused_at {
            assert_eq!(at, 3, "{driver}: {results:?}");
            for result in &results[4..] {
                assert!(
                    matches!(result, Err(Error::ServiceClosing(_))),
                    "{driver}: {result:?}"
                );
            }
        }
    }
    for _ in 0..5 {
        batch_through_both_drivers(&[Fault::LimitPerConnection(3)], check_run);
    }
}

/// Ten mails to `r0@x.org`..`r9@x.org`, one batch through each driver, each
/// against a fresh server with `faults`; `check` judges each run.
fn batch_through_both_drivers(
    faults: &[Fault],
    check: fn(&str, &TestServer, Vec<Result<SendReport, Error>>),
) {
    let mails = || {
        (0..10).map(|index| {
            tls_mailer::Mail::from_bytes(envelope(&format!("r{index}@x.org")), MESSAGE)
        })
    };
    let blocking = server(Mode::ImplicitTls, faults);
    let sender = client(&blocking, Security::ImplicitTls, QUICK)
        .build()
        .unwrap();
    let results = sender.connect().unwrap().send_batch(mails());
    check("blocking", &blocking, results);
    #[cfg(feature = "tokio")]
    {
        let asynchronous = server(Mode::ImplicitTls, faults);
        let sender = client(&asynchronous, Security::ImplicitTls, QUICK)
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results = runtime.block_on(async {
            sender
                .connect_async()
                .await
                .unwrap()
                .send_batch(mails())
                .await
        });
        check("tokio", &asynchronous, results);
    }
}

/// No TLS over a Unix socket: asking for it is refused when the client is
/// built, naming the socket, before anything is opened.
#[test]
fn tls_over_a_unix_socket_is_refused_when_built() {
    for security in [
        Security::ImplicitTls,
        Security::StartTls,
        Security::ImplicitTlsOrStartTls,
    ] {
        let error = Client::unix_socket("/nonexistent/lmtp")
            .security(security)
            .build()
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("/nonexistent/lmtp") && text.contains("no TLS"),
            "{text}"
        );
    }
    // A socket that is not there is a connect error naming it.
    let client = Client::unix_socket("/nonexistent/lmtp").build().unwrap();
    let error = client.send(&envelope(THREE[0]), MESSAGE).unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("the Unix socket /nonexistent/lmtp"),
        "{error}"
    );
}
