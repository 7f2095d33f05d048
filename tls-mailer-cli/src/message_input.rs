//! A raw message from stdin or a file: its header section is read (bounded)
//! to find From / To / Cc / Bcc and to drop Bcc; the body is streamed.

use std::fs::File;
use std::io::{self, Cursor, IsTerminal, Read};
use std::path::Path;

use mail_parser::HeaderName;

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
            None => {
                if io::stdin().is_terminal() {
                    eprintln!(
                        "tls-mailer: reading the message from the terminal; end it with Ctrl-D \
                         (or give --message FILE)"
                    );
                }
                (Box::new(io::stdin()), None)
            }
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
            let read = source.read(&mut chunk).map_err(|error| {
                Failure::NoInput(match path {
                    Some(path) => {
                        format!("cannot read the message file {}: {error}", path.display())
                    }
                    None => format!("cannot read the message from stdin: {error}"),
                })
            })?;
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

    /// The envelope sender taken from the message: the From address when
    /// there is exactly one, else the Sender address (RFC 5322 3.6.2).
    pub fn sender_address(&self) -> Result<String, Failure> {
        let message = self.parsed();
        let field = |name: HeaderName<'static>| -> Vec<String> {
            message
                .as_ref()
                .map(|message| addresses(message, &[name]))
                .unwrap_or_default()
        };
        let from = field(HeaderName::From);
        if let [single] = from.as_slice() {
            return Ok(single.clone());
        }
        if let [single] = field(HeaderName::Sender).as_slice() {
            return Ok(single.clone());
        }
        Err(Failure::BadMessage(if from.is_empty() {
            "no sender: the message has no From address; give --from ADDR".into()
        } else {
            format!(
                "no sender: the message has {} From addresses and no Sender header; give --from ADDR",
                from.len()
            )
        }))
    }

    /// Every address of every To, Cc and Bcc header field.
    pub fn header_recipients(&self) -> Vec<String> {
        self.parsed()
            .map(|message| addresses(&message, &[HeaderName::To, HeaderName::Cc, HeaderName::Bcc]))
            .unwrap_or_default()
    }

    /// Removes every Bcc header field (with its continuation lines).
    pub fn remove_bcc(&mut self) {
        let before = self.headers.len();
        self.headers = remove_header(&self.headers, b"bcc");
        if let Some(size) = self.size.as_mut() {
            *size = size.saturating_sub((before - self.headers.len()) as u64);
        }
    }
}

/// The addresses of every field with one of these names, in field order
/// (`Message::to()` and friends see only the last field of each name).
fn addresses(message: &mail_parser::Message<'_>, names: &[HeaderName<'static>]) -> Vec<String> {
    message
        .headers()
        .iter()
        .filter(|header| names.contains(&header.name))
        .filter_map(|header| header.value.as_address())
        .flat_map(|address| address.iter())
        .filter_map(|addr| addr.address().map(str::to_owned))
        .collect()
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

    fn headers(text: &str) -> RawMessage {
        RawMessage {
            headers: text.as_bytes().to_vec(),
            rest: Box::new(io::empty()),
            size: None,
        }
    }

    #[test]
    fn every_recipient_field_counts_not_only_the_last() {
        let message = headers(
            "From: a@example.org\r\nTo: Bob <b@example.org>, grp: c@example.org;\r\n\
             Bcc: d@example.org\r\nCc: (note) e@example.org\r\nBcc: f@example.org,\r\n \"G, H\" <g@example.org>\r\n\r\n",
        );
        assert_eq!(
            message.header_recipients(),
            [
                "b@example.org",
                "c@example.org",
                "d@example.org",
                "e@example.org",
                "f@example.org",
                "g@example.org"
            ]
        );
    }

    #[test]
    fn sender_is_the_single_from_else_sender() {
        let one = headers("From: \"A, B\" <a@example.org>\r\n\r\n");
        assert_eq!(one.sender_address().ok().as_deref(), Some("a@example.org"));
        let two = headers("From: a@example.org, b@example.org\r\nSender: s@example.org\r\n\r\n");
        assert_eq!(two.sender_address().ok().as_deref(), Some("s@example.org"));
        let ambiguous = headers("From: a@example.org, b@example.org\r\n\r\n");
        assert!(
            ambiguous
                .sender_address()
                .is_err_and(|error| error.to_string().contains("2 From addresses"))
        );
        assert!(headers("Subject: x\r\n\r\n").sender_address().is_err());
    }

    #[test]
    fn header_end_forms() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"\r\nbody"), Some(2));
        assert_eq!(header_end(b"A: b\r\n"), None);
    }
}
