//! `tls-mailer demo`: the whole path on this machine alone. An embedded SMTP
//! server (implicit TLS with a CA made at run time, AUTH) on 127.0.0.1, and a
//! real client send to it.

use std::path::PathBuf;

use tls_mailer::{Client, Credentials, Email};
use tls_mailer_testkit::{Mode, TestServer};

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
    let server = TestServer::builder()
        .mode(Mode::ImplicitTls)
        .auth(USER, PASSWORD)
        .hostname("demo.localhost")
        .maildir(&spool)
        .start()
        .map_err(|error| Failure::Config(format!("cannot start the embedded server: {error}")))?;
    if !args.quiet {
        println!(
            "* embedded SMTP server on {} (implicit TLS, throwaway CA, AUTH {USER})",
            server.addr()
        );
        println!(
            "* it writes what it receives to {} (a new private directory)",
            spool.display()
        );
    }
    let mut builder = Client::builder("localhost")
        .port(server.port())
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(server.ca_pem().as_bytes())?;
    if !args.quiet {
        builder = builder.on_trace(verbose::to_stdout);
    }
    let email = Email::new()
        .with_from("tls-mailer demo <demo@localhost>".parse()?)
        .with_to("Recipient <inbox@localhost>".parse()?)
        .with_subject("Hello from tls-mailer")
        .with_text("This message travelled over implicit TLS (RFC 8314) to the embedded server.\n")
        .with_html("<p>This message travelled over <b>implicit TLS</b> (RFC 8314) to the embedded server.</p>");
    let report = builder.build()?.send_email(&email)?;
    let received = server.wait_for_messages(1, std::time::Duration::from_secs(5));
    let path = spool.join("1.eml");
    if received.is_empty() || !path.exists() {
        return Err(Failure::Config(
            "the embedded server did not store the message".into(),
        ));
    }
    if args.quiet {
        println!("{}", path.display());
        return Ok(());
    }
    println!();
    println!("sent: {}", report.reply);
    println!("received message written to {}", path.display());
    let text = String::from_utf8_lossy(&received[0].data);
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
