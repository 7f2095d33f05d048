//! What the examples share and do not teach: the server and the login from
//! the `SMTP_*` environment variables each example's table lists. An
//! example takes it in with `mod support;`.
#![allow(dead_code)] // each example uses part of it

use std::env;
use std::error::Error;

use tls_mailer::{Client, Credentials};

/// A client for the server the environment names: implicit TLS (the
/// default; for a STARTTLS port add `.security(Security::StartTls)`).
pub fn client_from_env() -> Result<Client, Box<dyn Error>> {
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
pub fn required(name: &str) -> Result<String, Box<dyn Error>> {
    env::var(name).map_err(|_| format!("set {name} (see the top of this example)").into())
}
