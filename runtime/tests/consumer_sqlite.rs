//! The idempotent consumer on an SQLite file, over the embedded bus: duplicates, a process
//! that dies between commit and ack (a new consumer opens the same file), and failures that
//! roll back.

use pactum::messaging::bus::{event_message, headers, Bus, BusConfig, StartAt};
use pactum::messaging::consumer::{Outcome, SqliteConsumer, SqliteHandler};
use pactum::{Context, DeliveryMode as Mode, Event, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
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

/// Counts deliveries per parcel; fails the first `fail_first` calls after writing.
struct Counter {
    fail_first: Cell<u32>,
}

impl SqliteHandler<ParcelDelivered> for Counter {
    fn handle(
        &self,
        tx: &rusqlite::Connection,
        _ctx: &Context,
        event: ParcelDelivered,
    ) -> Result<(), String> {
        tx.execute(
            "INSERT INTO delivered (parcel, n) VALUES (?1, 1)
             ON CONFLICT (parcel) DO UPDATE SET n = n + 1",
            [&event.parcel],
        )
        .map_err(|e| e.to_string())?;
        if self.fail_first.get() > 0 {
            self.fail_first.set(self.fail_first.get() - 1);
            return Err("disk full".into());
        }
        Ok(())
    }
}

fn open(path: &std::path::Path, fail_first: u32) -> SqliteConsumer<ParcelDelivered, Counter> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS delivered (parcel TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    )
    .unwrap();
    let policy = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        full_jitter: false,
    };
    let handler = Counter {
        fail_first: Cell::new(fail_first),
    };
    SqliteConsumer::new(conn, "processed", "counter", policy, handler).unwrap()
}

fn count(path: &std::path::Path, parcel: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT n FROM delivered WHERE parcel = ?1", [parcel], |r| {
        r.get(0)
    })
    .ok()
}

fn publish_copies(bus: &Bus, id: &str, parcel: &str, copies: usize) {
    let event = ParcelDelivered {
        parcel: parcel.into(),
    };
    let (h, body) = event_message(&Context::new(), id, &event).unwrap();
    for copy in 0..copies {
        let mut h = h.clone();
        h.insert(headers::MSG_ID.into(), format!("{id}-{copy}"));
        bus.publish(ParcelDelivered::SUBJECT, h, body.clone());
    }
}

#[tokio::test]
async fn duplicates_crashes_and_failures_leave_one_effect() {
    let path = std::env::temp_dir().join(format!("pactum-consumer-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let bus = Bus::with_config(BusConfig {
        ack_wait: Duration::from_millis(100),
        ..BusConfig::default()
    });
    bus.join(ParcelDelivered::SUBJECT, "counter", StartAt::First);
    let next = || bus.next(ParcelDelivered::SUBJECT, "counter");

    // Three deliveries of one event: one effect.
    let mut consumer = open(&path, 0);
    publish_copies(&bus, "evt-1", "p1", 3);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(consumer.process(next().await).await);
    }
    assert_eq!(
        outcomes,
        vec![Outcome::Processed, Outcome::Duplicate, Outcome::Duplicate]
    );
    assert_eq!(count(&path, "p1"), Some(1));

    // The process dies after committing, before the ack; a new one opens the same file.
    publish_copies(&bus, "evt-2", "p2", 1);
    let d = next().await;
    assert_eq!(consumer.apply(&d), Outcome::Processed);
    drop(d);
    drop(consumer);
    let mut restarted = open(&path, 0);
    let again = next().await;
    assert_eq!(again.delivered, 2);
    assert_eq!(restarted.process(again).await, Outcome::Duplicate);
    assert_eq!(count(&path, "p2"), Some(1));
    drop(restarted);

    // Two failures after writing: both roll back; the third attempt counts once.
    let mut flaky = open(&path, 2);
    publish_copies(&bus, "evt-3", "p3", 1);
    for attempt in 1..=3 {
        let outcome = flaky.process(next().await).await;
        if attempt < 3 {
            assert_eq!(outcome, Outcome::Retrying("disk full".into()));
            assert_eq!(count(&path, "p3"), None, "rolled back");
        } else {
            assert_eq!(outcome, Outcome::Processed);
        }
    }
    assert_eq!(count(&path, "p3"), Some(1));
    assert_eq!(flaky.prune(Duration::from_secs(3600)).unwrap(), 0);
    drop(flaky);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_batch_commits_once_and_a_failing_event_undoes_only_itself() {
    let path = std::env::temp_dir().join(format!("pactum-batch-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let bus = Bus::with_config(BusConfig {
        ack_wait: Duration::from_millis(100),
        ..BusConfig::default()
    });
    bus.join(ParcelDelivered::SUBJECT, "counter", StartAt::First);
    // The first handler call writes, then fails: only its savepoint rolls back.
    let mut consumer = open(&path, 1);
    publish_copies(&bus, "evt-a", "a", 1);
    publish_copies(&bus, "evt-b", "b", 2);
    publish_copies(&bus, "evt-c", "c", 1);
    let mut batch = Vec::new();
    for _ in 0..4 {
        batch.push(bus.next(ParcelDelivered::SUBJECT, "counter").await);
    }
    let outcomes = consumer.process_batch(batch).await;
    assert_eq!(
        outcomes,
        vec![
            Outcome::Retrying("disk full".into()),
            Outcome::Processed,
            Outcome::Duplicate,
            Outcome::Processed
        ]
    );
    assert_eq!(
        (count(&path, "a"), count(&path, "b"), count(&path, "c")),
        (None, Some(1), Some(1))
    );
    let again = bus.next(ParcelDelivered::SUBJECT, "counter").await;
    assert_eq!(
        consumer.process_batch(vec![again]).await,
        vec![Outcome::Processed]
    );
    assert_eq!(count(&path, "a"), Some(1));
    drop(consumer);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_batch_that_fails_at_commit_retries_its_events_one_by_one() {
    let path = std::env::temp_dir().join(format!("pactum-commit-fail-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // Parcels must be known — checked at commit (a deferred foreign key), after every
    // savepoint was released: the commit of a batch holding an unknown parcel fails whole.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE known (parcel TEXT PRIMARY KEY);
         INSERT INTO known VALUES ('a'), ('c');
         CREATE TABLE delivered (
           parcel TEXT PRIMARY KEY REFERENCES known (parcel) DEFERRABLE INITIALLY DEFERRED,
           n INTEGER NOT NULL
         );",
    )
    .unwrap();
    let policy = RetryPolicy {
        attempts: 3,
        ..pactum::messaging::consumer::DEFAULT_POLICY
    };
    let handler = Counter {
        fail_first: Cell::new(0),
    };
    let mut consumer = SqliteConsumer::new(conn, "processed", "counter", policy, handler).unwrap();
    let bus = Bus::new();
    bus.join(ParcelDelivered::SUBJECT, "counter", StartAt::First);
    for p in ["a", "b", "c"] {
        publish_copies(&bus, &format!("evt-{p}"), p, 1);
    }
    let mut batch = Vec::new();
    for _ in 0..3 {
        batch.push(bus.next(ParcelDelivered::SUBJECT, "counter").await);
    }
    let outcomes = consumer.process_batch(batch).await;
    assert_eq!(outcomes[0], Outcome::Processed);
    assert!(
        matches!(&outcomes[1], Outcome::Retrying(r) if r.contains("commit")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Outcome::Processed);
    assert_eq!(
        (count(&path, "a"), count(&path, "b"), count(&path, "c")),
        (Some(1), None, Some(1))
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn records_past_the_retention_are_pruned_by_the_consumer_itself() {
    let path = std::env::temp_dir().join(format!("pactum-prune-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let bus = Bus::new();
    bus.join(ParcelDelivered::SUBJECT, "counter", StartAt::First);
    let mut consumer = open(&path, 0).with_retention(Duration::ZERO, Duration::ZERO);
    publish_copies(&bus, "evt-old", "old", 1);
    let d = bus.next(ParcelDelivered::SUBJECT, "counter").await;
    assert_eq!(consumer.process(d).await, Outcome::Processed);
    // SQLite records whole seconds: the next event comes a second later and its processing
    // prunes the first record (not its own).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publish_copies(&bus, "evt-new", "new", 1);
    let d = bus.next(ParcelDelivered::SUBJECT, "counter").await;
    assert_eq!(consumer.process(d).await, Outcome::Processed);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM processed ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, ["evt-new"], "pruned with no call from the application");
    let _ = std::fs::remove_file(&path);
}
