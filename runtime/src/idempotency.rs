//! Server-side idempotency for operations declared `idempotency: key`, per the IETF
//! Idempotency-Key draft: the first request with a key runs; a retry while it runs gets 409; a
//! retry after it finished gets the stored reply; the same key with a different payload gets 422.
//!
//! Stores: [`MemoryStore`] (one process), [`SqliteStore`] (one replica, survives restarts),
//! [`PostgresStore`] (many replicas). A reply is stored
//! only when it is final (below 500); a 5xx or a deadline releases the key so the client's retry
//! runs again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A boxed future, for object-safe store methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A reply as stored for replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReply {
    /// HTTP status.
    pub status: u16,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// What the store says about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// First use: run the request, then `complete` or `release`.
    Started,
    /// Another request with this key is still running.
    InProgress,
    /// Finished before: replay this.
    Completed(StoredReply),
    /// Used before with a different payload.
    Mismatch,
}

/// Where keys and replies live. `scope` separates operations; `fingerprint` identifies the
/// payload (a hash of method, path, query and body).
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` or reports its state. Entries older than `retention` are forgotten.
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>>;
    /// Stores the final reply for `key`.
    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Forgets `key` (the request failed in a way a retry may fix).
    fn release<'a>(&'a self, scope: &'a str, key: &'a str)
        -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A store failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "idempotency store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

#[derive(Clone)]
struct Entry {
    fingerprint: Vec<u8>,
    created: SystemTime,
    reply: Option<StoredReply>,
}

/// In-process store: the embedded default. Not shared between replicas.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdempotencyStore for MemoryStore {
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        Box::pin(async move {
            let now = SystemTime::now();
            let mut map = self
                .entries
                .lock()
                .map_err(|_| StoreError("poisoned".into()))?;
            map.retain(|_, e| now.duration_since(e.created).unwrap_or_default() < retention);
            let id = (scope.to_string(), key.to_string());
            Ok(match map.get(&id) {
                None => {
                    map.insert(
                        id,
                        Entry {
                            fingerprint: fingerprint.to_vec(),
                            created: now,
                            reply: None,
                        },
                    );
                    Begin::Started
                }
                Some(e) if e.fingerprint != fingerprint => Begin::Mismatch,
                Some(Entry { reply: Some(r), .. }) => Begin::Completed(r.clone()),
                Some(_) => Begin::InProgress,
            })
        })
    }

    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut map = self
                .entries
                .lock()
                .map_err(|_| StoreError("poisoned".into()))?;
            if let Some(e) = map.get_mut(&(scope.to_string(), key.to_string())) {
                e.reply = Some(reply.clone());
            }
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut map = self
                .entries
                .lock()
                .map_err(|_| StoreError("poisoned".into()))?;
            let id = (scope.to_string(), key.to_string());
            // Only an unfinished claim is released; a stored reply stays for replays.
            if map.get(&id).is_some_and(|e| e.reply.is_none()) {
                map.remove(&id);
            }
            Ok(())
        })
    }
}

/// PostgreSQL store, for several replicas behind one load balancer. The first `INSERT … ON
/// CONFLICT DO NOTHING` decides which request claims a key, atomically across replicas.
pub struct PostgresStore {
    client: tokio_postgres::Client,
    table: String,
}

impl PostgresStore {
    /// Connects (`host=127.0.0.1 user=postgres dbname=test`, or a URL) and creates the table
    /// if needed. The connection task is spawned on the current runtime.
    pub async fn connect(config: &str, table: &str) -> Result<Self, StoreError> {
        check_table_name(table)?;
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
            .await
            .map_err(|e| StoreError(format!("cannot connect to PostgreSQL ({config}): {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    scope TEXT NOT NULL,
                    key TEXT NOT NULL,
                    fingerprint BYTEA NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    status INT,
                    content_type TEXT,
                    body BYTEA,
                    PRIMARY KEY (scope, key)
                )"
            ))
            .await
            .map_err(pg)?;
        Ok(PostgresStore {
            client,
            table: table.to_string(),
        })
    }
}

/// Table names are spliced into SQL, so only plain identifiers are accepted.
pub(crate) fn check_table_name(table: &str) -> Result<(), StoreError> {
    if !table.is_empty() && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(StoreError(format!(
            "table name must be a plain identifier (letters, digits, `_`), got `{table}`"
        )))
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError(e.to_string())
}

impl IdempotencyStore for PostgresStore {
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        Box::pin(async move {
            let t = &self.table;
            let secs = retention.as_secs_f64();
            self.client
                .execute(
                    &format!("DELETE FROM {t} WHERE scope = $1 AND key = $2 AND created_at < now() - make_interval(secs => $3)"),
                    &[&scope, &key, &secs],
                )
                .await
                .map_err(pg)?;
            let inserted = self
                .client
                .execute(
                    &format!("INSERT INTO {t} (scope, key, fingerprint) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"),
                    &[&scope, &key, &fingerprint],
                )
                .await
                .map_err(pg)?;
            if inserted == 1 {
                return Ok(Begin::Started);
            }
            let row = self
                .client
                .query_opt(
                    &format!("SELECT fingerprint, status, content_type, body FROM {t} WHERE scope = $1 AND key = $2"),
                    &[&scope, &key],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else {
                // Released between our insert and read: report busy; the client retries.
                return Ok(Begin::InProgress);
            };
            let stored: Vec<u8> = row.get(0);
            if stored != fingerprint {
                return Ok(Begin::Mismatch);
            }
            let status: Option<i32> = row.get(1);
            Ok(match status {
                None => Begin::InProgress,
                Some(status) => Begin::Completed(StoredReply {
                    status: status as u16,
                    content_type: row.get(2),
                    body: row.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
                }),
            })
        })
    }

    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let t = &self.table;
            let status = i32::from(reply.status);
            self.client
                .execute(
                    &format!("UPDATE {t} SET status = $3, content_type = $4, body = $5 WHERE scope = $1 AND key = $2"),
                    &[&scope, &key, &status, &reply.content_type, &reply.body],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let t = &self.table;
            self.client
                .execute(
                    &format!("DELETE FROM {t} WHERE scope = $1 AND key = $2 AND status IS NULL"),
                    &[&scope, &key],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }
}

/// SQLite store: the embedded default when keys must survive a restart of a single replica.
/// Queries run on the blocking pool.
pub struct SqliteStore {
    conn: std::sync::Arc<Mutex<rusqlite::Connection>>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` (`":memory:"` for a private in-memory one).
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path).map_err(sq)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS pactum_idempotency (
                scope TEXT NOT NULL,
                key TEXT NOT NULL,
                fingerprint BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                status INTEGER,
                content_type TEXT,
                body BLOB,
                PRIMARY KEY (scope, key)
             );",
        )
        .map_err(sq)?;
        Ok(SqliteStore {
            conn: std::sync::Arc::new(Mutex::new(conn)),
        })
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

fn sq(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl IdempotencyStore for SqliteStore {
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        let (scope, key, fp) = (scope.to_string(), key.to_string(), fingerprint.to_vec());
        Box::pin(self.with(move |conn| {
            let now = unix_now();
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM pactum_idempotency WHERE scope = ?1 AND key = ?2 AND created_at < ?3",
                rusqlite::params![scope, key, now - retention.as_secs() as i64],
            )?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO pactum_idempotency (scope, key, fingerprint, created_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![scope, key, fp, now],
            )?;
            let result = if inserted == 1 {
                Begin::Started
            } else {
                tx.query_row(
                    "SELECT fingerprint, status, content_type, body FROM pactum_idempotency WHERE scope = ?1 AND key = ?2",
                    rusqlite::params![scope, key],
                    |row| {
                        let stored: Vec<u8> = row.get(0)?;
                        let status: Option<i64> = row.get(1)?;
                        Ok(if stored != fp {
                            Begin::Mismatch
                        } else {
                            match status {
                                None => Begin::InProgress,
                                Some(s) => Begin::Completed(StoredReply {
                                    status: s as u16,
                                    content_type: row.get(2)?,
                                    body: row.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                                }),
                            }
                        })
                    },
                )?
            };
            tx.commit()?;
            Ok(result)
        }))
    }

    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (scope, key, reply) = (scope.to_string(), key.to_string(), reply.clone());
        Box::pin(self.with(move |conn| {
            conn.execute(
                "UPDATE pactum_idempotency SET status = ?3, content_type = ?4, body = ?5 WHERE scope = ?1 AND key = ?2",
                rusqlite::params![scope, key, i64::from(reply.status), reply.content_type, reply.body],
            )?;
            Ok(())
        }))
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (scope, key) = (scope.to_string(), key.to_string());
        Box::pin(self.with(move |conn| {
            conn.execute(
                "DELETE FROM pactum_idempotency WHERE scope = ?1 AND key = ?2 AND status IS NULL",
                rusqlite::params![scope, key],
            )?;
            Ok(())
        }))
    }
}
