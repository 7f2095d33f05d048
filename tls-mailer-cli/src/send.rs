//! `tls-mailer send`: a raw message from stdin or a file, or one composed
//! from flags, to an SMTP server over implicit TLS or required STARTTLS.

use std::path::PathBuf;
use std::time::Duration;

use tls_mailer::{
    BodyInfo, Client, Credentials, DkimSigner, Envelope, Mechanism, RecipientPolicy, Security,
    SendReport, Timeouts, TlsVersion,
};

use crate::compose::ComposeFlags;
use crate::exit::{self, Failure};
use crate::message_input;
use crate::password::PasswordSource;
use crate::{secret_file, verbose};

/// How the connection is protected. There is deliberately no plaintext
/// choice and no way to skip certificate checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityArg {
    /// TLS from the first byte (port 465).
    #[default]
    Implicit,
    /// STARTTLS, required (port 587).
    Starttls,
    /// Implicit TLS; if it cannot be set up, STARTTLS (required) on --starttls-port.
    ImplicitOrStarttls,
}

/// An AUTH mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MechanismArg {
    /// AUTH PLAIN (one round trip).
    Plain,
    /// AUTH LOGIN.
    Login,
}

/// The oldest TLS version accepted; nothing older than 1.2 exists here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMinArg {
    /// TLS 1.2 or 1.3.
    #[default]
    #[value(name = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    Tls13,
}

/// Arguments of `tls-mailer send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The SMTP server.
    #[arg(long)]
    pub host: String,
    /// The port (default: 465 for implicit TLS, 587 for STARTTLS).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// How the connection is protected.
    #[arg(long, value_enum, default_value_t)]
    pub security: SecurityArg,
    /// The STARTTLS port tried by implicit-or-starttls.
    #[arg(long, value_name = "PORT", default_value_t = 587, value_parser = clap::value_parser!(u16).range(1..))]
    pub starttls_port: u16,
    /// The user name for AUTH (PLAIN or LOGIN, only over TLS).
    #[arg(long)]
    pub user: Option<String>,
    /// Use only this AUTH mechanism (repeatable, best first; default: PLAIN, then LOGIN).
    #[arg(long, value_enum, value_name = "MECH")]
    pub auth_mechanism: Vec<MechanismArg>,
    #[command(flatten)]
    pub password: PasswordSource,
    /// Trust the CAs of this PEM file, besides the system store (repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// The sender: the envelope sender for a raw message (default: its From
    /// header), or the From header when composing ("Name <addr>" accepted).
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// The envelope sender (MAIL FROM), when it differs from --from.
    #[arg(long, value_name = "ADDR")]
    pub envelope_from: Option<String>,
    /// Also send to the To, Cc and Bcc addresses of the message.
    #[arg(short = 't', long)]
    pub read_recipients: bool,
    /// Send the Bcc header fields of a raw message as they are. By default
    /// they are removed from what is sent (with or without -t), so that no
    /// recipient sees who else got a blind copy.
    #[arg(long)]
    pub keep_bcc: bool,
    /// The name given in EHLO (default: this host's name if fully qualified,
    /// else its address).
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,
    /// Print the SMTP conversation to stderr (credentials redacted).
    #[arg(short, long)]
    pub verbose: bool,
    /// Read the message from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub message: Option<PathBuf>,
    /// Give up on any step that takes longer than this many seconds (1 to
    /// 86400; default: the RFC 5321 limits, up to 10 minutes).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: Option<u64>,
    /// Send nothing unless the server accepts every recipient.
    #[arg(long)]
    pub all_recipients_or_none: bool,
    /// DKIM-sign with this private key (PEM: RSA or Ed25519; warns when
    /// other users can read the file).
    #[arg(long, value_name = "FILE", requires_all = ["dkim_selector", "dkim_domain"])]
    pub dkim_key: Option<PathBuf>,
    /// The DKIM selector (s=).
    #[arg(long, value_name = "S", requires = "dkim_key")]
    pub dkim_selector: Option<String>,
    /// The DKIM signing domain (d=).
    #[arg(long, value_name = "D", requires = "dkim_key")]
    pub dkim_domain: Option<String>,
    #[command(flatten)]
    pub compose: ComposeFlags,
    /// Recipients (envelope only; added to those from -t or the composition flags).
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Pin the server's public key: the base64 SHA-256 of its certificate's
    /// SubjectPublicKeyInfo, as curl's --pinnedpubkey sha256//... takes it
    /// (repeatable: the key must match one). Checked in addition to the
    /// certificate authority and host name, unless --pin-only.
    #[arg(long, value_name = "BASE64", help_heading = "TLS options")]
    pub pin_sha256: Vec<String>,
    /// Accept the server when, and only when, its key matches a
    /// --pin-sha256, instead of checking it against certificate
    /// authorities: for a self-signed server. The host name and the
    /// certificate's dates are then not checked.
    #[arg(
        long,
        requires = "pin_sha256",
        conflicts_with = "ca_file",
        help_heading = "TLS options"
    )]
    pub pin_only: bool,
    /// Present this client certificate (PEM, then any intermediates) when
    /// the server asks for one; needs --client-key.
    #[arg(
        long,
        value_name = "PEM",
        requires = "client_key",
        help_heading = "TLS options"
    )]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM, unencrypted; warns when other
    /// users can read the file).
    #[arg(
        long,
        value_name = "PEM",
        requires = "client_cert",
        help_heading = "TLS options"
    )]
    pub client_key: Option<PathBuf>,
    /// The oldest TLS version accepted.
    #[arg(
        long,
        value_enum,
        value_name = "VERSION",
        default_value_t,
        help_heading = "TLS options"
    )]
    pub tls_min: TlsMinArg,
}

/// Runs `send`; the exit code says whether every recipient got the message.
pub fn run(args: SendArgs) -> Result<u8, Failure> {
    let client = client(&args)?;
    let report = if args.compose.any() {
        send_composed(&args, &client)?
    } else {
        send_raw(&args, &client)?
    };
    Ok(report_outcome(&report))
}

fn client(args: &SendArgs) -> Result<Client, Failure> {
    let security = match args.security {
        SecurityArg::Implicit => Security::ImplicitTls,
        SecurityArg::Starttls => Security::StartTls,
        SecurityArg::ImplicitOrStarttls => Security::ImplicitTlsOrStartTls,
    };
    let mut builder = Client::builder(&args.host)
        .security(security)
        .starttls_fallback_port(args.starttls_port);
    if let Some(port) = args.port {
        builder = builder.port(port);
    }
    if let Some(user) = &args.user {
        let password = args.password.read()?;
        builder = builder.credentials(Credentials::new(user, password.as_str()));
    }
    if !args.auth_mechanism.is_empty() {
        let mechanisms: Vec<Mechanism> = args
            .auth_mechanism
            .iter()
            .map(|mechanism| match mechanism {
                MechanismArg::Plain => Mechanism::Plain,
                MechanismArg::Login => Mechanism::Login,
            })
            .collect();
        builder = builder.auth_mechanisms(&mechanisms);
    }
    for path in &args.ca_file {
        builder = builder.add_root_certificates_file(path)?;
    }
    if let Some(name) = &args.ehlo {
        builder = builder.ehlo_name(name);
    }
    if let Some(seconds) = args.timeout {
        builder = builder.timeouts(Timeouts::uniform(Duration::from_secs(seconds)));
    }
    if args.all_recipients_or_none {
        builder = builder.recipient_policy(RecipientPolicy::AllOrNone);
    }
    if let (Some(key), Some(selector), Some(domain)) =
        (&args.dkim_key, &args.dkim_selector, &args.dkim_domain)
    {
        let pem = secret_file::read("--dkim-key", key).map_err(Failure::Config)?;
        let signer = DkimSigner::from_pem(&pem, selector, domain)
            .map_err(|error| Failure::Config(format!("--dkim-key {}: {error}", key.display())))?;
        builder = builder.dkim(signer);
    }
    for pin in &args.pin_sha256 {
        builder = builder
            .pin_sha256(pin)
            .map_err(|error| Failure::Usage(format!("--pin-sha256: {error}")))?;
    }
    builder = builder.pin_only(args.pin_only);
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        let chain = std::fs::read(cert).map_err(|error| {
            Failure::Config(format!("--client-cert {}: {error}", cert.display()))
        })?;
        let key_pem = secret_file::read("--client-key", key).map_err(Failure::Config)?;
        builder = builder
            .client_certificate(&chain, &key_pem)
            .map_err(|error| {
                Failure::Config(format!(
                    "--client-cert {} with --client-key {}: {error}",
                    cert.display(),
                    key.display()
                ))
            })?;
    }
    builder = builder.min_tls_version(match args.tls_min {
        TlsMinArg::Tls12 => TlsVersion::Tls12,
        TlsMinArg::Tls13 => TlsVersion::Tls13,
    });
    if args.verbose {
        builder = builder.on_trace(verbose::to_stderr);
    }
    Ok(builder.build()?)
}

fn send_composed(args: &SendArgs, client: &Client) -> Result<SendReport, Failure> {
    if args.message.is_some() || args.read_recipients {
        return Err(Failure::Usage(
            "--message and -t read an existing message; they cannot be combined with composition flags".into(),
        ));
    }
    let email = args.compose.build(args.from.as_deref())?;
    email.validate().or_else(|error| {
        // Recipients given only as arguments are fine: the envelope has them.
        if matches!(error, tls_mailer::MessageError::NoRecipients) && !args.recipients.is_empty() {
            Ok(())
        } else {
            Err(Failure::from(error))
        }
    })?;
    let sender = args
        .envelope_from
        .clone()
        .or_else(|| email.envelope_sender())
        .ok_or_else(|| Failure::Usage("give --from (the From header) or --envelope-from".into()))?;
    let mut recipients = email.envelope_recipients();
    recipients.extend(args.recipients.iter().cloned());
    let envelope = envelope(&sender, &recipients)?;
    let bytes = email.to_bytes()?;
    Ok(client.send(&envelope, &bytes)?)
}

fn send_raw(args: &SendArgs, client: &Client) -> Result<SendReport, Failure> {
    let message = message_input::open(args.message.as_deref())?.keep_bcc(args.keep_bcc);
    let mut recipients = Vec::new();
    if args.read_recipients {
        let from_header = message.envelope_recipients()?;
        recipients.extend(
            from_header
                .iter()
                .map(|address| address.as_str().to_owned()),
        );
    }
    recipients.extend(args.recipients.iter().cloned());
    let sender = match args.envelope_from.clone().or_else(|| args.from.clone()) {
        Some(sender) => sender,
        None => message_input::sender(&message)?,
    };
    let envelope = envelope(&sender, &recipients)?;
    let info = BodyInfo {
        size: message.size(),
        eight_bit: None,
    };
    let mut stream = message.into_reader();
    Ok(client.send_reader(&envelope, &mut stream, info)?)
}

fn envelope(sender: &str, recipients: &[String]) -> Result<Envelope, Failure> {
    if recipients.is_empty() {
        return Err(Failure::Usage(
            "no recipient: give RECIPIENT arguments, --to/--cc/--bcc, or -t to read them from the message".into(),
        ));
    }
    Envelope::new(sender, recipients).map_err(|error| Failure::BadMessage(error.to_string()))
}

/// Prints the outcome and returns the exit code: 0 when every recipient was
/// accepted, 67 when some were refused, whatever their codes. The message went
/// to the others, so sending it again would duplicate it for them: a caller
/// that reads 75 as "send it all again" must not see 75 here. Each refusal is
/// named with its reply, and a temporary one says that that recipient alone
/// may be retried.
fn report_outcome(report: &SendReport) -> u8 {
    let protection = match (&report.security, &report.tls) {
        (tls_mailer::Security::ImplicitTls, Some(tls)) => format!("implicit TLS {}", tls.version),
        (tls_mailer::Security::StartTls, Some(tls)) => format!("STARTTLS {}", tls.version),
        _ => "no TLS".to_owned(),
    };
    let queue = report
        .queue_id
        .as_deref()
        .map(|id| format!("queue id {id}; "))
        .unwrap_or_default();
    println!("sent: {} ({queue}{protection})", report.reply);
    let mut refused_count = 0;
    for refused in report.rejected() {
        let kind = if refused.reply.is_transient() {
            "temporary: that recipient may be retried alone"
        } else {
            "permanent"
        };
        eprintln!(
            "tls-mailer: refused <{}>: {} ({kind})",
            refused.address, refused.reply
        );
        refused_count += 1;
    }
    if refused_count == 0 {
        return 0;
    }
    let total = report.recipients.len();
    eprintln!(
        "tls-mailer: the message went to {} of {total} recipients; do not send it \
         to all of them again",
        total - refused_count
    );
    exit::NO_USER
}
