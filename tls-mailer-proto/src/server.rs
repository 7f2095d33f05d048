//! The server side of an SMTP dialogue, sans-IO: what `sendmail -bs` speaks
//! to its caller on stdin and stdout.
//!
//! [`ServerSession`] takes the caller's bytes, answers each command line
//! itself (EHLO, HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; 502 or 500 for
//! anything else), undoes dot-stuffing in the DATA phase and finds the final
//! dot. What it cannot decide it hands over as a [`ServerEvent`]: the bytes
//! of a message, its end (the driver relays it and gives the verdict with
//! [`ServerSession::finish_message`]), and QUIT.
//!
//! Everything it holds is bounded ([`ServerLimits`]): a command line (RFC
//! 5321 4.5.3.1.4: 512 octets with its CRLF; a longer one is discarded and
//! answered with 500), the recipients of a message (at least the 100 of RFC
//! 5321 4.5.3.1.8; more get 452), the message bytes handed over at once, and
//! the replies waiting to be written. It takes input only while nothing it
//! produced is waiting, so a caller that pipelines a thousand commands
//! without reading cannot grow it.
//!
//! Text lines in the DATA phase are not limited in length: RFC 5321
//! 4.5.3.1 asks servers not to impose the 1000-octet limit where they can,
//! and a long line is streamed in pieces, never held whole. Only CRLF ends a
//! line there (a bare LF is message content), so `<LF>.<LF>` cannot end a
//! message early and smuggle what follows in as commands; in the command
//! phase a bare LF is accepted as a line end.
//!
//! ```
//! use tls_mailer_proto::server::{ServerEvent, ServerSession};
//! use tls_mailer_proto::{Reply, ReplyCode};
//!
//! let mut session = ServerSession::new("localhost");
//! let mut wire = Vec::new();
//! let mut message = Vec::new();
//! let mut input: &[u8] = b"EHLO app\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n\
//!     DATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n";
//! while !input.is_empty() {
//!     let taken = session.handle_input(input);
//!     input = &input[taken..];
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             ServerEvent::Data(bytes) => message.extend_from_slice(bytes),
//!             ServerEvent::MessageEnd => {
//!                 assert_eq!(session.sender(), Some("a@example.org"));
//!                 assert_eq!(session.recipients(), ["b@example.org"]);
//!                 let verdict = Reply::new(ReplyCode::new(250).unwrap(), vec!["2.0.0 queued as X1".into()]);
//!                 assert!(session.finish_message(&verdict));
//!             }
//!             ServerEvent::Quit => {}
//!         }
//!     }
//!     while session.poll_transmit(&mut wire) {}
//! }
//! assert_eq!(message, b"Subject: hi\r\n\r\n.dot\r\n");
//! let wire = String::from_utf8(wire).unwrap();
//! assert!(wire.starts_with("220 localhost ESMTP"));
//! assert!(wire.contains("354 "));
//! assert!(wire.contains("250 2.0.0 queued as X1\r\n221 "));
//! assert!(session.is_closed());
//! ```

use crate::address::{Address, ReversePath};
use crate::reply::Reply;

/// The bounds of a [`ServerSession`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// The longest command line, CRLF included (RFC 5321: 512).
    pub command_line: usize,
    /// Recipients per message (RFC 5321 asks servers to take at least 100).
    pub recipients: usize,
    /// Message bytes handed over in one [`ServerEvent::Data`].
    pub data_chunk: usize,
    /// Reply bytes that may wait to be written before input is taken again.
    pub pending_replies: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            command_line: 512,
            recipients: 100,
            data_chunk: 16 * 1024,
            pending_replies: 4096,
        }
    }
}

/// What the driver must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerEvent<'a> {
    /// Bytes of the message, dot-stuffing undone, line ends as the caller
    /// sent them (the final dot line is not part of them).
    Data(&'a [u8]),
    /// The final dot: the message is complete. Relay it to
    /// [`sender`](ServerSession::sender) and
    /// [`recipients`](ServerSession::recipients), then give the verdict with
    /// [`finish_message`](ServerSession::finish_message); no input is taken
    /// until then.
    MessageEnd,
    /// The caller said QUIT and was answered `221`: write what is left,
    /// then close.
    Quit,
}

/// Where the DATA phase is in its line (dot-stuffing, RFC 5321 4.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataState {
    /// At the start of a line.
    LineStart,
    /// A dot at the start of a line, not yet passed on.
    Dot,
    /// `.` CR at the start of a line: LF ends the message.
    DotCr,
    /// Inside a line.
    Inside,
    /// Inside a line, after a CR.
    Cr,
}

/// Where the dialogue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Greeted; no EHLO or HELO yet.
    Greeted,
    /// EHLO or HELO done; a transaction may be open.
    Ready,
    /// In DATA.
    Data(DataState),
    /// After the final dot, until the verdict.
    AwaitingVerdict,
    /// After QUIT.
    Closed,
}

/// The server side of one SMTP dialogue (see the [module docs](self)).
#[derive(Debug)]
pub struct ServerSession {
    hostname: String,
    limits: ServerLimits,
    /// The greeting was 554 with this reason: every command but QUIT gets 503.
    refusal: Option<String>,
    phase: Phase,
    /// `Some` once MAIL was accepted (`""` for the null path).
    sender: Option<String>,
    recipients: Vec<String>,
    eight_bit: bool,
    /// The command line being read.
    line: Vec<u8>,
    /// The line went over the limit: its rest is skipped up to its LF.
    overlong: bool,
    /// Message bytes for the next `Data` event.
    chunk: Vec<u8>,
    chunk_ready: bool,
    end_ready: bool,
    quit_ready: bool,
    out: Vec<u8>,
}

impl ServerSession {
    /// A dialogue with the default limits; the `220` greeting naming
    /// `hostname` is waiting to be written.
    pub fn new(hostname: &str) -> Self {
        Self::with_limits(hostname, ServerLimits::default())
    }

    /// A dialogue with these limits.
    pub fn with_limits(hostname: &str, limits: ServerLimits) -> Self {
        let mut session = Self::blank(hostname, limits);
        let greeting = format!("{} ESMTP tls-mailer", session.hostname);
        session.reply(220, &[&greeting]);
        session
    }

    /// A dialogue that offers no service (RFC 5321 3.1): a `554` greeting
    /// with `reason`, `503` to every command, `221` to QUIT. For a relay
    /// that cannot work (its configuration is wrong), so the caller reads
    /// why instead of seeing the pipe close.
    pub fn refusing(hostname: &str, reason: &str) -> Self {
        let mut session = Self::blank(hostname, ServerLimits::default());
        let reason = printable(reason);
        let greeting = format!("5.3.5 {} {reason}", session.hostname);
        session.reply(554, &[&greeting]);
        session.refusal = Some(reason);
        session
    }

    fn blank(hostname: &str, limits: ServerLimits) -> Self {
        let hostname = match printable(hostname) {
            name if name.is_empty() || name.contains(' ') => "localhost".to_owned(),
            name => name,
        };
        Self {
            hostname,
            limits,
            refusal: None,
            phase: Phase::Greeted,
            sender: None,
            recipients: Vec::new(),
            eight_bit: false,
            line: Vec::new(),
            overlong: false,
            chunk: Vec::new(),
            chunk_ready: false,
            end_ready: false,
            quit_ready: false,
            out: Vec::new(),
        }
    }

    /// Takes bytes from the caller and returns how many it took: at most
    /// one command line, or one chunk of message bytes. It takes none while
    /// an event waits for [`poll_event`](Self::poll_event), while the
    /// verdict on a message is due, or while more than
    /// [`ServerLimits::pending_replies`] bytes of replies wait for
    /// [`poll_transmit`](Self::poll_transmit); after QUIT it takes and
    /// ignores everything. Call it again with the rest.
    pub fn handle_input(&mut self, input: &[u8]) -> usize {
        if self.phase == Phase::Closed {
            return input.len();
        }
        if self.chunk_ready
            || self.end_ready
            || self.quit_ready
            || self.phase == Phase::AwaitingVerdict
            || self.out.len() > self.limits.pending_replies
        {
            return 0;
        }
        match self.phase {
            Phase::Data(state) => self.take_data(state, input),
            _ => self.take_line(input),
        }
    }

    /// The next thing the driver must act on, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent<'_>> {
        if self.chunk_ready {
            self.chunk_ready = false;
            return Some(ServerEvent::Data(&self.chunk));
        }
        if self.end_ready {
            self.end_ready = false;
            return Some(ServerEvent::MessageEnd);
        }
        if self.quit_ready {
            self.quit_ready = false;
            return Some(ServerEvent::Quit);
        }
        None
    }

    /// Appends the replies waiting to be written to `out`; `false` when
    /// there were none.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.out.is_empty() {
            return false;
        }
        out.append(&mut self.out);
        true
    }

    /// Answers the message that ended ([`ServerEvent::MessageEnd`]) with
    /// `verdict`, the relay's outcome (the real server's final reply, or
    /// why it could not be relayed), and closes the transaction whatever
    /// the verdict (RFC 5321 4.1.1.4). Control characters in its text are
    /// replaced by spaces. `false`, and nothing done, when no message
    /// awaits a verdict.
    pub fn finish_message(&mut self, verdict: &Reply) -> bool {
        if self.phase != Phase::AwaitingVerdict {
            return false;
        }
        let lines: Vec<String> = verdict.lines().iter().map(|line| printable(line)).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.reply(verdict.code().value(), &lines);
        self.reset_transaction();
        self.phase = Phase::Ready;
        true
    }

    /// The sender of the open transaction (`""` for the null path `<>`).
    pub fn sender(&self) -> Option<&str> {
        self.sender.as_deref()
    }

    /// The recipients accepted so far in the open transaction.
    pub fn recipients(&self) -> &[String] {
        &self.recipients
    }

    /// The caller declared `BODY=8BITMIME`.
    pub fn eight_bit(&self) -> bool {
        self.eight_bit
    }

    /// In the DATA phase (message bytes are being read).
    pub fn in_data(&self) -> bool {
        matches!(self.phase, Phase::Data(_))
    }

    /// QUIT was answered: the dialogue is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The bytes held: the partial command line, message bytes not yet
    /// polled and replies not yet written.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.chunk.len() + self.out.len()
    }

    /// The message phase: undoes dot-stuffing up to a chunk's worth.
    fn take_data(&mut self, mut state: DataState, input: &[u8]) -> usize {
        self.chunk.clear();
        let room = self.limits.data_chunk.max(2);
        let mut taken = 0;
        for &byte in input {
            // A byte may release two (a held CR and itself).
            if self.chunk.len() + 2 > room {
                break;
            }
            taken += 1;
            state = match (state, byte) {
                (DataState::LineStart, b'.') => DataState::Dot,
                (DataState::Dot, b'\r') => DataState::DotCr,
                (DataState::DotCr, b'\n') => {
                    self.chunk_ready = !self.chunk.is_empty();
                    self.end_ready = true;
                    self.phase = Phase::AwaitingVerdict;
                    return taken;
                }
                (DataState::DotCr, _) => {
                    // ".\r" then something else: the leading dot was stuffing.
                    self.chunk.push(b'\r');
                    self.push_data(DataState::Cr, byte)
                }
                (DataState::Dot, _) => self.push_data(DataState::Inside, byte),
                (DataState::LineStart | DataState::Inside, _) => {
                    self.push_data(DataState::Inside, byte)
                }
                (DataState::Cr, _) => self.push_data(DataState::Cr, byte),
            };
        }
        self.phase = Phase::Data(state);
        self.chunk_ready = !self.chunk.is_empty();
        taken
    }

    /// Passes on a message byte read in `state` (inside a line, or after a
    /// CR) and says where that leaves the line.
    fn push_data(&mut self, state: DataState, byte: u8) -> DataState {
        self.chunk.push(byte);
        match (state, byte) {
            (_, b'\r') => DataState::Cr,
            (DataState::Cr, b'\n') => DataState::LineStart,
            _ => DataState::Inside,
        }
    }

    /// The command phase: one line at most.
    fn take_line(&mut self, input: &[u8]) -> usize {
        let (taken, complete) = match input.iter().position(|&byte| byte == b'\n') {
            Some(end) => (end + 1, true),
            None => (input.len(), false),
        };
        if !self.overlong {
            self.line.extend_from_slice(&input[..taken]);
            // The LF itself may bring the line to the limit, not past it.
            if self.line.len() > self.limits.command_line {
                self.overlong = true;
                self.line.clear();
            }
        }
        if complete {
            if std::mem::take(&mut self.overlong) {
                let text = format!(
                    "5.5.6 line too long: a command line has at most {} bytes",
                    self.limits.command_line
                );
                self.reply(500, &[&text]);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.command(&line);
                // The allocation is kept for the next line.
                line.clear();
                self.line = line;
            }
        }
        taken
    }

    fn command(&mut self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return self.reply(500, &["5.5.2 command line is not UTF-8"]);
        };
        let (verb, argument) = match line.split_once(' ') {
            Some((verb, argument)) => (verb, argument.trim()),
            None => (line, ""),
        };
        let verb = verb.to_ascii_uppercase();
        if let Some(reason) = &self.refusal {
            if verb == "QUIT" {
                return self.quit();
            }
            let text = format!("5.3.5 no mail service: {reason}");
            return self.reply(503, &[&text]);
        }
        match verb.as_str() {
            "EHLO" | "HELO" if argument.is_empty() => {
                let text = format!("5.5.4 {verb} needs the client's name");
                self.reply(501, &[&text]);
            }
            "EHLO" => {
                self.reset_transaction();
                self.phase = Phase::Ready;
                let first = format!("{} greets {}", self.hostname, printable(argument));
                self.reply(
                    250,
                    &[
                        &first,
                        "PIPELINING",
                        "8BITMIME",
                        "SMTPUTF8",
                        "ENHANCEDSTATUSCODES",
                    ],
                );
            }
            "HELO" => {
                self.reset_transaction();
                self.phase = Phase::Ready;
                let first = self.hostname.clone();
                self.reply(250, &[&first]);
            }
            "MAIL" => self.mail(argument),
            "RCPT" => self.rcpt(argument),
            "DATA" => self.data(argument),
            "RSET" if !argument.is_empty() => self.reply(501, &["5.5.4 RSET takes no argument"]),
            "RSET" => {
                self.reset_transaction();
                self.reply(250, &["2.0.0 reset"]);
            }
            "NOOP" => self.reply(250, &["2.0.0 OK"]),
            "QUIT" => self.quit(),
            "STARTTLS" => self.reply(
                502,
                &["5.5.1 STARTTLS is not offered: this dialogue runs over a local pipe"],
            ),
            "AUTH" => self.reply(
                502,
                &["5.5.1 AUTH is not offered: the relay logs in to the real server itself"],
            ),
            "VRFY" | "EXPN" | "HELP" | "BDAT" | "ETRN" | "TURN" | "ATRN" | "SEND" | "SOML"
            | "SAML" | "LHLO" => {
                let text = format!("5.5.1 {verb} is not offered here");
                self.reply(502, &[&text]);
            }
            _ => self.reply(500, &["5.5.2 command not recognised"]),
        }
    }

    fn mail(&mut self, argument: &str) {
        if self.phase != Phase::Ready {
            return self.reply(503, &["5.5.1 say EHLO or HELO first"]);
        }
        if self.sender.is_some() {
            return self.reply(503, &["5.5.1 a transaction is open: RSET first"]);
        }
        let Some((path, parameters)) = path_after(argument, "FROM:") else {
            return self.reply(501, &["5.5.4 syntax: MAIL FROM:<address>"]);
        };
        let sender = match ReversePath::new(path) {
            Ok(sender) => sender,
            Err(error) => {
                let text = format!("5.1.7 bad sender address: {}", error.reason);
                return self.reply(553, &[&text]);
            }
        };
        let mut eight_bit = false;
        for parameter in parameters.split(' ').filter(|part| !part.is_empty()) {
            let (keyword, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            match (keyword.to_ascii_uppercase().as_str(), value) {
                ("BODY", value) if value.eq_ignore_ascii_case("8BITMIME") => eight_bit = true,
                ("BODY", value) if value.eq_ignore_ascii_case("7BIT") => {}
                ("SMTPUTF8", "") => {}
                _ => {
                    let text = format!(
                        "5.5.4 MAIL parameter {} is not supported here",
                        printable(keyword)
                    );
                    return self.reply(555, &[&text]);
                }
            }
        }
        self.sender = Some(sender.as_str().to_owned());
        self.eight_bit = eight_bit;
        self.reply(250, &["2.1.0 sender OK"]);
    }

    fn rcpt(&mut self, argument: &str) {
        if self.phase != Phase::Ready || self.sender.is_none() {
            return self.reply(503, &["5.5.1 MAIL first"]);
        }
        let Some((path, parameters)) = path_after(argument, "TO:") else {
            return self.reply(501, &["5.5.4 syntax: RCPT TO:<address>"]);
        };
        if let Some(parameter) = parameters.split(' ').find(|part| !part.is_empty()) {
            let keyword = parameter.split_once('=').map_or(parameter, |(key, _)| key);
            let text = format!(
                "5.5.4 RCPT parameter {} is not supported here",
                printable(keyword)
            );
            return self.reply(555, &[&text]);
        }
        let recipient = match Address::new(path) {
            Ok(recipient) => recipient,
            Err(error) => {
                let text = format!("5.1.3 bad recipient address: {}", error.reason);
                return self.reply(553, &[&text]);
            }
        };
        if self.recipients.len() >= self.limits.recipients {
            let text = format!(
                "4.5.3 too many recipients: at most {} per message",
                self.limits.recipients
            );
            return self.reply(452, &[&text]);
        }
        self.recipients.push(recipient.as_str().to_owned());
        self.reply(250, &["2.1.5 recipient OK"]);
    }

    fn data(&mut self, argument: &str) {
        if !argument.is_empty() {
            return self.reply(501, &["5.5.4 DATA takes no argument"]);
        }
        if self.phase != Phase::Ready || self.sender.is_none() {
            return self.reply(503, &["5.5.1 MAIL first"]);
        }
        if self.recipients.is_empty() {
            return self.reply(503, &["5.5.1 no recipient: RCPT first"]);
        }
        self.reply(354, &["end the message with <CR><LF>.<CR><LF>"]);
        self.phase = Phase::Data(DataState::LineStart);
    }

    fn quit(&mut self) {
        let text = format!("2.0.0 {} closing", self.hostname);
        self.reply(221, &[&text]);
        self.reset_transaction();
        self.phase = Phase::Closed;
        self.quit_ready = true;
    }

    fn reset_transaction(&mut self) {
        self.sender = None;
        self.recipients.clear();
        self.eight_bit = false;
    }

    /// Queues a reply: `code-line` for every line but the last, `code line`
    /// for the last (RFC 5321 4.2.1).
    fn reply(&mut self, code: u16, lines: &[&str]) {
        let code = code.clamp(200, 599);
        let count = lines.len().max(1);
        for index in 0..count {
            let text = lines.get(index).copied().unwrap_or("");
            // RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with
            // its code, separator and CRLF.
            let mut end = text.len().min(506);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let text = &text[..end];
            let separator = if index + 1 < count { '-' } else { ' ' };
            self.out
                .extend_from_slice(format!("{code}{separator}{text}\r\n").as_bytes());
        }
    }
}

/// The path in `<...>` after `keyword` (`FROM:` or `TO:`, any case, spaces
/// allowed around the colon as many clients send them) and the parameters
/// after it.
fn path_after<'a>(argument: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = argument.get(..keyword.len() - 1)?;
    if !head.eq_ignore_ascii_case(&keyword[..keyword.len() - 1]) {
        return None;
    }
    let rest = argument[head.len()..].trim_start().strip_prefix(':')?;
    let rest = rest.trim_start().strip_prefix('<')?;
    let (path, parameters) = rest.split_once('>')?;
    Some((path, parameters.trim()))
}

/// `text` with every control character replaced by a space, so that no
/// caller-given or relayed text can end a reply line early.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyCode;

    /// Feeds `input` in pieces of `split` bytes; the wire, the message
    /// bytes and the events, answering each message with `verdict`.
    fn run(session: &mut ServerSession, input: &[u8], split: usize) -> (String, Vec<u8>, usize) {
        let verdict = Reply::new(ReplyCode::new(250).unwrap(), vec!["2.0.0 relayed".into()]);
        let mut wire = Vec::new();
        let mut message = Vec::new();
        let mut ends = 0;
        for mut piece in input.chunks(split.max(1)) {
            loop {
                let taken = session.handle_input(piece);
                piece = &piece[taken..];
                while let Some(event) = session.poll_event() {
                    match event {
                        ServerEvent::Data(bytes) => message.extend_from_slice(bytes),
                        ServerEvent::MessageEnd => {
                            ends += 1;
                            assert!(session.finish_message(&verdict));
                        }
                        ServerEvent::Quit => {}
                    }
                }
                while session.poll_transmit(&mut wire) {}
                if piece.is_empty() {
                    break;
                }
            }
        }
        (String::from_utf8(wire).unwrap(), message, ends)
    }

    fn dialogue(input: &str) -> String {
        let mut session = ServerSession::new("relay.test");
        run(&mut session, input.as_bytes(), usize::MAX).0
    }

    #[test]
    fn a_whole_dialogue_is_answered_byte_for_byte() {
        let wire = dialogue(
            "EHLO app.example\r\nMAIL FROM:<a@example.org> BODY=8BITMIME\r\n\
             RCPT TO:<b@example.org>\r\nDATA\r\nHi\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            wire,
            "220 relay.test ESMTP tls-mailer\r\n\
             250-relay.test greets app.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
             250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n\
             250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n\
             354 end the message with <CR><LF>.<CR><LF>\r\n\
             250 2.0.0 relayed\r\n221 2.0.0 relay.test closing\r\n"
        );
    }

    #[test]
    fn dot_stuffing_is_undone_and_only_crlf_dot_crlf_ends_the_message() {
        let input = b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\
            ..one\r\n.\n.x\r\nbare\n.\nstill\r\n.\rcr\r\n..\r\n.\r\nNOOP\r\n";
        let expected: &[u8] = b".one\r\n\n.x\r\nbare\n.\nstill\r\n\rcr\r\n.\r\n";
        for split in [1, 2, 3, 7, usize::MAX] {
            let mut session = ServerSession::new("relay.test");
            let (wire, message, ends) = run(&mut session, input, split);
            assert_eq!(message, expected, "split {split}");
            assert_eq!(ends, 1);
            assert!(
                wire.ends_with("250 2.0.0 relayed\r\n250 2.0.0 OK\r\n"),
                "{wire}"
            );
        }
    }

    #[test]
    fn the_sender_and_recipients_are_there_at_the_end_of_the_message() {
        let mut session = ServerSession::new("relay.test");
        let mut input: &[u8] =
            b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n\
            RCPT TO: <c@example.org>\r\nDATA\r\nx\r\n.\r\n";
        let mut seen = None;
        while !input.is_empty() {
            let taken = session.handle_input(input);
            input = &input[taken..];
            while let Some(event) = session.poll_event() {
                if event == ServerEvent::MessageEnd {
                    seen = Some((
                        session.sender().map(str::to_owned),
                        session.recipients().to_vec(),
                    ));
                }
            }
        }
        let (sender, recipients) = seen.unwrap();
        assert_eq!(sender.as_deref(), Some("a@example.org"));
        assert_eq!(recipients, ["b@example.org", "c@example.org"]);
        // No input while the verdict is due.
        assert_eq!(session.handle_input(b"NOOP\r\n"), 0);
        let refused = Reply::new(
            ReplyCode::new(550).unwrap(),
            vec![
                "5.1.1 <b@example.org>: no\r\nsuch user".into(),
                "second".into(),
            ],
        );
        assert!(session.finish_message(&refused));
        assert!(!session.finish_message(&refused));
        assert_eq!(session.sender(), None);
        let mut wire = Vec::new();
        while session.poll_transmit(&mut wire) {}
        let wire = String::from_utf8(wire).unwrap();
        assert!(
            wire.ends_with("550-5.1.1 <b@example.org>: no  such user\r\n550 second\r\n"),
            "{wire}"
        );
    }

    #[test]
    fn commands_out_of_order_or_malformed_get_clear_replies() {
        let wire = dialogue(
            "MAIL FROM:<a@example.org>\r\nDATA\r\nHELO\r\nHELO x\r\nRCPT TO:<b@example.org>\r\n\
             MAIL FROM:a@example.org\r\nMAIL FROM:<a@@example.org>\r\nMAIL FROM:<a@example.org> SIZE=10\r\n\
             MAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\nDATA\r\n\
             RCPT TO:<b@example.org> NOTIFY=NEVER\r\nRCPT TO:<bad>\r\nDATA x\r\n\
             STARTTLS\r\nAUTH PLAIN\r\nVRFY b\r\nFROB\r\n\r\nRSET x\r\nRSET\r\nRCPT TO:<b@example.org>\r\n",
        );
        let codes: Vec<&str> = wire.lines().map(|line| &line[..4]).collect();
        assert_eq!(
            codes,
            [
                "220 ", "503 ", "503 ", "501 ", "250 ", "503 ", "501 ", "553 ", "555 ", "250 ",
                "503 ", "503 ", "555 ", "553 ", "501 ", "502 ", "502 ", "502 ", "500 ", "500 ",
                "501 ", "250 ", "503 "
            ],
            "{wire}"
        );
        assert!(wire.contains("502 5.5.1 STARTTLS is not offered"));
        assert!(wire.contains("502 5.5.1 AUTH is not offered"));
    }

    #[test]
    fn an_overlong_command_line_is_skipped_and_answered_500() {
        let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(600));
        for split in [1, 100, usize::MAX] {
            let mut session = ServerSession::new("relay.test");
            let (wire, _, _) = run(&mut session, long.as_bytes(), split);
            assert_eq!(
                wire,
                "220 relay.test ESMTP tls-mailer\r\n\
                 500 5.5.6 line too long: a command line has at most 512 bytes\r\n\
                 250 2.0.0 OK\r\n"
            );
            assert!(session.buffered() == 0);
        }
        // Exactly 512 bytes with the CRLF is fine.
        let at_limit = format!("NOOP {}\r\n", "x".repeat(512 - 7));
        assert!(dialogue(&at_limit).ends_with("250 2.0.0 OK\r\n"));
    }

    #[test]
    fn reply_lines_stay_within_512_bytes() {
        let mut session = ServerSession::refusing("relay.test", &"é".repeat(400));
        let mut wire = Vec::new();
        assert!(session.poll_transmit(&mut wire));
        let wire = String::from_utf8(wire).unwrap();
        assert!(
            wire.len() <= 512 && wire.ends_with("\r\n"),
            "{}",
            wire.len()
        );
    }

    #[test]
    fn recipients_are_bounded() {
        let limits = ServerLimits {
            recipients: 2,
            ..ServerLimits::default()
        };
        let mut session = ServerSession::with_limits("relay.test", limits);
        let input = "HELO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n\
                     RCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\n";
        let (wire, _, _) = run(&mut session, input.as_bytes(), usize::MAX);
        assert!(wire.ends_with("452 4.5.3 too many recipients: at most 2 per message\r\n"));
        assert_eq!(session.recipients().len(), 2);
    }

    #[test]
    fn pipelined_input_is_taken_a_line_at_a_time_and_replies_bound_it() {
        let mut session = ServerSession::new("relay.test");
        let many = "NOOP\r\n".repeat(2000);
        let mut input = many.as_bytes();
        let mut calls = 0;
        while !input.is_empty() {
            let taken = session.handle_input(input);
            if taken == 0 {
                // Replies are waiting: the caller must write them first.
                assert!(session.buffered() > ServerLimits::default().pending_replies);
                let mut wire = Vec::new();
                assert!(session.poll_transmit(&mut wire));
            }
            assert!(taken <= 6);
            input = &input[taken..];
            calls += 1;
        }
        assert!(calls >= 2000);
    }

    #[test]
    fn a_long_message_line_is_streamed_in_bounded_chunks() {
        let limits = ServerLimits {
            data_chunk: 64,
            ..ServerLimits::default()
        };
        let mut session = ServerSession::with_limits("relay.test", limits);
        let line = "y".repeat(5000);
        let input = format!(
            "HELO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n{line}\r\n.\r\n"
        );
        let mut rest = input.as_bytes();
        let mut message = Vec::new();
        while !rest.is_empty() {
            let taken = session.handle_input(rest);
            rest = &rest[taken..];
            while let Some(event) = session.poll_event() {
                match event {
                    ServerEvent::Data(bytes) => {
                        assert!(bytes.len() <= 64);
                        message.extend_from_slice(bytes);
                    }
                    ServerEvent::MessageEnd => {}
                    ServerEvent::Quit => unreachable!(),
                }
            }
            assert!(session.buffered() <= 64 + 4096);
        }
        assert_eq!(message, format!("{line}\r\n").as_bytes());
    }

    #[test]
    fn a_refusing_dialogue_answers_503_until_quit() {
        let mut session = ServerSession::refusing("relay.test", "no account:\r\nfix it");
        let (wire, _, _) = run(
            &mut session,
            b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\nNOOP\r\n",
            5,
        );
        assert_eq!(
            wire,
            "554 5.3.5 relay.test no account:  fix it\r\n\
             503 5.3.5 no mail service: no account:  fix it\r\n\
             503 5.3.5 no mail service: no account:  fix it\r\n\
             221 2.0.0 relay.test closing\r\n"
        );
        assert!(session.is_closed());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded() {
        // A small deterministic generator: no dependency for a smoke run
        // (the fuzz target `server_session` runs this for real).
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let alphabet = b"\r\n.:<>@ MAILFROMRCPTTODATAQUITRSETEHLOabc\x00\xff";
        for _ in 0..200 {
            let mut input = Vec::new();
            for _ in 0..2000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                input.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let mut session = ServerSession::new("relay.test");
            let _ = run(&mut session, &input, (state % 50) as usize + 1);
            assert!(session.buffered() <= 512 + 16 * 1024 + 4096 + 600);
        }
    }
}
