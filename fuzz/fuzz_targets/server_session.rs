//! Arbitrary caller bytes into the server side of a `sendmail -bs`
//! dialogue, split at arbitrary points: it must never panic, never hold more
//! than its bounds, and give the same replies and message bytes however the
//! input was split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_mailer_proto::server::{ServerEvent, ServerLimits, ServerSession};
use tls_mailer_proto::{Reply, ReplyCode};

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let whole = run(&[data]);
    let chunks: Vec<&[u8]> = data.chunks(split).collect();
    assert_eq!(whole, run(&chunks));
});

fn run(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let limits = ServerLimits::default();
    let bound = limits.command_line + limits.data_chunk + limits.pending_replies + 1024;
    let verdict = Reply::new(ReplyCode::new(250).unwrap(), vec!["2.0.0 relayed".into()]);
    let mut session = ServerSession::with_limits("fuzz.test", limits);
    let mut wire = Vec::new();
    let mut message = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            let taken = session.handle_input(rest);
            rest = &rest[taken..];
            while let Some(event) = session.poll_event() {
                match event {
                    ServerEvent::Data(bytes) => message.extend_from_slice(bytes),
                    ServerEvent::MessageEnd => {
                        message.extend_from_slice(b"<end>");
                        assert!(session.finish_message(&verdict));
                    }
                    ServerEvent::Quit => {}
                }
            }
            assert!(session.buffered() <= bound);
            let _ = session.poll_transmit(&mut wire);
        }
    }
    (wire, message)
}
