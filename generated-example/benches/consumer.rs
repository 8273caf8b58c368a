//! Events per second through the generated idempotent consumer, against a hand-written raw
//! async-nats consume-and-ack loop on the same stream doing the same effect, in one run.
//!
//! Every contender reads the same N `PaymentCaptured` events from one JetStream stream through
//! its own durable group, decodes each, writes one row (the effect), and acknowledges:
//! - raw (baseline): async-nats pull stream, `serde_json`, one autocommit INSERT, `ack()`;
//! - generated: `notifications::v1::events::consumers::payments_payment_captured_v1{,_sqlite}` over
//!   `pactum::messaging::nats::Group`, the handler writing the same row inside the consumer's
//!   transaction, with the dedup record, trace context and deadline checks.
//!
//! Also: the raw loop with no effect (the transport's ceiling), and the embedded bus
//! (publish + `MemoryConsumer`).
//!
//! The same on RabbitMQ: the N events on one RabbitMQ stream, a raw lapin consume (`basic.qos`
//! at the same prefetch) + INSERT + `basic.ack` loop as the baseline, against the generated
//! PostgreSQL consumer over `pactum::messaging::rabbitmq::Group`.
//!
//! `cargo bench -p generated-example --bench consumer` (needs NATS with JetStream, RabbitMQ
//! and PostgreSQL: `PACTUM_TEST_NATS`, `PACTUM_TEST_RABBITMQ`, `PACTUM_TEST_POSTGRES`;
//! `BENCH_EVENTS` sets N).

use futures_util::StreamExt;
use generated_example::generated::{notifications, payments, pricing};
use pactum::messaging::bus::{event_message, Bus, StartAt};
use pactum::messaging::consumer::rusqlite;
use pactum::messaging::consumer::tokio_postgres::{self, Transaction};
use pactum::messaging::consumer::{MemoryHandler, Outcome, PgHandler, SqliteHandler};
use pactum::messaging::nats::Nats;
use pactum::types::{Decimal, Uuid};
use pactum::{Context, Event};
use std::str::FromStr;
use std::time::{Duration, Instant};

type Captured = payments::v1::PaymentCaptured;

const ROUNDS: usize = 3;

fn nats_url() -> String {
    std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
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
        .unwrap_or_else(|e| panic!("PostgreSQL is required ({config}): {e}"));
    tokio::spawn(conn);
    client
}

fn event(n: u128) -> Captured {
    payments::v1::PaymentCaptured {
        payment_id: payments::v1::PaymentId(Uuid::from_u128(n)),
        order_id: Uuid::from_u128(n + 1_000_000),
        amount: pricing::v1::Money {
            amount: Decimal::from_str("12.50").unwrap(),
            currency: pricing::v1::Currency("EUR".into()),
        },
    }
}

/// The effect every contender performs: one row per payment.
const PG_INSERT: &str = "INSERT INTO bench_receipts (payment_id, amount) VALUES ($1, $2)";
const SQLITE_INSERT: &str = "INSERT INTO bench_receipts (payment_id, amount) VALUES (?1, ?2)";

struct PgReceipts;

impl PgHandler<Captured> for PgReceipts {
    async fn handle(
        &self,
        tx: &Transaction<'_>,
        _ctx: &Context,
        e: Captured,
    ) -> Result<(), String> {
        tx.execute(
            PG_INSERT,
            &[&e.payment_id.to_string(), &e.amount.amount.to_string()],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

struct SqliteReceipts;

impl SqliteHandler<Captured> for SqliteReceipts {
    fn handle(&self, tx: &rusqlite::Connection, _ctx: &Context, e: Captured) -> Result<(), String> {
        tx.prepare_cached(SQLITE_INSERT)
            .and_then(|mut s| s.execute([e.payment_id.to_string(), e.amount.amount.to_string()]))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

struct Count;

impl MemoryHandler<Captured> for Count {
    async fn handle(&self, _ctx: &Context, e: Captured) -> Result<(), String> {
        std::hint::black_box(e);
        Ok(())
    }
}

fn sqlite(path: &std::path::Path) -> rusqlite::Connection {
    let _ = std::fs::remove_file(path);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE bench_receipts (payment_id TEXT NOT NULL, amount TEXT NOT NULL)",
    )
    .unwrap();
    conn
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    RawNoEffect,
    RawPg,
    GeneratedPg,
    GeneratedPgBatch,
    RawSqlite,
    GeneratedSqlite,
    GeneratedSqliteBatch,
}

struct Bench {
    nats: Nats,
    js: async_nats::jetstream::Context,
    stream: String,
    subject: String,
    events: usize,
    prefetch: usize,
}

impl Bench {
    async fn run(&self, who: Who, round: usize) -> f64 {
        let group = format!("{who:?}_{round}");
        let pg = postgres().await;
        pg.batch_execute(
            "DROP TABLE IF EXISTS bench_receipts; DROP TABLE IF EXISTS bench_processed;
             CREATE TABLE bench_receipts (payment_id TEXT NOT NULL, amount TEXT NOT NULL);",
        )
        .await
        .unwrap();
        // A file per run: a WAL left by an earlier run must never meet a fresh database.
        let db =
            std::env::temp_dir().join(format!("pactum-bench-{}-{group}.db", std::process::id()));
        let n = self.events;
        let start;
        match who {
            Who::RawNoEffect | Who::RawPg | Who::RawSqlite => {
                let stream = self.js.get_stream(&self.stream).await.unwrap();
                let consumer = stream
                    .create_consumer(async_nats::jetstream::consumer::pull::Config {
                        durable_name: Some(group.clone()),
                        filter_subject: self.subject.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let mut messages = consumer
                    .stream()
                    .max_messages_per_batch(self.prefetch)
                    .messages()
                    .await
                    .unwrap();
                let conn = (who == Who::RawSqlite).then(|| sqlite(&db));
                start = Instant::now();
                for _ in 0..n {
                    let m = messages.next().await.unwrap().unwrap();
                    let e: Captured = serde_json::from_slice(&m.payload).unwrap();
                    match who {
                        Who::RawPg => {
                            pg.execute(
                                PG_INSERT,
                                &[&e.payment_id.to_string(), &e.amount.amount.to_string()],
                            )
                            .await
                            .unwrap();
                        }
                        Who::RawSqlite => {
                            let conn = conn.as_ref().unwrap();
                            conn.prepare_cached(SQLITE_INSERT)
                                .unwrap()
                                .execute([e.payment_id.to_string(), e.amount.amount.to_string()])
                                .unwrap();
                        }
                        _ => {
                            std::hint::black_box(e);
                        }
                    }
                    m.ack().await.unwrap();
                }
            }
            Who::GeneratedPg
            | Who::GeneratedSqlite
            | Who::GeneratedPgBatch
            | Who::GeneratedSqliteBatch => {
                let mut group = self
                    .nats
                    .join_prefetching(
                        &self.stream,
                        &self.subject,
                        &group,
                        StartAt::First,
                        Duration::from_secs(30),
                        self.prefetch,
                    )
                    .await
                    .unwrap();
                let batched = matches!(who, Who::GeneratedPgBatch | Who::GeneratedSqliteBatch);
                let max = if batched { self.prefetch } else { 1 };
                // The same loop for either store's consumer (they share no trait).
                macro_rules! drain {
                    ($consumer:ident) => {
                        let mut done = 0;
                        while done < n {
                            if batched {
                                let batch = group.next_batch(max.min(n - done)).await.unwrap();
                                done += count_processed($consumer.process_batch(batch).await);
                            } else {
                                let d = group.next().await.unwrap();
                                done += count_processed(vec![$consumer.process(d).await]);
                            }
                        }
                    };
                }
                if matches!(who, Who::GeneratedPg | Who::GeneratedPgBatch) {
                    let mut consumer =
                        notifications::v1::events::consumers::payments_payment_captured_v1(
                            &database(),
                            "bench_processed",
                            PgReceipts,
                        )
                        .await
                        .unwrap();
                    start = Instant::now();
                    drain!(consumer);
                } else {
                    let mut consumer =
                        notifications::v1::events::consumers::payments_payment_captured_v1_sqlite(
                            sqlite(&db),
                            "bench_processed",
                            SqliteReceipts,
                        )
                        .unwrap();
                    start = Instant::now();
                    drain!(consumer);
                }
            }
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        // Every contender must have done the whole effect, or its figure means nothing.
        match who {
            Who::RawPg | Who::GeneratedPg | Who::GeneratedPgBatch => {
                let rows: i64 = pg
                    .query_one("SELECT count(*) FROM bench_receipts", &[])
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(rows as usize, n);
            }
            Who::RawSqlite | Who::GeneratedSqlite | Who::GeneratedSqliteBatch => {
                let rows: i64 = rusqlite::Connection::open(&db)
                    .unwrap()
                    .query_row("SELECT count(*) FROM bench_receipts", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(rows as usize, n);
            }
            Who::RawNoEffect => {}
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        rate
    }
}

/// Every outcome must be `Processed`: a duplicate or a retry would mean the run measured
/// something else.
fn count_processed(outcomes: Vec<Outcome>) -> usize {
    for o in &outcomes {
        assert_eq!(*o, Outcome::Processed);
    }
    outcomes.len()
}

fn rabbit_url() -> String {
    std::env::var("PACTUM_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The RabbitMQ contenders: every one reads the same stream from its first message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RabbitWho {
    RawNoEffect,
    RawPg,
    GeneratedPg,
    GeneratedPgBatch,
}

struct RabbitBench {
    rabbit: pactum::messaging::rabbitmq::RabbitMq,
    subject: String,
    events: usize,
    prefetch: u16,
}

impl RabbitBench {
    async fn run(&self, who: RabbitWho, round: usize) -> f64 {
        let group = format!("{who:?}_{round}");
        let pg = postgres().await;
        pg.batch_execute(
            "DROP TABLE IF EXISTS bench_receipts; DROP TABLE IF EXISTS bench_processed;
             CREATE TABLE bench_receipts (payment_id TEXT NOT NULL, amount TEXT NOT NULL);",
        )
        .await
        .unwrap();
        let n = self.events;
        let start;
        match who {
            RabbitWho::RawNoEffect | RabbitWho::RawPg => {
                use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
                let connection = lapin::Connection::connect(
                    &rabbit_url(),
                    lapin::ConnectionProperties::default(),
                )
                .await
                .unwrap();
                let channel = connection.create_channel().await.unwrap();
                channel
                    .basic_qos(self.prefetch, BasicQosOptions::default())
                    .await
                    .unwrap();
                let mut args = lapin::types::FieldTable::default();
                args.insert(
                    "x-stream-offset".into(),
                    lapin::types::AMQPValue::LongString("first".into()),
                );
                let mut consumer = channel
                    .basic_consume(
                        self.subject.as_str().into(),
                        group.as_str().into(),
                        BasicConsumeOptions::default(),
                        args,
                    )
                    .await
                    .unwrap();
                start = Instant::now();
                for _ in 0..n {
                    let d = consumer.next().await.unwrap().unwrap();
                    let e: Captured = serde_json::from_slice(&d.data).unwrap();
                    if who == RabbitWho::RawPg {
                        pg.execute(
                            PG_INSERT,
                            &[&e.payment_id.to_string(), &e.amount.amount.to_string()],
                        )
                        .await
                        .unwrap();
                    } else {
                        std::hint::black_box(e);
                    }
                    d.acker.ack(BasicAckOptions::default()).await.unwrap();
                }
            }
            RabbitWho::GeneratedPg | RabbitWho::GeneratedPgBatch => {
                let mut group = self
                    .rabbit
                    .join(
                        &self.subject,
                        &group,
                        pactum::DeliveryMode::Stream,
                        StartAt::First,
                        self.prefetch,
                    )
                    .await
                    .unwrap();
                let mut consumer =
                    notifications::v1::events::consumers::payments_payment_captured_v1(
                        &database(),
                        "bench_processed",
                        PgReceipts,
                    )
                    .await
                    .unwrap();
                let max = usize::from(self.prefetch);
                start = Instant::now();
                let mut done = 0;
                while done < n {
                    if who == RabbitWho::GeneratedPgBatch {
                        let batch = group.next_batch(max.min(n - done)).await.unwrap();
                        done += count_processed(consumer.process_batch(batch).await);
                    } else {
                        let d = group.next().await.unwrap();
                        done += count_processed(vec![consumer.process(d).await]);
                    }
                }
                group.release().await;
            }
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        if who != RabbitWho::RawNoEffect {
            let rows: i64 = pg
                .query_one("SELECT count(*) FROM bench_receipts", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(rows as usize, n);
        }
        rate
    }
}

/// The RabbitMQ half: publishes the events to a stream of this run's own, runs every
/// contender `ROUNDS` times (order rotated) and prints the table.
async fn rabbit_bench(events: usize, prefetch: u16) {
    use pactum::messaging::bus::EventSink as _;
    let rabbit = pactum::messaging::rabbitmq::RabbitMq::connect(&rabbit_url())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ is required: {e}"));
    let subject = format!("bench.{}.rabbit_payment_captured", std::process::id());
    // Declared by a group joining it; the stream then exists for every contender.
    let mut declare = rabbit
        .join(
            &subject,
            "declare",
            pactum::DeliveryMode::Stream,
            StartAt::First,
            1,
        )
        .await
        .unwrap();
    declare.release().await;
    let ctx = Context::new();
    let mut batch = Vec::new();
    for i in 0..events {
        let (h, body) = event_message(&ctx, &format!("evt-{i}"), &event(i as u128)).unwrap();
        batch.push((subject.clone(), h, body));
        if batch.len() == 500 || i + 1 == events {
            for r in rabbit.send_all(std::mem::take(&mut batch)).await {
                r.unwrap();
            }
        }
    }
    let bench = RabbitBench {
        rabbit,
        subject: subject.clone(),
        events,
        prefetch,
    };
    let all = [
        RabbitWho::RawNoEffect,
        RabbitWho::RawPg,
        RabbitWho::GeneratedPg,
        RabbitWho::GeneratedPgBatch,
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); all.len()];
    for round in 0..ROUNDS {
        for k in 0..all.len() {
            let i = (k + round) % all.len();
            rates[i].push(bench.run(all[i], round).await);
        }
    }
    let m: Vec<f64> = rates.into_iter().map(median).collect();
    println!("\nRabbitMQ stream {subject}, {events} events; median of {ROUNDS} rounds\n");
    println!("| contender (prefetch {prefetch}) | events/s | ratio |");
    println!("|---|---|---|");
    let rows = [
        ("raw lapin loop, no effect", None),
        ("raw lapin loop + PostgreSQL INSERT (baseline)", Some(1)),
        ("generated consumer, PostgreSQL store, `process`", Some(1)),
        (
            "generated consumer, PostgreSQL store, `process_batch`",
            Some(1),
        ),
    ];
    for (i, (name, baseline)) in rows.iter().enumerate() {
        let ratio = baseline.map_or("—".to_string(), |b| format!("{:.3}", m[i] / m[b]));
        println!("| {name} | {:.0} | {ratio} |", m[i]);
    }
    // The stream and the groups' offset queues go; nothing of this run is left behind.
    let connection =
        lapin::Connection::connect(&rabbit_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut queues = vec![
        subject.clone(),
        format!("{subject}.dlq"),
        format!("{subject}.declare.offset"),
    ];
    for round in 0..ROUNDS {
        for who in [RabbitWho::GeneratedPg, RabbitWho::GeneratedPgBatch] {
            queues.push(format!("{subject}.{who:?}_{round}.offset"));
        }
    }
    for q in queues {
        let _ = channel
            .queue_delete(q.as_str().into(), Default::default())
            .await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn bus_rate(events: usize) -> (f64, f64) {
    let bus = Bus::new();
    let subject = payments::v1::PaymentCaptured::SUBJECT;
    bus.join(subject, "raw", StartAt::First);
    bus.join(subject, "memory", StartAt::First);
    let ctx = Context::new();
    let start = Instant::now();
    for i in 0..events {
        let (h, body) = event_message(&ctx, &format!("evt-{i}"), &event(i as u128)).unwrap();
        bus.publish(subject, h, body);
    }
    let publish = events as f64 / start.elapsed().as_secs_f64();
    let mut consumer =
        notifications::v1::events::consumers::payments_payment_captured_v1_memory(Count);
    let start = Instant::now();
    for _ in 0..events {
        let d = bus.next(subject, "memory").await;
        assert_eq!(consumer.process(d).await, Outcome::Processed);
    }
    let consume = events as f64 / start.elapsed().as_secs_f64();
    (publish, consume)
}

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // `BENCH_ONLY=rabbitmq` runs the RabbitMQ half alone.
        if std::env::var("BENCH_ONLY").as_deref() == Ok("rabbitmq") {
            rabbit_bench(events, 64).await;
            return;
        }
        let nats = Nats::connect(&nats_url())
            .await
            .unwrap_or_else(|e| panic!("NATS with JetStream is required: {e}"));
        let client = async_nats::connect(nats_url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let tag = std::process::id();
        let stream = format!("BENCH_CONSUMER_{tag}");
        let subject = format!("bench.{tag}.payment_captured");
        nats.ensure_stream(
            &stream,
            &subject,
            pactum::DeliveryMode::Stream,
            Duration::from_secs(120),
        )
        .await
        .unwrap();
        let ctx = Context::new();
        for i in 0..events {
            let (h, body) = event_message(&ctx, &format!("evt-{i}"), &event(i as u128)).unwrap();
            nats.publish(&subject, &h, body).await.unwrap();
        }
        println!("{events} events on stream {stream}; median of {ROUNDS} rounds, order rotated\n");
        let prefetch: usize = std::env::var("BENCH_PREFETCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64);
        let bench = Bench {
            nats,
            js: js.clone(),
            stream: stream.clone(),
            subject,
            events,
            prefetch,
        };
        let all = [
            Who::RawNoEffect,
            Who::RawPg,
            Who::GeneratedPg,
            Who::GeneratedPgBatch,
            Who::RawSqlite,
            Who::GeneratedSqlite,
            Who::GeneratedSqliteBatch,
        ];
        let mut rates: Vec<(Who, Vec<f64>)> = all.iter().map(|w| (*w, Vec::new())).collect();
        for round in 0..ROUNDS {
            for k in 0..all.len() {
                let i = (k + round) % all.len();
                let r = bench.run(all[i], round).await;
                rates[i].1.push(r);
            }
        }
        let m: Vec<f64> = rates.into_iter().map(|(_, r)| median(r)).collect();
        println!("| contender (prefetch {prefetch}) | events/s | ratio |");
        println!("|---|---|---|");
        let rows = [
            ("raw async-nats loop, no effect", None),
            (
                "raw async-nats loop + PostgreSQL INSERT (baseline)",
                Some(1),
            ),
            ("generated consumer, PostgreSQL store, `process`", Some(1)),
            (
                "generated consumer, PostgreSQL store, `process_batch`",
                Some(1),
            ),
            ("raw async-nats loop + SQLite INSERT (baseline)", Some(4)),
            ("generated consumer, SQLite store, `process`", Some(4)),
            ("generated consumer, SQLite store, `process_batch`", Some(4)),
        ];
        for (i, (name, baseline)) in rows.iter().enumerate() {
            let ratio = baseline.map_or("—".to_string(), |b| format!("{:.3}", m[i] / m[b]));
            println!("| {name} | {:.0} | {ratio} |", m[i]);
        }
        js.delete_stream(&stream).await.unwrap();
        js.delete_stream(format!("{stream}_DLQ")).await.unwrap();

        rabbit_bench(events, u16::try_from(prefetch).unwrap_or(u16::MAX)).await;

        let mut publish = Vec::new();
        let mut consume = Vec::new();
        for _ in 0..ROUNDS {
            let (p, c) = bus_rate(events * 10).await;
            publish.push(p);
            consume.push(c);
        }
        println!(
            "\nembedded bus, {} events: publish {:.0}/s; generated in-memory consumer {:.0}/s",
            events * 10,
            median(publish),
            median(consume)
        );
    });
}
