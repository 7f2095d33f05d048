//! Several mails on one connection, pipelined (RFC 2920): the next mail's
//! commands go out as soon as the one before has its end of data written,
//! and each mail still gets its own outcome. What both drivers share: which
//! outcome belongs to which mail, and when to start the next.

use std::collections::VecDeque;
use std::io;

use tls_mailer_proto::{ApiMisuse, BodyInfo, Envelope, Event, MailOptions, Phase};

use crate::client::SendReport;
use crate::driver::{Conversation, unexpected};
use crate::error::Error;

/// One message of a batch: its envelope, its bytes (any reader: a slice, a
/// file) and what is known of them in advance.
///
/// ```
/// use tls_mailer::{Envelope, Mail};
///
/// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
/// let mail = Mail::from_bytes(envelope, b"Subject: hi\r\n\r\nHello\r\n");
/// assert_eq!(mail.info().size, Some(22));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Mail<R> {
    envelope: Envelope,
    body: R,
    info: BodyInfo,
}

impl<'a> Mail<&'a [u8]> {
    /// A message held in memory (its size and 8-bit-ness are known).
    pub fn from_bytes(envelope: Envelope, message: &'a [u8]) -> Self {
        Self {
            info: BodyInfo::of(message),
            envelope,
            body: message,
        }
    }
}

impl<R> Mail<R> {
    /// A message read from `body` while it is sent; `info` says what is
    /// known of it (`BodyInfo::default()`: nothing).
    pub fn new(envelope: Envelope, body: R, info: BodyInfo) -> Self {
        Self {
            envelope,
            body,
            info,
        }
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// What is known of the message in advance.
    pub fn info(&self) -> BodyInfo {
        self.info
    }

    /// The reader of the message.
    pub fn into_body(self) -> R {
        self.body
    }

    pub(crate) fn into_parts(self) -> (Envelope, R) {
        (self.envelope, self.body)
    }
}

#[cfg(feature = "tokio")]
impl<'m, R: tokio::io::AsyncRead + Unpin + Send + 'm> Mail<R> {
    /// [`Mail::boxed`] for the async driver.
    pub(crate) fn boxed_async(self) -> Mail<Box<dyn tokio::io::AsyncRead + Unpin + Send + 'm>> {
        Mail {
            envelope: self.envelope,
            body: Box::new(self.body),
            info: self.info,
        }
    }
}

impl<'m, R: std::io::Read + 'm> Mail<R> {
    /// The same mail with its reader boxed, so mails of one batch can be
    /// turned into another reader (a signed copy) on the way.
    pub(crate) fn boxed(self) -> Mail<Box<dyn std::io::Read + 'm>> {
        Mail {
            envelope: self.envelope,
            body: Box::new(self.body),
            info: self.info,
        }
    }
}

/// What the driver does next for a batch.
pub(crate) enum BatchStep {
    /// Stream the open mail's body ([`Pipeline::take_body`]).
    SendBody,
    /// Keep going.
    Continue,
}

/// The mails of a batch and their outcomes, in order.
pub(crate) struct Pipeline<I, R> {
    mails: I,
    exhausted: bool,
    options: MailOptions,
    /// Indices of the mails started whose outcome is not in, oldest first.
    in_flight: VecDeque<usize>,
    /// The mail started last and its body, until the body is streamed (or
    /// the mail fails before it: DATA refused, every recipient refused).
    open_body: Option<(usize, R)>,
    results: Vec<Option<Result<SendReport, Error>>>,
}

impl<I, R> Pipeline<I, R>
where
    I: Iterator<Item = Mail<R>>,
{
    pub(crate) fn new(mails: I, options: MailOptions) -> Self {
        Self {
            mails,
            exhausted: false,
            options,
            in_flight: VecDeque::new(),
            open_body: None,
            results: Vec::new(),
        }
    }

    /// The next mail to start, if the session takes one now: one open at a
    /// time, up to the session's window in flight. The driver prepares its
    /// body (a DKIM-signed copy, for instance) and calls
    /// [`Pipeline::start`], or [`Pipeline::refuse`] when that fails.
    pub(crate) fn next_to_start(
        &mut self,
        conversation: &Conversation,
    ) -> Option<(usize, Mail<R>)> {
        if self.open_body.is_some() || self.exhausted || !conversation.session.can_start_mail() {
            return None;
        }
        let Some(mail) = self.mails.next() else {
            self.exhausted = true;
            return None;
        };
        self.results.push(None);
        Some((self.results.len() - 1, mail))
    }

    /// Starts mail `index`. One the session refuses before sending anything
    /// (SIZE, SMTPUTF8...) gets its error, and the next may be tried.
    pub(crate) fn start(&mut self, index: usize, conversation: &mut Conversation, mail: Mail<R>) {
        match conversation.start_mail(&mail.envelope, mail.info, &self.options) {
            Ok(()) => {
                self.in_flight.push_back(index);
                self.open_body = Some((index, mail.body));
            }
            Err(error) => self.refuse(index, error),
        }
    }

    /// Mail `index` could not be started.
    pub(crate) fn refuse(&mut self, index: usize, error: Error) {
        self.results[index] = Some(Err(error));
    }

    /// Judges an event of the session; afterwards the driver starts what
    /// it can ([`Pipeline::next_to_start`]).
    pub(crate) fn on_event(
        &mut self,
        event: Event,
        conversation: &Conversation,
    ) -> Result<BatchStep, Error> {
        let outcome = match event {
            Event::SendBody(_) => return Ok(BatchStep::SendBody),
            Event::RecipientRejected { .. } | Event::Ready => return Ok(BatchStep::Continue),
            Event::Accepted(delivery) => conversation.report(Ok(delivery)),
            Event::MailFailed(error) => conversation.report(Err(error)),
            other => return Err(unexpected(other)),
        };
        let Some(index) = self.in_flight.pop_front() else {
            return Err(Error::ApiMisuse(ApiMisuse::NotIdle));
        };
        self.results[index] = Some(outcome);
        if self
            .open_body
            .as_ref()
            .is_some_and(|(open, _)| *open == index)
        {
            self.open_body = None;
        }
        Ok(BatchStep::Continue)
    }

    /// The open mail's body, to stream; afterwards the driver starts what
    /// it can.
    pub(crate) fn take_body(&mut self) -> Option<R> {
        self.open_body.take().map(|(_, body)| body)
    }

    /// Every mail has its outcome (call after starting what can be).
    pub(crate) fn is_done(&self) -> bool {
        self.exhausted && self.in_flight.is_empty() && self.open_body.is_none()
    }

    /// The connection ended with `error`: the oldest mail in flight gets
    /// it, the others an error saying their outcome is unknown (or, after
    /// the server's `421`, that it was not taken); with none
    /// in flight, the next mail gets it, so the caller learns why. Mails
    /// not started are left out of the results.
    pub(crate) fn fail(&mut self, error: Error) {
        self.open_body = None;
        let mut in_flight = std::mem::take(&mut self.in_flight).into_iter();
        let first = match in_flight.next() {
            Some(index) => index,
            None if self.exhausted => return,
            None => {
                if self.mails.next().is_none() {
                    return;
                }
                self.results.push(None);
                self.results.len() - 1
            }
        };
        // After a 421 the server takes nothing more: the mails behind were
        // not delivered, and may go again.
        let closing = match &error {
            Error::ServiceClosing(reply) => Some(reply.clone()),
            _ => None,
        };
        self.results[first] = Some(Err(error));
        for index in in_flight {
            if let Some(reply) = &closing {
                self.results[index] = Some(Err(Error::ServiceClosing(reply.clone())));
                continue;
            }
            self.results[index] = Some(Err(Error::Io {
                phase: Phase::DataEnd,
                source: io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection ended before the server's reply to this message \
                     (it may or may not have been delivered)",
                ),
            }));
        }
        self.exhausted = true;
    }

    /// The outcomes, in the order of the mails; shorter than the input
    /// when the connection ended before every mail was started.
    pub(crate) fn finish(self) -> Vec<Result<SendReport, Error>> {
        self.results.into_iter().flatten().collect()
    }
}
