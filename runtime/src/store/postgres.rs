//! Where the runtime's PostgreSQL parts (consumers, the outbox relay) connect, and how they
//! get a connection back after a failover.
//!
//! A [`Database`] is a parsed connection string plus the session settings every connection
//! starts with. Parts hold one and ask it for a fresh client whenever theirs is closed
//! ([`Database::reconnect`] waits with jittered backoff), so a restart, a failover or a
//! `pg_terminate_backend` costs a pause, never a stuck worker.

use crate::store::idempotency::StoreError;
use std::time::Duration;

/// A PostgreSQL database the runtime connects to. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    config: tokio_postgres::Config,
    session: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password.
        f.debug_struct("Database")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

/// The longest pause between two reconnection attempts.
const MAX_PAUSE: Duration = Duration::from_secs(2);

impl Database {
    /// Parses a `tokio-postgres` connection string (`host=127.0.0.1 user=postgres dbname=test`
    /// or a `postgresql://` URL). Nothing is connected yet. A connection attempt gives up after
    /// 5 s unless the string sets `connect_timeout`, and TCP keep-alives find a dead database
    /// in about a minute.
    pub fn new(config: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = config
            .parse()
            .map_err(|e| StoreError(format!("invalid PostgreSQL connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        Ok(Self {
            config,
            // A statement that hangs (a lock held by a stuck peer) fails after this instead of
            // holding its worker forever.
            session: "SET statement_timeout = '30s'".into(),
        })
    }

    /// Names connections `name` in `pg_stat_activity` (so operators, and the fault suite, can
    /// tell them apart).
    pub fn named(mut self, name: &str) -> Self {
        self.config.application_name(name);
        self
    }

    /// Session settings sent on every new connection, replacing the default (a 30 s
    /// `statement_timeout`).
    pub fn with_session(mut self, sql: &str) -> Self {
        self.session = sql.to_string();
        self
    }

    /// One connection attempt. The connection's driver task is spawned on the current runtime
    /// and ends when the client is dropped or the server goes away.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            // The connection string is not repeated: it may hold a password.
            .map_err(|e| StoreError(format!("cannot connect to PostgreSQL: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection closed");
            }
        });
        if !self.session.is_empty() {
            client
                .batch_execute(&self.session)
                .await
                .map_err(|e| StoreError(format!("cannot set up the session: {e}")))?;
        }
        Ok(client)
    }

    /// Connects, retrying with full-jitter backoff (100 ms doubling to 2 s) for up to
    /// `patience`; the last error if it never succeeds.
    pub async fn reconnect(
        &self,
        patience: Duration,
    ) -> Result<tokio_postgres::Client, StoreError> {
        let until = tokio::time::Instant::now() + patience;
        let mut ceiling = Duration::from_millis(100);
        loop {
            match self.connect().await {
                Ok(client) => return Ok(client),
                Err(e) if tokio::time::Instant::now() >= until => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "PostgreSQL unreachable; retrying");
                    let pause = ceiling
                        .mul_f64(fastrand::f64())
                        .max(Duration::from_millis(10));
                    let left = until.saturating_duration_since(tokio::time::Instant::now());
                    tokio::time::sleep(pause.min(left)).await;
                    ceiling = (ceiling * 2).min(MAX_PAUSE);
                }
            }
        }
    }
}
