#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Which authorities `send` trusts: the system store (found through
//! SSL_CERT_FILE here, as rustls-native-certs and OpenSSL find it), or, with
//! --ca-file, that file instead (curl's --cacert), or both with
//! --system-roots.

mod common;

use common::{TestDir, code, stderr};
use tls_mailer_testkit::{TestCa, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "trust-test-password";
const MESSAGE: &str =
    "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: trust\r\n\r\nHello\r\n";

/// `send` to `server` with `extra` flags, the system store being the PEM
/// file `system_store` (SSL_CERT_FILE; SSL_CERT_DIR removed).
fn send(server: &TestServer, system_store: &str, extra: &[&str]) -> std::process::Output {
    let port = server.port().to_string();
    let mut args = vec![
        "send",
        "--host",
        "localhost",
        "--port",
        &port,
        "--user",
        USER,
        "--password-env",
        "TEST_PASSWORD",
        "--timeout",
        "10",
        "--from",
        "alice@example.org",
    ];
    args.extend_from_slice(extra);
    args.push("bob@example.org");
    let env = [
        ("TEST_PASSWORD", PASSWORD),
        ("SSL_CERT_FILE", system_store),
        ("SSL_CERT_DIR", ""),
    ];
    common::tls_mailer(&args, MESSAGE.as_bytes(), &env)
}

#[test]
fn a_ca_file_replaces_the_system_store_unless_system_roots_is_given() {
    let dir = TestDir::new("trust-test");
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let server_ca = dir.file("server-ca.pem", server.ca_pem().as_bytes());
    let other_ca = dir.file("other-ca.pem", TestCa::named("another CA").pem().as_bytes());

    // The system store (SSL_CERT_FILE) holds the server's CA.
    let output = send(&server, &server_ca, &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // --ca-file with another CA: the system store is not consulted.
    let output = send(&server, &server_ca, &["--ca-file", &other_ca]);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not signed by a trusted authority"),
        "{}",
        stderr(&output)
    );
    // --system-roots keeps it beside the file.
    let output = send(
        &server,
        &server_ca,
        &["--ca-file", &other_ca, "--system-roots"],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // And the other way round: a system store without the server's CA, the
    // server's CA in --ca-file.
    let output = send(&server, &other_ca, &["--ca-file", &server_ca]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output = send(&server, &other_ca, &[]);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert_eq!(server.messages().len(), 3);
}

#[test]
fn system_roots_needs_a_ca_file() {
    let dir = TestDir::new("trust-test");
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let server_ca = dir.file("server-ca.pem", server.ca_pem().as_bytes());
    let output = send(&server, &server_ca, &["--system-roots"]);
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(stderr(&output).contains("--ca-file"), "{}", stderr(&output));
    assert!(server.messages().is_empty());
}
