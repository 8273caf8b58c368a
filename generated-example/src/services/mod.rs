//! Hand-written service logic over the generated types: each service implements its
//! contract's generated `Service` trait once; the generated routers serve it over REST.
//! Handlers run in a span that continues the caller's trace and within the contract's
//! deadline; calls between services (cart → pricing) carry both without any header copying.

pub mod cart;
pub mod durable;
pub mod inventory;
pub mod orders;
pub mod payments;
pub mod pricing;
pub mod shipping;

use pactum::{Context, HandlerError};
use std::sync::Mutex;

/// Records `reply` through the request's idempotency claim, when it holds one (keyed
/// operations): a failure from here on replays the reply instead of applying the effect
/// again. In memory this is as close as an effect and its reply get; the durable services
/// commit the two together (`durable.rs`).
pub(crate) async fn recorded<T: 'static, E>(ctx: &Context, reply: T) -> Result<T, HandlerError<E>> {
    if let Some(claim) = ctx.claim() {
        claim.record(&reply).await.map_err(HandlerError::internal)?;
    }
    Ok(reply)
}

/// What handlers saw, for demos and tests: `(operation, trace id)` per call.
#[derive(Default)]
pub struct Seen(Mutex<Vec<(&'static str, Option<String>)>>);

impl Seen {
    /// Records that `op` ran under the current context's trace.
    pub fn record(&self, op: &'static str) {
        self.0
            .lock()
            .expect("seen lock")
            .push((op, pactum::Context::current().trace_id()));
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<(&'static str, Option<String>)> {
        self.0.lock().expect("seen lock").clone()
    }
}
