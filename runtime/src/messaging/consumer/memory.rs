//! The idempotent consumer with an in-memory dedup record: for tests, the example system and
//! handlers whose effects live in the same process.
//!
//! There is no transaction to share, so the order is what makes it safe: the id is recorded
//! only after the handler succeeds, and the delivery is acknowledged only after that. A crash
//! loses the record and the process's own effects together; effects outside the process (an
//! email, a call to another service) can then happen again on redelivery. Use
//! [`SqliteConsumer`](super::SqliteConsumer) or [`PgConsumer`](super::PgConsumer) when the
//! effect must survive a restart exactly once.

use super::{
    admit, failed, finish, settle, within, Admitted, Inbound, Outcome, DEFAULT_BUDGET,
    DEFAULT_POLICY,
};
use crate::contract::{ConsumerInfo, RetryPolicy};
use crate::{Context, Event};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long [`MemoryConsumer`] remembers ids unless told otherwise: a day, longer than any
/// broker redelivery horizon the runtime configures.
pub const MEMORY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// What a consumer does with one event when the dedup record is in memory.
pub trait MemoryHandler<E: Event>: Send + Sync {
    /// Applies `event`. Returning `Err` retries later; the text is the dead-letter reason if
    /// retries run out.
    fn handle(&self, ctx: &Context, event: E) -> impl Future<Output = Result<(), String>> + Send;
}

/// An idempotent consumer of one event type for one consumer group, remembering processed
/// `(source, id)` pairs in memory for a retention period.
pub struct MemoryConsumer<E, H> {
    name: String,
    policy: RetryPolicy,
    budget: Duration,
    handler: H,
    retention: Duration,
    seen: HashMap<(String, String), Instant>,
    /// Insertion order, so expiry is a walk from the front rather than a scan of the map.
    order: VecDeque<(Instant, (String, String))>,
    _event: std::marker::PhantomData<fn() -> E>,
}

impl<E: Event, H: MemoryHandler<E>> MemoryConsumer<E, H> {
    /// A consumer whose `policy.attempts` bound deliveries before a failing event is
    /// dead-lettered.
    pub fn new(policy: RetryPolicy, handler: H) -> Self {
        Self {
            name: "consumer".into(),
            policy,
            budget: DEFAULT_BUDGET,
            handler,
            retention: MEMORY_RETENTION,
            seen: HashMap::new(),
            order: VecDeque::new(),
            _event: std::marker::PhantomData,
        }
    }

    /// The consumer a contract's `consumes` entry describes: its retry policy, or
    /// [`DEFAULT_POLICY`].
    pub fn for_contract(info: &ConsumerInfo, handler: H) -> Self {
        Self::new(info.retry.unwrap_or(DEFAULT_POLICY), handler)
            .named(info.group)
            .with_budget(info.budget.unwrap_or(DEFAULT_BUDGET))
    }

    /// How long one delivery may take: the handler's context carries it, and a handler still
    /// running when it ends is abandoned and retried.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Names the consumer (its group) in spans.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// How long processed ids are remembered. A redelivery later than this runs again.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How many ids are remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Processes one delivery and settles it (ack, nak with backoff, or dead-letter).
    pub async fn process(&mut self, delivery: impl Inbound) -> Outcome {
        let outcome = self.apply(&delivery).await;
        settle(&outcome, delivery, &self.policy, &self.name).await;
        outcome
    }

    /// Everything but settling: what [`process`](Self::process) would do, leaving the delivery
    /// unacknowledged.
    pub async fn apply(&mut self, delivery: &impl Inbound) -> Outcome {
        self.expire(Instant::now());
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
        let key = (source, id);
        // Dedup first: a processed event is acknowledged even if it would be poison now.
        let outcome = match event {
            // Dedup first: a processed event is acknowledged even if it would be poison now.
            _ if self.seen.contains_key(&key) => Outcome::Duplicate,
            Err(poison) => Outcome::DeadLettered(poison),
            Ok(event) => {
                let work = ctx.clone().scope(self.handler.handle(&ctx, event));
                match within(self.budget, work).instrument(span.clone()).await {
                    Ok(()) => {
                        let now = Instant::now();
                        self.seen.insert(key.clone(), now);
                        self.order.push_back((now, key));
                        Outcome::Processed
                    }
                    Err(failure) => failed(delivery.delivered(), &self.policy, failure),
                }
            }
        };
        finish(&span, &outcome);
        outcome
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < self.retention {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.seen.remove(&key);
            }
        }
    }
}
