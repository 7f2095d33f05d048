//! Mailboxes: an addr-spec with an optional display name.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use tls_mailer_proto::Address;

use crate::error::MessageError;
use crate::header::is_header_text;

/// One mailbox: `user@example.com`, optionally with a display name.
///
/// The addr-spec follows the one address rule of tls-mailer,
/// [`tls_mailer_proto::Address`] (RFC 5321 4.1.2 with UTF-8 per RFC 6531):
/// local parts may be UTF-8 and domains internationalised (kept exactly as
/// typed: no punycode conversion). Display names may hold any text a header
/// value may hold (no line breaks or other control characters); they are
/// quoted or RFC 2047-encoded on export as needed.
///
/// ```
/// use tls_mailer_message::Mailbox;
///
/// let m: Mailbox = "Zoë Durand <zoe@exämple.fr>".parse()?;
/// assert_eq!(m.name(), Some("Zoë Durand"));
/// assert_eq!(m.addr(), "zoe@exämple.fr");
/// assert_eq!(m.domain(), "exämple.fr");
///
/// assert!("no-at-sign".parse::<Mailbox>().is_err());
/// assert!("a..b@example.com".parse::<Mailbox>().is_err());
/// assert!("Eve <eve@example.com>\r\nBcc: x@y".parse::<Mailbox>().is_err());
/// # Ok::<(), tls_mailer_message::MessageError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Mailbox {
    name: Option<String>,
    #[serde(serialize_with = "serialize_address")]
    addr: Address,
}

fn serialize_address<S: serde::Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(address.as_str())
}

impl Mailbox {
    /// A mailbox without display name; `addr` must be a bare addr-spec
    /// accepted by [`tls_mailer_proto::Address::new`].
    pub fn new(addr: &str) -> Result<Self, MessageError> {
        let addr = Address::new(addr).map_err(|error| MessageError::InvalidAddress {
            input: addr.to_string(),
            reason: error.reason,
        })?;
        Ok(Mailbox { name: None, addr })
    }

    /// A mailbox with a display name (an empty name counts as none).
    pub fn with_name(name: &str, addr: &str) -> Result<Self, MessageError> {
        let mut mailbox = Mailbox::new(addr)?;
        if !is_header_text(name) {
            return Err(MessageError::InvalidAddress {
                input: name.to_string(),
                reason: "the display name contains a line break or another control character",
            });
        }
        let name = name.trim();
        if !name.is_empty() {
            mailbox.name = Some(name.to_string());
        }
        Ok(mailbox)
    }

    /// The display name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The bare addr-spec (`local@domain`), as used in the SMTP envelope.
    pub fn addr(&self) -> &str {
        self.addr.as_str()
    }

    /// The addr-spec as the SMTP engine takes it.
    pub fn address(&self) -> &Address {
        &self.addr
    }

    /// The local part (before the last `@`).
    pub fn local_part(&self) -> &str {
        self.addr.local_part()
    }

    /// The domain (after the last `@`), as typed.
    pub fn domain(&self) -> &str {
        self.addr.domain()
    }
}

impl FromStr for Mailbox {
    type Err = MessageError;

    /// Accepts `user@example.com`, `<user@example.com>`,
    /// `Name <user@example.com>` and `"Name, Jr." <user@example.com>`.
    fn from_str(input: &str) -> Result<Self, MessageError> {
        let trimmed = input.trim();
        if let Some(without_close) = trimmed.strip_suffix('>') {
            let Some((name, addr)) = without_close.rsplit_once('<') else {
                return Err(MessageError::InvalidAddress {
                    input: input.to_string(),
                    reason: "a `>` without matching `<`",
                });
            };
            let name = name.trim();
            let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
                Some(quoted) => unquote(quoted),
                None => name.to_string(),
            };
            Mailbox::with_name(&name, addr.trim()).map_err(|e| with_input(e, input))
        } else {
            Mailbox::new(trimmed).map_err(|e| with_input(e, input))
        }
    }
}

impl TryFrom<&str> for Mailbox {
    type Error = MessageError;
    fn try_from(input: &str) -> Result<Self, MessageError> {
        input.parse()
    }
}

impl fmt::Display for Mailbox {
    /// Human-readable form: `Name <addr>` (name quoted when it holds
    /// specials), or the bare address. Not an RFC 2047-encoded wire form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) if name.chars().any(|c| "()<>[]:;@\\,.\"".contains(c)) => {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "\"{escaped}\" <{}>", self.addr)
            }
            Some(name) => write!(f, "{name} <{}>", self.addr),
            None => f.write_str(self.addr.as_str()),
        }
    }
}

fn with_input(error: MessageError, input: &str) -> MessageError {
    match error {
        MessageError::InvalidAddress { reason, .. } => MessageError::InvalidAddress {
            input: input.to_string(),
            reason,
        },
        other => other,
    }
}

fn unquote(quoted: &str) -> String {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_and_international_forms() {
        for ok in [
            "a@b.c",
            "first.last+tag@example.com",
            "用户@例子.广告",
            "\"john doe\"@example.com",
            "x@[192.0.2.1]",
        ] {
            assert!(Mailbox::new(ok).is_ok(), "{ok}");
        }
        let m: Mailbox = "\"Doe, John\" <john@example.com>".parse().unwrap();
        assert_eq!(m.name(), Some("Doe, John"));
        assert_eq!(m.to_string(), "\"Doe, John\" <john@example.com>");
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "a",
            "@b.c",
            "a@",
            "a..b@c.d",
            "a b@c.d",
            "a@b..c",
            "a@-b.c",
            "a@b.c\r\nBcc: x@y.z",
            "a\0@b.c",
        ] {
            assert!(Mailbox::new(bad).is_err(), "{bad:?}");
        }
        assert!(Mailbox::with_name("Eve\r\n", "e@x.y").is_err());
    }
}
