//! Per-call cost of the retry budget and circuit breaker bookkeeping: `call_guarded` (what
//! generated clients call: the budget counts the call, the breaker admits the attempt and
//! records its outcome) against `call_with_retry_in` (the same retry loop without a target),
//! on an attempt that answers at once, measured in the same run. The difference is what the
//! bookkeeping adds to every call. Then what the metrics add, with no meter provider
//! installed (as in a service that has not called `telemetry::init`): a client call's and a
//! served request's recording.
//!
//! `cargo bench -p pactum --bench resilience`

use pactum::resilience::{CircuitOpen, Target};
use pactum::retry::{call_guarded, call_with_retry_in, Attempt, Transient};
use pactum::{Context, Idempotency, OperationInfo, ResiliencePolicy, RetryPolicy, Streaming};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A read-only operation with a retry policy, as a generated `GET` would have.
const OP: OperationInfo = OperationInfo {
    service: "bench",
    major: 1,
    name: "Get",
    route: None,
    grpc: false,
    deadline: Some(Duration::from_millis(300)),
    safe: true,
    idempotency: Idempotency::None,
    retry: Some(RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        full_jitter: true,
    }),
    per_try: None,
    streaming: Streaming::None,
    resilience: ResiliencePolicy::DEFAULT,
    auth: &[],
};

#[derive(Debug)]
struct Failed;

impl Transient for Failed {
    fn is_transient(&self) -> bool {
        true
    }
}

impl From<CircuitOpen> for Failed {
    fn from(_: CircuitOpen) -> Self {
        Failed
    }
}

async fn answer(a: Attempt) -> Result<u32, Failed> {
    Ok(black_box(a.number))
}

const CALLS: u32 = 500_000;
const ROUNDS: usize = 7;

/// Median ns per call over `ROUNDS` rounds.
fn measure(rt: &tokio::runtime::Runtime, guarded: Option<&Target>) -> f64 {
    let ctx = Context::new().with_timeout(Duration::from_secs(3600));
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(async {
                let mut acc = 0u32;
                for _ in 0..CALLS {
                    let r = match guarded {
                        Some(target) => call_guarded(&ctx, &OP, target, answer).await,
                        None => call_with_retry_in(&ctx, &OP, answer).await,
                    };
                    acc = acc.wrapping_add(r.unwrap());
                }
                black_box(acc);
            });
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let target = Target::new();
    // Warm up both paths.
    measure(&rt, None);
    measure(&rt, Some(&target));
    let plain = measure(&rt, None);
    let guarded = measure(&rt, Some(&target));
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("call_with_retry_in (no target):      {plain:7.1} ns/call");
    println!("call_guarded (budget + breaker):      {guarded:7.1} ns/call");
    println!(
        "bookkeeping: {:+.1} ns/call (ratio {:.2}; target ≤ 200 ns)",
        guarded - plain,
        guarded / plain
    );
    let metrics = measure_metrics();
    println!("metrics, client call + served request (no provider): {metrics:7.1} ns/call");
}

/// Median ns for one `metrics::called` and one `metrics::served`, over `ROUNDS` rounds.
fn measure_metrics() -> f64 {
    let took = Duration::from_micros(250);
    let status = pactum::metrics::Status::Http(http::StatusCode::OK);
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                pactum::metrics::called::<()>(black_box(&OP), None, black_box(took));
                pactum::metrics::served(black_box(&OP), status, black_box(took));
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}
