//! Named fault points for the fault-injection suite (`faults/`): places in the durable
//! handlers where a test can pause the process (to SIGKILL it there) or slow it down.
//!
//! `PACTUM_FAULT_PAUSE=orders.place.after_commit` makes the process print
//! `FAULT orders.place.after_commit` on stderr when a request reaches that point and then
//! wait (at most a minute) for the test to kill it. `PACTUM_FAULT_DELAY=point:ms,…` sleeps
//! there. Without either variable a point costs one check of a parsed set.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

struct Plan {
    pause: Vec<String>,
    delay: HashMap<String, Duration>,
}

static PLAN: LazyLock<Plan> = LazyLock::new(|| Plan {
    pause: std::env::var("PACTUM_FAULT_PAUSE")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect(),
    delay: std::env::var("PACTUM_FAULT_DELAY")
        .unwrap_or_default()
        .split(',')
        .filter_map(|entry| {
            let (point, ms) = entry.split_once(':')?;
            Some((point.to_string(), Duration::from_millis(ms.parse().ok()?)))
        })
        .collect(),
});

/// Reached `point`: pause or slow down if the environment asks for it.
pub async fn point(point: &str) {
    if let Some(delay) = PLAN.delay.get(point) {
        tokio::time::sleep(*delay).await;
    }
    if PLAN.pause.iter().any(|p| p == point) {
        {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "FAULT {point}");
            let _ = err.flush();
        }
        // The test kills the process here; bounded in case it never does.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// [`point`] for synchronous code (a relay's publish hook): a pause blocks the calling
/// thread, which the test then kills with the process.
pub fn point_blocking(point: &str) {
    if let Some(delay) = PLAN.delay.get(point) {
        std::thread::sleep(*delay);
    }
    if PLAN.pause.iter().any(|p| p == point) {
        {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "FAULT {point}");
            let _ = err.flush();
        }
        std::thread::sleep(Duration::from_secs(60));
    }
}
