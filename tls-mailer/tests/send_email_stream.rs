//! `send_email` streams the message: file attachments read as they are
//! sent, SIZE exact, DKIM signed by a first pass (blocking and, with the
//! `tokio` feature, async), and an attachment that vanishes while it is
//! being sent is an error naming it, with nothing delivered.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tls_mailer::{Client, Content, Credentials, DkimSigner, Email, Error, Timeouts};
use tls_mailer_testkit::{ReceivedMessage, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "stream";

fn server() -> TestServer {
    TestServer::builder().auth(USER, PASSWORD).start().unwrap()
}

fn client(server: &TestServer, signer: Option<DkimSigner>) -> Client {
    let mut builder = Client::builder("localhost")
        .port(server.port())
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(20)));
    if let Some(signer) = signer {
        builder = builder.dkim(signer);
    }
    builder.build().unwrap()
}

fn signer(dir: &std::path::Path) -> DkimSigner {
    let key = dir.join("dkim.pem");
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success());
    DkimSigner::from_pem_file(&key, "s1", "example.org").unwrap()
}

/// A message with a 3 MiB binary file and a text file attached.
fn email(dir: &std::path::Path) -> (Email, Vec<u8>, Vec<u8>) {
    let binary: Vec<u8> = (0..3u32 << 20).map(|v| (v * 13 % 251) as u8).collect();
    let text = "Grüße, line with trailing space \r\n"
        .repeat(20_000)
        .into_bytes();
    std::fs::write(dir.join("data.bin"), &binary).unwrap();
    std::fs::write(dir.join("notes.txt"), &text).unwrap();
    let email = Email::new()
        .with_from("Alice <alice@example.org>".parse().unwrap())
        .with_to("bob@example.org".parse().unwrap())
        .with_bcc("carol@example.org".parse().unwrap())
        .with_subject("files")
        .with_text("Two files.\n")
        .with_attachment(
            "data.bin",
            Content::from_path(dir.join("data.bin")).unwrap(),
        )
        .unwrap()
        .with_attachment(
            "notes.txt",
            Content::from_path(dir.join("notes.txt")).unwrap(),
        )
        .unwrap();
    (email, binary, text)
}

fn check(received: &ReceivedMessage, binary: &[u8], text: &[u8], signed: bool) {
    let size = received
        .mail_params
        .iter()
        .find_map(|p| p.strip_prefix("SIZE="))
        .and_then(|s| s.parse::<usize>().ok());
    assert_eq!(size, Some(received.data.len()), "SIZE is the exact size");
    assert_eq!(received.rcpt_to, ["bob@example.org", "carol@example.org"]);
    assert_eq!(received.data.starts_with(b"DKIM-Signature: v=1;"), signed);
    let back = Email::parse(&received.data).unwrap();
    assert!(back.bcc().is_empty());
    assert!(back.attachments()[0].data() == binary);
    assert!(back.attachments()[1].data() == text);
}

#[test]
fn send_email_streams_file_attachments_with_and_without_dkim() {
    let dir = tempfile::tempdir().unwrap();
    let (email, binary, text) = email(dir.path());
    for signer in [None, Some(signer(dir.path()))] {
        let server = server();
        let signed = signer.is_some();
        client(&server, signer).send_email(&email).unwrap();
        let messages = server.wait_for_messages(1, Duration::from_secs(10));
        check(&messages[0], &binary, &text, signed);
    }
}

#[cfg(feature = "tokio")]
#[test]
fn send_email_async_streams_file_attachments_with_dkim() {
    let dir = tempfile::tempdir().unwrap();
    let (email, binary, text) = email(dir.path());
    let server = server();
    let client = client(&server, Some(signer(dir.path())));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(client.send_email_async(&email)).unwrap();
    let messages = server.wait_for_messages(1, Duration::from_secs(10));
    check(&messages[0], &binary, &text, true);
}

/// The attachment's file is removed once the mail has started (24 MiB of
/// in-memory attachment come before it): the send fails naming the file,
/// the server keeps nothing, and nothing panics.
#[test]
fn an_attachment_that_vanishes_while_sending_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vanishing.bin");
    std::fs::write(&path, vec![7u8; 100_000]).unwrap();
    let email = Email::new()
        .with_from("alice@example.org".parse().unwrap())
        .with_to("bob@example.org".parse().unwrap())
        .with_attachment("first.bin", Content::from_bytes(vec![1u8; 24 << 20]))
        .unwrap()
        .with_attachment("vanishing.bin", Content::from_path(&path).unwrap())
        .unwrap();
    let server = server();
    let remover = {
        let path = path.clone();
        let transcript_has_mail = {
            let server = &server;
            move || server.transcript().contains("C: MAIL FROM")
        };
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                while !transcript_has_mail() {
                    std::thread::sleep(Duration::from_micros(200));
                }
                std::fs::remove_file(&path).unwrap();
            });
            let result = client(&server, None).send_email(&email);
            handle.join().unwrap();
            result
        })
    };
    let error = remover.unwrap_err();
    assert!(matches!(error, Error::ReadMessage(_)), "{error:?}");
    assert!(error.to_string().contains("vanishing.bin"), "{error}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.messages().is_empty(), "nothing is delivered");
}
