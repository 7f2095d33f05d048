//! Arbitrary server bytes, split at arbitrary points: the parser must never
//! panic, never hold more than its bounds, and give the same replies however
//! the input was split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_mailer_proto::ReplyParser;

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let whole = parse(&[data]);
    let chunks: Vec<&[u8]> = data.chunks(split).collect();
    assert_eq!(whole, parse(&chunks));
});

fn parse(chunks: &[&[u8]]) -> (Vec<String>, bool) {
    let mut parser = ReplyParser::default();
    let mut replies = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        loop {
            match parser.next_reply() {
                Ok(Some(reply)) => replies.push(reply.to_string()),
                Ok(None) => break,
                Err(_) => return (replies, true),
            }
        }
        assert!(parser.buffered() <= 4096 + chunk.len());
    }
    (replies, false)
}
