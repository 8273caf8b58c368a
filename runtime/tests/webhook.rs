//! Webhook delivery end to end: a sender posts to an axum receiver on loopback, which
//! verifies each delivery with the `SignedWebhook` extractor.

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use pactum::webhook::{SendError, SignedWebhook, WebhookSecret, WebhookSender};
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
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
