//! Spans for `#[pactum::traced]`: children of the incoming W3C trace, parents of outgoing
//! calls, with the outcome recorded.

use crate::context::Context;
use opentelemetry::trace::TraceContextExt;
use std::fmt::Display;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` the child of `parent`'s trace and returns the context to run the body in,
/// whose span context is the new span's (so outgoing calls carry it as their parent).
///
/// With a `tracing-opentelemetry` layer installed, the OpenTelemetry span's own ids are used,
/// so exported traces and propagated headers agree; without one, ids are made here.
pub fn enter(span: &tracing::Span, parent: Context) -> Context {
    if span.is_disabled() {
        // No subscriber wants the span: still give the next hop a new parent span id.
        let child = parent.child_span_context();
        return parent.with_span_context(child);
    }
    let parent_sc = parent.span_context().clone();
    if parent_sc.is_valid() {
        let cx = opentelemetry::Context::new().with_remote_span_context(parent_sc.clone());
        // Fails only without an OpenTelemetry layer; the ids below still link the trace.
        let _ = span.set_parent(cx);
    }
    let otel = span.context().span().span_context().clone();
    let child = if otel.is_valid() && otel.span_id() != parent_sc.span_id() {
        otel
    } else {
        parent.child_span_context()
    };
    span.record("trace_id", tracing::field::display(child.trace_id()));
    span.record("span_id", tracing::field::display(child.span_id()));
    if parent_sc.is_valid() {
        span.record(
            "parent_span_id",
            tracing::field::display(parent_sc.span_id()),
        );
    }
    parent.with_span_context(child)
}

/// The span of one outgoing call by a generated client (`otel.kind = client`), around all
/// its attempts: its id is what the call's `traceparent` carries, so the server's span is its
/// child. Enter it with [`enter`]; its `outcome` is recorded by [`finish_call`].
#[cfg(any(feature = "rest", feature = "grpc"))]
pub fn client_span(op: &crate::contract::OperationInfo, system: &'static str) -> tracing::Span {
    tracing::info_span!(
        "pactum.call",
        otel.name = op.name,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        rpc.system = system,
        pactum.service = op.service,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error.kind = tracing::field::Empty,
    )
}

/// Records how a call under [`client_span`] ended.
#[cfg(any(feature = "rest", feature = "grpc"))]
pub fn finish_call<T, E>(span: &tracing::Span, result: &Result<T, crate::ClientError<E>>) {
    match result {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", "error");
            span.record("otel.status_code", "ERROR");
            span.record("error.kind", e.kind());
        }
    }
}

/// A short, stable name for an error, recorded as `error.kind` on spans: the declared error's
/// name, `DeadlineExceeded`, `Internal`. Generated error types implement it.
pub trait ErrorKind {
    /// The kind.
    fn error_kind(&self) -> &str;
}

impl ErrorKind for crate::DeadlineExceeded {
    fn error_kind(&self) -> &str {
        "DeadlineExceeded"
    }
}

impl<E: ErrorKind> ErrorKind for crate::HandlerError<E> {
    fn error_kind(&self) -> &str {
        match self {
            crate::HandlerError::Declared(e) => e.error_kind(),
            crate::HandlerError::DeadlineExceeded => "DeadlineExceeded",
            crate::HandlerError::Internal(_) => "Internal",
            crate::HandlerError::NotImplemented(_) => "NotImplemented",
            crate::HandlerError::InvalidInput(_) => "InvalidInput",
        }
    }
}

/// Records `outcome = "error"` with a kind and message.
fn record_error(span: &tracing::Span, kind: &str, message: &dyn Display) {
    span.record("outcome", "error");
    span.record("error.kind", kind);
    span.record("error.message", tracing::field::display(message));
}

/// Wraps a function's output so the most specific recorder applies (autoref specialization):
/// a `Result` whose error has an [`ErrorKind`], any other `Result`, anything else.
pub struct SpanOutcome<'a, T>(pub &'a T);

/// Records a `Result` whose error names its kind.
pub trait RecordKind {
    /// Records the outcome.
    fn record(&self, span: &tracing::Span);
}

impl<T, E: ErrorKind + Display> RecordKind for &SpanOutcome<'_, Result<T, E>> {
    fn record(&self, span: &tracing::Span) {
        match self.0 {
            Ok(_) => {
                span.record("outcome", "ok");
            }
            Err(e) => record_error(span, e.error_kind(), e),
        }
    }
}

/// Records any other `Result`, using the error's type name as its kind.
pub trait RecordResult {
    /// Records the outcome.
    fn record(&self, span: &tracing::Span);
}

impl<T, E: Display> RecordResult for &&SpanOutcome<'_, Result<T, E>> {
    fn record(&self, span: &tracing::Span) {
        match self.0 {
            Ok(_) => {
                span.record("outcome", "ok");
            }
            Err(e) => {
                let name = std::any::type_name::<E>();
                let name = name.split('<').next().unwrap_or(name);
                record_error(span, name.rsplit("::").next().unwrap_or(name), e);
            }
        }
    }
}

/// Records any other output as success.
pub trait RecordOther {
    /// Records `outcome = "ok"`.
    fn record(&self, span: &tracing::Span);
}

impl<T> RecordOther for SpanOutcome<'_, T> {
    fn record(&self, span: &tracing::Span) {
        span.record("outcome", "ok");
    }
}

/// Records an outcome for a span whose future is dropped before it finishes: by a deadline
/// (`error`, kind `DeadlineExceeded`) or by its caller going away (`cancelled`).
pub struct DropGuard {
    span: tracing::Span,
    deadline: Option<tokio::time::Instant>,
    armed: bool,
}

impl DropGuard {
    /// Armed until [`DropGuard::finished`].
    pub fn new(span: &tracing::Span, ctx: &Context) -> Self {
        DropGuard {
            span: span.clone(),
            deadline: ctx.deadline(),
            armed: !span.is_disabled(),
        }
    }

    /// The future completed; its own outcome is recorded instead.
    pub fn finished(mut self) {
        self.armed = false;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self
            .deadline
            .is_some_and(|d| d <= tokio::time::Instant::now())
        {
            record_error(&self.span, "DeadlineExceeded", &crate::DeadlineExceeded);
        } else {
            self.span.record("outcome", "cancelled");
        }
    }
}
