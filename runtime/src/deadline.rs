//! Deadlines: the typed error and the runner behind `#[pactum::deadline]`.

use crate::context::Context;
use std::fmt;
use std::future::Future;

/// The call's deadline passed before it finished. Maps to HTTP 504 and gRPC
/// `DEADLINE_EXCEEDED` (4) — not `CANCELLED`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeadlineExceeded;

impl DeadlineExceeded {
    /// HTTP status: 504 Gateway Timeout.
    pub const HTTP_STATUS: u16 = 504;
    /// gRPC status code: `DEADLINE_EXCEEDED`.
    pub const GRPC_CODE: i32 = 4;
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Runs `fut` as the current context `ctx`, bounded by its deadline: when the deadline
/// passes, `fut` is dropped (its pending work cancelled) and `DeadlineExceeded` is returned.
/// A deadline already passed does not start `fut` at all.
pub async fn run_with_deadline<T, E, F>(ctx: Context, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: From<DeadlineExceeded>,
{
    match ctx.deadline() {
        None => ctx.scope(fut).await,
        Some(_) if ctx.is_expired() => Err(DeadlineExceeded.into()),
        Some(at) => match tokio::time::timeout_at(at, ctx.scope(fut)).await {
            Ok(result) => result,
            Err(_) => Err(DeadlineExceeded.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn drops_the_future_when_the_deadline_passes() {
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = SetOnDrop(dropped.clone());
        let ctx = Context::new().with_timeout(Duration::from_millis(50));
        let r: Result<(), DeadlineExceeded> = run_with_deadline(ctx, async move {
            let _g = guard;
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        })
        .await;
        assert_eq!(r, Err(DeadlineExceeded));
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_deadline_does_not_start_the_work() {
        let ctx = Context::new().with_timeout(Duration::ZERO);
        let r: Result<(), DeadlineExceeded> =
            run_with_deadline(ctx, async { panic!("must not run") }).await;
        assert_eq!(r, Err(DeadlineExceeded));
    }
}
