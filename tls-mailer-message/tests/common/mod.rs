//! Sample messages shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use tls_mailer_message::{Content, Email, Mailbox};

pub fn mb(s: &str) -> Mailbox {
    s.parse().unwrap()
}

pub fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

fn base() -> Email {
    Email::new()
        .with_from(mb("Alice Example <alice@example.com>"))
        .with_to(mb("bob@example.org"))
}

/// Named sample messages covering the shapes the builder produces.
pub fn samples() -> Vec<(&'static str, Email)> {
    let png = Content::from_bytes(vec![0x89, b'P', b'N', b'G', 0, 1, 2, 255])
        .with_content_type("image/png")
        .unwrap();
    let mut many = base()
        .with_subject("many attachments")
        .with_text("see attached\n");
    for i in 0..12 {
        let data: Vec<u8> = (0..(i * 97 + 1)).map(|b| (b * 7 + i) as u8).collect();
        many = many
            .with_attachment(&format!("file-{i}.bin"), Content::from_bytes(data))
            .unwrap();
    }
    vec![
        ("text-only", base().with_subject("Hello").with_text("Hello Bob,\nsee you.\n")),
        ("html-only", base().with_subject("HTML").with_html("<p>Hi <b>Bob</b></p>\n")),
        (
            "empty-text-with-attachment",
            base()
                .with_subject("empty text")
                .with_text("")
                .with_attachment("a.txt", Content::from_bytes("x")).unwrap(),
        ),
        (
            "non-ascii",
            Email::new()
                .with_from(mb("\"Zoë Durand, Ph.D.\" <zoe@example.fr>"))
                .with_to(mb("Jürgen Groß <juergen@example.de>"))
                .with_cc(mb("山田 太郎 <taro@example.jp>"))
                .with_reply_to(mb("Support «FR» <support@example.fr>"))
                .with_subject("Réunion à 10h — ordre du jour ☕ 日本語")
                .with_text("Bonjour à tous,\nvoici l'ordre du jour : café ☕.\n")
                .with_html("<p>Bonjour à tous ☕</p>\n"),
        ),
        (
            "international-addresses",
            Email::new()
                .with_from(mb("用户 <用户@例子.广告>"))
                .with_to(mb("josé@exämple.de"))
                .with_subject("SMTPUTF8")
                .with_text("Grüße\n"),
        ),
        (
            "long-headers",
            base()
                .with_subject("word ".repeat(60).trim())
                .with_header("X-Long-Ascii", "token ".repeat(200).trim()).unwrap()
                .with_header("X-Long-Unicode", "données ".repeat(80).trim()).unwrap()
                .with_header("List-Unsubscribe", "<mailto:unsubscribe@example.com?subject=unsubscribe>, <https://example.com/unsubscribe/very/long/path/0123456789abcdef0123456789abcdef>").unwrap()
                .with_text(format!("{}\n{}\n", "a".repeat(2000), "é".repeat(700))),
        ),
        (
            "full",
            base()
                .with_cc(mb("carol@example.net"))
                .with_cc(mb("Dave <dave@example.net>"))
                .with_bcc(mb("secret-bcc@example.com"))
                .with_reply_to(mb("replies@example.com"))
                .with_subject("Everything")
                .with_header("X-Mailer", "tls-mailer").unwrap()
                .with_text("plain\n")
                .with_html("<p>html <img src=\"cid:logo@example\"></p>\n")
                .with_inline("logo@example", png.clone()).unwrap()
                .with_attachment("données.bin", Content::from_bytes(all_bytes())).unwrap()
                .with_attachment("notes.txt", Content::from_bytes(all_bytes())).unwrap()
                .with_attachment("report.pdf", Content::from_bytes(b"%PDF-1.4\n...".to_vec())).unwrap(),
        ),
        (
            "related-without-mixed",
            base()
                .with_subject("inline only")
                .with_html("<img src=\"cid:a\"><img src=\"cid:b\">\n")
                .with_inline("a", png.clone()).unwrap()
                .with_inline("b", Content::from_bytes(all_bytes()).with_content_type("image/gif").unwrap()).unwrap(),
        ),
        ("many-attachments", many),
        (
            "attachment-only",
            base()
                .with_subject("only a file")
                .with_attachment("résumé très long nom de fichier pour tester RFC 2231.txt", Content::from_bytes("contenu\r\n")).unwrap(),
        ),
        (
            "multiple-from-with-sender",
            Email::new()
                .with_from(mb("a@example.com"))
                .with_from(mb("B <b@example.com>"))
                .with_sender(mb("Secretary <sec@example.com>"))
                .with_to(mb("x@example.org"))
                .with_subject("from two")
                .with_text("hi\n"),
        ),
        (
            "crlf-and-dots",
            base()
                .with_subject("dots")
                .with_text(".\r\n..leading dots\r\nFrom the start\r\ntrailing space \r\n"),
        ),
    ]
}
