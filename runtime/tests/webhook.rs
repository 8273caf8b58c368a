//! Webhook delivery end to end: a sender posts to an axum receiver on loopback, which
//! verifies each delivery with the `SignedWebhook` extractor.

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use pactum::store::idempotency::{IdempotencyStore, MemoryStore, PostgresStore, SqliteStore};
use pactum::webhook::{SendError, SignedWebhook, WebhookSecret, WebhookSender, DEDUP_RETENTION};
use pactum::{Problem, RetryPolicy, Webhook};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderShipped {
    order_id: String,
    carrier: String,
}

impl Webhook for OrderShipped {
    const NAME: &'static str = "OrderShipped";
    const TYPE: &'static str = "shipping.order_shipped";
    const VERSION: u32 = 1;
}

#[derive(Clone)]
struct Receiver {
    secret: WebhookSecret,
    /// Requests to answer 503 before accepting, to exercise retries.
    fail_first: Arc<AtomicU32>,
    /// Every accepted delivery, in arrival order: (id, payload).
    accepted: Arc<Mutex<Vec<(String, OrderShipped)>>>,
}

impl FromRef<Receiver> for WebhookSecret {
    fn from_ref(state: &Receiver) -> Self {
        state.secret.clone()
    }
}

async fn shipped(
    State(state): State<Receiver>,
    delivery: SignedWebhook<OrderShipped>,
) -> StatusCode {
    let failing = state.fail_first.load(Ordering::SeqCst);
    if failing > 0 {
        state.fail_first.store(failing - 1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut accepted = state.accepted.lock().unwrap();
    // Deduplicate on the message id: a redelivery is acknowledged, not applied twice.
    if !accepted.iter().any(|(id, _)| *id == delivery.id) {
        accepted.push((delivery.id, delivery.envelope.data));
    }
    StatusCode::NO_CONTENT
}

fn secret() -> WebhookSecret {
    WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
}

async fn start(fail_first: u32) -> (String, Receiver) {
    let state = Receiver {
        secret: secret(),
        fail_first: Arc::new(AtomicU32::new(fail_first)),
        accepted: Arc::default(),
    };
    let app = Router::new()
        .route("/hooks", post(shipped))
        .with_state(state.clone());
    let url = serve(app).await;
    (url, state)
}

/// Serves `app` on a loopback port; returns the URL of its `/hooks` route.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn fast(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        full_jitter: true,
    }
}

fn payload() -> OrderShipped {
    OrderShipped {
        order_id: "ord_1".into(),
        carrier: "dhl".into(),
    }
}

#[tokio::test]
async fn delivers_after_transient_failures_and_deduplicates_redelivery() {
    let (url, state) = start(2).await;
    let sender = WebhookSender::new(secret()).with_policy(fast(4));
    let delivered = sender.send(&url, &payload()).await.unwrap();
    assert_eq!(delivered.attempts, 3, "two 503s, then accepted");
    assert!(delivered.id.starts_with("msg_"));

    // The same message resent (say, by an outbox after a crash) is recognised by its id.
    sender
        .send_with_id(&url, &delivered.id, &payload())
        .await
        .unwrap();
    let accepted = state.accepted.lock().unwrap().clone();
    assert_eq!(accepted, vec![(delivered.id, payload())]);
}

#[tokio::test]
async fn gives_up_after_the_last_attempt() {
    let (url, state) = start(10).await;
    let sender = WebhookSender::new(secret()).with_policy(fast(3));
    match sender.send(&url, &payload()).await {
        Err(SendError::Exhausted { attempts, last, .. }) => {
            assert_eq!(attempts, 3);
            assert_eq!(last, "status 503");
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert_eq!(state.fail_first.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn refuses_wrong_secret_without_retrying() {
    let (url, state) = start(0).await;
    let wrong = WebhookSecret::from_bytes(vec![9; 32]).unwrap();
    let sender = WebhookSender::new(wrong).with_policy(fast(3));
    match sender.send(&url, &payload()).await {
        Err(SendError::Rejected { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(state.accepted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn gone_disables_the_endpoint_until_reenabled() {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/hooks",
        post(move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            StatusCode::GONE
        }),
    );
    let url = serve(app).await;

    let sender = WebhookSender::new(secret()).with_policy(fast(3));
    let clone = sender.clone();
    for _ in 0..2 {
        match clone.send(&url, &payload()).await {
            Err(SendError::Disabled { url: gone }) => assert_eq!(gone, url),
            other => panic!("expected Disabled, got {other:?}"),
        }
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "no retry, no second request"
    );
    assert!(sender.is_disabled(&url), "clones share the disabled set");
    sender.enable(&url);
    assert!(sender.send(&url, &payload()).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// Requests a sender would never make: tampered, replayed, unsigned, mistyped.
#[tokio::test]
async fn refuses_bad_deliveries_with_problem_documents() {
    let (url, state) = start(0).await;
    let http = reqwest::Client::new();
    let secret = secret();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = serde_json::json!({
        "type": "shipping.order_shipped",
        "timestamp": "2026-11-25T00:00:00Z",
        "data": {"order_id": "ord_2", "carrier": "ups"},
    })
    .to_string();
    let post = |id: &str, ts: i64, signed: &str, sent: String| {
        http.post(&url)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", secret.sign(id, ts, signed.as_bytes()))
            .body(sent)
            .send()
    };
    let problem = |reply: reqwest::Response| async move {
        assert_eq!(
            reply.headers()["content-type"],
            pactum::PROBLEM_JSON,
            "refusals are problem documents"
        );
        let bytes = reply.bytes().await.unwrap();
        serde_json::from_slice::<Problem>(&bytes).unwrap()
    };

    let tampered = body.replace("ups", "fedex");
    let p = problem(post("msg_a", now, &body, tampered).await.unwrap()).await;
    assert_eq!(p.status, 401);
    assert_eq!(p.detail.unwrap(), "no webhook signature matches the body");

    let p = problem(
        post("msg_b", now - 3600, &body, body.clone())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(p.status, 401);
    assert!(p.detail.unwrap().contains("too old"));

    let unsigned = http.post(&url).body(body.clone()).send().await.unwrap();
    let p = problem(unsigned).await;
    assert_eq!(p.status, 401);
    assert!(p.detail.unwrap().contains("webhook-id"));

    let other = body.replace("shipping.order_shipped", "shipping.order_lost");
    let p = problem(post("msg_c", now, &other, other.clone()).await.unwrap()).await;
    assert_eq!(p.status, 400);
    assert!(p.detail.unwrap().contains("shipping.order_lost"));

    let garbage = r#"{"type": "shipping.order_shipped"}"#.to_string();
    let p = problem(post("msg_d", now, &garbage, garbage.clone()).await.unwrap()).await;
    assert_eq!(p.status, 400);

    assert!(state.accepted.lock().unwrap().is_empty());

    // The correctly signed original still goes through.
    let ok = post("msg_e", now, &body, body.clone()).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(state.accepted.lock().unwrap().len(), 1);
}

/// A receiver that applies each message once, whatever the sender repeats.
#[derive(Clone)]
struct Once {
    secret: WebhookSecret,
    store: Arc<dyn IdempotencyStore>,
    /// Handler runs (effects applied).
    runs: Arc<AtomicU32>,
    /// Runs to fail with 500 before succeeding.
    fail_first: Arc<AtomicU32>,
    /// How long each run takes.
    work: Duration,
}

impl FromRef<Once> for WebhookSecret {
    fn from_ref(state: &Once) -> Self {
        state.secret.clone()
    }
}

async fn shipped_once(
    State(state): State<Once>,
    delivery: SignedWebhook<OrderShipped>,
) -> Response {
    let store = state.store.clone();
    delivery
        .handle_once(
            &store,
            DEDUP_RETENTION,
            Duration::from_secs(30),
            move |envelope| async move {
                tokio::time::sleep(state.work).await;
                if envelope.data.carrier == "refused" {
                    return Err(Problem::new(
                        422,
                        "Unprocessable Content",
                        "unknown carrier",
                    ));
                }
                let failing = state.fail_first.load(Ordering::SeqCst);
                if failing > 0 {
                    state.fail_first.store(failing - 1, Ordering::SeqCst);
                    return Err(Problem::new(500, "Internal Server Error", "database down"));
                }
                state.runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .await
}

async fn start_once(
    store: Arc<dyn IdempotencyStore>,
    fail_first: u32,
    work: Duration,
) -> (String, Once) {
    let state = Once {
        secret: secret(),
        store,
        runs: Arc::default(),
        fail_first: Arc::new(AtomicU32::new(fail_first)),
        work,
    };
    let app = Router::new()
        .route("/hooks", post(shipped_once))
        .with_state(state.clone());
    let url = serve(app).await;
    (url, state)
}

/// The dedup stores under test; PostgreSQL is the real server (`PACTUM_TEST_POSTGRES`, default
/// `host=127.0.0.1 port=5432 user=postgres dbname=test`), in a table of this test's own.
async fn stores(test: &str) -> Vec<(&'static str, Arc<dyn IdempotencyStore>)> {
    let config = postgres_config();
    // A fixed name per test, emptied first, so repeated runs leave no tables behind.
    let table = format!("pactum_webhook_{test}");
    let postgres = PostgresStore::connect(&config, &table).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
    });
    let (client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DELETE FROM {table}"))
        .await
        .unwrap();
    vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("sqlite", Arc::new(SqliteStore::open(":memory:").unwrap())),
        ("postgres", Arc::new(postgres)),
    ]
}

fn postgres_config() -> String {
    std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

#[tokio::test]
async fn each_message_is_applied_once_however_often_it_arrives() {
    for (name, store) in stores("applied_once").await {
        let (url, state) = start_once(store, 0, Duration::ZERO).await;
        let sender = WebhookSender::new(secret()).with_policy(fast(3));
        let first = sender.send(&url, &payload()).await.unwrap();
        for _ in 0..3 {
            let again = sender
                .send_with_id(&url, &first.id, &payload())
                .await
                .unwrap();
            assert_eq!(again.attempts, 1, "{name}: a redelivery is acknowledged");
        }
        assert_eq!(state.runs.load(Ordering::SeqCst), 1, "{name}");
        sender.send(&url, &payload()).await.unwrap();
        assert_eq!(
            state.runs.load(Ordering::SeqCst),
            2,
            "{name}: a new id runs"
        );
    }
}

#[tokio::test]
async fn concurrent_duplicates_run_the_handler_once() {
    for (name, store) in stores("concurrent").await {
        let (url, state) = start_once(store, 0, Duration::from_millis(100)).await;
        let sender = WebhookSender::new(secret()).with_policy(RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            full_jitter: false,
        });
        let (id, body) = ("msg_concurrent", payload());
        let (a, b) = tokio::join!(
            sender.send_with_id(&url, id, &body),
            sender.send_with_id(&url, id, &body)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.attempts.min(b.attempts),
            1,
            "{name}: one delivery ran the handler"
        );
        assert!(
            a.attempts.max(b.attempts) > 1,
            "{name}: the other was told to retry (503) and then got the remembered answer"
        );
        assert_eq!(state.runs.load(Ordering::SeqCst), 1, "{name}");
    }
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_remembered() {
    for (name, store) in stores("errors").await {
        let (url, state) = start_once(store, 2, Duration::ZERO).await;
        let sender = WebhookSender::new(secret()).with_policy(fast(4));
        let delivered = sender.send(&url, &payload()).await.unwrap();
        assert_eq!(delivered.attempts, 3, "{name}: two 500s forget the id");
        assert_eq!(state.runs.load(Ordering::SeqCst), 1, "{name}");

        let refused = OrderShipped {
            order_id: "ord_9".into(),
            carrier: "refused".into(),
        };
        for _ in 0..2 {
            match sender.send_with_id(&url, "msg_refused", &refused).await {
                Err(SendError::Rejected { status, .. }) => assert_eq!(status, 422, "{name}"),
                other => panic!("{name}: expected Rejected, got {other:?}"),
            }
        }
        assert_eq!(state.runs.load(Ordering::SeqCst), 1, "{name}");
    }
}
