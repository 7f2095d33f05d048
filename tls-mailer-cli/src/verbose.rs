//! `-v`: the conversation on stderr (or stdout for the demo), written from
//! the library's `tracing` events: `C: ` for what the client sent, `S: `
//! for the server's lines, `* ` for what the client does.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

/// Where the transcript goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    Stdout,
}

/// Subscribes to the library's events for the rest of the process (a
/// second call changes nothing).
pub fn install(sink: Sink) {
    let filter = Targets::new().with_target("tls_mailer", tracing::Level::TRACE);
    let subscriber = tracing_subscriber::registry().with(Transcript { sink }.with_filter(filter));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct Transcript {
    sink: Sink,
}

impl<S: tracing::Subscriber> Layer<S> for Transcript {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let prefix = match fields.direction.as_deref() {
            Some("client") => "C: ",
            Some("server") => "S: ",
            _ => "* ",
        };
        let line = format!("{prefix}{}\n", fields.message);
        let _ = match self.sink {
            Sink::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
            Sink::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
        };
    }
}

/// The message of an event and its `direction`, if any.
#[derive(Default)]
struct Fields {
    message: String,
    direction: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "direction" => self.direction = Some(value.to_owned()),
            "message" => self.message.push_str(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "direction" => self.direction = Some(format!("{value:?}")),
            // The structured fields repeat what the message says.
            _ => {}
        }
    }
}
