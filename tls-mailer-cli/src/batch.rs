//! `tls-mailer batch`: many message files, each sent as `send -t --message
//! FILE` would send it (envelope from its headers, Bcc removed), over a few
//! reused connections, one thread per connection, each message pipelined
//! behind the one before.

use std::collections::HashSet;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};

use indicatif::{ProgressBar, ProgressStyle};
use tls_mailer::proto::{ApiMisuse, CommandKind, Phase, ProtocolError};
use tls_mailer::{Client, Connection, Error, Mail, SendReport};

use crate::connection::{Clients, ConnectionArgs};
use crate::exit::{self, Failure};
use crate::send::RawSend;

/// The exit codes of `batch`.
pub const BATCH_TABLE: &str = "\
Exit codes of batch (each message is judged as send would judge it):
  0   every message was accepted for every recipient
  67  a message went to some of its recipients only: do not send it to all
      of them again (this code wins over every other)
  75  every failure is temporary (4xx, connection problems): the files
      reported failed may be sent again later, but not the whole batch,
      whose other files were sent
  otherwise the code send gives for the first file, in command-line order,
  whose failure is not temporary: 65 not a message (no From, no
  recipient), 66 the file cannot be read, 67 every recipient refused for
  good, 69 refused for good (5xx), 77 authentication or TLS refused...
  74  the --report could not be written to stdout (unless 67)";

/// Arguments of `tls-mailer batch`.
#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Send over at most this many connections at once (1 to 16), each
    /// reused for message after message. Two keep one connection busy while
    /// the other waits for the server's verdict, and stay below the limit of
    /// concurrent connections per account that submission servers set
    /// (some allow as few as 3).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub connections: u16,
    /// Print one JSON object per message on stdout (JSON Lines), as each
    /// message is done.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub report: Option<ReportFormat>,
    /// Message files, and directories whose regular files are sent in the
    /// order of their names (not recursive: subdirectories and names that
    /// start with a dot are left out).
    #[arg(value_name = "FILE|DIR", required = true)]
    pub paths: Vec<PathBuf>,
}

/// The formats of `--report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// JSON Lines: one object per message.
    Json,
}

/// One message file to send; `index` is its place on the command line
/// (directories expanded).
#[derive(Debug)]
struct Job {
    index: usize,
    path: PathBuf,
}

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Accepted for every recipient.
    Sent,
    /// Accepted for some recipients, refused for the others.
    Partial,
    /// Refused for good (5xx): sending it again as it is will not help.
    Refused,
    /// Not sent: a temporary failure (4xx, connection problems) or a local
    /// one (the file cannot be read or is not a message).
    Failed,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Partial => "partial",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// A recipient of a message, with the server's reply to its RCPT when known.
#[derive(Debug)]
struct Recipient {
    address: String,
    reply: Option<String>,
    refused: bool,
}

impl Recipient {
    fn of(outcome: &tls_mailer::RecipientOutcome) -> Self {
        Self {
            address: outcome.address.clone(),
            reply: Some(outcome.reply.to_string()),
            refused: !outcome.accepted(),
        }
    }
}

/// A message's outcome, as the report and the summary give it.
#[derive(Debug)]
struct Outcome {
    index: usize,
    file: String,
    message_id: Option<String>,
    recipients: Vec<Recipient>,
    verdict: Verdict,
    /// The server's final reply, or the error.
    reply: String,
    queue_id: Option<String>,
    /// Trying again later may help (for a partial delivery: every refusal
    /// was temporary).
    temporary: bool,
    /// The exit code `send` would give for this message.
    code: u8,
    hint: Option<&'static str>,
    /// The connection was already gone when the message started: the server
    /// never answered its MAIL FROM, so it may go again at once.
    connection_was_gone: bool,
}

impl Outcome {
    fn of_report(job: &Job, message_id: Option<String>, report: &SendReport) -> Self {
        let refused: Vec<_> = report.rejected().collect();
        let verdict = if refused.is_empty() {
            Verdict::Sent
        } else {
            Verdict::Partial
        };
        Self {
            index: job.index,
            file: job.path.display().to_string(),
            message_id,
            recipients: report.recipients.iter().map(Recipient::of).collect(),
            verdict,
            reply: report.reply.to_string(),
            queue_id: report.queue_id.clone(),
            temporary: !refused.is_empty() && refused.iter().all(|r| r.reply.is_transient()),
            code: if refused.is_empty() { 0 } else { exit::NO_USER },
            hint: None,
            connection_was_gone: false,
        }
    }

    /// A message that was not sent: the file could not be read (no
    /// `message`), or the send failed.
    fn of_failure(job: &Job, label: Option<Label>, failure: Failure) -> Self {
        let (message_id, mut recipients) = match label {
            Some(label) => (label.message_id, label.recipients),
            None => (None, Vec::new()),
        };
        let (verdict, temporary, connection_was_gone) = match &failure {
            Failure::Send(error) => {
                if let Error::RecipientsRejected(outcomes) = error {
                    recipients = outcomes.iter().map(Recipient::of).collect();
                }
                let refused = matches!(error, Error::Rejected(_) | Error::RecipientsRejected(_))
                    && !error.is_transient();
                let verdict = if refused {
                    Verdict::Refused
                } else {
                    Verdict::Failed
                };
                (verdict, error.is_transient(), connection_was_gone(error))
            }
            _ => (Verdict::Failed, false, false),
        };
        Self {
            index: job.index,
            file: job.path.display().to_string(),
            message_id,
            recipients,
            verdict,
            reply: failure.to_string(),
            queue_id: None,
            temporary,
            code: exit::code(&failure),
            hint: exit::hint(&failure),
            connection_was_gone,
        }
    }

    /// A job that was not sent for a reason not its message's (`like`
    /// failed for it too); what its file says is read for the report.
    fn not_sent(job: &Job, reply: String, like: Option<&Self>) -> Self {
        let label = Message::read(&job.path).ok().map(|message| message.label());
        let (message_id, recipients) = match label {
            Some(label) => (label.message_id, label.recipients),
            None => (None, Vec::new()),
        };
        Self {
            index: job.index,
            file: job.path.display().to_string(),
            message_id,
            recipients,
            verdict: Verdict::Failed,
            reply,
            queue_id: None,
            temporary: like.is_some_and(|like| like.temporary),
            code: like.map_or(exit::SOFTWARE, |like| like.code),
            hint: like.and_then(|like| like.hint),
            connection_was_gone: false,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let recipients: Vec<serde_json::Value> = self
            .recipients
            .iter()
            .map(|recipient| {
                serde_json::json!({ "address": recipient.address, "reply": recipient.reply })
            })
            .collect();
        serde_json::json!({
            "file": self.file,
            "message_id": self.message_id,
            "recipients": recipients,
            "result": self.verdict.as_str(),
            "reply": self.reply,
            "queue_id": self.queue_id,
            "temporary": self.temporary,
        })
    }
}

/// The server never took the message, so it may go again at once over a
/// new connection: the connection had ended before the message started, or
/// the server said `421` (it is closing: to its MAIL FROM, or to a mail
/// before it in the same pipelined batch). A connection that merely broke
/// after the message was written is not one of these: the server may have
/// taken it, and sending it again could deliver it twice.
fn connection_was_gone(error: &Error) -> bool {
    match error {
        Error::ServiceClosing(_) | Error::ApiMisuse(ApiMisuse::Closed) => true,
        Error::Rejected(rejection) => {
            rejection.command == CommandKind::MailFrom && rejection.is_service_closing()
        }
        Error::Protocol(ProtocolError::ConnectionClosed { awaiting }) => awaiting.is_none(),
        Error::Io { phase, .. } => *phase == Phase::Ready,
        _ => false,
    }
}

/// A job's message, read and ready to send.
struct Message {
    raw: RawSend,
    message_id: Option<String>,
}

impl Message {
    /// Reads the file as `send -t --message FILE` does.
    fn read(path: &Path) -> Result<Self, Failure> {
        let raw = RawSend::open(Some(path), false, true, &[], None).map_err(|failure| {
            match failure {
                // The only usage error of a raw message without flags.
                Failure::Usage(_) => Failure::BadMessage(format!(
                    "{}: the message has no recipient (no To, Cc or Bcc address)",
                    path.display()
                )),
                Failure::BadMessage(reason) => {
                    Failure::BadMessage(format!("{}: {reason}", path.display()))
                }
                other => other,
            }
        })?;
        let message_id = message_id(raw.stream.get_ref().0.get_ref());
        Ok(Self { raw, message_id })
    }

    /// What the report says of the message before the server answers.
    fn label(&self) -> Label {
        let recipients = self
            .raw
            .envelope
            .recipients()
            .iter()
            .map(|address| Recipient {
                address: address.as_str().to_owned(),
                reply: None,
                refused: false,
            })
            .collect();
        Label {
            message_id: self.message_id.clone(),
            recipients,
        }
    }
}

/// What is kept of a message while it is in flight: its Message-ID and
/// its recipients, not answered yet.
struct Label {
    message_id: Option<String>,
    recipients: Vec<Recipient>,
}

/// The value of the first Message-ID field in the header section that
/// starts `bytes` (as the message will be sent: line ends already CRLF),
/// unfolded; `None` without one.
fn message_id(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(b"\r\n") {
        // An empty header section: what follows is the body.
        return None;
    }
    let end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 2);
    let header = String::from_utf8_lossy(&bytes[..end]);
    let folded = |line: &str| line.starts_with([' ', '\t']);
    let mut lines = header.split("\r\n");
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if folded(line) || !name.trim_end().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.trim().to_owned();
        for folded in lines.by_ref().take_while(|line| folded(line)) {
            value.push(' ');
            value.push_str(folded.trim());
        }
        let value = value.trim();
        return (!value.is_empty()).then(|| value.to_owned());
    }
    None
}

/// The files to send, in order: each FILE as given, each DIR's regular
/// files by name; a path named twice goes once. A directory that cannot be
/// listed is itself a job, which fails with the reason.
fn jobs(paths: &[PathBuf]) -> Vec<Job> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut names: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
                    .map(|entry| entry.path())
                    .filter(|path| path.is_file())
                    .collect();
                names.sort();
                files.extend(names);
            }
            Err(_) => files.push(path.clone()),
        }
    }
    let mut seen = HashSet::new();
    files
        .into_iter()
        .filter(|path| seen.insert(path.canonicalize().unwrap_or_else(|_| path.clone())))
        .enumerate()
        .map(|(index, path)| Job { index, path })
        .collect()
}

/// The jobs, taken in order by the workers; a job whose worker could not
/// connect goes back to the others.
struct Queue {
    jobs: Vec<Job>,
    state: Mutex<Taken>,
}

/// What the workers took.
#[derive(Debug)]
struct Taken {
    /// The next job never taken.
    next: usize,
    /// Jobs given back, taken first.
    returned: Vec<usize>,
    /// Workers still at work.
    working: usize,
}

impl Queue {
    fn new(jobs: Vec<Job>, workers: usize) -> Self {
        Self {
            jobs,
            state: Mutex::new(Taken {
                next: 0,
                returned: Vec::new(),
                working: workers,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Taken> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job; `None` when there is none left, and the worker is then
    /// done (in the same step, so that no job is given back to it after).
    fn take(&self) -> Option<&Job> {
        let mut state = self.state();
        let index = state.returned.pop().or_else(|| {
            let next = state.next;
            (next < self.jobs.len()).then(|| {
                state.next += 1;
                next
            })
        });
        if index.is_none() {
            state.working = state.working.saturating_sub(1);
        }
        index.and_then(|index| self.jobs.get(index))
    }

    /// A job to be taken again by any worker (its worker stops for another
    /// reason: it could not connect for an earlier job).
    fn put_back(&self, job: &Job) {
        self.state().returned.push(job.index);
    }

    /// A worker that cannot connect stops. Its job goes back to the others
    /// while any is still at work (`true`); the last one keeps it, to report
    /// it failed (`false`).
    fn give_back(&self, job: &Job) -> bool {
        let mut state = self.state();
        state.working = state.working.saturating_sub(1);
        if state.working == 0 {
            return false;
        }
        state.returned.push(job.index);
        true
    }
}

/// Sends `first`, then jobs taken from the queue, as one pipelined batch
/// over `connection` (each message's commands and body go out without
/// waiting for the replies to the one before). Outcomes go to `outcomes`;
/// returns the jobs the server never took because the connection was
/// going away, to send again over a new one (those not already tried
/// twice).
fn send_pipelined<'q>(
    connection: &mut Connection,
    first: &'q Job,
    queue: &'q Queue,
    outcomes: &mpsc::Sender<Outcome>,
    retried: &HashSet<usize>,
) -> Vec<&'q Job> {
    let mut started: Vec<(&Job, Label)> = Vec::new();
    let mut first = Some(first);
    let mails = std::iter::from_fn(|| {
        loop {
            let job = first.take().or_else(|| queue.take())?;
            match Message::read(&job.path) {
                Ok(message) => {
                    started.push((job, message.label()));
                    let raw = message.raw;
                    return Some(Mail::new(raw.envelope, raw.stream, raw.info));
                }
                Err(failure) => {
                    let _ = outcomes.send(Outcome::of_failure(job, None, failure));
                }
            }
        }
    });
    let mut results = connection.send_batch(mails).into_iter();
    let mut again = Vec::new();
    for (job, label) in started {
        let outcome = match results.next() {
            Some(Ok(report)) => Outcome::of_report(job, label.message_id, &report),
            Some(Err(error)) => Outcome::of_failure(job, Some(label), Failure::Send(error)),
            // Not started: nothing of it was sent.
            None => {
                again.push(job);
                continue;
            }
        };
        if outcome.connection_was_gone && !retried.contains(&job.index) {
            again.push(job);
        } else {
            let _ = outcomes.send(outcome);
        }
    }
    again
}

/// A worker: opens a connection and sends jobs over it, pipelined, until
/// none are left, then says QUIT; a connection that ends midway is
/// replaced, and the jobs the server never took go again, once. A worker
/// that cannot connect stops and leaves its job to the others; the last
/// one returns that job's outcome.
fn work(client: &Client, queue: &Queue, outcomes: &mpsc::Sender<Outcome>) -> Option<Outcome> {
    let mut again: Vec<&Job> = Vec::new();
    let mut retried = HashSet::new();
    loop {
        let first = match again.pop() {
            Some(job) => job,
            None => queue.take()?,
        };
        let mut connection = match client.connect() {
            Ok(connection) => connection,
            Err(error) => {
                let label = Message::read(&first.path).ok().map(|m| m.label());
                let mut outcome = Outcome::of_failure(first, label, error.into());
                // The message was never offered, whatever the reply.
                outcome.verdict = Verdict::Failed;
                for job in again {
                    queue.put_back(job);
                }
                return (!queue.give_back(first)).then_some(outcome);
            }
        };
        let gone = send_pipelined(&mut connection, first, queue, outcomes, &retried);
        for job in gone.into_iter().rev() {
            retried.insert(job.index);
            again.push(job);
        }
        if again.is_empty() {
            let _ = connection.quit();
        }
    }
}

/// The progress bar: on stderr, only when it is a terminal and -v does not
/// write there.
fn progress(total: usize, verbose: bool) -> ProgressBar {
    if verbose || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} messages, {elapsed} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Where outcomes go as they come: the progress bar, the JSON report, and
/// the list the summary and the exit code are made of.
struct Results {
    bar: ProgressBar,
    not_sent: usize,
    json: bool,
    report_error: Option<io::Error>,
    done: Vec<Option<Outcome>>,
}

impl Results {
    fn record(&mut self, outcome: Outcome) {
        self.bar.inc(1);
        if outcome.verdict != Verdict::Sent {
            self.not_sent += 1;
            self.bar
                .set_message(format!("({} not sent to everyone)", self.not_sent));
        }
        if self.json && self.report_error.is_none() {
            let line = format!("{}\n", outcome.to_json());
            let written = self.bar.suspend(|| {
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(line.as_bytes())
                    .and_then(|()| stdout.flush())
            });
            self.report_error = written.err();
        }
        let index = outcome.index;
        if let Some(slot) = self.done.get_mut(index) {
            *slot = Some(outcome);
        }
    }
}

/// Runs `batch`; the exit code sums up every message's.
pub fn run(args: &BatchArgs) -> Result<u8, Failure> {
    if args.connection.host.is_none() {
        return Err(Failure::Usage(
            "batch needs --host: the SMTP server to send through".into(),
        ));
    }
    let route = args.connection.route()?;
    let client = Clients::new(&args.connection).builder(&route)?.build()?;
    let jobs = jobs(&args.paths);
    let total = jobs.len();
    let workers = usize::from(args.connections).min(total);
    let queue = Queue::new(jobs, workers);
    let mut results = Results {
        bar: progress(total, args.connection.verbose),
        not_sent: 0,
        json: args.report == Some(ReportFormat::Json),
        report_error: None,
        done: (0..total).map(|_| None).collect(),
    };
    let mut stopped: Vec<Outcome> = std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel();
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let sender = sender.clone();
                let (client, queue) = (&client, &queue);
                scope.spawn(move || work(client, queue, &sender))
            })
            .collect();
        drop(sender);
        for outcome in receiver {
            results.record(outcome);
        }
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok().flatten())
            .collect()
    });
    // The last worker to stop could not connect: its reason is that of
    // every job no worker took.
    let last_stop = stopped.pop();
    for outcome in stopped {
        results.record(outcome);
    }
    // Every job gets an outcome: those no worker took (every worker failed
    // to connect) and, should a worker have died, those it held.
    for job in &queue.jobs {
        let taken = results.done.get(job.index).is_some_and(Option::is_some)
            || last_stop
                .as_ref()
                .is_some_and(|stop| stop.index == job.index);
        if !taken {
            let reply = match &last_stop {
                Some(stop) => format!("not sent: no connection could be made: {}", stop.reply),
                None => "internal error: whether it was sent is not known (the thread \
                         sending it stopped)"
                    .into(),
            };
            results.record(Outcome::not_sent(job, reply, last_stop.as_ref()));
        }
    }
    if let Some(outcome) = last_stop {
        results.record(outcome);
    }
    results.bar.finish_and_clear();
    let outcomes: Vec<Outcome> = results.done.into_iter().flatten().collect();
    summarize(&outcomes, total);
    let code = code(&outcomes);
    if let Some(error) = results.report_error {
        eprintln!("tls-mailer: cannot write the report to stdout: {error}");
        // 67 still says "do not send them all again".
        if code != exit::NO_USER {
            return Ok(exit::IO_ERROR);
        }
    }
    Ok(code)
}

/// The summary on stderr: the counts, then each message not sent to all
/// its recipients, in command-line order, with the reply or the error.
fn summarize(outcomes: &[Outcome], total: usize) {
    let count = |verdict: Verdict, temporary: Option<bool>| {
        outcomes
            .iter()
            .filter(|o| o.verdict == verdict && temporary.is_none_or(|t| o.temporary == t))
            .count()
    };
    let mut stderr = io::stderr().lock();
    let _ = writeln!(
        stderr,
        "tls-mailer: batch of {total}: {} sent, {} partially sent, {} refused, {} failed for \
         now, {} failed",
        count(Verdict::Sent, None),
        count(Verdict::Partial, None),
        count(Verdict::Refused, None),
        count(Verdict::Failed, Some(true)),
        count(Verdict::Failed, Some(false)),
    );
    let mut hints = Vec::new();
    for outcome in outcomes {
        let label = match (outcome.verdict, outcome.temporary) {
            (Verdict::Sent, _) => continue,
            (Verdict::Partial, _) => "partially sent",
            (Verdict::Refused, _) => "refused",
            (Verdict::Failed, true) => "failed for now",
            (Verdict::Failed, false) => "failed",
        };
        let _ = writeln!(
            stderr,
            "tls-mailer: {label} {}: {}",
            outcome.file, outcome.reply
        );
        if outcome.verdict == Verdict::Partial {
            for recipient in outcome.recipients.iter().filter(|r| r.refused) {
                let reply = recipient.reply.as_deref().unwrap_or_default();
                let _ = writeln!(
                    stderr,
                    "tls-mailer:   refused <{}>: {reply}",
                    recipient.address
                );
            }
        }
        if let Some(hint) = outcome.hint
            && !hints.contains(&hint)
        {
            hints.push(hint);
        }
    }
    for hint in hints {
        let _ = writeln!(stderr, "tls-mailer: hint: {hint}");
    }
}

/// The batch's exit code: 0 when every message went to every recipient;
/// 67 when any went to only some (sending those again to all would
/// duplicate them); else the first lasting failure's code, in command-line
/// order; else 75 when temporary failures are all there is.
fn code(outcomes: &[Outcome]) -> u8 {
    if outcomes.iter().any(|o| o.verdict == Verdict::Partial) {
        return exit::NO_USER;
    }
    let codes = || outcomes.iter().map(|outcome| outcome.code);
    codes()
        .find(|&code| code != 0 && code != exit::TEMPORARY)
        .or_else(|| codes().find(|&code| code == exit::TEMPORARY))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_id_is_the_first_field_of_that_name_unfolded() {
        let header = b"From: a@example.org\r\nMessage-Id:\r\n <x@example.org>\r\n\r\n";
        assert_eq!(message_id(header).as_deref(), Some("<x@example.org>"));
        let body_only = b"From: a@example.org\r\n\r\nMessage-ID: <in-body@example.org>\r\n";
        assert_eq!(message_id(body_only), None);
        assert_eq!(
            message_id(b"X-Message-ID: <no>\r\nMESSAGE-ID: <yes@x>\r\n").as_deref(),
            Some("<yes@x>")
        );
        assert_eq!(message_id(b"Message-ID:   \r\n"), None);
        assert_eq!(message_id(b"\r\nMessage-ID: <body@x>\r\n\r\n"), None);
    }

    #[test]
    fn only_a_message_the_server_never_took_can_go_again() {
        let closed = |awaiting| Error::Protocol(ProtocolError::ConnectionClosed { awaiting });
        assert!(connection_was_gone(&closed(None)));
        // The body went with MAIL (pipelined): the server may have it.
        assert!(!connection_was_gone(&closed(Some(CommandKind::MailFrom))));
        assert!(!connection_was_gone(&closed(Some(CommandKind::DataEnd))));
        let closing = || {
            let code = tls_mailer::proto::ReplyCode::new(421).unwrap();
            tls_mailer::proto::Reply::new(code, vec!["4.7.0 too many messages".into()])
        };
        assert!(connection_was_gone(&Error::ServiceClosing(closing())));
        let refused = |command| {
            Error::Rejected(tls_mailer::proto::Rejection {
                command,
                reply: closing(),
            })
        };
        assert!(connection_was_gone(&refused(CommandKind::MailFrom)));
        assert!(!connection_was_gone(&refused(CommandKind::DataEnd)));
        let lost = |phase| Error::Io {
            phase,
            source: io::ErrorKind::ConnectionReset.into(),
        };
        assert!(connection_was_gone(&lost(Phase::Ready)));
        assert!(!connection_was_gone(&lost(Phase::MailFrom)));
        assert!(!connection_was_gone(&lost(Phase::DataEnd)));
        assert!(!connection_was_gone(&Error::Timeout {
            phase: Phase::MailFrom
        }));
    }

    fn outcome(index: usize, verdict: Verdict, code: u8) -> Outcome {
        let job = Job {
            index,
            path: PathBuf::from(format!("{index}.eml")),
        };
        Outcome {
            verdict,
            code,
            ..Outcome::not_sent(&job, String::new(), None)
        }
    }

    #[test]
    fn a_partial_delivery_wins_then_the_first_lasting_failure_then_75() {
        let sent = || outcome(0, Verdict::Sent, 0);
        let for_now = || outcome(1, Verdict::Failed, exit::TEMPORARY);
        assert_eq!(code(&[]), 0);
        assert_eq!(code(&[sent(), sent()]), 0);
        assert_eq!(code(&[sent(), for_now()]), exit::TEMPORARY);
        let lasting = [
            sent(),
            for_now(),
            outcome(2, Verdict::Failed, exit::NO_INPUT),
            outcome(3, Verdict::Refused, exit::UNAVAILABLE),
        ];
        assert_eq!(code(&lasting), exit::NO_INPUT);
        let mut with_partial = Vec::from(lasting);
        with_partial.push(outcome(4, Verdict::Partial, exit::NO_USER));
        assert_eq!(code(&with_partial), exit::NO_USER);
    }

    #[test]
    fn a_job_given_back_goes_to_a_worker_still_at_work_and_the_last_keeps_its_own() {
        let jobs = (0..3)
            .map(|index| Job {
                index,
                path: PathBuf::from(format!("{index}.eml")),
            })
            .collect();
        let queue = Queue::new(jobs, 2);
        let first = queue.take().map(|job| job.index);
        assert_eq!(first, Some(0));
        let second = queue.take().map(|job| job.index);
        assert_eq!(second, Some(1));
        // One worker cannot connect: job 0 goes back, ahead of job 2.
        assert!(queue.give_back(&queue.jobs[0]));
        assert_eq!(queue.take().map(|job| job.index), Some(0));
        assert_eq!(queue.take().map(|job| job.index), Some(2));
        // The last worker cannot connect either: it keeps its job to report.
        assert!(!queue.give_back(&queue.jobs[2]));
        assert!(queue.state().returned.is_empty());

        // A worker that found nothing left is done: nothing is given to it.
        let queue = Queue::new(
            vec![Job {
                index: 0,
                path: PathBuf::from("0.eml"),
            }],
            2,
        );
        assert!(queue.take().is_some());
        assert!(queue.take().is_none());
        assert!(!queue.give_back(&queue.jobs[0]));
    }
}
