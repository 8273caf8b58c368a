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

use super::Fate;
use crate::messaging::bus::{EventSink, Headers, PublishError, Published};
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
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Called after a batch is published and before it is marked sent, with the rows' sequence
/// numbers: where the fault suite stops a relay.
pub type PublishedHook = Arc<dyn Fn(&[i64]) + Send + Sync>;

/// Publishes outbox rows to `S` (the embedded bus or JetStream).
pub struct Relay<S> {
    sink: S,
    // The backends' relay loops (`postgres.rs`, `sqlite.rs`) read these.
    pub(super) config: RelayConfig,
    pub(super) stats: Arc<RelayStats>,
    pub(super) wake: Arc<Notify>,
    pub(super) after_publish: Option<PublishedHook>,
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
    pub(super) fn backoff(&self, attempts: i32) -> Duration {
        let ceiling = Duration::from_millis(100)
            .saturating_mul(2u32.saturating_pow(attempts.clamp(0, 20) as u32))
            .min(self.config.max_backoff);
        ceiling
            .mul_f64(fastrand::f64())
            .max(Duration::from_millis(10))
    }

    /// Publishes `messages` and decides each row's fate.
    pub(super) async fn publish(
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

    pub(super) fn count(&self, fates: &[(i64, Fate)]) {
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
}

/// Awaits `pause` (a relay's idle wait or backoff), cut short when `shutdown` starts.
pub(super) async fn wait<F: std::future::Future>(
    shutdown: Option<&crate::shutdown::Shutdown>,
    pause: F,
) {
    match shutdown {
        Some(s) => {
            tokio::select! {
                () = s.triggered() => {}
                _ = pause => {}
            }
        }
        None => {
            pause.await;
        }
    }
}
