//! Many messages from many threads through one `Pool`: the threads share at
//! most `max_connections` connections (each a TLS session, logged in once),
//! and a connection goes back to the pool after each message for the next
//! thread that needs one.
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
//!     cargo run -p tls-mailer --example pool
//! ```

use std::env;
use std::error::Error;
use std::time::Duration;

use tls_mailer::{Client, Credentials, Envelope, PoolConfig};

const THREADS: usize = 4;
const MESSAGES_PER_THREAD: usize = 3;

fn main() -> Result<(), Box<dyn Error>> {
    let from = required("MAIL_FROM")?;
    let to = required("MAIL_TO")?;
    let envelope = Envelope::new(&from, [&to])?;

    let pool = client_from_env()?.pool(
        PoolConfig::default()
            .max_connections(2) // fewer than the threads: they take turns
            .max_messages_per_connection(100)
            .checkout_timeout(Duration::from_secs(30)),
    );

    // Scoped threads may borrow the pool and the envelope. Each thread
    // returns its own result; a refusal or a network failure in one thread
    // does not stop the others.
    let sent = std::thread::scope(|scope| {
        let workers: Vec<_> = (1..=THREADS)
            .map(|thread| {
                let (pool, envelope, from, to) = (&pool, &envelope, &from, &to);
                scope.spawn(move || -> Result<usize, tls_mailer::Error> {
                    for n in 1..=MESSAGES_PER_THREAD {
                        let message = format!(
                            "From: {from}\r\nTo: {to}\r\nSubject: Pool message {thread}-{n}\r\n\r\n\
                             Message {n} of thread {thread}.\r\n"
                        );
                        // Takes an idle connection (or opens one), sends,
                        // and gives the connection back.
                        pool.send(envelope, message.as_bytes())?;
                    }
                    Ok(MESSAGES_PER_THREAD)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a sending thread panicked"))
            .sum::<Result<usize, tls_mailer::Error>>()
    })?;

    println!(
        "sent {sent} messages, {} connections left idle",
        pool.idle_connections()
    );
    // Dropping the pool says QUIT on each idle connection.
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
