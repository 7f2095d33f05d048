#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The library against a real Exim on loopback (tests/servers/exim-up.sh):
//! the matrix of real_servers/mod.rs, the same tests Postfix runs. Exim is an
//! independent implementation with its own replies, its own BDAT and
//! pipelining code, SMTPUTF8 and SIZE checks.
//! Every test is ignored by a plain `cargo test`; with the server up, run them
//! with `cargo test --workspace --locked -- --include-ignored` (as `.ci/run` does).

#[macro_use]
mod real_servers;

use real_servers::Server;

real_server_suite!(
    Server::exim(),
    "needs the Exim test instance: bash tests/servers/exim-up.sh"
);

/// Library bug, found by Exim: a BDAT chunk that crosses Exim's
/// `message_size_limit` gets `552 Message size exceeds maximum permitted`;
/// Exim 4.96 answers before it has read the rest of that chunk (against
/// RFC 3030), takes the leftover body lines for commands (`500 unrecognized
/// command`, three times, then it drops the connection, its last words not
/// TLS records). The client has the server's verdict (552) by then, yet
/// `send_reader` returns `Error::Tls { reason: "TLS handshake with localhost
/// failed: received corrupt message of type InvalidContentType" }`: the
/// verdict is lost, and the handshake had succeeded long before. Expected:
/// `Error::Rejected` with the 552, as against Postfix. `--include-ignored`
/// runs ignored tests, so the test also waits for
/// `TLS_MAILER_KNOWN_BUGS=1` (it says so when it does not run).
#[test]
#[ignore = "library bug: a 552 to a BDAT chunk is lost to the TLS error that follows (Exim does not consume the chunk); run with TLS_MAILER_KNOWN_BUGS=1"]
fn message_over_the_size_limit_is_refused_when_streamed() {
    if std::env::var_os("TLS_MAILER_KNOWN_BUGS").is_none() {
        eprintln!("not run: known library bug (see the comment); set TLS_MAILER_KNOWN_BUGS=1");
        return;
    }
    real_servers::streamed_message_over_the_size_limit_is_refused_at_the_end(&Server::exim());
}
