//! Commands the client sends, and their encoding. Arguments come from checked
//! types ([`Domain`], [`Address`]), so no CR, LF or NUL can reach a line.

use std::fmt;

use crate::address::{Address, Domain, ReversePath};
use crate::options::{DsnReturn, Notify};
use crate::sasl::Secret;

/// Which command a reply answers; used in errors and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandKind {
    /// The server's greeting (not a command, but a reply is due for it).
    Greeting,
    /// `EHLO`.
    Ehlo,
    /// `LHLO` (LMTP's EHLO, RFC 2033 4.1).
    Lhlo,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH` and its continuation lines.
    Auth,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO`.
    RcptTo,
    /// `DATA` (the `354` go-ahead).
    Data,
    /// The end of the message: the final dot after DATA, or the last `BDAT`.
    DataEnd,
    /// A non-final `BDAT` chunk.
    Bdat,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
}

impl CommandKind {
    /// A command of one mail's transaction (MAIL, RCPT, DATA, BDAT, the
    /// end of the data): its refusal is about that mail, not the session.
    ///
    /// ```
    /// use tls_mailer_proto::CommandKind;
    /// assert!(CommandKind::RcptTo.is_mail_transaction());
    /// assert!(!CommandKind::Auth.is_mail_transaction());
    /// ```
    pub fn is_mail_transaction(self) -> bool {
        matches!(
            self,
            Self::MailFrom | Self::RcptTo | Self::Data | Self::DataEnd | Self::Bdat
        )
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Greeting => "the connection (greeting)",
            Self::Ehlo => "EHLO",
            Self::Lhlo => "LHLO",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::MailFrom => "MAIL FROM",
            Self::RcptTo => "RCPT TO",
            Self::Data => "DATA",
            Self::DataEnd => "the message (end of data)",
            Self::Bdat => "BDAT",
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
        })
    }
}

/// The `BODY=` parameter of `MAIL FROM`: what the content is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// `8BITMIME` (RFC 6152): text lines that may hold bytes above 127.
    EightBitMime,
    /// `BINARYMIME` (RFC 3030): any bytes, sent only by BDAT.
    BinaryMime,
}

impl BodyType {
    /// The parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EightBitMime => "8BITMIME",
            Self::BinaryMime => "BINARYMIME",
        }
    }
}

/// Parameters of `MAIL FROM`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParameters {
    /// `SIZE=n` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=8BITMIME` (RFC 6152) or `BODY=BINARYMIME` (RFC 3030).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=FULL` or `RET=HDRS` (DSN, RFC 3461 4.3).
    pub ret: Option<DsnReturn>,
    /// `ENVID=`, already xtext (DSN, RFC 3461 4.4; built by
    /// [`crate::Dsn::envid`], so it holds only xtext characters).
    pub envid: Option<String>,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
}

/// Parameters of `RCPT TO` (DSN, RFC 3461 4.1, 4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParameters {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=`, type and xtext value as sent (built by
    /// [`crate::RecipientDsn::orcpt`], so it holds only xtext characters).
    pub orcpt: Option<String>,
}

/// One client command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `EHLO name`.
    Ehlo(Domain),
    /// `LHLO name` (LMTP, RFC 2033 4.1).
    Lhlo(Domain),
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]`; the response is base64 already.
    Auth {
        /// `PLAIN` or `LOGIN`.
        mechanism: &'static str,
        /// The base64 initial response (RFC 4954), if any.
        initial_response: Option<Secret>,
    },
    /// A base64 line answering a `334` challenge.
    AuthResponse(Secret),
    /// `MAIL FROM:<path> params`.
    MailFrom(ReversePath, MailParameters),
    /// `RCPT TO:<path> params`.
    RcptTo(Address, RcptParameters),
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]`; the chunk bytes follow the line.
    Bdat {
        /// The chunk's size in bytes.
        size: u64,
        /// This is the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
}

impl Command {
    /// Which command this is.
    pub fn kind(&self) -> CommandKind {
        match self {
            Self::Ehlo(_) => CommandKind::Ehlo,
            Self::Lhlo(_) => CommandKind::Lhlo,
            Self::StartTls => CommandKind::StartTls,
            Self::Auth { .. } | Self::AuthResponse(_) => CommandKind::Auth,
            Self::MailFrom(..) => CommandKind::MailFrom,
            Self::RcptTo(..) => CommandKind::RcptTo,
            Self::Data => CommandKind::Data,
            Self::Bdat { last: true, .. } => CommandKind::DataEnd,
            Self::Bdat { last: false, .. } => CommandKind::Bdat,
            Self::Rset => CommandKind::Rset,
            Self::Noop => CommandKind::Noop,
            Self::Quit => CommandKind::Quit,
        }
    }

    /// Appends the command line, CRLF included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.write_line(out, false);
    }

    /// The line as it may be shown in a log: secrets replaced by `<redacted>`,
    /// no CRLF.
    pub fn redacted(&self) -> String {
        let mut line = Vec::new();
        self.write_line(&mut line, true);
        line.truncate(line.len().saturating_sub(2));
        String::from_utf8_lossy(&line).into_owned()
    }

    fn write_line(&self, out: &mut Vec<u8>, redact: bool) {
        let secret = |secret: &Secret, out: &mut Vec<u8>| {
            if redact {
                out.extend_from_slice(b"<redacted>");
            } else {
                out.extend_from_slice(secret.expose().as_bytes());
            }
        };
        match self {
            Self::Ehlo(domain) => {
                out.extend_from_slice(b"EHLO ");
                out.extend_from_slice(domain.as_str().as_bytes());
            }
            Self::Lhlo(domain) => {
                out.extend_from_slice(b"LHLO ");
                out.extend_from_slice(domain.as_str().as_bytes());
            }
            Self::StartTls => out.extend_from_slice(b"STARTTLS"),
            Self::Auth {
                mechanism,
                initial_response,
            } => {
                out.extend_from_slice(b"AUTH ");
                out.extend_from_slice(mechanism.as_bytes());
                if let Some(response) = initial_response {
                    out.push(b' ');
                    secret(response, out);
                }
            }
            Self::AuthResponse(response) => secret(response, out),
            Self::MailFrom(path, parameters) => {
                out.extend_from_slice(b"MAIL FROM:<");
                out.extend_from_slice(path.as_str().as_bytes());
                out.push(b'>');
                if let Some(size) = parameters.size {
                    out.extend_from_slice(format!(" SIZE={size}").as_bytes());
                }
                if let Some(body) = parameters.body {
                    out.extend_from_slice(b" BODY=");
                    out.extend_from_slice(body.as_str().as_bytes());
                }
                if parameters.smtputf8 {
                    out.extend_from_slice(b" SMTPUTF8");
                }
                if let Some(ret) = parameters.ret {
                    out.extend_from_slice(b" RET=");
                    out.extend_from_slice(ret.as_str().as_bytes());
                }
                if let Some(envid) = &parameters.envid {
                    out.extend_from_slice(b" ENVID=");
                    out.extend_from_slice(envid.as_bytes());
                }
                if parameters.requiretls {
                    out.extend_from_slice(b" REQUIRETLS");
                }
            }
            Self::RcptTo(address, parameters) => {
                out.extend_from_slice(b"RCPT TO:<");
                out.extend_from_slice(address.as_str().as_bytes());
                out.push(b'>');
                if let Some(notify) = parameters.notify {
                    out.extend_from_slice(format!(" NOTIFY={notify}").as_bytes());
                }
                if let Some(orcpt) = &parameters.orcpt {
                    out.extend_from_slice(b" ORCPT=");
                    out.extend_from_slice(orcpt.as_bytes());
                }
            }
            Self::Data => out.extend_from_slice(b"DATA"),
            Self::Bdat { size, last } => {
                out.extend_from_slice(format!("BDAT {size}").as_bytes());
                if *last {
                    out.extend_from_slice(b" LAST");
                }
            }
            Self::Rset => out.extend_from_slice(b"RSET"),
            Self::Noop => out.extend_from_slice(b"NOOP"),
            Self::Quit => out.extend_from_slice(b"QUIT"),
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(command: &Command) -> String {
        let mut out = Vec::new();
        command.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_lines() {
        let from = ReversePath::new("a@b.org").unwrap();
        let parameters = MailParameters {
            size: Some(1234),
            body: Some(BodyType::EightBitMime),
            smtputf8: true,
            ..MailParameters::default()
        };
        assert_eq!(
            line(&Command::MailFrom(from.clone(), parameters)),
            "MAIL FROM:<a@b.org> SIZE=1234 BODY=8BITMIME SMTPUTF8\r\n"
        );
        let parameters = MailParameters {
            size: Some(5),
            ret: Some(DsnReturn::Headers),
            envid: Some("id+2B1".into()),
            requiretls: true,
            ..MailParameters::default()
        };
        assert_eq!(
            line(&Command::MailFrom(from, parameters)),
            "MAIL FROM:<a@b.org> SIZE=5 RET=HDRS ENVID=id+2B1 REQUIRETLS\r\n"
        );
        let parameters = RcptParameters {
            notify: Some(Notify::SUCCESS | Notify::DELAY),
            orcpt: Some("rfc822;c@d.org".into()),
        };
        assert_eq!(
            line(&Command::RcptTo(
                Address::new("c@d.org").unwrap(),
                parameters
            )),
            "RCPT TO:<c@d.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c@d.org\r\n"
        );
        assert_eq!(
            line(&Command::MailFrom(
                ReversePath::Null,
                MailParameters::default()
            )),
            "MAIL FROM:<>\r\n"
        );
        assert_eq!(
            line(&Command::RcptTo(
                Address::new("c@d.org").unwrap(),
                RcptParameters::default()
            )),
            "RCPT TO:<c@d.org>\r\n"
        );
        assert_eq!(
            line(&Command::Bdat {
                size: 10,
                last: true
            }),
            "BDAT 10 LAST\r\n"
        );
        assert_eq!(
            line(&Command::Ehlo(Domain::new("[127.0.0.1]").unwrap())),
            "EHLO [127.0.0.1]\r\n"
        );
    }

    #[test]
    fn secrets_are_redacted_in_logs_only() {
        let command = Command::Auth {
            mechanism: "PLAIN",
            initial_response: Some(Secret::new("AGFsaWNlAHNlY3JldA==".into())),
        };
        assert_eq!(line(&command), "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
        assert_eq!(command.redacted(), "AUTH PLAIN <redacted>");
        assert!(!format!("{command:?}").contains("AGFsaWNl"));
        let response = Command::AuthResponse(Secret::new("c2VjcmV0".into()));
        assert_eq!(response.redacted(), "<redacted>");
    }
}
