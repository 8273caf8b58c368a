//! The subscribe side on both brokers, through one API: a group joined from a contract's
//! `consumes` entry (`EventSource::subscribe`), queue groups sharing the work, pub/sub groups
//! each seeing everything, a nak coming back. Run on the embedded bus and on the real NATS
//! server (`PACTUM_TEST_NATS`, default `nats://127.0.0.1:4222`).

use pactum::messaging::bus::{headers, Bus, EventSink, Headers};
use pactum::messaging::consumer::Inbound;
use pactum::messaging::nats::Nats;
use pactum::messaging::source::stream_name;
use pactum::messaging::{Broker, EventSource, Subscribe, Subscription};
use pactum::{ConsumerInfo, DeliveryMode};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn info(subject: &str, group: &str, delivery: DeliveryMode) -> &'static ConsumerInfo {
    Box::leak(Box::new(ConsumerInfo {
        service: "test",
        subject: Box::leak(subject.to_string().into_boxed_str()),
        group: Box::leak(group.to_string().into_boxed_str()),
        delivery,
        retry: None,
        dead_letter: true,
        budget: None,
    }))
}

fn msg(id: &str) -> Headers {
    Headers::from([(headers::MSG_ID.to_string(), id.to_string())])
}

async fn nats_broker(subject: &str) -> Broker {
    let url = std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = Nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_NATS")
    });
    // A fresh stream per run: reruns start clean.
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let _ = js.delete_stream(stream_name(subject)).await;
    let _ = js
        .delete_stream(format!("{}_DLQ", stream_name(subject)))
        .await;
    Broker::Nats(Box::new(nats))
}

async fn next<S: Subscription>(s: &mut S) -> S::Message {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("a delivery within the wait")
        .expect("the broker answers")
}

/// Two workers of one queue group share four messages, each handled once; a nak comes back
/// to the group with its delivery count raised.
async fn queue_group_shares_the_work(broker: Broker, subject: &str) {
    let queue = info(subject, "workers", DeliveryMode::Queue);
    let options = Subscribe::default();
    let mut a = broker.subscribe(queue, &options).await.unwrap();
    let mut b = broker.subscribe(queue, &options).await.unwrap();
    for n in 0..4 {
        broker
            .send(subject, msg(&format!("q{n}")), format!("{n}").into_bytes())
            .await
            .unwrap();
    }
    // Five deliveries in all: four messages, and the first one again after its nak.
    let mut acked = BTreeSet::new();
    let mut naked = None;
    for turn in 0..5 {
        let d = if turn % 2 == 0 {
            next(&mut a).await
        } else {
            next(&mut b).await
        };
        let payload = d.payload().to_vec();
        match &naked {
            None => {
                assert_eq!(d.delivered(), 1);
                naked = Some(payload);
                d.nak(Duration::from_millis(50)).await;
            }
            Some(first) if *first == payload => {
                assert_eq!(d.delivered(), 2, "a nak comes back with its count raised");
                assert!(acked.insert(payload), "acknowledged twice");
                d.ack().await;
            }
            Some(_) => {
                assert_eq!(d.delivered(), 1);
                assert!(acked.insert(payload), "delivered to both workers");
                d.ack().await;
            }
        }
    }
    assert_eq!(acked.len(), 4, "every message handled once");
}

/// Two pub/sub groups each see every message.
async fn pubsub_groups_each_see_everything(broker: Broker, subject: &str) {
    let options = Subscribe::default();
    let mut audit = broker
        .subscribe(info(subject, "audit", DeliveryMode::Pubsub), &options)
        .await
        .unwrap();
    let mut email = broker
        .subscribe(info(subject, "email", DeliveryMode::Pubsub), &options)
        .await
        .unwrap();
    for n in 0..3 {
        broker
            .send(subject, msg(&format!("p{n}")), format!("{n}").into_bytes())
            .await
            .unwrap();
    }
    for group in [&mut audit, &mut email] {
        let mut got = Vec::new();
        for _ in 0..3 {
            let d = next(group).await;
            got.push(String::from_utf8(d.payload().to_vec()).unwrap());
            d.ack().await;
        }
        assert_eq!(got, ["0", "1", "2"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_through_the_source_api() {
    let bus = Bus::new();
    queue_group_shares_the_work(Broker::Embedded(bus.clone()), "source.queue.v1").await;
    pubsub_groups_each_see_everything(Broker::Embedded(bus), "source.pubsub.v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_through_the_source_api() {
    let queue = "pactum_test.source_queue";
    queue_group_shares_the_work(nats_broker(queue).await, queue).await;
    let pubsub = "pactum_test.source_pubsub";
    pubsub_groups_each_see_everything(nats_broker(pubsub).await, pubsub).await;
}
