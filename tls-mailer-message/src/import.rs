//! Import: RFC 5322 + MIME bytes to the model, through mail-parser.

use std::sync::Arc;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{
    Address, Encoding, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders,
    PartType,
};

use crate::address::Mailbox;
use crate::content::{Disposition, Part};
use crate::email::{Email, FILE_NAME, Inner, RESERVED_HEADERS, normalize_newlines};
use crate::error::MessageError;
use crate::header::{check_header, check_header_value};

impl Email {
    /// Imports an existing message: addresses, subject, Date, Message-ID,
    /// other headers, the first plain-text and HTML bodies, inline parts
    /// (with their Content-ID) and attachments (names, types, decoded bytes;
    /// `message/rfc822` attachments keep the embedded message's bytes).
    ///
    /// Every From, Sender, To, Cc, Bcc and Reply-To field counts, not only
    /// the last of each name (the Sender is the first address of the Sender
    /// fields).
    ///
    /// Every header value kept (subject, Message-ID, other headers, display
    /// names, and each part's Content-Type, Content-ID and file name) must
    /// follow the rule of [`Email::with_header`]: a value with CR, LF, NUL or
    /// another control character is refused with
    /// [`MessageError::HeaderInjection`] naming the header, because on the
    /// wire a bare CR ends a line and would start a new header field.
    ///
    /// `Email::parse(&e.finalized().to_bytes()?)? == e.finalized()` for any
    /// valid `e`.
    ///
    /// ```
    /// use tls_mailer_message::Email;
    ///
    /// let raw = b"From: =?utf-8?q?Ren=C3=A9e?= <renee@example.com>\r\n\
    ///             To: bob@example.com\r\n\
    ///             Subject: Hello\r\n\r\nHi Bob\r\n";
    /// let e = Email::parse(raw)?;
    /// assert_eq!(e.from()[0].name(), Some("Renée"));
    /// assert_eq!(e.text(), Some("Hi Bob\n"));
    /// # Ok::<(), tls_mailer_message::MessageError>(())
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Email, MessageError> {
        let message = MessageParser::default()
            .parse(bytes)
            .ok_or_else(|| MessageError::Parse("no RFC 5322 header section found".to_string()))?;
        let subject = message.subject().map(str::to_string);
        if let Some(subject) = &subject {
            check_header_value("Subject", subject)?;
        }
        let message_id = message.message_id().map(str::to_string);
        if let Some(id) = &message_id {
            check_header_value("Message-ID", id)?;
        }
        let mut inner = Inner {
            from: mailboxes(&message, &HeaderName::From)?,
            sender: mailboxes(&message, &HeaderName::Sender)?.into_iter().next(),
            to: mailboxes(&message, &HeaderName::To)?,
            cc: mailboxes(&message, &HeaderName::Cc)?,
            bcc: mailboxes(&message, &HeaderName::Bcc)?,
            reply_to: mailboxes(&message, &HeaderName::ReplyTo)?,
            subject,
            date: message.date().map(mail_parser::DateTime::to_timestamp),
            message_id,
            headers: other_headers(&message)?,
            ..Inner::default()
        };

        let mut body_ids = Vec::new();
        if let Some(&id) = message
            .text_body
            .iter()
            .find(|&&id| matches!(message.part(id).map(|p| &p.body), Some(PartType::Text(_))))
        {
            if let Some(text) = message.part(id).and_then(MessagePart::text_contents) {
                inner.text = Some(normalize_newlines(text));
                body_ids.push(id);
            }
        }
        if let Some(&id) = message
            .html_body
            .iter()
            .find(|&&id| matches!(message.part(id).map(|p| &p.body), Some(PartType::Html(_))))
        {
            if let Some(html) = message.part(id).and_then(MessagePart::text_contents) {
                inner.html = Some(normalize_newlines(html));
                body_ids.push(id);
            }
        }
        for &id in &message.attachments {
            if body_ids.contains(&id) {
                continue;
            }
            if let Some(part) = message.part(id) {
                inner.parts.push(import_part(&message, part)?);
            }
        }
        Ok(Email {
            inner: Arc::new(inner),
        })
    }
}

/// The display name and address of every mailbox of every field `name`
/// (groups flattened, entries without an address left out), in field
/// order: `Message::to()` and friends see only the last field of a name.
pub(crate) fn field_addresses<'m>(
    message: &'m Message<'_>,
    name: &HeaderName<'_>,
) -> Vec<(Option<&'m str>, &'m str)> {
    message
        .headers()
        .iter()
        .filter(|header| header.name == *name)
        .filter_map(|header| header.value.as_address())
        .flat_map(|address| -> Vec<&mail_parser::Addr<'_>> {
            match address {
                Address::List(list) => list.iter().collect(),
                Address::Group(groups) => groups.iter().flat_map(|g| g.addresses.iter()).collect(),
            }
        })
        .filter_map(|addr| Some((addr.name.as_deref(), addr.address.as_deref()?)))
        .collect()
}

fn mailboxes(message: &Message<'_>, name: &HeaderName<'_>) -> Result<Vec<Mailbox>, MessageError> {
    field_addresses(message, name)
        .into_iter()
        .map(|(display, addr)| Mailbox::with_name(display.unwrap_or(""), addr))
        .collect()
}

fn other_headers(message: &Message<'_>) -> Result<Vec<(String, String)>, MessageError> {
    let raw = message.raw_message.as_ref();
    let mut headers = Vec::new();
    for header in message.headers() {
        let name = header.name.as_str();
        if RESERVED_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let value = match (&header.name, &header.value) {
            (HeaderName::Other(_), HeaderValue::Text(text)) => decode_unstructured(&unfold(text)),
            _ => {
                let Some(bytes) = raw.get(header.offset_start as usize..header.offset_end as usize)
                else {
                    continue;
                };
                unfold(&String::from_utf8_lossy(bytes))
            }
        };
        let value = value.trim();
        check_header(name, value)?;
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(headers)
}

/// Decodes RFC 2047 encoded words in an unstructured value. mail-parser
/// 0.11 keeps unknown headers raw (its `default_header_text` is not applied
/// with the built-in header table), so the value is run through its
/// Subject parser instead.
fn decode_unstructured(raw: &str) -> String {
    if !raw.contains("=?") {
        return raw.to_string();
    }
    let synthetic = format!("Subject: {raw}\r\n\r\n");
    MessageParser::default()
        .parse_headers(synthetic.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| raw.to_string())
}

/// Removes the line breaks of folding (CRLF, or LF alone), keeping the
/// white space after them. A CR without LF stays, and is refused later.
fn unfold(value: &str) -> String {
    value.replace("\r\n", "").replace('\n', "")
}

fn import_part(message: &Message<'_>, part: &MessagePart<'_>) -> Result<Part, MessageError> {
    let cid = part
        .content_id()
        .map(|c| c.trim_matches(['<', '>']).to_string());
    if let Some(cid) = &cid {
        check_header_value("Content-ID", cid)?;
    }
    let is_attachment = part
        .content_disposition()
        .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
    let disposition = match cid {
        Some(cid) if !is_attachment && !cid.is_empty() => Disposition::Inline { cid },
        _ => Disposition::Attachment,
    };
    let content_type = match part.content_type() {
        Some(ct) => match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub).to_ascii_lowercase(),
            None if ct.c_type.eq_ignore_ascii_case("text") => "text/plain".to_string(),
            None => "application/octet-stream".to_string(),
        },
        None if part.is_message() => "message/rfc822".to_string(),
        None if part.is_text() => "text/plain".to_string(),
        None => "application/octet-stream".to_string(),
    };
    let data: Vec<u8> = match &part.body {
        // Text attachments: mail-parser converts them to UTF-8; take the
        // transfer-decoded bytes instead so that the file is kept exactly.
        PartType::Text(_) | PartType::Html(_) => {
            raw_decoded(message, part).unwrap_or_else(|| part.contents().to_vec())
        }
        _ => part.contents().to_vec(),
    };
    check_header_value("Content-Type", &content_type)?;
    let name = part.attachment_name().map(str::to_string);
    if let Some(name) = &name {
        check_header_value(FILE_NAME, name)?;
    }
    Ok(Part {
        disposition,
        name,
        content_type,
        source: crate::content::Source::Memory(Arc::from(data)),
    })
}

fn raw_decoded(message: &Message<'_>, part: &MessagePart<'_>) -> Option<Vec<u8>> {
    let raw = message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)?;
    match part.encoding {
        Encoding::Base64 => base64_decode(raw),
        Encoding::QuotedPrintable => quoted_printable_decode(raw),
        Encoding::None => None,
    }
}
