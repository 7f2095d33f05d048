#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The sendmail drop-in against the testkit server over loopback: `-t -oi`
//! piped in (also through a link named `sendmail`, as cron runs it),
//! argument recipients, -f, -F, Bcc never sent, the lone dot, -N/-R/-V on
//! the wire, the account chosen by -a and -f, exit codes, a scripted `-bs`
//! dialogue, and a real `git send-email --sendmail-cmd`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use common::{TestDir, code, stderr, stdout};
use tls_mailer_testkit::{Fault, Stage, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pässword";
const BIN: &str = env!("CARGO_BIN_EXE_tls-mailer");

const MESSAGE: &str = "From: Alice <alice@example.org>\nTo: bob@example.org\nCc: carol@example.org\n\
                       Bcc: hidden@example.org,\n secret@example.org\nSubject: sendmail\n\nHello\n";

/// A server and a directory whose `tls-mailer/config.toml` has the
/// default account `main` for it (from `cron@example.org`), and an
/// account `other` for a second server when there is one.
struct Setup {
    dir: TestDir,
    server: TestServer,
    other: Option<TestServer>,
}

impl Setup {
    fn new() -> Self {
        Self::with(
            TestServer::builder().auth(USER, PASSWORD).start().unwrap(),
            None,
        )
    }

    fn with(server: TestServer, other: Option<TestServer>) -> Self {
        let setup = Self {
            dir: TestDir::new("sendmail-test"),
            server,
            other,
        };
        let mut ca = setup.server.ca_pem();
        if let Some(other) = &setup.other {
            ca.push_str(&other.ca_pem());
        }
        let ca = setup.dir.file("ca.pem", ca.as_bytes());
        let mut config = format!(
            "default = \"main\"\n\n[accounts.main]\nhost = \"localhost\"\nport = {}\nuser = \"{USER}\"\n\
             password_env = \"TEST_PASSWORD\"\nfrom = \"Cron <cron@example.org>\"\nca_file = \"{ca}\"\ntimeout = 10\n",
            setup.server.port()
        );
        if let Some(other) = &setup.other {
            config.push_str(&format!(
                "\n[accounts.other]\nhost = \"localhost\"\nport = {}\nuser = \"{USER}\"\n\
                 password_env = \"TEST_PASSWORD\"\nfrom = \"bob@other.example\"\nca_file = \"{ca}\"\ntimeout = 10\n",
                other.port()
            ));
        }
        std::fs::create_dir_all(setup.dir.join("tls-mailer")).unwrap();
        setup.dir.file("tls-mailer/config.toml", config.as_bytes());
        setup
    }

    fn config(&self) -> String {
        self.dir
            .join("tls-mailer/config.toml")
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// The environment every run gets: the password, and the directory as
    /// XDG_CONFIG_HOME, so the account is found as a user's would be.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TEST_PASSWORD", PASSWORD.to_owned()),
            ("XDG_CONFIG_HOME", self.dir.to_str().unwrap().to_owned()),
        ]
    }

    /// `tls-mailer sendmail ARGS` with `stdin`.
    fn sendmail(&self, args: &[&str], stdin: &str) -> Output {
        let mut all = vec!["sendmail"];
        all.extend_from_slice(args);
        self.run(Path::new(BIN), &all, stdin)
    }

    fn run(&self, program: &Path, args: &[&str], stdin: &str) -> Output {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        common::run(Command::new(program), args, stdin.as_bytes(), &env)
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8(data.to_vec()).unwrap()
}

#[test]
fn t_oi_reads_the_recipients_of_the_message_and_never_sends_bcc() {
    let setup = Setup::new();
    // With -oi a lone dot is part of the message.
    let message = MESSAGE.replace("Hello\n", "Hello\n.\nmore\n");
    let output = setup.sendmail(&["-t", "-oi"], &message);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "quiet on success, as sendmail");
    let received = &setup.server.messages()[0];
    assert_eq!(received.mail_from, "cron@example.org", "the account's from");
    assert_eq!(
        received.rcpt_to,
        [
            "bob@example.org",
            "carol@example.org",
            "hidden@example.org",
            "secret@example.org"
        ]
    );
    assert_eq!(
        text(&received.data),
        "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nCc: carol@example.org\r\n\
         Subject: sendmail\r\n\r\nHello\r\n.\r\nmore\r\n"
    );
}

#[test]
fn a_link_named_sendmail_is_sendmail_as_cron_calls_it() {
    let setup = Setup::new();
    let link = setup.dir.join("sendmail");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let output = setup.run(&link, &["-t", "-oi"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // Debian's cron: its own From-less message, the name by -F.
    let cron = "To: root@example.org\nSubject: Cron <root@host> run-parts\n\nall done\n";
    let output = setup.run(
        &link,
        &[
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            "root@example.org",
        ],
        cron,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let messages = setup.server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].rcpt_to.len(), 4);
    assert!(!text(&messages[0].data).contains("hidden@"));
    assert_eq!(messages[1].rcpt_to, ["root@example.org"]);
    assert_eq!(
        text(&messages[1].data),
        "From: CronDaemon <cron@example.org>\r\nTo: root@example.org\r\n\
         Subject: Cron <root@host> run-parts\r\n\r\nall done\r\n"
    );
}

#[test]
fn argument_recipients_with_f_and_f_name() {
    let setup = Setup::new();
    let message = "To: someone@example.org\nSubject: no From\n\nbody\n";
    let output = setup.sendmail(
        &[
            "-f",
            "bounce@example.org",
            "-F",
            "Alice Example",
            "bob@example.org",
            "carol@example.org",
        ],
        message,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &setup.server.messages()[0];
    assert_eq!(received.mail_from, "bounce@example.org");
    assert_eq!(
        received.rcpt_to,
        ["bob@example.org", "carol@example.org"],
        "the To header is not a recipient without -t"
    );
    assert!(
        text(&received.data).starts_with("From: Alice Example <bounce@example.org>\r\nTo: "),
        "{}",
        text(&received.data)
    );
    // A message with a From keeps it; -F names only a From that is added.
    let output = setup.sendmail(&["-fbounce@example.org", "-FIgnored", "-t"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &setup.server.messages()[1];
    assert_eq!(received.mail_from, "bounce@example.org");
    assert!(text(&received.data).starts_with("From: Alice <alice@example.org>\r\n"));
}

#[test]
fn a_lone_dot_ends_the_message_unless_i() {
    let setup = Setup::new();
    let message = "Subject: dots\n\nline one\n..two dots stay\n.\nafter the dot\n";
    let output = setup.sendmail(&["bob@example.org"], message);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output = setup.sendmail(&["-i", "bob@example.org"], message);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let messages = setup.server.messages();
    assert_eq!(
        text(&messages[0].data),
        "From: cron@example.org\r\nSubject: dots\r\n\r\nline one\r\n..two dots stay\r\n"
    );
    assert_eq!(
        text(&messages[1].data),
        "From: cron@example.org\r\nSubject: dots\r\n\r\nline one\r\n..two dots stay\r\n.\r\nafter the dot\r\n"
    );
}

#[test]
fn dsn_flags_reach_the_wire() {
    let setup = Setup::new();
    let output = setup.sendmail(
        &[
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "env-1",
            "bob@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = &setup.server.messages()[0];
    assert!(
        received.mail_params.contains(&"RET=HDRS".to_owned()),
        "{:?}",
        received.mail_params
    );
    assert!(
        received.mail_params.contains(&"ENVID=env-1".to_owned()),
        "{:?}",
        received.mail_params
    );
    assert_eq!(received.rcpt_params[0], ["NOTIFY=SUCCESS,FAILURE"]);
    let output = setup.sendmail(&["-Nnever", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(setup.server.messages()[1].rcpt_params[0], ["NOTIFY=NEVER"]);
}

#[test]
fn the_account_is_a_else_the_one_whose_from_is_f_else_the_default() {
    let other = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let setup = Setup::with(
        TestServer::builder().auth(USER, PASSWORD).start().unwrap(),
        Some(other),
    );
    let other = setup.other.as_ref().unwrap();
    for args in [
        &["bob@example.org"][..],
        &["-f", "bob@other.example", "bob@example.org"],
        &["-a", "other", "bob@example.org"],
        &[
            "--account=main",
            "-f",
            "bob@other.example",
            "bob@example.org",
        ],
    ] {
        let output = setup.sendmail(args, MESSAGE);
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
    }
    let main: Vec<String> = setup
        .server
        .messages()
        .into_iter()
        .map(|m| m.mail_from)
        .collect();
    let others: Vec<String> = other.messages().into_iter().map(|m| m.mail_from).collect();
    assert_eq!(main, ["cron@example.org", "bob@other.example"]);
    assert_eq!(others, ["bob@other.example", "bob@other.example"]);
}

#[test]
fn usage_errors_are_64_and_name_the_problem() {
    let setup = Setup::new();
    let output = setup.sendmail(&["-x", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 64);
    assert!(
        stderr(&output).contains("unknown option -x"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("usage: sendmail"));
    let output = setup.sendmail(&["-oi"], MESSAGE);
    assert_eq!(code(&output), 64);
    assert!(
        stderr(&output).contains("no recipient"),
        "{}",
        stderr(&output)
    );
    let output = setup.sendmail(&["--subject", "x", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 64);
    let output = setup.sendmail(&["-N", "sometimes", "bob@example.org"], MESSAGE);
    assert_eq!(code(&output), 64);
    assert!(
        stderr(&output).contains("-N sometimes"),
        "{}",
        stderr(&output)
    );
    assert!(setup.server.messages().is_empty());
    // No configuration at all: says where to write it.
    let output = common::run(
        Command::new(BIN),
        &["sendmail", "-t"],
        MESSAGE.as_bytes(),
        &[("XDG_CONFIG_HOME", "/nonexistent/tls-mailer-tests")],
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no server to send through"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_partial_delivery_is_67_never_75_and_a_server_down_75() {
    let setup = Setup::with(
        TestServer::builder()
            .auth(USER, PASSWORD)
            .fault(Fault::RejectRecipient {
                address: "carol@example.org".into(),
                code: 450,
                text: "4.2.1 try later".into(),
            })
            .start()
            .unwrap(),
        None,
    );
    let output = setup.sendmail(&["-t", "-oi"], MESSAGE);
    assert_eq!(code(&output), 67, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refused <carol@example.org>"),
        "{}",
        stderr(&output)
    );
    assert_eq!(setup.server.messages()[0].rcpt_to.len(), 3);

    let port = setup.server.port();
    drop(setup);
    let setup = Setup::new();
    let config = std::fs::read_to_string(setup.config())
        .unwrap()
        .replace(&setup.server.port().to_string(), &port.to_string());
    std::fs::write(setup.config(), config).unwrap();
    let output = setup.sendmail(&["-t", "-oi"], MESSAGE);
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    // send's --queue-on-failure keeps it instead.
    let spool = setup.dir.join("outbox");
    let spool = spool.to_str().unwrap();
    let output = setup.sendmail(
        &["-t", "-oi", "--queue-on-failure", "--spool", spool],
        MESSAGE,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stderr(&output).contains("queued as"), "{}", stderr(&output));
    let listed = common::tls_mailer(&["queue", "list", "--spool", spool], b"", &[]);
    assert!(
        stdout(&listed).contains("bob@example.org"),
        "{}",
        stdout(&listed)
    );
}

/// A `-bs` child: its stdin to write the caller's lines, its stdout to
/// read the replies.
struct Dialogue {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Dialogue {
    fn start(setup: &Setup, args: &[&str]) -> Self {
        let mut command = Command::new(BIN);
        command.arg("sendmail").arg("-bs").args(args);
        for (key, value) in setup.env() {
            command.env(key, value);
        }
        let mut child = command
            .env_remove("TLS_MAILER_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            input,
            output,
        }
    }

    /// MAIL FROM `from`, a RCPT TO each of `to` and DATA, each answered as
    /// a dialogue that takes the mail answers (250s, then 354).
    fn start_mail(&mut self, from: &str, to: &[&str]) {
        let mail = self.say(&format!("MAIL FROM:<{from}>"));
        assert!(mail.starts_with("250 "), "{mail}");
        for rcpt in to {
            let reply = self.say(&format!("RCPT TO:<{rcpt}>"));
            assert!(reply.starts_with("250 "), "{rcpt}: {reply}");
        }
        let data = self.say("DATA");
        assert!(data.starts_with("354 "), "{data}");
    }

    /// One whole reply (its lines joined by `\n`).
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                self.output.read_line(&mut line).unwrap() > 0,
                "closed after {lines:?}"
            );
            assert!(line.ends_with("\r\n"), "{line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends `line` (CRLF added) and reads the reply.
    fn say(&mut self, line: &str) -> String {
        self.input
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.input.flush().unwrap();
        self.reply()
    }

    fn finish(self) -> Output {
        drop(self.input);
        self.child.wait_with_output().unwrap()
    }
}

#[test]
fn a_bs_dialogue_relays_each_message_with_the_real_servers_verdict() {
    let setup = Setup::with(
        TestServer::builder()
            .auth(USER, PASSWORD)
            .fault(Fault::RejectRecipient {
                address: "nobody@example.org".into(),
                code: 550,
                text: "5.1.1 <nobody@example.org>: no such user here".into(),
            })
            .start()
            .unwrap(),
        None,
    );
    let mut dialogue = Dialogue::start(&setup, &[]);
    assert!(dialogue.reply().starts_with("220 localhost ESMTP"));
    let ehlo = dialogue.say("EHLO app.example");
    assert!(ehlo.starts_with("250-localhost"), "{ehlo}");
    assert!(
        !ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert!(dialogue.say("STARTTLS").starts_with("502 "));
    assert!(dialogue.say("AUTH PLAIN AGFsaWNl").starts_with("502 "));

    // An RSET drops the first transaction: it never reaches the server.
    assert!(
        dialogue
            .say("MAIL FROM:<dropped@example.org>")
            .starts_with("250 ")
    );
    assert!(
        dialogue
            .say("RCPT TO:<bob@example.org>")
            .starts_with("250 ")
    );
    assert!(dialogue.say("RSET").starts_with("250 "));

    // One message; the 250 is the real server's own reply.
    dialogue.start_mail(
        "app@example.org",
        &["bob@example.org", "hidden@example.org"],
    );
    let body = "From: App <app@example.org>\r\nTo: bob@example.org\r\nBcc: hidden@example.org\r\n\
                Subject: one\r\n\r\n..stuffed\r\nfirst\r\n.";
    let verdict = dialogue.say(body);
    assert!(verdict.starts_with("250 2.0.0 Ok: queued as "), "{verdict}");

    // A second message over the same connection, pipelined as Symfony may.
    dialogue
        .input
        .write_all(b"MAIL FROM:<app@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n")
        .unwrap();
    dialogue.input.flush().unwrap();
    for expected in ["250 ", "250 ", "354 "] {
        assert!(dialogue.reply().starts_with(expected));
    }
    let verdict = dialogue.say("Subject: two\r\n\r\nsecond\r\n.");
    assert!(verdict.starts_with("250 2.0.0 Ok: queued as "), "{verdict}");

    // The real server refuses a recipient: the caller's final reply is its
    // refusal, and nothing goes to the other recipient either.
    dialogue.start_mail(
        "app@example.org",
        &["bob@example.org", "nobody@example.org"],
    );
    let verdict = dialogue.say("Subject: three\r\n\r\nthird\r\n.");
    assert_eq!(verdict, "550 5.1.1 <nobody@example.org>: no such user here");

    assert!(dialogue.say("NOOP").starts_with("250 "));
    assert!(dialogue.say("FROB").starts_with("500 "));
    assert!(dialogue.say("QUIT").starts_with("221 "));
    let output = dialogue.finish();
    assert_eq!(
        code(&output),
        67,
        "the last message was refused for good: {}",
        stderr(&output)
    );

    let messages = setup.server.messages();
    assert_eq!(messages.len(), 2, "the refused message went to no one");
    assert_eq!(messages[0].mail_from, "app@example.org");
    assert_eq!(
        messages[0].rcpt_to,
        ["bob@example.org", "hidden@example.org"]
    );
    assert_eq!(
        text(&messages[0].data),
        "From: App <app@example.org>\r\nTo: bob@example.org\r\nSubject: one\r\n\r\n.stuffed\r\nfirst\r\n",
        "dot-stuffing undone, Bcc removed"
    );
    let size = format!("SIZE={}", messages[0].data.len());
    assert!(
        messages[0].mail_params.contains(&size),
        "{:?}",
        messages[0].mail_params
    );
    assert_eq!(messages[1].rcpt_to, ["carol@example.org"]);
    assert_eq!(
        text(&messages[1].data),
        "From: app@example.org\r\nSubject: two\r\n\r\nsecond\r\n",
        "a message without From gets the MAIL FROM address"
    );
    assert_eq!(messages[0].connection, messages[1].connection);
    assert_eq!(
        setup.server.connections(),
        1,
        "one upstream connection for the dialogue"
    );
}

#[test]
fn a_bs_dialogue_says_when_the_server_is_down_and_when_it_cannot_work() {
    let setup = Setup::with(
        TestServer::builder()
            .auth(USER, PASSWORD)
            .fault(Fault::Reply {
                stage: Stage::MailFrom,
                code: 421,
                text: "4.3.2 going away".into(),
            })
            .start()
            .unwrap(),
        None,
    );
    let mut dialogue = Dialogue::start(&setup, &[]);
    dialogue.reply();
    dialogue.say("HELO app");
    dialogue.say("MAIL FROM:<app@example.org>");
    dialogue.say("RCPT TO:<bob@example.org>");
    dialogue.say("DATA");
    let verdict = dialogue.say("Subject: x\r\n\r\nx\r\n.");
    assert!(
        verdict.starts_with("451 4.3.0 not relayed, try again later"),
        "{verdict}"
    );
    assert!(dialogue.say("QUIT").starts_with("221 "));
    assert_eq!(code(&dialogue.finish()), 75);

    // No configuration: a 554 greeting that says why, 503 until QUIT.
    let empty = TestDir::new("sendmail-empty");
    let mut command = Command::new(BIN);
    let mut child = command
        .args(["sendmail", "-bs"])
        .env("XDG_CONFIG_HOME", empty.to_str().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"EHLO app\r\nQUIT\r\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let replies = stdout(&output);
    assert!(
        replies.starts_with("554 5.3.5 localhost no server to send through"),
        "{replies}"
    );
    assert!(
        replies.contains("\r\n503 5.3.5 no mail service"),
        "{replies}"
    );
    assert!(
        replies.ends_with("221 2.0.0 localhost closing\r\n"),
        "{replies}"
    );
    assert_eq!(code(&output), 78);

    // The caller hangs up inside a message: not relayed, 74.
    let setup = Setup::new();
    let mut dialogue = Dialogue::start(&setup, &[]);
    dialogue.reply();
    dialogue.say("HELO app");
    dialogue.say("MAIL FROM:<app@example.org>");
    dialogue.say("RCPT TO:<bob@example.org>");
    dialogue.say("DATA");
    dialogue
        .input
        .write_all(b"Subject: cut\r\n\r\nhalf")
        .unwrap();
    let output = dialogue.finish();
    assert_eq!(code(&output), 74, "{}", stderr(&output));
    assert!(stderr(&output).contains("not relayed"));
    assert!(setup.server.messages().is_empty());
    assert_eq!(
        setup.server.connections(),
        0,
        "connected lazily: nothing to send, no connection"
    );
}

/// `git send-email` found in `git --exec-path`.
fn git_send_email() -> Option<PathBuf> {
    let output = Command::new("git").arg("--exec-path").output().ok()?;
    let path = PathBuf::from(text(&output.stdout).trim()).join("git-send-email");
    path.exists().then_some(path)
}

#[test]
#[ignore = "needs git send-email (Debian: apt-get install git-email; .ci/run installs it)"]
fn git_send_email_sends_a_patch_through_sendmail_cmd() {
    assert!(
        git_send_email().is_some(),
        "git send-email is missing: apt-get install git-email"
    );
    let setup = Setup::new();
    let repo = setup.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let home = setup.dir.to_str().unwrap().to_owned();
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Alice")
            .env("GIT_AUTHOR_EMAIL", "alice@example.org")
            .env("GIT_COMMITTER_NAME", "Alice")
            .env("GIT_COMMITTER_EMAIL", "alice@example.org")
            .env("TEST_PASSWORD", PASSWORD)
            .env("XDG_CONFIG_HOME", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {}", stderr(&output));
        output
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("hello.txt"), "hello\n.\nworld\n").unwrap();
    git(&["add", "hello.txt"]);
    git(&["commit", "-q", "-m", "Add hello"]);
    let sendmail_cmd = format!("--sendmail-cmd={BIN} sendmail -C {}", setup.config());
    git(&[
        "send-email",
        &sendmail_cmd,
        "--from=Alice <alice@example.org>",
        "--to=bob@example.org",
        "--envelope-sender=alice@example.org",
        "--confirm=never",
        "--suppress-cc=all",
        "--no-validate",
        "--quiet",
        "-1",
    ]);
    let messages = setup.server.messages();
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.mail_from, "alice@example.org", "git's -f");
    assert_eq!(received.rcpt_to, ["bob@example.org"]);
    let data = text(&received.data);
    assert!(data.contains("Subject: [PATCH] Add hello\r\n"), "{data}");
    assert!(data.contains("\r\n+hello\r\n+.\r\n+world\r\n"), "{data}");
}
