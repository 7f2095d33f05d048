//! What can go wrong with the spool itself (as opposed to a send).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why an outbox operation failed. Delivery failures are not errors of the
/// outbox: [`Outbox::flush`](super::Outbox::flush) reports them per entry.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutboxError {
    /// A file or directory of the spool could not be created, read, written,
    /// synced, renamed or removed.
    Io {
        /// What was being done, e.g. "create the spool directory".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The message given to [`Outbox::enqueue`](super::Outbox::enqueue)
    /// could not be read; nothing was queued.
    ReadMessage(io::Error),
    /// No entry has this id (in the queue or a set-aside folder).
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The text is not an entry id (ids are letters, digits and `-`).
    InvalidId {
        /// The text given.
        id: String,
    },
    /// Another process holds the entry's lock: it is being sent right now.
    Busy {
        /// The entry.
        id: String,
    },
    /// A route cannot be recorded as it is (a control character in the user
    /// name, an empty host).
    InvalidRoute {
        /// Which part: "host" or "user".
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The entry's file is damaged (bad header, truncated).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The message could not be DKIM-signed before it was stored.
    Sign(String),
    /// Neither `XDG_STATE_HOME` nor `HOME` is set (or absolute), so there is
    /// no default spool directory.
    NoDefaultDir,
}

impl OutboxError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for OutboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::ReadMessage(source) => {
                write!(f, "cannot read the message: {source}; nothing was queued")
            }
            Self::NotFound { id } => write!(
                f,
                "no outbox entry {id:?}: it was sent or removed, or the id is mistyped \
                 (list the entries to see their ids)"
            ),
            Self::InvalidId { id } => write!(
                f,
                "{:?} is not an outbox entry id: ids are letters, digits and '-', \
                 like 20261128T101502-3f9a1c2b7d4e",
                id.escape_debug().to_string()
            ),
            Self::Busy { id } => write!(
                f,
                "outbox entry {id} is being sent by another process right now; try again \
                 when it is done"
            ),
            Self::InvalidRoute { field, reason } => {
                write!(f, "cannot queue for this route: the {field} {reason}")
            }
            Self::Corrupt { path, reason } => {
                write!(f, "outbox entry {} is damaged: {reason}", path.display())
            }
            Self::Sign(reason) => {
                write!(f, "cannot sign the message: {reason}; nothing was queued")
            }
            Self::NoDefaultDir => f.write_str(
                "there is no default outbox directory: neither XDG_STATE_HOME nor HOME is set \
                 to an absolute path; give the spool directory explicitly",
            ),
        }
    }
}

impl std::error::Error for OutboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::ReadMessage(source) => Some(source),
            _ => None,
        }
    }
}
