//! What the CLI test files share: a private directory per test, running the
//! binary with input and environment, and reading its output.
#![allow(dead_code)] // each test file uses part of it

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A directory of its own for one test, removed afterwards.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "tls-mailer-{label}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    /// Writes `content` to `name` in the directory; its path.
    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.path.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs `tls-mailer ARGS` with `stdin` and `env` (TLS_MAILER_PASSWORD is
/// always removed, so the caller's own never leaks in, and XDG_CONFIG_HOME
/// points at no configuration file unless `env` sets it, so the caller's
/// accounts do not either).
pub fn tls_mailer(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_tls-mailer")),
        args,
        stdin,
        env,
    )
}

/// Runs `program ARGS` (the binary, a link to it, or a wrapper such as
/// `keyctl session - BINARY`) as [`tls_mailer`] runs the binary. The input
/// is written from a thread, so a large message cannot deadlock against
/// the output.
pub fn run(mut program: Command, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    program
        .args(args)
        .env_remove("TLS_MAILER_PASSWORD")
        .env("XDG_CONFIG_HOME", "/nonexistent/tls-mailer-tests");
    for (key, value) in env {
        program.env(key, value);
    }
    let mut child = program
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `COMMAND --host localhost --port PORT --ca-file CA --user USER
/// --password-env VAR --timeout 10`: how a test points a command at a
/// loopback server.
pub fn connection_args(command: &str, port: u16, ca: &str, user: &str, env: &str) -> Vec<String> {
    let port = port.to_string();
    [
        command,
        "--host",
        "localhost",
        "--port",
        &port,
        "--ca-file",
        ca,
        "--user",
        user,
        "--password-env",
        env,
        "--timeout",
        "10",
    ]
    .map(str::to_owned)
    .to_vec()
}
