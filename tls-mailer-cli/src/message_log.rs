//! `--log FILE`: one line per message, appended, for cron jobs and audits
//! (what msmtp's `logfile` gives): when, which account and server, sender,
//! recipients, size, the outcome and the server's reply. Never a secret:
//! only what the envelope and the server's reply hold.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tls_mailer::{Envelope, Error, SendReport};

use crate::exit::Failure;

/// An open log file; lines are written whole, so concurrent workers and
/// processes appending to one file do not interleave within a line.
pub struct MessageLog {
    path: PathBuf,
    file: Mutex<File>,
    /// `host=... account=...`: the same for every line of this run.
    route: String,
}

impl MessageLog {
    /// Opens `path` for appending (created private: 0600).
    pub fn open(path: &Path, host: &str, account: Option<&str>) -> Result<Self, Failure> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|error| {
            Failure::Config(format!(
                "cannot open the log file {}: {error}; check the directory exists and is \
                 writable, or drop --log",
                path.display()
            ))
        })?;
        let mut route = format!("host={}", value(host));
        if let Some(account) = account {
            route.push_str(&format!(" account={}", value(account)));
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
            route,
        })
    }

    /// Appends the line for one message. A log that cannot be written is
    /// said on stderr and never changes the outcome.
    pub fn record(&self, envelope: &Envelope, size: Option<u64>, outcome: Logged<'_>) {
        let line = self.line(&timestamp(), envelope, size, outcome);
        let written = match self.file.lock() {
            Ok(mut file) => file.write_all(line.as_bytes()),
            Err(_) => Ok(()),
        };
        if let Err(error) = written {
            eprintln!(
                "tls-mailer: cannot write the log file {}: {error}",
                self.path.display()
            );
        }
    }

    fn line(
        &self,
        time: &str,
        envelope: &Envelope,
        size: Option<u64>,
        outcome: Logged<'_>,
    ) -> String {
        let recipients: Vec<&str> = envelope.recipients().iter().map(|r| r.as_str()).collect();
        let mut line = format!(
            "{time} {} from={} to={}",
            self.route,
            value(envelope.sender().as_str()),
            value(&recipients.join(",")),
        );
        if let Some(size) = size {
            line.push_str(&format!(" size={size}"));
        }
        match outcome {
            Logged::Report(report) => {
                let result = if report.all_accepted() {
                    "sent"
                } else {
                    "partial"
                };
                line.push_str(&format!(" result={result}"));
                let refused: Vec<String> = report
                    .rejected()
                    .map(|outcome| format!("{}:{}", outcome.address, outcome.reply.code().value()))
                    .collect();
                if !refused.is_empty() {
                    line.push_str(&format!(" refused={}", value(&refused.join(","))));
                }
                line.push_str(&format!(" reply={}", value(&report.reply.to_string())));
            }
            Logged::Error(error) => {
                let result = if error.is_transient() {
                    "deferred"
                } else {
                    "failed"
                };
                line.push_str(&format!(
                    " result={result} error={}",
                    value(&error.to_string())
                ));
            }
            Logged::Queued { id, error } => {
                line.push_str(&format!(
                    " result=queued id={} error={}",
                    value(id),
                    value(&error.to_string())
                ));
            }
        }
        line.push('\n');
        line
    }
}

/// What became of a message, as a log line says it.
#[derive(Clone, Copy)]
pub enum Logged<'a> {
    /// The server's verdict: every recipient, or some of them.
    Report(&'a SendReport),
    /// Not sent: temporary ("deferred") or for good ("failed").
    Error(&'a Error),
    /// Not sent for now, and kept in the outbox as `id`.
    Queued { id: &'a str, error: &'a Error },
}

impl<'a> Logged<'a> {
    /// The outcome of a send.
    pub fn of(outcome: &'a Result<SendReport, Error>) -> Self {
        match outcome {
            Ok(report) => Self::Report(report),
            Err(error) => Self::Error(error),
        }
    }
}

/// A value as it is when it is one plain word, else quoted with `"` and
/// `\` escaped and every control character shown as `\xNN` (a reply is
/// the server's text: it must not forge a second line).
fn value(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() && c != ' ' && c != '"' && c != '\\');
    if plain {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Now, as RFC 3339 in UTC to the second.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_words_or_quoted_with_controls_escaped() {
        assert_eq!(value("alice@example.org"), "alice@example.org");
        assert_eq!(value("250 2.0.0 Ok"), "\"250 2.0.0 Ok\"");
        assert_eq!(value("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(value("x\r\ny=1"), "\"x\\x0d\\x0ay=1\"");
        assert_eq!(value(""), "\"\"");
    }
}
