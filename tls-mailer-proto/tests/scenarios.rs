#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Byte-exact conversations with the engine: the server's lines go in, the
//! client's lines must come out exactly as written here. Time is a fake
//! clock the tests move by hand.

use std::time::{Duration, Instant};

use tls_mailer_proto::*;

/// Builds a conversation and fast-forwards it to the phase a test is about
/// (ureq-proto's scenario builder is the model).
struct Scenario {
    security: Security,
    extensions: Vec<String>,
    configure: Box<dyn FnOnce(&mut SessionConfig)>,
    channel_binding: Option<[u8; 32]>,
}

impl Scenario {
    fn new(security: Security) -> Self {
        Self {
            security,
            extensions: Vec::new(),
            configure: Box::new(|_| {}),
            channel_binding: None,
        }
    }

    /// The TLS exporter the driver would hand over after the handshake.
    fn channel_binding(mut self, exporter: [u8; 32]) -> Self {
        self.channel_binding = Some(exporter);
        self
    }

    /// What the server's EHLO reply lists after its name.
    fn extensions(mut self, extensions: &[&str]) -> Self {
        self.extensions = extensions.iter().map(|e| e.to_string()).collect();
        self
    }

    fn config(mut self, configure: impl FnOnce(&mut SessionConfig) + 'static) -> Self {
        self.configure = Box::new(configure);
        self
    }

    /// The session before the greeting (after the handshake in implicit TLS mode).
    fn connect(self) -> Conversation {
        let mut config =
            SessionConfig::new(Domain::new("client.example.org").unwrap(), self.security);
        (self.configure)(&mut config);
        #[allow(clippy::disallowed_methods)]
        // one real instant as the base; time then moves by hand
        let now = Instant::now();
        let mut c = Conversation {
            session: Session::new(config, now),
            events: Vec::new(),
            now,
            ehlo: ehlo_reply(&self.extensions),
        };
        if self.security.is_implicit_tls() {
            assert_eq!(c.flush(), "");
            assert_eq!(c.take_events(), [Event::UpgradeToTls]);
            if let Some(exporter) = self.channel_binding {
                c.session.set_channel_binding(exporter);
            }
            c.session.tls_established(c.now).unwrap();
        }
        c
    }

    /// Greeted and EHLO sent; returns the conversation and the client's answer to EHLO.
    fn open(self) -> (Conversation, String) {
        let mut c = self.connect();
        assert_eq!(
            c.server("220 mx.example.org ESMTP\r\n"),
            "EHLO client.example.org\r\n"
        );
        let ehlo = c.ehlo.clone();
        let answer = c.server(&ehlo);
        (c, answer)
    }

    /// A mail to `recipients` started and every reply positive, up to the
    /// body (DATA's `354` included): the session has said `SendBody` and
    /// every reply before the body is in.
    fn in_body(self, recipients: &[&str]) -> Conversation {
        let mut c = self.ready();
        c.start(recipients, BodyInfo::default());
        let mut asked_for_body = false;
        loop {
            let events = c.take_events();
            match events[..] {
                [Event::SendBody(_)] => asked_for_body = true,
                [] => {}
                _ => panic!("{events:?}"),
            }
            if asked_for_body && !c.session.wants_read() {
                return c;
            }
            assert!(c.session.wants_read(), "stuck before the body");
            let reply = if c.session.phase() == Phase::DataInit {
                "354 go\r\n"
            } else {
                "250 ok\r\n"
            };
            c.server(reply);
        }
    }

    /// Idle and ready for a mail; the opening's events are consumed.
    fn ready(self) -> Conversation {
        let (mut c, answer) = self.open();
        assert_eq!(answer, "");
        assert_eq!(c.take_events(), [Event::Ready]);
        c
    }
}

fn ehlo_reply(extensions: &[String]) -> String {
    let mut ehlo = String::from("250");
    ehlo.push(if extensions.is_empty() { ' ' } else { '-' });
    ehlo.push_str("mx.example.org\r\n");
    for (index, extension) in extensions.iter().enumerate() {
        let separator = if index + 1 == extensions.len() {
            ' '
        } else {
            '-'
        };
        ehlo.push_str(&format!("250{separator}{extension}\r\n"));
    }
    ehlo
}

struct Conversation {
    session: Session,
    events: Vec<Event>,
    now: Instant,
    ehlo: String,
}

impl Conversation {
    /// Feeds server bytes and returns what the client writes in answer.
    fn server(&mut self, bytes: &str) -> String {
        self.session.handle_input(self.now, bytes.as_bytes());
        self.flush()
    }

    fn flush(&mut self) -> String {
        let mut out = Vec::new();
        let any = self.session.poll_transmit(&mut out);
        assert_eq!(any, !out.is_empty());
        while let Some(event) = self.session.poll_event() {
            self.events.push(event);
        }
        String::from_utf8(out).unwrap()
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.flush();
        std::mem::take(&mut self.events)
    }

    /// Moves the fake clock.
    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Moves the clock to the session's deadline and lets it fire.
    fn expire(&mut self) {
        let deadline = self.session.poll_timeout().expect("a deadline is armed");
        assert!(deadline >= self.now, "deadlines never lie in the past");
        self.now = deadline;
        self.session.handle_timeout(self.now);
    }

    fn start(&mut self, recipients: &[&str], info: BodyInfo) -> String {
        self.session
            .start_mail(self.now, envelope(recipients), info)
            .unwrap();
        self.flush()
    }

    fn body(&mut self, message: &[u8]) -> String {
        let mut out = Vec::new();
        self.session
            .write_body(self.now, message, &mut out)
            .unwrap();
        self.session.finish_body(self.now, &mut out).unwrap();
        String::from_utf8(out).unwrap() + &self.flush()
    }

    /// Sends one whole mail to one recipient with CHUNKING and PIPELINING,
    /// byte-exact, and returns the final events. The body goes in the same
    /// group as MAIL and RCPT, before any of their replies.
    fn bdat_mail(&mut self, recipient: &str, final_reply: &str) -> Vec<Event> {
        assert_eq!(
            self.start(&[recipient], BodyInfo::default()),
            format!("MAIL FROM:<alice@example.org>\r\nRCPT TO:<{recipient}>\r\n")
        );
        assert_eq!(self.take_events(), [Event::SendBody(BodyMode::Bdat)]);
        assert_eq!(self.body(b"hi\n"), "BDAT 4 LAST\r\nhi\r\n");
        self.server(&format!("250 ok\r\n250 ok\r\n{final_reply}"));
        self.take_events()
    }
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope::new("alice@example.org", recipients).unwrap()
}

fn failed(events: &[Event]) -> Option<&SessionError> {
    events.iter().find_map(|event| match event {
        Event::Failed(error) | Event::MailFailed(error) => Some(error),
        _ => None,
    })
}

#[test]
fn pipelined_send_with_data() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "SIZE 1000", "8BITMIME"])
        .ready();
    assert_eq!(c.session.phase(), Phase::Ready);
    assert_eq!(c.session.poll_timeout(), None, "no deadline while idle");
    let message = b"Subject: hi\r\n\r\n.dot\r\n";
    // One group: MAIL, both RCPTs and DATA in a single write.
    assert_eq!(
        c.start(
            &["bob@example.org", "carol@example.org"],
            BodyInfo::of(message)
        ),
        "MAIL FROM:<alice@example.org> SIZE=21\r\nRCPT TO:<bob@example.org>\r\n\
         RCPT TO:<carol@example.org>\r\nDATA\r\n"
    );
    assert_eq!(c.session.phase(), Phase::MailFrom);
    assert_eq!(
        c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n"),
        ""
    );
    assert_eq!(c.session.phase(), Phase::DataInit);
    assert_eq!(c.server("354 go\r\n"), "");
    let events = c.take_events();
    assert!(
        matches!(&events[0], Event::RecipientRejected { index: 1, rejection } if rejection.code().value() == 550)
    );
    assert_eq!(events[1], Event::SendBody(BodyMode::Data));
    assert_eq!(c.body(message), "Subject: hi\r\n\r\n..dot\r\n.\r\n");
    assert_eq!(c.session.phase(), Phase::DataEnd);
    c.server("250 2.0.0 Ok: queued as 4XyZ12\r\n");
    let events = c.take_events();
    let [Event::Accepted(delivery), Event::Ready] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(delivery.queue_id().as_deref(), Some("4XyZ12"));
    assert_eq!(delivery.rejected().count(), 1);
    assert!(delivery.recipients[0].accepted());
    c.session.quit(c.now);
    assert_eq!(c.flush(), "QUIT\r\n");
    c.server("221 bye\r\n");
    assert_eq!(c.take_events(), [Event::Closed]);
}

#[test]
fn without_pipelining_each_command_waits() {
    let mut c = Scenario::new(Security::ImplicitTls).ready();
    assert_eq!(
        c.start(&["b@x.org", "c@x.org"], BodyInfo::of(b"x")),
        "MAIL FROM:<alice@example.org>\r\n"
    );
    assert_eq!(c.server("250 ok\r\n"), "RCPT TO:<b@x.org>\r\n");
    assert_eq!(c.server("250 ok\r\n"), "RCPT TO:<c@x.org>\r\n");
    assert_eq!(c.server("250 ok\r\n"), "DATA\r\n");
    c.server("354 go\r\n");
    assert_eq!(c.body(b"x"), "x\r\n.\r\n");
}

#[test]
fn size_declares_the_bytes_on_the_wire() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["SIZE 1000"])
        .ready();
    // Three bare LFs become CRLF: 15 bytes in memory, 18 on the wire.
    let message = b"Subject: x\n\nhi\n";
    assert_eq!(
        c.start(&["b@x.org"], BodyInfo::of(message)),
        "MAIL FROM:<alice@example.org> SIZE=18\r\n"
    );
}

#[test]
fn starttls_upgrade_forgets_capabilities_and_says_ehlo_again() {
    let (mut c, answer) = Scenario::new(Security::StartTls)
        .extensions(&["STARTTLS", "AUTH PLAIN"])
        .config(|c| c.credentials = Some(Credentials::new("alice", "secret")))
        .open();
    assert_eq!(answer, "STARTTLS\r\n");
    assert_eq!(c.server("220 go ahead\r\n"), "");
    assert_eq!(c.take_events(), [Event::UpgradeToTls]);
    assert_eq!(c.session.phase(), Phase::TlsHandshake);
    assert!(!c.session.wants_read());
    c.session.tls_established(c.now).unwrap();
    assert_eq!(c.flush(), "EHLO client.example.org\r\n");
    assert!(c.session.capabilities().is_none());
    assert_eq!(c.server("250-mx\r\n250 AUTH LOGIN\r\n"), "AUTH LOGIN\r\n");
    assert_eq!(c.server("334 VXNlcm5hbWU6\r\n"), "YWxpY2U=\r\n");
    assert_eq!(c.server("334 UGFzc3dvcmQ6\r\n"), "c2VjcmV0\r\n");
    c.server("235 2.7.0 ok\r\n");
    assert_eq!(c.take_events(), [Event::Ready]);
    assert!(c.session.is_encrypted());
}

#[test]
fn starttls_not_advertised_fails_before_auth_or_mail() {
    let (mut c, answer) = Scenario::new(Security::StartTls)
        .extensions(&["AUTH PLAIN"])
        .config(|c| c.credentials = Some(Credentials::new("alice", "secret")))
        .open();
    assert_eq!(answer, "QUIT\r\n");
    assert_eq!(
        failed(&c.take_events()),
        Some(&SessionError::Unsupported(Unsupported::StartTls))
    );
    assert!(c.session.is_closed());
}

#[test]
fn starttls_refused_fails_before_auth_or_mail() {
    let (mut c, _) = Scenario::new(Security::StartTls)
        .extensions(&["STARTTLS"])
        .open();
    assert_eq!(c.server("454 4.7.0 TLS not available\r\n"), "QUIT\r\n");
    let events = c.take_events();
    let Some(SessionError::Rejected(rejection)) = failed(&events) else {
        panic!("{events:?}")
    };
    assert_eq!(rejection.command, CommandKind::StartTls);
    assert!(rejection.is_transient());
}

#[test]
fn bytes_after_starttls_220_are_an_attack() {
    let (mut c, _) = Scenario::new(Security::StartTls)
        .extensions(&["STARTTLS"])
        .open();
    // The injected reply arrives in the same packet as the 220.
    assert_eq!(
        c.server("220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"),
        ""
    );
    let events = c.take_events();
    assert_eq!(
        failed(&events),
        Some(&SessionError::Protocol(ProtocolError::BytesAfterStartTls))
    );
    assert!(!events.contains(&Event::UpgradeToTls));
    assert_eq!(c.session.phase(), Phase::Closed);
}

#[test]
fn a_tls_record_where_the_greeting_was_due_names_implicit_tls() {
    let mut c = Scenario::new(Security::StartTls).connect();
    c.session
        .handle_input(c.now, &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    assert_eq!(
        failed(&c.take_events()),
        Some(&SessionError::Protocol(ProtocolError::TlsWhereSmtpExpected))
    );
}

#[test]
fn credentials_never_go_over_plaintext() {
    let (mut c, answer) = Scenario::new(Security::DangerousPlaintext)
        .extensions(&["AUTH PLAIN LOGIN"])
        .config(|c| c.credentials = Some(Credentials::new("alice", "secret")))
        .open();
    assert_eq!(answer, "QUIT\r\n");
    assert_eq!(
        failed(&c.take_events()),
        Some(&SessionError::CredentialsWithoutTls)
    );
}

#[test]
fn auth_plain_rejected() {
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH PLAIN"])
        .config(|c| {
            c.credentials = Some(Credentials::new("alice", "wrong"));
            c.trace = true;
        })
        .open();
    assert_eq!(answer, "AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
    assert_eq!(c.server("535 5.7.8 Authentication failed\r\n"), "QUIT\r\n");
    let events = c.take_events();
    let Some(SessionError::Rejected(rejection)) = failed(&events) else {
        panic!()
    };
    assert_eq!(rejection.command, CommandKind::Auth);
    assert!(rejection.is_authentication_failure());
    assert_eq!(rejection.enhanced().unwrap().to_string(), "5.7.8");
    // The trace shows the command but never the secret.
    let trace: Vec<Trace> = std::iter::from_fn(|| c.session.poll_trace()).collect();
    assert!(trace.contains(&Trace::Client("AUTH PLAIN <redacted>".into())));
    assert!(!format!("{trace:?}").contains("AGFsaWNl"));
}

/// CRAM-MD5 (RFC 2195) with the RFC's own example, only when nothing
/// better is offered; a challenge that is not base64 is a protocol error.
#[test]
fn cram_md5_answers_the_challenge_and_refuses_a_garbled_one() {
    let scenario = || {
        Scenario::new(Security::ImplicitTls)
            .extensions(&["AUTH CRAM-MD5"])
            .config(|c| c.credentials = Some(Credentials::new("tim", "tanstaaftanstaaf")))
    };
    let (mut c, answer) = scenario().open();
    assert_eq!(answer, "AUTH CRAM-MD5\r\n");
    assert_eq!(
        c.server("334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"),
        "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
    );
    assert_eq!(c.server("235 2.7.0 ok\r\n"), "");
    assert_eq!(c.take_events(), [Event::Ready]);

    let (mut c, _) = scenario().open();
    // A server that breaks the protocol gets no answer (not even QUIT).
    assert_eq!(c.server("334 not*base64\r\n"), "");
    let events = c.take_events();
    assert!(
        matches!(
            failed(&events),
            Some(SessionError::Protocol(ProtocolError::UnexpectedReply {
                command: CommandKind::Auth,
                ..
            }))
        ),
        "{events:?}"
    );
    // Offered beside PLAIN: PLAIN, one round trip fewer and no MD5.
    let (_, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH CRAM-MD5 PLAIN"])
        .config(|c| c.credentials = Some(Credentials::new("tim", "pw")))
        .open();
    assert!(answer.starts_with("AUTH PLAIN "), "{answer}");
}

#[test]
fn auth_plain_refuses_a_nul_in_the_credentials() {
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH PLAIN"])
        .config(|c| c.credentials = Some(Credentials::new("alice\0admin", "pw")))
        .open();
    // Nothing of the credentials goes out: only the polite QUIT.
    assert_eq!(answer, "QUIT\r\n");
    assert!(matches!(
        failed(&c.take_events()),
        Some(SessionError::InvalidInput(input)) if input.what == "credentials"
    ));
}

#[test]
fn authentication_failures_are_classified_by_the_engine() {
    let rejection = |command, line: &str| {
        let mut parser = ReplyParser::default();
        parser.feed(line.as_bytes());
        Rejection {
            command,
            reply: parser.next_reply().unwrap().unwrap(),
        }
    };
    assert!(rejection(CommandKind::Auth, "454 4.7.0 try later\r\n").is_authentication_failure());
    assert!(
        rejection(
            CommandKind::MailFrom,
            "530 5.7.0 Authentication required\r\n"
        )
        .is_authentication_failure()
    );
    assert!(
        rejection(CommandKind::MailFrom, "550 5.7.8 bad credentials\r\n")
            .is_authentication_failure()
    );
    assert!(
        !rejection(CommandKind::RcptTo, "550 5.1.1 no such user\r\n").is_authentication_failure()
    );
    assert!(rejection(CommandKind::Data, "421 4.3.2 shutting down\r\n").is_service_closing());
}

#[test]
fn no_common_auth_mechanism() {
    let (mut c, _) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH DIGEST-MD5 GSSAPI"])
        .config(|c| c.credentials = Some(Credentials::new("a", "b")))
        .open();
    let events = c.take_events();
    let error = failed(&events);
    assert_eq!(
        error,
        Some(&SessionError::Unsupported(Unsupported::Auth {
            offered: vec!["DIGEST-MD5".into(), "GSSAPI".into()]
        }))
    );
    let text = error.unwrap().to_string();
    assert!(
        text.contains("DIGEST-MD5 GSSAPI") && text.contains("SCRAM-SHA-256"),
        "{text}"
    );
}

#[test]
fn all_recipients_refused_with_pipelined_data_sends_lone_dot() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING"])
        .ready();
    c.start(&["b@x.org"], BodyInfo::default());
    // The server accepts DATA although it refused the only recipient (RFC 2920 3.1).
    assert_eq!(c.server("250 ok\r\n550 no\r\n354 go\r\n"), ".\r\n");
    assert!(failed(&c.take_events()).is_none());
    // The lone dot ended the transaction (RFC 5321 4.1.1.4): no RSET.
    assert_eq!(c.server("554 no valid recipients\r\n"), "");
    let events = c.take_events();
    assert!(matches!(
        &events[..],
        [Event::MailFailed(SessionError::RecipientsRejected(o)), Event::Ready] if o.len() == 1
    ));
    assert_eq!(c.session.phase(), Phase::Ready);
    assert_eq!(
        c.start(&["c@x.org"], BodyInfo::default()),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<c@x.org>\r\nDATA\r\n"
    );
}

#[test]
fn all_or_none_policy_gives_up_before_data_and_the_next_mail_resets() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING"])
        .config(|c| c.recipient_policy = RecipientPolicy::AllOrNone)
        .ready();
    assert_eq!(
        c.start(&["b@x.org", "c@x.org"], BodyInfo::default()),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\n"
    );
    // No DATA; the session is idle at once, and the RSET the server's open
    // transaction needs goes in front of the next mail, in the same write.
    assert_eq!(c.server("250 ok\r\n250 ok\r\n450 4.2.0 later\r\n"), "");
    let events = c.take_events();
    let Some(SessionError::RecipientsRejected(outcomes)) = failed(&events) else {
        panic!()
    };
    assert!(outcomes[0].accepted() && !outcomes[1].accepted());
    assert_eq!(events.last(), Some(&Event::Ready));
    assert_eq!(
        c.start(&["b@x.org"], BodyInfo::default()),
        "RSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\n"
    );
    assert_eq!(c.server("250 reset\r\n250 ok\r\n250 ok\r\n"), "DATA\r\n");
}

#[test]
fn mail_refused_in_a_pipelined_group_waits_for_the_group() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING"])
        .ready();
    c.start(&["b@x.org"], BodyInfo::default());
    assert_eq!(c.server("553 5.7.1 sender rejected\r\n503 no mail\r\n"), "");
    assert!(failed(&c.take_events()).is_none());
    // MAIL was refused, so no transaction is open and no RSET is needed.
    assert_eq!(c.server("503 no rcpt\r\n"), "");
    let events = c.take_events();
    let [
        Event::MailFailed(SessionError::Rejected(rejection)),
        Event::Ready,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(rejection.command, CommandKind::MailFrom);
}

#[test]
fn chunking_sends_one_frame_ahead_of_the_recipients_then_bounds_chunks_in_flight() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    assert_eq!(
        c.start(&["b@x.org"], BodyInfo::default()),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\n"
    );
    // The body may follow in the same group, before any reply.
    assert_eq!(c.take_events(), [Event::SendBody(BodyMode::Bdat)]);
    let mut out = Vec::new();
    // The first piece is held back; the second sends it as the one frame
    // allowed before the recipients are known.
    for _ in 0..2 {
        assert_eq!(c.session.body_demand(), BodyDemand::More);
        c.session.write_body(c.now, b"line\n", &mut out).unwrap();
    }
    assert_eq!(c.session.body_demand(), BodyDemand::Wait);
    assert!(c.session.wants_read());
    c.server("250 ok\r\n250 ok\r\n");
    // Recipients known: up to eight frames in flight.
    for _ in 0..7 {
        assert_eq!(c.session.body_demand(), BodyDemand::More);
        c.session.write_body(c.now, b"line\n", &mut out).unwrap();
    }
    // Eight chunks in flight: the driver must read before writing more.
    assert_eq!(c.session.body_demand(), BodyDemand::Wait);
    assert!(c.session.wants_read());
    c.server("250 ok\r\n");
    assert_eq!(c.session.body_demand(), BodyDemand::More);
    c.session.finish_body(c.now, &mut out).unwrap();
    let wire = String::from_utf8(out).unwrap();
    assert_eq!(wire.matches("BDAT 6\r\nline\r\n").count(), 8);
    assert!(wire.ends_with("BDAT 6\r\nline\r\nBDAT 6 LAST\r\nline\r\n"));
    assert_eq!(c.session.body_demand(), BodyDemand::Stop);
    c.server(&"250 ok\r\n".repeat(7));
    c.server("250 2.0.0 queued as ABC\r\n");
    assert!(matches!(
        &c.take_events()[..],
        [Event::Accepted(d), Event::Ready] if d.queue_id().as_deref() == Some("ABC")
    ));
}

#[test]
fn a_refused_chunk_stops_the_body() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .in_body(&["b@x.org"]);
    let mut out = Vec::new();
    c.session.write_body(c.now, b"a\n", &mut out).unwrap();
    c.session.write_body(c.now, b"b\n", &mut out).unwrap();
    assert_eq!(c.server("552 5.3.4 too big\r\n"), "");
    assert_eq!(c.session.body_demand(), BodyDemand::Stop);
    let events = c.take_events();
    assert!(matches!(
        &events[..],
        [Event::MailFailed(SessionError::Rejected(r)), Event::Ready] if r.command == CommandKind::Bdat
    ));
    // No BDAT LAST went out, so the server's transaction is reset first.
    assert!(
        c.start(&["c@x.org"], BodyInfo::default())
            .starts_with("RSET\r\nMAIL FROM:")
    );
}

#[test]
fn size_and_smtputf8_are_checked_before_sending() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["SIZE 10"])
        .ready();
    let error = c
        .session
        .start_mail(
            c.now,
            envelope(&["b@x.org"]),
            BodyInfo {
                size: Some(11),
                eight_bit: None,
                ..BodyInfo::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        error,
        SessionError::Unsupported(Unsupported::Size {
            size: 11,
            limit: 10
        })
    );
    let error = c
        .session
        .start_mail(c.now, envelope(&["jörg@x.org"]), BodyInfo::default())
        .unwrap_err();
    assert_eq!(
        error,
        SessionError::Unsupported(Unsupported::SmtpUtf8 {
            address: Some("jörg@x.org".into())
        })
    );
    assert_eq!(c.flush(), "");
    assert!(
        c.session.is_idle(),
        "a refused start leaves the session idle"
    );
}

#[test]
fn hostile_replies_fail_cleanly() {
    type Check = fn(&SessionError) -> bool;
    let cases: [(&str, Check); 4] = [
        ("garbage\r\n", |e| {
            matches!(
                e,
                SessionError::Protocol(ProtocolError::MalformedReply { .. })
            )
        }),
        (
            "554 go away\r\n",
            |e| matches!(e, SessionError::Rejected(r) if r.command == CommandKind::Greeting),
        ),
        ("250 not a greeting\r\n", |e| {
            matches!(
                e,
                SessionError::Protocol(ProtocolError::UnexpectedReply { .. })
            )
        }),
        ("220 hi\r\n250 x\r\n250 y\r\n", |e| {
            matches!(
                e,
                SessionError::Protocol(ProtocolError::UnsolicitedReply(_))
            )
        }),
    ];
    for (input, check) in cases {
        let mut c = Scenario::new(Security::ImplicitTls).connect();
        c.server(input);
        let events = c.take_events();
        assert!(failed(&events).is_some_and(check), "{input:?}: {events:?}");
    }
    let mut c = Scenario::new(Security::ImplicitTls).connect();
    c.session.handle_input(c.now, &[b'A'; 10_000]);
    assert!(matches!(
        failed(&c.take_events()),
        Some(SessionError::Protocol(ProtocolError::LineTooLong { .. }))
    ));
}

#[test]
fn connection_closed_mid_reply() {
    let mut c = Scenario::new(Security::ImplicitTls).ready();
    c.start(&["b@x.org"], BodyInfo::default());
    c.session.handle_eof();
    let events = c.take_events();
    assert_eq!(
        events,
        [
            Event::Failed(SessionError::Protocol(ProtocolError::ConnectionClosed {
                awaiting: Some(CommandKind::MailFrom)
            })),
            Event::Closed
        ]
    );
}

#[test]
fn api_misuse_is_an_error_not_a_panic() {
    let mut c = Scenario::new(Security::ImplicitTls).connect();
    let now = c.now;
    assert_eq!(
        c.session
            .start_mail(now, envelope(&["b@x.org"]), BodyInfo::default()),
        Err(SessionError::ApiMisuse(ApiMisuse::NotIdle))
    );
    assert_eq!(
        c.session.write_body(now, b"x", &mut Vec::new()),
        Err(ApiMisuse::NotInBody)
    );
    assert_eq!(
        c.session.finish_body(now, &mut Vec::new()),
        Err(ApiMisuse::NotInBody)
    );
    assert_eq!(
        c.session.tls_established(now),
        Err(ApiMisuse::NoTlsUpgradePending)
    );
    assert_eq!(c.session.noop(now), Err(ApiMisuse::NotIdle));
    // Nothing was written by any of those calls.
    assert_eq!(c.flush(), "");
    c.session.handle_eof();
    assert_eq!(c.session.noop(now), Err(ApiMisuse::Closed));
    assert_eq!(c.session.reset(now), Err(ApiMisuse::Closed));
}

#[test]
fn the_last_chunk_carries_last_itself() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    c.start(&["b@x.org"], BodyInfo::default());
    c.server("250 ok\r\n250 ok\r\n");
    let mut out = Vec::new();
    c.session
        .write_body(c.now, b"Subject: x\n\n", &mut out)
        .unwrap();
    c.session.write_body(c.now, b"body", &mut out).unwrap();
    c.session.finish_body(c.now, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "BDAT 14\r\nSubject: x\r\n\r\nBDAT 6 LAST\r\nbody\r\n"
    );
}

// --- several mails on one session ---------------------------------------

#[test]
fn accepted_then_refused_then_accepted_on_one_session() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    let events = c.bdat_mail("b@x.org", "250 2.0.0 queued as ONE\r\n");
    assert!(matches!(
        &events[..],
        [Event::Accepted(d), Event::Ready] if d.queue_id().as_deref() == Some("ONE")
    ));
    // The second mail: its only recipient is refused while the first piece
    // of the body is still held back, so no body goes out.
    assert_eq!(
        c.start(&["nobody@x.org"], BodyInfo::default()),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<nobody@x.org>\r\n"
    );
    let mut out = Vec::new();
    c.session.write_body(c.now, b"held\n", &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(c.server("250 ok\r\n550 5.1.1 unknown\r\n"), "");
    assert_eq!(c.session.body_demand(), BodyDemand::Stop);
    let events = c.take_events();
    assert!(matches!(
        &events[..],
        [
            Event::SendBody(BodyMode::Bdat),
            Event::RecipientRejected { index: 0, .. },
            Event::MailFailed(SessionError::RecipientsRejected(_)),
            Event::Ready,
        ]
    ));
    assert!(c.session.is_idle());
    // The third is accepted like the first; the RSET the refused mail left
    // owed goes in front of it, in the same write.
    assert_eq!(
        c.start(&["c@x.org"], BodyInfo::default()),
        "RSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<c@x.org>\r\n"
    );
    assert_eq!(c.body(b"hi\n"), "BDAT 4 LAST\r\nhi\r\n");
    c.server("250 reset\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued as THREE\r\n");
    let events = c.take_events();
    assert!(matches!(
        &events[..],
        [Event::SendBody(_), Event::Accepted(d), Event::Ready] if d.queue_id().as_deref() == Some("THREE")
    ));
}

#[test]
fn a_one_frame_mail_is_one_write_with_quit_behind_it() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    let mut wire = c.start(&["b@x.org", "c@x.org"], BodyInfo::default());
    assert_eq!(c.take_events(), [Event::SendBody(BodyMode::Bdat)]);
    wire += &c.body(b"hi\n");
    c.session.quit(c.now);
    wire += &c.flush();
    // Everything before a single reply: the fewest flights the protocol allows.
    assert_eq!(
        wire,
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\n\
         BDAT 4 LAST\r\nhi\r\nQUIT\r\n"
    );
    c.server("250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n250 2.0.0 queued as ONE\r\n221 bye\r\n");
    let events = c.take_events();
    let [
        Event::RecipientRejected { index: 1, .. },
        Event::Accepted(delivery),
        Event::Closed,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert!(delivery.recipients[0].accepted() && !delivery.recipients[1].accepted());
}

#[test]
fn every_recipient_refused_after_a_one_frame_body_fails_and_the_next_mail_resets() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    c.start(&["nobody@x.org"], BodyInfo::default());
    assert_eq!(c.body(b"hi\n"), "BDAT 4 LAST\r\nhi\r\n");
    // The server refuses the BDAT too: nothing is delivered.
    c.server("250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n");
    let events = c.take_events();
    assert!(matches!(
        &events[..],
        [
            Event::SendBody(_),
            Event::RecipientRejected { index: 0, .. },
            Event::MailFailed(SessionError::RecipientsRejected(_)),
            Event::Ready,
        ]
    ));
    // A server may still hold the transaction after a refused BDAT LAST.
    assert!(
        c.start(&["b@x.org"], BodyInfo::default())
            .starts_with("RSET\r\nMAIL FROM:")
    );
}

#[test]
fn pipelined_transactions_each_get_their_own_outcome_in_order() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .config(|c| c.max_mails_in_flight = 3)
        .ready();
    let mut wire = String::new();
    for recipient in ["a@x.org", "b@x.org", "c@x.org"] {
        assert!(c.session.can_start_mail());
        wire += &c.start(&[recipient], BodyInfo::default());
        wire += &c.body(recipient.as_bytes());
    }
    // The window is full: the next mail waits for an outcome.
    assert!(!c.session.can_start_mail());
    assert_eq!(c.session.mails_in_flight(), 3);
    assert_eq!(wire.matches("MAIL FROM:").count(), 3);
    assert_eq!(wire.matches(" LAST\r\n").count(), 3);
    // Each mail behind another starts with RSET, in the same group.
    assert_eq!(wire.matches("RSET\r\nMAIL FROM:").count(), 2);
    assert!(
        c.take_events()
            .iter()
            .all(|e| matches!(e, Event::SendBody(_)))
    );
    // Mixed results, all in one read: accepted, one recipient refused (so
    // the message is refused too), accepted.
    c.server(
        "250 ok\r\n250 ok\r\n250 queued as A\r\n\
         250 reset\r\n250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n\
         250 reset\r\n250 ok\r\n250 ok\r\n250 queued as C\r\n",
    );
    let events = c.take_events();
    let [
        Event::Accepted(a),
        Event::RecipientRejected { index: 0, .. },
        Event::MailFailed(SessionError::RecipientsRejected(_)),
        Event::Accepted(third),
        Event::Ready,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(a.queue_id().as_deref(), Some("A"));
    assert_eq!(third.queue_id().as_deref(), Some("C"));
    assert!(c.session.is_idle());
}

#[test]
fn a_mail_can_start_as_soon_as_the_one_before_is_written() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    c.start(&["a@x.org"], BodyInfo::default());
    // Not before its body is complete.
    assert!(!c.session.can_start_mail());
    c.body(b"one");
    assert!(c.session.can_start_mail());
    c.start(&["b@x.org"], BodyInfo::default());
    // The first mail's outcome arrives while the second is in its body.
    c.server("250 ok\r\n250 ok\r\n250 queued as ONE\r\n");
    let events = c.take_events();
    assert!(matches!(
        &events[..],
        [Event::SendBody(_), Event::SendBody(_), Event::Accepted(_)]
    ));
    assert_eq!(c.session.body_demand(), BodyDemand::More);
    // QUIT behind the second mail keeps its outcome.
    c.body(b"two");
    c.session.quit(c.now);
    assert_eq!(c.flush(), "QUIT\r\n");
    c.server("250 reset\r\n250 ok\r\n250 ok\r\n250 queued as TWO\r\n221 bye\r\n");
    let events = c.take_events();
    assert!(
        matches!(&events[..], [Event::Accepted(d), Event::Closed] if d.queue_id().as_deref() == Some("TWO"))
    );
}

#[test]
fn without_pipelining_a_mail_waits_for_the_outcome_before() {
    let mut c = Scenario::new(Security::ImplicitTls).ready();
    c.start(&["a@x.org"], BodyInfo::default());
    c.server("250 ok\r\n");
    c.server("250 ok\r\n");
    c.server("354 go\r\n");
    c.body(b"one");
    assert!(!c.session.can_start_mail());
    assert!(
        c.session
            .start_mail(c.now, envelope(&["b@x.org"]), BodyInfo::default())
            .is_err()
    );
    c.server("250 queued\r\n");
    assert!(c.session.can_start_mail());
}

#[test]
fn several_mails_with_data_each_get_their_own_outcome() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING"])
        .ready();
    for (index, final_reply) in ["250 ok 1\r\n", "554 5.6.0 bad content\r\n", "250 ok 3\r\n"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            c.start(&["b@x.org"], BodyInfo::default()),
            "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n"
        );
        c.server("250 ok\r\n250 ok\r\n354 go\r\n");
        assert_eq!(c.take_events(), [Event::SendBody(BodyMode::Data)]);
        assert_eq!(c.body(b"m"), "m\r\n.\r\n");
        let answer = c.server(final_reply);
        let events = c.take_events();
        // After the final dot the transaction is over whatever the reply
        // (RFC 5321 4.1.1.4): no RSET, the next mail follows at once.
        assert_eq!(answer, "");
        if index == 1 {
            assert!(
                matches!(&events[..], [Event::MailFailed(SessionError::Rejected(r)), Event::Ready] if r.command == CommandKind::DataEnd)
            );
        } else {
            assert_eq!(answer, "");
            assert!(matches!(&events[..], [Event::Accepted(_), Event::Ready]));
        }
    }
}

#[test]
fn noop_on_an_idle_session() {
    let mut c = Scenario::new(Security::ImplicitTls).ready();
    c.session.noop(c.now).unwrap();
    assert_eq!(c.flush(), "NOOP\r\n");
    assert_eq!(c.session.phase(), Phase::Command);
    assert!(c.session.poll_timeout().is_some());
    assert_eq!(c.server("250 2.0.0 ok\r\n"), "");
    assert_eq!(c.take_events(), [Event::Ready]);
    assert_eq!(c.session.poll_timeout(), None);
    // A NOOP refused with 421: the server is going away.
    c.session.noop(c.now).unwrap();
    c.flush();
    c.server("421 4.3.2 shutting down\r\n");
    let events = c.take_events();
    assert!(
        matches!(&events[..], [Event::Failed(SessionError::Rejected(r)), Event::Closed] if r.command == CommandKind::Noop)
    );
}

#[test]
fn reset_abandons_a_mail_before_its_body() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING"])
        .ready();
    c.start(&["b@x.org"], BodyInfo::default());
    c.session.reset(c.now).unwrap();
    // RSET waits behind DATA, which ends the group.
    assert_eq!(c.flush(), "");
    // The 354 of the abandoned mail still needs a lone dot.
    assert_eq!(c.server("250 ok\r\n250 ok\r\n354 go\r\n"), ".\r\nRSET\r\n");
    assert_eq!(c.server("250 ok\r\n250 reset\r\n"), "");
    assert_eq!(c.take_events(), [Event::Ready]);
}

#[test]
fn quit_travels_behind_the_last_mail() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .in_body(&["b@x.org"]);
    let mut out = Vec::new();
    c.session.write_body(c.now, b"hi\n", &mut out).unwrap();
    c.session.finish_body(c.now, &mut out).unwrap();
    c.session.quit(c.now);
    c.session.poll_transmit(&mut out).then_some(()).unwrap();
    // The last frame and QUIT in one write.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "BDAT 4 LAST\r\nhi\r\nQUIT\r\n"
    );
    assert!(c.session.is_closed());
    c.server("250 2.0.0 queued as Q1\r\n221 2.0.0 bye\r\n");
    let events = c.take_events();
    assert!(matches!(&events[..], [Event::Accepted(_), Event::Closed]));
}

#[test]
fn quit_after_the_final_dot_goes_in_the_same_write() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING"])
        .in_body(&["b@x.org"]);
    let mut out = Vec::new();
    c.session.write_body(c.now, b"hi", &mut out).unwrap();
    c.session.finish_body(c.now, &mut out).unwrap();
    c.session.quit(c.now);
    let _ = c.session.poll_transmit(&mut out);
    assert_eq!(String::from_utf8(out).unwrap(), "hi\r\n.\r\nQUIT\r\n");
}

#[test]
fn an_accepted_mail_stays_accepted_when_421_follows_in_the_same_read() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .in_body(&["b@x.org"]);
    assert_eq!(c.body(b"x"), "BDAT 3 LAST\r\nx\r\n");
    c.server("250 2.0.0 queued as KEEP\r\n421 4.3.2 shutting down\r\n");
    let events = c.take_events();
    let [
        Event::Accepted(delivery),
        Event::Ready,
        Event::Failed(SessionError::ServiceClosing(_)),
        Event::Closed,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(delivery.queue_id().as_deref(), Some("KEEP"));
}

#[test]
fn a_server_closing_an_idle_session_is_reported_as_such() {
    let mut c = Scenario::new(Security::ImplicitTls).ready();
    c.session.handle_eof();
    assert_eq!(
        c.take_events(),
        [
            Event::Failed(SessionError::Protocol(ProtocolError::ConnectionClosed {
                awaiting: None
            })),
            Event::Closed
        ]
    );
}

// --- deadlines, fired by the fake clock ----------------------------------

/// Every phase gets its deadline from the configured timeouts and fails
/// with `Timeout { phase }` when it passes; an early call does nothing.
#[test]
fn deadlines_fire_in_every_phase() {
    let mut timeouts = Timeouts::default();
    timeouts.greeting = Duration::from_secs(1);
    timeouts.command = Duration::from_secs(2);
    timeouts.mail_from = Duration::from_secs(3);
    timeouts.rcpt_to = Duration::from_secs(4);
    timeouts.data_init = Duration::from_secs(5);
    timeouts.data_block = Duration::from_secs(6);
    timeouts.data_end = Duration::from_secs(7);
    timeouts.quit = Duration::from_secs(8);
    timeouts.tls_handshake = Duration::from_secs(9);
    let scenario = |extensions: &'static [&'static str]| {
        Scenario::new(Security::StartTls)
            .extensions(extensions)
            .config(move |c| c.timeouts = timeouts)
    };
    let expect_timeout = |c: &mut Conversation, phase: Phase, after: u64| {
        let start = c.now;
        let deadline = c.session.poll_timeout().unwrap();
        assert_eq!(deadline - start, Duration::from_secs(after), "{phase:?}");
        c.session
            .handle_timeout(deadline - Duration::from_millis(1));
        assert!(c.take_events().is_empty(), "{phase:?}: fired early");
        c.expire();
        assert_eq!(
            c.take_events(),
            [
                Event::Failed(SessionError::Timeout { phase }),
                Event::Closed
            ],
            "{phase:?}"
        );
        assert_eq!(c.session.poll_timeout(), None);
    };

    let mut c = scenario(&[]).connect();
    expect_timeout(&mut c, Phase::Greeting, 1);

    let mut c = scenario(&[]).connect();
    c.advance(Duration::from_secs(30));
    c.server("220 hi\r\n");
    expect_timeout(&mut c, Phase::Command, 2); // EHLO

    let (mut c, _) = scenario(&["STARTTLS"]).open();
    c.server("220 go\r\n");
    c.take_events();
    expect_timeout(&mut c, Phase::TlsHandshake, 9);

    let in_mail = |extensions: &'static [&'static str]| {
        let (mut c, _) = scenario(extensions).open();
        c.server("220 go\r\n");
        c.take_events();
        c.session.tls_established(c.now).unwrap();
        c.flush();
        let ehlo = ehlo_reply(&extensions.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        c.server(&ehlo);
        assert_eq!(c.take_events(), [Event::Ready]);
        c.advance(Duration::from_secs(100));
        c.start(&["b@x.org"], BodyInfo::default());
        c
    };
    let mut c = in_mail(&["STARTTLS"]);
    expect_timeout(&mut c, Phase::MailFrom, 3);

    let mut c = in_mail(&["STARTTLS"]);
    c.server("250 ok\r\n");
    expect_timeout(&mut c, Phase::RcptTo, 4);

    let mut c = in_mail(&["STARTTLS"]);
    c.server("250 ok\r\n");
    c.server("250 ok\r\n");
    expect_timeout(&mut c, Phase::DataInit, 5);

    let mut c = in_mail(&["STARTTLS"]);
    c.server("250 ok\r\n");
    c.server("250 ok\r\n");
    c.server("354 go\r\n");
    c.take_events();
    c.body(b"x");
    expect_timeout(&mut c, Phase::DataEnd, 7);

    let mut c = in_mail(&["STARTTLS", "CHUNKING"]);
    c.server("250 ok\r\n");
    c.server("250 ok\r\n");
    c.take_events();
    let mut out = Vec::new();
    c.session.write_body(c.now, b"a", &mut out).unwrap();
    c.session.write_body(c.now, b"b", &mut out).unwrap();
    // Without PIPELINING one chunk is in flight and its reply is due.
    assert_eq!(c.session.body_demand(), BodyDemand::Wait);
    expect_timeout(&mut c, Phase::DataBlock, 6);

    // QUIT: a timeout just closes (the mail, if any, is already decided).
    // Quitting in the middle of a mail abandons it: the MAIL reply is
    // still awaited (3 s), then QUIT's (8 s).
    let mut c = in_mail(&["STARTTLS"]);
    c.session.quit(c.now);
    assert_eq!(c.flush(), "");
    let deadline = c.session.poll_timeout().unwrap();
    assert_eq!(deadline - c.now, Duration::from_secs(3));
    assert_eq!(c.server("250 ok\r\n"), "QUIT\r\n");
    let deadline = c.session.poll_timeout().unwrap();
    assert_eq!(deadline - c.now, Duration::from_secs(8));
    c.expire();
    assert_eq!(c.take_events(), [Event::Closed]);
}

#[test]
fn a_reply_restarts_the_deadline_but_partial_bytes_do_not() {
    let mut timeouts = Timeouts::default();
    timeouts.greeting = Duration::from_secs(10);
    let mut c = Scenario::new(Security::DangerousPlaintext)
        .config(move |c| c.timeouts = timeouts)
        .connect();
    let deadline = c.session.poll_timeout().unwrap();
    // A greeting dribbled a byte at a time never moves the deadline.
    for byte in "220-mx.example.org dribbling".bytes() {
        c.advance(Duration::from_millis(300));
        c.session.handle_input(c.now, &[byte]);
        assert_eq!(c.session.poll_timeout(), Some(deadline));
    }
    c.expire();
    assert_eq!(
        c.take_events(),
        [
            Event::Failed(SessionError::Timeout {
                phase: Phase::Greeting
            }),
            Event::Closed
        ]
    );
}

/// A server that reads the body a few bytes at a time keeps every single
/// write alive, but the whole upload has one deadline: the base allowance
/// plus the size at the slowest accepted rate.
#[test]
fn a_trickling_body_upload_fails_at_its_deadline() {
    let mut timeouts = Timeouts::default();
    timeouts.data_block = Duration::from_secs(60);
    timeouts.min_upload_rate = 1024;
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING"])
        .config(move |c| c.timeouts = timeouts)
        .in_body(&["b@x.org"]);
    let body_start = c.now;
    let chunk = [b'x'; 10 * 1024];
    let mut out = Vec::new();
    // Each 10 KiB piece is "written" 30 s after the one before, as a
    // trickling reader would allow: far slower than 1 KiB/s.
    let mut handed = 0u64;
    loop {
        let deadline = c.session.poll_timeout().unwrap();
        assert_eq!(
            deadline,
            body_start + Duration::from_secs(60 + handed / 1024),
            "the deadline grows with the bytes handed over, never with time spent"
        );
        if c.now + Duration::from_secs(30) >= deadline {
            break;
        }
        c.advance(Duration::from_secs(30));
        c.session.write_body(c.now, &chunk, &mut out).unwrap();
        handed += chunk.len() as u64;
        c.session.handle_timeout(c.now);
        assert!(c.take_events().is_empty());
    }
    c.expire();
    assert_eq!(
        c.take_events(),
        [
            Event::Failed(SessionError::Timeout {
                phase: Phase::DataBlock
            }),
            Event::Closed
        ]
    );
    assert!(c.now - body_start < Duration::from_secs(60 + 10 * 10));
}

#[test]
fn an_overall_deadline_bounds_one_mail() {
    let mut timeouts = Timeouts::default();
    timeouts.message = Some(Duration::from_secs(90));
    let mut c = Scenario::new(Security::ImplicitTls)
        .config(move |c| c.timeouts = timeouts)
        .ready();
    let start = c.now;
    c.start(&["b@x.org"], BodyInfo::default());
    // Each reply comes just in time for its own deadline...
    for reply in ["250 ok\r\n", "250 ok\r\n"] {
        c.advance(Duration::from_secs(60));
        c.server(reply);
    }
    // ...but the mail as a whole has 90 s.
    assert_eq!(
        c.session.poll_timeout(),
        Some(start + Duration::from_secs(90))
    );
}

/// With the default deadlines, a server that accepts the connection and then
/// says nothing, or dribbles its greeting, is given up on within 30 s, in
/// both TLS modes (and in implicit TLS whether it stalls the handshake or
/// the greeting).
#[test]
fn silent_servers_fail_within_30_seconds_by_default() {
    let limit = Duration::from_secs(30);
    // Implicit TLS, handshake never completes.
    let config = SessionConfig::new(Domain::new("c.example").unwrap(), Security::ImplicitTls);
    #[allow(clippy::disallowed_methods)] // one real instant as the base
    let start = Instant::now();
    let session = Session::new(config.clone(), start);
    assert!(session.poll_timeout().unwrap() - start <= limit);
    // Implicit TLS, handshake done at once, then a greeting a byte at a time.
    let mut session = Session::new(config, start);
    let _ = session.poll_event();
    session.tls_established(start).unwrap();
    let deadline = session.poll_timeout().unwrap();
    let mut now = start;
    for byte in b"220-dribble" {
        now += Duration::from_secs(1);
        session.handle_input(now, &[*byte]);
    }
    assert_eq!(session.poll_timeout(), Some(deadline));
    assert!(deadline - start <= limit);
    // STARTTLS mode: the plaintext greeting.
    let mut c = Scenario::new(Security::StartTls).connect();
    let start = c.now;
    c.expire();
    assert!(c.now - start <= limit);
    assert!(matches!(
        &c.take_events()[..],
        [
            Event::Failed(SessionError::Timeout {
                phase: Phase::Greeting
            }),
            Event::Closed
        ]
    ));
}

/// What the client writes when a mail starts with `options` on a server
/// offering `extensions`, or why it refuses (then nothing is written and
/// the session stays idle).
fn first_lines(
    security: Security,
    extensions: &[&str],
    recipients: &[&str],
    info: BodyInfo,
    options: &MailOptions,
) -> Result<String, SessionError> {
    let mut c = Scenario::new(security).extensions(extensions).ready();
    match c
        .session
        .start_mail_with(c.now, envelope(recipients), info, options)
    {
        Ok(()) => Ok(c.flush()),
        Err(error) => {
            assert_eq!(c.flush(), "", "nothing is sent after a refusal");
            assert!(
                c.session.is_idle(),
                "a refused start leaves the session idle"
            );
            Err(error)
        }
    }
}

fn unsupported(error: Result<String, SessionError>) -> Unsupported {
    match error {
        Err(SessionError::Unsupported(unsupported)) => unsupported,
        other => panic!("expected a refusal before sending, got {other:?}"),
    }
}

#[test]
fn dsn_parameters_go_on_mail_and_each_rcpt_as_xtext() {
    let bob = Address::new("bob+x@example.org").unwrap();
    let dsn = Dsn::new()
        .notify(Notify::FAILURE | Notify::DELAY)
        .ret(DsnReturn::Headers)
        .envid("msg+1=x y")
        .unwrap()
        .recipient(
            &bob,
            RecipientDsn::new()
                .notify(Notify::NEVER)
                .orcpt(&Address::new("Bob=Old@example.org").unwrap())
                .unwrap(),
        );
    let options = MailOptions::new().with_dsn(dsn);
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "DSN", "8BITMIME", "SIZE 1000"])
        .ready();
    c.session
        .start_mail_with(
            c.now,
            envelope(&["bob+x@example.org", "carol@x.org"]),
            BodyInfo::of(b"hi\r\n"),
            &options,
        )
        .unwrap();
    assert_eq!(
        c.flush(),
        "MAIL FROM:<alice@example.org> SIZE=4 RET=HDRS ENVID=msg+2B1+3Dx+20y\r\n\
         RCPT TO:<bob+x@example.org> NOTIFY=NEVER ORCPT=rfc822;Bob+3DOld@example.org\r\n\
         RCPT TO:<carol@x.org> NOTIFY=FAILURE,DELAY\r\n\
         DATA\r\n"
    );
    assert_eq!(c.server("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), "");
    assert_eq!(c.take_events(), [Event::SendBody(BodyMode::Data)]);
    assert_eq!(c.body(b"hi\r\n"), "hi\r\n.\r\n");
    c.server("250 2.0.0 queued as A1\r\n");
    let events = c.take_events();
    assert!(
        matches!(events[..], [Event::Accepted(_), Event::Ready]),
        "{events:?}"
    );
}

#[test]
fn an_utf8_orcpt_is_xtext_of_its_bytes() {
    let jorg = Address::new("jörg@x.org").unwrap();
    let dsn = Dsn::new().recipient(&jorg, RecipientDsn::new().orcpt(&jorg).unwrap());
    let lines = first_lines(
        Security::ImplicitTls,
        &["PIPELINING", "DSN", "SMTPUTF8", "8BITMIME"],
        &["jörg@x.org"],
        BodyInfo::of(b"x\r\n"),
        &MailOptions::new().with_dsn(dsn),
    );
    assert_eq!(
        lines.unwrap(),
        "MAIL FROM:<alice@example.org> SMTPUTF8\r\n\
         RCPT TO:<jörg@x.org> ORCPT=rfc822;j+C3+B6rg@x.org\r\n\
         DATA\r\n"
    );
}

#[test]
fn dsn_is_refused_before_mail_when_not_offered_unless_optional() {
    let dsn = Dsn::new().notify(Notify::SUCCESS).ret(DsnReturn::Full);
    let options = MailOptions::new().with_dsn(dsn);
    let error = first_lines(
        Security::ImplicitTls,
        &["PIPELINING"],
        &["b@x.org"],
        BodyInfo::default(),
        &options,
    );
    assert_eq!(unsupported(error), Unsupported::Dsn);
    // Optional: the same mail goes, without the parameters.
    let lines = first_lines(
        Security::ImplicitTls,
        &["PIPELINING"],
        &["b@x.org"],
        BodyInfo::default(),
        &options.clone().with_dsn_optional(true),
    );
    assert_eq!(
        lines.unwrap(),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n"
    );
    // Offered: optional or not, they are sent.
    let lines = first_lines(
        Security::ImplicitTls,
        &["DSN"],
        &["b@x.org"],
        BodyInfo::default(),
        &options.with_dsn_optional(true),
    );
    assert_eq!(lines.unwrap(), "MAIL FROM:<alice@example.org> RET=FULL\r\n");
    // An empty request asks nothing, so nothing is refused.
    let lines = first_lines(
        Security::ImplicitTls,
        &[],
        &["b@x.org"],
        BodyInfo::default(),
        &MailOptions::new().with_dsn(Dsn::new()),
    );
    assert_eq!(lines.unwrap(), "MAIL FROM:<alice@example.org>\r\n");
}

#[test]
fn requiretls_is_sent_only_over_tls_to_a_server_that_offers_it() {
    let options = MailOptions::new().with_require_tls(true);
    let lines = first_lines(
        Security::ImplicitTls,
        &["REQUIRETLS"],
        &["b@x.org"],
        BodyInfo::default(),
        &options,
    );
    assert_eq!(
        lines.unwrap(),
        "MAIL FROM:<alice@example.org> REQUIRETLS\r\n"
    );
    let error = first_lines(
        Security::ImplicitTls,
        &["PIPELINING", "DSN"],
        &["b@x.org"],
        BodyInfo::default(),
        &options,
    );
    assert_eq!(unsupported(error), Unsupported::RequireTls);
    // Over plaintext it is refused even when a server claims to offer it.
    let error = first_lines(
        Security::DangerousPlaintext,
        &["REQUIRETLS"],
        &["b@x.org"],
        BodyInfo::default(),
        &options,
    );
    let error = unsupported(error);
    assert_eq!(error, Unsupported::RequireTlsWithoutTls);
    assert!(error.to_string().contains("not encrypted"), "{error}");
}

#[test]
fn requiretls_and_dsn_after_starttls_use_the_new_ehlo() {
    // The EHLO before STARTTLS offers REQUIRETLS and DSN; the one after
    // does not: only the second counts (RFC 3207 4.2).
    let mut c = Scenario::new(Security::StartTls).connect();
    assert_eq!(c.server("220 mx ESMTP\r\n"), "EHLO client.example.org\r\n");
    assert_eq!(
        c.server("250-mx\r\n250-STARTTLS\r\n250-DSN\r\n250 REQUIRETLS\r\n"),
        "STARTTLS\r\n"
    );
    assert_eq!(c.server("220 go\r\n"), "");
    assert_eq!(c.take_events(), [Event::UpgradeToTls]);
    c.session.tls_established(c.now).unwrap();
    assert_eq!(c.flush(), "EHLO client.example.org\r\n");
    c.server("250 mx\r\n");
    assert_eq!(c.take_events(), [Event::Ready]);
    let error = c
        .session
        .start_mail_with(
            c.now,
            envelope(&["b@x.org"]),
            BodyInfo::default(),
            &MailOptions::new().with_require_tls(true),
        )
        .unwrap_err();
    assert_eq!(error, SessionError::Unsupported(Unsupported::RequireTls));
    let error = c
        .session
        .start_mail_with(
            c.now,
            envelope(&["b@x.org"]),
            BodyInfo::default(),
            &MailOptions::new().with_dsn(Dsn::new().notify(Notify::NEVER)),
        )
        .unwrap_err();
    assert_eq!(error, SessionError::Unsupported(Unsupported::Dsn));
    assert_eq!(c.flush(), "");
}

#[test]
fn an_eight_bit_body_is_refused_without_8bitmime() {
    let error = first_lines(
        Security::ImplicitTls,
        &["PIPELINING"],
        &["b@x.org"],
        BodyInfo::of("café\r\n".as_bytes()),
        &MailOptions::new(),
    );
    let error = unsupported(error);
    assert_eq!(error, Unsupported::EightBitMime);
    assert!(error.to_string().contains("quoted-printable"), "{error}");
    // Unknown or 7-bit: sent, with no BODY parameter the server would not know.
    for eight_bit in [None, Some(false)] {
        let info = BodyInfo {
            size: None,
            eight_bit,
            ..BodyInfo::default()
        };
        let lines = first_lines(
            Security::ImplicitTls,
            &[],
            &["b@x.org"],
            info,
            &MailOptions::new(),
        );
        assert_eq!(lines.unwrap(), "MAIL FROM:<alice@example.org>\r\n");
    }
    // With 8BITMIME, BODY=8BITMIME exactly when the body is or may be 8-bit.
    for (eight_bit, expected) in [
        (None, "MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"),
        (
            Some(true),
            "MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n",
        ),
        (Some(false), "MAIL FROM:<alice@example.org>\r\n"),
    ] {
        let info = BodyInfo {
            size: None,
            eight_bit,
            ..BodyInfo::default()
        };
        let lines = first_lines(
            Security::ImplicitTls,
            &["8BITMIME"],
            &["b@x.org"],
            info,
            &MailOptions::new(),
        );
        assert_eq!(lines.unwrap(), expected, "{eight_bit:?}");
    }
}

/// A binary body (RFC 3030) goes by BDAT with BODY=BINARYMIME, byte for
/// byte: no line end is normalised and no line break added at the end.
#[test]
fn a_binary_body_goes_verbatim_by_bdat_with_binarymime() {
    let message = "Subject: x\r\n\r\n\0\x01\n\r\rPNG\n\x1a\n";
    let info = BodyInfo::of(message.as_bytes());
    assert!(info.binary);
    assert_eq!(info.size, Some(message.len() as u64));
    for pipelined in [true, false] {
        let mut extensions = vec!["CHUNKING", "BINARYMIME", "8BITMIME", "SIZE 1000"];
        if pipelined {
            extensions.push("PIPELINING");
        }
        let mut c = Scenario::new(Security::ImplicitTls)
            .extensions(&extensions)
            .ready();
        let mail = format!(
            "MAIL FROM:<alice@example.org> SIZE={} BODY=BINARYMIME\r\n",
            message.len()
        );
        let frame = format!("BDAT {} LAST\r\n{message}", message.len());
        let mut wire = c.start(&["b@x.org"], info);
        if !pipelined {
            assert_eq!(wire, mail);
            let rcpt = c.server("250 ok\r\n");
            assert_eq!(rcpt, "RCPT TO:<b@x.org>\r\n");
            wire += &rcpt;
            wire += &c.server("250 ok\r\n");
        }
        assert_eq!(c.take_events(), [Event::SendBody(BodyMode::Bdat)]);
        wire += &c.body(message.as_bytes());
        assert_eq!(wire, format!("{mail}RCPT TO:<b@x.org>\r\n{frame}"));
        let replies = if pipelined {
            "250 ok\r\n250 ok\r\n"
        } else {
            ""
        };
        c.server(&format!("{replies}250 2.0.0 queued as BIN\r\n"));
        let events = c.take_events();
        assert!(
            matches!(&events[..], [Event::Accepted(_), Event::Ready]),
            "{events:?}"
        );
    }
}

#[test]
fn a_binary_body_is_refused_without_binarymime_and_chunking() {
    let info = BodyInfo::of(b"Subject: x\r\n\r\n\0\r\n");
    for extensions in [
        &["PIPELINING", "CHUNKING", "8BITMIME"][..],
        &["PIPELINING", "BINARYMIME", "8BITMIME"][..],
    ] {
        let error = first_lines(
            Security::ImplicitTls,
            extensions,
            &["b@x.org"],
            info,
            &MailOptions::new(),
        );
        let error = unsupported(error);
        assert_eq!(error, Unsupported::BinaryMime, "{extensions:?}");
        assert!(error.to_string().contains("base64"), "{error}");
    }
    // Offered, but the caller turned BDAT off: still refused, nothing sent.
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING", "BINARYMIME"])
        .config(|config| config.use_chunking = false)
        .ready();
    let error = c
        .session
        .start_mail(c.now, envelope(&["b@x.org"]), info)
        .unwrap_err();
    assert_eq!(error, SessionError::Unsupported(Unsupported::BinaryMime));
    assert_eq!(c.flush(), "");
    // An 8-bit text body is not binary: 8BITMIME as before.
    let text = BodyInfo::of("Subject: x\r\n\r\ncafé\r\n".as_bytes());
    assert!(!text.binary);
    let lines = first_lines(
        Security::ImplicitTls,
        &["BINARYMIME", "CHUNKING", "8BITMIME"],
        &["b@x.org"],
        text,
        &MailOptions::new(),
    );
    assert_eq!(
        lines.unwrap(),
        "MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"
    );
}

#[test]
fn smtputf8_is_declared_only_when_an_address_or_the_header_needs_it() {
    let offered = ["SMTPUTF8", "8BITMIME"];
    let ascii = BodyInfo {
        size: None,
        eight_bit: Some(false),
        ..BodyInfo::default()
    };
    let lines = first_lines(
        Security::ImplicitTls,
        &offered,
        &["b@x.org"],
        ascii,
        &MailOptions::new(),
    );
    assert_eq!(lines.unwrap(), "MAIL FROM:<alice@example.org>\r\n");
    let lines = first_lines(
        Security::ImplicitTls,
        &offered,
        &["jörg@x.org"],
        ascii,
        &MailOptions::new(),
    );
    assert_eq!(lines.unwrap(), "MAIL FROM:<alice@example.org> SMTPUTF8\r\n");
    let header = MailOptions::new().with_utf8_headers(true);
    let lines = first_lines(
        Security::ImplicitTls,
        &offered,
        &["b@x.org"],
        ascii,
        &header,
    );
    assert_eq!(lines.unwrap(), "MAIL FROM:<alice@example.org> SMTPUTF8\r\n");
    // Not offered: the error names the address, or says it is the header.
    let error = first_lines(
        Security::ImplicitTls,
        &["8BITMIME"],
        &["b@x.org", "jörg@x.org"],
        ascii,
        &MailOptions::new(),
    );
    let error = unsupported(error);
    assert_eq!(
        error,
        Unsupported::SmtpUtf8 {
            address: Some("jörg@x.org".into())
        }
    );
    assert!(error.to_string().contains("<jörg@x.org>"), "{error}");
    let error = unsupported(first_lines(
        Security::ImplicitTls,
        &["8BITMIME"],
        &["b@x.org"],
        ascii,
        &header,
    ));
    assert_eq!(error, Unsupported::SmtpUtf8 { address: None });
    assert!(error.to_string().contains("header"), "{error}");
}

#[test]
fn a_421_to_a_pipelined_mail_lets_the_replies_on_their_way_decide_the_others() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    for recipient in ["a@x.org", "b@x.org", "c@x.org"] {
        c.start(&[recipient], BodyInfo::default());
        c.body(b"m");
    }
    let _ = c.take_events();
    // The server turns the second mail away with 421 but had already read
    // and answered the third.
    c.server(
        "250 ok\r\n250 ok\r\n250 queued as ONE\r\n\
         250 reset\r\n421 4.3.2 shutting down\r\n",
    );
    let events = c.take_events();
    assert!(matches!(&events[..], [Event::Accepted(_)]), "{events:?}");
    // No new mail while the server is going away.
    assert!(!c.session.can_start_mail());
    assert!(c.session.is_closed());
    c.server(
        "503 5.5.1 no mail\r\n503 5.5.1 no recipients\r\n\
         250 reset\r\n250 ok\r\n250 ok\r\n250 queued as THREE\r\n",
    );
    let events = c.take_events();
    let [
        Event::MailFailed(SessionError::Rejected(refused)),
        Event::Accepted(third),
        Event::Failed(SessionError::ServiceClosing(_)),
        Event::Closed,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(refused.command, CommandKind::MailFrom);
    assert_eq!(refused.reply.code().value(), 421);
    assert_eq!(third.queue_id().as_deref(), Some("THREE"));
}

#[test]
fn a_421_then_the_end_of_the_stream_fails_the_mail_with_the_421() {
    let mut c = Scenario::new(Security::ImplicitTls)
        .extensions(&["PIPELINING", "CHUNKING"])
        .ready();
    c.start(&["a@x.org"], BodyInfo::default());
    c.body(b"m");
    c.start(&["b@x.org"], BodyInfo::default());
    let _ = c.take_events();
    c.server("421 4.3.2 shutting down\r\n");
    assert!(c.take_events().is_empty());
    c.session.handle_eof();
    let events = c.take_events();
    assert!(
        matches!(
            &events[..],
            [
                Event::MailFailed(SessionError::Rejected(r)),
                Event::Failed(SessionError::ServiceClosing(_)),
                Event::Closed
            ] if r.reply.code().value() == 421
        ),
        "{events:?}"
    );
}

#[test]
fn a_bearer_token_goes_with_oauthbearer_before_xoauth2_and_never_with_plain() {
    let token = || Some(Credentials::bearer_token("alice@example.org", "ya29.token"));
    // OAUTHBEARER (the standard) is preferred; PLAIN is never used for a token.
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER"])
        .config(move |c| c.credentials = token())
        .open();
    assert_eq!(
        answer,
        "AUTH OAUTHBEARER bixhPWFsaWNlQGV4YW1wbGUub3JnLAFhdXRoPUJlYXJlciB5YTI5LnRva2VuAQE=\r\n"
    );
    assert_eq!(c.server("235 2.7.0 Accepted\r\n"), "");
    assert_eq!(c.take_events(), [Event::Ready]);
    // XOAUTH2 where it is the only one.
    let (_, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH PLAIN XOAUTH2"])
        .config(move |c| c.credentials = token())
        .open();
    assert_eq!(
        answer,
        "AUTH XOAUTH2 dXNlcj1hbGljZUBleGFtcGxlLm9yZwFhdXRoPUJlYXJlciB5YTI5LnRva2VuAQE=\r\n"
    );
    // A server offering only password mechanisms: refused before any AUTH.
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH PLAIN LOGIN"])
        .config(move |c| c.credentials = token())
        .open();
    // No AUTH line at all; QUIT.
    assert_eq!(answer, "QUIT\r\n");
    assert!(matches!(
        failed(&c.take_events()),
        Some(SessionError::Unsupported(Unsupported::Auth { .. }))
    ));
}

#[test]
fn a_refused_token_answers_the_error_challenge_empty_then_fails() {
    let (mut c, _) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH XOAUTH2"])
        .config(|c| c.credentials = Some(Credentials::bearer_token("a@b.org", "expired")))
        .open();
    // The JSON error as a challenge: an empty line ends the exchange.
    assert_eq!(
        c.server("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n"),
        "\r\n"
    );
    c.server("535 5.7.8 Username and Password not accepted\r\n");
    let events = c.take_events();
    let Some(SessionError::Rejected(rejection)) = failed(&events) else {
        panic!("{events:?}")
    };
    assert!(rejection.is_authentication_failure());
    // A password never goes with a token mechanism.
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH XOAUTH2"])
        .config(|c| c.credentials = Some(Credentials::new("a@b.org", "pw")))
        .open();
    assert_eq!(answer, "QUIT\r\n");
    assert!(matches!(
        failed(&c.take_events()),
        Some(SessionError::Unsupported(Unsupported::Auth { .. }))
    ));
}

/// SCRAM-SHA-256-PLUS (RFC 5802 channel binding, RFC 9266 tls-exporter):
/// the GS2 header and `c=` carry the binding; plain SCRAM says "y" when the
/// server did not offer -PLUS, "n" when it did or there is no binding.
#[test]
fn scram_plus_binds_to_the_tls_exporter_and_plain_scram_flags_a_missing_plus() {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let exporter = [7u8; 32];
    let scram = |c: &mut SessionConfig| {
        c.credentials = Some(Credentials::new("user", "pencil"));
        c.auth_mechanisms = vec![Mechanism::ScramSha256Plus, Mechanism::ScramSha256];
        c.sasl_nonce = Some("n0nce".into());
    };
    let first = |answer: &str, mechanism: &str| -> String {
        let encoded = answer
            .strip_prefix(&format!("AUTH {mechanism} "))
            .unwrap_or_else(|| panic!("{answer}"))
            .trim_end();
        String::from_utf8(base64.decode(encoded).unwrap()).unwrap()
    };
    let server_first = format!("334 {}\r\n", base64.encode("r=n0ncesrv,s=c2FsdA==,i=4096"));
    let c_attribute = |c: &mut Conversation| -> Vec<u8> {
        let final_message = c.server(&server_first);
        let decoded = String::from_utf8(base64.decode(final_message.trim_end()).unwrap()).unwrap();
        let value = decoded
            .strip_prefix("c=")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        base64.decode(value).unwrap()
    };

    // Offered and bound: -PLUS, with the exporter in c=.
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256"])
        .config(scram)
        .channel_binding(exporter)
        .open();
    assert_eq!(
        first(&answer, "SCRAM-SHA-256-PLUS"),
        "p=tls-exporter,,n=user,r=n0nce"
    );
    let mut expected = b"p=tls-exporter,,".to_vec();
    expected.extend_from_slice(&exporter);
    assert_eq!(c_attribute(&mut c), expected);

    // Bound, but the server offers plain SCRAM only: "y".
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH SCRAM-SHA-256"])
        .config(scram)
        .channel_binding(exporter)
        .open();
    assert_eq!(first(&answer, "SCRAM-SHA-256"), "y,,n=user,r=n0nce");
    assert_eq!(c_attribute(&mut c), b"y,,");

    // No binding (no TLS 1.3 exporter): -PLUS is not used, and "n".
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256"])
        .config(scram)
        .open();
    assert_eq!(first(&answer, "SCRAM-SHA-256"), "n,,n=user,r=n0nce");
    assert_eq!(c_attribute(&mut c), b"n,,");

    // -PLUS offered but not allowed here: plain SCRAM with "n", since "y"
    // would tell the server its -PLUS was stripped.
    let (_, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256"])
        .config(move |c| {
            scram(c);
            c.auth_mechanisms = vec![Mechanism::ScramSha256];
        })
        .channel_binding(exporter)
        .open();
    assert_eq!(first(&answer, "SCRAM-SHA-256"), "n,,n=user,r=n0nce");
}

#[test]
fn scram_sha_256_follows_rfc_7677_and_refuses_a_server_that_cannot_prove_itself() {
    let scram = |c: &mut SessionConfig| {
        c.credentials = Some(Credentials::new("user", "pencil"));
        c.auth_mechanisms = vec![Mechanism::ScramSha256];
        c.sasl_nonce = Some("rOprNGfwEbeRWgbNEkqO".into());
    };
    // RFC 7677 3's exchange (base64 of its messages).
    let server_first = "334 cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=\r\n";
    let (mut c, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH PLAIN SCRAM-SHA-256"])
        .config(scram)
        .open();
    assert_eq!(
        answer,
        "AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=\r\n"
    );
    assert_eq!(
        c.server(server_first),
        "Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==\r\n"
    );
    // The server's signature checks out: an empty answer, then 235.
    assert_eq!(
        c.server("334 dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==\r\n"),
        "\r\n"
    );
    c.server("235 2.7.0 ok\r\n");
    assert_eq!(c.take_events(), [Event::Ready]);

    // A server that does not know the password cannot forge the signature.
    let (mut c, _) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH SCRAM-SHA-256"])
        .config(scram)
        .open();
    c.server(server_first);
    assert_eq!(
        c.server("334 dj1BQUFBVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==\r\n"),
        ""
    );
    assert_eq!(
        failed(&c.take_events()),
        Some(&SessionError::Protocol(
            ProtocolError::ScramServerNotVerified
        ))
    );
    // Without a nonce (no random source given) SCRAM is not used.
    let (_, answer) = Scenario::new(Security::ImplicitTls)
        .extensions(&["AUTH SCRAM-SHA-256 PLAIN"])
        .config(|c| c.credentials = Some(Credentials::new("user", "pencil")))
        .open();
    assert!(answer.starts_with("AUTH PLAIN "), "{answer}");
}
