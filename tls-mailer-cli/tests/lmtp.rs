#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! `send --protocol lmtp --socket PATH` against the testkit's LMTP server on
//! a Unix socket in a private directory: per-recipient results, exit codes,
//! and the TLS and AUTH flags refused beside --socket.

mod common;

use std::time::Duration;

use common::{TestDir, code, stderr, stdout};
use tls_mailer_testkit::{Fault, TestServer};

const MESSAGE: &str =
    "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: lmtp\r\n\r\nHello\r\n.dot\r\n";

fn lmtp_server(dir: &TestDir, faults: &[Fault]) -> (TestServer, String) {
    let path = dir.path.join("lmtp.sock");
    let mut builder = TestServer::builder().lmtp().unix_socket(&path);
    for fault in faults {
        builder = builder.fault(fault.clone());
    }
    (builder.start().unwrap(), path.to_str().unwrap().to_owned())
}

fn send(socket: &str, extra: &[&str], recipients: &[&str]) -> std::process::Output {
    let mut args = vec![
        "send",
        "--protocol",
        "lmtp",
        "--socket",
        socket,
        "--timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(recipients);
    common::tls_mailer(&args, MESSAGE.as_bytes(), &[])
}

#[test]
fn every_recipient_delivered_exits_0() {
    let dir = TestDir::new("lmtp-all");
    let (server, socket) = lmtp_server(&dir, &[]);
    let output = send(&socket, &[], &["bob@example.org", "carol@example.org"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).starts_with("sent: "), "{}", stdout(&output));
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(
        messages[0].rcpt_to,
        ["bob@example.org", "carol@example.org"]
    );
    assert_eq!(messages[0].data, MESSAGE.as_bytes());
    let transcript = server.transcript();
    assert!(transcript.contains("C: LHLO "), "{transcript}");
    assert!(!transcript.contains("EHLO"), "{transcript}");
}

#[test]
fn a_recipient_refused_after_the_message_is_named_and_exits_67_not_75() {
    let dir = TestDir::new("lmtp-partial");
    let (server, socket) = lmtp_server(
        &dir,
        &[Fault::RejectAfterData {
            address: "carol@example.org".into(),
            code: 452,
            text: "4.2.2 Mailbox is full".into(),
        }],
    );
    let output = send(&socket, &[], &["bob@example.org", "carol@example.org"]);
    let err = stderr(&output);
    // Delivered to bob: sending again to all would duplicate it for him,
    // so a temporary refusal for carol alone never exits 75.
    assert_eq!(code(&output), 67, "{err}");
    assert!(
        err.contains("refused <carol@example.org> after the message: 452 4.2.2 Mailbox is full"),
        "{err}"
    );
    assert!(err.contains("that recipient may be retried alone"), "{err}");
    assert!(err.contains("went to 1 of 2 recipients"), "{err}");
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages[0].rcpt_to, ["bob@example.org"]);
}

#[test]
fn the_only_recipient_refused_for_now_after_the_message_exits_75() {
    let dir = TestDir::new("lmtp-tempfail");
    let (server, socket) = lmtp_server(
        &dir,
        &[Fault::RejectAfterData {
            address: "bob@example.org".into(),
            code: 451,
            text: "4.3.0 Temporary failure".into(),
        }],
    );
    let output = send(&socket, &[], &["bob@example.org"]);
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("bob@example.org"),
        "{}",
        stderr(&output)
    );
    assert!(server.messages().is_empty());
}

#[test]
fn tls_and_auth_flags_are_refused_with_socket() {
    let dir = TestDir::new("lmtp-flags");
    let (server, socket) = lmtp_server(&dir, &[]);
    for extra in [
        &["--security", "starttls"][..],
        &["--user", "alice"],
        &["--host", "localhost"],
        &["--ca-file", "/etc/ssl/certs/ca-certificates.crt"],
    ] {
        let output = send(&socket, extra, &["bob@example.org"]);
        let err = stderr(&output);
        assert_eq!(code(&output), 64, "{extra:?}: {err}");
        assert!(err.contains("no TLS and needs no AUTH"), "{err}");
        assert!(err.contains(extra[0]), "{extra:?} is named: {err}");
    }
    assert_eq!(server.connections(), 0, "nothing was sent");
}

#[test]
fn a_socket_that_is_not_there_is_a_clear_failure() {
    let dir = TestDir::new("lmtp-missing");
    let missing = dir.path.join("nothing.sock");
    let output = send(missing.to_str().unwrap(), &[], &["bob@example.org"]);
    let err = stderr(&output);
    assert_ne!(code(&output), 0);
    assert!(err.contains("the Unix socket"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_account_with_a_socket_and_lmtp_sends_there() {
    let dir = TestDir::new("lmtp-config");
    let (server, socket) = lmtp_server(&dir, &[]);
    std::fs::create_dir_all(dir.path.join("tls-mailer")).unwrap();
    let config = dir.path.join("tls-mailer").join("config.toml");
    std::fs::write(
        &config,
        format!(
            "default = \"local\"\n\n[accounts.local]\nsocket = \"{socket}\"\nprotocol = \"lmtp\"\n"
        ),
    )
    .unwrap();
    let home = dir.path.to_str().unwrap();
    let output = common::tls_mailer(
        &["send", "bob@example.org"],
        MESSAGE.as_bytes(),
        &[("XDG_CONFIG_HOME", home), ("HOME", home)],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(server.wait_for_messages(1, Duration::from_secs(5)).len(), 1);
    assert!(server.transcript().contains("C: LHLO "));
    // TLS keys beside the socket are refused, naming them.
    std::fs::write(
        &config,
        format!(
            "default = \"local\"\n\n[accounts.local]\nsocket = \"{socket}\"\nsecurity = \"starttls\"\n"
        ),
    )
    .unwrap();
    let output = common::tls_mailer(
        &["send", "bob@example.org"],
        MESSAGE.as_bytes(),
        &[("XDG_CONFIG_HOME", home), ("HOME", home)],
    );
    assert_ne!(code(&output), 0);
    assert!(
        stderr(&output).contains("socket with security"),
        "{}",
        stderr(&output)
    );
}

/// The CLI against Dovecot's socket: a user over quota is refused after the
/// message, named, and the exit code is the partial delivery's.
#[test]
#[ignore = "needs the Dovecot test instance: bash tests/servers/dovecot-up.sh"]
fn dovecot_over_its_socket_names_the_user_over_quota() {
    let env = tls_mailer_testkit::real_servers::server_env("dovecot");
    let var = |key: &str| env.get(&format!("DOVECOT_{key}")).unwrap().clone();
    let token = tls_mailer_testkit::real_servers::token("cli-lmtp");
    let mut message = format!("X-Test-Token: {token}\r\nSubject: cli lmtp\r\n\r\n");
    for _ in 0..64 {
        message.push_str("filler line to go over the quota of one KiB\r\n");
    }
    let (alice, full) = (
        format!("alice@{}", var("DOMAIN")),
        format!("{}@{}", var("QUOTA_USER"), var("DOMAIN")),
    );
    let output = common::tls_mailer(
        &[
            "send",
            "--protocol",
            "lmtp",
            "--socket",
            &var("SOCKET"),
            "--from",
            "sender@example.org",
            &alice,
            &full,
        ],
        message.as_bytes(),
        &[],
    );
    let err = stderr(&output);
    assert_eq!(code(&output), 67, "{err}");
    assert!(
        err.contains(&format!("refused <{full}> after the message: 552 5.2.2")),
        "{err}"
    );
    assert!(err.contains("went to 1 of 2 recipients"), "{err}");
    let stored = tls_mailer_testkit::real_servers::wait_for_files(
        &std::path::Path::new(&var("MAILDIR_BASE")).join("alice"),
        token.as_bytes(),
        1,
        Duration::from_secs(30),
    );
    assert_eq!(stored.len(), 1);
}
