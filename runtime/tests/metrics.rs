//! The metrics the runtime records, read back through an in-memory exporter: an idempotent
//! consumer counts each delivery by outcome, redeliveries and dead letters, and reports the
//! lag JetStream gives with each delivery (the real NATS server, `PACTUM_TEST_NATS`). (Its own
//! test binary: the meter provider is process-wide.)

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
use pactum::messaging::bus::{event_message, headers, Bus, BusConfig, EventSink, StartAt};
use pactum::messaging::consumer::{MemoryConsumer, MemoryHandler, Outcome};
use pactum::messaging::nats::Nats;
use pactum::messaging::source::stream_name;
use pactum::messaging::{Broker, EventSource, Subscribe, Subscription};
use pactum::{ConsumerInfo, Context, DeliveryMode as Mode, Event, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ParcelDelivered {
    parcel: String,
}

impl Event for ParcelDelivered {
    const NAME: &'static str = "ParcelDelivered";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "shipping";
    const TYPE: &'static str = "shipping.ParcelDelivered.v1";
    const SUBJECT: &'static str = "metrics_test.parcel_delivered.v1";
    const DELIVERY: Mode = Mode::Queue;
    fn ordering_key(&self) -> Option<String> {
        None
    }
}

/// Fails parcels named `poison`, once fails `flaky`, applies the rest.
#[derive(Default)]
struct Courier {
    flaked: std::sync::atomic::AtomicBool,
}

impl MemoryHandler<ParcelDelivered> for Courier {
    async fn handle(&self, _ctx: &Context, event: ParcelDelivered) -> Result<(), String> {
        match event.parcel.as_str() {
            "poison" => Err("no such address".into()),
            "flaky" if !self.flaked.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                Err("courier API down".into())
            }
            _ => Ok(()),
        }
    }
}

/// Sums of counter `name`'s data points whose attributes include `with`, and the last gauge
/// value of `name` so matched.
fn read(exporter: &InMemoryMetricExporter, name: &str, with: &[KeyValue]) -> (u64, Option<u64>) {
    let mut sum = 0;
    let mut gauge = None;
    for resource in exporter.get_finished_metrics().unwrap() {
        for scope in resource.scope_metrics() {
            for metric in scope.metrics().filter(|m| m.name() == name) {
                let matches = |attrs: Vec<&KeyValue>| with.iter().all(|kv| attrs.contains(&kv));
                match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        for p in s.data_points() {
                            if matches(p.attributes().collect()) {
                                sum = p.value().max(sum);
                            }
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                        for p in g.data_points() {
                            if matches(p.attributes().collect()) {
                                gauge = Some(p.value());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    (sum, gauge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_count_outcomes_redeliveries_dead_letters_and_lag() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    pactum::metrics::provider_changed();

    // On the bus: a parcel, a copy of it, a poison one, and one that fails once.
    let bus = Bus::with_config(BusConfig {
        ack_wait: Duration::from_millis(100),
        ..BusConfig::default()
    });
    bus.join(ParcelDelivered::SUBJECT, "couriers", StartAt::First);
    let policy = RetryPolicy {
        attempts: 1,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
        full_jitter: false,
    };
    let mut consumer = MemoryConsumer::new(
        RetryPolicy {
            attempts: 3,
            ..policy
        },
        Courier::default(),
    )
    .named("couriers");
    for (id, parcel) in [
        ("e1", "p1"),
        ("e1", "p1"),
        ("e2", "poison"),
        ("e3", "flaky"),
    ] {
        let event = ParcelDelivered {
            parcel: parcel.into(),
        };
        let (mut h, body) = event_message(&Context::new(), id, &event).unwrap();
        h.insert(
            headers::MSG_ID.into(),
            format!("{id}-{}", bus.last_sequence(ParcelDelivered::SUBJECT)),
        );
        bus.publish(ParcelDelivered::SUBJECT, h, body);
    }
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        let next = tokio::time::timeout(
            Duration::from_millis(500),
            bus.next(ParcelDelivered::SUBJECT, "couriers"),
        );
        match next.await {
            Ok(d) => outcomes.push(consumer.process(d).await),
            Err(_) => break,
        }
    }
    assert!(
        outcomes.contains(&Outcome::Processed) && outcomes.contains(&Outcome::Duplicate),
        "{outcomes:?}"
    );
    provider.force_flush().unwrap();
    let at = |outcome: &'static str| {
        vec![
            KeyValue::new("messaging.destination.name", ParcelDelivered::SUBJECT),
            KeyValue::new("pactum.group", "couriers"),
            KeyValue::new("pactum.outcome", outcome),
        ]
    };
    let count = |name: &str, with: &[KeyValue]| read(&exporter, name, with).0;
    let processed = outcomes
        .iter()
        .filter(|o| **o == Outcome::Processed)
        .count() as u64;
    assert_eq!(
        count("pactum.consumer.deliveries", &at("processed")),
        processed
    );
    assert_eq!(count("pactum.consumer.deliveries", &at("duplicate")), 1);
    let dead = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::DeadLettered(_)))
        .count() as u64;
    assert!(dead >= 1, "{outcomes:?}");
    assert_eq!(
        count("pactum.consumer.deliveries", &at("dead_lettered")),
        dead
    );
    let group = &at("processed")[..2];
    assert_eq!(count("pactum.consumer.dead_letters", group), dead);
    // The poison parcel's and the flaky one's second deliveries.
    assert!(
        count("pactum.consumer.redeliveries", group) >= 2,
        "{outcomes:?}"
    );

    // On JetStream: three waiting, one taken — the lag it reports is the two behind it.
    let url = std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = Nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_NATS")
    });
    let subject = "metrics_test.lag";
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let _ = js.delete_stream(stream_name(subject)).await;
    let broker = Broker::Nats(Box::new(nats));
    let info: &'static ConsumerInfo = Box::leak(Box::new(ConsumerInfo {
        service: "test",
        subject,
        group: "laggards",
        delivery: Mode::Queue,
        retry: None,
        dead_letter: true,
        budget: None,
    }));
    let mut source = broker.subscribe(info, &Subscribe::default()).await.unwrap();
    for n in 0..3 {
        let event = ParcelDelivered {
            parcel: format!("n{n}"),
        };
        let (h, body) = event_message(&Context::new(), &format!("lag-{n}"), &event).unwrap();
        broker.send(subject, h, body).await.unwrap();
    }
    let mut consumer = MemoryConsumer::new(policy, Courier::default()).named("laggards");
    let first = tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consumer.process(first).await, Outcome::Processed);
    provider.force_flush().unwrap();
    let lag = read(
        &exporter,
        "pactum.consumer.lag",
        &[
            KeyValue::new("messaging.destination.name", subject),
            KeyValue::new("pactum.group", "laggards"),
        ],
    )
    .1;
    assert_eq!(lag, Some(2));
}
