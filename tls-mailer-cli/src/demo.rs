//! `tls-mailer demo`: the whole path on this machine alone. An embedded SMTP
//! server ([`demo_server`](crate::demo_server): implicit TLS with a built-in
//! demo certificate, AUTH) on 127.0.0.1, and a real client send to it.

use std::path::PathBuf;
use std::time::Duration;

use tls_mailer::{Client, Credentials, Email};

use crate::demo_server::{self, DemoServer};
use crate::exit::Failure;
use crate::verbose;

/// Arguments of `tls-mailer demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Print only where the received message was written.
    #[arg(short, long)]
    pub quiet: bool,
}

const USER: &str = "demo";
const PASSWORD: &str = "demo-password";

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<(), Failure> {
    let spool = spool_dir()?;
    let server = DemoServer::start(&spool, USER, PASSWORD)
        .map_err(|error| Failure::Config(format!("cannot start the embedded server: {error}")))?;
    if !args.quiet {
        println!(
            "* embedded SMTP server on {} (implicit TLS with the demo CA built into \
             tls-mailer, trusted for this demo only; AUTH {USER})",
            server.addr()
        );
        println!(
            "* it writes what it receives to {} (a new private directory)",
            spool.display()
        );
    }
    // The address the server listens on, and only the demo CA as anchor:
    // its key is public, so it must never be trusted for anything else.
    let builder = Client::builder(server.addr().ip().to_string())
        .port(server.addr().port())
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(demo_server::CA_PEM.as_bytes())?;
    if !args.quiet {
        verbose::install(verbose::Sink::Stdout);
    }
    let email = Email::new()
        .with_from("tls-mailer demo <demo@localhost>".parse()?)
        .with_to("Recipient <inbox@localhost>".parse()?)
        .with_subject("Hello from tls-mailer")
        .with_text("This message travelled over implicit TLS (RFC 8314) to the embedded server.\n")
        .with_html("<p>This message travelled over <b>implicit TLS</b> (RFC 8314) to the embedded server.</p>");
    let report = builder.build()?.send_email(&email)?;
    let Some(received) = server.wait_for_message(Duration::from_secs(5)) else {
        return Err(Failure::Config(
            "the embedded server did not store the message".into(),
        ));
    };
    if args.quiet {
        println!("{}", received.path.display());
        return Ok(());
    }
    println!();
    println!("sent: {}", report.reply);
    println!(
        "received from <{}> for {} via {}, written to {}",
        received.mail_from,
        received
            .rcpt_to
            .iter()
            .map(|address| format!("<{address}>"))
            .collect::<Vec<_>>()
            .join(", "),
        if received.via_bdat { "BDAT" } else { "DATA" },
        received.path.display()
    );
    let text = String::from_utf8_lossy(&received.data);
    for line in text.lines().take(8) {
        println!("  | {line}");
    }
    println!("  | ...");
    Ok(())
}

/// A fresh private directory for the received message, kept after the demo
/// so the message can be looked at. Its name is random and it is made by a
/// `mkdir` that fails if anything already has that name, so nobody can lay a
/// symlink in the way; on Unix only its owner can enter it (0700).
fn spool_dir() -> Result<PathBuf, Failure> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("tls-mailer-demo-");
    #[cfg(unix)]
    let private = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(0o700)
    };
    #[cfg(unix)]
    builder.permissions(private);
    let dir = builder.tempdir().map_err(|error| {
        Failure::Config(format!(
            "cannot make a directory for the received message in {}: {error}",
            std::env::temp_dir().display()
        ))
    })?;
    Ok(dir.keep())
}
