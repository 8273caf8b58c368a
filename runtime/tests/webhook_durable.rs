//! Durable webhooks against the real PostgreSQL (`PACTUM_TEST_POSTGRES`) and a loopback
//! receiver: deliveries written in the handler's transaction, sent by the outbox relay on a
//! schedule that survives a relay restart, endpoints disabled after sustained failure or a
//! 410, and the receiver's dedup record in its own transaction.

use pactum::store::outbox::{self, Pg, Relay, RelayConfig};
use pactum::webhook::durable::{self, WebhookSink};
use pactum::webhook::{SignedDelivery, WebhookSecret, WebhookSender};
use pactum::Webhook;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderShipped {
    order_id: String,
}

impl Webhook for OrderShipped {
    const NAME: &'static str = "OrderShipped";
    const TYPE: &'static str = "shipping.order_shipped";
    const VERSION: u32 = 1;
}

fn secret() -> WebhookSecret {
    WebhookSecret::from_bytes(b"durable-webhook-test-secret-0123".to_vec()).unwrap()
}

/// A receiver answering `status(n)` to its n-th request (from 1), recording what verified.
#[derive(Clone)]
struct Receiver {
    requests: Arc<AtomicU32>,
    accepted: Arc<Mutex<Vec<String>>>,
    ids: Arc<Mutex<Vec<String>>>,
}

async fn receiver(status: fn(u32) -> u16) -> (String, Receiver) {
    let r = Receiver {
        requests: Arc::default(),
        accepted: Arc::default(),
        ids: Arc::default(),
    };
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
                let delivery = SignedDelivery::from_headers(&headers).unwrap();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                secret()
                    .verify(&delivery, &body, now, Duration::from_secs(300))
                    .expect("every attempt is signed");
                state.ids.lock().unwrap().push(delivery.id.to_string());
                let code = status(n);
                if code < 300 {
                    state.accepted.lock().unwrap().push(delivery.id.to_string());
                }
                http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, r)
}

async fn connect() -> tokio_postgres::Client {
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

async fn table(name: &str) -> (tokio_postgres::Client, String) {
    let client = connect().await;
    let table = format!("webhook_outbox_{name}");
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
    outbox::create_table(&client, &table).await.unwrap();
    (client, table)
}

const QUICK: &[Duration] = &[
    Duration::from_millis(10),
    Duration::from_millis(10),
    Duration::from_millis(10),
];

fn relay(sink: WebhookSink) -> Relay<WebhookSink> {
    Relay::new(sink).with_config(RelayConfig {
        schedule: Some(QUICK),
        ..RelayConfig::default()
    })
}

fn sink() -> WebhookSink {
    WebhookSink::new(WebhookSender::new(secret()))
}

/// Steps a fresh relay (as after a restart) until nothing is due, at most `steps` times.
async fn deliver(
    client: &mut tokio_postgres::Client,
    table: &str,
    steps: usize,
    sink: impl Fn() -> WebhookSink,
) {
    for _ in 0..steps {
        let relay = relay(sink());
        relay.step_postgres(client, table).await.unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn state(client: &tokio_postgres::Client, table: &str) -> Vec<(Option<String>, bool, i32)> {
    client
        .query(
            &format!(
                "SELECT parked_reason, sent_at IS NOT NULL, attempts FROM {table} ORDER BY seq"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn a_committed_webhook_is_delivered_through_failures_and_restarts_with_one_id() {
    let (url, r) = receiver(|n| if n <= 2 { 503 } else { 200 }).await;
    let (mut client, table) = table("deliver").await;
    let shipped = OrderShipped {
        order_id: "o1".into(),
    };
    {
        let tx = client.transaction().await.unwrap();
        durable::enqueue(&Pg::new(&tx).table(&table), &url, "msg_1", &shipped)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let tx = client.transaction().await.unwrap();
        durable::enqueue(&Pg::new(&tx).table(&table), &url, "msg_ghost", &shipped)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    // Each step runs on a new relay and sink: the schedule lives in the table, not in memory.
    deliver(&mut client, &table, 6, sink).await;
    assert_eq!(
        r.requests.load(Ordering::SeqCst),
        3,
        "two 503s, then accepted"
    );
    assert_eq!(
        *r.ids.lock().unwrap(),
        ["msg_1", "msg_1", "msg_1"],
        "one id for every attempt"
    );
    assert_eq!(*r.accepted.lock().unwrap(), ["msg_1"]);
    assert_eq!(state(&client, &table).await, vec![(None, true, 3)]);
}

#[tokio::test]
async fn a_delivery_that_fails_past_the_schedule_is_parked_and_a_410_disables_the_endpoint() {
    let (down, _) = receiver(|_| 503).await;
    let (gone, gone_r) = receiver(|_| 410).await;
    let (bad, _) = receiver(|_| 400).await;
    let (mut client, table) = table("give_up").await;
    let shipped = OrderShipped {
        order_id: "o2".into(),
    };
    {
        let tx = client.transaction().await.unwrap();
        let w = Pg::new(&tx).table(&table);
        durable::enqueue(&w, &down, "msg_down", &shipped)
            .await
            .unwrap();
        durable::enqueue(&w, &gone, "msg_gone", &shipped)
            .await
            .unwrap();
        durable::enqueue(&w, &gone, "msg_gone_2", &shipped)
            .await
            .unwrap();
        durable::enqueue(&w, &bad, "msg_bad", &shipped)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // One sink for the run: the 410 it saw disables the endpoint for the next row.
    let sink = Arc::new(sink());
    let relay = Relay::new(SharedSink(sink.clone())).with_config(RelayConfig {
        schedule: Some(QUICK),
        ..RelayConfig::default()
    });
    for _ in 0..8 {
        relay.step_postgres(&mut client, &table).await.unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let rows = state(&client, &table).await;
    let reason = |i: usize| rows[i].0.clone().unwrap_or_default();
    assert!(
        reason(0).starts_with("gave up after 4 attempts"),
        "{rows:?}"
    );
    assert_eq!(rows[0].2, 4);
    assert!(reason(1).contains("410"), "{rows:?}");
    assert!(reason(2).contains("disabled"), "{rows:?}");
    assert_eq!(
        gone_r.requests.load(Ordering::SeqCst),
        1,
        "nothing more sent to a gone endpoint"
    );
    assert!(
        reason(3).contains("rejected the delivery with 400"),
        "{rows:?}"
    );
    assert_eq!(relay.stats().parked.load(Ordering::SeqCst), 4);
    assert!(sink.sender().is_disabled(&gone));
}

#[tokio::test]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let (down, down_r) = receiver(|_| 503).await;
    let (mut client, table) = table("disable").await;
    let shipped = OrderShipped {
        order_id: "o3".into(),
    };
    {
        let tx = client.transaction().await.unwrap();
        let w = Pg::new(&tx).table(&table);
        durable::enqueue(&w, &down, "msg_a", &shipped)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let sink = Arc::new(sink().disable_after(Duration::from_millis(20)));
    let relay = Relay::new(SharedSink(sink.clone())).with_config(RelayConfig {
        schedule: Some(QUICK),
        ..RelayConfig::default()
    });
    for _ in 0..5 {
        relay.step_postgres(&mut client, &table).await.unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let rows = state(&client, &table).await;
    assert!(
        rows[0]
            .0
            .as_deref()
            .is_some_and(|r| r.contains("disabled after failing")),
        "{rows:?}"
    );
    assert!(sink.sender().is_disabled(&down));
    let sent = down_r.requests.load(Ordering::SeqCst);
    // A later delivery to it is parked without a request.
    {
        let tx = client.transaction().await.unwrap();
        durable::enqueue(&Pg::new(&tx).table(&table), &down, "msg_b", &shipped)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    relay.step_postgres(&mut client, &table).await.unwrap();
    assert_eq!(down_r.requests.load(Ordering::SeqCst), sent);
    let rows = state(&client, &table).await;
    assert!(
        rows[1]
            .0
            .as_deref()
            .is_some_and(|r| r.contains("is disabled")),
        "{rows:?}"
    );
}

/// One sink shared by the test and the relay.
struct SharedSink(Arc<WebhookSink>);

impl pactum::messaging::bus::EventSink for SharedSink {
    async fn send(
        &self,
        subject: &str,
        headers: pactum::messaging::bus::Headers,
        payload: Vec<u8>,
    ) -> Result<pactum::messaging::bus::Published, pactum::messaging::bus::PublishError> {
        self.0.send(subject, headers, payload).await
    }
}

#[tokio::test]
async fn the_receivers_dedup_record_commits_with_its_effect() {
    let mut client = connect().await;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS webhook_receipts_test, webhook_effects_test;
             CREATE TABLE webhook_effects_test (id TEXT NOT NULL);",
        )
        .await
        .unwrap();
    durable::create_receipts(&client, "webhook_receipts_test")
        .await
        .unwrap();
    // Receives `id`, applying the effect once; `commit: false` is a crash before the commit.
    async fn receive(client: &mut tokio_postgres::Client, id: &str, commit: bool) -> bool {
        let tx = client.transaction().await.unwrap();
        let first = durable::record_in_postgres(&tx, "webhook_receipts_test", id)
            .await
            .unwrap();
        if first {
            tx.execute("INSERT INTO webhook_effects_test VALUES ($1)", &[&id])
                .await
                .unwrap();
        }
        if commit {
            tx.commit().await.unwrap();
        }
        first
    }
    assert!(
        receive(&mut client, "msg_x", false).await,
        "the first attempt records, then crashes before its commit"
    );
    assert!(
        receive(&mut client, "msg_x", true).await,
        "the crashed attempt left no record"
    );
    assert!(
        !receive(&mut client, "msg_x", true).await,
        "a redelivery is recognised"
    );
    let effects: i64 = client
        .query_one("SELECT count(*) FROM webhook_effects_test", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(effects, 1);
    // SQLite: the same in one connection's transaction.
    let mut conn = pactum::messaging::consumer::rusqlite::Connection::open_in_memory().unwrap();
    let tx = conn.transaction().unwrap();
    assert!(durable::record_in_sqlite(&tx, "receipts", "msg_y").unwrap());
    drop(tx); // rolled back
    let tx = conn.transaction().unwrap();
    assert!(durable::record_in_sqlite(&tx, "receipts", "msg_y").unwrap());
    tx.commit().unwrap();
    assert!(!durable::record_in_sqlite(&conn, "receipts", "msg_y").unwrap());
}
