//! Mail that cannot go now is kept, not lost: `Outbox::send_or_queue`
//! stores the message on disk (fsynced) and sends it; after a temporary
//! failure (server down, a 4xx, a timeout) it stays queued, and a later
//! `Outbox::flush` sends it.
//!
//! ```sh
//! cargo run -p tls-mailer --example outbox          # send, or queue for later
//! cargo run -p tls-mailer --example outbox -- flush # later: send what is queued
//! ```
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
//! | `MAIL_TO`       | the recipient                                            |
//! | `OUTBOX_DIR`    | the spool (default `$XDG_STATE_HOME/tls-mailer/outbox`)  |
//!
//! `flush` needs only `SMTP_PASSWORD` (when the entries log in),
//! `SMTP_CA_FILE` and `OUTBOX_DIR`: each entry records its server and user
//! name, never the password.

use std::env;
use std::error::Error;
use std::time::SystemTime;

use tls_mailer::outbox::{Listed, Outbox, Outcome, Route};
use tls_mailer::{Client, Credentials, Envelope};

fn main() -> Result<(), Box<dyn Error>> {
    let mut outbox = match env::var("OUTBOX_DIR") {
        Ok(dir) => Outbox::open(dir)?,
        Err(_) => Outbox::open(Outbox::default_dir()?)?,
    };
    match env::args().nth(1).as_deref() {
        None | Some("send") => send(&mut outbox),
        Some("flush") => flush(&mut outbox),
        Some(other) => Err(format!("unknown command {other:?}: say send or flush").into()),
    }
}

/// Sends one message now, or keeps it in the outbox for later.
fn send(outbox: &mut Outbox) -> Result<(), Box<dyn Error>> {
    let from = required("MAIL_FROM")?;
    let to = required("MAIL_TO")?;
    let envelope = Envelope::new(&from, [&to])?;
    let message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Nightly backup report\r\n\r\n\
         The backup finished.\r\n"
    );

    let route = route_from_env()?;
    let password = match route.user {
        Some(_) => Some(required("SMTP_PASSWORD")?),
        None => None,
    };
    let client = client_for(&route, password.as_deref())?;
    let report = outbox.send_or_queue(
        &client,
        &envelope,
        &mut message.as_bytes(),
        SystemTime::now(),
    )?;
    match report.outcome {
        Outcome::Sent(sent) => println!("sent: {}", sent.reply),
        // Not an error for the caller: the message is safe on disk.
        Outcome::Queued(retry) => println!("queued as {}: {}", report.id, retry.error),
        // Some recipients took it; those refused for now stay queued.
        Outcome::Partial(partial) => {
            for refused in &partial.refused {
                eprintln!("refused {}: {}", refused.address, refused.reply);
            }
        }
        // Refused for good (a 5xx, a bad password, an untrusted
        // certificate): nothing is kept, the caller must say so.
        Outcome::Failed(failed) => return Err(format!("not sent: {}", failed.error).into()),
        other => println!("{other:?}"),
    }
    Ok(())
}

/// Sends everything queued. A program run from cron or a timer would pass
/// `true` to send only the entries whose back-off has passed.
fn flush(outbox: &mut Outbox) -> Result<(), Box<dyn Error>> {
    let password = env::var("SMTP_PASSWORD").ok();
    let logs_in =
        |listed: &Listed| matches!(listed, Listed::Entry(entry) if entry.route.user.is_some());
    if password.is_none() && outbox.list()?.iter().any(logs_in) {
        return Err("set SMTP_PASSWORD: queued entries log in".into());
    }
    // The closure opens a connection for an entry's route; entries of the
    // same route share one.
    let report = outbox.flush(
        |route| client_for(route, password.as_deref())?.connect(),
        false,
        SystemTime::now(),
    );
    for entry in &report.entries {
        match &entry.outcome {
            Outcome::Sent(sent) => println!("{}: sent: {}", entry.id, sent.reply),
            Outcome::Queued(retry) => println!("{}: still queued: {}", entry.id, retry.error),
            other => println!("{}: {other:?}", entry.id),
        }
    }
    for problem in &report.problems {
        eprintln!("outbox: {problem}");
    }
    println!(
        "{} sent, {} still queued, {} set aside",
        report.sent(),
        report.still_queued(),
        report.set_aside()
    );
    if report.still_queued() > 0 || report.set_aside() > 0 || !report.problems.is_empty() {
        return Err("not everything was sent".into());
    }
    Ok(())
}

/// Where `send` sends to: implicit TLS (the default; a STARTTLS port would
/// be `Security::StartTls`).
fn route_from_env() -> Result<Route, Box<dyn Error>> {
    let host = env::var("SMTP_HOST").unwrap_or_else(|_| "localhost".to_string());
    let port = match env::var("SMTP_PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("SMTP_PORT: not a port: {port}"))?,
        Err(_) => 465,
    };
    let route = Route::new(host, port, tls_mailer::Security::ImplicitTls);
    Ok(match env::var("SMTP_USER") {
        Ok(user) => route.with_user(user),
        Err(_) => route,
    })
}

/// A client for `route`, with what the outbox does not record: the
/// password and the trusted CA.
fn client_for(route: &Route, password: Option<&str>) -> Result<Client, tls_mailer::Error> {
    let mut builder = Client::builder(&route.host)
        .port(route.port)
        .security(route.security)
        .starttls_fallback_port(route.starttls_port);
    if let (Some(user), Some(password)) = (&route.user, password) {
        builder = builder.credentials(Credentials::new(user, password));
    }
    if let Ok(ca_file) = env::var("SMTP_CA_FILE") {
        // A server with a certificate from a private CA: trust that CA only.
        builder = builder
            .add_root_certificates_file(ca_file)?
            .system_roots(false);
    }
    builder.build()
}

/// The value of an environment variable that has no default.
fn required(name: &str) -> Result<String, Box<dyn Error>> {
    env::var(name).map_err(|_| format!("set {name} (see the top of this example)").into())
}
