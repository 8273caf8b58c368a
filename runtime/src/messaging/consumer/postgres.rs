//! The idempotent consumer on PostgreSQL: the record of a processed event is written in the
//! handler's own transaction, on a connection the consumer owns and gets back by itself.

use super::{
    admit, failed, finish, settle, within, Admitted, Batch, Failure, Inbound, Outcome,
    DEDUP_RETENTION, DEFAULT_BUDGET, DEFAULT_PATIENCE, DEFAULT_POLICY, PRUNE_EVERY,
};
use crate::context::Context;
use crate::contract::{ConsumerInfo, RetryPolicy};
use crate::store::idempotency::{check_table_name, StoreError};
use crate::store::postgres::Database;
use crate::Event;
use std::future::Future;
use std::time::Duration;
use tracing::Instrument;

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

/// A connection and the record's INSERT, prepared on it once: a statement given as text is
/// parsed on every call, a round trip per event.
struct Live {
    client: tokio_postgres::Client,
    record: tokio_postgres::Statement,
}

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

    /// Joins the group `info` describes on `source` and runs a consumer of `handler` on its
    /// deliveries as a task of `shutdown`, recording what it handled in `table` (the delivery
    /// in hand is finished when the shutdown starts; what was prefetched is handed back).
    /// What a `pactum new` service starts once per `consumes` entry.
    ///
    /// A delivery is not handed to another worker while its handler may still run: the ack
    /// wait is the entry's budget plus 10 s. A handler that panics fails its attempt like one
    /// that returns an error (every consumer does this); a panic anywhere else in processing
    /// is logged and the loop goes on, the delivery coming back after its ack wait.
    pub async fn spawn<S>(
        source: &S,
        info: &'static ConsumerInfo,
        database: &Database,
        table: &str,
        handler: H,
        shutdown: &crate::shutdown::Shutdown,
    ) -> Result<(), String>
    where
        S: crate::messaging::EventSource,
        S::Subscription: 'static,
        H: 'static,
    {
        use futures_util::FutureExt as _;
        // The table first: a consumer that cannot record must not take deliveries.
        let mut consumer = Self::for_contract(database, table, info, handler)
            .await
            .map_err(|e| format!("the consumer of `{}`: {e}", info.subject))?;
        let options = crate::messaging::Subscribe {
            ack_wait: info.budget.unwrap_or(DEFAULT_BUDGET) + Duration::from_secs(10),
            ..crate::messaging::Subscribe::default()
        };
        let subscription = source
            .subscribe(info, &options)
            .await
            .map_err(|e| format!("cannot join `{}` as `{}`: {e}", info.subject, info.group))?;
        let subject = info.subject;
        shutdown.spawn(crate::messaging::consume(
            subscription,
            shutdown.clone(),
            async move |delivery| {
                let run = std::panic::AssertUnwindSafe(consumer.process(delivery));
                if run.catch_unwind().await.is_err() {
                    tracing::error!(
                        subject,
                        "processing a delivery panicked; it comes back after its ack wait"
                    );
                }
            },
        ));
        Ok(())
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
        settle(&outcome, delivery, &self.policy, &self.name).await;
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
            settle(outcome, delivery, &self.policy, &self.name).await;
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
