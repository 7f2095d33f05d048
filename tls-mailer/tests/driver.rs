#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The blocking client against the testkit server over loopback TLS.

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tls_mailer::proto::{CommandKind, ProtocolError, Unsupported};
use tls_mailer::{
    Client, ClientBuilder, Credentials, Envelope, Error, RecipientPolicy, Security, Timeouts,
    TraceEvent,
};
use tls_mailer_testkit::{CertKind, Extensions, Fault, Mode, Stage, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const MESSAGE: &[u8] = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: test\r\n\r\nHello\r\n.leading dot\r\n";

fn server(mode: Mode) -> TestServer {
    TestServer::builder()
        .mode(mode)
        .auth(USER, PASSWORD)
        .start()
        .unwrap()
}

/// A client of `server` trusting only its CA, with short timeouts.
fn client(server: &TestServer, security: Security) -> ClientBuilder {
    Client::builder("localhost")
        .port(server.port())
        .security(security)
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(10)))
}

/// The server handles what the client wrote last asynchronously.
fn wait_for_transcript(server: &TestServer, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if server.transcript().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope::new("alice@example.org", recipients).unwrap()
}

fn traced(builder: ClientBuilder) -> (ClientBuilder, Arc<Mutex<Vec<TraceEvent>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    (
        builder.on_trace(move |event| sink.lock().unwrap().push(event.clone())),
        lines,
    )
}

#[test]
fn implicit_tls_send_with_auth() {
    let server = server(Mode::ImplicitTls);
    let (builder, trace) = traced(client(&server, Security::ImplicitTls));
    let report = builder
        .build()
        .unwrap()
        .send(&envelope(&["bob@example.org"]), MESSAGE)
        .unwrap();
    assert_eq!(report.security, Security::ImplicitTls);
    assert!(report.all_accepted());
    assert!(report.queue_id.is_some(), "{:?}", report.reply);
    let tls = report.tls.unwrap();
    assert!(tls.version.contains("TLSv1_3"), "{tls:?}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert!(received.tls);
    assert_eq!(received.auth_user.as_deref(), Some(USER));
    assert_eq!(received.mail_from, "alice@example.org");
    assert_eq!(received.rcpt_to, ["bob@example.org"]);
    assert_eq!(received.data, MESSAGE);
    // Credentials never appear in the trace, neither plain nor in base64.
    let trace = format!("{:?}", trace.lock().unwrap());
    assert!(trace.contains("AUTH PLAIN <redacted>"), "{trace}");
    assert!(!trace.contains(PASSWORD));
    assert!(!trace.contains("Y29ycmVjd"), "{trace}");
}

#[test]
fn starttls_send_says_ehlo_again() {
    let server = server(Mode::StartTls);
    let report = client(&server, Security::StartTls)
        .build()
        .unwrap()
        .send(&envelope(&["bob@example.org"]), MESSAGE)
        .unwrap();
    assert_eq!(report.security, Security::StartTls);
    assert!(report.tls.is_some());
    let received = &server.messages()[0];
    assert!(received.tls);
    assert_eq!(received.data, MESSAGE);
    let transcript = server.transcript();
    assert_eq!(transcript.matches("C: EHLO").count(), 2, "{transcript}");
    let starttls_at = transcript.find("C: STARTTLS").unwrap();
    assert!(transcript.find("C: AUTH").unwrap() > starttls_at);
}

#[test]
fn fallback_from_implicit_tls_to_required_starttls() {
    // The "implicit TLS" port speaks plaintext SMTP: the handshake fails, and
    // only then does the client go to the STARTTLS port.
    let plaintext = TestServer::builder().mode(Mode::Plaintext).start().unwrap();
    let starttls = server(Mode::StartTls);
    let (builder, trace) = traced(
        client(&starttls, Security::ImplicitTlsOrStartTls)
            .port(plaintext.port())
            .starttls_fallback_port(starttls.port()),
    );
    let report = builder
        .build()
        .unwrap()
        .send(&envelope(&["bob@example.org"]), MESSAGE)
        .unwrap();
    assert_eq!(report.security, Security::StartTls);
    assert_eq!(starttls.messages().len(), 1);
    assert!(plaintext.messages().is_empty());
    // Not one SMTP command went to the plaintext server (only the TLS
    // ClientHello, which it could not read).
    let transcript = plaintext.transcript();
    for command in ["C: EHLO", "C: AUTH", "C: MAIL", "C: RCPT"] {
        assert!(!transcript.contains(command), "{transcript}");
    }
    let trace = format!("{:?}", trace.lock().unwrap());
    assert!(trace.contains("trying STARTTLS"), "{trace}");
}

#[test]
fn fallback_when_the_implicit_port_is_closed() {
    let starttls = server(Mode::StartTls);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let report = client(&starttls, Security::ImplicitTlsOrStartTls)
        .port(closed_port)
        .starttls_fallback_port(starttls.port())
        .build()
        .unwrap()
        .send(&envelope(&["bob@example.org"]), MESSAGE)
        .unwrap();
    assert_eq!(report.security, Security::StartTls);
}

#[test]
fn fallback_still_requires_starttls() {
    let plaintext = TestServer::builder().mode(Mode::Plaintext).start().unwrap();
    let no_starttls = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .fault(Fault::NoStartTls)
        .start()
        .unwrap();
    let error = client(&no_starttls, Security::ImplicitTlsOrStartTls)
        .port(plaintext.port())
        .starttls_fallback_port(no_starttls.port())
        .build()
        .unwrap()
        .send(&envelope(&["bob@example.org"]), MESSAGE)
        .unwrap_err();
    let Error::FallbackFailed { starttls, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(
        matches!(**starttls, Error::Unsupported(Unsupported::StartTls)),
        "{error:?}"
    );
    assert!(no_starttls.messages().is_empty());
}

/// STARTTLS failures: nothing but EHLO, STARTTLS and QUIT reaches the server.
fn assert_nothing_sent(server: &TestServer) {
    assert!(server.messages().is_empty());
    let transcript = server.transcript();
    for forbidden in ["C: AUTH", "C: MAIL", "C: RCPT", "C: DATA", "C: BDAT"] {
        assert!(
            !transcript.contains(forbidden),
            "{forbidden} in\n{transcript}"
        );
    }
}

#[test]
fn starttls_not_advertised_fails_closed() {
    let server = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .fault(Fault::NoStartTls)
        .start()
        .unwrap();
    let error = client(&server, Security::StartTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::StartTls)),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert_nothing_sent(&server);
}

#[test]
fn starttls_refused_fails_closed() {
    let server = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .fault(Fault::RefuseStartTls)
        .start()
        .unwrap();
    let error = client(&server, Security::StartTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(&error, Error::Rejected(r) if r.command == CommandKind::StartTls),
        "{error:?}"
    );
    assert_nothing_sent(&server);
}

#[test]
fn starttls_response_injection_fails_closed() {
    let server = TestServer::builder()
        .mode(Mode::StartTls)
        .auth(USER, PASSWORD)
        .fault(Fault::InjectAfterStartTls(
            b"250-evil\r\n250 AUTH PLAIN\r\n".to_vec(),
        ))
        .start()
        .unwrap();
    let error = client(&server, Security::StartTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(error, Error::Protocol(ProtocolError::BytesAfterStartTls)),
        "{error:?}"
    );
    assert_nothing_sent(&server);
}

fn certificate_error(kind: CertKind) -> Error {
    let server = TestServer::builder()
        .cert(kind)
        .auth(USER, PASSWORD)
        .start()
        .unwrap();
    let error = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(server.messages().is_empty());
    assert!(
        !server.transcript().contains("C: "),
        "no SMTP byte before a verified handshake"
    );
    error
}

#[test]
fn untrusted_certificate_is_refused() {
    let error = certificate_error(CertKind::UntrustedCa);
    assert!(
        matches!(&error, Error::Tls { reason, .. } if reason.contains("not signed by a trusted authority")),
        "{error}"
    );
    assert!(!error.is_transient());
}

#[test]
fn expired_certificate_is_refused() {
    let error = certificate_error(CertKind::Expired);
    assert!(
        matches!(&error, Error::Tls { reason, .. } if reason.contains("expired")),
        "{error}"
    );
}

#[test]
fn wrong_host_certificate_is_refused() {
    let error = certificate_error(CertKind::WrongHost);
    assert!(
        matches!(&error, Error::Tls { reason, .. } if reason.contains("not valid for the name")),
        "{error}"
    );
}

#[test]
fn ip_address_target_is_verified_against_ip_san() {
    let server = server(Mode::ImplicitTls);
    let send = |host: &str| {
        Client::builder(host)
            .port(server.port())
            .system_roots(false)
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap()
            .credentials(Credentials::new(USER, PASSWORD))
            .build()
            .unwrap()
            .send(&envelope(&["b@x.org"]), MESSAGE)
    };
    send("127.0.0.1").unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[test]
#[ignore = "needs IPv6 loopback (::1)"]
fn ipv6_loopback() {
    let server = TestServer::builder()
        .bind("[::1]:0".parse().unwrap())
        .auth(USER, PASSWORD)
        .start()
        .expect("listen on [::1]: this test needs IPv6 loopback");
    Client::builder("::1")
        .port(server.port())
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .credentials(Credentials::new(USER, PASSWORD))
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn plaintext_is_refused_for_non_loopback_targets() {
    // 192.0.2.1 is TEST-NET-1: the check happens before any connection.
    let error = Client::builder("192.0.2.1")
        .security(Security::DangerousPlaintext)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(error, Error::PlaintextNotLoopback { .. }),
        "{error:?}"
    );
}

#[test]
fn plaintext_to_loopback_works_when_asked_for() {
    let server = server(Mode::Plaintext);
    let report = client(&server, Security::DangerousPlaintext)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap();
    assert_eq!(report.security, Security::DangerousPlaintext);
    assert!(report.tls.is_none());
    assert!(!server.messages()[0].tls);
}

#[test]
fn implicit_tls_against_plaintext_server_names_the_fix() {
    let server = server(Mode::Plaintext);
    let error = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(error, Error::WrongSecurity { port, expected: Security::ImplicitTls } if port == server.port()),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("answered in plaintext SMTP"), "{text}");
    assert!(text.contains("Security::StartTls"), "{text}");
}

#[test]
fn starttls_against_implicit_tls_port_times_out_with_a_hint() {
    let server = server(Mode::ImplicitTls);
    let error = client(&server, Security::StartTls)
        .timeouts(Timeouts::uniform(Duration::from_secs(1)))
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: tls_mailer::Phase::Greeting
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("implicit TLS"), "{error}");
    assert!(error.is_transient());
}

#[test]
fn partially_refused_recipients_are_reported() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(Fault::RejectRecipient {
            address: "nobody@example.org".into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        })
        .start()
        .unwrap();
    let report = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(
            &envelope(&["bob@example.org", "nobody@example.org"]),
            MESSAGE,
        )
        .unwrap();
    let refused: Vec<_> = report.rejected().collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].address, "nobody@example.org");
    assert_eq!(refused[0].reply.code().value(), 550);
    assert_eq!(server.messages()[0].rcpt_to, ["bob@example.org"]);
}

#[test]
fn all_or_none_sends_nothing_when_one_recipient_is_refused() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(Fault::RejectRecipient {
            address: "nobody@example.org".into(),
            code: 450,
            text: "4.2.0 try later".into(),
        })
        .start()
        .unwrap();
    let error = client(&server, Security::ImplicitTls)
        .recipient_policy(RecipientPolicy::AllOrNone)
        .build()
        .unwrap()
        .send(
            &envelope(&["bob@example.org", "nobody@example.org"]),
            MESSAGE,
        )
        .unwrap_err();
    let Error::RecipientsRejected(outcomes) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(outcomes.len(), 2);
    assert!(error.is_transient(), "every refusal was 4xx");
    assert!(server.messages().is_empty());
    // The policy waits for every recipient's reply: no body goes out.
    assert!(wait_for_transcript(&server, "C: QUIT"));
    let transcript = server.transcript();
    assert!(
        !transcript.contains("C: BDAT") && !transcript.contains("C: DATA"),
        "{transcript}"
    );
}

#[test]
fn every_recipient_refused_is_an_error() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(Fault::RejectRecipient {
            address: "nobody@example.org".into(),
            code: 550,
            text: "5.1.1 no".into(),
        })
        .start()
        .unwrap();
    let error = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(&envelope(&["nobody@example.org"]), MESSAGE)
        .unwrap_err();
    assert!(matches!(error, Error::RecipientsRejected(_)), "{error:?}");
    assert!(!error.is_transient());
    assert!(server.messages().is_empty());
}

#[test]
fn wrong_password_is_an_authentication_failure() {
    let server = server(Mode::ImplicitTls);
    let error = client(&server, Security::ImplicitTls)
        .credentials(Credentials::new(USER, "wrong"))
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(error.is_authentication_failure(), "{error:?}");
    assert!(!error.to_string().contains("wrong"));
    assert!(server.messages().is_empty());
}

#[test]
fn auth_login_when_plain_is_not_offered() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .auth_mechanisms(&["LOGIN"])
        .start()
        .unwrap();
    client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap();
    assert_eq!(server.messages()[0].auth_user.as_deref(), Some(USER));
}

/// The same message through DATA and through BDAT, with and without
/// pipelining, reaches the server byte for byte the same.
#[test]
fn data_and_bdat_deliver_the_same_bytes() {
    let mut message = b"Subject: transfer modes\n\n.\n..two\nbare LF\nbare CR\rCRLF\r\n".to_vec();
    message.extend((0..20_000).flat_map(|i| format!("line {i} .x\n").into_bytes()));
    message.extend_from_slice(b"no final newline");
    let mut received = Vec::new();
    for (chunking, pipelining) in [(false, false), (false, true), (true, false), (true, true)] {
        let server = TestServer::builder()
            .auth(USER, PASSWORD)
            .extensions(Extensions {
                chunking,
                pipelining,
                ..Extensions::default()
            })
            .start()
            .unwrap();
        client(&server, Security::ImplicitTls)
            .build()
            .unwrap()
            .send(&envelope(&["b@x.org"]), &message)
            .unwrap();
        let messages = server.messages();
        assert_eq!(messages[0].via_bdat, chunking);
        received.push(messages[0].data.clone());
    }
    assert!(received.windows(2).all(|pair| pair[0] == pair[1]));
    let text = String::from_utf8(received[0].clone()).unwrap();
    assert!(text.starts_with(
        "Subject: transfer modes\r\n\r\n.\r\n..two\r\nbare LF\r\nbare CR\r\nCRLF\r\n"
    ));
    assert!(text.ends_with("no final newline\r\n"));
    assert!(!text.replace("\r\n", "").contains(['\r', '\n']));
}

#[test]
fn message_over_size_limit_is_refused_before_sending() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            size: Some(1000),
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let error = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), &vec![b'x'; 2000])
        .unwrap_err();
    assert!(
        matches!(
            error,
            // The size on the wire: the message gets its final CRLF.
            Error::Unsupported(Unsupported::Size {
                size: 2002,
                limit: 1000
            })
        ),
        "{error:?}"
    );
    assert!(!server.transcript().contains("C: MAIL"));
}

#[test]
fn rejections_at_each_stage_are_typed() {
    for (stage, command, code) in [
        (Stage::MailFrom, CommandKind::MailFrom, 553),
        (Stage::Data, CommandKind::Data, 554),
        (Stage::DataEnd, CommandKind::DataEnd, 552),
        (Stage::DataEnd, CommandKind::DataEnd, 451),
    ] {
        for chunking in [false, true] {
            if stage == Stage::Data && chunking {
                continue;
            }
            let server = TestServer::builder()
                .auth(USER, PASSWORD)
                .extensions(Extensions {
                    chunking,
                    ..Extensions::default()
                })
                .fault(Fault::Reply {
                    stage,
                    code,
                    text: format!("{}.0.0 refused", code / 100),
                })
                .start()
                .unwrap();
            let error = client(&server, Security::ImplicitTls)
                .build()
                .unwrap()
                .send(&envelope(&["b@x.org"]), MESSAGE)
                .unwrap_err();
            let Error::Rejected(rejection) = &error else {
                panic!("{stage:?}: {error:?}")
            };
            assert_eq!(rejection.command, command);
            assert_eq!(rejection.code().value(), code);
            assert_eq!(error.is_transient(), code < 500);
            assert!(server.messages().is_empty());
        }
    }
}

#[test]
fn hostile_servers_fail_cleanly_and_quickly() {
    let quick = Timeouts::uniform(Duration::from_secs(2));
    type Check = fn(&Error) -> bool;
    let cases: Vec<(Fault, Check)> = vec![
        (
            Fault::Garbage {
                stage: Stage::Greeting,
                bytes: b"HTTP/1.1 400 Bad Request\r\n".to_vec(),
            },
            |e| matches!(e, Error::Protocol(ProtocolError::MalformedReply { .. })),
        ),
        (Fault::EndlessLine { stage: Stage::Ehlo }, |e| {
            matches!(e, Error::Protocol(ProtocolError::LineTooLong { .. }))
        }),
        (
            Fault::Stall {
                stage: Stage::RcptTo,
            },
            |e| {
                matches!(
                    e,
                    Error::Timeout {
                        phase: tls_mailer::Phase::RcptTo
                    }
                )
            },
        ),
        (
            Fault::Stall {
                stage: Stage::DataEnd,
            },
            |e| {
                matches!(
                    e,
                    Error::Timeout {
                        phase: tls_mailer::Phase::DataEnd
                    }
                )
            },
        ),
        (
            Fault::Drop {
                stage: Stage::MailFrom,
            },
            |e| {
                matches!(
                    e,
                    Error::Protocol(ProtocolError::ConnectionClosed { .. }) | Error::Io { .. }
                )
            },
        ),
        (
            Fault::Reply {
                stage: Stage::Greeting,
                code: 554,
                text: "5.7.1 go away".into(),
            },
            |e| matches!(e, Error::Rejected(r) if r.command == CommandKind::Greeting),
        ),
    ];
    for (fault, check) in cases {
        let label = format!("{fault:?}");
        let server = TestServer::builder()
            .auth(USER, PASSWORD)
            .fault(fault)
            .start()
            .unwrap();
        let started = std::time::Instant::now();
        let error = client(&server, Security::ImplicitTls)
            .timeouts(quick)
            .build()
            .unwrap()
            .send(&envelope(&["b@x.org"]), MESSAGE)
            .unwrap_err();
        assert!(check(&error), "{label}: {error:?}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{label} took {:?}",
            started.elapsed()
        );
        assert!(server.messages().is_empty(), "{label}");
    }
}

#[test]
fn bad_input_is_refused_before_connecting() {
    assert!(matches!(
        Client::builder("localhost")
            .ehlo_name("bad\r\nMAIL FROM:<x>")
            .build(),
        Err(Error::InvalidInput(_))
    ));
    assert!(Envelope::new("a@b", ["c@d>\r\nRCPT TO:<e@f"]).is_err());
    assert!(matches!(
        Client::builder("bad host").build(),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        Client::builder("localhost").add_root_certificates_pem(b"not a certificate"),
        Err(Error::Config(_))
    ));
}

#[test]
fn unknown_host_is_a_resolve_error() {
    let error = Client::builder("nonexistent.invalid")
        .timeouts(Timeouts::uniform(Duration::from_secs(5)))
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(matches!(error, Error::Resolve { .. }), "{error:?}");
}

#[test]
fn send_email_delivers_to_bcc_without_the_bcc_header() {
    use tls_mailer::{Content, Email};
    let server = server(Mode::ImplicitTls);
    let email = Email::new()
        .with_from("Jöran <alice@example.org>".parse().unwrap())
        .with_to("bob@example.org".parse().unwrap())
        .with_cc("carol@example.org".parse().unwrap())
        .with_bcc("secret-archive@example.org".parse().unwrap())
        .with_subject("Grüße")
        .with_text("Hello\n.\nBye\n")
        .with_html("<p>Hello <img src=\"cid:logo\"></p>")
        .with_inline(
            "logo",
            Content::from_bytes(vec![0x89, b'P', b'N', b'G', 0, 1, 2])
                .with_content_type("image/png")
                .unwrap(),
        )
        .unwrap()
        .with_attachment(
            "data.bin",
            Content::from_bytes((0..=255u8).collect::<Vec<_>>()),
        )
        .unwrap();
    let report = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send_email(&email)
        .unwrap();
    assert!(report.all_accepted());
    let received = &server.messages()[0];
    assert_eq!(received.mail_from, "alice@example.org");
    assert_eq!(
        received.rcpt_to,
        [
            "bob@example.org",
            "carol@example.org",
            "secret-archive@example.org"
        ]
    );
    let text = String::from_utf8_lossy(&received.data);
    assert!(!text.to_ascii_lowercase().contains("bcc:"), "{text}");
    assert!(!text.contains("secret-archive"), "{text}");
    let back = Email::parse(&received.data).unwrap();
    assert_eq!(back.subject(), Some("Grüße"));
    assert_eq!(back.text(), Some("Hello\n.\nBye\n"));
    assert_eq!(
        back.attachments()[0].data(),
        (0..=255u8).collect::<Vec<_>>()
    );
    assert_eq!(back.inline_parts()[0].cid(), Some("logo"));
}

#[test]
fn send_email_checks_the_required_sender() {
    use tls_mailer::Email;
    let server = server(Mode::ImplicitTls);
    let email = Email::new()
        .with_from("mallory@example.org".parse().unwrap())
        .with_to("bob@example.org".parse().unwrap())
        .with_text("hi\n");
    let error = client(&server, Security::ImplicitTls)
        .require_from("alice@example.org")
        .build()
        .unwrap()
        .send_email(&email)
        .unwrap_err();
    assert!(matches!(error, Error::Message(_)), "{error:?}");
    assert_eq!(server.connections(), 0, "refused before connecting");
    let no_recipient = Email::new()
        .with_from("alice@example.org".parse().unwrap())
        .with_text("hi\n");
    let error = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send_email(&no_recipient)
        .unwrap_err();
    assert!(error.to_string().contains("recipient"), "{error}");
}

#[test]
fn a_server_stalling_after_acceptance_does_not_fail_the_send() {
    let server = server_with_fault(Fault::Stall { stage: Stage::Quit });
    let started = std::time::Instant::now();
    let report = client(&server, Security::ImplicitTls)
        .timeouts(Timeouts::uniform(Duration::from_secs(2)))
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap();
    assert!(report.reply.is_positive());
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(server.messages().len(), 1);
}

fn server_with_fault(fault: Fault) -> TestServer {
    TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(fault)
        .start()
        .unwrap()
}

#[test]
fn starttls_with_a_bad_certificate_sends_no_credentials() {
    for kind in [
        CertKind::WrongHost,
        CertKind::UntrustedCa,
        CertKind::Expired,
    ] {
        let server = TestServer::builder()
            .mode(Mode::StartTls)
            .cert(kind)
            .auth(USER, PASSWORD)
            .start()
            .unwrap();
        let error = client(&server, Security::StartTls)
            .build()
            .unwrap()
            .send(&envelope(&["b@x.org"]), MESSAGE)
            .unwrap_err();
        assert!(matches!(error, Error::Tls { .. }), "{kind:?}: {error:?}");
        assert!(!error.is_transient());
        assert_nothing_sent(&server);
    }
}

// --- connections that outlive a message -------------------------------------

#[test]
fn one_connection_sends_accepted_refused_accepted_and_noops() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(Fault::RejectRecipient {
            address: "nobody@x.org".into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        })
        .start()
        .unwrap();
    let client = client(&server, Security::ImplicitTls).build().unwrap();
    let mut connection = client.connect().unwrap();
    assert!(connection.is_open());
    assert_eq!(connection.security(), Security::ImplicitTls);
    let first = connection.send(&envelope(&["b@x.org"]), MESSAGE).unwrap();
    let refused = connection
        .send(&envelope(&["nobody@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(&refused, Error::RecipientsRejected(outcomes) if outcomes.len() == 1),
        "{refused:?}"
    );
    assert!(
        connection.is_open(),
        "a refused mail leaves the connection usable"
    );
    connection.noop().unwrap();
    let third = connection.send(&envelope(&["c@x.org"]), MESSAGE).unwrap();
    assert_ne!(first.queue_id, third.queue_id);
    connection.quit().unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].rcpt_to, ["b@x.org"]);
    assert_eq!(messages[1].rcpt_to, ["c@x.org"]);
    assert_eq!(server.connections(), 1, "one TCP connection for all three");
    let transcript = server.transcript();
    assert_eq!(transcript.matches("C: AUTH").count(), 1);
    assert!(transcript.contains("C: NOOP"), "{transcript}");
    assert!(transcript.contains("C: RSET"), "{transcript}");
    assert!(wait_for_transcript(&server, "C: QUIT"));
}

#[test]
fn dropping_a_connection_says_quit() {
    let server = server(Mode::ImplicitTls);
    let client = client(&server, Security::ImplicitTls).build().unwrap();
    let connection = client.connect().unwrap();
    drop(connection);
    assert!(wait_for_transcript(&server, "C: QUIT"));
}

#[test]
fn a_connection_is_send_and_owns_its_settings() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let server = server(Mode::ImplicitTls);
    let connection = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .connect()
        .unwrap();
    // The client is gone; the connection lives on, and can move threads.
    assert_send(&connection);
    let report = std::thread::spawn(move || {
        let mut connection = connection;
        connection.send(&envelope(&["b@x.org"]), MESSAGE)
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(report.recipients.len(), 1);
}

// --- holes found by hostile servers -----------------------------------------

#[test]
fn a_certificate_failure_on_the_implicit_port_never_falls_back() {
    // A wrong certificate on 465 may be an interception: report it, and
    // never carry the mail to the STARTTLS port instead.
    let intercepted = TestServer::builder()
        .cert(CertKind::UntrustedCa)
        .start()
        .unwrap();
    let starttls = server(Mode::StartTls);
    let error = client(&starttls, Security::ImplicitTlsOrStartTls)
        .port(intercepted.port())
        .starttls_fallback_port(starttls.port())
        .build()
        .unwrap()
        .send(&envelope(&["bob@example.org"]), MESSAGE)
        .unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert_eq!(starttls.connections(), 0, "no attempt on the STARTTLS port");
    assert!(starttls.messages().is_empty());
}

#[test]
fn an_accepted_message_stays_accepted_when_421_follows_in_the_same_write() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .fault(Fault::CloseAfterAccept)
        .start()
        .unwrap();
    let report = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap();
    assert!(report.queue_id.is_some());
    assert_eq!(server.messages().len(), 1);
}

/// A server that reads the body 512 bytes per 50 ms keeps every write call
/// alive; the engine's whole-upload deadline ends it anyway.
#[test]
fn a_trickling_server_cannot_stretch_the_body_upload() {
    let server = TestServer::builder()
        .mode(Mode::Plaintext)
        .fault(Fault::TrickleBody)
        .start()
        .unwrap();
    let mut timeouts = Timeouts::uniform(Duration::from_secs(1));
    // After a 1 s allowance the upload must average 1 MiB/s; the server
    // takes about 10 KiB/s, each write still making progress.
    timeouts.min_upload_rate = 1 << 20;
    let client = Client::builder("127.0.0.1")
        .port(server.port())
        .security(Security::DangerousPlaintext)
        .timeouts(timeouts)
        .build()
        .unwrap();
    let size = 24u64 << 20;
    let mut body = std::io::Read::chain(
        &b"Subject: big\r\n\r\n"[..],
        std::io::repeat(b'a').take(size),
    );
    let started = std::time::Instant::now();
    let error = client
        .send_reader(
            &envelope(&["b@x.org"]),
            &mut body,
            tls_mailer::BodyInfo::default(),
        )
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: tls_mailer::Phase::DataBlock
            }
        ),
        "{error:?}"
    );
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(10),
        "failed after {elapsed:?}"
    );
    assert!(server.messages().is_empty());
}

// --- TLS options: pinned keys, client certificates, minimum version ----------

use tls_mailer::TlsVersion;
use tls_mailer_testkit::{TestServerBuilder, TlsVersions};

/// The pin of a key no test server has.
const UNRELATED_PIN: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

fn tls_server(
    mode: Mode,
    configure: impl FnOnce(TestServerBuilder) -> TestServerBuilder,
) -> TestServer {
    configure(TestServer::builder().mode(mode).auth(USER, PASSWORD))
        .start()
        .unwrap()
}

/// `security` for the server `mode`: implicit TLS or STARTTLS.
fn security_of(mode: Mode) -> Security {
    match mode {
        Mode::StartTls => Security::StartTls,
        _ => Security::ImplicitTls,
    }
}

/// A client of `server` that trusts no certificate authority at all: only
/// pins can make it accept a server.
fn pin_only_client(server: &TestServer, mode: Mode, pin: &str) -> ClientBuilder {
    Client::builder("localhost")
        .port(server.port())
        .security(security_of(mode))
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .timeouts(Timeouts::uniform(Duration::from_secs(10)))
        .pin_sha256(pin)
        .unwrap()
        .pin_only(true)
}

fn send_one(builder: ClientBuilder) -> Result<tls_mailer::SendReport, Error> {
    builder
        .build()?
        .send(&envelope(&["bob@example.org"]), MESSAGE)
}

/// The reason of an [`Error::Tls`], or a panic naming what came instead.
fn tls_reason(error: &Error) -> &str {
    match error {
        Error::Tls { reason, .. } => reason,
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}

/// The handshake failed on both sides and nothing but (at most) EHLO and
/// STARTTLS reached the server: no credentials, no message.
fn assert_refused_before_smtp(server: &TestServer) {
    assert_nothing_sent(server);
    let transcript = server.transcript();
    assert!(!transcript.contains("-- TLS established"), "{transcript}");
}

#[test]
fn a_pinned_key_that_matches_is_accepted_in_both_modes() {
    for mode in [Mode::ImplicitTls, Mode::StartTls] {
        let server = tls_server(mode, |builder| builder);
        // A pin for the next key may sit beside the current one.
        let report = send_one(
            client(&server, security_of(mode))
                .pin_sha256(UNRELATED_PIN)
                .unwrap()
                .pin_sha256(&server.spki_sha256())
                .unwrap(),
        )
        .unwrap();
        assert!(report.all_accepted(), "{mode:?}");
        assert_eq!(server.messages().len(), 1, "{mode:?}");
        // curl's form is accepted too.
        send_one(
            client(&server, security_of(mode))
                .pin_sha256(&format!("sha256//{}", server.spki_sha256()))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(server.messages().len(), 2, "{mode:?}");
    }
}

#[test]
fn a_pin_mismatch_is_refused_in_both_modes_naming_both_keys() {
    for mode in [Mode::ImplicitTls, Mode::StartTls] {
        let server = tls_server(mode, |builder| builder);
        // The chain and host name verify; only the key is not the pinned one.
        let error = send_one(
            client(&server, security_of(mode))
                .pin_sha256(UNRELATED_PIN)
                .unwrap(),
        )
        .unwrap_err();
        let reason = tls_reason(&error);
        assert!(
            reason.contains(&format!("expected {UNRELATED_PIN}")),
            "{reason}"
        );
        assert!(
            reason.contains(&format!("the server presented {}", server.spki_sha256())),
            "{reason}"
        );
        assert!(!error.is_transient());
        assert_refused_before_smtp(&server);
        if mode == Mode::ImplicitTls {
            assert!(
                !server.transcript().contains("C: "),
                "{}",
                server.transcript()
            );
        }
    }
}

#[test]
fn a_pin_does_not_replace_the_certificate_authority_by_default() {
    // The right pin, but a self-signed certificate and pins checked in
    // addition to the chain: refused for the chain.
    let server = tls_server(Mode::ImplicitTls, |builder| {
        builder.cert(CertKind::SelfSigned)
    });
    let error = send_one(
        client(&server, Security::ImplicitTls)
            .pin_sha256(&server.spki_sha256())
            .unwrap(),
    )
    .unwrap_err();
    assert!(
        tls_reason(&error).contains("not signed by a trusted authority"),
        "{error}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn pin_only_accepts_an_untrusted_server_with_the_right_pin() {
    // Self-signed, signed by a CA nobody trusts, or even for another host
    // name: with pin-only, the key alone decides.
    for (mode, kind) in [
        (Mode::ImplicitTls, CertKind::SelfSigned),
        (Mode::ImplicitTls, CertKind::UntrustedCa),
        (Mode::ImplicitTls, CertKind::WrongHost),
        (Mode::StartTls, CertKind::SelfSigned),
        (Mode::StartTls, CertKind::UntrustedCa),
    ] {
        let server = tls_server(mode, |builder| builder.cert(kind));
        let report = send_one(pin_only_client(&server, mode, &server.spki_sha256()))
            .unwrap_or_else(|error| panic!("{mode:?} {kind:?}: {error}"));
        assert!(report.tls.is_some());
        let received = server.messages();
        assert_eq!(received.len(), 1, "{mode:?} {kind:?}");
        assert_eq!(received[0].auth_user.as_deref(), Some(USER));
    }
}

#[test]
fn pin_only_refuses_an_untrusted_server_with_a_wrong_pin() {
    for mode in [Mode::ImplicitTls, Mode::StartTls] {
        let server = tls_server(mode, |builder| builder.cert(CertKind::UntrustedCa));
        let error = send_one(pin_only_client(&server, mode, UNRELATED_PIN)).unwrap_err();
        let reason = tls_reason(&error);
        assert!(reason.contains("pin-only"), "{reason}");
        assert!(reason.contains(UNRELATED_PIN), "{reason}");
        assert!(reason.contains(&server.spki_sha256()), "{reason}");
        assert!(!error.is_transient());
        assert_refused_before_smtp(&server);
    }
}

#[test]
fn pin_only_without_a_pin_and_malformed_pins_are_refused_before_connecting() {
    let error = Client::builder("localhost")
        .pin_only(true)
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, Error::Config(message) if message.contains("needs at least one pin")),
        "{error}"
    );
    for (bad, says) in [
        ("not base64!", "is not base64"),
        ("c2hvcnQ=", "decodes to 5 bytes"),
        ("", "decodes to 0 bytes"),
    ] {
        let error = Client::builder("localhost").pin_sha256(bad).unwrap_err();
        assert!(
            matches!(&error, Error::Config(message) if message.contains(says) && message.contains("SHA-256")),
            "{bad:?}: {error}"
        );
    }
}

#[test]
fn a_required_client_certificate_is_presented_in_both_modes() {
    for mode in [Mode::ImplicitTls, Mode::StartTls] {
        let server = tls_server(mode, TestServerBuilder::require_client_cert);
        let identity = server.ca().client_cert("alice's laptop");
        send_one(
            client(&server, security_of(mode))
                .client_certificate(identity.cert_pem.as_bytes(), identity.key_pem.as_bytes())
                .unwrap(),
        )
        .unwrap_or_else(|error| panic!("{mode:?}: {error}"));
        let received = server.messages();
        assert_eq!(
            received[0].client_subject.as_deref(),
            Some("CN=alice's laptop"),
            "{mode:?}"
        );
        assert!(
            server
                .transcript()
                .contains("-- client certificate: CN=alice's laptop"),
            "{}",
            server.transcript()
        );
        // The same from files.
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity.write_pem_files(dir.path()).unwrap();
        send_one(
            client(&server, security_of(mode))
                .client_certificate_files(&cert, &key)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(server.messages().len(), 2);
    }
}

#[test]
fn a_missing_client_certificate_is_a_tls_error_in_both_modes_and_versions() {
    // TLS 1.2 refuses within the handshake; TLS 1.3 after the client's last
    // handshake message, with an alert on the first read.
    for versions in [TlsVersions::Both, TlsVersions::Tls12Only] {
        for mode in [Mode::ImplicitTls, Mode::StartTls] {
            let server = tls_server(mode, |builder| {
                builder.require_client_cert().tls_versions(versions)
            });
            let error = send_one(client(&server, security_of(mode))).unwrap_err();
            let reason = tls_reason(&error);
            assert!(
                reason.contains("requires a client certificate")
                    && reason.contains("none was given"),
                "{versions:?} {mode:?}: {reason}"
            );
            assert!(!error.is_transient());
            assert_refused_before_smtp(&server);
        }
    }
}

#[test]
fn a_client_certificate_from_another_authority_is_refused() {
    for mode in [Mode::ImplicitTls, Mode::StartTls] {
        // Another CA of the same name (the signature does not verify), and
        // one of another name (no issuer found).
        for stranger in [
            tls_mailer_testkit::TestCa::new(),
            tls_mailer_testkit::TestCa::named("another CA"),
        ] {
            let server = tls_server(mode, TestServerBuilder::require_client_cert);
            let identity = stranger.client_cert("mallory");
            let error = send_one(
                client(&server, security_of(mode))
                    .client_certificate(identity.cert_pem.as_bytes(), identity.key_pem.as_bytes())
                    .unwrap(),
            )
            .unwrap_err();
            let reason = tls_reason(&error);
            assert!(
                reason.contains("refused the client certificate"),
                "{mode:?}: {reason}"
            );
            assert!(!error.is_transient());
            assert_refused_before_smtp(&server);
        }
    }
}

#[test]
fn unusable_client_certificates_are_refused_before_connecting() {
    let ca = tls_mailer_testkit::TestCa::new();
    let (one, other) = (ca.client_cert("one"), ca.client_cert("other"));
    let refused = |cert: &str, key: &str| match Client::builder("localhost")
        .client_certificate(cert.as_bytes(), key.as_bytes())
    {
        Err(Error::Config(message)) => message,
        Err(other) => panic!("expected Error::Config, got {other:?}"),
        Ok(_) => panic!("accepted"),
    };
    let swapped = refused(&one.key_pem, &one.cert_pem);
    assert!(swapped.contains("no certificate found"), "{swapped}");
    let no_key = refused(&one.cert_pem, &one.cert_pem);
    assert!(no_key.contains("no private key found"), "{no_key}");
    let mismatched = refused(&one.cert_pem, &other.key_pem);
    assert!(mismatched.contains("does not belong"), "{mismatched}");
    let encrypted = refused(
        &one.cert_pem,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    assert!(encrypted.contains("encrypted"), "{encrypted}");
    let missing = Client::builder("localhost")
        .client_certificate_files("/nonexistent/client.pem", "/nonexistent/client.key")
        .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/client.pem"),
        "{missing}"
    );
}

#[test]
fn a_tls13_minimum_refuses_a_tls12_only_server_in_both_modes() {
    for mode in [Mode::ImplicitTls, Mode::StartTls] {
        let server = tls_server(mode, |builder| builder.tls_versions(TlsVersions::Tls12Only));
        let error = send_one(client(&server, security_of(mode)).min_tls_version(TlsVersion::Tls13))
            .unwrap_err();
        let reason = tls_reason(&error);
        assert!(
            reason.contains("no TLS version in common") && reason.contains("TLS 1.3 only"),
            "{mode:?}: {reason}"
        );
        assert!(!error.is_transient());
        assert_refused_before_smtp(&server);
        // The default minimum, TLS 1.2, accepts it.
        let report = send_one(client(&server, security_of(mode))).unwrap();
        assert_eq!(report.tls.unwrap().version, "TLSv1_2", "{mode:?}");
    }
    // And a TLS 1.3 server is fine with a TLS 1.3 minimum.
    let server = tls_server(Mode::ImplicitTls, |builder| {
        builder.tls_versions(TlsVersions::Tls13Only)
    });
    let report =
        send_one(client(&server, Security::ImplicitTls).min_tls_version(TlsVersion::Tls13))
            .unwrap();
    assert_eq!(report.tls.unwrap().version, "TLSv1_3");
}

#[test]
fn a_client_key_never_shows_in_debug_output() {
    let identity = tls_mailer_testkit::TestCa::new().client_cert("debug");
    let builder = Client::builder("localhost")
        .system_roots(false)
        .pin_sha256(UNRELATED_PIN)
        .unwrap()
        .pin_only(true)
        .client_certificate(identity.cert_pem.as_bytes(), identity.key_pem.as_bytes())
        .unwrap();
    let key_line = identity.key_pem.lines().nth(1).unwrap();
    let shown = format!("{builder:?}");
    let shown = format!("{shown} {:?}", builder.build().unwrap());
    assert!(!shown.contains(key_line), "{shown}");
}

#[test]
fn dsn_and_requiretls_reach_the_server_as_mail_and_rcpt_parameters() {
    use tls_mailer::{Address, Dsn, DsnReturn, MailOptions, Notify, RecipientDsn};
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            requiretls: true,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let bob = Address::new("bob@example.org").unwrap();
    let dsn = Dsn::new()
        .notify(Notify::SUCCESS | Notify::FAILURE)
        .ret(DsnReturn::Headers)
        .envid("e+1 x")
        .unwrap()
        .recipient(&bob, RecipientDsn::new().orcpt(&bob).unwrap());
    let options = MailOptions::new().with_dsn(dsn).with_require_tls(true);
    let envelope = envelope(&["bob@example.org", "carol@example.org"]);
    let report = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .send_with(&envelope, MESSAGE, &options)
        .unwrap();
    assert!(report.all_accepted());
    let messages = server.messages();
    let received = &messages[0];
    assert_eq!(
        received.mail_params,
        ["SIZE=84", "RET=HDRS", "ENVID=e+2B1+20x", "REQUIRETLS"]
    );
    assert_eq!(
        received.rcpt_params,
        [
            vec!["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.org"],
            vec!["NOTIFY=SUCCESS,FAILURE"],
        ]
    );
}

#[test]
fn dsn_not_offered_is_refused_before_mail_unless_optional() {
    use tls_mailer::{Dsn, MailOptions, Notify};
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            dsn: false,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let mut connection = client(&server, Security::ImplicitTls)
        .build()
        .unwrap()
        .connect()
        .unwrap();
    let options = MailOptions::new().with_dsn(Dsn::new().notify(Notify::NEVER));
    let error = connection
        .send_with(&envelope(&["b@x.org"]), MESSAGE, &options)
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::Dsn)),
        "{error:?}"
    );
    assert!(!server.transcript().contains("C: MAIL"));
    // The connection is still usable; optional DSN goes without parameters.
    let optional = options.with_dsn_optional(true);
    connection
        .send_with(&envelope(&["b@x.org"]), MESSAGE, &optional)
        .unwrap();
    connection.quit().unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_params, ["SIZE=84"]);
    assert_eq!(messages[0].rcpt_params, [Vec::<String>::new()]);
}

#[test]
fn requiretls_is_refused_by_a_server_without_it_and_over_plaintext() {
    use tls_mailer::MailOptions;
    let require = MailOptions::new().with_require_tls(true);
    // Implicit TLS, REQUIRETLS not offered: the client's options apply to send().
    let server = server(Mode::ImplicitTls);
    let error = client(&server, Security::ImplicitTls)
        .mail_options(require.clone())
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::RequireTls)),
        "{error:?}"
    );
    assert!(!server.transcript().contains("C: MAIL"));
    // Plaintext: refused whatever the server says.
    let server = TestServer::builder()
        .mode(Mode::Plaintext)
        .extensions(Extensions {
            requiretls: true,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let error = Client::builder("localhost")
        .port(server.port())
        .security(Security::DangerousPlaintext)
        .build()
        .unwrap()
        .send_with(&envelope(&["b@x.org"]), MESSAGE, &require)
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::RequireTlsWithoutTls)),
        "{error:?}"
    );
    assert!(error.to_string().contains("not encrypted"), "{error}");
    assert!(!server.transcript().contains("C: MAIL"));
}

#[test]
fn an_eight_bit_message_is_refused_by_a_server_without_8bitmime() {
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            eight_bit_mime: false,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let client = client(&server, Security::ImplicitTls).build().unwrap();
    let error = client
        .send(
            &envelope(&["b@x.org"]),
            "Subject: café\r\n\r\nçà\r\n".as_bytes(),
        )
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::EightBitMime)),
        "{error:?}"
    );
    assert!(!server.transcript().contains("C: MAIL"));
    // A 7-bit message goes, without BODY=8BITMIME.
    client.send(&envelope(&["b@x.org"]), MESSAGE).unwrap();
    assert_eq!(server.messages()[0].mail_params, ["SIZE=84"]);
}

#[test]
fn a_binary_message_arrives_byte_for_byte_with_binarymime_and_is_refused_without() {
    let message: &[u8] = b"Subject: png\r\n\r\n\x89PNG\r\n\x1a\n\0\0\r.\n\xff";
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            binary_mime: true,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let binary_client = client(&server, Security::ImplicitTls).build().unwrap();
    binary_client
        .send(&envelope(&["b@x.org"]), message)
        .unwrap();
    let received = &server.messages()[0];
    assert_eq!(
        received.data, message,
        "no line end normalised, nothing added"
    );
    assert!(received.via_bdat);
    assert_eq!(
        received.mail_params,
        [format!("SIZE={}", message.len()), "BODY=BINARYMIME".into()]
    );
    // Streamed and declared binary: the same bytes.
    let info = tls_mailer::BodyInfo {
        binary: true,
        ..tls_mailer::BodyInfo::sized(Some(message.len() as u64))
    };
    binary_client
        .send_reader(&envelope(&["b@x.org"]), &mut &message[..], info)
        .unwrap();
    assert_eq!(server.messages()[1].data, message);

    // Without BINARYMIME: refused before MAIL, and the error says what to do.
    let plain = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let error = client(&plain, Security::ImplicitTls)
        .build()
        .unwrap()
        .send(&envelope(&["b@x.org"]), message)
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::BinaryMime)),
        "{error:?}"
    );
    assert!(error.to_string().contains("base64"), "{error}");
    assert!(!plain.transcript().contains("C: MAIL"));
}

#[test]
fn an_oauth_access_token_logs_in_with_xoauth2_or_oauthbearer_and_a_bad_one_is_refused() {
    const TOKEN: &str = "ya29.a0AfH6SMBx-token";
    for mechanism in ["XOAUTH2", "OAUTHBEARER"] {
        let server = TestServer::builder()
            .auth("alice@example.org", TOKEN)
            .auth_mechanisms(&["PLAIN", mechanism])
            .start()
            .unwrap();
        let with = |token: &str| {
            client(&server, Security::ImplicitTls)
                .credentials(Credentials::bearer_token("alice@example.org", token))
                .build()
                .unwrap()
        };
        let report = with(TOKEN).send(&envelope(&["bob@example.org"]), MESSAGE);
        assert!(report.is_ok(), "{mechanism}: {report:?}");
        let error = with("expired-token")
            .send(&envelope(&["bob@example.org"]), MESSAGE)
            .unwrap_err();
        assert!(
            matches!(&error, Error::Rejected(r) if r.is_authentication_failure()),
            "{mechanism}: {error:?}"
        );
        let messages = server.messages();
        assert_eq!(messages.len(), 1, "{mechanism}");
        assert_eq!(messages[0].auth_user.as_deref(), Some("alice@example.org"));
        let transcript = server.transcript();
        assert_eq!(
            transcript.matches(&format!("C: AUTH {mechanism}")).count(),
            2
        );
        assert!(!transcript.contains("C: AUTH PLAIN"), "{transcript}");
    }
}

/// SCRAM-SHA-256-PLUS against a server that computes the TLS exporter on
/// its own side: bound over TLS 1.3; over TLS 1.2 there is no exporter, so
/// plain SCRAM (which that server also offers) is used instead.
#[test]
fn scram_plus_binds_the_login_to_the_tls_session_over_tls_1_3() {
    use tls_mailer::Mechanism;
    use tls_mailer_testkit::TlsVersions;
    for (versions, expected) in [
        (TlsVersions::Tls13Only, "C: AUTH SCRAM-SHA-256-PLUS"),
        (TlsVersions::Tls12Only, "C: AUTH SCRAM-SHA-256 "),
    ] {
        let server = TestServer::builder()
            .auth(USER, PASSWORD)
            .auth_mechanisms(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
            .tls_versions(versions)
            .start()
            .unwrap();
        let report = client(&server, Security::ImplicitTls)
            .auth_mechanisms(&[Mechanism::ScramSha256Plus, Mechanism::ScramSha256])
            .build()
            .unwrap()
            .send(&envelope(&["bob@example.org"]), MESSAGE);
        assert!(report.is_ok(), "{versions:?}: {report:?}");
        assert_eq!(server.messages()[0].auth_user.as_deref(), Some(USER));
        let transcript = server.transcript();
        assert!(transcript.contains(expected), "{versions:?}: {transcript}");
    }
    // Only -PLUS offered, over TLS 1.2: nothing the client can bind with.
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .auth_mechanisms(&["SCRAM-SHA-256-PLUS"])
        .tls_versions(TlsVersions::Tls12Only)
        .start()
        .unwrap();
    let error = client(&server, Security::ImplicitTls)
        .auth_mechanisms(&[Mechanism::ScramSha256Plus, Mechanism::ScramSha256])
        .build()
        .unwrap()
        .send(&envelope(&["bob@example.org"]), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(Unsupported::Auth { .. })),
        "{error:?}"
    );
}

/// The mechanisms that prove the password without sending it: each logs
/// in, keeps the password off the wire, and a wrong password is refused.
#[test]
fn scram_and_cram_md5_log_in_and_a_wrong_password_is_refused() {
    for mechanism in ["SCRAM-SHA-256", "CRAM-MD5"] {
        let server = TestServer::builder()
            .auth(USER, PASSWORD)
            .auth_mechanisms(&[mechanism])
            .start()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let report = client(&server, Security::ImplicitTls)
            .on_trace(move |event| {
                if let TraceEvent::Client(line) = event {
                    sink.lock().unwrap().push(line.clone());
                }
            })
            .build()
            .unwrap()
            .send(&envelope(&["bob@example.org"]), MESSAGE);
        assert!(report.is_ok(), "{mechanism}: {report:?}");
        assert_eq!(server.messages()[0].auth_user.as_deref(), Some(USER));
        let sent = lines.lock().unwrap().join("\n");
        assert!(sent.contains(&format!("AUTH {mechanism}")), "{sent}");
        let error = client(&server, Security::ImplicitTls)
            .credentials(Credentials::new(USER, "wrong password"))
            .build()
            .unwrap()
            .send(&envelope(&["bob@example.org"]), MESSAGE)
            .unwrap_err();
        assert!(
            matches!(&error, Error::Rejected(r) if r.is_authentication_failure()),
            "{mechanism}: {error:?}"
        );
        assert_eq!(server.messages().len(), 1);
    }
}

#[test]
fn probe_shows_tls_certificate_and_capabilities_and_never_logs_in() {
    let server = TestServer::builder().auth(USER, PASSWORD).start().unwrap();
    let probe = client(&server, Security::ImplicitTls).probe();
    assert!(probe.is_usable(), "{:?}", probe.error);
    assert_eq!(
        (probe.security, probe.port),
        (Security::ImplicitTls, server.port())
    );
    assert!(
        probe.greeting.as_deref().unwrap().starts_with("220 "),
        "{probe:?}"
    );
    let capabilities = probe.capabilities.as_ref().unwrap();
    assert_eq!(capabilities.auth_mechanisms, ["PLAIN", "LOGIN"]);
    assert!(capabilities.chunking && capabilities.dsn);
    assert!(probe.tls.as_ref().unwrap().version.starts_with("TLSv1_"));
    let leaf = &probe.certificates[0];
    assert!(leaf.names.contains(&"localhost".to_owned()), "{leaf:?}");
    assert!(leaf.names.contains(&"127.0.0.1".to_owned()), "{leaf:?}");
    assert_eq!(leaf.pin, server.spki_sha256());
    // Credentials were given to the builder: the probe never uses them.
    let transcript = server.transcript();
    assert!(!transcript.contains("C: AUTH"), "{transcript}");
    assert!(transcript.contains("C: QUIT"), "{transcript}");
    assert!(server.messages().is_empty());
}

#[test]
fn probe_keeps_the_chain_that_does_not_verify_and_names_a_wrong_mode() {
    for kind in [
        CertKind::UntrustedCa,
        CertKind::Expired,
        CertKind::WrongHost,
    ] {
        let server = TestServer::builder().cert(kind).start().unwrap();
        let probe = client(&server, Security::ImplicitTls).probe();
        assert!(
            matches!(probe.error, Some(Error::Tls { .. })),
            "{kind:?}: {:?}",
            probe.error
        );
        assert_eq!(probe.certificates.len(), 1, "{kind:?}");
        assert_eq!(probe.certificates[0].pin, server.spki_sha256(), "{kind:?}");
        assert!(probe.capabilities.is_none() && probe.greeting.is_none());
        // Nothing but the handshake: no SMTP byte crossed.
        assert!(
            !server.transcript().contains("C: "),
            "{}",
            server.transcript()
        );
    }
    // A STARTTLS port probed for implicit TLS: the error says so.
    let starttls = TestServer::builder().mode(Mode::StartTls).start().unwrap();
    let probe = client(&starttls, Security::ImplicitTls).probe();
    assert!(
        matches!(probe.error, Some(Error::WrongSecurity { .. })),
        "{:?}",
        probe.error
    );
    assert!(probe.certificates.is_empty());
    // Probed for STARTTLS: the greeting is the plaintext one, the
    // capabilities those after TLS.
    let probe = client(&starttls, Security::StartTls).probe();
    assert!(probe.is_usable(), "{:?}", probe.error);
    assert!(probe.greeting.unwrap().starts_with("220 "));
    assert!(!probe.capabilities.unwrap().starttls);
    assert_eq!(probe.certificates.len(), 1);
}

/// A server that discards bodies (the benchmarks' big messages) still reads
/// a DATA body to its final dot, un-stuffs it and counts it, but keeps none
/// of it; a server that keeps bodies gets the same bytes.
#[test]
fn a_discarding_server_counts_a_data_body_without_keeping_it() {
    let mut body = b"Subject: many lines\r\n\r\n".to_vec();
    for n in 0..5000 {
        body.extend_from_slice(
            format!(".line {n} of a body long enough to need many reads\r\n").as_bytes(),
        );
    }
    let data_only = Extensions {
        chunking: false,
        ..Extensions::default()
    };
    for discard in [false, true] {
        let mut builder = TestServer::builder()
            .auth(USER, PASSWORD)
            .extensions(data_only);
        if discard {
            builder = builder.discard_bodies();
        }
        let server = builder.start().unwrap();
        let report = client(&server, Security::ImplicitTls)
            .build()
            .unwrap()
            .send(&envelope(&["bob@example.org"]), &body)
            .unwrap();
        assert!(report.all_accepted());
        let messages = server.messages();
        assert_eq!(messages.len(), 1);
        assert!(!messages[0].via_bdat);
        let kept: &[u8] = if discard { b"" } else { &body };
        assert_eq!(messages[0].data, kept);
        let counted = format!("C: <message: {} bytes>", body.len());
        assert!(server.transcript().contains(&counted), "{counted}");
    }
}
