//! Streaming message encoders: DATA with dot-stuffing (RFC 5321 4.5.2) and
//! BDAT framing (RFC 3030). Both turn bare LF and bare CR into CRLF and end
//! the message with a line break. They keep their state across chunks, so the
//! bytes on the wire never depend on how the input was split, and memory never
//! grows with the message.

use crate::command::Command;

/// Line-ending normaliser shared by both encoders, with optional dot-stuffing.
#[derive(Clone, Debug)]
struct LineEncoder {
    dot_stuffing: bool,
    /// A CR was read; it becomes CRLF whatever follows, and a following LF is eaten.
    pending_cr: bool,
    /// The next byte starts a line.
    at_line_start: bool,
}

impl LineEncoder {
    fn new(dot_stuffing: bool) -> Self {
        Self {
            dot_stuffing,
            pending_cr: false,
            at_line_start: true,
        }
    }

    fn encode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 2);
        while let Some(&first) = input.first() {
            if self.pending_cr {
                self.pending_cr = false;
                self.at_line_start = true;
                out.extend_from_slice(b"\r\n");
                if first == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            if self.at_line_start && self.dot_stuffing && first == b'.' {
                out.push(b'.');
            }
            match memchr::memchr2(b'\r', b'\n', input) {
                None => {
                    out.extend_from_slice(input);
                    self.at_line_start = false;
                    return;
                }
                Some(end) => {
                    out.extend_from_slice(&input[..end]);
                    if input[end] == b'\n' {
                        out.extend_from_slice(b"\r\n");
                        self.at_line_start = true;
                    } else {
                        self.pending_cr = true;
                    }
                    input = &input[end + 1..];
                }
            }
        }
    }

    /// Ends the last line if the message did not.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.at_line_start = true;
    }
}

/// Line-ending normaliser: bare LF and bare CR become CRLF, and the end gets
/// a line break if it lacks one. What the encoders below send, without the
/// framing: useful to sign (DKIM) exactly the bytes the server will store.
///
/// ```
/// use tls_mailer_proto::CrlfNormalizer;
/// let mut normalizer = CrlfNormalizer::new();
/// let mut out = Vec::new();
/// normalizer.encode(b"a\nb\r", &mut out);
/// normalizer.encode(b"\nc", &mut out);
/// normalizer.finish(&mut out);
/// assert_eq!(out, b"a\r\nb\r\nc\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct CrlfNormalizer(LineEncoder);

impl Default for CrlfNormalizer {
    fn default() -> Self {
        Self::new()
    }
}

impl CrlfNormalizer {
    /// A fresh normaliser.
    pub fn new() -> Self {
        Self(LineEncoder::new(false))
    }

    /// Appends the normalised `chunk` to `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.0.encode(chunk, out);
    }

    /// Ends the last line if the input did not.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.0.finish(out);
    }
}

/// DATA encoder: dot-stuffs, normalises line endings, ends with `CRLF.CRLF`.
///
/// ```
/// use tls_mailer_proto::DotStuffer;
/// let mut stuffer = DotStuffer::new();
/// let mut out = Vec::new();
/// stuffer.encode(b"Subject: x\n\n.hidden\n", &mut out);
/// stuffer.encode(b"no final newline", &mut out);
/// stuffer.finish(&mut out);
/// assert_eq!(out, b"Subject: x\r\n\r\n..hidden\r\nno final newline\r\n.\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct DotStuffer(LineEncoder);

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    /// A fresh encoder, at the start of a line.
    pub fn new() -> Self {
        Self(LineEncoder::new(true))
    }

    /// Appends the encoding of `chunk` to `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.0.encode(chunk, out);
    }

    /// Appends the end of the message: a line break if missing, then `.CRLF`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.0.finish(out);
        out.extend_from_slice(b".\r\n");
    }
}

/// BDAT encoder (RFC 3030) that holds one chunk back, so the last frame
/// carries `LAST` itself and a short message is a single `BDAT n LAST`:
/// [`BdatFramer::encode`] normalises a chunk and writes the chunk held
/// before it as `BDAT n`; [`BdatFramer::finish`] writes the held chunk as
/// `BDAT n LAST`. Memory stays at one chunk, whatever the message size.
///
/// ```
/// use tls_mailer_proto::BdatFramer;
/// let mut framer = BdatFramer::new();
/// let mut out = Vec::new();
/// assert_eq!(framer.encode(b"Subject: x\n\n", &mut out), None);
/// assert_eq!(framer.encode(b"body", &mut out), Some(14));
/// assert_eq!(framer.finish(&mut out), 6);
/// assert_eq!(out, b"BDAT 14\r\nSubject: x\r\n\r\nBDAT 6 LAST\r\nbody\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct BdatFramer {
    /// `None` for a binary body (BINARYMIME): its bytes go as they are.
    lines: Option<LineEncoder>,
    held: Vec<u8>,
    scratch: Vec<u8>,
}

impl Default for BdatFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl BdatFramer {
    /// A fresh framer.
    pub fn new() -> Self {
        Self {
            lines: Some(LineEncoder::new(false)),
            held: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// A framer for a binary body (`BODY=BINARYMIME`, RFC 3030): the bytes
    /// go as they are, without line-ending normalisation or a final line
    /// break, so a CR, LF or NUL inside binary content arrives unchanged.
    ///
    /// ```
    /// use tls_mailer_proto::BdatFramer;
    /// let mut framer = BdatFramer::verbatim();
    /// let mut out = Vec::new();
    /// assert_eq!(framer.encode(b"\x00\n\r", &mut out), None);
    /// assert_eq!(framer.finish(&mut out), 3);
    /// assert_eq!(out, b"BDAT 3 LAST\r\n\x00\n\r");
    /// ```
    pub fn verbatim() -> Self {
        Self {
            lines: None,
            ..Self::new()
        }
    }

    /// Normalises `chunk` and holds it back; writes the chunk held before
    /// it as one `BDAT n` frame and returns `n`, or `None` when nothing was
    /// held (the first chunk, or chunks that normalise to nothing).
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Option<u64> {
        self.scratch.clear();
        match &mut self.lines {
            Some(lines) => lines.encode(chunk, &mut self.scratch),
            None => self.scratch.extend_from_slice(chunk),
        }
        if self.scratch.is_empty() {
            return None;
        }
        let written = if self.held.is_empty() {
            None
        } else {
            Some(frame(&self.held, false, out))
        };
        std::mem::swap(&mut self.held, &mut self.scratch);
        written
    }

    /// Writes what is held, with the final line break, as `BDAT n LAST`
    /// and returns `n`.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u64 {
        if let Some(lines) = &mut self.lines {
            lines.finish(&mut self.held);
        }
        let size = frame(&self.held, true, out);
        self.held.clear();
        size
    }
}

fn frame(chunk: &[u8], last: bool, out: &mut Vec<u8>) -> u64 {
    let size = chunk.len() as u64;
    Command::Bdat { size, last }.encode(out);
    out.extend_from_slice(chunk);
    size
}

/// The size of `message` on the wire after line-ending normalisation, as
/// SIZE (RFC 1870) must declare it: CRLF pairs counted, dot-stuffing not.
///
/// ```
/// assert_eq!(tls_mailer_proto::body::normalized_size(b"a\nb"), 6);
/// assert_eq!(tls_mailer_proto::body::normalized_size(b"a\r\n"), 3);
/// ```
pub fn normalized_size(message: &[u8]) -> u64 {
    let mut lines = LineEncoder::new(false);
    let mut scratch = Vec::with_capacity(64 * 1024 + 64 * 1024 / 32);
    let mut size = 0u64;
    for piece in message.chunks(32 * 1024) {
        scratch.clear();
        lines.encode(piece, &mut scratch);
        size += scratch.len() as u64;
    }
    scratch.clear();
    lines.finish(&mut scratch);
    size + scratch.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            stuffer.encode(chunk, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    /// What an RFC 5321 server does: split at CRLF until the lone ".", remove
    /// one leading dot per line. Written independently of the encoder.
    fn unstuff(wire: &[u8]) -> Vec<u8> {
        let text = wire.strip_suffix(b".\r\n").expect("terminator");
        let mut message = Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "every line ends in CRLF: {line:?}");
            assert!(line != b".\r\n", "no lone dot inside the message");
            message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        message
    }

    /// The reference normalisation: CRLF, bare CR and bare LF all become CRLF,
    /// and a message that does not end in a line break gets one.
    fn normalise(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut index = 0;
        while index < input.len() {
            match input[index] {
                b'\r' if input.get(index + 1) == Some(&b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    index += 1;
                }
                b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
                byte => out.push(byte),
            }
            index += 1;
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn edge_cases() {
        assert_eq!(stuff(&[]), b".\r\n");
        assert_eq!(stuff(&[b"."]), b"..\r\n.\r\n");
        assert_eq!(stuff(&[b".\r\n"]), b"..\r\n.\r\n");
        assert_eq!(stuff(&[b"a\r", b"\n.b"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff(&[b"a\r"]), b"a\r\n.\r\n");
        assert_eq!(stuff(&[b"a\r\r\n"]), b"a\r\n\r\n.\r\n");
        assert_eq!(stuff(&[b"x\n", b".", b"y"]), b"x\r\n..y\r\n.\r\n");
        assert_eq!(stuff(&[b"a.b\n..c"]), b"a.b\r\n...c\r\n.\r\n");
    }

    proptest! {
        #[test]
        fn data_round_trip(message in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..400),
            split in proptest::collection::vec(0usize..400, 0..6))
        {
            let mut cuts: Vec<usize> = split.into_iter().map(|c| c.min(message.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&message[start..cut]);
                start = cut;
            }
            chunks.push(&message[start..]);
            let wire = stuff(&chunks);
            prop_assert_eq!(&wire, &stuff(&[&message]));
            prop_assert_eq!(unstuff(&wire), normalise(&message));
        }

        #[test]
        fn bdat_round_trip(message in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400), cut in 0usize..400)
        {
            let cut = cut.min(message.len());
            let mut framer = BdatFramer::new();
            let mut wire = Vec::new();
            framer.encode(&message[..cut], &mut wire);
            framer.encode(&message[cut..], &mut wire);
            framer.finish(&mut wire);
            // Parse the frames back as a server would.
            let mut received = Vec::new();
            let mut rest = &wire[..];
            loop {
                let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let line = std::str::from_utf8(&rest[..line_end]).unwrap();
                let mut words = line.split(' ');
                prop_assert_eq!(words.next(), Some("BDAT"));
                let size: usize = words.next().unwrap().parse().unwrap();
                let last = words.next() == Some("LAST");
                rest = &rest[line_end + 2..];
                received.extend_from_slice(&rest[..size]);
                rest = &rest[size..];
                if last { break; }
            }
            prop_assert!(rest.is_empty());
            prop_assert_eq!(received, normalise(&message));
        }
    }
}
