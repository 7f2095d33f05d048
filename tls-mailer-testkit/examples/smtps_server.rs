//! A standalone implicit-TLS SMTP server on 127.0.0.1, for timing clients
//! that run as their own processes (the one-shot CLI send, curl) against the
//! same server. AUTH PLAIN/LOGIN as `bench`/`bench-password`.
//!
//! ```sh
//! cargo run --release -p tls-mailer-testkit --example smtps_server -- 127.0.0.1:10465 /tmp/bench-ca.pem
//! # one 100 MB message after another, none of them kept:
//! cargo run --release -p tls-mailer-testkit --example smtps_server -- \
//!     --max-size 209715200 --discard-bodies 127.0.0.1:10465 /tmp/bench-ca.pem
//! ```
//!
//! Options, before the address:
//! - `--max-size BYTES`: the SIZE limit advertised and enforced (default
//!   50 MiB; at most 200 MiB is ever held, see `--discard-bodies`).
//! - `--discard-bodies`: read every body (BDAT or DATA) and throw it away,
//!   so messages of any size are taken without being held.
//!
//! It writes the CA a client must trust to the given file, prints `ready`,
//! and serves until killed. Without `--discard-bodies` messages are kept in
//! memory.

use std::net::SocketAddr;
use std::time::Duration;

use tls_mailer_testkit::{Extensions, Mode, TestServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut extensions = Extensions::default();
    let mut discard = false;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max-size" => {
                let bytes = args.next().ok_or("--max-size needs a number of bytes")?;
                extensions.size = Some(bytes.parse()?);
            }
            "--discard-bodies" => discard = true,
            other if other.starts_with("--") => {
                return Err(format!("unknown option {other}").into());
            }
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let addr: SocketAddr = positional
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:10465")
        .parse()?;
    let ca_file = positional
        .next()
        .unwrap_or_else(|| "smtps-server-ca.pem".into());
    let mut builder = TestServer::builder()
        .mode(Mode::ImplicitTls)
        .bind(addr)
        .auth("bench", "bench-password")
        .extensions(extensions);
    if discard {
        builder = builder.discard_bodies();
    }
    let server = builder.start()?;
    std::fs::write(&ca_file, server.ca_pem())?;
    println!("ready: implicit TLS on {}, CA in {ca_file}", server.addr());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
