//! Contract-level facts as constants: what a transport needs to honour an operation's or a
//! consumer's guardrails.

use pactum_rules::modes::DeliveryMode;
use std::time::Duration;

pub use pactum_rules::modes::{Idempotency, Streaming};
pub use pactum_rules::status::ErrorStatus;

/// Retry policy from the contract: capped attempts, exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// First backoff.
    pub initial_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// Full jitter (sleep uniformly in `[0, backoff]`) when true.
    pub full_jitter: bool,
}

/// A REST route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path with the version prefix, axum syntax (`/v1/orders/{id}`).
    pub path: &'static str,
}

/// Everything the contract says about one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationInfo {
    /// Service name.
    pub service: &'static str,
    /// Contract major version.
    pub major: u32,
    /// Operation name (PascalCase).
    pub name: &'static str,
    /// REST route, if served over REST.
    pub route: Option<Route>,
    /// Served over gRPC.
    pub grpc: bool,
    /// Deadline budget.
    pub deadline: Option<Duration>,
    /// Read-only: retries need no key.
    pub safe: bool,
    /// Idempotency level.
    pub idempotency: Idempotency,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// The longest one attempt may take (`retry.per_try`), inside the deadline, which bounds
    /// every attempt together. `None`: an attempt may use whatever the deadline leaves.
    pub per_try: Option<Duration>,
    /// Streaming shape.
    pub streaming: Streaming,
    /// Retry budget, circuit breaker and concurrency limit (`resilience:`).
    pub resilience: crate::resilience::ResiliencePolicy,
    /// The authentication schemes it accepts, any one of them (`auth:`); empty: public.
    pub auth: &'static [crate::auth::Scheme],
}

impl OperationInfo {
    /// May a failed attempt be sent again? Only when the operation is safe or keyed.
    pub const fn retryable(&self) -> bool {
        self.safe || matches!(self.idempotency, Idempotency::Key)
    }

    /// `service.vN.Operation`: the operation's name across the system, the scope its
    /// idempotency keys are claimed in and derived for.
    pub fn scope(&self) -> String {
        format!("{}.v{}.{}", self.service, self.major, self.name)
    }
}

/// Everything the contract says about consuming one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// Consuming service.
    pub service: &'static str,
    /// Broker subject of the event.
    pub subject: &'static str,
    /// Consumer group (durable name).
    pub group: &'static str,
    /// Delivery mode.
    pub delivery: DeliveryMode,
    /// Retries before dead-lettering.
    pub retry: Option<RetryPolicy>,
    /// Failures go to a dead-letter subject.
    pub dead_letter: bool,
    /// How long one delivery may take to handle (`None`: [`crate::messaging::consumer::DEFAULT_BUDGET`]).
    pub budget: Option<std::time::Duration>,
}
