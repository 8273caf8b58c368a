//! JetStream transport against the real NATS server (`PACTUM_TEST_NATS`, default
//! `nats://127.0.0.1:4222`, JetStream enabled) and, for the consumer, the real PostgreSQL.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use pactum::messaging::bus::{headers, EventSink, Headers, StartAt};
use pactum::messaging::consumer::{Inbound, Outcome, PgConsumer, PgHandler, REASON_HEADER};
use pactum::messaging::nats::{Group, Nats};
use pactum::{Context, DeliveryMode as Mode, Event, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn nats() -> Nats {
    let url = std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    Nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_NATS")
    })
}

/// A fresh stream (and subject) for one test: the stream is deleted first, so reruns start
/// clean and no two tests share one.
async fn fresh(nats: &Nats, test: &str, mode: Mode) -> (String, String) {
    let stream = format!("PACTUM_TEST_{}", test.to_uppercase());
    let subject = format!("pactum_test.{test}");
    let url = std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let _ = js.delete_stream(&stream).await;
    let _ = js.delete_stream(format!("{stream}_DLQ")).await;
    nats.ensure_stream(&stream, &subject, mode, Duration::from_secs(60))
        .await
        .unwrap();
    (stream, subject)
}

fn msg(id: &str) -> Headers {
    Headers::from([(headers::MSG_ID.to_string(), id.to_string())])
}

async fn next(group: &mut Group) -> pactum::messaging::nats::NatsDelivery {
    tokio::time::timeout(WAIT, group.next())
        .await
        .expect("a delivery in time")
        .unwrap()
}

#[tokio::test]
async fn a_retried_publish_is_stored_once() {
    let nats = nats().await;
    let (_, subject) = fresh(&nats, "dedup", Mode::Stream).await;
    let first = nats
        .publish(&subject, &msg("a"), b"1".to_vec())
        .await
        .unwrap();
    let retry = nats
        .publish(&subject, &msg("a"), b"1".to_vec())
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(
        retry.duplicate,
        "Nats-Msg-Id within the window is stored once"
    );
    assert_eq!(retry.sequence, first.sequence);
    // The same through the transport-neutral sink generated publishers use.
    let via_sink = EventSink::send(&nats, &subject, msg("a"), b"1".to_vec())
        .await
        .unwrap();
    assert_eq!(
        (via_sink.sequence, via_sink.duplicate),
        (first.sequence, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_on_a_queue_each_message_handled_once() {
    let nats = nats().await;
    let (stream, subject) = fresh(&nats, "queue", Mode::Queue).await;
    for i in 0..40 {
        nats.publish(&subject, &msg(&format!("m{i}")), vec![])
            .await
            .unwrap();
    }
    let handled: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..4 {
        let mut group = nats
            .join(
                &stream,
                &subject,
                "workers",
                StartAt::First,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        let handled = handled.clone();
        workers.push(tokio::spawn(async move {
            while let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(2), group.next()).await {
                tokio::time::sleep(Duration::from_millis(5)).await;
                handled.lock().unwrap().push((w, d.sequence()));
                d.ack().await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let handled = handled.lock().unwrap().clone();
    let seqs: BTreeSet<u64> = handled.iter().map(|(_, s)| *s).collect();
    assert_eq!(handled.len(), 40, "no message handled twice");
    assert_eq!(seqs, (1..=40).collect(), "every message handled");
    let busy: BTreeSet<usize> = handled.iter().map(|(w, _)| *w).collect();
    assert!(busy.len() > 1, "the work was shared: {busy:?}");
}

#[tokio::test]
async fn every_group_sees_every_event_and_groups_replay_from_a_sequence() {
    let nats = nats().await;
    let (stream, subject) = fresh(&nats, "pubsub", Mode::Pubsub).await;
    for i in 1..=10 {
        nats.publish(&subject, &msg(&format!("m{i}")), vec![])
            .await
            .unwrap();
    }
    for g in ["billing", "email", "audit"] {
        let mut group = nats
            .join(
                &stream,
                &subject,
                g,
                StartAt::First,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..10 {
            let d = next(&mut group).await;
            seen.push(d.sequence());
            d.ack().await;
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>(), "{g}");
    }
    let mut replay = nats
        .join(
            &stream,
            &subject,
            "replay",
            StartAt::Sequence(6),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let d = next(&mut replay).await;
        seen.push(d.sequence());
        d.ack().await;
    }
    assert_eq!(seen, vec![6, 7, 8, 9, 10]);
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct StockReserved {
    sku: String,
    quantity: i64,
}

impl Event for StockReserved {
    const NAME: &'static str = "StockReserved";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "inventory";
    const TYPE: &'static str = "inventory.StockReserved.v1";
    const SUBJECT: &'static str = "pactum_test.consumer";
    const DELIVERY: Mode = Mode::Queue;
    fn ordering_key(&self) -> Option<String> {
        Some(self.sku.clone())
    }
}

/// Counts reserved units per SKU in the runner's transaction.
struct Reservations {
    table: String,
    traces: Arc<Mutex<Vec<Option<String>>>>,
}

impl PgHandler<StockReserved> for Reservations {
    async fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        ctx: &Context,
        event: StockReserved,
    ) -> Result<(), String> {
        self.traces.lock().unwrap().push(ctx.trace_id());
        tx.execute(
            &format!(
                "INSERT INTO {} (sku, quantity) VALUES ($1, $2)
                 ON CONFLICT (sku) DO UPDATE SET quantity = {0}.quantity + EXCLUDED.quantity",
                self.table
            ),
            &[&event.sku, &event.quantity],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

fn database() -> pactum::store::postgres::Database {
    let config = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    pactum::store::postgres::Database::new(&config).unwrap()
}

async fn postgres() -> tokio_postgres::Client {
    let config = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let (client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
        });
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn idempotent_consumer_on_jetstream_and_postgres() {
    let nats = nats().await;
    let (stream, subject) = fresh(&nats, "consumer", Mode::Queue).await;
    assert_eq!(subject, StockReserved::SUBJECT);
    let check = postgres().await;
    check
        .batch_execute(
            "DROP TABLE IF EXISTS nats_reserved; DROP TABLE IF EXISTS nats_processed;
             CREATE TABLE nats_reserved (sku TEXT PRIMARY KEY, quantity BIGINT NOT NULL);",
        )
        .await
        .unwrap();
    let traces = Arc::<Mutex<Vec<_>>>::default();
    let handler = Reservations {
        table: "nats_reserved".into(),
        traces: traces.clone(),
    };
    let policy = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        full_jitter: false,
    };
    let mut consumer = PgConsumer::new(
        &database(),
        "nats_processed",
        "reservations",
        policy,
        handler,
    )
    .await
    .unwrap();
    let mut group = nats
        .join(
            &stream,
            &subject,
            "reservations",
            StartAt::First,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    let quantity = |sku: &'static str| {
        let check = &check;
        async move {
            check
                .query_opt("SELECT quantity FROM nats_reserved WHERE sku = $1", &[&sku])
                .await
                .unwrap()
                .map(|r| r.get::<_, i64>(0))
        }
    };

    // Published with the publisher's trace; the producer retries the publish once.
    let trace = "5b8efff798038103d269b633813fc60c";
    let ctx = Context::new().with_span_context(SpanContext::new(
        TraceId::from_hex(trace).unwrap(),
        SpanId::from_hex("eee19b7ec3c1b174").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    let event = StockReserved {
        sku: "sku-1".into(),
        quantity: 2,
    };
    nats.publish_event(&ctx, "res-1", &event).await.unwrap();
    assert!(
        nats.publish_event(&ctx, "res-1", &event)
            .await
            .unwrap()
            .duplicate
    );
    // The broker delivers the same event two more times (as separate messages).
    let (h, body) = pactum::messaging::bus::event_message(&ctx, "res-1", &event).unwrap();
    for copy in 0..2 {
        let mut h = h.clone();
        h.insert(headers::MSG_ID.into(), format!("copy-{copy}"));
        nats.publish(&subject, &h, body.clone()).await.unwrap();
    }
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let d = next(&mut group).await;
        outcomes.push(consumer.process(d).await);
    }
    assert_eq!(
        outcomes,
        vec![Outcome::Processed, Outcome::Duplicate, Outcome::Duplicate]
    );
    assert_eq!(quantity("sku-1").await, Some(2));
    assert_eq!(*traces.lock().unwrap(), vec![Some(trace.to_string())]);

    // Killed after the commit, before the ack: JetStream redelivers after the ack wait.
    let event = StockReserved {
        sku: "sku-2".into(),
        quantity: 5,
    };
    nats.publish_event(&Context::new(), "res-2", &event)
        .await
        .unwrap();
    let d = next(&mut group).await;
    assert_eq!(consumer.apply(&d).await, Outcome::Processed);
    drop(d);
    let again = next(&mut group).await;
    assert_eq!(again.delivered(), 2);
    assert_eq!(consumer.process(again).await, Outcome::Duplicate);
    assert_eq!(quantity("sku-2").await, Some(5));

    // Poison: dead-lettered at once with the reason, body kept.
    let mut poison = h.clone();
    poison.insert(headers::MSG_ID.into(), "poison".into());
    poison.insert(headers::ID.into(), "res-3".into());
    nats.publish(&subject, &poison, b"{not json".to_vec())
        .await
        .unwrap();
    let d = next(&mut group).await;
    assert!(matches!(
        consumer.process(d).await,
        Outcome::DeadLettered(_)
    ));
    let dlq = format!("{subject}.dlq");
    let mut ops = nats
        .join(
            &format!("{stream}_DLQ"),
            &dlq,
            "ops",
            StartAt::First,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let dead = next(&mut ops).await;
    assert!(dead.headers()[REASON_HEADER].starts_with("undecodable payload"));
    assert_eq!(dead.headers()[headers::ID], "res-3");
    assert_eq!(dead.payload(), b"{not json");
    dead.ack().await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), group.next())
            .await
            .is_err(),
        "nothing left on the work queue"
    );
}

#[tokio::test]
async fn three_consumer_groups_each_apply_every_event_once() {
    let nats = nats().await;
    let (stream, subject) = fresh(&nats, "groups", Mode::Pubsub).await;
    let check = postgres().await;
    let groups = ["billing", "email", "audit"];
    for g in groups {
        check
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS nats_groups_{g};
                 CREATE TABLE nats_groups_{g} (sku TEXT PRIMARY KEY, quantity BIGINT NOT NULL);"
            ))
            .await
            .unwrap();
    }
    check
        .batch_execute("DROP TABLE IF EXISTS nats_groups_processed")
        .await
        .unwrap();
    // Five events, each delivered twice.
    for i in 0..5 {
        let event = StockReserved {
            sku: format!("sku-{i}"),
            quantity: 1,
        };
        let (h, body) =
            pactum::messaging::bus::event_message(&Context::new(), &format!("ev-{i}"), &event)
                .unwrap();
        for copy in 0..2 {
            let mut h = h.clone();
            h.insert(headers::MSG_ID.into(), format!("ev-{i}-{copy}"));
            nats.publish(&subject, &h, body.clone()).await.unwrap();
        }
    }
    let policy = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        full_jitter: false,
    };
    for g in groups {
        let handler = Reservations {
            table: format!("nats_groups_{g}"),
            traces: Arc::default(),
        };
        // One dedup table for all groups: records are per consumer name.
        let mut consumer =
            PgConsumer::new(&database(), "nats_groups_processed", g, policy, handler)
                .await
                .unwrap();
        let mut group = nats
            .join(
                &stream,
                &subject,
                g,
                StartAt::First,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        let mut processed = 0;
        for _ in 0..10 {
            if consumer.process(next(&mut group).await).await == Outcome::Processed {
                processed += 1;
            }
        }
        assert_eq!(processed, 5, "{g}: each event applied once");
        let row = check
            .query_one(
                &format!("SELECT count(*), sum(quantity)::BIGINT FROM nats_groups_{g}"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (5, 5), "{g}");
    }
}

#[tokio::test]
async fn batches_hold_what_was_received_and_every_message_once() {
    let nats = nats().await;
    let (stream, subject) = fresh(&nats, "batches", Mode::Stream).await;
    for i in 1..=20 {
        nats.publish(&subject, &msg(&format!("b{i}")), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    let mut group = nats
        .join_prefetching(
            &stream,
            &subject,
            "batcher",
            StartAt::First,
            Duration::from_secs(30),
            8,
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    while seen.len() < 20 {
        let batch = tokio::time::timeout(WAIT, group.next_batch(8))
            .await
            .expect("a batch in time")
            .unwrap();
        sizes.push(batch.len());
        for d in batch {
            seen.push(String::from_utf8(d.payload().to_vec()).unwrap());
            d.ack().await;
        }
    }
    let expected: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected, "in order, each once");
    assert!(sizes.iter().all(|&n| (1..=8).contains(&n)), "{sizes:?}");
    assert!(
        sizes.iter().any(|&n| n > 1),
        "prefetched messages batch up: {sizes:?}"
    );
}

/// A NATS server of this test's own (`nats-server -js` on a free loopback port, its store in
/// a temporary directory), so it can be killed and restarted without touching the machine's.
struct OwnServer {
    port: u16,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl OwnServer {
    fn start(test: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("pactum-nats-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Self::spawn(port, &dir);
        Self { port, dir, child }
    }

    fn spawn(port: u16, dir: &std::path::Path) -> std::process::Child {
        let bin = std::env::var("PACTUM_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let mut child = std::process::Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("`{bin}` is required for this test (set PACTUM_NATS_SERVER): {e}")
            });
        // Up once it accepts connections (bounded: 10 s).
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return child;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, stay down for `down`, then start again on the same port and store.
    fn restart(&mut self, down: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down);
        self.child = Self::spawn(self.port, &self.dir);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_survives_a_broker_restart() {
    let mut server = OwnServer::start("restart");
    let nats = Nats::connect(&server.url()).await.unwrap();
    nats.ensure_stream(
        "RESTART",
        "restart.events",
        Mode::Queue,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let mut group = nats
        .join(
            "RESTART",
            "restart.events",
            "workers",
            StartAt::First,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    nats.publish("restart.events", &msg("before"), b"1".to_vec())
        .await
        .unwrap();
    let d = next(&mut group).await;
    assert_eq!(d.payload(), b"1");
    d.ack().await;
    // The worker is waiting on its pull while the server dies and stays down for longer than
    // the pull's heartbeat (2 s): the subscription reports missed heartbeats, which must not
    // end it. The first message may come again: its ack was in flight when the server was
    // killed (at least once; the consumer's dedup record absorbs it).
    let worker = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !seen.contains(&b"2".to_vec()) && seen.len() < 5 {
            let d = tokio::time::timeout(Duration::from_secs(40), group.next())
                .await
                .expect("a delivery after the restart")
                .expect("the subscription outlives the restart");
            seen.push(d.payload().to_vec());
            d.ack().await;
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(nats.is_connected());
    let restarting = tokio::task::spawn_blocking(move || {
        server.restart(Duration::from_secs(5));
        server
    });
    // A readiness probe sees the outage while the server is down.
    let mut seen_down = false;
    for _ in 0..80 {
        if !nats.is_connected() {
            seen_down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_down, "is_connected() stayed true with the server down");
    let server = restarting.await.unwrap();
    // The client reconnects by itself; publishing waits for it (bounded).
    let mut stored = false;
    for _ in 0..100 {
        if nats
            .publish("restart.events", &msg("after"), b"2".to_vec())
            .await
            .is_ok()
        {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored, "publish after the restart");
    assert!(nats.is_connected(), "connected again after the restart");
    let seen = worker.await.unwrap();
    drop(server);
    assert!(seen.contains(&b"2".to_vec()), "{seen:?}");
    assert!(seen.iter().all(|p| p == b"1" || p == b"2"), "{seen:?}");
}

#[tokio::test]
async fn header_values_with_line_breaks_are_cleaned_not_a_panic() {
    let nats = nats().await;
    let (stream, subject) = fresh(&nats, "crlf", Mode::Queue).await;
    let mut group = nats
        .join(&stream, &subject, "workers", StartAt::First, WAIT)
        .await
        .unwrap();
    let mut h = msg("crlf-1");
    h.insert(
        REASON_HEADER.into(),
        "502 Bad Gateway\r\n<html>\n</html>".into(),
    );
    h.insert("bad:name".into(), "x".into());
    nats.publish(&subject, &h, b"x".to_vec()).await.unwrap();
    let d = next(&mut group).await;
    assert_eq!(d.headers()[REASON_HEADER], "502 Bad Gateway <html> </html>");
    assert!(!d.headers().contains_key("bad:name"));
    // A dead letter whose reason is a downstream's error page.
    d.dead_letter("upstream said:\r\n<html><body>boom</body></html>\r\n")
        .await;
    let mut dlq = nats
        .join(
            &format!("{stream}_DLQ"),
            &format!("{subject}.dlq"),
            "ops",
            StartAt::First,
            WAIT,
        )
        .await
        .unwrap();
    let dead = next(&mut dlq).await;
    assert_eq!(
        dead.headers()[REASON_HEADER],
        "upstream said: <html><body>boom</body></html>"
    );
}

#[tokio::test]
async fn streams_are_created_with_limits() {
    let server = OwnServer::start("limits");
    let nats = Nats::connect(&server.url()).await.unwrap();
    nats.ensure_stream(
        "LIMITED",
        "limited.events",
        Mode::Stream,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(&server.url()).await.unwrap());
    let mut s = js.get_stream("LIMITED").await.unwrap();
    let config = s.info().await.unwrap().config.clone();
    let defaults = pactum::messaging::nats::StreamLimits::default();
    assert_eq!(config.max_age, defaults.max_age);
    assert_eq!(config.max_bytes, 1 << 30);
    assert_eq!(config.max_messages, 10_000_000);
    let mut dlq = js.get_stream("LIMITED_DLQ").await.unwrap();
    assert_eq!(
        dlq.info().await.unwrap().config.max_age,
        defaults.dead_letter_max_age
    );
}
