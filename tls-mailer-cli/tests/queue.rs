#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! `send --queue-on-failure` and `tls-mailer queue` against the testkit
//! server over loopback: a server that is down, one that answers 4xx, one
//! that answers 5xx, a partial delivery, and each queue subcommand.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{TestDir, code, stderr, stdout};

use tls_mailer_testkit::{Fault, Stage, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pässword";
const MESSAGE: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nBcc: hidden@example.org\r\nSubject: queued\r\n\r\nHello\r\n";
/// [`MESSAGE`] as sent: without its Bcc field.
const SENT: &str =
    "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: queued\r\n\r\nHello\r\n";

struct Run {
    dir: TestDir,
}

impl Run {
    fn new() -> Self {
        Self {
            dir: TestDir::new("queue-test"),
        }
    }

    fn spool(&self) -> String {
        self.dir.join("spool").to_str().unwrap().to_owned()
    }

    /// Runs `tls-mailer ARGS` with `stdin`; the password is in TEST_PASSWORD,
    /// and the default spool would be inside the test's directory.
    fn tls_mailer(&self, args: &[&str], stdin: &str) -> Output {
        let state = self.dir.join("state");
        common::tls_mailer(
            args,
            stdin.as_bytes(),
            &[
                ("TEST_PASSWORD", PASSWORD),
                ("XDG_STATE_HOME", state.to_str().unwrap()),
            ],
        )
    }

    fn ca(&self, server: &TestServer) -> String {
        let path = self.dir.join(format!("ca-{}.pem", server.port()));
        std::fs::write(&path, server.ca_pem()).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `send --queue-on-failure` to `port` (trusting `server`'s CA).
    fn send_queued(&self, server: &TestServer, port: u16, extra: &[&str], stdin: &str) -> Output {
        let ca = self.ca(server);
        let port = port.to_string();
        let spool = self.spool();
        let mut args = vec![
            "send",
            "--queue-on-failure",
            "--spool",
            &spool,
            "--host",
            "localhost",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "--user",
            USER,
            "--password-env",
            "TEST_PASSWORD",
            "--timeout",
            "10",
        ];
        args.extend_from_slice(extra);
        self.tls_mailer(&args, stdin)
    }

    /// `queue ARGS --spool SPOOL`.
    fn queue(&self, args: &[&str]) -> Output {
        let spool = self.spool();
        let mut all = vec!["queue"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--spool", &spool]);
        self.tls_mailer(&all, "")
    }

    /// `queue flush` to `server` (its port and CA), password from TEST_PASSWORD.
    fn flush(&self, server: &TestServer, extra: &[&str]) -> Output {
        let ca = self.ca(server);
        let port = server.port().to_string();
        let mut args = vec![
            "flush",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "--password-env",
            "TEST_PASSWORD",
            "--timeout",
            "10",
        ];
        args.extend_from_slice(extra);
        self.queue(&args)
    }

    /// The ids `queue list --json` reports, with their state.
    fn listed(&self) -> Vec<serde_json::Value> {
        let output = self.queue(&["list", "--json"]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap()
    }
}

fn server_with(faults: &[Fault]) -> TestServer {
    let mut builder = TestServer::builder().auth(USER, PASSWORD);
    for fault in faults {
        builder = builder.fault(fault.clone());
    }
    builder.start().unwrap()
}

/// A port nothing listens on: connections are refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The id in "queued as ID".
fn queued_id(output: &Output) -> String {
    let log = stderr(output);
    let start = log.find("queued as ").unwrap_or_else(|| panic!("{log}")) + "queued as ".len();
    log[start..].split([':', ' ']).next().unwrap().to_owned()
}

fn entry_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|listing| {
            listing
                .map(|item| item.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "entry"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_server_that_is_down_queues_the_message_which_a_flush_sends_later() {
    let run = Run::new();
    let server = server_with(&[]);
    let output = run.send_queued(&server, closed_port(), &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("tls-mailer: queued as "), "{log}");
    assert!(log.contains(": cannot connect to localhost:"), "{log}");
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    let id = queued_id(&output);
    // What is recorded: everything but the password.
    let files = entry_files(Path::new(&run.spool()));
    assert_eq!(files.len(), 1);
    let bytes = std::fs::read(&files[0]).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(
        text.ends_with(SENT),
        "the message as it will be sent: {text}"
    );
    let listed = run.listed();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["state"], "queued");
    assert_eq!(listed[0]["attempts"], 1);
    assert_eq!(
        listed[0]["recipients"],
        serde_json::json!(["bob@example.org"])
    );
    assert_eq!(listed[0]["route"]["user"], USER);
    assert_eq!(listed[0]["size"], SENT.len());
    assert!(
        listed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );
    let output = run.queue(&["list"]);
    assert_eq!(code(&output), 0);
    let table = stdout(&output);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains(&id) && table.contains("queued") && table.contains("bob@example.org"),
        "{table}"
    );
    let output = run.queue(&["show", &id]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let shown = stdout(&output);
    assert!(shown.contains(&format!("id: {id}\n")), "{shown}");
    assert!(
        shown.contains("attempts: 1\n") && shown.contains("next attempt: in "),
        "{shown}"
    );
    assert!(
        shown.contains("user: alice\n") && shown.contains("recipients: bob@example.org\n"),
        "{shown}"
    );
    assert!(shown.ends_with(&format!("\n\n{SENT}")), "{shown}");
    // The server is up now; the entry recorded the port that was down, and
    // --port sends it to the live one. Not due yet: --due leaves it.
    let output = run.flush(&server, &["--due"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(server.messages().is_empty());
    let output = run.flush(&server, &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with(&format!("sent {id}: 250")),
        "{}",
        stdout(&output)
    );
    let received = server.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data, SENT.as_bytes());
    assert_eq!(received[0].rcpt_to, ["bob@example.org"]);
    assert_eq!(received[0].auth_user.as_deref(), Some(USER));
    // Empty: nothing printed, and nothing more sent.
    let output = run.queue(&["list"]);
    assert_eq!((code(&output), stdout(&output).as_str()), (0, ""));
    assert_eq!(run.listed(), Vec::<serde_json::Value>::new());
    let output = run.flush(&server, &[]);
    assert_eq!((code(&output), stdout(&output).as_str()), (0, ""));
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn a_4xx_queues_and_a_flush_against_the_same_refusal_exits_75() {
    let run = Run::new();
    let busy = server_with(&[Fault::Reply {
        stage: Stage::MailFrom,
        code: 451,
        text: "4.3.0 try again later".into(),
    }]);
    let output = run.send_queued(&busy, busy.port(), &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains(": 451 4.3.0 try again later"),
        "{}",
        stderr(&output)
    );
    let id = queued_id(&output);
    let output = run.flush(&busy, &[]);
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains(&format!("{id} still queued (attempt 2, next in ")),
        "{log}"
    );
    assert_eq!(run.listed()[0]["attempts"], 2);
    assert!(busy.messages().is_empty());
}

#[test]
fn a_5xx_is_never_queued_and_exits_as_without_the_outbox() {
    let run = Run::new();
    let refusing = server_with(&[Fault::Reply {
        stage: Stage::DataEnd,
        code: 554,
        text: "5.7.1 rejected as spam".into(),
    }]);
    let output = run.send_queued(&refusing, refusing.port(), &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("554 5.7.1 rejected as spam"), "{log}");
    assert!(!log.contains("queued"), "{log}");
    assert!(entry_files(Path::new(&run.spool())).is_empty());
    assert!(run.listed().is_empty());
    // Unknown recipients (every one refused for good): 67, not queued.
    let unknown = server_with(&[Fault::RejectRecipient {
        address: "nobody@example.org".into(),
        code: 550,
        text: "5.1.1 no such user".into(),
    }]);
    let output = run.send_queued(&unknown, unknown.port(), &["nobody@example.org"], MESSAGE);
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    assert!(run.listed().is_empty());
    // A refused password (535) is not temporary: 77, not queued.
    let output = run.tls_mailer(
        &[
            "send",
            "--queue-on-failure",
            "--spool",
            &run.spool(),
            "--host",
            "localhost",
            "--port",
            &unknown.port().to_string(),
            "--ca-file",
            &run.ca(&unknown),
            "--user",
            USER,
            "--password-env",
            "HOME",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(!stderr(&output).contains("queued"), "{}", stderr(&output));
    assert!(run.listed().is_empty());
}

#[test]
fn a_partial_delivery_queues_only_the_recipients_refused_with_4xx() {
    let run = Run::new();
    let server = server_with(&[
        Fault::RejectRecipient {
            address: "busy@example.org".into(),
            code: 450,
            text: "4.2.1 mailbox busy".into(),
        },
        Fault::RejectRecipient {
            address: "gone@example.org".into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        },
    ]);
    let output = run.send_queued(
        &server,
        server.port(),
        &["bob@example.org", "busy@example.org", "gone@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 67, "partial delivery: {}", stderr(&output));
    assert!(
        stdout(&output).starts_with("sent: 250"),
        "{}",
        stdout(&output)
    );
    let log = stderr(&output);
    assert!(
        log.contains("refused <gone@example.org>: 550 5.1.1 no such user (permanent)"),
        "{log}"
    );
    assert!(log.contains("went to 1 of 3 recipients"), "{log}");
    assert!(log.contains("queued as "), "{log}");
    assert!(
        log.contains(" for <busy@example.org> (refused for now)"),
        "{log}"
    );
    assert!(!log.contains("for <gone@example.org>"), "{log}");
    let listed = run.listed();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0]["recipients"],
        serde_json::json!(["busy@example.org"])
    );
    assert_eq!(server.messages()[0].rcpt_to, ["bob@example.org"]);
    // busy@ is still busy on this server; elsewhere, it goes to busy@ alone.
    let output = run.flush(&server, &[]);
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    let elsewhere = server_with(&[]);
    let output = run.flush(&elsewhere, &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(elsewhere.messages()[0].rcpt_to, ["busy@example.org"]);
    assert_eq!(elsewhere.messages()[0].data, SENT.as_bytes());
    assert!(run.listed().is_empty());
}

#[test]
fn a_composed_message_is_queued_as_it_would_have_been_sent() {
    let run = Run::new();
    let server = server_with(&[]);
    let output = run.send_queued(
        &server,
        closed_port(),
        &[
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--bcc",
            "hidden@example.org",
            "--subject",
            "composed",
            "--text",
            "Hello from flags\n",
        ],
        "",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output = run.flush(&server, &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &server.messages()[0];
    assert_eq!(received.rcpt_to, ["bob@example.org", "hidden@example.org"]);
    let data = String::from_utf8_lossy(&received.data);
    assert!(
        data.contains("Subject: composed") && data.contains("Hello from flags"),
        "{data}"
    );
    assert!(
        !data.contains("hidden@example.org"),
        "no Bcc in the message: {data}"
    );
}

#[test]
fn flush_sets_aside_what_is_refused_for_good_and_exits_69() {
    let run = Run::new();
    let server = server_with(&[]);
    let output = run.send_queued(&server, closed_port(), &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let id = queued_id(&output);
    let refusing = server_with(&[Fault::Reply {
        stage: Stage::MailFrom,
        code: 553,
        text: "5.7.1 sender not allowed".into(),
    }]);
    let output = run.flush(&refusing, &[]);
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains(&format!("{id} refused for good, moved to ")),
        "{log}"
    );
    assert!(log.contains("/failed/"), "{log}");
    let listed = run.listed();
    assert_eq!(listed[0]["state"], "failed");
    assert!(
        listed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("553 5.7.1")
    );
    // Set aside: never retried.
    let output = run.flush(&server, &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(server.messages().is_empty());
    let output = run.queue(&["list"]);
    assert!(stdout(&output).contains("failed"), "{}", stdout(&output));
}

#[test]
fn flush_takes_the_password_from_the_send_flags_and_keeps_entries_when_it_is_refused() {
    let run = Run::new();
    let server = server_with(&[]);
    let output = run.send_queued(&server, closed_port(), &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // No password source at all: a configuration error before anything is tried.
    let ca = run.ca(&server);
    let port = server.port().to_string();
    let output = run.queue(&["flush", "--port", &port, "--ca-file", &ca]);
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--password-env"),
        "{}",
        stderr(&output)
    );
    assert_eq!(run.listed()[0]["attempts"], 1, "not attempted");
    // A wrong password: 77, and the entry stays.
    let wrong = run.dir.join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let output = run.queue(&[
        "flush",
        "--port",
        &port,
        "--ca-file",
        &ca,
        "--password-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("hint: check --user and the password"),
        "{}",
        stderr(&output)
    );
    assert_eq!(run.listed()[0]["attempts"], 2);
    // --password-command, and --user overriding the recorded user.
    let other = server_with(&[]);
    let other_port = other.port().to_string();
    let other_ca = run.ca(&other);
    let output = run.queue(&[
        "flush",
        "--host",
        "127.0.0.1",
        "--port",
        &other_port,
        "--ca-file",
        &other_ca,
        "--user",
        USER,
        "--password-command",
        "printf '%s\\n' \"$TEST_PASSWORD\"",
    ]);
    // The testkit's certificate names localhost and 127.0.0.1.
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(other.messages().len(), 1);
    assert!(server.messages().is_empty());
}

#[test]
fn remove_and_show_name_the_entry_or_say_what_is_wrong() {
    let run = Run::new();
    let server = server_with(&[]);
    let output = run.send_queued(&server, closed_port(), &["bob@example.org"], MESSAGE);
    let id = queued_id(&output);
    let output = run.queue(&["remove", &id]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("removed {id} (it was queued)\n"));
    assert!(run.listed().is_empty());
    let output = run.queue(&["remove", &id]);
    assert_eq!(code(&output), 66, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no outbox entry"),
        "{}",
        stderr(&output)
    );
    let output = run.queue(&["show", "../../etc/passwd"]);
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not an outbox entry id"),
        "{}",
        stderr(&output)
    );
    // --spool belongs to --queue-on-failure.
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--spool",
            "/tmp/x",
            "a@b.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 64, "{}", stderr(&output));
}

#[test]
fn the_default_spool_follows_xdg_state_home() {
    let run = Run::new();
    let server = server_with(&[]);
    let ca = run.ca(&server);
    let port = closed_port().to_string();
    let output = run.tls_mailer(
        &[
            "send",
            "--queue-on-failure",
            "--host",
            "localhost",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let spool = run.dir.join("state/tls-mailer/outbox");
    assert_eq!(entry_files(&spool).len(), 1, "{}", spool.display());
    let output = run.tls_mailer(&["queue", "list", "--json"], "");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["route"]["user"], serde_json::Value::Null);
}

#[test]
fn flush_exits_67_when_only_some_recipients_are_refused_for_good() {
    let run = Run::new();
    let server = server_with(&[Fault::RejectRecipient {
        address: "gone@example.org".into(),
        code: 550,
        text: "5.1.1 no such user".into(),
    }]);
    let output = run.send_queued(
        &server,
        closed_port(),
        &["bob@example.org", "gone@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let id = queued_id(&output);
    let output = run.flush(&server, &[]);
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with(&format!("sent {id} to 1 of 2 recipients: 250")),
        "{}",
        stdout(&output)
    );
    let log = stderr(&output);
    assert!(
        log.contains("refused <gone@example.org>: 550 5.1.1 no such user"),
        "{log}"
    );
    assert!(log.contains("refused for good are recorded in "), "{log}");
    let listed = run.listed();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "failed");
    assert_eq!(
        listed[0]["recipients"],
        serde_json::json!(["gone@example.org"])
    );
    assert_eq!(server.messages()[0].rcpt_to, ["bob@example.org"]);
}

#[test]
fn two_flushes_at_once_send_each_entry_once() {
    let run = Run::new();
    let server = server_with(&[]);
    let down = closed_port();
    for n in 0..20 {
        let message = MESSAGE.replace("Subject: queued", &format!("Subject: queued {n}"));
        let output = run.send_queued(&server, down, &["bob@example.org"], &message);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
    }
    let ca = run.ca(&server);
    let port = server.port().to_string();
    let spool = run.spool();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_tls-mailer"))
            .args([
                "queue",
                "flush",
                "--spool",
                &spool,
                "--port",
                &port,
                "--ca-file",
                &ca,
            ])
            .args(["--password-env", "TEST_PASSWORD", "--timeout", "10"])
            .env("TEST_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (start(), start());
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let sent = |output: &Output| {
        stdout(output)
            .lines()
            .filter(|line| line.starts_with("sent "))
            .count()
    };
    assert_eq!(
        sent(&first) + sent(&second),
        20,
        "{}\n{}",
        stdout(&first),
        stdout(&second)
    );
    let mut subjects: Vec<String> = server
        .messages()
        .iter()
        .map(|message| {
            let text = String::from_utf8_lossy(&message.data).into_owned();
            text.lines()
                .find(|line| line.starts_with("Subject:"))
                .unwrap()
                .to_owned()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 20);
    assert_eq!(server.messages().len(), 20, "each entry went once");
    assert!(run.listed().is_empty());
}

#[test]
fn an_outbox_that_cannot_be_created_exits_73_before_reading_the_message() {
    let run = Run::new();
    let output = run.tls_mailer(
        &[
            "send",
            "--queue-on-failure",
            "--spool",
            "/dev/null/outbox",
            "--host",
            "localhost",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 73, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot create the directory /dev/null/outbox"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn log_says_queued_with_the_entry_id_then_sent() {
    let run = Run::new();
    let log = run.dir.join("mail.log");
    let log_arg = log.to_str().unwrap().to_owned();
    let server = server_with(&[]);
    let output = run.send_queued(
        &server,
        closed_port(),
        &["--log", &log_arg, "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let id = queued_id(&output);
    let output = run.send_queued(
        &server,
        server.port(),
        &["--log", &log_arg, "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(&format!("result=queued id={id} error=\"cannot connect to")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("result=sent reply=\"250 "),
        "{}",
        lines[1]
    );
}
