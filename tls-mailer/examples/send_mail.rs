//! One message in one call: `tls_mailer::send_mail`, shaped like Go's
//! `net/smtp.SendMail`, but over implicit TLS (port 465) from the first byte.
//!
//! The server comes from the environment:
//!
//! | variable        | meaning                                          |
//! |-----------------|--------------------------------------------------|
//! | `SMTP_HOST`     | the server (default `localhost`)                 |
//! | `SMTP_PORT`     | its implicit-TLS port (default 465)              |
//! | `SMTP_USER`     | log in as this user (optional)                   |
//! | `SMTP_PASSWORD` | the password, when `SMTP_USER` is set            |
//! | `MAIL_FROM`     | the sender address                               |
//! | `MAIL_TO`       | the recipient address                            |
//!
//! `send_mail` verifies the server's certificate against the system trust
//! store. For a server with a certificate from a private CA, point
//! `SSL_CERT_FILE` at that CA's PEM file: the library then trusts that file
//! instead of the system bundle (as OpenSSL does).
//!
//! ```sh
//! SMTP_HOST=smtp.example.org SMTP_USER=alice@example.org SMTP_PASSWORD=app-password \
//!     MAIL_FROM=alice@example.org MAIL_TO=bob@example.org \
//!     cargo run -p tls-mailer --example send_mail
//! ```

use std::env;
use std::error::Error;

use tls_mailer::{Credentials, send_mail};

fn main() -> Result<(), Box<dyn Error>> {
    let host = env::var("SMTP_HOST").unwrap_or_else(|_| "localhost".to_string());
    let port = env::var("SMTP_PORT").unwrap_or_else(|_| "465".to_string());
    let from = required("MAIL_FROM")?;
    let to = required("MAIL_TO")?;
    // No user: send without logging in (a server on a trusted network).
    let auth = match env::var("SMTP_USER") {
        Ok(user) => Some(Credentials::new(user, required("SMTP_PASSWORD")?)),
        Err(_) => None,
    };

    // The message as it goes on the wire: headers, a blank line, the body.
    let message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Hello from send_mail\r\n\r\n\
         This message was sent with tls_mailer::send_mail.\r\n"
    );

    // Connects, checks the certificate, logs in, sends, says QUIT. Any
    // failure (DNS, TLS, a refused password, a refused recipient) is one
    // `tls_mailer::Error`, and `?` turns it into main's error.
    let report = send_mail(
        &format!("{host}:{port}"),
        auth.as_ref(),
        &from,
        &[to.as_str()],
        message.as_bytes(),
    )?;
    println!("sent: {}", report.reply);
    Ok(())
}

/// The value of an environment variable that has no default.
fn required(name: &str) -> Result<String, Box<dyn Error>> {
    env::var(name).map_err(|_| format!("set {name} (see the top of examples/send_mail.rs)").into())
}
