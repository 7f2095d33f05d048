//! The EHLO capability parser on any reply the reply parser accepts: no
//! panic, the AUTH list bounded and made only of valid mechanism names, each
//! once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_mailer_proto::capabilities::MAX_AUTH_MECHANISMS;
use tls_mailer_proto::{Capabilities, ReplyParser};

fuzz_target!(|data: &[u8]| {
    let mut parser = ReplyParser::default();
    parser.feed(data);
    while let Ok(Some(reply)) = parser.next_reply() {
        let capabilities = Capabilities::from_ehlo_reply(&reply);
        let mechanisms = &capabilities.auth_mechanisms;
        assert!(mechanisms.len() <= MAX_AUTH_MECHANISMS);
        for (index, mechanism) in mechanisms.iter().enumerate() {
            assert!((1..=20).contains(&mechanism.len()), "{mechanism:?}");
            assert!(mechanism.bytes().all(|b| b.is_ascii_uppercase()
                || b.is_ascii_digit()
                || b == b'-'
                || b == b'_'));
            assert!(!mechanisms[..index].contains(mechanism), "{mechanism} twice");
        }
        let _ = capabilities.size_limit();
    }
});
