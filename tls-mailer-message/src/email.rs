//! The immutable e-mail value and its rules.

use std::sync::Arc;

use tls_mailer_proto::{Address, Envelope};

use crate::address::Mailbox;
use crate::content::{Content, Disposition, Part, guess_content_type, validate_cid};
use crate::envelope;
use crate::error::MessageError;
use crate::header::{check_header, check_header_value};

/// Headers this crate writes itself; they cannot be set with
/// [`Email::with_header`].
pub(crate) const RESERVED_HEADERS: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
    "content-description",
    "content-location",
    "dkim-signature",
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inner {
    pub(crate) from: Vec<Mailbox>,
    pub(crate) sender: Option<Mailbox>,
    pub(crate) to: Vec<Mailbox>,
    pub(crate) cc: Vec<Mailbox>,
    pub(crate) bcc: Vec<Mailbox>,
    pub(crate) reply_to: Vec<Mailbox>,
    pub(crate) subject: Option<String>,
    pub(crate) date: Option<i64>,
    pub(crate) message_id: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    pub(crate) parts: Vec<Part>,
}

/// An e-mail message: an immutable value.
///
/// Every `with_*` / `without_*` method returns a new `Email` and leaves the
/// original unchanged; clones are cheap (one reference count), and part data
/// is shared between versions.
///
/// ```
/// use tls_mailer_message::{Content, Email};
///
/// let email = Email::new()
///     .with_from("Alice <alice@example.com>".parse()?)
///     .with_to("bob@example.org".parse()?)
///     .with_bcc("audit@example.com".parse()?)
///     .with_subject("Quarterly report")
///     .with_text("Hello Bob,\nthe report is attached.\n")
///     .with_attachment("report.csv", Content::from_bytes("a,b\n1,2\n"))?;
///
/// email.validate()?;
/// let bytes = email.to_bytes()?;
/// let wire = String::from_utf8_lossy(&bytes);
/// assert!(wire.contains("Subject: Quarterly report"));
/// assert!(!wire.contains("audit@example.com"), "Bcc is never transmitted");
/// assert_eq!(
///     email.envelope_recipients(),
///     ["bob@example.org", "audit@example.com"]
/// );
/// # Ok::<(), tls_mailer_message::MessageError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Email {
    pub(crate) inner: Arc<Inner>,
}

/// Text bodies are kept with `\n` line ends; the wire form uses CRLF.
pub(crate) fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

impl Email {
    /// An empty message.
    pub fn new() -> Self {
        Email::default()
    }

    fn change(&self, edit: impl FnOnce(&mut Inner)) -> Email {
        let mut inner = Inner::clone(&self.inner);
        edit(&mut inner);
        Email {
            inner: Arc::new(inner),
        }
    }

    /// Adds a From address (several are allowed, but then a Sender is required).
    pub fn with_from(&self, mailbox: Mailbox) -> Email {
        self.change(|i| i.from.push(mailbox))
    }

    /// Sets the Sender header (the mailbox actually sending the message).
    pub fn with_sender(&self, mailbox: Mailbox) -> Email {
        self.change(|i| i.sender = Some(mailbox))
    }

    /// Adds a To recipient.
    pub fn with_to(&self, mailbox: Mailbox) -> Email {
        self.change(|i| i.to.push(mailbox))
    }

    /// Adds a Cc recipient.
    pub fn with_cc(&self, mailbox: Mailbox) -> Email {
        self.change(|i| i.cc.push(mailbox))
    }

    /// Adds a Bcc recipient: part of the envelope, never of the transmitted message.
    pub fn with_bcc(&self, mailbox: Mailbox) -> Email {
        self.change(|i| i.bcc.push(mailbox))
    }

    /// Adds a Reply-To address.
    pub fn with_reply_to(&self, mailbox: Mailbox) -> Email {
        self.change(|i| i.reply_to.push(mailbox))
    }

    /// Sets the subject (any Unicode text; a line break or another control
    /// character in it makes [`to_bytes`](Email::to_bytes) and
    /// [`validate`](Email::validate) fail).
    pub fn with_subject(&self, subject: impl Into<String>) -> Email {
        let subject = subject.into();
        self.change(|i| i.subject = Some(subject))
    }

    /// Sets the plain-text body (line ends are normalised to `\n`).
    pub fn with_text(&self, text: impl AsRef<str>) -> Email {
        let text = normalize_newlines(text.as_ref());
        self.change(|i| i.text = Some(text))
    }

    /// Sets the HTML body (line ends are normalised to `\n`).
    pub fn with_html(&self, html: impl AsRef<str>) -> Email {
        let html = normalize_newlines(html.as_ref());
        self.change(|i| i.html = Some(html))
    }

    /// Sets the Date header, in seconds since the Unix epoch (written in UTC).
    /// When unset, export writes the current time.
    pub fn with_date(&self, unix_seconds: i64) -> Email {
        self.change(|i| i.date = Some(unix_seconds))
    }

    /// Sets the Message-ID (with or without angle brackets). When unset,
    /// export generates one.
    pub fn with_message_id(&self, id: &str) -> Result<Email, MessageError> {
        let id = validate_cid(id).map_err(|_| MessageError::HeaderInjection {
            name: "Message-ID".to_string(),
        })?;
        if !id.contains('@') {
            return Err(MessageError::HeaderInjection {
                name: "Message-ID".to_string(),
            });
        }
        Ok(self.change(|i| i.message_id = Some(id)))
    }

    /// Adds a custom header, e.g. `X-Mailer` or `List-Unsubscribe`.
    ///
    /// Refused: names that are not RFC 5322 field names, values with CR,
    /// LF, NUL or any other control character but HTAB
    /// ([`MessageError::HeaderInjection`]) and headers written by the
    /// builder itself such as `Content-Type` or `To`
    /// ([`MessageError::ReservedHeader`]).
    ///
    /// ```
    /// use tls_mailer_message::{Email, MessageError};
    ///
    /// let e = Email::new().with_header("X-Campaign", "spring")?;
    /// assert_eq!(e.headers(), [("X-Campaign".to_string(), "spring".to_string())]);
    /// assert!(matches!(
    ///     e.with_header("X-Evil", "a\r\nBcc: victim@example.com"),
    ///     Err(MessageError::HeaderInjection { .. })
    /// ));
    /// assert!(matches!(
    ///     e.with_header("X-Title", "v\u{1b}]0;owned\u{7}"),
    ///     Err(MessageError::HeaderInjection { .. })
    /// ));
    /// assert!(matches!(
    ///     e.with_header("content-type", "text/plain"),
    ///     Err(MessageError::ReservedHeader { .. })
    /// ));
    /// # Ok::<(), MessageError>(())
    /// ```
    pub fn with_header(&self, name: &str, value: &str) -> Result<Email, MessageError> {
        check_header(name, value)?;
        if RESERVED_HEADERS
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(name))
        {
            return Err(MessageError::ReservedHeader {
                name: name.to_string(),
            });
        }
        let (name, value) = (name.to_string(), value.trim().to_string());
        Ok(self.change(|i| i.headers.push((name, value))))
    }

    /// Removes every custom header with this name (case-insensitive).
    pub fn without_header(&self, name: &str) -> Email {
        self.change(|i| i.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name)))
    }

    /// Adds (or replaces) an inline part referenced from the HTML as `cid:<cid>`.
    /// The content type is the explicit one, else guessed from the file name.
    ///
    /// ```
    /// use tls_mailer_message::{Content, Email};
    ///
    /// let png = Content::from_bytes(vec![0x89, b'P', b'N', b'G']).with_content_type("image/png")?;
    /// let e = Email::new()
    ///     .with_html(r#"<img src="cid:logo">"#)
    ///     .with_inline("logo", png)?;
    /// assert_eq!(e.inline_parts()[0].cid(), Some("logo"));
    /// assert!(e.without_inline("logo").inline_parts().is_empty());
    /// # Ok::<(), tls_mailer_message::MessageError>(())
    /// ```
    pub fn with_inline(&self, cid: &str, content: Content) -> Result<Email, MessageError> {
        let cid = validate_cid(cid)?;
        let name = content.file_name().map(str::to_string);
        let content_type = resolve_content_type(&content, name.as_deref());
        let part = Part {
            disposition: Disposition::Inline { cid: cid.clone() },
            name,
            content_type,
            source: content.source(),
        };
        Ok(self.change(|i| {
            i.parts.retain(|p| p.cid() != Some(cid.as_str()));
            // Inline parts first, then attachments: the export order.
            let at = i.parts.iter().filter(|p| p.cid().is_some()).count();
            i.parts.insert(at, part);
        }))
    }

    /// Adds an attachment shown to the reader as `name`. The content type is
    /// the explicit one, else guessed from `name`.
    pub fn with_attachment(&self, name: &str, content: Content) -> Result<Email, MessageError> {
        check_header_value(FILE_NAME, name)?;
        if name.trim().is_empty() {
            return Err(MessageError::HeaderInjection {
                name: FILE_NAME.to_string(),
            });
        }
        let content_type = resolve_content_type(&content, Some(name));
        let part = Part {
            disposition: Disposition::Attachment,
            name: Some(name.to_string()),
            content_type,
            source: content.source(),
        };
        Ok(self.change(|i| i.parts.push(part)))
    }

    /// Removes the inline part with this Content-ID.
    pub fn without_inline(&self, cid: &str) -> Email {
        self.change(|i| i.parts.retain(|p| p.cid() != Some(cid)))
    }

    /// Removes every inline part.
    pub fn without_inlines(&self) -> Email {
        self.change(|i| i.parts.retain(|p| p.cid().is_none()))
    }

    /// Removes the attachments named `name`.
    pub fn without_attachment(&self, name: &str) -> Email {
        self.change(|i| {
            i.parts
                .retain(|p| !(p.disposition == Disposition::Attachment && p.name() == Some(name)))
        })
    }

    /// Removes every attachment.
    pub fn without_attachments(&self) -> Email {
        self.change(|i| i.parts.retain(|p| p.disposition != Disposition::Attachment))
    }

    /// Removes every Bcc recipient.
    pub fn without_bcc(&self) -> Email {
        self.change(|i| i.bcc.clear())
    }

    /// From addresses.
    pub fn from(&self) -> &[Mailbox] {
        &self.inner.from
    }
    /// The Sender header.
    pub fn sender(&self) -> Option<&Mailbox> {
        self.inner.sender.as_ref()
    }
    /// To recipients.
    pub fn to(&self) -> &[Mailbox] {
        &self.inner.to
    }
    /// Cc recipients.
    pub fn cc(&self) -> &[Mailbox] {
        &self.inner.cc
    }
    /// Bcc recipients.
    pub fn bcc(&self) -> &[Mailbox] {
        &self.inner.bcc
    }
    /// Reply-To addresses.
    pub fn reply_to(&self) -> &[Mailbox] {
        &self.inner.reply_to
    }
    /// The subject.
    pub fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }
    /// The Date, in seconds since the Unix epoch, if set.
    pub fn date(&self) -> Option<i64> {
        self.inner.date
    }
    /// The Message-ID without angle brackets, if set.
    pub fn message_id(&self) -> Option<&str> {
        self.inner.message_id.as_deref()
    }
    /// Custom headers in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.inner.headers
    }
    /// The plain-text body (`\n` line ends).
    pub fn text(&self) -> Option<&str> {
        self.inner.text.as_deref()
    }
    /// The HTML body (`\n` line ends).
    pub fn html(&self) -> Option<&str> {
        self.inner.html.as_deref()
    }
    /// Inline parts (first) and attachments, in export order.
    pub fn parts(&self) -> &[Part] {
        &self.inner.parts
    }
    /// Inline parts only.
    pub fn inline_parts(&self) -> Vec<&Part> {
        self.inner
            .parts
            .iter()
            .filter(|p| p.cid().is_some())
            .collect()
    }
    /// Attachments only.
    pub fn attachments(&self) -> Vec<&Part> {
        self.inner
            .parts
            .iter()
            .filter(|p| p.disposition == Disposition::Attachment)
            .collect()
    }

    /// This message with a Date (now) and a Message-ID (generated) where
    /// they are missing: what [`to_bytes`](Email::to_bytes) exports, so that
    /// `Email::parse(&e.finalized().to_bytes()?)? == e.finalized()`.
    pub fn finalized(&self) -> Email {
        if self.inner.date.is_some() && self.inner.message_id.is_some() {
            return self.clone();
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let domain = self
            .envelope_sender()
            .and_then(|s| s.rsplit_once('@').map(|(_, d)| d.to_string()))
            .filter(|d| !d.starts_with('['))
            .unwrap_or_else(|| "localhost".to_string());
        let id = crate::export::generate_message_id(&domain);
        self.change(|i| {
            i.date
                .get_or_insert(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
            i.message_id.get_or_insert(id);
        })
    }

    /// The envelope sender (MAIL FROM): the Sender if present, else the
    /// single From address; `None` when there is no From, or several without
    /// a Sender. The address of [`envelope`](Email::envelope).
    ///
    /// ```
    /// use tls_mailer_message::Email;
    ///
    /// let e = Email::new().with_from("Alice <alice@example.com>".parse()?);
    /// assert_eq!(e.envelope_sender().as_deref(), Some("alice@example.com"));
    /// # Ok::<(), tls_mailer_message::MessageError>(())
    /// ```
    pub fn envelope_sender(&self) -> Option<String> {
        self.sender_mailbox()
            .ok()
            .map(|mailbox| mailbox.addr().to_string())
    }

    /// The envelope recipients (RCPT TO): To + Cc + Bcc, one per mailbox
    /// (the local part compared exactly, the domain without case; see
    /// [`Address::same_mailbox`]), first occurrence kept. The recipients of
    /// [`envelope`](Email::envelope).
    pub fn envelope_recipients(&self) -> Vec<String> {
        self.unique_recipients()
            .into_iter()
            .map(|address| address.as_str().to_string())
            .collect()
    }

    /// The SMTP envelope of this message, as the engine takes it: the
    /// sender by [`envelope_sender`](Email::envelope_sender)'s rule (RFC
    /// 5322 3.6.2) and the recipients of
    /// [`envelope_recipients`](Email::envelope_recipients).
    ///
    /// Errors: [`MessageError::NoFrom`], [`MessageError::MultipleFromWithoutSender`],
    /// [`MessageError::NoRecipients`].
    ///
    /// ```
    /// use tls_mailer_message::{Email, MessageError};
    ///
    /// let e = Email::new()
    ///     .with_from("alice@example.com".parse()?)
    ///     .with_from("ann@example.com".parse()?)
    ///     .with_to("bob@example.com".parse()?)
    ///     .with_bcc("Bob@EXAMPLE.com".parse()?)
    ///     .with_bcc("bob@EXAMPLE.com".parse()?);
    /// assert!(matches!(e.envelope(), Err(MessageError::MultipleFromWithoutSender)));
    /// let envelope = e.with_sender("alice@example.com".parse()?).envelope()?;
    /// assert_eq!(envelope.sender().as_str(), "alice@example.com");
    /// let recipients: Vec<&str> = envelope.recipients().iter().map(|a| a.as_str()).collect();
    /// assert_eq!(recipients, ["bob@example.com", "Bob@EXAMPLE.com"]);
    /// # Ok::<(), MessageError>(())
    /// ```
    pub fn envelope(&self) -> Result<Envelope, MessageError> {
        let sender = self.sender_mailbox()?;
        envelope::envelope(sender.address(), self.unique_recipients())
    }

    fn sender_mailbox(&self) -> Result<&Mailbox, MessageError> {
        envelope::envelope_sender(self.inner.sender.as_ref(), &self.inner.from)
    }

    fn unique_recipients(&self) -> Vec<Address> {
        let i = &self.inner;
        envelope::unique_recipients(
            i.to.iter()
                .chain(&i.cc)
                .chain(&i.bcc)
                .map(|mailbox| mailbox.address().clone()),
        )
    }

    /// The checks to pass before sending: at least one recipient, exactly
    /// one From (or a Sender when there are several), and no line break or
    /// other control character in any header value.
    ///
    /// ```
    /// use tls_mailer_message::{Email, MessageError};
    ///
    /// let e = Email::new().with_from("a@example.com".parse()?);
    /// assert!(matches!(e.validate(), Err(MessageError::NoRecipients)));
    /// assert!(e.with_to("b@example.com".parse()?).validate().is_ok());
    /// # Ok::<(), MessageError>(())
    /// ```
    pub fn validate(&self) -> Result<(), MessageError> {
        self.check_header_values()?;
        if self.inner.from.is_empty() {
            return Err(MessageError::NoFrom);
        }
        self.envelope().map(drop)
    }

    /// Checks that the message is sent as the account's configured sender:
    /// the envelope sender (Sender, else the single From) must equal
    /// `sender` (domain compared case-insensitively).
    ///
    /// ```
    /// use tls_mailer_message::{Email, MessageError};
    ///
    /// let e = Email::new().with_from("alice@Example.com".parse()?);
    /// assert!(e.check_from_matches("alice@example.com").is_ok());
    /// assert!(matches!(
    ///     e.check_from_matches("bob@example.com"),
    ///     Err(MessageError::FromMismatch { .. })
    /// ));
    /// # Ok::<(), MessageError>(())
    /// ```
    pub fn check_from_matches(&self, sender: &str) -> Result<(), MessageError> {
        let configured: Mailbox = sender.parse()?;
        let actual = self.sender_mailbox()?;
        if actual.address().same_mailbox(configured.address()) {
            Ok(())
        } else {
            Err(MessageError::FromMismatch {
                from: actual.addr().to_string(),
                sender: configured.addr().to_string(),
            })
        }
    }

    /// Every header value by the one rule (see `header.rs`): called by
    /// [`validate`](Email::validate) and before every export.
    pub(crate) fn check_header_values(&self) -> Result<(), MessageError> {
        let i = &self.inner;
        if let Some(subject) = &i.subject {
            check_header_value("Subject", subject)?;
        }
        if let Some(id) = &i.message_id {
            check_header_value("Message-ID", id)?;
        }
        for (name, value) in &i.headers {
            check_header(name, value)?;
        }
        let fields: [(&str, &[Mailbox]); 6] = [
            ("From", &i.from),
            ("Sender", i.sender.as_slice()),
            ("To", &i.to),
            ("Cc", &i.cc),
            ("Bcc", &i.bcc),
            ("Reply-To", &i.reply_to),
        ];
        for (field, mailboxes) in fields {
            for mailbox in mailboxes {
                check_header_value(field, mailbox.addr())?;
                if let Some(name) = mailbox.name() {
                    check_header_value(field, name)?;
                }
            }
        }
        for part in &i.parts {
            check_header_value("Content-Type", &part.content_type)?;
            if let Some(cid) = part.cid() {
                check_header_value("Content-ID", cid)?;
            }
            if let Some(name) = &part.name {
                check_header_value(FILE_NAME, name)?;
            }
        }
        Ok(())
    }
}

/// How errors name the file name of a part (Content-Type `name`,
/// Content-Disposition `filename`).
pub(crate) const FILE_NAME: &str = "Content-Disposition filename";

fn resolve_content_type(content: &Content, name: Option<&str>) -> String {
    content
        .content_type()
        .map(str::to_string)
        .or_else(|| name.map(|n| guess_content_type(n).to_string()))
        .or_else(|| {
            content
                .file_name()
                .map(|n| guess_content_type(n).to_string())
        })
        .unwrap_or_else(|| "application/octet-stream".to_string())
}
