//! The outbox's cost, measured against publishing directly, in the same run:
//!
//! - **throughput**: `EVENTS` handler runs, each committing one effect row in its own
//!   transaction, whose events reach JetStream either by a direct publish after the commit
//!   (awaiting the acknowledgement: the dual write the outbox replaces) or through the outbox
//!   (the event row in the same transaction) and a relay running beside the handlers. Each
//!   figure is end to end: from the first handler to the last event stored.
//! - **commit-to-publish latency**: events committed one at a time at a steady pace while a
//!   relay runs; the time from each commit returning to the event arriving at a subscriber,
//!   against the same for a direct publish (publish returning → arrival), p50 and p99.
//!
//! Needs the machine's PostgreSQL (`PACTUM_TEST_POSTGRES`) and NATS with JetStream
//! (`PACTUM_TEST_NATS`).
//!
//! `cargo bench -p pactum --bench outbox`

use futures_util::StreamExt;
use pactum::messaging::nats::Nats;
use pactum::store::outbox::{self, Pg, Relay, RelayConfig};
use pactum::store::postgres::Database;
use pactum::{Context, DeliveryMode as Mode, Event};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    total_cents: i64,
}

impl Event for OrderPlaced {
    const NAME: &'static str = "OrderPlaced";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "orders";
    const TYPE: &'static str = "orders.OrderPlaced.v1";
    const SUBJECT: &'static str = "bench_outbox.order_placed.v1";
    const DELIVERY: Mode = Mode::Stream;
    fn ordering_key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

const EVENTS: usize = 5_000;
const ROUNDS: usize = 3;
const LATENCY_EVENTS: usize = 400;
const TABLE: &str = "bench_outbox";
const STREAM: &str = "PACTUM_BENCH_OUTBOX";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn event(n: usize) -> OrderPlaced {
    OrderPlaced {
        // 500 keys: many events per key, as orders have.
        order_id: format!("order-{}", n % 500),
        total_cents: n as i64,
    }
}

async fn fresh(nats_url: &str, nats: &Nats, client: &tokio_postgres::Client) {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let _ = js.delete_stream(STREAM).await;
    let _ = js.delete_stream(format!("{STREAM}_DLQ")).await;
    nats.ensure_stream(
        STREAM,
        OrderPlaced::SUBJECT,
        Mode::Stream,
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE}; DROP TABLE IF EXISTS bench_effects;
             CREATE TABLE bench_effects (order_id TEXT NOT NULL, cents BIGINT NOT NULL);"
        ))
        .await
        .unwrap();
    outbox::create_table(client, TABLE).await.unwrap();
}

/// One handler run: the effect row, and the event in the outbox when `id` is given, in one
/// transaction.
async fn handler(client: &mut tokio_postgres::Client, id: Option<&str>, e: &OrderPlaced) {
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO bench_effects VALUES ($1, $2)",
        &[&e.order_id, &e.total_cents],
    )
    .await
    .unwrap();
    if let Some(id) = id {
        outbox::write(&Pg::new(&tx).table(TABLE), id, e)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn stored(nats_url: &str) -> u64 {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let mut s = js.get_stream(STREAM).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// Direct: events/s for `EVENTS` handler runs, each publishing after its commit.
async fn direct(
    nats_url: &str,
    nats: &Nats,
    client: &mut tokio_postgres::Client,
    round: usize,
) -> f64 {
    fresh(nats_url, nats, client).await;
    let ctx = Context::new();
    let started = Instant::now();
    for n in 0..EVENTS {
        handler(client, None, &event(n)).await;
        nats.publish_event(&ctx, &format!("d{round}-{n}"), &event(n))
            .await
            .unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(stored(nats_url).await, EVENTS as u64);
    EVENTS as f64 / secs
}

/// Outbox: events/s from the first write to the last event stored, a relay running beside
/// the writers.
async fn relayed(
    nats_url: &str,
    nats: &Nats,
    database: &Database,
    client: &mut tokio_postgres::Client,
    round: usize,
) -> f64 {
    fresh(nats_url, nats, client).await;
    let relay = Arc::new(Relay::new(nats.clone()));
    let waker = relay.waker();
    let task = {
        let (relay, database) = (relay.clone(), database.clone());
        tokio::spawn(async move { relay.run_postgres(&database, TABLE).await })
    };
    let started = Instant::now();
    for n in 0..EVENTS {
        handler(client, Some(&format!("o{round}-{n}")), &event(n)).await;
        waker.notify_one();
    }
    // Bounded: 120 s.
    while relay
        .stats()
        .published
        .load(std::sync::atomic::Ordering::Relaxed)
        < EVENTS as u64
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the relay fell behind"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    task.abort();
    assert_eq!(stored(nats_url).await, EVENTS as u64);
    EVENTS as f64 / secs
}

/// Arrival times of events by CloudEvents id, from a plain subscription to the subject.
async fn arrivals(nats_url: &str) -> Arc<Mutex<HashMap<String, Instant>>> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let client = async_nats::connect(nats_url).await.unwrap();
    let mut sub = client.subscribe(OrderPlaced::SUBJECT).await.unwrap();
    client.flush().await.unwrap();
    let s = seen.clone();
    tokio::spawn(async move {
        let _client = client;
        while let Some(m) = sub.next().await {
            let at = Instant::now();
            if let Some(id) = m.headers.as_ref().and_then(|h| h.get("ce-id")) {
                s.lock().unwrap().insert(id.to_string(), at);
            }
        }
    });
    seen
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

/// Latency (ms, p50 and p99) from "done" (commit or publish returned) to arrival.
async fn latency(
    nats_url: &str,
    nats: &Nats,
    database: &Database,
    client: &mut tokio_postgres::Client,
    through_outbox: bool,
) -> (f64, f64) {
    fresh(nats_url, nats, client).await;
    let seen = arrivals(nats_url).await;
    let relay = Arc::new(Relay::new(nats.clone()).with_config(RelayConfig::default()));
    let waker = relay.waker();
    let task = {
        let (relay, database) = (relay.clone(), database.clone());
        tokio::spawn(async move { relay.run_postgres(&database, TABLE).await })
    };
    let mut done = Vec::with_capacity(LATENCY_EVENTS);
    let ctx = Context::new();
    for n in 0..LATENCY_EVENTS {
        let id = format!("l{n}");
        if through_outbox {
            handler(client, Some(&id), &event(n)).await;
            done.push((id, Instant::now()));
            waker.notify_one();
        } else {
            nats.publish_event(&ctx, &id, &event(n)).await.unwrap();
            done.push((id, Instant::now()));
        }
        // A steady pace, not a backlog: one event every 2 ms.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < LATENCY_EVENTS {
        assert!(Instant::now() < deadline, "events did not arrive");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    let seen = seen.lock().unwrap();
    // An event can arrive before its "done" instant is taken (the ack races the delivery):
    // that counts as zero.
    let lat = done
        .iter()
        .map(|(id, at)| seen[id].saturating_duration_since(*at))
        .collect();
    percentiles(lat)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let nats_url = env("PACTUM_TEST_NATS", "nats://127.0.0.1:4222");
        let pg = env(
            "PACTUM_TEST_POSTGRES",
            "host=127.0.0.1 port=5432 user=postgres dbname=test",
        );
        let nats = Nats::connect(&nats_url)
            .await
            .unwrap_or_else(|e| panic!("NATS with JetStream is required: {e}"));
        let database = Database::new(&pg).unwrap();
        let mut client = database
            .connect()
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
        println!("{EVENTS} events, 500 ordering keys, {ROUNDS} alternating rounds, medians");
        let (mut d, mut o) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            d.push(direct(&nats_url, &nats, &mut client, round).await);
            o.push(relayed(&nats_url, &nats, &database, &mut client, round).await);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (d, o) = (median(d), median(o));
        println!("commit, then publish:     {d:>9.0} events/s");
        println!("outbox in the tx + relay: {o:>9.0} events/s");
        println!("outbox / direct:          {:>9.3}", o / d);
        let (dp50, dp99) = latency(&nats_url, &nats, &database, &mut client, false).await;
        let (op50, op99) = latency(&nats_url, &nats, &database, &mut client, true).await;
        println!("latency, {LATENCY_EVENTS} events one every 2 ms (ms):");
        println!("  direct: publish returned -> arrived   p50 {dp50:.3}  p99 {dp99:.3}");
        println!("  outbox: commit returned -> arrived    p50 {op50:.3}  p99 {op99:.3}");
    });
}
