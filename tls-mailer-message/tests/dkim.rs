//! DKIM signatures verified by an independent implementation (dkimpy).
//! Keys are generated at test time with the openssl CLI.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tls_mailer_message::{DkimSigner, Email, MessageError};

fn skip_python() -> bool {
    std::env::var("TLS_MAILER_SKIP_PYTHON").as_deref() == Ok("1")
}

/// True when dkimpy is importable; panics with instructions when it is not,
/// unless TLS_MAILER_SKIP_PYTHON=1.
fn dkimpy_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import dkim, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && !skip_python() {
        panic!(
            "dkimpy (with pynacl for ed25519) is not importable: run `pip install dkimpy==1.1.8 pynacl==1.6.2`, \
             or set TLS_MAILER_SKIP_PYTHON=1 to skip this check"
        );
    }
    ok
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct Key {
    pem: PathBuf,
    kind: &'static str,
    p: String,
}

/// Generates a key in the requested PEM form and its DKIM `p=` value.
fn generate(dir: &Path, form: &str) -> Key {
    let pem = dir.join(format!("{form}.pem"));
    let pem_s = pem.to_str().unwrap();
    match form {
        "rsa-pkcs1" => {
            openssl(&["genrsa", "-traditional", "-out", pem_s, "2048"]);
        }
        "rsa-pkcs8" => {
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                pem_s,
            ]);
        }
        "ed25519" => {
            openssl(&["genpkey", "-algorithm", "ed25519", "-out", pem_s]);
        }
        _ => unreachable!(),
    }
    let text = std::fs::read_to_string(&pem).unwrap();
    match form {
        "rsa-pkcs1" => assert!(text.contains("BEGIN RSA PRIVATE KEY")),
        _ => assert!(text.contains("BEGIN PRIVATE KEY")),
    }
    let spki_der = openssl(&["pkey", "-in", pem_s, "-pubout", "-outform", "DER"]);
    let (kind, key_bytes) = if form == "ed25519" {
        // RFC 8463: p= is the raw 32-byte public key (end of the SPKI).
        ("ed25519", spki_der[spki_der.len() - 32..].to_vec())
    } else {
        ("rsa", spki_der)
    };
    let b64 = dir.join("p.bin");
    std::fs::write(&b64, &key_bytes).unwrap();
    let p = String::from_utf8(openssl(&["base64", "-A", "-in", b64.to_str().unwrap()])).unwrap();
    Key {
        pem,
        kind,
        p: p.trim().to_string(),
    }
}

fn verify(dir: &Path, key: &Key, signed: &[u8], selector: &str, domain: &str) -> bool {
    let path = dir.join("signed.eml");
    std::fs::write(&path, signed).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dkim_verify.py");
    let out = Command::new("python3")
        .args([
            script,
            path.to_str().unwrap(),
            selector,
            domain,
            key.kind,
            &key.p,
        ])
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(3),
        "dkimpy missing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

fn sample() -> Email {
    let (_, full) = common::samples()
        .into_iter()
        .find(|(n, _)| *n == "full")
        .unwrap();
    full.with_subject("Signé ☕ with a long subject that will certainly be folded by the writer")
}

#[test]
fn signatures_verify_with_dkimpy_for_every_key_form() {
    if !dkimpy_available() {
        eprintln!("skipped: TLS_MAILER_SKIP_PYTHON=1 and dkimpy missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for form in ["rsa-pkcs1", "rsa-pkcs8", "ed25519"] {
        let key = generate(dir.path(), form);
        let signer = DkimSigner::from_pem_file(&key.pem, "sel1", "example.com").unwrap();
        let expected_alg = if form == "ed25519" {
            "ed25519-sha256"
        } else {
            "rsa-sha256"
        };
        assert_eq!(signer.algorithm(), expected_alg);

        // In memory: Email export.
        let signed = signer.sign_email(&sample()).unwrap();
        assert!(signed.starts_with(b"DKIM-Signature: v=1; a="));
        assert!(String::from_utf8_lossy(&signed).contains("c=relaxed/relaxed"));
        assert!(
            verify(dir.path(), &key, &signed, "sel1", "example.com"),
            "{form}: sign_email"
        );

        // Streaming over a file, custom header list.
        let message = sample().to_bytes().unwrap();
        let file = dir.path().join("message.eml");
        std::fs::write(&file, &message).unwrap();
        let custom = signer.clone().with_headers(["Subject", "To", "Date"]);
        let header = custom.sign_file(&file).unwrap();
        let header_text = String::from_utf8_lossy(&header);
        assert!(header_text.ends_with("\r\n"));
        assert!(
            header_text.to_lowercase().contains("from"),
            "From is always signed"
        );
        let mut signed = header.clone();
        signed.extend_from_slice(&std::fs::read(&file).unwrap());
        assert!(
            verify(dir.path(), &key, &signed, "sel1", "example.com"),
            "{form}: sign_file"
        );

        // A reader spooled to a private temporary file (the stdin path).
        let spooled = tls_mailer_message::spool_to_tempfile(&message[..]).unwrap();
        let header = signer.sign_reader(spooled).unwrap();
        let mut signed = header;
        signed.extend_from_slice(&message);
        assert!(
            verify(dir.path(), &key, &signed, "sel1", "example.com"),
            "{form}: sign_reader"
        );

        // Simple/simple canonicalization also verifies.
        let simple = signer.clone().with_canonicalization(false, false);
        let mut signed = simple.sign(&message).unwrap();
        signed.extend_from_slice(&message);
        assert!(
            verify(dir.path(), &key, &signed, "sel1", "example.com"),
            "{form}: simple"
        );

        // Tampering is detected (guards against a verifier that accepts anything).
        let mut tampered = signer.sign(&message).unwrap();
        tampered.extend_from_slice(&message);
        let at = tampered.len() - 10;
        tampered[at] ^= 0x01;
        assert!(
            !verify(dir.path(), &key, &tampered, "sel1", "example.com"),
            "{form}: tampered"
        );
    }
}

#[test]
fn bad_keys_and_names_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = DkimSigner::from_pem_file(dir.path().join("none.pem"), "s", "example.com");
    assert!(matches!(missing, Err(MessageError::Io { .. })));
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    assert!(matches!(
        DkimSigner::from_pem_file(&garbage, "s", "example.com"),
        Err(MessageError::Dkim(_))
    ));
    let key = generate(dir.path(), "ed25519");
    assert!(DkimSigner::from_pem_file(&key.pem, "bad selector", "example.com").is_err());
    assert!(DkimSigner::from_pem_file(&key.pem, "s", "exa\r\nmple.com").is_err());
    let signer = DkimSigner::from_pem_file(&key.pem, "s", "example.com").unwrap();
    let debug = format!("{signer:?}");
    assert!(
        debug.contains("redacted") && !debug.contains("PRIVATE"),
        "{debug}"
    );
}

/// Wherever mail-auth's folding puts the line breaks, the signature verifies:
/// header lists of every length (shifting every fold), two messages, RSA and
/// Ed25519. Guards the case where the `b=` value fills its last line exactly
/// and the closing `;` lands on a line of its own, which verifiers that keep
/// that fold (dkimpy) rejected.
#[test]
fn signatures_verify_wherever_the_header_folds() {
    if !dkimpy_available() {
        eprintln!("skipped: TLS_MAILER_SKIP_PYTHON=1 and dkimpy missing");
        return;
    }
    let all = [
        "From",
        "Sender",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "To",
        "Cc",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "In-Reply-To",
        "References",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ];
    let messages: [&[u8]; 2] = [
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: signed\r\n\r\nbody\r\n",
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: other\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nline\r\n",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for form in ["rsa-pkcs8", "ed25519"] {
        let key = generate(dir.path(), form);
        let signer = DkimSigner::from_pem_file(&key.pem, "sel1", "example.com").unwrap();
        for length in 1..=all.len() {
            let signer = signer.clone().with_headers(all[..length].iter().copied());
            for (index, message) in messages.iter().enumerate() {
                let mut signed = signer.sign(message).unwrap();
                let header = String::from_utf8(signed.clone()).unwrap();
                signed.extend_from_slice(message);
                checked += 1;
                if !verify(dir.path(), &key, &signed, "sel1", "example.com") {
                    failures.push(format!(
                        "{form}, {length} headers, message {index}:\n{header}"
                    ));
                }
            }
        }
    }
    assert_eq!(checked, 60);
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
