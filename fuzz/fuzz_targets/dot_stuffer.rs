//! The DATA encoder round trip: un-stuffing what it writes gives the input
//! with normalised line endings, and the split of the input never matters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_mailer_proto::DotStuffer;

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let mut one = Vec::new();
    let mut stuffer = DotStuffer::new();
    stuffer.encode(data, &mut one);
    stuffer.finish(&mut one);

    let mut many = Vec::new();
    let mut stuffer = DotStuffer::new();
    for chunk in data.chunks(split) {
        stuffer.encode(chunk, &mut many);
    }
    stuffer.finish(&mut many);
    assert_eq!(one, many);

    let body = one.strip_suffix(b".\r\n").unwrap();
    let mut unstuffed = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"));
        assert_ne!(line, b".\r\n");
        unstuffed.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    assert_eq!(unstuffed, normalise(data));
});

fn normalise(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < input.len() {
        match input[index] {
            b'\r' if input.get(index + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                index += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            byte => out.push(byte),
        }
        index += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}
