//! What the server said it can do, from its EHLO reply (RFC 5321 4.1.1.1).

use crate::reply::Reply;

/// The extensions a server advertised. Built fresh from every EHLO reply, so
/// nothing learnt before STARTTLS survives it (RFC 3207 4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The domain the server named in the first line.
    pub server_name: String,
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `CHUNKING`: BDAT (RFC 3030).
    pub chunking: bool,
    /// `SIZE`: present when advertised; `Some(0)` or a bare `SIZE` means no stated limit.
    pub size: Option<u64>,
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `BINARYMIME` (RFC 3030): a binary body, byte for byte, by BDAT.
    pub binary_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `DSN` (RFC 3461).
    pub dsn: bool,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// The SASL mechanisms after `AUTH` (empty when AUTH is not advertised).
    pub auth_mechanisms: Vec<String>,
    /// Every keyword line as sent, upper-cased keyword first.
    pub raw: Vec<String>,
}

impl Capabilities {
    /// Reads an EHLO reply. Unknown keywords are kept in `raw` only.
    ///
    /// ```
    /// use tls_mailer_proto::{Capabilities, Reply, ReplyCode};
    /// let reply = Reply::new(ReplyCode::new(250).unwrap(),
    ///     vec!["mx.example.org".into(), "SIZE 1000".into(), "AUTH PLAIN LOGIN".into()]);
    /// let capabilities = Capabilities::from_ehlo_reply(&reply);
    /// assert_eq!(capabilities.size, Some(1000));
    /// assert_eq!(capabilities.auth_mechanisms, ["PLAIN", "LOGIN"]);
    /// ```
    pub fn from_ehlo_reply(reply: &Reply) -> Self {
        let mut capabilities = Self {
            server_name: reply
                .lines()
                .first()
                .and_then(|line| line.split_whitespace().next())
                .unwrap_or_default()
                .to_owned(),
            ..Self::default()
        };
        for line in reply.lines().iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => capabilities.pipelining = true,
                "CHUNKING" => capabilities.chunking = true,
                "SIZE" => {
                    capabilities.size =
                        Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                }
                "8BITMIME" => capabilities.eight_bit_mime = true,
                "BINARYMIME" => capabilities.binary_mime = true,
                "SMTPUTF8" => capabilities.smtputf8 = true,
                "STARTTLS" => capabilities.starttls = true,
                "DSN" => capabilities.dsn = true,
                "ENHANCEDSTATUSCODES" => capabilities.enhanced_status_codes = true,
                "REQUIRETLS" => capabilities.requiretls = true,
                // Old servers advertise `AUTH=PLAIN LOGIN` as well; both forms count.
                "AUTH" | "AUTH=" => {
                    push_mechanisms(&mut capabilities.auth_mechanisms, words);
                }
                _ => {
                    if let Some(first) = keyword.strip_prefix("AUTH=") {
                        push_mechanisms(
                            &mut capabilities.auth_mechanisms,
                            std::iter::once(first).chain(words),
                        );
                    }
                }
            }
            capabilities.raw.push(line.clone());
        }
        capabilities
    }

    /// The size limit, when the server stated one (`SIZE 0` means none).
    pub fn size_limit(&self) -> Option<u64> {
        self.size.filter(|&limit| limit > 0)
    }
}

/// Most SASL mechanisms kept from an EHLO reply. Real servers offer a
/// handful; the bound keeps a hostile reply (which in STARTTLS mode anyone
/// on the path can inject before TLS) from costing more than linear work.
pub const MAX_AUTH_MECHANISMS: usize = 32;

/// Adds the valid mechanism names (RFC 4422 3.1: 1 to 20 of `A-Z 0-9 - _`),
/// once each, up to [`MAX_AUTH_MECHANISMS`].
fn push_mechanisms<'a>(into: &mut Vec<String>, words: impl Iterator<Item = &'a str>) {
    for word in words {
        if into.len() >= MAX_AUTH_MECHANISMS {
            return;
        }
        let valid = (1..=20).contains(&word.len())
            && word
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'));
        if !valid {
            continue;
        }
        let mechanism = word.to_ascii_uppercase();
        if !into.contains(&mechanism) {
            into.push(mechanism);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyCode;

    fn ehlo(lines: &[&str]) -> Capabilities {
        let reply = Reply::new(
            ReplyCode::new(250).unwrap(),
            lines.iter().map(|line| line.to_string()).collect(),
        );
        Capabilities::from_ehlo_reply(&reply)
    }

    #[test]
    fn postfix_like_reply() {
        let capabilities = ehlo(&[
            "mail.example.org",
            "PIPELINING",
            "SIZE 31457280",
            "ETRN",
            "STARTTLS",
            "AUTH PLAIN LOGIN",
            "AUTH=PLAIN LOGIN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ]);
        assert_eq!(capabilities.server_name, "mail.example.org");
        assert!(capabilities.pipelining && capabilities.chunking && capabilities.starttls);
        assert!(capabilities.eight_bit_mime && capabilities.smtputf8 && capabilities.dsn);
        assert!(capabilities.enhanced_status_codes && !capabilities.requiretls);
        assert_eq!(capabilities.size_limit(), Some(31_457_280));
        assert_eq!(capabilities.auth_mechanisms, ["PLAIN", "LOGIN"]);
    }

    #[test]
    fn a_hostile_auth_list_is_bounded() {
        // 126 lines of 800 distinct tokens: the list stops at the bound
        // instead of comparing every token with every other one.
        let lines: Vec<String> = (0..126)
            .map(|line| {
                let tokens: Vec<String> = (0..800).map(|n| format!("M{line}X{n}")).collect();
                format!("AUTH {}", tokens.join(" "))
            })
            .collect();
        let mut all = vec!["x"];
        all.extend(lines.iter().map(String::as_str));
        let capabilities = ehlo(&all);
        assert_eq!(capabilities.auth_mechanisms.len(), MAX_AUTH_MECHANISMS);
        assert_eq!(capabilities.auth_mechanisms[0], "M0X0");
        // Names that are not SASL mechanism names are skipped.
        let capabilities = ehlo(&["x", "AUTH PLAIN ThisNameIsFarTooLongToBeOne x\u{e9}y LOGIN"]);
        assert_eq!(capabilities.auth_mechanisms, ["PLAIN", "LOGIN"]);
    }

    #[test]
    fn bare_server_and_odd_forms() {
        let capabilities = ehlo(&["x"]);
        assert_eq!(
            capabilities,
            Capabilities {
                server_name: "x".into(),
                ..Default::default()
            }
        );
        let capabilities = ehlo(&["x", "size", "auth=login", "requiretls"]);
        assert_eq!(capabilities.size, Some(0));
        assert_eq!(capabilities.size_limit(), None);
        assert_eq!(capabilities.auth_mechanisms, ["LOGIN"]);
        assert!(capabilities.requiretls);
    }
}
