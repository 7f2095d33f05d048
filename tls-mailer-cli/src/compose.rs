//! Composition flags: build an [`Email`] from the command line, and the
//! `compose` subcommand that prints it instead of sending it.

use std::io::Write;
use std::path::PathBuf;

use tls_mailer::{Content, Email, Mailbox};

use crate::exit::Failure;

/// Flags that describe a message to build.
#[derive(Debug, Default, clap::Args)]
pub struct ComposeFlags {
    /// A To address (repeatable); "Name <addr>" accepted.
    #[arg(long, value_name = "ADDR")]
    pub to: Vec<String>,
    /// A Cc address (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub cc: Vec<String>,
    /// A Bcc address (repeatable): an envelope recipient, never a header.
    #[arg(long, value_name = "ADDR")]
    pub bcc: Vec<String>,
    /// A Reply-To address (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub reply_to: Vec<String>,
    /// The subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// The plain-text body.
    #[arg(long, conflicts_with = "text_file")]
    pub text: Option<String>,
    /// Read the plain-text body from a file.
    #[arg(long, value_name = "FILE")]
    pub text_file: Option<PathBuf>,
    /// Read the HTML body from a file.
    #[arg(long, value_name = "FILE")]
    pub html_file: Option<PathBuf>,
    /// Attach a file (repeatable); its type is guessed from the name.
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// An inline part for `cid:` references in the HTML (repeatable).
    #[arg(long, value_name = "CID=FILE")]
    pub inline: Vec<String>,
    /// An extra header (repeatable), e.g. "X-Campaign: autumn".
    #[arg(long, value_name = "NAME: VALUE")]
    pub header: Vec<String>,
}

impl ComposeFlags {
    /// Whether any composition flag was given.
    pub fn any(&self) -> bool {
        !(self.to.is_empty()
            && self.cc.is_empty()
            && self.bcc.is_empty()
            && self.reply_to.is_empty()
            && self.subject.is_none()
            && self.text.is_none()
            && self.text_file.is_none()
            && self.html_file.is_none()
            && self.attach.is_empty()
            && self.inline.is_empty()
            && self.header.is_empty())
    }

    /// Builds the message; `from` is the From header ("Name <addr>" accepted).
    pub fn build(&self, from: Option<&str>) -> Result<Email, Failure> {
        let mut email = Email::new();
        if let Some(from) = from {
            email = email.with_from(mailbox("--from", from)?);
        }
        for address in &self.to {
            email = email.with_to(mailbox("--to", address)?);
        }
        for address in &self.cc {
            email = email.with_cc(mailbox("--cc", address)?);
        }
        for address in &self.bcc {
            email = email.with_bcc(mailbox("--bcc", address)?);
        }
        for address in &self.reply_to {
            email = email.with_reply_to(mailbox("--reply-to", address)?);
        }
        if let Some(subject) = &self.subject {
            email = email.with_subject(subject.clone());
        }
        if let Some(text) = &self.text {
            email = email.with_text(text);
        }
        if let Some(path) = &self.text_file {
            email = email.with_text(read_text("--text-file", path)?);
        }
        if let Some(path) = &self.html_file {
            email = email.with_html(read_text("--html-file", path)?);
        }
        for spec in &self.inline {
            let Some((cid, path)) = spec.split_once('=') else {
                return Err(Failure::Usage(format!(
                    "--inline {spec:?}: write CID=FILE, e.g. logo=logo.png"
                )));
            };
            let content = file_content("--inline", path.as_ref())?;
            email = email.with_inline(cid, content)?;
        }
        for path in &self.attach {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            email = email.with_attachment(&name, file_content("--attach", path)?)?;
        }
        for header in &self.header {
            let Some((name, value)) = header.split_once(':') else {
                return Err(Failure::Usage(format!(
                    "--header {header:?}: write \"Name: value\""
                )));
            };
            email = email.with_header(name.trim(), value.trim())?;
        }
        Ok(email)
    }
}

fn mailbox(flag: &str, text: &str) -> Result<Mailbox, Failure> {
    text.parse::<Mailbox>()
        .map_err(|error| Failure::BadMessage(format!("{flag} {text:?}: {error}")))
}

fn read_text(flag: &str, path: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|error| Failure::NoInput(format!("{flag} {}: {error}", path.display())))
}

fn file_content(flag: &str, path: &std::path::Path) -> Result<Content, Failure> {
    // Checked now (it must exist and be a file); read when the message is
    // written, so an attachment of any size is streamed.
    Content::from_path(path)
        .map_err(|error| Failure::NoInput(format!("{flag} {}: {error}", path.display())))
}

/// A failure to write a composed message: a part's file that could not be
/// read (or changed) while it was written is named as the input it is.
pub fn write_failure(error: tls_mailer::MessageError) -> Failure {
    match error {
        tls_mailer::MessageError::Io {
            path: Some(path),
            source,
        } => Failure::NoInput(format!(
            "{}: {source} (an --attach or --inline file, read while the message was written)",
            path.display()
        )),
        other => other.into(),
    }
}

/// Streams the composed message into `output`.
fn write_message(email: &Email, output: impl Write, target: &str) -> Result<(), Failure> {
    let mut output = std::io::BufWriter::with_capacity(64 * 1024, output);
    match email.write_to(&mut output) {
        Ok(()) => {}
        Err(tls_mailer::MessageError::Io { path: None, source }) => {
            return Err(Failure::Output {
                target: target.into(),
                error: source,
            });
        }
        Err(error) => return Err(write_failure(error)),
    }
    output.flush().map_err(|error| Failure::Output {
        target: target.into(),
        error,
    })
}

/// `tls-mailer compose`: build the message and print it (or its summary).
#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// The From header ("Name <addr>" accepted).
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    #[command(flatten)]
    pub flags: ComposeFlags,
    /// Write the message to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print a JSON summary (addresses, subject, parts) instead of the message.
    #[arg(long)]
    pub json: bool,
}

/// Runs `compose`.
pub fn run(args: &ComposeArgs) -> Result<(), Failure> {
    let email = args.flags.build(args.from.as_deref())?;
    // A message needs a From; recipients can still come at sending time.
    match email.validate() {
        Ok(()) | Err(tls_mailer::MessageError::NoRecipients) => {}
        Err(error) => return Err(error.into()),
    }
    if args.json {
        let mut json = serde_json::to_vec_pretty(&email.dump()).map_err(|error| {
            Failure::BadMessage(format!("cannot summarise the message: {error}"))
        })?;
        json.push(b'\n');
        return match &args.output {
            Some(path) => std::fs::write(path, &json).map_err(|error| Failure::Output {
                target: path.display().to_string(),
                error,
            }),
            None => std::io::stdout()
                .lock()
                .write_all(&json)
                .map_err(|error| Failure::Output {
                    target: "the message to stdout".into(),
                    error,
                }),
        };
    }
    // The message is streamed: attachments are read and encoded as they
    // are written, never held whole.
    match &args.output {
        Some(path) => {
            let target = path.display().to_string();
            let file = std::fs::File::create(path).map_err(|error| Failure::Output {
                target: target.clone(),
                error,
            })?;
            write_message(&email, file, &target).inspect_err(|_| {
                // No half-written message left behind.
                let _ = std::fs::remove_file(path);
            })
        }
        None => write_message(&email, std::io::stdout().lock(), "the message to stdout"),
    }
}
