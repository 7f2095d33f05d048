//! What an entry records, and its on-disk header.
//!
//! An entry is one file, `<id>.entry`: a text header, a blank line, and the
//! message bytes exactly as they will be sent.
//!
//! ```text
//! tls-mailer-outbox 1
//! created: 1764324902
//! attempts: 2
//! next-attempt: 1764325142
//! last-error: cannot connect to smtp.example.org:465: Connection refused
//! host: smtp.example.org
//! port: 465
//! security: implicit-tls
//! starttls-port: 587
//! user: alice@example.org
//! sender: alice@example.org
//! recipient: bob@example.org
//! recipient: carol@example.org
//! size: 00000000000000001234
//!
//! <1234 bytes of message>
//! ```
//!
//! The size has a fixed width (20 digits) so that it can be filled in once
//! the message has been streamed to disk. Times are seconds since the Unix epoch (UTC). Values never hold a
//! control character (addresses cannot; the user name is checked; the
//! error text is cleaned), so every field is one line. No password or other
//! secret is ever written.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tls_mailer_proto::{Envelope, Security};

use super::error::OutboxError;

/// The first line of every entry; the number is the format's version.
pub(crate) const MAGIC: &str = "tls-mailer-outbox";
/// The format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// A header longer than this is damaged (about a thousand recipients fit).
pub(crate) const MAX_HEADER: usize = 256 * 1024;
/// The longest error text recorded.
const MAX_ERROR: usize = 1000;

/// How to send an entry again: the server and the account, never the
/// password (that is given again when the queue is flushed).
///
/// ```
/// use tls_mailer::Security;
/// use tls_mailer::outbox::Route;
///
/// let route = Route::new("smtp.example.org", 587, Security::StartTls).with_user("alice@example.org");
/// assert_eq!(route.to_string(), "alice@example.org@smtp.example.org:587 (starttls)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Route {
    /// The SMTP server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// The STARTTLS port tried by [`Security::ImplicitTlsOrStartTls`].
    pub starttls_port: u16,
    /// The user name for AUTH, if any.
    pub user: Option<String>,
}

/// The names of the security modes in entries.
const SECURITY_NAMES: [(&str, Security); 4] = [
    ("implicit-tls", Security::ImplicitTls),
    ("starttls", Security::StartTls),
    ("implicit-tls-or-starttls", Security::ImplicitTlsOrStartTls),
    ("dangerous-plaintext", Security::DangerousPlaintext),
];

/// The name written in entries: `implicit-tls`, `starttls`,
/// `implicit-tls-or-starttls` or `dangerous-plaintext`.
pub(crate) fn security_name(security: Security) -> &'static str {
    SECURITY_NAMES
        .iter()
        .find(|(_, known)| *known == security)
        .map_or("implicit-tls", |(name, _)| name)
}

fn parse_security(name: &str) -> Option<Security> {
    SECURITY_NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, security)| *security)
}

impl Route {
    /// A route to `host:port` with `security`, no user name, STARTTLS
    /// fallback port 587.
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> Self {
        Self {
            host: host.into(),
            port,
            security,
            starttls_port: 587,
            user: None,
        }
    }

    /// The same route, authenticating as `user`.
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The same route, with this STARTTLS fallback port.
    #[must_use]
    pub fn with_starttls_port(mut self, port: u16) -> Self {
        self.starttls_port = port;
        self
    }

    /// The route a [`Client`](crate::Client) sends by: its host, port,
    /// security mode, STARTTLS port and user name (never its password).
    pub fn of_client(client: &crate::Client) -> Self {
        let settings = client.settings();
        Self {
            host: settings.host.clone(),
            port: settings.port,
            security: settings.security,
            starttls_port: settings.starttls_port,
            user: settings
                .credentials
                .as_ref()
                .map(|credentials| credentials.username().to_owned()),
        }
    }

    pub(crate) fn check(&self) -> Result<(), OutboxError> {
        let invalid = |field, reason| Err(OutboxError::InvalidRoute { field, reason });
        if self.host.is_empty() {
            return invalid("host", "is empty");
        }
        if self
            .host
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return invalid("host", "contains a space or a control character");
        }
        if self.port == 0 || self.starttls_port == 0 {
            return invalid("port", "must be from 1 to 65535");
        }
        if let Some(user) = &self.user
            && user.chars().any(char::is_control)
        {
            return invalid("user", "contains a control character (CR, LF, NUL...)");
        }
        Ok(())
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{host}:{} ({})", self.port, security_name(self.security))?;
        Ok(())
    }
}

/// An entry's id: its creation time (UTC, to the second) and 48 random
/// bits, e.g. `20261128T101502-3f9a1c2b7d4e`. Ids sort by creation time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(String);

impl EntryId {
    pub(crate) fn generate(created: SystemTime) -> Self {
        let seconds = unix_seconds(created);
        let random = super::backoff::random_u64() & 0xFFFF_FFFF_FFFF;
        Self(format!("{}-{random:012x}", utc_stamp(seconds)))
    }

    /// Checks an id typed by a user: letters, digits and `-` only (so it
    /// can never name a path outside the spool).
    pub fn parse(id: &str) -> Result<Self, OutboxError> {
        if id.is_empty()
            || id.len() > 100
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(OutboxError::InvalidId { id: id.to_owned() });
        }
        Ok(Self(id.to_owned()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file name of the entry.
    pub(crate) fn file_name(&self) -> String {
        format!("{}.entry", self.0)
    }

    /// The id of a file name, when it names an entry.
    pub(crate) fn of_file_name(name: &str) -> Option<Self> {
        Self::parse(name.strip_suffix(".entry")?).ok()
    }

    /// The id of the copy set aside for the recipients refused for good
    /// after the `attempt`-th attempt.
    pub(crate) fn split(&self, attempt: u32) -> Self {
        Self(format!("{}-{attempt}", self.0))
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything an entry records but the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) created: u64,
    pub(crate) attempts: u32,
    pub(crate) next_attempt: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) route: Route,
    /// `""` for the null sender `<>`.
    pub(crate) sender: String,
    pub(crate) recipients: Vec<String>,
    pub(crate) size: u64,
}

impl Header {
    pub(crate) fn new(envelope: &Envelope, route: Route, created: SystemTime) -> Self {
        let created = unix_seconds(created);
        Self {
            created,
            attempts: 0,
            next_attempt: created,
            last_error: None,
            route,
            sender: envelope.sender().as_str().to_owned(),
            recipients: envelope
                .recipients()
                .iter()
                .map(|address| address.as_str().to_owned())
                .collect(),
            size: 0,
        }
    }

    /// The envelope to send with; addresses are checked again.
    pub(crate) fn envelope(&self) -> Result<Envelope, String> {
        Envelope::new(&self.sender, &self.recipients).map_err(|error| error.to_string())
    }

    pub(crate) fn set_error(&mut self, error: &str) {
        let mut clean: String = error
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if clean.len() > MAX_ERROR {
            let mut end = MAX_ERROR;
            while !clean.is_char_boundary(end) {
                end -= 1;
            }
            clean.truncate(end);
            clean.push_str("...");
        }
        self.last_error = Some(clean);
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut field = |name: &str, value: &dyn fmt::Display| {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&value.to_string());
            out.push('\n');
        };
        field("created", &self.created);
        field("attempts", &self.attempts);
        field("next-attempt", &self.next_attempt);
        if let Some(error) = &self.last_error {
            field("last-error", error);
        }
        field("host", &self.route.host);
        field("port", &self.route.port);
        field("security", &security_name(self.route.security));
        field("starttls-port", &self.route.starttls_port);
        if let Some(user) = &self.route.user {
            field("user", user);
        }
        field("sender", &self.sender);
        for recipient in &self.recipients {
            field("recipient", recipient);
        }
        // Fixed width, so that it can be filled in once the message has
        // been streamed to disk after it.
        field("size", &format_args!("{:020}", self.size));
        format!("{MAGIC} {VERSION}\n{out}\n").into_bytes()
    }

    /// Parses a header section (without its blank line). `Ok(None)`: a
    /// newer format this code does not know, to be left alone.
    pub(crate) fn parse(text: &[u8]) -> Result<Option<Self>, String> {
        let text = std::str::from_utf8(text).map_err(|_| "the header is not UTF-8".to_owned())?;
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or_default();
        let version = first
            .strip_prefix(MAGIC)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|version| version.parse::<u32>().ok())
            .ok_or_else(|| format!("the first line is not \"{MAGIC} {VERSION}\""))?;
        if version > VERSION {
            return Ok(None);
        }
        let mut created = None;
        let mut attempts = None;
        let mut next_attempt = None;
        let mut last_error = None;
        let mut host = None;
        let mut port = None;
        let mut security = None;
        let mut starttls_port = None;
        let mut user = None;
        let mut sender = None;
        let mut recipients = Vec::new();
        let mut size = None;
        for line in lines {
            let (name, value) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|name| (name, "")))
                .ok_or_else(|| format!("bad header line {:?}", line.escape_debug().to_string()))?;
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{what}: {value:?} is not a number"))
            };
            match name {
                "created" => created = Some(number(name)?),
                "attempts" => attempts = Some(number(name)?),
                "next-attempt" => next_attempt = Some(number(name)?),
                "last-error" => last_error = Some(value.to_owned()),
                "host" => host = Some(value.to_owned()),
                "port" => port = Some(number(name)?),
                "security" => {
                    security = Some(
                        parse_security(value)
                            .ok_or_else(|| format!("unknown security mode {value:?}"))?,
                    );
                }
                "starttls-port" => starttls_port = Some(number(name)?),
                "user" => user = Some(value.to_owned()),
                "sender" => sender = Some(value.to_owned()),
                "recipient" => recipients.push(value.to_owned()),
                "size" => size = Some(number(name)?),
                other => return Err(format!("unknown header field {other:?}")),
            }
        }
        let missing = |name: &str| format!("the header has no {name} field");
        let port16 = |value: u64, name: &str| {
            u16::try_from(value)
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("{name} {value} is not a port"))
        };
        let header = Self {
            created: created.ok_or_else(|| missing("created"))?,
            attempts: u32::try_from(attempts.ok_or_else(|| missing("attempts"))?)
                .map_err(|_| "attempts is too large".to_owned())?,
            next_attempt: next_attempt.ok_or_else(|| missing("next-attempt"))?,
            last_error,
            route: Route {
                host: host.ok_or_else(|| missing("host"))?,
                port: port16(port.ok_or_else(|| missing("port"))?, "port")?,
                security: security.ok_or_else(|| missing("security"))?,
                starttls_port: port16(
                    starttls_port.ok_or_else(|| missing("starttls-port"))?,
                    "starttls-port",
                )?,
                user,
            },
            sender: sender.ok_or_else(|| missing("sender"))?,
            recipients,
            size: size.ok_or_else(|| missing("size"))?,
        };
        if header.recipients.is_empty() {
            return Err("the header has no recipient".into());
        }
        header.route.check().map_err(|error| error.to_string())?;
        header.envelope()?;
        Ok(Some(header))
    }
}

/// Seconds since the epoch (0 for times before it).
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

pub(crate) fn from_unix_seconds(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// `YYYYMMDDTHHMMSS` in UTC (the civil-from-days algorithm of Howard
/// Hinnant's `chrono`-compatible date library).
fn utc_stamp(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        let envelope = Envelope::new(
            "alice@example.org",
            ["bob@example.org", "carol@example.org"],
        )
        .unwrap();
        let mut header = Header::new(
            &envelope,
            Route::new("smtp.example.org", 465, Security::ImplicitTls).with_user("alice"),
            from_unix_seconds(1_764_324_902),
        );
        header.size = 1234;
        header
    }

    #[test]
    fn the_header_round_trips_and_reads_as_documented() {
        let mut header = header();
        header.attempts = 2;
        header.set_error("cannot connect:\r\nrefused");
        let encoded = header.encode();
        let text = String::from_utf8(encoded.clone()).unwrap();
        assert!(text.starts_with("tls-mailer-outbox 1\ncreated: 1764324902\nattempts: 2\n"));
        assert!(
            text.contains("\nlast-error: cannot connect:  refused\n"),
            "{text}"
        );
        assert!(text.contains("\nrecipient: bob@example.org\nrecipient: carol@example.org\n"));
        assert!(text.ends_with("size: 00000000000000001234\n\n"));
        let parsed = Header::parse(&encoded[..encoded.len() - 2])
            .unwrap()
            .unwrap();
        assert_eq!(parsed, header);
    }

    #[test]
    fn damaged_headers_are_refused_with_a_reason() {
        let good = header().encode();
        let good = std::str::from_utf8(&good[..good.len() - 2])
            .unwrap()
            .to_owned();
        let cases = [
            ("", "first line"),
            ("garbage\n", "first line"),
            (
                &good.replace("size: 00000000000000001234", "size: many"),
                "not a number",
            ),
            (&good.replace("\nsize: 00000000000000001234", ""), "no size"),
            (&good.replace("port: 465", "port: 0"), "not a port"),
            (
                &good.replace("security: implicit-tls", "security: none"),
                "unknown security",
            ),
            (
                &good.replace("recipient: bob@example.org", "recipient: bob"),
                "recipient",
            ),
            (
                &good.replace("host: ", "hostname: "),
                "unknown header field",
            ),
            (&good.replace("created: ", "created "), "bad header line"),
        ];
        for (text, expected) in cases {
            let error = Header::parse(text.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let newer = good.replace("tls-mailer-outbox 1", "tls-mailer-outbox 2");
        assert_eq!(Header::parse(newer.as_bytes()), Ok(None), "left alone");
    }

    #[test]
    fn ids_sort_by_time_and_refuse_paths() {
        let id = EntryId::generate(from_unix_seconds(1_764_324_902));
        assert!(id.as_str().starts_with("20251128T101502-"), "{id}");
        assert_eq!(id.as_str().len(), "20251128T101502-".len() + 12);
        assert_eq!(EntryId::parse(id.as_str()).unwrap(), id);
        assert_eq!(EntryId::of_file_name(&id.file_name()), Some(id.clone()));
        assert_eq!(utc_stamp(0), "19700101T000000");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000");
        for bad in ["", "../x", "a/b", "a.entry", "a b", "ä"] {
            assert!(EntryId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(EntryId::of_file_name("x.tmp"), None);
    }

    #[test]
    fn routes_with_control_characters_are_refused() {
        let route = Route::new("smtp.example.org", 465, Security::ImplicitTls);
        assert!(route.check().is_ok());
        assert!(route.clone().with_user("a\nb").check().is_err());
        assert!(Route::new("", 465, Security::StartTls).check().is_err());
        assert!(Route::new("a b", 465, Security::StartTls).check().is_err());
        for security in [
            Security::ImplicitTls,
            Security::StartTls,
            Security::ImplicitTlsOrStartTls,
            Security::DangerousPlaintext,
        ] {
            assert_eq!(parse_security(security_name(security)), Some(security));
        }
    }
}
