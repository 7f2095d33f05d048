//! `tls-mailer queue`: list, show, remove and flush the outbox, and the
//! outbox side of `send --queue-on-failure`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tls_mailer::outbox::{
    EntryId, EntryReport, Folder, Listed, Outbox, Outcome, Partial, Remaining, Route, Skip,
};
use tls_mailer::{Client, Envelope, Error};

use crate::connection::{Clients, ConnectionArgs, security_flag};
use crate::exit::{self, Failure};
use crate::message_log::{Logged, MessageLog};
use crate::send::report_outcome;

/// The exit codes of `queue flush`.
pub const FLUSH_TABLE: &str = "\
Exit codes of queue flush:
  0   everything due was sent, or nothing was due
  67  recipients were refused for good (the message went to the others);
      a copy for them is in failed/
  69  entries were set aside: refused for good (failed/), still failing
      after the maximum age (undeliverable/) or damaged (corrupt/)
  73  the outbox cannot be read or written
  75  entries remain queued after temporary failures
  a failure that keeps entries queued but will not pass by itself has its
  own code (77: password or certificate refused, 78: configuration)";

/// Arguments of `tls-mailer queue`.
#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    /// The outbox directory (default: $XDG_STATE_HOME/tls-mailer/outbox,
    /// else ~/.local/state/tls-mailer/outbox).
    #[arg(long, value_name = "DIR", global = true)]
    pub spool: Option<PathBuf>,
    #[command(subcommand)]
    pub command: QueueCommand,
}

/// The `queue` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// List the entries, queued and set aside (nothing when there are none).
    List {
        /// One JSON array, an object per entry (`[]` when there are none).
        #[arg(long)]
        json: bool,
    },
    /// Print what an entry records, then its message.
    Show {
        /// The entry's id, as listed.
        id: String,
    },
    /// Remove an entry, queued or set aside.
    Remove {
        /// The entry's id, as listed.
        id: String,
    },
    /// Send the queued entries (all of them now, or with --due those whose
    /// back-off has passed). Each connection flag replaces what the entries
    /// recorded; the password comes from the same sources as for send.
    #[command(after_help = FLUSH_TABLE)]
    Flush(Box<FlushArgs>),
}

/// Arguments of `tls-mailer queue flush`.
#[derive(Debug, clap::Args)]
pub struct FlushArgs {
    /// Only the entries whose next attempt is due (for cron and timers).
    #[arg(long)]
    pub due: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Opens the outbox at `dir`, or at the default place.
pub fn open(dir: Option<&Path>) -> Result<Outbox, Failure> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => Outbox::default_dir().map_err(Failure::Outbox)?,
    };
    Outbox::open(dir).map_err(Failure::Outbox)
}

/// Runs `queue`.
pub fn run(args: QueueArgs) -> Result<u8, Failure> {
    let mut outbox = open(args.spool.as_deref())?;
    match args.command {
        QueueCommand::List { json } => list(&outbox, json),
        QueueCommand::Show { id } => show(&outbox, &id),
        QueueCommand::Remove { id } => {
            let id = EntryId::parse(&id).map_err(Failure::Outbox)?;
            let folder = outbox.remove(&id).map_err(Failure::Outbox)?;
            println!("removed {id} (it was {})", folder.as_str());
            Ok(0)
        }
        QueueCommand::Flush(flush_args) => flush(&mut outbox, &flush_args),
    }
}

fn print(text: &str) -> Result<(), Failure> {
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|error| Failure::Output {
            target: "stdout".into(),
            error,
        })
}

fn list(outbox: &Outbox, json: bool) -> Result<u8, Failure> {
    let listed = outbox.list().map_err(Failure::Outbox)?;
    let now = SystemTime::now();
    if json {
        let items: Vec<serde_json::Value> = listed.iter().map(|item| to_json(item, now)).collect();
        let mut text = serde_json::to_string_pretty(&items).map_err(|error| Failure::Output {
            target: "stdout".into(),
            error: io::Error::other(error),
        })?;
        text.push('\n');
        print(&text)?;
        return Ok(0);
    }
    if listed.is_empty() {
        return Ok(0);
    }
    let mut text = format!(
        "{:<30} {:<13} {:>6} {:>5} {:>8} {:>9}  RECIPIENTS / LAST ERROR\n",
        "ID", "STATE", "AGE", "TRIES", "NEXT", "SIZE"
    );
    for item in &listed {
        match item {
            Listed::Entry(entry) => {
                let next = match entry.folder {
                    Folder::Queue => until(entry.next_attempt, now),
                    _ => "never".to_owned(),
                };
                text.push_str(&format!(
                    "{:<30} {:<13} {:>6} {:>5} {:>8} {:>9}  {}\n",
                    entry.id.as_str(),
                    entry.folder.as_str(),
                    age(entry.created, now),
                    entry.attempts,
                    next,
                    entry.size,
                    entry.recipients.join(", ")
                ));
                if let Some(error) = &entry.last_error {
                    text.push_str(&format!("{:>77}{error}\n", ""));
                }
            }
            Listed::Unreadable {
                id, folder, reason, ..
            } => {
                let state = match folder {
                    Folder::Queue => "unreadable",
                    other => other.as_str(),
                };
                text.push_str(&format!("{:<30} {state:<13} {reason}\n", id.as_str()));
            }
            _ => {}
        }
    }
    print(&text)?;
    Ok(0)
}

fn to_json(item: &Listed, now: SystemTime) -> serde_json::Value {
    let seconds = |time: SystemTime| {
        time.duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    };
    match item {
        Listed::Entry(entry) => serde_json::json!({
            "id": entry.id.as_str(),
            "state": entry.folder.as_str(),
            "created": seconds(entry.created),
            "age_seconds": now.duration_since(entry.created).map_or(0, |age| age.as_secs()),
            "attempts": entry.attempts,
            "next_attempt": seconds(entry.next_attempt),
            "last_error": entry.last_error,
            "sender": entry.sender,
            "recipients": entry.recipients,
            "size": entry.size,
            "route": {
                "host": entry.route.host,
                "port": entry.route.port,
                "security": security_flag(entry.route.security),
                "starttls_port": entry.route.starttls_port,
                "user": entry.route.user,
            },
        }),
        Listed::Unreadable {
            id,
            folder,
            path,
            reason,
        } => serde_json::json!({
            "id": id.as_str(),
            "state": if *folder == Folder::Queue { "unreadable" } else { folder.as_str() },
            "path": path.display().to_string(),
            "error": reason,
        }),
        _ => serde_json::Value::Null,
    }
}

fn show(outbox: &Outbox, id: &str) -> Result<u8, Failure> {
    let id = EntryId::parse(id).map_err(Failure::Outbox)?;
    let mut entry = outbox.show(&id).map_err(Failure::Outbox)?;
    let now = SystemTime::now();
    let summary = &entry.summary;
    let route = &summary.route;
    let mut text = format!(
        "id: {}\nstate: {}\nfile: {}\ncreated: {} ago\nattempts: {}\n",
        summary.id,
        summary.folder.as_str(),
        entry.path.display(),
        age(summary.created, now),
        summary.attempts
    );
    if summary.folder == Folder::Queue {
        text.push_str(&format!(
            "next attempt: {}\n",
            until(summary.next_attempt, now)
        ));
    }
    if let Some(error) = &summary.last_error {
        text.push_str(&format!("last error: {error}\n"));
    }
    text.push_str(&format!(
        "host: {}\nport: {}\nsecurity: {}\n",
        route.host,
        route.port,
        security_flag(route.security)
    ));
    if let Some(user) = &route.user {
        text.push_str(&format!("user: {user}\n"));
    }
    text.push_str(&format!(
        "sender: <{}>\nrecipients: {}\nsize: {} bytes\n\n",
        summary.sender,
        summary.recipients.join(", "),
        summary.size
    ));
    print(&text)?;
    let output_error = |error| Failure::Output {
        target: "stdout".into(),
        error,
    };
    let path = entry.path.clone();
    let mut message = entry.message().map_err(|error| {
        Failure::Outbox(tls_mailer::outbox::OutboxError::Corrupt {
            path,
            reason: error.to_string(),
        })
    })?;
    let mut stdout = io::stdout().lock();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match message.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(output_error(error)),
        };
        stdout.write_all(&buffer[..read]).map_err(output_error)?;
    }
    stdout.flush().map_err(output_error)?;
    Ok(0)
}

/// `queue flush`: builds a client for every route due (so that a missing
/// password or CA file stops the flush before any entry is touched), then
/// flushes and reports each entry.
fn flush(outbox: &mut Outbox, args: &FlushArgs) -> Result<u8, Failure> {
    let now = SystemTime::now();
    let clients = Clients::new(&args.connection);
    let mut built: HashMap<Route, Client> = HashMap::new();
    for item in outbox.list().map_err(Failure::Outbox)? {
        if let Listed::Entry(entry) = item
            && entry.folder == Folder::Queue
            && (!args.due || entry.next_attempt <= now)
        {
            let route = args.connection.override_route(&entry.route);
            if let std::collections::hash_map::Entry::Vacant(slot) = built.entry(route) {
                let client = clients.builder(slot.key())?.build()?;
                slot.insert(client);
            }
        }
    }
    let report = outbox.flush(
        |recorded| {
            let route = args.connection.override_route(recorded);
            if let Some(client) = built.get(&route) {
                return client.connect();
            }
            // Queued since the flush began.
            let client = clients
                .builder(&route)
                .map_err(|failure| Error::Config(failure.to_string()))?
                .build()?;
            let connection = client.connect();
            built.insert(route, client);
            connection
        },
        args.due,
        now,
    );
    for path in &report.temporaries_removed {
        eprintln!(
            "tls-mailer: removed {}, a temporary file left by an interrupted write",
            path.display()
        );
    }
    let mut verdict = Verdict::default();
    for entry in &report.entries {
        verdict.note(entry, now);
    }
    for problem in &report.problems {
        eprintln!("tls-mailer: {problem}");
        verdict.spool_trouble = true;
    }
    Ok(verdict.code())
}

/// What the flush's exit code depends on.
#[derive(Default)]
struct Verdict {
    /// Entries moved to failed/, undeliverable/ or corrupt/.
    set_aside: bool,
    /// Only recipients (not whole messages) were refused for good.
    only_recipients_refused: bool,
    spool_trouble: bool,
    /// The exit code of the first failure that will not pass by itself.
    lasting: Option<u8>,
    still_queued: bool,
}

impl Verdict {
    fn note(&mut self, entry: &EntryReport, now: SystemTime) {
        let id = &entry.id;
        match &entry.outcome {
            Outcome::Sent(report) => println!("sent {id}: {}", report.reply),
            Outcome::Partial(partial) => self.partial(id, partial, now),
            Outcome::Queued(retry) => {
                eprintln!(
                    "tls-mailer: {id} still queued (attempt {}, next {}): {}",
                    retry.attempts,
                    until(retry.next_attempt, now),
                    retry.error
                );
                self.failed_for_now(&retry.error);
            }
            Outcome::Failed(set_aside) => {
                eprintln!(
                    "tls-mailer: {id} refused for good, moved to {}: {}",
                    where_now(set_aside.path.as_deref()),
                    set_aside.error
                );
                self.set_aside(false);
            }
            Outcome::Undeliverable(set_aside) => {
                eprintln!(
                    "tls-mailer: {id} given up (older than the maximum age), moved to {}: {}",
                    where_now(set_aside.path.as_deref()),
                    set_aside.error
                );
                self.set_aside(false);
            }
            Outcome::Corrupt { reason, path } => {
                eprintln!(
                    "tls-mailer: {id} is damaged ({reason}); moved, as it was, to {}",
                    path.display()
                );
                self.set_aside(false);
            }
            Outcome::Skipped(Skip::Busy) => {
                println!("skipped {id}: another process is sending it");
            }
            Outcome::Skipped(Skip::NewerFormat) => {
                eprintln!(
                    "tls-mailer: {id} was written by a newer tls-mailer; left as it is (flush \
                     with that version)"
                );
                self.still_queued = true;
            }
            Outcome::Skipped(_) => {}
            _ => {}
        }
    }

    fn partial(&mut self, id: &EntryId, partial: &Partial, now: SystemTime) {
        if let Some(report) = &partial.report {
            let accepted = partial.accepted().count();
            println!(
                "sent {id} to {accepted} of {} recipients: {}",
                report.recipients.len(),
                report.reply
            );
        }
        for refused in &partial.refused {
            eprintln!(
                "tls-mailer: {id}: refused <{}>: {}",
                refused.address, refused.reply
            );
        }
        match &partial.remaining {
            Some(Remaining::Queued {
                attempts,
                next_attempt,
            }) => {
                eprintln!(
                    "tls-mailer: {id} still queued for the recipients refused for now (attempt \
                     {attempts}, next {})",
                    until(*next_attempt, now)
                );
                self.still_queued = true;
            }
            Some(Remaining::Undeliverable(path)) => {
                eprintln!(
                    "tls-mailer: {id} given up for the recipients refused for now (older than \
                     the maximum age), moved to {}",
                    path.display()
                );
                self.set_aside(false);
            }
            _ => {}
        }
        if let Some(path) = &partial.failed {
            eprintln!(
                "tls-mailer: {id}: the recipients refused for good are recorded in {}",
                path.display()
            );
            self.set_aside(partial.report.is_some());
        }
    }

    fn set_aside(&mut self, only_recipients: bool) {
        self.only_recipients_refused = if self.set_aside {
            self.only_recipients_refused && only_recipients
        } else {
            only_recipients
        };
        self.set_aside = true;
    }

    fn failed_for_now(&mut self, error: &Arc<Error>) {
        if error.is_transient() {
            self.still_queued = true;
        } else if self.lasting.is_none() {
            let failure = Failure::Delivery(error.clone());
            if let Some(hint) = exit::hint(&failure) {
                eprintln!("tls-mailer: hint: {hint}");
            }
            self.lasting = Some(exit::code(&failure));
        }
    }

    fn code(&self) -> u8 {
        if self.set_aside {
            if self.only_recipients_refused {
                exit::NO_USER
            } else {
                exit::UNAVAILABLE
            }
        } else if self.spool_trouble {
            exit::CANT_CREATE
        } else if let Some(code) = self.lasting {
            code
        } else if self.still_queued {
            exit::TEMPORARY
        } else {
            0
        }
    }
}

fn where_now(path: Option<&Path>) -> String {
    path.map_or_else(|| "nowhere".into(), |path| path.display().to_string())
}

/// `send --queue-on-failure`: the message is stored, then sent; what could
/// not go for now stays queued.
pub fn send_or_queue(
    outbox: &mut Outbox,
    client: &Client,
    envelope: &Envelope,
    message: &mut dyn Read,
    log: Option<&MessageLog>,
) -> Result<u8, Failure> {
    let report = outbox
        .send_or_queue(client, envelope, message, SystemTime::now())
        .map_err(Failure::Outbox)?;
    let id = &report.id;
    if let Some(log) = log {
        let id = id.to_string();
        let logged = match &report.outcome {
            Outcome::Sent(sent) => Some(Logged::Report(sent)),
            Outcome::Partial(partial) => partial.report.as_ref().map(Logged::Report),
            Outcome::Queued(retry) => Some(Logged::Queued {
                id: &id,
                error: &retry.error,
            }),
            Outcome::Failed(failed) | Outcome::Undeliverable(failed) => {
                Some(Logged::Error(&failed.error))
            }
            _ => None,
        };
        if let Some(logged) = logged {
            log.record(envelope, None, logged);
        }
    }
    match report.outcome {
        Outcome::Sent(sent) => Ok(report_outcome(&sent)),
        Outcome::Queued(retry) => {
            eprintln!("tls-mailer: queued as {id}: {}", retry.error);
            eprintln!(
                "tls-mailer: `tls-mailer queue flush` sends it now; `queue flush --due` (from \
                 cron or a timer) when its back-off has passed"
            );
            Ok(0)
        }
        Outcome::Partial(partial) => {
            let code = match &partial.report {
                Some(sent) => report_outcome(sent),
                None => {
                    for refused in &partial.refused {
                        eprintln!(
                            "tls-mailer: refused <{}>: {}",
                            refused.address, refused.reply
                        );
                    }
                    exit::NO_USER
                }
            };
            if let Some(Remaining::Queued { .. }) = partial.remaining {
                let queued: Vec<String> = partial
                    .refused_for_now()
                    .map(|outcome| format!("<{}>", outcome.address))
                    .collect();
                let queued = if queued.is_empty() {
                    // All or none: the recipients not served stay, together.
                    "the recipients not served".to_owned()
                } else {
                    queued.join(", ")
                };
                eprintln!(
                    "tls-mailer: queued as {id} for {queued} (refused for now); `tls-mailer queue \
                     flush` sends it to them alone"
                );
            }
            Ok(code)
        }
        Outcome::Failed(failed) => Err(Failure::Delivery(failed.error)),
        Outcome::Undeliverable(failed) => Err(Failure::Delivery(failed.error)),
        other => Err(Failure::Outbox(tls_mailer::outbox::OutboxError::Corrupt {
            path: outbox.dir().join(id.as_str()),
            reason: format!("unexpected outcome for a new entry: {other:?}"),
        })),
    }
}

/// `3m`, `2h5m`, `4d3h`: how long ago `time` was.
fn age(time: SystemTime, now: SystemTime) -> String {
    short(now.duration_since(time).unwrap_or_default())
}

/// `in 4m`, or `now` when `time` has passed.
fn until(time: SystemTime, now: SystemTime) -> String {
    match time.duration_since(now) {
        Ok(wait) if wait >= Duration::from_secs(1) => format!("in {}", short(wait)),
        _ => "now".to_owned(),
    }
}

fn short(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h{}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short_and_readable() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |seconds| age(now - Duration::from_secs(seconds), now);
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(125), "2m");
        assert_eq!(ago(3 * 3600 + 120), "3h2m");
        assert_eq!(ago(2 * 86_400 + 3600), "2d1h");
        assert_eq!(until(now + Duration::from_secs(240), now), "in 4m");
        assert_eq!(until(now - Duration::from_secs(5), now), "now");
    }
}
