#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Soak: 10 000 messages over reused connections to a testkit server that
//! mixes faults in (connections closed after a number of messages, 421s,
//! refused recipients, stalls, connections dropped before the verdict).
//! Every message must end accepted or with an error, and none may be
//! reported accepted that the server did not take. A connection the server
//! closed while idle, and a `421` to MAIL, move the message to a new
//! connection without an error; every other fault is reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tls_mailer::{Client, Connection, Credentials, Envelope, Error, Security, Timeouts};
use tls_mailer_testkit::{Fault, Stage, TestServer};

const MESSAGES: usize = 10_000;

fn every(n: usize, fault: Fault) -> Fault {
    Fault::EveryNth {
        n,
        fault: Box::new(fault),
    }
}

#[test]
fn ten_thousand_messages_through_faults() {
    let server = TestServer::builder()
        .auth("soak", "soak-password")
        .fault(Fault::MessagesPerConnection(60))
        .fault(every(
            97,
            Fault::Reply {
                stage: Stage::MailFrom,
                code: 421,
                text: "4.3.2 shutting down".into(),
            },
        ))
        .fault(every(
            113,
            Fault::Reply {
                stage: Stage::RcptTo,
                code: 450,
                text: "4.2.1 mailbox busy".into(),
            },
        ))
        .fault(every(
            211,
            Fault::Drop {
                stage: Stage::DataEnd,
            },
        ))
        .fault(every(
            1999,
            Fault::Stall {
                stage: Stage::DataEnd,
            },
        ))
        .start()
        .unwrap();
    let client = Client::builder("localhost")
        .port(server.port())
        .security(Security::ImplicitTls)
        .credentials(Credentials::new("soak", "soak-password"))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(1)))
        .build()
        .unwrap();

    let started = Instant::now();
    let mut connection: Option<Connection> = None;
    let mut accepted = Vec::new();
    let mut errors: HashMap<&'static str, usize> = HashMap::new();
    let mut connects = 0;
    for n in 0..MESSAGES {
        if !connection.as_ref().is_some_and(Connection::is_open) {
            connection = Some(client.connect().unwrap());
            connects += 1;
        }
        let token = format!("soak-{n}");
        let message = format!(
            "From: a@example.org\r\nTo: b@example.org\r\nSubject: {token}\r\n\r\n{}\r\n",
            "body line of the soak message ".repeat(64)
        );
        let envelope = Envelope::new("a@example.org", ["b@example.org"]).unwrap();
        match connection
            .as_mut()
            .unwrap()
            .send(&envelope, message.as_bytes())
        {
            Ok(report) => {
                assert!(report.queue_id.is_some());
                accepted.push(token);
            }
            Err(error) => {
                assert!(
                    error.is_transient(),
                    "{n}: every injected fault is temporary: {error}"
                );
                let kind = match error {
                    Error::Rejected(_) => "421 at MAIL",
                    Error::RecipientsRejected(_) => "450 at RCPT",
                    Error::Timeout { .. } => "stall: timeout",
                    Error::Protocol(_) | Error::Io { .. } => "connection lost",
                    _ => "other",
                };
                *errors.entry(kind).or_default() += 1;
            }
        }
    }
    drop(connection);
    let elapsed = started.elapsed();

    let received: Vec<String> = server
        .messages()
        .iter()
        .map(|message| {
            let text = String::from_utf8_lossy(&message.data);
            let subject = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
            subject.trim_start_matches("Subject: ").to_owned()
        })
        .collect();
    let mut times_received: HashMap<&str, usize> = HashMap::new();
    for token in &received {
        *times_received.entry(token.as_str()).or_default() += 1;
    }
    let failed: usize = errors.values().sum();
    eprintln!(
        "soak: {MESSAGES} messages in {elapsed:?}: {} accepted, {failed} failed {errors:?}, \
         {connects} connections asked for, {} made, {} MAIL commands, server took {}",
        accepted.len(),
        server.connections(),
        server.mail_commands(),
        received.len()
    );
    // Every message ended one way or the other.
    assert_eq!(accepted.len() + failed, MESSAGES);
    // Nothing reported accepted that the server did not take, and nothing twice.
    for token in &accepted {
        assert_eq!(times_received.get(token.as_str()), Some(&1), "{token}");
    }
    // Nothing the server took was reported as failed (no fault here leaves
    // an accepted message unreported).
    assert_eq!(received.len(), accepted.len());
    // Each kind of fault that is reported was met, and the connection was
    // reused in between.
    for kind in ["450 at RCPT", "stall: timeout", "connection lost"] {
        assert!(
            errors.get(kind).is_some_and(|&count| count > 0),
            "{kind}: {errors:?}"
        );
    }
    // A 421 to MAIL is never reported: the message went again over a new
    // connection (one more MAIL at the server for each), and was taken once.
    // Every 97th MAIL gets the 421, so about 100 go twice; fewer than half
    // of that would mean the resends are not happening.
    assert_eq!(errors.get("421 at MAIL"), None, "{errors:?}");
    let resent = server.mail_commands() - MESSAGES;
    assert!(resent > MESSAGES / 97 / 2, "{resent} MAILs sent again");
    assert!(connects < MESSAGES / 20, "{connects} connections");
}
