#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! `tls-mailer batch` against the testkit server over loopback: envelopes
//! from the headers, Bcc removed, connections reused and bounded, a 421 and
//! a server's per-connection limit mid-batch, refused recipients, files that
//! cannot be read, the JSON Lines report and the exit codes.

mod common;

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDir, code, stderr, stdout};
use serde_json::Value;
use tls_mailer_testkit::{Fault, Stage, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "batch-pässword";

/// Message `n`: to bob+n, a blind copy to hidden+n, its token in the
/// Subject and the Message-ID.
fn message(n: usize) -> String {
    format!(
        "From: Alice <alice@example.org>\r\nTo: bob+{n}@example.org\r\nBcc: hidden+{n}@example.org\r\n\
         Subject: token-{n}\r\nMessage-ID: <token-{n}@example.org>\r\n\r\nHello {n}\r\n"
    )
}

fn server(faults: &[Fault]) -> TestServer {
    let mut builder = TestServer::builder().auth(USER, PASSWORD);
    for fault in faults {
        builder = builder.fault(fault.clone());
    }
    builder.start().unwrap()
}

/// A directory of `count` messages, `msg-00.eml`...
fn messages(dir: &TestDir, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| dir.file(&format!("msg-{n:02}.eml"), message(n).as_bytes()))
        .collect()
}

/// `tls-mailer batch` to the server on `port`, trusting `server`'s CA.
fn batch(dir: &TestDir, server: &TestServer, port: u16, extra: &[&str]) -> Output {
    let ca = dir.file("ca.pem", server.ca_pem().as_bytes());
    let mut args = common::connection_args("batch", port, &ca, USER, "TEST_PASSWORD");
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::tls_mailer(&args, b"", &[("TEST_PASSWORD", PASSWORD)])
}

/// The summary on stderr says `text`.
fn assert_summary(output: &Output, text: &str) {
    let stderr = stderr(output);
    assert!(stderr.contains(text), "{stderr}");
}

/// The report's line says the message was not sent, temporarily or not,
/// with a reply that contains `text`.
fn assert_failed(line: &Value, temporary: bool, text: &str) {
    assert_eq!(line["result"], "failed", "{line}");
    assert_eq!(line["temporary"], temporary, "{line}");
    assert_eq!(line["queue_id"], Value::Null, "{line}");
    assert!(line["reply"].as_str().unwrap().contains(text), "{line}");
}

/// The JSON Lines report, by file; each line must be one JSON object.
fn report(output: &Output) -> HashMap<String, Value> {
    let mut lines = HashMap::new();
    for line in stdout(output).lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let file = value["file"].as_str().unwrap().to_owned();
        assert!(
            lines.insert(file.clone(), value).is_none(),
            "{file} reported twice"
        );
    }
    lines
}

/// How many times the server received each token.
fn received_tokens(server: &TestServer) -> HashMap<String, usize> {
    let mut tokens = HashMap::new();
    for message in server.messages() {
        let text = String::from_utf8(message.data).unwrap();
        let token = text
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap()
            .to_owned();
        *tokens.entry(token).or_default() += 1;
    }
    tokens
}

#[test]
fn a_directory_of_twenty_goes_over_two_connections_each_message_once() {
    let dir = TestDir::new("batch-twenty");
    let spool = TestDir::new("batch-twenty-spool");
    let files = messages(&spool, 20);
    // Neither a hidden file nor a subdirectory is part of the batch.
    spool.file(".hidden.eml", message(99).as_bytes());
    std::fs::create_dir(spool.join("sent")).unwrap();
    std::fs::write(spool.join("sent").join("old.eml"), message(98)).unwrap();
    let server = server(&[]);
    let spool_path = spool.to_str().unwrap();
    let output = batch(
        &dir,
        &server,
        server.port(),
        &["--connections", "2", "--report", "json", spool_path],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));

    let received = server.messages();
    assert_eq!(received.len(), 20, "{}", stderr(&output));
    let tokens = received_tokens(&server);
    for n in 0..20 {
        assert_eq!(tokens.get(&format!("token-{n}")), Some(&1), "token-{n}");
    }
    for message in &received {
        let text = String::from_utf8(message.data.clone()).unwrap();
        let n: usize = text
            .lines()
            .find_map(|line| line.strip_prefix("Subject: token-"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(message.mail_from, "alice@example.org");
        assert_eq!(
            message.rcpt_to,
            [
                format!("bob+{n}@example.org"),
                format!("hidden+{n}@example.org")
            ]
        );
        assert!(
            !text.to_ascii_lowercase().contains("bcc:") && !text.contains("hidden+"),
            "the Bcc field reached the server: {text}"
        );
    }
    assert!(
        server.connections() <= 2,
        "{} connections",
        server.connections()
    );

    let report = report(&output);
    assert_eq!(report.len(), 20, "{}", stdout(&output));
    for (n, file) in files.iter().enumerate() {
        let line = &report[file];
        assert_eq!(line["result"], "sent", "{line}");
        assert_eq!(line["message_id"], format!("<token-{n}@example.org>"));
        let reply = line["reply"].as_str().unwrap();
        assert!(reply.starts_with("250"), "{line}");
        let queue_id = line["queue_id"].as_str().unwrap();
        assert!(reply.contains(&format!("queued as {queue_id}")), "{line}");
        let recipients = line["recipients"].as_array().unwrap();
        assert_eq!(recipients.len(), 2, "{line}");
        assert_eq!(recipients[0]["address"], format!("bob+{n}@example.org"));
        assert_eq!(recipients[1]["address"], format!("hidden+{n}@example.org"));
        for recipient in recipients {
            assert!(
                recipient["reply"].as_str().unwrap().starts_with("250"),
                "{line}"
            );
        }
    }
    assert_summary(&output, "batch of 20: 20 sent, 0 partially sent, 0 refused");
    // stderr is not a terminal here: no progress bar.
    assert!(
        !stderr(&output).contains(['\r', '\u{1b}']),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_refused_recipient_is_a_partial_delivery_and_exit_67() {
    let dir = TestDir::new("batch-partial");
    let files = messages(&dir, 3);
    let partial = dir.file(
        "partial.eml",
        b"From: alice@example.org\r\nTo: bob@example.org, nobody@example.org\r\nSubject: token-p\r\n\r\nHi\r\n",
    );
    let server = server(&[Fault::RejectRecipient {
        address: "nobody@example.org".into(),
        code: 550,
        text: "5.1.1 no such user".into(),
    }]);
    let mut args = vec!["--report", "json"];
    args.extend(files.iter().map(String::as_str));
    args.push(&partial);
    let output = batch(&dir, &server, server.port(), &args);
    assert_eq!(code(&output), 67, "{}", stderr(&output));

    let report = report(&output);
    let line = &report[&partial];
    assert_eq!(line["result"], "partial", "{line}");
    assert_eq!(line["message_id"], Value::Null);
    let recipients = line["recipients"].as_array().unwrap();
    assert_eq!(recipients[0]["address"], "bob@example.org");
    assert!(recipients[0]["reply"].as_str().unwrap().starts_with("250"));
    assert_eq!(recipients[1]["address"], "nobody@example.org");
    assert!(
        recipients[1]["reply"].as_str().unwrap().starts_with("550"),
        "{line}"
    );
    for file in &files {
        assert_eq!(report[file]["result"], "sent");
    }
    let tokens = received_tokens(&server);
    assert_eq!(tokens.get("token-p"), Some(&1));
    assert_eq!(server.messages().len(), 4);
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!("partially sent {partial}"))
            && stderr.contains("refused <nobody@example.org>: 550"),
        "{stderr}"
    );
}

#[test]
fn a_421_mid_batch_sends_what_the_server_did_not_take_again_once() {
    let dir = TestDir::new("batch-421");
    let files = messages(&dir, 10);
    // Every 4th MAIL the server sees (over all connections) meets a 421;
    // the server goes on answering what it had already read, as some do.
    let server = server(&[Fault::EveryNth {
        n: 4,
        fault: Box::new(Fault::Reply {
            stage: Stage::MailFrom,
            code: 421,
            text: "4.3.2 shutting down".into(),
        }),
    }]);
    let mut args = vec!["--connections", "1", "--report", "json"];
    args.extend(files.iter().map(String::as_str));
    let output = batch(&dir, &server, server.port(), &args);

    let report = report(&output);
    assert_eq!(report.len(), 10);
    let tokens = received_tokens(&server);
    let mut sent = 0;
    for (n, file) in files.iter().enumerate() {
        let line = &report[file];
        let token = format!("token-{n}");
        if line["result"] == "sent" {
            sent += 1;
            assert_eq!(tokens.get(&token), Some(&1), "{token}");
        } else {
            // Only a message refused with 421 twice (the first time, and
            // again over a new connection) is reported failed.
            assert_failed(line, true, "421");
            assert_eq!(tokens.get(&token), None, "a failed message arrived");
        }
    }
    assert!(sent >= 8, "{}", stderr(&output));
    assert_eq!(server.messages().len(), sent);
    assert!(server.connections() >= 2, "a new connection after the 421");
    let expected = if sent == 10 { 0 } else { 75 };
    assert_eq!(code(&output), expected, "{}", stderr(&output));
}

#[test]
fn a_server_that_takes_three_messages_per_connection_gets_each_message_at_most_once() {
    // The fourth MAIL on a connection meets a 421 and the server closes:
    // that message and those pipelined behind it were not taken, so they
    // go again over a new connection. When the close resets the connection
    // before its last replies are read, the messages they answered are
    // reported failed, never sent again blindly.
    let server = server(&[Fault::LimitPerConnection(3)]);
    let (output, sent) = ten_over_one_connection_at_most_once("batch-limit", &server);
    // The first connection took three before its limit.
    assert!(server.messages().len() >= 3, "{}", stderr(&output));
    assert_summary(&output, &format!("batch of 10: {sent} sent"));
}

#[test]
fn a_server_that_hangs_up_without_a_word_gets_nothing_twice() {
    // Closes right after accepting its third message, while the client has
    // already written the next ones (pipelined): their outcome is unknown,
    // so they are reported, never sent again blindly (the server may have
    // taken one just before hanging up, its reply lost with the
    // connection).
    let server = server(&[Fault::MessagesPerConnection(3)]);
    let (_, sent) = ten_over_one_connection_at_most_once("batch-hang-up", &server);
    assert!(sent < 10, "pipelined messages met the hang-up");
}

#[test]
fn a_file_that_cannot_be_read_or_parsed_fails_alone() {
    let dir = TestDir::new("batch-unreadable");
    let spool = TestDir::new("batch-unreadable-spool");
    let files = messages(&spool, 2);
    let no_from = spool.file(
        "no-from.eml",
        b"To: bob@example.org\r\nSubject: x\r\n\r\nHi\r\n",
    );
    let missing = dir.join("missing.eml").to_str().unwrap().to_owned();
    let server = server(&[]);
    let output = batch(
        &dir,
        &server,
        server.port(),
        &["--report", "json", spool.to_str().unwrap(), &missing],
    );
    // The first lasting failure in command-line order: the message without From.
    assert_eq!(code(&output), 65, "{}", stderr(&output));

    let report = report(&output);
    assert_eq!(report.len(), 4, "{}", stdout(&output));
    for file in &files {
        assert_eq!(report[file]["result"], "sent");
    }
    assert_failed(&report[&no_from], false, &format!("{no_from}: no sender"));
    assert_failed(
        &report[&missing],
        false,
        &format!("cannot open the message file {missing}"),
    );
    assert_eq!(server.messages().len(), 2);
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!("failed {no_from}"))
            && stderr.contains(&format!("failed {missing}")),
        "{stderr}"
    );
}

#[test]
fn when_no_connection_can_be_made_every_file_fails_for_now() {
    let dir = TestDir::new("batch-down");
    let files = messages(&dir, 5);
    let server = server(&[]);
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = vec!["--connections", "2", "--report", "json"];
    args.extend(files.iter().map(String::as_str));
    let output = batch(&dir, &server, closed, &args);
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    let report = report(&output);
    assert_eq!(report.len(), 5, "{}", stdout(&output));
    for (n, file) in files.iter().enumerate() {
        let line = &report[file];
        assert_failed(line, true, "cannot connect");
        // What the file says is reported, though it never went out.
        assert_eq!(line["message_id"], format!("<token-{n}@example.org>"));
        assert_eq!(
            line["recipients"][1]["address"],
            format!("hidden+{n}@example.org")
        );
        assert_eq!(line["recipients"][1]["reply"], Value::Null);
    }
    assert_summary(
        &output,
        "0 sent, 0 partially sent, 0 refused, 5 failed for now",
    );
}

#[test]
fn a_refused_password_stops_the_batch_after_one_attempt_per_connection() {
    let dir = TestDir::new("batch-password");
    let files = messages(&dir, 6);
    let server = TestServer::builder()
        .auth(USER, "another-password")
        .start()
        .unwrap();
    let mut args = vec!["--connections", "2", "--report", "json"];
    args.extend(files.iter().map(String::as_str));
    let output = batch(&dir, &server, server.port(), &args);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    let report = report(&output);
    assert_eq!(report.len(), 6, "{}", stdout(&output));
    for file in &files {
        assert_failed(&report[file], false, "535");
    }
    // Each connection tried once; the password is not tried for every file.
    assert!(server.connections() <= 2, "{}", server.connections());
    assert!(server.messages().is_empty());
    assert_summary(&output, "hint: check --user and the password");
}

#[test]
fn a_report_that_cannot_be_written_does_not_stop_the_batch_and_exits_74() {
    let dir = TestDir::new("batch-full");
    let files = messages(&dir, 3);
    let server = server(&[]);
    let ca = dir.file("ca.pem", server.ca_pem().as_bytes());
    let mut args = common::connection_args("batch", server.port(), &ca, USER, "TEST_PASSWORD");
    args.extend(["--report".into(), "json".into()]);
    args.extend(files);
    // Every write to /dev/full fails (ENOSPC).
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tls-mailer"))
        .args(&args)
        .env("TEST_PASSWORD", PASSWORD)
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&output), 74, "{}", stderr(&output));
    assert_summary(&output, "cannot write the report to stdout");
    assert_summary(&output, "batch of 3: 3 sent");
    assert_eq!(server.messages().len(), 3);
}

/// A loopback port that forwards its first connection to `target` and
/// closes every later one at once, as a server that takes one connection
/// per account; the count of those it closed.
fn one_connection_only(target: std::net::SocketAddr) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    std::thread::spawn(move || {
        let mut first = true;
        for client in listener.incoming().flatten() {
            if !first {
                counter.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            first = false;
            let server = TcpStream::connect(target).unwrap();
            // No Nagle delay on the copies: each reply goes on at once.
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                })
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    (port, refused)
}

#[test]
fn a_worker_that_cannot_connect_leaves_its_message_to_the_others() {
    let dir = TestDir::new("batch-one-connection");
    let files = messages(&dir, 30);
    let server = server(&[]);
    let (port, refused) = one_connection_only(server.addr());
    let mut args = vec!["--connections", "2"];
    args.extend(files.iter().map(String::as_str));
    let output = batch(&dir, &server, port, &args);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let tokens = received_tokens(&server);
    for n in 0..30 {
        assert_eq!(tokens.get(&format!("token-{n}")), Some(&1), "token-{n}");
    }
    assert_eq!(server.connections(), 1);
    // The second worker did try, and its message went over the first's
    // connection.
    assert_eq!(refused.load(Ordering::SeqCst), 1);
}

/// Ten messages over one connection to `server`, reported as JSON: every
/// message sent arrived once, every other one is a temporary failure that
/// arrived at most once (its outcome may be unknown), and nothing arrived
/// twice. Returns the output and how many were sent.
fn ten_over_one_connection_at_most_once(name: &str, server: &TestServer) -> (Output, usize) {
    let dir = TestDir::new(name);
    let files = messages(&dir, 10);
    let mut args = vec!["--connections", "1", "--report", "json"];
    args.extend(files.iter().map(String::as_str));
    let output = batch(&dir, server, server.port(), &args);
    let report = report(&output);
    assert_eq!(report.len(), 10);
    let tokens = received_tokens(server);
    let mut sent = 0;
    for (n, file) in files.iter().enumerate() {
        let token = format!("token-{n}");
        let line = &report[file];
        if line["result"] == "sent" {
            sent += 1;
            assert_eq!(tokens.get(&token), Some(&1), "{token}");
        } else {
            assert_eq!(line["result"], "failed", "{line}");
            assert_eq!(line["temporary"], true, "{line}");
            assert!(
                tokens.get(&token).is_none_or(|&count| count == 1),
                "{token}"
            );
        }
    }
    assert!(tokens.values().all(|&count| count == 1), "{tokens:?}");
    let expected = if sent == 10 { 0 } else { 75 };
    assert_eq!(code(&output), expected, "{}", stderr(&output));
    (output, sent)
}
