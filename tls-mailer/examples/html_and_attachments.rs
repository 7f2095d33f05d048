//! A message built with `Email` instead of written by hand: a plain-text
//! body with an HTML alternative, an inline image the HTML shows with
//! `cid:`, and an attachment; sent with `Client::send_email`, which takes
//! the envelope from the message's From, To, Cc and Bcc.
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
//! | `MAIL_FROM`     | the sender (`Name <address>` or a bare address)          |
//! | `MAIL_TO`       | the recipient                                            |
//!
//! ```sh
//! SMTP_HOST=smtp.example.org SMTP_USER=alice@example.org SMTP_PASSWORD=app-password \
//!     MAIL_FROM='Alice <alice@example.org>' MAIL_TO=bob@example.org \
//!     cargo run -p tls-mailer --example html_and_attachments
//! ```

use std::error::Error;

use tls_mailer::{Content, Email};

// client_from_env and required: the server and the login from the SMTP_*
// variables above (examples/support/mod.rs).
mod support;
use support::{client_from_env, required};

/// A 1x1 PNG, so that the example needs no file. A real program would use
/// `Content::from_path("logo.png")?`, which also guesses the content type
/// from the name and reads the file only when the message is sent.
const LOGO_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xd0, 0xce, 0xd9, 0x02,
    0x00, 0x02, 0x11, 0x01, 0x4c, 0x66, 0xfe, 0xd0, 0xde, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

fn main() -> Result<(), Box<dyn Error>> {
    let report_csv = "month,orders\nOctober,112\nNovember,131\n";

    // Each `with_*` returns a new `Email`; addresses are parsed (and
    // checked) by `parse`, header values are refused if they hold a line
    // break.
    let email = Email::new()
        .with_from(required("MAIL_FROM")?.parse()?)
        .with_to(required("MAIL_TO")?.parse()?)
        .with_subject("Monthly report")
        .with_text("The report is attached.\n\nOrders: 131 in November.\n")
        .with_html(
            "<p><img src=\"cid:logo\" alt=\"logo\"> The report is attached.</p>\
             <p>Orders: <b>131</b> in November.</p>",
        )
        .with_inline(
            "logo",
            Content::from_bytes(LOGO_PNG).with_content_type("image/png")?,
        )?
        // The content type is guessed from the name: text/csv.
        .with_attachment("report.csv", Content::from_bytes(report_csv))?;

    let report = client_from_env()?.send_email(&email)?;
    println!("sent: {}", report.reply);
    Ok(())
}
