//! `pactum::telemetry::init` against an OTLP receiver in this process: one checkout's spans —
//! the cart's REST server span, its client calls, the pricing and inventory servers' spans —
//! arrive as one trace, each server span the child of its call's client span, every span's
//! parent among them up to the incoming caller; the metrics carry the
//! operations' names, per server and client; and the Prometheus text has them too. Bad
//! `OTEL_*` values are refused before anything is installed. (Its own test binary: telemetry
//! is process-wide.)

use generated_example::generated::cart;
use generated_example::system::{self, Options};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use pactum::router::axum;
use pactum::router::axum::body::Bytes;
use pactum::types::Uuid;
use pactum::Context;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver got.
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    /// (metric name, `pactum.operation` of each data point).
    metrics: Vec<(String, Option<String>)>,
}

async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let traces = {
        let got = got.clone();
        move |body: Bytes| async move {
            let request: ExportTraceServiceRequest = prost::Message::decode(body).unwrap();
            let spans = request
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans);
            got.lock()
                .unwrap_or_else(|e| e.into_inner())
                .spans
                .extend(spans);
            ""
        }
    };
    let metrics = {
        let got = got.clone();
        move |body: Bytes| async move {
            let request: ExportMetricsServiceRequest = prost::Message::decode(body).unwrap();
            let mut got = got.lock().unwrap_or_else(|e| e.into_inner());
            for metric in request
                .resource_metrics
                .into_iter()
                .flat_map(|r| r.scope_metrics)
                .flat_map(|s| s.metrics)
            {
                let attributes: Vec<_> = match &metric.data {
                    Some(Data::Histogram(h)) => {
                        h.data_points.iter().map(|p| p.attributes.clone()).collect()
                    }
                    Some(Data::Sum(s)) => {
                        s.data_points.iter().map(|p| p.attributes.clone()).collect()
                    }
                    Some(Data::Gauge(g)) => {
                        g.data_points.iter().map(|p| p.attributes.clone()).collect()
                    }
                    _ => Vec::new(),
                };
                for attrs in attributes {
                    let op = attrs
                        .iter()
                        .find(|kv| kv.key == "pactum.operation")
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(s) => Some(s.clone()),
                            _ => None,
                        });
                    got.metrics.push((metric.name.clone(), op));
                }
            }
            ""
        }
    };
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .route("/v1/metrics", axum::routing::post(metrics));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(pactum::router::serve(listener, app));
    (url, got)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_arrives_as_one_trace_and_its_metrics_name_the_operations() {
    // Refused before anything is installed: each names the variable and what it accepts.
    for (name, value, says) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "localhost:4318",
            "http:// or https://",
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon", "whole number"),
        ("OTEL_TRACES_SAMPLER", "sometimes", "parentbased_always_on"),
        ("OTEL_METRICS_EXPORTER", "statsd", "prometheus"),
    ] {
        std::env::set_var(name, value);
        let e = pactum::telemetry::init("example").unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(says), "{name}={value}: {e}");
        std::env::remove_var(name);
    }

    // A collector that does not answer is no reason not to start: a warning, and serving on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}"));
    let started = Instant::now();
    let nobody = pactum::telemetry::init_with(
        "example",
        pactum::telemetry::Options {
            install_subscriber: false,
            ..Default::default()
        },
    )
    .expect("an unreachable collector does not stop the service");
    assert!(started.elapsed() < Duration::from_secs(3));
    nobody.shutdown();

    let (collector, got) = receiver().await;
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &collector);
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "200");
    let telemetry = pactum::telemetry::init_with(
        "example",
        pactum::telemetry::Options {
            prometheus: true,
            ..Default::default()
        },
    )
    .unwrap();

    let sys = system::start(Options::default()).await.unwrap();
    let carts = cart::v1::rest::Client::new(sys.cart_url.clone());
    let (trace_id, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let incoming = Context::from_headers(&HashMap::from([(
        "traceparent".to_string(),
        format!("00-{trace_id}-{caller}-01"),
    )]));
    let order = incoming
        .scope(carts.checkout_cart(&cart::v1::CheckoutCartRequest {
            cart_id: cart::v1::CartId(Uuid::from_u128(system::DEMO_CART)),
        }))
        .await
        .unwrap();
    assert_eq!(order.total.amount.to_string(), "28.60");

    // Spans end a moment after the replies; then everything queued is sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    let wanted = ["CheckoutCart", "QuoteCart", "CheckStock"];
    loop {
        telemetry.flush();
        let names: BTreeSet<String> = got
            .lock()
            .unwrap()
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let has_metrics = got
            .lock()
            .unwrap()
            .metrics
            .iter()
            .any(|(n, _)| n == "pactum.server.duration");
        if wanted.iter().all(|w| names.contains(*w)) && has_metrics {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans {names:?}, metrics {has_metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let received = got.lock().unwrap();
    let spans: Vec<&Span> = received
        .spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let by_id: HashMap<String, &Span> = spans.iter().map(|s| (hex(&s.span_id), *s)).collect();
    let listing: Vec<(String, i32, String, String)> = spans
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.kind,
                hex(&s.span_id),
                hex(&s.parent_span_id),
            )
        })
        .collect();
    const SERVER: i32 = SpanKind::Server as i32;
    const CLIENT: i32 = SpanKind::Client as i32;
    // This test's own call to the cart (a generated client too) is the child of the incoming
    // caller ...
    let root = spans
        .iter()
        .find(|s| s.name == "CheckoutCart" && s.kind == CLIENT && hex(&s.parent_span_id) == caller)
        .unwrap_or_else(|| panic!("no CheckoutCart call under the caller: {listing:#?}"));
    // ... and every other span of the trace descends from it through spans that arrived.
    for span in &spans {
        let mut at = *span;
        for _ in 0..32 {
            if std::ptr::eq(at, *root) {
                break;
            }
            at = by_id
                .get(&hex(&at.parent_span_id))
                .unwrap_or_else(|| panic!("{}'s parent did not arrive: {listing:#?}", span.name));
        }
        assert!(
            std::ptr::eq(at, *root),
            "{} is not under CheckoutCart: {listing:#?}",
            span.name
        );
    }
    // Each server span is the child of the client span of that very call (REST for
    // CheckoutCart and QuoteCart, gRPC for each of the two CheckStock calls).
    for (downstream, calls) in [("CheckoutCart", 1), ("QuoteCart", 1), ("CheckStock", 2)] {
        let servers: Vec<_> = spans
            .iter()
            .filter(|s| s.name == downstream && s.kind == SERVER)
            .collect();
        assert_eq!(servers.len(), calls, "{downstream}: {listing:#?}");
        let mut clients = BTreeSet::new();
        for server in servers {
            let parent = by_id[&hex(&server.parent_span_id)];
            assert!(
                parent.name == downstream && parent.kind == CLIENT,
                "{downstream}'s server span hangs off its client call: {listing:#?}"
            );
            clients.insert(hex(&parent.span_id));
        }
        assert_eq!(
            clients.len(),
            calls,
            "one client span per call: {listing:#?}"
        );
    }

    let ops = |metric: &str| -> BTreeSet<String> {
        received
            .metrics
            .iter()
            .filter(|(n, _)| n == metric)
            .filter_map(|(_, op)| op.clone())
            .collect()
    };
    let served = ops("pactum.server.duration");
    for op in ["CheckoutCart", "QuoteCart", "CheckStock"] {
        assert!(served.contains(op), "server metrics {served:?}");
    }
    let called = ops("pactum.client.duration");
    for op in ["CheckoutCart", "QuoteCart", "CheckStock"] {
        assert!(called.contains(op), "client metrics {called:?}");
    }
    drop(received);

    let text = telemetry.prometheus_text().unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("pactum_server_duration_seconds_count")
                && l.contains("pactum_operation=\"CheckoutCart\"")
                && l.contains("pactum_transport=\"rest\"")),
        "{text}"
    );
    telemetry.shutdown();
}
