//! Idempotency keys as clients really send them, end to end over loopback: the forms the
//! emitted OpenAPI documents allow are exactly the forms the servers accept, and calls made
//! inside a handler carry keys of their own, never the caller's.

use generated_example::generated::{orders, pricing};
use generated_example::services::orders::Orders;
use generated_example::system::serve;
use pactum::router::axum;
use pactum::Context;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use yaml_rust2::{Yaml, YamlLoader};

const PLACE: &str = r#"{"cart_id":"00000000-0000-0000-0000-000000000001","lines":[{"sku":"PEN-7","quantity":1,"unit_price":{"amount":"1.20","currency":"EUR"}}]}"#;

async fn post(url: &str, key: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(PLACE);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn orders_server() -> (Arc<Orders>, String) {
    let orders = Arc::new(Orders::default());
    let url = serve(orders::v1::rest::router(orders.clone()))
        .await
        .unwrap();
    (orders, format!("{url}/v1/orders"))
}

#[tokio::test]
async fn bare_tokens_and_quoted_strings_name_one_key() {
    let (orders, url) = orders_server().await;
    let (status, first, body) = post(&url, Some("8e03978e-40d5-43e8-bc93-6894a57f9324")).await;
    assert_eq!(status, 200, "{body}");
    assert!(first.get("idempotent-replayed").is_none());
    let (status, again, replay) =
        post(&url, Some("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"")).await;
    assert_eq!((status, replay.as_str()), (200, body.as_str()));
    assert_eq!(again["idempotent-replayed"], "true");
    assert_eq!(orders.placed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_keys_get_400_and_change_nothing() {
    let (orders, url) = orders_server().await;
    let long = "k".repeat(256);
    let quoted_long = format!("\"{long}\"");
    for key in [
        None,
        Some("two words"),
        Some("\"\""),
        Some("\"open"),
        Some("a\"b"),
        Some(long.as_str()),
        Some(quoted_long.as_str()),
    ] {
        let (status, _, body) = post(&url, key).await;
        assert_eq!(status, 400, "{key:?}: {body}");
        assert!(body.contains("Idempotency-Key"), "{key:?}: {body}");
    }
    assert_eq!(orders.placed.load(Ordering::SeqCst), 0);
}

/// Every Idempotency-Key parameter of every emitted document: its pattern is the servers'
/// own, its examples match it and are accepted by a live server, and what it refuses the
/// server refuses too.
#[tokio::test]
async fn every_openapi_documents_key_schema_is_what_the_server_accepts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
    let (orders, url) = orders_server().await;
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
        let Yaml::Hash(paths) = &doc["paths"] else {
            continue;
        };
        for item in paths.values() {
            let Yaml::Hash(methods) = item else { continue };
            for op in methods.values() {
                let Yaml::Array(params) = &op["parameters"] else {
                    continue;
                };
                for p in params
                    .iter()
                    .filter(|p| p["name"].as_str() == Some("Idempotency-Key"))
                {
                    let schema = &p["schema"];
                    let pattern = schema["pattern"].as_str().expect("a pattern");
                    assert_eq!(
                        pattern,
                        pactum::wire::IDEMPOTENCY_KEY_PATTERN,
                        "{}",
                        path.display()
                    );
                    let regex = regex_lite(pattern);
                    let max = schema["maxLength"].as_i64().expect("maxLength") as usize;
                    let Yaml::Array(examples) = &schema["examples"] else {
                        panic!("examples")
                    };
                    assert!(!examples.is_empty());
                    for example in examples {
                        let key = example.as_str().unwrap();
                        assert!(regex(key) && key.len() <= max, "{key}");
                        assert!(pactum::wire::parse_idempotency_key(key).is_some(), "{key}");
                        let (status, _, body) = post(&url, Some(key)).await;
                        assert_eq!(status, 200, "{}: {key}: {body}", path.display());
                    }
                    for refused in ["", "two words", "\"\"", "é", &"k".repeat(256)] {
                        assert!(!regex(refused), "the pattern admits {refused:?}");
                        assert!(pactum::wire::parse_idempotency_key(refused).is_none());
                    }
                    checked += 1;
                }
            }
        }
    }
    // PlaceOrder (v1, v2), CancelOrder, AddItem, CheckoutCart, RefundPayment, QuoteCart.
    assert_eq!(checked, 7, "keyed REST operations found");
    // Both examples are one key: one order.
    assert_eq!(orders.placed.load(Ordering::SeqCst), 1);
}

/// The pattern as a matcher (the runtime's own regex engine; whole-string match).
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let re = pactum::__private::Regex::new(pattern).unwrap();
    move |s| re.is_match(s)
}

/// Keyed calls made inside a handler get keys derived from the handler's own key: distinct
/// per call, the same when the handler runs again, never the caller's.
#[tokio::test]
async fn calls_inside_a_handler_carry_derived_keys() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let capture = axum::Router::new().route(
        "/v1/orders",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let record = record.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                record.lock().unwrap().push(key);
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "try later")
            }
        }),
    );
    let url = serve(capture).await.unwrap();
    let request = orders::v1::PlaceOrderRequest {
        cart_id: pactum::types::Uuid::from_u128(1),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("PEN-7".into()),
            quantity: 1,
            unit_price: pricing::v1::Money {
                amount: "1.20".parse().unwrap(),
                currency: pricing::v1::Currency("EUR".into()),
            },
        }],
        note: None,
    };
    let handler_run = || {
        Context::new()
            .with_idempotency_key("caller-key")
            .with_key_basis("key:cart.v1.CheckoutCart/caller-key")
            .with_timeout(std::time::Duration::from_secs(5))
    };
    // A client per run, as a handler re-run after a crash would have: the target's breaker
    // (five failures in a row) opens during a run against this always-503 server.
    let run = |ctx: Context| {
        let (client, request) = (orders::v1::rest::Client::new(url.clone()), request.clone());
        ctx.scope(async move {
            let _ = client.place_order(&request).await;
            let _ = client.place_order(&request).await;
        })
    };
    run(handler_run()).await;
    let first: Vec<String> = std::mem::take(&mut *seen.lock().unwrap());
    run(handler_run()).await;
    let second: Vec<String> = seen.lock().unwrap().clone();
    // The generated client retries 503 (PlaceOrder is keyed): every attempt of one call
    // repeats its key; the two calls differ. (Three attempts, then two: the fifth failure in a
    // row opens the breaker, which refuses the third.)
    let mut keys = first.clone();
    keys.dedup();
    assert_eq!(keys.len(), 2, "{first:?}");
    let (a, b) = first.split_at(first.iter().take_while(|k| **k == keys[0]).count());
    assert!(a.len() >= 2 && !b.is_empty(), "{first:?}");
    assert_ne!(a[0], b[0]);
    assert!(!first.iter().any(|k| k.contains("caller-key")), "{first:?}");
    assert_eq!(first, second, "a re-run handler re-sends the same keys");
}

/// Orders whose `PlaceOrder` is not written yet until `ready` (a service deployed with a
/// `pactum new` stub, then with its handler).
#[derive(Default)]
struct LateOrders {
    ready: std::sync::atomic::AtomicBool,
    inner: Orders,
}

impl orders::v1::Service for LateOrders {
    async fn get_order(
        &self,
        ctx: Context,
        input: orders::v1::GetOrderRequest,
    ) -> Result<orders::v1::Order, pactum::HandlerError<orders::v1::GetOrderError>> {
        orders::v1::Service::get_order(&self.inner, ctx, input).await
    }

    async fn place_order(
        &self,
        ctx: Context,
        input: orders::v1::PlaceOrderRequest,
    ) -> Result<orders::v1::Order, pactum::HandlerError<orders::v1::PlaceOrderError>> {
        if !self.ready.load(Ordering::SeqCst) {
            return Err(pactum::HandlerError::NotImplemented("orders.v1.PlaceOrder"));
        }
        orders::v1::Service::place_order(&self.inner, ctx, input).await
    }

    async fn cancel_order(
        &self,
        ctx: Context,
        input: orders::v1::CancelOrderRequest,
    ) -> Result<orders::v1::Order, pactum::HandlerError<orders::v1::CancelOrderError>> {
        orders::v1::Service::cancel_order(&self.inner, ctx, input).await
    }
}

#[tokio::test]
async fn a_501_is_not_stored_so_the_first_retry_after_the_handler_ships_runs_it() {
    let late = Arc::new(LateOrders::default());
    let url = serve(orders::v1::rest::router(late.clone())).await.unwrap();
    let url = format!("{url}/v1/orders");
    let key = Some("\"ship-it-1\"");
    let (status, headers, body) = post(&url, key).await;
    assert_eq!(status, 501, "{body}");
    assert!(
        body.contains("`orders.v1.PlaceOrder` is not implemented yet"),
        "{body}"
    );
    assert!(headers.get("idempotent-replayed").is_none());
    late.ready.store(true, Ordering::SeqCst);
    let (status, headers, body) = post(&url, key).await;
    assert_eq!(
        status, 200,
        "the retry runs the handler, not a stored 501: {body}"
    );
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(late.inner.placed.load(Ordering::SeqCst), 1);
    let (status, headers, replay) = post(&url, key).await;
    assert_eq!((status, replay.as_str()), (200, body.as_str()));
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(late.inner.placed.load(Ordering::SeqCst), 1);
}
