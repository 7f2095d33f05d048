//! A durable outbox: messages that could not be sent now are kept on disk
//! and sent later, and none is ever lost.
//!
//! An [`Outbox`] is a spool directory (private to the user). Each entry is
//! one file holding the message, its envelope, the [`Route`] to send it by
//! (server, port, security mode, user name: never a password), when it was
//! created, how many attempts failed, when the next is due and the last
//! error. An entry is written to a temporary file, fsynced, renamed into
//! place and its directory fsynced before [`Outbox::enqueue`] returns, and
//! the message is streamed to disk in constant memory.
//!
//! [`Outbox::flush`] sends the entries, reusing one connection for the
//! entries of the same route, and removes an entry only after the server's
//! final 2xx for it. Temporary failures back off exponentially
//! ([`RetryPolicy`]); refusals for good move the entry to `failed/`; an entry
//! still failing after the maximum age moves to `undeliverable/`; a damaged
//! one to `corrupt/`. Nothing is deleted but what was delivered or what the
//! user removes. Each attempt holds a lock on the entry, so two flushes never
//! send the same entry at the same time.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use tls_mailer::outbox::{Outbox, Route};
//! use tls_mailer::{Client, Credentials, Envelope, Security};
//!
//! let mut outbox = Outbox::open(Outbox::default_dir()?)?;
//! let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
//! let route = Route::new("smtp.example.org", 465, Security::ImplicitTls).with_user("alice@example.org");
//! let message = b"Subject: hi\r\n\r\nHello\r\n";
//! let id = outbox.enqueue(&envelope, &mut &message[..], route, "the laptop is offline")?;
//! println!("queued as {id}");
//!
//! // Later: send what is due, with the password given again.
//! let report = outbox.flush(
//!     |route| {
//!         let mut builder = Client::builder(&route.host).port(route.port).security(route.security);
//!         if let Some(user) = &route.user {
//!             builder = builder.credentials(Credentials::new(user, "app-password"));
//!         }
//!         builder.build()?.connect()
//!     },
//!     true,
//!     SystemTime::now(),
//! );
//! println!("{} sent, {} still queued", report.sent(), report.still_queued());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backoff;
mod entry;
mod error;
mod flush;
mod spool;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tls_mailer_proto::Envelope;

pub use backoff::{Jitter, RetryPolicy};
pub use entry::{EntryId, Route};
pub use error::OutboxError;
pub use flush::{EntryReport, FlushReport, Outcome, Partial, Remaining, Retry, SetAside, Skip};
pub use spool::Folder;

use crate::blocking::Connection;
use crate::client::Client;
use crate::error::Error;
use entry::{Header, from_unix_seconds};
use flush::{Connections, OnPermanent};
use spool::{Lock, Spool, WriteError};

/// A spool directory of messages waiting to be sent. See the [module
/// documentation](self).
pub struct Outbox {
    spool: Spool,
    policy: RetryPolicy,
    jitter: Jitter,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.spool.root())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What an entry records, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntrySummary {
    /// The entry's id.
    pub id: EntryId,
    /// Where it is.
    pub folder: Folder,
    /// When it was queued.
    pub created: SystemTime,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it is due (in the past: due now).
    pub next_attempt: SystemTime,
    /// Why the last attempt failed (or why it was queued).
    pub last_error: Option<String>,
    /// The envelope sender (`""`: the null sender `<>`).
    pub sender: String,
    /// The recipients still to be served.
    pub recipients: Vec<String>,
    /// The message's size in bytes.
    pub size: u64,
    /// How it is sent.
    pub route: Route,
}

impl EntrySummary {
    fn of(id: EntryId, folder: Folder, header: Header) -> Self {
        Self {
            id,
            folder,
            created: from_unix_seconds(header.created),
            attempts: header.attempts,
            next_attempt: from_unix_seconds(header.next_attempt),
            last_error: header.last_error,
            sender: header.sender,
            recipients: header.recipients,
            size: header.size,
            route: header.route,
        }
    }
}

/// One item of [`Outbox::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Listed {
    /// A readable entry.
    Entry(EntrySummary),
    /// A file whose header cannot be read (a flush moves it to `corrupt/`).
    Unreadable {
        /// Its id (from its file name).
        id: EntryId,
        /// Where it is.
        folder: Folder,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// An entry with its message, from [`Outbox::show`].
#[derive(Debug)]
pub struct Entry {
    /// What it records.
    pub summary: EntrySummary,
    /// Its file.
    pub path: PathBuf,
    file: File,
    body_offset: u64,
}

impl Entry {
    /// The message, exactly as it will be sent.
    pub fn message(&mut self) -> io::Result<impl Read + '_> {
        use std::io::Seek;
        self.file.seek(io::SeekFrom::Start(self.body_offset))?;
        Ok((&self.file).take(self.summary.size))
    }
}

impl Outbox {
    /// Opens the spool in `dir`, creating it (and its missing parents) with
    /// mode 0700. Entries are written with mode 0600.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, OutboxError> {
        Ok(Self {
            spool: Spool::open(dir.into())?,
            policy: RetryPolicy::default(),
            jitter: Jitter::random(),
        })
    }

    /// `$XDG_STATE_HOME/tls-mailer/outbox`, else
    /// `~/.local/state/tls-mailer/outbox` (relative values are ignored, as
    /// the XDG base directory specification says).
    pub fn default_dir() -> Result<PathBuf, OutboxError> {
        default_dir_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        self.spool.root()
    }

    /// The same outbox with another retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same outbox with another jitter source (a fixed one makes the
    /// next attempts deterministic).
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Stores a message for `envelope`, to be sent by `route`, with
    /// `reason` (why it is queued) as its last error. The message is
    /// streamed to disk; the entry is complete and durable (fsynced, renamed
    /// into place, directory fsynced) when this returns. It is due at once:
    /// the next flush tries it. It is sent exactly as given: flushing does
    /// not sign it (queue it with [`Outbox::send_or_queue`] to have a
    /// client's DKIM signature added before it is stored).
    ///
    /// ```no_run
    /// use tls_mailer::outbox::{Outbox, Route};
    /// use tls_mailer::{Envelope, Security};
    ///
    /// let outbox = Outbox::open("/var/tmp/outbox")?;
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let mut message = std::fs::File::open("message.eml")?;
    /// let route = Route::new("smtp.example.org", 587, Security::StartTls);
    /// let id = outbox.enqueue(&envelope, &mut message, route, "connection refused")?;
    /// println!("queued as {id}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn enqueue(
        &self,
        envelope: &Envelope,
        message: &mut dyn Read,
        route: Route,
        reason: &str,
    ) -> Result<EntryId, OutboxError> {
        let (id, _entry) = self.write_new(envelope, message, route, reason, SystemTime::now())?;
        Ok(id)
    }

    /// Writes a new entry and returns it still locked.
    fn write_new(
        &self,
        envelope: &Envelope,
        message: &mut dyn Read,
        route: Route,
        reason: &str,
        now: SystemTime,
    ) -> Result<(EntryId, spool::LockedEntry), OutboxError> {
        route.check()?;
        let mut header = Header::new(envelope, route, now);
        if !reason.is_empty() {
            header.set_error(reason);
        }
        let temporary = match self.spool.write(&mut header, message, None) {
            Ok(temporary) => temporary,
            Err(WriteError::Read(error)) => return Err(OutboxError::ReadMessage(error)),
            Err(WriteError::Spool(error)) => return Err(error),
        };
        let mut id = EntryId::generate(now);
        // 48 random bits per second make a clash all but impossible; this
        // check costs nothing and catches the rest but for a race.
        while self.spool.path(Folder::Queue, &id).exists() {
            id = EntryId::generate(now);
        }
        let (file, path) = self.spool.publish(temporary, Folder::Queue, &id)?;
        Ok((id.clone(), Spool::locked_from(id, path, file, header)))
    }

    /// Every entry: those queued (oldest first), then those in `failed/`,
    /// `undeliverable/` and `corrupt/`.
    pub fn list(&self) -> Result<Vec<Listed>, OutboxError> {
        let mut listed = Vec::new();
        for folder in Folder::ALL {
            for (id, path) in self.spool.entries(folder)? {
                let header = match Spool::peek(&path) {
                    Ok(header) => header,
                    // Sent or moved since the directory was read.
                    Err(OutboxError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                listed.push(match header {
                    Ok(header) => Listed::Entry(EntrySummary::of(id, folder, header)),
                    Err(reason) => Listed::Unreadable {
                        id,
                        folder,
                        path,
                        reason,
                    },
                });
            }
        }
        Ok(listed)
    }

    /// One entry and its message, wherever it is.
    pub fn show(&self, id: &EntryId) -> Result<Entry, OutboxError> {
        let (folder, path) = self.find(id)?;
        let mut file = File::open(&path).map_err(|error| OutboxError::io("open", &path, error))?;
        match Spool::peek_file(&mut file, &path)? {
            Ok((header, body_offset)) => Ok(Entry {
                summary: EntrySummary::of(id.clone(), folder, header),
                path,
                file,
                body_offset,
            }),
            Err(reason) => Err(OutboxError::Corrupt { path, reason }),
        }
    }

    /// Removes an entry, wherever it is; refused while another process is
    /// sending it. Returns the folder it was in.
    pub fn remove(&self, id: &EntryId) -> Result<Folder, OutboxError> {
        let (folder, path) = self.find(id)?;
        match self.spool.lock(id, &path)? {
            Lock::Busy => Err(OutboxError::Busy { id: id.to_string() }),
            Lock::Gone => Err(OutboxError::NotFound { id: id.to_string() }),
            Lock::Locked(_) | Lock::Corrupt { .. } | Lock::Newer => {
                self.spool.remove(&path)?;
                Ok(folder)
            }
        }
    }

    fn find(&self, id: &EntryId) -> Result<(Folder, PathBuf), OutboxError> {
        Folder::ALL
            .into_iter()
            .map(|folder| (folder, self.spool.path(folder, id)))
            .find(|(_, path)| path.is_file())
            .ok_or_else(|| OutboxError::NotFound { id: id.to_string() })
    }

    /// Sends the queued entries: every one, or with `only_due` those whose
    /// next attempt is not after `now`. `connect` opens a connection for a
    /// route (with the password, and any setting not recorded); consecutive
    /// entries of the same route share one connection, and a route that
    /// cannot be connected to is not tried again in this flush. Entries
    /// another process is sending are skipped. Temporary files older than an
    /// hour that no process holds are removed. Messages are sent as stored
    /// (a DKIM signer of the connection's client is not applied again).
    ///
    /// Never fails as a whole: what happened to each entry, and any trouble
    /// with the spool, is in the report.
    pub fn flush(
        &mut self,
        mut connect: impl FnMut(&Route) -> Result<Connection, Error>,
        only_due: bool,
        now: SystemTime,
    ) -> FlushReport {
        let mut report = FlushReport::default();
        match self.spool.clean_temporaries(now) {
            Ok(removed) => report.temporaries_removed = removed,
            Err(error) => report.problems.push(error),
        }
        let entries = match self.spool.entries(Folder::Queue) {
            Ok(entries) => entries,
            Err(error) => {
                report.problems.push(error);
                return report;
            }
        };
        // Entries of the same route next to each other (oldest first within
        // a route), so that they share a connection. The header is read
        // again under the lock.
        let mut ordered: Vec<_> = entries
            .into_iter()
            .map(|(id, path)| {
                let key = Spool::peek(&path)
                    .ok()
                    .and_then(Result::ok)
                    .map(|header| route_key(&header.route));
                (key, id, path)
            })
            .collect();
        ordered.sort();
        let mut connections = Connections::new(&mut connect);
        for (_, id, path) in ordered {
            match self.flush_entry(&id, &path, &mut connections, only_due, now) {
                Ok(Some(entry)) => report.entries.push(entry),
                Ok(None) => {}
                Err(error) => report.problems.push(error),
            }
        }
        connections.finish();
        report
    }

    /// Sends a message with `client`, keeping it in the outbox if that
    /// fails for now. The message is stored first (signed, when the client
    /// signs with DKIM), so it is durable before the first byte goes out,
    /// and its entry stays locked while it is sent. After a temporary
    /// failure it stays queued (attempt 1, due after the first back-off);
    /// after a partial delivery only the recipients refused for now stay.
    /// Any failure that is not temporary ([`Error::is_transient`]: a 5xx, a
    /// refused password, an untrusted certificate) removes the entry, and
    /// recipients refused for good are only reported: the caller tells the
    /// user, as for a send without an outbox. The entry's route is
    /// [`Route::of_client`].
    ///
    /// ```no_run
    /// use std::time::SystemTime;
    /// use tls_mailer::outbox::{Outbox, Outcome};
    /// use tls_mailer::{Client, Envelope};
    ///
    /// let client = Client::builder("smtp.example.org").build()?;
    /// let mut outbox = Outbox::open(Outbox::default_dir()?)?;
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let message = b"Subject: hi\r\n\r\nHello\r\n";
    /// let report = outbox.send_or_queue(&client, &envelope, &mut &message[..], SystemTime::now())?;
    /// match report.outcome {
    ///     Outcome::Sent(sent) => println!("sent: {}", sent.reply),
    ///     Outcome::Queued(retry) => println!("queued as {}: {}", report.id, retry.error),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_or_queue(
        &mut self,
        client: &Client,
        envelope: &Envelope,
        message: &mut dyn Read,
        now: SystemTime,
    ) -> Result<EntryReport, OutboxError> {
        let route = Route::of_client(client);
        let (id, mut entry) = match &client.settings().dkim {
            Some(signer) => {
                let (header, spool, _) =
                    crate::signing::sign_stream(signer, message).map_err(|error| match error {
                        Error::ReadMessage(error) => OutboxError::ReadMessage(error),
                        other => OutboxError::Sign(other.to_string()),
                    })?;
                let mut signed = header.as_slice().chain(spool);
                self.write_new(envelope, &mut signed, route, "", now)?
            }
            None => self.write_new(envelope, message, route, "", now)?,
        };
        let recipients = entry.header.recipients.clone();
        let mut connect = |_: &Route| client.connect();
        let mut connections = Connections::new(&mut connect);
        let outcome = self.attempt(&mut entry, &mut connections, now, OnPermanent::Remove);
        connections.finish();
        Ok(EntryReport {
            id,
            recipients,
            outcome: outcome?,
        })
    }
}

/// [`Outbox::default_dir`] for these values of `XDG_STATE_HOME` and `HOME`.
fn default_dir_from(
    state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, OutboxError> {
    let absolute = |value: Option<std::ffi::OsString>| {
        value.map(PathBuf::from).filter(|path| path.is_absolute())
    };
    if let Some(state) = absolute(state_home) {
        return Ok(state.join("tls-mailer").join("outbox"));
    }
    absolute(home)
        .map(|home| home.join(".local/state/tls-mailer/outbox"))
        .ok_or(OutboxError::NoDefaultDir)
}

/// Orders routes for grouping.
fn route_key(route: &Route) -> (String, u16, &'static str, u16, Option<String>) {
    (
        route.host.to_ascii_lowercase(),
        route.port,
        entry::security_name(route.security),
        route.starttls_port,
        route.user.clone(),
    )
}

#[cfg(test)]
mod tests;
