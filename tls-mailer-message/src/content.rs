//! Part contents (bytes or a file) and the parts an [`Email`](crate::Email) carries.

use std::path::Path;
use std::sync::Arc;

use crate::error::MessageError;

/// Where the bytes of a part come from: memory, or a file read each time
/// the message is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Bytes held in memory, shared between versions of a message.
    Memory(Arc<[u8]>),
    /// A file, opened and read (in bounded chunks) when the message is
    /// written, never held whole.
    File(Arc<Path>),
}

impl Source {
    /// The bytes when held in memory; empty for a file.
    pub(crate) fn memory(&self) -> &[u8] {
        match self {
            Source::Memory(data) => data,
            Source::File(_) => &[],
        }
    }

    /// The file, for a part read from one.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Source::Memory(_) => None,
            Source::File(path) => Some(path),
        }
    }
}

/// The bytes of an inline part or attachment (in memory, or a file read
/// when the message is written), with an optional explicit content type
/// and the file name it came from.
///
/// ```
/// use tls_mailer_message::Content;
///
/// let logo = Content::from_bytes(vec![0x89, b'P', b'N', b'G']);
/// let logo = logo.with_content_type("image/png")?;
/// assert_eq!(logo.content_type(), Some("image/png"));
/// assert_eq!(logo.data(), [0x89, b'P', b'N', b'G']);
/// # Ok::<(), tls_mailer_message::MessageError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    source: Source,
    content_type: Option<String>,
    file_name: Option<String>,
}

impl Content {
    /// Content from bytes in memory.
    pub fn from_bytes(data: impl Into<Vec<u8>>) -> Self {
        Content {
            source: Source::Memory(Arc::from(data.into())),
            content_type: None,
            file_name: None,
        }
    }

    /// Content read from a file when the message is written
    /// ([`Email::write_to`](crate::Email::write_to),
    /// [`Email::reader`](crate::Email::reader), a send), not now: the file
    /// is encoded as it is read, in bounded chunks, so a part of any size
    /// costs a few hundred kilobytes of memory. The file name is kept for
    /// guessing the content type (and as the attachment name where none is
    /// given).
    ///
    /// The file must exist and be a regular file now (checked here, so a
    /// wrong path is found at once); each write reads it again, so it must
    /// stay in place and unchanged until the message is sent. A file that
    /// cannot be read then, or whose size or content changed in a way that
    /// invalidates the encoding chosen, fails that write with
    /// [`MessageError::Io`] naming the file.
    ///
    /// ```
    /// use tls_mailer_message::{Content, Email};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "first\n")?;
    /// let email = Email::new()
    ///     .with_from("a@example.com".parse()?)
    ///     .with_to("b@example.com".parse()?)
    ///     .with_attachment("notes.txt", Content::from_path(&path)?)?;
    /// std::fs::write(&path, "second\n")?; // read when written, not when built
    /// let wire = String::from_utf8(email.to_bytes()?)?;
    /// assert!(wire.contains("second"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, MessageError> {
        let path = path.as_ref();
        let metadata = std::fs::metadata(path).map_err(|e| MessageError::io(Some(path), e))?;
        if !metadata.is_file() {
            return Err(MessageError::io(
                Some(path),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        Ok(Content {
            source: Source::File(Arc::from(path)),
            content_type: None,
            file_name: path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string),
        })
    }

    /// Sets an explicit content type (`type/subtype`, parameters not allowed).
    pub fn with_content_type(mut self, content_type: &str) -> Result<Self, MessageError> {
        self.content_type = Some(validate_content_type(content_type)?);
        Ok(self)
    }

    /// The bytes of content held in memory; empty for content read from a
    /// file ([`Content::from_path`], see [`path`](Content::path)).
    pub fn data(&self) -> &[u8] {
        self.source.memory()
    }

    /// The file the content is read from when the message is written, for
    /// [`Content::from_path`].
    pub fn path(&self) -> Option<&Path> {
        self.source.path()
    }

    /// The explicit content type, if one was set.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The file name the content was read from, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }

    pub(crate) fn source(&self) -> Source {
        self.source.clone()
    }
}

/// Whether a part is shown inline (referenced as `cid:` from the HTML) or
/// offered as an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// An inline part with its Content-ID (without angle brackets).
    Inline {
        /// The Content-ID, referenced from the HTML as `cid:<id>`.
        cid: String,
    },
    /// An attachment.
    Attachment,
}

/// One inline part or attachment of an [`Email`](crate::Email).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub(crate) disposition: Disposition,
    pub(crate) name: Option<String>,
    pub(crate) content_type: String,
    pub(crate) source: Source,
}

impl Part {
    /// Inline or attachment.
    pub fn disposition(&self) -> &Disposition {
        &self.disposition
    }

    /// The Content-ID of an inline part.
    pub fn cid(&self) -> Option<&str> {
        match &self.disposition {
            Disposition::Inline { cid } => Some(cid),
            Disposition::Attachment => None,
        }
    }

    /// The file name shown to the reader.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The content type (`type/subtype`).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The decoded bytes of a part held in memory (built from bytes or
    /// imported); empty for a part read from a file when the message is
    /// written (see [`path`](Part::path)).
    pub fn data(&self) -> &[u8] {
        self.source.memory()
    }

    /// The file a part is read from when the message is written
    /// ([`Content::from_path`]).
    pub fn path(&self) -> Option<&Path> {
        self.source.path()
    }
}

pub(crate) fn validate_content_type(content_type: &str) -> Result<String, MessageError> {
    let invalid = || MessageError::InvalidContentType {
        content_type: content_type.to_string(),
    };
    let (top, sub) = content_type.trim().split_once('/').ok_or_else(invalid)?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(top) || !token(sub) {
        return Err(invalid());
    }
    Ok(format!(
        "{}/{}",
        top.to_ascii_lowercase(),
        sub.to_ascii_lowercase()
    ))
}

pub(crate) fn validate_cid(cid: &str) -> Result<String, MessageError> {
    let cid = cid.trim();
    let cid = cid
        .strip_prefix('<')
        .and_then(|c| c.strip_suffix('>'))
        .unwrap_or(cid);
    if cid.is_empty()
        || cid
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>\"()\\,;[]".contains(c))
    {
        return Err(MessageError::InvalidContentId {
            cid: cid.to_string(),
        });
    }
    Ok(cid.to_string())
}

/// Guesses a content type from a file name's extension
/// (`application/octet-stream` when unknown).
///
/// ```
/// assert_eq!(tls_mailer_message::guess_content_type("Report.PDF"), "application/pdf");
/// assert_eq!(tls_mailer_message::guess_content_type("blob"), "application/octet-stream");
/// ```
pub fn guess_content_type(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "htm" | "html" => "text/html",
        "csv" => "text/csv",
        "ics" => "text/calendar",
        "vcf" => "text/vcard",
        "md" => "text/markdown",
        "css" => "text/css",
        "xml" => "application/xml",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "7z" => "application/x-7z-compressed",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "bmp" => "image/bmp",
        "ico" => "image/vnd.microsoft.icon",
        "tif" | "tiff" => "image/tiff",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}
