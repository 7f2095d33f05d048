//! The system keyring as a password source (`--password-keyring SERVICE`,
//! `password_keyring`), and `tls-mailer keyring set|delete` to fill it.
//! An entry is named by a service and the login user name. On Linux the
//! store is the kernel's keyutils keyring (no daemon, no D-Bus), which
//! keeps its entries in memory: until reboot, and for a few days after
//! the user's last session ends. Builds without the `keyring` feature
//! accept the flag and the key but refuse to use them.

use std::io::BufRead;

use zeroize::Zeroizing;

use crate::exit::Failure;

/// Why a build without the feature refuses the keyring.
pub const NOT_BUILT: &str = "this tls-mailer was built without the keyring feature; rebuild with \
     `cargo install tls-mailer-cli --features keyring` or choose another password source";

/// The arguments of `tls-mailer keyring`.
#[derive(Debug, clap::Args)]
pub struct KeyringArgs {
    #[command(subcommand)]
    pub command: KeyringCommand,
}

/// The `keyring` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeyringCommand {
    /// Store a secret for --password-keyring: the first line of stdin,
    /// replacing any secret the entry held.
    Set(EntryArgs),
    /// Remove the entry.
    Delete(EntryArgs),
}

/// The entry a command acts on.
#[derive(Debug, clap::Args)]
pub struct EntryArgs {
    /// The service: what --password-keyring or password_keyring names.
    #[arg(long, value_name = "SERVICE")]
    pub service: String,
    /// The login user name: what --user or user names.
    #[arg(long, value_name = "USER")]
    pub user: String,
}

/// Runs `keyring`.
pub fn run(args: &KeyringArgs) -> Result<u8, Failure> {
    match &args.command {
        KeyringCommand::Set(entry) => {
            // Refuse before the user types a secret for nothing.
            store::available()?;
            let secret = read_secret(entry)?;
            store::set(&entry.service, &entry.user, &secret)?;
            eprintln!(
                "tls-mailer: stored the secret of service {} and user {}{}",
                shell_word(&entry.service),
                shell_word(&entry.user),
                store::lifetime()
            );
        }
        KeyringCommand::Delete(entry) => {
            store::delete(&entry.service, &entry.user)?;
            eprintln!(
                "tls-mailer: removed the secret of service {} and user {}",
                shell_word(&entry.service),
                shell_word(&entry.user)
            );
        }
    }
    Ok(0)
}

/// The secret of (`service`, `user`) for the password source `flag`.
pub fn read(flag: &str, service: &str, user: &str) -> Result<Zeroizing<String>, Failure> {
    store::get(service, user).map_err(|error| match error {
        Missing::Entry => Failure::Config(format!(
            "{flag} {service}: the system keyring has no entry for service {} and user {}{}; \
             add it with `{}`, which reads the secret from stdin",
            shell_word(service),
            shell_word(user),
            store::forgets(),
            set_command(service, user)
        )),
        Missing::Failed(why) => Failure::Config(format!("{flag} {service}: {why}")),
    })
}

/// `tls-mailer keyring set ...` for this entry, ready to paste.
fn set_command(service: &str, user: &str) -> String {
    format!(
        "tls-mailer keyring set --service {} --user {}",
        shell_word(service),
        shell_word(user)
    )
}

fn shell_word(text: &str) -> String {
    crate::secret_file::shell_word(text)
}

/// Why no secret was read.
#[derive(Debug)]
enum Missing {
    /// The store has no such entry.
    #[cfg_attr(not(feature = "keyring"), allow(dead_code))] // only a store finds none
    Entry,
    /// The store cannot be used: why, for the message (never the secret).
    Failed(String),
}

/// The first line of stdin. A terminal is asked for it with echo off
/// where `stty` can turn echo off.
fn read_secret(entry: &EntryArgs) -> Result<Zeroizing<String>, Failure> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let echo_off = terminal && stty("-echo");
    if terminal {
        eprint!(
            "Secret of service {} and user {}: ",
            shell_word(&entry.service),
            shell_word(&entry.user)
        );
    }
    // Room up front, so the line is not copied by growing (copies are not wiped).
    let mut line = Zeroizing::new(String::with_capacity(4096));
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        stty("echo");
    }
    if terminal {
        eprintln!();
    }
    read.map_err(|error| Failure::Config(format!("keyring set: cannot read stdin: {error}")))?;
    let secret = Zeroizing::new(line.lines().next().unwrap_or_default().to_owned());
    if secret.is_empty() {
        return Err(Failure::Config(
            "keyring set: the first line of stdin is empty; give the secret there, e.g. \
             `printf '%s\\n' \"$SECRET\" | tls-mailer keyring set ...`"
                .into(),
        ));
    }
    Ok(secret)
}

/// Runs `stty SETTING` on the terminal that is stdin; whether it worked.
fn stty(setting: &str) -> bool {
    std::process::Command::new("stty")
        .arg(setting)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(feature = "keyring")]
mod store {
    use ::keyring::credential::CredentialPersistence;
    use ::keyring::{Entry, Error};
    use zeroize::{Zeroize, Zeroizing};

    use super::Missing;
    use crate::exit::Failure;

    fn persistence() -> CredentialPersistence {
        ::keyring::default::default_credential_builder().persistence()
    }

    /// Refuses a platform where the keyring crate has no real store (it
    /// would keep the secret in the process only and lose it on exit).
    pub fn available() -> Result<(), Failure> {
        match persistence() {
            CredentialPersistence::EntryOnly | CredentialPersistence::ProcessOnly => {
                Err(Failure::Config(
                    "this platform has no system keyring that tls-mailer can use; choose \
                     another password source"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// How long a stored secret lasts, after "stored ...".
    pub fn lifetime() -> &'static str {
        match persistence() {
            CredentialPersistence::UntilReboot => {
                " in the kernel keyring, which keeps it until reboot (or a few days after \
                 your last session ends)"
            }
            _ => "",
        }
    }

    /// Why an entry may be missing, after "no entry for ...".
    pub fn forgets() -> &'static str {
        match persistence() {
            CredentialPersistence::UntilReboot => {
                " (the kernel keyring forgets its entries at reboot)"
            }
            _ => "",
        }
    }

    fn entry(service: &str, user: &str) -> Result<Entry, Missing> {
        available().map_err(|failure| Missing::Failed(failure.to_string()))?;
        Entry::new(service, user).map_err(failed)
    }

    /// The store's error as a message; a badly encoded secret is wiped
    /// and never shown.
    fn failed(error: Error) -> Missing {
        match error {
            Error::NoEntry => Missing::Entry,
            Error::BadEncoding(mut bytes) => {
                bytes.zeroize();
                Missing::Failed("the system keyring's secret is not UTF-8".into())
            }
            error => Missing::Failed(format!("the system keyring: {error}")),
        }
    }

    pub fn get(service: &str, user: &str) -> Result<Zeroizing<String>, Missing> {
        let entry = entry(service, user)?;
        entry.get_password().map(Zeroizing::new).map_err(failed)
    }

    pub fn set(service: &str, user: &str, secret: &str) -> Result<(), Failure> {
        let message = |missing| match missing {
            // keyutils reports "access denied" as no entry.
            Missing::Entry if cfg!(target_os = "linux") => {
                "the kernel keyring refused to store the secret (access denied); a process \
                 without a session keyring of its own can be refused: try it under \
                 `keyctl session -`"
                    .to_owned()
            }
            Missing::Entry => "the system keyring refused to store the secret".to_owned(),
            Missing::Failed(why) => why,
        };
        entry(service, user)
            .and_then(|entry| entry.set_password(secret).map_err(failed))
            .map_err(|missing| Failure::Config(format!("keyring set: {}", message(missing))))
    }

    pub fn delete(service: &str, user: &str) -> Result<(), Failure> {
        entry(service, user)
            .and_then(|entry| entry.delete_credential().map_err(failed))
            .map_err(|missing| match missing {
                Missing::Entry => Failure::Config(format!(
                    "keyring delete: the system keyring has no entry for service {} and user {}",
                    super::shell_word(service),
                    super::shell_word(user)
                )),
                Missing::Failed(why) => Failure::Config(format!("keyring delete: {why}")),
            })
    }
}

/// Without the feature: every use is refused with how to get it.
#[cfg(not(feature = "keyring"))]
mod store {
    use zeroize::Zeroizing;

    use super::{Missing, NOT_BUILT};
    use crate::exit::Failure;

    pub fn available() -> Result<(), Failure> {
        Err(Failure::Config(NOT_BUILT.into()))
    }

    pub fn lifetime() -> &'static str {
        ""
    }

    pub fn forgets() -> &'static str {
        ""
    }

    pub fn get(_service: &str, _user: &str) -> Result<Zeroizing<String>, Missing> {
        Err(Missing::Failed(NOT_BUILT.into()))
    }

    pub fn set(_service: &str, _user: &str, _secret: &str) -> Result<(), Failure> {
        available()
    }

    pub fn delete(_service: &str, _user: &str) -> Result<(), Failure> {
        available()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    #[test]
    fn the_set_command_is_quoted_for_the_shell() {
        assert_eq!(
            set_command("smtp example", "a'b"),
            r"tls-mailer keyring set --service 'smtp example' --user 'a'\''b'"
        );
        assert_eq!(
            set_command("smtp.example.org", "alice@example.org"),
            "tls-mailer keyring set --service smtp.example.org --user alice@example.org"
        );
    }

    #[cfg(not(feature = "keyring"))]
    #[test]
    fn without_the_feature_every_use_names_the_fix() {
        let error = read("--password-keyring", "smtp", "alice").unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, Failure::Config(_)));
        assert!(text.starts_with("--password-keyring smtp: "), "{text}");
        assert!(text.contains("--features keyring"), "{text}");
        assert!(text.contains("another password source"), "{text}");
        for command in [KeyringCommand::Set, KeyringCommand::Delete] {
            let args = KeyringArgs {
                command: command(EntryArgs {
                    service: "smtp".into(),
                    user: "alice".into(),
                }),
            };
            let text = run(&args).unwrap_err().to_string();
            assert!(text.contains("--features keyring"), "{text}");
        }
    }
}
