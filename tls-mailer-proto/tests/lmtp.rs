#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! LMTP (RFC 2033) conversations, byte-exact: LHLO, then one reply per
//! accepted recipient after the end of data, in RCPT order, each deciding
//! its recipient.

use std::time::Instant;

use tls_mailer_proto::*;

struct Lmtp {
    session: Session,
    events: Vec<Event>,
    now: Instant,
}

impl Lmtp {
    /// Greeted, LHLO answered with `extensions`, idle.
    fn ready(extensions: &[&str]) -> Self {
        Self::ready_with(extensions, |_| {})
    }

    /// [`Lmtp::ready`] with settings changed by `configure`.
    fn ready_with(extensions: &[&str], configure: impl FnOnce(&mut SessionConfig)) -> Self {
        let mut config = SessionConfig::new(
            Domain::new("client.example.org").unwrap(),
            Security::DangerousPlaintext,
        );
        config.protocol = Protocol::Lmtp;
        configure(&mut config);
        #[allow(clippy::disallowed_methods)] // one real instant as the base
        let now = Instant::now();
        let mut c = Self {
            session: Session::new(config, now),
            events: Vec::new(),
            now,
        };
        assert_eq!(
            c.server("220 lmtp.example.org LMTP ready\r\n"),
            "LHLO client.example.org\r\n"
        );
        let mut lhlo = String::from("250");
        lhlo.push(if extensions.is_empty() { ' ' } else { '-' });
        lhlo.push_str("lmtp.example.org\r\n");
        for (index, extension) in extensions.iter().enumerate() {
            let last = index + 1 == extensions.len();
            lhlo.push_str(&format!(
                "250{}{extension}\r\n",
                if last { ' ' } else { '-' }
            ));
        }
        assert_eq!(c.server(&lhlo), "");
        assert_eq!(c.take_events(), [Event::Ready]);
        c
    }

    fn server(&mut self, bytes: &str) -> String {
        self.session.handle_input(self.now, bytes.as_bytes());
        self.flush()
    }

    fn flush(&mut self) -> String {
        let mut out = Vec::new();
        let _ = self.session.poll_transmit(&mut out);
        while let Some(event) = self.session.poll_event() {
            self.events.push(event);
        }
        String::from_utf8(out).unwrap()
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.flush();
        std::mem::take(&mut self.events)
    }

    fn start(&mut self, recipients: &[&str]) -> String {
        let envelope = Envelope::new("alice@example.org", recipients).unwrap();
        self.session
            .start_mail(self.now, envelope, BodyInfo::default())
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

    /// MAIL, RCPT for each of `recipients` and DATA in one group, the RCPT
    /// replies given by `rcpt_replies`, the `354`, and the body: the
    /// session then waits for the replies after the data.
    fn pipelined_data(&mut self, recipients: &[&str], rcpt_replies: &str) {
        let mut expected = String::from("MAIL FROM:<alice@example.org>\r\n");
        for recipient in recipients {
            expected.push_str(&format!("RCPT TO:<{recipient}>\r\n"));
        }
        expected.push_str("DATA\r\n");
        assert_eq!(self.start(recipients), expected);
        assert_eq!(
            self.server(&format!("250 ok\r\n{rcpt_replies}354 go\r\n")),
            ""
        );
        let events = self.take_events();
        assert_eq!(events.last(), Some(&Event::SendBody(BodyMode::Data)));
        assert_eq!(
            self.body(b"Subject: x\r\n\r\n.dot\r\n"),
            "Subject: x\r\n\r\n..dot\r\n.\r\n"
        );
        assert_eq!(self.session.phase(), Phase::DataEnd);
    }
}

const THREE: [&str; 3] = ["bob@example.org", "carol@example.org", "dave@example.org"];

fn delivered(events: &[Event]) -> &Delivery {
    match events {
        [Event::Accepted(delivery), Event::Ready] => delivery,
        _ => panic!("{events:?}"),
    }
}

fn summary(outcomes: &[RecipientOutcome]) -> Vec<(&str, u16, CommandKind)> {
    (outcomes.iter())
        .map(|o| (o.address.as_str(), o.reply.code().value(), o.command))
        .collect()
}

#[test]
fn lhlo_replaces_ehlo_and_its_refusal_names_it() {
    let mut config = SessionConfig::new(
        Domain::new("client.example.org").unwrap(),
        Security::DangerousPlaintext,
    );
    config.protocol = Protocol::Lmtp;
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut session = Session::new(config, now);
    session.handle_input(now, b"220 lmtp ready\r\n");
    let mut out = Vec::new();
    assert!(session.poll_transmit(&mut out));
    assert_eq!(out, b"LHLO client.example.org\r\n");
    // No HELO fallback: a refused LHLO ends the session.
    session.handle_input(now, b"500 5.5.1 unknown command\r\n");
    let Some(Event::Failed(SessionError::Rejected(rejection))) = session.poll_event() else {
        panic!("expected a refusal");
    };
    assert_eq!(rejection.command, CommandKind::Lhlo);
    out.clear();
    assert!(session.poll_transmit(&mut out));
    assert_eq!(out, b"QUIT\r\n");
}

#[test]
fn every_recipient_gets_its_own_reply_after_the_data() {
    let mut c = Lmtp::ready(&["PIPELINING", "ENHANCEDSTATUSCODES"]);
    c.pipelined_data(&THREE, "250 ok\r\n250 ok\r\n250 ok\r\n");
    // The first two replies decide nothing on their own.
    assert_eq!(c.server("250 2.0.0 <bob@example.org> id1 Saved\r\n"), "");
    assert_eq!(c.server("250 2.0.0 <carol@example.org> id1 Saved\r\n"), "");
    assert_eq!(c.take_events(), []);
    assert!(c.session.wants_read());
    assert_eq!(c.session.phase(), Phase::DataEnd);
    c.server("250 2.0.0 <dave@example.org> id1 Saved\r\n");
    let events = c.take_events();
    let delivery = delivered(&events);
    assert_eq!(delivery.rejected().count(), 0);
    assert_eq!(
        summary(&delivery.recipients),
        [
            ("bob@example.org", 250, CommandKind::DataEnd),
            ("carol@example.org", 250, CommandKind::DataEnd),
            ("dave@example.org", 250, CommandKind::DataEnd),
        ]
    );
    assert_eq!(delivery.reply.text(), "<bob@example.org> id1 Saved");
    c.session.quit(c.now);
    assert_eq!(c.flush(), "QUIT\r\n");
}

#[test]
fn one_recipient_refused_after_the_data_is_a_partial_delivery() {
    for (refusal, transient) in [
        ("452 4.2.2 Mailbox is full", true),
        ("550 5.1.1 gone", false),
    ] {
        let mut c = Lmtp::ready(&["PIPELINING"]);
        c.pipelined_data(&THREE, "250 ok\r\n250 ok\r\n250 ok\r\n");
        c.server(&format!(
            "250 2.0.0 saved\r\n{refusal}\r\n250 2.0.0 saved\r\n"
        ));
        let events = c.take_events();
        let delivery = delivered(&events);
        let refused: Vec<_> = delivery.rejected().collect();
        assert_eq!(refused.len(), 1, "{delivery:?}");
        assert_eq!(refused[0].address, "carol@example.org");
        assert_eq!(refused[0].command, CommandKind::DataEnd);
        assert_eq!(refused[0].reply.is_transient(), transient);
        assert!(delivery.recipients[0].accepted() && delivery.recipients[2].accepted());
    }
}

#[test]
fn a_recipient_refused_at_rcpt_gets_no_reply_after_the_data() {
    let mut c = Lmtp::ready(&["PIPELINING"]);
    c.pipelined_data(&THREE, "250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n");
    let events = c.take_events();
    assert!(events.is_empty(), "{events:?}");
    // Two replies, for bob and dave; carol's RCPT refusal stands.
    assert_eq!(c.server("250 2.0.0 bob saved\r\n"), "");
    assert_eq!(c.take_events(), []);
    c.server("250 2.0.0 dave saved\r\n");
    let events = c.take_events();
    let delivery = delivered(&events);
    assert_eq!(
        summary(&delivery.recipients),
        [
            ("bob@example.org", 250, CommandKind::DataEnd),
            ("carol@example.org", 550, CommandKind::RcptTo),
            ("dave@example.org", 250, CommandKind::DataEnd),
        ]
    );
    // The session is idle again, not waiting for a third reply.
    assert!(!c.session.wants_read());
    assert!(c.session.is_idle());
}

#[test]
fn every_recipient_refused_after_the_data_fails_the_mail_naming_them() {
    let mut c = Lmtp::ready(&["PIPELINING"]);
    c.pipelined_data(&THREE[..2], "250 ok\r\n250 ok\r\n");
    c.server("452 4.2.2 full\r\n550 5.2.1 disabled\r\n");
    let events = c.take_events();
    let [
        Event::MailFailed(error @ SessionError::RecipientsRejected(outcomes)),
        Event::Ready,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        summary(outcomes),
        [
            ("bob@example.org", 452, CommandKind::DataEnd),
            ("carol@example.org", 550, CommandKind::DataEnd),
        ]
    );
    assert!(!error.is_transient(), "a 550 is for good");
    assert!(
        error.to_string().starts_with("nothing was delivered"),
        "{error}"
    );
}

#[test]
fn the_end_of_the_stream_between_replies_keeps_those_already_given() {
    let mut c = Lmtp::ready(&["PIPELINING"]);
    c.pipelined_data(&THREE, "250 ok\r\n250 ok\r\n250 ok\r\n");
    c.server("250 2.0.0 bob saved\r\n");
    c.session.handle_eof();
    let events = c.take_events();
    let [Event::Accepted(delivery), Event::Failed(_), Event::Closed] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        summary(&delivery.recipients),
        [
            ("bob@example.org", 250, CommandKind::DataEnd),
            ("carol@example.org", 451, CommandKind::DataEnd),
            ("dave@example.org", 451, CommandKind::DataEnd),
        ]
    );
    assert!(
        delivery
            .rejected()
            .all(|outcome| outcome.reply.is_transient())
    );
}

#[test]
fn garbage_between_replies_fails_cleanly_and_keeps_the_refusal_given() {
    let mut c = Lmtp::ready(&["PIPELINING"]);
    c.pipelined_data(&THREE[..2], "250 ok\r\n250 ok\r\n");
    c.server("550 5.1.1 bob gone\r\nthis is not a reply\r\n");
    let events = c.take_events();
    let [
        Event::MailFailed(SessionError::RecipientsRejected(outcomes)),
        Event::Failed(SessionError::Protocol(_)),
        Event::Closed,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        summary(outcomes),
        [
            ("bob@example.org", 550, CommandKind::DataEnd),
            ("carol@example.org", 451, CommandKind::DataEnd),
        ]
    );
    assert!(!c.session.wants_read());
}

#[test]
fn no_reply_after_the_data_at_all_is_the_connection_closed() {
    let mut c = Lmtp::ready(&["PIPELINING"]);
    c.pipelined_data(&THREE[..2], "250 ok\r\n250 ok\r\n");
    c.session.handle_eof();
    let events = c.take_events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Failed(SessionError::Protocol(
                    ProtocolError::ConnectionClosed { .. }
                )),
                Event::Closed
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn bdat_last_is_answered_per_recipient_and_quit_waits_behind() {
    let mut c = Lmtp::ready(&["PIPELINING", "CHUNKING"]);
    // MAIL, RCPT and the whole body in one write (CHUNKING with PIPELINING).
    assert_eq!(
        c.start(&THREE[..2]),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n\
         RCPT TO:<carol@example.org>\r\n"
    );
    assert_eq!(c.take_events(), [Event::SendBody(BodyMode::Bdat)]);
    assert_eq!(c.body(b"hi\n"), "BDAT 4 LAST\r\nhi\r\n");
    c.session.quit(c.now);
    assert_eq!(c.flush(), "QUIT\r\n", "QUIT shares the group");
    c.server("250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 bob saved\r\n");
    assert_eq!(c.take_events(), []);
    c.server("452 4.2.2 carol is over quota\r\n221 bye\r\n");
    let events = c.take_events();
    let [Event::Accepted(delivery), Event::Closed] = &events[..] else {
        panic!("{events:?}")
    };
    let refused: Vec<_> = delivery.rejected().map(|o| o.address.as_str()).collect();
    assert_eq!(refused, ["carol@example.org"]);
}

#[test]
fn a_pipelined_second_mail_reads_its_replies_after_all_of_the_first() {
    let mut c = Lmtp::ready(&["PIPELINING", "CHUNKING"]);
    c.start(&THREE[..2]);
    c.take_events();
    c.body(b"one\n");
    assert!(c.session.can_start_mail());
    assert_eq!(
        c.start(&["erin@example.org"]),
        "RSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<erin@example.org>\r\n"
    );
    c.take_events();
    assert_eq!(c.body(b"two\n"), "BDAT 5 LAST\r\ntwo\r\n");
    // First mail: MAIL, 2 RCPT, 2 replies after the data; then RSET;
    // second mail: MAIL, RCPT, 1 reply after the data.
    c.server(
        "250 ok\r\n250 ok\r\n250 ok\r\n250 bob\r\n550 5.1.1 carol\r\n\
         250 reset\r\n250 ok\r\n250 ok\r\n250 erin\r\n",
    );
    let events = c.take_events();
    let [
        Event::Accepted(first),
        Event::Accepted(second),
        Event::Ready,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        summary(&first.recipients),
        [
            ("bob@example.org", 250, CommandKind::DataEnd),
            ("carol@example.org", 550, CommandKind::DataEnd),
        ]
    );
    assert_eq!(
        summary(&second.recipients),
        [("erin@example.org", 250, CommandKind::DataEnd)]
    );
}

#[test]
fn without_pipelining_the_replies_still_come_one_per_recipient() {
    let mut c = Lmtp::ready(&[]);
    assert_eq!(c.start(&THREE[..2]), "MAIL FROM:<alice@example.org>\r\n");
    assert_eq!(c.server("250 ok\r\n"), "RCPT TO:<bob@example.org>\r\n");
    assert_eq!(c.server("250 ok\r\n"), "RCPT TO:<carol@example.org>\r\n");
    assert_eq!(c.server("250 ok\r\n"), "DATA\r\n");
    assert_eq!(c.server("354 go\r\n"), "");
    c.take_events();
    assert_eq!(c.body(b"x\r\n"), "x\r\n.\r\n");
    c.server("250 bob\r\n");
    assert_eq!(c.take_events(), []);
    c.server("250 carol\r\n");
    let events = c.take_events();
    assert_eq!(delivered(&events).rejected().count(), 0);
}

#[test]
fn a_deadline_between_replies_keeps_those_already_given() {
    let mut c = Lmtp::ready(&["PIPELINING"]);
    c.pipelined_data(&THREE[..2], "250 ok\r\n250 ok\r\n");
    c.server("250 2.0.0 bob saved\r\n");
    // The wait for carol's reply is a DataEnd wait, restarted by bob's.
    assert_eq!(c.session.phase(), Phase::DataEnd);
    let deadline = c.session.poll_timeout().unwrap();
    assert_eq!(deadline - c.now, Timeouts::default().data_end);
    c.now = deadline;
    c.session.handle_timeout(c.now);
    let events = c.take_events();
    let [
        Event::Accepted(delivery),
        Event::Failed(SessionError::Timeout {
            phase: Phase::DataEnd,
        }),
        Event::Closed,
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        summary(&delivery.recipients),
        [
            ("bob@example.org", 250, CommandKind::DataEnd),
            ("carol@example.org", 451, CommandKind::DataEnd),
        ]
    );
}

#[test]
fn all_or_none_sends_nothing_when_one_is_refused_at_rcpt() {
    let mut c = Lmtp::ready_with(&["PIPELINING"], |config| {
        config.recipient_policy = RecipientPolicy::AllOrNone;
    });
    assert_eq!(
        c.start(&THREE[..2]),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\n"
    );
    // No DATA: the mail is given up (its RSET goes in front of the next).
    assert_eq!(c.server("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n"), "");
    let events = c.take_events();
    assert!(
        matches!(
            &events[..],
            [
                Event::RecipientRejected { index: 1, .. },
                Event::MailFailed(SessionError::RecipientsRejected(_)),
                Event::Ready
            ]
        ),
        "{events:?}"
    );
}
