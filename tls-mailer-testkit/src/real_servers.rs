//! For the real-server suites: reading the env files the scripts in
//! tests/servers write, and reading back delivered messages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The settings of one real server, from `<dir>/<name>.env`.
///
/// The suites that call this are `#[ignore]`d, so a plain `cargo test` lists
/// them as ignored; whoever runs them (`--include-ignored`, as CI does) asked
/// for the servers, and a missing one is a failure, never a silent pass.
///
/// # Panics
/// When the env file is missing: the server is not up.
pub fn server_env(name: &str) -> HashMap<String, String> {
    let dir = std::env::var("TLS_MAILER_SERVERS_DIR")
        .unwrap_or_else(|_| "/tmp/tls-mailer-servers".into());
    let path = Path::new(&dir).join(format!("{name}.env"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        panic!(
            "{} is missing: {name} is not up; start it with bash tests/servers/{name}-up.sh \
             (these tests are ignored unless asked for with --include-ignored)",
            path.display()
        );
    };
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// A token unique to this test run, to find our messages among others.
pub fn token(label: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{label}-{}-{n}-{nanos}", std::process::id())
}

/// Every delivered file under `dir` (recursively, Maildir `tmp/` left out)
/// whose content contains `needle`,
/// waiting up to `timeout` until there are `count` of them.
pub fn wait_for_files(
    dir: &Path,
    needle: &[u8],
    count: usize,
    timeout: Duration,
) -> Vec<(PathBuf, Vec<u8>)> {
    let started = Instant::now();
    loop {
        let found = files_containing(dir, needle);
        if found.len() >= count || started.elapsed() > timeout {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                // A Maildir's tmp/ holds messages still being written.
                if path.file_name().is_some_and(|name| name != "tmp") {
                    stack.push(path);
                }
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|window| window == needle)
            {
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    found
}

/// What a Maildir stores for a message sent as `sent`: lines end in LF.
pub fn as_stored(sent: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(sent.len());
    let mut index = 0;
    while index < sent.len() {
        if sent[index] == b'\r' && sent.get(index + 1) == Some(&b'\n') {
            index += 1;
            continue;
        }
        stored.push(sent[index]);
        index += 1;
    }
    if !stored.ends_with(b"\n") {
        stored.push(b'\n');
    }
    stored
}

/// The message part of a stored file: what follows the trace headers the
/// server prepended (Return-Path, Delivered-To, Received, ...). Our messages
/// in these tests start with an `X-Test-Token:` header (the whole file is
/// returned when there is none).
pub fn after_prepended_headers(stored: &[u8]) -> &[u8] {
    let marker = b"X-Test-Token:";
    let start = stored
        .windows(marker.len())
        .position(|window| window == marker)
        .unwrap_or(0);
    &stored[start..]
}
