//! A message as bytes (a file, stdin), sent as it is but for Bcc: its
//! header section read once, bounded, with the same notion of a line as the
//! SMTP encoders; the body streamed untouched.

use std::fmt;
use std::io::{self, Chain, Cursor, Read};
use std::ops::Range;

use mail_parser::{HeaderName, MessageParser};
use tls_mailer_proto::{Address, CrlfNormalizer, Envelope};

use crate::envelope;
use crate::error::MessageError;
use crate::import::field_addresses;

/// The largest header section [`RawMessage::read`] accepts (1 MiB), so that
/// input without a blank line cannot make it read everything into memory.
pub const MAX_HEADER_SECTION: usize = 1 << 20;

/// A message given as bytes, with its header section read and the body
/// still in the source.
///
/// - The header section is read up to its empty line, at most
///   [`MAX_HEADER_SECTION`] bytes, and its line ends are normalised first:
///   a bare CR and a bare LF each become CRLF, as the SMTP encoders do on the
///   wire. So there is one notion of a line: a `\r` inside a field is the
///   start of the next field here too, never hidden inside a value.
/// - The addresses come from every From, Sender, To, Cc and Bcc field (not
///   only the last of each name; groups and comments understood), read by
///   the same code as [`Email::parse`](crate::Email::parse), and the
///   envelope follows the same rules as [`Email::envelope`](crate::Email::envelope).
/// - Every Bcc field is removed from what is sent, with its continuation
///   lines, unless [`keep_bcc`](RawMessage::keep_bcc) says otherwise.
/// - [`into_reader`](RawMessage::into_reader) gives the message to send:
///   the normalised header section, then the body exactly as the source has
///   it, streamed in constant memory.
///
/// ```
/// use std::io::Read;
/// use tls_mailer_message::RawMessage;
///
/// // A bare CR ends the To field: Bcc is a field of its own, and removed.
/// let source = b"From: alice@example.org\nTo: bob@example.org\rBcc: secret@example.net\n\nHi\n";
/// let message = RawMessage::read(&source[..], Some(source.len() as u64))?;
/// assert_eq!(message.to(), ["bob@example.org"]);
/// assert_eq!(message.bcc(), ["secret@example.net"]);
///
/// let envelope = message.envelope()?;
/// assert_eq!(envelope.sender().as_str(), "alice@example.org");
/// assert_eq!(envelope.recipients().len(), 2);
///
/// let size = message.size();
/// let mut sent = Vec::new();
/// message.into_reader().read_to_end(&mut sent)?;
/// assert_eq!(sent, b"From: alice@example.org\r\nTo: bob@example.org\r\n\r\nHi\n");
/// assert_eq!(size, Some(sent.len() as u64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawMessage<R> {
    /// The header section, line ends normalised, empty line included.
    header: Vec<u8>,
    /// The byte ranges of `header` that belong to Bcc fields.
    bcc_lines: Vec<Range<usize>>,
    /// Body bytes read together with the header section.
    read_ahead: Vec<u8>,
    /// The rest of the body.
    source: R,
    /// The source's size, if known, and how much of it the header took.
    source_size: Option<u64>,
    source_header_len: usize,
    keep_bcc: bool,
    from: Vec<String>,
    sender: Vec<String>,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
}

impl<R: Read> RawMessage<R> {
    /// Reads the header section of the message in `source`, whose total
    /// size is `size` when known (a file's length; `None` for a pipe).
    ///
    /// Errors: [`MessageError::Io`] when reading fails,
    /// [`MessageError::HeaderSectionTooLong`] when no empty line ends the
    /// header section within [`MAX_HEADER_SECTION`] bytes. A source that
    /// ends without an empty line is all header section.
    pub fn read(mut source: R, size: Option<u64>) -> Result<Self, MessageError> {
        let mut buffer = Vec::new();
        let mut finder = HeaderEnd::default();
        let mut chunk = vec![0u8; 16 * 1024];
        let mut eof = false;
        let end = loop {
            if let Some(end) = finder.scan(&buffer, eof) {
                break end;
            }
            if eof {
                break buffer.len();
            }
            if buffer.len() > MAX_HEADER_SECTION {
                break buffer.len();
            }
            match source.read(&mut chunk) {
                Ok(0) => eof = true,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(MessageError::io(None, error)),
            }
        };
        if end > MAX_HEADER_SECTION {
            return Err(MessageError::HeaderSectionTooLong {
                limit: MAX_HEADER_SECTION,
            });
        }
        let read_ahead = buffer.split_off(end);
        let mut header = Vec::with_capacity(end + end / 32 + 2);
        let mut normalizer = CrlfNormalizer::new();
        normalizer.encode(&buffer, &mut header);
        normalizer.finish(&mut header);

        let mut message = Self {
            bcc_lines: bcc_lines(&header),
            header,
            read_ahead,
            source,
            source_size: size,
            source_header_len: end,
            keep_bcc: false,
            from: Vec::new(),
            sender: Vec::new(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
        };
        if let Some(parsed) = MessageParser::default().parse_headers(&message.header) {
            let addresses = |name: HeaderName<'static>| -> Vec<String> {
                field_addresses(&parsed, &name)
                    .into_iter()
                    .map(|(_, address)| address.to_string())
                    .collect()
            };
            message.from = addresses(HeaderName::From);
            message.sender = addresses(HeaderName::Sender);
            message.to = addresses(HeaderName::To);
            message.cc = addresses(HeaderName::Cc);
            message.bcc = addresses(HeaderName::Bcc);
            // Whatever mail-parser read as a Bcc field goes too, even where
            // it is lenient about what starts a field.
            for header in parsed.headers() {
                if header.name == HeaderName::Bcc {
                    let start = line_start(&message.header, header.offset_field as usize);
                    message.bcc_lines.push(start..header.offset_end as usize);
                }
            }
        }
        Ok(message)
    }

    /// Whether Bcc fields are sent: `false` (the default) removes every one
    /// of them, as a Bcc recipient must not be shown to the others.
    pub fn keep_bcc(mut self, keep: bool) -> Self {
        self.keep_bcc = keep;
        self
    }

    /// Every address of every From field, in order.
    pub fn from(&self) -> &[String] {
        &self.from
    }

    /// Every address of every Sender field, in order.
    pub fn sender(&self) -> &[String] {
        &self.sender
    }

    /// Every address of every To field, in order.
    pub fn to(&self) -> &[String] {
        &self.to
    }

    /// Every address of every Cc field, in order.
    pub fn cc(&self) -> &[String] {
        &self.cc
    }

    /// Every address of every Bcc field, in order (whether or not the Bcc
    /// fields are kept).
    pub fn bcc(&self) -> &[String] {
        &self.bcc
    }

    /// The envelope sender by the rule of
    /// [`Email::envelope_sender`](crate::Email::envelope_sender): the
    /// (first) Sender address, else the From address when there is exactly
    /// one; [`MessageError::NoFrom`] or
    /// [`MessageError::MultipleFromWithoutSender`] otherwise.
    pub fn envelope_sender(&self) -> Result<Address, MessageError> {
        checked(envelope::envelope_sender(self.sender.first(), &self.from)?)
    }

    /// The addresses of the To, Cc and Bcc fields, one per mailbox, first
    /// occurrence kept: the rule of [`Email::envelope_recipients`](crate::Email::envelope_recipients).
    pub fn envelope_recipients(&self) -> Result<Vec<Address>, MessageError> {
        let all = self
            .to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .map(|address| checked(address))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(envelope::unique_recipients(all))
    }

    /// The envelope from the message alone, as
    /// [`Email::envelope`](crate::Email::envelope) builds it.
    pub fn envelope(&self) -> Result<Envelope, MessageError> {
        let sender = self.envelope_sender()?;
        envelope::envelope(&sender, self.envelope_recipients()?)
    }

    /// The size of what [`into_reader`](RawMessage::into_reader) gives,
    /// when the source's size was known: the header section as it will be
    /// sent (normalised, Bcc removed or not) and the body.
    pub fn size(&self) -> Option<u64> {
        let body = self
            .source_size?
            .saturating_sub(self.source_header_len as u64);
        Some(body + self.header_to_send_len() as u64)
    }

    /// The message to send: the header section (normalised, without Bcc
    /// fields unless kept), then the body as the source has it.
    pub fn into_reader(self) -> Chain<Cursor<Vec<u8>>, R> {
        let mut start = Vec::with_capacity(self.header_to_send_len() + self.read_ahead.len());
        let mut at = 0;
        for range in self.removed() {
            start.extend_from_slice(&self.header[at..range.start]);
            at = range.end;
        }
        start.extend_from_slice(&self.header[at..]);
        start.extend_from_slice(&self.read_ahead);
        Cursor::new(start).chain(self.source)
    }

    /// The ranges of the header section left out, sorted and disjoint.
    fn removed(&self) -> Vec<Range<usize>> {
        if self.keep_bcc {
            return Vec::new();
        }
        let mut ranges = self.bcc_lines.clone();
        ranges.sort_by_key(|range| range.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        merged
    }

    fn header_to_send_len(&self) -> usize {
        let removed: usize = self.removed().iter().map(ExactSizeIterator::len).sum();
        self.header.len() - removed
    }
}

impl<R> fmt::Debug for RawMessage<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMessage")
            .field("header_len", &self.header.len())
            .field("from", &self.from)
            .field("sender", &self.sender)
            .field("to", &self.to)
            .field("cc", &self.cc)
            .field("bcc", &self.bcc)
            .field("keep_bcc", &self.keep_bcc)
            .field("source_size", &self.source_size)
            .finish_non_exhaustive()
    }
}

fn checked(address: &str) -> Result<Address, MessageError> {
    Address::new(address).map_err(|error| MessageError::InvalidAddress {
        input: address.to_string(),
        reason: error.reason,
    })
}

/// Finds the end of the header section: just after the line break of the
/// first empty line, where a line ends with CRLF, LF or a CR alone, as the
/// SMTP encoders have it. Resumes where the previous scan stopped.
#[derive(Debug, Default)]
struct HeaderEnd {
    pos: usize,
    line_start: usize,
}

impl HeaderEnd {
    /// `Some(end)` once found in `buffer`; `None` when more input is needed
    /// (or, at the end of input, when there is no empty line).
    fn scan(&mut self, buffer: &[u8], eof: bool) -> Option<usize> {
        while let Some(&byte) = buffer.get(self.pos) {
            let line_break = match byte {
                b'\n' => 1,
                b'\r' => match buffer.get(self.pos + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A CR at the end of what was read so far: whether it is
                    // half of a CRLF depends on the next byte.
                    None if eof => 1,
                    None => return None,
                },
                _ => {
                    self.pos += 1;
                    continue;
                }
            };
            let empty = self.pos == self.line_start;
            self.pos += line_break;
            self.line_start = self.pos;
            if empty {
                return Some(self.pos);
            }
        }
        None
    }
}

/// The start of the line holding `offset`, in CRLF-normalised text.
fn line_start(header: &[u8], offset: usize) -> usize {
    header
        .get(..offset)
        .and_then(|before| before.iter().rposition(|&b| b == b'\n'))
        .map_or(0, |newline| newline + 1)
}

/// The lines of Bcc fields in a CRLF-normalised header section: a line
/// whose field name (the text before its first `:`, white space left out,
/// any case) is `Bcc`, with the continuation lines (starting with space or
/// tab) that follow it.
fn bcc_lines(header: &[u8]) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut in_bcc = false;
    let mut at = 0;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let range = at..at + line.len();
        at = range.end;
        if line == b"\r\n" {
            // The empty line ends the header section.
            break;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            in_bcc = line.iter().position(|&b| b == b':').is_some_and(|colon| {
                let name: Vec<u8> = line[..colon]
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                name.eq_ignore_ascii_case(b"bcc")
            });
        }
        if in_bcc {
            match ranges.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => ranges.push(range),
            }
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that gives at most `step` bytes per call and counts what was
    /// asked of it.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        served: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.served += n;
            Ok(n)
        }
    }

    fn read(source: &[u8]) -> RawMessage<&[u8]> {
        RawMessage::read(source, Some(source.len() as u64)).unwrap()
    }

    fn sent<R: Read>(message: RawMessage<R>) -> Vec<u8> {
        let size = message.size();
        let mut out = Vec::new();
        message.into_reader().read_to_end(&mut out).unwrap();
        if let Some(size) = size {
            assert_eq!(size, out.len() as u64, "size() matches what is sent");
        }
        out
    }

    fn addresses(list: &[Address]) -> Vec<&str> {
        list.iter().map(Address::as_str).collect()
    }

    /// The wire form of `bytes` (what the SMTP encoders send, without
    /// framing).
    fn on_the_wire(bytes: &[u8]) -> Vec<u8> {
        let mut normalizer = CrlfNormalizer::new();
        let mut out = Vec::new();
        normalizer.encode(bytes, &mut out);
        normalizer.finish(&mut out);
        out
    }

    #[test]
    fn bare_cr_bcc_is_a_field_of_its_own_and_is_removed() {
        let source = b"From: alice@example.org\r\nTo: b@example.org\rBcc: secret@example.net\r\n\
                       Subject: s\r\n\r\nbody\r\n";
        let message = read(source);
        assert_eq!(message.to(), ["b@example.org"]);
        assert_eq!(message.bcc(), ["secret@example.net"]);
        assert_eq!(
            addresses(&message.envelope_recipients().unwrap()),
            ["b@example.org", "secret@example.net"]
        );
        let out = sent(message);
        assert_eq!(
            out,
            b"From: alice@example.org\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n"
        );
        assert!(
            !String::from_utf8_lossy(&on_the_wire(&out)).contains("secret"),
            "the Bcc address never reaches the wire"
        );
    }

    #[test]
    fn bare_lf_and_mixed_line_ends_are_normalised() {
        let source = b"From: a@example.org\nTo: b@example.org\r\nBcc: c@example.org\n\
                       Cc: d@example.org\r\rbody\nline two\r";
        let message = read(source);
        assert_eq!(message.cc(), ["d@example.org"]);
        assert_eq!(
            sent(message),
            b"From: a@example.org\r\nTo: b@example.org\r\nCc: d@example.org\r\n\r\nbody\nline two\r"
        );
    }

    #[test]
    fn continuation_lines_of_bcc_go_with_it() {
        let source = b"From: a@example.org\r\nBcc: x@example.org,\r\n  y@example.org,\r\n\t\"Z\" <z@example.org>\r\n\
                       To: b@example.org\r\n\r\nbody";
        let message = read(source);
        assert_eq!(
            message.bcc(),
            ["x@example.org", "y@example.org", "z@example.org"]
        );
        assert_eq!(
            sent(message),
            b"From: a@example.org\r\nTo: b@example.org\r\n\r\nbody"
        );
    }

    #[test]
    fn every_bcc_field_is_read_and_removed() {
        let source = b"BCC: one@example.org\r\nFrom: a@example.org\r\nbcc: two@example.org\r\n\
                       To: b@example.org\r\nBcc : three@example.org\r\nB cc: four@example.org\r\n\
                       Subject: Bcc: not a field\r\n\r\nBcc: in the body stays\r\n";
        let message = read(source);
        assert_eq!(
            message.bcc(),
            [
                "one@example.org",
                "two@example.org",
                "three@example.org",
                "four@example.org"
            ]
        );
        assert_eq!(
            sent(message),
            b"From: a@example.org\r\nTo: b@example.org\r\nSubject: Bcc: not a field\r\n\r\n\
              Bcc: in the body stays\r\n"
        );
    }

    #[test]
    fn a_first_line_that_mail_parser_reads_as_bcc_is_removed() {
        // mail-parser skips the leading space and reads a Bcc field; the
        // line goes, so no reader sees an address that was sent to.
        let message = read(b" Bcc: first@example.org\r\nTo: b@example.org\r\n\r\nx");
        assert_eq!(message.bcc(), ["first@example.org"]);
        assert_eq!(sent(message), b"To: b@example.org\r\n\r\nx");
    }

    #[test]
    fn keep_bcc_sends_the_normalised_header_whole() {
        let source = b"From: a@example.org\nBcc: x@example.org,\n y@example.org\nTo: b@example.org\n\nbody\n";
        let message = read(source).keep_bcc(true);
        assert_eq!(message.bcc(), ["x@example.org", "y@example.org"]);
        assert_eq!(
            sent(message),
            b"From: a@example.org\r\nBcc: x@example.org,\r\n y@example.org\r\nTo: b@example.org\r\n\r\nbody\n"
        );
    }

    #[test]
    fn header_section_is_bounded() {
        let mut source = b"From: a@example.org\r\nX-Long: ".to_vec();
        source.resize(MAX_HEADER_SECTION + 10, b'x');
        source.extend_from_slice(b"\r\n\r\nbody");
        let mut trickle = Trickle {
            data: &source,
            step: 4096,
            served: 0,
        };
        let error = RawMessage::read(&mut trickle, None).unwrap_err();
        assert!(
            matches!(error, MessageError::HeaderSectionTooLong { limit } if limit == MAX_HEADER_SECTION),
            "{error}"
        );
        assert!(error.to_string().contains("1 MiB"), "{error}");
        assert!(
            trickle.served <= MAX_HEADER_SECTION + 16 * 1024 + 4096,
            "stopped reading at the bound: {} bytes",
            trickle.served
        );

        // No empty line at all, and more than the bound: the same error.
        let endless = vec![b'a'; MAX_HEADER_SECTION * 2];
        assert!(matches!(
            RawMessage::read(&endless[..], None),
            Err(MessageError::HeaderSectionTooLong { .. })
        ));

        // A header section of exactly the bound is accepted.
        let mut exact = b"X: ".to_vec();
        exact.resize(MAX_HEADER_SECTION - 4, b'y');
        exact.extend_from_slice(b"\r\n\r\n");
        assert_eq!(exact.len(), MAX_HEADER_SECTION);
        exact.extend_from_slice(b"body");
        assert_eq!(sent(read(&exact)).len(), exact.len());
    }

    #[test]
    fn body_is_streamed_byte_exact_after_the_header() {
        // Bytes that a normaliser would change, in a body larger than what
        // is read with the header, through a source that gives 7 bytes at a
        // time.
        let mut body = Vec::new();
        for i in 0..200_000u32 {
            body.push((i % 251) as u8);
            if i % 97 == 0 {
                body.extend_from_slice(b"\r\r\n\n.\r");
            }
        }
        let mut source =
            b"From: a@example.org\nBcc: hidden@example.org\nTo: b@example.org\n\n".to_vec();
        source.extend_from_slice(&body);
        let trickle = Trickle {
            data: &source,
            step: 7,
            served: 0,
        };
        let message = RawMessage::read(trickle, Some(source.len() as u64)).unwrap();
        let out = sent(message);
        let header = b"From: a@example.org\r\nTo: b@example.org\r\n\r\n";
        assert_eq!(&out[..header.len()], header);
        assert!(out[header.len()..] == body[..], "the body is untouched");
    }

    #[test]
    fn only_what_the_header_needs_is_read_before_streaming() {
        let mut source = b"To: b@example.org\r\n\r\n".to_vec();
        source.resize(10 * 1024 * 1024, b'z');
        let mut trickle = Trickle {
            data: &source,
            step: usize::MAX,
            served: 0,
        };
        let message = RawMessage::read(&mut trickle, None).unwrap();
        assert_eq!(message.size(), None, "the size of a pipe is not known");
        drop(message);
        assert!(trickle.served <= 16 * 1024, "{} bytes read", trickle.served);
    }

    #[test]
    fn a_cr_at_a_read_boundary_is_judged_with_the_next_byte() {
        // Split right after the CR of "\r\n" and after a lone CR: the same
        // result as reading in one go.
        for source in [
            &b"To: b@example.org\r\n\r\nbody"[..],
            &b"To: b@example.org\r\rbody"[..],
            &b"To: b@example.org\r\r\nbody"[..],
            &b"To: b@example.org\n\r\nbody"[..],
        ] {
            let whole = sent(read(source));
            for step in 1..source.len() {
                let trickle = Trickle {
                    data: source,
                    step,
                    served: 0,
                };
                let message = RawMessage::read(trickle, Some(source.len() as u64)).unwrap();
                assert_eq!(sent(message), whole, "{source:?} by {step}");
            }
            assert_eq!(on_the_wire(&whole), on_the_wire(source), "{source:?}");
        }
    }

    #[test]
    fn header_end_forms() {
        let end = |bytes: &[u8]| HeaderEnd::default().scan(bytes, true);
        assert_eq!(end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(end(b"A: b\n\nbody"), Some(6));
        assert_eq!(end(b"A: b\r\rbody"), Some(6));
        assert_eq!(end(b"A: b\r\r\nbody"), Some(7));
        assert_eq!(end(b"\r\nbody"), Some(2));
        assert_eq!(end(b"\nbody"), Some(1));
        assert_eq!(end(b"A: b\r\n"), None);
        assert_eq!(HeaderEnd::default().scan(b"A: b\r\n\r", false), None);
        assert_eq!(HeaderEnd::default().scan(b"A: b\r\n\r", true), Some(7));
    }

    #[test]
    fn a_message_without_empty_line_is_all_header() {
        let message = read(b"From: a@example.org\nTo: b@example.org\nBcc: c@example.org");
        assert_eq!(message.bcc(), ["c@example.org"]);
        assert_eq!(
            sent(message),
            b"From: a@example.org\r\nTo: b@example.org\r\n"
        );
    }

    #[test]
    fn envelope_follows_the_email_rules() {
        let source = b"From: a@example.org, ann@example.org\r\nSender: s@example.org\r\n\
                       To: Bob <bob@Example.org>, grp: c@example.org;\r\nCc: (note) bob@example.org\r\n\
                       Bcc: d@example.org\r\nTo: e@example.org\r\n\r\nbody";
        let message = read(source);
        let envelope = message.envelope().unwrap();
        assert_eq!(envelope.sender().as_str(), "s@example.org");
        assert_eq!(
            addresses(envelope.recipients()),
            [
                "bob@Example.org",
                "c@example.org",
                "e@example.org",
                "d@example.org"
            ]
        );
        let email = crate::Email::parse(source).unwrap();
        assert_eq!(email.envelope().unwrap(), envelope, "same as Email");

        let sender = |source: &[u8]| read(source).envelope_sender();
        assert_eq!(
            sender(b"From: \"A, B\" <a@example.org>\r\n\r\n")
                .unwrap()
                .as_str(),
            "a@example.org"
        );
        assert!(matches!(
            sender(b"From: a@example.org, b@example.org\r\n\r\n"),
            Err(MessageError::MultipleFromWithoutSender)
        ));
        assert!(matches!(
            sender(b"From: a@example.org\r\nFrom: b@example.org\r\n\r\n"),
            Err(MessageError::MultipleFromWithoutSender)
        ));
        assert!(matches!(
            sender(b"Subject: x\r\n\r\n"),
            Err(MessageError::NoFrom)
        ));
        assert!(matches!(
            sender(b"From: a..b@example.org\r\n\r\n"),
            Err(MessageError::InvalidAddress { .. })
        ));
        assert!(matches!(
            read(b"From: a@example.org\r\n\r\n").envelope(),
            Err(MessageError::NoRecipients)
        ));
    }

    #[test]
    fn read_errors_are_io_errors() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let error = RawMessage::read(Failing, None).unwrap_err();
        assert!(
            matches!(&error, MessageError::Io { path: None, source } if source.to_string() == "disk on fire"),
            "{error:?}"
        );
    }
}
