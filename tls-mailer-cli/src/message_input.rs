//! A raw message from stdin or a file: its header section is read (bounded)
//! to find From / To / Cc / Bcc and to drop Bcc; the body is streamed.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use crate::exit::Failure;

/// The largest header section accepted, so a message without a blank line
/// cannot make the tool read everything into memory.
const MAX_HEADER_SECTION: usize = 1 << 20;

/// A message ready to stream: the (possibly edited) header section first,
/// then the rest of the source.
pub struct RawMessage {
    /// The header section, blank line included.
    pub headers: Vec<u8>,
    /// The body (and anything read ahead of it).
    pub rest: Box<dyn Read>,
    /// The total size, when the source is a file.
    pub size: Option<u64>,
}

impl RawMessage {
    /// Opens the message file, or stdin when `path` is `None`.
    pub fn open(path: Option<&Path>) -> Result<Self, Failure> {
        let (mut source, size): (Box<dyn Read>, Option<u64>) = match path {
            Some(path) => {
                let file = File::open(path).map_err(|error| {
                    Failure::NoInput(format!(
                        "cannot open the message file {}: {error}",
                        path.display()
                    ))
                })?;
                let size = file.metadata().ok().map(|metadata| metadata.len());
                (Box::new(file), size)
            }
            None => (Box::new(io::stdin()), None),
        };
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 8192];
        let end = loop {
            if let Some(end) = header_end(&buffer) {
                break end;
            }
            if buffer.len() > MAX_HEADER_SECTION {
                return Err(Failure::BadMessage(
                    "the message has no blank line after its headers within 1 MiB; is it an RFC 5322 message?"
                        .into(),
                ));
            }
            let read = source
                .read(&mut chunk)
                .map_err(|error| Failure::NoInput(format!("cannot read the message: {error}")))?;
            if read == 0 {
                break buffer.len();
            }
            buffer.extend_from_slice(&chunk[..read]);
        };
        let rest = buffer.split_off(end);
        Ok(Self {
            headers: buffer,
            rest: Box::new(Cursor::new(rest).chain(source)),
            size,
        })
    }

    /// The parsed header section.
    fn parsed(&self) -> Option<mail_parser::Message<'_>> {
        mail_parser::MessageParser::default().parse_headers(&self.headers)
    }

    /// The address of the From header, when there is exactly one.
    pub fn sender_address(&self) -> Option<String> {
        let message = self.parsed()?;
        let mut addresses = message.from()?.iter().filter_map(|addr| addr.address());
        let first = addresses.next()?.to_owned();
        addresses.next().is_none().then_some(first)
    }

    /// Every address of the To, Cc and Bcc headers.
    pub fn header_recipients(&self) -> Vec<String> {
        let Some(message) = self.parsed() else {
            return Vec::new();
        };
        [message.to(), message.cc(), message.bcc()]
            .into_iter()
            .flatten()
            .flat_map(|address| address.iter())
            .filter_map(|addr| addr.address().map(str::to_owned))
            .collect()
    }

    /// Removes every Bcc header field (with its continuation lines).
    pub fn remove_bcc(&mut self) {
        let before = self.headers.len();
        self.headers = remove_header(&self.headers, b"bcc");
        if let Some(size) = self.size.as_mut() {
            *size -= (before - self.headers.len()) as u64;
        }
    }
}

/// Where the header section ends (after the blank line).
fn header_end(buffer: &[u8]) -> Option<usize> {
    if buffer.starts_with(b"\r\n") {
        return Some(2);
    }
    if buffer.starts_with(b"\n") {
        return Some(1);
    }
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The header section without the fields named `name` (lower case).
fn remove_header(headers: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len());
    let mut skipping = false;
    for line in headers.split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            skipping = line
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|colon| line[..colon].trim_ascii().eq_ignore_ascii_case(name));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_with_continuation_lines_is_removed() {
        let headers = b"From: a@b\r\nBcc: x@y,\r\n  z@w\r\nTo: c@d\r\nbcc:q@r\r\n\r\n";
        assert_eq!(
            remove_header(headers, b"bcc"),
            b"From: a@b\r\nTo: c@d\r\n\r\n"
        );
    }

    #[test]
    fn header_end_forms() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"\r\nbody"), Some(2));
        assert_eq!(header_end(b"A: b\r\n"), None);
    }
}
