#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Byte-exact conversations with the engine: the server's lines go in, the
//! client's lines must come out exactly as written here.

use tls_mailer_proto::*;

struct Scenario {
    session: Session,
    events: Vec<Event>,
}

impl Scenario {
    fn new(transport: Transport, configure: impl FnOnce(&mut SessionConfig)) -> Self {
        let mut config = SessionConfig::new(Domain::new("client.example.org").unwrap(), transport);
        configure(&mut config);
        Self {
            session: Session::new(config),
            events: Vec::new(),
        }
    }

    /// Feeds server bytes and returns what the client writes in answer.
    fn server(&mut self, bytes: &str) -> String {
        self.session.handle_input(bytes.as_bytes());
        self.flush()
    }

    fn flush(&mut self) -> String {
        let mut out = Vec::new();
        self.session.poll_transmit(&mut out);
        while let Some(event) = self.session.poll_event() {
            self.events.push(event);
        }
        String::from_utf8(out).unwrap()
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Greeting and EHLO with the given extension lines; returns the client's answer to EHLO.
    fn open(&mut self, extensions: &[&str]) -> String {
        assert_eq!(
            self.server("220 mx.example.org ESMTP\r\n"),
            "EHLO client.example.org\r\n"
        );
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
        self.server(&ehlo)
    }

    fn body(&mut self, message: &[u8]) -> String {
        let mut out = Vec::new();
        self.session.write_body(message, &mut out).unwrap();
        self.session.finish_body(&mut out).unwrap();
        String::from_utf8(out).unwrap() + &self.flush()
    }
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope::new("alice@example.org", recipients).unwrap()
}

fn failed(events: &[Event]) -> Option<&SessionError> {
    events.iter().find_map(|event| match event {
        Event::Failed(error) => Some(error),
        _ => None,
    })
}

#[test]
fn pipelined_send_with_data() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    assert_eq!(s.open(&["PIPELINING", "SIZE 1000", "8BITMIME"]), "");
    assert!(matches!(s.take_events()[..], [Event::Ready(_)]));
    assert_eq!(s.session.phase(), Phase::Ready);
    let message = b"Subject: hi\r\n\r\n.dot\r\n";
    s.session
        .start_mail(
            envelope(&["bob@example.org", "carol@example.org"]),
            BodyInfo::of(message),
        )
        .unwrap();
    // One group: MAIL, both RCPTs and DATA in a single write.
    assert_eq!(
        s.flush(),
        "MAIL FROM:<alice@example.org> SIZE=21\r\nRCPT TO:<bob@example.org>\r\n\
         RCPT TO:<carol@example.org>\r\nDATA\r\n"
    );
    assert_eq!(s.session.phase(), Phase::MailFrom);
    assert_eq!(
        s.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n"),
        ""
    );
    assert_eq!(s.session.phase(), Phase::DataInit);
    assert_eq!(s.server("354 go\r\n"), "");
    let events = s.take_events();
    assert!(
        matches!(&events[0], Event::RecipientRejected { index: 1, rejection } if rejection.code().value() == 550)
    );
    assert_eq!(events[1], Event::SendBody(BodyMode::Data));
    assert_eq!(s.body(message), "Subject: hi\r\n\r\n..dot\r\n.\r\n");
    assert_eq!(s.session.phase(), Phase::DataEnd);
    s.server("250 2.0.0 Ok: queued as 4XyZ12\r\n");
    let Event::Accepted(delivery) = &s.take_events()[0] else {
        panic!()
    };
    assert_eq!(delivery.queue_id().as_deref(), Some("4XyZ12"));
    assert_eq!(delivery.rejected().count(), 1);
    assert!(delivery.recipients[0].accepted());
    s.session.quit();
    assert_eq!(s.flush(), "QUIT\r\n");
    s.server("221 bye\r\n");
    assert_eq!(s.take_events(), [Event::Closed]);
}

#[test]
fn without_pipelining_each_command_waits() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.open(&[]);
    s.take_events();
    s.session
        .start_mail(envelope(&["b@x.org", "c@x.org"]), BodyInfo::of(b"x"))
        .unwrap();
    assert_eq!(s.flush(), "MAIL FROM:<alice@example.org>\r\n");
    assert_eq!(s.server("250 ok\r\n"), "RCPT TO:<b@x.org>\r\n");
    assert_eq!(s.server("250 ok\r\n"), "RCPT TO:<c@x.org>\r\n");
    assert_eq!(s.server("250 ok\r\n"), "DATA\r\n");
    s.server("354 go\r\n");
    assert_eq!(s.body(b"x"), "x\r\n.\r\n");
}

#[test]
fn starttls_upgrade_forgets_capabilities_and_says_ehlo_again() {
    let mut s = Scenario::new(Transport::StartTls, |c| {
        c.credentials = Some(Credentials::new("alice", "secret"));
    });
    assert_eq!(s.open(&["STARTTLS", "AUTH PLAIN"]), "STARTTLS\r\n");
    assert_eq!(s.server("220 go ahead\r\n"), "");
    assert_eq!(s.take_events(), [Event::UpgradeToTls]);
    assert_eq!(s.session.phase(), Phase::TlsHandshake);
    s.session.tls_established().unwrap();
    assert_eq!(s.flush(), "EHLO client.example.org\r\n");
    assert!(s.session.capabilities().is_none());
    assert_eq!(s.server("250-mx\r\n250 AUTH LOGIN\r\n"), "AUTH LOGIN\r\n");
    assert_eq!(s.server("334 VXNlcm5hbWU6\r\n"), "YWxpY2U=\r\n");
    assert_eq!(s.server("334 UGFzc3dvcmQ6\r\n"), "c2VjcmV0\r\n");
    s.server("235 2.7.0 ok\r\n");
    assert!(matches!(s.take_events()[..], [Event::Ready(_)]));
}

#[test]
fn starttls_not_advertised_fails_before_auth_or_mail() {
    let mut s = Scenario::new(Transport::StartTls, |c| {
        c.credentials = Some(Credentials::new("alice", "secret"));
    });
    assert_eq!(s.open(&["AUTH PLAIN"]), "QUIT\r\n");
    assert_eq!(
        failed(&s.take_events()),
        Some(&SessionError::Unsupported(Unsupported::StartTls))
    );
}

#[test]
fn starttls_refused_fails_before_auth_or_mail() {
    let mut s = Scenario::new(Transport::StartTls, |_| {});
    s.open(&["STARTTLS"]);
    assert_eq!(s.server("454 4.7.0 TLS not available\r\n"), "QUIT\r\n");
    let events = s.take_events();
    let Some(SessionError::Rejected(rejection)) = failed(&events) else {
        panic!("{events:?}")
    };
    assert_eq!(rejection.command, CommandKind::StartTls);
    assert!(rejection.is_transient());
}

#[test]
fn bytes_after_starttls_220_are_an_attack() {
    let mut s = Scenario::new(Transport::StartTls, |_| {});
    s.open(&["STARTTLS"]);
    // The injected reply arrives in the same packet as the 220.
    assert_eq!(
        s.server("220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"),
        ""
    );
    let events = s.take_events();
    assert_eq!(
        failed(&events),
        Some(&SessionError::Protocol(ProtocolError::BytesAfterStartTls))
    );
    assert!(!events.contains(&Event::UpgradeToTls));
    assert_eq!(s.session.phase(), Phase::Closed);
}

#[test]
fn credentials_never_go_over_plaintext() {
    let mut s = Scenario::new(Transport::DangerousPlaintext, |c| {
        c.credentials = Some(Credentials::new("alice", "secret"));
    });
    assert_eq!(s.open(&["AUTH PLAIN LOGIN"]), "QUIT\r\n");
    assert_eq!(
        failed(&s.take_events()),
        Some(&SessionError::CredentialsWithoutTls)
    );
}

#[test]
fn auth_plain_rejected() {
    let mut s = Scenario::new(Transport::ImplicitTls, |c| {
        c.credentials = Some(Credentials::new("alice", "wrong"));
        c.trace = true;
    });
    assert_eq!(s.open(&["AUTH PLAIN"]), "AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
    assert_eq!(s.server("535 5.7.8 Authentication failed\r\n"), "QUIT\r\n");
    let events = s.take_events();
    let Some(SessionError::Rejected(rejection)) = failed(&events) else {
        panic!()
    };
    assert_eq!(rejection.command, CommandKind::Auth);
    assert_eq!(rejection.enhanced().unwrap().to_string(), "5.7.8");
    // The trace shows the command but never the secret.
    let trace: Vec<Trace> = std::iter::from_fn(|| s.session.poll_trace()).collect();
    assert!(trace.contains(&Trace::Client("AUTH PLAIN <redacted>".into())));
    assert!(!format!("{trace:?}").contains("AGFsaWNl"));
}

#[test]
fn no_common_auth_mechanism() {
    let mut s = Scenario::new(Transport::ImplicitTls, |c| {
        c.credentials = Some(Credentials::new("a", "b"));
    });
    s.open(&["AUTH CRAM-MD5"]);
    assert_eq!(
        failed(&s.take_events()),
        Some(&SessionError::Unsupported(Unsupported::Auth {
            offered: vec!["CRAM-MD5".into()]
        }))
    );
}

#[test]
fn all_recipients_refused_with_pipelined_data_sends_lone_dot() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.open(&["PIPELINING"]);
    s.take_events();
    s.session
        .start_mail(envelope(&["b@x.org"]), BodyInfo::default())
        .unwrap();
    s.flush();
    // The server accepts DATA although it refused the only recipient (RFC 2920 3.1).
    assert_eq!(s.server("250 ok\r\n550 no\r\n354 go\r\n"), ".\r\n");
    assert!(failed(&s.take_events()).is_none());
    assert_eq!(s.server("554 no valid recipients\r\n"), "RSET\r\n");
    let events = s.take_events();
    assert!(matches!(failed(&events), Some(SessionError::RecipientsRejected(o)) if o.len() == 1));
    s.server("250 ok\r\n");
    assert_eq!(s.session.phase(), Phase::Ready);
}

#[test]
fn all_or_none_policy_resets_instead_of_data() {
    let mut s = Scenario::new(Transport::ImplicitTls, |c| {
        c.recipient_policy = RecipientPolicy::AllOrNone;
    });
    s.open(&["PIPELINING"]);
    s.take_events();
    s.session
        .start_mail(envelope(&["b@x.org", "c@x.org"]), BodyInfo::default())
        .unwrap();
    assert_eq!(
        s.flush(),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\n"
    );
    assert_eq!(
        s.server("250 ok\r\n250 ok\r\n450 4.2.0 later\r\n"),
        "RSET\r\n"
    );
    let events = s.take_events();
    let Some(SessionError::RecipientsRejected(outcomes)) = failed(&events) else {
        panic!()
    };
    assert!(outcomes[0].accepted() && !outcomes[1].accepted());
}

#[test]
fn mail_refused_in_a_pipelined_group_waits_for_the_group() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.open(&["PIPELINING"]);
    s.take_events();
    s.session
        .start_mail(envelope(&["b@x.org"]), BodyInfo::default())
        .unwrap();
    s.flush();
    assert_eq!(s.server("553 5.7.1 sender rejected\r\n503 no mail\r\n"), "");
    assert!(failed(&s.take_events()).is_none());
    // MAIL was refused, so no transaction is open and no RSET is needed.
    assert_eq!(s.server("503 no rcpt\r\n"), "");
    let events = s.take_events();
    let Some(SessionError::Rejected(rejection)) = failed(&events) else {
        panic!()
    };
    assert_eq!(rejection.command, CommandKind::MailFrom);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::RecipientRejected { .. }))
    );
}

#[test]
fn chunking_sends_bdat_after_recipients() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.open(&["PIPELINING", "CHUNKING"]);
    s.take_events();
    s.session
        .start_mail(envelope(&["b@x.org"]), BodyInfo::default())
        .unwrap();
    assert_eq!(
        s.flush(),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<b@x.org>\r\n"
    );
    s.server("250 ok\r\n250 ok\r\n");
    assert_eq!(s.take_events(), [Event::SendBody(BodyMode::Bdat)]);
    let mut out = Vec::new();
    for _ in 0..8 {
        assert!(s.session.can_write_body());
        s.session.write_body(b"line\n", &mut out).unwrap();
    }
    // Eight chunks in flight: the driver must read before writing more.
    assert!(!s.session.can_write_body());
    assert!(s.session.wants_read());
    s.server("250 ok\r\n");
    assert!(s.session.can_write_body());
    s.session.finish_body(&mut out).unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("BDAT 6\r\nline\r\nBDAT 0 LAST\r\n")
    );
    s.server(&"250 ok\r\n".repeat(7));
    s.server("250 2.0.0 queued as ABC\r\n");
    assert!(
        matches!(&s.take_events()[..], [Event::Accepted(d)] if d.queue_id().as_deref() == Some("ABC"))
    );
}

#[test]
fn size_and_smtputf8_are_checked_before_sending() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.open(&["SIZE 10"]);
    s.take_events();
    let error = s
        .session
        .start_mail(
            envelope(&["b@x.org"]),
            BodyInfo {
                size: Some(11),
                eight_bit: None,
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
    let error = s
        .session
        .start_mail(envelope(&["jörg@x.org"]), BodyInfo::default())
        .unwrap_err();
    assert_eq!(error, SessionError::Unsupported(Unsupported::SmtpUtf8));
    assert_eq!(s.flush(), "");
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
        let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
        s.server(input);
        let events = s.take_events();
        assert!(failed(&events).is_some_and(check), "{input:?}: {events:?}");
    }
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.session.handle_input(&[b'A'; 10_000]);
    s.flush();
    assert!(matches!(
        failed(&s.take_events().into_iter().collect::<Vec<_>>()),
        Some(SessionError::Protocol(ProtocolError::LineTooLong { .. }))
    ));
}

#[test]
fn connection_closed_mid_reply() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.open(&[]);
    s.take_events();
    s.session
        .start_mail(envelope(&["b@x.org"]), BodyInfo::default())
        .unwrap();
    s.flush();
    s.session.handle_eof();
    s.flush();
    let events = s.take_events();
    assert_eq!(
        failed(&events),
        Some(&SessionError::Protocol(ProtocolError::ConnectionClosed {
            awaiting: Some(CommandKind::MailFrom)
        }))
    );
    assert!(events.contains(&Event::Closed));
}

#[test]
fn api_misuse_is_an_error_not_a_panic() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    assert!(
        s.session
            .start_mail(envelope(&["b@x.org"]), BodyInfo::default())
            .is_err()
    );
    assert!(s.session.write_body(b"x", &mut Vec::new()).is_err());
    assert!(s.session.finish_body(&mut Vec::new()).is_err());
    assert!(s.session.tls_established().is_err());
}

#[test]
fn the_last_chunk_carries_last_itself() {
    let mut s = Scenario::new(Transport::ImplicitTls, |_| {});
    s.open(&["PIPELINING", "CHUNKING"]);
    s.take_events();
    s.session
        .start_mail(envelope(&["b@x.org"]), BodyInfo::default())
        .unwrap();
    s.flush();
    s.server("250 ok\r\n250 ok\r\n");
    let mut out = Vec::new();
    s.session.write_body(b"Subject: x\n\n", &mut out).unwrap();
    s.session.finish_body_with(b"body", &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "BDAT 14\r\nSubject: x\r\n\r\nBDAT 6 LAST\r\nbody\r\n"
    );
}
