#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Runs each program in `examples/` against the testkit server over loopback
//! TLS, with the environment variables the examples document, and checks
//! what the server received.
//!
//! The examples are separate binaries: `cargo test -p tls-mailer` builds
//! them (into `target/debug/examples/`), `cargo test --test examples` alone
//! does not. A missing or out-of-date binary fails the test, saying how to
//! build it, rather than testing old code.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tls_mailer::Email;
use tls_mailer::outbox::{Listed, Outbox};
use tls_mailer_testkit::{Fault, ReceivedMessage, Stage, TestServer};

const USER: &str = "alice@example.org";
const PASSWORD: &str = "correct horse battery staple";
const FROM: &str = "alice@example.org";
const TO: &str = "bob@example.org";
/// Every variable an example reads, removed before the test sets its own,
/// so that a developer's real settings never leak into a run.
const VARIABLES: &[&str] = &[
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_CA_FILE",
    "MAIL_FROM",
    "MAIL_TO",
    "OUTBOX_DIR",
    "OAUTH_PROVIDER",
    "OAUTH_TOKEN_URL",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "OAUTH_REFRESH_TOKEN",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

fn server() -> TestServer {
    TestServer::builder().auth(USER, PASSWORD).start().unwrap()
}

/// A server's CA in a file, for `SMTP_CA_FILE` or `SSL_CERT_FILE`.
fn write_ca(server: &TestServer, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, server.ca_pem()).unwrap();
    path
}

/// The compiled example `name`, next to this test's own directory
/// (`target/debug/deps/` -> `target/debug/examples/`), checked to be newer
/// than every source file it was built from.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap();
    let binary = debug
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let build = "build the examples with `cargo test -p tls-mailer` (which builds them; add \
                 `--features tokio` for async_send), or `cargo build -p tls-mailer --examples`";
    let built = std::fs::metadata(&binary)
        .and_then(|metadata| metadata.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", binary.display()));
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    for file in std::iter::once(source).chain(sources_of(&binary)) {
        let changed = std::fs::metadata(&file).and_then(|metadata| metadata.modified());
        // A file that is gone changed too.
        assert!(
            changed.is_ok_and(|changed| changed <= built),
            "{} is older than {}: {build}",
            binary.display(),
            file.display()
        );
    }
    binary
}

/// The files cargo built `binary` from, as its dep-info file beside it
/// (`NAME.d`, `target: file file ...`, spaces escaped) lists them: the
/// example and the sources of the workspace crates it uses.
fn sources_of(binary: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(binary.with_extension("d")) else {
        return Vec::new();
    };
    let Some((_, files)) = text.lines().next().and_then(|line| line.split_once(": ")) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    let mut path = String::new();
    let mut chars = files.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => path.extend(chars.next()),
            ' ' => paths.push(PathBuf::from(std::mem::take(&mut path))),
            c => path.push(c),
        }
    }
    paths.push(PathBuf::from(path));
    paths.retain(|path| !path.as_os_str().is_empty());
    paths
}

/// Runs example `name` with `args` and the environment `env` (and nothing
/// else of what the examples read), for at most a minute; panics unless it
/// exits 0.
fn run(name: &str, args: &[&str], env: &[(&str, OsString)]) -> Output {
    let mut command = Command::new(example_binary(name));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for variable in VARIABLES {
        command.env_remove(variable);
    }
    command.envs(env.iter().map(|(name, value)| (name, value)));
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!("example {name} did not finish within a minute: {output:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "example {name} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The environment for the server on `port`, trusting `ca_file` through
/// `SMTP_CA_FILE`.
fn env_for(port: &str, ca_file: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("SMTP_HOST", "localhost".into()),
        ("SMTP_PORT", port.into()),
        ("SMTP_USER", USER.into()),
        ("SMTP_PASSWORD", PASSWORD.into()),
        ("SMTP_CA_FILE", ca_file.into()),
        ("MAIL_FROM", FROM.into()),
        ("MAIL_TO", TO.into()),
    ]
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The envelope and login every example uses.
fn assert_envelope(message: &ReceivedMessage) {
    assert_eq!(message.mail_from, FROM);
    assert_eq!(message.rcpt_to, [TO]);
    assert_eq!(message.auth_user.as_deref(), Some(USER));
    assert!(message.tls);
}

fn subject(message: &ReceivedMessage) -> String {
    Email::parse(&message.data)
        .unwrap()
        .subject()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn send_mail_trusts_ssl_cert_file() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&server, dir.path(), "ca.pem");
    // send_mail uses the system store: the CA goes in SSL_CERT_FILE, and
    // SMTP_CA_FILE is not set.
    let mut env = env_for(&server.port().to_string(), &ca);
    env.retain(|(name, _)| *name != "SMTP_CA_FILE");
    env.push(("SSL_CERT_FILE", ca.into()));
    let output = run("send_mail", &[], &env);
    assert!(stdout(&output).starts_with("sent: 250"), "{output:?}");

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_envelope(&messages[0]);
    let data = String::from_utf8(messages[0].data.clone()).unwrap();
    assert!(
        data.starts_with(&format!("From: {FROM}\r\nTo: {TO}\r\n")),
        "{data}"
    );
    assert!(data.contains("Subject: Hello from send_mail\r\n"), "{data}");
}

#[test]
fn html_and_attachments_sends_every_part() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&server, dir.path(), "ca.pem");
    let env = env_for(&server.port().to_string(), &ca);
    run("html_and_attachments", &[], &env);

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_envelope(&messages[0]);
    let data = String::from_utf8_lossy(&messages[0].data).into_owned();
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("multipart/related"), "{data}");
    let email = Email::parse(&messages[0].data).unwrap();
    assert_eq!(email.subject(), Some("Monthly report"));
    assert!(email.text().unwrap().contains("Orders: 131"), "{data}");
    assert!(email.html().unwrap().contains("src=\"cid:logo\""), "{data}");
    let inline = email.inline_parts();
    assert_eq!(inline.len(), 1, "{data}");
    assert_eq!(inline[0].cid(), Some("logo"));
    assert_eq!(inline[0].content_type(), "image/png");
    assert!(inline[0].data().starts_with(b"\x89PNG\r\n\x1a\n"));
    let attachments = email.attachments();
    assert_eq!(attachments.len(), 1, "{data}");
    assert_eq!(attachments[0].name(), Some("report.csv"));
    assert_eq!(attachments[0].content_type(), "text/csv");
    assert_eq!(
        attachments[0].data(),
        b"month,orders\nOctober,112\nNovember,131\n"
    );
}

#[test]
fn pool_sends_from_every_thread_over_two_connections() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&server, dir.path(), "ca.pem");
    let env = env_for(&server.port().to_string(), &ca);
    let output = run("pool", &[], &env);
    assert!(
        stdout(&output).starts_with("sent 12 messages"),
        "{output:?}"
    );

    let messages = server.messages();
    assert_eq!(messages.len(), 12);
    messages.iter().for_each(assert_envelope);
    let mut subjects: Vec<String> = messages.iter().map(subject).collect();
    subjects.sort();
    let mut expected: Vec<String> = (1..=4)
        .flat_map(|thread| (1..=3).map(move |n| format!("Pool message {thread}-{n}")))
        .collect();
    expected.sort();
    assert_eq!(subjects, expected);
    // The example's max_connections: the threads shared them.
    assert!(
        server.peak_connections() <= 2,
        "{}",
        server.peak_connections()
    );
    assert!(server.connections() <= 2, "{}", server.connections());
}

#[test]
fn outbox_sends_at_once_when_the_server_is_up() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&server, dir.path(), "ca.pem");
    let spool = dir.path().join("outbox");
    let mut env = env_for(&server.port().to_string(), &ca);
    env.push(("OUTBOX_DIR", spool.clone().into()));
    let output = run("outbox", &[], &env);
    assert!(stdout(&output).starts_with("sent: 250"), "{output:?}");

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_envelope(&messages[0]);
    assert_eq!(subject(&messages[0]), "Nightly backup report");
    assert!(Outbox::open(&spool).unwrap().list().unwrap().is_empty());
}

#[test]
fn outbox_queues_on_a_temporary_failure_and_flush_sends_later() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("outbox");

    // A server that refuses every mail for now.
    let busy = TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(Fault::Reply {
            stage: Stage::MailFrom,
            code: 451,
            text: "4.3.0 try again later".into(),
        })
        .start()
        .unwrap();
    let port = busy.port();
    let ca = write_ca(&busy, dir.path(), "busy-ca.pem");
    let mut env = env_for(&port.to_string(), &ca);
    env.push(("OUTBOX_DIR", spool.clone().into()));
    let output = run("outbox", &["send"], &env);
    assert!(stdout(&output).starts_with("queued as "), "{output:?}");
    assert!(stdout(&output).contains("try again later"), "{output:?}");
    assert!(busy.messages().is_empty());
    assert_eq!(busy.mail_commands(), 1);

    let listed = Outbox::open(&spool).unwrap().list().unwrap();
    let [Listed::Entry(entry)] = listed.as_slice() else {
        panic!("one entry expected: {listed:?}");
    };
    assert_eq!(entry.sender, FROM);
    assert_eq!(entry.recipients, [TO]);
    assert_eq!(entry.route.port, port);
    assert_eq!(entry.route.user.as_deref(), Some(USER));
    drop(busy);

    // Later, the server is back on the same port (with another CA), and
    // the flush needs only the password, the CA and the spool.
    let server = restart_on(port);
    let ca = write_ca(&server, dir.path(), "ca.pem");
    let env = [
        ("SMTP_PASSWORD", PASSWORD.into()),
        ("SMTP_CA_FILE", ca.into()),
        ("OUTBOX_DIR", spool.clone().into()),
    ];
    let output = run("outbox", &["flush"], &env);
    assert!(stdout(&output).contains(": sent: 250"), "{output:?}");
    assert!(
        stdout(&output).contains("1 sent, 0 still queued, 0 set aside"),
        "{output:?}"
    );

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_envelope(&messages[0]);
    assert_eq!(subject(&messages[0]), "Nightly backup report");
    assert!(Outbox::open(&spool).unwrap().list().unwrap().is_empty());
}

/// A server on `port`, which a server just left: retried for a moment in
/// case a client of another test holds it as its own local port.
fn restart_on(port: u16) -> TestServer {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TestServer::builder()
            .auth(USER, PASSWORD)
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .start()
        {
            Ok(server) => return server,
            Err(error) if Instant::now() < deadline => {
                eprintln!("port {port} not free yet: {error}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("port {port}: {error}"),
        }
    }
}

#[cfg(feature = "tokio")]
#[test]
fn async_send_one_message_then_three_over_one_connection() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&server, dir.path(), "ca.pem");
    let env = env_for(&server.port().to_string(), &ca);
    run("async_send", &[], &env);

    let messages = server.messages();
    assert_eq!(messages.len(), 4);
    messages.iter().for_each(assert_envelope);
    let subjects: Vec<String> = messages.iter().map(subject).collect();
    assert_eq!(
        subjects,
        [
            "Async message",
            "Async batch 1",
            "Async batch 2",
            "Async batch 3"
        ]
    );
    // send_async on a connection of its own, the batch on another one.
    assert_eq!(server.connections(), 2);
    assert_ne!(messages[0].connection, messages[1].connection);
    assert!(
        messages[1..]
            .iter()
            .all(|message| message.connection == messages[1].connection)
    );
}

#[test]
fn oauth_renews_the_token_and_logs_in_with_it() {
    use tls_mailer_testkit::oauth::TokenEndpoint;
    let server = TestServer::builder()
        .auth(USER, "access-from-refresh")
        .auth_mechanisms(&["XOAUTH2"])
        .start()
        .unwrap();
    let endpoint = TokenEndpoint::builder()
        .client("example-client", Some("example-secret"))
        .refresh_token("refresh-1")
        .access_token("access-from-refresh", Some(3600))
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, format!("{}{}", server.ca_pem(), endpoint.ca_pem())).unwrap();
    let mut env = env_for(&server.port().to_string(), &ca);
    env.retain(|(name, _)| *name != "SMTP_PASSWORD");
    env.extend([
        ("OAUTH_TOKEN_URL", endpoint.token_url().into()),
        ("OAUTH_CLIENT_ID", "example-client".into()),
        ("OAUTH_CLIENT_SECRET", "example-secret".into()),
        ("OAUTH_REFRESH_TOKEN", "refresh-1".into()),
    ]);
    let output = run("oauth", &[], &env);
    let said = stdout(&output);
    assert!(said.starts_with("renewed the access token"), "{said}");
    assert!(said.contains("sent: 250"), "{said}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_envelope(&messages[0]);
    assert_eq!(endpoint.requests().len(), 1);
    assert_eq!(subject(&messages[0]), "Hello over OAuth");
}
