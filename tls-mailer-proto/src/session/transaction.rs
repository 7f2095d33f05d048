//! One mail: MAIL, RCPT, DATA or BDAT, and what their replies decide.
//!
//! A mail is *open* while its body is not complete (at most one per
//! session), then *finished*: its end of data is written and its replies
//! are still coming. Replies arrive in the order the commands were written,
//! so every reply to a mail command belongs to the oldest finished mail,
//! else to the open one.

use std::collections::VecDeque;
use std::time::Instant;

use crate::address::Envelope;
use crate::body::{BdatFramer, DotStuffer};
use crate::command::{Command, CommandKind};
use crate::error::{ProtocolError, Rejection, SessionError};
use crate::pipeline::Expect;
use crate::reply::Reply;

use super::{
    BodyMode, Delivery, Event, RecipientOutcome, RecipientPolicy, Session, State, Timeouts,
};

#[derive(Debug)]
pub(super) enum BodyEncoder {
    Data(DotStuffer),
    Bdat(BdatFramer),
}

/// How the body follows the commands of a mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyStart {
    /// After every recipient's reply: BDAT, or DATA and its `354`.
    AfterRecipients,
    /// DATA goes in the same group as MAIL and RCPT; the body after `354`.
    PipelinedData,
    /// BDAT frames go in the same group as MAIL and RCPT (CHUNKING with
    /// PIPELINING): a message that fits in one frame is one write. Until
    /// the recipients are known, at most one frame is written, so little
    /// is sent in vain when the server refuses them all (it then refuses
    /// the BDAT too, and nothing is delivered).
    PipelinedBdat,
}

#[derive(Debug)]
pub(super) struct Transaction {
    envelope: Envelope,
    outcomes: Vec<Option<Reply>>,
    mail_accepted: bool,
    pub(super) body: Option<BodyEncoder>,
    /// Message bytes handed to the session so far.
    pub(super) body_bytes: u64,
    /// BDAT frames written whose replies are not in yet.
    pub(super) chunks_in_flight: usize,
    /// Whether any BDAT frame was written.
    frames_written: bool,
    /// A lone dot ended a DATA the server accepted for nobody.
    data_discarded: bool,
    /// When the body started, for the whole-upload deadline.
    body_started: Option<Instant>,
    timeouts: Timeouts,
    /// A refusal seen while other replies of the mail were still due;
    /// reported once they are all in.
    pub(super) failure: Option<SessionError>,
    pub(super) body_start: BodyStart,
    /// A binary body (`BODY=BINARYMIME`): framed as it is.
    pub(super) binary: bool,
    /// The optional bound on the whole mail.
    pub(super) deadline: Option<Instant>,
    /// LMTP: one reply after the end of data per accepted recipient.
    lmtp: bool,
    /// LMTP's replies after the end of data so far, in RCPT order of the
    /// accepted recipients (RFC 2033 4.2).
    data_replies: Vec<Reply>,
}

impl Transaction {
    pub(super) fn new(
        envelope: Envelope,
        body_start: BodyStart,
        timeouts: Timeouts,
        deadline: Option<Instant>,
        lmtp: bool,
    ) -> Self {
        Self {
            outcomes: vec![None; envelope.recipients().len()],
            envelope,
            mail_accepted: false,
            body: None,
            body_bytes: 0,
            chunks_in_flight: 0,
            frames_written: false,
            data_discarded: false,
            body_started: None,
            timeouts,
            failure: None,
            body_start,
            binary: false,
            deadline,
            lmtp,
            data_replies: Vec::new(),
        }
    }

    /// The BDAT framer for this mail's body: verbatim for a binary body.
    pub(super) fn bdat_framer(&self) -> BdatFramer {
        if self.binary {
            BdatFramer::verbatim()
        } else {
            BdatFramer::new()
        }
    }

    pub(super) fn mode(&self) -> Option<BodyMode> {
        match self.body.as_ref()? {
            BodyEncoder::Data(_) => Some(BodyMode::Data),
            BodyEncoder::Bdat(_) => Some(BodyMode::Bdat),
        }
    }

    /// The body handed over so far must be written by then: a base allowance
    /// plus its size at the slowest accepted rate, counted from the start of
    /// the body. A server that reads a few bytes at a time cannot stretch it.
    pub(super) fn body_deadline(&self) -> Option<Instant> {
        let started = self.body_started?;
        Some(started + self.timeouts.upload_allowance(self.body_bytes))
    }

    /// Whether any byte of the body may be on the wire: after a `354` the
    /// driver writes as it goes; BDAT data leaves only in frames (the first
    /// piece is held back).
    pub(super) fn body_on_wire(&self) -> bool {
        match self.body {
            None => false,
            Some(BodyEncoder::Data(_)) => true,
            Some(BodyEncoder::Bdat(_)) => self.frames_written,
        }
    }

    /// A BDAT frame was written.
    pub(super) fn frame_written(&mut self) {
        self.frames_written = true;
        self.chunks_in_flight += 1;
    }

    /// MAIL and every RCPT have their replies and nothing failed.
    pub(super) fn recipients_known(&self) -> bool {
        self.failure.is_none() && self.mail_accepted && self.all_rcpt_replies_in()
    }

    /// What decided each recipient answered so far: its RCPT reply, or
    /// under LMTP, once replies after the data came, the one for it (a
    /// local `451 4.4.2` for an accepted recipient the server never
    /// answered, when the connection ended first).
    fn outcomes(&self) -> Vec<RecipientOutcome> {
        let mut data_replies = self.data_replies.iter();
        let after_data = !self.data_replies.is_empty();
        self.envelope
            .recipients()
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(address, reply)| {
                let reply = reply.as_ref()?;
                let outcome = |reply: Reply, command| RecipientOutcome {
                    address: address.to_string(),
                    reply,
                    command,
                };
                if !after_data || !reply.is_positive() {
                    return Some(outcome(reply.clone(), CommandKind::RcptTo));
                }
                let reply = data_replies.next().cloned().unwrap_or_else(unanswered);
                Some(outcome(reply, CommandKind::DataEnd))
            })
            .collect()
    }

    /// LMTP: the first reply after the data is in and more are due (one
    /// per accepted recipient).
    pub(super) fn awaits_data_replies(&self) -> bool {
        !self.data_replies.is_empty() && self.data_replies.len() < self.accepted_count()
    }

    /// LMTP: the mail's outcome from the replies after the data, complete
    /// or cut short by the end of the connection. Delivered when any
    /// recipient was; otherwise every recipient was refused, at RCPT or
    /// after the data.
    pub(super) fn lmtp_outcome(&self) -> Event {
        let outcomes = self.outcomes();
        match self.data_replies.iter().find(|reply| reply.is_positive()) {
            Some(reply) => Event::Accepted(Delivery {
                reply: reply.clone(),
                recipients: outcomes,
            }),
            None => Event::MailFailed(SessionError::RecipientsRejected(outcomes)),
        }
    }

    fn accepted_count(&self) -> usize {
        self.outcomes
            .iter()
            .flatten()
            .filter(|reply| reply.is_positive())
            .count()
    }

    fn all_rcpt_replies_in(&self) -> bool {
        self.outcomes.iter().all(Option::is_some)
    }

    pub(super) fn start_body(&mut self, encoder: BodyEncoder, now: Instant) -> BodyMode {
        self.body = Some(encoder);
        self.body_started = Some(now);
        self.mode().unwrap_or(BodyMode::Data)
    }

    /// Records a reply to MAIL, RCPT, BDAT or the end of data; the mail's
    /// outcome once the reply after the whole message is in.
    fn record(
        &mut self,
        expect: Expect,
        reply: Reply,
        events: &mut VecDeque<Event>,
    ) -> Option<Event> {
        let code = reply.code();
        let positive = code.is_positive_completion();
        let reject = |reply: Reply| {
            SessionError::Rejected(Rejection {
                command: expect.command(),
                reply,
            })
        };
        match expect {
            Expect::MailFrom if positive => self.mail_accepted = true,
            Expect::MailFrom => {
                self.failure.get_or_insert(reject(reply));
            }
            Expect::RcptTo(index) => {
                if !positive && self.mail_accepted {
                    events.push_back(Event::RecipientRejected {
                        index,
                        rejection: Rejection {
                            command: CommandKind::RcptTo,
                            reply: reply.clone(),
                        },
                    });
                }
                if let Some(slot) = self.outcomes.get_mut(index) {
                    *slot = Some(reply);
                }
                if self.recipients_known() && self.accepted_count() == 0 {
                    self.failure = Some(SessionError::RecipientsRejected(self.outcomes()));
                }
            }
            Expect::Bdat => {
                self.chunks_in_flight = self.chunks_in_flight.saturating_sub(1);
                if !positive {
                    self.failure.get_or_insert(reject(reply));
                }
            }
            Expect::DataEnd if self.lmtp && self.failure.is_none() && self.accepted_count() > 0 => {
                // One reply per accepted recipient, in RCPT order; each
                // decides its recipient (RFC 2033 4.2).
                self.chunks_in_flight = 0;
                self.data_replies.push(reply);
                if self.awaits_data_replies() {
                    return None;
                }
                return Some(self.lmtp_outcome());
            }
            Expect::DataEnd => {
                self.chunks_in_flight = 0;
                if positive && self.failure.is_none() {
                    return Some(Event::Accepted(Delivery {
                        reply,
                        recipients: self.outcomes(),
                    }));
                }
                let failure = match self.failure.take() {
                    Some(failure) => failure,
                    None => reject(reply),
                };
                return Some(Event::MailFailed(failure));
            }
            _ => {}
        }
        None
    }
}

impl Session {
    /// A reply to MAIL, RCPT, DATA, BDAT or the end of data.
    pub(super) fn handle_mail_reply(&mut self, now: Instant, expect: Expect, reply: Reply) {
        if let Some(finished) = self.finished.front_mut() {
            let outcome = finished.record(expect, reply, &mut self.events);
            if outcome.is_none() && finished.awaits_data_replies() {
                self.pending.expect_next(Expect::DataEnd);
            }
            if let Some(outcome) = outcome {
                // After the final dot the server's transaction is over
                // whatever the reply (RFC 5321 4.1.1.4). After a refused
                // BDAT LAST RFC 3030 does not say; some servers still hold
                // it (go-smtp resets, Postfix does too; the testkit keeps
                // it, as a server may), so the next mail starts with RSET,
                // which costs no round trip. One started behind it already
                // did.
                let needs_reset = matches!(outcome, Event::MailFailed(_))
                    && finished.mode() == Some(BodyMode::Bdat)
                    && finished.mail_accepted;
                self.finished.pop_front();
                let last_in_flight = self.finished.is_empty() && self.transaction.is_none();
                self.events.push_back(outcome);
                self.after_mail(needs_reset && last_in_flight);
            }
            return;
        }
        let Some(transaction) = self.transaction.as_mut() else {
            // The mail was abandoned (RSET or QUIT): its replies are dropped.
            self.discard_reply(expect, &reply);
            return;
        };
        if expect != Expect::Data {
            let outcome = transaction.record(expect, reply, &mut self.events);
            debug_assert!(outcome.is_none(), "the end of data makes a mail finished");
            self.after_transaction_reply(now);
            return;
        }
        let code = reply.code();
        if code.value() == 354 {
            if transaction.failure.is_some() || transaction.accepted_count() == 0 {
                // RFC 2920 3.1: the server accepted DATA although no
                // recipient (or MAIL) was: end it with a lone dot.
                self.transmit.extend_from_slice(b".\r\n");
                self.pending.expect(Expect::DiscardedDataEnd);
                transaction.data_discarded = true;
            } else {
                let mode = transaction.start_body(BodyEncoder::Data(DotStuffer::new()), now);
                self.state = State::Body;
                self.events.push_back(Event::SendBody(mode));
            }
        } else if code.is_positive_completion() {
            transaction.failure.get_or_insert(
                ProtocolError::UnexpectedReply {
                    command: CommandKind::Data,
                    reply,
                }
                .into(),
            );
        } else {
            transaction
                .failure
                .get_or_insert(SessionError::Rejected(Rejection {
                    command: CommandKind::Data,
                    reply,
                }));
        }
        self.after_transaction_reply(now);
    }

    /// After a reply to the open mail: decide what comes next once the
    /// replies that matter are in.
    fn after_transaction_reply(&mut self, now: Instant) {
        let chunking = self.chunking();
        let policy = self.config.recipient_policy;
        let waiting = self.pending.awaits_mail_replies();
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if transaction.failure.is_some() && self.state == State::Body {
            // Stop streaming: the server refused a frame, MAIL or every
            // recipient, so what remains of the message is pointless.
            self.state = State::Transaction;
        }
        let recipients_known = transaction.recipients_known();
        if recipients_known
            && transaction.body.is_none()
            && transaction.body_start == BodyStart::AfterRecipients
            && !waiting
        {
            // The recipients are known: send the body, or give up.
            let refused = transaction.outcomes.len() - transaction.accepted_count();
            if policy == RecipientPolicy::AllOrNone && refused > 0 {
                transaction.failure =
                    Some(SessionError::RecipientsRejected(transaction.outcomes()));
            } else if chunking {
                let framer = transaction.bdat_framer();
                let mode = transaction.start_body(BodyEncoder::Bdat(framer), now);
                self.state = State::Body;
                self.events.push_back(Event::SendBody(mode));
                return;
            } else {
                self.pending.queue(Command::Data, Expect::Data);
                return;
            }
        }
        if waiting || self.state == State::Body {
            return;
        }
        if let Some(failure) = transaction.failure.take() {
            // Every reply of the mail is in. Unless a lone dot ended it, the
            // server still holds the transaction if it took MAIL, so the
            // next mail starts with RSET.
            let needs_reset = transaction.mail_accepted && !transaction.data_discarded;
            self.transaction = None;
            self.events.push_back(Event::MailFailed(failure));
            self.after_mail(needs_reset);
        }
    }

    /// A mail ended. Once none is in flight the session is idle again, or
    /// goes on to the QUIT queued behind the last one.
    pub(super) fn after_mail(&mut self, needs_reset: bool) {
        self.reset_owed |= needs_reset;
        if self.transaction.is_some() || !self.finished.is_empty() {
            return;
        }
        if self.server_closing.is_some() {
            // The session closes instead (see `server_closing`).
        } else if self.quitting {
            self.quitting = false;
            self.state = State::Closing;
        } else if self.state != State::Command {
            self.become_ready();
        }
    }
}

/// The outcome of an LMTP recipient whose reply after the data never came:
/// the connection ended first, so whether it was delivered is unknown.
fn unanswered() -> Reply {
    Reply::new(
        crate::reply::ReplyCode::ACTION_ABORTED,
        vec!["4.4.2 the connection ended before the server's reply for this recipient".into()],
    )
}
