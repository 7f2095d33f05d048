//! `tls-mailer`: send e-mail over implicit TLS (or required STARTTLS) from a
//! shell, a cron job or `git send-email`.
#![warn(missing_docs)]

mod batch;
mod completions;
mod compose;
mod config;
mod connection;
mod demo;
mod demo_server;
mod exit;
mod keyring;
mod man;
mod message_input;
mod message_log;
mod oauth;
mod password;
mod probe;
mod queue;
mod secret_file;
mod send;
mod sendmail;
mod verbose;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tls-mailer",
    version,
    about = "Send e-mail over implicit TLS (port 465) or required STARTTLS (587); never in plaintext.",
    after_help = exit::TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a message from stdin or --message FILE, or one built from flags.
    #[command(after_help = exit::TABLE)]
    Send(Box<send::SendArgs>),
    /// Build a message from flags and print it (or --json) without sending.
    Compose(Box<compose::ComposeArgs>),
    /// Send a sample message to an embedded local server: no setup needed.
    Demo(demo::DemoArgs),
    /// The outbox of `send --queue-on-failure`: list, show, remove, flush.
    Queue(queue::QueueArgs),
    /// Send message files (and the files of directories), each with the
    /// envelope from its headers as `send -t`, over a few reused connections.
    #[command(after_help = batch::BATCH_TABLE)]
    Batch(Box<batch::BatchArgs>),
    /// The configuration file: check it (and its servers), import msmtp's.
    Config(config::ConfigArgs),
    /// What a server offers on its implicit-TLS and STARTTLS ports (TLS,
    /// certificate, pin, capabilities), and which to use; never logs in.
    Probe(Box<probe::ProbeArgs>),
    /// OAuth 2.0 for an account with an [oauth] table: `login` (device flow
    /// or browser), `token` (print a valid access token), `logout`.
    #[command(name = "oauth")]
    OAuth(oauth::OAuthArgs),
    /// The system keyring's secrets for --password-keyring: set, delete.
    Keyring(keyring::KeyringArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (troff), or write one per command with --dir.
    Man(man::ManArgs),
    /// Act as sendmail (as the binary does when run through a link named
    /// `sendmail`): `-t -oi`, recipients, `-f`, `-F`, `-N/-R/-V`; `-bs` for
    /// an SMTP dialogue on stdin and stdout. `tls-mailer sendmail --help`
    /// lists its options.
    #[command(disable_help_flag = true)]
    Sendmail {
        /// sendmail's arguments.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<OsString>,
    },
}

/// The configuration file's account under the flags of `send`, picked by
/// --account, else by --from (the message's From is read only after
/// connecting, so `-t` alone matches nothing), else the default; its `from`
/// is the sender when --from is not given (its address alone for a raw
/// message, where --from is the envelope sender).
fn send_with_config(args: &mut send::SendArgs) -> Result<(), exit::Failure> {
    let from = args.connection.apply_config(args.from.as_deref(), true)?;
    if args.log.is_none() {
        args.log.clone_from(&args.connection.logfile);
    }
    if args.queue_on_failure {
        args.spool = config::spool(args.spool.take(), args.connection.config.as_deref())?;
    }
    if args.from.is_none() {
        args.from = match from {
            Some(from) if !args.compose.any() => Some(config::bare_address(&from).to_owned()),
            from => from,
        };
    }
    Ok(())
}

/// `queue`: the outbox of the file's `[queue] spool` unless --spool; for
/// flush, the account of --account (only: the entries recorded their server).
fn queue_with_config(args: &mut queue::QueueArgs) -> Result<(), exit::Failure> {
    let mut config = None;
    if let queue::QueueCommand::Flush(flush) = &mut args.command {
        flush.connection.apply_config(None, false)?;
        config = flush.connection.config.clone();
    }
    args.spool = config::spool(args.spool.take(), config.as_deref())?;
    Ok(())
}

fn main() -> ExitCode {
    // sendmail's command line is not clap's: read before clap sees it.
    if let Some(words) = sendmail::invocation() {
        return sendmail::main(words);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // --help and --version are not errors; anything else is a usage error.
            return ExitCode::from(if error.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Send(mut args) => send_with_config(&mut args).and_then(|()| send::run(*args)),
        Command::Compose(args) => compose::run(&args).map(|()| 0),
        Command::Demo(args) => demo::run(&args).map(|()| 0),
        Command::Queue(mut args) => queue_with_config(&mut args).and_then(|()| queue::run(args)),
        Command::Batch(mut args) => args
            .connection
            .apply_config(None, true)
            .and_then(|_| batch::run(&args)),
        Command::Config(args) => config::run(args),
        Command::Probe(mut args) => {
            if let Some(host) = args.target.take() {
                args.connection.host = Some(host);
            }
            args.connection
                .apply_config(None, false)
                .and_then(|_| probe::run(&args))
        }
        Command::OAuth(args) => oauth::run(&args),
        Command::Keyring(args) => keyring::run(&args),
        Command::Completions(args) => completions::run(&args).map(|()| 0),
        Command::Man(args) => man::run(&args).map(|()| 0),
        Command::Sendmail { args } => return sendmail::main(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("tls-mailer: {failure}");
            if let Some(hint) = exit::hint(&failure) {
                eprintln!("tls-mailer: hint: {hint}");
            }
            ExitCode::from(exit::code(&failure))
        }
    }
}
