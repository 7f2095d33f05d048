#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! Reusing connections with the tokio driver: the transparent reconnect of
//! an [`AsyncConnection`](tls_mailer::AsyncConnection), and the
//! [`AsyncPool`] under 1000 concurrent sends, with the memory an idle
//! pooled connection costs (measured with the server in another process).

mod pool_support;

use std::time::{Duration, Instant};

use pool_support::*;
use tls_mailer::{AsyncPool, Error, PoolConfig};
use tls_mailer_proto::{CommandKind, ProtocolError};
use tls_mailer_testkit::{Fault, Stage, TestServer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// [`wait_for_idle_closes`] that lets the runtime run meanwhile (it learns
/// of the server's close while it waits, as an application's would).
async fn idle_closes(server: &TestServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.transcript().matches("-- closed: idle").count() < count {
        assert!(Instant::now() < deadline, "{}", server.transcript());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_async_connection_the_server_closed_while_idle_is_replaced_before_the_next_mail() {
    for with_421 in [true, false] {
        let server = server(&[idle_close(with_421)]);
        runtime().block_on(async {
            let mut connection = client(&server).connect_async().await.unwrap();
            let (envelope, body) = message(0);
            connection.send(&envelope, &body).await.unwrap();
            idle_closes(&server, 1).await;
            let (envelope, body) = message(1);
            connection.send(&envelope, &body).await.unwrap();
            assert!(connection.is_open());
            connection.quit().await.unwrap();
        });
        assert_each_accepted_once(&server, 2);
        assert_eq!(server.connections(), 2);
        assert_eq!(server.mail_commands(), 2, "{}", server.transcript());
    }
}

#[test]
fn the_async_idle_check_finds_the_close_before_any_mail_is_written() {
    for with_421 in [true, false] {
        let server = server(&[idle_close(with_421)]);
        let (client, mails_written) = counting_client(&server);
        runtime().block_on(async {
            let mut connection = client.connect_async().await.unwrap();
            let (envelope, body) = message(0);
            connection.send(&envelope, &body).await.unwrap();
            idle_closes(&server, 1).await;
            let (envelope, body) = message(1);
            connection.send(&envelope, &body).await.unwrap();
        });
        let written = mails_written.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(written, 2, "with_421: {with_421}");
    }
}

#[test]
fn an_async_send_refused_with_421_at_mail_goes_again_over_a_new_connection() {
    for fault in [
        refuse_mail_421(),
        Fault::Drop {
            stage: Stage::MailFrom,
        },
    ] {
        let server = server(&[every_second(fault)]);
        runtime().block_on(async {
            let mut connection = client(&server).connect_async().await.unwrap();
            for n in 0..2 {
                let (envelope, body) = message(n);
                connection.send(&envelope, &body).await.unwrap();
            }
        });
        assert_each_accepted_once(&server, 2);
        assert_eq!(server.mail_commands(), 3);
        assert_eq!(server.connections(), 2);
    }
}

#[test]
fn an_async_failure_after_the_reply_to_mail_is_never_sent_again() {
    let server = server(&[every_second(Fault::Drop {
        stage: Stage::DataEnd,
    })]);
    runtime().block_on(async {
        let mut connection = client(&server).connect_async().await.unwrap();
        let (envelope, body) = message(0);
        connection.send(&envelope, &body).await.unwrap();
        let (envelope, body) = message(1);
        let error = connection.send(&envelope, &body).await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::Protocol(ProtocolError::ConnectionClosed {
                    awaiting: Some(CommandKind::DataEnd)
                })
            ),
            "{error:?}"
        );
    });
    assert_eq!(server.mail_commands(), 2);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.messages().len(), 1);
}

/// Sends messages `0..count`, all at once, through `pool`; how long it took.
async fn send_all(pool: &AsyncPool, count: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let pool = pool.clone();
        tasks.spawn(async move {
            let (envelope, body) = message(n);
            pool.send(&envelope, &body).await
        });
    }
    while let Some(sent) = tasks.join_next().await {
        sent.unwrap().unwrap();
    }
    started.elapsed()
}

#[test]
fn a_thousand_concurrent_sends_through_an_async_pool_of_eight() {
    const SENDS: usize = 1000;
    let server = server(&[]);
    let pool = client(&server).pool_async(
        PoolConfig::default()
            .max_connections(8)
            .max_messages_per_connection(200),
    );
    let took = runtime().block_on(send_all(&pool, SENDS));
    eprintln!("{SENDS} sends through 8 connections: {took:?}");
    let messages = assert_each_accepted_once(&server, SENDS);
    assert!(
        server.peak_connections() <= 8,
        "{}",
        server.peak_connections()
    );
    assert!(
        messages_per_connection(&messages)
            .values()
            .all(|&count| count <= 200)
    );
    assert_eq!(server.mail_commands(), SENDS);
    assert!(pool.idle_connections() <= 8);
}

#[test]
fn the_async_pool_replaces_connections_the_server_closed_and_honours_its_caps() {
    let server = server(&[idle_close(true)]);
    let pool = client(&server).pool_async(
        PoolConfig::default()
            .max_connections(2)
            .max_messages_per_connection(3),
    );
    runtime().block_on(async {
        send_all(&pool, 4).await;
        idle_closes(&server, 1).await;
        let (envelope, body) = message(4);
        pool.send(&envelope, &body).await.unwrap();
    });
    let messages = assert_each_accepted_once(&server, 5);
    assert!(
        messages_per_connection(&messages)
            .values()
            .all(|&count| count <= 3)
    );
    assert!(server.peak_connections() <= 2);
    assert_eq!(server.mail_commands(), 5);
}

#[test]
fn the_async_pool_sends_noop_only_past_the_idle_threshold() {
    let server = server(&[]);
    let pool = client(&server).pool_async(
        PoolConfig::default()
            .max_connections(1)
            .noop_after(Duration::from_millis(300)),
    );
    runtime().block_on(async {
        for n in 0..3 {
            let (envelope, body) = message(n);
            pool.send(&envelope, &body).await.unwrap();
        }
        assert_eq!(said(&server, "NOOP"), 0);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (envelope, body) = message(3);
        pool.send(&envelope, &body).await.unwrap();
    });
    assert_eq!(said(&server, "NOOP"), 1, "{}", server.transcript());
    assert_eq!(server.connections(), 1);
}

#[test]
fn an_async_checkout_waits_at_most_its_timeout() {
    let server = server(&[]);
    let pool = client(&server).pool_async(
        PoolConfig::default()
            .max_connections(1)
            .checkout_timeout(Duration::from_millis(100)),
    );
    runtime().block_on(async {
        let held = pool.get().await.unwrap();
        let error = pool.get().await.unwrap_err();
        assert!(matches!(error, Error::PoolTimeout { .. }), "{error:?}");
        drop(held);
        let (envelope, body) = message(0);
        pool.send(&envelope, &body).await.unwrap();
    });
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_retired_async_connection_says_quit_before_its_place_is_taken() {
    let server = server(&[]);
    let pool = client(&server).pool_async(
        PoolConfig::default()
            .max_connections(1)
            .max_messages_per_connection(1),
    );
    runtime().block_on(send_all(&pool, 5));
    assert_each_accepted_once(&server, 5);
    assert_eq!(server.connections(), 5);
    assert_eq!(server.peak_connections(), 1);
}
