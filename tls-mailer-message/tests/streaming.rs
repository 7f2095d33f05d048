//! The streaming export: `Email::reader` and `write_to` give what
//! `to_bytes` gives, in any read sizes; file parts are read when the
//! message is written, and a file that fails then is named.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use proptest::prelude::*;
use tls_mailer_message::{Content, Email, MessageError};
use tls_mailer_proto::BodyInfo;

fn read_all(reader: &mut impl Read, sizes: &[usize]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = vec![0; 70_000];
    let mut turn = 0;
    loop {
        let size = sizes
            .get(turn % sizes.len().max(1))
            .copied()
            .unwrap_or(4096);
        turn += 1;
        let n = reader.read(&mut buffer[..size.max(1)])?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buffer[..n]);
    }
}

/// Each MIME boundary (made afresh on every export) replaced by its rank.
fn boundaries_numbered(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    let mut found: Vec<String> = Vec::new();
    for (at, _) in text.match_indices("boundary=\"") {
        let rest = &text[at + "boundary=\"".len()..];
        let boundary = &rest[..rest.find('"').unwrap()];
        if !found.iter().any(|seen| seen == boundary) {
            found.push(boundary.to_owned());
        }
    }
    for (rank, boundary) in found.iter().enumerate() {
        text = text.replace(boundary.as_str(), &format!("BOUNDARY-{rank}"));
    }
    text
}

fn base() -> Email {
    Email::new()
        .with_from("a@example.com".parse().unwrap())
        .with_to("b@example.com".parse().unwrap())
        .with_date(1_700_000_000)
        .with_message_id("fixed@example.com")
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Read in any sizes, the reader gives the buffered export (boundaries
    /// apart), its replay the very same bytes, and its size is the wire's.
    #[test]
    fn the_reader_gives_the_buffered_bytes_in_any_read_sizes(
        sizes in prop::collection::vec(1usize..70_000, 1..6),
        sample in 0usize..12,
    ) {
        let (name, email) = common::samples().swap_remove(sample);
        let email = email.finalized();
        let buffered = email.to_bytes().unwrap();
        let mut reader = email.reader().unwrap();
        let streamed = read_all(&mut reader, &sizes).unwrap();
        prop_assert_eq!(boundaries_numbered(&streamed), boundaries_numbered(&buffered), "{}", name);
        let again = read_all(&mut reader.replay(), &[4096]).unwrap();
        prop_assert!(again == streamed, "{}: the replay differs", name);
        prop_assert_eq!(Some(reader.size()), BodyInfo::of(&streamed).size, "{}", name);
        prop_assert_eq!(reader.is_eight_bit(), !streamed.is_ascii(), "{}", name);
    }
}

/// A file part gives the message the same bytes as the same content from
/// memory: same encoding choice (7bit, quoted-printable, base64), same lines.
#[test]
fn a_file_part_is_written_as_the_same_bytes_from_memory_would_be() {
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("plain.txt", b"short text\r\n".to_vec()),
        (
            "trailing.txt",
            b"line with trailing space \r\n".repeat(3000),
        ),
        ("latin.txt", "Grüße = Köln\r\n".repeat(10_000).into_bytes()),
        ("long.txt", "y".repeat(300_000).into_bytes()),
        (
            "data.bin",
            (0..200_000u32).map(|v| (v * 7 % 256) as u8).collect(),
        ),
        ("empty.bin", Vec::new()),
        ("inner.eml", b"Subject: x\r\n\r\nbody\r\n".repeat(5000)),
    ];
    for (name, body) in bodies {
        let path = dir.path().join(name);
        std::fs::write(&path, &body).unwrap();
        let from_file = base()
            .with_text("see the file\n")
            .with_attachment(name, Content::from_path(&path).unwrap())
            .unwrap();
        let content_type = from_file.parts()[0].content_type().to_string();
        let from_memory = base()
            .with_text("see the file\n")
            .with_attachment(
                name,
                Content::from_bytes(body.clone())
                    .with_content_type(&content_type)
                    .unwrap(),
            )
            .unwrap();
        let file_bytes = from_file.to_bytes().unwrap();
        assert_eq!(
            boundaries_numbered(&file_bytes),
            boundaries_numbered(&from_memory.to_bytes().unwrap()),
            "{name}"
        );
        let back = Email::parse(&file_bytes).unwrap();
        assert!(
            back.attachments()[0].data() == body.as_slice(),
            "{name}: round trip"
        );
        let reader = from_file.reader().unwrap();
        let mut streamed = Vec::new();
        reader.replay().read_to_end(&mut streamed).unwrap();
        assert_eq!(Some(reader.size()), BodyInfo::of(&streamed).size, "{name}");
    }
}

/// `Content::from_path` reads the file when the message is written: what
/// the file holds then is sent, not what it held when the message was built.
#[test]
fn a_file_attachment_is_read_when_the_message_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.bin");
    std::fs::write(&path, b"version one").unwrap();
    let email = base()
        .with_attachment("report.bin", Content::from_path(&path).unwrap())
        .unwrap();
    assert_eq!(email.parts()[0].path(), Some(path.as_path()));
    assert!(
        email.parts()[0].data().is_empty(),
        "nothing is held in memory"
    );
    std::fs::write(&path, b"version two, longer").unwrap();
    let back = Email::parse(&email.to_bytes().unwrap()).unwrap();
    assert_eq!(back.attachments()[0].data(), b"version two, longer");
    // Each export reads it again.
    std::fs::write(&path, b"version three").unwrap();
    let back = Email::parse(&email.to_bytes().unwrap()).unwrap();
    assert_eq!(back.attachments()[0].data(), b"version three");
}

/// A file that is gone when the message is written is an error naming it,
/// from `to_bytes`, `write_to` and `reader`, never a panic nor an empty
/// part; gone after the reader was made, it fails the read, naming it.
#[test]
fn a_file_gone_before_or_while_writing_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["gone.bin", "gone.txt"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"soon gone\n").unwrap();
        let email = base()
            .with_attachment(name, Content::from_path(&path).unwrap())
            .unwrap();
        let mut reader = email.reader().unwrap();
        std::fs::remove_file(&path).unwrap();
        let error = read_all(&mut reader, &[4096]).unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
        for error in [
            email.to_bytes().unwrap_err(),
            email.write_to(Vec::new()).unwrap_err(),
            email.reader().unwrap_err(),
        ] {
            match &error {
                MessageError::Io {
                    path: Some(failed), ..
                } => assert_eq!(failed, &path),
                other => panic!("{name}: {other:?}"),
            }
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}

/// A file whose size changes between preparing the message (which fixed
/// its headers, its SIZE and perhaps its signature) and writing it is an
/// error naming it, not a message that no longer matches its headers.
#[test]
fn a_file_that_changes_while_the_message_is_written_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, later) in [
        ("shrinks.bin", b"short".to_vec()),
        ("grows.bin", vec![1; 300_000]),
        // Same length, other bytes: the quoted-printable length that chose
        // its encoding is no longer what it was.
        ("now8bit.txt", "é".repeat(50_000).into_bytes()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, vec![b'a'; 100_000]).unwrap();
        let email = base()
            .with_attachment(name, Content::from_path(&path).unwrap())
            .unwrap();
        let mut reader = email.reader().unwrap();
        std::fs::write(&path, later).unwrap();
        let error = read_all(&mut reader, &[8192]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(name) && text.contains("changed"), "{text}");
    }
}

/// `write_to` into a failing writer: an I/O error without a path (the
/// output failed, not a part).
#[test]
fn a_failing_output_is_an_error_without_a_path() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let error = base().with_text("x").write_to(Full).unwrap_err();
    assert!(
        matches!(error, MessageError::Io { path: None, .. }),
        "{error:?}"
    );
}

/// Memory does not follow the attachment: a reader of a message with a
/// 64 MiB file part holds a bounded buffer (measured through what one
/// `read` may return, and by the process's peak RSS on Linux).
#[test]
fn a_large_file_part_is_streamed_in_bounded_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(64 << 20).unwrap(); // sparse: no memory, no disk
    drop(file);
    let email = base()
        .with_attachment("big.bin", Content::from_path(&path).unwrap())
        .unwrap();
    let mut reader = email.reader().unwrap();
    let expected = reader.size();
    let before = peak_rss_kib();
    let mut buffer = vec![0; 1 << 20];
    let mut total = 0u64;
    let mut largest = 0;
    loop {
        let n = reader.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        largest = largest.max(n);
        total += n as u64;
    }
    assert_eq!(total, expected);
    assert!(largest <= 128 * 1024, "one read gave {largest} bytes");
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        // The other tests of this binary run at the same time; 64 MiB of
        // base64 (86 MiB) held whole would show far above this.
        assert!(
            after - before < 48 * 1024,
            "peak RSS grew by {} KiB",
            after - before
        );
    }
}

/// The process's peak resident set (Linux: VmHWM), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
