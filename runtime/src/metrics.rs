//! The metrics generated code records, through the OpenTelemetry metrics API: nothing is
//! exported (and recording costs an atomic load, a thread-local borrow and the no-op
//! provider's call) until a meter provider is installed —
//! `pactum::telemetry::init` (feature `telemetry`) installs one that exports by OTLP and, optionally, serves
//! Prometheus text.
//!
//! | instrument | kind | attributes |
//! |---|---|---|
//! | `pactum.server.duration` (s) | histogram: count is requests (a stream's, to the start of its replies; a request the caller gave up on is `499` or `CANCELLED`) | `pactum.service`, `pactum.operation`, `pactum.transport` (`rest`, `grpc`), `pactum.status` (`200`, `NOT_FOUND`), `pactum.outcome` (`ok`, `error`) |
//! | `pactum.client.duration` (s) | histogram, per call with its retries | `pactum.service`, `pactum.operation`, `pactum.outcome`; on failure `pactum.error` and, when the server answered, `pactum.status` |
//! | `pactum.client.retries` | counter: retries sent | `pactum.service`, `pactum.operation` |
//! | `pactum.client.breaker` | gauge: 0 closed, 1 half-open, 2 open | `pactum.service` |
//! | `pactum.consumer.deliveries` | counter | `messaging.destination.name`, `pactum.group`, `pactum.outcome` (`processed`, `duplicate`, `retrying`, `dead_lettered`, `unavailable`) |
//! | `pactum.consumer.redeliveries` | counter: deliveries after the first | `messaging.destination.name`, `pactum.group` |
//! | `pactum.consumer.dead_letters` | counter | `messaging.destination.name`, `pactum.group` |
//! | `pactum.consumer.lag` | gauge: messages behind, as the broker said at the last delivery | `messaging.destination.name`, `pactum.group` |
//! | `pactum.outbox.backlog` | gauge: rows waiting to be published (counted up to 100,000) | `pactum.outbox` |
//! | `pactum.outbox.published` | counter | `pactum.outbox` |
//!
//! The recorders are public so that a transport or store written by hand records the same
//! metrics as the generated code does.

use crate::contract::OperationInfo;
use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::KeyValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The instruments, made from the global meter provider of one generation.
struct Instruments {
    server_duration: Histogram<f64>,
    client_duration: Histogram<f64>,
    client_retries: Counter<u64>,
    breaker: Gauge<u64>,
    deliveries: Counter<u64>,
    redeliveries: Counter<u64>,
    dead_letters: Counter<u64>,
    lag: Gauge<u64>,
    backlog: Gauge<u64>,
    published: Counter<u64>,
}

/// Bumped when a meter provider is installed: instruments made from the one before (the
/// no-op provider, say) would record nowhere, so they are made again.
static GENERATION: AtomicU64 = AtomicU64::new(1);
static CURRENT: RwLock<Option<(u64, Arc<Instruments>)>> = RwLock::new(None);

/// Tells the recorders a new global meter provider is in place (`telemetry::init` calls it;
/// call it after installing a provider of your own).
pub fn provider_changed() {
    GENERATION.fetch_add(1, Ordering::Release);
}

/// Seconds, from a millisecond to ten seconds: what request durations need (the SDK's
/// default buckets are milliseconds' numbers).
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

thread_local! {
    /// This thread's copy of the current instruments: a record takes an atomic load and a
    /// thread-local borrow, not a lock.
    static LOCAL: std::cell::RefCell<Option<(u64, Arc<Instruments>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `record` with the instruments of the current meter provider.
fn with(record: impl FnOnce(&Instruments)) {
    let generation = GENERATION.load(Ordering::Acquire);
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        match &*local {
            Some((g, i)) if *g == generation => record(i),
            _ => {
                let made = shared(generation);
                record(&made);
                *local = Some((generation, made));
            }
        }
    });
}

/// The instruments of `generation`, made once for all threads.
fn shared(generation: u64) -> Arc<Instruments> {
    if let Some((g, i)) = &*CURRENT.read().unwrap_or_else(|e| e.into_inner()) {
        if *g == generation {
            return i.clone();
        }
    }
    let meter = opentelemetry::global::meter("pactum");
    let made = Arc::new(Instruments {
        server_duration: meter
            .f64_histogram("pactum.server.duration")
            .with_unit("s")
            .with_description("Requests served, by operation, transport and status")
            .with_boundaries(SECONDS.to_vec())
            .build(),
        client_duration: meter
            .f64_histogram("pactum.client.duration")
            .with_unit("s")
            .with_description("Calls made by generated clients, retries included")
            .with_boundaries(SECONDS.to_vec())
            .build(),
        client_retries: meter
            .u64_counter("pactum.client.retries")
            .with_description("Retries generated clients sent")
            .build(),
        breaker: meter
            .u64_gauge("pactum.client.breaker")
            .with_description("Circuit breaker per target: 0 closed, 1 half-open, 2 open")
            .build(),
        deliveries: meter
            .u64_counter("pactum.consumer.deliveries")
            .with_description("Deliveries settled by idempotent consumers, by outcome")
            .build(),
        redeliveries: meter
            .u64_counter("pactum.consumer.redeliveries")
            .with_description("Deliveries after the first of the same message")
            .build(),
        dead_letters: meter
            .u64_counter("pactum.consumer.dead_letters")
            .with_description("Messages sent to the dead letter")
            .build(),
        lag: meter
            .u64_gauge("pactum.consumer.lag")
            .with_description("Messages waiting behind the last delivery, as the broker said")
            .build(),
        backlog: meter
            .u64_gauge("pactum.outbox.backlog")
            .with_description("Outbox rows waiting to be published")
            .build(),
        published: meter
            .u64_counter("pactum.outbox.published")
            .with_description("Outbox rows published")
            .build(),
    });
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = Some((generation, made.clone()));
    made
}

/// How a transport names the status of a finished request.
#[derive(Clone, Copy, Debug)]
pub enum Status {
    /// An HTTP status code.
    Http(http::StatusCode),
    /// A gRPC status code (`0` is OK).
    Grpc(i32),
}

impl Status {
    fn transport(self) -> &'static str {
        match self {
            Status::Http(_) => "rest",
            Status::Grpc(_) => "grpc",
        }
    }

    /// The HTTP code as a number (as OpenTelemetry's `http.response.status_code` is), the
    /// gRPC code by its name.
    fn value(self) -> opentelemetry::Value {
        match self {
            Status::Http(s) => i64::from(s.as_u16()).into(),
            Status::Grpc(code) => grpc_code_name(code).into(),
        }
    }

    fn is_error(self) -> bool {
        match self {
            Status::Http(s) => s.as_u16() >= 400,
            Status::Grpc(code) => code != 0,
        }
    }
}

/// The canonical name of a gRPC status code.
fn grpc_code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("UNKNOWN")
}

fn outcome(error: bool) -> &'static str {
    if error {
        "error"
    } else {
        "ok"
    }
}

/// A request a generated server answered.
pub fn served(op: &OperationInfo, status: Status, took: Duration) {
    with(|i| {
        i.server_duration.record(
            took.as_secs_f64(),
            &[
                KeyValue::new("pactum.service", op.service),
                KeyValue::new("pactum.operation", op.name),
                KeyValue::new("pactum.transport", status.transport()),
                KeyValue::new("pactum.status", status.value()),
                KeyValue::new("pactum.outcome", outcome(status.is_error())),
            ],
        )
    });
}

/// A call a generated client finished, after its retries: `failure` is `None` on success.
/// A failure is counted by what it was (`pactum.error`: `Declared`, `Rejected`, `Transport`,
/// `DeadlineExceeded`, `Rpc`, `Unexpected`, `CircuitOpen`) and, when the server answered, by
/// its status (`pactum.status`: the HTTP code, or the gRPC code's name).
pub fn called<E>(op: &OperationInfo, failure: Option<&crate::ClientError<E>>, took: Duration) {
    with(|i| {
        let base = [
            KeyValue::new("pactum.service", op.service),
            KeyValue::new("pactum.operation", op.name),
            KeyValue::new("pactum.outcome", outcome(failure.is_some())),
        ];
        let Some(error) = failure else {
            // The common case, without an allocation.
            return i.client_duration.record(took.as_secs_f64(), &base);
        };
        let mut attributes = base.to_vec();
        attributes.push(KeyValue::new("pactum.error", error.kind()));
        let status: Option<opentelemetry::Value> = match error {
            crate::ClientError::Unexpected { status, .. } => Some(i64::from(*status).into()),
            crate::ClientError::Rejected(p) => Some(i64::from(p.status).into()),
            crate::ClientError::Rpc { code, .. } => Some(grpc_code_name(*code).into()),
            _ => None,
        };
        if let Some(status) = status {
            attributes.push(KeyValue::new("pactum.status", status));
        }
        i.client_duration.record(took.as_secs_f64(), &attributes)
    });
}

/// A retry a generated client sent.
pub fn retried(op: &OperationInfo) {
    with(|i| {
        i.client_retries.add(
            1,
            &[
                KeyValue::new("pactum.service", op.service),
                KeyValue::new("pactum.operation", op.name),
            ],
        )
    });
}

/// The breaker state of the client's target for `op`'s service.
pub fn breaker(op: &OperationInfo, state: u64) {
    with(|i| {
        i.breaker
            .record(state, &[KeyValue::new("pactum.service", op.service)])
    });
}

/// A delivery an idempotent consumer settled.
pub fn settled(
    subject: &str,
    group: &str,
    outcome: &'static str,
    delivered: u32,
    pending: Option<u64>,
) {
    with(|i| {
        let at = [
            KeyValue::new("messaging.destination.name", subject.to_string()),
            KeyValue::new("pactum.group", group.to_string()),
        ];
        let mut with_outcome = at.to_vec();
        with_outcome.push(KeyValue::new("pactum.outcome", outcome));
        i.deliveries.add(1, &with_outcome);
        if delivered > 1 {
            i.redeliveries.add(1, &at);
        }
        if outcome == "dead_lettered" {
            i.dead_letters.add(1, &at);
        }
        if let Some(pending) = pending {
            i.lag.record(pending, &at);
        }
    });
}

/// What an outbox relay found waiting, and what it published.
pub fn outbox(table: &str, backlog: Option<u64>, published: u64) {
    with(|i| {
        let at = [KeyValue::new("pactum.outbox", table.to_string())];
        if let Some(backlog) = backlog {
            i.backlog.record(backlog, &at);
        }
        if published > 0 {
            i.published.add(published, &at);
        }
    });
}
