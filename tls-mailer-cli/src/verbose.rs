//! `-v`: the conversation on stderr (or stdout for the demo).

use std::io::Write;

use tls_mailer::TraceEvent;

/// Formats one trace event as a line: `C: `, `S: ` or `* `.
pub fn line(event: &TraceEvent) -> String {
    match event {
        TraceEvent::Client(text) => format!("C: {text}"),
        TraceEvent::Server(text) => format!("S: {text}"),
        TraceEvent::Note(text) => format!("* {text}"),
        _ => format!("* {event:?}"),
    }
}

/// A trace sink printing to stderr.
pub fn to_stderr(event: &TraceEvent) {
    let _ = writeln!(std::io::stderr().lock(), "{}", line(event));
}

/// A trace sink printing to stdout.
pub fn to_stdout(event: &TraceEvent) {
    let _ = writeln!(std::io::stdout().lock(), "{}", line(event));
}
