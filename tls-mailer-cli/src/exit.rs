//! The one place where failures become exit codes (sysexits.h).

use std::fmt;
use std::sync::Arc;

use tls_mailer::Error;
use tls_mailer::oauth::OAuthError;
use tls_mailer::outbox::OutboxError;
use tls_mailer::proto::{CommandKind, ProtocolError, Unsupported};

/// sysexits.h codes used by the CLI.
pub const USAGE: u8 = 64;
pub const DATA_ERROR: u8 = 65;
pub const NO_INPUT: u8 = 66;
pub const NO_USER: u8 = 67;
pub const NO_HOST: u8 = 68;
pub const UNAVAILABLE: u8 = 69;
pub const SOFTWARE: u8 = 70;
pub const CANT_CREATE: u8 = 73;
pub const IO_ERROR: u8 = 74;
pub const TEMPORARY: u8 = 75;
pub const PROTOCOL: u8 = 76;
pub const NO_PERMISSION: u8 = 77;
pub const CONFIG: u8 = 78;

/// The table shown by `--help` and in the README.
pub const TABLE: &str = "\
Exit codes (sysexits.h):
  0   sent; every recipient accepted
  64  usage error (bad flag, no recipient)
  65  bad message or address (CR/LF injection, unparsable From)
  66  the message file cannot be read
  67  a recipient was refused: the message went to the others, whatever the
      refusal codes, so do not send it to all again (stderr names each
      refusal and says which are temporary); or every recipient was refused
      for good and nothing was sent
  68  unknown host
  69  the server refused permanently (5xx), the message exceeds its SIZE
      limit, or the server lacks what the message needs (DSN for --dsn-*,
      REQUIRETLS for --require-tls, 8BITMIME, SMTPUTF8)
  70  internal error (a bug in tls-mailer: please report it)
  73  the outbox (--spool) cannot be created, written or read
  74  reading the message failed midway
  75  temporary failure, the message was not accepted, try again later: a
      4xx before it went to anyone, connection refused, DNS temporary
      failure, timeout, connection lost
  76  protocol error (the server broke SMTP)
  77  authentication or TLS refused (bad password, untrusted or wrong-host
      certificate, a key that matches no --pin-sha256, a client certificate
      missing or refused, no TLS version in common, no STARTTLS)
  78  configuration error (no password source, wrong security mode for the port)
With --security implicit-or-starttls, a failure is reported with the code of
the STARTTLS attempt.";

/// Why the command failed, before or during the send.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong.
    Usage(String),
    /// A setting cannot be used (password source, CA file, DKIM key).
    Config(String),
    /// The message file cannot be opened.
    NoInput(String),
    /// The message or an address is bad.
    BadMessage(String),
    /// Writing the output failed.
    Output {
        /// What was written: a file name, or stdout.
        target: String,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The send failed.
    Send(Error),
    /// The send failed (as reported by the outbox, which shares the error).
    Delivery(Arc<Error>),
    /// The outbox cannot do what was asked.
    Outbox(OutboxError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message)
            | Self::Config(message)
            | Self::NoInput(message)
            | Self::BadMessage(message) => f.write_str(message),
            Self::Output { target, error } => write!(f, "cannot write {target}: {error}"),
            Self::Send(error) => error.fmt(f),
            Self::Delivery(error) => error.fmt(f),
            Self::Outbox(error) => error.fmt(f),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Send(error)
    }
}

impl From<tls_mailer::MessageError> for Failure {
    /// The message builder's errors, worded with the flags that fix them.
    fn from(error: tls_mailer::MessageError) -> Self {
        use tls_mailer::MessageError;
        match error {
            MessageError::NoFrom => {
                Self::BadMessage("the message has no From address: give --from ADDR".into())
            }
            MessageError::NoRecipients => {
                Self::Usage("no recipient: give --to, --cc, --bcc or RECIPIENT arguments".into())
            }
            MessageError::ReservedHeader { name } => Self::BadMessage(format!(
                "--header {name:?}: tls-mailer writes this header itself; use its own flag \
                 where there is one (--from, --to, --cc, --bcc, --reply-to, --subject)"
            )),
            other => Self::BadMessage(other.to_string()),
        }
    }
}

/// The exit code for a failure.
pub fn code(failure: &Failure) -> u8 {
    match failure {
        Failure::Usage(_) => USAGE,
        Failure::Config(_) => CONFIG,
        Failure::NoInput(_) => NO_INPUT,
        Failure::BadMessage(_) => DATA_ERROR,
        Failure::Output { .. } => IO_ERROR,
        Failure::Send(error) => send_code(error),
        Failure::Delivery(error) => send_code(error),
        Failure::Outbox(error) => outbox_code(error),
    }
}

fn outbox_code(error: &OutboxError) -> u8 {
    match error {
        OutboxError::ReadMessage(_) => IO_ERROR,
        OutboxError::InvalidId { .. } | OutboxError::InvalidRoute { .. } => USAGE,
        OutboxError::NotFound { .. } => NO_INPUT,
        OutboxError::Busy { .. } => TEMPORARY,
        OutboxError::Corrupt { .. } | OutboxError::Sign(_) => DATA_ERROR,
        OutboxError::NoDefaultDir => CONFIG,
        _ => CANT_CREATE,
    }
}

fn send_code(error: &Error) -> u8 {
    match error {
        Error::FallbackFailed { starttls, .. } => send_code(starttls),
        Error::InvalidInput(_) | Error::Message(_) => DATA_ERROR,
        Error::Config(_) | Error::WrongSecurity { .. } | Error::PlaintextNotLoopback { .. } => {
            CONFIG
        }
        Error::ReadMessage(_) => IO_ERROR,
        Error::ApiMisuse(_) => SOFTWARE,
        Error::Tls { .. } | Error::CredentialsWithoutTls => NO_PERMISSION,
        Error::Unsupported(Unsupported::StartTls | Unsupported::Auth { .. }) => NO_PERMISSION,
        // Implicit TLS on a STARTTLS port is caught above (WrongSecurity);
        // this is the reverse: STARTTLS asked for on a port that speaks TLS.
        Error::Protocol(ProtocolError::TlsWhereSmtpExpected) => CONFIG,
        Error::Protocol(_) if !error.is_transient() => PROTOCOL,
        Error::OAuth(oauth) if !oauth.is_transient() => match oauth {
            OAuthError::InvalidUrl { .. }
            | OAuthError::NoDeviceEndpoint
            | OAuthError::NoAuthorizationEndpoint => CONFIG,
            OAuthError::Refused { code, .. } if code == "invalid_scope" => CONFIG,
            OAuthError::Refused { .. }
            | OAuthError::DeviceCodeExpired
            | OAuthError::SignInTimedOut => NO_PERMISSION,
            _ => UNAVAILABLE,
        },
        _ if error.is_authentication_failure() => NO_PERMISSION,
        Error::Resolve { .. } if !error.is_transient() => NO_HOST,
        Error::RecipientsRejected(_) if !error.is_transient() => NO_USER,
        Error::Rejected(rejection)
            if rejection.command == CommandKind::RcptTo && !error.is_transient() =>
        {
            NO_USER
        }
        _ if error.is_transient() => TEMPORARY,
        Error::Rejected(_) | Error::Unsupported(_) | Error::Proxy { .. } => UNAVAILABLE,
        _ => PROTOCOL,
    }
}

/// What to try next, when the error message alone does not say it.
pub fn hint(failure: &Failure) -> Option<&'static str> {
    match failure {
        Failure::Send(error) => send_hint(error),
        Failure::Delivery(error) => send_hint(error),
        Failure::Outbox(OutboxError::NoDefaultDir) => Some("give --spool DIR"),
        Failure::Outbox(OutboxError::NotFound { .. }) => {
            Some("`tls-mailer queue list` shows the entries and their ids")
        }
        _ => None,
    }
}

fn send_hint(error: &Error) -> Option<&'static str> {
    use rustls::{AlertDescription, Error as TlsError};
    match error {
        Error::FallbackFailed { starttls, .. } => send_hint(starttls),
        Error::Tls {
            source: Some(TlsError::AlertReceived(AlertDescription::CertificateRequired)),
            ..
        } => Some(
            "the server authenticates clients by certificate: give --client-cert and \
             --client-key, with a certificate from an authority it trusts",
        ),
        Error::Tls {
            source: Some(TlsError::AlertReceived(AlertDescription::ProtocolVersion)),
            ..
        } => Some(
            "with --tls-min 1.3, a server that speaks only TLS 1.2 is refused; \
             tls-mailer never uses versions older than TLS 1.2",
        ),
        Error::OAuth(error) if error.is_invalid_grant() => Some(
            "run `tls-mailer oauth login --account ACCOUNT` to sign in again, or set a new \
             oauth.refresh_token_command or oauth.refresh_token_file",
        ),
        Error::WrongSecurity { .. } => Some(
            "this port speaks STARTTLS: use --security starttls (usually port 587), \
             or --port 465 for implicit TLS",
        ),
        Error::Protocol(ProtocolError::TlsWhereSmtpExpected) => {
            Some("this port speaks implicit TLS: use --security implicit (usually port 465)")
        }
        Error::Timeout {
            phase: tls_mailer::Phase::Greeting,
        } => Some(
            "a port that expects implicit TLS says nothing to a plaintext client: \
             try --security implicit (usually port 465)",
        ),
        Error::Unsupported(Unsupported::Dsn) => Some(
            "the server does not offer DSN: add --dsn-optional to send without the --dsn-* \
             requests, or drop them",
        ),
        Error::Unsupported(Unsupported::RequireTls | Unsupported::RequireTlsWithoutTls) => Some(
            "the server cannot take --require-tls: send without it, or through a server \
                 that offers REQUIRETLS",
        ),
        Error::Unsupported(Unsupported::EightBitMime) => Some(
            "re-encode the message as 7-bit (quoted-printable or base64), or send it \
             through a server that offers 8BITMIME",
        ),
        Error::Unsupported(Unsupported::BinaryMime) => Some(
            "encode the binary parts as base64 and send without --binary, or send it \
             through a server that offers BINARYMIME and CHUNKING",
        ),
        Error::Unsupported(Unsupported::SmtpUtf8 { .. }) => {
            Some("use ASCII addresses (with an encoded header), or a server that offers SMTPUTF8")
        }
        Error::Rejected(rejection) if rejection.is_requiretls_failure() => Some(
            "a server on the way cannot keep TLS for this message (5.7.30): send without \
             --require-tls only if plaintext relaying is acceptable",
        ),
        Error::Rejected(rejection)
            if rejection.command == CommandKind::MailFrom
                && rejection.is_policy()
                && !rejection.is_authentication_failure() =>
        {
            Some(
                "the server refused the sender by policy: check that --from (or \
                 --envelope-from) is an address this account may send as",
            )
        }
        Error::Rejected(rejection) if rejection.is_mailbox_full() => {
            Some("the recipient's mailbox is full: try again later, or reach them another way")
        }
        _ if error.is_authentication_failure() => Some(
            "check --user and the password (--password-env, --password-file, \
             --password-command or TLS_MAILER_PASSWORD)",
        ),
        Error::Connect { target, .. } if target.starts_with("the proxy ") => {
            Some("check --proxy (its host and port), and that the proxy is up")
        }
        Error::Connect { .. } => Some(
            "check --host and --port, and that the server is up \
             (465: --security implicit, 587: --security starttls)",
        ),
        Error::Proxy { .. } => Some("check the --proxy URL, its user name and password"),
        Error::Resolve { .. } if !error.is_transient() => Some("check the spelling of --host"),
        Error::Timeout { phase } if *phase != tls_mailer::Phase::Greeting => {
            Some("try again later; for a slow server, raise --timeout")
        }
        Error::RecipientsRejected(_) if !error.is_transient() => {
            Some("check the recipient addresses; nothing was sent")
        }
        _ if error.is_transient() => Some("this is temporary: try again later"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_config() {
        assert_eq!(code(&Failure::Usage("x".into())), 64);
        assert_eq!(code(&Failure::Config("x".into())), 78);
        assert_eq!(code(&Failure::Send(Error::Config("x".into()))), 78);
        assert_eq!(code(&Failure::Send(Error::CredentialsWithoutTls)), 77);
        let misuse = tls_mailer::proto::ApiMisuse::NotInBody;
        assert_eq!(code(&Failure::Send(Error::from(misuse))), 70);
        assert_eq!(
            code(&Failure::Send(Error::Unsupported(Unsupported::StartTls))),
            77
        );
        assert_eq!(
            code(&Failure::Send(Error::Unsupported(Unsupported::Size {
                size: 2,
                limit: 1
            }))),
            69
        );
        for (unsupported, flag) in [
            (Unsupported::Dsn, "--dsn-optional"),
            (Unsupported::RequireTls, "--require-tls"),
            (Unsupported::RequireTlsWithoutTls, "--require-tls"),
            (Unsupported::EightBitMime, "quoted-printable"),
            (Unsupported::BinaryMime, "--binary"),
        ] {
            let failure = Failure::Send(Error::Unsupported(unsupported));
            assert_eq!(code(&failure), UNAVAILABLE);
            assert!(hint(&failure).is_some_and(|hint| hint.contains(flag)));
        }
        let refusal = |code: u16, text: &str| {
            Failure::Send(Error::Rejected(tls_mailer::Rejection {
                command: CommandKind::MailFrom,
                reply: tls_mailer::Reply::new(
                    tls_mailer::proto::ReplyCode::new(code).unwrap(),
                    vec![text.into()],
                ),
            }))
        };
        let policy = refusal(553, "5.7.1 Sender address rejected: not owned by user");
        assert_eq!(code(&policy), UNAVAILABLE);
        assert!(hint(&policy).is_some_and(|hint| hint.contains("--from")));
        // Authentication required stays an authentication hint.
        let auth = refusal(530, "5.7.0 Authentication required");
        assert!(hint(&auth).is_some_and(|hint| hint.contains("--user")));
        let requiretls = refusal(550, "5.7.30 REQUIRETLS support required");
        assert!(hint(&requiretls).is_some_and(|hint| hint.contains("--require-tls")));
    }

    #[test]
    fn unknown_hosts_are_68_and_unreachable_resolvers_75() {
        // The resolver's two answers, as std reports them from getaddrinfo.
        let resolve = |reason: &str| {
            Failure::Send(Error::Resolve {
                host: "smtp.example.invalid".into(),
                source: std::io::Error::other(format!(
                    "failed to lookup address information: {reason}"
                )),
            })
        };
        let unknown = resolve("Name or service not known");
        assert_eq!(code(&unknown), NO_HOST);
        assert_eq!(hint(&unknown), Some("check the spelling of --host"));
        let unreachable = resolve("Temporary failure in name resolution");
        assert_eq!(code(&unreachable), TEMPORARY);
        assert_eq!(
            hint(&unreachable),
            Some("this is temporary: try again later")
        );
    }

    #[test]
    fn hints_follow_the_starttls_attempt() {
        let refused = || Error::Connect {
            target: "localhost:587".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let fallback = Error::FallbackFailed {
            implicit_tls: Box::new(refused()),
            starttls: Box::new(refused()),
        };
        assert_eq!(code(&Failure::Send(fallback)), TEMPORARY);
        assert!(hint(&Failure::Send(refused())).is_some_and(|hint| hint.contains("--port")));
        assert_eq!(hint(&Failure::Usage("x".into())), None);
        assert_eq!(hint(&Failure::Send(Error::CredentialsWithoutTls)), None);
    }
}
