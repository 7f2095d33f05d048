#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! One test per outbox rule, against the testkit server on loopback.

use std::cell::Cell;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tls_mailer_testkit::{Fault, Stage, TestServer};

use super::*;
use crate::{Client, Credentials, RecipientOutcome, Security, Timeouts};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const MESSAGE: &[u8] = b"From: alice@example.org\r\nSubject: outbox\r\n\r\nHello\r\n";

/// A fresh spool directory, removed afterwards.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "tls-mailer-outbox-test-{}-{:016x}",
            std::process::id(),
            backoff::random_u64()
        ));
        Self(path)
    }

    fn outbox(&self) -> Outbox {
        Outbox::open(&self.0)
            .unwrap()
            .with_jitter(Jitter::fixed(0.0))
    }

    fn files(&self, folder: Folder) -> Vec<String> {
        let dir = match folder {
            Folder::Queue => self.0.clone(),
            other => self.0.join(other.dir_name()),
        };
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|listing| {
                listing
                    .map(|item| item.unwrap().file_name().into_string().unwrap())
                    .filter(|name| name.ends_with(".entry"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn t0() -> SystemTime {
    from_unix_seconds(1_764_324_900)
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope::new("alice@example.org", recipients).unwrap()
}

fn server_with(faults: &[Fault]) -> TestServer {
    let mut builder = TestServer::builder().auth(USER, PASSWORD);
    for fault in faults {
        builder = builder.fault(fault.clone());
    }
    builder.start().unwrap()
}

fn route_to(port: u16) -> Route {
    Route::new("localhost", port, Security::ImplicitTls).with_user(USER)
}

/// Connects as the CLI would: the route, plus the password and the trust
/// anchor given at flush time. Counts the connection attempts.
fn connector<'a>(
    server: &TestServer,
    attempts: &'a Cell<usize>,
) -> impl FnMut(&Route) -> Result<Connection, Error> + 'a {
    let ca = server.ca_pem();
    move |route| {
        attempts.set(attempts.get() + 1);
        let mut builder = Client::builder(&route.host)
            .port(route.port)
            .security(route.security)
            .system_roots(false)
            .add_root_certificates_pem(ca.as_bytes())?
            .timeouts(Timeouts::uniform(Duration::from_secs(10)));
        if let Some(user) = &route.user {
            builder = builder.credentials(Credentials::new(user, PASSWORD));
        }
        builder.build()?.connect()
    }
}

fn enqueue_at(outbox: &Outbox, recipients: &[&str], route: Route, now: SystemTime) -> EntryId {
    outbox
        .write_new(&envelope(recipients), &mut &MESSAGE[..], route, "", now)
        .unwrap()
        .0
}

fn summary(outbox: &Outbox, id: &EntryId) -> EntrySummary {
    outbox.show(id).unwrap().summary
}

/// A port nothing listens on: connections are refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn the_spool_is_private_and_entries_record_everything_but_the_password() {
    let dir = Dir::new();
    let nested = dir.0.join("state/tls-mailer/outbox");
    let outbox = Outbox::open(&nested).unwrap();
    let client = Client::builder("smtp.example.org")
        .security(Security::StartTls)
        .credentials(Credentials::new(USER, PASSWORD))
        .build()
        .unwrap();
    let route = Route::of_client(&client);
    assert_eq!(
        route,
        Route::new("smtp.example.org", 587, Security::StartTls).with_user(USER)
    );
    let id = outbox
        .enqueue(
            &envelope(&["bob@example.org", "carol@example.org"]),
            &mut &MESSAGE[..],
            route.clone(),
            "connection refused",
        )
        .unwrap();
    let path = nested.join(id.file_name());
    let bytes = fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("\nuser: alice\n"), "{text}");
    assert!(
        text.ends_with(std::str::from_utf8(MESSAGE).unwrap()),
        "{text}"
    );
    let entry = summary(&outbox, &id);
    assert_eq!(entry.route, route);
    assert_eq!(entry.recipients, ["bob@example.org", "carol@example.org"]);
    assert_eq!(entry.sender, "alice@example.org");
    assert_eq!(entry.size, MESSAGE.len() as u64);
    assert_eq!(entry.attempts, 0);
    assert_eq!(entry.last_error.as_deref(), Some("connection refused"));
    assert!(entry.next_attempt <= SystemTime::now(), "due at once");
    let mut message = Vec::new();
    outbox
        .show(&id)
        .unwrap()
        .message()
        .unwrap()
        .read_to_end(&mut message)
        .unwrap();
    assert_eq!(message, MESSAGE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.0.join("state")), 0o700, "created parents too");
        assert_eq!(mode(&path), 0o600);
    }
    let bad = Route::new("smtp.example.org", 465, Security::ImplicitTls).with_user("a\r\nb");
    let error = outbox
        .enqueue(&envelope(&["bob@example.org"]), &mut &MESSAGE[..], bad, "")
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("user contains a control character"),
        "{error}"
    );
}

/// Reads a message in small pieces and, at every read, records what the
/// spool shows under final names.
struct Watching<'a> {
    message: &'a [u8],
    dir: &'a Dir,
    /// How many entries were visible at each read.
    seen_entries: Vec<usize>,
    seen_temporaries: usize,
    fail_after: Option<usize>,
}

impl Read for Watching<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.seen_entries.push(self.dir.files(Folder::Queue).len());
        self.seen_temporaries += fs::read_dir(&self.dir.0)
            .unwrap()
            .filter(|item| {
                item.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count();
        if self
            .fail_after
            .is_some_and(|limit| self.message.len() <= limit)
        {
            return Err(io::Error::other("the pipe broke"));
        }
        let take = buf.len().min(7).min(self.message.len());
        buf[..take].copy_from_slice(&self.message[..take]);
        self.message = &self.message[take..];
        Ok(take)
    }
}

#[test]
fn no_partial_entry_is_ever_visible_under_its_final_name() {
    let dir = Dir::new();
    let outbox = dir.outbox();
    let big: Vec<u8> = MESSAGE.iter().copied().cycle().take(500).collect();
    let mut source = Watching {
        message: &big,
        dir: &dir,
        seen_entries: Vec::new(),
        seen_temporaries: 0,
        fail_after: None,
    };
    let route = route_to(465);
    let id = outbox
        .enqueue(
            &envelope(&["bob@example.org"]),
            &mut source,
            route.clone(),
            "",
        )
        .unwrap();
    assert!(source.seen_entries.len() > 10, "read in pieces");
    assert!(
        source.seen_entries.iter().all(|count| *count == 0),
        "an entry appeared before it was complete: {:?}",
        source.seen_entries
    );
    assert!(
        source.seen_temporaries > 10,
        "written under a temporary name"
    );
    assert_eq!(dir.files(Folder::Queue), [id.file_name()]);
    assert_eq!(summary(&outbox, &id).size, 500);
    // A source that fails midway leaves nothing behind: no entry, no
    // temporary file.
    let mut failing = Watching {
        message: &big,
        dir: &dir,
        seen_entries: Vec::new(),
        seen_temporaries: 0,
        fail_after: Some(300),
    };
    let error = outbox
        .enqueue(&envelope(&["bob@example.org"]), &mut failing, route, "")
        .unwrap_err();
    assert!(matches!(error, OutboxError::ReadMessage(_)), "{error}");
    assert!(error.to_string().contains("nothing was queued"), "{error}");
    assert!(
        failing.seen_entries.iter().all(|count| *count == 1),
        "only the first entry, at every read: {:?}",
        failing.seen_entries
    );
    assert_eq!(dir.files(Folder::Queue), [id.file_name()]);
    let leftovers: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|item| item.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn flush_sends_over_one_connection_and_removes_only_what_was_accepted() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let server = server_with(&[]);
    let route = route_to(server.port());
    let ids: Vec<EntryId> = ["bob@example.org", "carol@example.org", "dave@example.org"]
        .iter()
        .zip(0..)
        .map(|(to, second)| {
            enqueue_at(
                &outbox,
                &[to],
                route.clone(),
                t0() + Duration::from_secs(second),
            )
        })
        .collect();
    let connects = Cell::new(0);
    let report = outbox.flush(
        connector(&server, &connects),
        true,
        t0() + Duration::from_secs(10),
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.sent(), 3);
    assert_eq!(report.still_queued(), 0);
    assert_eq!(connects.get(), 1);
    assert_eq!(server.connections(), 1, "one connection for one route");
    let received: Vec<Vec<String>> = server.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(
        received,
        [
            ["bob@example.org"],
            ["carol@example.org"],
            ["dave@example.org"]
        ]
    );
    assert_eq!(server.messages()[0].data, MESSAGE);
    let reported: Vec<&EntryId> = report.entries.iter().map(|entry| &entry.id).collect();
    assert_eq!(reported, ids.iter().collect::<Vec<_>>(), "oldest first");
    assert!(dir.files(Folder::Queue).is_empty());
    assert!(outbox.list().unwrap().is_empty());
    // Nothing left: a second flush neither connects nor reports.
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert!(report.entries.is_empty());
    assert_eq!(connects.get(), 1);
}

#[test]
fn a_temporary_failure_backs_off_exponentially_and_deterministically() {
    let dir = Dir::new();
    let mut outbox = Outbox::open(&dir.0)
        .unwrap()
        .with_jitter(Jitter::fixed(0.5));
    let port = closed_port();
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(port), t0());
    let server = server_with(&[]);
    let connects = Cell::new(0);
    let mut now = t0();
    let mut delays = Vec::new();
    for attempt in 1..=4u32 {
        let report = outbox.flush(connector(&server, &connects), true, now);
        let [entry] = &report.entries[..] else {
            panic!("{report:?}")
        };
        let Outcome::Queued(retry) = &entry.outcome else {
            panic!("{entry:?}")
        };
        assert!(
            matches!(*retry.error, Error::Connect { .. }),
            "{}",
            retry.error
        );
        assert!(retry.error.is_transient());
        assert_eq!(retry.attempts, attempt);
        let recorded = summary(&outbox, &id);
        assert_eq!(recorded.attempts, attempt);
        assert_eq!(recorded.next_attempt, retry.next_attempt);
        assert!(recorded.last_error.unwrap().contains("cannot connect"));
        delays.push(retry.next_attempt.duration_since(now).unwrap().as_secs());
        // Not due a second before; due at the time.
        let early = retry.next_attempt - Duration::from_secs(1);
        let report = outbox.flush(connector(&server, &connects), true, early);
        assert!(
            matches!(report.entries[0].outcome, Outcome::Skipped(Skip::NotDue(due)) if due == retry.next_attempt),
            "{report:?}"
        );
        now = retry.next_attempt;
    }
    // 1, 2, 4, 8 minutes, each less 12.5 % (half of the 25 % jitter).
    assert_eq!(delays, [52, 105, 210, 420]);
    assert_eq!(connects.get(), 4, "only due entries are attempted");
    assert!(server.messages().is_empty());
}

#[test]
fn flushing_everything_ignores_the_back_off_and_an_unreachable_route_is_tried_once() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let port = closed_port();
    for to in ["bob@example.org", "carol@example.org", "dave@example.org"] {
        enqueue_at(&outbox, &[to], route_to(port), t0());
    }
    let server = server_with(&[]);
    let connects = Cell::new(0);
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert_eq!(report.still_queued(), 3);
    assert_eq!(connects.get(), 1, "the route failed once; not tried again");
    // Everything, now, whatever the back-off says.
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert_eq!(report.still_queued(), 3);
    assert_eq!(connects.get(), 2);
    let attempts: Vec<u32> = outbox
        .list()
        .unwrap()
        .iter()
        .map(|listed| match listed {
            Listed::Entry(entry) => entry.attempts,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(attempts, [2, 2, 2]);
}

#[test]
fn a_refused_password_keeps_the_entry_queued_for_when_it_is_fixed() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let server = server_with(&[]);
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(server.port()), t0());
    let ca = server.ca_pem();
    let wrong = |route: &Route| {
        Client::builder(&route.host)
            .port(route.port)
            .system_roots(false)
            .add_root_certificates_pem(ca.as_bytes())?
            .credentials(Credentials::new(USER, "wrong"))
            .build()?
            .connect()
    };
    let report = outbox.flush(wrong, false, t0());
    let Outcome::Queued(retry) = &report.entries[0].outcome else {
        panic!("{report:?}")
    };
    assert!(retry.error.is_authentication_failure(), "{}", retry.error);
    assert!(!retry.error.is_transient());
    assert_eq!(summary(&outbox, &id).attempts, 1);
    let connects = Cell::new(0);
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert_eq!(report.sent(), 1, "{report:?}");
}

#[test]
fn a_permanent_refusal_moves_the_entry_to_failed() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let server = server_with(&[Fault::Reply {
        stage: Stage::DataEnd,
        code: 554,
        text: "5.7.1 rejected as spam".into(),
    }]);
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(server.port()), t0());
    let connects = Cell::new(0);
    let report = outbox.flush(connector(&server, &connects), true, t0());
    let Outcome::Failed(set_aside) = &report.entries[0].outcome else {
        panic!("{report:?}")
    };
    assert!(
        set_aside
            .error
            .to_string()
            .contains("554 5.7.1 rejected as spam")
    );
    assert_eq!(
        set_aside.path.as_deref(),
        Some(&*dir.0.join("failed").join(id.file_name()))
    );
    assert_eq!(report.set_aside(), 1);
    assert!(dir.files(Folder::Queue).is_empty());
    assert_eq!(dir.files(Folder::Failed), [id.file_name()]);
    let failed = summary(&outbox, &id);
    assert_eq!(failed.folder, Folder::Failed);
    assert_eq!(failed.attempts, 1);
    assert!(failed.last_error.unwrap().contains("rejected as spam"));
    // Never retried.
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert!(report.entries.is_empty());
    assert_eq!(connects.get(), 1);
}

#[test]
fn a_partial_delivery_keeps_only_the_recipients_refused_for_now() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let server = server_with(&[
        Fault::RejectRecipient {
            address: "busy@example.org".into(),
            code: 450,
            text: "4.2.1 mailbox busy".into(),
        },
        Fault::RejectRecipient {
            address: "gone@example.org".into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        },
    ]);
    let recipients = ["bob@example.org", "busy@example.org", "gone@example.org"];
    let id = enqueue_at(&outbox, &recipients, route_to(server.port()), t0());
    let connects = Cell::new(0);
    let report = outbox.flush(connector(&server, &connects), true, t0());
    let Outcome::Partial(partial) = &report.entries[0].outcome else {
        panic!("{report:?}")
    };
    let addresses = |outcomes: Vec<&RecipientOutcome>| {
        outcomes
            .into_iter()
            .map(|outcome| outcome.address.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(addresses(partial.accepted().collect()), ["bob@example.org"]);
    assert_eq!(
        addresses(partial.refused_for_now().collect()),
        ["busy@example.org"]
    );
    assert_eq!(
        addresses(partial.refused_for_good().collect()),
        ["gone@example.org"]
    );
    assert!(matches!(
        partial.remaining,
        Some(Remaining::Queued { attempts: 1, .. })
    ));
    assert_eq!(server.messages()[0].rcpt_to, ["bob@example.org"]);
    let kept = summary(&outbox, &id);
    assert_eq!(kept.recipients, ["busy@example.org"]);
    assert!(kept.last_error.unwrap().contains("450 4.2.1 mailbox busy"));
    let failed_id = id.split(1);
    assert_eq!(
        partial.failed.as_deref(),
        Some(&*dir.0.join("failed").join(failed_id.file_name()))
    );
    let failed = summary(&outbox, &failed_id);
    assert_eq!(failed.recipients, ["gone@example.org"]);
    assert!(
        failed
            .last_error
            .unwrap()
            .contains("550 5.1.1 no such user")
    );
    assert_eq!(report.still_queued(), 1);
    assert_eq!(report.set_aside(), 1);
    // The next attempt goes to busy@ alone.
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert!(
        matches!(report.entries[0].outcome, Outcome::Queued(_)),
        "{report:?}"
    );
    assert_eq!(server.messages().len(), 1, "bob got it once");
}

#[test]
fn an_entry_failing_after_the_maximum_age_is_moved_to_undeliverable() {
    let dir = Dir::new();
    let mut outbox = dir.outbox().with_retry_policy(RetryPolicy {
        max_age: Duration::from_secs(3600),
        ..RetryPolicy::default()
    });
    let port = closed_port();
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(port), t0());
    let server = server_with(&[]);
    let connects = Cell::new(0);
    let report = outbox.flush(
        connector(&server, &connects),
        true,
        t0() + Duration::from_secs(3599),
    );
    assert!(matches!(report.entries[0].outcome, Outcome::Queued(_)));
    let report = outbox.flush(
        connector(&server, &connects),
        false,
        t0() + Duration::from_secs(3600),
    );
    let Outcome::Undeliverable(set_aside) = &report.entries[0].outcome else {
        panic!("{report:?}")
    };
    assert!(set_aside.error.to_string().contains("cannot connect"));
    assert_eq!(dir.files(Folder::Undeliverable), [id.file_name()]);
    assert!(dir.files(Folder::Queue).is_empty());
    let kept = summary(&outbox, &id);
    assert_eq!((kept.folder, kept.attempts), (Folder::Undeliverable, 2));
    // An old entry that goes through is simply sent: the age matters only
    // after a failure.
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(server.port()), t0());
    let report = outbox.flush(
        connector(&server, &connects),
        true,
        t0() + Duration::from_secs(86_400),
    );
    assert!(
        matches!(report.entries[0].outcome, Outcome::Sent(_)),
        "{report:?}"
    );
    assert!(outbox.show(&id).is_err());
}

#[test]
fn damaged_entries_are_set_aside_in_corrupt_never_deleted() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let server = server_with(&[]);
    let good = enqueue_at(&outbox, &["bob@example.org"], route_to(server.port()), t0());
    let good_path = dir.0.join(good.file_name());
    let bytes = fs::read(&good_path).unwrap();
    // Truncated (the message is cut short), a bad header, and an empty file.
    let truncated = "20251128T101500-000000000001.entry";
    fs::write(dir.0.join(truncated), &bytes[..bytes.len() - 3]).unwrap();
    let garbage = "20251128T101500-000000000002.entry";
    fs::write(dir.0.join(garbage), b"this is not an entry\n\nat all").unwrap();
    let empty = "20251128T101500-000000000003.entry";
    fs::write(dir.0.join(empty), b"").unwrap();
    let listed = outbox.list().unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|item| matches!(item, Listed::Unreadable { .. }))
            .count(),
        3,
        "{listed:?}"
    );
    let connects = Cell::new(0);
    let report = outbox.flush(connector(&server, &connects), true, t0());
    let reasons: Vec<String> = report
        .entries
        .iter()
        .filter_map(|entry| match &entry.outcome {
            Outcome::Corrupt { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{report:?}");
    assert!(reasons[0].contains("truncated"), "{reasons:?}");
    assert!(reasons[1].contains("first line"), "{reasons:?}");
    assert!(reasons[2].contains("empty"), "{reasons:?}");
    assert_eq!(report.sent(), 1, "the good one still went");
    assert_eq!(server.messages().len(), 1);
    assert_eq!(dir.files(Folder::Corrupt), [truncated, garbage, empty]);
    assert_eq!(
        fs::read(dir.0.join("corrupt").join(truncated)).unwrap(),
        &bytes[..bytes.len() - 3],
        "kept as it was found"
    );
    assert!(dir.files(Folder::Queue).is_empty());
}

#[test]
fn a_lock_held_by_another_flusher_excludes_the_entry() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let server = server_with(&[]);
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(server.port()), t0());
    // Another process's lock: a separate open file description.
    let other = fs::File::open(dir.0.join(id.file_name())).unwrap();
    other.try_lock().unwrap();
    let connects = Cell::new(0);
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert!(
        matches!(report.entries[0].outcome, Outcome::Skipped(Skip::Busy)),
        "{report:?}"
    );
    assert_eq!(connects.get(), 0);
    assert!(server.messages().is_empty());
    assert!(matches!(outbox.remove(&id), Err(OutboxError::Busy { .. })));
    drop(other);
    let report = outbox.flush(connector(&server, &connects), false, t0());
    assert_eq!(report.sent(), 1);
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn an_entry_replaced_while_waiting_for_its_lock_is_not_sent_from_the_old_file() {
    let dir = Dir::new();
    let outbox = dir.outbox();
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(465), t0());
    let path = dir.0.join(id.file_name());
    // Opened before it was delivered (removed) by someone else.
    let stale = fs::File::open(&path).unwrap();
    fs::remove_file(&path).unwrap();
    drop(stale);
    assert!(matches!(outbox.spool.lock(&id, &path).unwrap(), Lock::Gone));
    // Opened before it was rewritten: the lock is taken on a file that is
    // no longer the entry.
    let id = enqueue_at(&outbox, &["bob@example.org"], route_to(465), t0());
    let path = dir.0.join(id.file_name());
    let old = fs::read(&path).unwrap();
    let replacement = dir.0.join("replacement");
    fs::write(&replacement, &old).unwrap();
    let file = fs::File::open(&path).unwrap();
    fs::rename(&replacement, &path).unwrap();
    file.try_lock().unwrap();
    assert!(!spool_still_named(&file, &path));
}

fn spool_still_named(file: &fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let named = fs::metadata(path).unwrap();
        let open = file.metadata().unwrap();
        named.ino() == open.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        false
    }
}

#[test]
fn temporary_files_are_removed_only_when_old_and_unlocked() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let crashed = dir.0.join(".tmp-crashed");
    fs::write(&crashed, b"half an entry").unwrap();
    let writing = dir.0.join(".tmp-writing");
    fs::write(&writing, b"being written").unwrap();
    let writer = fs::File::open(&writing).unwrap();
    writer.try_lock().unwrap();
    let server = server_with(&[]);
    let connects = Cell::new(0);
    // Just written: kept, even unlocked.
    let report = outbox.flush(connector(&server, &connects), true, SystemTime::now());
    assert!(report.temporaries_removed.is_empty());
    assert!(crashed.exists() && writing.exists());
    // Two hours later: the crashed one goes, the locked one stays.
    let later = SystemTime::now() + Duration::from_secs(7200);
    let report = outbox.flush(connector(&server, &connects), true, later);
    assert_eq!(report.temporaries_removed, std::slice::from_ref(&crashed));
    assert!(!crashed.exists());
    assert!(writing.exists(), "a writer still holds it");
    drop(writer);
}

#[test]
fn list_show_and_remove() {
    let dir = Dir::new();
    let outbox = dir.outbox();
    let first = enqueue_at(&outbox, &["bob@example.org"], route_to(465), t0());
    let second = enqueue_at(
        &outbox,
        &["carol@example.org", "dave@example.org"],
        route_to(587),
        t0() + Duration::from_secs(1),
    );
    let listed = outbox.list().unwrap();
    let ids: Vec<&EntryId> = listed
        .iter()
        .map(|item| match item {
            Listed::Entry(entry) => &entry.id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, [&first, &second]);
    assert_eq!(summary(&outbox, &second).recipients.len(), 2);
    assert_eq!(outbox.remove(&first).unwrap(), Folder::Queue);
    assert!(matches!(
        outbox.show(&first),
        Err(OutboxError::NotFound { .. })
    ));
    assert!(matches!(
        outbox.remove(&first),
        Err(OutboxError::NotFound { .. })
    ));
    assert_eq!(outbox.list().unwrap().len(), 1);
    let error = EntryId::parse("../../etc/passwd").unwrap_err();
    assert!(
        error.to_string().contains("not an outbox entry id"),
        "{error}"
    );
}

/// A client of `server` as the CLI builds it.
fn client_of(server: &TestServer) -> crate::ClientBuilder {
    Client::builder("localhost")
        .port(server.port())
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .credentials(Credentials::new(USER, PASSWORD))
        .timeouts(Timeouts::uniform(Duration::from_secs(10)))
}

#[test]
fn send_or_queue_stores_first_and_keeps_only_what_may_succeed_later() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let send = |outbox: &mut Outbox, server: &TestServer| {
        outbox
            .send_or_queue(
                &client_of(server).build().unwrap(),
                &envelope(&["bob@example.org"]),
                &mut &MESSAGE[..],
                t0(),
            )
            .unwrap()
    };
    // Sent: nothing stays.
    let server = server_with(&[]);
    let report = send(&mut outbox, &server);
    assert!(matches!(report.outcome, Outcome::Sent(_)), "{report:?}");
    assert!(dir.files(Folder::Queue).is_empty());
    assert_eq!(server.messages()[0].data, MESSAGE);
    // Refused for good: removed, not set aside (the caller reports it).
    let refusing = server_with(&[Fault::Reply {
        stage: Stage::MailFrom,
        code: 550,
        text: "5.7.1 not allowed".into(),
    }]);
    let report = send(&mut outbox, &refusing);
    let Outcome::Failed(failed) = &report.outcome else {
        panic!("{report:?}")
    };
    assert_eq!(failed.path, None);
    assert!(outbox.list().unwrap().is_empty(), "{:?}", outbox.list());
    // A refused password is not temporary either: not kept.
    let client = client_of(&server)
        .credentials(Credentials::new(USER, "wrong"))
        .build()
        .unwrap();
    let report = outbox
        .send_or_queue(
            &client,
            &envelope(&["bob@example.org"]),
            &mut &MESSAGE[..],
            t0(),
        )
        .unwrap();
    let Outcome::Failed(failed) = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(failed.error.is_authentication_failure(), "{}", failed.error);
    assert!(outbox.list().unwrap().is_empty(), "{:?}", outbox.list());
    // Refused for now: queued, attempt 1, due after the first back-off,
    // with the client's route.
    let busy = server_with(&[Fault::Reply {
        stage: Stage::MailFrom,
        code: 451,
        text: "4.3.0 try later".into(),
    }]);
    let report = send(&mut outbox, &busy);
    let Outcome::Queued(retry) = &report.outcome else {
        panic!("{report:?}")
    };
    assert_eq!(retry.attempts, 1);
    assert_eq!(retry.next_attempt, t0() + Duration::from_secs(60));
    assert_eq!(dir.files(Folder::Queue), [report.id.file_name()]);
    assert_eq!(summary(&outbox, &report.id).route, route_to(busy.port()));
    assert!(busy.messages().is_empty());
}

/// An Ed25519 DKIM key made by openssl.
fn dkim_signer(dir: &Dir) -> crate::DkimSigner {
    fs::create_dir_all(&dir.0).unwrap();
    let key = dir.0.join("dkim.pem");
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    crate::DkimSigner::from_pem_file(&key, "s1", "example.org").unwrap()
}

#[test]
fn a_message_is_signed_once_when_queued_and_sent_as_stored() {
    let dir = Dir::new();
    let mut outbox = dir.outbox();
    let busy = server_with(&[Fault::Reply {
        stage: Stage::MailFrom,
        code: 451,
        text: "4.3.0 try later".into(),
    }]);
    let signer = dkim_signer(&dir);
    let client = client_of(&busy).dkim(signer.clone()).build().unwrap();
    let report = outbox
        .send_or_queue(
            &client,
            &envelope(&["bob@example.org"]),
            &mut &MESSAGE[..],
            t0(),
        )
        .unwrap();
    assert!(matches!(report.outcome, Outcome::Queued(_)), "{report:?}");
    let mut stored = Vec::new();
    outbox
        .show(&report.id)
        .unwrap()
        .message()
        .unwrap()
        .read_to_end(&mut stored)
        .unwrap();
    assert!(
        stored.starts_with(b"DKIM-Signature:"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    assert!(stored.ends_with(MESSAGE));
    // Flushed through a client that signs too: sent as stored, one signature.
    let server = server_with(&[]);
    let connects = Cell::new(0);
    let ca = server.ca_pem();
    let report = outbox.flush(
        |route| {
            connects.set(connects.get() + 1);
            Client::builder(&route.host)
                .port(server.port())
                .system_roots(false)
                .add_root_certificates_pem(ca.as_bytes())?
                .credentials(Credentials::new(USER, PASSWORD))
                .dkim(signer.clone())
                .build()?
                .connect()
        },
        false,
        t0(),
    );
    assert_eq!(report.sent(), 1, "{report:?}");
    let received = &server.messages()[0].data;
    assert_eq!(received, &stored);
    let signatures = String::from_utf8_lossy(received)
        .matches("DKIM-Signature:")
        .count();
    assert_eq!(signatures, 1);
}

#[test]
fn the_default_directory_follows_xdg_state_home_else_home() {
    let os = |text: &str| Some(std::ffi::OsString::from(text));
    assert_eq!(
        default_dir_from(os("/state"), os("/home/alice")).unwrap(),
        Path::new("/state/tls-mailer/outbox")
    );
    assert_eq!(
        default_dir_from(None, os("/home/alice")).unwrap(),
        Path::new("/home/alice/.local/state/tls-mailer/outbox")
    );
    // Relative values are ignored (XDG base directory specification).
    assert_eq!(
        default_dir_from(os("state"), os("/home/alice")).unwrap(),
        Path::new("/home/alice/.local/state/tls-mailer/outbox")
    );
    let error = default_dir_from(os(""), None).unwrap_err();
    assert!(
        error.to_string().contains("XDG_STATE_HOME nor HOME"),
        "{error}"
    );
}
