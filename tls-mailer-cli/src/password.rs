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
}

/// The environment variable tried when no source is given.
pub const DEFAULT_ENV: &str = "TLS_MAILER_PASSWORD";

impl PasswordSource {
    /// The password, from the chosen source, or TLS_MAILER_PASSWORD. An
    /// empty password is refused: it is a mistake far more often than real.
    pub fn read(&self) -> Result<Zeroizing<String>, Failure> {
        let password = self.read_any()?;
        if password.is_empty() {
            return Err(Failure::Config(format!(
                "the password from {} is empty; put the password there, or choose another source",
                self.describe()
            )));
        }
        Ok(password)
    }

    /// Where the password comes from, for messages (never the password).
    fn describe(&self) -> String {
        if let Some(variable) = &self.password_env {
            format!("--password-env {variable}")
        } else if let Some(path) = &self.password_file {
            format!("the first line of --password-file {}", path.display())
        } else if self.password_command.is_some() {
            "the first line printed by --password-command".to_owned()
        } else {
            DEFAULT_ENV.to_owned()
        }
    }

    fn read_any(&self) -> Result<Zeroizing<String>, Failure> {
        if let Some(variable) = &self.password_env {
            return std::env::var(variable).map(Zeroizing::new).map_err(|_| {
                Failure::Config(format!(
                    "--password-env {variable}: the environment variable is not set (or not UTF-8)"
                ))
            });
        }
        if let Some(path) = &self.password_file {
            let bytes = secret_file::read("--password-file", path).map_err(Failure::Config)?;
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                Failure::Config(format!(
                    "--password-file {}: the file is not UTF-8",
                    path.display()
                ))
            })?;
            return Ok(first_line(text));
        }
        if let Some(command) = &self.password_command {
            let output = Command::new("sh")
                .args(["-c", command])
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|error| {
                    Failure::Config(format!("--password-command: cannot run sh: {error}"))
                })?;
            if !output.status.success() {
                return Err(Failure::Config(format!(
                    "--password-command failed ({}); fix the command or choose another password source",
                    output.status
                )));
            }
            let stdout = Zeroizing::new(output.stdout);
            let text = std::str::from_utf8(&stdout).map_err(|_| {
                Failure::Config("--password-command printed something that is not UTF-8".into())
            })?;
            return Ok(first_line(text));
        }
        std::env::var(DEFAULT_ENV).map(Zeroizing::new).map_err(|_| {
            Failure::Config(format!(
                "--user needs a password: give --password-env VAR, --password-file FILE or \
                 --password-command CMD, or set {DEFAULT_ENV}"
            ))
        })
    }
}

fn first_line(text: &str) -> Zeroizing<String> {
    Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
}
