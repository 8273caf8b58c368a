//! The idempotent consumer against the real PostgreSQL (`PACTUM_TEST_POSTGRES`, default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`): duplicates, a crash between commit
//! and ack, retries, poison messages, deadlines and budgets, a database that goes away, and a
//! batch that fails at commit.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use pactum::messaging::bus::{headers, publish_event, Bus, BusConfig, Headers, StartAt};
use pactum::messaging::consumer::{Outcome, PgConsumer, PgHandler, REASON_HEADER};
use pactum::store::postgres::Database;
use pactum::{Context, DeliveryMode as Mode, Event, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct PaymentCaptured {
    order_id: String,
    cents: i64,
}

impl Event for PaymentCaptured {
    const NAME: &'static str = "PaymentCaptured";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "payments";
    const TYPE: &'static str = "payments.PaymentCaptured.v1";
    const SUBJECT: &'static str = "payments.payment_captured.v1";
    const DELIVERY: Mode = Mode::Queue;
    fn ordering_key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

/// Adds each captured amount to a ledger row, in the runner's transaction.
struct Ledger {
    table: String,
    /// Fail this many calls first (a flaky dependency).
    fail_first: Mutex<u32>,
    /// Trace ids the handler saw.
    traces: Arc<Mutex<Vec<Option<String>>>>,
}

impl PgHandler<PaymentCaptured> for Ledger {
    async fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        ctx: &Context,
        event: PaymentCaptured,
    ) -> Result<(), String> {
        self.traces.lock().unwrap().push(ctx.trace_id());
        tx.execute(
            &format!(
                "INSERT INTO {} (order_id, cents) VALUES ($1, $2)
                 ON CONFLICT (order_id) DO UPDATE SET cents = {0}.cents + EXCLUDED.cents",
                self.table
            ),
            &[&event.order_id, &event.cents],
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut failing = self.fail_first.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            // After the write: the rollback must undo it.
            return Err("ledger service unavailable".into());
        }
        Ok(())
    }
}

fn config() -> String {
    std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

fn database() -> Database {
    Database::new(&config()).unwrap()
}

async fn connect() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&config(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
        });
    tokio::spawn(conn);
    client
}

struct Setup {
    bus: Bus,
    consumer: PgConsumer<PaymentCaptured, Ledger>,
    check: tokio_postgres::Client,
    ledger: String,
    traces: Arc<Mutex<Vec<Option<String>>>>,
}

/// Fresh tables named for the test, a bus with a short ack wait, and a consumer.
async fn setup(test: &str, fail_first: u32, attempts: u32) -> Setup {
    let check = connect().await;
    let (ledger, processed) = (format!("ledger_{test}"), format!("processed_{test}"));
    check
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {ledger}; DROP TABLE IF EXISTS {processed};
             CREATE TABLE {ledger} (order_id TEXT PRIMARY KEY, cents BIGINT NOT NULL);"
        ))
        .await
        .unwrap();
    let bus = Bus::with_config(BusConfig {
        ack_wait: Duration::from_millis(100),
        ..BusConfig::default()
    });
    bus.join(PaymentCaptured::SUBJECT, "ledger", StartAt::First);
    bus.join(
        &format!("{}.dlq", PaymentCaptured::SUBJECT),
        "ops",
        StartAt::First,
    );
    let traces = Arc::<Mutex<Vec<_>>>::default();
    let handler = Ledger {
        table: ledger.clone(),
        fail_first: Mutex::new(fail_first),
        traces: traces.clone(),
    };
    let policy = RetryPolicy {
        attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        full_jitter: false,
    };
    let consumer = PgConsumer::new(&database(), &processed, "ledger", policy, handler)
        .await
        .unwrap();
    Setup {
        bus,
        consumer,
        check,
        ledger,
        traces,
    }
}

impl Setup {
    async fn cents(&self, order: &str) -> Option<i64> {
        self.check
            .query_opt(
                &format!("SELECT cents FROM {} WHERE order_id = $1", self.ledger),
                &[&order],
            )
            .await
            .unwrap()
            .map(|row| row.get(0))
    }

    async fn next(&self) -> pactum::messaging::bus::Delivery {
        tokio::time::timeout(
            Duration::from_secs(5),
            self.bus.next(PaymentCaptured::SUBJECT, "ledger"),
        )
        .await
        .expect("a delivery")
    }

    /// Publishes the same event (same source and id) `copies` times as separate messages,
    /// as a broker redelivering it would.
    fn publish_copies(&self, id: &str, event: &PaymentCaptured, copies: usize) {
        for _ in 0..copies {
            let h = Headers::from([
                (headers::SOURCE.to_string(), "payments".to_string()),
                (headers::ID.to_string(), id.to_string()),
                (headers::TYPE.to_string(), PaymentCaptured::TYPE.to_string()),
            ]);
            self.bus.publish(
                PaymentCaptured::SUBJECT,
                h,
                serde_json::to_vec(event).unwrap(),
            );
        }
    }
}

fn captured(order: &str, cents: i64) -> PaymentCaptured {
    PaymentCaptured {
        order_id: order.into(),
        cents,
    }
}

#[tokio::test]
async fn delivered_three_times_applied_once() {
    let mut s = setup("three_times", 0, 3).await;
    s.publish_copies("pay-1", &captured("o1", 500), 3);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let d = s.next().await;
        outcomes.push(s.consumer.process(d).await);
    }
    assert_eq!(
        outcomes,
        vec![Outcome::Processed, Outcome::Duplicate, Outcome::Duplicate]
    );
    assert_eq!(s.cents("o1").await, Some(500));
}

#[tokio::test]
async fn crash_after_commit_before_ack_is_redelivered_and_applied_once() {
    let mut s = setup("crash", 0, 3).await;
    s.publish_copies("pay-2", &captured("o2", 700), 1);
    let d = s.next().await;
    assert_eq!(s.consumer.apply(&d).await, Outcome::Processed);
    drop(d); // the worker dies here: effect committed, no ack
    let again = s.next().await;
    assert_eq!(again.delivered, 2, "redelivered after the ack wait");
    assert_eq!(s.consumer.process(again).await, Outcome::Duplicate);
    assert_eq!(s.cents("o2").await, Some(700));
}

#[tokio::test]
async fn failures_roll_back_and_retry_then_dead_letter() {
    // Two failures, three attempts: succeeds on the third, with the failed writes undone.
    let mut s = setup("retry", 2, 3).await;
    s.publish_copies("pay-3", &captured("o3", 100), 1);
    for expected in 1..=3 {
        let d = s.next().await;
        assert_eq!(d.delivered, expected);
        let outcome = s.consumer.process(d).await;
        if expected < 3 {
            assert_eq!(
                outcome,
                Outcome::Retrying("ledger service unavailable".into())
            );
            assert_eq!(s.cents("o3").await, None, "the failed attempt rolled back");
        } else {
            assert_eq!(outcome, Outcome::Processed);
        }
    }
    assert_eq!(s.cents("o3").await, Some(100));

    // Always failing: dead-lettered after the last attempt, with the reason.
    let mut s = setup("exhausted", 10, 2).await;
    s.publish_copies("pay-4", &captured("o4", 100), 1);
    let d = s.next().await;
    assert!(matches!(s.consumer.process(d).await, Outcome::Retrying(_)));
    let d = s.next().await;
    let outcome = s.consumer.process(d).await;
    assert_eq!(
        outcome,
        Outcome::DeadLettered("failed 2 times; last: ledger service unavailable".into())
    );
    let dead = s
        .bus
        .next(&format!("{}.dlq", PaymentCaptured::SUBJECT), "ops")
        .await;
    assert_eq!(
        dead.headers()[REASON_HEADER],
        "failed 2 times; last: ledger service unavailable"
    );
    assert_eq!(dead.headers()[headers::ID], "pay-4", "nothing lost");
    assert_eq!(s.cents("o4").await, None);
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            s.bus.next(PaymentCaptured::SUBJECT, "ledger")
        )
        .await
        .is_err(),
        "a dead-lettered message is not delivered again"
    );
}

#[tokio::test]
async fn poison_and_expired_messages_go_to_the_dead_letter_at_once() {
    let mut s = setup("poison", 0, 5).await;
    let h = Headers::from([
        (headers::SOURCE.to_string(), "payments".to_string()),
        (headers::ID.to_string(), "pay-5".to_string()),
        (headers::TYPE.to_string(), PaymentCaptured::TYPE.to_string()),
    ]);
    s.bus
        .publish(PaymentCaptured::SUBJECT, h.clone(), b"{not json".to_vec());
    let mut expired = h.clone();
    expired.insert(headers::ID.into(), "pay-6".into());
    expired.insert(headers::DEADLINE.into(), "1000".into());
    s.bus.publish(
        PaymentCaptured::SUBJECT,
        expired,
        serde_json::to_vec(&captured("o6", 1)).unwrap(),
    );
    for _ in 0..2 {
        let d = s.next().await;
        assert!(matches!(
            s.consumer.process(d).await,
            Outcome::DeadLettered(_)
        ));
    }
    let dlq = format!("{}.dlq", PaymentCaptured::SUBJECT);
    let first = s.bus.next(&dlq, "ops").await;
    assert!(first.headers()[REASON_HEADER].starts_with("undecodable payload"));
    assert_eq!(
        first.payload(),
        b"{not json",
        "the poison body is kept as is"
    );
    first.ack();
    let second = s.bus.next(&dlq, "ops").await;
    assert_eq!(
        second.headers()[REASON_HEADER],
        "the event's deadline passed before processing"
    );
    assert_eq!(s.cents("o6").await, None, "expired work is not done");
}

#[tokio::test]
async fn a_processed_event_redelivered_after_its_deadline_is_acked_not_dead_lettered() {
    let mut s = setup("late_copy", 0, 3).await;
    s.publish_copies("pay-l", &captured("l1", 5), 1);
    let d = s.next().await;
    assert_eq!(s.consumer.process(d).await, Outcome::Processed);
    // The broker delivers it again (a lost ack) once its deadline has passed; a foreign type
    // arrives under the same id too. Both were processed already: acknowledged, no dead letter.
    let mut late = Headers::from([
        (headers::SOURCE.to_string(), "payments".to_string()),
        (headers::ID.to_string(), "pay-l".to_string()),
        (headers::TYPE.to_string(), PaymentCaptured::TYPE.to_string()),
        (headers::DEADLINE.to_string(), "1000".to_string()),
    ]);
    s.bus.publish(
        PaymentCaptured::SUBJECT,
        late.clone(),
        serde_json::to_vec(&captured("l1", 5)).unwrap(),
    );
    late.insert(headers::TYPE.into(), "payments.Other.v1".into());
    s.bus
        .publish(PaymentCaptured::SUBJECT, late, b"{}".to_vec());
    for _ in 0..2 {
        let d = s.next().await;
        assert_eq!(s.consumer.process(d).await, Outcome::Duplicate);
    }
    assert_eq!(s.cents("l1").await, Some(5));
    let dlq = format!("{}.dlq", PaymentCaptured::SUBJECT);
    assert_eq!(s.bus.last_sequence(&dlq), 0, "nothing was dead-lettered");
}

#[tokio::test]
async fn the_handler_runs_in_the_publishers_trace() {
    let mut s = setup("trace", 0, 3).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let ctx = Context::new().with_span_context(SpanContext::new(
        TraceId::from_hex(trace).unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    publish_event(&s.bus, &ctx, "pay-7", &captured("o7", 42)).unwrap();
    let d = s.next().await;
    assert_eq!(s.consumer.process(d).await, Outcome::Processed);
    assert_eq!(*s.traces.lock().unwrap(), vec![Some(trace.to_string())]);
    assert_eq!(
        s.consumer.prune(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(s.consumer.prune(Duration::ZERO).await.unwrap(), 1);
}

#[tokio::test]
async fn a_batch_commits_once_and_a_failing_event_undoes_only_itself() {
    // The first handler call fails after writing: that event alone rolls back and retries.
    let mut s = setup("batch", 1, 3).await;
    s.publish_copies("pay-b1", &captured("b1", 100), 1);
    s.publish_copies("pay-b2", &captured("b2", 200), 2); // a duplicate inside the batch
    s.bus.publish(
        PaymentCaptured::SUBJECT,
        Headers::from([
            (headers::SOURCE.to_string(), "payments".to_string()),
            (headers::ID.to_string(), "pay-poison".to_string()),
            (headers::TYPE.to_string(), PaymentCaptured::TYPE.to_string()),
        ]),
        b"not json".to_vec(),
    );
    s.publish_copies("pay-b3", &captured("b3", 300), 1);
    let mut batch = Vec::new();
    for _ in 0..5 {
        batch.push(s.next().await);
    }
    let outcomes = s.consumer.process_batch(batch).await;
    assert_eq!(
        outcomes[0],
        Outcome::Retrying("ledger service unavailable".into())
    );
    assert_eq!(&outcomes[1..3], &[Outcome::Processed, Outcome::Duplicate]);
    assert!(matches!(&outcomes[3], Outcome::DeadLettered(r) if r.contains("undecodable")));
    assert_eq!(outcomes[4], Outcome::Processed);
    assert_eq!(
        s.cents("b1").await,
        None,
        "the failed event's write was rolled back"
    );
    assert_eq!(
        (s.cents("b2").await, s.cents("b3").await),
        (Some(200), Some(300)),
        "the others committed, the duplicate once"
    );
    // The failed one comes back after its backoff and is applied once.
    let again = s.next().await;
    assert_eq!(again.delivered, 2);
    assert_eq!(
        s.consumer.process_batch(vec![again]).await,
        vec![Outcome::Processed]
    );
    assert_eq!(s.cents("b1").await, Some(100));
    let dead = s
        .bus
        .next(&format!("{}.dlq", PaymentCaptured::SUBJECT), "ops")
        .await;
    assert_eq!(dead.headers()[headers::ID], "pay-poison");
}

/// Records what is left of the handler's deadline, and sleeps `nap` first.
struct Probe(Arc<Mutex<Option<Duration>>>, Duration);

impl PgHandler<PaymentCaptured> for Probe {
    async fn handle(
        &self,
        _tx: &tokio_postgres::Transaction<'_>,
        ctx: &Context,
        _event: PaymentCaptured,
    ) -> Result<(), String> {
        *self.0.lock().unwrap() = ctx.remaining();
        tokio::time::sleep(self.1).await;
        Ok(())
    }
}

async fn probe(
    table: &str,
    nap: Duration,
    budget: Duration,
) -> (
    PgConsumer<PaymentCaptured, Probe>,
    Arc<Mutex<Option<Duration>>>,
) {
    let seen = Arc::new(Mutex::new(None));
    let probe = PgConsumer::new(
        &database(),
        table,
        "probe",
        RetryPolicy {
            attempts: 3,
            ..pactum::messaging::consumer::DEFAULT_POLICY
        },
        Probe(seen.clone(), nap),
    )
    .await
    .unwrap()
    .with_budget(budget);
    connect()
        .await
        .batch_execute(&format!("DELETE FROM {table}"))
        .await
        .unwrap();
    (probe, seen)
}

#[tokio::test]
async fn the_handler_works_under_its_budget_not_the_publishers_request() {
    let s = setup("deadline", 0, 3).await;
    // Published under a 2 s request: the event is a fact and does not inherit it.
    let ctx = Context::new().with_timeout(Duration::from_secs(2));
    publish_event(&s.bus, &ctx, "pay-d", &captured("d1", 1)).unwrap();
    let d = s.next().await;
    assert!(
        !d.headers().contains_key(headers::DEADLINE),
        "{:?}",
        d.headers()
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (mut probe, seen) = probe(
        "processed_deadline_probe",
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        probe.process(d).await,
        Outcome::Processed,
        "processed after the request's budget ran out"
    );
    let left = seen
        .lock()
        .unwrap()
        .expect("the budget reaches the handler");
    assert!(
        left > Duration::from_secs(9) && left <= Duration::from_secs(10),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_handler_over_its_budget_is_abandoned_and_retried() {
    let s = setup("budget", 0, 3).await;
    s.publish_copies("pay-slow", &captured("s1", 1), 1);
    let d = s.next().await;
    let (mut probe, _) = probe(
        "processed_budget_probe",
        Duration::from_secs(5),
        Duration::from_millis(200),
    )
    .await;
    let started = std::time::Instant::now();
    let outcome = probe.process(d).await;
    assert!(
        matches!(&outcome, Outcome::Retrying(r) if r.contains("budget")),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A loopback TCP proxy to PostgreSQL that can be taken down (every connection reset, new
/// ones refused) and brought back: a failover, as the consumer sees it.
struct Failover {
    addr: std::net::SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Failover {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (up2, gen2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let mut down = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.changed() => {} // both sockets dropped: reset
                    }
                });
            }
        });
        Self {
            addr,
            up,
            generation,
        }
    }

    fn config(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=test",
            self.addr.port()
        )
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A one-attempt consumer on `s`'s ledger that reaches PostgreSQL through `proxy`.
async fn behind(
    proxy: &Failover,
    s: &Setup,
    table: &str,
    patience: Duration,
) -> PgConsumer<PaymentCaptured, Ledger> {
    let handler = Ledger {
        table: s.ledger.clone(),
        fail_first: Mutex::new(0),
        traces: Default::default(),
    };
    let policy = RetryPolicy {
        attempts: 1,
        ..pactum::messaging::consumer::DEFAULT_POLICY
    };
    PgConsumer::new(
        &Database::new(&proxy.config()).unwrap(),
        table,
        "ledger",
        policy,
        handler,
    )
    .await
    .unwrap()
    .with_patience(patience)
}

#[tokio::test]
async fn a_database_failover_sends_nothing_to_the_dead_letter() {
    // One attempt: were an outage counted as a handler failure, every delivery below would be
    // dead-lettered at once.
    let mut s = setup("failover", 0, 1).await;
    let proxy = Failover::start().await;
    s.consumer = behind(&proxy, &s, "processed_failover", Duration::from_secs(20)).await;
    for n in 0..3 {
        s.publish_copies(&format!("pay-f{n}"), &captured(&format!("f{n}"), 10), 1);
    }
    let d = s.next().await;
    assert_eq!(s.consumer.process(d).await, Outcome::Processed);
    // The database goes away for 1.5 s, with the next delivery in hand.
    proxy.down();
    let back = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        proxy.up();
        proxy
    });
    let d = s.next().await;
    let started = std::time::Instant::now();
    assert_eq!(
        s.consumer.process(d).await,
        Outcome::Processed,
        "kept and processed after the failover"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    let _proxy = back.await.unwrap();
    let d = s.next().await;
    assert_eq!(s.consumer.process(d).await, Outcome::Processed);
    for n in 0..3 {
        assert_eq!(
            s.cents(&format!("f{n}")).await,
            Some(10),
            "f{n} applied once"
        );
    }
    let dlq = format!("{}.dlq", PaymentCaptured::SUBJECT);
    assert_eq!(s.bus.last_sequence(&dlq), 0, "nothing was dead-lettered");
}

#[tokio::test]
async fn a_database_gone_longer_than_the_patience_releases_the_delivery_unharmed() {
    let mut s = setup("outage", 0, 1).await;
    let proxy = Failover::start().await;
    s.consumer = behind(&proxy, &s, "processed_outage", Duration::from_millis(500)).await;
    s.publish_copies("pay-o", &captured("o1", 7), 1);
    proxy.down();
    let d = s.next().await;
    assert!(matches!(
        s.consumer.process(d).await,
        Outcome::Unavailable(_)
    ));
    proxy.up();
    // Released, not dead-lettered: it comes back and is processed.
    let d = s.next().await;
    assert_eq!(d.delivered, 2);
    assert_eq!(s.consumer.process(d).await, Outcome::Processed);
    assert_eq!(s.cents("o1").await, Some(7));
    let dlq = format!("{}.dlq", PaymentCaptured::SUBJECT);
    assert_eq!(s.bus.last_sequence(&dlq), 0, "nothing was dead-lettered");
}

#[tokio::test]
async fn a_batch_that_fails_at_commit_retries_its_events_one_by_one() {
    let mut s = setup("commit_fail", 0, 3).await;
    // Orders must be known — checked at commit (a deferred constraint), after every savepoint
    // was released: the commit of a batch holding an unknown order fails as a whole.
    s.check
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS known_commit_fail CASCADE;
             CREATE TABLE known_commit_fail (order_id TEXT PRIMARY KEY);
             INSERT INTO known_commit_fail VALUES ('c1'), ('c3');
             ALTER TABLE {} ADD CONSTRAINT known FOREIGN KEY (order_id)
               REFERENCES known_commit_fail (order_id) DEFERRABLE INITIALLY DEFERRED;",
            s.ledger
        ))
        .await
        .unwrap();
    for n in 1..=3 {
        s.publish_copies(&format!("pay-c{n}"), &captured(&format!("c{n}"), n), 1);
    }
    let mut batch = Vec::new();
    for _ in 0..3 {
        batch.push(s.next().await);
    }
    let outcomes = s.consumer.process_batch(batch).await;
    assert_eq!(outcomes[0], Outcome::Processed);
    assert!(
        matches!(&outcomes[1], Outcome::Retrying(r) if r.contains("commit")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Outcome::Processed);
    assert_eq!(
        (
            s.cents("c1").await,
            s.cents("c2").await,
            s.cents("c3").await
        ),
        (Some(1), None, Some(3))
    );
    let dlq = format!("{}.dlq", PaymentCaptured::SUBJECT);
    assert_eq!(s.bus.last_sequence(&dlq), 0);
}

#[tokio::test]
async fn records_past_the_retention_are_pruned_by_the_consumer_itself() {
    let mut s = setup("auto_prune", 0, 3).await;
    s.consumer = PgConsumer::new(
        &database(),
        "processed_auto_prune",
        "ledger",
        pactum::messaging::consumer::DEFAULT_POLICY,
        Ledger {
            table: s.ledger.clone(),
            fail_first: Mutex::new(0),
            traces: Default::default(),
        },
    )
    .await
    .unwrap()
    .with_retention(Duration::ZERO, Duration::ZERO);
    s.check
        .batch_execute("DELETE FROM processed_auto_prune")
        .await
        .unwrap();
    s.publish_copies("pay-p1", &captured("p1", 1), 1);
    let d = s.next().await;
    assert_eq!(s.consumer.process(d).await, Outcome::Processed);
    let left: i64 = s
        .check
        .query_one("SELECT count(*) FROM processed_auto_prune", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left, 0,
        "pruned after processing, with no call from the application"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_consumer_joins_its_group_applies_each_event_once_and_drains() {
    let check = connect().await;
    let (ledger, processed) = ("ledger_spawned", "processed_spawned");
    check
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {ledger}; DROP TABLE IF EXISTS {processed};
             CREATE TABLE {ledger} (order_id TEXT PRIMARY KEY, cents BIGINT NOT NULL);"
        ))
        .await
        .unwrap();
    let bus = Bus::new();
    let info: &'static pactum::ConsumerInfo = Box::leak(Box::new(pactum::ConsumerInfo {
        service: "ledger",
        subject: PaymentCaptured::SUBJECT,
        group: "spawned",
        delivery: Mode::Queue,
        retry: None,
        dead_letter: true,
        budget: None,
    }));
    let shutdown = pactum::shutdown::Shutdown::new();
    let handler = Ledger {
        table: ledger.into(),
        fail_first: Mutex::new(0),
        traces: Arc::default(),
    };
    PgConsumer::spawn(&bus, info, &database(), processed, handler, &shutdown)
        .await
        .unwrap();
    let ctx = Context::new();
    for (id, order) in [("s-1", "o-1"), ("s-2", "o-2")] {
        let event = PaymentCaptured {
            order_id: order.into(),
            cents: 250,
        };
        publish_event(&bus, &ctx, id, &event).unwrap();
    }
    // The same event again, past the bus's duplicate check: the dedup record skips it.
    let (h, payload) = pactum::messaging::bus::event_message(
        &ctx,
        "s-1",
        &PaymentCaptured {
            order_id: "o-1".into(),
            cents: 250,
        },
    )
    .unwrap();
    let mut h = h;
    h.insert(headers::MSG_ID.into(), "s-1-again".into());
    bus.publish(PaymentCaptured::SUBJECT, h, payload);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let done: i64 = check
            .query_one(&format!("SELECT count(*) FROM {processed}"), &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        // A work queue keeps only what is not yet acknowledged.
        if done >= 2 && bus.stored(PaymentCaptured::SUBJECT) == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not consumed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = check
        .query(
            &format!("SELECT order_id, cents FROM {ledger} ORDER BY order_id"),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [("o-1".into(), 250), ("o-2".into(), 250)]);
    assert_eq!(
        shutdown.drain(Duration::from_secs(5)).await,
        pactum::shutdown::Drained::All
    );
    // A group that cannot be joined is an error at start, naming the subject.
    let err = PgConsumer::spawn(
        &bus,
        info,
        &database(),
        "processed spawned",
        Ledger {
            table: ledger.into(),
            fail_first: Mutex::new(0),
            traces: Arc::default(),
        },
        &pactum::shutdown::Shutdown::new(),
    )
    .await
    .unwrap_err();
    assert!(err.contains(PaymentCaptured::SUBJECT), "{err}");
}
