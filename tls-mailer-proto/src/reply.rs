//! SMTP replies (RFC 5321 4.2) and an incremental parser with hard bounds.
//!
//! A hostile server can send endless lines, endless continuation lines or
//! garbage; [`ReplyParser`] turns each of those into a [`ProtocolError`] after
//! a bounded amount of input instead of buffering without limit.

use std::fmt;

use crate::error::ProtocolError;

/// A three-digit reply code such as `250` or `535`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// `451`: requested action aborted, local error (RFC 5321 4.2.3).
    pub(crate) const ACTION_ABORTED: Self = Self(451);

    /// Builds a code; `None` unless it is 200..=599 (the codes a reply may carry, RFC 5321 4.2.1).
    pub fn new(code: u16) -> Option<Self> {
        (200..=599).contains(&code).then_some(Self(code))
    }

    /// The numeric value.
    pub fn value(self) -> u16 {
        self.0
    }

    /// 2xx: the command succeeded.
    pub fn is_positive_completion(self) -> bool {
        self.0 / 100 == 2
    }

    /// 3xx: go on (354 after DATA, 334 during AUTH).
    pub fn is_positive_intermediate(self) -> bool {
        self.0 / 100 == 3
    }

    /// 4xx: refused for now; the same command may succeed later.
    pub fn is_transient_negative(self) -> bool {
        self.0 / 100 == 4
    }

    /// 5xx: refused for good.
    pub fn is_permanent_negative(self) -> bool {
        self.0 / 100 == 5
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An enhanced status code (RFC 3463) such as `5.7.8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// The subject (0..=999).
    pub subject: u16,
    /// The detail (0..=999).
    pub detail: u16,
}

impl EnhancedCode {
    /// Parses `class.subject.detail` at the start of `text`; returns the code
    /// and the rest of the text after the separating space.
    fn split_from(text: &str) -> Option<(Self, &str)> {
        let (token, rest) = match text.split_once(' ') {
            Some((token, rest)) => (token, rest),
            None => (text, ""),
        };
        let mut parts = token.split('.');
        let class: u8 = parse_digits(parts.next()?, 1)?;
        let subject: u16 = parse_digits(parts.next()?, 3)?;
        let detail: u16 = parse_digits(parts.next()?, 3)?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some((
            Self {
                class,
                subject,
                detail,
            },
            rest,
        ))
    }
}

fn parse_digits<T: std::str::FromStr>(s: &str, max_len: usize) -> Option<T> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete (possibly multi-line) reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    lines: Vec<String>,
}

impl Reply {
    /// Builds a reply from parts (used by tests and by callers that synthesise replies).
    pub fn new(code: ReplyCode, lines: Vec<String>) -> Self {
        let enhanced = lines
            .first()
            .and_then(|line| EnhancedCode::split_from(line))
            .filter(|(enhanced, _)| enhanced.class as u16 == code.value() / 100)
            .map(|(enhanced, _)| enhanced);
        Self {
            code,
            enhanced,
            lines,
        }
    }

    /// The reply code.
    pub fn code(&self) -> ReplyCode {
        self.code
    }

    /// The enhanced status code of the first line, when the server gave one
    /// whose class agrees with the reply code.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text of each line, after the code and separator (enhanced codes included).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The whole text on one line, lines joined by a space, with the enhanced
    /// code of the first line left out (it is available from [`Reply::enhanced`]).
    pub fn text(&self) -> String {
        let mut text = String::new();
        for (index, line) in self.lines.iter().enumerate() {
            let line = match (index, self.enhanced) {
                (0, Some(_)) => EnhancedCode::split_from(line).map_or(line.as_str(), |(_, r)| r),
                _ => line.as_str(),
            };
            if !text.is_empty() && !line.is_empty() {
                text.push(' ');
            }
            text.push_str(line);
        }
        text
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        self.code.is_positive_completion()
    }

    /// 4xx: retrying later may help.
    pub fn is_transient(&self) -> bool {
        self.code.is_transient_negative()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(enhanced) = self.enhanced {
            write!(f, " {enhanced}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Limits that bound what a server can make the parser hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest line, CRLF included. RFC 5321 says 512; real servers send more.
    pub max_line_len: usize,
    /// Most lines in one reply (an EHLO reply has one per extension).
    pub max_lines: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self {
            max_line_len: 4096,
            max_lines: 128,
        }
    }
}

/// Incremental reply parser: feed bytes as they arrive, take complete replies.
///
/// ```
/// use tls_mailer_proto::reply::ReplyParser;
/// let mut parser = ReplyParser::default();
/// parser.feed(b"250-mail.example.org\r\n250-PIPE");
/// assert!(parser.next_reply().unwrap().is_none());
/// parser.feed(b"LINING\r\n250 8BITMIME\r\n");
/// let reply = parser.next_reply().unwrap().unwrap();
/// assert_eq!(reply.code().value(), 250);
/// assert_eq!(reply.lines(), ["mail.example.org", "PIPELINING", "8BITMIME"]);
/// ```
#[derive(Debug, Default)]
pub struct ReplyParser {
    limits: ReplyLimits,
    /// Bytes received but not yet parsed into a complete line.
    buffer: Vec<u8>,
    /// Start of the unparsed part of `buffer`.
    consumed: usize,
    /// Lines of the reply being assembled.
    partial: Option<(ReplyCode, Vec<String>)>,
}

impl ReplyParser {
    /// A parser with the given limits.
    pub fn with_limits(limits: ReplyLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.consumed > 0 && self.consumed == self.buffer.len() {
            self.buffer.clear();
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received that are not part of a complete reply yet.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.consumed
    }

    /// True when no byte is waiting: used to detect data sent after the
    /// `220` to STARTTLS (RFC 3207 response injection).
    pub fn is_empty(&self) -> bool {
        self.buffered() == 0 && self.partial.is_none()
    }

    /// The next complete reply, `Ok(None)` if more input is needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtocolError> {
        loop {
            let pending = &self.buffer[self.consumed..];
            let Some(newline) = pending.iter().position(|&b| b == b'\n') else {
                if pending.len() > self.limits.max_line_len {
                    return Err(ProtocolError::LineTooLong {
                        limit: self.limits.max_line_len,
                    });
                }
                self.compact();
                return Ok(None);
            };
            if newline + 1 > self.limits.max_line_len {
                return Err(ProtocolError::LineTooLong {
                    limit: self.limits.max_line_len,
                });
            }
            // Accept a bare LF as line end too: some servers send it, and it is
            // unambiguous on the reply side.
            let line = &pending[..newline];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (code, is_last, text) = parse_line(line)?;
            self.consumed += newline + 1;
            let (expected, lines) = self.partial.get_or_insert_with(|| (code, Vec::new()));
            if *expected != code {
                return Err(ProtocolError::MalformedReply {
                    line: printable(line),
                    reason: "a continuation line carries a different reply code",
                });
            }
            if lines.len() >= self.limits.max_lines {
                return Err(ProtocolError::TooManyLines {
                    limit: self.limits.max_lines,
                });
            }
            lines.push(text);
            if is_last {
                let (code, lines) = self.partial.take().unwrap_or((code, Vec::new()));
                return Ok(Some(Reply::new(code, lines)));
            }
        }
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
    }
}

/// Splits `250-text` / `250 text` / `250` into code, is-last, text.
fn parse_line(line: &[u8]) -> Result<(ReplyCode, bool, String), ProtocolError> {
    let malformed = |reason| ProtocolError::MalformedReply {
        line: printable(line),
        reason,
    };
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(malformed("a reply line must start with a three-digit code"));
    }
    let value = line[..3]
        .iter()
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    let code = ReplyCode::new(value).ok_or_else(|| malformed("reply code out of range 200-599"))?;
    let (is_last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(malformed("the code must be followed by a space or '-'")),
    };
    Ok((code, is_last, printable(text)))
}

/// Server text made safe to show: invalid UTF-8 replaced, control characters
/// (terminal escape sequences from a hostile server) replaced by U+FFFD.
pub(crate) fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ProtocolError> {
        let mut parser = ReplyParser::default();
        parser.feed(input);
        let mut replies = Vec::new();
        while let Some(reply) = parser.next_reply()? {
            replies.push(reply);
        }
        Ok(replies)
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let replies = parse_all(b"550 5.1.1 <bob@example.org>: user unknown\r\n").unwrap();
        let reply = &replies[0];
        assert_eq!(reply.code().value(), 550);
        assert_eq!(
            reply.enhanced(),
            Some(EnhancedCode {
                class: 5,
                subject: 1,
                detail: 1
            })
        );
        assert_eq!(reply.text(), "<bob@example.org>: user unknown");
        assert_eq!(
            reply.to_string(),
            "550 5.1.1 <bob@example.org>: user unknown"
        );
    }

    #[test]
    fn enhanced_code_with_other_class_is_not_taken() {
        let reply = &parse_all(b"250 5.1.1 odd\r\n").unwrap()[0];
        assert_eq!(reply.enhanced(), None);
        assert_eq!(reply.text(), "5.1.1 odd");
    }

    #[test]
    fn code_alone_and_bare_lf() {
        let replies = parse_all(b"250\n354 go\r\n").unwrap();
        assert_eq!(replies.len(), 2);
        assert!(replies[0].lines()[0].is_empty());
        assert_eq!(replies[1].code().value(), 354);
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let input = b"250-a\r\n250-b c\r\n250 d\r\n221 bye\r\n";
        let mut parser = ReplyParser::default();
        let mut replies = Vec::new();
        for byte in input {
            parser.feed(std::slice::from_ref(byte));
            while let Some(reply) = parser.next_reply().unwrap() {
                replies.push(reply);
            }
        }
        assert_eq!(replies, parse_all(input).unwrap());
        assert!(parser.is_empty());
    }

    #[test]
    fn rejects_garbage() {
        for garbage in [
            &b"HTTP/1.1 400 Bad\r\n"[..],
            b"25\r\n",
            b"250x\r\n",
            b"199 no\r\n",
            b"600 no\r\n",
        ] {
            assert!(
                matches!(
                    parse_all(garbage),
                    Err(ProtocolError::MalformedReply { .. })
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn rejects_mixed_codes() {
        assert!(parse_all(b"250-a\r\n251 b\r\n").is_err());
    }

    #[test]
    fn endless_line_is_bounded_before_newline() {
        let mut parser = ReplyParser::default();
        let chunk = [b'A'; 1000];
        let mut result = Ok(None);
        for _ in 0..10 {
            parser.feed(&chunk);
            result = parser.next_reply();
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(
            result,
            Err(ProtocolError::LineTooLong { limit: 4096 })
        ));
        assert!(parser.buffered() <= 5000);
    }

    #[test]
    fn endless_continuation_is_bounded() {
        let input = b"250-x\r\n".repeat(200);
        assert!(matches!(
            parse_all(&input),
            Err(ProtocolError::TooManyLines { limit: 128 })
        ));
    }

    #[test]
    fn control_characters_are_neutralised() {
        let reply = &parse_all(b"550 \x1b[31mred\r\n").unwrap()[0];
        assert_eq!(reply.text(), "\u{FFFD}[31mred");
    }
}
