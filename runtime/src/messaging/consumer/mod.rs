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
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::{MemoryConsumer, MemoryHandler, MEMORY_RETENTION};
#[cfg(feature = "postgres")]
pub use postgres::{PgConsumer, PgHandler};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConsumer, SqliteHandler};

use crate::context::Context;
use crate::contract::RetryPolicy;
use crate::messaging::bus::{headers, Delivery, Headers};
use crate::Event;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// How many messages wait behind this one for the group, if the broker says (JetStream
    /// does): the consumer's lag.
    fn pending(&self) -> Option<u64> {
        None
    }
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

/// The SQLite library [`SqliteConsumer`] runs on, re-exported so handlers can name
/// `rusqlite::Transaction` without their own dependency on it.
#[cfg(feature = "sqlite")]
pub use rusqlite;

/// The PostgreSQL client [`PgConsumer`] runs on, re-exported for the same reason.
#[cfg(feature = "postgres")]
pub use tokio_postgres;

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

/// How long a consumer remembers processed events unless told otherwise: 8 days, longer than
/// the 7 days JetStream streams keep messages by default
/// ([`StreamLimits`](crate::messaging::nats::StreamLimits)), so no redelivery outlives its record.
pub const DEDUP_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

/// How often a consumer prunes its records.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// How long a consumer keeps a delivery while its database is unreachable before releasing
/// it for redelivery: longer than a typical failover (10–30 s).
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// How long one delivery may take to handle when the `consumes` entry gives no `budget`.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// Why a store transaction did not complete.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
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
    use futures_util::FutureExt as _;
    // A panicking handler is a failed attempt like any other: rolled back, retried as the
    // policy says, then dead-lettered with the panic as the reason. Uncaught, it would end
    // the consumer's loop, and the event would come back for ever without reaching the
    // dead letter.
    let work = std::panic::AssertUnwindSafe(work).catch_unwind();
    match tokio::time::timeout(budget, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text payload".to_string());
            Err(format!("handler panicked: {what}"))
        }
        Err(_) => Err(format!("handler took longer than its {budget:?} budget")),
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
#[cfg(any(feature = "postgres", feature = "sqlite"))]
struct Batch<E> {
    admitted: Vec<Result<Admitted<E>, Outcome>>,
    early: Vec<Option<Outcome>>,
    spans: Vec<Option<tracing::Span>>,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
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

/// Acks, naks with the policy's backoff, or dead-letters, as `outcome` says, and counts it
/// for `group`.
async fn settle(outcome: &Outcome, delivery: impl Inbound, policy: &RetryPolicy, group: &str) {
    let name = match outcome {
        Outcome::Processed => "processed",
        Outcome::Duplicate => "duplicate",
        Outcome::Retrying(_) => "retrying",
        Outcome::DeadLettered(_) => "dead_lettered",
        Outcome::Unavailable(_) => "unavailable",
    };
    crate::metrics::settled(
        delivery.subject(),
        group,
        name,
        delivery.delivered(),
        delivery.pending(),
    );
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
