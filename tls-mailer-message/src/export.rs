//! Export: the model to RFC 5322 + MIME bytes.
//!
//! Our code decides the structure (`multipart/mixed` > `multipart/related` >
//! `multipart/alternative`, only the levels needed) and the headers;
//! mail-builder writes them: RFC 2047 encoded words, folding, RFC 2231
//! parameters. Part bodies are not given to mail-builder, which would need
//! them whole in memory: each is measured first (its encoding chosen by
//! mail-builder's rule: 7bit, quoted-printable or base64), mail-builder
//! writes the message with a marker in place of each body, and
//! `stream.rs` writes the bodies where the markers were, as they are read.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};

use crate::address::Mailbox;
use crate::content::{Disposition, Part, Source};
use crate::email::Email;
use crate::error::MessageError;
use crate::stream::{EmailReader, Kind, Leaf, Prepared, Segment, message_error};

impl Email {
    /// The message as transmitted: RFC 5322 headers (Date and Message-ID
    /// added when missing, MIME-Version, never Bcc) and the MIME body.
    /// Everything in memory at once: for large parts use
    /// [`write_to`](Email::write_to) or [`reader`](Email::reader).
    ///
    /// ```
    /// use tls_mailer_message::Email;
    ///
    /// let e = Email::new()
    ///     .with_from("Renée <renee@example.com>".parse()?)
    ///     .with_to("bob@example.com".parse()?)
    ///     .with_subject("Café ☕")
    ///     .with_text("Bonjour");
    /// let wire = String::from_utf8(e.to_bytes()?).unwrap();
    /// assert!(wire.contains("MIME-Version: 1.0\r\n"));
    /// assert!(wire.contains("Message-ID: <"));
    /// assert!(wire.contains("Subject: =?utf-8?"), "non-ASCII subject is RFC 2047-encoded");
    /// assert!(wire.is_ascii());
    /// # Ok::<(), tls_mailer_message::MessageError>(())
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>, MessageError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Streams the exported message (see [`to_bytes`](Email::to_bytes)) into
    /// `output` through a bounded buffer: part bodies are read and encoded a
    /// chunk at a time (files given with
    /// [`Content::from_path`](crate::Content::from_path) are read now), so
    /// memory does not grow with the message.
    ///
    /// Errors: a header value refused ([`MessageError::HeaderInjection`]);
    /// [`MessageError::Io`] with the file's path when a part's file cannot
    /// be read or changed while being written, without a path when `output`
    /// fails.
    ///
    /// ```
    /// use tls_mailer_message::Email;
    ///
    /// let e = Email::new()
    ///     .with_from("a@example.com".parse()?)
    ///     .with_to("b@example.com".parse()?)
    ///     .with_text("Hi\n");
    /// let mut out = Vec::new();
    /// e.with_date(0).with_message_id("1@example.com")?.write_to(&mut out)?;
    /// assert!(out.ends_with(b"\r\n\r\nHi\r\n"));
    /// # Ok::<(), tls_mailer_message::MessageError>(())
    /// ```
    pub fn write_to(&self, mut output: impl Write) -> Result<(), MessageError> {
        let mut reader = self.reader()?;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(message_error(e)),
            };
            output
                .write_all(buffer.get(..n).unwrap_or_default())
                .map_err(|e| MessageError::io(None, e))?;
        }
    }

    /// The exported message (see [`to_bytes`](Email::to_bytes)) as a
    /// [`Read`]er that produces it as it is read, with its size on the wire
    /// known in advance ([`EmailReader::size`], for SMTP SIZE). The headers
    /// are fixed now (Date and Message-ID filled in, boundaries chosen) and
    /// every body is measured to choose its encoding: a text or `message/*`
    /// part read from a file is read once now, a binary one only has its
    /// length looked up. The bodies are then read again, a chunk at a time,
    /// as the reader is read; [`EmailReader::replay`] gives the same bytes
    /// again.
    ///
    /// ```
    /// use std::io::Read;
    /// use tls_mailer_message::{Content, Email};
    ///
    /// let email = Email::new()
    ///     .with_from("a@example.com".parse()?)
    ///     .with_to("b@example.com".parse()?)
    ///     .with_text("See the file.\n")
    ///     .with_attachment("data.bin", Content::from_bytes(vec![0u8; 100_000]))?;
    /// let mut reader = email.reader()?;
    /// let mut wire = Vec::new();
    /// reader.read_to_end(&mut wire)?;
    /// assert_eq!(wire.len() as u64, reader.size());
    /// assert_eq!(Email::parse(&wire)?.attachments()[0].data().len(), 100_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reader(&self) -> Result<EmailReader, MessageError> {
        self.check_header_values()?;
        let email = self.finalized();
        Ok(EmailReader::new(prepare(&email)?))
    }
}

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn address_list(mailboxes: &[Mailbox]) -> Address<'_> {
    let mut list: Vec<Address<'_>> = mailboxes
        .iter()
        .map(|m| Address::new_address(m.name(), m.addr()))
        .collect();
    if list.len() == 1 {
        list.remove(0)
    } else {
        Address::new_list(list)
    }
}

/// The leaves of `email` in export order (text, HTML, inline parts,
/// attachments), measured, with their encodings chosen.
fn leaves(email: &Email) -> Result<Vec<Leaf>, MessageError> {
    let i = &email.inner;
    let mut leaves = Vec::new();
    for text in [&i.text, &i.html].into_iter().flatten() {
        let source = Source::Memory(crlf(text).into_bytes().into());
        leaves.push(Leaf::new(source, Kind::Text { body: true })?);
    }
    let inlines = i.parts.iter().filter(|p| p.cid().is_some());
    let attachments = i
        .parts
        .iter()
        .filter(|p| p.disposition == Disposition::Attachment);
    for part in inlines.chain(attachments) {
        let kind = Kind::of(
            &part.content_type,
            part.disposition == Disposition::Attachment,
        );
        leaves.push(Leaf::new(part.source.clone(), kind)?);
    }
    if i.text.is_none() && i.html.is_none() && i.parts.is_empty() {
        leaves.push(Leaf::new(
            Source::Memory(Vec::new().into()),
            Kind::Text { body: true },
        )?);
    }
    Ok(leaves)
}

/// A text body leaf: `text/plain` or `text/html`, UTF-8.
fn text_leaf<'x>(content_type: &'x str, marker: &'x str, leaf: &Leaf) -> MimePart<'x> {
    MimePart::new(
        ContentType::new(content_type).attribute("charset", "utf-8"),
        BodyPart::Binary(marker.as_bytes().into()),
    )
    .transfer_encoding(leaf.encoding.header_value())
}

fn part_leaf<'x>(part: &'x Part, marker: &'x str, leaf: &Leaf) -> MimePart<'x> {
    let mut content_type = ContentType::new(part.content_type.as_str());
    if let Some(name) = &part.name {
        content_type = content_type.attribute("name", name.as_str());
    }
    let mut mime = MimePart::new(content_type, BodyPart::Binary(marker.as_bytes().into()));
    mime = match &part.disposition {
        Disposition::Inline { cid } => mime.inline().cid(cid.as_str()),
        Disposition::Attachment => mime.attachment(part.name.as_deref().unwrap_or("attachment")),
    };
    mime.transfer_encoding(leaf.encoding.header_value())
}

/// The message, ready to be written: mail-builder's output with each
/// body's marker (`NUL index NUL`: a NUL is never in a header, every value
/// is checked) replaced by the body.
fn prepare(email: &Email) -> Result<Prepared, MessageError> {
    let mut leaves: Vec<Option<Leaf>> = leaves(email)?.into_iter().map(Some).collect();
    let markers: Vec<String> = (0..leaves.len()).map(|k| format!("\0{k}\0")).collect();
    let skeleton = {
        let leaf = |k: usize| leaves.get(k).and_then(Option::as_ref);
        let mut next = 0usize;
        let mut take = || {
            let k = next;
            next += 1;
            (markers.get(k).map_or("", String::as_str), leaf(k))
        };
        let i = &email.inner;
        let mut text_leaves = Vec::new();
        for (content_type, present) in [
            ("text/plain", i.text.is_some()),
            ("text/html", i.html.is_some()),
        ] {
            if present && let (marker, Some(leaf)) = take() {
                text_leaves.push(text_leaf(content_type, marker, leaf));
            }
        }
        let mut part_leaves = |filter: &dyn Fn(&Part) -> bool| -> Vec<MimePart<'_>> {
            let mut out = Vec::new();
            for part in i.parts.iter().filter(|p| filter(p)) {
                if let (marker, Some(leaf)) = take() {
                    out.push(part_leaf(part, marker, leaf));
                }
            }
            out
        };
        let inlines = part_leaves(&|p| p.cid().is_some());
        let attachments = part_leaves(&|p| p.disposition == Disposition::Attachment);
        let empty = if text_leaves.is_empty() && inlines.is_empty() && attachments.is_empty() {
            take().1.map(|leaf| {
                text_leaf(
                    "text/plain",
                    markers.first().map_or("", String::as_str),
                    leaf,
                )
            })
        } else {
            None
        };
        let mut texts = text_leaves.into_iter();
        let (text, html) = match (i.text.is_some(), i.html.is_some()) {
            (true, true) => (texts.next(), texts.next()),
            (true, false) => (texts.next(), None),
            (false, true) => (None, texts.next()),
            (false, false) => (None, None),
        };
        let body = structure(text, html, inlines, attachments).or(empty);
        headers(email)
            .body(body.unwrap_or_else(|| MimePart::new("text/plain", BodyPart::Text("".into()))))
            .write_to_vec()
            .map_err(|e| MessageError::io(None, e))?
    };
    let broken = || {
        MessageError::io(
            None,
            std::io::Error::other("the message skeleton lost a part marker"),
        )
    };
    let mut segments = Vec::with_capacity(leaves.len() * 2 + 1);
    let mut rest = skeleton.as_slice();
    while let Some(start) = rest.iter().position(|&b| b == 0) {
        let (literal, after) = rest.split_at(start);
        let after = after.get(1..).unwrap_or_default();
        let end = after.iter().position(|&b| b == 0).ok_or_else(broken)?;
        let index: usize = std::str::from_utf8(after.get(..end).unwrap_or_default())
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(broken)?;
        let leaf = leaves
            .get_mut(index)
            .and_then(Option::take)
            .ok_or_else(broken)?;
        segments.push(Segment::Literal(literal.to_vec()));
        segments.push(Segment::Leaf(leaf));
        rest = after.get(end + 1..).unwrap_or_default();
    }
    segments.push(Segment::Literal(rest.to_vec()));
    if leaves.iter().any(Option::is_some) {
        return Err(broken());
    }
    Ok(Prepared { segments })
}

/// The MIME structure around the leaves: only the levels needed.
fn structure<'x>(
    text: Option<MimePart<'x>>,
    html: Option<MimePart<'x>>,
    inlines: Vec<MimePart<'x>>,
    attachments: Vec<MimePart<'x>>,
) -> Option<MimePart<'x>> {
    let body = match (text, html) {
        (Some(text), Some(html)) => Some(MimePart::new("multipart/alternative", vec![text, html])),
        (text, html) => text.or(html),
    };
    let body = if inlines.is_empty() {
        body
    } else {
        let mut children: Vec<MimePart<'_>> = body.into_iter().collect();
        children.extend(inlines);
        Some(MimePart::new("multipart/related", children))
    };
    if attachments.is_empty() {
        body
    } else {
        let mut children: Vec<MimePart<'_>> = body.into_iter().collect();
        children.extend(attachments);
        Some(MimePart::new("multipart/mixed", children))
    }
}

/// The header fields of the message (mail-builder adds MIME-Version).
fn headers(email: &Email) -> MessageBuilder<'_> {
    let i = &email.inner;
    let mut builder = MessageBuilder::new();
    if !i.from.is_empty() {
        builder = builder.from(address_list(&i.from));
    }
    if let Some(sender) = &i.sender {
        builder = builder.sender(Address::new_address(sender.name(), sender.addr()));
    }
    if !i.to.is_empty() {
        builder = builder.to(address_list(&i.to));
    }
    if !i.cc.is_empty() {
        builder = builder.cc(address_list(&i.cc));
    }
    if !i.reply_to.is_empty() {
        builder = builder.reply_to(address_list(&i.reply_to));
    }
    if let Some(subject) = &i.subject {
        builder = builder.subject(Text::new(subject.as_str()));
    }
    if let Some(date) = i.date {
        builder = builder.date(Date::new(date));
    }
    if let Some(id) = &i.message_id {
        builder = builder.message_id(MessageId::new(id.as_str()));
    }
    for (name, value) in &i.headers {
        // ASCII values are folded but never encoded (structured headers such
        // as List-Unsubscribe must stay readable); others get RFC 2047 words.
        builder = if value.is_ascii() {
            builder.header(name.as_str(), Raw::new(value.as_str()))
        } else {
            builder.header(name.as_str(), Text::new(value.as_str()))
        };
    }
    builder
}

/// A Message-ID unique to this process run: time, process id, counter.
pub(crate) fn generate_message_id(domain: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let domain = if domain.is_ascii() && !domain.is_empty() {
        domain
    } else {
        "localhost"
    };
    format!("{nanos:x}.{:x}.{count:x}@{domain}", std::process::id())
}

/// The writer this crate used before bodies were streamed: the whole
/// message, bodies included, built by mail-builder in memory. Kept as the
/// reference the streaming writer is compared with, byte for byte.
#[cfg(test)]
pub(crate) mod reference {
    use std::borrow::Cow;

    use super::*;

    fn leaf(part: &Part) -> MimePart<'_> {
        let mut content_type = ContentType::new(part.content_type.as_str());
        if let Some(name) = &part.name {
            content_type = content_type.attribute("name", name.as_str());
        }
        let is_message = part.content_type.starts_with("message/");
        let data = part.data();
        let mut mime = MimePart::new(content_type, BodyPart::Binary(Cow::Borrowed(data)));
        mime = match &part.disposition {
            Disposition::Inline { cid } => mime.inline().cid(cid.as_str()),
            Disposition::Attachment => {
                mime.attachment(part.name.as_deref().unwrap_or("attachment"))
            }
        };
        if is_message && let Some(encoding) = identity_encoding(data) {
            mime = mime.transfer_encoding(encoding);
        }
        mime
    }

    fn identity_encoding(data: &[u8]) -> Option<&'static str> {
        let mut line_len = 0usize;
        let mut previous = 0u8;
        for &b in data {
            match b {
                0 => return None,
                b'\n' if previous != b'\r' => return None,
                b'\n' => line_len = 0,
                b'\r' => {}
                _ => {
                    if previous == b'\r' {
                        return None;
                    }
                    line_len += 1;
                    if line_len > 998 {
                        return None;
                    }
                }
            }
            previous = b;
        }
        if previous == b'\r' {
            return None;
        }
        Some(if data.is_ascii() { "7bit" } else { "8bit" })
    }

    /// The whole message, as mail-builder builds it from memory.
    pub(crate) fn to_bytes(email: &Email) -> Vec<u8> {
        let i = &email.inner;
        let text = i
            .text
            .as_deref()
            .map(|t| MimePart::new("text/plain", BodyPart::Text(crlf(t).into())));
        let html = i
            .html
            .as_deref()
            .map(|h| MimePart::new("text/html", BodyPart::Text(crlf(h).into())));
        let inlines = i
            .parts
            .iter()
            .filter(|p| p.cid().is_some())
            .map(leaf)
            .collect();
        let attachments = i
            .parts
            .iter()
            .filter(|p| p.disposition == Disposition::Attachment)
            .map(leaf)
            .collect();
        let body = structure(text, html, inlines, attachments);
        headers(email)
            .body(body.unwrap_or_else(|| MimePart::new("text/plain", BodyPart::Text("".into()))))
            .write_to_vec()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::email::Inner;

    fn email(edit: impl FnOnce(&mut Inner)) -> Email {
        let mut inner = Inner {
            from: vec!["a@example.com".parse().unwrap()],
            to: vec!["b@example.com".parse().unwrap()],
            ..Inner::default()
        };
        edit(&mut inner);
        Email {
            inner: Arc::new(inner),
        }
    }

    fn part(content_type: &str, cid: Option<&str>, name: Option<&str>) -> Part {
        Part {
            disposition: match cid {
                Some(cid) => Disposition::Inline {
                    cid: cid.to_string(),
                },
                None => Disposition::Attachment,
            },
            name: name.map(str::to_string),
            content_type: content_type.to_string(),
            source: Source::Memory(Arc::from(b"x".as_slice())),
        }
    }

    /// Values that bypassed every constructor are still refused on export.
    #[test]
    fn export_checks_every_header_value_however_it_was_set() {
        let evil = "x\rReply-To: attacker@evil.example";
        let cases: Vec<(&str, Email)> = vec![
            ("Subject", email(|i| i.subject = Some(evil.into()))),
            (
                "Message-ID",
                email(|i| i.message_id = Some(format!("id@{evil}"))),
            ),
            (
                "X-A",
                email(|i| i.headers.push(("X-A".into(), evil.into()))),
            ),
            (
                "X\rB",
                email(|i| i.headers.push(("X\rB".into(), "v".into()))),
            ),
            (
                "Content-Type",
                email(|i| i.parts.push(part(evil, None, Some("a")))),
            ),
            (
                "Content-ID",
                email(|i| i.parts.push(part("image/png", Some(evil), None))),
            ),
            (
                "Content-Disposition filename",
                email(|i| i.parts.push(part("text/plain", None, Some(evil)))),
            ),
        ];
        for (header, email) in cases {
            for result in [email.to_bytes().map(drop), email.validate()] {
                assert!(
                    matches!(&result, Err(MessageError::HeaderInjection { name }) if name == header),
                    "{header:?}: {result:?}"
                );
            }
        }
        assert!(
            email(|i| i.subject = Some("fine\tvalue".into()))
                .to_bytes()
                .is_ok()
        );
    }

    use crate::test_samples as common;

    /// Each MIME boundary (made afresh on every export) replaced by its rank.
    fn boundaries_numbered(bytes: &[u8]) -> Vec<u8> {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        let mut found: Vec<String> = Vec::new();
        for (at, _) in text.match_indices("boundary=\"") {
            let rest = &text[at + "boundary=\"".len()..];
            let boundary = &rest[..rest.find('"').unwrap()];
            if !found.iter().any(|seen| seen == boundary) {
                found.push(boundary.to_owned());
            }
        }
        for (rank, boundary) in found.iter().enumerate() {
            text = text.replace(boundary.as_str(), &format!("BOUNDARY-{rank}"));
        }
        text.into_bytes()
    }

    /// Bodies that take each encoding and each rule of the choice.
    fn encoding_samples() -> Vec<(&'static str, Email)> {
        let base = || {
            Email::new()
                .with_from("a@example.com".parse().unwrap())
                .with_to("b@example.com".parse().unwrap())
        };
        let bodies: Vec<(&str, Vec<u8>)> = vec![
            ("empty", b"".to_vec()),
            ("short", b"hello\r\n".to_vec()),
            ("bare lf", b"one\ntwo\n".to_vec()),
            ("bare cr", b"one\rtwo\r".to_vec()),
            ("trailing blank", b"line \r\nnext\t".to_vec()),
            ("long line", "x".repeat(200).into_bytes()),
            ("long words", "word ".repeat(100).into_bytes()),
            (
                "latin",
                "Grüße, schöne Grüße = \t\r\n".repeat(300).into_bytes(),
            ),
            ("cjk", "안녕하세요 세계 ".repeat(200).into_bytes()),
            (
                "binary",
                (0..3000u32).map(|v| (v * 31 % 251) as u8).collect(),
            ),
            ("nul", b"a\0b\r\n".to_vec()),
            ("line 998", format!("{}\r\n", "m".repeat(998)).into_bytes()),
            ("line 999", format!("{}\r\n", "m".repeat(999)).into_bytes()),
            ("message", b"Subject: inner\r\n\r\nbody\r\n".to_vec()),
            ("message 8bit", "Subject: é\r\n\r\nbodé".as_bytes().to_vec()),
        ];
        let mut samples = Vec::new();
        for (name, body) in bodies {
            let text = String::from_utf8_lossy(&body).into_owned();
            for content_type in [
                "text/plain",
                "text/csv",
                "application/pdf",
                "message/rfc822",
            ] {
                let content = Content::from_bytes(body.clone())
                    .with_content_type(content_type)
                    .unwrap();
                samples.push((
                    name,
                    base()
                        .with_text(&text)
                        .with_attachment("a", content.clone())
                        .unwrap()
                        .with_inline("i", content)
                        .unwrap(),
                ));
            }
            samples.push((name, base().with_html(&text)));
        }
        samples.push(("nothing", base()));
        samples.push((
            "only an inline part",
            base().with_inline("x", Content::from_bytes("x")).unwrap(),
        ));
        samples
    }

    use crate::content::Content;

    /// The streaming writer writes what mail-builder wrote from memory,
    /// byte for byte (boundaries apart: they are made afresh each time),
    /// and knows the size on the wire and 8-bit-ness in advance.
    #[test]
    fn the_streaming_writer_writes_what_mail_builder_wrote() {
        let samples = common::samples().into_iter().chain(encoding_samples());
        let mut count = 0;
        for (name, email) in samples {
            let email = email.finalized();
            let expected = reference::to_bytes(&email);
            let mut reader = email.reader().unwrap();
            let mut streamed = Vec::new();
            reader.read_to_end(&mut streamed).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&boundaries_numbered(&streamed)),
                String::from_utf8_lossy(&boundaries_numbered(&expected)),
                "{name}"
            );
            assert_eq!(
                boundaries_numbered(&streamed),
                boundaries_numbered(&expected),
                "{name}"
            );
            assert_eq!(
                reader.size(),
                tls_mailer_proto::BodyInfo::of(&streamed).size.unwrap(),
                "{name}: size"
            );
            assert_eq!(reader.is_eight_bit(), !streamed.is_ascii(), "{name}: 8-bit");
            count += 1;
        }
        assert!(count > 60);
    }
}
