//! The SQLite store: keys that survive a restart of a single replica.

use super::{
    Backend, Begin, BoxFuture, IdempotencyStore, Released, StoreError, StoredReply, Token,
    MIN_RETRY_AFTER,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// SQLite store: the embedded default when keys must survive a restart of a single replica.
/// Claims live in the `pactum_idempotency` table; queries run on the blocking pool. A handler
/// that writes to the same database file records its reply in its own transaction with
/// [`Claim::record_in_sqlite`](super::Claim::record_in_sqlite).
pub struct SqliteStore {
    conn: Arc<Mutex<rusqlite::Connection>>,
    /// How often entries past their retention are deleted, and when that last happened.
    prune_every: Duration,
    last_prune: Mutex<std::time::Instant>,
}

/// Entries past their retention that are finished or whose lease ended: what a new claim of
/// the key would take over anyway.
fn prune_sql() -> String {
    format!(
        "DELETE FROM {TABLE} WHERE created_at < ?1
           AND (status IS NOT NULL OR COALESCE(lease_until, 0) <= ?2)"
    )
}

/// The table every SQLite claim lives in.
pub(crate) const TABLE: &str = "pactum_idempotency";

fn sq(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

/// Milliseconds since the Unix epoch: lease and retention times.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` (`":memory:"` for a private in-memory one)
    /// and creates or upgrades the table.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path).map_err(sq)?;
        // Handlers write to the same file from their own connections.
        conn.busy_timeout(Duration::from_secs(5)).map_err(sq)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS {TABLE} (
                scope TEXT NOT NULL,
                key TEXT NOT NULL,
                fingerprint BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                status INTEGER,
                content_type TEXT,
                body BLOB,
                PRIMARY KEY (scope, key)
             );"
        ))
        .map_err(sq)?;
        // Tables from before leases lack these columns (seconds-based `created_at` entries
        // simply look very old and start over).
        for column in ["token TEXT", "lease_until INTEGER"] {
            let name = column.split(' ').next().unwrap_or_default();
            let has: bool = conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM pragma_table_info('{TABLE}') WHERE name = ?1"),
                    [name],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(sq)?
                > 0;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE {TABLE} ADD COLUMN {column}"))
                    .map_err(sq)?;
            }
        }
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created_at)"
        ))
        .map_err(sq)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            prune_every: super::PRUNE_EVERY,
            last_prune: Mutex::new(std::time::Instant::now()),
        })
    }

    /// Deletes entries past their retention every `every` (10 minutes by default), in the
    /// transaction of the request that finds it due.
    pub fn with_pruning(mut self, every: Duration) -> Self {
        self.prune_every = every;
        self
    }

    /// Deletes the entries created longer than `retention` ago that are finished or whose
    /// lease ended; returns how many went.
    pub async fn prune(&self, retention: Duration) -> Result<usize, StoreError> {
        self.with(move |conn| {
            let now = now_ms();
            conn.execute(
                &prune_sql(),
                rusqlite::params![now.saturating_sub(ms(retention)), now],
            )
        })
        .await
    }

    /// True (and the clock reset) when a prune is due.
    fn prune_due(&self) -> bool {
        let mut last = self.last_prune.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < self.prune_every {
            return false;
        }
        *last = std::time::Instant::now();
        true
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError("poisoned".into()))?;
            f(&mut guard).map_err(sq)
        })
        .await
        .map_err(|e| StoreError(e.to_string()))?
    }
}

fn reply_from(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredReply> {
    Ok(StoredReply {
        status: u16::try_from(row.get::<_, i64>(at)?).unwrap_or(500),
        content_type: row.get(at + 1)?,
        body: row.get::<_, Option<Vec<u8>>>(at + 2)?.unwrap_or_default(),
    })
}

impl IdempotencyStore for SqliteStore {
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        lease: Duration,
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        let (scope, key, fp) = (scope.to_string(), key.to_string(), fingerprint.to_vec());
        let prune = self.prune_due();
        Box::pin(self.with(move |conn| {
            let now = now_ms();
            let token = Token::new();
            // IMMEDIATE: take the write lock first, so two connections cannot both read
            // "free" and both claim.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if prune {
                // Every key past the retention, on the `created_at` index; this request's
                // retention stands for all (one service uses one).
                tx.execute(
                    &prune_sql(),
                    rusqlite::params![now.saturating_sub(ms(retention)), now],
                )?;
            }
            tx.execute(
                &format!("DELETE FROM {TABLE} WHERE scope = ?1 AND key = ?2 AND created_at < ?3"),
                rusqlite::params![scope, key, now.saturating_sub(ms(retention))],
            )?;
            let found = tx
                .query_row(
                    &format!(
                        "SELECT fingerprint, lease_until, status, content_type, body
                         FROM {TABLE} WHERE scope = ?1 AND key = ?2"
                    ),
                    rusqlite::params![scope, key],
                    |row| {
                        let stored: Vec<u8> = row.get(0)?;
                        let lease_until: Option<i64> = row.get(1)?;
                        let status: Option<i64> = row.get(2)?;
                        let reply = match status {
                            Some(_) => Some(reply_from(row, 2)?),
                            None => None,
                        };
                        Ok((stored, lease_until.unwrap_or(0), reply))
                    },
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            let lease_until = now.saturating_add(ms(lease));
            let result = match found {
                None => {
                    tx.execute(
                        &format!(
                            "INSERT INTO {TABLE} (scope, key, fingerprint, created_at, token, lease_until)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                        ),
                        rusqlite::params![scope, key, fp, now, token.0, lease_until],
                    )?;
                    Begin::Started(token)
                }
                Some((stored, _, _)) if stored != fp => Begin::Mismatch,
                Some((_, _, Some(reply))) => Begin::Completed(reply),
                Some((_, until, None)) if until > now => Begin::InProgress {
                    retry_after: Duration::from_millis(u64::try_from(until - now).unwrap_or(0))
                        .max(MIN_RETRY_AFTER),
                },
                Some(_) => {
                    tx.execute(
                        &format!(
                            "UPDATE {TABLE} SET token = ?3, lease_until = ?4
                             WHERE scope = ?1 AND key = ?2"
                        ),
                        rusqlite::params![scope, key, token.0, lease_until],
                    )?;
                    Begin::Started(token)
                }
            };
            tx.commit()?;
            Ok(result)
        }))
    }

    fn renew<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (scope, key, token) = (scope.to_string(), key.to_string(), token.0.clone());
        Box::pin(self.with(move |conn| {
            let n = conn.execute(
                &format!(
                    "UPDATE {TABLE} SET lease_until = ?4
                     WHERE scope = ?1 AND key = ?2 AND token = ?3 AND status IS NULL"
                ),
                rusqlite::params![scope, key, token, now_ms().saturating_add(ms(lease))],
            )?;
            Ok(n == 1)
        }))
    }

    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (scope, key, token, reply) = (
            scope.to_string(),
            key.to_string(),
            token.clone(),
            reply.clone(),
        );
        Box::pin(self.with(move |conn| record(conn, &scope, &key, &token, &reply)))
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Released, StoreError>> {
        let (scope, key, token) = (scope.to_string(), key.to_string(), token.0.clone());
        Box::pin(self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                &format!(
                    "DELETE FROM {TABLE} WHERE scope = ?1 AND key = ?2 AND token = ?3 AND status IS NULL"
                ),
                rusqlite::params![scope, key, token],
            )?;
            let result = if n == 1 {
                Released::Freed
            } else {
                tx.query_row(
                    &format!(
                        "SELECT status, content_type, body FROM {TABLE}
                         WHERE scope = ?1 AND key = ?2 AND token = ?3 AND status IS NOT NULL"
                    ),
                    rusqlite::params![scope, key, token],
                    |row| reply_from(row, 0),
                )
                .map(Released::Completed)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(Released::Lost),
                    e => Err(e),
                })?
            };
            tx.commit()?;
            Ok(result)
        }))
    }

    fn backend(&self) -> Backend<'_> {
        Backend::Sqlite
    }
}

/// Records `reply` for the claim `token` holds, on `conn` (the store's connection, or a
/// handler's transaction on the same file). False when the claim is no longer the token's.
pub(crate) fn record(
    conn: &rusqlite::Connection,
    scope: &str,
    key: &str,
    token: &Token,
    reply: &StoredReply,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        &format!(
            "UPDATE {TABLE} SET status = ?4, content_type = ?5, body = ?6
             WHERE scope = ?1 AND key = ?2 AND token = ?3 AND status IS NULL"
        ),
        rusqlite::params![
            scope,
            key,
            token.0,
            i64::from(reply.status),
            reply.content_type,
            reply.body
        ],
    )?;
    Ok(n == 1)
}
