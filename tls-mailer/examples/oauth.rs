//! Logging in with OAuth 2.0 tokens the library renews itself: a refresh
//! token, the provider's token endpoint, and a [`RefreshingToken`] that the
//! client asks for a token at each connection. The token is renewed a
//! minute before it expires, and once more if the server refuses it.
//!
//! The server and the OAuth client come from the environment:
//!
//! | variable               | meaning                                                |
//! |------------------------|--------------------------------------------------------|
//! | `SMTP_HOST`            | the server (default `localhost`)                       |
//! | `SMTP_PORT`            | its implicit-TLS port (default 465)                    |
//! | `SMTP_USER`            | the mailbox the token is for                           |
//! | `SMTP_CA_FILE`         | trust this PEM CA, and not the system store (optional) |
//! | `OAUTH_PROVIDER`       | `google` or `microsoft`, or else `OAUTH_TOKEN_URL`     |
//! | `OAUTH_TOKEN_URL`      | the token endpoint (`https://` only)                   |
//! | `OAUTH_CLIENT_ID`      | the app's client id                                    |
//! | `OAUTH_CLIENT_SECRET`  | its secret, for a confidential client (optional)       |
//! | `OAUTH_REFRESH_TOKEN`  | the refresh token from a first sign-in                 |
//! | `MAIL_FROM`, `MAIL_TO` | the sender and the recipient                           |
//!
//! ```sh
//! SMTP_HOST=smtp.gmail.com SMTP_USER=alice@gmail.com OAUTH_PROVIDER=google \
//!     OAUTH_CLIENT_ID=... OAUTH_CLIENT_SECRET=... OAUTH_REFRESH_TOKEN=... \
//!     MAIL_FROM=alice@gmail.com MAIL_TO=bob@example.org \
//!     cargo run -p tls-mailer --example oauth
//! ```
//!
//! (The `tls-mailer` command does the first sign-in: `tls-mailer oauth login`.)

use std::env;
use std::error::Error;
use std::sync::Arc;

use tls_mailer::oauth::{OAuthClient, Provider, RefreshingToken};
use tls_mailer::{Client, Envelope, TrustAnchors};

// required: a variable without a default (examples/support/mod.rs).
mod support;
use support::required;

fn main() -> Result<(), Box<dyn Error>> {
    let user = required("SMTP_USER")?;
    let from = required("MAIL_FROM")?;
    let to = required("MAIL_TO")?;
    let token_url = match env::var("OAUTH_PROVIDER") {
        Ok(name) => Provider::named(&name)
            .ok_or_else(|| format!("OAUTH_PROVIDER: {name} is not google or microsoft"))?
            .token_url
            .to_owned(),
        Err(_) => required("OAUTH_TOKEN_URL")?,
    };
    let mut oauth = OAuthClient::builder(token_url, required("OAUTH_CLIENT_ID")?);
    if let Ok(secret) = env::var("OAUTH_CLIENT_SECRET") {
        oauth = oauth.client_secret(secret);
    }
    let mut client = Client::builder(env::var("SMTP_HOST").unwrap_or_else(|_| "localhost".into()));
    if let Ok(ca_file) = env::var("SMTP_CA_FILE") {
        // One private CA for both the token endpoint and the mail server.
        let anchors = TrustAnchors::default()
            .system(false)
            .add_pem_file(ca_file.as_ref())?;
        oauth = oauth.trust_anchors(anchors);
        client = client
            .add_root_certificates_file(&ca_file)?
            .system_roots(false);
    }
    if let Ok(port) = env::var("SMTP_PORT") {
        client = client.port(
            port.parse()
                .map_err(|_| format!("SMTP_PORT: not a port: {port}"))?,
        );
    }

    // A program keeps the new token (and a rotated refresh token) for its
    // next run; this one only says when it got one.
    let tokens = RefreshingToken::new(oauth.build()?, required("OAUTH_REFRESH_TOKEN")?).on_refresh(
        |token| {
            println!(
                "renewed the access token (expires {:?})",
                token.expires_at()
            )
        },
    );
    let client = client.oauth(user, Arc::new(tokens)).build()?;

    let envelope = Envelope::new(&from, [&to])?;
    let message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Hello over OAuth\r\n\r\nSent with a renewed token.\r\n"
    );
    let report = client.send(&envelope, message.as_bytes())?;
    println!("sent: {}", report.reply);
    Ok(())
}
