//! The importer: whatever `Email::parse` accepts exports without a panic,
//! with a header section that has no bare CR, bare LF or other control
//! character (no header injection), and the export parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_mailer_message::Email;

fuzz_target!(|data: &[u8]| {
    let Ok(email) = Email::parse(data) else { return };
    let Ok(exported) = email.to_bytes() else { return };
    let end = exported
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(exported.len());
    for line in exported[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            !line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f),
            "control character in an exported header line: {line:?}"
        );
    }
    assert!(Email::parse(&exported).is_ok(), "the export must import again");
});
