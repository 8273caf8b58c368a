//! A timeline of hops: every finished Pactum span (REST and gRPC requests and calls, event
//! deliveries, webhooks, `#[pactum::traced]` functions) with when it started, how long it
//! took, its outcome and its trace; printed as a table, or written as a Chrome trace file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A `tracing` layer recording one [`Hop`] per closed span.
pub struct Timeline {
    start: Instant,
    hops: Hops,
}

/// One finished span.
#[derive(Clone, Debug)]
pub struct Hop {
    /// Start, in ms since the timeline began.
    pub at_ms: u128,
    /// Start, in µs since the timeline began (for the trace file).
    pub at_us: u128,
    /// Duration in µs.
    pub took_us: u128,
    /// Its span id, and its parent's (`-` for none).
    pub span_id: String,
    /// The parent span's id.
    pub parent_span_id: String,
    /// `REST` or `gRPC` (a server's request), `client` (a generated client's call), `event`,
    /// `webhook` or `call` (a `#[traced]` function).
    pub kind: &'static str,
    /// Operation, consumer or function name.
    pub name: String,
    /// Duration in ms.
    pub took_ms: u128,
    /// `ok`, `error`, `skipped`, `retry`, `dead-letter` or `-`.
    pub outcome: String,
    /// W3C trace id.
    pub trace_id: String,
}

/// The hops recorded so far, shared with the code that prints them: those not yet printed,
/// and every one since the start (for the trace file).
#[derive(Clone, Default)]
pub struct Hops {
    fresh: Arc<Mutex<Vec<Hop>>>,
    all: Arc<Mutex<Vec<Hop>>>,
}

impl Hops {
    /// Removes and returns every hop recorded since the last `take`, ordered by start.
    pub fn take(&self) -> Vec<Hop> {
        let mut hops = std::mem::take(&mut *self.fresh.lock().expect("hops lock"));
        hops.sort_by_key(|h| h.at_us);
        hops
    }

    /// Every hop recorded since the start, ordered by start.
    pub fn all(&self) -> Vec<Hop> {
        let mut hops = self.all.lock().expect("hops lock").clone();
        hops.sort_by_key(|h| h.at_us);
        hops
    }

    fn push(&self, hop: Hop) {
        self.all.lock().expect("hops lock").push(hop.clone());
        self.fresh.lock().expect("hops lock").push(hop);
    }
}

/// `hops` in the Chrome trace event format (the JSON that Perfetto and `chrome://tracing`
/// open): one complete (`"ph": "X"`) event per hop, in microseconds, grouped by trace; each
/// trace gets as many rows as its concurrent hops need, so every row's events nest.
pub fn chrome_trace(hops: &[Hop]) -> serde_json::Value {
    let mut traces: Vec<&str> = Vec::new();
    // Per row: its trace, and the ends of the events still open on it (a stack).
    let mut rows: Vec<(usize, Vec<u128>)> = Vec::new();
    let mut events = Vec::new();
    for hop in hops {
        let trace = match traces.iter().position(|t| *t == hop.trace_id) {
            Some(i) => i,
            None => {
                traces.push(&hop.trace_id);
                traces.len() - 1
            }
        };
        let (start, end) = (hop.at_us, hop.at_us + hop.took_us.max(1));
        // The first row of this trace where the hop nests inside what is open, or follows it.
        let row = rows.iter_mut().enumerate().find_map(|(i, (t, open))| {
            if *t != trace {
                return None;
            }
            while open.last().is_some_and(|&e| e <= start) {
                open.pop();
            }
            open.last().is_none_or(|&e| end <= e).then_some(i)
        });
        let row = row.unwrap_or_else(|| {
            rows.push((trace, Vec::new()));
            rows.len() - 1
        });
        rows[row].1.push(end);
        events.push(serde_json::json!({
            "name": format!("{} {}", hop.kind, hop.name),
            "cat": hop.kind,
            "ph": "X",
            "ts": start,
            "dur": end - start,
            "pid": trace + 1,
            "tid": row + 1,
            "args": {
                "outcome": hop.outcome,
                "trace_id": hop.trace_id,
                "span_id": hop.span_id,
                "parent_span_id": hop.parent_span_id,
            },
        }));
    }
    for (i, trace) in traces.iter().enumerate() {
        events.push(serde_json::json!({
            "name": "process_name", "ph": "M", "pid": i + 1,
            "args": { "name": format!("trace {}", &trace[..trace.len().min(8)]) },
        }));
    }
    serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}

/// Prints `hops` as a table, with a line saying which trace ids they share.
pub fn print(hops: &[Hop]) {
    let t0 = hops.first().map_or(0, |h| h.at_ms);
    println!(
        "  {:>6}  {:<7} {:<34} {:>7}  {:<11} trace",
        "start", "hop", "name", "took", "outcome"
    );
    for h in hops {
        println!(
            "  {:>4} ms  {:<7} {:<34} {:>4} ms  {:<11} {}…",
            h.at_ms - t0,
            h.kind,
            h.name,
            h.took_ms,
            h.outcome,
            &h.trace_id[..h.trace_id.len().min(8)]
        );
    }
    let mut traces: Vec<&str> = hops.iter().map(|h| h.trace_id.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    match traces.as_slice() {
        [one] => println!("  all {} hops share trace {one}", hops.len()),
        many => println!("  {} hops across {} traces", hops.len(), many.len()),
    }
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
            hops: Hops::default(),
        }
    }

    /// The hops it records, to print them.
    pub fn hops(&self) -> Hops {
        self.hops.clone()
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Timeline {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Only Pactum's spans (requests, deliveries, webhooks, #[traced]) declare `trace_id`;
        // libraries' spans (hyper, h2) are not hops.
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
        let get = |k: &str| data.fields.get(k).cloned().unwrap_or_else(|| "-".into());
        let kind = match span.name() {
            "pactum.request" => "REST",
            "pactum.grpc" => "gRPC",
            "pactum.call" => "client",
            "pactum.consume" => "event",
            "pactum.webhook" => "webhook",
            _ => "call",
        };
        let hop = Hop {
            at_ms: data.opened.duration_since(self.start).as_millis(),
            at_us: data.opened.duration_since(self.start).as_micros(),
            took_us: data.opened.elapsed().as_micros(),
            span_id: get("span_id"),
            parent_span_id: get("parent_span_id"),
            kind,
            name: data
                .fields
                .get("otel.name")
                .cloned()
                .unwrap_or_else(|| span.name().to_string()),
            took_ms: data.opened.elapsed().as_millis(),
            outcome: get("outcome"),
            trace_id: get("trace_id"),
        };
        self.hops.push(hop);
    }
}
