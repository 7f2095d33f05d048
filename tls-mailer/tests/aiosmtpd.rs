#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The library against aiosmtpd (Python), the second, independent server of
//! the suite (tests/servers/aiosmtpd-up.sh). It offers neither PIPELINING
//! nor CHUNKING, so this also covers the one-command-at-a-time DATA path.
//! Every test is ignored by a plain `cargo test`; with the server up, run them
//! with `cargo test --workspace --locked -- --include-ignored` (as `.ci/run` does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tls_mailer::{
    Client, ClientBuilder, Credentials, Envelope, Error, Mechanism, Security, Timeouts,
};
use tls_mailer_testkit::real_servers::{server_env, token, wait_for_files};

struct Aiosmtpd(HashMap<String, String>);

impl Aiosmtpd {
    fn get() -> Self {
        Self(server_env("aiosmtpd"))
    }

    fn var(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from aiosmtpd.env"))
    }

    fn client(&self, port_key: &str, security: Security) -> ClientBuilder {
        Client::builder("localhost")
            .port(self.var(port_key).parse().unwrap())
            .security(security)
            .credentials(Credentials::new(
                self.var("AIOSMTPD_USER"),
                self.var("AIOSMTPD_PASSWORD"),
            ))
            .add_root_certificates_file(self.var("AIOSMTPD_CA"))
            .unwrap()
            .timeouts(Timeouts::uniform(Duration::from_secs(30)))
    }

    /// The stored bytes of the message carrying `token`.
    fn stored(&self, token: &str) -> Vec<u8> {
        let spool = PathBuf::from(self.var("AIOSMTPD_SPOOL"));
        let found = wait_for_files(&spool, token.as_bytes(), 1, Duration::from_secs(10));
        let emls: Vec<_> = found
            .into_iter()
            .filter(|(path, _)| path.extension().is_some_and(|e| e == "eml"))
            .collect();
        assert_eq!(emls.len(), 1, "stored once");
        emls.into_iter().next().unwrap().1
    }
}

fn message(token: &str, body: &str) -> Vec<u8> {
    format!("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: {token}\r\n\r\n{body}")
        .into_bytes()
}

#[test]
#[ignore = "needs the aiosmtpd test instance: bash tests/servers/aiosmtpd-up.sh"]
fn implicit_tls_and_starttls_with_each_mechanism() {
    let server = Aiosmtpd::get();
    for (port, security, protection) in [
        (
            "AIOSMTPD_IMPLICIT_PORT",
            Security::ImplicitTls,
            Security::ImplicitTls,
        ),
        (
            "AIOSMTPD_STARTTLS_PORT",
            Security::StartTls,
            Security::StartTls,
        ),
    ] {
        for mechanism in [Mechanism::Plain, Mechanism::Login] {
            let token = token("aiosmtpd");
            let sent = message(&token, "Hello\r\n.\r\n..dots\r\n");
            let report = server
                .client(port, security)
                .auth_mechanisms(&[mechanism])
                .build()
                .unwrap()
                .send(
                    &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
                    &sent,
                )
                .unwrap();
            assert_eq!(report.security, protection);
            assert_eq!(server.stored(&token), sent, "{security:?} {mechanism:?}");
        }
    }
}

#[test]
#[ignore = "needs the aiosmtpd test instance: bash tests/servers/aiosmtpd-up.sh"]
fn twenty_mib_message_byte_exact() {
    let server = Aiosmtpd::get();
    let token = token("aiosmtpd-large");
    let mut sent = message(&token, "");
    let mut line = 0u32;
    while sent.len() < 20 << 20 {
        let text = if line.is_multiple_of(100) {
            ".leading dot\r\n".to_owned()
        } else {
            format!("{line:08} {}\r\n", "z".repeat(66))
        };
        sent.extend_from_slice(text.as_bytes());
        line += 1;
    }
    server
        .client("AIOSMTPD_IMPLICIT_PORT", Security::ImplicitTls)
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            &sent,
        )
        .unwrap();
    assert!(
        server.stored(&token) == sent,
        "the 20 MiB message arrived byte for byte"
    );
}

#[test]
#[ignore = "needs the aiosmtpd test instance: bash tests/servers/aiosmtpd-up.sh"]
fn wrong_password_and_starttls_before_auth() {
    let server = Aiosmtpd::get();
    let error = server
        .client("AIOSMTPD_IMPLICIT_PORT", Security::ImplicitTls)
        .credentials(Credentials::new(server.var("AIOSMTPD_USER"), "wrong"))
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            b"Subject: x\r\n\r\nx\r\n",
        )
        .unwrap_err();
    assert!(error.is_authentication_failure(), "{error:?}");
    // Implicit TLS against the STARTTLS port: the server speaks plaintext first.
    let error = server
        .client("AIOSMTPD_STARTTLS_PORT", Security::ImplicitTls)
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            b"Subject: x\r\n\r\nx\r\n",
        )
        .unwrap_err();
    assert!(matches!(error, Error::WrongSecurity { .. }), "{error:?}");
}
