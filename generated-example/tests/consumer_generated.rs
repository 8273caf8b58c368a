//! A generated consumer skeleton end to end: `notifications` consumes `payments`'
//! `PaymentCaptured`, built by the generated `consumers::payments_payment_captured_v1` with the
//! contract's group and retry policy, over the embedded bus and the real PostgreSQL
//! (`PACTUM_TEST_POSTGRES`, default `host=127.0.0.1 port=5432 user=postgres dbname=test`).

use generated_example::generated::{notifications, payments, pricing};
use pactum::messaging::bus::{event_message, headers, Bus, BusConfig, StartAt};
use pactum::messaging::consumer::tokio_postgres::Transaction;
use pactum::messaging::consumer::{Outcome, PgHandler};
use pactum::types::{Decimal, Uuid};
use pactum::{Context, Event};
use std::str::FromStr;
use std::time::Duration;

/// Sends one receipt per captured payment: a row per payment id. With `fail`, the mail
/// service is down.
struct Receipts {
    fail: bool,
}

impl PgHandler<payments::v1::PaymentCaptured> for Receipts {
    async fn handle(
        &self,
        tx: &Transaction<'_>,
        _ctx: &Context,
        event: payments::v1::PaymentCaptured,
    ) -> Result<(), String> {
        if self.fail {
            return Err("mail service down".into());
        }
        tx.execute(
            "INSERT INTO generated_receipts (payment_id, amount, sent) VALUES ($1, $2, 1)
             ON CONFLICT (payment_id) DO UPDATE SET sent = generated_receipts.sent + 1",
            &[
                &event.payment_id.to_string(),
                &event.amount.amount.to_string(),
            ],
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

async fn postgres() -> pactum::messaging::consumer::tokio_postgres::Client {
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
async fn generated_consumer_applies_each_payment_once() {
    let info = notifications::v1::events::consumers::PAYMENTS_PAYMENT_CAPTURED_V1;
    let check = postgres().await;
    check
        .batch_execute(
            "DROP TABLE IF EXISTS generated_receipts; DROP TABLE IF EXISTS generated_processed;
             CREATE TABLE generated_receipts (payment_id TEXT PRIMARY KEY, amount TEXT, sent INT);",
        )
        .await
        .unwrap();
    let mut consumer = notifications::v1::events::consumers::payments_payment_captured_v1(
        &database(),
        "generated_processed",
        Receipts { fail: false },
    )
    .await
    .unwrap();

    let bus = Bus::with_config(BusConfig {
        ack_wait: Duration::from_millis(100),
        ..BusConfig::default()
    });
    assert_eq!(info.subject, payments::v1::PaymentCaptured::SUBJECT);
    bus.join(info.subject, info.group, StartAt::First);
    let event = payments::v1::PaymentCaptured {
        payment_id: payments::v1::PaymentId(Uuid::from_u128(7)),
        order_id: Uuid::from_u128(8),
        amount: pricing::v1::Money {
            amount: Decimal::from_str("12.50").unwrap(),
            currency: pricing::v1::Currency("EUR".into()),
        },
    };
    // The broker delivers it three times.
    let (h, body) = event_message(&Context::new(), "cap-1", &event).unwrap();
    for copy in 0..3 {
        let mut h = h.clone();
        h.insert(headers::MSG_ID.into(), format!("copy-{copy}"));
        bus.publish(info.subject, h, body.clone());
    }
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let d = bus.next(info.subject, info.group).await;
        outcomes.push(consumer.process(d).await);
    }
    assert_eq!(
        outcomes,
        vec![Outcome::Processed, Outcome::Duplicate, Outcome::Duplicate]
    );
    let row = check
        .query_one("SELECT amount, sent FROM generated_receipts", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("12.50".to_string(), 1)
    );

    // The contract's retry policy reaches the runner: 3 attempts (with its 500 ms backoff),
    // then the dead letter.
    assert_eq!(info.retry.unwrap().attempts, 3);
    let mut failing = notifications::v1::events::consumers::payments_payment_captured_v1(
        &database(),
        "generated_processed",
        Receipts { fail: true },
    )
    .await
    .unwrap();
    let (h, body) = event_message(&Context::new(), "cap-2", &event).unwrap();
    bus.publish(info.subject, h, body);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(5), bus.next(info.subject, info.group))
            .await
            .expect("redelivered after the backoff");
        outcomes.push(failing.process(d).await);
    }
    let retrying = Outcome::Retrying("mail service down".into());
    assert_eq!(
        outcomes,
        vec![
            retrying.clone(),
            retrying,
            Outcome::DeadLettered("failed 3 times; last: mail service down".into())
        ]
    );
    bus.join(&format!("{}.dlq", info.subject), "ops", StartAt::First);
    let dead = bus.next(&format!("{}.dlq", info.subject), "ops").await;
    assert_eq!(dead.headers()[headers::ID], "cap-2");
}

#[tokio::test]
async fn generated_publisher_carries_trace_not_the_request_deadline_and_dedups_retries() {
    let bus = Bus::new();
    let subject = payments::v1::PaymentCaptured::SUBJECT;
    bus.join(subject, "audit", StartAt::First);
    let publisher = payments::v1::events::Publisher::new(bus.clone());
    let event = payments::v1::PaymentCaptured {
        payment_id: payments::v1::PaymentId(Uuid::from_u128(9)),
        order_id: Uuid::from_u128(10),
        amount: pricing::v1::Money {
            amount: Decimal::from_str("1.00").unwrap(),
            currency: pricing::v1::Currency("EUR".into()),
        },
    };
    let incoming = std::collections::BTreeMap::from([(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    )]);
    let ctx = Context::from_headers(&incoming).with_timeout(Duration::from_secs(30));
    let (first, retry) = ctx
        .scope(async {
            (
                publisher.payment_captured("cap-9", &event).await.unwrap(),
                publisher.payment_captured("cap-9", &event).await.unwrap(),
            )
        })
        .await;
    assert_eq!((first.duplicate, retry.duplicate), (false, true));
    assert_eq!(bus.last_sequence(subject), 1);
    let d = bus.next(subject, "audit").await;
    let h = d.headers();
    assert!(h["traceparent"].contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    // The contract gives `PaymentCaptured` no deadline: the request's 30 s does not travel.
    assert!(!h.contains_key(headers::DEADLINE), "{h:?}");
    assert_eq!(h[headers::TYPE], payments::v1::PaymentCaptured::TYPE);
    assert_eq!(
        h[headers::SUBJECT],
        event.order_id.to_string(),
        "the ordering key"
    );
}

/// Counts receipts in memory; for the in-memory and SQLite constructors.
#[derive(Clone, Default)]
struct Sent(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl pactum::messaging::consumer::MemoryHandler<payments::v1::PaymentCaptured> for Sent {
    async fn handle(
        &self,
        _ctx: &Context,
        _event: payments::v1::PaymentCaptured,
    ) -> Result<(), String> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl pactum::messaging::consumer::SqliteHandler<payments::v1::PaymentCaptured> for Sent {
    fn handle(
        &self,
        tx: &pactum::messaging::consumer::rusqlite::Connection,
        _ctx: &Context,
        event: payments::v1::PaymentCaptured,
    ) -> Result<(), String> {
        tx.execute(
            "INSERT INTO receipts (payment_id) VALUES (?1)",
            [event.payment_id.to_string()],
        )
        .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Publishes `event` under `id` `copies` times with distinct broker ids (so all are stored).
fn deliver_copies(bus: &Bus, id: &str, event: &payments::v1::PaymentCaptured, copies: usize) {
    let (h, body) = event_message(&Context::new(), id, event).unwrap();
    for copy in 0..copies {
        let mut h = h.clone();
        h.insert(headers::MSG_ID.into(), format!("{id}-copy-{copy}"));
        bus.publish(payments::v1::PaymentCaptured::SUBJECT, h, body.clone());
    }
}

#[tokio::test]
async fn generated_memory_and_sqlite_consumers_apply_each_payment_once() {
    let info = notifications::v1::events::consumers::PAYMENTS_PAYMENT_CAPTURED_V1;
    let bus = Bus::new();
    bus.join(info.subject, "memory", StartAt::First);
    bus.join(info.subject, "sqlite", StartAt::First);
    let event = payments::v1::PaymentCaptured {
        payment_id: payments::v1::PaymentId(Uuid::from_u128(11)),
        order_id: Uuid::from_u128(12),
        amount: pricing::v1::Money {
            amount: Decimal::from_str("3.00").unwrap(),
            currency: pricing::v1::Currency("EUR".into()),
        },
    };
    deliver_copies(&bus, "cap-11", &event, 3);

    let sent = Sent::default();
    let mut memory =
        notifications::v1::events::consumers::payments_payment_captured_v1_memory(sent.clone());
    let conn = pactum::messaging::consumer::rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE receipts (payment_id TEXT NOT NULL)")
        .unwrap();
    let mut sqlite = notifications::v1::events::consumers::payments_payment_captured_v1_sqlite(
        conn,
        "processed",
        Sent::default(),
    )
    .unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(memory.process(bus.next(info.subject, "memory").await).await);
        outcomes.push(sqlite.process(bus.next(info.subject, "sqlite").await).await);
    }
    use Outcome::{Duplicate, Processed};
    assert_eq!(
        outcomes,
        vec![Processed, Processed, Duplicate, Duplicate, Duplicate, Duplicate]
    );
    assert_eq!(sent.0.load(std::sync::atomic::Ordering::SeqCst), 1);
}
