//! The macros at run time: deadlines, spans, derived events, contracts included in place.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use pactum::{Context, DeadlineExceeded, Event, Transport};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pactum::include_contract!("tests/contracts/audit.yaml");

#[derive(Debug, PartialEq)]
enum AppError {
    Timeout,
    NotFound,
}

impl From<DeadlineExceeded> for AppError {
    fn from(_: DeadlineExceeded) -> Self {
        AppError::Timeout
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[pactum::deadline("100ms")]
async fn slow(work: Duration) -> Result<Duration, AppError> {
    let budget = Context::current().remaining();
    tokio::time::sleep(work).await;
    Ok(budget.unwrap_or_default())
}

#[pactum::deadline("1s")]
async fn early_return(flag: bool) -> Result<u32, AppError> {
    if flag {
        return Err(AppError::NotFound);
    }
    let n: u32 = "7".parse().map_err(|_| AppError::NotFound)?;
    Ok(n)
}

struct Service {
    calls: Mutex<u32>,
}

impl Service {
    #[pactum::traced]
    #[pactum::deadline("50ms")]
    async fn handle(&self, id: u32) -> Result<String, AppError> {
        *self.calls.lock().unwrap() += 1;
        if id == 0 {
            return Err(AppError::NotFound);
        }
        let mut headers = HashMap::new();
        Context::current().inject_headers(&mut headers, Transport::Http);
        Ok(headers["traceparent"].clone())
    }
}

#[pactum::traced]
#[pactum::deadline("10ms")]
async fn too_slow() -> Result<(), pactum::HandlerError<String>> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

#[pactum::traced]
async fn abandoned() -> Result<(), AppError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

#[pactum::traced(name = "plain")]
async fn no_result() -> u8 {
    7
}

#[tokio::test(start_paused = true)]
async fn deadline_returns_the_typed_error_and_shrinks_the_budget() {
    assert_eq!(
        slow(Duration::from_millis(10)).await,
        Ok(Duration::from_millis(100))
    );
    assert_eq!(slow(Duration::from_secs(5)).await, Err(AppError::Timeout));
    // The caller's tighter deadline wins over the attribute's budget.
    let caller = Context::new().with_timeout(Duration::from_millis(30));
    assert_eq!(
        caller.clone().scope(slow(Duration::from_millis(10))).await,
        Ok(Duration::from_millis(30))
    );
    assert_eq!(
        caller.scope(slow(Duration::from_millis(40))).await,
        Err(AppError::Timeout)
    );
    assert_eq!(early_return(true).await, Err(AppError::NotFound));
    assert_eq!(early_return(false).await, Ok(7));
}

/// Captures the fields recorded on spans.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<HashMap<String, String>>>>);

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>
    tracing_subscriber::Layer<S> for Recorder
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        fields
            .0
            .insert("name".into(), attrs.metadata().name().into());
        attrs.record(&mut fields);
        ctx.span(id).unwrap().extensions_mut().insert(fields);
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).unwrap();
        let mut ext = span.extensions_mut();
        values.record(ext.get_mut::<Fields>().unwrap());
    }
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let fields = span.extensions().get::<Fields>().unwrap().0.clone();
        self.0.lock().unwrap().push(fields);
    }
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().into(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn incoming() -> Context {
    Context::from_headers(&HashMap::from([(
        "traceparent".to_string(),
        INCOMING.to_string(),
    )]))
}

#[tokio::test]
async fn traced_spans_continue_the_trace_and_record_the_outcome() {
    use tracing_subscriber::layer::SubscriberExt;
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = Service {
        calls: Mutex::new(0),
    };

    let outgoing = incoming().scope(svc.handle(1)).await.unwrap();
    let parts: Vec<&str> = outgoing.split('-').collect();
    assert_eq!(
        parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "same trace id downstream"
    );
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the traced span is the new parent"
    );

    assert_eq!(
        incoming().scope(svc.handle(0)).await,
        Err(AppError::NotFound)
    );
    assert_eq!(no_result().await, 7);

    assert_eq!(
        too_slow().await,
        Err(pactum::HandlerError::DeadlineExceeded)
    );
    let dropped = tokio::time::timeout(Duration::from_millis(5), abandoned()).await;
    assert!(dropped.is_err());

    let spans = recorder.0.lock().unwrap().clone();
    let by_name = |n: &str| spans.iter().find(|s| s["name"] == n).unwrap().clone();
    let slow = by_name("too_slow");
    assert_eq!(
        (slow["outcome"].as_str(), slow["error.kind"].as_str()),
        ("error", "DeadlineExceeded")
    );
    assert_eq!(by_name("abandoned")["outcome"], "cancelled");
    let ok = &spans[0];
    assert_eq!(ok["name"], "handle");
    assert_eq!(ok["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ok["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(ok["span_id"], parts[2]);
    assert_eq!(ok["outcome"], "ok");
    let err = &spans[1];
    assert_eq!(
        (err["outcome"].as_str(), err["error.kind"].as_str()),
        ("error", "AppError")
    );
    assert_eq!(err["error.message"], "NotFound");
    assert_eq!(spans[2]["name"], "plain");
    assert_eq!(spans[2]["outcome"], "ok");
    assert!(
        !spans[2].contains_key("parent_span_id"),
        "no incoming trace: a new root"
    );
    assert_eq!(*svc.calls.lock().unwrap(), 2);
}

#[tokio::test]
async fn with_an_opentelemetry_layer_exported_spans_and_headers_agree() {
    use tracing_subscriber::layer::SubscriberExt;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = Service {
        calls: Mutex::new(0),
    };

    let outgoing = incoming().scope(svc.handle(1)).await.unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let span = spans.iter().find(|s| s.name == "handle").expect("exported");
    assert_eq!(
        span.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(
        outgoing,
        format!(
            "00-{}-{}-01",
            span.span_context.trace_id(),
            span.span_context.span_id()
        ),
        "the next hop's parent is the exported span"
    );
    let _ = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .is_valid();
}

#[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
#[event(version = 2, key = "order_id")]
struct OrderPlaced {
    order_id: u64,
    total_cents: i64,
}

#[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
#[event(version = 1, source = "mail", delivery = "queue")]
struct EmailSent {
    to: String,
}

#[test]
fn derived_events_implement_the_runtime_trait() {
    assert_eq!(OrderPlaced::NAME, "OrderPlaced");
    assert_eq!(OrderPlaced::SOURCE, "pactum");
    assert_eq!(OrderPlaced::TYPE, "pactum.OrderPlaced.v2");
    assert_eq!(OrderPlaced::SUBJECT, "pactum.order_placed.v2");
    assert_eq!(OrderPlaced::DELIVERY, pactum::DeliveryMode::Stream);
    let e = OrderPlaced {
        order_id: 42,
        total_cents: 1,
    };
    assert_eq!(e.ordering_key().as_deref(), Some("42"));
    assert_eq!(e.total_cents, 1);
    assert_eq!(EmailSent::SUBJECT, "mail.email_sent.v1");
    assert_eq!(EmailSent::DELIVERY, pactum::DeliveryMode::Queue);
    assert_eq!(EmailSent { to: "a".into() }.ordering_key(), None);
}

#[test]
fn included_contracts_generate_modules_in_place() {
    let e = audit::v1::AccessGranted {
        actor: audit::v1::Actor("root".into()),
        resource: "db".into(),
    };
    assert_eq!(audit::v1::AccessGranted::SUBJECT, "audit.access_granted.v1");
    assert_eq!(e.ordering_key().as_deref(), Some("root"));
    use pactum::Validate;
    assert!(audit::v1::Actor("x".repeat(65)).validate().is_err());
}
