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

/// A const builder, so a generated `operations` constant states only what its contract says:
/// `OperationInfo::new("orders", 1, "GetOrder").route("GET", "/v1/orders/{id}").safe()`.
impl OperationInfo {
    /// Operation `name` of `service` v`major` as if its contract said nothing else: no
    /// route, not over gRPC, no deadline, not safe, no idempotency key, no retries, unary,
    /// [`ResiliencePolicy::DEFAULT`](crate::ResiliencePolicy::DEFAULT), public.
    pub const fn new(service: &'static str, major: u32, name: &'static str) -> Self {
        OperationInfo {
            service,
            major,
            name,
            route: None,
            grpc: false,
            deadline: None,
            safe: false,
            idempotency: Idempotency::None,
            retry: None,
            per_try: None,
            streaming: Streaming::None,
            resilience: crate::resilience::ResiliencePolicy::DEFAULT,
            auth: &[],
        }
    }

    /// Served over REST at `method path` (upper-case method, the axum path with its version
    /// prefix).
    pub const fn route(mut self, method: &'static str, path: &'static str) -> Self {
        self.route = Some(Route { method, path });
        self
    }

    /// Served over gRPC.
    pub const fn grpc(mut self) -> Self {
        self.grpc = true;
        self
    }

    /// The contract's deadline budget.
    pub const fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Read-only: retries need no key.
    pub const fn safe(mut self) -> Self {
        self.safe = true;
        self
    }

    /// Takes an idempotency key (`idempotency: key`).
    pub const fn keyed(mut self) -> Self {
        self.idempotency = Idempotency::Key;
        self
    }

    /// Retried up to `attempts` attempts in all, backing off from `initial` up to `max` with
    /// full jitter ([`Self::no_jitter`] turns the jitter off).
    pub const fn retry(mut self, attempts: u32, initial: Duration, max: Duration) -> Self {
        self.retry = Some(RetryPolicy {
            attempts,
            initial_backoff: initial,
            max_backoff: max,
            full_jitter: true,
        });
        self
    }

    /// Backs off by the exact backoff rather than a uniform draw below it (`jitter: none`).
    pub const fn no_jitter(mut self) -> Self {
        if let Some(retry) = &mut self.retry {
            retry.full_jitter = false;
        }
        self
    }

    /// The longest one attempt may take (`retry.per_try`).
    pub const fn per_try(mut self, per_try: Duration) -> Self {
        self.per_try = Some(per_try);
        self
    }

    /// Streams as `streaming` says.
    pub const fn streaming(mut self, streaming: Streaming) -> Self {
        self.streaming = streaming;
        self
    }

    /// The contract's `resilience:`, when it changes the default.
    pub const fn resilience(mut self, resilience: crate::resilience::ResiliencePolicy) -> Self {
        self.resilience = resilience;
        self
    }

    /// The authentication schemes it accepts, any one of them (`auth:`).
    pub const fn auth(mut self, auth: &'static [crate::auth::Scheme]) -> Self {
        self.auth = auth;
        self
    }

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
