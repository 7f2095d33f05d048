//! A session fed arbitrary server bytes (with credentials, STARTTLS mode and
//! a mail started whenever possible) must never panic and never send a
//! credential before TLS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_mailer_proto::{
    BodyInfo, Credentials, Domain, Envelope, Event, Session, SessionConfig, Transport,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let transport = if mode & 1 == 0 { Transport::StartTls } else { Transport::ImplicitTls };
    let mut config = SessionConfig::new(Domain::new("client.example").unwrap(), transport);
    config.credentials = Some(Credentials::new("user", "fuzz-secret"));
    let mut session = Session::new(config);
    let mut wire = Vec::new();
    for chunk in input.split_inclusive(|&b| b == b'\n') {
        session.handle_input(chunk);
        session.poll_transmit(&mut wire);
        while let Some(event) = session.poll_event() {
            match event {
                Event::UpgradeToTls => {
                    session.tls_established().unwrap();
                }
                Event::Ready(_) => {
                    let envelope = Envelope::new("a@b.example", ["c@d.example"]).unwrap();
                    let _ = session.start_mail(envelope, BodyInfo::default());
                }
                Event::SendBody(_) => {
                    let _ = session.write_body(b"Subject: x\r\n\r\nbody\r\n", &mut wire);
                    let _ = session.finish_body(&mut wire);
                }
                _ => {}
            }
        }
        session.poll_transmit(&mut wire);
        if transport == Transport::StartTls && !session.is_encrypted() {
            // No AUTH line (so no credential) may leave before TLS.
            assert!(!wire.windows(4).any(|w| w == b"AUTH"));
        }
    }
});
