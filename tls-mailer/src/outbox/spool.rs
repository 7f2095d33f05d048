//! The spool on disk: directories, crash-safe writes, locks, moves.
//!
//! Every file is written under a temporary name (`.tmp-…`, locked while it
//! is written), fsynced, renamed into place and its directory fsynced, so an
//! entry is never visible under its final name before it is complete. Each
//! attempt holds an exclusive lock on the entry's file ([`File::try_lock`]);
//! a second process skips what is locked. After taking the lock, the file
//! must still be the one under the entry's name: a rewrite renames a new file
//! over it, a delivery removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::entry::{EntryId, Header, MAX_HEADER};
use super::error::OutboxError;

/// Where an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Folder {
    /// Queued: flushes send it.
    Queue,
    /// Refused for good (5xx); kept for the user to read, never retried.
    Failed,
    /// Still failing when older than the maximum age; never retried.
    Undeliverable,
    /// Damaged (bad header, truncated); kept as it was found.
    Corrupt,
}

impl Folder {
    /// Every folder, the queue first.
    pub const ALL: [Folder; 4] = [
        Folder::Queue,
        Folder::Failed,
        Folder::Undeliverable,
        Folder::Corrupt,
    ];

    /// The subdirectory of the spool (`""` for the queue itself).
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Queue => "",
            Self::Failed => "failed",
            Self::Undeliverable => "undeliverable",
            Self::Corrupt => "corrupt",
        }
    }

    /// `queued`, `failed`, `undeliverable` or `corrupt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queued",
            other => other.dir_name(),
        }
    }
}

/// A temporary file is removed by a flush only when it was not written to
/// for this long and no process holds its lock.
pub(crate) const TEMPORARY_MAX_AGE: Duration = Duration::from_secs(3600);

const TEMPORARY_PREFIX: &str = ".tmp-";

#[derive(Debug)]
pub(crate) struct Spool {
    root: PathBuf,
}

/// A complete file under a temporary name, fsynced and locked; removed when
/// dropped unless published.
pub(crate) struct Temporary {
    file: File,
    path: PathBuf,
    published: bool,
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Why a write failed: the source, or the spool.
pub(crate) enum WriteError {
    Read(io::Error),
    Spool(OutboxError),
}

impl From<OutboxError> for WriteError {
    fn from(error: OutboxError) -> Self {
        Self::Spool(error)
    }
}

/// An entry whose lock this process holds, with its header read.
#[derive(Debug)]
pub(crate) struct LockedEntry {
    pub(crate) id: EntryId,
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    file: File,
    body_offset: u64,
}

impl LockedEntry {
    /// The message, from its first byte.
    pub(crate) fn body(&mut self) -> io::Result<io::Take<&File>> {
        self.file.seek(SeekFrom::Start(self.body_offset))?;
        Ok((&self.file).take(self.header.size))
    }
}

/// What locking an entry found.
#[derive(Debug)]
pub(crate) enum Lock {
    Locked(LockedEntry),
    /// Another process holds the lock.
    Busy,
    /// Gone (sent, removed or moved by another process).
    Gone,
    /// Locked, but the file is damaged; it is still locked by `file`.
    Corrupt {
        reason: String,
        _file: File,
    },
    /// A newer format, to be left alone.
    Newer,
}

impl Spool {
    /// Opens the spool, creating it (and missing parents) private to the user.
    pub(crate) fn open(root: PathBuf) -> Result<Self, OutboxError> {
        create_private_dir(&root)?;
        if !root.is_dir() {
            return Err(OutboxError::io(
                "use as the spool directory",
                &root,
                io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        Ok(Self { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn dir(&self, folder: Folder) -> PathBuf {
        match folder {
            Folder::Queue => self.root.clone(),
            other => self.root.join(other.dir_name()),
        }
    }

    pub(crate) fn path(&self, folder: Folder, id: &EntryId) -> PathBuf {
        self.dir(folder).join(id.file_name())
    }

    /// The entries of a folder, oldest id first. Corrupt entries are named
    /// by their file.
    pub(crate) fn entries(&self, folder: Folder) -> Result<Vec<(EntryId, PathBuf)>, OutboxError> {
        let dir = self.dir(folder);
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound && folder != Folder::Queue => {
                return Ok(Vec::new());
            }
            Err(error) => return Err(OutboxError::io("list", dir, error)),
        };
        let mut entries = Vec::new();
        for item in listing {
            let item = item.map_err(|error| OutboxError::io("list", &dir, error))?;
            let name = item.file_name();
            let Some(id) = name.to_str().and_then(EntryId::of_file_name) else {
                continue;
            };
            entries.push((id, item.path()));
        }
        entries.sort();
        Ok(entries)
    }

    /// Writes `header` and then the message from `body` to a new temporary
    /// file, fills in the size, and fsyncs it. The file is locked from the
    /// moment it exists. `header.size` is set to what was copied; with
    /// `expected_size`, a different length is a damaged source.
    pub(crate) fn write(
        &self,
        header: &mut Header,
        body: &mut dyn Read,
        expected_size: Option<u64>,
    ) -> Result<Temporary, WriteError> {
        let mut temporary = self.temporary()?;
        let path = temporary.path.clone();
        let write_error = |error| WriteError::Spool(OutboxError::io("write", &path, error));
        let encoded = header.encode();
        temporary.file.write_all(&encoded).map_err(write_error)?;
        let size = copy(body, &mut temporary.file).map_err(|error| match error {
            CopyError::Read(error) => WriteError::Read(error),
            CopyError::Write(error) => write_error(error),
        })?;
        if let Some(expected) = expected_size
            && expected != size
        {
            return Err(WriteError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the message has {size} bytes, not the {expected} its entry records"),
            )));
        }
        header.size = size;
        let patched = header.encode();
        if patched.len() != encoded.len() {
            return Err(write_error(io::Error::other("the header changed length")));
        }
        temporary
            .file
            .seek(SeekFrom::Start(0))
            .map_err(write_error)?;
        temporary.file.write_all(&patched).map_err(write_error)?;
        temporary.file.sync_all().map_err(write_error)?;
        Ok(temporary)
    }

    /// Renames a complete temporary file to its final name and fsyncs the
    /// directories, so that the entry survives a crash from here on. Returns
    /// the (still locked) file and its path.
    pub(crate) fn publish(
        &self,
        mut temporary: Temporary,
        folder: Folder,
        id: &EntryId,
    ) -> Result<(File, PathBuf), OutboxError> {
        let dir = self.dir(folder);
        if folder != Folder::Queue {
            create_private_dir(&dir)?;
        }
        let path = dir.join(id.file_name());
        fs::rename(&temporary.path, &path)
            .map_err(|error| OutboxError::io("rename into place", &path, error))?;
        temporary.published = true;
        sync_dir(&dir)?;
        if folder != Folder::Queue {
            sync_dir(&self.root)?;
        }
        let file = temporary
            .file
            .try_clone()
            .map_err(|error| OutboxError::io("reopen", &path, error))?;
        Ok((file, path))
    }

    /// Locks the entry at `path` without waiting, and reads its header.
    pub(crate) fn lock(&self, id: &EntryId, path: &Path) -> Result<Lock, OutboxError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Lock::Gone),
            Err(error) => return Err(OutboxError::io("open", path, error)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(Lock::Busy),
            Err(fs::TryLockError::Error(error)) => {
                return Err(OutboxError::io("lock", path, error));
            }
        }
        if !still_named(&file, path)? {
            return Ok(Lock::Gone);
        }
        let mut file = file;
        match read_header(&mut file).map_err(|error| OutboxError::io("read", path, error))? {
            Parsed::Header(header, body_offset) => Ok(Lock::Locked(LockedEntry {
                id: id.clone(),
                path: path.to_owned(),
                header,
                file,
                body_offset,
            })),
            Parsed::Corrupt(reason) => Ok(Lock::Corrupt {
                reason,
                _file: file,
            }),
            Parsed::Newer => Ok(Lock::Newer),
        }
    }

    /// Reads an entry's header without locking it (for listing).
    pub(crate) fn peek(path: &Path) -> Result<Result<Header, String>, OutboxError> {
        let mut file = File::open(path).map_err(|error| OutboxError::io("open", path, error))?;
        Ok(Self::peek_file(&mut file, path)?.map(|(header, _)| header))
    }

    /// Reads the header of an open entry file without locking it: the
    /// header and where the message starts.
    pub(crate) fn peek_file(
        file: &mut File,
        path: &Path,
    ) -> Result<Result<(Header, u64), String>, OutboxError> {
        Ok(
            match read_header(file).map_err(|error| OutboxError::io("read", path, error))? {
                Parsed::Header(header, body_offset) => Ok((header, body_offset)),
                Parsed::Corrupt(reason) => Err(reason),
                Parsed::Newer => Err("written by a newer tls-mailer (format version)".into()),
            },
        )
    }

    /// The entry as a locked file positioned at its message.
    pub(crate) fn locked_from(
        id: EntryId,
        path: PathBuf,
        file: File,
        header: Header,
    ) -> LockedEntry {
        let body_offset = header.encode().len() as u64;
        LockedEntry {
            id,
            path,
            header,
            file,
            body_offset,
        }
    }

    /// Writes a copy of `entry` with a new header under `folder/id`; the
    /// entry itself is left as it is.
    pub(crate) fn copy(
        &self,
        entry: &mut LockedEntry,
        mut header: Header,
        folder: Folder,
        id: &EntryId,
    ) -> Result<(PathBuf, Header), OutboxError> {
        let size = entry.header.size;
        let path = entry.path.clone();
        let mut body = entry
            .body()
            .map_err(|error| OutboxError::io("read", &path, error))?;
        let temporary = match self.write(&mut header, &mut body, Some(size)) {
            Ok(temporary) => temporary,
            Err(WriteError::Spool(error)) => return Err(error),
            Err(WriteError::Read(error)) => {
                return Err(OutboxError::Corrupt {
                    path,
                    reason: error.to_string(),
                });
            }
        };
        let (_, written) = self.publish(temporary, folder, id)?;
        Ok((written, header))
    }

    /// Replaces `entry` by a copy with a new header under `folder/id`: in
    /// the queue, the new file is renamed over the old one; elsewhere, the
    /// old file is removed once the copy is durable.
    pub(crate) fn rewrite(
        &self,
        entry: &mut LockedEntry,
        header: Header,
        folder: Folder,
        id: &EntryId,
    ) -> Result<PathBuf, OutboxError> {
        let (path, header) = self.copy(entry, header, folder, id)?;
        if path != entry.path {
            self.remove(&entry.path)?;
        }
        entry.header = header;
        Ok(path)
    }

    /// Moves a file as it is (a corrupt entry) into `folder`.
    pub(crate) fn move_as_is(&self, path: &Path, folder: Folder) -> Result<PathBuf, OutboxError> {
        let dir = self.dir(folder);
        create_private_dir(&dir)?;
        let name = path.file_name().unwrap_or_default();
        let target = dir.join(name);
        fs::rename(path, &target).map_err(|error| OutboxError::io("move", path, error))?;
        sync_dir(&dir)?;
        sync_dir(&self.root)?;
        Ok(target)
    }

    /// Removes a file and makes the removal durable.
    pub(crate) fn remove(&self, path: &Path) -> Result<(), OutboxError> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(OutboxError::io("remove", path, error)),
        }
        sync_dir(path.parent().unwrap_or(&self.root))
    }

    /// Removes temporary files a crash left behind: only those not written
    /// to for [`TEMPORARY_MAX_AGE`] before `now` and not locked (a writer
    /// holds the lock on its temporary file until it is renamed).
    pub(crate) fn clean_temporaries(&self, now: SystemTime) -> Result<Vec<PathBuf>, OutboxError> {
        let listing =
            fs::read_dir(&self.root).map_err(|error| OutboxError::io("list", &self.root, error))?;
        let mut removed = Vec::new();
        for item in listing {
            let item = item.map_err(|error| OutboxError::io("list", &self.root, error))?;
            if !item
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(TEMPORARY_PREFIX))
            {
                continue;
            }
            let path = item.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let old = file
                .metadata()
                .and_then(|metadata| metadata.modified())
                .is_ok_and(|modified| {
                    now.duration_since(modified)
                        .is_ok_and(|age| age >= TEMPORARY_MAX_AGE)
                });
            if old && file.try_lock().is_ok() && still_named(&file, &path)? {
                if let Err(error) = fs::remove_file(&path)
                    && error.kind() != io::ErrorKind::NotFound
                {
                    return Err(OutboxError::io("remove", path, error));
                }
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.root)?;
        }
        Ok(removed)
    }

    /// A new, empty, locked temporary file in the spool.
    fn temporary(&self) -> Result<Temporary, OutboxError> {
        loop {
            let name = format!("{TEMPORARY_PREFIX}{:016x}", super::backoff::random_u64());
            let path = self.root.join(name);
            let mut options = OpenOptions::new();
            options.read(true).write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(file) => {
                    let temporary = Temporary {
                        file,
                        path,
                        published: false,
                    };
                    temporary
                        .file
                        .lock()
                        .map_err(|error| OutboxError::io("lock", &temporary.path, error))?;
                    return Ok(temporary);
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(OutboxError::io("create a file in", &self.root, error)),
            }
        }
    }
}

enum Parsed {
    Header(Header, u64),
    Corrupt(String),
    Newer,
}

/// Reads the header section and checks that the file holds exactly the
/// message size it announces.
fn read_header(file: &mut File) -> io::Result<Parsed> {
    file.seek(SeekFrom::Start(0))?;
    let length = file.metadata()?.len();
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let end = loop {
        let searched_from = buffer.len().saturating_sub(1);
        let read = match file.read(&mut chunk) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if read == 0 {
            return Ok(Parsed::Corrupt(if buffer.is_empty() {
                "the file is empty".into()
            } else {
                "the header is cut off (no blank line after it)".into()
            }));
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer[searched_from..]
            .windows(2)
            .position(|pair| pair == b"\n\n")
        {
            break searched_from + at;
        }
        if buffer.len() > MAX_HEADER {
            return Ok(Parsed::Corrupt(format!(
                "no end of header within {MAX_HEADER} bytes"
            )));
        }
    };
    let header = match Header::parse(&buffer[..end]) {
        Ok(Some(header)) => header,
        Ok(None) => return Ok(Parsed::Newer),
        Err(reason) => return Ok(Parsed::Corrupt(reason)),
    };
    let body_offset = end as u64 + 2;
    let expected = body_offset.saturating_add(header.size);
    if length != expected {
        return Ok(Parsed::Corrupt(format!(
            "the file has {length} bytes but its header announces {expected} \
             ({} of message): {}",
            header.size,
            if length < expected {
                "truncated"
            } else {
                "extra bytes"
            }
        )));
    }
    Ok(Parsed::Header(header, body_offset))
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies in constant memory; the number of bytes copied.
fn copy(from: &mut dyn Read, to: &mut File) -> Result<u64, CopyError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyError::Read(error)),
        };
        to.write_all(&buffer[..read]).map_err(CopyError::Write)?;
        total += read as u64;
    }
}

/// The open `file` is still the one named `path` (not replaced or removed
/// since it was opened).
fn still_named(file: &File, path: &Path) -> Result<bool, OutboxError> {
    let named = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(OutboxError::io("inspect", path, error)),
    };
    let open = file
        .metadata()
        .map_err(|error| OutboxError::io("inspect", path, error))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(named.dev() == open.dev() && named.ino() == open.ino())
    }
    #[cfg(not(unix))]
    {
        Ok(named.len() == open.len() && named.modified().ok() == open.modified().ok())
    }
}

/// Creates `dir` and its missing parents, readable only by the user.
fn create_private_dir(dir: &Path) -> Result<(), OutboxError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|error| OutboxError::io("create the directory", dir, error))
}

/// Makes the names in `dir` (a rename, a removal) durable.
fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|error| OutboxError::io("sync the directory", dir, error))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
