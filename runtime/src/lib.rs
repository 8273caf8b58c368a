//! Pactum's runtime: what code generated from contracts links against.
//!
//! - [`Event`], [`Webhook`] and [`DeclaredError`]: the traits generated types implement.
//! - [`Validate`]: constraint checks generated from the contract, reported as [`Violation`]s
//!   with JSON-pointer paths.
//! - [`Context`]: deadline, W3C trace context, idempotency key and request id of the current
//!   request, carried in a task-local scope so calls made inside a handler pick it up.
//! - [`wire`]: header encodings (`grpc-timeout` budgets, structured-field idempotency keys,
//!   `Retry-After`); [`retry`]: backoff with full jitter, bounded by the deadline.
//! - [`types`]: the Rust types behind contract primitives that serde has no fitting encoding for
//!   (`bytes` as base64, `duration` as `"1.5s"`).
//! - [`bus`]: the embedded message bus (streams, dedup on publish, consumer groups, acks and
//!   redelivery) and [`bus::publish_event`] with CloudEvents headers.
//! - [`consumer`]: the idempotent consumer runner, recording processed events in the
//!   handler's PostgreSQL transaction, with retries and a dead-letter subject.
//! - [`outbox`]: the transactional outbox (events written in the handler's transaction) and
//!   the relay that publishes them; [`postgres`]: reconnecting PostgreSQL connections.
//! - [`webhook`]: Standard Webhooks signing and verification (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`), with a replay window.
//! - [`OperationInfo`] / [`ConsumerInfo`]: the contract's guardrails (deadline, safety,
//!   idempotency, retry, delivery) as constants, for transports to act on.
//!
//! Generated code reaches its dependencies only through `::pactum::__private`, so a user's
//! own imports never clash with it and the generated crate needs no direct serde dependency.

pub mod bus;
pub mod client;
pub mod consumer;
mod context;
mod contract;
mod deadline;
mod event;
pub mod grpc;
mod handler;
pub mod idempotency;
pub mod nats;
pub mod outbox;
pub mod postgres;
mod problem;
pub mod retry;
pub mod server;
mod trace;
pub mod types;
mod validate;
pub mod webhook;
pub mod wire;

pub use context::{derive_key, random_id, Context, Headers, HeadersMut, Transport};
pub use contract::{
    ConsumerInfo, ErrorStatus, Idempotency, OperationInfo, RetryPolicy, Route, Streaming,
};
pub use deadline::{run_with_deadline, DeadlineExceeded};
pub use event::{DeclaredError, Delivery, Event, EventDeadline, Webhook};
pub use handler::HandlerError;
pub use pactum_macros::*;
pub use problem::{declared_problem, OperationError, Problem, PROBLEM_JSON};
pub use trace::ErrorKind;
pub use validate::{FieldPath, Validate, ValidationError, Violation};

#[doc(hidden)]
pub mod __private {
    //! Paths generated code uses. Not a public API: may change in any release.
    pub use crate::trace::{
        enter as enter_span, DropGuard, Outcome, RecordKind, RecordOther, RecordResult,
    };
    pub use crate::validate::check;
    // The full regex engine: patterns are checked on every request, and its lazy DFA is far
    // faster than regex-lite. The generator checks patterns with regex-lite, whose syntax is
    // a subset, so every accepted pattern compiles here.
    pub use regex::Regex;
    pub use serde;
    pub use serde_json;
    pub use std::sync::LazyLock;
    pub use tokio_stream;
    pub use tracing;
    pub use tracing::Instrument;
}
