#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The library's OAuth 2.0 client against a loopback token endpoint: the
//! refresh grant, OAuth errors by kind, the device flow, and a client whose
//! [`RefreshingToken`] renews a token the mail server refused, in the
//! blocking driver and (with `tokio`) the async one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tls_mailer::oauth::{AccessToken, DevicePoll, OAuthClient, OAuthError, RefreshingToken};
use tls_mailer::{Client, Envelope, Error, TrustAnchors};
use tls_mailer_testkit::TestServer;
use tls_mailer_testkit::oauth::{TokenEndpoint, TokenEndpointBuilder};

const USER: &str = "alice@example.org";

fn client_of(endpoint: &TokenEndpoint) -> OAuthClient {
    let anchors = TrustAnchors::default()
        .system(false)
        .add_pem(endpoint.ca_pem().as_bytes())
        .unwrap();
    OAuthClient::builder(endpoint.token_url(), "lib-client")
        .client_secret("lib-secret")
        .device_authorization_url(endpoint.device_url())
        .trust_anchors(anchors)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn endpoint_with(builder: TokenEndpointBuilder) -> TokenEndpoint {
    builder
        .client("lib-client", Some("lib-secret"))
        .start()
        .unwrap()
}

#[test]
fn the_refresh_grant_gives_a_token_with_its_expiry_and_rotation() {
    let endpoint = endpoint_with(
        TokenEndpoint::builder()
            .refresh_token("r1")
            .rotate_refresh_token("r2")
            .access_token("a1", Some(3600)),
    );
    let token = client_of(&endpoint).refresh("r1").unwrap();
    assert_eq!(token.secret(), "a1");
    assert_eq!(token.refresh_token(), Some("r2"));
    let left = token
        .expires_at()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
    let request = &endpoint.requests()[0];
    assert_eq!(request.field("grant_type"), Some("refresh_token"));
    assert_eq!(request.field("client_secret"), Some("lib-secret"));
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
}

#[test]
fn a_revoked_refresh_token_is_an_invalid_grant_and_not_transient() {
    let endpoint = endpoint_with(TokenEndpoint::builder().refresh_token("r1"));
    endpoint.revoke("r1");
    let error = client_of(&endpoint).refresh("r1").unwrap_err();
    let Error::OAuth(oauth) = &error else {
        panic!("{error:?}")
    };
    assert!(oauth.is_invalid_grant() && !error.is_transient(), "{error}");
    assert!(error.to_string().contains("log in again"));
    // A wrong client secret is the client's fault, said so.
    let wrong = OAuthClient::builder(endpoint.token_url(), "lib-client")
        .client_secret("nope")
        .trust_anchors(
            TrustAnchors::default()
                .system(false)
                .add_pem(endpoint.ca_pem().as_bytes())
                .unwrap(),
        )
        .build()
        .unwrap();
    let error = wrong.refresh("r1").unwrap_err();
    assert!(
        matches!(&error, Error::OAuth(OAuthError::Refused { code, status: 401, .. }) if code == "invalid_client"),
        "{error:?}"
    );
}

#[test]
fn the_token_endpoint_certificate_is_verified() {
    let endpoint = endpoint_with(TokenEndpoint::builder().refresh_token("r1"));
    // The system store does not know the test CA.
    let client = OAuthClient::builder(endpoint.token_url(), "lib-client")
        .build()
        .unwrap();
    let error = client.refresh("r1").unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(endpoint.requests().is_empty(), "nothing was sent");
}

#[test]
fn the_device_flow_polls_until_approved_and_slows_down_when_told() {
    let endpoint = endpoint_with(
        TokenEndpoint::builder()
            .device_flow("USER-CODE", 1)
            .slow_down_once()
            .interval(0)
            .access_token("a1", Some(60)),
    );
    let client = client_of(&endpoint);
    let mut device = client.start_device_authorization("mail").unwrap();
    assert_eq!(device.user_code, "USER-CODE");
    assert_eq!(device.interval, Duration::ZERO);
    let first = client.poll_device_authorization(&mut device).unwrap();
    assert!(matches!(first, DevicePoll::SlowDown), "{first:?}");
    assert_eq!(
        device.interval,
        Duration::from_secs(5),
        "slow_down adds 5 s"
    );
    let second = client.poll_device_authorization(&mut device).unwrap();
    assert!(matches!(second, DevicePoll::Pending), "{second:?}");
    let DevicePoll::Granted(token) = client.poll_device_authorization(&mut device).unwrap() else {
        panic!("granted")
    };
    assert_eq!(token.secret(), "a1");
    assert!(token.refresh_token().is_some());
    // A used device code is spent.
    let error = client.poll_device_authorization(&mut device).unwrap_err();
    assert!(
        matches!(&error, Error::OAuth(oauth) if oauth.is_invalid_grant()),
        "{error:?}"
    );

    // wait_for_device_authorization polls at the interval until approved.
    let waited = endpoint_with(TokenEndpoint::builder().device_flow("C", 2).interval(0));
    let client = client_of(&waited);
    let mut device = client.start_device_authorization("mail").unwrap();
    client.wait_for_device_authorization(&mut device).unwrap();
    assert_eq!(waited.requests().len(), 4, "the start and three polls");
}

/// A mail server that takes `a2` only, and a token source that starts
/// from the cached `a1`: the first login is refused, the token renewed,
/// and the second login sends the mail.
fn refused_then_renewed() -> (TestServer, TokenEndpoint, Client, Arc<Mutex<Vec<String>>>) {
    let server = TestServer::builder()
        .auth(USER, "a2")
        .auth_mechanisms(&["OAUTHBEARER"])
        .start()
        .unwrap();
    let endpoint = endpoint_with(
        TokenEndpoint::builder()
            .refresh_token("r1")
            .access_token("a2", Some(3600)),
    );
    let kept = Arc::new(Mutex::new(Vec::new()));
    let hook = kept.clone();
    let source = RefreshingToken::new(client_of(&endpoint), "r1")
        .with_access_token(AccessToken::new(
            "a1",
            Some(SystemTime::now() + Duration::from_secs(3000)),
        ))
        .on_refresh(move |token| hook.lock().unwrap().push(token.secret().to_owned()));
    let client = Client::builder("localhost")
        .port(server.port())
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .oauth(USER, Arc::new(source))
        .build()
        .unwrap();
    (server, endpoint, client, kept)
}

#[test]
fn a_refused_token_is_renewed_once_and_the_mail_goes_out() {
    let (server, endpoint, client, kept) = refused_then_renewed();
    let envelope = Envelope::new(USER, ["bob@example.org"]).unwrap();
    client
        .send(&envelope, b"Subject: t\r\n\r\nhello\r\n")
        .unwrap();
    assert_eq!(server.messages().len(), 1);
    assert_eq!(endpoint.requests().len(), 1);
    assert_eq!(*kept.lock().unwrap(), ["a2"]);
    assert_eq!(
        server.transcript().matches("C: AUTH OAUTHBEARER").count(),
        2
    );
    // The renewed token serves the next connection as it is.
    client
        .send(&envelope, b"Subject: t\r\n\r\nagain\r\n")
        .unwrap();
    assert_eq!(endpoint.requests().len(), 1);
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_driver_renews_a_refused_token_off_the_runtime() {
    let (server, endpoint, client, _) = refused_then_renewed();
    let envelope = Envelope::new(USER, ["bob@example.org"]).unwrap();
    // A current-thread runtime: a token fetch on it would block the only
    // thread, and a block_in_place would panic.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        client
            .send_async(&envelope, b"Subject: t\r\n\r\nhello\r\n")
            .await
            .unwrap();
    });
    assert_eq!(server.messages().len(), 1);
    assert_eq!(endpoint.requests().len(), 1);
}

#[test]
fn what_the_user_is_shown_holds_no_control_character() {
    let endpoint = endpoint_with(
        TokenEndpoint::builder()
            .device_flow("ABCD\u{1b}]0;owned\u{7}-EFGH", 0)
            .interval(0),
    );
    let device = client_of(&endpoint)
        .start_device_authorization("mail")
        .unwrap();
    assert_eq!(device.user_code, "ABCD]0;owned-EFGH");
    assert!(!device.verification_uri.chars().any(char::is_control));
}
