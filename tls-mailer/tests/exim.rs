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

/// Found by Exim: a BDAT chunk that crosses Exim's `message_size_limit`
/// gets `552 Message size exceeds maximum permitted`; Exim 4.96 answers
/// before it has read the rest of that chunk (against RFC 3030), takes the
/// leftover body lines for commands (`500 unrecognized command`) and drops
/// the connection, its last words not TLS records. The 552 is the message's
/// outcome all the same: `Error::Rejected`, as against Postfix, not the
/// broken TLS session that follows.
#[test]
#[ignore = "needs the Exim test instance: bash tests/servers/exim-up.sh"]
fn message_over_the_size_limit_is_refused_when_streamed() {
    real_servers::streamed_message_over_the_size_limit_is_refused_at_the_end(&Server::exim());
}
