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
    // A close with no reply to MAIL is known harmless only while the body
    // waits for DATA's 354; with CHUNKING the body leaves with MAIL.
    for (fault, data_only) in [
        (refuse_mail_421(), false),
        (
            Fault::Drop {
                stage: Stage::MailFrom,
            },
            true,
        ),
    ] {
        let server = if data_only {
            data_only_server(&[every_second(fault)])
        } else {
            server(&[every_second(fault)])
        };
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
            .noop_after(Duration::from_secs(1)),
    );
    runtime().block_on(async {
        for n in 0..3 {
            let (envelope, body) = message(n);
            pool.send(&envelope, &body).await.unwrap();
        }
        assert_eq!(said(&server, "NOOP"), 0);
        tokio::time::sleep(Duration::from_millis(1200)).await;
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

/// Where [`memory_server`] writes its port and CA, when it is to run.
const MEMORY_SERVER_DIR: &str = "TLS_MAILER_POOL_MEMORY_SERVER_DIR";

/// The server half of [`idle_pooled_connections_cost_bounded_memory`], run
/// by it in a process of its own so that the server's memory is not
/// counted: a server whose port and CA go to files, until stdin closes.
#[test]
#[ignore = "started by idle_pooled_connections_cost_bounded_memory in a process of its own"]
fn memory_server() {
    use std::io::Read as _;

    let Some(dir) = std::env::var_os(MEMORY_SERVER_DIR).map(std::path::PathBuf::from) else {
        return;
    };
    let server = server(&[]);
    std::fs::write(dir.join("ca.pem"), server.ca_pem()).unwrap();
    std::fs::write(dir.join("port.partial"), server.port().to_string()).unwrap();
    std::fs::rename(dir.join("port.partial"), dir.join("port")).unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// This process's resident memory, in bytes.
#[cfg(target_os = "linux")]
fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Checks out `count` connections at once, sends a message over each (so
/// that each is as a used connection is), and gives them all back.
async fn fill_pool(pool: &AsyncPool, count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(count));
    for n in 0..count {
        let (pool, ready) = (pool.clone(), ready.clone());
        tasks.spawn(async move {
            let mut connection = pool.get().await.unwrap();
            let (envelope, body) = message(n);
            connection.send(&envelope, &body).await.unwrap();
            // Every connection is checked out before any is given back.
            ready.wait().await;
            connection
        });
    }
    let connections = tasks.join_all().await;
    assert_eq!(connections.len(), count);
}

#[cfg(target_os = "linux")]
#[test]
fn idle_pooled_connections_cost_bounded_memory() {
    const IDLE: usize = 64;
    const SENDS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["memory_server", "--exact", "--ignored", "--test-threads=1"])
        .env(MEMORY_SERVER_DIR, dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(dir.path().join("port")) {
            break port.parse::<u16>().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the server process did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let client = tls_mailer::Client::builder("127.0.0.1")
        .port(port)
        .credentials(tls_mailer::Credentials::new(USER, PASSWORD))
        .system_roots(false)
        .add_root_certificates_pem(&ca)
        .unwrap()
        .build()
        .unwrap();

    let (per_idle, before, peak, after, took) = runtime().block_on(async {
        // Warm up what is made once (the TLS session cache, lazy statics).
        fill_pool(&client.pool_async(PoolConfig::default()), 4).await;

        let pool = client.pool_async(PoolConfig::default().max_connections(IDLE));
        let empty = resident_bytes();
        fill_pool(&pool, IDLE).await;
        assert_eq!(pool.idle_connections(), IDLE);
        let per_idle = resident_bytes().saturating_sub(empty) / IDLE;
        drop(pool);

        let pool = client.pool_async(PoolConfig::default().max_connections(8));
        let before = resident_bytes();
        let sampling = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(before));
        let sampler = {
            let sampling = sampling.clone();
            tokio::spawn(async move {
                loop {
                    sampling.fetch_max(resident_bytes(), std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let took = send_all(&pool, SENDS).await;
        sampler.abort();
        let peak = sampling.load(std::sync::atomic::Ordering::SeqCst);
        (per_idle, before, peak, resident_bytes(), took)
    });
    drop(server.stdin.take());
    let _ = server.wait();
    eprintln!(
        "resident memory per idle pooled connection: {per_idle} bytes ({IDLE} idle vs none); \
         {SENDS} concurrent sends through 8 connections: {took:?}, resident {before} before, \
         {peak} at the most, {after} after"
    );
    // An idle connection holds its TLS state and read buffer, not a body buffer.
    assert!(
        per_idle < 256 * 1024,
        "{per_idle} bytes per idle connection"
    );
    // A thousand waiting sends cost their futures, not a connection each.
    assert!(
        peak - before < 32 << 20,
        "{} bytes more at the peak",
        peak - before
    );
}
