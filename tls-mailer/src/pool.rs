//! Connection pools: [`Pool`] (blocking, shared between threads) and, with
//! the `tokio` feature, `AsyncPool`. A pool holds only connections;
//! whether one can carry another message is the connection's (and so the
//! session's) word, [`Connection::is_open`]. What a pool decides on top of
//! that, its [`PoolConfig`], is written here once for both.

use std::fmt;
use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tls_mailer_message::Email;
use tls_mailer_proto::{BodyInfo, Envelope};

use crate::blocking::Connection;
use crate::client::{Client, SendReport};
use crate::driver::Reuse;
use crate::error::Error;

/// The limits of a [`Pool`] (and, with the `tokio` feature, of an `AsyncPool`).
///
/// ```
/// use std::time::Duration;
/// use tls_mailer::PoolConfig;
///
/// let config = PoolConfig::default()
///     .max_connections(8)
///     .max_messages_per_connection(50)
///     .idle_timeout(Duration::from_secs(30))
///     .noop_after(Duration::from_secs(10));
/// assert_eq!(config.connections_cap(), 8);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct PoolConfig {
    max_connections: usize,
    max_messages: u32,
    idle_timeout: Duration,
    max_age: Duration,
    noop_after: Duration,
    checkout_timeout: Duration,
}

impl Default for PoolConfig {
    /// 4 connections, 100 messages each, closed after 60 s idle or 5
    /// minutes of age, a NOOP before reusing one idle for more than 30 s,
    /// and at most 30 s of waiting for a free connection.
    fn default() -> Self {
        Self {
            max_connections: 4,
            max_messages: 100,
            idle_timeout: Duration::from_secs(60),
            max_age: Duration::from_secs(300),
            noop_after: Duration::from_secs(30),
            checkout_timeout: Duration::from_secs(30),
        }
    }
}

impl PoolConfig {
    /// At most this many connections open at once, in use or idle
    /// (default 4; at least 1).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// A connection that carried this many mails is closed (QUIT) rather
    /// than reused (default 100; at least 1), as many servers limit the
    /// messages of one connection.
    pub fn max_messages_per_connection(mut self, messages: u32) -> Self {
        self.max_messages = messages.max(1);
        self
    }

    /// A connection idle for this long is closed instead of reused
    /// (default 60 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// A connection this old is closed instead of reused (default 5 minutes).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// A connection idle for longer than this is asked NOOP before it is
    /// handed out, and replaced if that fails (default 30 s). One idle for
    /// less is handed out without a word: a server that closed it in the
    /// meantime is noticed before the next mail anyway, which then goes
    /// over a new connection.
    pub fn noop_after(mut self, idle: Duration) -> Self {
        self.noop_after = idle;
        self
    }

    /// How long a checkout waits for a free connection when all are in
    /// use before it fails with [`Error::PoolTimeout`] (default 30 s).
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.checkout_timeout = timeout;
        self
    }

    /// The cap on connections.
    pub fn connections_cap(&self) -> usize {
        self.max_connections
    }

    /// What becomes of an idle connection at checkout.
    pub(crate) fn verdict(&self, reuse: &Reuse, now: Instant) -> Verdict {
        let idle = now.saturating_duration_since(reuse.idle_since());
        if idle >= self.idle_timeout || self.too_old(reuse, now) {
            Verdict::Close
        } else if idle > self.noop_after {
            Verdict::NoopFirst
        } else {
            Verdict::Ready
        }
    }

    /// Whether a connection given back, `open` by its own word, goes back
    /// to the pool.
    pub(crate) fn keeps(&self, reuse: &Reuse, open: bool, now: Instant) -> bool {
        open && reuse.mails() < self.max_messages && !self.too_old(reuse, now)
    }

    fn too_old(&self, reuse: &Reuse, now: Instant) -> bool {
        now.saturating_duration_since(reuse.opened()) >= self.max_age
    }

    /// The error of a checkout that waited in vain.
    pub(crate) fn timed_out(&self) -> Error {
        Error::PoolTimeout {
            waited: self.checkout_timeout,
            max_connections: self.max_connections,
        }
    }

    pub(crate) fn checkout_deadline(&self) -> Instant {
        Instant::now() + self.checkout_timeout
    }
}

/// What becomes of an idle connection at checkout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Idle too long or too old: close it.
    Close,
    /// Idle longer than the NOOP threshold: NOOP, then hand it out.
    NoopFirst,
    /// Hand it out.
    Ready,
}

/// A pooled connection, as the pools see it.
pub(crate) trait Pooled {
    /// Its life so far.
    fn life(&self) -> &Reuse;
    /// It can carry another message, by its own word.
    fn usable(&self) -> bool;
}

impl Pooled for Connection {
    fn life(&self) -> &Reuse {
        self.reuse()
    }

    fn usable(&self) -> bool {
        self.is_open()
    }
}

/// The idle connections of a pool, most recently used last.
pub(crate) struct Shelf<C> {
    idle: Mutex<Vec<C>>,
}

impl<C: Pooled> Shelf<C> {
    pub(crate) fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The most recently used idle connection and what to do with it, and
    /// every idle connection that is to be closed (idle too long, too old).
    pub(crate) fn take(&self, config: &PoolConfig) -> (Option<(C, Verdict)>, Vec<C>) {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        let expired = idle
            .extract_if(.., |connection| {
                config.verdict(connection.life(), now) == Verdict::Close
            })
            .collect();
        let taken = idle.pop().map(|connection| {
            let verdict = config.verdict(connection.life(), now);
            (connection, verdict)
        });
        (taken, expired)
    }

    /// Puts a connection given back on the shelf when the pool keeps it;
    /// else hands it back to be closed.
    pub(crate) fn give_back(&self, config: &PoolConfig, connection: C) -> Option<C> {
        if config.keeps(connection.life(), connection.usable(), Instant::now()) {
            lock(&self.idle).push(connection);
            None
        } else {
            Some(connection)
        }
    }

    /// How many connections are idle.
    pub(crate) fn len(&self) -> usize {
        lock(&self.idle).len()
    }
}

/// Locks, ignoring poisoning: what the pool guards stays consistent
/// whatever panicked while holding it (a list, a count).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A pool of [`Connection`]s to the server of one [`Client`], shared
/// between threads (clone it, or share a reference). At most
/// [`PoolConfig::max_connections`] are open at once; a checkout
/// ([`Pool::get`], or [`Pool::send`] and friends) takes an idle one, opens
/// one when under the cap, or waits for one to be given back (at most
/// [`PoolConfig::checkout_timeout`]).
///
/// A connection handed out is open by its own word
/// ([`Connection::is_open`]); one that broke, was closed by the server,
/// reached [`PoolConfig::max_messages_per_connection`] or
/// [`PoolConfig::max_age`] is closed, never handed out again. A connection
/// idle for longer than [`PoolConfig::noop_after`] is asked NOOP first.
/// Idle connections past [`PoolConfig::idle_timeout`] are closed at the next
/// checkout (there is no background thread), and all of them when the pool
/// is dropped.
///
/// ```no_run
/// use tls_mailer::{Client, Credentials, Envelope, PoolConfig};
///
/// let client = Client::builder("smtp.example.org")
///     .credentials(Credentials::new("alice@example.org", "app-password"))
///     .build()?;
/// let pool = client.pool(PoolConfig::default().max_connections(4));
/// std::thread::scope(|scope| {
///     for to in ["bob@example.org", "carol@example.org", "dave@example.org"] {
///         let pool = &pool;
///         scope.spawn(move || {
///             let envelope = Envelope::new("alice@example.org", [to])?;
///             pool.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n")
///         });
///     }
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: PoolConfig,
    shelf: Shelf<Connection>,
    /// Connections that may still be opened or checked out.
    permits: Mutex<usize>,
    permit_freed: Condvar,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("client", &self.inner.client)
            .field("config", &self.inner.config)
            .field("idle", &self.inner.shelf.len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool of connections made by `client`; none is opened before the
    /// first checkout. The same as [`Client::pool`].
    pub fn new(client: Client, config: PoolConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                permits: Mutex::new(config.max_connections),
                permit_freed: Condvar::new(),
                shelf: Shelf::new(),
                client,
                config,
            }),
        }
    }

    /// Checks out a connection: an idle one, a new one while under the
    /// cap, or the first one given back within
    /// [`PoolConfig::checkout_timeout`]. It goes back to the pool when the
    /// guard is dropped, if it can carry more.
    ///
    /// ```no_run
    /// # fn example(pool: tls_mailer::Pool) -> Result<(), tls_mailer::Error> {
    /// use tls_mailer::Envelope;
    ///
    /// let mut connection = pool.get()?;
    /// for to in ["bob@example.org", "carol@example.org"] {
    ///     connection.send(&Envelope::new("alice@example.org", [to])?, b"Subject: hi\r\n\r\nHi\r\n")?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> Result<PooledConnection, Error> {
        let permit = self.permit()?;
        let inner = &self.inner;
        loop {
            let (taken, expired) = inner.shelf.take(&inner.config);
            // Closed (QUIT) while this checkout holds a permit, so the
            // server never sees more than the cap.
            drop(expired);
            let connection = match taken {
                None => inner.client.connect()?,
                Some((mut connection, Verdict::NoopFirst)) => {
                    if connection.noop().is_err() {
                        continue;
                    }
                    connection
                }
                Some((connection, _)) => connection,
            };
            return Ok(PooledConnection {
                connection: Some(connection),
                pool: self.inner.clone(),
                _permit: permit,
            });
        }
    }

    /// Sends a message held in memory over a pooled connection (see
    /// [`Connection::send`]).
    ///
    /// ```no_run
    /// # fn example(pool: tls_mailer::Pool) -> Result<(), tls_mailer::Error> {
    /// let envelope = tls_mailer::Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// let report = pool.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n")?;
    /// println!("queued as {:?}", report.queue_id);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<SendReport, Error> {
        self.get()?.send(envelope, message)
    }

    /// Streams a message over a pooled connection (see
    /// [`Connection::send_reader`]).
    ///
    /// ```no_run
    /// # fn example(pool: tls_mailer::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use tls_mailer::{BodyInfo, Envelope};
    ///
    /// let mut file = std::fs::File::open("message.eml")?;
    /// let size = file.metadata()?.len();
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// pool.send_reader(&envelope, &mut file, BodyInfo::sized(Some(size)))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_reader(
        &self,
        envelope: &Envelope,
        message: &mut dyn Read,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        self.get()?.send_reader(envelope, message, info)
    }

    /// Sends an [`Email`] over a pooled connection (see
    /// [`Connection::send_email`]).
    ///
    /// ```no_run
    /// # fn example(pool: tls_mailer::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let email = tls_mailer::Email::new()
    ///     .with_from("alice@example.org".parse()?)
    ///     .with_to("bob@example.org".parse()?)
    ///     .with_subject("Hi")
    ///     .with_text("Hello Bob\n");
    /// pool.send_email(&email)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_email(&self, email: &Email) -> Result<SendReport, Error> {
        self.get()?.send_email(email)
    }

    /// The client the pool's connections are made by.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// How many connections are idle in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.inner.shelf.len()
    }

    /// A permit for one connection, waiting at most the checkout timeout.
    fn permit(&self) -> Result<Permit, Error> {
        let inner = &self.inner;
        let deadline = inner.config.checkout_deadline();
        let mut free = lock(&inner.permits);
        while *free == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(inner.config.timed_out());
            }
            free = inner
                .permit_freed
                .wait_timeout(free, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        *free -= 1;
        Ok(Permit(self.inner.clone()))
    }
}

/// The right to one open connection; given back on drop.
struct Permit(Arc<Inner>);

impl Drop for Permit {
    fn drop(&mut self) {
        *lock(&self.0.permits) += 1;
        self.0.permit_freed.notify_one();
    }
}

/// A [`Connection`] checked out of a [`Pool`] (it dereferences to one).
/// Dropped, it goes back to the pool when it can carry more messages, and
/// is closed (QUIT) otherwise.
pub struct PooledConnection {
    connection: Option<Connection>,
    pool: Arc<Inner>,
    // Dropped after the connection went back or was closed, so the next
    // checkout finds it on the shelf, or finds it gone.
    _permit: Permit,
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PooledConnection")
            .field(&self.connection)
            .finish()
    }
}

impl Deref for PooledConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
            .as_ref()
            .expect("a pooled connection is there until dropped")
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection
            .as_mut()
            .expect("a pooled connection is there until dropped")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let pool = &self.pool;
            // A connection not kept is closed (QUIT) here, before the permit goes.
            drop(pool.shelf.give_back(&pool.config, connection));
        }
    }
}
