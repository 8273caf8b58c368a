//! The outbox on SQLite: the writer (on the handler's transaction) and the relay's
//! statements. SQLite serialises writers, so a key's rows are in commit order by
//! construction, and one relay per database file needs no row locks.

use super::{check_table, Claimed, Fate, OutboxError, Relay, RelayStats, Row, DEFAULT_TABLE};
use crate::messaging::bus::EventSink;
use crate::{Context, Event};
use std::time::Duration;

/// Writes events through an SQLite connection inside the handler's transaction (SQLite
/// handlers are synchronous, so is this writer).
pub struct Sqlite<'a> {
    conn: &'a rusqlite::Connection,
    table: &'a str,
}

fn sqlite(doing: &str) -> impl FnOnce(rusqlite::Error) -> OutboxError + '_ {
    move |e| OutboxError(format!("{doing}: {e}"))
}

impl<'a> Sqlite<'a> {
    /// Writes through `conn` (a transaction, or a savepoint of one).
    pub fn new(conn: &'a rusqlite::Connection) -> Self {
        Self {
            conn,
            table: DEFAULT_TABLE,
        }
    }

    /// Uses outbox table `table` (created with [`create_table`]).
    pub fn table(mut self, table: &'a str) -> Self {
        self.table = table;
        self
    }

    /// Stores `row`; a row whose `msg_id` is there already is not stored again.
    pub fn write(&self, row: Row) -> Result<(), OutboxError> {
        check_table(self.table)?;
        let headers = serde_json::to_string(&row.headers)
            .map_err(|e| OutboxError(format!("cannot encode headers: {e}")))?;
        self.conn
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO {} (subject, ordering_key, msg_id, headers, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                self.table
            ))
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    row.subject,
                    row.ordering_key,
                    row.msg_id,
                    headers,
                    row.payload
                ])
            })
            .map_err(sqlite("cannot write the event"))?;
        Ok(())
    }

    /// Writes `event` under `id`, with the current context's trace.
    pub fn write_event<E: Event>(&self, id: &str, event: &E) -> Result<(), OutboxError> {
        self.write(Row::new(&Context::current(), id, event)?)
    }
}

/// Creates outbox table `table`, if missing.
pub fn create_table(conn: &rusqlite::Connection, table: &str) -> Result<(), OutboxError> {
    check_table(table)?;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            subject TEXT NOT NULL,
            ordering_key TEXT,
            msg_id TEXT NOT NULL UNIQUE,
            headers TEXT NOT NULL,
            payload BLOB NOT NULL,
            created_at INTEGER NOT NULL DEFAULT (unixepoch('subsec') * 1000),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL DEFAULT 0,
            sent_at INTEGER,
            parked_reason TEXT
        );
        CREATE INDEX IF NOT EXISTS {table}_due ON {table} (seq)
            WHERE sent_at IS NULL AND parked_reason IS NULL;
        CREATE INDEX IF NOT EXISTS {table}_key ON {table} (ordering_key, seq)
            WHERE sent_at IS NULL AND parked_reason IS NULL;"
    ))
    .map_err(sqlite("cannot create the outbox table"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Due rows, each the oldest unsent of its key; and rows whose headers do not decode.
#[allow(clippy::type_complexity)]
pub(crate) fn claim(
    conn: &rusqlite::Connection,
    table: &str,
    batch: usize,
) -> Result<(Vec<Claimed>, Vec<(i64, String)>), OutboxError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT seq, subject, headers, payload, attempts FROM {table} o
             WHERE sent_at IS NULL AND parked_reason IS NULL AND next_attempt_at <= ?2
               AND (ordering_key IS NULL OR NOT EXISTS (
                 SELECT 1 FROM {table} p
                 WHERE p.ordering_key = o.ordering_key AND p.seq < o.seq
                   AND p.sent_at IS NULL AND p.parked_reason IS NULL))
             ORDER BY seq LIMIT ?1"
        ))
        .map_err(sqlite("cannot claim rows"))?;
    let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(rusqlite::params![limit, now_ms()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i32>(4)?,
            ))
        })
        .map_err(sqlite("cannot claim rows"))?;
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for row in rows {
        let (seq, subject, headers, payload, attempts) =
            row.map_err(sqlite("cannot read a row"))?;
        match serde_json::from_str(&headers) {
            Ok(headers) => good.push(Claimed {
                seq,
                subject,
                headers,
                payload,
                attempts,
            }),
            Err(e) => bad.push((seq, format!("stored headers do not decode: {e}"))),
        }
    }
    Ok((good, bad))
}

/// Records each row's fate in one transaction.
pub(crate) fn settle(
    conn: &mut rusqlite::Connection,
    table: &str,
    rows: &[(i64, Fate)],
) -> Result<(), OutboxError> {
    let tx = conn.transaction().map_err(sqlite("cannot begin"))?;
    let now = now_ms();
    for (seq, fate) in rows {
        let (sql, params): (String, Vec<rusqlite::types::Value>) = match fate {
            Fate::Sent => (
                format!("UPDATE {table} SET sent_at = ?2, attempts = attempts + 1 WHERE seq = ?1"),
                vec![(*seq).into(), now.into()],
            ),
            Fate::Retry(after) => (
                format!("UPDATE {table} SET attempts = attempts + 1, next_attempt_at = ?2 WHERE seq = ?1"),
                vec![
                    (*seq).into(),
                    (now + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2)).into(),
                ],
            ),
            Fate::Park(reason) => (
                format!("UPDATE {table} SET attempts = attempts + 1, parked_reason = ?2 WHERE seq = ?1"),
                vec![(*seq).into(), reason.clone().into()],
            ),
        };
        tx.prepare_cached(&sql)
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(params)))
            .map_err(sqlite("cannot settle a row"))?;
    }
    tx.commit().map_err(sqlite("cannot commit"))
}

/// Deletes sent rows older than `retention`.
pub(crate) fn prune(
    conn: &rusqlite::Connection,
    table: &str,
    retention: Duration,
) -> Result<usize, OutboxError> {
    let before = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
    conn.execute(
        &format!("DELETE FROM {table} WHERE sent_at IS NOT NULL AND sent_at < ?1"),
        [before],
    )
    .map_err(sqlite("cannot prune"))
}

/// The relay's loop on SQLite: one relay per database file.
impl<S: EventSink> Relay<S> {
    /// One step on SQLite (one relay per database file): like
    /// [`step_postgres`](Self::step_postgres), without row locks.
    pub async fn step_sqlite(
        &self,
        conn: &mut rusqlite::Connection,
        table: &str,
    ) -> Result<usize, OutboxError> {
        check_table(table)?;
        let (claimed, bad) = claim(conn, table, self.config.batch)?;
        if claimed.is_empty() && bad.is_empty() {
            return Ok(0);
        }
        let n = claimed.len() + bad.len();
        let mut fates: Vec<(i64, Fate)> =
            bad.into_iter().map(|(s, r)| (s, Fate::Park(r))).collect();
        let seqs: Vec<i64> = claimed.iter().map(|c| c.seq).collect();
        let attempts: Vec<i32> = claimed.iter().map(|c| c.attempts).collect();
        let messages = claimed
            .into_iter()
            .map(|c| (c.subject, c.headers, c.payload))
            .collect();
        let published = self.publish(messages, &attempts).await;
        if let Some(hook) = &self.after_publish {
            hook(&seqs);
        }
        fates.extend(seqs.into_iter().zip(published));
        // Reasons are one bounded line, as the PostgreSQL path stores them.
        for (_, fate) in &mut fates {
            if let Fate::Park(reason) = fate {
                *reason = crate::wire::sanitize_header_value(reason).into_owned();
            }
        }
        settle(conn, table, &fates)?;
        self.count(&fates);
        Ok(n)
    }

    /// Relays `table` of the SQLite database `conn` until the task is dropped, pruning on
    /// schedule. Returns only if the table cannot be created.
    pub async fn run_sqlite(&self, conn: rusqlite::Connection, table: &str) -> OutboxError {
        match self.relay_sqlite(conn, table, None).await {
            Err(e) => e,
            Ok(()) => OutboxError("the relay stopped".into()),
        }
    }

    /// [`run_sqlite`](Self::run_sqlite) until `shutdown` starts: the batch being published is
    /// published and marked, then the relay returns `Ok`.
    pub async fn run_sqlite_until(
        &self,
        conn: rusqlite::Connection,
        table: &str,
        shutdown: &crate::shutdown::Shutdown,
    ) -> Result<(), OutboxError> {
        self.relay_sqlite(conn, table, Some(shutdown)).await
    }

    async fn relay_sqlite(
        &self,
        mut conn: rusqlite::Connection,
        table: &str,
        shutdown: Option<&crate::shutdown::Shutdown>,
    ) -> Result<(), OutboxError> {
        create_table(&conn, table)?;
        let mut last_prune = tokio::time::Instant::now();
        let mut last_count = tokio::time::Instant::now() - Duration::from_secs(5);
        loop {
            if shutdown.is_some_and(|s| s.is_triggered()) {
                return Ok(());
            }
            let before = self
                .stats
                .published
                .load(std::sync::atomic::Ordering::Relaxed);
            let step = self.step_sqlite(&mut conn, table).await;
            let published = self
                .stats
                .published
                .load(std::sync::atomic::Ordering::Relaxed);
            let backlog = if last_count.elapsed() >= Duration::from_secs(5) {
                last_count = tokio::time::Instant::now();
                conn.query_row(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {table} WHERE sent_at IS NULL AND parked_reason IS NULL LIMIT 100000)"
                    ),
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .ok()
                .and_then(|n| u64::try_from(n).ok())
            } else {
                None
            };
            crate::metrics::outbox(table, backlog, published.saturating_sub(before));
            match step {
                Ok(n) if n >= self.config.batch => continue,
                Ok(_) => {
                    let idle = tokio::time::timeout(self.config.idle_poll, self.wake.notified());
                    super::relay::wait(shutdown, idle).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay step failed");
                    super::relay::wait(shutdown, tokio::time::sleep(Duration::from_millis(200)))
                        .await;
                }
            }
            if last_prune.elapsed() >= self.config.prune_every {
                last_prune = tokio::time::Instant::now();
                match prune(&conn, table, self.config.retention) {
                    Ok(n) => RelayStats::add(&self.stats.pruned, n),
                    Err(e) => tracing::warn!(error = %e, "outbox prune failed"),
                }
            }
        }
    }
}
