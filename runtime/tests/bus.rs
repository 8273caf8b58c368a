//! The embedded bus keeps a broker's promises: dedup on publish, shared work in a queue
//! group, every event to every group, replay from a sequence or a time, and redelivery of
//! whatever a crashed worker did not acknowledge.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use pactum::messaging::bus::{headers, publish_event, Bus, BusConfig, Headers, StartAt};
use pactum::{Context, DeliveryMode as Mode, Event};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

fn msg(id: &str) -> Headers {
    Headers::from([(headers::MSG_ID.to_string(), id.to_string())])
}

fn fill(bus: &Bus, subject: &str, n: u64) {
    for i in 1..=n {
        bus.publish(subject, msg(&format!("m{i}")), i.to_string().into_bytes());
    }
}

#[tokio::test]
async fn a_retried_publish_is_stored_once() {
    let bus = Bus::new();
    let first = bus.publish("s", msg("a"), b"1".to_vec());
    let retry = bus.publish("s", msg("a"), b"1".to_vec());
    assert!(!first.duplicate);
    assert!(retry.duplicate);
    assert_eq!(retry.sequence, first.sequence);
    assert_eq!(bus.last_sequence("s"), 1);
    // No id, no dedup; the same id on another subject is another message.
    bus.publish("s", Headers::new(), b"2".to_vec());
    bus.publish("s", Headers::new(), b"2".to_vec());
    assert_eq!(bus.last_sequence("s"), 3);
    assert!(!bus.publish("t", msg("a"), b"1".to_vec()).duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_in_a_queue_group_each_message_handled_once() {
    let bus = Bus::new();
    bus.join("work", "workers", StartAt::First);
    let handled: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..4 {
        let (bus, handled) = (bus.clone(), handled.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let d = bus.next("work", "workers").await;
                if d.payload() == b"stop" {
                    // Leave the stop marker for the others.
                    d.nak(Duration::ZERO);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                handled.lock().unwrap().push((w, d.sequence()));
                d.ack();
            }
        }));
    }
    fill(&bus, "work", 100);
    while handled.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bus.publish("work", Headers::new(), b"stop".to_vec());
    for w in workers {
        w.await.unwrap();
    }
    let handled = handled.lock().unwrap().clone();
    let seqs: BTreeSet<u64> = handled.iter().map(|(_, s)| *s).collect();
    assert_eq!(handled.len(), 100, "no message handled twice");
    assert_eq!(seqs, (1..=100).collect(), "every message handled");
    let busy: BTreeSet<usize> = handled.iter().map(|(w, _)| *w).collect();
    assert!(busy.len() > 1, "the work was shared: {busy:?}");
}

#[tokio::test]
async fn every_group_sees_every_event() {
    let bus = Bus::new();
    for g in ["billing", "email", "audit"] {
        bus.join("orders", g, StartAt::New);
    }
    fill(&bus, "orders", 10);
    for g in ["billing", "email", "audit"] {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let d = bus.next("orders", g).await;
            seen.push(d.sequence());
            d.ack();
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>(), "{g}");
    }
}

#[tokio::test]
async fn groups_replay_from_a_sequence_or_a_time() {
    let bus = Bus::new();
    fill(&bus, "log", 4);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = SystemTime::now();
    for i in 5..=8 {
        bus.publish("log", Headers::new(), i.to_string().into_bytes());
    }
    bus.join("log", "from-6", StartAt::Sequence(6));
    bus.join("log", "since-cut", StartAt::Time(cut));
    bus.join("log", "all", StartAt::First);
    bus.join("log", "new", StartAt::New);
    let read = |group: &'static str, n: usize| {
        let bus = bus.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                let d = bus.next("log", group).await;
                out.push(d.sequence());
                d.ack();
            }
            out
        }
    };
    assert_eq!(read("from-6", 3).await, vec![6, 7, 8]);
    assert_eq!(read("since-cut", 4).await, vec![5, 6, 7, 8]);
    assert_eq!(read("all", 8).await, (1..=8).collect::<Vec<_>>());
    bus.publish("log", Headers::new(), b"9".to_vec());
    assert_eq!(read("new", 1).await, vec![9]);
}

#[tokio::test]
async fn a_crash_before_the_ack_redelivers_and_a_nak_retries_later() {
    let bus = Bus::with_config(BusConfig {
        ack_wait: Duration::from_millis(50),
        ..BusConfig::default()
    });
    bus.join("jobs", "g", StartAt::First);
    fill(&bus, "jobs", 2);

    let first = bus.next("jobs", "g").await;
    assert_eq!((first.sequence(), first.delivered), (1, 1));
    drop(first); // the worker died after its effect, before acknowledging
    let second = bus.next("jobs", "g").await;
    assert_eq!(second.sequence(), 2, "others are not held up meanwhile");
    second.ack();
    let again = tokio::time::timeout(Duration::from_secs(2), bus.next("jobs", "g"))
        .await
        .expect("the unacknowledged message comes back after the ack wait");
    assert_eq!((again.sequence(), again.delivered), (1, 2));
    again.nak(Duration::from_millis(30));
    let third = bus.next("jobs", "g").await;
    assert_eq!((third.sequence(), third.delivered), (1, 3));
    third.ack();
    assert!(
        tokio::time::timeout(Duration::from_millis(150), bus.next("jobs", "g"))
            .await
            .is_err(),
        "an acknowledged message never comes back"
    );
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct OrderPlaced {
    order_id: String,
}

impl Event for OrderPlaced {
    const NAME: &'static str = "OrderPlaced";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "orders";
    const TYPE: &'static str = "orders.OrderPlaced.v1";
    const SUBJECT: &'static str = "orders.order_placed.v1";
    const DELIVERY: Mode = Mode::Pubsub;
    fn ordering_key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

#[tokio::test]
async fn events_carry_cloudevents_and_trace_headers_and_a_deadline_only_when_declared() {
    let bus = Bus::new();
    bus.join(OrderPlaced::SUBJECT, "audit", StartAt::First);
    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let ctx = Context::new()
        .with_span_context(SpanContext::new(
            trace,
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
        .with_timeout(Duration::from_secs(60));
    let event = OrderPlaced {
        order_id: "ord_7".into(),
    };
    let first = publish_event(&bus, &ctx, "evt-1", &event).unwrap();
    let retry = publish_event(&bus, &ctx, "evt-1", &event).unwrap();
    assert_eq!((first.duplicate, retry.duplicate), (false, true));

    let d = bus.next(OrderPlaced::SUBJECT, "audit").await;
    let h: &BTreeMap<String, String> = d.headers();
    assert_eq!(h[headers::ID], "evt-1");
    assert_eq!(h[headers::SOURCE], "orders");
    assert_eq!(h[headers::TYPE], "orders.OrderPlaced.v1");
    assert_eq!(h[headers::SPECVERSION], "1.0");
    assert_eq!(h[headers::SUBJECT], "ord_7");
    assert_eq!(h[headers::MSG_ID], "orders/evt-1");
    assert!(h[headers::TIME].ends_with('Z'));
    assert!(h["traceparent"].contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    // A fact by default: the request's budget does not travel with it.
    assert!(!h.contains_key(headers::DEADLINE), "{h:?}");
    assert!(!h.contains_key(pactum::wire::TIMEOUT_HEADER));
    let back: OrderPlaced = serde_json::from_slice(d.payload()).unwrap();
    assert_eq!(back, event);

    // `deadline: inherit` carries what is left of the request; `deadline: 10m` a fixed life.
    let deadline_of = |h: &pactum::messaging::bus::Headers| -> u128 {
        let at: u128 = h[headers::DEADLINE].parse().unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        at - now
    };
    let (h, _) =
        pactum::messaging::bus::event_message(&ctx, "evt-2", &Inherited(event.clone())).unwrap();
    assert!((55_000..=60_000).contains(&deadline_of(&h)));
    let (h, _) =
        pactum::messaging::bus::event_message(&ctx, "evt-3", &Expiring(event.clone())).unwrap();
    assert!((595_000..=600_000).contains(&deadline_of(&h)));
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Inherited(OrderPlaced);

impl Event for Inherited {
    const NAME: &'static str = "OrderQuoted";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "orders";
    const TYPE: &'static str = "orders.OrderQuoted.v1";
    const SUBJECT: &'static str = "orders.order_quoted.v1";
    const DELIVERY: Mode = Mode::Pubsub;
    const DEADLINE: pactum::EventDeadline = pactum::EventDeadline::Inherit;
    fn ordering_key(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Expiring(OrderPlaced);

impl Event for Expiring {
    const NAME: &'static str = "OfferMade";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "orders";
    const TYPE: &'static str = "orders.OfferMade.v1";
    const SUBJECT: &'static str = "orders.offer_made.v1";
    const DELIVERY: Mode = Mode::Pubsub;
    const DEADLINE: pactum::EventDeadline = pactum::EventDeadline::After(Duration::from_secs(600));
    fn ordering_key(&self) -> Option<String> {
        None
    }
}

#[tokio::test]
async fn a_work_queue_deletes_what_was_acknowledged() {
    use pactum::messaging::bus::{Retention, StreamSettings};
    let bus = Bus::new();
    bus.configure(
        "jobs",
        StreamSettings {
            retention: Retention::WorkQueue,
            ..StreamSettings::default()
        },
    );
    bus.join("jobs", "workers", StartAt::First);
    for n in 0..3 {
        bus.publish("jobs", Headers::new(), vec![n]);
    }
    assert_eq!(bus.stored("jobs"), 3);
    let d = bus.next("jobs", "workers").await;
    d.ack();
    let d = bus.next("jobs", "workers").await;
    d.nak(Duration::from_millis(1));
    assert_eq!(bus.stored("jobs"), 2, "acked is gone, nakked stays");
    for _ in 0..2 {
        bus.next("jobs", "workers").await.ack();
    }
    assert_eq!(bus.stored("jobs"), 0);
    assert_eq!(bus.last_sequence("jobs"), 3, "sequences are not reused");
}

#[tokio::test]
async fn limits_drop_the_oldest_messages_and_groups_skip_them() {
    use pactum::messaging::bus::StreamSettings;
    let bus = Bus::new();
    bus.configure(
        "events",
        StreamSettings {
            max_messages: 3,
            max_bytes: 1_000,
            ..StreamSettings::default()
        },
    );
    bus.join("events", "slow", StartAt::First);
    for n in 0..5u8 {
        bus.publish("events", Headers::new(), vec![n]);
    }
    assert_eq!(bus.stored("events"), 3);
    // The group had read nothing: it resumes at the oldest message still stored.
    let d = bus.next("events", "slow").await;
    assert_eq!((d.sequence(), d.payload()), (3, &[2u8][..]));
    d.ack();
    // Bytes: 3 stored + 999 is over 1,000, so the two oldest (3 and 4) go.
    bus.publish("events", Headers::new(), vec![0; 999]);
    assert_eq!(bus.stored("events"), 2);
    // The group's next message, 4, is gone: it gets 5.
    let d = bus.next("events", "slow").await;
    assert_eq!(d.sequence(), 5);
}

#[tokio::test]
async fn messages_older_than_the_max_age_go() {
    use pactum::messaging::bus::StreamSettings;
    let bus = Bus::new();
    bus.configure(
        "ticks",
        StreamSettings {
            max_age: Duration::from_millis(50),
            ..StreamSettings::default()
        },
    );
    bus.join("ticks", "late", StartAt::First);
    bus.publish("ticks", Headers::new(), b"old".to_vec());
    tokio::time::sleep(Duration::from_millis(80)).await;
    bus.publish("ticks", Headers::new(), b"new".to_vec());
    assert_eq!(bus.stored("ticks"), 1);
    let d = bus.next("ticks", "late").await;
    assert_eq!(d.payload(), b"new");
}
