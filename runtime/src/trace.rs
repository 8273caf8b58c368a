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

/// Wraps a function's output so the right recorder is picked: `Result` records ok/error with
/// the error's kind and message; anything else records ok.
pub struct Outcome<'a, T>(pub &'a T);

/// Records a `Result`'s outcome.
pub trait RecordResult {
    /// Records `outcome`, and for errors `error.kind` and `error.message`.
    fn record(&self, span: &tracing::Span);
}

impl<T, E: Display> RecordResult for Outcome<'_, Result<T, E>> {
    fn record(&self, span: &tracing::Span) {
        match self.0 {
            Ok(_) => {
                span.record("outcome", "ok");
            }
            Err(e) => {
                let kind = std::any::type_name::<E>();
                let kind = kind.rsplit("::").next().unwrap_or(kind);
                span.record("outcome", "error");
                span.record("error.kind", kind);
                span.record("error.message", tracing::field::display(e));
            }
        }
    }
}

/// Records any other output as success.
pub trait RecordOther {
    /// Records `outcome = "ok"`.
    fn record(&self, span: &tracing::Span);
}

impl<T> RecordOther for &Outcome<'_, T> {
    fn record(&self, span: &tracing::Span) {
        span.record("outcome", "ok");
    }
}
