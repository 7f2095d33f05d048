//! The matrix of tests every real mail server of the suite runs (Postfix in
//! postfix.rs, Exim in exim.rs): each test is a function of the server, and
//! [`real_server_suite!`] declares them all as `#[ignore]`d tests of one
//! server. Servers are described by their env file (`POSTFIX_...`,
//! `EXIM_...`, written by tests/servers/*-up.sh) and by the few ways they
//! differ (which header names the recipient, how the final reply names the
//! queue id).
#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tls_mailer::proto::Unsupported;
use tls_mailer::{
    BodyInfo, Client, ClientBuilder, Content, Credentials, Email, Envelope, Error, Mechanism,
    Security, SendReport, Timeouts,
};
use tls_mailer_testkit::real_servers::{
    after_prepended_headers, as_stored, server_env, token as new_token, wait_for_files,
};

/// One real server: its env file and its ways.
pub struct Server {
    /// The env file's name and the prefix of its variables (`postfix`: `POSTFIX_`).
    name: &'static str,
    prefix: String,
    env: HashMap<String, String>,
    /// The header the server prepends with the one recipient a stored copy
    /// is for (Postfix: `Delivered-To`, Exim: `Envelope-to`).
    recipient_header: &'static str,
    /// Whether the final reply of an accepted message names its queue id the
    /// way the server does.
    names_queue_id: fn(&SendReport) -> bool,
}

impl Server {
    /// Postfix (tests/servers/postfix-up.sh): `250 2.0.0 Ok: queued as ID`.
    pub fn postfix() -> Self {
        Self::new("postfix", "Delivered-To", |report| {
            report.queue_id.is_some()
        })
    }

    /// Exim (tests/servers/exim-up.sh): `250 OK id=ID` after DATA,
    /// `250- 0 byte chunk, total N` + `250 OK id=ID` after BDAT LAST.
    pub fn exim() -> Self {
        Self::new("exim", "Envelope-to", |report| {
            report
                .queue_id
                .as_deref()
                .is_some_and(|id| report.reply.text().contains(&format!("OK id={id}")))
        })
    }

    fn new(
        name: &'static str,
        recipient_header: &'static str,
        names_queue_id: fn(&SendReport) -> bool,
    ) -> Self {
        Self {
            name,
            prefix: name.to_ascii_uppercase(),
            env: server_env(name),
            recipient_header,
            names_queue_id,
        }
    }

    /// `<PREFIX>_<key>` from the env file.
    pub fn var(&self, key: &str) -> &str {
        let key = format!("{}_{key}", self.prefix);
        self.env
            .get(&key)
            .unwrap_or_else(|| panic!("{key} missing from {}.env", self.name))
    }

    pub fn port(&self, key: &str) -> u16 {
        self.var(key).parse().unwrap()
    }

    pub fn client(&self, port_key: &str, security: Security) -> ClientBuilder {
        Client::builder("localhost")
            .port(self.port(port_key))
            .security(security)
            .credentials(Credentials::new(self.var("USER"), self.var("PASSWORD")))
            .add_root_certificates_file(self.var("CA"))
            .unwrap()
            .timeouts(Timeouts::uniform(Duration::from_secs(30)))
    }

    pub fn implicit(&self) -> ClientBuilder {
        self.client("IMPLICIT_PORT", Security::ImplicitTls)
    }

    fn maildir(&self) -> PathBuf {
        PathBuf::from(self.var("MAILDIR_BASE"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.var("LOG")).unwrap_or_default()
    }

    pub fn address(&self, local: &str) -> String {
        format!("{local}@{}", self.var("DOMAIN"))
    }

    /// Waits for `count` deliveries of the message carrying `token`.
    pub fn delivered(&self, token: &str, count: usize) -> Vec<Vec<u8>> {
        wait_for_files(
            &self.maildir(),
            token.as_bytes(),
            count,
            Duration::from_secs(30),
        )
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
    }

    /// How many of `stored` are the copy for `recipient`.
    fn copies_for(&self, stored: &[Vec<u8>], recipient: &str) -> usize {
        let header = format!("{}: {recipient}\n", self.recipient_header);
        stored
            .iter()
            .filter(|bytes| String::from_utf8_lossy(bytes).contains(&header))
            .count()
    }

    fn names_queue_id(&self, report: &SendReport) -> bool {
        (self.names_queue_id)(report)
    }
}

/// Declares every test of this module for one server: `$server` makes the
/// [`Server`], `$ignore` says how to start it. (`#[macro_use] mod real_servers;`)
macro_rules! real_server_suite {
    ($server:expr, $ignore:literal) => {
        real_server_suite!(@tests $server, $ignore,
            implicit_tls_with_auth_plain,
            starttls_with_auth_login,
            utf8_and_long_passwords,
            wrong_password_is_refused,
            dot_lines_bare_lf_and_eight_bit_body,
            smtputf8_recipient,
            fifty_recipients_each_delivered_once,
            mixed_accepted_refused_and_deferred_recipients,
            twenty_mib_message_byte_exact,
            message_over_the_size_limit_is_refused,
            untrusted_and_wrong_host_certificates_are_refused,
            built_email_reaches_every_recipient_once_without_bcc,
            dkim_signed_message_verifies_after_delivery,
            three_messages_over_one_connection,
            a_pipelined_batch_with_refusals_each_get_the_servers_own_verdict,
        );
    };
    (@tests $server:expr, $ignore:literal, $($test:ident,)*) => {
        $(
            #[test]
            #[ignore = $ignore]
            fn $test() {
                real_servers::$test(&$server);
            }
        )*
    };
}

/// A complete message (with Date and Message-ID, so the server adds nothing
/// inside it) whose first header carries the test token.
pub fn message(token: &str, body: &str) -> Vec<u8> {
    format!(
        "X-Test-Token: {token}\r\nFrom: alice@example.test\r\nTo: bob@example.test\r\n\
         Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{token}@example.test>\r\n\
         Subject: {token}\r\n\r\n{body}"
    )
    .into_bytes()
}

/// Sends `sent` and checks that it arrives once, byte for byte (as a
/// Maildir stores it), after the headers the server prepends.
fn send_and_check(
    server: &Server,
    client: Client,
    token: &str,
    sent: &[u8],
) -> tls_mailer::SendReport {
    let to = server.address("bob");
    let report = client
        .send(
            &Envelope::new(&server.address("alice"), [to.as_str()]).unwrap(),
            sent,
        )
        .unwrap();
    let delivered = server.delivered(token, 1);
    assert_eq!(delivered.len(), 1, "delivered once");
    assert_eq!(after_prepended_headers(&delivered[0]), as_stored(sent));
    report
}

pub fn implicit_tls_with_auth_plain(server: &Server) {
    let token = new_token("implicit-plain");
    let client = server
        .implicit()
        .auth_mechanisms(&[Mechanism::Plain])
        .build()
        .unwrap();
    let report = send_and_check(
        server,
        client,
        &token,
        &message(&token, "Hello over implicit TLS\r\n"),
    );
    assert_eq!(report.security, Security::ImplicitTls);
    assert!(server.names_queue_id(&report), "{}", report.reply);
}

pub fn starttls_with_auth_login(server: &Server) {
    let token = new_token("starttls-login");
    let client = server
        .client("STARTTLS_PORT", Security::StartTls)
        .auth_mechanisms(&[Mechanism::Login])
        .build()
        .unwrap();
    let report = send_and_check(
        server,
        client,
        &token,
        &message(&token, "Hello over STARTTLS\r\n"),
    );
    assert_eq!(report.security, Security::StartTls);
}

pub fn utf8_and_long_passwords(server: &Server) {
    for (user, password, mechanism) in [
        ("UTF8_USER", "UTF8_PASSWORD", Mechanism::Plain),
        ("UTF8_USER", "UTF8_PASSWORD", Mechanism::Login),
        ("LONG_USER", "LONG_PASSWORD", Mechanism::Plain),
        ("LONG_USER", "LONG_PASSWORD", Mechanism::Login),
    ] {
        let token = new_token("password");
        let client = server
            .implicit()
            .credentials(Credentials::new(server.var(user), server.var(password)))
            .auth_mechanisms(&[mechanism])
            .build()
            .unwrap();
        send_and_check(
            server,
            client,
            &token,
            &message(&token, "password test\r\n"),
        );
    }
    assert_eq!(server.var("LONG_PASSWORD").len(), 120);
}

pub fn wrong_password_is_refused(server: &Server) {
    let error = server
        .implicit()
        .credentials(Credentials::new(server.var("USER"), "not-the-password"))
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            b"Subject: x\r\n\r\nx\r\n",
        )
        .unwrap_err();
    assert!(error.is_authentication_failure(), "{error:?}");
    assert!(!error.to_string().contains("not-the-password"));
}

pub fn dot_lines_bare_lf_and_eight_bit_body(server: &Server) {
    let token = new_token("dots");
    // A server may refuse bare LF (Postfix: smtpd_forbid_bare_newline): the
    // client must send CRLF whatever the input had.
    let mut sent = format!(
        "X-Test-Token: {token}\nFrom: alice@example.test\nSubject: dots\nDate: Sat, 28 Nov 2026 12:00:00 +0000\n\
         Message-ID: <{token}@example.test>\n\n.\n..\n.leading\nmiddle . dot\n"
    )
    .into_bytes();
    sent.extend_from_slice("Grüße, 8-bit UTF-8: ünïcödé ✓\r\nlast line without newline".as_bytes());
    let to = server.address("bob");
    server
        .implicit()
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", [to.as_str()]).unwrap(),
            &sent,
        )
        .unwrap();
    let delivered = server.delivered(&token, 1);
    assert_eq!(delivered.len(), 1);
    assert_eq!(after_prepended_headers(&delivered[0]), as_stored(&sent));
}

pub fn smtputf8_recipient(server: &Server) {
    let token = new_token("smtputf8");
    let recipient = server.var("UTF8_ADDRESS").to_owned();
    let sent = message(&token, "to an internationalised mailbox\r\n");
    let report = server
        .implicit()
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", [recipient.as_str()]).unwrap(),
            &sent,
        )
        .unwrap();
    assert!(report.all_accepted());
    let delivered = server.delivered(&token, 1);
    assert_eq!(delivered.len(), 1);
    assert!(String::from_utf8_lossy(&delivered[0]).contains(&recipient));
}

pub fn fifty_recipients_each_delivered_once(server: &Server) {
    let token = new_token("fifty");
    let recipients: Vec<String> = (0..50)
        .map(|i| server.address(&format!("r{i:02}-{token}")))
        .collect();
    let sent = message(&token, "one transaction, fifty recipients\r\n");
    let report = server
        .implicit()
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", &recipients).unwrap(),
            &sent,
        )
        .unwrap();
    assert_eq!(report.recipients.len(), 50);
    assert!(report.all_accepted());
    let delivered = server.delivered(&token, 50);
    assert_eq!(delivered.len(), 50);
    for recipient in &recipients {
        assert_eq!(server.copies_for(&delivered, recipient), 1, "{recipient}");
    }
}

pub fn mixed_accepted_refused_and_deferred_recipients(server: &Server) {
    let token = new_token("mixed");
    let bob = server.address("bob");
    let perm = server.var("REJECT_PERM").to_owned();
    let temp = server.var("REJECT_TEMP").to_owned();
    let report = server
        .implicit()
        .build()
        .unwrap()
        .send(
            &Envelope::new(
                "alice@example.test",
                [bob.as_str(), perm.as_str(), temp.as_str()],
            )
            .unwrap(),
            &message(&token, "mixed\r\n"),
        )
        .unwrap();
    let refused: Vec<(String, u16)> = report
        .rejected()
        .map(|outcome| (outcome.address.clone(), outcome.reply.code().value()))
        .collect();
    assert_eq!(refused, [(perm.clone(), 550), (temp.clone(), 450)]);
    assert_eq!(server.delivered(&token, 1).len(), 1);

    // All or none: nothing is sent, and the error is not transient (a 5xx is in it).
    let token = new_token("all-or-none");
    let error = server
        .implicit()
        .recipient_policy(tls_mailer::RecipientPolicy::AllOrNone)
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", [bob.as_str(), perm.as_str()]).unwrap(),
            &message(&token, "never\r\n"),
        )
        .unwrap_err();
    assert!(matches!(error, Error::RecipientsRejected(_)), "{error:?}");
    assert!(!error.is_transient());
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.delivered(&token, 0).is_empty());
}

/// A message of `size` bytes of 76-character lines, streamed from a reader.
fn large_message(token: &str, size: usize) -> Vec<u8> {
    let mut message = message(token, "");
    let mut line = 0usize;
    while message.len() < size {
        let text = format!("{line:08} {}\r\n", "x".repeat(66));
        message.extend_from_slice(if line.is_multiple_of(100) {
            b".dot line\r\n"
        } else {
            text.as_bytes()
        });
        line += 1;
    }
    message
}

pub fn twenty_mib_message_byte_exact(server: &Server) {
    let token = new_token("large");
    let sent = large_message(&token, 20 << 20);
    let client = server.implicit().build().unwrap();
    send_and_check(server, client, &token, &sent);
}

pub fn message_over_the_size_limit_is_refused(server: &Server) {
    let limit: usize = server.var("SIZE_LIMIT").parse().unwrap();
    let token = new_token("too-large");
    let sent = large_message(&token, limit + (1 << 20));
    let client = server.implicit().build().unwrap();
    let envelope = Envelope::new("alice@example.test", ["bob@example.test"]).unwrap();
    // Size known in advance: refused before anything is sent.
    let error = client.send(&envelope, &sent).unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::Size { .. })),
        "{error:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.delivered(&token, 0).is_empty());
}

/// Not in [`real_server_suite!`]: each server's file declares it, with
/// what that server does with the rest of the refused chunk (see exim.rs).
pub fn streamed_message_over_the_size_limit_is_refused_at_the_end(server: &Server) {
    let limit: usize = server.var("SIZE_LIMIT").parse().unwrap();
    let token = new_token("too-large-stream");
    let sent = large_message(&token, limit + (1 << 20));
    let client = server.implicit().build().unwrap();
    let envelope = Envelope::new("alice@example.test", ["bob@example.test"]).unwrap();
    // Size unknown (a stream): the server refuses it at the end.
    let error = client
        .send_reader(&envelope, &mut sent.as_slice(), BodyInfo::default())
        .unwrap_err();
    assert!(
        matches!(&error, Error::Rejected(r) if r.code().value() == 552),
        "{error:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.delivered(&token, 0).is_empty());
}

pub fn untrusted_and_wrong_host_certificates_are_refused(server: &Server) {
    // Without the test CA: only the system store, which does not know it.
    let error = Client::builder("localhost")
        .port(server.port("IMPLICIT_PORT"))
        .credentials(Credentials::new("alice", "x"))
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            b"x",
        )
        .unwrap_err();
    assert!(
        matches!(&error, Error::Tls { reason, .. } if reason.contains("trusted")),
        "{error:?}"
    );
    let error = server
        .client("WRONGHOST_PORT", Security::ImplicitTls)
        .build()
        .unwrap()
        .send(
            &Envelope::new("alice@example.test", ["bob@example.test"]).unwrap(),
            b"x",
        )
        .unwrap_err();
    assert!(
        matches!(&error, Error::Tls { reason, .. } if reason.contains("not valid for the name")),
        "{error:?}"
    );
}

pub fn built_email_reaches_every_recipient_once_without_bcc(server: &Server) {
    let token = new_token("email");
    let to = server.address(&format!("to-{token}"));
    let cc = server.address(&format!("cc-{token}"));
    let bcc = server.address(&format!("bcc-{token}"));
    let email = Email::new()
        .with_from("Alice Ä. <alice@example.test>".parse().unwrap())
        .with_to(to.parse().unwrap())
        .with_cc(cc.parse().unwrap())
        .with_bcc(bcc.parse().unwrap())
        .with_subject(format!("Grüße {token}"))
        .with_header("X-Test-Token", &token)
        .unwrap()
        .with_text("Hello\n.\nwith a dot line\n")
        .with_html("<p>Hello <img src=\"cid:logo@test\"></p>")
        .with_inline(
            "logo@test",
            Content::from_bytes(vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 255])
                .with_content_type("image/png")
                .unwrap(),
        )
        .unwrap()
        .with_attachment(
            "numbers.bin",
            Content::from_bytes((0..=255u8).cycle().take(10_000).collect::<Vec<_>>()),
        )
        .unwrap();
    let report = server
        .implicit()
        .build()
        .unwrap()
        .send_email(&email)
        .unwrap();
    assert_eq!(report.recipients.len(), 3);
    let delivered = server.delivered(&token, 3);
    assert_eq!(delivered.len(), 3);
    for recipient in [&to, &cc, &bcc] {
        assert_eq!(server.copies_for(&delivered, recipient), 1, "{recipient}");
    }
    for stored in &delivered {
        let text = String::from_utf8_lossy(stored);
        assert!(
            !text.contains("Bcc:") && !text.contains(&format!("bcc-{token}>")),
            "Bcc leaked"
        );
        let back = Email::parse(stored).unwrap();
        assert_eq!(back.subject(), email.subject());
        assert_eq!(back.text(), email.text());
        assert_eq!(back.html(), email.html());
        assert_eq!(back.to(), email.to());
        assert_eq!(back.cc(), email.cc());
        assert_eq!(back.from(), email.from());
        assert_eq!(back.attachments()[0].data(), email.attachments()[0].data());
        assert_eq!(
            back.inline_parts()[0].data(),
            email.inline_parts()[0].data()
        );
    }
}

/// A DKIM-signed send through the server verifies with dkimpy on what was
/// stored, also when the input had bare LF line endings (the signature
/// covers the normalised bytes the server receives).
pub fn dkim_signed_message_verifies_after_delivery(server: &Server) {
    use std::process::Command;
    let dir = std::env::temp_dir().join(new_token("dkim-key"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("dkim.pem");
    let run = |program: &str, args: &[&str]| {
        let output = Command::new(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    run(
        "openssl",
        &["genrsa", "-out", key.to_str().unwrap(), "2048"],
    );
    let public_der = run(
        "openssl",
        &[
            "rsa",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ],
    );
    let public_b64 = String::from_utf8(run(
        "python3",
        &[
            "-c",
            &format!("import base64,sys; print(base64.b64encode(bytes({public_der:?})).decode())"),
        ],
    ))
    .unwrap();

    let token = new_token("dkim");
    let signer = tls_mailer::DkimSigner::from_pem_file(&key, "test", "example.test").unwrap();
    let sent = format!(
        "X-Test-Token: {token}\nFrom: alice@example.test\nTo: bob@example.test\nSubject: signed\n\
         Date: Sat, 28 Nov 2026 12:00:00 +0000\nMessage-ID: <{token}@example.test>\n\nbare LF body\n.dot\nend"
    );
    for streamed in [false, true] {
        let client = server.implicit().dkim(signer.clone()).build().unwrap();
        let envelope = Envelope::new("alice@example.test", ["bob@example.test"]).unwrap();
        if streamed {
            client
                .send_reader(&envelope, &mut sent.as_bytes(), BodyInfo::default())
                .unwrap();
        } else {
            client.send(&envelope, sent.as_bytes()).unwrap();
        }
    }
    let delivered = server.delivered(&token, 2);
    assert_eq!(delivered.len(), 2);
    for stored in delivered {
        let crlf = String::from_utf8(stored).unwrap().replace('\n', "\r\n");
        let file = dir.join("stored.eml");
        std::fs::write(&file, crlf).unwrap();
        let verifier = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tls-mailer-message/tests/dkim_verify.py"
        );
        let output = Command::new("python3")
            .args([
                verifier,
                file.to_str().unwrap(),
                "test",
                "example.test",
                "rsa",
                public_b64.trim(),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "dkimpy: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

pub fn three_messages_over_one_connection(server: &Server) {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    let client = server
        .implicit()
        .on_trace(move |event| sink.lock().unwrap().push(event.clone()))
        .build()
        .unwrap();
    let bob = server.address("bob");
    let perm = server.var("REJECT_PERM").to_owned();
    let mut connection = client.connect().unwrap();
    let first = new_token("reuse-1");
    let third = new_token("reuse-3");
    let sent = connection
        .send(
            &Envelope::new("alice@example.test", [bob.as_str()]).unwrap(),
            &message(&first, "first of three\r\n"),
        )
        .unwrap();
    assert!(server.names_queue_id(&sent), "{}", sent.reply);
    let refused = connection
        .send(
            &Envelope::new("alice@example.test", [perm.as_str()]).unwrap(),
            &message(&new_token("reuse-2"), "refused\r\n"),
        )
        .unwrap_err();
    assert!(
        matches!(refused, Error::RecipientsRejected(_)),
        "{refused:?}"
    );
    connection
        .send(
            &Envelope::new("alice@example.test", [bob.as_str()]).unwrap(),
            &message(&third, "third of three\r\n"),
        )
        .unwrap();
    connection.quit().unwrap();
    assert_eq!(server.delivered(&first, 1).len(), 1);
    assert_eq!(server.delivered(&third, 1).len(), 1);
    let trace: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|event| match event {
            tls_mailer::TraceEvent::Client(line) => format!("C: {line}"),
            tls_mailer::TraceEvent::Server(line) => format!("S: {line}"),
            tls_mailer::TraceEvent::Note(line) => format!("*  {line}"),
            _ => String::new(),
        })
        .collect();
    // One connection, one handshake, one login, three mails.
    let count = |prefix: &str| trace.iter().filter(|line| line.starts_with(prefix)).count();
    assert_eq!(count("*  connecting"), 1, "{trace:#?}");
    assert_eq!(count("*  TLS established"), 1);
    assert_eq!(count("C: EHLO"), 1);
    assert_eq!(count("C: AUTH"), 1);
    assert_eq!(count("C: MAIL FROM"), 3);
    assert_eq!(count("C: RSET"), 1, "only after the refused mail");
    assert_eq!(count("C: QUIT"), 1);
    eprintln!("{}", trace.join("\n"));
}

pub fn a_pipelined_batch_with_refusals_each_get_the_servers_own_verdict(server: &Server) {
    let bob = server.address("bob");
    let perm = server.var("REJECT_PERM").to_owned();
    let tokens: Vec<String> = (0..6)
        .map(|index| new_token(&format!("batch-{index}")))
        .collect();
    let messages: Vec<Vec<u8>> = tokens
        .iter()
        .map(|token| message(token, "pipelined\r\n"))
        .collect();
    let recipients = |index: usize| match index {
        2 => vec![perm.clone()],
        4 => vec![bob.clone(), perm.clone()],
        _ => vec![bob.clone()],
    };
    let mails = messages.iter().enumerate().map(|(index, bytes)| {
        let envelope = Envelope::new("alice@example.test", recipients(index)).unwrap();
        tls_mailer::Mail::from_bytes(envelope, bytes)
    });
    let mut connection = server.implicit().build().unwrap().connect().unwrap();
    let results = connection.send_batch(mails);
    assert!(connection.is_open(), "refusals leave the connection usable");
    connection.quit().unwrap();
    assert_eq!(results.len(), 6, "{results:?}");
    for (index, result) in results.iter().enumerate() {
        match index {
            2 => assert!(
                matches!(result, Err(Error::RecipientsRejected(_))),
                "{index}: {result:?}"
            ),
            4 => {
                let report = result.as_ref().unwrap();
                assert_eq!(report.rejected().count(), 1, "{report:?}");
            }
            _ => assert!(server.names_queue_id(result.as_ref().unwrap()), "{index}"),
        }
    }
    for (index, token) in tokens.iter().enumerate() {
        if index != 2 {
            assert_eq!(
                server.delivered(token, 1).len(),
                1,
                "{index} delivered once"
            );
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(server.delivered(&tokens[2], 0).is_empty());
}
