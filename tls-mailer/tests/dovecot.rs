#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! LMTP against a real Dovecot (tests/servers/dovecot-up.sh): its Unix
//! socket, and its loopback TCP port. Every test is ignored by a plain
//! `cargo test`; with the server up, run them with `cargo test --workspace
//! --locked -- --include-ignored` (as `.ci/run` does).
//!
//! What Dovecot does, checked here: an unknown user is refused at RCPT
//! (`550 5.1.1 ... User doesn't exist`), so it gets no reply after the data;
//! a user over quota is refused after the data (`552 5.2.2 ... Quota
//! exceeded`), alone, while the others get the message.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tls_mailer::{
    BodyInfo, Client, ClientBuilder, CommandKind, Envelope, Error, Protocol, Security, SendReport,
    Timeouts,
};
use tls_mailer_testkit::real_servers::{
    after_prepended_headers, as_stored, server_env, token, wait_for_files,
};

struct Dovecot {
    env: HashMap<String, String>,
}

impl Dovecot {
    fn new() -> Self {
        Self {
            env: server_env("dovecot"),
        }
    }

    fn var(&self, key: &str) -> &str {
        let key = format!("DOVECOT_{key}");
        self.env
            .get(&key)
            .unwrap_or_else(|| panic!("{key} missing from dovecot.env"))
    }

    fn address(&self, user: &str) -> String {
        format!("{user}@{}", self.var("DOMAIN"))
    }

    /// A client of the Unix socket.
    fn socket(&self) -> ClientBuilder {
        Client::unix_socket(self.var("SOCKET"))
            .protocol(Protocol::Lmtp)
            .timeouts(Timeouts::uniform(Duration::from_secs(30)))
    }

    /// A client of the loopback TCP port (plaintext: loopback only).
    fn tcp(&self) -> ClientBuilder {
        Client::builder(self.var("HOST"))
            .port(self.var("LMTP_PORT").parse().unwrap())
            .security(Security::DangerousPlaintext)
            .protocol(Protocol::Lmtp)
            .timeouts(Timeouts::uniform(Duration::from_secs(30)))
    }

    fn maildir(&self, user: &str) -> PathBuf {
        PathBuf::from(self.var("MAILDIR_BASE")).join(user)
    }

    /// The copies of the message carrying `token` in `user`'s Maildir,
    /// waiting for `count` of them.
    fn stored(&self, user: &str, token: &str, count: usize) -> Vec<Vec<u8>> {
        let timeout = Duration::from_secs(if count == 0 { 1 } else { 30 });
        wait_for_files(&self.maildir(user), token.as_bytes(), count, timeout)
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect()
    }
}

/// A message carrying `token`, with a line that needs dot-stuffing, a lone
/// dot line, and 8-bit text.
fn message(token: &str) -> Vec<u8> {
    format!(
        "X-Test-Token: {token}\r\nFrom: sender@example.org\r\nTo: alice@example.test\r\n\
         Subject: lmtp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n.leading dot\r\n.\r\n..two\r\n\
         Grüße, naïve café\r\nlast line\r\n"
    )
    .into_bytes()
}

fn envelope(recipients: &[String]) -> Envelope {
    Envelope::new("sender@example.org", recipients).unwrap()
}

fn outcome<'r>(report: &'r SendReport, address: &str) -> &'r tls_mailer::RecipientOutcome {
    report
        .recipients
        .iter()
        .find(|outcome| outcome.address == address)
        .unwrap()
}

#[test]
#[ignore = "needs the Dovecot test instance: bash tests/servers/dovecot-up.sh"]
fn two_users_each_get_the_message_byte_for_byte_over_the_socket() {
    let dovecot = Dovecot::new();
    let token = token("two-users");
    let sent = message(&token);
    let (alice, bob) = (dovecot.address("alice"), dovecot.address("bob"));
    let report = dovecot
        .socket()
        .build()
        .unwrap()
        .send(&envelope(&[alice.clone(), bob.clone()]), &sent)
        .unwrap();
    assert!(report.all_accepted(), "{report:?}");
    for address in [&alice, &bob] {
        let answer = outcome(&report, address);
        // One reply each after the data, naming its recipient.
        assert_eq!(answer.command, CommandKind::DataEnd, "{answer:?}");
        assert_eq!(answer.reply.code().value(), 250);
        assert!(
            answer.reply.text().contains(&format!("<{address}>")),
            "{answer:?}"
        );
    }
    assert_eq!(report.security, Security::DangerousPlaintext);
    assert!(report.tls.is_none());
    for user in ["alice", "bob"] {
        let stored = dovecot.stored(user, &token, 1);
        assert_eq!(stored.len(), 1, "{user}: one copy");
        assert_eq!(
            after_prepended_headers(&stored[0]),
            as_stored(&sent),
            "{user}: the message as sent, dots and 8-bit text included"
        );
    }
}

#[test]
#[ignore = "needs the Dovecot test instance: bash tests/servers/dovecot-up.sh"]
fn an_unknown_user_is_refused_at_rcpt_and_the_others_get_the_message() {
    let dovecot = Dovecot::new();
    let token = token("unknown");
    let (alice, nobody) = (dovecot.address("alice"), dovecot.address("nobody"));
    let report = dovecot
        .socket()
        .build()
        .unwrap()
        .send(
            &envelope(&[nobody.clone(), alice.clone()]),
            &message(&token),
        )
        .unwrap();
    let refused: Vec<_> = report.rejected().collect();
    assert_eq!(refused.len(), 1, "{report:?}");
    assert_eq!(refused[0].address, nobody);
    // Dovecot looks the user up at RCPT, not after the data.
    assert_eq!(refused[0].command, CommandKind::RcptTo);
    assert_eq!(refused[0].reply.code().value(), 550);
    assert!(!refused[0].reply.is_transient());
    assert_eq!(outcome(&report, &alice).command, CommandKind::DataEnd);
    assert_eq!(dovecot.stored("alice", &token, 1).len(), 1);
    // Only unknown users: every recipient refused is a failure naming them.
    let error = dovecot
        .socket()
        .build()
        .unwrap()
        .send(&envelope(std::slice::from_ref(&nobody)), &message(&token))
        .unwrap_err();
    assert!(matches!(error, Error::RecipientsRejected(_)), "{error:?}");
    assert!(error.to_string().contains(&nobody), "{error}");
}

#[test]
#[ignore = "needs the Dovecot test instance: bash tests/servers/dovecot-up.sh"]
fn a_user_over_quota_is_refused_after_the_data_alone() {
    let dovecot = Dovecot::new();
    let token = token("quota");
    // More than the 1 KiB quota of the quota user.
    let mut sent = message(&token);
    for _ in 0..64 {
        sent.extend_from_slice(b"filler line to go over the quota of one KiB\r\n");
    }
    let (bob, full) = (
        dovecot.address("bob"),
        dovecot.address(dovecot.var("QUOTA_USER")),
    );
    let report = dovecot
        .socket()
        .build()
        .unwrap()
        .send(&envelope(&[full.clone(), bob.clone()]), &sent)
        .unwrap();
    let refused: Vec<_> = report.rejected().collect();
    assert_eq!(refused.len(), 1, "{report:?}");
    assert_eq!(refused[0].address, full);
    // Accepted at RCPT; refused in its own reply after the data.
    assert_eq!(refused[0].command, CommandKind::DataEnd);
    assert_eq!(refused[0].reply.code().value(), 552, "{:?}", refused[0]);
    assert!(
        refused[0].reply.text().contains("Quota"),
        "{:?}",
        refused[0]
    );
    assert_eq!(outcome(&report, &bob).reply.code().value(), 250);
    let stored = dovecot.stored("bob", &token, 1);
    assert_eq!(after_prepended_headers(&stored[0]), as_stored(&sent));
    assert!(
        dovecot
            .stored(dovecot.var("QUOTA_USER"), &token, 0)
            .is_empty()
    );
}

#[test]
#[ignore = "needs the Dovecot test instance: bash tests/servers/dovecot-up.sh"]
fn a_large_message_is_streamed_and_stored_whole() {
    let dovecot = Dovecot::new();
    let token = token("large");
    let header = format!("X-Test-Token: {token}\r\nSubject: large\r\n\r\n");
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz.0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    let lines = (16 << 20) / line.len();
    let mut sent = header.clone().into_bytes();
    for _ in 0..lines {
        sent.extend_from_slice(line);
    }
    // Streamed through the reader interface, in chunks.
    let mut reader = sent.as_slice();
    let report = dovecot
        .socket()
        .build()
        .unwrap()
        .send_reader(
            &envelope(&[dovecot.address("alice")]),
            &mut reader,
            BodyInfo::of(&sent),
        )
        .unwrap();
    assert!(report.all_accepted(), "{report:?}");
    let stored = dovecot.stored("alice", &token, 1);
    assert_eq!(stored.len(), 1);
    assert!(after_prepended_headers(&stored[0]) == as_stored(&sent).as_slice());
}

#[test]
#[ignore = "needs the Dovecot test instance: bash tests/servers/dovecot-up.sh"]
fn lmtp_over_loopback_tcp_delivers_and_plaintext_stays_loopback_only() {
    let dovecot = Dovecot::new();
    let token = token("tcp");
    let sent = message(&token);
    let report = dovecot
        .tcp()
        .build()
        .unwrap()
        .send(&envelope(&[dovecot.address("bob")]), &sent)
        .unwrap();
    assert!(report.all_accepted(), "{report:?}");
    let stored = dovecot.stored("bob", &token, 1);
    assert_eq!(after_prepended_headers(&stored[0]), as_stored(&sent));
    // Dovecot offers no STARTTLS here: a TLS mode is never given up.
    let error = Client::builder(dovecot.var("HOST"))
        .port(dovecot.var("LMTP_PORT").parse().unwrap())
        .security(Security::StartTls)
        .protocol(Protocol::Lmtp)
        .timeouts(Timeouts::uniform(Duration::from_secs(30)))
        .build()
        .unwrap()
        .send(&envelope(&[dovecot.address("bob")]), &sent)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unsupported(tls_mailer::proto::Unsupported::StartTls)
        ),
        "{error:?}"
    );
}

#[cfg(feature = "tokio")]
#[test]
#[ignore = "needs the Dovecot test instance: bash tests/servers/dovecot-up.sh"]
fn the_tokio_driver_delivers_over_the_socket_too() {
    let dovecot = Dovecot::new();
    let token = token("tokio");
    let sent = message(&token);
    let (alice, full) = (
        dovecot.address("alice"),
        dovecot.address(dovecot.var("QUOTA_USER")),
    );
    let mut big = sent.clone();
    for _ in 0..64 {
        big.extend_from_slice(b"filler line to go over the quota of one KiB\r\n");
    }
    let client = dovecot.socket().build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(client.send_async(&envelope(&[alice.clone(), full.clone()]), &big))
        .unwrap();
    let refused: Vec<_> = report
        .rejected()
        .map(|o| (o.address.as_str(), o.command))
        .collect();
    assert_eq!(refused, [(full.as_str(), CommandKind::DataEnd)]);
    assert_eq!(dovecot.stored("alice", &token, 1).len(), 1);
}
