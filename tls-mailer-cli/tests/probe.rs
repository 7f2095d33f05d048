#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! `tls-mailer probe` against testkit servers on loopback: both modes, the
//! advice, the JSON, and that it never logs in.

mod common;

use common::{TestDir, code, stderr, stdout};
use tls_mailer_testkit::{CertKind, Mode, TestServer};

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn probe(
    dir: &TestDir,
    ca_pem: &str,
    implicit: u16,
    starttls: u16,
    extra: &[&str],
) -> std::process::Output {
    let ca = dir.file("ca.pem", ca_pem.as_bytes());
    let (implicit, starttls) = (implicit.to_string(), starttls.to_string());
    let mut args = vec![
        "probe",
        "localhost",
        "--implicit-port",
        &implicit,
        "--starttls-port",
        &starttls,
        "--ca-file",
        &ca,
        "--timeout",
        "5",
    ];
    args.extend_from_slice(extra);
    common::tls_mailer(&args, b"", &[])
}

#[test]
fn both_modes_are_shown_and_implicit_tls_is_recommended() {
    let dir = TestDir::new("probe");
    let implicit = TestServer::builder().auth("alice", "pw").start().unwrap();
    let starttls = TestServer::builder()
        .mode(Mode::StartTls)
        .ca(implicit.ca().clone())
        .auth("alice", "pw")
        .start()
        .unwrap();
    // A user and a password command are given: neither is used.
    let marker = dir.path.join("password-was-read");
    let command = format!("touch {}", marker.display());
    let output = probe(
        &dir,
        &implicit.ca_pem(),
        implicit.port(),
        starttls.port(),
        &["--user", "alice", "--password-command", &command],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "implicit (localhost port {}): usable",
            implicit.port()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "starttls (localhost port {}): usable",
            starttls.port()
        )),
        "{text}"
    );
    assert!(text.contains("names: localhost, 127.0.0.1, ::1"), "{text}");
    assert!(
        text.contains(&format!("pin: --pin-sha256 {}", implicit.spki_sha256())),
        "{text}"
    );
    assert!(text.contains("AUTH=PLAIN,LOGIN"), "{text}");
    assert!(
        text.contains(&format!(
            "recommendation: use implicit TLS on port {}",
            implicit.port()
        )),
        "{text}"
    );
    assert!(!marker.exists(), "the password command ran");
    for server in [&implicit, &starttls] {
        let transcript = server.transcript();
        assert!(
            !transcript.contains("C: AUTH") && !transcript.contains("C: MAIL"),
            "{transcript}"
        );
    }
}

#[test]
fn json_names_a_closed_implicit_port_and_recommends_starttls() {
    let dir = TestDir::new("probe-json");
    let starttls = TestServer::builder().mode(Mode::StartTls).start().unwrap();
    let output = probe(
        &dir,
        &starttls.ca_pem(),
        closed_port(),
        starttls.port(),
        &["--json"],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes[0]["mode"], "implicit");
    assert_eq!(modes[0]["usable"], false);
    assert!(
        modes[0]["error"].as_str().unwrap().contains("connect"),
        "{report}"
    );
    assert_eq!(modes[1]["mode"], "starttls");
    assert_eq!(modes[1]["usable"], true);
    assert_eq!(
        modes[1]["certificates"][0]["pin_sha256"],
        starttls.spki_sha256()
    );
    assert!(
        report["recommendation"]
            .as_str()
            .unwrap()
            .starts_with("use STARTTLS on port"),
        "{report}"
    );
}

#[test]
fn an_untrusted_certificate_is_shown_with_its_pin_and_exits_69() {
    let dir = TestDir::new("probe-untrusted");
    let server = TestServer::builder()
        .cert(CertKind::SelfSigned)
        .start()
        .unwrap();
    let output = probe(&dir, &server.ca_pem(), server.port(), closed_port(), &[]);
    assert_eq!(code(&output), 69, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("not usable"), "{text}");
    assert!(
        text.contains(&format!("pin: --pin-sha256 {}", server.spki_sha256())),
        "{text}"
    );
    assert!(text.contains("--ca-file, or pin the key shown"), "{text}");
    assert!(
        !server.transcript().contains("C: "),
        "{}",
        server.transcript()
    );
}

#[test]
fn discover_finds_the_servers_in_srv_records_and_probes_them() {
    use tls_mailer_testkit::dns::TestDns;
    let dir = TestDir::new("probe-discover");
    let implicit = TestServer::builder().start().unwrap();
    let starttls = TestServer::builder()
        .mode(Mode::StartTls)
        .ca(implicit.ca().clone())
        .start()
        .unwrap();
    let implicit_port = implicit.port();
    let starttls_port = starttls.port();
    let dns = TestDns::start(
        vec![
            (
                "_submissions._tcp.example.test",
                vec![(5, 0, implicit_port, "localhost")],
            ),
            (
                "_submission._tcp.example.test",
                vec![(5, 0, starttls_port, "localhost")],
            ),
        ],
        false,
    )
    .unwrap();
    let ca = dir.file("ca.pem", implicit.ca_pem().as_bytes());
    let dns_server = dns.address().to_string();
    let output = common::tls_mailer(
        &[
            "probe",
            "--discover",
            "example.test",
            "--dns-server",
            &dns_server,
            "--ca-file",
            &ca,
            "--json",
        ],
        b"",
        &[],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["discovered"][0]["port"], implicit_port);
    assert_eq!(report["discovered"][1]["mode"], "starttls");
    assert_eq!(report["modes"][0]["port"], implicit_port);
    assert_eq!(report["modes"][0]["usable"], true);
    assert_eq!(report["modes"][1]["port"], starttls_port);
    assert_eq!(report["modes"][1]["usable"], true);
    // A domain without the records: a clear error naming it.
    let output = common::tls_mailer(
        &[
            "probe",
            "--discover",
            "other.test",
            "--dns-server",
            &dns_server,
        ],
        b"",
        &[],
    );
    assert_eq!(code(&output), 68, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no _submissions._tcp"),
        "{}",
        stderr(&output)
    );
}
