//! Envelope addresses and the EHLO name, checked on construction so that CR,
//! LF, NUL and angle brackets can never reach a command line.

use std::fmt;
use std::net::IpAddr;

use crate::error::InvalidInput;

/// A mailbox for `MAIL FROM` / `RCPT TO` (an RFC 5321 path without the `<>`).
///
/// ```
/// use tls_mailer_proto::Address;
/// assert!(Address::new("alice@example.org").is_ok());
/// assert!(Address::new("alice@example.org>\r\nRCPT TO:<x@y>").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address(String);

const MAX_PATH_LEN: usize = 254;

impl Address {
    /// Checks `address`: `local@domain`, no control characters, no `<>`,
    /// spaces only inside a quoted local part, at most 254 bytes.
    pub fn new(address: &str) -> Result<Self, InvalidInput> {
        let invalid = |reason| InvalidInput {
            what: "address",
            input: address.escape_debug().to_string(),
            reason,
        };
        if address.is_empty() {
            return Err(invalid("it is empty"));
        }
        if address.len() > MAX_PATH_LEN {
            return Err(invalid("it is longer than 254 bytes"));
        }
        if address.chars().any(char::is_control) {
            return Err(invalid(
                "it contains a control character such as CR, LF or NUL",
            ));
        }
        if address.contains(['<', '>']) {
            return Err(invalid("give the bare address, without angle brackets"));
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(invalid("it has no '@'"));
        };
        if local.is_empty() || domain.is_empty() {
            return Err(invalid("the part before or after '@' is empty"));
        }
        let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
        if !quoted && local.contains([' ', '\t', '"']) {
            return Err(invalid("unquoted spaces or quotes in the local part"));
        }
        if domain.contains(char::is_whitespace) || domain.contains(['@', '"']) {
            return Err(invalid("the domain contains spaces or quotes"));
        }
        if domain.starts_with('[') != domain.ends_with(']') {
            return Err(invalid("an unbalanced address literal in the domain"));
        }
        Ok(Self(address.to_owned()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Non-ASCII characters: sending needs SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sender (`MAIL FROM`): an address, or the null path `<>` used for
/// bounces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `MAIL FROM:<>`.
    Null,
    /// `MAIL FROM:<address>`.
    Address(Address),
}

impl ReversePath {
    /// An empty string gives the null path; anything else must be an [`Address`].
    pub fn new(sender: &str) -> Result<Self, InvalidInput> {
        if sender.is_empty() {
            Ok(Self::Null)
        } else {
            Address::new(sender)
                .map(Self::Address)
                .map_err(|error| InvalidInput {
                    what: "sender address",
                    ..error
                })
        }
    }

    /// The address text (`""` for the null path).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Null => "",
            Self::Address(address) => address.as_str(),
        }
    }
}

/// Who a message goes to: the `MAIL FROM` path and the `RCPT TO` paths.
///
/// ```
/// use tls_mailer_proto::Envelope;
/// let envelope = Envelope::new("alice@example.org", ["bob@example.org"]).unwrap();
/// assert_eq!(envelope.recipients().len(), 1);
/// assert!(Envelope::new("alice@example.org", Vec::<&str>::new()).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    sender: ReversePath,
    recipients: Vec<Address>,
}

impl Envelope {
    /// Checks the sender and every recipient; at least one recipient.
    /// Recipients are de-duplicated (exact match), order kept.
    pub fn new<I, S>(sender: &str, recipients: I) -> Result<Self, InvalidInput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let sender = ReversePath::new(sender)?;
        let mut checked: Vec<Address> = Vec::new();
        for recipient in recipients {
            let address = Address::new(recipient.as_ref()).map_err(|error| InvalidInput {
                what: "recipient address",
                ..error
            })?;
            if !checked.contains(&address) {
                checked.push(address);
            }
        }
        if checked.is_empty() {
            return Err(InvalidInput {
                what: "envelope",
                input: String::new(),
                reason: "it has no recipient; give at least one",
            });
        }
        Ok(Self {
            sender,
            recipients: checked,
        })
    }

    /// The sender.
    pub fn sender(&self) -> &ReversePath {
        &self.sender
    }

    /// The recipients, in order.
    pub fn recipients(&self) -> &[Address] {
        &self.recipients
    }

    /// Some address needs SMTPUTF8.
    pub fn needs_smtputf8(&self) -> bool {
        matches!(&self.sender, ReversePath::Address(a) if a.needs_smtputf8())
            || self.recipients.iter().any(Address::needs_smtputf8)
    }
}

/// The name the client gives in EHLO: a host name, or an address literal
/// such as `[192.0.2.1]` (RFC 5321 4.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    /// Checks a host name (letters, digits, `-`, `.`; labels of 1-63 bytes)
    /// or an address literal.
    pub fn new(name: &str) -> Result<Self, InvalidInput> {
        let invalid = |reason| InvalidInput {
            what: "EHLO name",
            input: name.escape_debug().to_string(),
            reason,
        };
        if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
            return match ip.parse::<IpAddr>() {
                Ok(_) => Ok(Self(name.to_owned())),
                Err(_) => Err(invalid("not a valid address literal")),
            };
        }
        if name.is_empty() || name.len() > 253 {
            return Err(invalid("a host name must be 1 to 253 bytes long"));
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !name.trim_end_matches('.').split('.').all(label_ok) {
            return Err(invalid(
                "only letters, digits, '-' and '.' are allowed (no spaces, CR, LF or NUL)",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The address literal for an IP address: `[192.0.2.1]` or `[IPv6:::1]`.
    pub fn literal(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(format!("[{v4}]")),
            IpAddr::V6(v6) => Self(format!("[IPv6:{v6}]")),
        }
    }

    /// A fully qualified host name (contains a dot, not only digits): what
    /// servers accept in EHLO without complaint.
    pub fn is_fqdn(&self) -> bool {
        !self.0.starts_with('[')
            && self.0.trim_end_matches('.').contains('.')
            && self.0.parse::<IpAddr>().is_err()
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in [
            "a@b",
            "Jörg@example.org",
            "\"john doe\"@example.org",
            "a@[192.0.2.1]",
        ] {
            assert!(Address::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "nobody",
            "@example.org",
            "a@",
            "a b@example.org",
            "a@exa mple.org",
            "<a@b>",
            "a@b\r\nRCPT TO:<c@d>",
            "a@b\n",
            "a\0@b",
            "a@[1.2.3.4",
        ] {
            assert!(Address::new(bad).is_err(), "{bad:?}");
        }
        assert!(Address::new(&format!("{}@b", "a".repeat(300))).is_err());
    }

    #[test]
    fn envelope_rules() {
        let envelope = Envelope::new("", ["a@b", "a@b", "c@d"]).unwrap();
        assert_eq!(envelope.sender(), &ReversePath::Null);
        assert_eq!(envelope.recipients().len(), 2);
        assert!(!envelope.needs_smtputf8());
        assert!(Envelope::new("jörg@b", ["c@d"]).unwrap().needs_smtputf8());
        let error = Envelope::new("a@b", ["c@d\r\n"]).unwrap_err();
        assert_eq!(error.what, "recipient address");
    }

    #[test]
    fn ehlo_names() {
        assert!(Domain::new("mail.example.org").unwrap().is_fqdn());
        assert!(!Domain::new("laptop").unwrap().is_fqdn());
        assert!(Domain::new("[127.0.0.1]").is_ok());
        assert!(Domain::new("[IPv6:::1]").is_ok());
        assert_eq!(
            Domain::literal("::1".parse().unwrap()).as_str(),
            "[IPv6:::1]"
        );
        for bad in [
            "",
            "a b",
            "host\r\nMAIL FROM:<x>",
            "-x.org",
            "[300.1.1.1]",
            "ö.org",
        ] {
            assert!(Domain::new(bad).is_err(), "{bad:?}");
        }
    }
}
