#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! `tls-mailer completions` and `tls-mailer man`: generated from the clap
//! definitions, so every flag is in them.

mod common;

use std::process::Command;

use common::{TestDir, code, stderr, stdout};

fn tls_mailer(args: &[&str]) -> std::process::Output {
    common::tls_mailer(args, b"", &[])
}

#[test]
fn bash_completion_is_valid_bash_and_knows_every_command_and_flag() {
    let output = tls_mailer(&["completions", "bash"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let script = stdout(&output);
    for word in [
        "send",
        "batch",
        "queue",
        "config",
        "--dsn-notify",
        "--binary",
        "--auth-mechanism",
    ] {
        assert!(script.contains(word), "{word} missing");
    }
    let dir = TestDir::new("completions");
    let path = dir.file("tls-mailer.bash", script.as_bytes());
    let check = Command::new("bash").args(["-n", &path]).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = tls_mailer(&["completions", shell]);
        assert_eq!(code(&output), 0, "{shell}: {}", stderr(&output));
        assert!(stdout(&output).contains("dsn-notify"), "{shell}");
    }
    let output = tls_mailer(&["completions", "tcsh"]);
    assert_eq!(code(&output), 64);
    assert!(stderr(&output).contains("bash"), "{}", stderr(&output));
}

#[test]
fn man_prints_the_main_page_and_writes_one_per_command() {
    let output = tls_mailer(&["man"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let page = stdout(&output);
    assert!(page.contains(".TH tls-mailer 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");

    let dir = TestDir::new("man");
    let out = dir.path.join("man1");
    let output = tls_mailer(&["man", "--dir", out.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    for command in ["send", "compose", "demo", "queue", "batch", "config"] {
        let page = std::fs::read_to_string(out.join(format!("tls-mailer-{command}.1"))).unwrap();
        assert!(
            page.contains(&format!(".TH tls-mailer-{command} 1")),
            "{page}"
        );
        assert!(
            page.contains(&format!("tls\\-mailer {command}")),
            "{command}: synopsis"
        );
    }
    let send = std::fs::read_to_string(out.join("tls-mailer-send.1")).unwrap();
    assert!(send.contains("\\-\\-dsn\\-notify") && send.contains("\\-\\-binary"));
    // Each written page is named on stdout, for install scripts.
    assert!(stdout(&output).lines().count() >= 7, "{}", stdout(&output));
}
