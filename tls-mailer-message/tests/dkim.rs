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
        "rsa-pkcs8" | "rsa-3072" => {
            let bits = if form == "rsa-3072" {
                "rsa_keygen_bits:3072"
            } else {
                "rsa_keygen_bits:2048"
            };
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                bits,
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

/// Verifies every `(file, key)` pair with dkimpy in one python3 process and
/// returns the files it rejected.
fn verify_batch(dir: &Path, cases: &[(PathBuf, &Key)]) -> Vec<PathBuf> {
    let mut manifest = String::new();
    for (path, key) in cases {
        manifest.push_str(&format!(
            "{}\tsel1\texample.com\t{}\t{}\n",
            path.to_str().unwrap(),
            key.kind,
            key.p
        ));
    }
    let manifest_path = dir.join("manifest.tsv");
    std::fs::write(&manifest_path, manifest).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dkim_verify_batch.py");
    let out = Command::new("python3")
        .arg(script)
        .stdin(std::fs::File::open(&manifest_path).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "dkim_verify_batch.py: {:?}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} checked", cases.len())),
        "{stdout}"
    );
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("INVALID "))
        .map(PathBuf::from)
        .collect()
}

/// Wherever mail-auth's folding puts the line breaks, the signature verifies
/// with dkimpy.
///
/// mail-auth folds the header at 76 columns and, when the `b=` value ends
/// exactly at the limit, breaks the line once more before the closing `;`.
/// It hashes the header with the `b=` value and the whitespace around it
/// deleted (`b=;`), while dkimpy deletes only the base64 and its inner
/// folding and keeps that last fold (`b= ;` once relaxed), so such
/// signatures were rejected (`header_bytes` in src/dkim.rs now joins the
/// `;` to the value). Where `b=` ends depends only on the column it starts
/// at (the `h=` list, then `t=` and `bh=`, both of fixed length) and on the
/// length of the signature, so the message body never moves it. The
/// variants cover header lists of every length from 1 to the full default
/// list, `From` plus one name of every length from 1 to 75 (moving the end
/// of `h=` through every column), three messages, RSA-2048, RSA-3072 and
/// Ed25519, in memory, streaming (`sign_reader`) and simple/simple, all
/// checked in one dkimpy run. The test also checks that the case above
/// occurred for both RSA sizes, so it cannot pass by missing it. (`t=` is
/// the signing time, not settable through the API; it has ten digits until
/// 2286, so its value never moves a fold.)
#[test]
fn signatures_verify_wherever_the_header_folds() {
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
    let messages: [&[u8]; 3] = [
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: signed\r\n\r\nbody\r\n",
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: other\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nline\r\n",
        b"From: Alice <alice@example.test>\r\nTo: bob@example.test,\r\n carol@example.test\r\nSubject: a subject long enough to be folded\r\n  by its writer\r\nMessage-ID: <1@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst  line \r\n\r\nlast\r\n\r\n\r\n",
    ];
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ("rsa-2048", generate(dir.path(), "rsa-pkcs8")),
        ("rsa-3072", generate(dir.path(), "rsa-3072")),
        ("ed25519", generate(dir.path(), "ed25519")),
    ];

    let mut lists: Vec<(Vec<String>, &[&[u8]])> = (1..=all.len())
        .map(|n| {
            (
                all[..n].iter().map(|h| h.to_string()).collect(),
                &messages[..],
            )
        })
        .collect();
    for pad in 1..=75 {
        let list = vec!["From".to_string(), format!("X{}", "-".repeat(pad - 1))];
        lists.push((list, &messages[..1]));
    }

    let mut cases = Vec::new();
    let mut descriptions = std::collections::HashMap::new();
    let mut full_last_line = [0usize; 3];
    for (k, (form, key)) in keys.iter().enumerate() {
        let base = DkimSigner::from_pem_file(&key.pem, "sel1", "example.com").unwrap();
        for (l, (list, messages)) in lists.iter().enumerate() {
            let relaxed = base.clone().with_headers(list.iter().cloned());
            let simple = relaxed.clone().with_canonicalization(false, false);
            for (m, message) in messages.iter().enumerate() {
                let signed = [
                    ("sign", relaxed.sign(message).unwrap()),
                    ("sign_reader", relaxed.sign_reader(*message).unwrap()),
                    ("simple", simple.sign(message).unwrap()),
                ];
                for (how, header) in signed {
                    let text = String::from_utf8(header.clone()).unwrap();
                    let lines: Vec<&str> =
                        text.strip_suffix("\r\n").unwrap().split("\r\n").collect();
                    let last = lines.last().unwrap();
                    // Never a `;` alone on the last line: the fold before it
                    // is what dkimpy hashes and the signer did not.
                    assert!(last.ends_with(';') && last.trim() != ";", "{text}");
                    // One field: every continuation line is folded
                    // whitespace followed by something (RFC 5322 2.2.3).
                    assert!(
                        lines[1..]
                            .iter()
                            .all(|l| l.starts_with('\t') && !l.trim().is_empty()),
                        "{text}"
                    );
                    // The b= value filled its last line: the `;` follows it
                    // on that line (77 columns) or, unjoined, stands alone.
                    if last.len() == 77 || *last == "\t;" {
                        full_last_line[k] += 1;
                    }
                    let path = dir.path().join(format!("{form}-{l}-{m}-{how}.eml"));
                    let mut file = header;
                    file.extend_from_slice(message);
                    std::fs::write(&path, file).unwrap();
                    descriptions.insert(
                        path.clone(),
                        format!("{form}, {how}, h={}, message {m}:\n{text}", list.join(":")),
                    );
                    cases.push((path, key));
                }
            }
        }
    }
    assert_eq!(cases.len(), 3 * (15 * 3 + 75) * 3);
    // The RSA values (344 and 512 characters) end at the line limit after
    // some h= lists; the 88-character Ed25519 value never does, whatever the
    // list, since t= and bh= have fixed lengths (it is verified all the same).
    assert!(
        full_last_line[0] > 0 && full_last_line[1] > 0,
        "no variant had a b= value ending at the line limit: {full_last_line:?}"
    );

    if !dkimpy_available() {
        eprintln!("dkimpy check skipped: TLS_MAILER_SKIP_PYTHON=1 and dkimpy missing");
        return;
    }
    let failures: Vec<&String> = verify_batch(dir.path(), &cases)
        .iter()
        .map(|path| &descriptions[path])
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rejected by dkimpy:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
