//! The generated client's metrics, read back through an in-memory exporter: each call's
//! duration and outcome per operation, the retries it sent, and the breaker's state per target
//! service as it opens and closes; and a generated server's, for a streaming call that fails
//! before it streams. (Its own test binary: the meter provider is process-wide.)

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
use pactum_test_output::generated::resilience::v1 as r;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::Idle;

mod support;

/// A dependency answering 503, or `{"n":7}` once healthy.
async fn dependency(healthy: Arc<AtomicBool>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let healthy = healthy.clone();
        async move {
            if healthy.load(SeqCst) {
                ([(header::CONTENT_TYPE, "application/json")], r#"{"n":7}"#).into_response()
            } else {
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        }
    });
    tokio::spawn(pactum::router::serve(listener, app));
    url
}

/// In the latest export: the value of the gauge `name` whose attributes include `with`; for a
/// counter the sum, and for a histogram the count, over every data point so matched.
fn value(exporter: &InMemoryMetricExporter, name: &str, with: &[KeyValue]) -> Option<u64> {
    let mut found = None;
    // Each flush exports every metric's running total: the last export has the latest.
    if let Some(resource) = exporter.get_finished_metrics().unwrap().into_iter().last() {
        for scope in resource.scope_metrics() {
            for metric in scope.metrics().filter(|m| m.name() == name) {
                let fits = |attrs: Vec<&KeyValue>| with.iter().all(|kv| attrs.contains(&kv));
                match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        for p in s.data_points().filter(|p| fits(p.attributes().collect())) {
                            found = Some(found.unwrap_or(0) + p.value());
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                        for p in g.data_points().filter(|p| fits(p.attributes().collect())) {
                            found = Some(p.value());
                        }
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        for p in h.data_points().filter(|p| fits(p.attributes().collect())) {
                            found = Some(found.unwrap_or(0) + p.count());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_retries_and_the_breaker_are_measured() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    pactum::metrics::provider_changed();
    let healthy = Arc::new(AtomicBool::new(false));
    let client = r::rest::Client::new(dependency(healthy.clone()).await);
    let read = |name: &str, with: &[KeyValue]| {
        provider.force_flush().unwrap();
        value(&exporter, name, with)
    };
    let op = |name: &'static str| KeyValue::new("pactum.operation", name);
    let service = KeyValue::new("pactum.service", "resilience");

    // `Flaky` is retried up to three attempts: two calls, failing, send four retries.
    for n in 0..2 {
        assert!(client.flaky(&r::FlakyRequest { n }).await.is_err());
    }
    assert_eq!(read("pactum.client.retries", &[op("Flaky")]), Some(4));
    let failed = KeyValue::new("pactum.outcome", "error");
    // Failures by what they were and the status the server answered.
    let unexpected = KeyValue::new("pactum.error", "Unexpected");
    let status = KeyValue::new("pactum.status", 503_i64);
    assert_eq!(
        read("pactum.client.duration", &[op("Flaky"), unexpected, status]),
        Some(2)
    );
    assert_eq!(
        read("pactum.client.duration", &[op("Flaky"), failed.clone()]),
        Some(2)
    );

    // `Fragile`'s breaker opens after three failures in a row (2), half-opens after its
    // cooldown and closes on a success (0).
    for _ in 0..3 {
        assert!(client.fragile().await.is_err());
    }
    assert_eq!(
        read("pactum.client.breaker", std::slice::from_ref(&service)),
        Some(2)
    );
    healthy.store(true, SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.fragile().await.unwrap().n, 7);
    assert_eq!(read("pactum.client.breaker", &[service]), Some(0));
    let ok = KeyValue::new("pactum.outcome", "ok");
    assert_eq!(
        read("pactum.client.duration", &[op("Fragile"), ok]),
        Some(1)
    );
    assert_eq!(
        read("pactum.client.duration", &[op("Fragile"), failed]),
        Some(3)
    );

    // A server-streaming call whose handler fails before the first reply: the server counts
    // it once, by its status.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = r::grpc::router(Arc::new(Idle::default()));
    tokio::spawn(pactum::router::serve(listener, router));
    let grpc = r::grpc::Client::connect_lazy(url).unwrap();
    assert!(grpc.feed(&r::FeedRequest { n: 1 }).await.is_err());
    let internal = KeyValue::new("pactum.status", "INTERNAL");
    let transport = KeyValue::new("pactum.transport", "grpc");
    assert_eq!(
        read("pactum.server.duration", &[op("Feed"), internal, transport]),
        Some(1)
    );
}
