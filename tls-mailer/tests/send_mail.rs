#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! `send_mail()` trusts the system store only. To trust the test CA, the test
//! runs itself again as a child process with SSL_CERT_FILE (honoured by
//! rustls-native-certs) pointing at it; the server runs in the parent.

use std::process::Command;

use tls_mailer::{Credentials, Error, Security, send_mail};
use tls_mailer_testkit::TestServer;

const MESSAGE: &[u8] = b"Subject: one call\r\n\r\nHello\r\n";

fn send(addr: &str) -> Result<tls_mailer::SendReport, Error> {
    let auth = Credentials::new("alice", "secret");
    send_mail(
        addr,
        Some(&auth),
        "a@example.org",
        &["b@example.org"],
        MESSAGE,
    )
}

#[test]
fn send_mail_uses_implicit_tls_and_verifies_the_certificate() {
    if let Ok(addr) = std::env::var("TLS_MAILER_TEST_ADDR") {
        // Child: the environment trusts the test CA.
        let report = send(&addr).unwrap();
        assert_eq!(report.security, Security::ImplicitTls);
        return;
    }
    let server = TestServer::builder()
        .auth("alice", "secret")
        .start()
        .unwrap();
    let addr = format!("localhost:{}", server.port());

    // The test CA is not trusted: the certificate is refused, nothing sent.
    let error = send(&addr).unwrap_err();
    assert!(
        matches!(error, Error::Tls { .. } | Error::Config(_)),
        "{error:?}"
    );
    assert!(server.messages().is_empty());

    let directory = tempfile_dir();
    let ca = directory.join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "send_mail_uses_implicit_tls_and_verifies_the_certificate",
        ])
        .env("TLS_MAILER_TEST_ADDR", &addr)
        .env("SSL_CERT_FILE", &ca)
        .status()
        .unwrap();
    assert!(status.success());
    let received = server.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data, MESSAGE);
    assert_eq!(received[0].auth_user.as_deref(), Some("alice"));
    assert!(received[0].tls);
    std::fs::remove_dir_all(&directory).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let directory =
        std::env::temp_dir().join(format!("tls-mailer-send-mail-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    directory
}
