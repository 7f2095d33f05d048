#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The library against a real Postfix on loopback (tests/servers/postfix-up.sh).
//! Every test is ignored by a plain `cargo test`; with the server up, run them
//! with `cargo test --workspace --locked -- --include-ignored` (as `.ci/run` does).
//! The matrix every real server runs is in real_servers/mod.rs; what only
//! Postfix has (a plaintext port that offers AUTH) is tested here.

#[macro_use]
mod real_servers;

use real_servers::{Server, streamed_message_over_the_size_limit_is_refused_at_the_end};
use tls_mailer::proto::Unsupported;
use tls_mailer::{Envelope, Error, Security};

real_server_suite!(
    Server::postfix(),
    "needs the Postfix test instance: bash tests/servers/postfix-up.sh"
);

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn message_over_the_size_limit_is_refused_when_streamed() {
    streamed_message_over_the_size_limit_is_refused_at_the_end(&Server::postfix());
}

#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn plain_port_is_refused_by_both_tls_modes() {
    let postfix = Server::postfix();
    let error = postfix
        .client("PLAIN_PORT", Security::ImplicitTls)
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            b"x",
        )
        .unwrap_err();
    assert!(matches!(error, Error::WrongSecurity { .. }), "{error:?}");
    let error = postfix
        .client("PLAIN_PORT", Security::StartTls)
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            b"x",
        )
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::StartTls)),
        "{error:?}"
    );
    // Postfix's own record: on the plain port, no client ever said AUTH or MAIL.
    let log = postfix.log();
    let plain: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("postfix/plain/smtpd") && line.contains("disconnect from"))
        .collect();
    assert!(
        !plain.is_empty(),
        "the plain port's connections are in the log"
    );
    for line in plain {
        assert!(
            !line.contains(" auth=") && !line.contains(" mail="),
            "{line}"
        );
    }
}
