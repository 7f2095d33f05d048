//! Header values can never carry a line break or a control character into
//! the exported message: not through the builder, not through an imported
//! message. On the wire a bare CR is a line end (the SMTP encoders turn it
//! into CRLF), so a CR inside a value would start a header field of the
//! attacker's choosing.
#![allow(clippy::unwrap_used)]

mod common;

use common::mb;
use tls_mailer_message::{Email, MessageError};

/// The header field names of `wire` as an SMTP server stores it: bare CR
/// and bare LF become CRLF first.
fn wire_field_names(wire: &[u8]) -> Vec<String> {
    let mut normalizer = tls_mailer_proto::CrlfNormalizer::new();
    let mut stored = Vec::new();
    normalizer.encode(wire, &mut stored);
    normalizer.finish(&mut stored);
    let text = String::from_utf8_lossy(&stored).into_owned();
    let header = text.split("\r\n\r\n").next().unwrap_or_default();
    header
        .split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_string()))
        .collect()
}

/// Imports `raw`; when the import is accepted, the export must not grow a
/// Reply-To field; the import must be refused naming `header`.
fn assert_refused(raw: &[u8], header: &str) {
    match Email::parse(raw) {
        Err(MessageError::HeaderInjection { name }) => assert_eq!(name, header),
        Err(other) => panic!("{header}: refused for another reason: {other}"),
        Ok(email) => {
            let names = wire_field_names(&email.to_bytes().unwrap());
            panic!("{header}: imported; the export has the fields {names:?}");
        }
    }
}

const HEAD: &str = "From: a@example.com\r\nTo: b@example.com\r\n";

#[test]
fn imported_message_id_with_bare_cr_cannot_add_a_reply_to_header() {
    let raw = format!(
        "{HEAD}Message-ID: <id@x\rReply-To: attacker@evil.example\rX: y>\r\nSubject: s\r\n\r\nbody\r\n"
    );
    assert_refused(raw.as_bytes(), "Message-ID");
    let error = Email::parse(raw.as_bytes()).unwrap_err().to_string();
    assert!(
        error.contains("\"Message-ID\"") && error.contains("line break"),
        "{error}"
    );
}

#[test]
fn imported_subject_and_custom_headers_with_bare_cr_are_refused() {
    assert_refused(
        format!("{HEAD}Subject: hi\rReply-To: attacker@evil.example\r\n\r\nbody\r\n").as_bytes(),
        "Subject",
    );
    assert_refused(
        format!("{HEAD}X-Note: hi\rReply-To: attacker@evil.example\r\n\r\nbody\r\n").as_bytes(),
        "X-Note",
    );
    assert_refused(
        format!("{HEAD}List-Unsubscribe: <https://x.example/u>\rBcc: c@evil.example\r\n\r\nb\r\n")
            .as_bytes(),
        "List-Unsubscribe",
    );
    assert_refused(
        format!("{HEAD}X-Title: \u{1b}]0;owned\u{7}\r\n\r\nbody\r\n").as_bytes(),
        "X-Title",
    );
}

#[test]
fn imported_part_headers_with_bare_cr_are_refused() {
    let multipart = |part_headers: &str| {
        format!(
            "{HEAD}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
             --B\r\n{part_headers}\r\n\r\nAAAA\r\n--B--\r\n"
        )
    };
    assert_refused(
        multipart(
            "Content-Type: image/png\r\nContent-Disposition: inline\r\n\
             Content-ID: <logo@x\rReply-To: attacker@evil.example>",
        )
        .as_bytes(),
        "Content-ID",
    );
    assert_refused(
        multipart(
            "Content-Type: application/x-a\rReply-To: attacker@evil.example\r\n\
             Content-Disposition: attachment; filename=a.bin",
        )
        .as_bytes(),
        "Content-Type",
    );
    assert_refused(
        multipart(
            "Content-Type: application/pdf; name=\"a\rReply-To: attacker@evil.example\"\r\n\
             Content-Disposition: attachment",
        )
        .as_bytes(),
        "Content-Disposition filename",
    );
    assert_refused(
        multipart(
            "Content-Type: application/pdf\r\n\
             Content-Disposition: attachment; filename=\"a\rReply-To: attacker@evil.example\"",
        )
        .as_bytes(),
        "Content-Disposition filename",
    );
}

#[test]
fn imported_display_names_with_control_characters_are_refused() {
    let raw = "From: \"Eve\rReply-To: attacker@evil.example\" <eve@example.com>\r\n\
               To: b@example.com\r\n\r\nbody\r\n";
    assert!(
        matches!(
            Email::parse(raw.as_bytes()),
            Err(MessageError::InvalidAddress { reason, .. }) if reason.contains("display name")
        ),
        "{:?}",
        Email::parse(raw.as_bytes())
    );
}

#[test]
fn clean_imports_still_work() {
    let raw = format!(
        "{HEAD}Message-ID: <id@x>\r\nSubject: folded\r\n\tsubject\r\nX-Note: a\r\n b\r\n\
         X-Tab: a\tb\r\n\r\nbody\r\n"
    );
    let email = Email::parse(raw.as_bytes()).unwrap();
    assert_eq!(email.message_id(), Some("id@x"));
    assert_eq!(
        email.headers(),
        [
            ("X-Note".to_string(), "a b".to_string()),
            ("X-Tab".to_string(), "a\tb".to_string())
        ]
    );
    let names = wire_field_names(&email.to_bytes().unwrap());
    assert!(!names.iter().any(|n| n == "Reply-To"), "{names:?}");
}

#[test]
fn with_header_refuses_terminal_escapes_and_every_control_but_tab() {
    let email = Email::new();
    for value in [
        "v\u{1b}]0;x\u{7}",
        "a\rb",
        "a\nb",
        "a\0b",
        "a\u{7f}b",
        "a\u{8}b",
        "a\u{9b}31mb",
    ] {
        assert!(
            matches!(
                email.with_header("X-A", value),
                Err(MessageError::HeaderInjection { ref name }) if name == "X-A"
            ),
            "{value:?}"
        );
    }
    assert!(email.with_header("X-A", "a\tb").is_ok());
}

#[test]
fn subject_and_file_names_are_checked_by_the_same_rule() {
    let base = Email::new()
        .with_from(mb("a@example.com"))
        .with_to(mb("b@example.com"));
    let escape = base.with_subject("hi \u{1b}[2J");
    assert!(matches!(
        escape.validate(),
        Err(MessageError::HeaderInjection { ref name }) if name == "Subject"
    ));
    assert!(matches!(
        escape.to_bytes(),
        Err(MessageError::HeaderInjection { ref name }) if name == "Subject"
    ));
    let content = tls_mailer_message::Content::from_bytes("x");
    assert!(matches!(
        base.with_attachment("a\u{1b}b.txt", content.clone()),
        Err(MessageError::HeaderInjection { ref name }) if name == "Content-Disposition filename"
    ));
    assert!(base.with_attachment("a\tb.txt", content).is_ok());
    assert!(
        "Eve\u{7} <e@example.com>"
            .parse::<tls_mailer_message::Mailbox>()
            .is_err()
    );
}
