//! The sendmail drop-in: `tls-mailer sendmail ARGS`, or the binary run
//! through a link named `sendmail`. The command line is sendmail's
//! ([`args`]); the message is sent by `send` itself (account choice, the
//! client, Bcc removal, `-t`, exit codes), from a private temporary copy of
//! stdin, or relayed from an SMTP dialogue with `-bs` ([`dialogue`]).

pub mod args;
mod dialogue;
mod message;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args as _, CommandFactory as _, FromArgMatches as _};

use crate::connection::ConnectionArgs;
use crate::exit::{self, Failure};
use crate::send::{self, SendArgs};

/// `send`'s flags, to parse the long options a sendmail line hands on.
#[derive(Debug, clap::Parser)]
#[command(name = "sendmail", no_binary_name = true)]
struct SendFlags {
    #[command(flatten)]
    send: SendArgs,
}

/// The sendmail arguments when the program is run as sendmail: through a
/// link named `sendmail` (`/usr/sbin/sendmail -t -oi`), or as
/// `tls-mailer sendmail ...`.
pub fn invocation() -> Option<Vec<OsString>> {
    let mut args = std::env::args_os();
    let program = args.next()?;
    let name = Path::new(&program).file_name()?;
    if name == "sendmail" {
        return Some(args.collect());
    }
    let mut rest = args.peekable();
    if rest.peek().is_some_and(|first| first == "sendmail") {
        rest.next();
        return Some(rest.collect());
    }
    None
}

/// Runs sendmail with `words` and reports a failure as `tls-mailer` does.
pub fn main(words: Vec<OsString>) -> ExitCode {
    match run(words) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("tls-mailer: {failure}");
            if let Failure::Usage(_) = failure {
                eprintln!("{}", args::USAGE);
            } else if let Some(hint) = exit::hint(&failure) {
                eprintln!("tls-mailer: hint: {hint}");
            }
            ExitCode::from(exit::code(&failure))
        }
    }
}

fn run(words: Vec<OsString>) -> Result<u8, Failure> {
    let command = SendFlags::command();
    let connection: Vec<String> = ConnectionArgs::augment_args(clap::Command::new("connection"))
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect();
    let parsed = args::parse(words, |name| {
        args::send_long_option(&command, &connection, name)
    })
    .map_err(Failure::Usage)?;
    if parsed.help {
        println!("{}", args::USAGE);
        return Ok(0);
    }
    let mut send = send_args(&parsed, command)?;
    if parsed.smtp_dialogue {
        if parsed.read_recipients || !parsed.recipients.is_empty() {
            return Err(Failure::Usage(
                "-bs takes the recipients from the dialogue's RCPT commands: give no -t and \
                 no RECIPIENT"
                    .into(),
            ));
        }
        if send.queue_on_failure {
            return Err(Failure::Usage(
                "-bs gives the caller the server's verdict while it waits: --queue-on-failure \
                 cannot be used with it"
                    .into(),
            ));
        }
        // A 250 only when the server took every recipient (see dialogue.rs).
        send.all_recipients_or_none = true;
        let client = with_config(&mut send).and_then(|()| send::client_for(&send));
        return dialogue::run(client, parsed.full_name);
    }
    with_config(&mut send)?;
    let spool = message::spool(
        std::io::stdin().lock(),
        parsed.ignore_dots,
        send.from.as_deref(),
        parsed.full_name.as_deref(),
    )?;
    send.message = Some(spool.path().to_owned());
    // Quiet on success, as sendmail is: PHP's mail() and cron pass our
    // stdout on to theirs. -v says what happened.
    send::quiet_success(!parsed.verbose);
    let code = send::run(send);
    drop(spool);
    code
}

/// The account of the configuration file under the flags, as `send`
/// picks it (-a, else the one whose from matches -f, else the default);
/// without one and without --host there is nowhere to send.
fn with_config(send: &mut SendArgs) -> Result<(), Failure> {
    crate::send_with_config(send)?;
    if send.connection.host.is_none() {
        let place = send
            .connection
            .config
            .clone()
            .or_else(crate::config::default_path)
            .map_or_else(
                || "a configuration file".to_owned(),
                |path| path.display().to_string(),
            );
        return Err(Failure::Config(format!(
            "no server to send through: write an account (host, user, password source, from) \
             in {place}, or give -C FILE, or --host HOST"
        )));
    }
    Ok(())
}

/// `send`'s arguments for what the sendmail line asks.
fn send_args(parsed: &args::SendmailArgs, command: clap::Command) -> Result<SendArgs, Failure> {
    let matches = command
        .try_get_matches_from(&parsed.send_options)
        .map_err(|error| Failure::Usage(first_line(&error.to_string())))?;
    let mut send = SendFlags::from_arg_matches(&matches)
        .map_err(|error| Failure::Usage(first_line(&error.to_string())))?
        .send;
    let dsn = parsed.notify.is_some() || parsed.ret.is_some() || parsed.envid.is_some();
    if dsn && send.queue_on_failure {
        return Err(Failure::Usage(
            "-N, -R and -V cannot be used with --queue-on-failure: the outbox does not \
             record them"
                .into(),
        ));
    }
    send.dsn_notify = parsed.notify;
    send.dsn_ret = parsed.ret;
    send.dsn_envid.clone_from(&parsed.envid);
    if parsed.config.is_some() {
        send.connection.config.clone_from(&parsed.config);
    }
    if parsed.account.is_some() {
        send.connection.account.clone_from(&parsed.account);
    }
    send.connection.verbose |= parsed.verbose;
    send.from.clone_from(&parsed.sender);
    send.read_recipients = parsed.read_recipients;
    send.recipients.clone_from(&parsed.recipients);
    Ok(send)
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}
