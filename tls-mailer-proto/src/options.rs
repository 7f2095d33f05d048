//! What one mail asks of the server beyond its [`Envelope`](crate::Envelope):
//! delivery status notifications (DSN, RFC 3461), REQUIRETLS (RFC 8689) and
//! SMTPUTF8 for a header that needs it (RFC 6531).
//!
//! The options travel beside the envelope ([`crate::Session::start_mail_with`])
//! rather than inside it: the envelope says who a message goes to and stays
//! what it was; the options say how the server must treat it, and the
//! session checks them against what the server offers before anything is
//! sent.
//!
//! ```
//! use tls_mailer_proto::{Address, Dsn, DsnReturn, MailOptions, Notify, RecipientDsn};
//!
//! let bob = Address::new("bob@example.org")?;
//! let dsn = Dsn::new()
//!     .notify(Notify::FAILURE | Notify::DELAY)
//!     .ret(DsnReturn::Headers)
//!     .envid("QQ314159")?
//!     .recipient(&bob, RecipientDsn::new().notify(Notify::NEVER).orcpt(&bob)?);
//! let options = MailOptions::new().with_dsn(dsn).with_require_tls(true);
//! assert!(options.require_tls);
//! # Ok::<(), tls_mailer_proto::InvalidInput>(())
//! ```

use std::fmt;
use std::ops::BitOr;
use std::str::FromStr;

use crate::address::Address;
use crate::error::InvalidInput;

/// When the server should report on a recipient (the DSN `NOTIFY`
/// parameter, RFC 3461 4.1): [`Notify::NEVER`], or any of
/// [`Notify::SUCCESS`], [`Notify::FAILURE`] and [`Notify::DELAY`] joined
/// with `|`.
///
/// ```
/// use tls_mailer_proto::Notify;
/// assert_eq!((Notify::SUCCESS | Notify::FAILURE).to_string(), "SUCCESS,FAILURE");
/// assert_eq!("never".parse::<Notify>().unwrap(), Notify::NEVER);
/// assert_eq!("delay,failure".parse::<Notify>().unwrap(), Notify::FAILURE | Notify::DELAY);
/// assert!("never,success".parse::<Notify>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Notify {
    success: bool,
    failure: bool,
    delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`: no report, whatever happens. Joined with another
    /// value by `|`, it gives that value.
    pub const NEVER: Self = Self {
        success: false,
        failure: false,
        delay: false,
    };
    /// Report a successful delivery.
    pub const SUCCESS: Self = Self {
        success: true,
        failure: false,
        delay: false,
    };
    /// Report a failed delivery.
    pub const FAILURE: Self = Self {
        success: false,
        failure: true,
        delay: false,
    };
    /// Report a delayed delivery.
    pub const DELAY: Self = Self {
        success: false,
        failure: false,
        delay: true,
    };

    /// No report is wanted (`NEVER`).
    pub fn is_never(self) -> bool {
        self == Self::NEVER
    }
}

impl BitOr for Notify {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self {
            success: self.success || other.success,
            failure: self.failure || other.failure,
            delay: self.delay || other.delay,
        }
    }
}

impl fmt::Display for Notify {
    /// The parameter's value as sent: `NEVER`, or the conditions in the
    /// order SUCCESS, FAILURE, DELAY, joined by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let conditions = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        let named: Vec<&str> = conditions
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect();
        f.write_str(&named.join(","))
    }
}

impl FromStr for Notify {
    type Err = InvalidInput;

    /// `never`, or a comma-separated list of `success`, `failure` and
    /// `delay`, in any case.
    fn from_str(text: &str) -> Result<Self, InvalidInput> {
        let invalid = |reason| InvalidInput {
            what: "DSN notify value",
            input: text.escape_debug().to_string(),
            reason,
        };
        if text.trim().eq_ignore_ascii_case("never") {
            return Ok(Self::NEVER);
        }
        let mut notify = Self::NEVER;
        for word in text.split(',') {
            notify = notify
                | match word.trim().to_ascii_lowercase().as_str() {
                    "success" => Self::SUCCESS,
                    "failure" => Self::FAILURE,
                    "delay" => Self::DELAY,
                    "never" => {
                        return Err(invalid(
                            "never cannot be combined with success, failure or delay",
                        ));
                    }
                    _ => {
                        return Err(invalid(
                            "give never, or one or more of success, failure, delay \
                             separated by commas",
                        ));
                    }
                };
        }
        Ok(notify)
    }
}

/// How much of the message a failure report carries (the DSN `RET`
/// parameter, RFC 3461 4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DsnReturn {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: its header section only.
    Headers,
}

impl DsnReturn {
    /// The parameter's value as sent: `FULL` or `HDRS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Headers => "HDRS",
        }
    }
}

/// RFC 3461 4.4: an ENVID is at most 100 characters.
const MAX_ENVID_LEN: usize = 100;
/// RFC 3461 4.2: an ORCPT value is at most 500 characters.
const MAX_ORCPT_LEN: usize = 500;
/// The address type of every ORCPT this crate sends.
const ORCPT_TYPE: &str = "rfc822;";

/// What one recipient asks of DSN: `NOTIFY` and `ORCPT` (RFC 3461 4.1,
/// 4.2) on its `RCPT TO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecipientDsn {
    notify: Option<Notify>,
    orcpt: Option<String>,
}

impl RecipientDsn {
    /// Nothing asked for this recipient yet (the message's [`Dsn::notify`]
    /// applies).
    pub fn new() -> Self {
        Self::default()
    }

    /// When to report on this recipient; overrides the message's value.
    pub fn notify(mut self, notify: Notify) -> Self {
        self.notify = Some(notify);
        self
    }

    /// The recipient as the sender originally addressed it (before any
    /// forwarding or alias expansion), sent as `ORCPT=rfc822;` and the
    /// address in xtext. Refused when its xtext form exceeds the 500
    /// characters RFC 3461 allows.
    pub fn orcpt(mut self, original: &Address) -> Result<Self, InvalidInput> {
        let value = format!("{ORCPT_TYPE}{}", xtext(original.as_str()));
        if value.len() > MAX_ORCPT_LEN {
            return Err(InvalidInput {
                what: "DSN original recipient (ORCPT)",
                input: original.as_str().escape_debug().to_string(),
                reason: "encoded as xtext it is longer than the 500 characters RFC 3461 allows",
            });
        }
        self.orcpt = Some(value);
        Ok(self)
    }
}

/// A request for delivery status notifications (RFC 3461): `RET` and
/// `ENVID` for the message, `NOTIFY` (a default for every recipient, or
/// per recipient) and `ORCPT` per recipient.
///
/// ```
/// use tls_mailer_proto::{Dsn, DsnReturn, Notify};
/// let dsn = Dsn::new().notify(Notify::FAILURE).ret(DsnReturn::Headers).envid("id+1")?;
/// assert_eq!(dsn.envid_xtext(), Some("id+2B1"));
/// assert!(Dsn::new().envid("a\u{e9}").is_err(), "an ENVID is printable ASCII");
/// # Ok::<(), tls_mailer_proto::InvalidInput>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dsn {
    notify: Option<Notify>,
    ret: Option<DsnReturn>,
    /// The ENVID, xtext-encoded.
    envid: Option<String>,
    recipients: Vec<(Address, RecipientDsn)>,
}

impl Dsn {
    /// Nothing requested yet: the server's defaults apply.
    pub fn new() -> Self {
        Self::default()
    }

    /// When to report, for every recipient without its own
    /// [`RecipientDsn::notify`].
    pub fn notify(mut self, notify: Notify) -> Self {
        self.notify = Some(notify);
        self
    }

    /// How much of the message a failure report returns.
    pub fn ret(mut self, ret: DsnReturn) -> Self {
        self.ret = Some(ret);
        self
    }

    /// An identifier for this message, returned in every report (`ENVID`):
    /// printable ASCII (space included), sent as xtext, at most 100
    /// characters once encoded (RFC 3461 4.4).
    pub fn envid(mut self, id: &str) -> Result<Self, InvalidInput> {
        let invalid = |reason| InvalidInput {
            what: "DSN envelope id (ENVID)",
            input: id.escape_debug().to_string(),
            reason,
        };
        if id.is_empty() {
            return Err(invalid("it is empty"));
        }
        if !id.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
            return Err(invalid(
                "it must be printable ASCII (no control or non-ASCII characters)",
            ));
        }
        let encoded = xtext(id);
        if encoded.len() > MAX_ENVID_LEN {
            return Err(invalid(
                "encoded as xtext it is longer than the 100 characters RFC 3461 allows",
            ));
        }
        self.envid = Some(encoded);
        Ok(self)
    }

    /// What to ask for one recipient of the envelope (matched by
    /// [`Address::same_mailbox`]); a later call for the same mailbox
    /// replaces an earlier one. A recipient not in the envelope is ignored.
    pub fn recipient(mut self, address: &Address, dsn: RecipientDsn) -> Self {
        self.recipients
            .retain(|(known, _)| !known.same_mailbox(address));
        self.recipients.push((address.clone(), dsn));
        self
    }

    /// The message-wide `NOTIFY`.
    pub fn notify_value(&self) -> Option<Notify> {
        self.notify
    }

    /// `RET`, when asked for.
    pub fn ret_value(&self) -> Option<DsnReturn> {
        self.ret
    }

    /// The ENVID as sent (xtext).
    pub fn envid_xtext(&self) -> Option<&str> {
        self.envid.as_deref()
    }

    /// Nothing is asked: no DSN parameter would be sent.
    pub fn is_empty(&self) -> bool {
        self.notify.is_none()
            && self.ret.is_none()
            && self.envid.is_none()
            && self
                .recipients
                .iter()
                .all(|(_, dsn)| dsn.notify.is_none() && dsn.orcpt.is_none())
    }

    /// `NOTIFY` and `ORCPT` (its value as sent) for `recipient`.
    pub(crate) fn for_recipient(&self, recipient: &Address) -> (Option<Notify>, Option<String>) {
        let own = self
            .recipients
            .iter()
            .find(|(known, _)| known.same_mailbox(recipient))
            .map(|(_, dsn)| dsn);
        (
            own.and_then(|dsn| dsn.notify).or(self.notify),
            own.and_then(|dsn| dsn.orcpt.clone()),
        )
    }
}

/// What a mail asks of the server beyond its envelope. Built with the
/// `with_*` methods; [`MailOptions::default`] asks nothing, which is what
/// [`crate::Session::start_mail`] sends.
///
/// Each option the server does not offer is refused before anything is
/// sent ([`crate::Unsupported`]), except DSN with
/// [`with_dsn_optional`](MailOptions::with_dsn_optional), which is then sent
/// without its parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailOptions {
    /// Delivery status notifications to ask for.
    pub dsn: Option<Dsn>,
    /// Send without the DSN parameters when the server does not offer DSN,
    /// instead of refusing.
    pub dsn_optional: bool,
    /// `REQUIRETLS` (RFC 8689): every server on the way must relay the
    /// message over verified TLS, or return it. Needs an encrypted
    /// connection and a server that offers it.
    pub require_tls: bool,
    /// The header section has non-ASCII characters (an internationalised
    /// address in From or To, say): declare `SMTPUTF8` even when every
    /// envelope address is ASCII.
    pub utf8_headers: bool,
}

impl MailOptions {
    /// No option: the same as [`MailOptions::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for delivery status notifications.
    pub fn with_dsn(mut self, dsn: Dsn) -> Self {
        self.dsn = Some(dsn);
        self
    }

    /// Sends without DSN parameters when the server does not offer DSN.
    pub fn with_dsn_optional(mut self, optional: bool) -> Self {
        self.dsn_optional = optional;
        self
    }

    /// Asks for REQUIRETLS.
    pub fn with_require_tls(mut self, require: bool) -> Self {
        self.require_tls = require;
        self
    }

    /// Says that the header section needs SMTPUTF8.
    pub fn with_utf8_headers(mut self, utf8: bool) -> Self {
        self.utf8_headers = utf8;
        self
    }

    /// A DSN with something in it was asked for.
    pub(crate) fn wants_dsn(&self) -> bool {
        self.dsn.as_ref().is_some_and(|dsn| !dsn.is_empty())
    }
}

/// Encodes `value` as xtext (RFC 3461 4): every byte outside `!`..=`~`, and
/// `+` and `=`, becomes `+` and two upper-case hex digits.
///
/// ```
/// use tls_mailer_proto::options::xtext;
/// assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
/// assert_eq!(xtext("jörg"), "j+C3+B6rg");
/// ```
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_plus_equals_and_bytes_outside_33_to_126() {
        assert_eq!(xtext(""), "");
        assert_eq!(xtext("!~AZaz09"), "!~AZaz09");
        assert_eq!(xtext("+"), "+2B");
        assert_eq!(xtext("="), "+3D");
        assert_eq!(xtext(" "), "+20");
        assert_eq!(xtext("\u{7f}"), "+7F");
        assert_eq!(xtext("\t\r\n\0"), "+09+0D+0A+00");
        assert_eq!(xtext("ü"), "+C3+BC");
        // Every byte value: the output is only xchar and "+XX".
        let all: String = (0u8..=127).map(char::from).collect();
        let encoded = xtext(&all);
        assert!(
            encoded
                .bytes()
                .all(|b| (b'!'..=b'~').contains(&b) && b != b'=')
        );
        assert_eq!(encoded.matches('+').count(), 33 + 1 + 2);
    }

    #[test]
    fn notify_parses_and_prints_in_rfc_order() {
        let all: Notify = "DELAY, success ,Failure".parse().unwrap();
        assert_eq!(all.to_string(), "SUCCESS,FAILURE,DELAY");
        assert_eq!(Notify::NEVER.to_string(), "NEVER");
        assert!(Notify::NEVER.is_never());
        assert!(!(Notify::NEVER | Notify::DELAY).is_never());
        for bad in ["", "sometimes", "success,,failure", "success,never"] {
            let error = bad.parse::<Notify>().unwrap_err();
            assert_eq!(error.what, "DSN notify value", "{bad:?}");
        }
    }

    #[test]
    fn envid_is_checked_and_encoded() {
        let dsn = Dsn::new().envid("a b=c").unwrap();
        assert_eq!(dsn.envid_xtext(), Some("a+20b+3Dc"));
        assert!(Dsn::new().envid("").is_err());
        assert!(Dsn::new().envid("a\r\nMAIL FROM:<x>").is_err());
        assert!(Dsn::new().envid(&"x".repeat(100)).is_ok());
        assert!(Dsn::new().envid(&"x".repeat(101)).is_err());
        // 34 '+' are 102 characters as xtext.
        let error = Dsn::new().envid(&"+".repeat(34)).unwrap_err();
        assert!(error.reason.contains("100 characters"), "{error}");
    }

    #[test]
    fn orcpt_and_notify_per_recipient() {
        let bob = Address::new("bob+tag@example.org").unwrap();
        let carol = Address::new("carol@example.org").unwrap();
        let dsn = Dsn::new()
            .notify(Notify::FAILURE)
            .recipient(&bob, RecipientDsn::new().orcpt(&bob).unwrap())
            .recipient(
                &Address::new("carol@EXAMPLE.org").unwrap(),
                RecipientDsn::new().notify(Notify::NEVER),
            );
        assert_eq!(
            dsn.for_recipient(&bob),
            (
                Some(Notify::FAILURE),
                Some("rfc822;bob+2Btag@example.org".into())
            )
        );
        assert_eq!(dsn.for_recipient(&carol), (Some(Notify::NEVER), None));
        let long = Address::new(&format!("{}@example.org", "+".repeat(64))).unwrap();
        assert!(RecipientDsn::new().orcpt(&long).is_ok());
        let label = "é".repeat(31);
        let longer = Address::new(&format!("{}@{label}.{label}.{label}", "é".repeat(32))).unwrap();
        assert!(RecipientDsn::new().orcpt(&longer).is_err());
        assert!(Dsn::new().is_empty());
        assert!(Dsn::new().recipient(&bob, RecipientDsn::new()).is_empty());
        assert!(!Dsn::new().ret(DsnReturn::Full).is_empty());
    }
}
