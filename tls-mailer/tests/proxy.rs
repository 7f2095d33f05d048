#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Through a proxy: SOCKS5 (remote or local DNS, with or without a login)
//! and HTTP CONNECT, to the testkit's loopback proxies, through both
//! drivers. The proxies refuse any target that is not loopback.

use std::time::Duration;

use tls_mailer::{Client, ClientBuilder, Credentials, Envelope, Error, Proxy, Security, Timeouts};
use tls_mailer_testkit::proxy::{ProxyProtocol, TestProxy};
use tls_mailer_testkit::{Mode, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const MESSAGE: &[u8] =
    b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: proxied\r\n\r\nHello\r\n";

fn client(host: &str, server: &TestServer, security: Security, proxy: &str) -> ClientBuilder {
    Client::builder(host)
        .port(server.port())
        .security(security)
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(5)))
        .proxy(Proxy::parse(proxy).unwrap())
}

fn envelope() -> Envelope {
    Envelope::new("alice@example.org", ["bob@example.org"]).unwrap()
}

/// Sends one message through each driver; both must be accepted.
fn send_both(client: &Client) {
    client.send(&envelope(), MESSAGE).unwrap();
    #[cfg(feature = "tokio")]
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.send_async(&envelope(), MESSAGE))
        .unwrap();
}

fn drivers() -> usize {
    if cfg!(feature = "tokio") { 2 } else { 1 }
}

#[test]
fn socks5h_leaves_the_name_to_the_proxy_in_both_modes() {
    for (mode, security) in [
        (Mode::ImplicitTls, Security::ImplicitTls),
        (Mode::StartTls, Security::StartTls),
    ] {
        let server = TestServer::builder()
            .mode(mode)
            .auth(USER, PASSWORD)
            .start()
            .unwrap();
        let proxy = TestProxy::start(ProxyProtocol::Socks5, None).unwrap();
        let url = format!("socks5h://127.0.0.1:{}", proxy.port());
        send_both(
            &client("localhost", &server, security, &url)
                .build()
                .unwrap(),
        );
        assert_eq!(server.messages().len(), drivers(), "{security:?}");
        assert!(server.messages()[0].tls);
        let asked = format!("localhost:{}", server.port());
        assert_eq!(proxy.requests(), vec![asked; drivers()], "{security:?}");
    }
}

#[test]
fn socks5_with_a_login_and_local_dns() {
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let proxy =
        TestProxy::start(ProxyProtocol::Socks5, Some(("proxy-user", "proxy pass"))).unwrap();
    let url = format!(
        "socks5://proxy-user:proxy%20pass@127.0.0.1:{}",
        proxy.port()
    );
    send_both(
        &client("127.0.0.1", &server, Security::ImplicitTls, &url)
            .build()
            .unwrap(),
    );
    assert_eq!(server.messages().len(), drivers());
    assert_eq!(
        proxy.requests(),
        vec![format!("127.0.0.1:{}", server.port()); drivers()]
    );
    // The wrong password: a proxy error that says so, and not temporary.
    let url = format!("socks5://proxy-user:wrong@127.0.0.1:{}", proxy.port());
    let error = client("127.0.0.1", &server, Security::ImplicitTls, &url)
        .build()
        .unwrap()
        .send(&envelope(), MESSAGE)
        .unwrap_err();
    assert!(matches!(error, Error::Proxy { .. }), "{error:?}");
    assert!(
        error.to_string().contains("refused the user name"),
        "{error}"
    );
    assert!(!error.is_transient());
    assert!(!error.to_string().contains("wrong"), "{error}");
}

#[test]
fn http_connect_with_and_without_the_login_it_wants() {
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let proxy = TestProxy::start(ProxyProtocol::HttpConnect, Some(("u", "p"))).unwrap();
    let url = format!("http://u:p@127.0.0.1:{}", proxy.port());
    send_both(
        &client("localhost", &server, Security::ImplicitTls, &url)
            .build()
            .unwrap(),
    );
    assert_eq!(server.messages().len(), drivers());
    assert_eq!(
        proxy.requests(),
        vec![format!("localhost:{}", server.port()); drivers()]
    );
    let url = format!("http://127.0.0.1:{}", proxy.port());
    let error = client("localhost", &server, Security::ImplicitTls, &url)
        .build()
        .unwrap()
        .send(&envelope(), MESSAGE)
        .unwrap_err();
    assert!(error.to_string().contains("407"), "{error}");
}

#[test]
fn a_proxy_that_cannot_reach_or_cannot_be_reached_fails_cleanly() {
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    // The test proxies reach loopback only: a name elsewhere is refused by
    // its rules, and the error names the target.
    let proxy = TestProxy::start(ProxyProtocol::Socks5, None).unwrap();
    let url = format!("socks5h://127.0.0.1:{}", proxy.port());
    let error = client("smtp.example.invalid", &server, Security::ImplicitTls, &url)
        .build()
        .unwrap()
        .send(&envelope(), MESSAGE)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("could not reach smtp.example.invalid")
            && error.to_string().contains("not allowed"),
        "{error}"
    );
    // No proxy listening: a connect error that names the proxy.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("socks5h://127.0.0.1:{port}");
    let error = client("localhost", &server, Security::ImplicitTls, &url)
        .build()
        .unwrap()
        .send(&envelope(), MESSAGE)
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(
        error.to_string().contains("the proxy socks5h://127.0.0.1"),
        "{error}"
    );
    assert!(error.is_transient());
    // A "proxy" that is really an SMTP server: not HTTP, said at once.
    let smtp = TestServer::builder().mode(Mode::StartTls).start().unwrap();
    let url_smtp = format!("http://127.0.0.1:{}", smtp.port());
    let error = client("localhost", &server, Security::ImplicitTls, &url_smtp)
        .build()
        .unwrap()
        .send(&envelope(), MESSAGE)
        .unwrap_err();
    assert!(error.to_string().contains("does not speak HTTP"), "{error}");
    assert!(error.to_string().contains("220 "), "{error}");
    // Plaintext never goes through a proxy.
    let error = client(
        "localhost",
        &server,
        Security::DangerousPlaintext,
        &url_smtp,
    )
    .build()
    .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(server.messages().is_empty());
}
