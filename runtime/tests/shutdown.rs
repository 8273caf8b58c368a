//! Graceful shutdown: once it starts, a consumer loop takes no new delivery, finishes and
//! settles the one it holds, and hands prefetched messages back at once (another worker gets
//! them well inside their ack wait); a relay stops after its batch; `drain` waits for all of it
//! and reports what outlived the grace period. On the embedded bus, the real NATS server
//! (`PACTUM_TEST_NATS`) and the real PostgreSQL (`PACTUM_TEST_POSTGRES`).

use pactum::messaging::bus::{headers, Bus, EventSink, Headers, StartAt};
use pactum::messaging::consumer::Inbound;
use pactum::messaging::nats::Nats;
use pactum::messaging::source::stream_name;
use pactum::messaging::{consume, Broker, EventSource, Subscribe, Subscription};
use pactum::shutdown::{Drained, Shutdown};
use pactum::{ConsumerInfo, DeliveryMode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn info(subject: &str, group: &str) -> &'static ConsumerInfo {
    Box::leak(Box::new(ConsumerInfo {
        service: "test",
        subject: Box::leak(subject.to_string().into_boxed_str()),
        group: Box::leak(group.to_string().into_boxed_str()),
        delivery: DeliveryMode::Queue,
        retry: None,
        dead_letter: true,
        budget: None,
    }))
}

fn msg(id: &str) -> Headers {
    Headers::from([(headers::MSG_ID.to_string(), id.to_string())])
}

/// The ack wait is 30 s: a message that came back sooner was handed back, not timed out.
fn options() -> Subscribe {
    Subscribe {
        ack_wait: Duration::from_secs(30),
        ..Subscribe::default()
    }
}

/// What the draining worker did: the ids it started and the ids it finished (acked).
#[derive(Default)]
struct Log {
    started: Vec<String>,
    finished: Vec<String>,
}

fn id<M: Inbound>(m: &M) -> String {
    String::from_utf8_lossy(m.payload()).into_owned()
}

/// Publishes m1..m3, lets one worker start m1 (its handler takes 300 ms), starts the shutdown
/// while m1 is in hand, and checks: the loop ends only after m1 is acked, m2 and m3 were never
/// handled by it, and a second worker of the group gets both — within 5 s, though the ack wait
/// is 30 s (what the first worker prefetched was handed back).
async fn the_delivery_in_hand_is_finished_and_the_rest_handed_back<S>(
    broker: Broker,
    subject: &str,
    first: S,
) where
    S: Subscription + 'static,
{
    let group = info(subject, "drain");
    for n in 1..=3 {
        let id = format!("m{n}");
        broker
            .send(subject, msg(&id), id.clone().into_bytes())
            .await
            .unwrap();
    }
    let shutdown = Shutdown::new();
    let log = Arc::new(Mutex::new(Log::default()));
    let worker = shutdown.spawn(consume(first, shutdown.clone(), {
        let log = log.clone();
        async move |delivery| {
            let id = id(&delivery);
            log.lock().unwrap().started.push(id.clone());
            tokio::time::sleep(Duration::from_millis(300)).await;
            delivery.ack().await;
            log.lock().unwrap().finished.push(id);
        }
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().started.is_empty() {
        assert!(Instant::now() < deadline, "the worker never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the subscription prefetch what it will while m1 is being handled.
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.trigger();
    assert_eq!(shutdown.drain(Duration::from_secs(5)).await, Drained::All);
    tokio::time::timeout(Duration::from_secs(1), worker)
        .await
        .expect("the worker's task ended")
        .unwrap();
    {
        let log = log.lock().unwrap();
        assert_eq!(
            log.started,
            ["m1"],
            "no new delivery after the shutdown started"
        );
        assert_eq!(
            log.finished,
            ["m1"],
            "the delivery in hand was finished and acked"
        );
    }

    let mut second = broker.subscribe(group, &options()).await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < 2 {
        let d = tokio::time::timeout(Duration::from_secs(5), second.next())
            .await
            .unwrap_or_else(|_| panic!("only {got:?} came to the next worker within 5 s"))
            .unwrap();
        got.push(id(&d));
        d.ack().await;
    }
    got.sort();
    assert_eq!(
        got,
        ["m2", "m3"],
        "m1 was acked; the rest came to the next worker"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_bus_a_stopping_worker_finishes_its_delivery_and_takes_no_more() {
    let broker = Broker::Embedded(Bus::new());
    let subject = "shutdown_test.bus";
    let first = broker
        .subscribe(info(subject, "drain"), &options())
        .await
        .unwrap();
    the_delivery_in_hand_is_finished_and_the_rest_handed_back(broker, subject, first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_a_stopping_worker_hands_back_what_it_prefetched() {
    let subject = "shutdown_test.nats";
    let url = std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = Nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_NATS")
    });
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let _ = js.delete_stream(stream_name(subject)).await;
    let broker = Broker::Nats(Box::new(nats.clone()));
    // The group as every worker joins it, then this worker pulling three at a time: all of
    // m1..m3 sit in its hands while it handles m1.
    drop(
        broker
            .subscribe(info(subject, "drain"), &options())
            .await
            .unwrap(),
    );
    let first = nats
        .join_prefetching(
            &stream_name(subject),
            subject,
            "drain",
            StartAt::First,
            Duration::from_secs(30),
            3,
        )
        .await
        .unwrap();
    the_delivery_in_hand_is_finished_and_the_rest_handed_back(broker, subject, first).await;
}

/// A handler that never ends does not hold the process forever: `drain` gives up at its
/// grace period and says how many tasks were still running.
#[tokio::test]
async fn drain_reports_what_outlived_the_grace_period() {
    let bus = Bus::new();
    let broker = Broker::Embedded(bus.clone());
    let group = info("shutdown_test.stuck", "stuck");
    let source = broker
        .subscribe(group, &Subscribe::default())
        .await
        .unwrap();
    bus.publish("shutdown_test.stuck", msg("s1"), b"s1".to_vec());
    let shutdown = Shutdown::new();
    shutdown.spawn(consume(source, shutdown.clone(), async |_delivery| {
        std::future::pending::<()>().await
    }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    assert_eq!(
        shutdown.drain(Duration::from_millis(200)).await,
        Drained::TimedOut { remaining: 1 }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(shutdown.is_triggered());
}

/// An idle worker stops at once: the wait for the next delivery is cut, not sat out.
#[tokio::test]
async fn an_idle_worker_stops_at_once() {
    let broker = Broker::Embedded(Bus::new());
    let source = broker
        .subscribe(info("shutdown_test.idle", "idle"), &Subscribe::default())
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    shutdown.spawn(consume(source, shutdown.clone(), async |_d| {}));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    assert_eq!(shutdown.drain(Duration::from_secs(5)).await, Drained::All);
    assert!(started.elapsed() < Duration::from_millis(500));
}
