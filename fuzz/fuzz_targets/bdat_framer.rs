//! The BDAT encoder round trip: the frames, read back as a server reads
//! them, give the input with normalised line endings; exactly the last frame
//! carries LAST; and the split of the input never changes the data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_mailer_proto::{BdatFramer, CrlfNormalizer};

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let mut framer = BdatFramer::new();
    let mut wire = Vec::new();
    let mut frames_announced = 0;
    for chunk in data.chunks(split) {
        if framer.encode(chunk, &mut wire).is_some() {
            frames_announced += 1;
        }
    }
    framer.finish(&mut wire);

    // Read the frames back: "BDAT n[ LAST]\r\n" then n bytes.
    let mut rest = &wire[..];
    let mut data_back = Vec::new();
    let mut frames = 0;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("a BDAT line");
        let line = std::str::from_utf8(&rest[..line_end]).unwrap();
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("BDAT"));
        let size: usize = words.next().unwrap().parse().unwrap();
        let last = words.next() == Some("LAST");
        rest = &rest[line_end + 2..];
        data_back.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        frames += 1;
        if last {
            break;
        }
    }
    assert!(rest.is_empty(), "nothing after the LAST frame");
    assert_eq!(frames, frames_announced + 1);

    let mut expected = Vec::new();
    let mut normalizer = CrlfNormalizer::new();
    normalizer.encode(data, &mut expected);
    normalizer.finish(&mut expected);
    assert_eq!(data_back, expected);
});
