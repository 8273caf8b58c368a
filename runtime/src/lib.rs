//! Pactum's runtime: what code generated from contracts links against.
//!
//! Laid out by concern, with no module reaching into another transport's:
//!
//! - **Shared guardrails**, used by every transport: [`Context`] (deadline, W3C trace
//!   context, idempotency key and request id of the current request, in a task-local scope
//!   so calls made inside a handler pick it up), [`retry`] (backoff with full jitter, bounded
//!   by the deadline), [`resilience`] (retry budgets, circuit breakers and concurrency limits),
//!   [`wire`] (header encodings: `grpc-timeout` budgets, structured-field
//!   idempotency keys, `Retry-After`), [`types`] (`bytes` as base64, `duration` as `"1.5s"`),
//!   [`Validate`] (constraint checks reported as [`Violation`]s with JSON-pointer paths), the
//!   traits generated types implement ([`Event`], [`Webhook`], [`DeclaredError`]), the
//!   contract's facts as constants ([`OperationInfo`], [`ConsumerInfo`]), the `Service`
//!   trait's vocabulary ([`BoxStream`], [`StreamError`], [`NoInput`], [`HandlerError`]) and
//!   a call's failure ([`ClientError`]).
//! - **`rest`** (feature `rest`): the axum server side and the reqwest client.
//! - **`grpc`** (feature `grpc`): tonic/prost codecs, routers and the HTTP/2 client.
//! - **`router`** (`rest` or `grpc`): how generated routers are served, and the settings
//!   they share.
//! - **[`messaging`]**: the embedded bus, NATS JetStream (feature `nats`), the
//!   [`messaging::bus::EventSink`] publishers write to and the idempotent consumers.
//! - **[`store`]**: idempotency key stores, the transactional outbox and its relay, and
//!   reconnecting PostgreSQL connections; memory always, PostgreSQL with `postgres`, SQLite
//!   with `sqlite`.
//! - **`webhook`** (feature `webhooks`): Standard Webhooks signing and verification, the
//!   typed sender, the receiver and durable delivery.
//!
//! The macros are re-exported; `include_contract!` needs the `contract` feature, which
//! compiles the generator into the build (`#[deadline]`, `#[traced]` and
//! `#[derive(Event)]` do not). Generated code compiles with only the features its contract
//! uses: a section for a transport whose feature is off stops with a `compile_error!`
//! naming the feature, and consumers and outbox writers exist for each store backend that
//! is on.
//!
//! Generated code reaches its dependencies only through `::pactum::__private`, so a user's
//! own imports never clash with it and the generated crate needs no direct serde dependency.

pub mod auth;
pub mod call;
mod context;
mod contract;
mod deadline;
mod event;
mod handler;
pub mod metrics;
pub mod pagination;
mod problem;
pub mod resilience;
pub mod retry;
mod serde_impls;
mod service;
pub mod shutdown;
mod trace;
pub mod types;
pub mod union;
mod validate;
pub mod wire;

// Transports and stores, each behind its cargo feature (all on by default but `rabbitmq`
// and `telemetry`).
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod messaging;
#[cfg(feature = "rest")]
pub mod rest;
#[cfg(any(feature = "rest", feature = "grpc"))]
pub mod router;
pub mod store;
#[cfg(feature = "telemetry")]
pub mod telemetry;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "webhooks")]
pub mod webhook;

pub use call::ClientError;
pub use context::{
    derive_key, random_id, Context, HeaderSink, HeaderSource, PeerIdentity, Transport,
};
pub use contract::{
    ConsumerInfo, ErrorStatus, Idempotency, OperationInfo, RetryPolicy, Route, Streaming,
};
pub use deadline::{run_with_deadline, DeadlineExceeded};
pub use event::{DeclaredError, DeliveryMode, Event, EventDeadline, Webhook};
pub use handler::HandlerError;
pub use pactum_macros::*;
pub use problem::{declared_problem, OperationError, Problem, PROBLEM_JSON};
pub use resilience::ResiliencePolicy;
pub use service::{BoxStream, NoInput, StreamError};
pub use trace::ErrorKind;
pub use validate::{FieldPath, Validate, ValidationError, Violation};

#[doc(hidden)]
pub mod __private {
    //! Paths generated code uses. Not a public API: may change in any release.
    pub use crate::trace::{
        enter as enter_span, DropGuard, RecordKind, RecordOther, RecordResult, SpanOutcome,
    };
    pub use crate::validate::check;
    /// serde for generated structs and open enums.
    pub mod serde_impls {
        pub use crate::serde_impls::{
            default, open_enum, required, serialize_enum, Fields, Source, StructVisitor,
        };
    }
    /// Tagged unions' JSON form.
    pub mod union {
        pub use crate::union::{serialize, serialize_unknown, split, variant};
    }
    // The full regex engine: patterns are checked on every request, and its lazy DFA is far
    // faster than regex-lite. The generator checks patterns with regex-lite, whose syntax is
    // a subset, so every accepted pattern compiles here.
    pub use regex::Regex;
    pub use serde;
    pub use serde_json;
    pub use std::sync::LazyLock;
    #[cfg(feature = "grpc")]
    pub use tokio_stream;
    pub use tracing;
    pub use tracing::Instrument;
}
