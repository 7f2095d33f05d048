//! Independent check: Python's standard `email` package (policy.default)
//! reads every sample message the builder produces and must find the same
//! subject, addresses, bodies, parts, file names and decoded bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use serde_json::Value;
use tls_mailer_message::Email;

fn addrs(mailboxes: &[tls_mailer_message::Mailbox]) -> Value {
    Value::Array(
        mailboxes
            .iter()
            .map(|m| serde_json::json!({"name": m.name(), "addr": m.addr()}))
            .collect(),
    )
}

fn b64(data: &[u8]) -> String {
    // Small standalone encoder: the crate under test must not check itself.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn python_available() -> bool {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("import email")
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("TLS_MAILER_SKIP_PYTHON").as_deref() != Ok("1") {
        panic!("python3 is required for this test (set TLS_MAILER_SKIP_PYTHON=1 to skip)");
    }
    ok
}

#[test]
fn python_email_reads_what_we_write() {
    if !python_available() {
        eprintln!("skipped: TLS_MAILER_SKIP_PYTHON=1 and no python3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let samples = common::samples();
    let mut paths = Vec::new();
    for (name, email) in &samples {
        let path = dir.path().join(format!("{name}.eml"));
        std::fs::write(&path, email.finalized().to_bytes().unwrap()).unwrap();
        paths.push(path);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python_email_check.py");
    let output = Command::new("python3")
        .arg(script)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    for ((name, email), seen) in samples.iter().zip(&seen) {
        let email: &Email = email;
        assert_eq!(seen["subject"].as_str(), email.subject(), "{name}: subject");
        assert_eq!(seen["from"], addrs(email.from()), "{name}: from");
        let sender: Vec<_> = email.sender().cloned().into_iter().collect();
        assert_eq!(seen["sender"], addrs(&sender), "{name}: sender");
        assert_eq!(seen["to"], addrs(email.to()), "{name}: to");
        assert_eq!(seen["cc"], addrs(email.cc()), "{name}: cc");
        assert_eq!(
            seen["reply_to"],
            addrs(email.reply_to()),
            "{name}: reply-to"
        );
        assert_eq!(
            seen["has_bcc"], false,
            "{name}: Bcc must not be transmitted"
        );
        assert_eq!(seen["has_date"], true, "{name}: Date");
        assert!(seen["message_id"].is_string(), "{name}: Message-ID");
        assert_eq!(seen["mime_version"], "1.0", "{name}: MIME-Version");
        // Python keeps the wire's CRLF; the model keeps `\n` line ends.
        let lf = |v: &Value| v.as_str().map(|s| s.replace("\r\n", "\n"));
        assert_eq!(lf(&seen["text"]).as_deref(), email.text(), "{name}: text");
        assert_eq!(lf(&seen["html"]).as_deref(), email.html(), "{name}: html");
        let parts = seen["parts"].as_array().unwrap();
        assert_eq!(parts.len(), email.parts().len(), "{name}: number of parts");
        for (seen_part, part) in parts.iter().zip(email.parts()) {
            assert_eq!(
                seen_part["content_type"],
                part.content_type(),
                "{name}: type"
            );
            assert_eq!(
                seen_part["filename"].as_str(),
                part.name(),
                "{name}: file name"
            );
            assert_eq!(seen_part["cid"].as_str(), part.cid(), "{name}: cid");
            let disposition = if part.cid().is_some() {
                "inline"
            } else {
                "attachment"
            };
            assert_eq!(seen_part["disposition"], disposition, "{name}: disposition");
            assert_eq!(
                seen_part["data_b64"],
                b64(part.data()),
                "{name}: bytes of {:?}",
                part.name()
            );
        }
        let expected_multiparts: Vec<&str> = {
            let mut v = Vec::new();
            if !email.attachments().is_empty() {
                v.push("multipart/mixed");
            }
            if !email.inline_parts().is_empty() {
                v.push("multipart/related");
            }
            if email.text().is_some() && email.html().is_some() {
                v.push("multipart/alternative");
            }
            v
        };
        assert_eq!(
            seen["multiparts"],
            serde_json::json!(expected_multiparts),
            "{name}: structure"
        );
        assert_eq!(seen["defects"], serde_json::json!([]), "{name}: defects");
    }
}
