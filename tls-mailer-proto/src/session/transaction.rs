//! One mail: MAIL, RCPT, DATA or BDAT, and what their replies decide.

use std::time::Instant;

use crate::address::Envelope;
use crate::body::{BdatFramer, DotStuffer};
use crate::command::{Command, CommandKind};
use crate::error::{Rejection, SessionError};
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

#[derive(Debug)]
pub(super) struct Transaction {
    envelope: Envelope,
    outcomes: Vec<Option<Reply>>,
    mail_accepted: bool,
    pub(super) body: Option<BodyEncoder>,
    /// Message bytes handed to the session so far.
    pub(super) body_bytes: u64,
    /// When the body started, for the whole-upload deadline.
    body_started: Option<Instant>,
    timeouts: Timeouts,
    /// A refusal seen while other replies of the group were still due;
    /// reported once they are all in.
    failure: Option<SessionError>,
    data_pipelined: bool,
    /// The optional bound on the whole mail.
    pub(super) deadline: Option<Instant>,
}

impl Transaction {
    pub(super) fn new(
        envelope: Envelope,
        data_pipelined: bool,
        timeouts: Timeouts,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            outcomes: vec![None; envelope.recipients().len()],
            envelope,
            mail_accepted: false,
            body: None,
            body_bytes: 0,
            body_started: None,
            timeouts,
            failure: None,
            data_pipelined,
            deadline,
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

    fn outcomes(&self) -> Vec<RecipientOutcome> {
        self.envelope
            .recipients()
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(address, reply)| {
                reply.as_ref().map(|reply| RecipientOutcome {
                    address: address.to_string(),
                    reply: reply.clone(),
                })
            })
            .collect()
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

    fn start_body(&mut self, encoder: BodyEncoder, now: Instant) -> BodyMode {
        self.body = Some(encoder);
        self.body_started = Some(now);
        self.mode().unwrap_or(BodyMode::Data)
    }
}

impl Session {
    /// A reply to MAIL, RCPT, DATA, BDAT or the end of data.
    pub(super) fn handle_mail_reply(&mut self, now: Instant, expect: Expect, reply: Reply) {
        let Some(transaction) = self.transaction.as_mut() else {
            // The mail was abandoned (RSET or QUIT): its replies are dropped.
            self.discard_reply(expect, &reply);
            return;
        };
        let code = reply.code();
        let reject = |reply: Reply| {
            SessionError::Rejected(Rejection {
                command: expect.command(),
                reply,
            })
        };
        match expect {
            Expect::MailFrom => {
                if code.is_positive_completion() {
                    transaction.mail_accepted = true;
                } else {
                    transaction.failure.get_or_insert(reject(reply));
                }
            }
            Expect::RcptTo(index) => {
                if !code.is_positive_completion() && transaction.mail_accepted {
                    self.events.push_back(Event::RecipientRejected {
                        index,
                        rejection: Rejection {
                            command: CommandKind::RcptTo,
                            reply: reply.clone(),
                        },
                    });
                }
                if let Some(slot) = transaction.outcomes.get_mut(index) {
                    *slot = Some(reply);
                }
            }
            Expect::Data => {
                if code.value() == 354 {
                    if transaction.failure.is_some() || transaction.accepted_count() == 0 {
                        // RFC 2920 3.1: the server accepted DATA although no
                        // recipient (or MAIL) was: end it with a lone dot.
                        self.transmit.extend_from_slice(b".\r\n");
                        self.pending.expect(Expect::DiscardedDataEnd);
                    } else {
                        let mode =
                            transaction.start_body(BodyEncoder::Data(DotStuffer::new()), now);
                        self.state = State::Body;
                        self.events.push_back(Event::SendBody(mode));
                    }
                } else if code.is_positive_completion() {
                    transaction.failure.get_or_insert(
                        crate::error::ProtocolError::UnexpectedReply {
                            command: CommandKind::Data,
                            reply,
                        }
                        .into(),
                    );
                } else {
                    transaction.failure.get_or_insert(reject(reply));
                }
            }
            Expect::Bdat if !code.is_positive_completion() => {
                transaction.failure.get_or_insert(reject(reply));
                // Stop streaming: what remains of the message is pointless.
                if self.state == State::Body {
                    self.state = State::Transaction;
                }
            }
            Expect::DataEnd => {
                if code.is_positive_completion() && transaction.failure.is_none() {
                    let delivery = Delivery {
                        reply,
                        recipients: transaction.outcomes(),
                    };
                    self.transaction = None;
                    self.events.push_back(Event::Accepted(delivery));
                    self.after_mail(false);
                    return;
                }
                if !code.is_positive_completion() {
                    transaction.failure.get_or_insert(reject(reply));
                }
            }
            _ => {}
        }
        self.after_transaction_reply(now);
    }

    /// After a reply inside a mail: decide what comes next once the replies
    /// that matter are in.
    fn after_transaction_reply(&mut self, now: Instant) {
        let chunking = self.chunking();
        let policy = self.config.recipient_policy;
        let waiting = self.pending.awaits_mail_replies();
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        let recipients_known = transaction.failure.is_none()
            && transaction.mail_accepted
            && transaction.all_rcpt_replies_in();
        if recipients_known && transaction.body.is_none() && !transaction.data_pipelined && !waiting
        {
            // The recipients are known: send the body, or give up.
            let accepted = transaction.accepted_count();
            let refused = transaction.outcomes.len() - accepted;
            if accepted == 0 || (policy == RecipientPolicy::AllOrNone && refused > 0) {
                transaction.failure =
                    Some(SessionError::RecipientsRejected(transaction.outcomes()));
            } else if chunking {
                let mode = transaction.start_body(BodyEncoder::Bdat(BdatFramer::new()), now);
                self.state = State::Body;
                self.events.push_back(Event::SendBody(mode));
                return;
            } else {
                self.pending.queue(Command::Data, Expect::Data);
                return;
            }
        }
        if recipients_known && transaction.data_pipelined && transaction.accepted_count() == 0 {
            transaction.failure = Some(SessionError::RecipientsRejected(transaction.outcomes()));
        }
        if waiting || self.state == State::Body {
            return;
        }
        if let Some(failure) = transaction.failure.take() {
            // Every reply of the group is in: report, and reset the
            // transaction so the connection can carry another mail.
            let needs_reset = transaction.mail_accepted;
            self.transaction = None;
            self.events.push_back(Event::MailFailed(failure));
            self.after_mail(needs_reset);
        }
    }

    /// A mail ended: idle again (after an RSET when the server still holds
    /// a transaction), or on to the QUIT queued behind it.
    fn after_mail(&mut self, needs_reset: bool) {
        if self.quitting {
            self.quitting = false;
            self.state = State::Closing;
        } else if needs_reset {
            self.send(Command::Rset, Expect::Rset);
            self.state = State::Command;
        } else {
            self.become_ready();
        }
    }
}
