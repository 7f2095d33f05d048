//! Envelope addresses and the EHLO name, checked on construction so that CR,
//! LF, NUL and angle brackets can never reach a command line.
//!
//! [`Address`] is the one address rule of tls-mailer: the message crate
//! checks its mailboxes with it too, and [`Address::same_mailbox`] is the one
//! rule for "these two recipients are the same".

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::InvalidInput;

/// A mailbox for `MAIL FROM` / `RCPT TO` (an RFC 5321 path without the `<>`).
///
/// The rule is RFC 5321 4.1.2 with the UTF-8 extensions of RFC 6531:
///
/// - the local part is a Dot-string (atoms of RFC 5322 `atext` or non-ASCII
///   characters, joined by single dots) or a Quoted-string (printable ASCII,
///   space, non-ASCII characters, `\` escaping one printable ASCII
///   character), at most 64 octets, never empty;
/// - the domain is labels of letters, digits and `-` (non-ASCII letters are
///   allowed, as U-labels), none empty, none starting or ending with `-`,
///   each at most 63 octets, at most 255 octets in all; or an address
///   literal, `[192.0.2.1]` or `[IPv6:2001:db8::1]`;
/// - never a control character (CR, LF, NUL, ...), never `<` or `>`, at
///   most 254 octets in all.
///
/// ```
/// use tls_mailer_proto::Address;
/// assert!(Address::new("alice@example.org").is_ok());
/// assert!(Address::new("\"john doe\"@example.org").is_ok());
/// assert!(Address::new("jörg@bücher.example").is_ok());
/// assert!(Address::new("a..b@example.org").is_err());
/// assert!(Address::new("a@-b.example").is_err());
/// assert!(Address::new("alice@example.org>\r\nRCPT TO:<x@y>").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address(String);

/// RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets.
const MAX_PATH_LEN: usize = 254;
/// RFC 5321 4.5.3.1.1.
const MAX_LOCAL_PART_LEN: usize = 64;
/// RFC 5321 4.5.3.1.2.
const MAX_DOMAIN_LEN: usize = 255;
/// RFC 1035 2.3.4.
const MAX_LABEL_LEN: usize = 63;

impl Address {
    /// Checks `address` against the rule above.
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
        let (local, domain) = split(address).map_err(invalid)?;
        check_local_part(local).map_err(invalid)?;
        check_domain(domain).map_err(invalid)?;
        Ok(Self(address.to_owned()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The local part, before the last `@` (quotes kept).
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(local, _)| local)
    }

    /// The domain or address literal, after the last `@`, as given.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// Non-ASCII characters: sending needs SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
    }

    /// Whether both name the same mailbox: the local part compared exactly
    /// (RFC 5321 2.4: only the receiving host may interpret it), the domain
    /// without regard to case. [`Envelope`] keeps one recipient per mailbox
    /// by this rule.
    ///
    /// ```
    /// use tls_mailer_proto::Address;
    /// let a = Address::new("Bob@Example.ORG").unwrap();
    /// assert!(a.same_mailbox(&Address::new("Bob@example.org").unwrap()));
    /// assert!(!a.same_mailbox(&Address::new("bob@example.org").unwrap()));
    /// ```
    pub fn same_mailbox(&self, other: &Address) -> bool {
        self.local_part() == other.local_part()
            && fold_case(self.domain()) == fold_case(other.domain())
    }

    /// A key equal for two addresses exactly when
    /// [`same_mailbox`](Address::same_mailbox) holds: the local part as
    /// given, `@`, the domain in lower case. For sets and maps of mailboxes.
    pub fn mailbox_key(&self) -> String {
        format!("{}@{}", self.local_part(), fold_case(self.domain()))
    }
}

/// The domain in lower case, character by character (so that the key and
/// the comparison agree even where `str::to_lowercase` looks at context).
fn fold_case(domain: &str) -> String {
    domain.chars().flat_map(char::to_lowercase).collect()
}

/// Splits at the `@` that ends the local part: after the closing quote of a
/// Quoted-string, else the last one (a Dot-string has none, and a domain
/// never has one either).
fn split(address: &str) -> Result<(&str, &str), &'static str> {
    let at = if address.starts_with('"') {
        let close = closing_quote(address).ok_or("the quoted local part has no closing quote")?;
        if address.as_bytes().get(close + 1) != Some(&b'@') {
            return Err("the quoted local part must be followed by '@'");
        }
        close + 1
    } else {
        address.rfind('@').ok_or("it has no '@'")?
    };
    let (local, domain) = (&address[..at], &address[at + 1..]);
    if local.is_empty() || domain.is_empty() {
        return Err("the part before or after '@' is empty");
    }
    Ok((local, domain))
}

/// The byte index of the quote closing the Quoted-string that starts at 0.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(index),
            _ => {}
        }
    }
    None
}

/// RFC 5322 `atext`, plus any non-ASCII character but white space (RFC 6531
/// `UTF8-non-ascii`; control characters are refused before this).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_whitespace())
}

fn check_local_part(local: &str) -> Result<(), &'static str> {
    if local.len() > MAX_LOCAL_PART_LEN {
        return Err("the local part is longer than 64 bytes");
    }
    if let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        if inner.is_empty() {
            return Err("the quoted local part is empty");
        }
        // qtextSMTP: printable ASCII but '"' and '\', space, non-ASCII;
        // quoted-pairSMTP: '\' and one printable ASCII character or space.
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(' '..='~') => {}
                    _ => return Err("a '\\' in the quoted local part escapes nothing printable"),
                },
                '"' => return Err("an unescaped '\"' inside the quoted local part"),
                ' '..='~' => {}
                c if !c.is_ascii() => {}
                _ => return Err("the quoted local part has a character that cannot be quoted"),
            }
        }
        return Ok(());
    }
    if local.split('.').any(str::is_empty) {
        return Err("the local part has an empty atom (a leading, trailing or double '.')");
    }
    if !local.chars().all(|c| c == '.' || is_atext(c)) {
        return Err(
            "the local part has characters that need quoting (spaces, quotes, brackets, ...)",
        );
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.starts_with('[') || domain.ends_with(']') {
        return check_address_literal(domain);
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err("the domain is longer than 255 bytes");
    }
    for label in domain.split('.') {
        check_label(label, true)?;
    }
    Ok(())
}

/// `[IPv4]` or `[IPv6:...]` (RFC 5321 4.1.3); no other tag is registered.
fn check_address_literal(domain: &str) -> Result<(), &'static str> {
    let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return Err("an unbalanced address literal in the domain");
    };
    let valid = match literal.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => literal[5..].parse::<Ipv6Addr>().is_ok(),
        _ => literal.parse::<Ipv4Addr>().is_ok(),
    };
    if valid {
        Ok(())
    } else {
        Err("the address literal is neither [IPv4] nor [IPv6:...]")
    }
}

/// One label of a domain: letters, digits and '-' (and non-ASCII letters in
/// an address, RFC 6531 U-labels), 1 to 63 bytes, no '-' at either end.
fn check_label(label: &str, allow_non_ascii: bool) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("the domain has an empty label (a leading, trailing or double '.')");
    }
    if label.len() > MAX_LABEL_LEN {
        return Err("a label of the domain is longer than 63 bytes");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label of the domain starts or ends with '-'");
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || c == '-'
            || (allow_non_ascii && !c.is_ascii() && !c.is_whitespace())
    };
    if !label.chars().all(allowed) {
        return Err("the domain has characters other than letters, digits, '-' and '.'");
    }
    Ok(())
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
/// let envelope = Envelope::new("alice@example.org", ["bob@example.org", "bob@EXAMPLE.org"]).unwrap();
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
    /// Recipients naming the same mailbox ([`Address::same_mailbox`]) are
    /// sent to once, at the place of the first; order kept.
    pub fn new<I, S>(sender: &str, recipients: I) -> Result<Self, InvalidInput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let sender = ReversePath::new(sender)?;
        let checked = recipients
            .into_iter()
            .map(|recipient| {
                Address::new(recipient.as_ref()).map_err(|error| InvalidInput {
                    what: "recipient address",
                    ..error
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_addresses(sender, checked)
    }

    /// An envelope from addresses already checked, with the same rules as
    /// [`new`](Envelope::new): at least one recipient, one per mailbox.
    pub fn from_addresses(
        sender: ReversePath,
        recipients: impl IntoIterator<Item = Address>,
    ) -> Result<Self, InvalidInput> {
        let mut seen = std::collections::HashSet::new();
        let recipients: Vec<Address> = recipients
            .into_iter()
            .filter(|address| seen.insert(address.mailbox_key()))
            .collect();
        if recipients.is_empty() {
            return Err(InvalidInput {
                what: "envelope",
                input: String::new(),
                reason: "it has no recipient; give at least one",
            });
        }
        Ok(Self { sender, recipients })
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
        self.first_needing_smtputf8().is_some()
    }

    /// The first address (the sender, then the recipients in order) that
    /// needs SMTPUTF8, for an error that names it.
    ///
    /// ```
    /// use tls_mailer_proto::Envelope;
    /// let envelope = Envelope::new("a@example.org", ["b@example.org", "jörg@example.org"]).unwrap();
    /// assert_eq!(envelope.first_needing_smtputf8(), Some("jörg@example.org"));
    /// ```
    pub fn first_needing_smtputf8(&self) -> Option<&str> {
        let sender = match &self.sender {
            ReversePath::Address(address) => Some(address),
            ReversePath::Null => None,
        };
        sender
            .into_iter()
            .chain(&self.recipients)
            .find(|address| address.needs_smtputf8())
            .map(Address::as_str)
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
        if !name
            .trim_end_matches('.')
            .split('.')
            .all(|label| check_label(label, false).is_ok())
        {
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

    fn reason(address: &str) -> &'static str {
        match Address::new(address) {
            Ok(_) => panic!("{address:?} was accepted"),
            Err(error) => error.reason,
        }
    }

    #[test]
    fn addresses() {
        for good in [
            "a@b",
            "Jörg@example.org",
            "\"john doe\"@example.org",
            "a@[192.0.2.1]",
            "first.last+tag@example.com",
            "!#$%&'*+-/=?^_`{|}~@example.org",
            "用户@例子.广告",
            "a@xn--bcher-kva.example",
            "a@a-b.c-d.example",
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
    fn local_part_is_a_dot_string_of_atoms() {
        assert_eq!(
            reason("a..b@c.d"),
            "the local part has an empty atom (a leading, trailing or double '.')"
        );
        assert!(reason(".a@c.d").contains("empty atom"));
        assert!(reason("a.@c.d").contains("empty atom"));
        assert!(reason("a,b@c.d").contains("need quoting"));
        assert!(reason("a\"b@c.d").contains("need quoting"));
        assert!(reason("a(b)@c.d").contains("need quoting"));
        assert!(reason("a@b@c.d").contains("need quoting"));
        assert!(
            reason("a\u{3000}b@c.d").contains("need quoting"),
            "non-ASCII space"
        );
    }

    #[test]
    fn local_part_may_be_a_quoted_string() {
        for good in [
            "\"a..b\"@c.d",
            "\"a@b\"@c.d",
            "\"with \\\"escaped\\\" quotes\"@c.d",
            "\"back\\\\slash\"@c.d",
            "\"ünï cödé\"@c.d",
        ] {
            let address = Address::new(good).unwrap();
            assert_eq!(address.domain(), "c.d", "{good}");
        }
        assert_eq!(Address::new("\"a@b\"@c.d").unwrap().local_part(), "\"a@b\"");
        assert!(reason("\"a\"b@c.d").contains("followed by '@'"));
        assert!(reason("\"a@c.d").contains("no closing quote"));
        assert!(reason("\"a\\\"@c.d").contains("no closing quote"));
        assert!(reason("\"\"@c.d").contains("empty"));
        assert!(reason("\"a\"\"b\"@c.d").contains("followed by '@'"));
    }

    #[test]
    fn local_part_is_at_most_64_bytes() {
        assert!(Address::new(&format!("{}@c.d", "a".repeat(64))).is_ok());
        assert_eq!(
            reason(&format!("{}@c.d", "a".repeat(65))),
            "the local part is longer than 64 bytes"
        );
        // Counted in bytes: 33 two-byte characters are 66 bytes.
        assert!(reason(&format!("{}@c.d", "é".repeat(33))).contains("64 bytes"));
    }

    #[test]
    fn domain_is_ldh_labels() {
        assert_eq!(
            reason("a@-b.c"),
            "a label of the domain starts or ends with '-'"
        );
        assert!(reason("a@b-.c").contains("starts or ends with '-'"));
        assert!(reason("a@b.-c").contains("starts or ends with '-'"));
        assert!(reason("a@b..c").contains("empty label"));
        assert!(reason("a@.b.c").contains("empty label"));
        assert!(reason("a@b.c.").contains("empty label"), "no trailing dot");
        assert!(reason("a@b_c.d").contains("other than letters"));
        assert!(reason("a@b\u{3000}c.d").contains("other than letters"));
        let label = "x".repeat(63);
        assert!(Address::new(&format!("a@{label}.example")).is_ok());
        assert!(reason(&format!("a@{label}x.example")).contains("longer than 63"));
    }

    #[test]
    fn domain_is_at_most_255_bytes() {
        let label = "x".repeat(63);
        // Four labels of 63 bytes and three dots make 255 bytes: a valid
        // domain, though with any local part the path exceeds 254 bytes.
        assert_eq!(check_domain(&[label.as_str(); 4].join(".")), Ok(()));
        let long = format!("{}.a", [label.as_str(); 4].join("."));
        assert_eq!(
            check_domain(&long),
            Err("the domain is longer than 255 bytes")
        );
        assert_eq!(
            reason(&format!("a@{}", [label.as_str(); 4].join("."))),
            "it is longer than 254 bytes"
        );
    }

    #[test]
    fn address_literals() {
        for good in [
            "a@[192.0.2.1]",
            "a@[IPv6:2001:db8::1]",
            "a@[ipv6:::1]",
            "a@[IPv6:::ffff:192.0.2.1]",
        ] {
            assert!(Address::new(good).is_ok(), "{good}");
        }
        for bad in [
            "a@[300.1.1.1]",
            "a@[1.2.3]",
            "a@[2001:db8::1]",
            "a@[IPv6:1.2.3.4]",
            "a@[IPv6:zz::1]",
            "a@[x-tag:stuff]",
            "a@[]",
            "a@1.2.3.4]",
        ] {
            assert!(Address::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_control_characters_anywhere() {
        for control in ['\r', '\n', '\0', '\t', '\u{1b}', '\u{7f}', '\u{85}'] {
            for address in [
                format!("a{control}b@c.d"),
                format!("\"a{control}b\"@c.d"),
                format!("ab@c{control}.d"),
            ] {
                assert!(
                    reason(&address).contains("control character"),
                    "{address:?}"
                );
            }
        }
    }

    #[test]
    fn same_mailbox_compares_the_domain_without_case() {
        let address = |text| Address::new(text).unwrap();
        assert!(address("bob@Example.COM").same_mailbox(&address("bob@example.com")));
        assert!(address("bob@BÜCHER.example").same_mailbox(&address("bob@bücher.example")));
        assert!(!address("Bob@example.com").same_mailbox(&address("bob@example.com")));
        assert!(!address("bob@example.com").same_mailbox(&address("bob@example.org")));
        assert_eq!(
            address("Bob@Example.COM").mailbox_key(),
            address("Bob@example.com").mailbox_key()
        );
        assert_ne!(
            address("Bob@example.com").mailbox_key(),
            address("bob@example.com").mailbox_key()
        );
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
        assert_eq!(
            Envelope::new("a..b@c.d", ["c@d"]).unwrap_err().what,
            "sender address"
        );
        assert_eq!(
            Envelope::new("a@b", ["c@-d.e"]).unwrap_err().what,
            "recipient address"
        );
        assert_eq!(
            Envelope::new("a@b", Vec::<String>::new()).unwrap_err().what,
            "envelope"
        );
    }

    #[test]
    fn envelope_keeps_the_first_of_each_mailbox() {
        let envelope = Envelope::new(
            "a@b",
            [
                "bob@Example.COM",
                "carol@example.com",
                "bob@example.com",
                "Bob@example.com",
                "carol@EXAMPLE.com",
            ],
        )
        .unwrap();
        let recipients: Vec<&str> = envelope.recipients().iter().map(Address::as_str).collect();
        assert_eq!(
            recipients,
            ["bob@Example.COM", "carol@example.com", "Bob@example.com"]
        );
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
