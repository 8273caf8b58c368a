//! The idempotent consumer on SQLite: the embedded default for a single process. The record
//! and the handler's writes share one SQLite transaction, exactly as on PostgreSQL.

use super::{
    admit, failed, finish, settle, Admitted, Batch, Failure, Inbound, Outcome, DEDUP_RETENTION,
    DEFAULT_BUDGET, DEFAULT_POLICY, PRUNE_EVERY,
};
use crate::contract::{ConsumerInfo, RetryPolicy};
use crate::store::idempotency::{check_table_name, StoreError};
use crate::{Context, Event};
use std::time::Duration;

/// What a consumer does with one event, inside the SQLite transaction. SQLite calls are
/// synchronous and local, so the handler is too.
pub trait SqliteHandler<E: Event>: Send {
    /// Applies `event` through `tx`, a connection inside the consumer's transaction (or a
    /// savepoint of it, in a batch). Returning `Err` rolls back this event's writes and retries
    /// later; the text is the dead-letter reason if retries run out.
    fn handle(&self, tx: &rusqlite::Connection, ctx: &Context, event: E) -> Result<(), String>;
}

/// An idempotent consumer of one event type for one consumer group, backed by SQLite.
pub struct SqliteConsumer<E, H> {
    conn: rusqlite::Connection,
    table: String,
    /// The record's INSERT, built once so the statement cache finds it every time.
    record: String,
    name: String,
    policy: RetryPolicy,
    budget: Duration,
    /// Records older than this are pruned, every `prune_every`.
    retention: Duration,
    prune_every: Duration,
    last_prune: std::time::Instant,
    handler: H,
    _event: std::marker::PhantomData<fn() -> E>,
}

fn sqlite(doing: &str) -> impl FnOnce(rusqlite::Error) -> String + '_ {
    move |e| format!("{doing}: {e}")
}

/// The database could not do the batch's bookkeeping (busy, locked, full): not an attempt of
/// any event.
fn busy(doing: &str) -> impl FnOnce(rusqlite::Error) -> Failure + '_ {
    move |e| Failure::Unavailable(format!("{doing}: {e}"))
}

/// The batch's transaction failed as a whole: retried event by event.
fn whole(doing: &str) -> impl FnOnce(rusqlite::Error) -> Failure + '_ {
    move |e| Failure::Event(format!("{doing}: {e}"))
}

impl<E: Event, H: SqliteHandler<E>> SqliteConsumer<E, H> {
    /// A consumer named `name` recording processed events in `table` of `conn`, created if
    /// needed.
    pub fn new(
        conn: rusqlite::Connection,
        table: &str,
        name: &str,
        policy: RetryPolicy,
        handler: H,
    ) -> Result<Self, StoreError> {
        check_table_name(table)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                consumer TEXT NOT NULL,
                source TEXT NOT NULL,
                id TEXT NOT NULL,
                processed_at INTEGER NOT NULL DEFAULT (unixepoch()),
                PRIMARY KEY (consumer, source, id)
            ) WITHOUT ROWID"
        ))
        .map_err(|e| StoreError(format!("cannot create `{table}`: {e}")))?;
        Ok(Self {
            conn,
            record: format!(
                "INSERT OR IGNORE INTO {table} (consumer, source, id) VALUES (?1, ?2, ?3)"
            ),
            table: table.to_string(),
            name: name.to_string(),
            policy,
            budget: DEFAULT_BUDGET,
            retention: DEDUP_RETENTION,
            prune_every: PRUNE_EVERY,
            last_prune: std::time::Instant::now(),
            handler,
            _event: std::marker::PhantomData,
        })
    }

    /// The consumer a contract's `consumes` entry describes (see
    /// [`PgConsumer::for_contract`](super::PgConsumer::for_contract)).
    pub fn for_contract(
        conn: rusqlite::Connection,
        table: &str,
        info: &ConsumerInfo,
        handler: H,
    ) -> Result<Self, StoreError> {
        let policy = info.retry.unwrap_or(DEFAULT_POLICY);
        Ok(Self::new(conn, table, info.group, policy, handler)?
            .with_budget(info.budget.unwrap_or(DEFAULT_BUDGET)))
    }

    /// How long one delivery may take. SQLite handlers are synchronous and cannot be
    /// interrupted, so the budget is the deadline of the handler's context: calls it makes
    /// stop in time.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Keeps records for `retention` ([`DEDUP_RETENTION`]), pruning every `every`
    /// ([`PRUNE_EVERY`]), as [`PgConsumer`](super::PgConsumer) does.
    pub fn with_retention(mut self, retention: Duration, every: Duration) -> Self {
        self.retention = retention;
        self.prune_every = every;
        self
    }

    fn prune_when_due(&mut self) {
        if self.last_prune.elapsed() < self.prune_every {
            return;
        }
        self.last_prune = std::time::Instant::now();
        if let Err(e) = self.prune(self.retention) {
            tracing::warn!(consumer = %self.name, error = %e, "cannot prune dedup records");
        }
    }

    /// Forgets records older than `retention`; returns how many went.
    pub fn prune(&self, retention: Duration) -> Result<usize, StoreError> {
        let secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        self.conn
            .execute(
                &format!(
                    "DELETE FROM {} WHERE consumer = ?1 AND processed_at < unixepoch() - ?2",
                    self.table
                ),
                rusqlite::params![self.name, secs],
            )
            .map_err(|e| StoreError(e.to_string()))
    }

    /// Processes one delivery and settles it (ack, nak with backoff, or dead-letter).
    pub async fn process(&mut self, delivery: impl Inbound) -> Outcome {
        let outcome = self.apply(&delivery);
        settle(&outcome, delivery, &self.policy, &self.name).await;
        self.prune_when_due();
        outcome
    }

    /// Everything but settling; a worker that stops between this and the ack is the crash
    /// case.
    pub fn apply(&mut self, delivery: &impl Inbound) -> Outcome {
        let Admitted {
            source,
            id,
            event,
            ctx,
            span,
        } = match admit::<E>(&self.name, self.budget, delivery) {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        let outcome = match span.in_scope(|| self.transact(&ctx, &source, &id, event)) {
            Ok(outcome) => outcome,
            Err(failure) => failed(delivery.delivered(), &self.policy, failure),
        };
        finish(&span, &outcome);
        outcome
    }

    /// Processes a batch in one transaction, each event in a savepoint of its own, then
    /// settles each delivery (see [`PgConsumer::process_batch`](super::PgConsumer::process_batch)).
    pub async fn process_batch<D: Inbound>(&mut self, deliveries: Vec<D>) -> Vec<Outcome> {
        let outcomes = self.apply_batch(&deliveries);
        for (delivery, outcome) in deliveries.into_iter().zip(&outcomes) {
            settle(outcome, delivery, &self.policy, &self.name).await;
        }
        self.prune_when_due();
        outcomes
    }

    /// Everything [`process_batch`](Self::process_batch) does but settling.
    pub fn apply_batch<D: Inbound>(&mut self, deliveries: &[D]) -> Vec<Outcome> {
        let (admitted, batch) = Batch::<E>::admit(&self.name, self.budget, deliveries).take();
        match self.transact_batch(admitted, deliveries) {
            Err(Failure::Event(failure)) => {
                // The batch failed as a whole (a savepoint's release or the commit): each
                // event runs again in its own transaction, so one bad event fails alone.
                tracing::warn!(consumer = %self.name, error = %failure, "batch failed at commit; retrying its events one by one");
                let outcomes: Vec<Outcome> = deliveries.iter().map(|d| self.apply(d)).collect();
                batch.record(&outcomes);
                outcomes
            }
            result => batch.finish(deliveries, result, &self.policy),
        }
    }

    fn transact_batch<D: Inbound>(
        &mut self,
        admitted: Vec<Result<Admitted<E>, Outcome>>,
        deliveries: &[D],
    ) -> Result<Vec<Outcome>, Failure> {
        let Self {
            conn,
            record,
            name,
            policy,
            handler,
            ..
        } = self;
        let mut tx = conn
            .transaction()
            .map_err(busy("cannot begin transaction"))?;
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
            let sp = tx.savepoint().map_err(busy("cannot open savepoint"))?;
            let claimed = sp
                .prepare_cached(record)
                .and_then(|mut insert| insert.execute(rusqlite::params![&*name, source, id]))
                .map_err(busy("cannot record event"))?;
            if claimed == 0 {
                // Dropping the savepoint rolls it back.
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            let event = match event {
                Ok(event) => event,
                Err(poison) => {
                    sp.finish().map_err(busy("cannot roll back savepoint"))?;
                    outcomes.push(Outcome::DeadLettered(poison));
                    continue;
                }
            };
            let handled =
                span.in_scope(|| ctx.clone().sync_scope(|| handler.handle(&sp, &ctx, event)));
            match handled {
                Ok(()) => {
                    sp.commit().map_err(whole("cannot release savepoint"))?;
                    outcomes.push(Outcome::Processed);
                }
                Err(failure) => {
                    sp.finish().map_err(busy("cannot roll back savepoint"))?;
                    outcomes.push(failed(delivery.delivered(), policy, failure));
                }
            }
        }
        tx.commit().map_err(whole("cannot commit"))?;
        Ok(outcomes)
    }

    fn transact(
        &mut self,
        ctx: &Context,
        source: &str,
        id: &str,
        event: Result<E, String>,
    ) -> Result<Outcome, String> {
        let tx = self
            .conn
            .transaction()
            .map_err(sqlite("cannot begin transaction"))?;
        let claimed = tx
            .prepare_cached(&self.record)
            .and_then(|mut insert| insert.execute(rusqlite::params![self.name, source, id]))
            .map_err(sqlite("cannot record event"))?;
        if claimed == 0 {
            // Dropping the transaction rolls it back.
            return Ok(Outcome::Duplicate);
        }
        // After the dedup record: a processed event is acknowledged even if poison now.
        let event = match event {
            Ok(event) => event,
            Err(poison) => return Ok(Outcome::DeadLettered(poison)),
        };
        ctx.clone()
            .sync_scope(|| self.handler.handle(&tx, ctx, event))?;
        tx.commit().map_err(sqlite("cannot commit"))?;
        Ok(Outcome::Processed)
    }
}
