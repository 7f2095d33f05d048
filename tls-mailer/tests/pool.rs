#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Reusing connections with the blocking driver: the transparent reconnect
//! of a [`Connection`](tls_mailer::Connection) whose server gave up an idle
//! connection (and the failures that must never be sent again), and the
//! [`Pool`] under many threads, with servers that close, refuse and age
//! connections. The server counts every delivery attempt (MAIL) and every
//! connection, so "sent exactly once" is checked where it matters.

mod pool_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pool_support::*;
use tls_mailer::{Error, PoolConfig};
use tls_mailer_proto::{CommandKind, ProtocolError};
use tls_mailer_testkit::{Fault, Stage};

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_before_the_next_mail() {
    for with_421 in [true, false] {
        let server = server(&[idle_close(with_421)]);
        let mut connection = client(&server).connect().unwrap();
        let (envelope, body) = message(0);
        connection.send(&envelope, &body).unwrap();
        wait_for_idle_closes(&server, 1);
        let (envelope, body) = message(1);
        let report = connection.send(&envelope, &body).unwrap();
        assert!(report.all_accepted());
        assert!(connection.is_open());
        connection.quit().unwrap();

        assert_each_accepted_once(&server, 2);
        assert_eq!(server.connections(), 2, "with_421: {with_421}");
        // The closed connection was noticed before its MAIL: no attempt on it.
        assert_eq!(server.mail_commands(), 2, "{}", server.transcript());
    }
}

#[test]
fn the_idle_check_finds_the_close_before_any_mail_is_written() {
    for with_421 in [true, false] {
        let server = server(&[idle_close(with_421)]);
        let (client, mails_written) = counting_client(&server);
        let mut connection = client.connect().unwrap();
        let (envelope, body) = message(0);
        connection.send(&envelope, &body).unwrap();
        wait_for_idle_closes(&server, 1);
        let (envelope, body) = message(1);
        connection.send(&envelope, &body).unwrap();
        // Not one MAIL FROM went to the closed connection.
        assert_eq!(
            mails_written.load(Ordering::SeqCst),
            2,
            "with_421: {with_421}"
        );
    }
}

#[test]
fn the_answer_to_the_rset_after_a_refused_mail_is_not_taken_for_a_close() {
    // The refused mail's RSET is written at once; its 250 waits in the
    // socket until the next send reads it, and is no sign of a close.
    let server = server(&[Fault::RejectRecipient {
        address: "user1@example.org".into(),
        code: 550,
        text: "5.1.1 no such user".into(),
    }]);
    let mut connection = client(&server).connect().unwrap();
    for n in 0..3 {
        let (envelope, body) = message(n);
        assert_eq!(connection.send(&envelope, &body).is_ok(), n != 1);
    }
    // (The server stores a message just after its 250.)
    assert_eq!(
        server.wait_for_messages(2, Duration::from_secs(10)).len(),
        2
    );
    assert_eq!(server.connections(), 1, "{}", server.transcript());
}

#[test]
fn a_421_to_mail_on_an_idle_connection_sends_the_mail_again_on_a_new_one() {
    let server = server(&[every_second(refuse_mail_421())]);
    let mut connection = client(&server).connect().unwrap();
    for n in 0..2 {
        let (envelope, body) = message(n);
        connection.send(&envelope, &body).unwrap();
    }
    connection.quit().unwrap();
    assert_each_accepted_once(&server, 2);
    // Mail 2 was refused with 421 before anything was taken; mail 3 is its
    // resending, on connection 2.
    assert_eq!(server.mail_commands(), 3);
    assert_eq!(server.connections(), 2);
}

#[test]
fn a_connection_closed_before_the_reply_to_mail_sends_the_mail_again() {
    let server = data_only_server(&[every_second(Fault::Drop {
        stage: Stage::MailFrom,
    })]);
    let mut connection = client(&server).connect().unwrap();
    for n in 0..2 {
        let (envelope, body) = message(n);
        connection.send(&envelope, &body).unwrap();
    }
    assert_each_accepted_once(&server, 2);
    assert_eq!(server.mail_commands(), 3);
    assert_eq!(server.connections(), 2);
}

#[test]
fn a_failure_after_the_reply_to_mail_is_reported_and_never_sent_again() {
    let cases = [
        (
            Fault::Drop {
                stage: Stage::RcptTo,
            },
            CommandKind::RcptTo,
        ),
        (
            Fault::Drop {
                stage: Stage::DataEnd,
            },
            CommandKind::DataEnd,
        ),
    ];
    for (fault, awaiting) in cases {
        let server = server(&[every_second(fault)]);
        let mut connection = client(&server).connect().unwrap();
        let (envelope, body) = message(0);
        connection.send(&envelope, &body).unwrap();
        let (envelope, body) = message(1);
        let error = connection.send(&envelope, &body).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::Protocol(ProtocolError::ConnectionClosed { awaiting: Some(kind) })
                    if *kind == awaiting
            ),
            "{error:?}"
        );
        assert!(!connection.is_open());
        assert_eq!(server.mail_commands(), 2, "one attempt only: {awaiting:?}");
        assert_eq!(server.connections(), 1);
        assert_eq!(server.messages().len(), 1);
    }
}

#[test]
fn a_421_after_the_body_is_reported_and_never_sent_again() {
    let server = server(&[every_second(Fault::Reply {
        stage: Stage::DataEnd,
        code: 421,
        text: "4.3.2 shutting down".into(),
    })]);
    let mut connection = client(&server).connect().unwrap();
    let (envelope, body) = message(0);
    connection.send(&envelope, &body).unwrap();
    let (envelope, body) = message(1);
    let error = connection.send(&envelope, &body).unwrap_err();
    assert!(
        matches!(&error, Error::Rejected(rejection) if rejection.command == CommandKind::DataEnd),
        "{error:?}"
    );
    assert_eq!(server.mail_commands(), 2);
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_send_reconnects_once_only() {
    // Every MAIL is refused with 421: the send moves to one new connection,
    // is refused there too, and reports it.
    let server = server(&[refuse_mail_421()]);
    let mut connection = client(&server).connect().unwrap();
    let (envelope, body) = message(0);
    let error = connection.send(&envelope, &body).unwrap_err();
    assert!(
        matches!(&error, Error::Rejected(rejection) if rejection.command == CommandKind::MailFrom && rejection.is_service_closing()),
        "{error:?}"
    );
    assert_eq!(server.mail_commands(), 2);
    assert_eq!(server.connections(), 2);
}

#[test]
fn a_one_shot_send_never_reconnects() {
    let server = server(&[refuse_mail_421()]);
    let (envelope, body) = message(0);
    let error = client(&server).send(&envelope, &body).unwrap_err();
    assert!(matches!(error, Error::Rejected(_)), "{error:?}");
    assert_eq!(server.mail_commands(), 1);
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_streamed_message_is_sent_again_whole_after_a_421_to_mail() {
    let server = data_only_server(&[every_second(refuse_mail_421())]);
    let mut connection = client(&server).connect().unwrap();
    for n in 0..2 {
        let (envelope, body) = message(n);
        connection
            .send_reader(
                &envelope,
                &mut body.as_slice(),
                tls_mailer::BodyInfo::of(&body),
            )
            .unwrap();
    }
    let messages = assert_each_accepted_once(&server, 2);
    assert_eq!(messages[1].data, message(1).1);
}

#[test]
fn many_threads_share_a_pool_of_four_within_its_limits() {
    const THREADS: usize = 16;
    const EACH: usize = 50;
    let server = Arc::new(server(&[]));
    let pool = client(&server).pool(
        PoolConfig::default()
            .max_connections(4)
            .max_messages_per_connection(10),
    );
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let pool = &pool;
            scope.spawn(move || {
                for n in thread * EACH..(thread + 1) * EACH {
                    let (envelope, body) = message(n);
                    pool.send(&envelope, &body).unwrap();
                }
            });
        }
    });
    let messages = assert_each_accepted_once(&server, THREADS * EACH);
    assert!(
        server.peak_connections() <= 4,
        "{}",
        server.peak_connections()
    );
    let per_connection = messages_per_connection(&messages);
    assert!(
        per_connection.values().all(|&count| count <= 10),
        "{per_connection:?}"
    );
    // 800 messages, at most 10 a connection.
    assert!(server.connections() >= THREADS * EACH / 10);
    assert_eq!(server.mail_commands(), THREADS * EACH);
}

#[test]
fn a_pooled_connection_the_server_closed_while_idle_is_replaced() {
    let server = server(&[idle_close(true)]);
    let pool = client(&server).pool(PoolConfig::default().max_connections(1));
    let (envelope, body) = message(0);
    pool.send(&envelope, &body).unwrap();
    wait_for_idle_closes(&server, 1);
    let (envelope, body) = message(1);
    pool.send(&envelope, &body).unwrap();
    assert_each_accepted_once(&server, 2);
    assert_eq!(server.connections(), 2);
    assert_eq!(server.mail_commands(), 2);
}

#[test]
fn a_421_mid_run_costs_one_new_connection_and_no_message() {
    let server = server(&[Fault::EveryNth {
        n: 7,
        fault: Box::new(refuse_mail_421()),
    }]);
    let pool = client(&server).pool(PoolConfig::default().max_connections(2));
    for n in 0..30 {
        let (envelope, body) = message(n);
        pool.send(&envelope, &body).unwrap();
    }
    assert_each_accepted_once(&server, 30);
    // Mails 7, 14, 21 and 28 were refused; each was sent again once, on a
    // new connection.
    assert_eq!(server.mail_commands(), 34);
    assert_eq!(server.connections(), 5);
}

#[test]
fn a_broken_pooled_connection_is_replaced_not_handed_out() {
    let server = server(&[every_second(Fault::Drop {
        stage: Stage::DataEnd,
    })]);
    let pool = client(&server).pool(PoolConfig::default().max_connections(1));
    let (envelope, body) = message(0);
    pool.send(&envelope, &body).unwrap();
    let (envelope, body) = message(1);
    assert!(pool.send(&envelope, &body).is_err());
    assert_eq!(pool.idle_connections(), 0, "the broken one is gone");
    let (envelope, body) = message(2);
    pool.send(&envelope, &body).unwrap();
    assert_eq!(server.connections(), 2);
    assert_eq!(server.mail_commands(), 3);
    assert_eq!(pool.idle_connections(), 1);
}

#[test]
fn a_connection_past_its_maximum_age_is_closed_not_reused() {
    let server = server(&[]);
    let pool = client(&server).pool(PoolConfig::default().max_age(Duration::from_secs(1)));
    let (envelope, body) = message(0);
    pool.send(&envelope, &body).unwrap();
    let (envelope, body) = message(1);
    pool.send(&envelope, &body).unwrap();
    assert_eq!(server.connections(), 1, "young enough: reused");
    std::thread::sleep(Duration::from_millis(1200));
    let (envelope, body) = message(2);
    pool.send(&envelope, &body).unwrap();
    assert_eq!(server.connections(), 2, "too old: replaced");
    // The old one was closed politely, while the new one was not yet open.
    assert_eq!(said(&server, "QUIT"), 1);
    assert_eq!(server.peak_connections(), 1);
}

#[test]
fn the_messages_cap_closes_a_connection_after_its_last_message() {
    let server = server(&[]);
    let pool = client(&server).pool(PoolConfig::default().max_messages_per_connection(3));
    for n in 0..7 {
        let (envelope, body) = message(n);
        pool.send(&envelope, &body).unwrap();
    }
    let messages = assert_each_accepted_once(&server, 7);
    let per_connection: Vec<usize> = messages_per_connection(&messages).into_values().collect();
    assert_eq!(per_connection, [3, 3, 1]);
    assert_eq!(said(&server, "QUIT"), 2);
}

#[test]
fn noop_is_sent_only_before_reusing_a_connection_idle_beyond_the_threshold() {
    let server = server(&[]);
    let pool = client(&server).pool(
        PoolConfig::default()
            .max_connections(1)
            .noop_after(Duration::from_secs(1)),
    );
    for n in 0..3 {
        let (envelope, body) = message(n);
        pool.send(&envelope, &body).unwrap();
    }
    assert_eq!(said(&server, "NOOP"), 0, "{}", server.transcript());
    std::thread::sleep(Duration::from_millis(1200));
    let (envelope, body) = message(3);
    pool.send(&envelope, &body).unwrap();
    assert_eq!(said(&server, "NOOP"), 1, "{}", server.transcript());
    // The NOOP came right before the fourth MAIL, on the same connection.
    let transcript = server.transcript();
    let commands: Vec<&str> = transcript
        .lines()
        .filter(|line| line.starts_with("C: NOOP") || line.starts_with("C: MAIL"))
        .collect();
    assert_eq!(commands.len(), 5);
    assert!(commands[3].starts_with("C: NOOP"), "{commands:?}");
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_checkout_waits_for_a_free_connection_at_most_its_timeout() {
    let server = server(&[]);
    let pool = client(&server).pool(
        PoolConfig::default()
            .max_connections(1)
            .checkout_timeout(Duration::from_millis(100)),
    );
    let held = pool.get().unwrap();
    let error = pool.get().unwrap_err();
    assert!(
        matches!(
            error,
            Error::PoolTimeout {
                max_connections: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert!(error.to_string().contains("all 1 were in use"), "{error}");
    // Given back, it is the next checkout's.
    drop(held);
    let (envelope, body) = message(0);
    pool.get().unwrap().send(&envelope, &body).unwrap();
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_waiting_checkout_gets_the_connection_given_back() {
    let server = server(&[]);
    let pool = client(&server).pool(PoolConfig::default().max_connections(1));
    let held = pool.get().unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let (envelope, body) = message(0);
            pool.send(&envelope, &body)
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        waiter.join().unwrap().unwrap();
    });
    assert_eq!(server.connections(), 1);
}

/// With CHUNKING and PIPELINING the body leaves with MAIL, so a streamed
/// message met by a 421 has had its reader read: it is reported, never
/// sent again (half read, it would arrive cut or empty).
#[test]
fn a_streamed_message_whose_body_went_with_mail_is_reported_not_resent() {
    let server = server(&[every_second(refuse_mail_421())]);
    let mut connection = client(&server).connect().unwrap();
    let (envelope, body) = message(0);
    connection
        .send_reader(
            &envelope,
            &mut body.as_slice(),
            tls_mailer::BodyInfo::of(&body),
        )
        .unwrap();
    let (envelope, body) = message(1);
    let error = connection
        .send_reader(
            &envelope,
            &mut body.as_slice(),
            tls_mailer::BodyInfo::of(&body),
        )
        .unwrap_err();
    assert!(
        matches!(&error, Error::Rejected(r) if r.code().value() == 421),
        "{error:?}"
    );
    assert!(error.is_transient());
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].data, message(0).1);
    assert_eq!(server.mail_commands(), 2);
}
