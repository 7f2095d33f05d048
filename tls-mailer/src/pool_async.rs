//! The pool over tokio (feature `tokio`): [`AsyncPool`], the same limits
//! and the same decisions as [`crate::Pool`] (written once, in `pool.rs`),
//! with a fair semaphore for the cap.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tls_mailer_message::Email;
use tls_mailer_proto::{BodyInfo, Envelope};
use tokio::io::AsyncRead;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::async_tokio::AsyncConnection;
use crate::client::{Client, SendReport};
use crate::driver::Reuse;
use crate::error::Error;
use crate::pool::{PoolConfig, Pooled, Shelf, Verdict};

impl Pooled for AsyncConnection {
    fn life(&self) -> &Reuse {
        self.reuse()
    }

    fn usable(&self) -> bool {
        self.is_open()
    }
}

/// A pool of [`AsyncConnection`]s to the server of one [`Client`], for
/// many tasks at once (clone it: clones share the connections). It follows
/// the same [`PoolConfig`] as [`crate::Pool`]: at most
/// [`PoolConfig::max_connections`] open at once, checkouts served in the
/// order they came (a fair semaphore) and bounded by
/// [`PoolConfig::checkout_timeout`], a NOOP only before reusing a
/// connection idle for longer than [`PoolConfig::noop_after`], broken or
/// worn-out connections closed, never handed out.
///
/// A connection that is not kept is closed with QUIT in a task of its own
/// (which holds its place under the cap until the server answered), so
/// dropping a guard never waits.
///
/// ```no_run
/// use tls_mailer::{AsyncPool, Client, Envelope, PoolConfig};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder("smtp.example.org").build()?;
/// let pool = AsyncPool::new(client, PoolConfig::default().max_connections(8));
/// let mut tasks = tokio::task::JoinSet::new();
/// for n in 0..100 {
///     let pool = pool.clone();
///     tasks.spawn(async move {
///         let envelope = Envelope::new("alice@example.org", [format!("user{n}@example.org")])?;
///         pool.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await
///     });
/// }
/// while let Some(sent) = tasks.join_next().await {
///     sent??;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncPool {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: PoolConfig,
    shelf: Shelf<AsyncConnection>,
    /// One permit for each connection that may be open; a connection
    /// checked out (or being opened, or closing) holds one.
    permits: Arc<Semaphore>,
}

impl fmt::Debug for AsyncPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPool")
            .field("client", &self.inner.client)
            .field("config", &self.inner.config)
            .field("idle", &self.inner.shelf.len())
            .finish_non_exhaustive()
    }
}

impl AsyncPool {
    /// A pool of connections made by `client`; none is opened before the
    /// first checkout. The same as [`Client::pool_async`].
    pub fn new(client: Client, config: PoolConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.connections_cap())),
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
    /// # async fn example(pool: tls_mailer::AsyncPool) -> Result<(), tls_mailer::Error> {
    /// use tls_mailer::Envelope;
    ///
    /// let mut connection = pool.get().await?;
    /// for to in ["bob@example.org", "carol@example.org"] {
    ///     let envelope = Envelope::new("alice@example.org", [to])?;
    ///     connection.send(&envelope, b"Subject: hi\r\n\r\nHi\r\n").await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self) -> Result<AsyncPooledConnection, Error> {
        let inner = &self.inner;
        let deadline = inner.config.checkout_deadline();
        let acquire = inner.permits.clone().acquire_owned();
        let permit = match tokio::time::timeout_at(deadline.into(), acquire).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed.
            Ok(Err(_)) | Err(_) => return Err(inner.config.timed_out()),
        };
        loop {
            let (taken, expired) = inner.shelf.take(&inner.config);
            // Closed while this checkout holds a permit, so the server
            // never sees more than the cap.
            for connection in expired {
                let _ = connection.quit().await;
            }
            let connection = match taken {
                None => inner.client.connect_async().await?,
                Some((mut connection, Verdict::NoopFirst)) => {
                    if connection.noop().await.is_err() {
                        continue;
                    }
                    connection
                }
                Some((connection, _)) => connection,
            };
            return Ok(AsyncPooledConnection {
                connection: Some(connection),
                pool: self.inner.clone(),
                permit: Some(permit),
            });
        }
    }

    /// Sends a message held in memory over a pooled connection (see
    /// [`AsyncConnection::send`]).
    ///
    /// ```no_run
    /// # async fn example(pool: tls_mailer::AsyncPool) -> Result<(), tls_mailer::Error> {
    /// let envelope = tls_mailer::Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// pool.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<SendReport, Error> {
        self.get().await?.send(envelope, message).await
    }

    /// Streams a message over a pooled connection (see
    /// [`AsyncConnection::send_reader`]).
    ///
    /// ```no_run
    /// # async fn example(pool: tls_mailer::AsyncPool) -> Result<(), Box<dyn std::error::Error>> {
    /// use tls_mailer::{BodyInfo, Envelope};
    ///
    /// let file = tokio::fs::File::open("message.eml").await?;
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// pool.send_reader(&envelope, file, BodyInfo::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_reader(
        &self,
        envelope: &Envelope,
        message: impl AsyncRead + Unpin,
        info: BodyInfo,
    ) -> Result<SendReport, Error> {
        self.get().await?.send_reader(envelope, message, info).await
    }

    /// Sends an [`Email`] over a pooled connection (see
    /// [`AsyncConnection::send_email`]).
    ///
    /// ```no_run
    /// # async fn example(pool: tls_mailer::AsyncPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let email = tls_mailer::Email::new()
    ///     .with_from("alice@example.org".parse()?)
    ///     .with_to("bob@example.org".parse()?)
    ///     .with_subject("Hi")
    ///     .with_text("Hello Bob\n");
    /// pool.send_email(&email).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_email(&self, email: &Email) -> Result<SendReport, Error> {
        self.get().await?.send_email(email).await
    }

    /// The client the pool's connections are made by.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// How many connections are idle in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.inner.shelf.len()
    }
}

/// The pool over tokio (feature `tokio`).
impl Client {
    /// A pool of connections driven by tokio, made by this client (see
    /// [`AsyncPool`]). Nothing is opened yet.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use tls_mailer::{Client, Envelope, PoolConfig};
    ///
    /// let pool = Client::builder("smtp.example.org").build()?.pool_async(PoolConfig::default());
    /// let envelope = Envelope::new("alice@example.org", ["bob@example.org"])?;
    /// pool.send(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool_async(&self, config: PoolConfig) -> AsyncPool {
        AsyncPool::new(self.clone(), config)
    }
}

/// An [`AsyncConnection`] checked out of an [`AsyncPool`] (it dereferences
/// to one). Dropped, it goes back to the pool when it can carry more
/// messages; otherwise it is closed (QUIT, in a task of its own).
pub struct AsyncPooledConnection {
    connection: Option<AsyncConnection>,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for AsyncPooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncPooledConnection")
            .field(&self.connection)
            .finish()
    }
}

impl Deref for AsyncPooledConnection {
    type Target = AsyncConnection;

    fn deref(&self) -> &AsyncConnection {
        self.connection
            .as_ref()
            .expect("a pooled connection is there until dropped")
    }
}

impl DerefMut for AsyncPooledConnection {
    fn deref_mut(&mut self) -> &mut AsyncConnection {
        self.connection
            .as_mut()
            .expect("a pooled connection is there until dropped")
    }
}

impl Drop for AsyncPooledConnection {
    fn drop(&mut self) {
        let (Some(connection), permit) = (self.connection.take(), self.permit.take()) else {
            return;
        };
        let pool = &self.pool;
        // Kept: on the shelf before the permit goes, so the next checkout
        // finds it there.
        let Some(retired) = pool.shelf.give_back(&pool.config, connection) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = retired.quit().await;
                drop(permit);
            });
        }
    }
}
