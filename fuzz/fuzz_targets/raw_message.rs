//! The raw-message reader: any input is read without a panic; what it gives
//! to send has a header section of CRLF lines only and no Bcc field, and the
//! body after it is the source's, byte for byte.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use tls_mailer_message::RawMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = RawMessage::read(data, Some(data.len() as u64)) else { return };
    let _ = message.envelope();
    let declared = message.size();
    let mut sent = Vec::new();
    message.into_reader().read_to_end(&mut sent).unwrap();
    assert_eq!(declared, Some(sent.len() as u64));
    // The header section: up to its blank line (which may be the very first
    // line), or everything when there is none.
    let end = if sent.starts_with(b"\r\n") {
        2
    } else {
        sent.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(sent.len(), |p| p + 2)
    };
    let header = &sent[..end];
    for (index, byte) in header.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(header.get(index + 1), Some(&b'\n'), "bare CR"),
            b'\n' => assert_eq!(index.checked_sub(1).map(|i| header[i]), Some(b'\r'), "bare LF"),
            _ => {}
        }
    }
    for line in header.split(|&b| b == b'\n') {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A folded continuation of the field before it, not a field.
            continue;
        }
        // Only a line with a colon is a field (RFC 5322 2.2).
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        assert!(!name.trim_ascii().eq_ignore_ascii_case(b"bcc"), "Bcc left in: {line:?}");
    }
});
