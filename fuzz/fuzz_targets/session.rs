//! A session fed arbitrary server bytes (with credentials, STARTTLS or
//! implicit TLS, several mails one after the other or pipelined behind each
//! other, NOOPs, DSN and REQUIRETLS options, and a fake clock that jumps
//! forward), over SMTP or LMTP, must never panic, never send a credential or REQUIRETLS before
//! TLS, never report a deadline in the past, and never report more outcomes
//! than mails started.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tls_mailer_proto::{
    BodyInfo, Credentials, Domain, Dsn, DsnReturn, Envelope, Event, MailOptions, Notify,
    Protocol, Security, Session, SessionConfig,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let security = if mode & 1 == 0 { Security::StartTls } else { Security::ImplicitTls };
    let mut config = SessionConfig::new(Domain::new("client.example").unwrap(), security);
    config.credentials = Some(Credentials::new("user", "fuzz-secret"));
    config.use_chunking = mode & 2 == 0;
    // LMTP: one reply per accepted recipient after the data.
    let lmtp = mode & 128 != 0;
    if lmtp {
        config.protocol = Protocol::Lmtp;
    }
    let mut now = Instant::now();
    let mut session = Session::new(config, now);
    let mut wire = Vec::new();
    let mut mails = 0;
    let mut started = 0;
    let mut outcomes = 0;
    let pipelined = mode & 64 != 0;
    let options = if mode & 16 != 0 {
        MailOptions::new()
            .with_dsn(Dsn::new().notify(Notify::FAILURE).ret(DsnReturn::Headers))
            .with_dsn_optional(mode & 32 != 0)
            .with_require_tls(true)
    } else {
        MailOptions::new()
    };
    for chunk in input.split_inclusive(|&b| b == b'\n') {
        if let [0xff, seconds, ..] = chunk {
            // A time step instead of bytes.
            now += Duration::from_secs(u64::from(*seconds));
            session.handle_timeout(now);
        } else {
            session.handle_input(now, chunk);
        }
        if let Some(deadline) = session.poll_timeout() {
            assert!(deadline + Duration::from_secs(86_400) > now);
        }
        let _ = session.poll_transmit(&mut wire);
        while let Some(event) = session.poll_event() {
            match event {
                Event::UpgradeToTls => {
                    // Refused only when a deadline closed the session before
                    // the driver got to the handshake.
                    if session.tls_established(now).is_err() {
                        assert!(session.is_closed());
                    }
                }
                Event::Ready if mails < 3 => {
                    mails += 1;
                    if mode & 4 != 0 && mails == 2 {
                        let _ = session.noop(now);
                        continue;
                    }
                    let recipients: &[&str] =
                        if lmtp { &["c@d.example", "g@h.example"] } else { &["c@d.example"] };
                    let envelope = Envelope::new("a@b.example", recipients).unwrap();
                    if session.start_mail_with(now, envelope, BodyInfo::default(), &options).is_ok() {
                        started += 1;
                    }
                }
                Event::Accepted(_) | Event::MailFailed(_) => {
                    outcomes += 1;
                    assert!(outcomes <= started, "{outcomes} outcomes for {started} mails");
                }
                Event::Ready => session.quit(now),
                Event::SendBody(_) => {
                    let _ = session.write_body(now, b"Subject: x\r\n\r\nbody\r\n", &mut wire);
                    let _ = session.finish_body(now, &mut wire);
                    if mode & 8 != 0 && mails == 3 {
                        session.quit(now);
                    } else if pipelined && mails < 3 && session.can_start_mail() {
                        // The next mail behind this one, before its outcome.
                        mails += 1;
                        let envelope = Envelope::new("a@b.example", ["e@f.example"]).unwrap();
                        if session.start_mail(now, envelope, BodyInfo::default()).is_ok() {
                            started += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        let _ = session.poll_transmit(&mut wire);
        if session.phase() == tls_mailer_proto::Phase::Closed {
            assert_eq!(session.mails_in_flight(), 0);
        }
        if security == Security::StartTls && !session.is_encrypted() {
            // No AUTH line (so no credential) and no REQUIRETLS may leave
            // before TLS.
            assert!(!wire.windows(4).any(|w| w == b"AUTH"));
            assert!(!wire.windows(10).any(|w| w == b"REQUIRETLS"));
        }
    }
});
