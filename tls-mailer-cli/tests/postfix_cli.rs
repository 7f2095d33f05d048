#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! `tls-mailer send` against a real Postfix on loopback
//! (tests/servers/postfix-up.sh). Every test is ignored by a plain `cargo
//! test`; with the server up, run them with `cargo test --workspace --locked
//! -- --include-ignored` (as `.ci/run` does).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Output;

use common::{code, stderr, tls_mailer as run};
use std::time::Duration;

use tls_mailer_testkit::real_servers::{
    after_prepended_headers, as_stored, server_env, token, wait_for_files,
};

struct Postfix(HashMap<String, String>);

impl Postfix {
    fn get() -> Self {
        Self(server_env("postfix"))
    }

    fn var(&self, key: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} missing from postfix.env"))
    }

    /// `tls-mailer send` to the port named by `port_key`, with the test CA and
    /// the user alice (password through the environment).
    fn send(&self, port_key: &str, extra: &[&str], stdin: &[u8]) -> Output {
        let port = self.var(port_key);
        let ca = self.var("POSTFIX_CA");
        let user = self.var("POSTFIX_USER");
        let mut args = vec![
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "--user",
            &user,
            "--password-env",
            "PF_PASSWORD",
            "--timeout",
            "30",
        ];
        args.extend_from_slice(extra);
        run(
            &args,
            stdin,
            &[("PF_PASSWORD", &self.var("POSTFIX_PASSWORD"))],
        )
    }

    fn delivered(&self, token: &str, count: usize) -> Vec<Vec<u8>> {
        let base = PathBuf::from(self.var("POSTFIX_MAILDIR_BASE"));
        wait_for_files(&base, token.as_bytes(), count, Duration::from_secs(30))
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect()
    }
}

fn message(token: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "X-Test-Token: {token}\r\nFrom: alice@example.test\r\nTo: bob@example.test\r\n{extra_headers}\
         Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{token}@example.test>\r\nSubject: {token}\r\n\r\n{body}"
    )
    .into_bytes()
}

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn both_tls_modes_and_every_mechanism_deliver_byte_exact() {
    let postfix = Postfix::get();
    for (port, security, mechanism) in [
        ("POSTFIX_IMPLICIT_PORT", "implicit", "plain"),
        ("POSTFIX_IMPLICIT_PORT", "implicit", "login"),
        ("POSTFIX_STARTTLS_PORT", "starttls", "plain"),
        ("POSTFIX_STARTTLS_PORT", "starttls", "login"),
        // Cyrus SASL checks the challenge answers.
        ("POSTFIX_IMPLICIT_PORT", "implicit", "cram-md5"),
        ("POSTFIX_IMPLICIT_PORT", "implicit", "scram-sha-256"),
    ] {
        let token = token(security);
        let sent = message(&token, "", "Hello from the command line\r\n.\r\n..\r\n");
        let args = [
            "--security",
            security,
            "--auth-mechanism",
            mechanism,
            "-v",
            "bob@example.test",
        ];
        let output = postfix.send(port, &args, &sent);
        assert_eq!(code(&output), 0, "{security}: {}", stderr(&output));
        let auth_line = format!("C: AUTH {}", mechanism.to_ascii_uppercase());
        assert!(stderr(&output).contains(&auth_line), "{}", stderr(&output));
        let delivered = postfix.delivered(&token, 1);
        assert_eq!(delivered.len(), 1);
        assert_eq!(after_prepended_headers(&delivered[0]), as_stored(&sent));
    }
}

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn utf8_password_from_a_file_with_auth_login_fallback_free() {
    let postfix = Postfix::get();
    let token = token("utf8-password");
    let dir = std::env::temp_dir().join(&token);
    std::fs::create_dir_all(&dir).unwrap();
    let password_file = dir.join("password");
    std::fs::write(
        &password_file,
        format!("{}\n", postfix.var("POSTFIX_UTF8_PASSWORD")),
    )
    .unwrap();
    let port = postfix.var("POSTFIX_IMPLICIT_PORT");
    let ca = postfix.var("POSTFIX_CA");
    let user = postfix.var("POSTFIX_UTF8_USER");
    let output = run(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "--user",
            &user,
            "--password-file",
            password_file.to_str().unwrap(),
            "bob@example.test",
        ],
        &message(&token, "", "utf-8 password\r\n"),
        &[],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(postfix.delivered(&token, 1).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn read_recipients_delivers_once_each_without_bcc() {
    let postfix = Postfix::get();
    let token = token("cli-bcc");
    let cc = format!("cc-{token}@example.test");
    let bcc = format!("bcc-{token}@example.test");
    let sent = message(
        &token,
        &format!("Cc: {cc}\r\nBcc: {bcc}\r\n"),
        "to, cc and bcc\r\n",
    );
    let output = postfix.send("POSTFIX_IMPLICIT_PORT", &["-t"], &sent);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let delivered = postfix.delivered(&token, 3);
    assert_eq!(delivered.len(), 3);
    for recipient in ["bob@example.test", cc.as_str(), bcc.as_str()] {
        let header = format!("Delivered-To: {recipient}\n");
        assert_eq!(
            delivered
                .iter()
                .filter(|b| String::from_utf8_lossy(b).contains(&header))
                .count(),
            1,
            "{recipient}"
        );
    }
    for stored in &delivered {
        assert!(!String::from_utf8_lossy(stored).contains("Bcc:"));
    }
}

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn twenty_mib_message_file_byte_exact() {
    let postfix = Postfix::get();
    let token = token("cli-large");
    let mut sent = message(&token, "", "");
    let mut line = 0u32;
    while sent.len() < 20 << 20 {
        sent.extend_from_slice(format!("{line:08} {}\r\n", "y".repeat(66)).as_bytes());
        line += 1;
    }
    let dir = std::env::temp_dir().join(&token);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("large.eml");
    std::fs::write(&file, &sent).unwrap();
    let output = postfix.send(
        "POSTFIX_IMPLICIT_PORT",
        &["--message", file.to_str().unwrap(), "bob@example.test"],
        b"",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let delivered = postfix.delivered(&token, 1);
    assert_eq!(delivered.len(), 1);
    assert_eq!(after_prepended_headers(&delivered[0]), as_stored(&sent));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn mixed_recipients_exit_67_and_name_each_refusal() {
    let postfix = Postfix::get();
    let token = token("cli-mixed");
    let perm = postfix.var("POSTFIX_REJECT_PERM");
    let temp = postfix.var("POSTFIX_REJECT_TEMP");
    let output = postfix.send(
        "POSTFIX_IMPLICIT_PORT",
        &["bob@example.test", &perm, &temp],
        &message(&token, "", "mixed\r\n"),
    );
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains(&format!("refused <{perm}>: 550")), "{log}");
    assert!(log.contains(&format!("refused <{temp}>: 450")), "{log}");
    assert!(
        log.contains("(temporary: that recipient may be retried alone)"),
        "{log}"
    );
    assert_eq!(postfix.delivered(&token, 1).len(), 1);
    // Only a temporary refusal, but bob has the message: still 67, not 75.
    let token2 = crate::token("cli-temp");
    let output = postfix.send(
        "POSTFIX_IMPLICIT_PORT",
        &["bob@example.test", &temp],
        &message(&token2, "", "temp\r\n"),
    );
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("refused <{temp}>: 450")),
        "{}",
        stderr(&output)
    );
    assert_eq!(postfix.delivered(&token2, 1).len(), 1);
}

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn refusals_map_to_exit_codes() {
    let postfix = Postfix::get();
    let sent = message(&token("cli-refused"), "", "never delivered\r\n");
    // The plain port: implicit TLS sees plaintext SMTP (78), STARTTLS finds none (77).
    let output = postfix.send("POSTFIX_PLAIN_PORT", &["bob@example.test"], &sent);
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    let output = postfix.send(
        "POSTFIX_PLAIN_PORT",
        &["--security", "starttls", "bob@example.test"],
        &sent,
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    // The certificate names another host.
    let output = postfix.send("POSTFIX_WRONGHOST_PORT", &["bob@example.test"], &sent);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    // Wrong password.
    let port = postfix.var("POSTFIX_IMPLICIT_PORT");
    let ca = postfix.var("POSTFIX_CA");
    let output = run(
        &[
            "send",
            "--host",
            "localhost",
            "--port",
            &port,
            "--ca-file",
            &ca,
            "--user",
            "alice",
            "--password-env",
            "PF_PASSWORD",
            "bob@example.test",
        ],
        &sent,
        &[("PF_PASSWORD", "wrong")],
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    // Over the SIZE limit, known from the file size: refused before sending (69).
    let limit: usize = postfix.var("POSTFIX_SIZE_LIMIT").parse().unwrap();
    let dir = std::env::temp_dir().join(token("cli-size"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("huge.eml");
    let mut huge = sent.clone();
    huge.resize(limit + 1024, b'x');
    std::fs::write(&file, &huge).unwrap();
    let output = postfix.send(
        "POSTFIX_IMPLICIT_PORT",
        &["--message", file.to_str().unwrap(), "bob@example.test"],
        b"",
    );
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    std::fs::remove_dir_all(&dir).unwrap();
}
