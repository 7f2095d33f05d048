//! Import of shapes made by other tools (fixtures under tests/fixtures/).
#![allow(clippy::unwrap_used)]

use tls_mailer_message::{Disposition, Email};

fn fixture(name: &str) -> Email {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Email::parse(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn nested_multiparts_folded_headers_and_forwarded_message() {
    let e = fixture("nested.eml");
    assert_eq!(e.from()[0].name(), Some("Old Tool"));
    assert_eq!(e.to().len(), 2);
    assert_eq!(e.to()[1].name(), Some("Folded, Name"));
    assert_eq!(e.to()[1].addr(), "b@example.com");
    assert_eq!(e.subject(), Some("a folded subject line"));
    assert_eq!(e.message_id(), Some("abc@example.com"));
    assert_eq!(e.date(), Some(1_546_333_200));
    assert_eq!(
        e.headers(),
        [("X-Custom".to_string(), "value  continued".to_string())]
    );
    assert_eq!(e.text(), Some("plain without charset"));
    assert_eq!(e.html(), Some("<p>café <img src=\"cid:img1@x\"></p>"));

    let parts = e.parts();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(
        parts[0].disposition(),
        &Disposition::Inline {
            cid: "img1@x".into()
        }
    );
    assert_eq!(parts[0].content_type(), "image/gif");
    assert!(parts[0].data().starts_with(b"GIF89a"));
    assert_eq!(parts[1].content_type(), "message/rfc822");
    assert_eq!(parts[1].name(), Some("forwarded.eml"));
    assert!(
        parts[1]
            .data()
            .starts_with(b"From: x@example.com\r\nSubject: inner")
    );
    assert_eq!(parts[2].name(), Some("€ rapport détaillé.pdf"));
    assert_eq!(parts[2].data(), [0, 1, 2]);

    // Re-exported, the forwarded message stays message/rfc822 (not base64)
    // and the whole reads back the same.
    let again = e.to_bytes().unwrap();
    let wire = String::from_utf8_lossy(&again);
    assert!(wire.contains("Content-Type: message/rfc822"), "{wire}");
    assert!(wire.contains("Subject: inner"), "{wire}");
    assert_eq!(Email::parse(&again).unwrap(), e);
}

#[test]
fn rfc2231_filenames_legacy_charsets_and_raw_text_attachments() {
    let e = fixture("rfc2231.eml");
    assert_eq!(e.subject(), Some("résumé"));
    assert_eq!(e.text(), Some("naïve €"));
    let parts = e.parts();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].name(), Some("données.txt"));
    assert_eq!(parts[0].content_type(), "text/plain");
    // Attachment bytes are kept exactly, not converted to UTF-8.
    assert_eq!(parts[0].data(), b"line\r\nbyte\xff");
}

#[test]
fn plain_message_without_mime_and_with_bare_line_feeds() {
    let e = fixture("plain-lf.eml");
    assert_eq!(e.subject(), Some("bare LF and no MIME"));
    assert_eq!(e.text(), Some("Just text,\nwith bare line feeds.\n"));
    assert!(e.html().is_none());
    assert!(e.parts().is_empty());
    assert_eq!(e.envelope_recipients(), ["b@example.com"]);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(Email::parse(b"").is_err());
    // Arbitrary bytes never panic.
    for seed in 0..200u32 {
        let bytes: Vec<u8> = (0..seed * 3)
            .map(|i| (i.wrapping_mul(seed + 7) % 251) as u8)
            .collect();
        let _ = Email::parse(&bytes);
    }
}
