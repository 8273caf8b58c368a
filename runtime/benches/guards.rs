//! Cost of the guard macros: ns per call of an async fn with `#[pactum::deadline]` and
//! `#[pactum::traced]` against the same plain fn, measured in the same run, with no tracing
//! subscriber and with a tracing-opentelemetry subscriber (SDK tracer, no exporter).
//!
//! `cargo bench -p pactum --bench guards`

use opentelemetry::trace::TracerProvider as _;
use pactum::DeadlineExceeded;
use std::hint::black_box;
use std::time::Instant;
use tracing_subscriber::layer::SubscriberExt;

#[inline(never)]
async fn plain(x: u64) -> Result<u64, DeadlineExceeded> {
    Ok(black_box(x).wrapping_mul(31))
}

#[pactum::deadline("250ms")]
async fn with_deadline(x: u64) -> Result<u64, DeadlineExceeded> {
    Ok(black_box(x).wrapping_mul(31))
}

#[pactum::traced]
async fn with_traced(x: u64) -> Result<u64, DeadlineExceeded> {
    Ok(black_box(x).wrapping_mul(31))
}

#[pactum::traced]
#[pactum::deadline("250ms")]
async fn with_both(x: u64) -> Result<u64, DeadlineExceeded> {
    Ok(black_box(x).wrapping_mul(31))
}

const CALLS: u64 = 200_000;
const ROUNDS: usize = 7;

/// Median ns per call over `ROUNDS` rounds of `CALLS` calls.
fn measure<F, Fut>(rt: &tokio::runtime::Runtime, f: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, DeadlineExceeded>>,
{
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(async {
                let mut acc = 0u64;
                for i in 0..CALLS {
                    acc = acc.wrapping_add(f(i).await.unwrap());
                }
                black_box(acc);
            });
            start.elapsed().as_nanos() as f64 / CALLS as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}

fn run_all(label: &str, rt: &tokio::runtime::Runtime) {
    let base = measure(rt, plain);
    let rows = [
        ("#[deadline]", measure(rt, with_deadline)),
        ("#[traced]", measure(rt, with_traced)),
        ("#[traced] + #[deadline]", measure(rt, with_both)),
    ];
    println!("{label}");
    println!(
        "  {:<26} {:>9.1} ns/call   (baseline)",
        "plain async fn", base
    );
    for (name, ns) in rows {
        println!(
            "  {name:<26} {ns:>9.1} ns/call   {:>7.1}x baseline, +{:.1} ns",
            ns / base,
            ns - base
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // Warm up code paths and the timer wheel.
    measure(&rt, with_both);
    run_all("no subscriber", &rt);

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(subscriber, || {
        run_all(
            "tracing-opentelemetry subscriber (SDK tracer, always-on sampler, no exporter)",
            &rt,
        )
    });
}
