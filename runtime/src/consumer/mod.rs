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
    h.insert(REASON_HEADER.into(), reason.to_string());
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
}

/// An idempotent consumer of one event type for one consumer group, backed by PostgreSQL.
pub struct PgConsumer<E, H> {
    client: tokio_postgres::Client,
    table: String,
    /// The record's INSERT, prepared once: a statement given as text is parsed on every call,
    /// a round trip per event.
    record: tokio_postgres::Statement,
    name: String,
    policy: RetryPolicy,
    handler: H,
    _event: std::marker::PhantomData<fn() -> E>,
}

impl<E: Event, H: PgHandler<E>> PgConsumer<E, H> {
    /// A consumer named `name` (its group) recording processed events in `table`, created if
    /// needed. `policy.attempts` bounds deliveries before a failing event is dead-lettered.
    pub async fn new(
        client: tokio_postgres::Client,
        table: &str,
        name: &str,
        policy: RetryPolicy,
        handler: H,
    ) -> Result<Self, StoreError> {
        check_table_name(table)?;
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
        let record = client
            .prepare(&format!(
                "INSERT INTO {table} (consumer, source, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            ))
            .await
            .map_err(|e| StoreError(format!("cannot prepare the record for `{table}`: {e}")))?;
        Ok(Self {
            client,
            record,
            table: table.to_string(),
            name: name.to_string(),
            policy,
            handler,
            _event: std::marker::PhantomData,
        })
    }

    /// The consumer a contract's `consumes` entry describes: its group names the consumer and
    /// its retry policy (or [`DEFAULT_POLICY`]) bounds the attempts. Generated code calls this
    /// from one function per entry.
    pub async fn for_contract(
        client: tokio_postgres::Client,
        table: &str,
        info: &ConsumerInfo,
        handler: H,
    ) -> Result<Self, StoreError> {
        let policy = info.retry.unwrap_or(DEFAULT_POLICY);
        Self::new(client, table, info.group, policy, handler).await
    }

    /// Forgets records older than `retention`; returns how many went. Redeliveries after that
    /// would run again, so keep it longer than the broker's redelivery horizon.
    pub async fn prune(&self, retention: Duration) -> Result<u64, tokio_postgres::Error> {
        let secs = retention.as_secs_f64();
        self.client
            .execute(
                &format!(
                    "DELETE FROM {} WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)",
                    self.table
                ),
                &[&self.name, &secs],
            )
            .await
    }

    /// Processes one delivery and settles it (ack, nak with backoff, or dead-letter).
    pub async fn process(&mut self, delivery: impl Inbound) -> Outcome {
        let outcome = self.apply(&delivery).await;
        settle(&outcome, delivery, &self.policy).await;
        outcome
    }

    /// Everything but settling: what [`process`](Self::process) would do, leaving the delivery
    /// unacknowledged. A worker that stops between this and the ack is the crash case.
    pub async fn apply(&mut self, delivery: &impl Inbound) -> Outcome {
        let admitted = match admit::<E>(&self.name, delivery) {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        let Admitted {
            source,
            id,
            event,
            ctx,
            span,
        } = admitted;
        let outcome = match self
            .transact(&ctx, &source, &id, event)
            .instrument(span.clone())
            .await
        {
            Ok(outcome) => outcome,
            Err(failure) => failed(delivery.delivered(), &self.policy, failure),
        };
        finish(&span, &outcome);
        outcome
    }

    /// Processes a batch in one transaction and then settles each delivery. Each event runs
    /// in a savepoint of its own, so a failing handler undoes only its event; one commit for
    /// the batch replaces one per event, which is most of the cost of a durable write. Nothing
    /// is acknowledged before that commit.
    pub async fn process_batch<D: Inbound>(&mut self, deliveries: Vec<D>) -> Vec<Outcome> {
        let outcomes = self.apply_batch(&deliveries).await;
        for (delivery, outcome) in deliveries.into_iter().zip(&outcomes) {
            settle(outcome, delivery, &self.policy).await;
        }
        outcomes
    }

    /// Everything [`process_batch`](Self::process_batch) does but settling. If the batch's
    /// transaction cannot begin or commit, every event in it that was admitted is retried.
    pub async fn apply_batch<D: Inbound>(&mut self, deliveries: &[D]) -> Vec<Outcome> {
        let (admitted, batch) = Batch::<E>::admit(&self.name, deliveries).take();
        let result = self.transact_batch(admitted, deliveries).await;
        batch.finish(deliveries, result, &self.policy)
    }

    async fn transact_batch<D: Inbound>(
        &mut self,
        admitted: Vec<Result<Admitted<E>, Outcome>>,
        deliveries: &[D],
    ) -> Result<Vec<Outcome>, String> {
        let fail = |what: &str, e: tokio_postgres::Error| format!("{what}: {e}");
        let Self {
            client,
            record,
            name,
            policy,
            handler,
            ..
        } = self;
        let mut tx = client
            .transaction()
            .await
            .map_err(|e| fail("cannot begin transaction", e))?;
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
                .map_err(|e| fail("cannot open savepoint", e))?;
            let claimed = sp
                .execute(&*record, &[&*name, &source, &id])
                .await
                .map_err(|e| fail("cannot record event", e))?;
            if claimed == 0 {
                sp.rollback()
                    .await
                    .map_err(|e| fail("cannot roll back savepoint", e))?;
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            let handled = ctx
                .clone()
                .scope(handler.handle(&sp, &ctx, event))
                .instrument(span)
                .await;
            match handled {
                Ok(()) => {
                    sp.commit()
                        .await
                        .map_err(|e| fail("cannot release savepoint", e))?;
                    outcomes.push(Outcome::Processed);
                }
                Err(failure) => {
                    sp.rollback()
                        .await
                        .map_err(|e| fail("cannot roll back savepoint", e))?;
                    outcomes.push(failed(delivery.delivered(), policy, failure));
                }
            }
        }
        tx.commit().await.map_err(|e| fail("cannot commit", e))?;
        Ok(outcomes)
    }

    async fn transact(
        &mut self,
        ctx: &Context,
        source: &str,
        id: &str,
        event: E,
    ) -> Result<Outcome, String> {
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| format!("cannot begin transaction: {e}"))?;
        let claimed = tx
            .execute(&self.record, &[&self.name, &source, &id])
            .await
            .map_err(|e| format!("cannot record event: {e}"))?;
        if claimed == 0 {
            // Dropping the transaction rolls it back.
            return Ok(Outcome::Duplicate);
        }
        ctx.clone()
            .scope(self.handler.handle(&tx, ctx, event))
            .await?;
        tx.commit()
            .await
            .map_err(|e| format!("cannot commit: {e}"))?;
        Ok(Outcome::Processed)
    }
}

/// A delivery that passed the checks every consumer makes before its handler.
struct Admitted<E> {
    source: String,
    id: String,
    event: E,
    /// The handler's context: the publisher's trace (with this delivery's span as parent) and
    /// what is left of its deadline.
    ctx: Context,
    /// This delivery's span; its outcome is recorded once known.
    span: tracing::Span,
}

/// Decodes a delivery, or says why it goes to the dead letter at once: retrying cannot fix a
/// missing id, a foreign type, an undecodable body, or a deadline already past.
fn admit<E: Event>(consumer: &str, delivery: &impl Inbound) -> Result<Admitted<E>, Outcome> {
    let h = delivery.headers();
    let (Some(source), Some(id)) = (h.get(headers::SOURCE), h.get(headers::ID)) else {
        return Err(Outcome::DeadLettered(
            "missing ce-source or ce-id header".into(),
        ));
    };
    if h.get(headers::TYPE).map(String::as_str) != Some(E::TYPE) {
        return Err(Outcome::DeadLettered(format!(
            "ce-type is {:?}, this consumer reads `{}`",
            h.get(headers::TYPE),
            E::TYPE
        )));
    }
    let event: E = serde_json::from_slice(delivery.payload())
        .map_err(|e| Outcome::DeadLettered(format!("undecodable payload: {e}")))?;
    // Keyed calls the handler makes carry keys derived from the event, so a redelivery
    // re-sends the same keys and the callee applies them once.
    let mut ctx =
        Context::from_headers(h).with_key_basis(format!("event:{consumer}/{source}/{id}"));
    if let Some(ms) = h
        .get(headers::DEADLINE)
        .and_then(|v| v.parse::<u128>().ok())
    {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if now >= ms {
            return Err(Outcome::DeadLettered(
                "deadline expired before processing".into(),
            ));
        }
        // The handler works under what is left of the publisher's deadline, and so do the
        // calls it makes.
        let left = u64::try_from(ms - now).unwrap_or(u64::MAX);
        ctx = ctx.with_timeout(Duration::from_millis(left));
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

/// Records how a delivery ended on its span: `ok`, `skipped` (a duplicate), `retry` or
/// `dead-letter`, with the reason.
fn finish(span: &tracing::Span, outcome: &Outcome) {
    let (word, reason) = match outcome {
        Outcome::Processed => ("ok", None),
        Outcome::Duplicate => ("skipped", None),
        Outcome::Retrying(r) => ("retry", Some(r)),
        Outcome::DeadLettered(r) => ("dead-letter", Some(r)),
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
    fn admit<D: Inbound>(consumer: &str, deliveries: &[D]) -> Self {
        let admitted: Vec<_> = deliveries.iter().map(|d| admit::<E>(consumer, d)).collect();
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
        result: Result<Vec<Outcome>, String>,
        policy: &RetryPolicy,
    ) -> Vec<Outcome> {
        let outcomes: Vec<Outcome> = match result {
            Ok(outcomes) => outcomes,
            Err(failure) => deliveries
                .iter()
                .zip(self.early)
                .map(|(d, poison)| {
                    poison.unwrap_or_else(|| failed(d.delivered(), policy, failure.clone()))
                })
                .collect(),
        };
        for (span, outcome) in self.spans.iter().zip(&outcomes) {
            if let Some(span) = span {
                finish(span, outcome);
            }
        }
        outcomes
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
    }
}
