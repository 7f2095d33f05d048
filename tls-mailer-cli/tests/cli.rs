#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The `tls-mailer` binary against the testkit server over loopback: each
//! exit code of the sysexits table, -t, -v redaction, compose, demo.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{TestDir, code, stderr, stdout};

use tls_mailer_testkit::{CertKind, Extensions, Fault, Mode, Stage, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pässword";
const MESSAGE: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nCc: Carol <carol@example.org>\r\nBcc: hidden@example.org,\r\n secret@example.org\r\nSubject: cli\r\n\r\nHello\r\n";

/// [`MESSAGE`] as sent: the Bcc field and its continuation line removed.
const MESSAGE_WITHOUT_BCC: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nCc: Carol <carol@example.org>\r\nSubject: cli\r\n\r\nHello\r\n";

struct Run {
    dir: TestDir,
}

impl Run {
    fn new() -> Self {
        Self {
            dir: TestDir::new("cli-test"),
        }
    }

    fn file(&self, name: &str, content: &[u8]) -> String {
        self.dir.file(name, content)
    }

    /// Runs `tls-mailer ARGS` with `stdin`, the password in TEST_PASSWORD.
    fn tls_mailer(&self, args: &[&str], stdin: &str) -> Output {
        common::tls_mailer(args, stdin.as_bytes(), &[("TEST_PASSWORD", PASSWORD)])
    }

    /// `send` to `server` with its CA, credentials and a short timeout.
    fn send(&self, server: &TestServer, extra: &[&str], stdin: &str) -> Output {
        let ca = self.file("ca.pem", server.ca_pem().as_bytes());
        let port = server.port().to_string();
        let mut args = vec![
            "send",
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
}

fn server() -> TestServer {
    TestServer::builder().auth(USER, PASSWORD).start().unwrap()
}

fn server_with(fault: Fault) -> TestServer {
    TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(fault)
        .start()
        .unwrap()
}

#[test]
fn implicit_tls_send_succeeds() {
    let run = Run::new();
    let server = server();
    let output = run.send(&server, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("sent: 250"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("implicit TLS TLSv1_3"));
    let received = &server.messages()[0];
    assert_eq!(
        received.mail_from, "alice@example.org",
        "sender from the From header"
    );
    assert_eq!(received.rcpt_to, ["bob@example.org"]);
    assert_eq!(
        received.data,
        MESSAGE_WITHOUT_BCC.as_bytes(),
        "a raw message is sent untouched but for its Bcc field"
    );
}

#[test]
fn starttls_send_succeeds() {
    let run = Run::new();
    let server = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .start()
        .unwrap();
    let output = run.send(
        &server,
        &["--security", "starttls", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("STARTTLS"));
    assert!(server.messages()[0].tls);
}

#[test]
fn implicit_or_starttls_falls_back_to_starttls() {
    let run = Run::new();
    let server = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .start()
        .unwrap();
    let port = server.port().to_string();
    let output = run.send(
        &server,
        &[
            "--security",
            "implicit-or-starttls",
            "--starttls-port",
            &port,
            "-v",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("STARTTLS TLSv1_3"),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("C: STARTTLS"),
        "{}",
        stderr(&output)
    );
    let received = &server.messages()[0];
    assert!(received.tls);
    assert_eq!(received.auth_user.as_deref(), Some(USER));
}

#[test]
fn read_recipients_sends_to_to_cc_and_bcc_and_removes_bcc() {
    let run = Run::new();
    let server = server();
    let output = run.send(&server, &["-t"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &server.messages()[0];
    assert_eq!(
        received.rcpt_to,
        [
            "bob@example.org",
            "carol@example.org",
            "hidden@example.org",
            "secret@example.org"
        ]
    );
    let text = String::from_utf8(received.data.clone()).unwrap();
    assert!(
        !text.contains("Bcc") && !text.contains("hidden@") && !text.contains("secret@"),
        "{text}"
    );
    assert!(text.contains("Cc: Carol <carol@example.org>\r\n"));
}

#[test]
fn read_recipients_reads_every_field_of_a_name() {
    let run = Run::new();
    let server = server();
    let message = "From: alice@example.org, ann@example.org\r\nSender: alice@example.org\r\n\
                   To: bob@example.org\r\nBcc: one@example.org\r\nSubject: two Bcc fields\r\n\
                   bcc: two@example.org\r\n\r\nHello\r\n";
    let output = run.send(&server, &["-t"], message);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &server.messages()[0];
    assert_eq!(received.mail_from, "alice@example.org", "from Sender");
    assert_eq!(
        received.rcpt_to,
        ["bob@example.org", "one@example.org", "two@example.org"]
    );
    let text = String::from_utf8(received.data.clone()).unwrap();
    assert_eq!(
        text,
        "From: alice@example.org, ann@example.org\r\nSender: alice@example.org\r\n\
         To: bob@example.org\r\nSubject: two Bcc fields\r\n\r\nHello\r\n"
    );
}

#[test]
fn read_recipients_with_a_bare_cr_before_bcc_sends_to_both_and_shows_neither_bcc() {
    // The SMTP encoders end a line at a bare CR, so "Bcc:" starts a field of
    // its own on the wire: it must be read, sent to and removed as one.
    let run = Run::new();
    let server = server();
    let message = "From: alice@example.org\r\nTo: b@example.org\rBcc: secret@example.net\r\n\
                   Subject: bare CR\r\n\r\nHello\r\n";
    let output = run.send(&server, &["-t"], message);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &server.messages()[0];
    assert_eq!(received.rcpt_to, ["b@example.org", "secret@example.net"]);
    let text = String::from_utf8(received.data.clone()).unwrap();
    assert_eq!(
        text,
        "From: alice@example.org\r\nTo: b@example.org\r\nSubject: bare CR\r\n\r\nHello\r\n"
    );
}

#[test]
fn raw_send_without_t_removes_bcc_and_keep_bcc_keeps_it() {
    let run = Run::new();
    let server = server();
    let message = run.file("message.eml", MESSAGE.as_bytes());
    let output = run.send(&server, &["--message", &message, "dave@example.org"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output = run.send(
        &server,
        &["--keep-bcc", "--message", &message, "dave@example.org"],
        "",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = server.messages();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].rcpt_to, ["dave@example.org"]);
    let stripped = String::from_utf8(received[0].data.clone()).unwrap();
    assert_eq!(stripped, MESSAGE_WITHOUT_BCC, "Bcc removed without -t");
    assert!(!stripped.contains("hidden@") && !stripped.contains("secret@"));
    assert_eq!(
        received[1].data,
        MESSAGE.as_bytes(),
        "--keep-bcc sends the message as it is"
    );
    let help = run.tls_mailer(&["send", "--help"], "");
    assert!(stdout(&help).contains("--keep-bcc"), "{}", stdout(&help));
}

#[test]
fn verbose_shows_the_conversation_with_credentials_redacted() {
    let run = Run::new();
    let server = server();
    let output = run.send(&server, &["-v", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("C: AUTH PLAIN <redacted>"), "{log}");
    assert!(log.contains("S: 235"), "{log}");
    assert!(log.contains("* TLS established: TLSv1_3"), "{log}");
    assert!(log.contains("certificate subject CN=localhost"), "{log}");
    assert!(!log.contains(PASSWORD));
    // Nor in base64 (the PLAIN response starts with "\0alice\0" = "AGFsaWNl").
    assert!(!log.contains("AGFsaWNl"), "{log}");
    assert!(log.contains("TLS13_"), "the cipher suite is named: {log}");
    // AUTH LOGIN sends the user name and the password as separate base64 lines.
    let output = run.send(
        &server,
        &["-v", "--auth-mechanism", "login", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("C: AUTH LOGIN"), "{log}");
    assert!(log.contains("C: <redacted>"), "{log}");
    assert!(log.contains("S: 235"), "{log}");
    assert_eq!(base64(b"alice"), "YWxpY2U=");
    assert_eq!(base64(b"\0alice\0"), "AGFsaWNlAA==");
    for secret in [PASSWORD.to_owned(), base64(PASSWORD.as_bytes())] {
        assert!(!log.contains(&secret), "{secret} in {log}");
        assert!(!stdout(&output).contains(&secret));
    }
    assert_eq!(server.messages()[1].auth_user.as_deref(), Some(USER));
}

/// Standard base64 with padding, to look for an encoded secret in a log.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn exit_64_for_usage_errors() {
    let run = Run::new();
    let server = server();
    let output = run.send(
        &server,
        &[],
        MESSAGE.replace("To: bob@example.org\r\n", "").as_str(),
    );
    assert_eq!(code(&output), 64, "no recipient: {}", stderr(&output));
    assert!(stderr(&output).contains("no recipient"));
    let output = run.tls_mailer(&["send", "--no-such-flag"], "");
    assert_eq!(code(&output), 64);
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            "0",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 64, "--port 0: {}", stderr(&output));
    // A deadline that cannot be represented is refused, not a crash.
    for timeout in ["0", "18446744073709551615", "ten"] {
        let output = run.tls_mailer(
            &[
                "send",
                "--host",
                "localhost",
                "--timeout",
                timeout,
                "bob@example.org",
            ],
            MESSAGE,
        );
        assert_eq!(
            code(&output),
            64,
            "--timeout {timeout}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("--timeout"), "{}", stderr(&output));
    }
    let output = run.tls_mailer(&["--help"], "");
    assert_eq!(code(&output), 0);
    assert!(stdout(&output).contains("75  temporary failure"));
    assert!(
        stdout(&output).contains("went to the others, whatever the\n      refusal codes"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn exit_65_for_injected_addresses() {
    let run = Run::new();
    let server = server();
    for bad in [
        "bob@example.org>\r\nRCPT TO:<evil@example.org",
        "a@b>",
        "no-at-sign",
    ] {
        let output = run.send(&server, &[bad], MESSAGE);
        assert_eq!(code(&output), 65, "{bad:?}: {}", stderr(&output));
    }
    assert_eq!(server.connections(), 0, "refused before connecting");
}

#[test]
fn exit_66_for_a_missing_message_file() {
    let run = Run::new();
    let server = server();
    let output = run.send(
        &server,
        &["--message", "/nonexistent/message.eml", "bob@example.org"],
        "",
    );
    assert_eq!(code(&output), 66, "{}", stderr(&output));
    assert!(stderr(&output).contains("/nonexistent/message.eml"));
    // A directory opens but cannot be read.
    let output = run.send(&server, &["--message", "/", "bob@example.org"], "");
    assert_eq!(code(&output), 66, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot read the message file /:"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn exit_67_when_a_recipient_is_refused() {
    let run = Run::new();
    let server = server_with(Fault::RejectRecipient {
        address: "nobody@example.org".into(),
        code: 550,
        text: "5.1.1 no such user".into(),
    });
    let output = run.send(&server, &["bob@example.org", "nobody@example.org"], MESSAGE);
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("refused <nobody@example.org>: 550 5.1.1 no such user (permanent)"),
        "{log}"
    );
    assert!(log.contains("went to 1 of 2 recipients"), "{log}");
    assert_eq!(
        server.messages()[0].rcpt_to,
        ["bob@example.org"],
        "still sent to the other"
    );
    // Refused only for now (4xx), but bob has the message: 67, never 75, which
    // callers read as "send it all again" (a duplicate for bob).
    let server = server_with(Fault::RejectRecipient {
        address: "busy@example.org".into(),
        code: 450,
        text: "4.2.1 mailbox busy".into(),
    });
    let output = run.send(&server, &["bob@example.org", "busy@example.org"], MESSAGE);
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    assert!(stdout(&output).starts_with("sent: 250"));
    let log = stderr(&output);
    assert!(
        log.contains(
            "refused <busy@example.org>: 450 4.2.1 mailbox busy \
             (temporary: that recipient may be retried alone)"
        ),
        "{log}"
    );
    assert!(
        !log.contains("bob@example.org"),
        "only refusals are named: {log}"
    );
    assert_eq!(server.messages()[0].rcpt_to, ["bob@example.org"]);
}

#[test]
fn partial_delivery_names_every_refusal_with_its_kind() {
    let run = Run::new();
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(Fault::RejectRecipient {
            address: "busy@example.org".into(),
            code: 451,
            text: "4.3.0 try later".into(),
        })
        .fault(Fault::RejectRecipient {
            address: "gone@example.org".into(),
            code: 550,
            text: "5.1.1 unknown".into(),
        })
        .start()
        .unwrap();
    let output = run.send(
        &server,
        &["busy@example.org", "bob@example.org", "gone@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("refused <busy@example.org>: 451 4.3.0 try later (temporary:"),
        "{log}"
    );
    assert!(
        log.contains("refused <gone@example.org>: 550 5.1.1 unknown (permanent)"),
        "{log}"
    );
    assert!(log.contains("went to 1 of 3 recipients"), "{log}");
    assert_eq!(server.messages()[0].rcpt_to, ["bob@example.org"]);
    // Every recipient refused only for now: nothing went out, a retry is safe: 75.
    let output = run.send(&server, &["busy@example.org"], MESSAGE);
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    assert_eq!(server.messages().len(), 1, "nothing more was accepted");
}

/// A name under .invalid never resolves (RFC 6761), and the client knows it
/// without asking a resolver, so this needs no network; the mapping of a
/// resolver's temporary failure (75) is unit-tested in src/exit.rs.
#[test]
fn exit_68_for_an_unknown_host() {
    let run = Run::new();
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "nonexistent.invalid",
            "--timeout",
            "5",
            "--from",
            "a@b.org",
            "c@d.org",
        ],
        MESSAGE,
    );
    // RFC 6761: .invalid never resolves.
    let log = stderr(&output);
    assert_eq!(code(&output), 68, "{log}");
    assert!(
        log.contains("cannot resolve host \"nonexistent.invalid\"")
            && log.contains("hint: check the spelling of --host"),
        "{log}"
    );
}

#[test]
fn exit_69_for_permanent_refusals() {
    let run = Run::new();
    for stage in [Stage::MailFrom, Stage::DataEnd] {
        let server = server_with(Fault::Reply {
            stage,
            code: 550,
            text: "5.7.1 refused".into(),
        });
        let output = run.send(&server, &["bob@example.org"], MESSAGE);
        assert_eq!(code(&output), 69, "{stage:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("550 5.7.1 refused"));
    }
    // The message is larger than the SIZE the server announces.
    let small = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            size: Some(16),
            ..Extensions::default()
        })
        .start()
        .unwrap();
    // From a file the size is known, so the client refuses before MAIL FROM;
    // from stdin it is not, and the server refuses at the end of data.
    let file = run.file("big.eml", MESSAGE.as_bytes());
    let output = run.send(&small, &["--message", &file, "bob@example.org"], "");
    assert_eq!(code(&output), 69, "SIZE: {}", stderr(&output));
    assert!(
        stderr(&output).contains("at most 16 bytes"),
        "{}",
        stderr(&output)
    );
    let output = run.send(&small, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 69, "552: {}", stderr(&output));
    assert!(small.messages().is_empty());
}

#[test]
fn exit_75_for_temporary_failures() {
    let run = Run::new();
    let server = server_with(Fault::Reply {
        stage: Stage::DataEnd,
        code: 451,
        text: "4.3.0 try later".into(),
    });
    let output = run.send(&server, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--from",
            "a@b.org",
            "c@d.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 75, "connection refused: {}", stderr(&output));
    assert!(
        stderr(&output).contains("hint: check --host and --port"),
        "{}",
        stderr(&output)
    );
    // The connection is lost before the message is accepted.
    let dropping = server_with(Fault::Drop {
        stage: Stage::DataEnd,
    });
    let output = run.send(&dropping, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 75, "dropped: {}", stderr(&output));
    // The server stops answering: the --timeout deadline ends the wait.
    let stalling = server_with(Fault::Stall {
        stage: Stage::MailFrom,
    });
    let ca = run.file("stall-ca.pem", stalling.ca_pem().as_bytes());
    let port = stalling.port().to_string();
    let started = std::time::Instant::now();
    let output = run.tls_mailer(
        &[
            "send",
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
            "1",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 75, "stalled: {}", stderr(&output));
    assert!(stderr(&output).contains("timed out"), "{}", stderr(&output));
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
}

#[test]
fn exit_76_for_a_garbage_greeting() {
    let run = Run::new();
    let server = server_with(Fault::Garbage {
        stage: Stage::Greeting,
        bytes: b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(),
    });
    let output = run.send(&server, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 76, "{}", stderr(&output));
    assert!(stderr(&output).contains("malformed reply"));
}

#[test]
fn exit_77_for_authentication_and_tls_refusals() {
    let run = Run::new();
    let server = server();
    // Wrong password.
    let password_file = run.file("password", b"wrong-password\n");
    let output = run.send(
        &server,
        &["--password-file", &password_file, "bob@example.org"],
        MESSAGE,
    );
    // --password-env and --password-file conflict: that is a usage error.
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    let ca = run.file("ca.pem", server.ca_pem().as_bytes());
    let port = server.port().to_string();
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "--user",
            USER,
            "--password-file",
            &password_file,
            "--timeout",
            "10",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 77, "wrong password: {}", stderr(&output));
    assert!(!stderr(&output).contains("wrong-password"));
    assert!(
        stderr(&output).contains("hint: check --user and the password"),
        "{}",
        stderr(&output)
    );
    // Untrusted CA: no --ca-file.
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--timeout",
            "10",
            "--from",
            "a@b.org",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 77, "untrusted: {}", stderr(&output));
    assert!(
        stderr(&output).contains("--ca-file"),
        "the error names the fix"
    );
    // Wrong host certificate.
    let wrong_host = TestServer::builder()
        .cert(CertKind::WrongHost)
        .auth(USER, PASSWORD)
        .start()
        .unwrap();
    let output = run.send(&wrong_host, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 77, "wrong host: {}", stderr(&output));
    // STARTTLS required but not offered.
    let no_starttls = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .fault(Fault::NoStartTls)
        .start()
        .unwrap();
    let output = run.send(
        &no_starttls,
        &["--security", "starttls", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 77, "no STARTTLS: {}", stderr(&output));
    assert!(!no_starttls.transcript().contains("C: AUTH"));
}

#[test]
fn exit_78_for_configuration_errors() {
    let run = Run::new();
    let server = server();
    let port = server.port().to_string();
    // --user without any password source.
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--user",
            USER,
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(stderr(&output).contains("--password-env"));
    // A failing password command.
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--user",
            USER,
            "--password-command",
            "exit 3",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    // An empty password file.
    let empty = run.file("empty-password", b"\n");
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--user",
            USER,
            "--password-file",
            &empty,
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(stderr(&output).contains("is empty"), "{}", stderr(&output));
    assert_eq!(server.connections(), 0, "refused before connecting");
    // Implicit TLS against a server that speaks plaintext SMTP first.
    let plaintext = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .start()
        .unwrap();
    let output = run.send(&plaintext, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("answered in plaintext SMTP") && log.contains("--security starttls"),
        "{log}"
    );
}

#[test]
fn password_command_supplies_the_password() {
    let run = Run::new();
    let server = server();
    let ca = run.file("ca.pem", server.ca_pem().as_bytes());
    let port = server.port().to_string();
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "--user",
            USER,
            "--password-command",
            "printf '%s\\n' \"$TEST_PASSWORD\"",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

#[test]
fn oauth_token_command_logs_in_with_a_bearer_token() {
    let run = Run::new();
    let server = TestServer::builder()
        .auth(USER, "ya29.a0-token")
        .auth_mechanisms(&["PLAIN", "XOAUTH2"])
        .start()
        .unwrap();
    let ca = run.file("ca.pem", server.ca_pem().as_bytes());
    let port = server.port().to_string();
    let send = |command: &str| {
        run.tls_mailer(
            &[
                "send",
                "--host",
                "localhost",
                "--port",
                &port,
                "--ca-file",
                &ca,
                "--user",
                USER,
                "--oauth-token-command",
                command,
                "bob@example.org",
            ],
            MESSAGE,
        )
    };
    let output = send("echo ya29.a0-token");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // A stale token: refused as an authentication failure (EX_NOPERM).
    let output = send("echo ya29.expired");
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert_eq!(server.messages().len(), 1);
    let transcript = server.transcript();
    assert_eq!(
        transcript.matches("C: AUTH XOAUTH2").count(),
        2,
        "{transcript}"
    );
    assert!(!transcript.contains("C: AUTH PLAIN"), "{transcript}");
}

#[cfg(unix)]
fn set_mode(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn password_file_readable_by_others_is_warned_about() {
    let run = Run::new();
    let server = server();
    let ca = run.file("ca.pem", server.ca_pem().as_bytes());
    let port = server.port().to_string();
    let password_file = run.file("password", format!("{PASSWORD}\n").as_bytes());
    let send = || {
        run.tls_mailer(
            &[
                "send",
                "--host",
                "localhost",
                "--port",
                &port,
                "--ca-file",
                &ca,
                "--user",
                USER,
                "--password-file",
                &password_file,
                "--timeout",
                "10",
                "bob@example.org",
            ],
            MESSAGE,
        )
    };
    for mode in [0o644, 0o640] {
        set_mode(&password_file, mode);
        let output = send();
        assert_eq!(code(&output), 0, "still sent: {}", stderr(&output));
        let log = stderr(&output);
        assert!(
            log.contains(&format!(
                "tls-mailer: warning: --password-file {password_file}: other users have access \
                 to this file (mode {mode:04o})"
            )),
            "{log}"
        );
        assert!(
            log.contains(&format!("fix: chmod 600 {password_file}")),
            "{log}"
        );
        assert!(!log.contains(PASSWORD), "{log}");
    }
    set_mode(&password_file, 0o600);
    let output = send();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    assert_eq!(server.messages().len(), 3);
    assert!(
        server
            .messages()
            .iter()
            .all(|message| message.auth_user.as_deref() == Some(USER))
    );
}

#[cfg(unix)]
#[test]
fn dkim_key_readable_by_others_is_warned_about() {
    let run = Run::new();
    let server = server();
    let key = run.dir.join("dkim.pem").to_str().unwrap().to_owned();
    let status = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", &key])
        .status()
        .unwrap();
    assert!(status.success());
    let send = || {
        run.send(
            &server,
            &[
                "--dkim-key",
                &key,
                "--dkim-selector",
                "s1",
                "--dkim-domain",
                "example.org",
                "bob@example.org",
            ],
            MESSAGE,
        )
    };
    set_mode(&key, 0o604);
    let output = send();
    assert_eq!(code(&output), 0, "still sent: {}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains(&format!(
            "tls-mailer: warning: --dkim-key {key}: other users have access to this file \
             (mode 0604), which holds a secret; fix: chmod 600 {key}"
        )),
        "{log}"
    );
    set_mode(&key, 0o600);
    let output = send();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    for message in &messages {
        let text = String::from_utf8_lossy(&message.data);
        assert!(text.starts_with("DKIM-Signature:"), "signed: {text}");
    }
}

#[test]
fn tls_mailer_password_is_the_default_source() {
    let run = Run::new();
    let server = server();
    let ca = run.file("ca.pem", server.ca_pem().as_bytes());
    let output = Command::new(env!("CARGO_BIN_EXE_tls-mailer"))
        .args([
            "send",
            "--host",
            "localhost",
            "--port",
            &server.port().to_string(),
            "--ca-file",
            &ca,
            "--user",
            USER,
            "--timeout",
            "10",
            "--message",
            &run.file("message.eml", MESSAGE.as_bytes()),
            "bob@example.org",
        ])
        .env("TLS_MAILER_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(server.messages()[0].auth_user.as_deref(), Some(USER));
}

#[test]
fn composed_message_reaches_to_cc_and_bcc_without_bcc_header() {
    let run = Run::new();
    let server = server();
    let attachment = run.file("report.csv", b"a,b\n1,2\n");
    let logo = run.file("logo.png", &[0x89, b'P', b'N', b'G', 0, 1, 2, 3]);
    let html = run.file("body.html", b"<p>Hi <img src=\"cid:logo\"></p>");
    let inline = format!("logo={logo}");
    let output = run.send(
        &server,
        &[
            "--from",
            "Jöran <alice@example.org>",
            "--to",
            "bob@example.org",
            "--cc",
            "carol@example.org",
            "--bcc",
            "dave@example.org",
            "--subject",
            "Grüße",
            "--text",
            "Hello",
            "--html-file",
            &html,
            "--attach",
            &attachment,
            "--inline",
            &inline,
            "--header",
            "X-Campaign: autumn",
        ],
        "",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &server.messages()[0];
    assert_eq!(received.mail_from, "alice@example.org");
    assert_eq!(
        received.rcpt_to,
        ["bob@example.org", "carol@example.org", "dave@example.org"]
    );
    let text = String::from_utf8_lossy(&received.data);
    assert!(
        !text.contains("dave@") && !text.to_ascii_lowercase().contains("bcc:"),
        "{text}"
    );
    let email = tls_mailer::Email::parse(&received.data).unwrap();
    assert_eq!(email.subject(), Some("Grüße"));
    assert_eq!(email.attachments()[0].name(), Some("report.csv"));
    assert_eq!(email.attachments()[0].data(), b"a,b\n1,2\n");
    assert_eq!(email.inline_parts()[0].cid(), Some("logo"));
    assert!(
        email
            .headers()
            .iter()
            .any(|(name, value)| name == "X-Campaign" && value == "autumn")
    );
}

#[test]
fn compose_prints_the_message_or_its_summary() {
    let run = Run::new();
    let output = run.tls_mailer(
        &[
            "compose",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--bcc",
            "c@example.org",
            "--subject",
            "s",
            "--text",
            "t",
        ],
        "",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let message = stdout(&output);
    assert!(
        message.contains("Subject: s\r\n") && !message.contains("c@example.org"),
        "{message}"
    );
    let output = run.tls_mailer(
        &[
            "compose",
            "--json",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--bcc",
            "c@example.org",
            "--text",
            "t",
        ],
        "",
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["envelope_recipients"][1], "c@example.org");
    let output = run.tls_mailer(
        &[
            "compose",
            "--to",
            "b@example.org",
            "--header",
            "X-Bad: a\r\nBcc: x@y",
        ],
        "",
    );
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    // A terminal escape sequence is no header value either.
    let output = run.tls_mailer(
        &[
            "compose",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--header",
            "X-A: v\u{1b}]0;x\u{7}",
        ],
        "",
    );
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    assert!(stderr(&output).contains("\"X-A\""), "{}", stderr(&output));
}

#[test]
fn compose_errors_name_the_flag_that_fixes_them() {
    let run = Run::new();
    let check = |args: &[&str], expected: i32, needle: &str| {
        let output = run.tls_mailer(args, "");
        assert_eq!(code(&output), expected, "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(needle),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?}: nothing is printed");
    };
    check(
        &["compose", "--to", "b@example.org", "--text", "t"],
        65,
        "give --from",
    );
    check(
        &[
            "compose",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--header",
            "Bcc: c@example.org",
        ],
        65,
        "--bcc",
    );
    check(
        &[
            "compose",
            "--from",
            "a@example.org",
            "--text",
            "t",
            "-o",
            "/nonexistent-dir/message.eml",
        ],
        74,
        "cannot write /nonexistent-dir/message.eml",
    );
    check(
        &[
            "send",
            "--host",
            "localhost",
            "--from",
            "a@example.org",
            "--subject",
            "no recipient",
        ],
        64,
        "no recipient",
    );
}

#[test]
fn demo_runs_without_any_setup() {
    let run = Run::new();
    let output = run.tls_mailer(&["demo", "--quiet"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let path = PathBuf::from(stdout(&output).trim());
    let stored = std::fs::read_to_string(&path).unwrap();
    assert!(stored.contains("Subject: Hello from tls-mailer"));
    let dir = path.parent().unwrap().to_owned();
    // Each run gets a new private directory, not a name others can guess.
    let again = run.tls_mailer(&["demo", "--quiet"], "");
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    let other = PathBuf::from(stdout(&again).trim());
    assert_ne!(other.parent().unwrap(), dir);
    for dir in [dir, other.parent().unwrap().to_owned()] {
        assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::symlink_metadata(&dir)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn server_without_extensions_still_works() {
    let run = Run::new();
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions::none())
        .start()
        .unwrap();
    let output = run.send(&server, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!server.messages()[0].via_bdat);
}

/// `--dkim-key` signs what is sent; dkimpy verifies it as the server stored it.
#[test]
fn dkim_flags_sign_the_message() {
    let run = Run::new();
    let server = server();
    let key = run.dir.join("dkim.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            key.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let spki = Command::new("openssl")
        .args([
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ])
        .output()
        .unwrap()
        .stdout;
    // RFC 8463: p= is the raw 32-byte Ed25519 key, the end of the SPKI.
    let raw = run.file("p.bin", &spki[spki.len() - 32..]);
    let p = Command::new("openssl")
        .args(["base64", "-A", "-in", &raw])
        .output()
        .unwrap()
        .stdout;
    let output = run.send(
        &server,
        &[
            "--dkim-key",
            key.to_str().unwrap(),
            "--dkim-selector",
            "s1",
            "--dkim-domain",
            "example.org",
            "bob@example.org",
        ],
        "From: alice@example.org\nTo: bob@example.org\nSubject: signed\n\nbare LF body\n",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let stored = run.file("stored.eml", &server.messages()[0].data);
    let verifier = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tls-mailer-message/tests/dkim_verify.py"
    );
    let verified = Command::new("python3")
        .args([
            verifier,
            &stored,
            "s1",
            "example.org",
            "ed25519",
            String::from_utf8(p).unwrap().trim(),
        ])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "dkimpy: {}{}",
        stdout(&verified),
        stderr(&verified)
    );
    // A DKIM flag alone is a usage error.
    let output = run.send(
        &server,
        &["--dkim-selector", "s1", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 64, "{}", stderr(&output));
}

/// A `250` for the message and a `421` in the same write: the message was
/// accepted, so the command succeeds (a failure would make callers send it
/// twice).
#[test]
fn accepted_then_421_in_one_write_exits_0() {
    let run = Run::new();
    let server = server_with(Fault::CloseAfterAccept);
    let output = run.send(&server, &["bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("queued as"), "{}", stdout(&output));
    assert_eq!(server.messages().len(), 1);
}

/// An untrusted certificate on the implicit TLS port may be an interception:
/// implicit-or-starttls reports it (77) and never takes the mail to the
/// STARTTLS port instead.
#[test]
fn a_bad_certificate_on_the_implicit_port_is_never_a_reason_to_fall_back() {
    let run = Run::new();
    let intercepted = TestServer::builder()
        .cert(CertKind::UntrustedCa)
        .start()
        .unwrap();
    let starttls = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .start()
        .unwrap();
    let ca = run.file("ca.pem", starttls.ca_pem().as_bytes());
    let implicit_port = intercepted.port().to_string();
    let starttls_port = starttls.port().to_string();
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &implicit_port,
            "--security",
            "implicit-or-starttls",
            "--starttls-port",
            &starttls_port,
            "--ca-file",
            &ca,
            "--user",
            USER,
            "--password-env",
            "TEST_PASSWORD",
            "--timeout",
            "10",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert_eq!(
        starttls.connections(),
        0,
        "the STARTTLS port was never tried"
    );
    assert!(starttls.messages().is_empty());
}

// --- TLS options: --pin-sha256, --pin-only, --client-cert/--client-key, --tls-min

/// The pin of a key no test server has.
const UNRELATED_PIN: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/// `send` to `server` with credentials and a short timeout but no --ca-file:
/// `tls` says how the server is to be trusted.
fn send_with_tls(run: &Run, server: &TestServer, tls: &[&str]) -> Output {
    let port = server.port().to_string();
    let mut args = vec![
        "send",
        "--host",
        "localhost",
        "--port",
        &port,
        "--user",
        USER,
        "--password-env",
        "TEST_PASSWORD",
        "--timeout",
        "10",
    ];
    args.extend_from_slice(tls);
    args.push("bob@example.org");
    run.tls_mailer(&args, MESSAGE)
}

#[test]
fn a_matching_pin_sends_and_a_mismatch_exits_77_naming_both_keys() {
    let run = Run::new();
    for mode in [Mode::ImplicitTls, Mode::StartTls] {
        let server = TestServer::builder()
            .mode(mode)
            .auth(USER, PASSWORD)
            .start()
            .unwrap();
        let security = if mode == Mode::StartTls {
            "starttls"
        } else {
            "implicit"
        };
        let pin = server.spki_sha256();
        let output = run.send(
            &server,
            &[
                "--security",
                security,
                "--pin-sha256",
                UNRELATED_PIN,
                "--pin-sha256",
                &pin,
                "bob@example.org",
            ],
            MESSAGE,
        );
        assert_eq!(code(&output), 0, "{mode:?}: {}", stderr(&output));
        assert_eq!(server.messages().len(), 1);
        let output = run.send(
            &server,
            &[
                "--security",
                security,
                "--pin-sha256",
                UNRELATED_PIN,
                "bob@example.org",
            ],
            MESSAGE,
        );
        assert_eq!(code(&output), 77, "{mode:?}: {}", stderr(&output));
        let log = stderr(&output);
        assert!(log.contains(&format!("expected {UNRELATED_PIN}")), "{log}");
        assert!(
            log.contains(&format!("the server presented {pin}")),
            "{log}"
        );
        assert_eq!(server.messages().len(), 1, "nothing more was sent");
        let transcript = server.transcript();
        assert_eq!(
            transcript.matches("C: AUTH").count(),
            1,
            "no credentials after the mismatch: {transcript}"
        );
    }
}

#[test]
fn pin_only_sends_to_a_self_signed_server_and_refuses_a_wrong_pin() {
    let run = Run::new();
    let server = TestServer::builder()
        .cert(CertKind::SelfSigned)
        .auth(USER, PASSWORD)
        .start()
        .unwrap();
    let pin = server.spki_sha256();
    let output = send_with_tls(&run, &server, &["--pin-sha256", &pin, "--pin-only"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(server.messages().len(), 1);
    // The same pin without --pin-only: the chain must verify too (how it
    // fails depends on the system store, which the CLI always reads).
    let output = send_with_tls(&run, &server, &["--pin-sha256", &pin]);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the certificate of localhost"),
        "{}",
        stderr(&output)
    );
    let output = send_with_tls(
        &run,
        &server,
        &["--pin-sha256", UNRELATED_PIN, "--pin-only"],
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("pin-only"), "{log}");
    assert!(log.contains(&pin) && log.contains(UNRELATED_PIN), "{log}");
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn pin_flags_are_checked_before_connecting() {
    let run = Run::new();
    let server = server();
    // --pin-only without a pin: nothing would be verified.
    let output = send_with_tls(&run, &server, &["--pin-only"]);
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--pin-sha256"),
        "{}",
        stderr(&output)
    );
    // --pin-only with --ca-file: the CA would be ignored, so say so.
    let ca = run.file("ca.pem", server.ca_pem().as_bytes());
    let pin = server.spki_sha256();
    let output = send_with_tls(
        &run,
        &server,
        &["--pin-sha256", &pin, "--pin-only", "--ca-file", &ca],
    );
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot be used with"),
        "{}",
        stderr(&output)
    );
    // A pin that is not a base64 SHA-256.
    for bad in ["not-base64!", "c2hvcnQ="] {
        let output = send_with_tls(&run, &server, &["--pin-sha256", bad]);
        assert_eq!(code(&output), 64, "{bad}: {}", stderr(&output));
        let log = stderr(&output);
        assert!(log.contains("--pin-sha256: the pin"), "{log}");
        assert!(log.contains("SHA-256"), "{log}");
    }
    assert_eq!(server.connections(), 0, "nothing was tried");
}

#[test]
fn client_certificate_flags_present_the_certificate() {
    let run = Run::new();
    let server = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .require_client_cert()
        .start()
        .unwrap();
    let identity = server.ca().client_cert("cron@build-host");
    let (cert, key) = identity.write_pem_files(&run.dir).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let output = run.send(
        &server,
        &[
            "--security",
            "starttls",
            "--client-cert",
            cert,
            "--client-key",
            key,
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    assert_eq!(
        server.messages()[0].client_subject.as_deref(),
        Some("CN=cron@build-host")
    );
    // Without a certificate: refused by the server, exit 77, and the hint
    // names the flags.
    let output = run.send(
        &server,
        &["--security", "starttls", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("requires a client certificate"), "{log}");
    assert!(
        log.contains("hint: ") && log.contains("--client-cert and --client-key"),
        "{log}"
    );
    // A certificate from another authority: refused, exit 77.
    let stranger = tls_mailer_testkit::TestCa::named("another CA").client_cert("mallory");
    let other_dir = run.dir.join("stranger");
    std::fs::create_dir_all(&other_dir).unwrap();
    let (other_cert, other_key) = stranger.write_pem_files(&other_dir).unwrap();
    let output = run.send(
        &server,
        &[
            "--security",
            "starttls",
            "--client-cert",
            other_cert.to_str().unwrap(),
            "--client-key",
            other_key.to_str().unwrap(),
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refused the client certificate"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn client_certificate_flag_errors_name_the_fix() {
    let run = Run::new();
    let server = server();
    let identity = server.ca().client_cert("someone");
    let (cert, key) = identity.write_pem_files(&run.dir).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    // One without the other.
    let output = run.send(
        &server,
        &["--client-cert", cert, "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--client-key"),
        "{}",
        stderr(&output)
    );
    let output = run.send(&server, &["--client-key", key, "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--client-cert"),
        "{}",
        stderr(&output)
    );
    // Swapped: the certificate file holds no private key.
    let output = run.send(
        &server,
        &[
            "--client-cert",
            key,
            "--client-key",
            cert,
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no certificate found"),
        "{}",
        stderr(&output)
    );
    // A file that is not there.
    let missing = run.dir.join("missing.pem");
    let output = run.send(
        &server,
        &[
            "--client-cert",
            cert,
            "--client-key",
            missing.to_str().unwrap(),
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--client-key"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.connections(), 0, "nothing was tried");
}

#[cfg(unix)]
#[test]
fn client_key_readable_by_others_is_warned_about() {
    let run = Run::new();
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .require_client_cert()
        .start()
        .unwrap();
    let identity = server.ca().client_cert("shared");
    let (cert, key) = identity.write_pem_files(&run.dir).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    set_mode(key, 0o644);
    let output = run.send(
        &server,
        &[
            "--client-cert",
            cert,
            "--client-key",
            key,
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "still sent: {}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains(&format!(
            "warning: --client-key {key}: other users have access to this file (mode 0644)"
        )),
        "{log}"
    );
    assert!(
        !log.contains(identity.key_pem.lines().nth(1).unwrap()),
        "{log}"
    );
}

#[test]
fn tls_min_1_3_refuses_a_tls_1_2_only_server_with_exit_77() {
    let run = Run::new();
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .tls_versions(tls_mailer_testkit::TlsVersions::Tls12Only)
        .start()
        .unwrap();
    let output = run.send(&server, &["--tls-min", "1.3", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("no TLS version in common"), "{log}");
    assert!(log.contains("hint: with --tls-min 1.3"), "{log}");
    let output = run.send(&server, &["--tls-min", "1.2", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("implicit TLS TLSv1_2"),
        "{}",
        stdout(&output)
    );
    // Nothing older than 1.2 can be asked for.
    let output = run.send(&server, &["--tls-min", "1.1", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("possible values: 1.2, 1.3"),
        "{}",
        stderr(&output)
    );
}

/// --max-time bounds one whole message, however its time is spent: a server
/// that stalls before its verdict is given up on long before --timeout.
#[test]
fn max_time_bounds_a_whole_message() {
    let run = Run::new();
    let server = server_with(Fault::Stall {
        stage: Stage::DataEnd,
    });
    let started = std::time::Instant::now();
    let output = run.send(&server, &["--max-time", "1", "bob@example.org"], MESSAGE);
    let elapsed = started.elapsed();
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("timed out waiting for the server to accept the message"),
        "{}",
        stderr(&output)
    );
    assert!(elapsed < std::time::Duration::from_secs(6), "{elapsed:?}");
    assert!(server.messages().is_empty());
}

/// --connect-timeout covers the TLS handshake: a port that accepts TCP and
/// then says nothing is given up on after it, not after --timeout.
#[test]
fn connect_timeout_covers_a_silent_tls_handshake() {
    let run = Run::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let silent = std::thread::spawn(move || {
        let accepted = listener.accept();
        std::thread::sleep(std::time::Duration::from_secs(4));
        drop(accepted);
    });
    let started = std::time::Instant::now();
    let output = run.tls_mailer(
        &[
            "send",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--timeout",
            "30",
            "--connect-timeout",
            "1",
            "--from",
            "a@b.org",
            "c@d.org",
        ],
        MESSAGE,
    );
    let elapsed = started.elapsed();
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("during the TLS handshake"),
        "{}",
        stderr(&output)
    );
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
    silent.join().unwrap();
}

#[test]
fn dsn_and_require_tls_flags_reach_the_server() {
    let run = Run::new();
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            requiretls: true,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let flags = [
        "--dsn-notify",
        "failure,delay",
        "--dsn-ret",
        "hdrs",
        "--dsn-envid",
        "order=42",
        "--require-tls",
        "bob@example.org",
    ];
    let output = run.send(&server, &flags, MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let messages = server.messages();
    let params = &messages[0].mail_params;
    for expected in ["RET=HDRS", "ENVID=order+3D42", "REQUIRETLS"] {
        assert!(params.iter().any(|p| p == expected), "{params:?}");
    }
    assert_eq!(messages[0].rcpt_params, [vec!["NOTIFY=FAILURE,DELAY"]]);
}

#[test]
fn missing_dsn_or_requiretls_exits_69_naming_the_flag() {
    let run = Run::new();
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            dsn: false,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let output = run.send(
        &server,
        &["--dsn-notify", "never", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    assert!(stderr(&output).contains("DSN"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--dsn-optional"),
        "{}",
        stderr(&output)
    );
    let output = run.send(&server, &["--require-tls", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("REQUIRETLS"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("--require-tls"),
        "{}",
        stderr(&output)
    );
    assert!(server.messages().is_empty());
    assert!(!server.transcript().contains("C: MAIL"));
    // Optional DSN: sent without the parameters.
    let flags = ["--dsn-notify", "never", "--dsn-optional", "bob@example.org"];
    let output = run.send(&server, &flags, MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(server.messages()[0].rcpt_params, [Vec::<String>::new()]);
}

#[test]
fn bad_dsn_flags_are_usage_errors() {
    let run = Run::new();
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    for (flags, needle) in [
        (
            vec!["--dsn-notify", "never,success"],
            "never cannot be combined",
        ),
        (vec!["--dsn-notify", "sometimes"], "success, failure, delay"),
        (vec!["--dsn-envid", "caf\u{e9}"], "printable ASCII"),
        (vec!["--dsn-optional"], "--dsn"),
        (
            vec!["--require-tls", "--queue-on-failure"],
            "cannot be used with",
        ),
    ] {
        let mut args = flags.clone();
        args.push("bob@example.org");
        let output = run.send(&server, &args, MESSAGE);
        assert_eq!(code(&output), 64, "{flags:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(needle),
            "{flags:?}: {}",
            stderr(&output)
        );
    }
    assert!(server.messages().is_empty());
}

#[test]
fn binary_sends_a_raw_message_byte_for_byte_or_exits_69_without_binarymime() {
    let run = Run::new();
    let message: &[u8] = b"From: alice@example.org\r\nTo: bob@example.org\r\nMIME-Version: 1.0\r\n\
        Content-Type: image/png\r\nContent-Transfer-Encoding: binary\r\n\r\n\
        \x89PNG\r\n\x1a\n\0\0\r\xff.\n";
    let path = run.file("image.eml", message);
    let binary_server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            binary_mime: true,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let output = run.send(&binary_server, &["--binary", "--message", &path, "-t"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &binary_server.messages()[0];
    assert_eq!(received.data, message, "no line end changed");
    assert!(received.via_bdat);
    assert!(received.mail_params.contains(&"BODY=BINARYMIME".to_owned()));

    // A server without BINARYMIME: nothing sent, 69, and the hint names the flag.
    let plain = server();
    let output = run.send(&plain, &["--binary", "--message", &path, "-t"], "");
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("BINARYMIME"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("--binary"), "{}", stderr(&output));
    assert!(plain.messages().is_empty());

    // A composed message is never binary: a usage error before connecting.
    let output = run.send(
        &binary_server,
        &[
            "--binary",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--subject",
            "s",
        ],
        "",
    );
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("raw message"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn log_appends_one_line_per_message_and_never_a_secret() {
    let run = Run::new();
    let log = run.dir.path.join("mail.log");
    let log_arg = log.to_str().unwrap().to_owned();
    let server = server_with(Fault::RejectRecipient {
        address: "nobody@example.org".into(),
        code: 550,
        text: "5.1.1 no such user".into(),
    });
    // From a file, the size is known before sending, and logged.
    let file = run.file("message.eml", MESSAGE.as_bytes());
    let output = run.send(
        &server,
        &["--log", &log_arg, "--message", &file, "bob@example.org"],
        "",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output = run.send(
        &server,
        &["--log", &log_arg, "bob@example.org", "nobody@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    // A failure is a line too: here a login the server refuses.
    let wrong = TestServer::builder()
        .auth(USER, "another password")
        .start()
        .unwrap();
    let output = run.send(&wrong, &["--log", &log_arg, "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 77, "{}", stderr(&output));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let size = MESSAGE_WITHOUT_BCC.len();
    assert!(
        lines[0].contains(&format!(
            " host=localhost from=alice@example.org to=bob@example.org size={size} result=sent \
             reply=\"250 2.0.0 Ok: queued as"
        )),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("to=bob@example.org,nobody@example.org")
            && lines[1].contains("result=partial refused=nobody@example.org:550"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("result=failed error=") && lines[2].contains("535"),
        "{}",
        lines[2]
    );
    // An RFC 3339 time in UTC first.
    assert_eq!(lines[0].as_bytes()[10], b'T');
    assert!(lines[0].split(' ').next().unwrap().ends_with('Z'));
    assert!(!text.contains(PASSWORD));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

#[test]
fn proxy_flag_sends_through_socks5_and_a_bad_url_exits_78() {
    use tls_mailer_testkit::proxy::{ProxyProtocol, TestProxy};
    let run = Run::new();
    let server = server();
    let proxy = TestProxy::start(ProxyProtocol::Socks5, Some(("pu", "pp"))).unwrap();
    let url = format!("socks5h://pu:pp@127.0.0.1:{}", proxy.port());
    let output = run.send(
        &server,
        &["-v", "--proxy", &url, "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(proxy.requests(), [format!("localhost:{}", server.port())]);
    assert_eq!(server.messages().len(), 1);
    // -v names the proxy, never its password.
    let log = stderr(&output);
    assert!(
        log.contains("asking the proxy socks5h://pu@127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains("pp@"), "{log}");

    let wrong = format!("socks5h://pu:nope@127.0.0.1:{}", proxy.port());
    let output = run.send(&server, &["--proxy", &wrong, "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    assert!(stderr(&output).contains("--proxy"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("nope"), "{}", stderr(&output));

    let output = run.send(
        &server,
        &["--proxy", "ftp://x:1", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("socks5h://"),
        "{}",
        stderr(&output)
    );
}
