//! The same client over tokio (the `tokio` feature): one message with
//! `Client::send_async`, then several over one `AsyncConnection`, which
//! pays for the TLS handshake and the login once.
//!
//! The server comes from the environment:
//!
//! | variable        | meaning                                                  |
//! |-----------------|----------------------------------------------------------|
//! | `SMTP_HOST`     | the server (default `localhost`)                         |
//! | `SMTP_PORT`     | its implicit-TLS port (default 465)                      |
//! | `SMTP_USER`     | log in as this user (optional)                           |
//! | `SMTP_PASSWORD` | the password, when `SMTP_USER` is set                    |
//! | `SMTP_CA_FILE`  | trust this PEM CA, and not the system store (optional)   |
//! | `MAIL_FROM`     | the sender address                                       |
//! | `MAIL_TO`       | the recipient of every message                           |
//!
//! ```sh
//! SMTP_HOST=smtp.example.org SMTP_USER=alice@example.org SMTP_PASSWORD=app-password \
//!     MAIL_FROM=alice@example.org MAIL_TO=bob@example.org \
//!     cargo run -p tls-mailer --features tokio --example async_send
//! ```

use std::error::Error;

use tls_mailer::Envelope;

// client_from_env and required: the server and the login from the SMTP_*
// variables above (examples/support/mod.rs).
mod support;
use support::{client_from_env, required};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let from = required("MAIL_FROM")?;
    let to = required("MAIL_TO")?;
    let envelope = Envelope::new(&from, [&to])?;
    let message = |subject: &str| {
        format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nSent over tokio.\r\n")
    };

    // Build the client once: its TLS configuration (and session cache) is
    // shared by every connection it opens.
    let client = client_from_env()?;

    // One message: connect, send, QUIT.
    let report = client
        .send_async(&envelope, message("Async message").as_bytes())
        .await?;
    println!("sent: {}", report.reply);

    // Several messages over one connection, then QUIT. A dropped
    // `AsyncConnection` only closes its socket: say `quit().await`.
    let mut connection = client.connect_async().await?;
    for n in 1..=3 {
        let subject = format!("Async batch {n}");
        match connection
            .send(&envelope, message(&subject).as_bytes())
            .await
        {
            Ok(report) => println!("{subject}: {}", report.reply),
            // Refused, but the connection is still usable: go on.
            Err(error) if connection.is_open() => eprintln!("{subject}: {error}"),
            Err(error) => return Err(error.into()),
        }
    }
    connection.quit().await?;
    Ok(())
}
