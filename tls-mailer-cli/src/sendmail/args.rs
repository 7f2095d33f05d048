//! sendmail's command line, which clap cannot read: options clustered
//! (`-toi`), values glued on or apart (`-fADDR`, `-f ADDR`), `-o` and `-B`
//! options of other mailers to ignore, and recipients anywhere.
//!
//! Long options (`--host smtp.example.org`, `--name=value`) are the flags
//! of `tls-mailer send` that make sense here (the connection flags and a
//! few others), handed on to its own parser, so that they are defined once.

use std::ffi::OsString;
use std::path::PathBuf;

use tls_mailer::{Dsn, Notify};

use crate::send::DsnRetArg;

/// What a sendmail command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SendmailArgs {
    /// Recipients given as arguments.
    pub recipients: Vec<String>,
    /// `-t`: also the To, Cc and Bcc of the message.
    pub read_recipients: bool,
    /// `-i`, `-oi`: a line with a lone "." does not end the message.
    pub ignore_dots: bool,
    /// `-f ADDR` (or the old `-r ADDR`): the envelope sender.
    pub sender: Option<String>,
    /// `-F NAME`: the full name of a From header added to a message without one.
    pub full_name: Option<String>,
    /// `-v`: the SMTP conversation on stderr.
    pub verbose: bool,
    /// `-bs`: an SMTP dialogue on stdin and stdout.
    pub smtp_dialogue: bool,
    /// `-a NAME`, `--account NAME`.
    pub account: Option<String>,
    /// `-C FILE`, `--config FILE`.
    pub config: Option<PathBuf>,
    /// `-N never|success,failure,delay`.
    pub notify: Option<Notify>,
    /// `-R full|hdrs`.
    pub ret: Option<DsnRetArg>,
    /// `-V ENVID`.
    pub envid: Option<String>,
    /// Long options for `send`'s parser, as given (`--host`, `x`).
    pub send_options: Vec<String>,
    /// `--help`.
    pub help: bool,
}

/// The `send` flags a sendmail command line may carry besides the
/// connection flags.
const SEND_FLAGS: &[&str] = &[
    "all-recipients-or-none",
    "dkim-key",
    "dkim-selector",
    "dkim-domain",
    "dsn-optional",
    "require-tls",
    "queue-on-failure",
    "spool",
];

/// Options of other sendmails that take a value and are ignored: `-h`
/// (hop count), `-L` (syslog label), `-O` (option=value), `-X` (log file).
const IGNORED_WITH_VALUE: &[char] = &['h', 'L', 'O', 'X'];

/// Options of other sendmails without a value, ignored: `-m` (send to me
/// too), `-n` (no aliasing), `-U` (initial submission), `-G` (gateway).
const IGNORED: &[char] = &['m', 'n', 'U', 'G'];

pub const USAGE: &str = "\
usage: sendmail [-t] [-i] [-f ADDR] [-F NAME] [-a ACCOUNT] [-C FILE] [-v]
                [-N never|success,failure,delay] [-R full|hdrs] [-V ENVID]
                [--host HOST ...] [--] [RECIPIENT ...]
       sendmail -bs [options]    (an SMTP dialogue on stdin and stdout)
The message is read from stdin up to its end, or up to a line with a lone
\".\" unless -i (or -oi). -t adds the To, Cc and Bcc addresses of the
message to the RECIPIENT arguments; Bcc is never sent. The account is -a,
else the one whose from matches -f, else the default one. Long options are
those of `tls-mailer send` for the connection (--host, --port, --user, ...).
Other -o and -B options are ignored, as msmtp does.";

/// Reads `args` (without the program name). `long_takes_value` says,
/// for a long option of `send` allowed here, whether it takes a value
/// (`None`: not allowed).
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    long_takes_value: impl Fn(&str) -> Option<bool>,
) -> Result<SendmailArgs, String> {
    let mut parsed = SendmailArgs::default();
    let mut args = args.into_iter().map(|arg| {
        arg.into_string()
            .map_err(|arg| format!("argument {arg:?} is not UTF-8"))
    });
    while let Some(arg) = args.next() {
        let arg = arg?;
        if arg == "--" {
            for recipient in args.by_ref() {
                parsed.recipients.push(recipient?);
            }
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            parse_long(&mut parsed, long, &mut args, &long_takes_value)?;
        } else if let Some(cluster) = arg.strip_prefix('-').filter(|rest| !rest.is_empty()) {
            parse_cluster(&mut parsed, cluster, &mut args)?;
        } else {
            parsed.recipients.push(arg);
        }
    }
    Ok(parsed)
}

type Args<'a> = dyn Iterator<Item = Result<String, String>> + 'a;

fn parse_long(
    parsed: &mut SendmailArgs,
    long: &str,
    args: &mut Args<'_>,
    long_takes_value: &impl Fn(&str) -> Option<bool>,
) -> Result<(), String> {
    let (name, glued) = match long.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (long, None),
    };
    let mut value = |what: &str| match glued.clone() {
        Some(value) => Ok(value),
        None => args
            .next()
            .unwrap_or_else(|| Err(format!("--{name} needs {what}"))),
    };
    match name {
        "help" => parsed.help = true,
        "account" => parsed.account = Some(value("an account name")?),
        "config" => parsed.config = Some(PathBuf::from(value("a file")?)),
        "verbose" => parsed.verbose = true,
        // msmtp's long name for -t.
        "read-recipients" => parsed.read_recipients = true,
        _ => match long_takes_value(name) {
            Some(takes) => {
                parsed.send_options.push(format!("--{name}"));
                match (takes, glued.is_some()) {
                    (true, _) => {
                        let given = value("a value")?;
                        parsed.send_options.push(given);
                    }
                    (false, true) => return Err(format!("--{name} takes no value")),
                    (false, false) => {}
                }
            }
            None => {
                return Err(format!(
                    "unknown option --{name}: the long options are those of `tls-mailer send` \
                     for the connection (--host, --port, --user, --password-*, --ca-file, ...), \
                     --account and --config"
                ));
            }
        },
    }
    Ok(())
}

/// One argument of short options, `-` removed: each letter an option, the
/// rest of it (or the next argument) the value of one that takes a value.
fn parse_cluster(
    parsed: &mut SendmailArgs,
    cluster: &str,
    args: &mut Args<'_>,
) -> Result<(), String> {
    for (at, option) in cluster.char_indices() {
        let glued = &cluster[at + option.len_utf8()..];
        // The value of an option that takes one: the rest of the cluster,
        // else the next argument.
        let mut value = |what: &str| -> Result<String, String> {
            if glued.is_empty() {
                args.next()
                    .unwrap_or_else(|| Err(format!("-{option} needs {what}")))
            } else {
                Ok(glued.to_owned())
            }
        };
        match option {
            't' => parsed.read_recipients = true,
            'i' => parsed.ignore_dots = true,
            'v' => parsed.verbose = true,
            'f' | 'r' => {
                parsed.sender = Some(value("the envelope sender address")?);
                return Ok(());
            }
            'F' => {
                parsed.full_name = Some(value("the sender's full name")?);
                return Ok(());
            }
            'a' => {
                parsed.account = Some(value("an account name")?);
                return Ok(());
            }
            'C' => {
                parsed.config = Some(PathBuf::from(value("a configuration file")?));
                return Ok(());
            }
            'N' => {
                let text = value("never, or success,failure,delay")?;
                let notify = text
                    .parse::<Notify>()
                    .map_err(|error| format!("-N {text}: {}", error.reason))?;
                parsed.notify = Some(notify);
                return Ok(());
            }
            'R' => {
                let text = value("full or hdrs")?;
                parsed.ret = Some(match text.to_ascii_lowercase().as_str() {
                    "full" => DsnRetArg::Full,
                    "hdrs" => DsnRetArg::Hdrs,
                    _ => return Err(format!("-R {text}: give full or hdrs")),
                });
                return Ok(());
            }
            'V' => {
                let id = value("an envelope id")?;
                Dsn::new()
                    .envid(&id)
                    .map_err(|error| format!("-V {id}: {}", error.reason))?;
                parsed.envid = Some(id);
                return Ok(());
            }
            'o' => {
                // -oi is the one that matters; -oem, -odi, -oQ... are
                // other mailers' settings, ignored.
                let setting = value("a setting, such as i")?;
                if setting == "i" {
                    parsed.ignore_dots = true;
                }
                return Ok(());
            }
            'B' => {
                // -B8BITMIME, -B7BIT: the body type, which the server is
                // told from the message itself.
                value("a body type")?;
                return Ok(());
            }
            'b' => {
                let mode = value("a mode, such as s or m")?;
                match mode.as_str() {
                    "s" => parsed.smtp_dialogue = true,
                    "m" => {}
                    _ => {
                        return Err(format!(
                            "-b{mode} is not supported: -bm (the default: deliver the message \
                             on stdin) and -bs (an SMTP dialogue on stdin and stdout) are"
                        ));
                    }
                }
                return Ok(());
            }
            'A' | 'd' => {
                // -Am/-Ac (which configuration file), -dX.Y (debugging):
                // the rest of the cluster, ignored.
                return Ok(());
            }
            option if IGNORED_WITH_VALUE.contains(&option) => {
                value("a value")?;
                return Ok(());
            }
            option if IGNORED.contains(&option) => {}
            'q' => {
                return Err(
                    "-q is not supported: tls-mailer keeps no queue of its own for sendmail; \
                     `tls-mailer queue flush` sends what --queue-on-failure kept"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "unknown option -{other}: see the usage below (other -o and -B options \
                     are accepted and ignored)"
                ));
            }
        }
    }
    Ok(())
}

/// Whether `name` is a long option of `send` that a sendmail command
/// line may carry, and whether it takes a value.
pub fn send_long_option(
    command: &clap::Command,
    connection: &[String],
    name: &str,
) -> Option<bool> {
    if !connection.iter().any(|own| own == name) && !SEND_FLAGS.contains(&name) {
        return None;
    }
    let arg = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(name))?;
    Some(arg.get_action().takes_values())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<SendmailArgs, String> {
        let takes = |name: &str| match name {
            "host" | "port" | "user" => Some(true),
            "dsn-optional" => Some(false),
            _ => None,
        };
        parse(words.split_whitespace().map(OsString::from), takes)
    }

    #[test]
    fn cron_and_git_send_email_lines() {
        let args = parse_words("-t -oi").unwrap();
        assert!(args.read_recipients && args.ignore_dots);
        assert!(args.recipients.is_empty());

        let args =
            parse_words("-i -f alice@example.org bob@example.org carol@example.org").unwrap();
        assert!(args.ignore_dots && !args.read_recipients);
        assert_eq!(args.sender.as_deref(), Some("alice@example.org"));
        assert_eq!(args.recipients, ["bob@example.org", "carol@example.org"]);
    }

    #[test]
    fn values_glued_or_apart_and_clusters() {
        let args = parse_words("-toi -falice@example.org -F Alice -vt").unwrap();
        assert!(args.read_recipients && args.ignore_dots && args.verbose);
        assert_eq!(args.sender.as_deref(), Some("alice@example.org"));
        assert_eq!(args.full_name.as_deref(), Some("Alice"));

        let args = parse_words("-ti -FAlice -aWork -C/etc/x.toml -r bounce@example.org").unwrap();
        assert_eq!(args.full_name.as_deref(), Some("Alice"));
        assert_eq!(args.account.as_deref(), Some("Work"));
        assert_eq!(args.config, Some(PathBuf::from("/etc/x.toml")));
        assert_eq!(args.sender.as_deref(), Some("bounce@example.org"));
    }

    #[test]
    fn a_full_name_with_spaces_is_one_argument() {
        let words = ["-F", "Cron Daemon", "root@example.org"].map(OsString::from);
        let args = parse(words, |_| None).unwrap();
        assert_eq!(args.full_name.as_deref(), Some("Cron Daemon"));
        assert_eq!(args.recipients, ["root@example.org"]);
    }

    #[test]
    fn other_mailers_options_are_ignored() {
        let args = parse_words(
            "-oem -odi -oQ/var/spool -B8BITMIME -B 7BIT -bm -m -h 17 -Am -d0.1 x@example.org",
        )
        .unwrap();
        assert!(!args.ignore_dots);
        assert_eq!(args.recipients, ["x@example.org"]);
        assert!(parse_words("-o i").unwrap().ignore_dots);
    }

    #[test]
    fn double_dash_ends_the_options() {
        let args = parse_words("-i -- -t x@example.org").unwrap();
        assert!(!args.read_recipients);
        assert_eq!(args.recipients, ["-t", "x@example.org"]);
    }

    #[test]
    fn smtp_dialogue_and_dsn() {
        let args = parse_words("-bs -N success,failure -R hdrs -V id-1 -fa@example.org").unwrap();
        assert!(args.smtp_dialogue);
        assert_eq!(args.notify, Some(Notify::SUCCESS | Notify::FAILURE));
        assert_eq!(args.ret, Some(DsnRetArg::Hdrs));
        assert_eq!(args.envid.as_deref(), Some("id-1"));
        assert_eq!(parse_words("-Nnever").unwrap().notify, Some(Notify::NEVER));
        assert_eq!(parse_words("-R FULL").unwrap().ret, Some(DsnRetArg::Full));
    }

    #[test]
    fn long_options_go_to_send() {
        let args = parse_words("--host smtp.example.org --port=465 --dsn-optional --account a -t")
            .unwrap();
        assert_eq!(
            args.send_options,
            [
                "--host",
                "smtp.example.org",
                "--port",
                "465",
                "--dsn-optional"
            ]
        );
        assert_eq!(args.account.as_deref(), Some("a"));
        assert!(args.read_recipients);
    }

    #[test]
    fn mistakes_are_named() {
        let error = |words| parse_words(words).unwrap_err();
        assert!(error("-x").contains("unknown option -x"));
        assert!(error("-tx").contains("unknown option -x"));
        assert!(error("-f").contains("-f needs the envelope sender"));
        assert!(error("-N sometimes").contains("-N sometimes: give never"));
        assert!(error("-N never,success").contains("never cannot be combined"));
        assert!(error("-R body").contains("give full or hdrs"));
        assert!(error("-V bad\u{7f}id").contains("-V"));
        assert!(error("-bp").contains("-bp is not supported"));
        assert!(error("-q").contains("-q is not supported"));
        assert!(error("--subject x").contains("unknown option --subject"));
        assert!(error("--host").contains("--host needs a value"));
        assert!(error("--dsn-optional=yes").contains("takes no value"));
    }
}
