//! One broker suite, three transports: the embedded bus, NATS JetStream
//! (`PACTUM_TEST_NATS`, default `nats://127.0.0.1:4222`) and RabbitMQ (`PACTUM_TEST_RABBITMQ`,
//! default `amqp://guest:guest@127.0.0.1:5672/%2f`), each reached only through the runtime's
//! [`Broker`] (its `EventSink` and `EventSource`), with PostgreSQL (`PACTUM_TEST_POSTGRES`)
//! holding the idempotent consumer's records.
//!
//! Every scenario runs on every transport; where a broker promises less (AMQP has no publish
//! dedup, a RabbitMQ pub/sub group has no history before it joins), the scenario says so
//! and asserts what the consumer still guarantees.

use pactum::messaging::bus::{event_message, headers, Bus, BusConfig, EventSink, Headers, StartAt};
use pactum::messaging::consumer::{Inbound, Outcome, PgConsumer, REASON_HEADER};
use pactum::messaging::{Broker, EventSource, Subscribe, Subscription};
use pactum::{Context, DeliveryMode as Mode};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

mod support;
#[cfg(feature = "rabbitmq")]
use support::rabbit_url;
use support::{info, postgres, postgres_config, Reservations, StockReserved, POLICY};

const WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Without the `rabbitmq` feature the RabbitMQ scenarios are not built (`cargo test -p
// pactum`); `cargo test --workspace` turns it on.
#[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))]
enum Kind {
    Bus,
    Nats,
    Rabbit,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bus => "bus",
            Kind::Nats => "nats",
            Kind::Rabbit => "rabbit",
        }
    }
}

/// Every group name a scenario uses, so a fresh run can delete their RabbitMQ queues.
#[cfg(feature = "rabbitmq")]
const GROUPS: [&str; 9] = [
    "workers",
    "billing",
    "email",
    "audit",
    "replay",
    "from4",
    "fromtime",
    "reservations",
    "batcher",
];

fn nats_url() -> String {
    std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The broker of `kind`, and a subject of this scenario's own, emptied of earlier runs.
async fn broker(kind: Kind, test: &str) -> (Broker, String) {
    let subject = format!("conformance_{}.{test}", kind.name());
    let broker = match kind {
        Kind::Bus => Broker::Embedded(Bus::with_config(BusConfig {
            ack_wait: Duration::from_secs(1),
            ..BusConfig::default()
        })),
        Kind::Nats => {
            let nats = pactum::messaging::nats::Nats::connect(&nats_url())
                .await
                .unwrap_or_else(|e| {
                    panic!("NATS with JetStream is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_NATS")
                });
            let js = async_nats::jetstream::new(async_nats::connect(&nats_url()).await.unwrap());
            let stream = pactum::messaging::source::stream_name(&subject);
            let _ = js.delete_stream(&stream).await;
            let _ = js.delete_stream(format!("{stream}_DLQ")).await;
            let dlq = pactum::messaging::source::stream_name(&format!("{subject}.dlq"));
            let _ = js.delete_stream(format!("{dlq}_DLQ")).await;
            Broker::Nats(Box::new(nats))
        }
        #[cfg(not(feature = "rabbitmq"))]
        Kind::Rabbit => unreachable!("the RabbitMQ scenarios need the rabbitmq feature"),
        #[cfg(feature = "rabbitmq")]
        Kind::Rabbit => {
            let rabbit = pactum::messaging::rabbitmq::RabbitMq::connect(&rabbit_url())
                .await
                .unwrap_or_else(|e| {
                    panic!("RabbitMQ is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_RABBITMQ")
                });
            let connection =
                lapin::Connection::connect(&rabbit_url(), lapin::ConnectionProperties::default())
                    .await
                    .unwrap();
            let mut queues = vec![subject.clone(), format!("{subject}.dlq")];
            for g in GROUPS {
                queues.push(format!("{subject}.{g}"));
                queues.push(format!("{subject}.{g}.offset"));
            }
            // Delay queues: the naks' steps and the dead-letter fallback's (a message an
            // aborted run left there would come back into this run's queue).
            for q in queues.clone() {
                for step in [100, 200, 500, 5000] {
                    queues.push(format!("{q}.retry.{step}"));
                }
            }
            for q in queues {
                // A refused delete closes its channel: a fresh one each time.
                let channel = connection.create_channel().await.unwrap();
                let _ = channel
                    .queue_delete(q.as_str().into(), Default::default())
                    .await;
            }
            Broker::RabbitMq(Box::new(rabbit))
        }
    };
    (broker, subject)
}

fn options(start: StartAt) -> Subscribe {
    Subscribe {
        start,
        ack_wait: Duration::from_secs(1),
        ..Subscribe::default()
    }
}

fn msg(id: &str) -> Headers {
    Headers::from([(headers::MSG_ID.to_string(), id.to_string())])
}

async fn next<S: Subscription>(s: &mut S) -> S::Message {
    let deadline = Instant::now() + WAIT;
    // A broker error (a reconnect) is retried, as `consume` does, within the wait.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.next()).await {
            Ok(Ok(m)) => return m,
            Ok(Err(e)) if Instant::now() < deadline => {
                eprintln!("broker error, pulling again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => panic!("the broker fails: {e}"),
            Err(_) => panic!("no delivery within {WAIT:?}"),
        }
    }
}

/// Nothing more arrives within `quiet`.
async fn nothing_more<S: Subscription>(s: &mut S, quiet: Duration) {
    if let Ok(Ok(m)) = tokio::time::timeout(quiet, s.next()).await {
        panic!(
            "unexpected delivery: {:?}",
            String::from_utf8_lossy(m.payload())
        );
    }
}

/// A consumer for `group` applying into a fresh `<prefix>_reserved` table.
async fn consumer(
    prefix: &str,
    group: &str,
) -> (
    PgConsumer<StockReserved, Reservations>,
    tokio_postgres::Client,
) {
    let check = postgres().await;
    check
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {prefix}_reserved; DROP TABLE IF EXISTS {prefix}_processed;
             CREATE TABLE {prefix}_reserved (sku TEXT PRIMARY KEY, quantity BIGINT NOT NULL);"
        ))
        .await
        .unwrap();
    let database = pactum::store::postgres::Database::new(&postgres_config()).unwrap();
    let consumer = PgConsumer::new(
        &database,
        &format!("{prefix}_processed"),
        group,
        POLICY,
        Reservations {
            table: format!("{prefix}_reserved"),
        },
    )
    .await
    .unwrap();
    (consumer, check)
}

async fn reserved(check: &tokio_postgres::Client, prefix: &str) -> BTreeMap<String, i64> {
    check
        .query(&format!("SELECT sku, quantity FROM {prefix}_reserved"), &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Publishes `event` under broker id `msg_id` (its CloudEvents id stays `id`).
async fn publish(broker: &Broker, subject: &str, id: &str, msg_id: &str, event: &StockReserved) {
    let (mut h, body) = event_message(&Context::new(), id, event).unwrap();
    h.insert(headers::MSG_ID.into(), msg_id.into());
    broker.send(subject, h, body).await.unwrap();
}

macro_rules! on_every_transport {
    ($($scenario:ident),* $(,)?) => {
        mod bus {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() { super::$scenario(super::Kind::Bus).await })*
        }
        mod nats {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() { super::$scenario(super::Kind::Nats).await })*
        }
        #[cfg(feature = "rabbitmq")]
        mod rabbitmq {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() { super::$scenario(super::Kind::Rabbit).await })*
        }
    };
}

on_every_transport!(
    a_retried_publish_is_applied_once,
    four_workers_on_a_queue_each_message_once,
    three_groups_each_apply_every_event_once,
    stream_groups_replay_from_the_first_a_sequence_or_a_time,
    a_stopped_or_crashed_stream_worker_resumes_where_its_group_was,
    duplicates_a_crash_before_the_ack_and_poison_through_the_idempotent_consumer,
    a_nak_comes_back_after_its_delay_with_its_count,
    batches_hold_what_was_received_and_every_message_once,
);

/// A producer retries a publish with the same message id. JetStream and the bus store it
/// once; AMQP has no duplicate window, so RabbitMQ delivers both and the consumer's dedup
/// record drops the second. Either way the effect happens once.
async fn a_retried_publish_is_applied_once(kind: Kind) {
    let (broker, subject) = broker(kind, "dedup").await;
    let group = info(&subject, "workers", Mode::Queue);
    let mut sub = broker
        .subscribe(group, &options(StartAt::First))
        .await
        .unwrap();
    let (mut consumer, check) = consumer(&format!("conf_{}_dedup", kind.name()), "workers").await;
    let event = StockReserved {
        sku: "sku-1".into(),
        quantity: 2,
    };
    let (h, body) = event_message(&Context::new(), "res-1", &event).unwrap();
    let first = broker
        .send(&subject, h.clone(), body.clone())
        .await
        .unwrap();
    let again = broker.send(&subject, h, body).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(again.duplicate, kind != Kind::Rabbit, "broker-side dedup");
    assert_eq!(
        consumer.process(next(&mut sub).await).await,
        Outcome::Processed
    );
    if kind == Kind::Rabbit {
        assert_eq!(
            consumer.process(next(&mut sub).await).await,
            Outcome::Duplicate
        );
    }
    nothing_more(&mut sub, Duration::from_millis(500)).await;
    let prefix = format!("conf_{}_dedup", kind.name());
    assert_eq!(
        reserved(&check, &prefix).await,
        BTreeMap::from([("sku-1".to_string(), 2)])
    );
}

/// Four workers of one queue group share 40 messages: each handled by exactly one of them.
async fn four_workers_on_a_queue_each_message_once(kind: Kind) {
    let (broker, subject) = broker(kind, "workers").await;
    let group = info(&subject, "workers", Mode::Queue);
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(
            broker
                .subscribe(group, &options(StartAt::First))
                .await
                .unwrap(),
        );
    }
    for i in 0..40 {
        broker
            .send(&subject, msg(&format!("w{i}")), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for mut w in workers {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = 0;
            loop {
                let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(2), w.next()).await else {
                    break;
                };
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8(d.payload().to_vec()).unwrap());
                mine += 1;
                // Some work, so the others get their share.
                tokio::time::sleep(Duration::from_millis(5)).await;
                d.ack().await;
            }
            w.release().await;
            mine
        }));
    }
    let mut shares = Vec::new();
    for t in tasks {
        shares.push(t.await.unwrap());
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|s| s.parse::<u32>().unwrap());
    let expected: Vec<String> = (0..40).map(|i: u32| i.to_string()).collect();
    assert_eq!(seen, expected, "each message exactly once");
    assert!(
        shares.iter().filter(|&&n| n > 0).count() >= 2,
        "the work is shared: {shares:?}"
    );
}

/// Three pub/sub groups, each with its own idempotent consumer, see every event; every event
/// is delivered twice (as after a lost ack) and applied once per group.
async fn three_groups_each_apply_every_event_once(kind: Kind) {
    let (broker, subject) = broker(kind, "groups").await;
    let groups = ["billing", "email", "audit"];
    let mut subs = Vec::new();
    // Joined before anything is published: a RabbitMQ pub/sub group sees what is published
    // after it first joins.
    for g in groups {
        subs.push(
            broker
                .subscribe(info(&subject, g, Mode::Pubsub), &options(StartAt::New))
                .await
                .unwrap(),
        );
    }
    for i in 0..5 {
        let event = StockReserved {
            sku: format!("sku-{i}"),
            quantity: 1,
        };
        for copy in 0..2 {
            publish(
                &broker,
                &subject,
                &format!("ev-{i}"),
                &format!("ev-{i}-{copy}"),
                &event,
            )
            .await;
        }
    }
    for (g, mut sub) in groups.into_iter().zip(subs) {
        let prefix = format!("conf_{}_groups_{g}", kind.name());
        let (mut consumer, check) = consumer(&prefix, g).await;
        let mut processed = 0;
        for _ in 0..10 {
            if consumer.process(next(&mut sub).await).await == Outcome::Processed {
                processed += 1;
            }
        }
        assert_eq!(processed, 5, "{g}: each event applied once");
        let all = reserved(&check, &prefix).await;
        assert_eq!(all.len(), 5, "{g}");
        assert!(all.values().all(|&q| q == 1), "{g}: {all:?}");
        nothing_more(&mut sub, Duration::from_millis(300)).await;
    }
}

/// On a stream subject, a new group replays from the first message, from a sequence number,
/// or from a time.
async fn stream_groups_replay_from_the_first_a_sequence_or_a_time(kind: Kind) {
    let (broker, subject) = broker(kind, "replay").await;
    // The stream exists once a group has joined it.
    let mut first = broker
        .subscribe(
            info(&subject, "replay", Mode::Stream),
            &options(StartAt::First),
        )
        .await
        .unwrap();
    for i in 1..=5 {
        broker
            .send(&subject, msg(&format!("r{i}")), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    // RabbitMQ stamps stream chunks in whole seconds: a clear gap on both sides of `t`.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 6..=10 {
        broker
            .send(&subject, msg(&format!("r{i}")), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    async fn take<S: Subscription>(sub: &mut S, n: usize) -> Vec<u32> {
        let mut seen = Vec::new();
        for _ in 0..n {
            let d = next(sub).await;
            seen.push(std::str::from_utf8(d.payload()).unwrap().parse().unwrap());
            d.ack().await;
        }
        seen
    }
    assert_eq!(take(&mut first, 10).await, (1..=10).collect::<Vec<_>>());
    let mut from4 = broker
        .subscribe(
            info(&subject, "from4", Mode::Stream),
            &options(StartAt::Sequence(4)),
        )
        .await
        .unwrap();
    assert_eq!(take(&mut from4, 7).await, (4..=10).collect::<Vec<_>>());
    let mut from_time = broker
        .subscribe(
            info(&subject, "fromtime", Mode::Stream),
            &options(StartAt::Time(t)),
        )
        .await
        .unwrap();
    assert_eq!(take(&mut from_time, 5).await, (6..=10).collect::<Vec<_>>());
    for mut s in [first, from4, from_time] {
        nothing_more(&mut s, Duration::from_millis(300)).await;
    }
}

/// A stream group's worker that stops cleanly hands over exactly where it was; one that
/// crashes before acknowledging leaves the group to read the unacknowledged message again.
async fn a_stopped_or_crashed_stream_worker_resumes_where_its_group_was(kind: Kind) {
    let (broker, subject) = broker(kind, "resume").await;
    let group = info(&subject, "replay", Mode::Stream);
    let mut worker = broker
        .subscribe(group, &options(StartAt::First))
        .await
        .unwrap();
    for i in 1..=10 {
        broker
            .send(&subject, msg(&format!("s{i}")), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    let number = |d: &pactum::messaging::source::BrokerMessage| -> u32 {
        std::str::from_utf8(d.payload()).unwrap().parse().unwrap()
    };
    for i in 1..=3 {
        let d = next(&mut worker).await;
        assert_eq!(number(&d), i);
        d.ack().await;
    }
    worker.release().await;
    drop(worker);
    // A clean stop: the next worker starts exactly after the last acknowledged message.
    let mut worker = broker
        .subscribe(group, &options(StartAt::First))
        .await
        .unwrap();
    let d = next(&mut worker).await;
    assert_eq!(number(&d), 4, "resumed after the last acknowledged message");
    d.ack().await;
    // Crash: the fifth is taken and never settled, and the worker vanishes.
    let d = next(&mut worker).await;
    assert_eq!(number(&d), 5);
    drop(d);
    drop(worker);
    let mut worker = broker
        .subscribe(group, &options(StartAt::First))
        .await
        .unwrap();
    // JetStream and the bus give back exactly the unacknowledged message (after its ack
    // wait); a RabbitMQ stream group reads again from its last commit, which may repeat
    // acknowledged ones, never skip the unacknowledged one.
    let mut seen = Vec::new();
    while !(seen.contains(&5) && seen.contains(&10)) {
        let d = next(&mut worker).await;
        seen.push(number(&d));
        d.ack().await;
    }
    // The loop ends only once the crashed worker's message came back (else `next` fails).
    assert!(
        seen.iter().all(|&n| n >= 4),
        "nothing before the last commit: {seen:?}"
    );
    if kind != Kind::Rabbit {
        // The unacknowledged one comes back after its ack wait, behind the others.
        seen.sort_unstable();
        assert_eq!(seen, (5..=10).collect::<Vec<_>>());
    }
    nothing_more(&mut worker, Duration::from_millis(1500)).await;
}

/// The idempotent consumer on each broker: duplicates skipped, a crash between the commit and
/// the ack redelivered and skipped, poison dead-lettered at once with its reason.
async fn duplicates_a_crash_before_the_ack_and_poison_through_the_idempotent_consumer(kind: Kind) {
    let (broker, subject) = broker(kind, "consumer").await;
    let prefix = format!("conf_{}_consumer", kind.name());
    let group = info(&subject, "reservations", Mode::Queue);
    let mut sub = broker
        .subscribe(group, &options(StartAt::First))
        .await
        .unwrap();
    let (mut consumer, check) = consumer(&prefix, "reservations").await;
    let event = StockReserved {
        sku: "sku-1".into(),
        quantity: 2,
    };
    // The broker delivers one event three times, as separate messages.
    for copy in 0..3 {
        publish(&broker, &subject, "res-1", &format!("res-1-{copy}"), &event).await;
    }
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(consumer.process(next(&mut sub).await).await);
    }
    assert_eq!(
        outcomes,
        vec![Outcome::Processed, Outcome::Duplicate, Outcome::Duplicate]
    );

    // Killed after the commit, before the ack: the worker and its connection are gone.
    let event = StockReserved {
        sku: "sku-2".into(),
        quantity: 5,
    };
    publish(&broker, &subject, "res-2", "res-2", &event).await;
    let d = next(&mut sub).await;
    assert_eq!(consumer.apply(&d).await, Outcome::Processed);
    drop(d);
    drop(sub);
    let mut sub = broker
        .subscribe(group, &options(StartAt::First))
        .await
        .unwrap();
    let again = next(&mut sub).await;
    assert_eq!(again.delivered(), 2, "counted as a redelivery");
    assert_eq!(consumer.process(again).await, Outcome::Duplicate);

    // Poison: dead-lettered at once with the reason, body and CloudEvents id kept.
    let (mut h, _) = event_message(&Context::new(), "res-3", &event).unwrap();
    h.insert(headers::MSG_ID.into(), "poison".into());
    broker
        .send(&subject, h, b"{not json".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        consumer.process(next(&mut sub).await).await,
        Outcome::DeadLettered(_)
    ));
    let mut ops = broker
        .subscribe(
            info(&format!("{subject}.dlq"), "ops", Mode::Pubsub),
            &options(StartAt::First),
        )
        .await
        .unwrap();
    let dead = next(&mut ops).await;
    assert!(
        dead.headers()[REASON_HEADER].starts_with("undecodable payload"),
        "{:?}",
        dead.headers()
    );
    assert_eq!(dead.headers()[headers::ID], "res-3");
    assert_eq!(dead.payload(), b"{not json");
    dead.ack().await;
    nothing_more(&mut sub, Duration::from_millis(1500)).await;
    assert_eq!(
        reserved(&check, &prefix).await,
        BTreeMap::from([("sku-1".to_string(), 2), ("sku-2".to_string(), 5)])
    );
}

/// A nak with a delay brings the message back no sooner, counted as its second delivery; each
/// later nak, at once or delayed, counts one more.
async fn a_nak_comes_back_after_its_delay_with_its_count(kind: Kind) {
    for (mode, group) in [(Mode::Queue, "workers"), (Mode::Stream, "replay")] {
        let (broker, subject) = broker(kind, &format!("nak_{group}")).await;
        let mut sub = broker
            .subscribe(info(&subject, group, mode), &options(StartAt::First))
            .await
            .unwrap();
        broker
            .send(&subject, msg("n1"), b"1".to_vec())
            .await
            .unwrap();
        let d = next(&mut sub).await;
        assert_eq!(d.delivered(), 1);
        let naked = Instant::now();
        d.nak(Duration::from_millis(300)).await;
        let again = next(&mut sub).await;
        let waited = naked.elapsed();
        assert_eq!(again.payload(), b"1", "{mode:?}");
        assert_eq!(again.delivered(), 2, "{mode:?}");
        assert!(
            waited >= Duration::from_millis(250),
            "{mode:?}: back after {waited:?}"
        );
        // Every way back counts once: at once, then delayed again.
        again.nak(Duration::ZERO).await;
        let third = next(&mut sub).await;
        assert_eq!(third.delivered(), 3, "{mode:?}");
        third.nak(Duration::from_millis(100)).await;
        let fourth = next(&mut sub).await;
        assert_eq!(fourth.delivered(), 4, "{mode:?}");
        fourth.ack().await;
        nothing_more(&mut sub, Duration::from_millis(700)).await;
    }
}

/// A worker prefetching 8 takes batches of what it has received, in order, every message once.
async fn batches_hold_what_was_received_and_every_message_once(kind: Kind) {
    let (broker, subject) = broker(kind, "batches").await;
    let prefix = format!("conf_{}_batches", kind.name());
    let mut sub = broker
        .subscribe(
            info(&subject, "batcher", Mode::Stream),
            &Subscribe {
                prefetch: Some(8),
                ..options(StartAt::First)
            },
        )
        .await
        .unwrap();
    let (mut consumer, check) = consumer(&prefix, "batcher").await;
    for i in 1..=20 {
        let event = StockReserved {
            sku: format!("sku-{i:02}"),
            quantity: i,
        };
        publish(
            &broker,
            &subject,
            &format!("b{i}"),
            &format!("b{i}"),
            &event,
        )
        .await;
    }
    let mut sizes = Vec::new();
    let mut outcomes = Vec::new();
    // Received before the first batch is taken, so batches fill up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while outcomes.len() < 20 {
        let batch = tokio::time::timeout(WAIT, sub.next_batch(8))
            .await
            .expect("a batch in time")
            .unwrap();
        sizes.push(batch.len());
        outcomes.extend(consumer.process_batch(batch).await);
    }
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Processed),
        "{outcomes:?}"
    );
    assert!(sizes.iter().all(|&n| (1..=8).contains(&n)), "{sizes:?}");
    assert!(
        sizes.iter().any(|&n| n > 1),
        "prefetched messages batch up: {sizes:?}"
    );
    let all = reserved(&check, &prefix).await;
    assert_eq!(all.len(), 20);
    assert_eq!(all.values().sum::<i64>(), (1..=20).sum::<i64>());
    nothing_more(&mut sub, Duration::from_millis(300)).await;
}
