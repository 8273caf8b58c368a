//! The idempotent consumer against the real PostgreSQL (`PACTUM_TEST_POSTGRES`, default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`): duplicates, a crash between commit
//! and ack, retries, poison messages and expired deadlines.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use pactum::bus::{headers, publish_event, Bus, BusConfig, Headers, StartAt};
use pactum::consumer::{Outcome, PgConsumer, PgHandler, REASON_HEADER};
use pactum::{Context, Delivery as Mode, Event, RetryPolicy};
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
    let consumer = PgConsumer::new(connect().await, &processed, "ledger", policy, handler)
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

    async fn next(&self) -> pactum::bus::Delivery {
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
        "deadline expired before processing"
    );
    assert_eq!(s.cents("o6").await, None, "expired work is not done");
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

#[tokio::test]
async fn the_handler_works_under_the_publishers_remaining_deadline() {
    let s = setup("deadline", 0, 3).await;
    let ctx = Context::new().with_timeout(Duration::from_secs(60));
    publish_event(&s.bus, &ctx, "pay-d", &captured("d1", 1)).unwrap();
    let d = s.next().await;
    let seen = Arc::new(Mutex::new(None));
    struct Probe(Arc<Mutex<Option<Duration>>>);
    impl PgHandler<PaymentCaptured> for Probe {
        async fn handle(
            &self,
            _tx: &tokio_postgres::Transaction<'_>,
            ctx: &Context,
            _event: PaymentCaptured,
        ) -> Result<(), String> {
            *self.0.lock().unwrap() = ctx.remaining();
            Ok(())
        }
    }
    let mut probe = PgConsumer::new(
        connect().await,
        "processed_deadline_probe",
        "probe",
        pactum::consumer::DEFAULT_POLICY,
        Probe(seen.clone()),
    )
    .await
    .unwrap();
    s.check
        .batch_execute("DELETE FROM processed_deadline_probe")
        .await
        .unwrap();
    assert_eq!(probe.process(d).await, Outcome::Processed);
    let left = seen
        .lock()
        .unwrap()
        .expect("a deadline reaches the handler");
    assert!(
        left > Duration::from_secs(55) && left <= Duration::from_secs(60),
        "{left:?}"
    );
}
