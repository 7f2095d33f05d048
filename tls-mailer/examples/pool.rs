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

use std::error::Error;
use std::time::Duration;

use tls_mailer::{Envelope, PoolConfig};

// client_from_env and required: the server and the login from the SMTP_*
// variables above (examples/support/mod.rs).
mod support;
use support::{client_from_env, required};

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
