//! The library path of the 1 GiB benchmark (BENCHMARKS.md): `Client::send_email`
//! with a 1 GiB file attachment and DKIM signing, measured in a child
//! process (this test binary run again as the client only, under
//! `/usr/bin/time`), so the testkit server's memory is not counted.
#![allow(clippy::unwrap_used)]
// A release-mode benchmark (a debug build would take many minutes): it
// exists only in `cargo test --release`, so `--include-ignored` in CI never
// runs it, and no test reports it as passed.
#![cfg(not(debug_assertions))]

use std::process::Command;
use std::time::{Duration, Instant};

use tls_mailer::{Client, Content, Credentials, DkimSigner, Email, Timeouts};
use tls_mailer_testkit::{Extensions, TestServer};

const USER: &str = "alice";
const PASSWORD: &str = "bench";
const CHILD: &str = "TLS_MAILER_ATTACH_BENCH_CHILD";

#[test]
#[ignore = "benchmark: 1 GiB through Client::send_email; cargo test -p tls-mailer --release --test attach_memory -- --ignored --nocapture"]
fn one_gib_attachment_send_email() {
    if let Ok(spec) = std::env::var(CHILD) {
        return client(&spec);
    }
    let dir = tempfile::tempdir().unwrap();
    let gib = 1u64 << 30;
    let file = dir.path().join("video.bin");
    std::fs::File::create(&file).unwrap().set_len(gib).unwrap();
    let key = dir.path().join("dkim.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success());
    let server = TestServer::builder()
        .auth(USER, PASSWORD)
        .extensions(Extensions {
            size: None,
            ..Extensions::default()
        })
        .start()
        .unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let spec = format!(
        "{}\n{}\n{}\n{}",
        server.port(),
        ca.display(),
        file.display(),
        key.display()
    );
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib=%M"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "one_gib_attachment_send_email",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, spec)
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let peak: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let sent: u64 = server
        .transcript()
        .lines()
        .filter_map(|l| l.strip_prefix("C: BDAT "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(sent > gib * 4 / 3, "only {sent} bytes reached the server");
    println!(
        "Client::send_email with DKIM, 1 GiB attachment ({sent} bytes on the wire): \
         peak RSS {peak} KiB, {seconds:.1} s, {:.0} MiB/s of attachment",
        gib as f64 / f64::from(1 << 20) / seconds
    );
    assert!(peak < 32 * 1024, "peak RSS {peak} KiB");
}

/// The child: send the message; the testkit (200 MiB cap) refuses it with
/// 552 after reading all of it.
fn client(spec: &str) {
    let [port, ca, file, key] = spec.lines().collect::<Vec<_>>()[..] else {
        panic!("bad spec {spec:?}");
    };
    let signer = DkimSigner::from_pem_file(key, "s1", "example.org").unwrap();
    let client = Client::builder("localhost")
        .port(port.parse().unwrap())
        .credentials(Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(std::fs::read(ca).unwrap().as_slice())
        .unwrap()
        .timeouts(Timeouts::uniform(Duration::from_secs(120)))
        .dkim(signer)
        .build()
        .unwrap();
    let email = Email::new()
        .with_from("Alice <alice@example.org>".parse().unwrap())
        .with_to("bob@example.org".parse().unwrap())
        .with_subject("big file")
        .with_text("The file is attached.\n")
        .with_attachment("video.bin", Content::from_path(file).unwrap())
        .unwrap();
    let error = client.send_email(&email).unwrap_err();
    assert!(error.to_string().contains("552"), "{error}");
}
