//! One attempt per entry, and what its outcome does to the entry.
//!
//! An entry leaves the queue only after the server's final 2xx for it. A
//! refusal for good moves it to `failed/`; a temporary failure keeps it with
//! one more attempt and a later next attempt, until it is older than the
//! maximum age (then `undeliverable/`). A failure that is about the account
//! or the server rather than the message (a refused password, an untrusted
//! certificate) keeps the entry queued: it is reported, and sent once the
//! setting is fixed. When some recipients accept and
//! others refuse, the entry keeps only those refused for now, and those
//! refused for good go to `failed/` in a copy of their own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tls_mailer_proto::{BodyInfo, RecipientOutcome, Unsupported};

use super::Outbox;
use super::entry::{EntryId, Header, Route, from_unix_seconds, unix_seconds};
use super::error::OutboxError;
use super::spool::{Folder, Lock, LockedEntry};
use crate::blocking::Connection;
use crate::client::SendReport;
use crate::error::Error;

/// What a flush did, entry by entry.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FlushReport {
    /// Every queued entry looked at, in the order they were handled.
    pub entries: Vec<EntryReport>,
    /// Temporary files a crash had left behind, removed.
    pub temporaries_removed: Vec<PathBuf>,
    /// Trouble with the spool itself (a file that could not be read,
    /// rewritten or moved); the entries concerned are still where they were.
    pub problems: Vec<OutboxError>,
}

impl FlushReport {
    /// Entries that went to every recipient, and are gone from the queue.
    pub fn sent(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Sent(_)))
    }

    /// Entries (or parts of entries) still queued after a failure.
    pub fn still_queued(&self) -> usize {
        self.count(|outcome| match outcome {
            Outcome::Queued(_) => true,
            Outcome::Partial(partial) => {
                matches!(partial.remaining, Some(Remaining::Queued { .. }))
            }
            _ => false,
        })
    }

    /// Entries (or parts of entries) moved to `failed/`, `undeliverable/`
    /// or `corrupt/`.
    pub fn set_aside(&self) -> usize {
        self.count(|outcome| match outcome {
            Outcome::Failed(_) | Outcome::Undeliverable(_) | Outcome::Corrupt { .. } => true,
            Outcome::Partial(partial) => {
                partial.failed.is_some()
                    || matches!(partial.remaining, Some(Remaining::Undeliverable(_)))
            }
            _ => false,
        })
    }

    fn count(&self, wanted: impl Fn(&Outcome) -> bool) -> usize {
        self.entries
            .iter()
            .filter(|entry| wanted(&entry.outcome))
            .count()
    }
}

/// What happened to one entry.
#[derive(Debug)]
pub struct EntryReport {
    /// The entry.
    pub id: EntryId,
    /// Its recipients before this attempt (empty when it could not be read).
    pub recipients: Vec<String>,
    /// What happened.
    pub outcome: Outcome,
}

/// The outcome of one entry's attempt.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Every recipient accepted it: the entry is gone.
    Sent(SendReport),
    /// The recipients fared differently (some accepted, some refused for
    /// now, some for good).
    Partial(Partial),
    /// Nothing went out and trying again later may help: still queued.
    Queued(Retry),
    /// Refused for good: moved to `failed/` (by
    /// [`Outbox::flush`](super::Outbox::flush)); or, by
    /// [`Outbox::send_or_queue`](super::Outbox::send_or_queue), any failure
    /// that is not temporary, and the entry removed (its caller reports it).
    Failed(SetAside),
    /// Failed again when older than the maximum age: moved to `undeliverable/`.
    Undeliverable(SetAside),
    /// The file is damaged; moved, as it was, to `corrupt/`.
    Corrupt {
        /// What is wrong with it.
        reason: String,
        /// Where it is now.
        path: PathBuf,
    },
    /// Not attempted.
    Skipped(Skip),
}

/// Why an entry was not attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// Another process holds its lock: it is being sent right now.
    Busy,
    /// Its next attempt is later (only when flushing due entries).
    NotDue(SystemTime),
    /// Written by a newer tls-mailer, in a format this one does not know.
    NewerFormat,
}

/// An entry kept for another attempt.
#[derive(Clone, Debug)]
pub struct Retry {
    /// Why this attempt failed.
    pub error: Arc<Error>,
    /// Attempts so far.
    pub attempts: u32,
    /// When the entry is due again.
    pub next_attempt: SystemTime,
}

/// An entry taken out of the queue.
#[derive(Clone, Debug)]
pub struct SetAside {
    /// Why.
    pub error: Arc<Error>,
    /// Where it is now; `None` when it was removed.
    pub path: Option<PathBuf>,
}

/// Recipients with different fates.
#[derive(Debug)]
pub struct Partial {
    /// The server's report, when it accepted the message for someone.
    pub report: Option<SendReport>,
    /// Every refused recipient with its reply, in envelope order.
    pub refused: Vec<RecipientOutcome>,
    /// What became of the recipients refused for now (`None`: there were none).
    pub remaining: Option<Remaining>,
    /// The copy in `failed/` for those refused for good (`None`: there were
    /// none, or they were left to the caller).
    pub failed: Option<PathBuf>,
}

impl Partial {
    /// The recipients that accepted the message.
    pub fn accepted(&self) -> impl Iterator<Item = &RecipientOutcome> {
        self.report
            .iter()
            .flat_map(|report| report.recipients.iter())
            .filter(|outcome| outcome.accepted())
    }

    /// The recipients refused for now.
    pub fn refused_for_now(&self) -> impl Iterator<Item = &RecipientOutcome> {
        self.refused
            .iter()
            .filter(|outcome| outcome.reply.is_transient())
    }

    /// The recipients refused for good.
    pub fn refused_for_good(&self) -> impl Iterator<Item = &RecipientOutcome> {
        self.refused
            .iter()
            .filter(|outcome| !outcome.reply.is_transient())
    }
}

/// What became of the recipients refused for now.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Remaining {
    /// Still queued, in the same entry, for them alone.
    Queued {
        /// Attempts so far.
        attempts: u32,
        /// When the entry is due again.
        next_attempt: SystemTime,
    },
    /// Older than the maximum age: moved to `undeliverable/`.
    Undeliverable(PathBuf),
}

/// What a permanent failure does to the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnPermanent {
    /// Move it to `failed/`.
    SetAside,
    /// Remove it: the caller reports the failure itself.
    Remove,
}

/// The connection of the route being worked on, and the routes that could
/// not be reached in this flush.
pub(crate) struct Connections<'a> {
    connect: &'a mut dyn FnMut(&Route) -> Result<Connection, Error>,
    open: Option<(Route, Connection)>,
    unreachable: HashMap<Route, Arc<Error>>,
}

impl<'a> Connections<'a> {
    pub(crate) fn new(connect: &'a mut dyn FnMut(&Route) -> Result<Connection, Error>) -> Self {
        Self {
            connect,
            open: None,
            unreachable: HashMap::new(),
        }
    }

    /// An open connection for `route`: the one in use when it is for the
    /// same route and still open, else a new one. A route that could not be
    /// connected to is not tried again in the same flush.
    fn get(&mut self, route: &Route) -> Result<&mut Connection, Arc<Error>> {
        if let Some(error) = self.unreachable.get(route) {
            return Err(error.clone());
        }
        let reusable = self
            .open
            .as_ref()
            .is_some_and(|(open_route, connection)| open_route == route && connection.is_open());
        if !reusable {
            if let Some((_, old)) = self.open.take() {
                let _ = old.quit();
            }
            match (self.connect)(route) {
                Ok(connection) => self.open = Some((route.clone(), connection)),
                Err(error) => {
                    let error = Arc::new(error);
                    self.unreachable.insert(route.clone(), error.clone());
                    return Err(error);
                }
            }
        }
        match &mut self.open {
            Some((_, connection)) => Ok(connection),
            None => Err(Arc::new(Error::ApiMisuse(
                tls_mailer_proto::ApiMisuse::Closed,
            ))),
        }
    }

    /// Says QUIT on the connection still open.
    pub(crate) fn finish(mut self) {
        if let Some((_, connection)) = self.open.take() {
            let _ = connection.quit();
        }
    }
}

/// The server (or the envelope's own check) will never take this message:
/// a 5xx to MAIL, RCPT or the data (but not an authentication refusal,
/// which is about the account), a message over the server's SIZE limit, an
/// address it cannot carry, an 8-bit message it cannot carry, or an address
/// that is not valid.
fn refuses_the_message(error: &Error) -> bool {
    match error {
        Error::Rejected(rejection) => {
            !rejection.is_transient()
                && !rejection.is_authentication_failure()
                && rejection.command.is_mail_transaction()
        }
        Error::RecipientsRejected(outcomes) => outcomes
            .iter()
            .filter(|outcome| !outcome.accepted())
            .all(|outcome| !outcome.reply.is_transient()),
        Error::Unsupported(
            Unsupported::Size { .. } | Unsupported::SmtpUtf8 { .. } | Unsupported::EightBitMime,
        ) => true,
        Error::InvalidInput(_) | Error::Message(_) => true,
        _ => false,
    }
}

/// Where an entry stands after a failed attempt.
enum Rescheduled {
    Queued {
        attempts: u32,
        next_attempt: SystemTime,
    },
    Undeliverable(PathBuf),
}

impl Outbox {
    /// Locks the entry, then attempts it (unless it is not due).
    pub(crate) fn flush_entry(
        &mut self,
        id: &EntryId,
        path: &std::path::Path,
        connections: &mut Connections<'_>,
        only_due: bool,
        now: SystemTime,
    ) -> Result<Option<EntryReport>, OutboxError> {
        let report = |outcome, recipients| EntryReport {
            id: id.clone(),
            recipients,
            outcome,
        };
        let mut entry = match self.spool.lock(id, path)? {
            Lock::Gone => return Ok(None),
            Lock::Busy => return Ok(Some(report(Outcome::Skipped(Skip::Busy), Vec::new()))),
            Lock::Newer => {
                return Ok(Some(report(
                    Outcome::Skipped(Skip::NewerFormat),
                    Vec::new(),
                )));
            }
            Lock::Corrupt { reason, _file } => {
                let path = self.spool.move_as_is(path, Folder::Corrupt)?;
                return Ok(Some(report(Outcome::Corrupt { reason, path }, Vec::new())));
            }
            Lock::Locked(entry) => entry,
        };
        let recipients = entry.header.recipients.clone();
        let due = from_unix_seconds(entry.header.next_attempt);
        if only_due && due > now {
            return Ok(Some(report(
                Outcome::Skipped(Skip::NotDue(due)),
                recipients,
            )));
        }
        let outcome = self.attempt(&mut entry, connections, now, OnPermanent::SetAside)?;
        Ok(Some(report(outcome, recipients)))
    }

    /// Sends a locked entry and records what happened.
    pub(crate) fn attempt(
        &mut self,
        entry: &mut LockedEntry,
        connections: &mut Connections<'_>,
        now: SystemTime,
        on_permanent: OnPermanent,
    ) -> Result<Outcome, OutboxError> {
        let envelope = match entry.header.envelope() {
            Ok(envelope) => envelope,
            Err(reason) => {
                let path = self.spool.move_as_is(&entry.path, Folder::Corrupt)?;
                return Ok(Outcome::Corrupt { reason, path });
            }
        };
        let route = entry.header.route.clone();
        let size = entry.header.size;
        let sent = match connections.get(&route) {
            Err(error) => Err(error),
            Ok(connection) => {
                let path = entry.path.clone();
                let mut body = entry
                    .body()
                    .map_err(|error| OutboxError::io("read", path, error))?;
                let info = BodyInfo {
                    size: Some(size),
                    eight_bit: None,
                    binary: false,
                };
                // As stored: a message to be signed was signed when queued.
                connection
                    .transmit(&envelope, &mut body, info)
                    .map_err(Arc::new)
            }
        };
        match sent {
            Ok(report) if report.all_accepted() => {
                self.spool.remove(&entry.path)?;
                Ok(Outcome::Sent(report))
            }
            Ok(report) => {
                let refused = report.rejected().cloned().collect();
                self.split(entry, Some(report), refused, now, on_permanent)
            }
            Err(error) => match &*error {
                Error::RecipientsRejected(outcomes)
                    if !error.is_transient() && !refuses_the_message(&error) =>
                {
                    let refused = outcomes
                        .iter()
                        .filter(|outcome| !outcome.accepted())
                        .cloned()
                        .collect();
                    self.split(entry, None, refused, now, on_permanent)
                }
                // Without an outbox this send would have failed for good (a
                // bad password, an untrusted certificate): so it does here.
                _ if on_permanent == OnPermanent::Remove
                    && !error.is_transient()
                    && !matches!(*error, Error::ReadMessage(_)) =>
                {
                    self.spool.remove(&entry.path)?;
                    Ok(Outcome::Failed(SetAside { error, path: None }))
                }
                _ if refuses_the_message(&error) => {
                    let path = match on_permanent {
                        OnPermanent::Remove => {
                            self.spool.remove(&entry.path)?;
                            None
                        }
                        OnPermanent::SetAside => {
                            let mut header = entry.header.clone();
                            header.attempts = header.attempts.saturating_add(1);
                            header.set_error(&error.to_string());
                            let id = entry.id.clone();
                            Some(self.spool.rewrite(entry, header, Folder::Failed, &id)?)
                        }
                    };
                    Ok(Outcome::Failed(SetAside { error, path }))
                }
                _ => {
                    let header = entry.header.clone();
                    Ok(
                        match self.reschedule(entry, header, &error.to_string(), now)? {
                            Rescheduled::Queued {
                                attempts,
                                next_attempt,
                            } => Outcome::Queued(Retry {
                                error,
                                attempts,
                                next_attempt,
                            }),
                            Rescheduled::Undeliverable(path) => Outcome::Undeliverable(SetAside {
                                error,
                                path: Some(path),
                            }),
                        },
                    )
                }
            },
        }
    }

    /// Some recipients refused: those refused for good are set aside in a
    /// copy of their own (first, so that a crash cannot lose them), then the
    /// entry keeps only those refused for now, or goes.
    fn split(
        &mut self,
        entry: &mut LockedEntry,
        report: Option<SendReport>,
        refused: Vec<RecipientOutcome>,
        now: SystemTime,
        on_permanent: OnPermanent,
    ) -> Result<Outcome, OutboxError> {
        let describe = |outcomes: &[&RecipientOutcome]| {
            outcomes
                .iter()
                .map(|outcome| format!("<{}>: {}", outcome.address, outcome.reply))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let (for_now, for_good): (Vec<&RecipientOutcome>, Vec<&RecipientOutcome>) = refused
            .iter()
            .partition(|outcome| outcome.reply.is_transient());
        let attempt = entry.header.attempts.saturating_add(1);
        let mut failed = None;
        if !for_good.is_empty() && on_permanent == OnPermanent::SetAside {
            let mut copy = entry.header.clone();
            copy.attempts = attempt;
            copy.recipients = for_good
                .iter()
                .map(|outcome| outcome.address.clone())
                .collect();
            copy.set_error(&format!("refused for good: {}", describe(&for_good)));
            let id = entry.id.split(attempt);
            failed = Some(self.spool.copy(entry, copy, Folder::Failed, &id)?.0);
        }
        // Everyone not served and not refused for good stays: those refused
        // for now, and those that accepted RCPT when nothing was sent
        // (all-or-none).
        let delivered: Vec<&str> = report
            .iter()
            .flat_map(|report| report.recipients.iter())
            .filter(|outcome| outcome.accepted())
            .map(|outcome| outcome.address.as_str())
            .collect();
        let keep: Vec<String> = entry
            .header
            .recipients
            .iter()
            .filter(|recipient| {
                !delivered.contains(&recipient.as_str())
                    && !for_good
                        .iter()
                        .any(|outcome| outcome.address == **recipient)
            })
            .cloned()
            .collect();
        let remaining = if keep.is_empty() {
            self.spool.remove(&entry.path)?;
            None
        } else {
            let mut header = entry.header.clone();
            header.recipients = keep;
            let reason = if for_now.is_empty() {
                "not sent: another recipient was refused, and all or none was asked for".to_owned()
            } else {
                format!("refused for now: {}", describe(&for_now))
            };
            Some(match self.reschedule(entry, header, &reason, now)? {
                Rescheduled::Queued {
                    attempts,
                    next_attempt,
                } => Remaining::Queued {
                    attempts,
                    next_attempt,
                },
                Rescheduled::Undeliverable(path) => Remaining::Undeliverable(path),
            })
        };
        Ok(Outcome::Partial(Partial {
            report,
            refused,
            remaining,
            failed,
        }))
    }

    /// One more failed attempt: back off, or give up when the entry is
    /// older than the maximum age.
    fn reschedule(
        &mut self,
        entry: &mut LockedEntry,
        mut header: Header,
        reason: &str,
        now: SystemTime,
    ) -> Result<Rescheduled, OutboxError> {
        header.attempts = header.attempts.saturating_add(1);
        header.set_error(reason);
        let id = entry.id.clone();
        let age = now
            .duration_since(from_unix_seconds(header.created))
            .unwrap_or_default();
        if age >= self.policy.max_age {
            let path = self
                .spool
                .rewrite(entry, header, Folder::Undeliverable, &id)?;
            return Ok(Rescheduled::Undeliverable(path));
        }
        let delay = self.policy.delay(header.attempts, self.jitter.draw());
        header.next_attempt = unix_seconds(now + delay);
        let attempts = header.attempts;
        let next_attempt = from_unix_seconds(header.next_attempt);
        self.spool.rewrite(entry, header, Folder::Queue, &id)?;
        Ok(Rescheduled::Queued {
            attempts,
            next_attempt,
        })
    }
}
