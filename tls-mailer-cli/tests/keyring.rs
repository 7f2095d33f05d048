#![cfg(feature = "keyring")]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The `keyring` feature against the real system keyring (the kernel's
//! keyutils on Linux): `tls-mailer keyring set`, a send with
//! `--password-keyring` and with `password_keyring`, `keyring delete`.
//!
//! Each command runs under `keyctl session -` when keyutils' `keyctl` is
//! installed, so it has a session keyring of its own as in a login
//! session (entries then carry between commands through the user's
//! persistent keyring). Where the keyring cannot be used at all, the test
//! prints "skipped: ..." with the reason and returns without asserting:
//! read its output, since a returning test is counted as passed.

mod common;

use std::process::{Command, Output};

use common::{TestDir, code, stderr};
use tls_mailer_testkit::TestServer;

const USER: &str = "alice";
const PASSWORD: &str = "keyring-s3cret-pässword";
const MESSAGE: &str =
    "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: keyring\r\n\r\nHello\r\n";

/// Whether keyutils' `keyctl` can give each command a session keyring.
fn keyctl() -> bool {
    Command::new("keyctl")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs `tls-mailer ARGS` with `stdin`, under `keyctl session -` when it
/// exists, without the caller's password or configuration file.
fn tls_mailer(args: &[&str], stdin: &str) -> Output {
    let binary = env!("CARGO_BIN_EXE_tls-mailer");
    let command = if keyctl() {
        let mut command = Command::new("keyctl");
        command.args(["session", "-", binary]);
        command
    } else {
        Command::new(binary)
    };
    common::run(command, args, stdin.as_bytes(), &[])
}

/// A service name no other run uses.
fn service(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tls-mailer-test-{label}-{}-{nanos}", std::process::id())
}

/// Why the system keyring cannot hold an entry from one command to the
/// next here, if it cannot: a probe entry is set, then deleted.
fn unusable() -> Option<String> {
    let probe = service("probe");
    let set = tls_mailer(
        &["keyring", "set", "--service", &probe, "--user", USER],
        "probe-secret\n",
    );
    if code(&set) != 0 {
        return Some(format!("keyring set: {}", stderr(&set).trim()));
    }
    let delete = tls_mailer(
        &["keyring", "delete", "--service", &probe, "--user", USER],
        "",
    );
    (code(&delete) != 0).then(|| format!("keyring delete: {}", stderr(&delete).trim()))
}

#[test]
fn a_secret_set_in_the_keyring_logs_in_and_delete_removes_it() {
    if let Some(why) = unusable() {
        println!("skipped: the system keyring is not usable here ({why})");
        return;
    }
    let dir = TestDir::new("keyring");
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let ca = dir.file("ca.pem", server.ca_pem().as_bytes());
    let port = server.port().to_string();
    let service = service("send");
    let entry = ["--service", service.as_str(), "--user", USER];

    let set = tls_mailer(
        &[&["keyring", "set"][..], &entry].concat(),
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code(&set), 0, "{}", stderr(&set));
    assert!(!stderr(&set).contains(PASSWORD), "{}", stderr(&set));

    let send = |extra: &[&str]| {
        let mut args = vec!["send", "--timeout", "10", "bob@example.org"];
        args.extend_from_slice(extra);
        tls_mailer(&args, MESSAGE)
    };
    let flags = [
        "--host",
        "localhost",
        "--port",
        &port,
        "--ca-file",
        &ca,
        "--user",
        USER,
        "--password-keyring",
        &service,
    ];
    let output = send(&flags);
    assert_eq!(code(&output), 0, "{}", stderr(&output));

    // The same entry named by an account of the configuration file.
    let config = dir.file(
        "config.toml",
        format!(
            "[accounts.main]\nhost = \"localhost\"\nport = {port}\nca_file = {ca:?}\n\
             user = \"{USER}\"\npassword_keyring = {service:?}\n"
        )
        .as_bytes(),
    );
    let output = send(&["--config", &config]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));

    let messages = server.wait_for_messages(2, std::time::Duration::from_secs(5));
    assert_eq!(messages.len(), 2);
    for message in &messages {
        assert_eq!(message.auth_user.as_deref(), Some(USER));
    }

    let delete = tls_mailer(&[&["keyring", "delete"][..], &entry].concat(), "");
    assert_eq!(code(&delete), 0, "{}", stderr(&delete));

    // Gone: the error names the entry and how to add it, never the secret.
    let output = send(&flags);
    let said = stderr(&output);
    assert_eq!(code(&output), 78, "{said}");
    assert!(said.contains("no entry for service"), "{said}");
    assert!(said.contains(&format!("--user {USER}")), "{said}");
    assert!(said.contains("tls-mailer keyring set --service"), "{said}");
    assert!(!said.contains(PASSWORD), "{said}");
    let delete = tls_mailer(&[&["keyring", "delete"][..], &entry].concat(), "");
    assert_eq!(code(&delete), 78, "{}", stderr(&delete));
}
