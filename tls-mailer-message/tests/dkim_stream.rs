//! `DkimSigner::signed_reader`: a message signed in a first streaming pass
//! and read again behind its signature verifies with mail-auth's verifier
//! (the public key served from an in-test resolver cache, no DNS), small
//! or with a 48 MiB attachment read from a file. Keys are generated at
//! test time with the openssl CLI.
#![allow(clippy::unwrap_used)]

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::task::{Context, Poll, Waker};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use tls_mailer_message::{Content, DkimSigner, Email};
use tls_mailer_proto::CrlfNormalizer;

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

/// A private key file and the DKIM record (`v=DKIM1; k=...; p=...`) for it.
fn generate(dir: &Path, algorithm: &str) -> (PathBuf, String) {
    let pem = dir.join(format!("{algorithm}.pem"));
    let pem_s = pem.to_str().unwrap();
    match algorithm {
        "rsa" => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            pem_s,
        ]),
        _ => openssl(&["genpkey", "-algorithm", "ed25519", "-out", pem_s]),
    };
    let spki = openssl(&["pkey", "-in", pem_s, "-pubout", "-outform", "DER"]);
    let key = if algorithm == "rsa" {
        spki
    } else {
        spki[spki.len() - 32..].to_vec()
    };
    let raw = dir.join(format!("{algorithm}.bin"));
    std::fs::write(&raw, key).unwrap();
    let p = String::from_utf8(openssl(&["base64", "-A", "-in", raw.to_str().unwrap()])).unwrap();
    (pem, format!("v=DKIM1; k={algorithm}; p={}", p.trim()))
}

/// DNS answers known in advance: the verifier finds the key here.
struct Records(HashMap<Box<str>, Txt>);

impl ResolverCache<Box<str>, Txt> for Records {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name).cloned()
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// What the server stores: line ends normalised as the wire sends them.
fn as_stored(message: &[u8]) -> Vec<u8> {
    let mut normalizer = CrlfNormalizer::new();
    let mut out = Vec::with_capacity(message.len() + 2);
    normalizer.encode(message, &mut out);
    normalizer.finish(&mut out);
    out
}

/// mail-auth's verdict on each signature of `message`.
fn verify(message: &[u8], selector: &str, domain: &str, record: &str) -> Vec<DkimResult> {
    let key = DomainKey::parse(record.as_bytes()).unwrap();
    let records = Records(HashMap::from([(
        format!("{selector}._domainkey.{domain}.").into_boxed_str(),
        Txt::from(key),
    )]));
    let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
    let parsed = AuthenticatedMessage::parse(message).unwrap();
    let future = authenticator.verify_dkim(Parameters::new(&parsed).with_txt_cache(&records));
    let mut future = std::pin::pin!(future);
    // Every answer is in the cache: the verification never waits.
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(outputs) => outputs.iter().map(|o| o.result().clone()).collect(),
        Poll::Pending => panic!("the verifier asked the network"),
    }
}

fn signed(signer: &DkimSigner, email: &Email) -> Vec<u8> {
    let mut reader = signer.signed_reader(email).unwrap();
    let size = reader.size();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    let stored = as_stored(&out);
    assert_eq!(
        stored.len() as u64,
        size,
        "the size announced is the size stored"
    );
    stored
}

fn base() -> Email {
    Email::new()
        .with_from("Alice <alice@example.com>".parse().unwrap())
        .with_to("bob@example.org".parse().unwrap())
        .with_subject("Streamed and signed")
}

#[test]
fn a_small_streamed_message_verifies_for_each_key_and_canonicalization() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["rsa", "ed25519"] {
        let (pem, record) = generate(dir.path(), algorithm);
        for (relaxed_headers, relaxed_body) in [(true, true), (false, false), (true, false)] {
            let signer = DkimSigner::from_pem_file(&pem, "s1", "example.com")
                .unwrap()
                .with_canonicalization(relaxed_headers, relaxed_body);
            // No final line break: the signature covers the CRLF the wire adds.
            for email in [
                base().with_text("Bonjour"),
                base().with_text("Hello\n").with_html("<p>Hello</p>\n"),
                base()
                    .with_text("Attached.\n")
                    .with_attachment("a.txt", Content::from_bytes("bare\rCR and trailing \n"))
                    .unwrap(),
            ] {
                let message = signed(&signer, &email);
                assert_eq!(
                    verify(&message, "s1", "example.com", &record),
                    [DkimResult::Pass],
                    "{algorithm} {relaxed_headers}/{relaxed_body}: {}",
                    String::from_utf8_lossy(&message)
                );
            }
        }
    }
}

/// 48 MiB of binary and 2 MiB of text read from files, signed in one
/// streaming pass and read again: the signature verifies, and a changed
/// byte in the body makes it fail (the check can fail).
#[test]
fn a_large_streamed_message_with_file_attachments_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, record) = generate(dir.path(), "rsa");
    let signer = DkimSigner::from_pem_file(&pem, "big", "example.com").unwrap();
    let video = dir.path().join("video.bin");
    let mut data = Vec::with_capacity(48 << 20);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while data.len() < 48 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(&video, &data).unwrap();
    drop(data);
    let notes = dir.path().join("notes.txt");
    std::fs::write(
        &notes,
        "Grüße, line with trailing space \r\n".repeat(60_000),
    )
    .unwrap();
    let email = base()
        .with_text("Two files.\n")
        .with_attachment("video.bin", Content::from_path(&video).unwrap())
        .unwrap()
        .with_attachment("notes.txt", Content::from_path(&notes).unwrap())
        .unwrap();
    let mut message = signed(&signer, &email);
    assert!(message.len() > 64 << 20);
    assert_eq!(
        verify(&message, "big", "example.com", &record),
        [DkimResult::Pass]
    );

    let middle = message.len() / 2;
    message[middle] = if message[middle] == b'A' { b'B' } else { b'A' };
    let tampered = verify(&message, "big", "example.com", &record);
    assert!(
        matches!(
            tampered.as_slice(),
            [DkimResult::Neutral(_) | DkimResult::Fail(_)]
        ),
        "{tampered:?}"
    );
}
