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

/// DSN as Postfix reads it: NOTIFY=SUCCESS makes it send a delivery report
/// to the envelope sender (alice, a local Maildir here) that carries our
/// ENVID back as Original-Envelope-Id and our ORCPT as Original-Recipient,
/// and RET=HDRS returns the headers only.
#[test]
#[ignore = "needs the Postfix test instance: bash tests/servers/postfix-up.sh"]
fn dsn_envid_orcpt_and_ret_come_back_in_postfix_success_report() {
    use tls_mailer::{Address, Dsn, DsnReturn, MailOptions, Notify, RecipientDsn};
    use tls_mailer_testkit::real_servers::token;

    let postfix = Server::postfix();
    let token = token("dsn");
    let bob = Address::new(&postfix.address("bob")).unwrap();
    let original = Address::new(&postfix.address("bob.original+dsn")).unwrap();
    let envid = format!("{token}+env id");
    let dsn = Dsn::new()
        .ret(DsnReturn::Headers)
        .envid(&envid)
        .unwrap()
        .recipient(
            &bob,
            RecipientDsn::new()
                .notify(Notify::SUCCESS)
                .orcpt(&original)
                .unwrap(),
        );
    let body_marker = format!("body-only-in-the-copy-{token}");
    let sent = postfix
        .implicit()
        .build()
        .unwrap()
        .send_with(
            &Envelope::new(&postfix.address("alice"), [bob.as_str()]).unwrap(),
            &real_servers::message(&token, &format!("{body_marker}\r\n")),
            &MailOptions::new().with_dsn(dsn),
        )
        .unwrap();
    assert!(sent.all_accepted(), "{sent:?}");
    let queue_id = sent.queue_id.clone().expect("Postfix names its queue id");

    // bob's copy and alice's report both carry the token.
    let stored = postfix.delivered(&token, 2);
    assert_eq!(stored.len(), 2, "the copy and the success report");
    let text: Vec<String> = stored
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).replace("\r\n", "\n"))
        .collect();
    let report = text
        .iter()
        .find(|text| text.contains("Action: delivered"))
        .unwrap_or_else(|| panic!("no success report among {text:#?}"));
    assert!(
        report.contains(&format!("Delivered-To: {}", postfix.address("alice"))),
        "{report}"
    );
    // ENVID went out as xtext ("+" is "+2B", space "+20") and Postfix decoded it.
    assert!(
        report.contains(&format!("Original-Envelope-Id: {envid}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("Original-Recipient: rfc822;{}", original.as_str())),
        "{report}"
    );
    assert!(
        report.contains(&format!("Final-Recipient: rfc822; {}", bob.as_str())),
        "{report}"
    );
    // The report is about the very message we sent: Postfix's queue id for it.
    assert!(
        report.contains(&format!("X-Postfix-Queue-ID: {queue_id}")),
        "{report}"
    );
    // RET=HDRS: the returned part is the headers, not the body.
    assert!(report.contains("text/rfc822-headers"), "{report}");
    assert!(
        report.contains(&format!("X-Test-Token: {token}")),
        "{report}"
    );
    assert!(!report.contains(&body_marker), "{report}");
    // Postfix's log: that queue id delivered, with the DSN status it reported.
    let log = postfix.log();
    assert!(
        log.lines()
            .any(|line| line.contains(&queue_id) && line.contains("dsn=2.0.0, status=sent")),
        "no delivery of {queue_id} in the log"
    );
}
