//! The PostgreSQL store, for several replicas behind one load balancer.

use super::PRUNE_EVERY;
use super::{
    check_table_name, Backend, Begin, BoxFuture, IdempotencyStore, Released, StoreError,
    StoredReply, Token, MIN_RETRY_AFTER,
};
use crate::store::postgres::Database;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// PostgreSQL store. The claim is one `INSERT … ON CONFLICT DO UPDATE … WHERE` (a first use,
/// an entry past its retention, or an expired lease), so exactly one request wins a key
/// across replicas; leases run on the database's clock, so replicas' clocks need not agree.
///
/// A lost connection (a failover, `pg_terminate_backend`, a restart) fails the requests in
/// flight on it with a [`StoreError`] (503) and the next request to use it reconnects; nothing is recorded
/// or released on a connection that is gone, so a claim caught by the failure stays leased
/// until its lease ends.
pub struct PostgresStore {
    database: Database,
    table: String,
    /// A few connections, used in turn: commits of concurrent requests overlap (one
    /// connection would queue every claim behind the previous one's commit), and a statement
    /// waiting on a row lock holds up only its own connection.
    conns: Vec<tokio::sync::Mutex<Arc<Conn>>>,
    next: AtomicUsize,
    /// How often entries past their retention are deleted, and when that last started.
    prune_every: Duration,
    last_prune: std::sync::Mutex<std::time::Instant>,
}

/// Connections a [`PostgresStore`] opens.
pub const CONNECTIONS: usize = 4;

/// Session settings of every store connection.
///
/// `statement_timeout` bounds each statement: a hung database answers 503, it does not hold
/// requests. `synchronous_commit = off` lets a claim's commit return before its WAL is
/// flushed. That is safe here: a handler's own transaction, which records its reply in the
/// claim's row, commits synchronously, and WAL is flushed in order, so once the effect is
/// durable so is the claim before it. A database crash can lose only claims and replies of
/// requests whose effect was not in the store's transaction — which a crash of the service
/// itself can lose as well.
const SESSION: &str = "SET statement_timeout = '10s'; SET synchronous_commit = off";

/// One connection and its statements, prepared once: each store call is then a single
/// round trip instead of a prepare and an execute.
struct Conn {
    client: tokio_postgres::Client,
    claim: tokio_postgres::Statement,
    state: tokio_postgres::Statement,
    renew: tokio_postgres::Statement,
    record: tokio_postgres::Statement,
    free: tokio_postgres::Statement,
    recorded: tokio_postgres::Statement,
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError(e.to_string())
}

/// The statements, for table `t`.
mod sql {
    pub fn claim(t: &str) -> String {
        // Claims a new key, one past its retention, or an unfinished claim whose lease ended
        // (with the same payload): in one statement, so racing replicas agree.
        format!(
            "INSERT INTO {t} AS e (scope, key, fingerprint, token, lease_until)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
             ON CONFLICT (scope, key) DO UPDATE SET
               fingerprint = EXCLUDED.fingerprint, token = EXCLUDED.token,
               lease_until = EXCLUDED.lease_until, created_at = now(),
               status = NULL, content_type = NULL, body = NULL
             WHERE e.created_at < now() - make_interval(secs => $6)
                OR (e.status IS NULL AND e.fingerprint = EXCLUDED.fingerprint
                    AND COALESCE(e.lease_until, '-infinity') <= now())
             RETURNING 1"
        )
    }
    pub fn state(t: &str) -> String {
        format!(
            "SELECT fingerprint, status, content_type, body,
                    EXTRACT(EPOCH FROM GREATEST(lease_until - now(), interval '0'))::float8
             FROM {t} WHERE scope = $1 AND key = $2"
        )
    }
    pub fn renew(t: &str) -> String {
        format!(
            "UPDATE {t} SET lease_until = now() + make_interval(secs => $4)
             WHERE scope = $1 AND key = $2 AND token = $3 AND status IS NULL"
        )
    }
    pub fn record(t: &str) -> String {
        format!(
            "UPDATE {t} SET status = $4, content_type = $5, body = $6
             WHERE scope = $1 AND key = $2 AND token = $3 AND status IS NULL"
        )
    }
    pub fn prune(t: &str) -> String {
        // Finished entries, and unfinished ones whose lease ended, past the retention: what a
        // new claim of the key would take over anyway. The `created_at` index finds them.
        format!(
            "DELETE FROM {t} WHERE created_at < now() - make_interval(secs => $1)
               AND (status IS NOT NULL OR COALESCE(lease_until, '-infinity') <= now())"
        )
    }
    pub fn free(t: &str) -> String {
        format!("DELETE FROM {t} WHERE scope = $1 AND key = $2 AND token = $3 AND status IS NULL")
    }
    pub fn recorded(t: &str) -> String {
        format!(
            "SELECT status, content_type, body FROM {t}
             WHERE scope = $1 AND key = $2 AND token = $3 AND status IS NOT NULL"
        )
    }
}

async fn prune(database: &Database, table: &str, retention: Duration) -> Result<u64, StoreError> {
    let client = database.connect().await?;
    client
        .execute(&sql::prune(table), &[&retention.as_secs_f64()])
        .await
        .map_err(pg)
}

async fn prepared(client: tokio_postgres::Client, t: &str) -> Result<Conn, StoreError> {
    Ok(Conn {
        claim: client.prepare(&sql::claim(t)).await.map_err(pg)?,
        state: client.prepare(&sql::state(t)).await.map_err(pg)?,
        renew: client.prepare(&sql::renew(t)).await.map_err(pg)?,
        record: client.prepare(&sql::record(t)).await.map_err(pg)?,
        free: client.prepare(&sql::free(t)).await.map_err(pg)?,
        recorded: client.prepare(&sql::recorded(t)).await.map_err(pg)?,
        client,
    })
}

fn stored(row: &tokio_postgres::Row, at: usize) -> StoredReply {
    StoredReply {
        status: u16::try_from(row.get::<_, i32>(at)).unwrap_or(500),
        content_type: row.get(at + 1),
        body: row.get::<_, Option<Vec<u8>>>(at + 2).unwrap_or_default(),
    }
}

impl PostgresStore {
    /// Connects (`host=127.0.0.1 user=postgres dbname=test`, or a URL) and creates or
    /// upgrades the table. Connection tasks are spawned on the current runtime; timeouts and
    /// keep-alives are those of [`Database`].
    pub async fn connect(config: &str, table: &str) -> Result<Self, StoreError> {
        check_table_name(table)?;
        let database = Database::new(config)?.with_session(SESSION);
        let first = database.connect().await?;
        first
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    scope TEXT NOT NULL,
                    key TEXT NOT NULL,
                    fingerprint BYTEA NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    status INT,
                    content_type TEXT,
                    body BYTEA,
                    token TEXT,
                    lease_until TIMESTAMPTZ,
                    PRIMARY KEY (scope, key)
                );
                ALTER TABLE {table} ADD COLUMN IF NOT EXISTS token TEXT;
                ALTER TABLE {table} ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ;
                CREATE INDEX IF NOT EXISTS {table}_created ON {table} (created_at);"
            ))
            .await
            .map_err(pg)?;
        let mut conns = vec![tokio::sync::Mutex::new(Arc::new(
            prepared(first, table).await?,
        ))];
        for _ in 1..CONNECTIONS {
            let conn = prepared(database.connect().await?, table).await?;
            conns.push(tokio::sync::Mutex::new(Arc::new(conn)));
        }
        Ok(PostgresStore {
            database,
            table: table.to_string(),
            conns,
            next: AtomicUsize::new(0),
            prune_every: PRUNE_EVERY,
            last_prune: std::sync::Mutex::new(std::time::Instant::now()),
        })
    }

    /// Deletes entries past their retention every `every` ([`PRUNE_EVERY`]).
    pub fn with_pruning(mut self, every: Duration) -> Self {
        self.prune_every = every;
        self
    }

    /// Deletes the entries created longer than `retention` ago that are finished or whose
    /// lease ended; returns how many went. The store calls this by itself every
    /// [`PRUNE_EVERY`], with the retention of the request that finds it due.
    pub async fn prune(&self, retention: Duration) -> Result<u64, StoreError> {
        prune(&self.database, &self.table, retention).await
    }

    /// Starts a prune beside the request when one is due.
    fn prune_when_due(&self, retention: Duration) {
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < self.prune_every {
                return;
            }
            *last = std::time::Instant::now();
        }
        let (database, table) = (self.database.clone(), self.table.clone());
        tokio::spawn(async move {
            match prune(&database, &table, retention).await {
                Ok(n) if n > 0 => tracing::debug!(%table, pruned = n, "pruned idempotency keys"),
                Ok(_) => {}
                Err(e) => tracing::warn!(%table, error = %e, "cannot prune idempotency keys"),
            }
        });
    }

    /// The table claims live in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The next connection in turn, reopened if it closed.
    async fn conn(&self) -> Result<Arc<Conn>, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut current = self.conns[i].lock().await;
        if current.client.is_closed() {
            *current = Arc::new(prepared(self.database.connect().await?, &self.table).await?);
            tracing::info!(table = %self.table, "idempotency store reconnected");
        }
        Ok(Arc::clone(&current))
    }
}

impl IdempotencyStore for PostgresStore {
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        lease: Duration,
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        Box::pin(async move {
            self.prune_when_due(retention);
            let c = self.conn().await?;
            let token = Token::new();
            let (lease_s, retention_s) = (lease.as_secs_f64(), retention.as_secs_f64());
            let claimed = c
                .client
                .query_opt(
                    &c.claim,
                    &[&scope, &key, &fingerprint, &token.0, &lease_s, &retention_s],
                )
                .await
                .map_err(pg)?;
            if claimed.is_some() {
                return Ok(Begin::Started(token));
            }
            let row = c
                .client
                .query_opt(&c.state, &[&scope, &key])
                .await
                .map_err(pg)?;
            let Some(row) = row else {
                // Released between the claim and this read: busy for a moment.
                return Ok(Begin::InProgress {
                    retry_after: MIN_RETRY_AFTER,
                });
            };
            if row.get::<_, Vec<u8>>(0) != fingerprint {
                return Ok(Begin::Mismatch);
            }
            Ok(match row.get::<_, Option<i32>>(1) {
                Some(_) => Begin::Completed(stored(&row, 1)),
                None => {
                    let left = row.get::<_, Option<f64>>(4).unwrap_or(0.0);
                    Begin::InProgress {
                        retry_after: Duration::try_from_secs_f64(left)
                            .unwrap_or(Duration::ZERO)
                            .max(MIN_RETRY_AFTER),
                    }
                }
            })
        })
    }

    fn renew<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            let n = c
                .client
                .execute(&c.renew, &[&scope, &key, &token.0, &lease.as_secs_f64()])
                .await
                .map_err(pg)?;
            Ok(n == 1)
        })
    }

    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            write_reply(&c.client, &c.record, scope, key, token, reply).await
        })
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Released, StoreError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            // A handler's transaction that recorded a reply holds the row's lock until it
            // ends; this DELETE waits for it and then sees the recorded reply, so a reply
            // committed together with its effect is never released.
            let n = c
                .client
                .execute(&c.free, &[&scope, &key, &token.0])
                .await
                .map_err(pg)?;
            if n == 1 {
                return Ok(Released::Freed);
            }
            let row = c
                .client
                .query_opt(&c.recorded, &[&scope, &key, &token.0])
                .await
                .map_err(pg)?;
            Ok(match row {
                Some(row) => Released::Completed(stored(&row, 0)),
                None => Released::Lost,
            })
        })
    }

    fn backend(&self) -> Backend<'_> {
        Backend::Postgres { table: &self.table }
    }
}

/// Records `reply` for the claim `token` holds, in a handler's transaction. False when the
/// claim is no longer the token's.
pub(crate) async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    scope: &str,
    key: &str,
    token: &Token,
    reply: &StoredReply,
) -> Result<bool, StoreError> {
    write_reply(tx, sql::record(table).as_str(), scope, key, token, reply).await
}

/// Runs the record statement (prepared on a store connection, or as text in a handler's
/// transaction): true when it recorded the reply for the claim `token` holds.
async fn write_reply<T>(
    client: &impl tokio_postgres::GenericClient,
    statement: &T,
    scope: &str,
    key: &str,
    token: &Token,
    reply: &StoredReply,
) -> Result<bool, StoreError>
where
    T: ?Sized + tokio_postgres::ToStatement + Sync + Send,
{
    let status = i32::from(reply.status);
    let n = client
        .execute(
            statement,
            &[
                &scope,
                &key,
                &token.0,
                &status,
                &reply.content_type,
                &reply.body,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(n == 1)
}
