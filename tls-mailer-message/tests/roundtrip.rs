//! Export then import: every field comes back.
#![allow(clippy::unwrap_used)]

mod common;

use common::{all_bytes, mb, samples};
use tls_mailer_message::{Content, Email, MessageError};

fn max_line_len(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.len())
        .max()
        .unwrap_or(0)
}

#[test]
fn every_sample_round_trips_field_by_field() {
    for (name, email) in samples() {
        let email = email.finalized();
        let bytes = email.to_bytes().unwrap();
        let back = Email::parse(&bytes).unwrap();
        // Bcc is never transmitted, so it cannot come back.
        let expected = email.without_bcc();
        assert_eq!(back.from(), expected.from(), "{name}: from");
        assert_eq!(back.sender(), expected.sender(), "{name}: sender");
        assert_eq!(back.to(), expected.to(), "{name}: to");
        assert_eq!(back.cc(), expected.cc(), "{name}: cc");
        assert_eq!(back.reply_to(), expected.reply_to(), "{name}: reply-to");
        assert_eq!(back.subject(), expected.subject(), "{name}: subject");
        assert_eq!(back.date(), expected.date(), "{name}: date");
        assert_eq!(
            back.message_id(),
            expected.message_id(),
            "{name}: message-id"
        );
        assert_eq!(back.headers(), expected.headers(), "{name}: headers");
        assert_eq!(back.text(), expected.text(), "{name}: text");
        assert_eq!(back.html(), expected.html(), "{name}: html");
        assert_eq!(back.parts(), expected.parts(), "{name}: parts");
        assert_eq!(back, expected, "{name}: whole value");
        // Line limits: 998 octets hard limit everywhere (plus CRLF).
        assert!(
            max_line_len(&bytes) <= 1000,
            "{name}: a line is over 998 octets"
        );
    }
}

#[test]
fn lines_stay_within_78_where_encoding_allows() {
    for (name, email) in samples() {
        let bytes = email.to_bytes().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for line in text.split("\r\n") {
            // Only unbreakable words may exceed 78 characters.
            assert!(
                line.chars().count() <= 78 || !line.trim().contains(' '),
                "{name}: long line {line:?}"
            );
        }
    }
}

#[test]
fn bcc_is_never_transmitted_but_is_an_envelope_recipient() {
    let email = Email::new()
        .with_from(mb("a@example.com"))
        .with_to(mb("to@example.com"))
        .with_cc(mb("cc@example.com"))
        .with_bcc(mb("Hidden Person <hidden@example.com>"))
        .with_text("x");
    let bytes = email.to_bytes().unwrap();
    let wire = String::from_utf8_lossy(&bytes).to_lowercase();
    assert!(!wire.contains("hidden"), "{wire}");
    assert!(!wire.contains("bcc:"), "{wire}");
    assert_eq!(
        email.envelope_recipients(),
        ["to@example.com", "cc@example.com", "hidden@example.com"]
    );
}

#[test]
fn envelope_recipients_are_deduplicated_on_the_domain_case() {
    let email = Email::new()
        .with_to(mb("Bob <bob@Example.COM>"))
        .with_cc(mb("bob@example.com"))
        .with_bcc(mb("Bob@example.com"))
        .with_bcc(mb("carol@example.com"))
        .with_to(mb("carol@EXAMPLE.com"));
    assert_eq!(
        email.envelope_recipients(),
        ["bob@Example.COM", "carol@EXAMPLE.com", "Bob@example.com"]
    );
}

#[test]
fn envelope_sender_prefers_sender_then_single_from() {
    let one = Email::new().with_from(mb("A <a@example.com>"));
    assert_eq!(one.envelope_sender().as_deref(), Some("a@example.com"));
    let two = one.with_from(mb("b@example.com"));
    assert_eq!(two.envelope_sender(), None);
    let with_sender = two.with_sender(mb("s@example.com"));
    assert_eq!(
        with_sender.envelope_sender().as_deref(),
        Some("s@example.com")
    );
    assert_eq!(Email::new().envelope_sender(), None);
}

#[test]
fn envelope_takes_the_sender_rule_and_one_recipient_per_mailbox() {
    let email = Email::new()
        .with_from(mb("A <a@example.com>"))
        .with_to(mb("Bob <bob@Example.COM>"))
        .with_cc(mb("bob@example.com"))
        .with_bcc(mb("Bob@example.com"))
        .with_bcc(mb("carol@example.com"));
    let envelope = email.envelope().unwrap();
    assert_eq!(envelope.sender().as_str(), "a@example.com");
    let recipients: Vec<&str> = envelope.recipients().iter().map(|a| a.as_str()).collect();
    assert_eq!(
        recipients,
        ["bob@Example.COM", "Bob@example.com", "carol@example.com"]
    );
    assert_eq!(email.envelope_recipients(), recipients);
    assert_eq!(
        email.envelope_sender().as_deref(),
        Some(envelope.sender().as_str())
    );

    let two_from = email.with_from(mb("b@example.com"));
    assert!(matches!(
        two_from.envelope(),
        Err(MessageError::MultipleFromWithoutSender)
    ));
    let with_sender = two_from.with_sender(mb("s@example.com"));
    assert_eq!(
        with_sender.envelope().unwrap().sender().as_str(),
        "s@example.com"
    );
    assert!(matches!(
        Email::new().with_to(mb("b@example.com")).envelope(),
        Err(MessageError::NoFrom)
    ));
    assert!(matches!(
        Email::new().with_from(mb("a@example.com")).envelope(),
        Err(MessageError::NoRecipients)
    ));
}

#[test]
fn mailbox_accepts_exactly_what_the_envelope_accepts() {
    for text in [
        "a@b.c",
        "a..b@c.d",
        "a@-b.c",
        "a@b-.c",
        "a@b..c",
        ".a@b.c",
        "\"a..b\"@c.d",
        "\"\"@c.d",
        "a@[192.0.2.1]",
        "a@[300.0.0.1]",
        "a@[IPv6:::1]",
        "a@[::1]",
        "jörg@bücher.example",
        "a@b.c.",
        "a\u{1b}@b.c",
    ] {
        let mailbox = tls_mailer_message::Mailbox::new(text);
        let address = tls_mailer_proto::Address::new(text);
        assert_eq!(mailbox.is_ok(), address.is_ok(), "{text:?}");
        if let (Err(MessageError::InvalidAddress { reason, .. }), Err(error)) = (&mailbox, &address)
        {
            assert_eq!(*reason, error.reason, "{text:?}");
        }
    }
    let local = "x".repeat(65);
    assert!(tls_mailer_message::Mailbox::new(&format!("{local}@b.c")).is_err());
}

#[test]
fn import_reads_every_address_field_not_only_the_last() {
    let raw = b"From: a@example.com\r\nTo: b@example.com\r\nCc: c@example.com\r\n\
                To: d@example.com, grp: e@example.com;\r\nBcc: f@example.com\r\n\
                Bcc: g@example.com\r\nSubject: s\r\n\r\nbody\r\n";
    let email = Email::parse(raw).unwrap();
    assert_eq!(
        email.envelope_recipients(),
        [
            "b@example.com",
            "d@example.com",
            "e@example.com",
            "c@example.com",
            "f@example.com",
            "g@example.com"
        ]
    );
    let two_from =
        Email::parse(b"From: a@example.com\r\nFrom: b@example.com\r\nTo: c@example.com\r\n\r\nx")
            .unwrap();
    assert_eq!(two_from.from().len(), 2);
    assert!(matches!(
        two_from.envelope(),
        Err(MessageError::MultipleFromWithoutSender)
    ));
}

#[test]
fn validation_names_the_problem() {
    let ok = Email::new()
        .with_from(mb("a@example.com"))
        .with_to(mb("b@example.com"));
    assert!(ok.validate().is_ok());
    assert!(matches!(
        Email::new().with_to(mb("b@example.com")).validate(),
        Err(MessageError::NoFrom)
    ));
    assert!(matches!(
        Email::new().with_from(mb("a@example.com")).validate(),
        Err(MessageError::NoRecipients)
    ));
    assert!(
        Email::new()
            .with_from(mb("a@example.com"))
            .with_bcc(mb("b@example.com"))
            .validate()
            .is_ok()
    );
    let two_from = ok.with_from(mb("c@example.com"));
    assert!(matches!(
        two_from.validate(),
        Err(MessageError::MultipleFromWithoutSender)
    ));
    assert!(two_from.with_sender(mb("c@example.com")).validate().is_ok());
    let injected = ok.with_subject("hi\r\nBcc: victim@example.com");
    assert!(matches!(
        injected.validate(),
        Err(MessageError::HeaderInjection { .. })
    ));
    assert!(matches!(
        injected.to_bytes(),
        Err(MessageError::HeaderInjection { .. })
    ));
    assert!(matches!(
        ok.with_subject("nul\0").validate(),
        Err(MessageError::HeaderInjection { .. })
    ));
    let message = MessageError::NoRecipients.to_string();
    assert!(message.contains("add at least one"), "{message}");
}

#[test]
fn from_must_match_the_configured_sender_when_asked() {
    let e = Email::new().with_from(mb("Alice <alice@EXAMPLE.com>"));
    assert!(e.check_from_matches("alice@example.com").is_ok());
    assert!(matches!(
        e.check_from_matches("Alice@example.com"),
        Err(MessageError::FromMismatch { .. })
    ));
    assert!(matches!(
        Email::new().check_from_matches("a@b.c"),
        Err(MessageError::NoFrom)
    ));
    let delegated = e
        .with_from(mb("boss@example.com"))
        .with_sender(mb("alice@example.com"));
    assert!(delegated.check_from_matches("alice@example.com").is_ok());
}

#[test]
fn header_injection_and_structural_overrides_are_refused() {
    let e = Email::new();
    for (name, value) in [
        ("X-Test", "a\r\nBcc: victim@example.com"),
        ("X-Test", "a\nb"),
        ("X-Test", "a\rb"),
        ("X-Test", "nul\0"),
        ("X Test", "space in name"),
        ("X-Test:", "colon in name"),
        ("", "empty name"),
        ("X-Tëst", "non-ASCII name"),
    ] {
        assert!(
            matches!(
                e.with_header(name, value),
                Err(MessageError::HeaderInjection { .. })
            ),
            "{name:?}: {value:?}"
        );
    }
    for name in [
        "Content-Type",
        "content-transfer-encoding",
        "MIME-Version",
        "Content-Disposition",
        "From",
        "to",
        "BCC",
        "Subject",
        "Message-ID",
        "Date",
        "DKIM-Signature",
    ] {
        assert!(
            matches!(
                e.with_header(name, "x"),
                Err(MessageError::ReservedHeader { .. })
            ),
            "{name}"
        );
    }
    assert!(e.with_inline("a b", Content::from_bytes("x")).is_err());
    assert!(e.with_inline("<a>", Content::from_bytes("x")).is_ok());
    assert!(
        e.with_attachment("evil\r\n.txt", Content::from_bytes("x"))
            .is_err()
    );
    assert!(
        Content::from_bytes("x")
            .with_content_type("text/plain\r\nX: y")
            .is_err()
    );
    assert!(
        "Eve <eve@example.com>\nBcc: x@y.z"
            .parse::<tls_mailer_message::Mailbox>()
            .is_err()
    );
}

#[test]
fn builders_leave_the_original_unchanged() {
    let a = Email::new().with_subject("one");
    let b = a.with_subject("two").with_to(mb("x@example.com"));
    assert_eq!(a.subject(), Some("one"));
    assert!(a.to().is_empty());
    assert_eq!(b.subject(), Some("two"));
    let with_file = a
        .with_attachment("f.bin", Content::from_bytes(all_bytes()))
        .unwrap()
        .with_inline("c", Content::from_bytes("i"))
        .unwrap();
    assert_eq!(with_file.without_attachment("f.bin").attachments().len(), 0);
    assert_eq!(with_file.without_attachments().inline_parts().len(), 1);
    assert_eq!(with_file.without_inlines().inline_parts().len(), 0);
    assert_eq!(with_file.parts().len(), 2);
    // Inline parts are kept before attachments (the export order).
    assert_eq!(with_file.parts()[0].cid(), Some("c"));
}

#[test]
fn content_from_a_file_guesses_the_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.JPG");
    std::fs::write(&path, [0xff, 0xd8, 0xff]).unwrap();
    let content = Content::from_path(&path).unwrap();
    let e = Email::new().with_inline("photo", content.clone()).unwrap();
    assert_eq!(e.parts()[0].content_type(), "image/jpeg");
    assert_eq!(e.parts()[0].name(), Some("photo.JPG"));
    // The attachment name decides when given; an explicit type wins.
    let e = Email::new()
        .with_attachment("data.csv", content.clone())
        .unwrap();
    assert_eq!(e.parts()[0].content_type(), "text/csv");
    let e = Email::new()
        .with_attachment(
            "x.csv",
            content
                .with_content_type("Application/Octet-Stream")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(e.parts()[0].content_type(), "application/octet-stream");
    let missing = Content::from_path(dir.path().join("missing.txt"));
    assert!(matches!(
        missing,
        Err(MessageError::Io { path: Some(_), .. })
    ));
}

#[test]
fn structure_uses_only_the_levels_needed() {
    let content_types = |e: &Email| {
        let wire = String::from_utf8(e.to_bytes().unwrap()).unwrap();
        wire.lines()
            .filter_map(|l| l.strip_prefix("Content-Type: "))
            .map(|l| l.trim_end_matches(';').to_string())
            .collect::<Vec<_>>()
    };
    let text = Email::new().with_text("t");
    assert_eq!(content_types(&text), ["text/plain; charset=\"utf-8\""]);
    let alt = text.with_html("<p>h</p>");
    assert_eq!(content_types(&alt)[0], "multipart/alternative");
    let related = alt.with_inline("i", Content::from_bytes("x")).unwrap();
    assert_eq!(
        content_types(&related)[..2],
        ["multipart/related", "multipart/alternative"]
    );
    let mixed = related
        .with_attachment("a.bin", Content::from_bytes("y"))
        .unwrap();
    assert_eq!(
        content_types(&mixed)[..3],
        [
            "multipart/mixed",
            "multipart/related",
            "multipart/alternative"
        ]
    );
    let html_and_file = Email::new()
        .with_html("<p>h</p>")
        .with_attachment("a.bin", Content::from_bytes("y"))
        .unwrap();
    assert_eq!(
        content_types(&html_and_file)[..2],
        ["multipart/mixed", "text/html; charset=\"utf-8\""]
    );
}

#[test]
fn dump_serialises_the_summary() {
    let (_, full) = samples().into_iter().find(|(n, _)| *n == "full").unwrap();
    let json = serde_json::to_value(full.dump()).unwrap();
    assert_eq!(json["subject"], "Everything");
    assert_eq!(json["bcc"][0]["addr"], "secret-bcc@example.com");
    assert_eq!(json["parts"][2]["role"], "inline");
    assert_eq!(json["parts"][2]["cid"], "logo@example");
    assert_eq!(json["parts"][3]["name"], "données.bin");
    assert_eq!(json["parts"][3]["size"], 256);
    assert_eq!(json["envelope_recipients"].as_array().unwrap().len(), 4);
}

#[test]
fn write_to_streams_the_same_bytes_shape() {
    /// Takes at most 7 bytes per call, so the output crosses every buffer edge.
    struct Trickle(Vec<u8>);
    impl std::io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    /// Each MIME boundary (made afresh on every export) replaced by its rank.
    fn boundaries_numbered(bytes: &[u8]) -> (Vec<u8>, usize) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let mut found: Vec<String> = Vec::new();
        for (at, _) in text.match_indices("boundary=\"") {
            let rest = &text[at + "boundary=\"".len()..];
            let boundary = &rest[..rest.find('"').unwrap()];
            assert!(!boundary.is_empty(), "empty boundary in {text}");
            if !found.iter().any(|seen| seen == boundary) {
                found.push(boundary.to_owned());
            }
        }
        let mut numbered = text;
        for (rank, boundary) in found.iter().enumerate() {
            numbered = numbered.replace(boundary.as_str(), &format!("BOUNDARY-{rank}"));
        }
        (numbered.into_bytes(), found.len())
    }
    let mut multipart = 0;
    for (name, email) in samples() {
        let email = email.finalized();
        let bytes = email.to_bytes().unwrap();
        let mut streamed = Trickle(Vec::new());
        email.write_to(&mut streamed).unwrap();
        let streamed = streamed.0;
        let (expected, count) = boundaries_numbered(&bytes);
        let (actual, streamed_count) = boundaries_numbered(&streamed);
        assert_eq!(count, streamed_count, "{name}: number of boundaries");
        if count == 0 {
            assert_eq!(streamed, bytes, "{name}: single part, byte for byte");
        } else {
            multipart += 1;
        }
        assert_eq!(
            String::from_utf8_lossy(&actual),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
        assert_eq!(actual, expected, "{name}: byte for byte");
    }
    assert!(multipart > 0, "the samples include multipart messages");
}
