//! The idempotent consumer with its record in memory, over the embedded bus: duplicates are
//! skipped, failures are retried then dead-lettered with the reason, nothing is recorded
//! before the handler succeeds, and ids are forgotten after the retention.

use pactum::messaging::bus::{event_message, headers, Bus, BusConfig, StartAt};
use pactum::messaging::consumer::{MemoryConsumer, MemoryHandler, Outcome, REASON_HEADER};
use pactum::{Context, DeliveryMode as Mode, Event, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ParcelDelivered {
    parcel: String,
}

impl Event for ParcelDelivered {
    const NAME: &'static str = "ParcelDelivered";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "shipping";
    const TYPE: &'static str = "shipping.ParcelDelivered.v1";
    const SUBJECT: &'static str = "shipping.parcel_delivered.v1";
    const DELIVERY: Mode = Mode::Queue;
    fn ordering_key(&self) -> Option<String> {
        None
    }
}

/// Appends each parcel it applies; fails the first `fail_first` calls.
#[derive(Clone, Default)]
struct Log {
    applied: Arc<Mutex<Vec<String>>>,
    fail_first: Arc<AtomicU32>,
}

impl MemoryHandler<ParcelDelivered> for Log {
    async fn handle(&self, _ctx: &Context, event: ParcelDelivered) -> Result<(), String> {
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("courier API down".into());
        }
        self.applied.lock().unwrap().push(event.parcel);
        Ok(())
    }
}

const POLICY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial_backoff: Duration::from_millis(5),
    max_backoff: Duration::from_millis(10),
    full_jitter: false,
};

fn publish_copies(bus: &Bus, id: &str, parcel: &str, copies: usize) {
    let event = ParcelDelivered {
        parcel: parcel.into(),
    };
    let (h, body) = event_message(&Context::new(), id, &event).unwrap();
    for copy in 0..copies {
        let mut h = h.clone();
        // Distinct broker ids, so the bus stores every copy: the consumer must skip them.
        h.insert(headers::MSG_ID.into(), format!("{id}-{copy}"));
        bus.publish(ParcelDelivered::SUBJECT, h, body.clone());
    }
}

fn bus() -> Bus {
    let bus = Bus::with_config(BusConfig {
        ack_wait: Duration::from_millis(100),
        ..BusConfig::default()
    });
    bus.join(ParcelDelivered::SUBJECT, "log", StartAt::First);
    bus
}

#[tokio::test]
async fn duplicates_are_skipped_and_failures_end_in_the_dead_letter() {
    let bus = bus();
    let log = Log::default();
    let mut consumer = MemoryConsumer::new(POLICY, log.clone());
    let next = || bus.next(ParcelDelivered::SUBJECT, "log");

    publish_copies(&bus, "evt-1", "p1", 3);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(consumer.process(next().await).await);
    }
    assert_eq!(
        outcomes,
        vec![Outcome::Processed, Outcome::Duplicate, Outcome::Duplicate]
    );
    assert_eq!(*log.applied.lock().unwrap(), vec!["p1"]);

    // A failure is not recorded: the redelivery runs the handler again.
    log.fail_first.store(1, Ordering::SeqCst);
    publish_copies(&bus, "evt-2", "p2", 1);
    assert_eq!(
        consumer.process(next().await).await,
        Outcome::Retrying("courier API down".into())
    );
    let again = next().await;
    assert_eq!(again.delivered, 2);
    assert_eq!(consumer.process(again).await, Outcome::Processed);
    assert_eq!(*log.applied.lock().unwrap(), vec!["p1", "p2"]);

    // Failing every time: three attempts, then the dead letter with the reason.
    log.fail_first.store(10, Ordering::SeqCst);
    bus.join("shipping.parcel_delivered.v1.dlq", "ops", StartAt::First);
    publish_copies(&bus, "evt-3", "p3", 1);
    let mut last = Outcome::Processed;
    for _ in 0..3 {
        last = consumer.process(next().await).await;
    }
    let Outcome::DeadLettered(reason) = last else {
        panic!("expected a dead letter, got {last:?}");
    };
    assert!(reason.contains("courier API down"), "{reason}");
    let dead = bus.next("shipping.parcel_delivered.v1.dlq", "ops").await;
    assert_eq!(dead.headers()[REASON_HEADER], reason);
    assert_eq!(dead.headers()[headers::ID], "evt-3");
    assert_eq!(consumer.remembered(), 2);
}

#[tokio::test]
async fn ids_are_forgotten_after_the_retention() {
    let bus = bus();
    let log = Log::default();
    let mut consumer =
        MemoryConsumer::new(POLICY, log.clone()).with_retention(Duration::from_millis(50));
    let next = || bus.next(ParcelDelivered::SUBJECT, "log");
    publish_copies(&bus, "evt-1", "p1", 2);
    assert_eq!(consumer.process(next().await).await, Outcome::Processed);
    tokio::time::sleep(Duration::from_millis(80)).await;
    // Past the retention, the copy is no longer recognised: the window is the contract.
    assert_eq!(consumer.process(next().await).await, Outcome::Processed);
    assert_eq!(consumer.remembered(), 1);
    assert_eq!(log.applied.lock().unwrap().len(), 2);
}

/// Records the trace the handler runs under, read from `Context::current()` as any client
/// call inside it would.
struct Tracer(Arc<Mutex<Vec<Option<String>>>>);

impl MemoryHandler<ParcelDelivered> for Tracer {
    async fn handle(&self, _ctx: &Context, _event: ParcelDelivered) -> Result<(), String> {
        self.0.lock().unwrap().push(Context::current().trace_id());
        Ok(())
    }
}

#[tokio::test]
async fn the_handler_runs_in_the_publishers_trace() {
    let bus = bus();
    let incoming = std::collections::HashMap::from([(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    )]);
    let ctx = Context::from_headers(&incoming);
    let event = ParcelDelivered {
        parcel: "p9".into(),
    };
    pactum::messaging::bus::publish_event(&bus, &ctx, "evt-9", &event).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut consumer = MemoryConsumer::new(POLICY, Tracer(seen.clone()));
    let d = bus.next(ParcelDelivered::SUBJECT, "log").await;
    assert_eq!(consumer.process(d).await, Outcome::Processed);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some("4bf92f3577b34da6a3ce929d0e0e4736".to_string())]
    );
}

#[tokio::test]
async fn a_processed_event_redelivered_expired_is_acked_not_dead_lettered() {
    let bus = bus();
    let log = Log::default();
    let mut consumer = MemoryConsumer::new(POLICY, log.clone());
    publish_copies(&bus, "evt-1", "p1", 1);
    let d = bus.next(ParcelDelivered::SUBJECT, "log").await;
    assert_eq!(consumer.process(d).await, Outcome::Processed);
    // The same event again, now past a deadline: processed already, so acknowledged.
    let event = ParcelDelivered {
        parcel: "p1".into(),
    };
    let (mut h, body) = event_message(&Context::new(), "evt-1", &event).unwrap();
    h.insert(headers::MSG_ID.into(), "evt-1-late".into());
    h.insert(headers::DEADLINE.into(), "1000".into());
    bus.publish(ParcelDelivered::SUBJECT, h, body);
    let d = bus.next(ParcelDelivered::SUBJECT, "log").await;
    assert_eq!(consumer.process(d).await, Outcome::Duplicate);
    assert_eq!(*log.applied.lock().unwrap(), ["p1"]);
    let dlq = format!("{}.dlq", ParcelDelivered::SUBJECT);
    assert_eq!(bus.last_sequence(&dlq), 0, "nothing was dead-lettered");
}

/// Panics on parcel `boom`, applies the rest.
#[derive(Clone, Default)]
struct Fragile {
    applied: Arc<Mutex<Vec<String>>>,
}

impl MemoryHandler<ParcelDelivered> for Fragile {
    async fn handle(&self, _ctx: &Context, event: ParcelDelivered) -> Result<(), String> {
        if event.parcel == "boom" {
            panic!("label printer on fire");
        }
        self.applied.lock().unwrap().push(event.parcel);
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_handler_fails_its_attempts_and_is_dead_lettered_with_the_panic() {
    let bus = bus();
    bus.join("shipping.parcel_delivered.v1.dlq", "ops", StartAt::First);
    let fragile = Fragile::default();
    let mut consumer = MemoryConsumer::new(POLICY, fragile.clone());
    let next = || bus.next(ParcelDelivered::SUBJECT, "log");
    publish_copies(&bus, "evt-boom", "boom", 1);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(consumer.process(next().await).await);
    }
    let reason = "handler panicked: label printer on fire".to_string();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Retrying(reason.clone()),
            Outcome::Retrying(reason.clone()),
            Outcome::DeadLettered(format!("failed 3 times; last: {reason}")),
        ]
    );
    let dead = bus.next("shipping.parcel_delivered.v1.dlq", "ops").await;
    assert!(dead.headers()[REASON_HEADER].ends_with(&reason));
    // The consumer goes on with the next event.
    publish_copies(&bus, "evt-ok", "fine", 1);
    assert_eq!(consumer.process(next().await).await, Outcome::Processed);
    assert_eq!(*fragile.applied.lock().unwrap(), vec!["fine"]);
}
