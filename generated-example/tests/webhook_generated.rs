//! The generated webhook plumbing end to end: `shipping`'s generated `webhooks::Sender` posts
//! to the generated `webhooks::receiver` on loopback. Signing, key rotation, dedup by
//! `webhook-id`, retries after a 5xx, remembered rejections and unknown payload types.

use generated_example::generated::shipping::v1 as shipping;
use pactum::router::axum::Router;
use pactum::store::idempotency::MemoryStore;
use pactum::types::{Timestamp, Uuid};
use pactum::webhook::{Envelope, Inbox, SendError, WebhookSecret, WebhookSender};
use pactum::{Problem, RetryPolicy};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A merchant's endpoint: records every call; can fail the first calls, or refuse outright.
#[derive(Clone, Default)]
struct Merchant {
    calls: Arc<AtomicU32>,
    /// Answer 503 to this many calls before accepting.
    fail_first: Arc<AtomicU32>,
    /// Answer 422 to every call.
    refuse: bool,
    /// (webhook-id, tracking code) of every accepted call.
    applied: Arc<Mutex<Vec<(String, String)>>>,
}

impl shipping::webhooks::Receiver for Merchant {
    async fn order_shipped(
        &self,
        id: String,
        webhook: Envelope<shipping::OrderShipped>,
    ) -> Result<(), Problem> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.refuse {
            return Err(Problem::new(422, "Unknown order", "no such order here"));
        }
        let failing = self.fail_first.load(Ordering::SeqCst);
        if failing > 0 {
            self.fail_first.store(failing - 1, Ordering::SeqCst);
            return Err(Problem::new(503, "Busy", "try again"));
        }
        self.applied
            .lock()
            .unwrap()
            .push((id, webhook.data.tracking_code));
        Ok(())
    }
}

fn key(n: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(vec![n; 32]).unwrap()
}

fn fast(sender: WebhookSender) -> WebhookSender {
    sender.with_policy(RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        full_jitter: true,
    })
}

/// Serves the generated receiver at `/hooks/shipping`; returns its URL.
async fn serve(merchant: Merchant, secrets: Vec<WebhookSecret>) -> String {
    let inbox = Inbox::new(secrets, Arc::new(MemoryStore::new()));
    let app: Router = Router::new().route(
        "/hooks/shipping",
        shipping::webhooks::receiver(merchant, inbox),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { pactum::router::serve(listener, app).await });
    format!("http://{addr}/hooks/shipping")
}

fn shipped(tracking: &str) -> shipping::OrderShipped {
    shipping::OrderShipped {
        order_id: Uuid::from_u128(7),
        shipment_id: shipping::ShipmentId(Uuid::from_u128(8)),
        carrier: "DHL".into(),
        tracking_code: tracking.into(),
        shipped_at: Timestamp::from_timestamp(1_790_000_000, 0).unwrap(),
    }
}

#[tokio::test]
async fn a_message_sent_twice_is_applied_once() {
    let merchant = Merchant::default();
    let url = serve(merchant.clone(), vec![key(1)]).await;
    let sender = shipping::webhooks::Sender::new(fast(WebhookSender::new(key(1))));
    let first = sender
        .order_shipped_with_id(&url, "msg_1", &shipped("T1"))
        .await
        .unwrap();
    let again = sender
        .order_shipped_with_id(&url, "msg_1", &shipped("T1"))
        .await
        .unwrap();
    assert_eq!((first.attempts, again.attempts), (1, 1));
    let fresh = sender.order_shipped(&url, &shipped("T2")).await.unwrap();
    assert_ne!(fresh.id, "msg_1");
    assert_eq!(
        merchant.calls.load(Ordering::SeqCst),
        2,
        "the resend is not a call"
    );
    assert_eq!(
        *merchant.applied.lock().unwrap(),
        vec![
            ("msg_1".to_string(), "T1".to_string()),
            (fresh.id, "T2".to_string())
        ]
    );
}

#[tokio::test]
async fn a_5xx_is_retried_and_the_effect_happens_once() {
    let merchant = Merchant::default();
    merchant.fail_first.store(1, Ordering::SeqCst);
    let url = serve(merchant.clone(), vec![key(1)]).await;
    let sender = shipping::webhooks::Sender::new(fast(WebhookSender::new(key(1))));
    let delivered = sender.order_shipped(&url, &shipped("T1")).await.unwrap();
    assert_eq!(delivered.attempts, 2);
    assert_eq!(merchant.calls.load(Ordering::SeqCst), 2);
    assert_eq!(merchant.applied.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_rejection_is_remembered_and_not_retried() {
    let merchant = Merchant {
        refuse: true,
        ..Merchant::default()
    };
    let url = serve(merchant.clone(), vec![key(1)]).await;
    let sender = shipping::webhooks::Sender::new(fast(WebhookSender::new(key(1))));
    for _ in 0..2 {
        let err = sender
            .order_shipped_with_id(&url, "msg_9", &shipped("T9"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::Rejected { status: 422, .. }),
            "{err:?}"
        );
    }
    assert_eq!(
        merchant.calls.load(Ordering::SeqCst),
        1,
        "the second delivery gets the remembered answer"
    );
}

#[tokio::test]
async fn key_rotation_works_from_both_ends_and_a_stranger_is_refused() {
    // The sender signs with old and new; a receiver that already has only the new key accepts.
    let merchant = Merchant::default();
    let url = serve(merchant.clone(), vec![key(2)]).await;
    let rotating = WebhookSender::new(key(1)).also_sign_with(key(2));
    let sender = shipping::webhooks::Sender::new(fast(rotating));
    sender.order_shipped(&url, &shipped("T1")).await.unwrap();

    // A receiver holding old and new accepts a sender that still has only the old key.
    let url_both = serve(merchant.clone(), vec![key(2), key(1)]).await;
    let old_only = shipping::webhooks::Sender::new(fast(WebhookSender::new(key(1))));
    old_only
        .order_shipped(&url_both, &shipped("T2"))
        .await
        .unwrap();

    // A sender with an unrelated key is refused with 401, which is not retried.
    let stranger = shipping::webhooks::Sender::new(fast(WebhookSender::new(key(3))));
    let err = stranger
        .order_shipped(&url, &shipped("T3"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(merchant.applied.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_types_and_unsigned_requests_get_problems() {
    let merchant = Merchant::default();
    let url = serve(merchant.clone(), vec![key(1)]).await;
    let http = reqwest::Client::new();

    // Correctly signed, but a payload type `shipping` does not send.
    let body = br#"{"type":"shipping.order_lost","timestamp":"2026-11-25T00:00:00Z","data":{}}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let reply = http
        .post(&url)
        .header("webhook-id", "msg_x")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", key(1).sign("msg_x", now, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    let text = reply.text().await.unwrap();
    assert!(
        text.contains("shipping.order_lost") && text.contains("shipping.order_shipped"),
        "{text}"
    );

    // No signature headers at all.
    let reply = http.post(&url).body(body.to_vec()).send().await.unwrap();
    assert_eq!(reply.status(), 401);
    assert_eq!(merchant.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_durable_webhook_goes_through_the_outbox_to_the_generated_receiver_once() {
    use pactum::messaging::consumer::tokio_postgres;
    use pactum::store::outbox::{Pg, Relay, RelayConfig};
    use pactum::webhook::durable::WebhookSink;
    let config = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let (mut client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
        });
    tokio::spawn(conn);
    let table = "webhook_outbox_generated";
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
    pactum::store::outbox::create_table(&client, table)
        .await
        .unwrap();
    let merchant = Merchant::default();
    merchant.fail_first.store(1, Ordering::SeqCst);
    let url = serve(merchant.clone(), vec![key(1)]).await;
    // The generated typed enqueue, in the handler's transaction.
    let tx = client.transaction().await.unwrap();
    shipping::webhooks::InTx::new(Pg::new(&tx).table(table))
        .order_shipped(&url, "msg_durable", &shipped("T9"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    const QUICK: &[Duration] = &[Duration::from_millis(10), Duration::from_millis(10)];
    let relay = Relay::new(WebhookSink::new(WebhookSender::new(key(1)))).with_config(RelayConfig {
        schedule: Some(QUICK),
        ..RelayConfig::default()
    });
    // Bounded: 10 steps.
    for _ in 0..10 {
        relay.step_postgres(&mut client, table).await.unwrap();
        if relay.stats().published.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert_eq!(
        merchant.calls.load(Ordering::SeqCst),
        2,
        "a 503, then accepted"
    );
    assert_eq!(
        *merchant.applied.lock().unwrap(),
        vec![("msg_durable".to_string(), "T9".to_string())]
    );
}
