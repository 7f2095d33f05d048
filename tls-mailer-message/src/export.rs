//! Export: the model to RFC 5322 + MIME bytes, through mail-builder.
//!
//! Our code decides the structure (`multipart/mixed` > `multipart/related` >
//! `multipart/alternative`, only the levels needed) and the headers;
//! mail-builder writes them: RFC 2047 encoded words, folding, RFC 2231
//! parameters, and per-part choice of 7bit / quoted-printable / base64.

use std::borrow::Cow;
use std::io::Write;
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
use crate::content::{Disposition, Part};
use crate::email::Email;
use crate::error::MessageError;

impl Email {
    /// The message as transmitted: RFC 5322 headers (Date and Message-ID
    /// added when missing, MIME-Version, never Bcc) and the MIME body.
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
    /// `output`. Part data is encoded from memory; the output is written
    /// through a bounded buffer, never assembled whole.
    pub fn write_to(&self, output: impl Write) -> Result<(), MessageError> {
        self.check_header_values()?;
        let email = self.finalized();
        build(&email)
            .write_to(output)
            .map_err(|e| MessageError::io(None, e))
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

fn leaf(part: &Part) -> MimePart<'_> {
    let mut content_type = ContentType::new(part.content_type.as_str());
    if let Some(name) = &part.name {
        content_type = content_type.attribute("name", name.as_str());
    }
    let is_message = part.content_type.starts_with("message/");
    let mut mime = MimePart::new(content_type, BodyPart::Binary(Cow::Borrowed(&part.data)));
    mime = match &part.disposition {
        Disposition::Inline { cid } => mime.inline().cid(cid.as_str()),
        Disposition::Attachment => mime.attachment(part.name.as_deref().unwrap_or("attachment")),
    };
    // RFC 2046 5.2.1: message/rfc822 takes no base64; send it as is when its
    // lines allow (CRLF only, at most 998 octets, no NUL).
    if is_message && let Some(encoding) = identity_encoding(&part.data) {
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

pub(crate) fn build(email: &Email) -> MessageBuilder<'_> {
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

    let text = i
        .text
        .as_deref()
        .map(|t| MimePart::new("text/plain", BodyPart::Text(crlf(t).into())));
    let html = i
        .html
        .as_deref()
        .map(|h| MimePart::new("text/html", BodyPart::Text(crlf(h).into())));
    let body = match (text, html) {
        (Some(text), Some(html)) => Some(MimePart::new("multipart/alternative", vec![text, html])),
        (text, html) => text.or(html),
    };
    let inlines: Vec<MimePart<'_>> = i
        .parts
        .iter()
        .filter(|p| p.cid().is_some())
        .map(leaf)
        .collect();
    let attachments: Vec<MimePart<'_>> = i
        .parts
        .iter()
        .filter(|p| p.disposition == Disposition::Attachment)
        .map(leaf)
        .collect();
    let body = if inlines.is_empty() {
        body
    } else {
        let mut children: Vec<MimePart<'_>> = body.into_iter().collect();
        children.extend(inlines);
        Some(MimePart::new("multipart/related", children))
    };
    let body = if attachments.is_empty() {
        body
    } else {
        let mut children: Vec<MimePart<'_>> = body.into_iter().collect();
        children.extend(attachments);
        Some(MimePart::new("multipart/mixed", children))
    };
    builder.body(body.unwrap_or_else(|| MimePart::new("text/plain", BodyPart::Text("".into()))))
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
            data: Arc::from(b"x".as_slice()),
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
}
