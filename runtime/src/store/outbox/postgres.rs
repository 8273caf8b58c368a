//! The outbox on PostgreSQL: the writer (in the handler's transaction) and the statements the
//! relay claims, marks, parks and prunes rows with.

use super::{
    check_table, Claimed, Fate, OutboxError, Relay, RelayStats, Row, Writer, DEFAULT_TABLE,
};
use crate::messaging::bus::EventSink;
use crate::store::postgres::Database;
use std::time::Duration;

/// Writes events through a PostgreSQL transaction into the outbox table
/// ([`DEFAULT_TABLE`] unless [`Pg::table`] says otherwise).
pub struct Pg<'a, 't> {
    tx: &'a tokio_postgres::Transaction<'t>,
    table: &'a str,
}

impl<'a, 't> Pg<'a, 't> {
    /// Writes through `tx`: the events commit or roll back with it.
    pub fn new(tx: &'a tokio_postgres::Transaction<'t>) -> Self {
        Self {
            tx,
            table: DEFAULT_TABLE,
        }
    }

    /// Uses outbox table `table` (created with [`create_table`]).
    pub fn table(mut self, table: &'a str) -> Self {
        self.table = table;
        self
    }
}

/// The advisory-lock class of outbox ordering keys (`pact` in ASCII), so the keys' locks do
/// not collide with other uses of advisory locks.
const LOCK_CLASS: i32 = 0x7061_6374;

impl Writer for Pg<'_, '_> {
    async fn write(&self, row: Row) -> Result<(), OutboxError> {
        check_table(self.table)?;
        let headers = serde_json::to_string(&row.headers)
            .map_err(|e| OutboxError(format!("cannot encode headers: {e}")))?;
        // One round trip: the key's transaction lock, then the row. The lock makes writers of
        // one ordering key commit one after another, so their sequence numbers are their
        // commit order — which the relay publishes in. (Without a key there is no lock.)
        let sql = format!(
            "WITH lock AS (SELECT pg_advisory_xact_lock({LOCK_CLASS}, hashtext($2)))
             INSERT INTO {} (subject, ordering_key, msg_id, headers, payload)
             SELECT $1, $2, $3, $4, $5 FROM lock
             ON CONFLICT (msg_id) DO NOTHING",
            self.table
        );
        // Typed parameters: parse, bind and execute go in one round trip (an untyped
        // statement is prepared first, a second one).
        use tokio_postgres::types::Type;
        self.tx
            .execute_typed(
                &sql,
                &[
                    (&row.subject, Type::TEXT),
                    (&row.ordering_key, Type::TEXT),
                    (&row.msg_id, Type::TEXT),
                    (&headers, Type::TEXT),
                    (&row.payload, Type::BYTEA),
                ],
            )
            .await
            .map_err(|e| OutboxError(format!("cannot write the event: {e}")))?;
        Ok(())
    }
}

/// Creates outbox table `table` and its indexes, if missing.
pub async fn create_table(client: &tokio_postgres::Client, table: &str) -> Result<(), OutboxError> {
    check_table(table)?;
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                seq BIGSERIAL PRIMARY KEY,
                subject TEXT NOT NULL,
                ordering_key TEXT,
                msg_id TEXT NOT NULL UNIQUE,
                headers TEXT NOT NULL,
                payload BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                attempts INT NOT NULL DEFAULT 0,
                next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                sent_at TIMESTAMPTZ,
                parked_reason TEXT
            );
            CREATE INDEX IF NOT EXISTS {table}_due ON {table} (seq)
                WHERE sent_at IS NULL AND parked_reason IS NULL;
            CREATE INDEX IF NOT EXISTS {table}_key ON {table} (ordering_key, seq)
                WHERE sent_at IS NULL AND parked_reason IS NULL;
            CREATE INDEX IF NOT EXISTS {table}_sent ON {table} (sent_at)
                WHERE sent_at IS NOT NULL;"
        ))
        .await
        .map_err(|e| OutboxError(format!("cannot create `{table}`: {e}")))
}

/// The relay's statements on `table`.
pub(crate) mod sql {
    /// Claims up to `$1` due rows, each the oldest unsent one of its ordering key, skipping
    /// rows another relay holds. Locks last until the relay's transaction ends.
    pub fn claim(t: &str) -> String {
        format!(
            "SELECT seq, subject, headers, payload, attempts FROM {t} o
             WHERE sent_at IS NULL AND parked_reason IS NULL AND next_attempt_at <= now()
               AND (ordering_key IS NULL OR NOT EXISTS (
                 SELECT 1 FROM {t} p
                 WHERE p.ordering_key = o.ordering_key AND p.seq < o.seq
                   AND p.sent_at IS NULL AND p.parked_reason IS NULL))
             ORDER BY seq LIMIT $1
             FOR UPDATE SKIP LOCKED"
        )
    }
    pub fn sent(t: &str) -> String {
        format!("UPDATE {t} SET sent_at = now(), attempts = attempts + 1 WHERE seq = ANY($1)")
    }
    pub fn retry(t: &str) -> String {
        format!(
            "UPDATE {t} SET attempts = attempts + 1,
               next_attempt_at = now() + make_interval(secs => $2)
             WHERE seq = $1"
        )
    }
    pub fn park(t: &str) -> String {
        format!("UPDATE {t} SET attempts = attempts + 1, parked_reason = $2 WHERE seq = $1")
    }
    pub fn prune(t: &str) -> String {
        format!(
            "DELETE FROM {t} WHERE sent_at IS NOT NULL
               AND sent_at < now() - make_interval(secs => $1)"
        )
    }
}

/// How often a relay counts its backlog for `pactum.outbox.backlog`.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);
/// The most rows the backlog count reads.
const BACKLOG_COUNT_LIMIT: u32 = 100_000;

/// The rows of `table` waiting to be published (parked ones are not waiting), or `None` if
/// the count fails (the metric then keeps its last value).
async fn backlog_postgres(client: &tokio_postgres::Client, table: &str) -> Option<u64> {
    let sql =
        // Counted up to a bound: a huge backlog must not make the relay slower at clearing it.
        format!("SELECT count(*) FROM (SELECT 1 FROM {table} WHERE sent_at IS NULL AND parked_reason IS NULL LIMIT {BACKLOG_COUNT_LIMIT}) due");
    let row = client.query_one(&sql, &[]).await.ok()?;
    u64::try_from(row.get::<_, i64>(0)).ok()
}

/// Decodes a claimed row; a row whose headers do not decode is parked by the caller.
pub(crate) fn claimed(row: &tokio_postgres::Row) -> Result<Claimed, (i64, String)> {
    let seq: i64 = row.get(0);
    let headers: String = row.get(2);
    let headers = serde_json::from_str(&headers)
        .map_err(|e| (seq, format!("stored headers do not decode: {e}")))?;
    Ok(Claimed {
        seq,
        subject: row.get(1),
        headers,
        payload: row.get(3),
        attempts: row.get(4),
    })
}

/// The relay's loop on PostgreSQL: many relays may share a table (rows are claimed
/// `FOR UPDATE SKIP LOCKED`).
impl<S: EventSink> Relay<S> {
    /// One step on PostgreSQL: claims up to a batch of due rows, publishes them and settles
    /// them, in one transaction. Returns how many rows it claimed.
    pub async fn step_postgres(
        &self,
        client: &mut tokio_postgres::Client,
        table: &str,
    ) -> Result<usize, OutboxError> {
        check_table(table)?;
        let db = |what: &'static str| {
            move |e: tokio_postgres::Error| OutboxError(format!("{what}: {e}"))
        };
        let tx = client.transaction().await.map_err(db("cannot begin"))?;
        let limit = i64::try_from(self.config.batch.max(1)).unwrap_or(i64::MAX);
        let rows = tx
            .query(&sql::claim(table), &[&limit])
            .await
            .map_err(db("cannot claim rows"))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let claimed_n = rows.len();
        let mut fates: Vec<(i64, Fate)> = Vec::with_capacity(claimed_n);
        let mut messages = Vec::with_capacity(claimed_n);
        let (mut seqs, mut attempts) = (Vec::new(), Vec::new());
        for row in &rows {
            match claimed(row) {
                Ok(c) => {
                    seqs.push(c.seq);
                    attempts.push(c.attempts);
                    messages.push((c.subject, c.headers, c.payload));
                }
                Err((seq, reason)) => fates.push((seq, Fate::Park(reason))),
            }
        }
        let published = self.publish(messages, &attempts).await;
        if let Some(hook) = &self.after_publish {
            hook(&seqs);
        }
        fates.extend(seqs.into_iter().zip(published));
        let sent: Vec<i64> = fates
            .iter()
            .filter(|(_, f)| matches!(f, Fate::Sent))
            .map(|(s, _)| *s)
            .collect();
        if !sent.is_empty() {
            tx.execute(&sql::sent(table), &[&sent])
                .await
                .map_err(db("cannot mark rows sent"))?;
        }
        for (seq, fate) in &fates {
            match fate {
                Fate::Sent => {}
                Fate::Retry(after) => {
                    tx.execute(&sql::retry(table), &[seq, &after.as_secs_f64()])
                        .await
                        .map_err(db("cannot reschedule a row"))?;
                }
                Fate::Park(reason) => {
                    let reason = crate::wire::sanitize_header_value(reason).into_owned();
                    tx.execute(&sql::park(table), &[seq, &reason])
                        .await
                        .map_err(db("cannot park a row"))?;
                }
            }
        }
        tx.commit().await.map_err(db("cannot commit"))?;
        self.count(&fates);
        Ok(claimed_n)
    }

    /// Deletes sent rows older than the retention; returns how many went.
    pub async fn prune_postgres(
        &self,
        client: &tokio_postgres::Client,
        table: &str,
    ) -> Result<u64, OutboxError> {
        check_table(table)?;
        let n = client
            .execute(&sql::prune(table), &[&self.config.retention.as_secs_f64()])
            .await
            .map_err(|e| OutboxError(format!("cannot prune: {e}")))?;
        RelayStats::add(&self.stats.pruned, n as usize);
        Ok(n)
    }

    /// Relays `table` of `database` until the task is dropped: creates the table if needed,
    /// reconnects after losing the database, backs off while the broker is away, and prunes on
    /// schedule. Returns only if `table` is not a valid name.
    pub async fn run_postgres(&self, database: &Database, table: &str) -> OutboxError {
        match self.relay_postgres(database, table, None).await {
            Err(e) => e,
            Ok(()) => OutboxError("the relay stopped".into()),
        }
    }

    /// [`run_postgres`](Self::run_postgres) until `shutdown` starts: the batch being
    /// published is published and marked, then the relay returns `Ok` (what is left is the
    /// next replica's, or the next start's).
    pub async fn run_postgres_until(
        &self,
        database: &Database,
        table: &str,
        shutdown: &crate::shutdown::Shutdown,
    ) -> Result<(), OutboxError> {
        self.relay_postgres(database, table, Some(shutdown)).await
    }

    /// Creates `table` if needed, then runs the relay as a task of `shutdown` until it
    /// starts (a relay that fails for good logs why). What a `pactum new` service starts
    /// beside its servers when its contract emits events.
    pub async fn spawn_postgres(
        self,
        database: &Database,
        table: &str,
        shutdown: &crate::shutdown::Shutdown,
    ) -> Result<(), OutboxError>
    where
        S: Send + Sync + 'static,
    {
        check_table(table)?;
        // Replicas starting together can race on `CREATE … IF NOT EXISTS` (PostgreSQL checks
        // the catalog before it locks it); the loser's second try finds the table.
        let mut tries = 0;
        loop {
            let created = match database.connect().await {
                Ok(client) => create_table(&client, table).await,
                Err(e) => Err(OutboxError(e.to_string())),
            };
            match created {
                Ok(()) => break,
                Err(e) if tries == 2 => return Err(e),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let (database, table, stop) = (database.clone(), table.to_string(), shutdown.clone());
        shutdown.spawn(async move {
            if let Err(e) = self.run_postgres_until(&database, &table, &stop).await {
                tracing::error!(error = %e, table = %table, "the outbox relay stopped");
            }
        });
        Ok(())
    }

    async fn relay_postgres(
        &self,
        database: &Database,
        table: &str,
        shutdown: Option<&crate::shutdown::Shutdown>,
    ) -> Result<(), OutboxError> {
        check_table(table)?;
        let mut client: Option<tokio_postgres::Client> = None;
        let mut last_prune = tokio::time::Instant::now();
        let mut last_count = tokio::time::Instant::now() - BACKLOG_EVERY;
        let mut pause = Duration::from_millis(50);
        loop {
            if shutdown.is_some_and(|s| s.is_triggered()) {
                return Ok(());
            }
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                let reconnect = database.reconnect(Duration::from_secs(5));
                let reconnected = match shutdown {
                    // A relay waiting for its database does not hold up a drain.
                    Some(s) => tokio::select! {
                        () = s.triggered() => return Ok(()),
                        r = reconnect => r,
                    },
                    None => reconnect.await,
                };
                match reconnected {
                    Ok(c) => match create_table(&c, table).await {
                        Ok(()) => client = Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox relay cannot prepare its table")
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "outbox relay cannot reach PostgreSQL"),
                }
            }
            let Some(c) = client.as_mut() else {
                super::relay::wait(shutdown, tokio::time::sleep(pause)).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            };
            let before = self
                .stats
                .published
                .load(std::sync::atomic::Ordering::Relaxed);
            let step = self.step_postgres(c, table).await;
            let published = self
                .stats
                .published
                .load(std::sync::atomic::Ordering::Relaxed);
            // The backlog is counted every few seconds (an index-only count of the due rows);
            // what was published, every step.
            let backlog = if last_count.elapsed() >= BACKLOG_EVERY {
                last_count = tokio::time::Instant::now();
                backlog_postgres(c, table).await
            } else {
                None
            };
            crate::metrics::outbox(table, backlog, published.saturating_sub(before));
            match step {
                Ok(n) if n >= self.config.batch => continue,
                Ok(_) => {
                    pause = Duration::from_millis(50);
                    let idle = tokio::time::timeout(self.config.idle_poll, self.wake.notified());
                    super::relay::wait(shutdown, idle).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay step failed");
                    super::relay::wait(shutdown, tokio::time::sleep(pause)).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
            if last_prune.elapsed() >= self.config.prune_every {
                last_prune = tokio::time::Instant::now();
                if let Some(c) = client.as_ref() {
                    if let Err(e) = self.prune_postgres(c, table).await {
                        tracing::warn!(error = %e, "outbox prune failed");
                    }
                }
            }
        }
    }
}
