//! The streaming writer: an exported message as a list of segments, the
//! literal ones (headers, part headers, boundaries: written by mail-builder,
//! see `export.rs`) and the part bodies, encoded as they are read.
//!
//! mail-builder encodes a part from a slice in memory, so bodies are not
//! given to it: it writes the message with a marker in place of each body,
//! and the markers are replaced here by the bodies, read from memory or from
//! their file in bounded chunks and base64 / quoted-printable / 7bit encoded
//! on the way. The choice of encoding, the line rules and the output are
//! mail-builder's own (a unit test compares them, byte for byte), so a
//! message reads the same whichever writer produced it; the difference is
//! that memory stays bounded by a chunk, whatever the size of the parts.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::content::Source;
use crate::error::MessageError;

/// Bytes read from a part's source at a time.
const CHUNK: usize = 64 * 1024;
/// Input bytes per base64 line (76 characters).
const BASE64_LINE: usize = 57;
/// Longest quoted-printable line, without the soft break's `=`.
const QP_LINE: usize = 75;
/// A line longer than this (line break included) needs encoding (mail-builder's rule).
const MAX_7BIT_LINE: u64 = 77;

/// How a part's body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Base64, 76 characters per line, every line ending in CRLF.
    Base64,
    /// Quoted-printable; `binary`: CR and LF are data (`=0D=0A`), for
    /// text attachments, whose line ends must survive exactly.
    QuotedPrintable {
        /// CR and LF are encoded.
        binary: bool,
    },
    /// As it is, bare LF written as CRLF.
    SevenBit,
    /// As it is (a `message/*` part whose lines allow it).
    Identity {
        /// Declared `8bit` rather than `7bit`.
        eight_bit: bool,
    },
}

impl Encoding {
    /// The Content-Transfer-Encoding value.
    pub(crate) fn header_value(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::QuotedPrintable { .. } => "quoted-printable",
            Encoding::SevenBit | Encoding::Identity { eight_bit: false } => "7bit",
            Encoding::Identity { eight_bit: true } => "8bit",
        }
    }
}

/// What kind of body a part has, which decides how it may be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `text/*`: 7bit when its lines allow, else the shorter of
    /// quoted-printable and base64. `body`: shown (text bodies and inline
    /// parts), so line ends are text; attachments keep theirs exactly.
    Text {
        /// Not an attachment.
        body: bool,
    },
    /// `message/*`: as it is when its lines allow (RFC 2046 5.2.1), else base64.
    Message,
    /// Anything else: base64.
    Binary,
}

impl Kind {
    pub(crate) fn of(content_type: &str, attachment: bool) -> Kind {
        if content_type.starts_with("text/") {
            Kind::Text { body: !attachment }
        } else if content_type.starts_with("message/") {
            Kind::Message
        } else {
            Kind::Binary
        }
    }
}

/// The base64 length of `len` bytes, line breaks included.
fn base64_len(len: u64) -> u64 {
    let symbols = len.div_ceil(3) * 4;
    symbols + symbols.div_ceil(76) * 2
}

/// A part's body as seen by one pass over it: what decides its encoding
/// and its encoded length.
#[derive(Clone, Debug)]
pub(crate) struct Scan {
    kind: Kind,
    len: u64,
    /// Text: a byte at or above DEL, a line over 77 octets, white space
    /// before a line end or at the end, a bare LF in an attachment.
    needs_encoding: bool,
    /// LF not after CR (written as CRLF in 7bit).
    bare_lf: u64,
    /// CR not before LF (the wire makes it CRLF).
    bare_cr: u64,
    /// The quoted-printable length (text only).
    qp_len: u64,
    /// Message: the lines allow sending it as it is.
    identity: bool,
    ascii: bool,
    last: Option<u8>,
    // Running state.
    line_start: u64,
    previous: [Option<u8>; 2],
    qp: Option<QpEncoder>,
    scratch: Vec<u8>,
}

impl Scan {
    pub(crate) fn new(kind: Kind) -> Scan {
        Scan {
            kind,
            len: 0,
            needs_encoding: false,
            bare_lf: 0,
            bare_cr: 0,
            qp_len: 0,
            identity: true,
            ascii: true,
            last: None,
            line_start: 0,
            previous: [None, None],
            qp: match kind {
                Kind::Text { body } => Some(QpEncoder::new(!body)),
                _ => None,
            },
            scratch: Vec::new(),
        }
    }

    /// The scan of a whole slice.
    pub(crate) fn of(kind: Kind, data: &[u8]) -> Scan {
        let mut scan = Scan::new(kind);
        for chunk in data.chunks(CHUNK) {
            scan.push(chunk);
        }
        scan.finish();
        scan
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if let Some(qp) = &mut self.qp {
            self.scratch.clear();
            qp.encode(chunk, &mut self.scratch);
            self.qp_len += self.scratch.len() as u64;
        }
        let body = matches!(self.kind, Kind::Text { body: true });
        for &byte in chunk {
            let at = self.len;
            let [before, before_that] = self.previous;
            if byte >= 0x7f {
                self.needs_encoding = true;
                self.ascii = false;
            }
            match byte {
                b'\n' => {
                    if at + 1 - self.line_start > MAX_7BIT_LINE {
                        self.needs_encoding = true;
                    }
                    self.line_start = at + 1;
                    let after_cr = before == Some(b'\r');
                    if !after_cr {
                        self.bare_lf += 1;
                        self.identity = false;
                    }
                    let white = if after_cr { before_that } else { before };
                    if body {
                        if matches!(white, Some(b' ' | b'\t')) {
                            self.needs_encoding = true;
                        }
                    } else if !after_cr {
                        self.needs_encoding = true;
                    }
                }
                0 => self.identity = false,
                _ => {}
            }
            if before == Some(b'\r') && byte != b'\n' {
                self.bare_cr += 1;
                self.identity = false;
            }
            // RFC 5322 2.1.1: at most 998 octets before the CRLF.
            if byte != b'\r' && byte != b'\n' && at - self.line_start >= 998 {
                self.identity = false;
            }
            self.previous = [Some(byte), before];
            self.len += 1;
        }
        self.last = chunk.last().copied().or(self.last);
    }

    pub(crate) fn finish(&mut self) {
        if let Some(qp) = &mut self.qp {
            self.scratch.clear();
            qp.finish(&mut self.scratch);
            self.qp_len += self.scratch.len() as u64;
            self.qp = None;
            self.scratch = Vec::new();
        }
        if self.last == Some(b'\r') {
            self.bare_cr += 1;
            self.identity = false;
        }
        if matches!(self.last, Some(b' ' | b'\t')) || self.len - self.line_start > MAX_7BIT_LINE {
            self.needs_encoding = true;
        }
    }

    /// The encoding mail-builder chooses for this body.
    pub(crate) fn encoding(&self) -> Encoding {
        match self.kind {
            Kind::Text { body } => {
                if !self.needs_encoding {
                    Encoding::SevenBit
                } else if self.qp_len < base64_len(self.len) {
                    Encoding::QuotedPrintable { binary: !body }
                } else {
                    Encoding::Base64
                }
            }
            Kind::Message if self.identity => Encoding::Identity {
                eight_bit: !self.ascii,
            },
            Kind::Message | Kind::Binary => Encoding::Base64,
        }
    }

    /// The encoded length, and what the wire's line-end normalisation adds
    /// to it (a bare CR left as it is becomes CRLF).
    fn wire_len(&self, encoding: Encoding) -> u64 {
        match encoding {
            Encoding::Base64 => base64_len(self.len),
            Encoding::QuotedPrintable { .. } => self.qp_len,
            Encoding::SevenBit => self.len + self.bare_lf + self.bare_cr,
            Encoding::Identity { .. } => self.len,
        }
    }

    /// Whether the encoded body ends with a line break, `None` when it is empty.
    fn ends_with_line_break(&self, encoding: Encoding) -> Option<bool> {
        self.last?;
        Some(match encoding {
            Encoding::Base64 => true,
            Encoding::QuotedPrintable { binary } => !binary && self.last == Some(b'\n'),
            Encoding::SevenBit | Encoding::Identity { .. } => {
                matches!(self.last, Some(b'\n' | b'\r'))
            }
        })
    }

    /// The same body, for the checks a second pass makes: what was
    /// measured, without the running state.
    fn summary(&self) -> (u64, bool, u64, u64, u64, bool, bool) {
        (
            self.len,
            self.needs_encoding,
            self.bare_lf,
            self.bare_cr,
            self.qp_len,
            self.identity,
            self.ascii,
        )
    }
}

/// A streaming transfer encoder: output never depends on how the input was
/// split.
#[derive(Clone, Debug)]
pub(crate) enum Encoder {
    Base64 { carry: Vec<u8> },
    QuotedPrintable(QpEncoder),
    SevenBit { previous: u8 },
    Identity,
}

impl Encoder {
    pub(crate) fn new(encoding: Encoding) -> Encoder {
        match encoding {
            Encoding::Base64 => Encoder::Base64 {
                carry: Vec::with_capacity(BASE64_LINE),
            },
            Encoding::QuotedPrintable { binary } => {
                Encoder::QuotedPrintable(QpEncoder::new(binary))
            }
            Encoding::SevenBit => Encoder::SevenBit { previous: 0 },
            Encoding::Identity { .. } => Encoder::Identity,
        }
    }

    pub(crate) fn encode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        match self {
            Encoder::Base64 { carry } => {
                if !carry.is_empty() {
                    let take = (BASE64_LINE - carry.len()).min(input.len());
                    let (head, rest) = input.split_at(take);
                    carry.extend_from_slice(head);
                    input = rest;
                    if carry.len() < BASE64_LINE {
                        return;
                    }
                    base64_line(carry, out);
                    carry.clear();
                }
                let mut lines = input.chunks_exact(BASE64_LINE);
                for line in &mut lines {
                    base64_line(line, out);
                }
                carry.extend_from_slice(lines.remainder());
            }
            Encoder::QuotedPrintable(qp) => qp.encode(input, out),
            Encoder::SevenBit { previous } => {
                let mut start = 0;
                for (at, &byte) in input.iter().enumerate() {
                    let before = if at == 0 {
                        *previous
                    } else {
                        input.get(at - 1).copied().unwrap_or(0)
                    };
                    if byte == b'\n' && before != b'\r' {
                        out.extend_from_slice(input.get(start..at).unwrap_or_default());
                        out.extend_from_slice(b"\r\n");
                        start = at + 1;
                    }
                }
                out.extend_from_slice(input.get(start..).unwrap_or_default());
                if let Some(&last) = input.last() {
                    *previous = last;
                }
            }
            Encoder::Identity => out.extend_from_slice(input),
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::Base64 { carry } => {
                if !carry.is_empty() {
                    base64_line(carry, out);
                    carry.clear();
                }
            }
            Encoder::QuotedPrintable(qp) => qp.finish(out),
            Encoder::SevenBit { .. } | Encoder::Identity => {}
        }
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// One base64 line (at most 57 input bytes), padded, with its CRLF.
fn base64_line(input: &[u8], out: &mut Vec<u8>) {
    let symbol = |index: u32| BASE64_ALPHABET[(index & 63) as usize];
    for group in input.chunks(3) {
        let [a, b, c] = [0, 1, 2].map(|i| u32::from(group.get(i).copied().unwrap_or(0)));
        let word = (a << 16) | (b << 8) | c;
        out.push(symbol(word >> 18));
        out.push(symbol(word >> 12));
        out.push(if group.len() > 1 {
            symbol(word >> 6)
        } else {
            b'='
        });
        out.push(if group.len() > 2 { symbol(word) } else { b'=' });
    }
    out.extend_from_slice(b"\r\n");
}

/// Streaming quoted-printable (RFC 2045 6.7), line for line what
/// mail-builder (encodify's `BODY` and `BINARY` modes) writes: at most 75
/// characters and a soft break `=`, white space escaped before a line end
/// and at the end. Two bytes are held back so that the white space and CR
/// rules can look ahead across chunks.
#[derive(Clone, Debug)]
pub(crate) struct QpEncoder {
    binary: bool,
    column: usize,
    pending: Vec<u8>,
}

impl QpEncoder {
    pub(crate) fn new(binary: bool) -> QpEncoder {
        QpEncoder {
            binary,
            column: 0,
            pending: Vec::new(),
        }
    }

    pub(crate) fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        if self.pending.len() > 2 {
            let done = self.run(self.pending.len() - 2, out);
            self.pending.drain(..done);
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let done = self.run(self.pending.len(), out);
        self.pending.drain(..done);
        self.column = 0;
    }

    /// Encodes the pending bytes before `limit` (one more when a CRLF
    /// straddles it); returns how many were consumed.
    fn run(&mut self, limit: usize, out: &mut Vec<u8>) -> usize {
        let data = &self.pending;
        let binary = self.binary;
        let line_ends = |at: usize| match data.get(at..) {
            None | Some([]) => true,
            Some([b'\n', ..] | [b'\r', b'\n', ..]) => !binary,
            _ => false,
        };
        let mut at = 0;
        while at < limit {
            let Some(&byte) = data.get(at) else { break };
            let plain = matches!(byte, 0x21..=0x3c | 0x3e..=0x7e);
            let blank = matches!(byte, b' ' | b'\t');
            if plain || (blank && !line_ends(at + 1)) {
                if self.column == QP_LINE {
                    out.extend_from_slice(b"=\r\n");
                    self.column = 0;
                }
                out.push(byte);
                self.column += 1;
                at += 1;
            } else if !binary
                && (byte == b'\n' || (byte == b'\r' && data.get(at + 1) == Some(&b'\n')))
            {
                out.extend_from_slice(b"\r\n");
                self.column = 0;
                at += if byte == b'\n' { 1 } else { 2 };
            } else {
                if self.column + 3 > QP_LINE {
                    out.extend_from_slice(b"=\r\n");
                    self.column = 0;
                }
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.extend_from_slice(&[
                    b'=',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ]);
                self.column += 3;
                at += 1;
            }
        }
        at
    }
}

/// A part body in a prepared message.
#[derive(Clone, Debug)]
pub(crate) struct Leaf {
    pub(crate) source: Source,
    pub(crate) encoding: Encoding,
    /// What the first pass measured, checked again by every write of a
    /// file (a file that changed in between would no longer match its
    /// headers, its SIZE or its signature).
    pub(crate) scan: Scan,
}

impl Leaf {
    /// Measures a body (reading its file once, unless base64 is the only
    /// choice and the file's length is all that matters) and chooses its
    /// encoding.
    pub(crate) fn new(source: Source, kind: Kind) -> Result<Leaf, MessageError> {
        let scan = match &source {
            Source::Memory(data) if kind == Kind::Binary => {
                let mut scan = Scan::new(kind);
                scan.len = data.len() as u64;
                scan.last = data.last().copied();
                scan
            }
            Source::Memory(data) => Scan::of(kind, data),
            Source::File(path) if kind == Kind::Binary => {
                let metadata =
                    std::fs::metadata(path).map_err(|e| MessageError::io(Some(path), e))?;
                let mut scan = Scan::new(kind);
                scan.len = metadata.len();
                scan.last = (metadata.len() > 0).then_some(0);
                scan
            }
            Source::File(path) => {
                let mut file = File::open(path).map_err(|e| MessageError::io(Some(path), e))?;
                let mut scan = Scan::new(kind);
                let mut buffer = vec![0; CHUNK];
                loop {
                    match file.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => scan.push(buffer.get(..n).unwrap_or_default()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(MessageError::io(Some(path), e)),
                    }
                }
                scan.finish();
                scan
            }
        };
        Ok(Leaf {
            encoding: scan.encoding(),
            source,
            scan,
        })
    }
}

/// One piece of a prepared message.
#[derive(Clone, Debug)]
pub(crate) enum Segment {
    Literal(Vec<u8>),
    Leaf(Leaf),
}

/// A message ready to be written any number of times, always to the same
/// bytes: headers and boundaries fixed, bodies read again at each pass.
pub(crate) struct Prepared {
    pub(crate) segments: Vec<Segment>,
}

impl Prepared {
    /// The size on the wire (CRLF-normalised, a final line break added
    /// when missing) and whether any byte is 8-bit.
    fn measure(&self) -> (u64, bool) {
        let mut size = 0;
        let mut eight_bit = false;
        let mut ends_with_line_break = true;
        for segment in &self.segments {
            match segment {
                Segment::Literal(bytes) => {
                    size += bytes.len() as u64;
                    eight_bit |= !bytes.is_ascii();
                    if let Some(&last) = bytes.last() {
                        ends_with_line_break = last == b'\n';
                    }
                }
                Segment::Leaf(leaf) => {
                    size += leaf.scan.wire_len(leaf.encoding);
                    eight_bit |= matches!(leaf.encoding, Encoding::Identity { eight_bit: true })
                        || (leaf.encoding == Encoding::SevenBit && !leaf.scan.ascii);
                    if let Some(ends) = leaf.scan.ends_with_line_break(leaf.encoding) {
                        ends_with_line_break = ends;
                    }
                }
            }
        }
        if !ends_with_line_break {
            size += 2;
        }
        (size, eight_bit)
    }
}

/// A file part that could not be read while the message was written: the
/// error inside the [`io::Error`] an [`EmailReader`] returns, naming the file.
#[derive(Debug)]
pub(crate) struct FileError {
    pub(crate) path: PathBuf,
    pub(crate) source: io::Error,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attachment file {}: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn file_error(path: &Path, source: io::Error) -> io::Error {
    io::Error::new(
        source.kind(),
        FileError {
            path: path.to_path_buf(),
            source,
        },
    )
}

/// An error from an [`EmailReader`] as a [`MessageError`]: `Io` naming the
/// file when a part's file failed.
pub(crate) fn message_error(error: io::Error) -> MessageError {
    let names_a_file = error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<FileError>().is_some());
    if names_a_file {
        let kind = error.kind();
        match error
            .into_inner()
            .map(|inner| inner.downcast::<FileError>())
        {
            Some(Ok(file)) => {
                return MessageError::Io {
                    path: Some(file.path),
                    source: file.source,
                };
            }
            Some(Err(other)) => {
                return MessageError::Io {
                    path: None,
                    source: io::Error::new(kind, other),
                };
            }
            None => return MessageError::io(None, io::Error::from(kind)),
        }
    }
    MessageError::Io {
        path: None,
        source: error,
    }
}

/// The exported message as a [`Read`]er, produced as it is read: part
/// bodies are read (from memory, or from their file) and encoded a chunk
/// at a time, so memory stays at a few hundred kilobytes whatever the size
/// of the attachments. Made by [`Email::reader`](crate::Email::reader)
/// (or, signed, by
/// [`DkimSigner::signed_reader`](crate::DkimSigner::signed_reader)).
///
/// A file part that cannot be read, or that changed since the message was
/// prepared (its size, or for a text part what decides its encoding), makes
/// `read` fail with an [`io::Error`] whose text names the file.
///
/// ```
/// use std::io::Read;
/// use tls_mailer_message::Email;
///
/// let email = Email::new()
///     .with_from("a@example.com".parse()?)
///     .with_to("b@example.com".parse()?)
///     .with_text("Hello\n");
/// let mut reader = email.reader()?;
/// let size = reader.size();
/// let mut first = Vec::new();
/// reader.read_to_end(&mut first)?;
/// assert_eq!(first.len() as u64, size);
/// // The same bytes again (same Date, Message-ID and boundaries):
/// let mut second = Vec::new();
/// reader.replay().read_to_end(&mut second)?;
/// assert_eq!(first, second);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EmailReader {
    prepared: Arc<Prepared>,
    size: u64,
    eight_bit: bool,
    segment: usize,
    offset: usize,
    leaf: Option<LeafReader>,
    out: Vec<u8>,
    out_at: usize,
}

impl EmailReader {
    pub(crate) fn new(prepared: Prepared) -> EmailReader {
        let (size, eight_bit) = prepared.measure();
        EmailReader {
            prepared: Arc::new(prepared),
            size,
            eight_bit,
            segment: 0,
            offset: 0,
            leaf: None,
            out: Vec::new(),
            out_at: 0,
        }
    }

    /// The message's size on the wire, known before it is read: what it
    /// reads plus what line-end normalisation adds (a final CRLF when the
    /// message does not end with one, CRLF for a bare CR left in a 7bit
    /// part), exact for SMTP SIZE.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the message has 8-bit bytes (UTF-8 headers, an `8bit`
    /// part), for 8BITMIME.
    pub fn is_eight_bit(&self) -> bool {
        self.eight_bit
    }

    /// A new reader of the same message from its first byte: the same
    /// headers, Date, Message-ID and boundaries, the bodies read again. A
    /// first pass can sign or count what a second one sends.
    pub fn replay(&self) -> EmailReader {
        EmailReader {
            prepared: Arc::clone(&self.prepared),
            size: self.size,
            eight_bit: self.eight_bit,
            segment: 0,
            offset: 0,
            leaf: None,
            out: Vec::new(),
            out_at: 0,
        }
    }

    /// This message with `header` (complete header fields, CRLF line ends)
    /// before its first byte.
    pub(crate) fn with_prefix(&self, header: Vec<u8>) -> EmailReader {
        let mut segments = Vec::with_capacity(self.prepared.segments.len() + 1);
        segments.push(Segment::Literal(header));
        segments.extend(self.prepared.segments.iter().cloned());
        EmailReader::new(Prepared { segments })
    }
}

impl fmt::Debug for EmailReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the parts: they may be large.
        f.debug_struct("EmailReader")
            .field("size", &self.size)
            .field("eight_bit", &self.eight_bit)
            .field("segment", &self.segment)
            .field("segments", &self.prepared.segments.len())
            .finish_non_exhaustive()
    }
}

impl Read for EmailReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(pending) = self.out.get(self.out_at..)
                && !pending.is_empty()
            {
                let n = pending.len().min(buf.len());
                buf[..n].copy_from_slice(&pending[..n]);
                self.out_at += n;
                return Ok(n);
            }
            self.out.clear();
            self.out_at = 0;
            let Some(segment) = self.prepared.segments.get(self.segment) else {
                return Ok(0);
            };
            match segment {
                Segment::Literal(bytes) => {
                    let rest = bytes.get(self.offset..).unwrap_or_default();
                    if rest.is_empty() {
                        self.segment += 1;
                        self.offset = 0;
                        continue;
                    }
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.offset += n;
                    return Ok(n);
                }
                Segment::Leaf(leaf) => {
                    let reader = match &mut self.leaf {
                        Some(reader) => reader,
                        None => self.leaf.insert(LeafReader::open(leaf)?),
                    };
                    if !reader.fill(leaf, &mut self.out)? {
                        self.leaf = None;
                        self.segment += 1;
                    }
                }
            }
        }
    }
}

enum Input {
    Memory {
        data: Arc<[u8]>,
        at: usize,
    },
    File {
        file: File,
        path: Arc<Path>,
        buffer: Vec<u8>,
    },
}

/// One pass over a part body.
struct LeafReader {
    input: Input,
    encoder: Encoder,
    /// A file's second look, compared with the first at its end.
    check: Option<Scan>,
    read: u64,
}

impl LeafReader {
    fn open(leaf: &Leaf) -> io::Result<LeafReader> {
        let (input, check) = match &leaf.source {
            Source::Memory(data) => (
                Input::Memory {
                    data: Arc::clone(data),
                    at: 0,
                },
                None,
            ),
            Source::File(path) => {
                let file = File::open(path).map_err(|e| file_error(path, e))?;
                let check = (leaf.scan.kind != Kind::Binary).then(|| Scan::new(leaf.scan.kind));
                (
                    Input::File {
                        file,
                        path: Arc::clone(path),
                        buffer: vec![0; CHUNK],
                    },
                    check,
                )
            }
        };
        Ok(LeafReader {
            input,
            encoder: Encoder::new(leaf.encoding),
            check,
            read: 0,
        })
    }

    /// Encodes the next chunk into `out`; `false` once the body is complete
    /// (its last bytes, if any, are in `out`).
    fn fill(&mut self, leaf: &Leaf, out: &mut Vec<u8>) -> io::Result<bool> {
        let chunk: &[u8] = match &mut self.input {
            Input::Memory { data, at } => {
                let end = (*at + CHUNK).min(data.len());
                let chunk = data.get(*at..end).unwrap_or_default();
                *at = end;
                chunk
            }
            Input::File { file, path, buffer } => loop {
                match file.read(buffer) {
                    Ok(n) => break buffer.get(..n).unwrap_or_default(),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(file_error(path, e)),
                }
            },
        };
        if !chunk.is_empty() {
            self.read += chunk.len() as u64;
            if let Some(check) = &mut self.check {
                check.push(chunk);
            }
            self.encoder.encode(chunk, out);
            return Ok(true);
        }
        self.encoder.finish(out);
        if let Input::File { path, .. } = &self.input {
            let changed = match &mut self.check {
                Some(check) => {
                    check.finish();
                    check.summary() != leaf.scan.summary()
                }
                None => self.read != leaf.scan.len,
            };
            if changed {
                return Err(file_error(
                    path,
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the file changed while the message was being written \
                             ({} bytes when the message was prepared, {} now)",
                            leaf.scan.len, self.read
                        ),
                    ),
                ));
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use encodify::base64::MIME;
    use encodify::qp;
    use proptest::prelude::*;

    use super::*;

    fn encode_in_pieces(encoding: Encoding, data: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut encoder = Encoder::new(encoding);
        let mut out = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(data.len()).max(at);
            encoder.encode(&data[at..cut], &mut out);
            at = cut;
        }
        encoder.encode(&data[at..], &mut out);
        encoder.finish(&mut out);
        out
    }

    fn sorted(mut cuts: Vec<usize>) -> Vec<usize> {
        cuts.sort_unstable();
        cuts
    }

    /// Bytes that exercise the rules: blanks and line ends next to each
    /// other, `=`, 8-bit bytes, long runs.
    fn texty() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                3 => Just(b'a'),
                2 => Just(b' '),
                1 => Just(b'\t'),
                2 => Just(b'\r'),
                2 => Just(b'\n'),
                1 => Just(b'='),
                1 => Just(0xc3u8),
                1 => any::<u8>(),
            ],
            0..600,
        )
    }

    fn max_line(bytes: &[u8]) -> usize {
        bytes
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
            .max()
            .unwrap_or(0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Base64 in any pieces is encodify's MIME base64 of the whole:
        /// 76 characters a line, every line (the last too) ending in CRLF.
        #[test]
        fn base64_is_the_same_however_the_input_is_split(
            data in prop::collection::vec(any::<u8>(), 0..700),
            cuts in prop::collection::vec(0usize..700, 0..8),
        ) {
            let streamed = encode_in_pieces(Encoding::Base64, &data, &sorted(cuts));
            let expected = MIME.encode(&data);
            prop_assert_eq!(&streamed, expected.as_bytes());
            prop_assert!(max_line(&streamed) <= 76);
            prop_assert_eq!(streamed.len() as u64, base64_len(data.len() as u64));
        }

        /// Quoted-printable in any pieces is encodify's encoding of the
        /// whole, in both modes: the look-ahead for white space and CRLF
        /// works across pieces, and no line is over 76 characters.
        #[test]
        fn quoted_printable_is_the_same_however_the_input_is_split(
            data in texty(),
            cuts in prop::collection::vec(0usize..600, 0..8),
            binary in any::<bool>(),
        ) {
            let engine = if binary { qp::BINARY } else { qp::BODY };
            let streamed = encode_in_pieces(
                Encoding::QuotedPrintable { binary },
                &data,
                &sorted(cuts),
            );
            prop_assert_eq!(
                String::from_utf8_lossy(&streamed),
                engine.encode(&data)
            );
            prop_assert!(max_line(&streamed) <= 76);
            let scan = Scan::of(Kind::Text { body: !binary }, &data);
            prop_assert_eq!(scan.qp_len, streamed.len() as u64);
        }

        /// 7bit writes bare LF as CRLF, wherever the pieces are cut.
        #[test]
        fn seven_bit_normalises_bare_line_feeds_across_pieces(
            data in texty(),
            cuts in prop::collection::vec(0usize..600, 0..8),
        ) {
            let streamed = encode_in_pieces(Encoding::SevenBit, &data, &sorted(cuts));
            let whole = encode_in_pieces(Encoding::SevenBit, &data, &[]);
            prop_assert_eq!(&streamed, &whole);
            let mut previous = 0;
            for &b in &streamed {
                prop_assert!(b != b'\n' || previous == b'\r');
                previous = b;
            }
        }

        /// The scan of a body in pieces is the scan of the whole.
        #[test]
        fn the_scan_does_not_depend_on_the_pieces(
            data in texty(),
            cuts in prop::collection::vec(0usize..600, 0..8),
            kind in prop_oneof![
                Just(Kind::Text { body: true }),
                Just(Kind::Text { body: false }),
                Just(Kind::Message),
            ],
        ) {
            let whole = Scan::of(kind, &data);
            let mut pieces = Scan::new(kind);
            let mut at = 0;
            for cut in sorted(cuts) {
                let cut = cut.min(data.len()).max(at);
                pieces.push(&data[at..cut]);
                at = cut;
            }
            pieces.push(&data[at..]);
            pieces.finish();
            prop_assert_eq!(whole.summary(), pieces.summary());
            prop_assert_eq!(whole.encoding(), pieces.encoding());
        }
    }

    #[test]
    fn an_empty_body_encodes_to_nothing() {
        for encoding in [
            Encoding::Base64,
            Encoding::QuotedPrintable { binary: false },
            Encoding::QuotedPrintable { binary: true },
            Encoding::SevenBit,
        ] {
            assert!(
                encode_in_pieces(encoding, b"", &[]).is_empty(),
                "{encoding:?}"
            );
        }
    }
}
