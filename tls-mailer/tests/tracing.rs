#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The library's `tracing` events: the conversation at TRACE under
//! `tls_mailer::wire` (credentials redacted), what the client does at
//! DEBUG and each accepted mail at INFO under `tls_mailer`; and nothing
//! at all costs the engine a trace line when no one listens.

use std::sync::{Arc, Mutex};

use tls_mailer::{Client, Credentials, Envelope, WIRE_TARGET};
use tls_mailer_testkit::TestServer;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

/// Every event as `LEVEL target direction: message`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String, String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.0 = format!("{value:?}"),
            "direction" => self.1 = format!("{value:?}"),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "direction" => self.1 = value.to_owned(),
            _ => self.record_debug(field, &value),
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut line = Line(String::new(), String::new());
        event.record(&mut line);
        let metadata = event.metadata();
        self.0.lock().unwrap().push(format!(
            "{} {} {}: {}",
            metadata.level(),
            metadata.target(),
            line.1,
            line.0
        ));
    }
}

#[test]
fn a_send_is_told_as_tracing_events_without_the_password() {
    let server = TestServer::builder()
        .auth("alice", "s3cret-pass")
        .start()
        .unwrap();
    let client = Client::builder("localhost")
        .port(server.port())
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .credentials(Credentials::new("alice", "s3cret-pass"))
        .build()
        .unwrap();
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let envelope = Envelope::new("alice@example.org", ["bob@example.org"]).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        client
            .send(&envelope, b"Subject: t\r\n\r\nhello\r\n")
            .unwrap();
    });
    let lines = recorder.0.lock().unwrap().clone();
    let text = lines.join("\n");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("TRACE {WIRE_TARGET} client: EHLO"))),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line == &format!("TRACE {WIRE_TARGET} client: AUTH PLAIN <redacted>")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("TRACE {WIRE_TARGET} server: 235"))),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("DEBUG tls_mailer : TLS established")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("INFO tls_mailer : accepted for 1 of 1 recipients: 250")),
        "{text}"
    );
    assert!(!text.contains("s3cret-pass"), "{text}");
    // The PLAIN response in base64 never shows either.
    use base64::Engine as _;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0alice\0s3cret-pass");
    assert!(!text.contains(&plain), "{text}");
}
