//! The message as a sendmail caller gives it: read up to a lone "." line
//! (unless -i), given a From header when it has none (-F's name with the
//! sender), and spooled to a private temporary file for `send`.

use std::io::{self, Chain, Cursor, Read, Write};

use base64::Engine as _;
use tls_mailer_message::{MessageError, RawMessage};

use crate::exit::Failure;

/// Where [`UntilLoneDot`] is in its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    Start,
    /// A "." at the start of a line, held back.
    Dot,
    /// ".\r" at the start of a line, held back.
    DotCr,
    Inside,
}

/// A reader that ends at a line holding only "." (with LF or CRLF), as
/// sendmail reads its input without -i; that line is not part of the
/// message and nothing after it is read. Leading dots are otherwise kept
/// (this is not SMTP: there is no dot-stuffing to undo).
#[derive(Debug)]
pub struct UntilLoneDot<R> {
    inner: R,
    line: Line,
    ready: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> UntilLoneDot<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            line: Line::Start,
            ready: Vec::new(),
            at: 0,
            done: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let read = loop {
            match self.inner.read(&mut chunk) {
                Ok(read) => break read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        };
        self.ready.clear();
        self.at = 0;
        if read == 0 {
            // A "." (or ".\r") on the last line without its line end ends
            // the input too.
            self.done = true;
            return Ok(());
        }
        for &byte in &chunk[..read] {
            self.line = match (self.line, byte) {
                (Line::Start, b'.') => Line::Dot,
                (Line::Dot, b'\r') => Line::DotCr,
                (Line::Dot | Line::DotCr, b'\n') => {
                    self.done = true;
                    return Ok(());
                }
                (Line::Dot, _) => {
                    self.ready.extend_from_slice(&[b'.', byte]);
                    Line::Inside
                }
                (Line::DotCr, _) => {
                    self.ready.extend_from_slice(&[b'.', b'\r', byte]);
                    Line::Inside
                }
                (_, b'\n') => {
                    self.ready.push(byte);
                    Line::Start
                }
                (_, _) => {
                    self.ready.push(byte);
                    Line::Inside
                }
            };
        }
        Ok(())
    }
}

impl<R: Read> Read for UntilLoneDot<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.ready.len() {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let count = out.len().min(self.ready.len() - self.at);
        out[..count].copy_from_slice(&self.ready[self.at..self.at + count]);
        self.at += count;
        Ok(count)
    }
}

/// The From header line for a message that has none: `From: NAME <sender>`
/// with -F's name (quoted, or RFC 2047-encoded when it is not ASCII), else
/// `From: sender`.
pub fn from_header(full_name: Option<&str>, sender: &str) -> Result<String, Failure> {
    let Some(name) = full_name.map(str::trim).filter(|name| !name.is_empty()) else {
        return Ok(format!("From: {sender}\r\n"));
    };
    if name.chars().any(char::is_control) {
        return Err(Failure::Usage(
            "-F: the name contains a control character (such as CR or LF); give it on one line"
                .into(),
        ));
    }
    let phrase = if !name.is_ascii() {
        encoded_words(name)
    } else if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c))
    {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    };
    Ok(format!("From: {phrase} <{sender}>\r\n"))
}

/// `text` as RFC 2047 encoded words (UTF-8, base64), each within the
/// 75-character limit, separated by folding-free spaces.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut piece = String::new();
    for c in text.chars() {
        // 45 bytes encode to 60 characters: with `=?utf-8?b?` and `?=`, 72.
        if piece.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut piece));
        }
        piece.push(c);
    }
    words.push(piece);
    words
        .iter()
        .map(|word| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(word)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message with a header line in front of it.
pub type WithFrom<R> = Chain<Cursor<Vec<u8>>, Chain<Cursor<Vec<u8>>, R>>;

/// The message read by `raw`, with a From header in front when it has
/// none (the sender must then be known: -f or the account's from), and the
/// bytes that adds.
pub fn with_from<R: Read>(
    raw: RawMessage<R>,
    sender: Option<&str>,
    full_name: Option<&str>,
) -> Result<(WithFrom<R>, u64), Failure> {
    let line = if raw.from().is_empty() {
        match sender.filter(|sender| !sender.is_empty()) {
            Some(sender) => from_header(full_name, sender)?,
            None => {
                return Err(Failure::BadMessage(
                    "no sender: the message has no From header; give -f ADDR, or set from \
                     in the account"
                        .into(),
                ));
            }
        }
    } else {
        String::new()
    };
    let added = line.len() as u64;
    Ok((
        Cursor::new(line.into_bytes()).chain(raw.into_reader()),
        added,
    ))
}

/// Reads the message from `input` (up to a lone "." unless `ignore_dots`),
/// adds a From header if it has none, and writes it to a private temporary
/// file, removed when the returned handle is dropped. Bcc is kept here:
/// `send` reads it for -t and removes it from what is sent.
pub fn spool(
    input: impl Read,
    ignore_dots: bool,
    sender: Option<&str>,
    full_name: Option<&str>,
) -> Result<tempfile::NamedTempFile, Failure> {
    let source: Box<dyn Read + '_> = if ignore_dots {
        Box::new(input)
    } else {
        Box::new(UntilLoneDot::new(input))
    };
    let raw = RawMessage::read(source, None)
        .map_err(|error| match error {
            MessageError::Io { source, .. } => {
                Failure::NoInput(format!("cannot read the message from stdin: {source}"))
            }
            other => Failure::BadMessage(other.to_string()),
        })?
        .keep_bcc(true);
    let (mut message, _) = with_from(raw, sender, full_name)?;
    let mut file = tempfile::NamedTempFile::new().map_err(|error| Failure::Output {
        target: "a temporary file for the message".into(),
        error,
    })?;
    let mut buffered = io::BufWriter::new(file.as_file_mut());
    // Reading and writing fail differently: stdin midway is 74 (the
    // message is incomplete), the temporary file is a local problem.
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match message.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(Failure::Send(tls_mailer::Error::ReadMessage(error)));
            }
        };
        buffered
            .write_all(&chunk[..read])
            .map_err(|error| Failure::Output {
                target: "a temporary file for the message".into(),
                error,
            })?;
    }
    buffered
        .into_inner()
        .map_err(|error| Failure::Output {
            target: "a temporary file for the message".into(),
            error: error.into_error(),
        })?
        .flush()
        .map_err(|error| Failure::Output {
            target: "a temporary file for the message".into(),
            error,
        })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until_dot(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        UntilLoneDot::new(input).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_lone_dot_ends_the_input_and_other_dots_stay() {
        assert_eq!(until_dot(b"a\n.\nafter\n"), b"a\n");
        assert_eq!(until_dot(b"a\r\n.\r\nafter\r\n"), b"a\r\n");
        assert_eq!(until_dot(b".\n"), b"");
        assert_eq!(
            until_dot(b"..\n.x\n. \n.\rx\nend\n."),
            b"..\n.x\n. \n.\rx\nend\n"
        );
        assert_eq!(until_dot(b"a.\nb\n"), b"a.\nb\n");
    }

    #[test]
    fn the_from_header_names_the_sender_and_the_full_name() {
        let from = |name| from_header(name, "cron@example.org").unwrap();
        assert_eq!(from(None), "From: cron@example.org\r\n");
        assert_eq!(
            from(Some("Cron Daemon")),
            "From: Cron Daemon <cron@example.org>\r\n"
        );
        assert_eq!(
            from(Some("Daemon, \"Cron\"")),
            "From: \"Daemon, \\\"Cron\\\"\" <cron@example.org>\r\n"
        );
        assert_eq!(
            from(Some("Jörg")),
            "From: =?utf-8?b?SsO2cmc=?= <cron@example.org>\r\n"
        );
        let long = "é".repeat(40);
        assert!(from(Some(&long)).split(' ').all(|word| word.len() <= 75));
        assert!(from_header(Some("a\r\nBcc: x@y"), "a@b.example").is_err());
    }

    #[test]
    fn a_message_without_from_gets_one_and_needs_a_sender() {
        let source: &[u8] = b"To: b@example.org\n\nHi\n";
        let raw = RawMessage::read(source, None).unwrap();
        let (mut reader, added) = with_from(raw, Some("a@example.org"), Some("A")).unwrap();
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        assert_eq!(
            out,
            "From: A <a@example.org>\r\nTo: b@example.org\r\n\r\nHi\n"
        );
        assert_eq!(added, "From: A <a@example.org>\r\n".len() as u64);

        let raw = RawMessage::read(source, None).unwrap();
        assert!(matches!(
            with_from(raw, None, None),
            Err(Failure::BadMessage(_))
        ));

        let with: &[u8] = b"From: c@example.org\n\nHi\n";
        let raw = RawMessage::read(with, None).unwrap();
        let (mut reader, added) = with_from(raw, Some("a@example.org"), Some("A")).unwrap();
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        assert_eq!(out, "From: c@example.org\r\n\r\nHi\n");
        assert_eq!(added, 0);
    }
}
