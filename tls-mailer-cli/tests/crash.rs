#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The outbox survives `kill -9`: messages are queued, `tls-mailer queue
//! flush` is killed at random points again and again, then a last flush
//! runs to the end, and every message must have arrived (at least once)
//! with nothing left in the spool and nothing set aside as corrupt.
//!
//! The one duplicate window: the server accepted a message (its final
//! 250) and the flush was killed before it removed the entry. Those are
//! counted, and printed with the seed: `TLS_MAILER_CRASH_SEED=N` replays
//! the same kill schedule (the timings of a run vary, so the outcome may).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tls_mailer::outbox::{Outbox, Route};
use tls_mailer::{Envelope, Security};
use tls_mailer_testkit::TestServer;

use common::TestDir;

const USER: &str = "alice";
const PASSWORD: &str = "crash-test-password";
const MESSAGES: usize = 100;
const KILLS: usize = 30;

/// SplitMix64: small, seedable, good enough for a schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|listing| {
            listing
                .filter(|item| {
                    item.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".entry")
                })
                .count()
        })
        .unwrap_or(0)
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |listing| listing.count())
}

#[test]
fn kill_9_at_random_points_never_loses_a_message() {
    let seed = std::env::var("TLS_MAILER_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed: {seed} (TLS_MAILER_CRASH_SEED={seed} replays the schedule)");
    let mut rng = Rng(seed);
    let dir = TestDir::new("crash-test");
    let spool = dir.join("spool");
    let maildir = dir.join("received");
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .maildir(&maildir)
        .start()
        .unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();

    // N messages, each with its own token, of 1 to 16 KiB.
    let outbox = Outbox::open(&spool).unwrap();
    let route = Route::new("localhost", server.port(), Security::ImplicitTls).with_user(USER);
    let tokens: Vec<String> = (0..MESSAGES)
        .map(|n| format!("token-{seed:x}-{n:03}"))
        .collect();
    for token in &tokens {
        let padding = "x".repeat(70);
        let lines = 14 + rng.below(220) as usize;
        let mut message = format!("From: alice@example.org\r\nSubject: {token}\r\n\r\n{token}\r\n");
        for _ in 0..lines {
            message.push_str(&padding);
            message.push_str("\r\n");
        }
        let envelope = Envelope::new("alice@example.org", ["bob@example.org"]).unwrap();
        outbox
            .enqueue(
                &envelope,
                &mut message.as_bytes(),
                route.clone(),
                "queued by the crash test",
            )
            .unwrap();
    }
    assert_eq!(entries(&spool), MESSAGES);
    drop(outbox);

    let flush = || {
        Command::new(env!("CARGO_BIN_EXE_tls-mailer"))
            .args(["queue", "flush", "--spool"])
            .arg(&spool)
            .arg("--ca-file")
            .arg(&ca)
            .args(["--password-env", "TEST_PASSWORD", "--timeout", "10"])
            .env("TEST_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    let mut kills = 0;
    let mut runs = 0;
    let mut finished_before_the_kill = 0;
    // A third of the kills at a random time in the first 80 ms (the start:
    // TLS, AUTH, the first messages); the others at a random point of the
    // 1st to 3rd message after the start (within 1.5 ms of the server's
    // acceptance of the one before, about one message's time here), which
    // covers the window between a 250 and the entry's removal.
    while kills < KILLS && entries(&spool) > 0 {
        let received_before = files(&maildir);
        let mut child = flush();
        runs += 1;
        if rng.below(3) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(80_000)));
        } else {
            let target = received_before + 1 + rng.below(3) as usize;
            let deadline = Instant::now() + Duration::from_secs(10);
            while files(&maildir) < target && Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            std::thread::sleep(Duration::from_micros(rng.below(1_500)));
        }
        if child.try_wait().unwrap().is_some() {
            finished_before_the_kill += 1;
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let killed_at = entries(&spool);
    // Then to the end, without a kill.
    let status = flush().wait().unwrap();
    assert!(status.success(), "the final flush exited with {status}");
    let elapsed = started.elapsed();

    // Nothing left, nothing set aside, and every message arrived.
    assert_eq!(entries(&spool), 0, "entries left in the spool");
    for folder in ["corrupt", "failed", "undeliverable"] {
        assert_eq!(files(&spool.join(folder)), 0, "entries in {folder}/");
    }
    let received = server.messages();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for message in &received {
        let text = std::str::from_utf8(&message.data).unwrap();
        let token = tokens
            .iter()
            .find(|token| text.contains(&format!("Subject: {token}\r\n")))
            .unwrap_or_else(|| panic!("a message the test did not queue: {text:.80}"));
        *seen.entry(token.as_str()).or_default() += 1;
    }
    let lost: Vec<&String> = tokens
        .iter()
        .filter(|token| !seen.contains_key(token.as_str()))
        .collect();
    let duplicates = received.len() - seen.len();
    println!(
        "crash test: seed {seed}: {MESSAGES} messages, {runs} flushes, {kills} killed with SIGKILL \
         ({finished_before_the_kill} finished before their kill), {killed_at} entries left when the \
         kills stopped; {} received, {duplicates} duplicates, {} lost; {:.1} s",
        received.len(),
        lost.len(),
        elapsed.as_secs_f64()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(
        kills > 0,
        "no flush was ever killed: the schedule tested nothing"
    );
}
