//! Careful retries: capped attempts, exponential backoff with full jitter, never past the
//! deadline, honouring `Retry-After`, and only for operations that are safe or keyed.

use crate::context::Context;
use crate::contract::{Idempotency, OperationInfo, RetryPolicy};
use crate::resilience::{CircuitOpen, Target};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The longest `Retry-After` honoured; a server asking for more is treated as "do not retry".
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What a failed attempt says about retrying.
pub trait Transient {
    /// True when trying again may succeed (timeouts, 503, connection resets).
    fn is_transient(&self) -> bool;
    /// A server-requested pause (`Retry-After`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// True when the attempt ran out of time. After an attempt cut short by the operation's
    /// `per_try`, with time left on the call's deadline, a retryable operation tries again.
    fn is_deadline(&self) -> bool {
        false
    }
    /// True when the failure says the endpoint is unwell, which is what a circuit breaker
    /// counts: by default, what is transient or ran out of time.
    fn is_endpoint_failure(&self) -> bool {
        self.is_transient() || self.is_deadline()
    }
}

impl RetryPolicy {
    /// The backoff cap before retry `retry` (1 = the pause after the first attempt):
    /// `initial · 2^(retry-1)`, at most `max_backoff`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The pause before retry `retry`, given a uniform random number in `[0, 1)`: the ceiling
    /// scaled by it under full jitter, the ceiling itself otherwise.
    pub fn backoff(&self, retry: u32, unit_random: f64) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        if self.full_jitter {
            ceiling.mul_f64(unit_random.clamp(0.0, 1.0))
        } else {
            ceiling
        }
    }
}

/// One attempt of a logical call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first try.
    pub number: u32,
    /// The idempotency key of the logical call: the same on every attempt.
    pub idempotency_key: Option<String>,
    /// When this attempt must be over: the call's deadline, or sooner when the operation
    /// declares `per_try`. Clients give the attempt a context with this deadline, so the next
    /// hop receives the attempt's budget, not the call's.
    pub deadline: Option<Instant>,
}

/// Calls `attempt` until it succeeds, fails permanently, runs out of attempts, or the next
/// pause would end past the deadline. Only retries when the contract marks the operation
/// `safe` or keyed; a keyed operation gets one idempotency key reused on every attempt:
/// inside a handler one derived for this call ([`Context::key_for_call`]), outside one the
/// context's own key or a fresh one.
pub async fn call_with_retry<T, E, F, Fut>(op: &OperationInfo, attempt: F) -> Result<T, E>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    call_with_retry_in(&Context::current(), op, attempt).await
}

/// [`call_with_retry`] under `ctx` (its idempotency key and deadline) rather than the task's
/// current context: for clients that already hold the call's context and need not install it.
pub async fn call_with_retry_in<T, E, F, Fut>(
    ctx: &Context,
    op: &OperationInfo,
    attempt: F,
) -> Result<T, E>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    run(ctx, op, None, attempt).await
}

/// [`call_with_retry_in`] guarded for `target` by the operation's `resilience` policy: the
/// call counts towards the target's retry budget and every retry takes one from it (none
/// left: the last error is returned); every attempt passes the target's circuit breaker
/// (open: [`CircuitOpen`] before the first attempt, the last error before a retry) and tells
/// it how the endpoint answered. What generated clients call.
pub async fn call_guarded<T, E, F, Fut>(
    ctx: &Context,
    op: &OperationInfo,
    target: &Target,
    attempt: F,
) -> Result<T, E>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient + From<CircuitOpen>,
{
    run(ctx, op, Some((target, E::from)), attempt).await
}

/// The environment variable that hands retrying to the service mesh: set to `1` (as the
/// `<service>-pactum-mesh` ConfigMap `pactum manifests --mesh …` writes does), the generated
/// clients make one attempt per call, with the whole deadline, and leave retries and per-try
/// timeouts to the mesh, so retries never multiply across the two layers. The budget and the
/// breaker stay on.
pub const MESH_RETRIES_ENV: &str = pactum_rules::resilience::MESH_RETRIES_ENV;

/// 0: not read yet; 1: the clients retry; 2: the mesh does.
static MESH_RETRIES: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether the mesh retries for this process ([`MESH_RETRIES_ENV`], read once, or
/// [`set_mesh_retries`]).
pub fn mesh_retries() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match MESH_RETRIES.load(Relaxed) {
        0 => {
            let on = std::env::var(MESH_RETRIES_ENV).is_ok_and(|v| v == "1" || v == "true");
            MESH_RETRIES.store(if on { 2 } else { 1 }, Relaxed);
            on
        }
        state => state == 2,
    }
}

/// Hands retrying to the mesh (`true`) or takes it back, for the whole process, as
/// [`MESH_RETRIES_ENV`] does at start-up.
pub fn set_mesh_retries(on: bool) {
    MESH_RETRIES.store(if on { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
}

/// A target to guard a call for, and how to say its breaker refused the call.
type Guard<'t, E> = Option<(&'t Target, fn(CircuitOpen) -> E)>;

/// The one retry loop behind both.
async fn run<T, E, F, Fut>(
    ctx: &Context,
    op: &OperationInfo,
    guard: Guard<'_, E>,
    mut attempt: F,
) -> Result<T, E>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    let key = match op.idempotency {
        Idempotency::Key => Some(ctx.key_for_call(&op.scope())),
        Idempotency::None => None,
    };
    // Generated clients (the guarded path) leave retries and per-try timeouts to a mesh that
    // does them.
    let mesh = guard.is_some() && mesh_retries();
    let policy = op.retry.filter(|_| op.retryable() && !mesh);
    let per_try = op.per_try.filter(|_| !mesh);
    let attempts = policy.map_or(1, |p| p.attempts.max(1));
    let resilience = &op.resilience;
    // What one attempt is meant to have: a timeout with less than this (the caller's budget
    // was nearly spent) says nothing about the endpoint.
    let own_budget = per_try
        .or(op.deadline)
        .unwrap_or(crate::call::DEFAULT_TIMEOUT);
    let mut number = 1;
    let mut last: Option<E> = None;
    loop {
        let permit = match guard {
            Some((target, open)) => match target.admit() {
                Ok(permit) => Some(permit),
                // Open before a retry: the failure the caller should see is the last one.
                Err(refused) => return Err(last.unwrap_or_else(|| open(refused))),
            },
            None => None,
        };
        if let (Some((target, _)), 1) = (guard, number) {
            // Counted once admitted: calls the breaker refuses earn no retries.
            target.record_request();
        }
        if guard.is_some() && number > 1 {
            // A retry is counted once the breaker has let it go out.
            crate::metrics::retried(op);
        }
        let started = Instant::now();
        let deadline = match per_try.and_then(|p| started.checked_add(p)) {
            Some(at) => Some(ctx.deadline().map_or(at, |d| d.min(at))),
            None => ctx.deadline(),
        };
        let full_budget = deadline.is_none_or(|at| {
            // A few percent of slack: the call's deadline was set a moment before this.
            at.saturating_duration_since(started) + own_budget / 20 >= own_budget
        });
        let result = attempt(Attempt {
            number,
            idempotency_key: key.clone(),
            deadline,
        })
        .await;
        if let Some(permit) = permit {
            match &result {
                Ok(_) => permit.record(true, &resilience.breaker),
                // A timeout on a budget the caller had nearly spent: no verdict (a probe hands
                // its turn on).
                Err(e) if e.is_deadline() && !full_budget => drop(permit),
                Err(e) => permit.record(!e.is_endpoint_failure(), &resilience.breaker),
            }
            if let Some((target, _)) = guard {
                crate::metrics::breaker(op, target.breaker_state());
            }
        }
        let error = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(policy) = policy else {
            return Err(error);
        };
        // Cut short by `per_try` (its own deadline passed, the call's has not): as transient as
        // a timeout can be.
        let cut_short = error.is_deadline()
            && per_try.is_some()
            && deadline.is_some_and(|at| Instant::now() >= at)
            && !ctx.is_expired();
        if number >= attempts || !(error.is_transient() || cut_short) {
            return Err(error);
        }
        let mut pause = policy.backoff(number, fastrand::f64());
        if let Some(asked) = error.retry_after() {
            if asked > MAX_RETRY_AFTER {
                return Err(error);
            }
            pause = pause.max(asked);
        }
        if ctx.remaining().is_some_and(|left| pause >= left) {
            return Err(error);
        }
        // The budget is asked last, so only a retry that would really be sent spends it.
        // The breaker is asked first: open now, it would refuse the retry after the pause.
        if let Some((target, _)) = guard {
            if target.is_open() || !target.try_retry(&resilience.retry_budget) {
                return Err(error);
            }
        }
        tokio::time::sleep(pause).await;
        number += 1;
        last = Some(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{RetryPolicy, Streaming};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, PartialEq)]
    struct Err503(Option<Duration>);

    /// A refused call, as the tests tell it apart.
    impl From<CircuitOpen> for Err503 {
        fn from(_: CircuitOpen) -> Self {
            Err503(Some(Duration::MAX))
        }
    }
    impl Transient for Err503 {
        fn is_transient(&self) -> bool {
            true
        }
        fn retry_after(&self) -> Option<Duration> {
            self.0
        }
    }

    fn op(safe: bool, idempotency: Idempotency, jitter: bool) -> OperationInfo {
        OperationInfo {
            service: "s",
            major: 1,
            name: "Op",
            route: None,
            grpc: false,
            deadline: None,
            safe,
            idempotency,
            retry: Some(RetryPolicy {
                attempts: 4,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(300),
                full_jitter: jitter,
            }),
            per_try: None,
            streaming: Streaming::None,
            resilience: crate::ResiliencePolicy::DEFAULT,
            auth: &[],
        }
    }

    /// Fails `fails` times, recording each attempt and when it happened.
    async fn run(
        op: &OperationInfo,
        fails: u32,
        retry_after: Option<Duration>,
    ) -> (Result<u32, Err503>, Vec<(Attempt, Duration)>) {
        let start = tokio::time::Instant::now();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let r = call_with_retry(op, move |a: Attempt| {
            let l = l.clone();
            async move {
                let n = a.number;
                l.lock().unwrap().push((a, start.elapsed()));
                if n <= fails {
                    Err(Err503(retry_after))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        let log = log.lock().unwrap().clone();
        (r, log)
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_jitter_stays_below_it() {
        let p = op(true, Idempotency::None, true).retry.unwrap();
        let ceilings: Vec<u128> = (1..=5).map(|r| p.backoff_ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 300, 300, 300]);
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
        assert!(p.backoff(40, 0.999) <= p.max_backoff);
    }

    #[tokio::test(start_paused = true)]
    async fn safe_operations_retry_with_exponential_backoff() {
        let (r, log) = run(&op(true, Idempotency::None, false), 3, None).await;
        assert_eq!(r, Ok(4));
        let at: Vec<u128> = log.iter().map(|(_, t)| t.as_millis()).collect();
        assert_eq!(at, [0, 100, 300, 600]);
        assert!(log.iter().all(|(a, _)| a.idempotency_key.is_none()));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_capped() {
        let (r, log) = run(&op(true, Idempotency::None, true), 10, None).await;
        assert_eq!(r, Err(Err503(None)));
        assert_eq!(log.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn keyed_operations_reuse_one_key_and_unsafe_ones_never_retry() {
        let (r, log) = run(&op(false, Idempotency::Key, true), 2, None).await;
        assert_eq!(r, Ok(3));
        let keys: Vec<_> = log.iter().map(|(a, _)| a.idempotency_key.clone()).collect();
        assert!(keys[0].is_some() && keys.iter().all(|k| *k == keys[0]));

        let (r, log) = run(&op(false, Idempotency::None, true), 2, None).await;
        assert_eq!(r, Err(Err503(None)));
        assert_eq!(log.len(), 1, "neither safe nor keyed: one attempt only");

        let ctx = Context::new().with_idempotency_key("caller-key");
        let (_, log) = ctx
            .scope(run(&op(false, Idempotency::Key, true), 1, None))
            .await;
        assert_eq!(log[1].0.idempotency_key.as_deref(), Some("caller-key"));

        // Inside a handler, each logical call gets its own derived key, kept across its
        // attempts; the incoming key is never sent on.
        let handler = Context::new()
            .with_idempotency_key("incoming")
            .with_key_basis("s.v1.Outer/incoming");
        let (first, second) = handler
            .scope(async {
                let (_, a) = run(&op(false, Idempotency::Key, true), 1, None).await;
                let (_, b) = run(&op(false, Idempotency::Key, true), 1, None).await;
                (a, b)
            })
            .await;
        let key = |log: &[(Attempt, Duration)], i: usize| log[i].0.idempotency_key.clone();
        assert_eq!(key(&first, 0), key(&first, 1));
        assert_eq!(key(&second, 0), key(&second, 1));
        assert_ne!(key(&first, 0), key(&second, 0));
        assert_ne!(key(&first, 0).as_deref(), Some("incoming"));
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_never_sleeps_past_the_deadline() {
        let (r, log) = run(
            &op(true, Idempotency::None, false),
            1,
            Some(Duration::from_secs(2)),
        )
        .await;
        assert_eq!(r, Ok(2));
        assert_eq!(log[1].1, Duration::from_secs(2));

        let (r, log) = run(
            &op(true, Idempotency::None, false),
            1,
            Some(Duration::from_secs(3600)),
        )
        .await;
        assert!(
            r.is_err() && log.len() == 1,
            "absurd Retry-After is not waited for"
        );

        let ctx = Context::new().with_timeout(Duration::from_millis(250));
        let (r, log) = ctx
            .scope(run(&op(true, Idempotency::None, false), 10, None))
            .await;
        assert!(r.is_err());
        // Pauses of 100 then 200 ms: the second would end past the 250 ms deadline.
        assert_eq!(log.len(), 2);
        assert!(log.last().unwrap().1 < Duration::from_millis(250));
    }

    /// An attempt that ran out of time.
    #[derive(Debug, PartialEq)]
    struct TimedOut;

    impl From<CircuitOpen> for TimedOut {
        fn from(_: CircuitOpen) -> Self {
            TimedOut
        }
    }
    impl Transient for TimedOut {
        fn is_transient(&self) -> bool {
            false
        }
        fn is_deadline(&self) -> bool {
            true
        }
    }

    /// Attempts that hang until their own deadline, except attempt `answers`, which answers.
    async fn hang_until(
        op: &OperationInfo,
        answers: u32,
    ) -> (Result<u32, TimedOut>, Vec<Duration>) {
        let start = tokio::time::Instant::now();
        let ends = Arc::new(Mutex::new(Vec::new()));
        let e = ends.clone();
        let r = call_with_retry(op, move |a: Attempt| {
            let e = e.clone();
            async move {
                if a.number == answers {
                    return Ok(a.number);
                }
                let at = a.deadline.expect("every attempt here has a deadline");
                tokio::time::sleep_until(at).await;
                e.lock().unwrap().push(start.elapsed());
                Err(TimedOut)
            }
        })
        .await;
        let ends = ends.lock().unwrap().clone();
        (r, ends)
    }

    #[tokio::test(start_paused = true)]
    async fn per_try_cuts_a_hanging_attempt_and_the_next_one_answers() {
        let mut keyed = op(false, Idempotency::Key, false);
        keyed.per_try = Some(Duration::from_millis(300));
        // A fresh context per call: a deadline is an instant, and paused time moves on.
        let ctx = || Context::new().with_timeout(Duration::from_secs(2));
        let (r, ends) = ctx().scope(hang_until(&keyed, 2)).await;
        assert_eq!(r, Ok(2), "the second attempt answers");
        assert_eq!(
            ends,
            vec![Duration::from_millis(300)],
            "the first was cut at per_try"
        );

        // Never answering: every attempt is cut at 300 ms, with pauses of 100 and 200 ms
        // between, until the fourth and last attempt.
        let (r, ends) = ctx().scope(hang_until(&keyed, 0)).await;
        assert_eq!(r, Err(TimedOut));
        let ms: Vec<u128> = ends.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![300, 700, 1_200, 1_800]);

        // The call's deadline still bounds the whole: with 1 s, the third attempt is cut at
        // the call's deadline, and that is not retried.
        let short = Context::new().with_timeout(Duration::from_secs(1));
        let (r, ends) = short.scope(hang_until(&keyed, 0)).await;
        assert_eq!(r, Err(TimedOut));
        let ms: Vec<u128> = ends.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![300, 700, 1_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_per_try_or_retry_safety_a_timeout_is_final() {
        let ctx = || Context::new().with_timeout(Duration::from_secs(2));
        // No per_try: the attempt had the whole deadline, so nothing is left to retry in.
        let (r, ends) = ctx()
            .scope(hang_until(&op(true, Idempotency::None, false), 2))
            .await;
        assert_eq!((r, ends.len()), (Err(TimedOut), 1));
        // per_try on an operation neither safe nor keyed: cut, never retried.
        let mut unsafe_op = op(false, Idempotency::None, false);
        unsafe_op.per_try = Some(Duration::from_millis(300));
        let (r, ends) = ctx().scope(hang_until(&unsafe_op, 2)).await;
        assert_eq!(r, Err(TimedOut));
        assert_eq!(ends, vec![Duration::from_millis(300)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_on_a_nearly_spent_budget_is_not_held_against_the_target() {
        let target = Target::new();
        let op = op(true, Idempotency::None, false);
        let mut keyed = op;
        keyed.deadline = Some(Duration::from_secs(1));
        keyed.retry = None;
        // The caller left 5 ms of a 1 s operation: ten such timeouts, and the breaker (five in
        // a row) stays closed.
        for _ in 0..10 {
            let ctx = Context::new().with_timeout(Duration::from_millis(5));
            let r: Result<u32, TimedOut> =
                call_guarded(&ctx, &keyed, &target, |_| async { Err(TimedOut) }).await;
            assert_eq!(r, Err(TimedOut));
        }
        assert!(target.is_closed());
        // With the operation's whole budget, five timeouts open it.
        for _ in 0..5 {
            let ctx = Context::new().with_timeout(Duration::from_secs(1));
            let _: Result<u32, TimedOut> =
                call_guarded(&ctx, &keyed, &target, |_| async { Err(TimedOut) }).await;
        }
        assert!(target.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_the_breaker_refuses_earn_no_retries() {
        let target = Target::new();
        let mut op = op(true, Idempotency::None, false);
        op.resilience.retry_budget = crate::resilience::RetryBudgetPolicy {
            ratio_permille: 1000,
            min_per_second: 0,
        };
        op.resilience.breaker.failures = 1;
        let ctx = Context::new();
        let fail = |_: Attempt| async { Err::<u32, _>(Err503(None)) };
        // One failure opens it; the next thousand calls are refused without a request.
        let _ = call_guarded(&ctx, &op, &target, fail).await;
        for _ in 0..1000 {
            let r = call_guarded(&ctx, &op, &target, fail).await;
            assert_eq!(r, Err(Err503(Some(Duration::MAX))), "refused, not sent");
        }
        // Had the refused calls been counted, a thousand retries would now be allowed.
        assert!(
            target.try_retry(&op.resilience.retry_budget),
            "one call: one retry"
        );
        assert!(!target.try_retry(&op.resilience.retry_budget));
    }
}
