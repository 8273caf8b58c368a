//! Prints each finished `#[pactum::traced]` span as one line of a timeline: when it started,
//! how long it took, its outcome, and the trace it belongs to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A `tracing` layer writing one line per closed span.
pub struct Timeline {
    start: Instant,
    lines: Mutex<Vec<String>>,
}

struct SpanData {
    opened: Instant,
    fields: HashMap<&'static str, String>,
}

struct Collect<'a>(&'a mut HashMap<&'static str, String>);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_string());
    }
}

impl Timeline {
    /// A timeline starting now.
    pub fn new() -> Self {
        Timeline {
            start: Instant::now(),
            lines: Mutex::new(Vec::new()),
        }
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Timeline {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Only Pactum's spans (handlers, #[traced]) declare `trace_id`; libraries' spans
        // (hyper, h2) are not hops.
        if attrs.metadata().fields().field("trace_id").is_none() {
            return;
        }
        let mut fields = HashMap::new();
        attrs.record(&mut Collect(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanData {
                opened: Instant::now(),
                fields,
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
                values.record(&mut Collect(&mut data.fields));
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(data) = ext.get::<SpanData>() else {
            return;
        };
        let get = |k: &str| data.fields.get(k).map(String::as_str).unwrap_or("-");
        let line = format!(
            "  +{:>4} ms  {:<12} {:>5} ms  {:<6} trace {}  span {}  parent {}",
            data.opened.duration_since(self.start).as_millis(),
            data.fields
                .get("otel.name")
                .map_or(span.name(), String::as_str),
            data.opened.elapsed().as_millis(),
            get("outcome"),
            get("trace_id"),
            get("span_id"),
            get("parent_span_id"),
        );
        println!("{line}");
        self.lines.lock().expect("timeline lock").push(line);
    }
}
