//! A serialisable summary of an [`Email`] for logs and `--json` output.

use serde::Serialize;

use crate::address::Mailbox;
use crate::content::Disposition;
use crate::email::Email;

/// Summary of a message: addresses, subject and the parts with type, size,
/// name and Content-ID. Bodies and attachment bytes are not included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmailDump {
    /// From addresses.
    pub from: Vec<Mailbox>,
    /// The Sender header.
    pub sender: Option<Mailbox>,
    /// To recipients.
    pub to: Vec<Mailbox>,
    /// Cc recipients.
    pub cc: Vec<Mailbox>,
    /// Bcc recipients (envelope only; never transmitted).
    pub bcc: Vec<Mailbox>,
    /// Reply-To addresses.
    pub reply_to: Vec<Mailbox>,
    /// The subject.
    pub subject: Option<String>,
    /// The Message-ID, if set.
    pub message_id: Option<String>,
    /// The envelope sender (MAIL FROM), if it can be derived.
    pub envelope_sender: Option<String>,
    /// The envelope recipients (RCPT TO).
    pub envelope_recipients: Vec<String>,
    /// Bodies, inline parts and attachments in export order.
    pub parts: Vec<PartDump>,
}

/// One part in an [`EmailDump`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartDump {
    /// `body`, `inline` or `attachment`.
    pub role: &'static str,
    /// The content type.
    pub content_type: String,
    /// Size in bytes (UTF-8 bytes for bodies, decoded bytes for parts).
    pub size: usize,
    /// The file name, if any.
    pub name: Option<String>,
    /// The Content-ID of an inline part.
    pub cid: Option<String>,
}

impl Email {
    /// A serialisable summary for logging and `tls-mailer compose --json`.
    ///
    /// ```
    /// use tls_mailer_message::{Content, Email};
    ///
    /// let e = Email::new()
    ///     .with_to("bob@example.com".parse()?)
    ///     .with_text("hi")
    ///     .with_attachment("a.pdf", Content::from_bytes(vec![1, 2, 3]))?;
    /// let dump = e.dump();
    /// assert_eq!(dump.parts[1].content_type, "application/pdf");
    /// assert_eq!(dump.parts[1].size, 3);
    /// # Ok::<(), tls_mailer_message::MessageError>(())
    /// ```
    pub fn dump(&self) -> EmailDump {
        let mut parts = Vec::new();
        let body = |content_type: &str, text: &str| PartDump {
            role: "body",
            content_type: content_type.to_string(),
            size: text.len(),
            name: None,
            cid: None,
        };
        if let Some(text) = self.text() {
            parts.push(body("text/plain", text));
        }
        if let Some(html) = self.html() {
            parts.push(body("text/html", html));
        }
        let inline = self.parts().iter().filter(|p| p.cid().is_some());
        let attached = self
            .parts()
            .iter()
            .filter(|p| p.disposition() == &Disposition::Attachment);
        for part in inline.chain(attached) {
            parts.push(PartDump {
                role: if part.cid().is_some() {
                    "inline"
                } else {
                    "attachment"
                },
                content_type: part.content_type().to_string(),
                size: part_size(part),
                name: part.name().map(str::to_string),
                cid: part.cid().map(str::to_string),
            });
        }
        EmailDump {
            from: self.from().to_vec(),
            sender: self.sender().cloned(),
            to: self.to().to_vec(),
            cc: self.cc().to_vec(),
            bcc: self.bcc().to_vec(),
            reply_to: self.reply_to().to_vec(),
            subject: self.subject().map(str::to_string),
            message_id: self.message_id().map(str::to_string),
            envelope_sender: self.envelope_sender(),
            envelope_recipients: self.envelope_recipients(),
            parts,
        }
    }
}

/// The decoded size of a part: its bytes, or its file's current length (0
/// when the file cannot be read now; writing the message says why).
fn part_size(part: &crate::content::Part) -> usize {
    match part.path() {
        None => part.data().len(),
        Some(path) => std::fs::metadata(path)
            .map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX))
            .unwrap_or(0),
    }
}
