//! `tls-mailer send`: a raw message from stdin or a file, or one composed
//! from flags, to an SMTP server over implicit TLS or required STARTTLS.

use std::io::{Chain, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tls_mailer::{
    BodyInfo, Client, DkimSigner, Dsn, DsnReturn, Envelope, MailOptions, Notify, RecipientPolicy,
    SendReport,
};

use crate::compose::ComposeFlags;
use crate::connection::{Clients, ConnectionArgs};
use crate::exit::{self, Failure};
use crate::message_log::{Logged, MessageLog};
use crate::{message_input, queue, secret_file};

/// Arguments of `tls-mailer send`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("dsn")
        .multiple(true)
        .args(["dsn_notify", "dsn_ret", "dsn_envid"])
))]
pub struct SendArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
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
    /// The raw message is binary MIME (parts with Content-Transfer-Encoding:
    /// binary): send it byte for byte by BDAT with BODY=BINARYMIME, no line
    /// end changed. The server must offer BINARYMIME and CHUNKING, or
    /// nothing is sent.
    #[arg(long, conflicts_with = "queue_on_failure")]
    pub binary: bool,
    /// Append a line per message to this file (created 0600): time, server,
    /// account, sender, recipients, size, result (sent, partial, deferred,
    /// failed, queued) and the server's reply. Never a secret.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Read the message from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub message: Option<PathBuf>,
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
    /// Ask for delivery status notifications (DSN, RFC 3461) for every
    /// recipient: "never", or one or more of success, failure, delay,
    /// separated by commas. Refused before anything is sent when the server
    /// does not offer DSN, unless --dsn-optional.
    #[arg(
        long,
        value_name = "WHEN",
        value_parser = parse_notify,
        help_heading = "Delivery options",
        conflicts_with = "queue_on_failure"
    )]
    pub dsn_notify: Option<Notify>,
    /// What a failure report returns: the full message, or its headers only.
    #[arg(
        long,
        value_enum,
        value_name = "WHAT",
        help_heading = "Delivery options",
        conflicts_with = "queue_on_failure"
    )]
    pub dsn_ret: Option<DsnRetArg>,
    /// An identifier for the message, quoted back in every report
    /// (printable ASCII, at most 100 characters once encoded).
    #[arg(
        long,
        value_name = "ID",
        help_heading = "Delivery options",
        conflicts_with = "queue_on_failure"
    )]
    pub dsn_envid: Option<String>,
    /// Send without the --dsn-* requests when the server does not offer DSN.
    #[arg(long, requires = "dsn", help_heading = "Delivery options")]
    pub dsn_optional: bool,
    /// REQUIRETLS (RFC 8689): every server on the way must relay the message
    /// over verified TLS, or return it. Refused before anything is sent when
    /// the server does not offer it.
    #[arg(
        long,
        help_heading = "Delivery options",
        conflicts_with = "queue_on_failure"
    )]
    pub require_tls: bool,
    #[command(flatten)]
    pub compose: ComposeFlags,
    /// Recipients (envelope only; added to those from -t or the composition flags).
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Keep the message in the outbox when it cannot be sent for now (a 4xx
    /// reply, no connection, a timeout): it is stored before the first
    /// attempt, the command says "queued as ID" and exits 0, and `tls-mailer
    /// queue flush` sends it later. A refusal for good is never queued.
    #[arg(long)]
    pub queue_on_failure: bool,
    /// The outbox directory (default: $XDG_STATE_HOME/tls-mailer/outbox,
    /// else ~/.local/state/tls-mailer/outbox).
    #[arg(long, value_name = "DIR", requires = "queue_on_failure")]
    pub spool: Option<PathBuf>,
}

/// What a DSN failure report returns (`--dsn-ret`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DsnRetArg {
    /// The whole message (RET=FULL).
    Full,
    /// Its header section only (RET=HDRS).
    Hdrs,
}

fn parse_notify(text: &str) -> Result<Notify, String> {
    text.parse::<Notify>()
        .map_err(|error| error.reason.to_string())
}

/// The delivery options the flags ask for.
fn mail_options(args: &SendArgs) -> Result<MailOptions, Failure> {
    let mut options = MailOptions::new()
        .with_require_tls(args.require_tls)
        .with_dsn_optional(args.dsn_optional);
    if args.dsn_notify.is_some() || args.dsn_ret.is_some() || args.dsn_envid.is_some() {
        let mut dsn = Dsn::new();
        if let Some(notify) = args.dsn_notify {
            dsn = dsn.notify(notify);
        }
        if let Some(ret) = args.dsn_ret {
            dsn = dsn.ret(match ret {
                DsnRetArg::Full => DsnReturn::Full,
                DsnRetArg::Hdrs => DsnReturn::Headers,
            });
        }
        if let Some(id) = &args.dsn_envid {
            dsn = dsn
                .envid(id)
                .map_err(|error| Failure::Usage(format!("--dsn-envid: {error}")))?;
        }
        options = options.with_dsn(dsn);
    }
    Ok(options)
}

/// Runs `send`; the exit code says whether every recipient got the message.
pub fn run(args: SendArgs) -> Result<u8, Failure> {
    let lmtp = args.connection.protocol() == tls_mailer::Protocol::Lmtp;
    if args.queue_on_failure && (lmtp || args.connection.socket().is_some()) {
        return Err(Failure::Usage(
            "--queue-on-failure keeps SMTP routes only: it cannot be combined with \
             --protocol lmtp or --socket"
                .into(),
        ));
    }
    let signer = dkim_signer(&args)?;
    // A composed message is signed here, in a first pass over it, and
    // streamed behind its signature; a raw one is signed by the client
    // (which spools it, since stdin cannot be read twice).
    let composed = args.compose.any();
    if composed && args.binary {
        return Err(Failure::Usage(
            "--binary is for a raw message (stdin or --message); a message built from flags \
             is never binary: its attachments are base64"
                .into(),
        ));
    }
    let client = client(&args, if composed { None } else { signer.clone() })?;
    // Opened before the message is read: a spool that cannot be written is
    // found out before stdin is consumed.
    let mut outbox = if args.queue_on_failure {
        Some(queue::open(args.spool.as_deref())?)
    } else {
        None
    };
    let log = match &args.log {
        Some(path) => Some(MessageLog::open(
            path,
            args.connection.host.as_deref().unwrap_or_default(),
            args.connection.account.as_deref(),
        )?),
        None => None,
    };
    let mut send = |envelope: &Envelope, message: &mut dyn Read, info: BodyInfo| match &mut outbox {
        Some(outbox) => queue::send_or_queue(outbox, &client, envelope, message, log.as_ref()),
        None => {
            let outcome = client.send_reader(envelope, message, info);
            if let Some(log) = &log {
                log.record(envelope, info.size, Logged::of(&outcome));
            }
            Ok(report_outcome(&outcome?))
        }
    };
    if composed {
        send_composed(&args, signer.as_ref(), &mut send)
    } else {
        send_raw(&args, &mut send)
    }
}

/// Sends a message (or queues it); the exit code.
type Send<'a> = dyn FnMut(&Envelope, &mut dyn Read, BodyInfo) -> Result<u8, Failure> + 'a;

fn client(args: &SendArgs, signer: Option<DkimSigner>) -> Result<Client, Failure> {
    let route = args.connection.route()?;
    let mut builder = Clients::new(&args.connection)
        .builder(&route)?
        .mail_options(mail_options(args)?);
    if args.all_recipients_or_none {
        builder = builder.recipient_policy(RecipientPolicy::AllOrNone);
    }
    if let Some(signer) = signer {
        builder = builder.dkim(signer);
    }
    Ok(builder.build()?)
}

/// The DKIM signer the flags ask for.
fn dkim_signer(args: &SendArgs) -> Result<Option<DkimSigner>, Failure> {
    let (Some(key), Some(selector), Some(domain)) =
        (&args.dkim_key, &args.dkim_selector, &args.dkim_domain)
    else {
        return Ok(None);
    };
    let pem = secret_file::read("--dkim-key", key).map_err(Failure::Config)?;
    let signer = DkimSigner::from_pem(&pem, selector, domain)
        .map_err(|error| Failure::Config(format!("--dkim-key {}: {error}", key.display())))?;
    Ok(Some(signer))
}

fn send_composed(
    args: &SendArgs,
    signer: Option<&DkimSigner>,
    send: &mut Send<'_>,
) -> Result<u8, Failure> {
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
    // Streamed: attachments are read and encoded as they are sent, and
    // SIZE is exact without a counting pass.
    let mut message = match signer {
        Some(signer) => signer.signed_reader(&email),
        None => email.reader(),
    }
    .map_err(crate::compose::write_failure)?;
    let info = BodyInfo {
        size: Some(message.size()),
        eight_bit: Some(message.is_eight_bit()),
        binary: false,
    };
    send(&envelope, &mut message, info)
}

fn send_raw(args: &SendArgs, send: &mut Send<'_>) -> Result<u8, Failure> {
    let mut raw = RawSend::open(
        args.message.as_deref(),
        args.keep_bcc,
        args.read_recipients,
        &args.recipients,
        args.envelope_from.clone().or_else(|| args.from.clone()),
    )?;
    raw.info.binary = args.binary;
    send(&raw.envelope, &mut raw.stream, raw.info)
}

/// A raw message ready to go, as `send` takes it: the envelope, what is
/// known of its size, and the stream (Bcc removed unless kept). `batch`
/// reads each of its files with this too (as `send -t --message FILE`).
pub struct RawSend {
    pub envelope: Envelope,
    pub info: BodyInfo,
    pub stream: Chain<Cursor<Vec<u8>>, Box<dyn Read>>,
}

impl RawSend {
    /// Reads the message at `path` (stdin when `None`): recipients from its
    /// To, Cc and Bcc with `read_recipients`, then `recipients`; the sender
    /// given, else the one its headers name.
    pub fn open(
        path: Option<&Path>,
        keep_bcc: bool,
        read_recipients: bool,
        recipients: &[String],
        sender: Option<String>,
    ) -> Result<Self, Failure> {
        let message = message_input::open(path)?.keep_bcc(keep_bcc);
        let mut all = Vec::new();
        if read_recipients {
            let from_header = message.envelope_recipients()?;
            all.extend(
                from_header
                    .iter()
                    .map(|address| address.as_str().to_owned()),
            );
        }
        all.extend(recipients.iter().cloned());
        let sender = match sender {
            Some(sender) => sender,
            None => message_input::sender(&message)?,
        };
        let envelope = envelope(&sender, &all)?;
        let info = BodyInfo {
            size: message.size(),
            eight_bit: None,
            binary: false,
        };
        Ok(Self {
            envelope,
            info,
            stream: message.into_reader(),
        })
    }
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
/// accepted, 67 when some were refused (at RCPT, or under LMTP after the
/// message), whatever their codes. The message went
/// to the others, so sending it again would duplicate it for them: a caller
/// that reads 75 as "send it all again" must not see 75 here. Each refusal is
/// named with its reply, and a temporary one says that that recipient alone
/// may be retried.
pub fn report_outcome(report: &SendReport) -> u8 {
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
    if !QUIET_SUCCESS.load(Ordering::Relaxed) {
        println!("sent: {} ({queue}{protection})", report.reply);
    }
    let mut refused_count = 0;
    for refused in report.rejected() {
        let kind = if refused.reply.is_transient() {
            "temporary: that recipient may be retried alone"
        } else {
            "permanent"
        };
        // LMTP answers each recipient again after the message.
        let when = if refused.command == tls_mailer::CommandKind::DataEnd {
            " after the message"
        } else {
            ""
        };
        eprintln!(
            "tls-mailer: refused <{}>{when}: {} ({kind})",
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

/// The client `send` uses for a raw message (DKIM signing, if asked, by
/// the client): for `sendmail -bs`, which relays raw messages.
pub(crate) fn client_for(args: &SendArgs) -> Result<Client, Failure> {
    client(args, dkim_signer(args)?)
}

/// `report_outcome` prints no "sent:" line (sendmail is quiet on success).
static QUIET_SUCCESS: AtomicBool = AtomicBool::new(false);

/// Whether `report_outcome` keeps quiet about a message every recipient took.
pub(crate) fn quiet_success(quiet: bool) {
    QUIET_SUCCESS.store(quiet, Ordering::Relaxed);
}
