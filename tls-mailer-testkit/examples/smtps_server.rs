//! A standalone implicit-TLS SMTP server on 127.0.0.1, for timing clients
//! that run as their own processes (the one-shot CLI send, curl) against the
//! same server. AUTH PLAIN/LOGIN as `bench`/`bench-password`.
//!
//! ```sh
//! cargo run --release -p tls-mailer-testkit --example smtps_server -- 127.0.0.1:10465 /tmp/bench-ca.pem
//! ```
//!
//! It writes the CA a client must trust to the given file, prints `ready`,
//! and serves until killed. Messages are kept in memory.

use std::net::SocketAddr;
use std::time::Duration;

use tls_mailer_testkit::{Mode, TestServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:10465")
        .parse()?;
    let ca_file = args.next().unwrap_or_else(|| "smtps-server-ca.pem".into());
    let server = TestServer::builder()
        .mode(Mode::ImplicitTls)
        .bind(addr)
        .auth("bench", "bench-password")
        .start()?;
    std::fs::write(&ca_file, server.ca_pem())?;
    println!("ready: implicit TLS on {}, CA in {ca_file}", server.addr());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
