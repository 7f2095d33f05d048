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

use std::env;
use std::error::Error;

use tls_mailer::{Client, Credentials, Envelope};

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

/// A client for the server the environment names: implicit TLS (the
/// default; for a STARTTLS port add `.security(Security::StartTls)`).
fn client_from_env() -> Result<Client, Box<dyn Error>> {
    let host = env::var("SMTP_HOST").unwrap_or_else(|_| "localhost".to_string());
    let mut builder = Client::builder(host);
    if let Ok(port) = env::var("SMTP_PORT") {
        builder = builder.port(
            port.parse()
                .map_err(|_| format!("SMTP_PORT: not a port: {port}"))?,
        );
    }
    if let Ok(user) = env::var("SMTP_USER") {
        builder = builder.credentials(Credentials::new(user, required("SMTP_PASSWORD")?));
    }
    if let Ok(ca_file) = env::var("SMTP_CA_FILE") {
        // A server with a certificate from a private CA: trust that CA only.
        builder = builder
            .add_root_certificates_file(ca_file)?
            .system_roots(false);
    }
    Ok(builder.build()?)
}

/// The value of an environment variable that has no default.
fn required(name: &str) -> Result<String, Box<dyn Error>> {
    env::var(name).map_err(|_| format!("set {name} (see the top of this example)").into())
}
