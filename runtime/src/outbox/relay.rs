//! The relay: publishes committed outbox rows to the broker and marks them sent.
//!
//! Start one next to every replica of the service ([`Relay::run_postgres`] or
//! [`Relay::run_sqlite`]); on PostgreSQL several share one table. Each step claims a batch of
//! due rows (the oldest unsent row of each ordering key, so a key's events go out in commit
//! order), publishes them with their `Nats-Msg-Id`, and in the same transaction marks them
//! sent, schedules a retry with backoff (the broker is away) or parks them with a reason (the
//! broker refuses them for good). A relay killed between publish and mark leaves its rows
//! unmarked; the next step publishes them again under the same id, and the broker's duplicate
//! window or the consumers' dedup record absorbs the copy.

use super::postgres::{claimed, create_table, sql};
use super::{check_table, sqlite, Fate, OutboxError};
use crate::bus::{EventSink, Headers, PublishError, Published};
use crate::postgres::Database;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How a relay works.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Rows claimed and published per step. Default 256.
    pub batch: usize,
    /// How long an idle relay waits before looking again (a [`Relay::waker`] notification
    /// ends the wait early). Default 20 ms.
    pub idle_poll: Duration,
    /// How long sent rows are kept before the relay deletes them. Default 1 hour.
    pub retention: Duration,
    /// How often the relay prunes sent rows. Default every minute.
    pub prune_every: Duration,
    /// The longest pause before a row whose publish failed is tried again. Default 30 s.
    pub max_backoff: Duration,
    /// A fixed retry schedule instead of the backoff: the pause before each retry, in order;
    /// a row still failing after the last is parked as given up. Webhook deliveries use
    /// [`WEBHOOK_SCHEDULE`]. Default `None`: retry with backoff until it succeeds (a broker
    /// that is away comes back).
    pub schedule: Option<&'static [Duration]>,
}

/// The retry schedule of durable webhooks, after Svix's and the Standard Webhooks
/// recommendation: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the first attempt
/// fails — eight attempts over about 27 hours, so a receiver down for a day still gets
/// everything.
pub const WEBHOOK_SCHEDULE: &[Duration] = &[
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            idle_poll: Duration::from_millis(20),
            retention: Duration::from_secs(3600),
            prune_every: Duration::from_secs(60),
            max_backoff: Duration::from_secs(30),
            schedule: None,
        }
    }
}

/// What a relay has done: counters for dashboards and alerts (a parked row needs a person).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Rows published and marked sent.
    pub published: AtomicU64,
    /// Rows whose publish failed for now and was rescheduled.
    pub retried: AtomicU64,
    /// Rows parked: the broker refused them for good; they stay in the table with the reason.
    pub parked: AtomicU64,
    /// Sent rows deleted by pruning.
    pub pruned: AtomicU64,
}

impl RelayStats {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Called after a batch is published and before it is marked sent, with the rows' sequence
/// numbers: where the fault suite stops a relay.
pub type PublishedHook = Arc<dyn Fn(&[i64]) + Send + Sync>;

/// Publishes outbox rows to `S` (the embedded bus or JetStream).
pub struct Relay<S> {
    sink: S,
    config: RelayConfig,
    stats: Arc<RelayStats>,
    wake: Arc<Notify>,
    after_publish: Option<PublishedHook>,
}

impl<S: EventSink> Relay<S> {
    /// A relay publishing to `sink` with the default [`RelayConfig`].
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            config: RelayConfig::default(),
            stats: Arc::default(),
            wake: Arc::default(),
            after_publish: None,
        }
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: RelayConfig) -> Self {
        self.config = config;
        self
    }

    /// Calls `hook` after each batch is published and before it is marked sent.
    pub fn on_published(mut self, hook: PublishedHook) -> Self {
        self.after_publish = Some(hook);
        self
    }

    /// The relay's counters.
    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Notify this after committing a transaction that wrote events, and an idle relay in the
    /// same process publishes them at once instead of at its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The pause before attempt `attempts + 1` of a failed publish: full jitter over a
    /// ceiling doubling from 100 ms to the configured maximum.
    fn backoff(&self, attempts: i32) -> Duration {
        let ceiling = Duration::from_millis(100)
            .saturating_mul(2u32.saturating_pow(attempts.clamp(0, 20) as u32))
            .min(self.config.max_backoff);
        ceiling
            .mul_f64(fastrand::f64())
            .max(Duration::from_millis(10))
    }

    /// Publishes `messages` and decides each row's fate.
    async fn publish(
        &self,
        messages: Vec<(String, Headers, Vec<u8>)>,
        attempts: &[i32],
    ) -> Vec<Fate> {
        let results: Vec<Result<Published, PublishError>> = self.sink.send_all(messages).await;
        results
            .into_iter()
            .zip(attempts)
            .map(|(result, attempts)| match result {
                Ok(_) => Fate::Sent,
                Err(e) if e.permanent => Fate::Park(e.message),
                Err(e) => match self.config.schedule {
                    // `attempts` counts the tries before this one.
                    Some(schedule) => {
                        match schedule.get(usize::try_from(*attempts).unwrap_or(usize::MAX)) {
                            Some(pause) => {
                                tracing::warn!(error = %e, "outbox delivery failed; will retry");
                                Fate::Retry(*pause)
                            }
                            None => Fate::Park(format!(
                                "gave up after {} attempts: {}",
                                attempts + 1,
                                e.message
                            )),
                        }
                    }
                    None => {
                        tracing::warn!(error = %e, "outbox publish failed; will retry");
                        Fate::Retry(self.backoff(*attempts))
                    }
                },
            })
            .collect()
    }

    fn count(&self, fates: &[(i64, Fate)]) {
        for (seq, fate) in fates {
            match fate {
                Fate::Sent => RelayStats::add(&self.stats.published, 1),
                Fate::Retry(_) => RelayStats::add(&self.stats.retried, 1),
                Fate::Park(reason) => {
                    RelayStats::add(&self.stats.parked, 1);
                    tracing::error!(seq, %reason, "outbox row parked: the broker refuses it; it stays in the table");
                }
            }
        }
    }

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
        if let Err(e) = check_table(table) {
            return e;
        }
        let mut client: Option<tokio_postgres::Client> = None;
        let mut last_prune = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                match database.reconnect(Duration::from_secs(5)).await {
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
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            };
            match self.step_postgres(c, table).await {
                Ok(n) if n >= self.config.batch => continue,
                Ok(_) => {
                    pause = Duration::from_millis(50);
                    let _ = tokio::time::timeout(self.config.idle_poll, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay step failed");
                    tokio::time::sleep(pause).await;
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

    /// One step on SQLite (one relay per database file): like
    /// [`step_postgres`](Self::step_postgres), without row locks.
    pub async fn step_sqlite(
        &self,
        conn: &mut rusqlite::Connection,
        table: &str,
    ) -> Result<usize, OutboxError> {
        check_table(table)?;
        let (claimed, bad) = sqlite::claim(conn, table, self.config.batch)?;
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
        sqlite::settle(conn, table, &fates)?;
        self.count(&fates);
        Ok(n)
    }

    /// Relays `table` of the SQLite database `conn` until the task is dropped, pruning on
    /// schedule.
    pub async fn run_sqlite(&self, mut conn: rusqlite::Connection, table: &str) -> OutboxError {
        if let Err(e) = sqlite::create_table(&conn, table) {
            return e;
        }
        let mut last_prune = tokio::time::Instant::now();
        loop {
            match self.step_sqlite(&mut conn, table).await {
                Ok(n) if n >= self.config.batch => continue,
                Ok(_) => {
                    let _ = tokio::time::timeout(self.config.idle_poll, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay step failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            if last_prune.elapsed() >= self.config.prune_every {
                last_prune = tokio::time::Instant::now();
                match sqlite::prune(&conn, table, self.config.retention) {
                    Ok(n) => RelayStats::add(&self.stats.pruned, n),
                    Err(e) => tracing::warn!(error = %e, "outbox prune failed"),
                }
            }
        }
    }
}
