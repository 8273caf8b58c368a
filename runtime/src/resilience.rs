//! Run-time protection of the targets a service calls and of the operations it serves, from
//! the contract's `resilience:` block:
//!
//! - a **retry budget** per target, as Finagle's and Linkerd's: retries may be at most
//!   `ratio` of the requests of the last ten seconds, plus a small floor per second, so a
//!   dependency that fails every request sees at most about `(1 + ratio)×` its normal load
//!   instead of `attempts×`;
//! - a **circuit breaker** per target: after `failures` failures in a row the target is
//!   *open* and calls fail at once with [`ClientError::CircuitOpen`](crate::ClientError)
//!   until `cooldown` has passed; then one call goes through as a probe (*half-open*): its
//!   success closes the breaker, its failure opens it again;
//! - a **concurrency limit** per served operation ([`Limits`]): a request beyond it is shed
//!   at once (503 with `Retry-After`, or `RESOURCE_EXHAUSTED`) rather than queued until its
//!   deadline passes.
//!
//! A target is one generated client, so one endpoint: clones of a client share it. A failure,
//! for the breaker, is what says the endpoint is unwell — a transport error, a timeout, 502,
//! 503 or 429, `UNAVAILABLE` or `RESOURCE_EXHAUSTED`; a declared error or a refused request
//! is an answer, and counts as a success. Nothing here ever makes an operation retryable that
//! the contract does not mark safe or keyed: the budget only takes retries away.

use crate::contract::OperationInfo;
use pactum_rules::resilience as rules;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The contract's `resilience:` for one operation (its own keys over its contract's, over
/// [`ResiliencePolicy::DEFAULT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResiliencePolicy {
    /// How many retries a target may be sent, relative to its requests.
    pub retry_budget: RetryBudgetPolicy,
    /// When a target is cut off, and for how long.
    pub breaker: BreakerPolicy,
    /// Most requests of the operation a server runs at once; `None`: no limit.
    pub concurrency: Option<u32>,
}

/// Retries per target: at most `ratio_permille / 1000` of the requests of the last
/// [`RetryBudgetPolicy::WINDOW`], plus `min_per_second` per second of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudgetPolicy {
    /// Retries allowed per request, in thousandths (`ratio: 0.2` is 200).
    pub ratio_permille: u32,
    /// Retries allowed per second whatever the traffic, so a quiet client can still retry.
    pub min_per_second: u32,
}

/// A breaker that opens after `failures` failures in a row, for `cooldown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before one probe is let through.
    pub cooldown: Duration,
}

impl RetryBudgetPolicy {
    /// The window requests and retries are counted over.
    pub const WINDOW: Duration = Duration::from_secs(10);
}

impl ResiliencePolicy {
    /// What an operation gets when its contract says nothing: retries up to 20 % of requests
    /// plus 10 per second, a breaker opening after 5 failures in a row for 5 s, no
    /// concurrency limit.
    pub const DEFAULT: ResiliencePolicy = ResiliencePolicy {
        retry_budget: RetryBudgetPolicy {
            ratio_permille: rules::DEFAULT_RETRY_RATIO_PERMILLE,
            min_per_second: rules::DEFAULT_RETRIES_PER_SECOND,
        },
        breaker: BreakerPolicy {
            failures: rules::DEFAULT_BREAKER_FAILURES,
            cooldown: Duration::from_nanos(rules::DEFAULT_BREAKER_COOLDOWN_NS),
        },
        concurrency: None,
    };
}

impl Default for ResiliencePolicy {
    fn default() -> Self {
        ResiliencePolicy::DEFAULT
    }
}

/// The breaker is open: the call was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    /// When the breaker lets a probe through.
    pub retry_in: Duration,
}

/// Seconds in the budget's window; one bucket each.
const BUCKETS: usize = RetryBudgetPolicy::WINDOW.as_secs() as usize;

/// The state of one target: its budget's counts and its breaker.
#[derive(Debug)]
pub struct Target {
    started: Instant,
    state: Mutex<TargetState>,
}

#[derive(Debug)]
struct TargetState {
    /// Per second of the window: (which second since `started`, requests, retries).
    buckets: [(u64, u32, u32); BUCKETS],
    breaker: Breaker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl Default for Target {
    fn default() -> Self {
        Target::new()
    }
}

impl Target {
    /// A target nothing has been sent to yet.
    pub fn new() -> Self {
        Target {
            started: Instant::now(),
            state: Mutex::new(TargetState {
                buckets: [(u64::MAX, 0, 0); BUCKETS],
                breaker: Breaker::Closed { failures: 0 },
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TargetState> {
        // The state is counters: one left mid-update by a panic is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket of the current second, emptied if it held an older second.
    fn bucket<'s>(&self, state: &'s mut TargetState) -> &'s mut (u64, u32, u32) {
        let second = self.started.elapsed().as_secs();
        let slot = &mut state.buckets[(second % BUCKETS as u64) as usize];
        if slot.0 != second {
            *slot = (second, 0, 0);
        }
        slot
    }

    /// Counts a logical call (its first attempt) towards the budget.
    pub fn record_request(&self) {
        let mut state = self.lock();
        let b = self.bucket(&mut state);
        b.1 = b.1.saturating_add(1);
    }

    /// Takes one retry from the budget, if it has one.
    pub fn try_retry(&self, policy: &RetryBudgetPolicy) -> bool {
        let mut state = self.lock();
        let now = self.started.elapsed().as_secs();
        let (requests, retries) = state
            .buckets
            .iter()
            .filter(|(second, _, _)| *second != u64::MAX && now - second < BUCKETS as u64)
            .fold((0u64, 0u64), |(q, r), (_, rq, rt)| {
                (q + u64::from(*rq), r + u64::from(*rt))
            });
        // (retries + 1) ≤ ratio · requests + floor · window, in thousandths.
        let allowed = u64::from(policy.ratio_permille) * requests
            + u64::from(policy.min_per_second) * BUCKETS as u64 * 1000;
        if (retries + 1) * 1000 > allowed {
            return false;
        }
        let b = self.bucket(&mut state);
        b.2 = b.2.saturating_add(1);
        true
    }

    /// Lets an attempt through, or says how long the breaker stays open.
    pub fn admit(&self) -> Result<Permit<'_>, CircuitOpen> {
        let mut state = self.lock();
        let now = Instant::now();
        let probe = match state.breaker {
            Breaker::Closed { .. } => false,
            Breaker::Open { until } if now < until => {
                return Err(CircuitOpen {
                    retry_in: until - now,
                })
            }
            Breaker::Open { .. } | Breaker::HalfOpen { probing: false } => {
                state.breaker = Breaker::HalfOpen { probing: true };
                true
            }
            // One probe at a time; the others wait for its verdict.
            Breaker::HalfOpen { probing: true } => {
                return Err(CircuitOpen {
                    retry_in: Duration::ZERO,
                })
            }
        };
        Ok(Permit {
            target: self,
            probe,
            done: false,
        })
    }

    /// Whether the breaker is closed (for tests and metrics).
    pub fn is_closed(&self) -> bool {
        matches!(self.lock().breaker, Breaker::Closed { .. })
    }

    /// The breaker as a metric: 0 closed, 1 half-open (or open with its cooldown over), 2 open.
    pub fn breaker_state(&self) -> u64 {
        match self.lock().breaker {
            Breaker::Closed { .. } => 0,
            Breaker::Open { until } if Instant::now() < until => 2,
            Breaker::Open { .. } | Breaker::HalfOpen { .. } => 1,
        }
    }

    /// Whether the breaker would refuse an attempt now (open, its cooldown not over).
    pub fn is_open(&self) -> bool {
        matches!(self.lock().breaker, Breaker::Open { until } if Instant::now() < until)
    }

    fn settle(&self, probe: bool, healthy: Option<bool>, policy: &BreakerPolicy) {
        let mut state = self.lock();
        // An hour at most by the contract; a hand-built policy cannot overflow the clock.
        let reopen = || Breaker::Open {
            until: Instant::now()
                .checked_add(policy.cooldown)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
        };
        state.breaker = match (state.breaker, probe, healthy) {
            (Breaker::Closed { .. }, _, Some(true)) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, _, Some(false)) => {
                let failures = failures.saturating_add(1);
                if failures >= policy.failures.max(1) {
                    reopen()
                } else {
                    Breaker::Closed { failures }
                }
            }
            // The probe's verdict decides; dropped unanswered, the next call probes instead.
            (Breaker::HalfOpen { .. }, true, Some(true)) => Breaker::Closed { failures: 0 },
            (Breaker::HalfOpen { .. }, true, Some(false)) => reopen(),
            (Breaker::HalfOpen { .. }, true, None) => Breaker::HalfOpen { probing: false },
            // Late outcomes of attempts admitted before the breaker opened change nothing:
            // an open breaker keeps its cooldown, a half-open one waits for its probe.
            (other, _, _) => other,
        };
    }
}

/// One attempt let through by a target's breaker. Say how it went with
/// [`Permit::record`]; dropped without it (the call was cancelled), a probe hands its turn
/// to the next call.
#[must_use = "record the attempt's outcome"]
#[derive(Debug)]
pub struct Permit<'t> {
    target: &'t Target,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    /// The endpoint answered (`healthy`) or failed in a way that says it is unwell.
    pub fn record(mut self, healthy: bool, policy: &BreakerPolicy) {
        self.target.settle(self.probe, Some(healthy), policy);
        self.done = true;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.target
                .settle(self.probe, None, &ResiliencePolicy::DEFAULT.breaker);
        }
    }
}

/// Concurrency limits of the operations one server serves; shared by the router's clones.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    running: Arc<Mutex<HashMap<OperationKey, u32>>>,
    /// Limits set in code, over the contracts'.
    set: Arc<HashMap<OperationKey, Option<u32>>>,
}

/// An operation across the system: service, major, name.
type OperationKey = (&'static str, u32, &'static str);

/// A running request of an operation under a concurrency limit; ends with it.
#[derive(Debug)]
pub struct Slot {
    limits: Limits,
    op: OperationKey,
}

impl Limits {
    /// A slot for one more request of `op`, or `None` when its contract's
    /// `resilience.concurrency` of them are already running: shed it. Always a slot for an
    /// operation without a limit.
    pub fn try_enter(&self, op: &OperationInfo) -> Option<Option<Slot>> {
        let key = (op.service, op.major, op.name);
        let limit = match self.set.get(&key) {
            Some(set) => *set,
            None => op.resilience.concurrency,
        };
        let Some(limit) = limit else {
            return Some(None);
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let n = running.entry(key).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Some(Slot {
            limits: self.clone(),
            op: key,
        }))
    }
}

impl Limits {
    /// Limits `op` to `limit` requests at once (`None`: no limit) whatever its contract says:
    /// for a deployment that knows its capacity. Set before the router serves.
    pub fn with_limit(mut self, op: &OperationInfo, limit: Option<u32>) -> Self {
        Arc::make_mut(&mut self.set).insert((op.service, op.major, op.name), limit);
        self
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self
            .limits
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.op) {
            *n = n.saturating_sub(1);
        }
    }
}

/// How long a shed request is told to wait (`Retry-After`, in whole seconds).
pub const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    const BREAKER: BreakerPolicy = BreakerPolicy {
        failures: 3,
        cooldown: Duration::from_secs(2),
    };

    #[tokio::test(start_paused = true)]
    async fn the_budget_allows_a_ratio_of_requests_plus_a_floor() {
        let target = Target::new();
        let policy = RetryBudgetPolicy {
            ratio_permille: 200,
            min_per_second: 0,
        };
        for _ in 0..100 {
            target.record_request();
        }
        let granted = (0..100).filter(|_| target.try_retry(&policy)).count();
        assert_eq!(granted, 20, "20 % of 100 requests");
        // The window moves on: ten seconds later the old requests and retries are forgotten.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            !target.try_retry(&policy),
            "no requests, no floor: no retries"
        );
        let floor = RetryBudgetPolicy {
            ratio_permille: 0,
            min_per_second: 1,
        };
        assert_eq!((0..100).filter(|_| target.try_retry(&floor)).count(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_fails_fast_half_opens_and_closes() {
        let target = Target::new();
        for _ in 0..2 {
            target.admit().unwrap().record(false, &BREAKER);
        }
        // An answer in between resets the count.
        target.admit().unwrap().record(true, &BREAKER);
        for _ in 0..3 {
            target.admit().unwrap().record(false, &BREAKER);
        }
        let open = target.admit().unwrap_err();
        assert_eq!(open.retry_in, Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        // Half-open: one probe, the others still refused.
        let probe = target.admit().unwrap();
        assert!(target.admit().is_err());
        // A failed probe opens it for a whole cooldown again.
        probe.record(false, &BREAKER);
        assert_eq!(target.admit().unwrap_err().retry_in, Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        // A probe dropped unanswered hands its turn on; a healthy one closes the breaker.
        drop(target.admit().unwrap());
        target.admit().unwrap().record(true, &BREAKER);
        assert!(target.is_closed());
        assert!(target.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_of_attempts_let_through_before_it_opened_change_nothing() {
        let target = Target::new();
        // Three attempts in flight when the breaker is still closed.
        let late: Vec<_> = (0..3).map(|_| target.admit().unwrap()).collect();
        for _ in 0..3 {
            target.admit().unwrap().record(false, &BREAKER);
        }
        assert!(target.is_open());
        let mut late = late.into_iter();
        // A late success does not close it; a late failure does not extend the cooldown.
        late.next().unwrap().record(true, &BREAKER);
        assert!(target.is_open());
        tokio::time::advance(Duration::from_secs(1)).await;
        late.next().unwrap().record(false, &BREAKER);
        assert_eq!(target.admit().unwrap_err().retry_in, Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        // Half-open: the probe alone decides; the last late attempt's drop hands nothing on.
        let probe = target.admit().unwrap();
        drop(late.next());
        assert!(target.admit().is_err(), "still one probe at a time");
        probe.record(true, &BREAKER);
        assert!(target.is_closed());
    }

    #[test]
    fn limits_count_running_requests_per_operation() {
        let limited = |name| OperationInfo {
            service: "s",
            major: 1,
            name,
            route: None,
            grpc: false,
            deadline: None,
            safe: true,
            idempotency: crate::Idempotency::None,
            retry: None,
            per_try: None,
            streaming: crate::Streaming::None,
            resilience: ResiliencePolicy {
                concurrency: Some(2),
                ..ResiliencePolicy::DEFAULT
            },
            auth: &[],
        };
        let (a_op, b_op) = (limited("A"), limited("B"));
        let limits = Limits::default();
        let a = limits.try_enter(&a_op).unwrap();
        let _b = limits.try_enter(&a_op).unwrap();
        assert!(limits.try_enter(&a_op).is_none());
        assert!(
            limits.try_enter(&b_op).is_some(),
            "limits are per operation"
        );
        drop(a);
        assert!(limits.try_enter(&a_op).is_some());
        let free = OperationInfo {
            resilience: ResiliencePolicy::DEFAULT,
            ..a_op
        };
        assert!((0..100).all(|_| limits.try_enter(&free).is_some_and(|s| s.is_none())));
    }
}
