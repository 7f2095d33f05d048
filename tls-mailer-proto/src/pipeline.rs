//! Which reply answers which command, and when the next command may be sent
//! (RFC 2920 command groups, RFC 3030 BDAT).

use std::collections::VecDeque;

use crate::command::{Command, CommandKind};

/// What a reply that is due will answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    Greeting,
    Ehlo,
    Lhlo,
    StartTls,
    Auth(AuthStep),
    MailFrom,
    /// The RCPT for recipient `index` of the transaction.
    RcptTo(usize),
    Data,
    /// A non-final BDAT chunk.
    Bdat,
    /// The reply after the final dot or `BDAT LAST`.
    DataEnd,
    /// The reply to a lone dot sent to close a DATA nobody will receive
    /// (RFC 2920 3.1); it does not matter.
    DiscardedDataEnd,
    Rset,
    Noop,
    Quit,
}

/// The stage of an AUTH exchange a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthStep {
    /// `AUTH PLAIN <response>`: 235 expected.
    Plain,
    /// `AUTH LOGIN`: a 334 asking for the user name.
    LoginStart,
    /// The user name: a 334 asking for the password.
    LoginUser,
    /// The password: 235 expected.
    LoginPassword,
    /// `AUTH OAUTHBEARER|XOAUTH2 <response>`: 235, or a 334 error challenge.
    Token,
    /// The empty answer to the error challenge: the refusal comes.
    TokenRefused,
    /// `AUTH SCRAM-SHA-256 <client-first>`: the server's first message (334).
    ScramFirst,
    /// The client's proof: the server's signature (334).
    ScramFinal,
    /// The empty answer after the server proved itself: 235.
    ScramDone,
    /// `AUTH CRAM-MD5`: the server's challenge (334).
    CramChallenge,
    /// The answer to the challenge: 235 expected.
    CramAnswer,
}

impl Expect {
    /// A reply to one of a mail's commands (MAIL, RCPT, DATA, BDAT, the
    /// end of data).
    pub(crate) fn is_mail_command(self) -> bool {
        matches!(
            self,
            Self::MailFrom
                | Self::RcptTo(_)
                | Self::Data
                | Self::Bdat
                | Self::DataEnd
                | Self::DiscardedDataEnd
        )
    }

    pub(crate) fn command(self) -> CommandKind {
        match self {
            Self::Greeting => CommandKind::Greeting,
            Self::Ehlo => CommandKind::Ehlo,
            Self::Lhlo => CommandKind::Lhlo,
            Self::StartTls => CommandKind::StartTls,
            Self::Auth(_) => CommandKind::Auth,
            Self::MailFrom => CommandKind::MailFrom,
            Self::RcptTo(_) => CommandKind::RcptTo,
            Self::Data => CommandKind::Data,
            Self::Bdat => CommandKind::Bdat,
            Self::DataEnd | Self::DiscardedDataEnd => CommandKind::DataEnd,
            Self::Rset => CommandKind::Rset,
            Self::Noop => CommandKind::Noop,
            Self::Quit => CommandKind::Quit,
        }
    }
}

/// Commands waiting to be written, and replies due for those written.
#[derive(Debug, Default)]
pub(crate) struct PendingReplies {
    queued: VecDeque<(Command, Expect)>,
    due: VecDeque<Expect>,
    /// The last command written may be followed by more before its reply
    /// (RFC 2920 3.1: only the last command of a group may be EHLO, DATA,
    /// QUIT, NOOP, STARTTLS or AUTH).
    may_continue_group: bool,
}

impl PendingReplies {
    /// A reply is due for bytes written outside the queue: a greeting, a
    /// BDAT frame, the end of the message. Message data may be followed by
    /// more commands in the same group (RFC 2920 3.1, RFC 3030 4), so QUIT
    /// or RSET can travel in the same write.
    pub(crate) fn expect(&mut self, expect: Expect) {
        self.may_continue_group = matches!(
            expect,
            Expect::Bdat | Expect::DataEnd | Expect::DiscardedDataEnd
        );
        self.due.push_back(expect);
    }

    pub(crate) fn queue(&mut self, command: Command, expect: Expect) {
        self.queued.push_back((command, expect));
    }

    /// The commands that may be written now, in order. Without pipelining a
    /// command waits until every earlier reply is in.
    pub(crate) fn take_sendable(&mut self, pipelining: bool) -> Vec<Command> {
        let mut sendable = Vec::new();
        while !self.queued.is_empty() {
            let may_send = self.due.is_empty() || (pipelining && self.may_continue_group);
            if !may_send {
                break;
            }
            let Some((command, expect)) = self.queued.pop_front() else {
                break;
            };
            self.may_continue_group = matches!(
                command.kind(),
                CommandKind::MailFrom | CommandKind::RcptTo | CommandKind::Rset
            );
            self.due.push_back(expect);
            sendable.push(command);
        }
        sendable
    }

    /// Another reply is due before every other: LMTP's next reply after
    /// the data, one per accepted recipient (RFC 2033 4.2).
    pub(crate) fn expect_next(&mut self, expect: Expect) {
        self.due.push_front(expect);
    }

    /// Takes the expectation the next reply answers.
    pub(crate) fn next_due(&mut self) -> Option<Expect> {
        self.due.pop_front()
    }

    /// The reply awaited first: the oldest due, else the next to be written.
    pub(crate) fn front(&self) -> Option<Expect> {
        self.due
            .front()
            .copied()
            .or_else(|| self.queued.front().map(|(_, expect)| *expect))
    }

    pub(crate) fn is_waiting(&self) -> bool {
        !self.due.is_empty()
    }

    /// A reply to a mail's commands (MAIL, RCPT, DATA, BDAT, end of data)
    /// is still due; RSET, NOOP and QUIT do not count.
    pub(crate) fn awaits_mail_replies(&self) -> bool {
        self.due.iter().any(|expect| expect.is_mail_command())
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.due.is_empty() && self.queued.is_empty()
    }

    /// Drops the commands not written yet; replies due for those written
    /// still arrive and are read.
    pub(crate) fn drop_queued(&mut self) {
        self.queued.clear();
    }

    pub(crate) fn clear(&mut self) {
        self.queued.clear();
        self.due.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Address, ReversePath};

    fn transaction(pending: &mut PendingReplies) {
        let mail = Command::MailFrom(ReversePath::Null, Default::default());
        pending.queue(mail, Expect::MailFrom);
        for index in 0..2 {
            let rcpt = Command::RcptTo(Address::new("a@b").unwrap(), Default::default());
            pending.queue(rcpt, Expect::RcptTo(index));
        }
        pending.queue(Command::Data, Expect::Data);
        pending.queue(Command::Quit, Expect::Quit);
    }

    #[test]
    fn pipelining_sends_a_group_up_to_data() {
        let mut pending = PendingReplies::default();
        transaction(&mut pending);
        let kinds: Vec<_> = pending
            .take_sendable(true)
            .iter()
            .map(Command::kind)
            .collect();
        assert_eq!(
            kinds,
            [
                CommandKind::MailFrom,
                CommandKind::RcptTo,
                CommandKind::RcptTo,
                CommandKind::Data
            ]
        );
        // QUIT waits: DATA ended the group.
        assert!(pending.take_sendable(true).is_empty());
    }

    #[test]
    fn without_pipelining_one_command_at_a_time() {
        let mut pending = PendingReplies::default();
        transaction(&mut pending);
        assert_eq!(pending.take_sendable(false).len(), 1);
        assert!(pending.take_sendable(false).is_empty());
        assert_eq!(pending.next_due(), Some(Expect::MailFrom));
        assert_eq!(pending.take_sendable(false).len(), 1);
    }
}
