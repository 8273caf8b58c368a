//! The idempotent consumer: decode, skip what was already processed, run the handler, record
//! the event as processed **in the handler's own PostgreSQL transaction**, then acknowledge.
//!
//! Recording and the effect commit together, so the three ways a message misbehaves all come
//! out as "applied once":
//! - delivered twice: the second insert of `(consumer, source, id)` conflicts, the handler is
//!   not called, the message is acknowledged;
//! - crashed after commit, before the ack: the redelivery finds the record and is acknowledged;
//! - crashed before commit: effect and record roll back together; the redelivery runs anew.
//!
//! Concurrent duplicates serialise on the primary key: the second insert waits for the first
//! transaction and then conflicts. An event is never recorded before its handler succeeds.
//!
//! [`PgConsumer`] runs on PostgreSQL (many replicas); [`SqliteConsumer`] on an embedded SQLite
//! file (one process), with the same guarantees. [`MemoryConsumer`] keeps the record in memory
//! (tests, the example system), recording only after the handler succeeds.

mod memory;
mod sqlite;

pub use memory::{MemoryConsumer, MemoryHandler, MEMORY_RETENTION};
pub use sqlite::{SqliteConsumer, SqliteHandler};

use crate::bus::{headers, Delivery, Headers};
use crate::context::Context;
use crate::contract::{ConsumerInfo, RetryPolicy};
use crate::idempotency::{check_table_name, StoreError};
use crate::postgres::Database;
use crate::Event;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// Suffix of the dead-letter subject: `<subject>.dlq`.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";
/// Header on a dead-lettered message saying why it is there.
pub const REASON_HEADER: &str = "pactum-dead-letter-reason";

/// One delivered message, from whichever transport: what the runner reads and how it settles.
pub trait Inbound: Send + Sync {
    /// The subject it was published on.
    fn subject(&self) -> &str;
    /// Its headers.
    fn headers(&self) -> &Headers;
    /// Its body.
    fn payload(&self) -> &[u8];
    /// 1 on the first delivery to this consumer group.
    fn delivered(&self) -> u32;
    /// Handled: never deliver it again.
    fn ack(self) -> impl Future<Output = ()> + Send;
    /// Not handled: deliver it again after `delay`.
    fn nak(self, delay: Duration) -> impl Future<Output = ()> + Send;
    /// Still being handled: restart its ack wait, so it is not delivered to another worker
    /// meanwhile (sent while a consumer waits for its database).
    fn progress(&self) -> impl Future<Output = ()> + Send;
    /// Copies it to `<subject>.dlq` with `reason`, then stops its delivery. If the copy cannot
    /// be stored, the message is left to be delivered again rather than lost.
    fn dead_letter(self, reason: &str) -> impl Future<Output = ()> + Send;
}

impl Inbound for Delivery {
    fn subject(&self) -> &str {
        Delivery::subject(self)
    }
    fn headers(&self) -> &Headers {
        Delivery::headers(self)
    }
    fn payload(&self) -> &[u8] {
        Delivery::payload(self)
    }
    fn delivered(&self) -> u32 {
        self.delivered
    }
    async fn ack(self) {
        Delivery::ack(self);
    }
    async fn nak(self, delay: Duration) {
        Delivery::nak(self, delay);
    }
    async fn progress(&self) {
        Delivery::progress(self);
    }
    async fn dead_letter(self, reason: &str) {
        let (subject, h) = dead_letter_message(&self, reason);
        self.bus().publish(&subject, h, self.payload().to_vec());
        self.term();
    }
}

/// The subject and headers of `message`'s dead-letter copy: the original headers (trace,
/// ids) plus the reason, without the dedup id so the copy is never dropped as a duplicate.
pub fn dead_letter_message(message: &impl Inbound, reason: &str) -> (String, Headers) {
    let mut h = message.headers().clone();
    h.remove(headers::MSG_ID);
    // Reasons carry handler errors and downstream bodies: one line, bounded.
    h.insert(
        REASON_HEADER.into(),
        crate::wire::sanitize_header_value(reason).into_owned(),
    );
    (format!("{}{DEAD_LETTER_SUFFIX}", message.subject()), h)
}

/// What a consumer does with one event. Implement it; the runner does the rest.
pub trait PgHandler<E: Event>: Send + Sync {
    /// Applies `event` inside `tx`. Returning `Err` rolls back and retries later; the text is
    /// the dead-letter reason if retries run out.
    fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        ctx: &Context,
        event: E,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The PostgreSQL client the consumer runs on, re-exported so handlers can name
/// `tokio_postgres::Transaction` without their own dependency on it.
pub use tokio_postgres;

/// The SQLite library [`SqliteConsumer`] runs on, re-exported for the same reason.
pub use rusqlite;

/// Deliveries per event when the contract declares no retry policy: three attempts, backoff
/// from 1 s to 60 s with full jitter.
pub const DEFAULT_POLICY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial_backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(60),
    full_jitter: true,
};

/// What happened to one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handled and recorded; acknowledged.
    Processed,
    /// Already processed; acknowledged without calling the handler.
    Duplicate,
    /// The handler failed; it will be delivered again after the backoff.
    Retrying(String),
    /// Moved to the dead-letter subject with this reason, and not delivered again.
    DeadLettered(String),
    /// The consumer's database could not be reached for as long as the consumer waits; the
    /// delivery was released for redelivery. Not a handler failure: it never leads to the
    /// dead letter.
    Unavailable(String),
}

/// An idempotent consumer of one event type for one consumer group, backed by PostgreSQL.
///
/// It owns its connection and gets it back by itself: when the database goes away (a
/// failover, a restart, `pg_terminate_backend`) the delivery in hand is kept — its ack wait
/// extended — while the consumer reconnects with backoff, and is then processed as if nothing
/// happened. A database outage is never counted as a handler failure, so nothing reaches the
/// dead letter because of one; a delivery still unprocessed after the consumer's patience is
/// released for redelivery ([`Outcome::Unavailable`]).
pub struct PgConsumer<E, H> {
    database: Database,
    live: Option<Live>,
    table: String,
    name: String,
    policy: RetryPolicy,
    budget: Duration,
    patience: Duration,
    /// Records older than this are pruned, every `prune_every`.
    retention: Duration,
    prune_every: Duration,
    last_prune: tokio::time::Instant,
    handler: H,
    _event: std::marker::PhantomData<fn() -> E>,
}

/// How long a consumer remembers processed events unless told otherwise: 8 days, longer than
/// the 7 days JetStream streams keep messages by default
/// ([`StreamLimits`](crate::nats::StreamLimits)), so no redelivery outlives its record.
pub const DEDUP_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

/// How often a consumer prunes its records.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// A connection and the record's INSERT, prepared on it once: a statement given as text is
/// parsed on every call, a round trip per event.
struct Live {
    client: tokio_postgres::Client,
    record: tokio_postgres::Statement,
}

/// How long a consumer keeps a delivery while its database is unreachable before releasing
/// it for redelivery: longer than a typical failover (10–30 s).
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// How long one delivery may take to handle when the `consumes` entry gives no `budget`.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

impl<E: Event, H: PgHandler<E>> PgConsumer<E, H> {
    /// A consumer named `name` (its group) recording processed events in `table` of
    /// `database`, created if needed. `policy.attempts` bounds deliveries before a failing
    /// event is dead-lettered. Fails if the database cannot be reached now.
    pub async fn new(
        database: &Database,
        table: &str,
        name: &str,
        policy: RetryPolicy,
        handler: H,
    ) -> Result<Self, StoreError> {
        check_table_name(table)?;
        let mut consumer = Self {
            database: database.clone(),
            live: None,
            table: table.to_string(),
            name: name.to_string(),
            policy,
            budget: DEFAULT_BUDGET,
            patience: DEFAULT_PATIENCE,
            retention: DEDUP_RETENTION,
            prune_every: PRUNE_EVERY,
            last_prune: tokio::time::Instant::now(),
            handler,
            _event: std::marker::PhantomData,
        };
        let client = database.connect().await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    consumer TEXT NOT NULL,
                    source TEXT NOT NULL,
                    id TEXT NOT NULL,
                    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (consumer, source, id)
                )"
            ))
            .await
            .map_err(|e| StoreError(format!("cannot create `{table}`: {e}")))?;
        consumer.live = Some(consumer.prepare(client).await?);
        Ok(consumer)
    }

    /// The consumer a contract's `consumes` entry describes: its group names the consumer,
    /// its retry policy (or [`DEFAULT_POLICY`]) bounds the attempts and its `budget` (or
    /// [`DEFAULT_BUDGET`]) bounds each delivery. Generated code calls this from one function
    /// per entry.
    pub async fn for_contract(
        database: &Database,
        table: &str,
        info: &ConsumerInfo,
        handler: H,
    ) -> Result<Self, StoreError> {
        let policy = info.retry.unwrap_or(DEFAULT_POLICY);
        Ok(Self::new(database, table, info.group, policy, handler)
            .await?
            .with_budget(info.budget.unwrap_or(DEFAULT_BUDGET)))
    }

    /// How long one delivery may take: the handler's context carries it (so calls it makes
    /// stop in time) and a handler still running when it ends is abandoned and retried.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// How long a delivery is kept while the database is unreachable ([`DEFAULT_PATIENCE`]).
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Keeps records for `retention` ([`DEDUP_RETENTION`]), pruning every `every`
    /// ([`PRUNE_EVERY`]). A redelivery later than the retention would run again: keep it
    /// longer than the broker keeps messages.
    pub fn with_retention(mut self, retention: Duration, every: Duration) -> Self {
        self.retention = retention;
        self.prune_every = every;
        self
    }

    /// Prunes when it is time; a failure is logged and tried again at the next interval.
    async fn prune_when_due(&mut self) {
        if self.last_prune.elapsed() < self.prune_every {
            return;
        }
        self.last_prune = tokio::time::Instant::now();
        match self.prune(self.retention).await {
            Ok(n) if n > 0 => {
                tracing::debug!(consumer = %self.name, pruned = n, "pruned dedup records")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(consumer = %self.name, error = %e, "cannot prune dedup records")
            }
        }
    }

    async fn prepare(&self, client: tokio_postgres::Client) -> Result<Live, StoreError> {
        let record = client
            .prepare(&format!(
                "INSERT INTO {} (consumer, source, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                self.table
            ))
            .await
            .map_err(|e| StoreError(format!("cannot prepare the record: {e}")))?;
        Ok(Live { client, record })
    }

    /// The live connection, or one new attempt to make it.
    async fn live(&mut self) -> Result<(), StoreError> {
        if self.live.as_ref().is_some_and(|l| !l.client.is_closed()) {
            return Ok(());
        }
        self.live = None;
        let client = self.database.connect().await?;
        self.live = Some(self.prepare(client).await?);
        tracing::info!(consumer = %self.name, "consumer reconnected to PostgreSQL");
        Ok(())
    }

    /// Waits (with backoff, at most `left`) until the database answers again.
    async fn wait_for_database(&mut self, left: Duration) {
        if let Ok(client) = self.database.reconnect(left).await {
            if let Ok(live) = self.prepare(client).await {
                self.live = Some(live);
            }
        }
    }

    /// Forgets records older than `retention`; returns how many went. Redeliveries after that
    /// would run again, so keep it longer than the broker's redelivery horizon.
    pub async fn prune(&mut self, retention: Duration) -> Result<u64, StoreError> {
        self.live().await?;
        let live = self
            .live
            .as_ref()
            .ok_or_else(|| StoreError("not connected".into()))?;
        let secs = retention.as_secs_f64();
        live.client
            .execute(
                &format!(
                    "DELETE FROM {} WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)",
                    self.table
                ),
                &[&self.name, &secs],
            )
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    /// Processes one delivery and settles it (ack, nak with backoff, or dead-letter). While
    /// the database is unreachable the delivery is kept and retried, up to the patience.
    pub async fn process(&mut self, delivery: impl Inbound) -> Outcome {
        let until = tokio::time::Instant::now() + self.patience;
        let mut outcome = self.apply(&delivery).await;
        while matches!(outcome, Outcome::Unavailable(_)) {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            delivery.progress().await;
            self.wait_for_database(left.min(Duration::from_secs(5)))
                .await;
            outcome = self.apply(&delivery).await;
        }
        settle(&outcome, delivery, &self.policy).await;
        self.prune_when_due().await;
        outcome
    }

    /// Everything but settling: what [`process`](Self::process) would do once, leaving the
    /// delivery unacknowledged. A worker that stops between this and the ack is the crash case.
    pub async fn apply(&mut self, delivery: &impl Inbound) -> Outcome {
        let admitted = match admit::<E>(&self.name, self.budget, delivery) {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        let span = admitted.span.clone();
        let outcome = match self.live().await {
            Err(e) => Outcome::Unavailable(e.0),
            Ok(()) => {
                let Self {
                    live,
                    name,
                    handler,
                    budget,
                    ..
                } = self;
                let live = live.as_mut().expect("connected just above");
                let result = transact(live, name, handler, *budget, admitted)
                    .instrument(span.clone())
                    .await;
                judge(result, &live.client, delivery.delivered(), &self.policy)
            }
        };
        finish(&span, &outcome);
        outcome
    }

    /// Processes a batch in one transaction and then settles each delivery. Each event runs
    /// in a savepoint of its own, so a failing handler undoes only its event; one commit for
    /// the batch replaces one per event, which is most of the cost of a durable write. Nothing
    /// is acknowledged before that commit. If the commit (or a savepoint's release) fails with
    /// the database still there, the batch's events are retried one by one, so one bad event
    /// fails alone; if the database is gone, the batch waits for it as one delivery would.
    pub async fn process_batch<D: Inbound>(&mut self, deliveries: Vec<D>) -> Vec<Outcome> {
        let until = tokio::time::Instant::now() + self.patience;
        let mut outcomes = self.apply_batch(&deliveries).await;
        while outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Unavailable(_)))
        {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            for d in &deliveries {
                d.progress().await;
            }
            self.wait_for_database(left.min(Duration::from_secs(5)))
                .await;
            outcomes = self.apply_batch(&deliveries).await;
        }
        for (delivery, outcome) in deliveries.into_iter().zip(&outcomes) {
            settle(outcome, delivery, &self.policy).await;
        }
        self.prune_when_due().await;
        outcomes
    }

    /// Everything [`process_batch`](Self::process_batch) does but settling and waiting for a
    /// lost database.
    pub async fn apply_batch<D: Inbound>(&mut self, deliveries: &[D]) -> Vec<Outcome> {
        let (admitted, batch) = Batch::<E>::admit(&self.name, self.budget, deliveries).take();
        let result = match self.live().await {
            Err(e) => Err(Failure::Unavailable(e.0)),
            Ok(()) => self.transact_batch(admitted, deliveries).await,
        };
        match result {
            Err(Failure::Event(failure)) => {
                // The batch's transaction failed as a whole (at a savepoint's release or the
                // commit) but the database is there: it was one event's doing, or a conflict.
                // Everything rolled back; each event runs again in its own transaction.
                tracing::warn!(consumer = %self.name, error = %failure, "batch failed at commit; retrying its events one by one");
                let mut outcomes = Vec::with_capacity(deliveries.len());
                for d in deliveries {
                    outcomes.push(self.apply(d).await);
                }
                batch.record(&outcomes);
                outcomes
            }
            result => batch.finish(deliveries, result, &self.policy),
        }
    }

    async fn transact_batch<D: Inbound>(
        &mut self,
        admitted: Vec<Result<Admitted<E>, Outcome>>,
        deliveries: &[D],
    ) -> Result<Vec<Outcome>, Failure> {
        let Self {
            live,
            name,
            policy,
            handler,
            budget,
            ..
        } = self;
        let Some(live) = live.as_mut() else {
            return Err(Failure::Unavailable("not connected".into()));
        };
        let Live { client, record } = live;
        let closed = |client: &tokio_postgres::Client, what: &str, e: tokio_postgres::Error| {
            let text = format!("{what}: {e}");
            if client.is_closed() {
                Failure::Unavailable(text)
            } else {
                Failure::Event(text)
            }
        };
        let mut tx = match client.transaction().await {
            Ok(tx) => tx,
            Err(e) => {
                return Err(Failure::Unavailable(format!(
                    "cannot begin transaction: {e}"
                )))
            }
        };
        let mut outcomes = Vec::with_capacity(deliveries.len());
        for (admitted, delivery) in admitted.into_iter().zip(deliveries) {
            let Admitted {
                source,
                id,
                event,
                ctx,
                span,
            } = match admitted {
                Ok(a) => a,
                Err(outcome) => {
                    outcomes.push(outcome);
                    continue;
                }
            };
            let sp = tx
                .transaction()
                .await
                .map_err(|e| Failure::Unavailable(format!("cannot open savepoint: {e}")))?;
            let claimed = sp
                .execute(&*record, &[&*name, &source, &id])
                .await
                .map_err(|e| Failure::Unavailable(format!("cannot record event: {e}")))?;
            if claimed == 0 {
                sp.rollback().await.map_err(|e| {
                    Failure::Unavailable(format!("cannot roll back savepoint: {e}"))
                })?;
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            let event = match event {
                Ok(event) => event,
                Err(poison) => {
                    // Not a duplicate, and never processable: the dead letter, unrecorded.
                    sp.rollback().await.map_err(|e| {
                        Failure::Unavailable(format!("cannot roll back savepoint: {e}"))
                    })?;
                    outcomes.push(Outcome::DeadLettered(poison));
                    continue;
                }
            };
            let handled = within(*budget, ctx.clone().scope(handler.handle(&sp, &ctx, event)))
                .instrument(span)
                .await;
            match handled {
                Ok(()) => {
                    // A release that fails (a deferred check, a lost connection) fails the
                    // whole batch: the caller retries each event alone.
                    sp.commit()
                        .await
                        .map_err(|e| Failure::Event(format!("cannot release savepoint: {e}")))?;
                    outcomes.push(Outcome::Processed);
                }
                Err(failure) => {
                    sp.rollback().await.map_err(|e| {
                        Failure::Unavailable(format!("cannot roll back savepoint: {e}"))
                    })?;
                    if tx.client().is_closed() {
                        return Err(Failure::Unavailable(failure));
                    }
                    outcomes.push(failed(delivery.delivered(), policy, failure));
                }
            }
        }
        let committed = tx.commit().await;
        committed.map_err(|e| closed(client, "cannot commit", e))?;
        Ok(outcomes)
    }
}

/// Why a store transaction did not complete.
enum Failure {
    /// The database was unreachable or the connection died: nobody's fault, not an attempt.
    Unavailable(String),
    /// The event's processing failed (its handler, or a statement on its behalf).
    Event(String),
}

/// Runs `work` within `budget`: a handler still running when it ends is abandoned (its
/// transaction rolls back) and its delivery counts as failed.
async fn within<T>(
    budget: Duration,
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(budget, work)
        .await
        .unwrap_or_else(|_| Err(format!("handler took longer than its {budget:?} budget")))
}

/// One event in its own transaction: record, then (unless a duplicate or poison) the handler,
/// then commit.
async fn transact<E: Event, H: PgHandler<E>>(
    live: &mut Live,
    name: &str,
    handler: &H,
    budget: Duration,
    admitted: Admitted<E>,
) -> Result<Outcome, String> {
    let Admitted {
        source,
        id,
        event,
        ctx,
        ..
    } = admitted;
    let tx = live
        .client
        .transaction()
        .await
        .map_err(|e| format!("cannot begin transaction: {e}"))?;
    let claimed = tx
        .execute(&live.record, &[&name, &source, &id])
        .await
        .map_err(|e| format!("cannot record event: {e}"))?;
    if claimed == 0 {
        // Dropping the transaction rolls it back.
        return Ok(Outcome::Duplicate);
    }
    let event = match event {
        Ok(event) => event,
        // Checked after the dedup record, so a redelivery of a processed event is acked even
        // if it has expired since.
        Err(poison) => return Ok(Outcome::DeadLettered(poison)),
    };
    within(budget, ctx.clone().scope(handler.handle(&tx, &ctx, event))).await?;
    tx.commit()
        .await
        .map_err(|e| format!("cannot commit: {e}"))?;
    Ok(Outcome::Processed)
}

/// A failed transaction is the event's failure only when the database is still there.
fn judge(
    result: Result<Outcome, String>,
    client: &tokio_postgres::Client,
    delivered: u32,
    policy: &RetryPolicy,
) -> Outcome {
    match result {
        Ok(outcome) => outcome,
        Err(failure) if client.is_closed() => Outcome::Unavailable(failure),
        Err(failure) => failed(delivered, policy, failure),
    }
}

/// A delivery that passed the checks every consumer makes before its dedup record.
struct Admitted<E> {
    source: String,
    id: String,
    /// The event, or why it can never be processed (a foreign type, an undecodable body, a
    /// deadline already past). That verdict is applied only after the dedup check: a
    /// redelivery of an event processed before is acknowledged, never dead-lettered.
    event: Result<E, String>,
    /// The handler's context: the publisher's trace (with this delivery's span as parent),
    /// the event's deadline if it has one, and the delivery's budget.
    ctx: Context,
    /// This delivery's span; its outcome is recorded once known.
    span: tracing::Span,
}

/// Reads a delivery's identity and decodes it. Only a delivery without an id goes to the dead
/// letter here (there is nothing to deduplicate it by); every other verdict waits for the
/// dedup check.
fn admit<E: Event>(
    consumer: &str,
    budget: Duration,
    delivery: &impl Inbound,
) -> Result<Admitted<E>, Outcome> {
    let h = delivery.headers();
    let (Some(source), Some(id)) = (h.get(headers::SOURCE), h.get(headers::ID)) else {
        return Err(Outcome::DeadLettered(
            "missing ce-source or ce-id header".into(),
        ));
    };
    // Keyed calls the handler makes carry keys derived from the event, so a redelivery
    // re-sends the same keys and the callee applies them once.
    let mut ctx = Context::from_headers(h)
        .with_key_basis(format!("event:{consumer}/{source}/{id}"))
        .with_timeout(budget);
    let mut event = decode::<E>(delivery);
    if let Some(ms) = h
        .get(headers::DEADLINE)
        .and_then(|v| v.parse::<u128>().ok())
    {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if now >= ms {
            event = event.and(Err("the event's deadline passed before processing".into()));
        } else {
            // The handler works under what is left of the event's deadline (if sooner than
            // its budget), and so do the calls it makes.
            let left = u64::try_from(ms - now).unwrap_or(u64::MAX);
            ctx = ctx.with_timeout(Duration::from_millis(left));
        }
    }
    let span = tracing::info_span!(
        "pactum.consume",
        otel.name = %format!("{consumer} <- {}", E::NAME),
        messaging.destination = delivery.subject(),
        messaging.message.id = %id,
        messaging.delivery = delivery.delivered(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error.message = tracing::field::Empty,
    );
    let ctx = crate::trace::enter(&span, ctx);
    Ok(Admitted {
        source: source.clone(),
        id: id.clone(),
        ctx,
        event,
        span,
    })
}

/// The event in a delivery, or why it can never be processed.
fn decode<E: Event>(delivery: &impl Inbound) -> Result<E, String> {
    let kind = delivery.headers().get(headers::TYPE);
    if kind.map(String::as_str) != Some(E::TYPE) {
        return Err(format!(
            "ce-type is {kind:?}, this consumer reads `{}`",
            E::TYPE
        ));
    }
    serde_json::from_slice(delivery.payload()).map_err(|e| format!("undecodable payload: {e}"))
}

/// Records how a delivery ended on its span: `ok`, `skipped` (a duplicate), `retry` or
/// `dead-letter`, with the reason.
fn finish(span: &tracing::Span, outcome: &Outcome) {
    let (word, reason) = match outcome {
        Outcome::Processed => ("ok", None),
        Outcome::Duplicate => ("skipped", None),
        Outcome::Retrying(r) => ("retry", Some(r)),
        Outcome::DeadLettered(r) => ("dead-letter", Some(r)),
        Outcome::Unavailable(r) => ("unavailable", Some(r)),
    };
    span.record("outcome", word);
    if let Some(r) = reason {
        span.record("error.message", r.as_str());
    }
}

/// The bookkeeping of a batch that does not depend on the store: what was decided before any
/// database work (poison messages), and each admitted delivery's span.
struct Batch<E> {
    admitted: Vec<Result<Admitted<E>, Outcome>>,
    early: Vec<Option<Outcome>>,
    spans: Vec<Option<tracing::Span>>,
}

impl<E: Event> Batch<E> {
    fn admit<D: Inbound>(consumer: &str, budget: Duration, deliveries: &[D]) -> Self {
        let admitted: Vec<_> = deliveries
            .iter()
            .map(|d| admit::<E>(consumer, budget, d))
            .collect();
        let early = admitted.iter().map(|a| a.as_ref().err().cloned()).collect();
        let spans = admitted
            .iter()
            .map(|a| a.as_ref().ok().map(|a| a.span.clone()))
            .collect();
        Batch {
            admitted,
            early,
            spans,
        }
    }

    /// Hands the admitted deliveries to the store's transaction, keeping the rest.
    fn take(mut self) -> (Vec<Result<Admitted<E>, Outcome>>, Self) {
        (std::mem::take(&mut self.admitted), self)
    }

    /// The outcomes of the store's transaction, or, if it could not begin or commit, a
    /// retry for every admitted delivery (poison messages keep their dead letter); recorded
    /// on each delivery's span.
    fn finish<D: Inbound>(
        self,
        deliveries: &[D],
        result: Result<Vec<Outcome>, Failure>,
        policy: &RetryPolicy,
    ) -> Vec<Outcome> {
        let outcomes: Vec<Outcome> = match result {
            Ok(outcomes) => outcomes,
            Err(failure) => deliveries
                .iter()
                .zip(self.early.iter().cloned())
                .map(|(d, poison)| {
                    poison.unwrap_or_else(|| match &failure {
                        Failure::Unavailable(f) => Outcome::Unavailable(f.clone()),
                        Failure::Event(f) => failed(d.delivered(), policy, f.clone()),
                    })
                })
                .collect(),
        };
        self.record(&outcomes);
        outcomes
    }

    /// Records each admitted delivery's outcome on its span.
    fn record(&self, outcomes: &[Outcome]) {
        for (span, outcome) in self.spans.iter().zip(outcomes) {
            if let Some(span) = span {
                finish(span, outcome);
            }
        }
    }
}

/// A failed attempt: retry, or dead-letter once the policy's attempts are used up.
fn failed(delivered: u32, policy: &RetryPolicy, failure: String) -> Outcome {
    if delivered >= policy.attempts.max(1) {
        Outcome::DeadLettered(format!("failed {delivered} times; last: {failure}"))
    } else {
        Outcome::Retrying(failure)
    }
}

/// Acks, naks with the policy's backoff, or dead-letters, as `outcome` says.
async fn settle(outcome: &Outcome, delivery: impl Inbound, policy: &RetryPolicy) {
    match outcome {
        Outcome::Processed | Outcome::Duplicate => delivery.ack().await,
        Outcome::Retrying(_) => {
            let pause = policy.backoff(delivery.delivered(), fastrand::f64());
            delivery.nak(pause).await;
        }
        Outcome::DeadLettered(reason) => delivery.dead_letter(reason).await,
        // Soon, and without using up an attempt of the policy's backoff.
        Outcome::Unavailable(_) => delivery.nak(Duration::from_secs(1)).await,
    }
}
