//! Where the password comes from. It is never printed, never taken from
//! the command line itself (other users can read a process's arguments), and
//! every copy the CLI holds is wiped from memory when dropped.

use std::path::PathBuf;
use std::process::Command;

use zeroize::Zeroizing;

use crate::exit::Failure;
use crate::secret_file;

/// The password sources of `tls-mailer send`.
#[derive(Debug, Default, clap::Args)]
pub struct PasswordSource {
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", group = "password")]
    pub password_env: Option<String>,
    /// Read the password from the first line of this file (warns when
    /// other users can read it).
    #[arg(long, value_name = "FILE", group = "password")]
    pub password_file: Option<PathBuf>,
    /// Run this command (with `sh -c`) and use the first line it prints,
    /// e.g. `pass show mail/smtp`.
    #[arg(long, value_name = "CMD", group = "password")]
    pub password_command: Option<String>,
    /// Run this command (with `sh -c`) and use the first line it prints as
    /// an OAuth 2.0 access token (AUTH OAUTHBEARER or XOAUTH2, for Gmail or
    /// Microsoft 365), e.g. a helper that refreshes the token. The token is
    /// never sent with PLAIN or LOGIN.
    #[arg(long, value_name = "CMD", group = "password")]
    pub oauth_token_command: Option<String>,
    /// Use the secret the system keyring holds for SERVICE and the --user
    /// name; store it with `tls-mailer keyring set`. Needs a build with the
    /// `keyring` feature.
    #[arg(long, value_name = "SERVICE", group = "password")]
    pub password_keyring: Option<String>,
    /// A password written in the configuration file (never a flag).
    #[arg(skip)]
    pub literal: Option<Literal>,
    /// Where the source was set when it was not a flag: "account NAME in
    /// FILE", for messages.
    #[arg(skip)]
    pub origin: Option<String>,
}

/// A password held in memory, wiped when dropped and never shown by Debug.
#[derive(Clone, Default)]
pub struct Literal(pub Zeroizing<String>);

impl std::fmt::Debug for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> serde::Deserialize<'de> for Literal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self(Zeroizing::new(text)))
    }
}

/// The environment variable tried when no source is given.
pub const DEFAULT_ENV: &str = "TLS_MAILER_PASSWORD";

impl PasswordSource {
    /// The password of `user`, from the chosen source, or
    /// TLS_MAILER_PASSWORD. An empty password is refused: it is a mistake
    /// far more often than real.
    pub fn read(&self, user: &str) -> Result<Zeroizing<String>, Failure> {
        let password = self.read_any(user)?;
        if password.is_empty() {
            return Err(Failure::Config(format!(
                "the password from {} is empty; put the password there, or choose another source",
                self.describe()
            )));
        }
        Ok(password)
    }

    /// Whether a source is set (by a flag or the configuration file).
    pub fn is_set(&self) -> bool {
        self.password_env.is_some()
            || self.password_file.is_some()
            || self.password_command.is_some()
            || self.oauth_token_command.is_some()
            || self.password_keyring.is_some()
            || self.literal.is_some()
    }

    /// The secret is an OAuth 2.0 access token, not a password.
    pub fn is_bearer_token(&self) -> bool {
        self.oauth_token_command.is_some()
    }

    /// How a source is named in messages: its flag, or its key in the
    /// configuration file and where that is.
    fn name(&self, flag: &str) -> String {
        match &self.origin {
            Some(origin) => format!(
                "{} ({origin})",
                flag.trim_start_matches("--").replace('-', "_")
            ),
            None => flag.to_owned(),
        }
    }

    /// Where the password comes from, for messages (never the password).
    fn describe(&self) -> String {
        if let Some(variable) = &self.password_env {
            format!("{} {variable}", self.name("--password-env"))
        } else if let Some(path) = &self.password_file {
            format!(
                "the first line of {} {}",
                self.name("--password-file"),
                path.display()
            )
        } else if self.password_command.is_some() {
            format!(
                "the first line printed by {}",
                self.name("--password-command")
            )
        } else if self.oauth_token_command.is_some() {
            format!(
                "the first line printed by {}",
                self.name("--oauth-token-command")
            )
        } else if let Some(service) = &self.password_keyring {
            format!(
                "the system keyring entry of {} {service}",
                self.name("--password-keyring")
            )
        } else if self.literal.is_some() {
            self.name("--password")
        } else {
            DEFAULT_ENV.to_owned()
        }
    }

    fn read_any(&self, user: &str) -> Result<Zeroizing<String>, Failure> {
        if let Some(variable) = &self.password_env {
            return std::env::var(variable).map(Zeroizing::new).map_err(|_| {
                Failure::Config(format!(
                    "{} {variable}: the environment variable is not set (or not UTF-8)",
                    self.name("--password-env")
                ))
            });
        }
        if let Some(path) = &self.password_file {
            return first_line_of_file(&self.name("--password-file"), path);
        }
        if let Some(command) = &self.password_command {
            return self.run_command("--password-command", command);
        }
        if let Some(command) = &self.oauth_token_command {
            return self.run_command("--oauth-token-command", command);
        }
        if let Some(service) = &self.password_keyring {
            return crate::keyring::read(&self.name("--password-keyring"), service, user);
        }
        if let Some(literal) = &self.literal {
            return Ok(literal.0.clone());
        }
        std::env::var(DEFAULT_ENV).map(Zeroizing::new).map_err(|_| {
            Failure::Config(format!(
                "--user needs a password: give --password-env VAR, --password-file FILE, \
                 --password-command CMD or --password-keyring SERVICE, or set {DEFAULT_ENV}"
            ))
        })
    }

    /// The first line `command` prints (through `sh -c`).
    fn run_command(&self, flag: &str, command: &str) -> Result<Zeroizing<String>, Failure> {
        first_line_of_command(&self.name(flag), command)
    }
}

/// The first line of the secret file at `path`, set by `flag` (warns when
/// others can read it).
pub fn first_line_of_file(
    flag: &str,
    path: &std::path::Path,
) -> Result<Zeroizing<String>, Failure> {
    let bytes = secret_file::read(flag, path).map_err(Failure::Config)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Failure::Config(format!("{flag} {}: the file is not UTF-8", path.display()))
    })?;
    Ok(first_line(text))
}

/// The first line `command` prints (through `sh -c`), set by `flag`. Its
/// stderr is passed on, and quoted in the error when it fails.
pub fn first_line_of_command(flag: &str, command: &str) -> Result<Zeroizing<String>, Failure> {
    let output = Command::new("sh")
        .args(["-c", command])
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|error| Failure::Config(format!("{flag}: cannot run sh: {error}")))?;
    let stdout = Zeroizing::new(output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim_end();
    if !output.status.success() {
        let said = if stderr.is_empty() {
            String::from("; it printed nothing on stderr")
        } else {
            let mut said: String = stderr.chars().take(1000).collect();
            if said.len() < stderr.len() {
                said.push_str("...");
            }
            format!("; its stderr: {said}")
        };
        return Err(Failure::Config(format!(
            "{flag} failed ({}){said}; fix the command or choose another source",
            output.status
        )));
    }
    if !stderr.is_empty() {
        eprintln!("{stderr}");
    }
    let text = std::str::from_utf8(&stdout)
        .map_err(|_| Failure::Config(format!("{flag} printed something that is not UTF-8")))?;
    Ok(first_line(text))
}

fn first_line(text: &str) -> Zeroizing<String> {
    Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use clap::{Args, FromArgMatches};

    use super::*;

    fn parse(args: &[&str]) -> Result<PasswordSource, clap::Error> {
        let command = PasswordSource::augment_args(clap::Command::new("t"));
        let matches = command.try_get_matches_from([&["t"][..], args].concat())?;
        PasswordSource::from_arg_matches(&matches)
    }

    #[test]
    fn the_keyring_is_one_more_password_source() {
        let source = parse(&["--password-keyring", "smtp.example.org"]).unwrap();
        assert_eq!(source.password_keyring.as_deref(), Some("smtp.example.org"));
        assert!(source.is_set());
        assert!(!source.is_bearer_token());
        assert_eq!(
            source.describe(),
            "the system keyring entry of --password-keyring smtp.example.org"
        );
        let error = parse(&["--password-keyring", "s", "--password-env", "V"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_keyring_set_by_the_file_is_named_by_its_key() {
        let source = PasswordSource {
            password_keyring: Some("smtp".into()),
            origin: Some("account work in c.toml".into()),
            ..PasswordSource::default()
        };
        assert_eq!(
            source.describe(),
            "the system keyring entry of password_keyring (account work in c.toml) smtp"
        );
    }

    #[cfg(not(feature = "keyring"))]
    #[test]
    fn without_the_feature_the_keyring_source_names_the_fix() {
        let source = parse(&["--password-keyring", "smtp"]).unwrap();
        let error = source.read("alice").unwrap_err();
        assert!(matches!(error, Failure::Config(_)));
        let text = error.to_string();
        assert!(
            text.starts_with(
                "--password-keyring smtp: this tls-mailer was built without the keyring feature"
            ),
            "{text}"
        );
        assert!(
            text.contains("cargo install tls-mailer-cli --features keyring"),
            "{text}"
        );
    }
}
