#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! TLS session resumption: the connections of one `Client` share its TLS
//! configuration, and with it rustls' session cache, so the second one
//! resumes the first one's session (against the testkit server on
//! 127.0.0.1, whose rustls configuration keeps sessions too).

use std::time::Duration;

use tls_mailer::{Client, ClientBuilder, Credentials, Envelope, Timeouts};
use tls_mailer_testkit::{Mode, TestServer, TlsVersions};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const MESSAGE: &[u8] =
    b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: resumed\r\n\r\nHello\r\n";

fn server(versions: TlsVersions) -> TestServer {
    TestServer::builder()
        .mode(Mode::ImplicitTls)
        .tls_versions(versions)
        .auth(USER, PASSWORD)
        .start()
        .unwrap()
}

fn client(server: &TestServer) -> ClientBuilder {
    Client::builder("localhost")
        .port(server.port())
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(10)))
}

fn envelope() -> Envelope {
    Envelope::new("alice@example.org", ["bob@example.org"]).unwrap()
}

/// Connects, sends one message, quits; returns whether the handshake
/// resumed, and the version.
fn one_connection(client: &Client) -> (bool, String) {
    let mut connection = client.connect().unwrap();
    let tls = connection.tls().unwrap();
    let report = connection.send(&envelope(), MESSAGE).unwrap();
    assert!(report.all_accepted());
    assert_eq!(
        report.tls.as_ref(),
        Some(&tls),
        "the report carries the same details"
    );
    assert!(
        tls.peer_subject.is_some(),
        "a resumed session still names the certificate verified when it began: {tls:?}"
    );
    connection.quit().unwrap();
    (tls.resumed, tls.version)
}

#[test]
fn the_second_connection_of_a_client_resumes_the_first_ones_session() {
    for (versions, expected) in [
        (TlsVersions::Tls13Only, "TLSv1_3"),
        (TlsVersions::Tls12Only, "TLSv1_2"),
    ] {
        let server = server(versions);
        let client = client(&server).build().unwrap();
        let (resumed, version) = one_connection(&client);
        assert_eq!(version, expected);
        assert!(
            !resumed,
            "{expected}: the first connection has nothing to resume"
        );
        let (resumed, _) = one_connection(&client);
        assert!(resumed, "{expected}: the second connection resumes");
        // A clone shares the configuration, and so the cache.
        let (resumed, _) = one_connection(&client.clone());
        assert!(resumed, "{expected}: a clone of the client resumes too");
        assert_eq!(server.messages().len(), 3);
        assert_eq!(server.connections(), 3);
    }
}

#[test]
fn another_client_starts_its_own_session() {
    let server = server(TlsVersions::Both);
    let first = client(&server).build().unwrap();
    assert!(!one_connection(&first).0);
    assert!(one_connection(&first).0);
    let second = client(&server).build().unwrap();
    assert!(
        !one_connection(&second).0,
        "each client has its own session cache"
    );
}

#[test]
fn a_pinned_client_resumes_only_what_it_verified_with_its_pin() {
    let server = server(TlsVersions::Both);
    let pinned = client(&server)
        .pin_sha256(&server.spki_sha256())
        .unwrap()
        .build()
        .unwrap();
    assert!(!one_connection(&pinned).0);
    assert!(one_connection(&pinned).0);
    // A client whose pin the key does not match is refused, even though the
    // server knows a session of this host: that session was another client's.
    let wrong = client(&server)
        .pin_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        .unwrap()
        .build()
        .unwrap();
    let error = wrong.connect().unwrap_err();
    assert!(error.to_string().contains("matches no pin"), "{error}");
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_driver_resumes_with_the_same_configuration() {
    let server = server(TlsVersions::Both);
    let client = client(&server).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resumed: Vec<bool> = runtime.block_on(async {
        let mut resumed = Vec::new();
        for _ in 0..2 {
            let mut connection = client.connect_async().await.unwrap();
            resumed.push(connection.tls().unwrap().resumed);
            connection.send(&envelope(), MESSAGE).await.unwrap();
            connection.quit().await.unwrap();
        }
        resumed
    });
    assert_eq!(resumed, [false, true]);
    // A blocking connection of the same client resumes from the same cache.
    assert!(one_connection(&client).0);
}
