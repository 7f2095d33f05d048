#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! OAuth 2.0 with tokens the CLI renews itself: the refresh grant at first
//! use, the token store between runs, renewal when a token expires or the
//! mail server refuses it, a rotated refresh token kept, a revoked one
//! reported with its fix, `oauth login` (device flow), `oauth token` and
//! `oauth logout`, and hostile token endpoints. Everything on loopback: a
//! testkit token endpoint over HTTPS and a testkit SMTP server that checks
//! the XOAUTH2 token.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestDir, code, stderr, stdout};
use tls_mailer_testkit::TestServer;
use tls_mailer_testkit::oauth::{EndpointFault, TokenEndpoint, TokenEndpointBuilder};

const USER: &str = "alice@example.org";
const MESSAGE: &[u8] =
    b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: oauth\r\n\r\nHello\r\n";

/// A token endpoint, a mail server accepting `access_token` for alice,
/// and a directory with the CA, the config file and the token store.
struct Setup {
    dir: TestDir,
    endpoint: TokenEndpoint,
    server: TestServer,
}

impl Setup {
    fn new(endpoint: TokenEndpointBuilder, access_token: &str, oauth_keys: &str) -> Self {
        let dir = TestDir::new("oauth");
        let endpoint = endpoint
            .client("cli-client", Some("cli-secret"))
            .start()
            .unwrap();
        let server = TestServer::builder()
            .auth(USER, access_token)
            .auth_mechanisms(&["XOAUTH2"])
            .start()
            .unwrap();
        dir.file(
            "ca.pem",
            format!("{}{}", endpoint.ca_pem(), server.ca_pem()).as_bytes(),
        );
        let setup = Self {
            dir,
            endpoint,
            server,
        };
        setup.write_config(oauth_keys);
        setup
    }

    fn path(&self, name: &str) -> String {
        self.dir.path.join(name).to_str().unwrap().to_owned()
    }

    fn write_config(&self, oauth_keys: &str) {
        let config = format!(
            r#"[accounts.work]
host = "localhost"
port = {port}
user = "{USER}"
ca_file = "{ca}"
timeout = 5

[accounts.work.oauth]
token_url = "{token_url}"
device_authorization_url = "{device_url}"
authorization_url = "{authorize_url}"
client_id = "cli-client"
client_secret_command = "echo cli-secret"
scope = "mail offline_access"
ca_file = "{ca}"
{oauth_keys}
"#,
            port = self.server.port(),
            ca = self.path("ca.pem"),
            token_url = self.endpoint.token_url(),
            device_url = self.endpoint.device_url(),
            authorize_url = self.endpoint.authorize_url(),
        );
        self.dir.file("config.toml", config.as_bytes());
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let config = self.path("config.toml");
        let state = self.path("state");
        let mut all = vec![args[0], "--config", &config, "--account", "work"];
        all.extend_from_slice(&args[1..]);
        common::tls_mailer(&all, stdin, &[("XDG_STATE_HOME", &state)])
    }

    fn send(&self) -> Output {
        self.run(&["send", "-t"], MESSAGE)
    }

    fn store(&self) -> PathBuf {
        self.dir.path.join("state/tls-mailer/oauth/work.json")
    }

    fn store_text(&self) -> String {
        std::fs::read_to_string(self.store()).unwrap()
    }

    fn write_store(&self, access_token: &str, expires_at: u64) {
        std::fs::create_dir_all(self.store().parent().unwrap()).unwrap();
        std::fs::write(
            self.store(),
            format!(r#"{{"access_token":"{access_token}","expires_at":{expires_at}}}"#),
        )
        .unwrap();
    }

    /// The grant types the endpoint was asked for, in order.
    fn grants(&self) -> Vec<String> {
        self.endpoint
            .requests()
            .iter()
            .map(|request| request.field("grant_type").unwrap_or("-").to_owned())
            .collect()
    }

    fn logins(&self) -> usize {
        self.server.transcript().matches("C: AUTH XOAUTH2").count()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn with_refresh_file(setup_endpoint: TokenEndpointBuilder, access_token: &str) -> Setup {
    let setup = Setup::new(
        setup_endpoint,
        access_token,
        "refresh_token_file = \"REFRESH\"",
    );
    let file = setup.dir.file("refresh-token", b"refresh-1\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    setup.write_config(&format!("refresh_token_file = \"{file}\""));
    setup
}

fn assert_sent(output: &Output) {
    assert_eq!(code(output), 0, "stderr: {}", stderr(output));
}

#[test]
fn the_first_send_refreshes_and_the_next_uses_the_kept_token() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-1", Some(3600)),
        "access-1",
    );
    assert_sent(&setup.send());
    let requests = setup.endpoint.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/token");
    assert_eq!(request.field("grant_type"), Some("refresh_token"));
    assert_eq!(request.field("refresh_token"), Some("refresh-1"));
    assert_eq!(request.field("client_id"), Some("cli-client"));
    assert_eq!(request.field("client_secret"), Some("cli-secret"));
    // The store is private, holds the access token and not the configured
    // refresh token (which already has a home).
    let mode = std::fs::metadata(setup.store())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(setup.store().parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let stored = setup.store_text();
    assert!(
        stored.contains("access-1") && !stored.contains("refresh-1"),
        "{stored}"
    );

    assert_sent(&setup.send());
    assert_eq!(
        setup.endpoint.requests().len(),
        1,
        "the kept token was used"
    );
    assert_eq!(setup.server.messages().len(), 2);
    assert_eq!(setup.logins(), 2);
}

#[test]
fn an_expired_token_is_renewed_before_it_is_tried() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-2", Some(3600)),
        "access-2",
    );
    setup.write_store("stale-token", now() - 10);
    assert_sent(&setup.send());
    assert_eq!(setup.grants(), ["refresh_token"]);
    assert_eq!(
        setup.logins(),
        1,
        "the stale token never reached the server"
    );
    assert!(setup.store_text().contains("access-2"));
}

#[test]
fn a_token_the_server_refuses_is_renewed_and_the_login_tried_again() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-2", Some(3600)),
        "access-2",
    );
    // Valid by its date, but the server no longer takes it.
    setup.write_store("revoked-at-server", now() + 3000);
    let output = setup.send();
    assert_sent(&output);
    assert_eq!(setup.grants(), ["refresh_token"]);
    assert_eq!(setup.logins(), 2, "{}", setup.server.transcript());
    assert_eq!(setup.server.messages().len(), 1);
    assert!(setup.store_text().contains("access-2"));
}

#[test]
fn a_token_refused_even_when_new_fails_once_without_a_loop() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-the-server-does-not-know", Some(3600)),
        "access-2",
    );
    let output = setup.send();
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    // The first connection used a new token already: no second refresh.
    assert_eq!(setup.grants(), ["refresh_token", "refresh_token"]);
    assert_eq!(setup.logins(), 2);
    assert!(setup.server.messages().is_empty());
}

#[test]
fn a_revoked_refresh_token_is_reported_with_the_fix() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-1", Some(3600)),
        "access-1",
    );
    setup.endpoint.revoke("refresh-1");
    let output = setup.send();
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("invalid_grant"), "{said}");
    assert!(said.contains("expired or was revoked"), "{said}");
    assert!(said.contains("tls-mailer oauth login"), "{said}");
    assert_eq!(setup.logins(), 0, "nothing reached the mail server");
}

#[test]
fn a_rotated_refresh_token_is_kept_and_used_for_the_next_refresh() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .rotate_refresh_token("refresh-2")
            // Expires at once: every send needs a refresh.
            .access_token("access-1", Some(0)),
        "access-1",
    );
    assert_sent(&setup.send());
    let stored = setup.store_text();
    assert!(
        stored.contains("refresh-2") && !stored.contains("refresh-1"),
        "{stored}"
    );
    assert_sent(&setup.send());
    let used: Vec<String> = setup
        .endpoint
        .requests()
        .iter()
        .map(|request| request.field("refresh_token").unwrap().to_owned())
        .collect();
    assert_eq!(used, ["refresh-1", "refresh-2"]);

    // A new refresh token in the configuration wins over the rotation of
    // the old one.
    let file = setup.dir.file("refresh-token", b"refresh-3\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    setup.endpoint.revoke("refresh-2");
    let output = setup.send();
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    let last = setup.endpoint.requests().last().cloned().unwrap();
    assert_eq!(last.field("refresh_token"), Some("refresh-3"));
}

#[test]
fn oauth_login_runs_the_device_flow_then_send_token_and_logout_use_its_tokens() {
    let setup = Setup::new(
        TokenEndpoint::builder()
            .device_flow("WDJB-MJHT", 2)
            .interval(0)
            .scope("mail offline_access")
            .access_token("access-1", Some(3600)),
        "access-1",
        "",
    );
    // Before any login: the way to get one.
    let output = setup.send();
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(stderr(&output).contains("tls-mailer oauth login --account work"));

    let output = setup.run(&["oauth", "login"], b"");
    assert_sent(&output);
    let said = stderr(&output);
    assert!(said.contains("WDJB-MJHT"), "{said}");
    assert!(
        said.contains(&format!(
            "{}/activate",
            setup.endpoint.token_url().trim_end_matches("/token")
        )),
        "{said}"
    );
    let requests = setup.endpoint.requests();
    assert_eq!(requests[0].path, "/device");
    assert_eq!(requests[0].field("scope"), Some("mail offline_access"));
    let polls: Vec<_> = requests[1..]
        .iter()
        .filter_map(|r| r.field("grant_type"))
        .collect();
    assert_eq!(
        polls, ["urn:ietf:params:oauth:grant-type:device_code"; 3],
        "two pending, then the token"
    );
    let stored = setup.store_text();
    assert!(
        stored.contains("access-1") && stored.contains("refresh_token"),
        "{stored}"
    );

    assert_sent(&setup.send());
    assert_eq!(setup.server.messages().len(), 1);
    let output = setup.run(&["oauth", "token"], b"");
    assert_sent(&output);
    assert_eq!(stdout(&output).trim(), "access-1");
    assert_eq!(setup.endpoint.requests().len(), 4, "no refresh was needed");

    let output = setup.run(&["oauth", "logout"], b"");
    assert_sent(&output);
    assert!(!setup.store().exists());
    assert_eq!(code(&setup.send()), 78);
}

#[test]
fn a_login_the_user_refuses_fails_with_77() {
    let setup = Setup::new(
        TokenEndpoint::builder()
            .device_flow("ABCD-EFGH", 1)
            .deny_device()
            .interval(0),
        "access-1",
        "",
    );
    let output = setup.run(&["oauth", "login"], b"");
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(stderr(&output).contains("access_denied"));
    assert!(!setup.store().exists());
}

#[test]
fn a_chunked_answer_is_read() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-1", Some(3600))
            .fault(EndpointFault::Chunked),
        "access-1",
    );
    assert_sent(&setup.send());
}

#[test]
fn hostile_token_endpoints_fail_cleanly_and_the_message_can_be_queued() {
    for (fault, expected) in [
        (EndpointFault::Garbage, "not a JSON object"),
        (EndpointFault::ServerError, "HTTP 500"),
        (EndpointFault::EndlessHeaders, "16 KiB"),
        (EndpointFault::Stall, "did not answer in time"),
    ] {
        let setup = with_refresh_file(
            TokenEndpoint::builder()
                .refresh_token("refresh-1")
                .fault(fault),
            "access-1",
        );
        let started = std::time::Instant::now();
        let output = setup.send();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{fault:?} took too long"
        );
        let said = stderr(&output);
        assert_eq!(code(&output), 75, "{fault:?}: {said}");
        assert!(said.contains(expected), "{fault:?}: {said}");
        assert!(
            !said.contains("refresh-1") && !said.contains("cli-secret"),
            "{said}"
        );
        assert_eq!(setup.logins(), 0);

        // A token endpoint that is down is a temporary failure: the
        // outbox keeps the message.
        if matches!(fault, EndpointFault::ServerError) {
            let spool = setup.path("spool");
            let output = setup.run(
                &["send", "-t", "--queue-on-failure", "--spool", &spool],
                MESSAGE,
            );
            assert_eq!(code(&output), 0, "{}", stderr(&output));
            assert!(stderr(&output).contains("queued"), "{}", stderr(&output));
        }
    }
}

#[test]
fn config_check_names_what_an_oauth_table_lacks() {
    let dir = TestDir::new("oauth-check");
    let config = dir.file(
        "config.toml",
        br#"[accounts.a]
host = "smtp.example.org"
[accounts.a.oauth]
provider = "yahoo"

[accounts.b]
host = "smtp.example.org"
user = "b@example.org"
password_env = "B_PW"
[accounts.b.oauth]
provider = "microsoft"
client_id = "id"
"#,
    );
    let output = common::tls_mailer(&["config", "check", "--config", &config], b"", &[]);
    assert_eq!(code(&output), 78);
    let said = format!("{}{}", stdout(&output), stderr(&output));
    for problem in [
        "oauth.provider \"yahoo\" is not known",
        "oauth needs client_id",
        "oauth needs user",
        "an [oauth] table: keep one",
    ] {
        assert!(said.contains(problem), "{problem}: {said}");
    }
}

/// A browser for the tests: fetches the link, trusting the test CA, and
/// follows the redirect back to the CLI's listener, as a browser would
/// once the user signed in.
fn browser(setup: &Setup) -> String {
    let script = format!(
        "#!/bin/sh\nexec python3 -c 'import ssl, sys, urllib.request\n\
         context = ssl.create_default_context(cafile=sys.argv[2])\n\
         urllib.request.urlopen(sys.argv[1], context=context, timeout=10).read()' \"$1\" {}\n",
        setup.path("ca.pem")
    );
    let path = setup.dir.file("browser.sh", script.as_bytes());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path
}

fn login_through_the_browser(setup: &Setup, extra: &[&str]) -> Output {
    let config = setup.path("config.toml");
    let state = setup.path("state");
    let browser = browser(setup);
    let mut args = vec![
        "oauth",
        "--config",
        &config,
        "--account",
        "work",
        "login",
        "--flow",
        "browser",
    ];
    args.extend_from_slice(extra);
    common::tls_mailer(
        &args,
        b"",
        &[("XDG_STATE_HOME", &state), ("BROWSER", &browser)],
    )
}

#[test]
fn a_browser_sign_in_exchanges_the_code_with_its_pkce_verifier() {
    let setup = Setup::new(
        TokenEndpoint::builder()
            .authorization_code()
            .scope("mail offline_access")
            .access_token("access-1", Some(3600)),
        "access-1",
        "",
    );
    let output = login_through_the_browser(&setup, &[]);
    assert_sent(&output);
    assert!(
        stderr(&output).contains(&setup.endpoint.authorize_url()),
        "{}",
        stderr(&output)
    );
    let requests = setup.endpoint.requests();
    let authorize = &requests[0];
    assert_eq!(authorize.method, "GET");
    assert_eq!(authorize.field("code_challenge_method"), Some("S256"));
    assert_eq!(authorize.field("scope"), Some("mail offline_access"));
    let redirect = authorize.field("redirect_uri").unwrap();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    let exchange = &requests[1];
    assert_eq!(exchange.field("grant_type"), Some("authorization_code"));
    assert_eq!(exchange.field("redirect_uri"), Some(redirect));
    assert!(exchange.field("code_verifier").unwrap().len() >= 43);
    assert!(setup.store_text().contains("refresh_token"));
    assert_sent(&setup.send());
    assert_eq!(setup.server.messages().len(), 1);
}

#[test]
fn a_browser_sign_in_refused_or_with_a_forged_state_stores_nothing() {
    let setup = Setup::new(
        TokenEndpoint::builder()
            .authorization_code()
            .deny_authorization(),
        "access-1",
        "",
    );
    let output = login_through_the_browser(&setup, &[]);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("access_denied"),
        "{}",
        stderr(&output)
    );
    assert!(!setup.store().exists());

    // A redirect with another state is not this sign-in's: ignored, so
    // the wait ends without a login.
    let setup = Setup::new(
        TokenEndpoint::builder().authorization_code().wrong_state(),
        "access-1",
        "",
    );
    let output = login_through_the_browser(&setup, &["--wait", "3"]);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("did not come back"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        setup.grants().iter().filter(|grant| *grant != "-").count(),
        0,
        "no code was exchanged"
    );
    assert!(!setup.store().exists());
}

#[test]
fn two_sends_at_once_renew_the_token_once() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-1", Some(3600)),
        "access-1",
    );
    setup.write_store("stale-token", now() - 10);
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let config = setup.path("config.toml");
            let state = setup.path("state");
            std::thread::spawn(move || {
                common::tls_mailer(
                    &["send", "--config", &config, "--account", "work", "-t"],
                    MESSAGE,
                    &[("XDG_STATE_HOME", &state)],
                )
            })
        })
        .collect();
    for send in sends {
        assert_sent(&send.join().unwrap());
    }
    assert_eq!(
        setup.grants(),
        ["refresh_token"],
        "one renewal for the four"
    );
    assert_eq!(setup.server.messages().len(), 4);
}

#[test]
fn config_check_connect_logs_in_with_a_renewed_token() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-1", Some(3600)),
        "access-1",
    );
    let config = setup.path("config.toml");
    let state = setup.path("state");
    let output = common::tls_mailer(
        &["config", "check", "--connect", "--config", &config],
        b"",
        &[("XDG_STATE_HOME", &state)],
    );
    let said = stdout(&output);
    assert_eq!(code(&output), 0, "{said}{}", stderr(&output));
    assert!(said.contains("oauth.client_secret_command"), "{said}");
    assert!(said.contains("work: ok: ") && said.contains(USER), "{said}");
    assert_eq!(setup.grants(), ["refresh_token"]);
    assert!(setup.server.messages().is_empty(), "nothing was sent");
}

#[test]
fn verbose_says_when_the_token_is_renewed_and_never_shows_a_secret() {
    let setup = with_refresh_file(
        TokenEndpoint::builder()
            .refresh_token("refresh-1")
            .access_token("access-1", Some(3600)),
        "access-1",
    );
    let output = setup.run(&["send", "-v", "-t"], MESSAGE);
    assert_sent(&output);
    let said = stderr(&output);
    assert!(
        said.contains(&format!(
            "* renewing the OAuth access token at {}",
            setup.endpoint.token_url()
        )),
        "{said}"
    );
    assert!(
        said.contains("POST ") && said.contains(": HTTP 200"),
        "{said}"
    );
    assert!(said.contains("C: AUTH XOAUTH2 <redacted>"), "{said}");
    for secret in ["refresh-1", "cli-secret", "access-1"] {
        assert!(!said.contains(secret), "{secret} in: {said}");
    }
}
