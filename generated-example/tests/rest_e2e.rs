//! Generated clients against generated servers on loopback: every REST operation of the
//! example contracts, declared errors, deadlines, retries, idempotency, trace propagation,
//! and the 4xx problems a client's mistakes get.

use futures_util::StreamExt;
use generated_example::generated::{cart, inventory, orders, payments, pricing, shipping};
use generated_example::system::{self, serve, Options, DEMO_CART, DEMO_SHIPMENT};
use pactum::rest::server::{axum, ServerConfig};
use pactum::types::Uuid;
use pactum::ClientError;
use pactum::Context;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn traced() -> Context {
    Context::from_headers(&HashMap::from([(
        "traceparent".to_string(),
        format!("00-{TRACE}-00f067aa0ba902b7-01"),
    )]))
}

fn money(amount: &str) -> pricing::v1::Money {
    pricing::v1::Money {
        amount: amount.parse().unwrap(),
        currency: pricing::v1::Currency("EUR".into()),
    }
}

fn sku(s: &str) -> pricing::v1::Sku {
    pricing::v1::Sku(s.into())
}

#[tokio::test]
async fn every_rest_operation_round_trips() {
    let sys = system::start(Options::default()).await.unwrap();

    let p = pricing::v1::rest::Client::new(&sys.pricing_url);
    let price = p
        .get_price(&pricing::v1::GetPriceRequest {
            sku: sku("BOOK-42"),
            currency: None,
        })
        .await
        .unwrap();
    assert_eq!(price, money("12.50"));
    let quote = p
        .quote_cart(&pricing::v1::QuoteCartRequest {
            currency: pricing::v1::Currency("EUR".into()),
            lines: vec![pricing::v1::QuoteLine {
                sku: sku("PEN-7"),
                quantity: 10,
            }],
        })
        .await
        .unwrap();
    assert_eq!(quote.total, money("12.00"));

    let c = cart::v1::rest::Client::new(&sys.cart_url);
    let id = cart::v1::CartId(Uuid::from_u128(DEMO_CART));
    assert_eq!(
        c.get_cart(&cart::v1::GetCartRequest {
            cart_id: id.clone()
        })
        .await
        .unwrap()
        .items
        .len(),
        2
    );
    let added = c
        .add_item(&cart::v1::AddItemRequest {
            cart_id: id.clone(),
            item: cart::v1::CartItem {
                sku: sku("PEN-7"),
                quantity: 1,
            },
        })
        .await
        .unwrap();
    assert_eq!(added.items[1].quantity, 4);
    let done = c
        .checkout_cart(&cart::v1::CheckoutCartRequest { cart_id: id })
        .await
        .unwrap();
    assert_eq!(done.total, money("29.80"));

    let o1 = orders::v1::rest::Client::new(&sys.orders_url);
    let line = orders::v1::OrderLine {
        sku: sku("BOOK-42"),
        quantity: 2,
        unit_price: money("12.50"),
    };
    let placed = o1
        .place_order(&orders::v1::PlaceOrderRequest {
            cart_id: Uuid::from_u128(DEMO_CART),
            customer_id: Some(Uuid::from_u128(7)),
            lines: vec![line],
            note: Some("gift".into()),
        })
        .await
        .unwrap();
    assert_eq!(placed.total, money("25.00"));
    let got = o1
        .get_order(&orders::v1::GetOrderRequest {
            id: placed.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(got, placed);
    let cancelled = o1
        .cancel_order(&orders::v1::CancelOrderRequest {
            id: placed.id.clone(),
            reason: "changed my mind".into(),
        })
        .await
        .unwrap();
    assert_eq!(cancelled.status, orders::v1::OrderStatus::Cancelled);

    // Major 2 of the same service, served beside v1 from the same store.
    let o2 = orders::v2::rest::Client::new(&sys.orders_url);
    let v2 = o2
        .get_order(&orders::v2::GetOrderRequest {
            id: orders::v2::OrderId(placed.id.0),
        })
        .await
        .unwrap();
    assert_eq!(v2.items.len(), 1);
    let customer = orders::v2::CustomerId(Uuid::from_u128(7));
    o2.place_order(&orders::v2::PlaceOrderRequest {
        cart_id: Uuid::nil(),
        customer_id: customer.clone(),
        items: vec![orders::v2::OrderItem {
            sku: sku("PEN-7"),
            quantity: 1,
            unit_price: money("1.20"),
        }],
    })
    .await
    .unwrap();
    for _ in 0..3 {
        o2.place_order(&orders::v2::PlaceOrderRequest {
            cart_id: Uuid::nil(),
            customer_id: customer.clone(),
            items: vec![orders::v2::OrderItem {
                sku: sku("PEN-7"),
                quantity: 2,
                unit_price: money("1.20"),
            }],
        })
        .await
        .unwrap();
    }
    // A customer's orders, a page at a time: one page by hand, then every page as a stream,
    // over REST and over gRPC.
    let request = |page_size, page_token| orders::v2::ListOrdersRequest {
        customer_id: customer.clone(),
        status: None,
        page_size,
        page_token,
    };
    let first = o2.list_orders(&request(Some(2), None)).await.unwrap();
    assert_eq!(first.orders.len(), 2);
    let token = first.next_page_token.clone().expect("more pages");
    assert!(
        token.starts_with("c1."),
        "sealed, not the handler's own: {token}"
    );
    let second = o2
        .list_orders(&request(Some(2), Some(token.clone())))
        .await
        .unwrap();
    assert_eq!(second.orders.len(), 2);
    assert!(second.orders[0].id.0 > first.orders[1].id.0);
    let ids =
        |orders: Vec<orders::v2::Order>| orders.into_iter().map(|o| o.id.0).collect::<Vec<_>>();
    let over_rest: Vec<_> = o2
        .list_orders_items(&request(Some(2), None))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let over_rest = ids(over_rest);
    assert_eq!(over_rest.len(), 5, "one placed through v1, four through v2");
    assert!(
        over_rest.windows(2).all(|w| w[0] < w[1]),
        "in id order, none twice"
    );
    let grpc = orders::v2::grpc::Client::connect_lazy(sys.orders_url.clone()).unwrap();
    let over_grpc: Vec<_> = grpc
        .list_orders_items(&request(Some(3), None))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids(over_grpc), over_rest);
    let pending: Vec<_> = o2
        .list_orders_items(&orders::v2::ListOrdersRequest {
            status: Some(orders::v2::OrderStatus::Pending),
            ..request(None, None)
        })
        .collect::<Vec<_>>()
        .await;
    assert_eq!(pending.len(), 4, "the v1 order was cancelled above");
    // A cursor the client changed, or made up, is refused before the handler sees it.
    let mut altered = token.clone();
    altered.insert(4, 'x');
    for bad in [altered.as_str(), "20"] {
        let url = format!(
            "{}/v2/customers/{}/orders?page_token={bad}",
            sys.orders_url, customer.0
        );
        let reply = reqwest::get(&url).await.unwrap();
        assert_eq!(reply.status(), 422, "{bad}");
        let problem: serde_json::Value =
            serde_json::from_str(&reply.text().await.unwrap()).unwrap();
        assert_eq!(
            problem["violations"][0]["pointer"], "/page_token",
            "{problem}"
        );
    }
    // A page size outside the contract's bounds is refused too.
    match o2.list_orders(&request(Some(101), None)).await {
        Err(ClientError::Rejected(p)) => assert_eq!(p.status, 422),
        other => panic!("{other:?}"),
    }

    // Payments needs a staff token (refunds: with the refund scope).
    let pay = payments::v1::rest::Client::new(&sys.payments_url).with_credentials(
        pactum::auth::Credentials::bearer(system::staff_token("agent-7", &[system::REFUND_SCOPE])),
    );
    let pid = payments::v1::PaymentId(Uuid::from_u128(0xfee));
    assert_eq!(
        pay.get_payment(&payments::v1::GetPaymentRequest { id: pid.clone() })
            .await
            .unwrap()
            .amount,
        money("28.60")
    );
    let refunded = pay
        .refund_payment(&payments::v1::RefundPaymentRequest {
            id: pid,
            amount: money("8.60"),
        })
        .await
        .unwrap();
    assert_eq!(refunded.amount, money("20.00"));
    // The method is a tagged union: one object, `kind` beside the card's details, as any
    // HTTP client reads it (here a payment partner, with its API key).
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/v1/payments/{}",
            sys.payments_url,
            Uuid::from_u128(0xfee)
        ))
        .header("x-partner-key", system::DEMO_PARTNER_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        raw["method"],
        serde_json::json!({"kind": "card", "last4": "4242"})
    );
    assert_eq!(
        refunded.method,
        payments::v1::PaymentMethod::Card(payments::v1::CardPayment {
            last4: "4242".into()
        })
    );

    let inv = inventory::v1::rest::Client::new(&sys.inventory_url);
    assert_eq!(
        inv.check_stock(&inventory::v1::CheckStockRequest {
            sku: sku("BOOK-42")
        })
        .await
        .unwrap()
        .available,
        10
    );

    let ship = shipping::v1::rest::Client::new(&sys.shipping_url);
    let tracked = ship
        .track_shipment(&shipping::v1::TrackShipmentRequest {
            id: shipping::v1::ShipmentId(Uuid::from_u128(DEMO_SHIPMENT)),
        })
        .await
        .unwrap();
    let latest = tracked.latest.unwrap();
    assert_eq!(
        (
            latest.location.as_str(),
            latest.previous.unwrap().location.as_str()
        ),
        ("Berlin", "Hamburg")
    );
}

#[tokio::test]
async fn declared_errors_come_back_as_typed_variants() {
    let sys = system::start(Options::default()).await.unwrap();
    let o1 = orders::v1::rest::Client::new(&sys.orders_url);
    let missing = orders::v1::OrderId(Uuid::from_u128(999));
    match o1
        .get_order(&orders::v1::GetOrderRequest {
            id: missing.clone(),
        })
        .await
    {
        Err(ClientError::Declared(orders::v1::GetOrderError::OrderNotFound(e))) => {
            assert_eq!(e.id, missing)
        }
        other => panic!("{other:?}"),
    }
    let p = pricing::v1::rest::Client::new(&sys.pricing_url);
    let two_errors = p
        .quote_cart(&pricing::v1::QuoteCartRequest {
            currency: pricing::v1::Currency("USD".into()),
            lines: vec![pricing::v1::QuoteLine {
                sku: sku("BOOK-42"),
                quantity: 1,
            }],
        })
        .await;
    match two_errors {
        Err(ClientError::Declared(pricing::v1::QuoteCartError::CurrencyMismatch(e))) => {
            assert_eq!((e.expected.0.as_str(), e.found.0.as_str()), ("EUR", "USD"))
        }
        other => panic!("{other:?}"),
    }
    let c = cart::v1::rest::Client::new(&sys.cart_url);
    assert!(matches!(
        c.checkout_cart(&cart::v1::CheckoutCartRequest {
            cart_id: cart::v1::CartId(Uuid::from_u128(43))
        })
        .await,
        Err(ClientError::Declared(
            cart::v1::CheckoutCartError::CartEmpty(_)
        ))
    ));
}

#[tokio::test]
async fn a_slow_handler_hits_its_deadline() {
    let sys = system::start(Options {
        pricing_latency: Duration::from_secs(3),
        ..Options::default()
    })
    .await
    .unwrap();
    // Raw HTTP: the server answers 504 with a problem at QuoteCart's 200 ms deadline.
    let started = std::time::Instant::now();
    let raw = reqwest_post(
        &format!("{}/v1/quotes", sys.pricing_url),
        r#"{"currency":"EUR","lines":[{"sku":"BOOK-42","quantity":1}]}"#,
        &[("idempotency-key", "\"slow-1\"")],
    )
    .await;
    assert_eq!(raw.0, 504, "{}", raw.1);
    assert!(raw.1.contains("did not finish before its deadline"));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Through two hops the typed client sees DeadlineExceeded.
    let c = cart::v1::rest::Client::new(&sys.cart_url);
    assert!(matches!(
        c.checkout_cart(&cart::v1::CheckoutCartRequest {
            cart_id: cart::v1::CartId(Uuid::from_u128(DEMO_CART))
        })
        .await,
        Err(ClientError::DeadlineExceeded)
    ));
}

#[tokio::test]
async fn the_trace_id_is_the_same_across_two_hops() {
    let sys = system::start(Options::default()).await.unwrap();
    let c = cart::v1::rest::Client::new(&sys.cart_url);
    traced()
        .scope(c.checkout_cart(&cart::v1::CheckoutCartRequest {
            cart_id: cart::v1::CartId(Uuid::from_u128(DEMO_CART)),
        }))
        .await
        .unwrap();
    let cart_saw = sys.cart.seen.all();
    let pricing_saw = sys.pricing.seen.all();
    assert_eq!(cart_saw, vec![("CheckoutCart", Some(TRACE.to_string()))]);
    assert_eq!(pricing_saw, vec![("QuoteCart", Some(TRACE.to_string()))]);
}

/// Turns the first reply of the wrapped router into a 503, as a proxy losing a response would:
/// the effect happened, the client did not learn it.
async fn lose_first_reply(inner: axum::Router) -> String {
    let count = Arc::new(AtomicU32::new(0));
    let app = inner.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let count = count.clone();
            async move {
                let response = next.run(req).await;
                if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    return axum::response::Response::builder()
                        .status(503)
                        .body(axum::body::Body::empty())
                        .unwrap();
                }
                response
            }
        },
    ));
    serve(app).await.unwrap()
}

fn place_v1() -> orders::v1::PlaceOrderRequest {
    orders::v1::PlaceOrderRequest {
        cart_id: Uuid::from_u128(DEMO_CART),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: sku("PEN-7"),
            quantity: 1,
            unit_price: money("1.20"),
        }],
        note: None,
    }
}

#[tokio::test]
async fn a_transient_503_is_retried_and_the_effect_happens_once() {
    let store = Arc::new(generated_example::services::orders::Orders::default());
    let url = lose_first_reply(orders::v1::rest::router(store.clone())).await;
    let client = orders::v1::rest::Client::new(url);
    let placed = client.place_order(&place_v1()).await.unwrap();
    assert_eq!(
        store.placed.load(Ordering::SeqCst),
        1,
        "the retry replayed the stored reply"
    );
    assert_eq!(
        client
            .get_order(&orders::v1::GetOrderRequest { id: placed.id })
            .await
            .unwrap()
            .total,
        money("1.20")
    );
}

#[tokio::test]
async fn a_post_repeated_with_the_same_key_takes_effect_once_with_the_same_reply() {
    let sys = system::start(Options::default()).await.unwrap();
    let client = orders::v1::rest::Client::new(&sys.orders_url);
    let ctx = Context::new().with_idempotency_key("order-attempt-1");
    let first = ctx
        .clone()
        .scope(client.place_order(&place_v1()))
        .await
        .unwrap();
    let second = ctx.scope(client.place_order(&place_v1())).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(sys.orders.placed.load(Ordering::SeqCst), 1);
    // The same key with a different payload is refused; a new key places a new order.
    let mut other = place_v1();
    other.note = Some("different".into());
    let clash = Context::new()
        .with_idempotency_key("order-attempt-1")
        .scope(client.place_order(&other))
        .await;
    assert!(matches!(clash, Err(ClientError::Rejected(p)) if p.status == 422));
    client.place_order(&place_v1()).await.unwrap();
    assert_eq!(sys.orders.placed.load(Ordering::SeqCst), 2);
}

/// Status, body and headers of a raw reply.
type Raw = (u16, String, reqwest::header::HeaderMap);

async fn reqwest_post(url: &str, body: &str, headers: &[(&str, &str)]) -> Raw {
    request("POST", url, Some(("application/json", body)), headers).await
}

async fn request(
    method: &str,
    url: &str,
    body: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> Raw {
    let http = reqwest::Client::new();
    let mut req = http.request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.unwrap(), headers)
}

#[tokio::test]
async fn client_mistakes_get_4xx_problems_never_500() {
    let orders = Arc::new(generated_example::services::orders::Orders::default());
    let config = ServerConfig {
        body_limit: 512,
        ..ServerConfig::default()
    };
    let url = serve(
        orders::v1::rest::router_with(orders.clone(), config.clone())
            .merge(orders::v2::rest::router_with(orders, config)),
    )
    .await
    .unwrap();
    let place = format!("{url}/v1/orders");
    let key = [("idempotency-key", "\"k\"")];
    let valid = r#"{"cart_id":"00000000-0000-0000-0000-000000000001","lines":[{"sku":"PEN-7","quantity":1,"unit_price":{"amount":"1.20","currency":"EUR"}}]}"#;
    let cases: Vec<(&str, Raw, u16, &str)> = vec![
        (
            "malformed JSON",
            reqwest_post(&place, "{\"cart_id\": ", &[("idempotency-key", "\"a\"")]).await,
            400,
            "malformed JSON",
        ),
        (
            "wrong type",
            reqwest_post(
                &place,
                r#"{"cart_id": 5, "lines": []}"#,
                &[("idempotency-key", "\"b\"")],
            )
            .await,
            422,
            "invalid input",
        ),
        (
            "missing field",
            reqwest_post(
                &place,
                r#"{"cart_id":"00000000-0000-0000-0000-000000000001"}"#,
                &[("idempotency-key", "\"c\"")],
            )
            .await,
            422,
            "missing field `lines`",
        ),
        (
            "constraint",
            reqwest_post(
                &place,
                &valid.replace("\"quantity\":1", "\"quantity\":0"),
                &[("idempotency-key", "\"d\"")],
            )
            .await,
            422,
            "/lines/0/quantity",
        ),
        (
            "not an object",
            reqwest_post(&place, "[1,2]", &[("idempotency-key", "\"e\"")]).await,
            422,
            "must be a JSON object",
        ),
        (
            "too large",
            reqwest_post(
                &place,
                &format!("{{\"note\":\"{}\"}}", "x".repeat(2000)),
                &[("idempotency-key", "\"f\"")],
            )
            .await,
            413,
            "exceeds 512 bytes",
        ),
        (
            "content type",
            request("POST", &place, Some(("text/plain", valid)), &key).await,
            415,
            "expected `application/json`",
        ),
        (
            "no key",
            reqwest_post(&place, valid, &[]).await,
            400,
            "requires an Idempotency-Key",
        ),
        (
            "bad uuid in path",
            request("GET", &format!("{url}/v1/orders/not-a-uuid"), None, &[]).await,
            422,
            "parameter `id`",
        ),
        (
            "unknown enum value",
            request(
                "GET",
                &format!(
                    "{url}/v2/customers/00000000-0000-0000-0000-000000000007/orders?status=lost"
                ),
                None,
                &[],
            )
            .await,
            422,
            "unknown value `lost`",
        ),
        (
            "bad query number",
            request(
                "GET",
                &format!(
                    "{url}/v2/customers/00000000-0000-0000-0000-000000000007/orders?page_size=lots"
                ),
                None,
                &[],
            )
            .await,
            422,
            "parameter `page_size`",
        ),
        (
            "limit constraint",
            request(
                "GET",
                &format!(
                    "{url}/v2/customers/00000000-0000-0000-0000-000000000007/orders?page_size=1000"
                ),
                None,
                &[],
            )
            .await,
            422,
            "/page_size",
        ),
    ];
    for (name, (status, body, headers), want, needle) in cases {
        assert_eq!(status, want, "{name}: {body}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{name}"
        );
        assert!(body.contains(needle), "{name}: {body}");
        assert!(headers.contains_key("x-request-id"), "{name}");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["status"], want, "{name}");
    }
    // A valid request with a chosen request id gets it back.
    let (status, _, headers) = reqwest_post(
        &place,
        valid,
        &[("idempotency-key", "\"ok\""), ("x-request-id", "req-123")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], "req-123");
}

#[tokio::test]
async fn a_retry_while_the_first_is_running_gets_409() {
    let sys = system::start(Options {
        pricing_latency: Duration::from_millis(150),
        ..Options::default()
    })
    .await
    .unwrap();
    let url = format!("{}/v1/quotes", sys.pricing_url);
    let body = r#"{"currency":"EUR","lines":[{"sku":"BOOK-42","quantity":1}]}"#;
    let key = [("idempotency-key", "\"same\"")];
    let (first, second) = tokio::join!(reqwest_post(&url, body, &key), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        reqwest_post(&url, body, &key).await
    });
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(second.0, 409, "{}", second.1);
    let replay = reqwest_post(&url, body, &key).await;
    assert_eq!((replay.0, replay.1.as_str()), (200, first.1.as_str()));
    assert_eq!(replay.2["idempotent-replayed"], "true");
}

#[tokio::test]
async fn no_call_waits_forever() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    // TrackShipment has a 300 ms contract deadline.
    let started = std::time::Instant::now();
    let ship = shipping::v1::rest::Client::new(&url);
    let r = ship
        .track_shipment(&shipping::v1::TrackShipmentRequest {
            id: shipping::v1::ShipmentId(Uuid::nil()),
        })
        .await;
    assert!(matches!(r, Err(ClientError::DeadlineExceeded)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // AddItem has none: the client's default budget applies.
    let http = pactum::rest::client::HttpClient::new(&url)
        .with_default_timeout(Duration::from_millis(200));
    let carts = cart::v1::rest::Client::from_http(http);
    let started = std::time::Instant::now();
    let r = carts
        .add_item(&cart::v1::AddItemRequest {
            cart_id: cart::v1::CartId(Uuid::nil()),
            item: cart::v1::CartItem {
                sku: sku("PEN-7"),
                quantity: 1,
            },
        })
        .await;
    assert!(matches!(r, Err(ClientError::DeadlineExceeded)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_status_changes_stream_as_server_sent_events() {
    let sys = system::start(Options::default()).await.unwrap();
    let o1 = orders::v1::rest::Client::new(&sys.orders_url);
    let o2 = orders::v2::rest::Client::new(&sys.orders_url);
    let order = o2
        .place_order(&orders::v2::PlaceOrderRequest {
            cart_id: Uuid::nil(),
            customer_id: orders::v2::CustomerId(Uuid::from_u128(9)),
            items: vec![orders::v2::OrderItem {
                sku: sku("PEN-7"),
                quantity: 1,
                unit_price: money("1.20"),
            }],
        })
        .await
        .unwrap();
    let watch = orders::v2::WatchOrderRequest {
        id: order.id.clone(),
        after: None,
    };
    // The typed client: the order's first status at once, the next as it happens, then the
    // end (a cancelled order changes no more).
    let mut changes = o2.watch_order(&watch).await.unwrap();
    let within = Duration::from_secs(5);
    let first = tokio::time::timeout(within, changes.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.seq, first.status),
        (1, orders::v2::OrderStatus::Pending)
    );
    o1.cancel_order(&orders::v1::CancelOrderRequest {
        id: orders::v1::OrderId(order.id.0),
        reason: "changed my mind".into(),
    })
    .await
    .unwrap();
    let second = tokio::time::timeout(within, changes.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.seq, second.status),
        (2, orders::v2::OrderStatus::Cancelled)
    );
    let after = tokio::time::timeout(within, changes.next()).await.unwrap();
    assert!(after.is_none(), "the stream ends after a final status");

    // A plain HTTP client reads `text/event-stream`; `Last-Event-ID` resumes after `seq` 1.
    let url = format!("{}/v2/orders/{}/changes", sys.orders_url, order.id.0);
    let reply = reqwest::Client::new()
        .get(&url)
        .header("accept", "text/event-stream")
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = tokio::time::timeout(Duration::from_secs(5), reply.text())
        .await
        .unwrap()
        .unwrap();
    assert!(
        body.contains("\"seq\":2") && body.contains("\"status\":\"cancelled\""),
        "{body}"
    );
    assert!(body.contains("id: 2\n"), "{body}");
    assert!(!body.contains("\"seq\":1"), "resumed after 1: {body}");
    assert!(body.trim_end().ends_with("event: end\ndata: {}"), "{body}");

    // The same stream over gRPC, resumed by the field itself.
    let grpc = orders::v2::grpc::Client::connect_lazy(sys.orders_url.clone()).unwrap();
    let over_grpc: Vec<_> = grpc
        .watch_order(&orders::v2::WatchOrderRequest {
            id: order.id.clone(),
            after: Some(1),
        })
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(over_grpc.len(), 1);
    assert_eq!(over_grpc[0].as_ref().unwrap().seq, 2);

    // An unknown order is a declared error before any event.
    let missing = orders::v2::OrderId(Uuid::from_u128(404));
    match o2
        .watch_order(&orders::v2::WatchOrderRequest {
            id: missing.clone(),
            after: None,
        })
        .await
    {
        Err(ClientError::Declared(orders::v2::WatchOrderError::OrderNotFound(e))) => {
            assert_eq!(e.id, missing)
        }
        other => panic!("{:?}", other.map(|_| "a stream")),
    }
}

/// A token signed by `key`, with `claims` over the demo's defaults.
fn token_with(key: &[u8], claims: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut all = serde_json::json!({
        "sub": "agent-9", "iss": system::DEMO_ISSUER, "aud": "payments", "exp": now + 600,
    });
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &all,
        &jsonwebtoken::EncodingKey::from_secret(key).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_know_who_calls_them() {
    use pactum::auth::Credentials;
    let sys = system::start(Options::default()).await.unwrap();
    let pid = payments::v1::PaymentId(Uuid::from_u128(0xfee));
    let get = payments::v1::GetPaymentRequest { id: pid.clone() };
    let url = format!("{}/v1/payments/{}", sys.payments_url, pid.0);
    let http = reqwest::Client::new();

    // No credentials: 401, with a challenge for each scheme the operation accepts.
    let reply = http.get(&url).send().await.unwrap();
    assert_eq!(reply.status(), 401);
    let challenges: Vec<String> = reply
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        challenges,
        [
            "Bearer realm=\"payments\"",
            "ApiKey realm=\"payments\", header=\"x-partner-key\""
        ]
    );
    assert!(reply
        .text()
        .await
        .unwrap()
        .contains("needs a bearer token (staff)"));

    // Bad tokens: 401 saying why, as RFC 6750 asks; never a 500.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (token, why) in [
        (
            token_with(
                system::DEMO_SIGNING_KEY,
                serde_json::json!({"exp": now - 600}),
            ),
            "the token expired",
        ),
        (
            token_with(b"someone else's key", serde_json::json!({})),
            "the token's signature does not verify",
        ),
        (
            token_with(
                system::DEMO_SIGNING_KEY,
                serde_json::json!({"iss": "elsewhere"}),
            ),
            "the token is from another issuer",
        ),
        ("not.a.token".to_string(), "the token is malformed"),
    ] {
        let reply = http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(reply.status(), 401, "{why}");
        let challenge = reply.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("error=\"invalid_token\"") && challenge.contains(why),
            "{why}: {challenge}"
        );
    }
    // A wrong API key, likewise.
    let reply = http
        .get(&url)
        .header("x-partner-key", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);

    // A partner may read a payment, not refund one; a token without the refund scope may
    // read, and is refused a refund with 403.
    let partner = payments::v1::rest::Client::new(&sys.payments_url)
        .with_credentials(Credentials::api_key("X-Partner-Key", system::DEMO_PARTNER_KEY).unwrap());
    assert_eq!(partner.get_payment(&get).await.unwrap().id, pid);
    let refund = payments::v1::RefundPaymentRequest {
        id: pid.clone(),
        amount: money("1.00"),
    };
    match partner.refund_payment(&refund).await {
        Err(ClientError::Rejected(p)) => assert_eq!(p.status, 401),
        other => panic!("{other:?}"),
    }
    let reader = payments::v1::rest::Client::new(&sys.payments_url)
        .with_credentials(Credentials::bearer(system::staff_token("agent-9", &[])));
    assert_eq!(reader.get_payment(&get).await.unwrap().id, pid);
    match reader.refund_payment(&refund).await {
        Err(ClientError::Rejected(p)) => {
            assert_eq!(p.status, 403);
            assert!(
                p.detail
                    .as_deref()
                    .unwrap_or("")
                    .contains("payments:refund"),
                "{p:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Over gRPC: UNAUTHENTICATED and PERMISSION_DENIED.
    let grpc = payments::v1::grpc::Client::connect_lazy(sys.payments_url.clone()).unwrap();
    match grpc.get_payment(&get).await {
        Err(ClientError::Rpc { code: 16, .. }) => {}
        other => panic!("{other:?}"),
    }

    // A refreshed token source: the first token is refused, the client asks for another
    // once, and the call succeeds; a static bad token is refused once, not retried.
    let fetched = Arc::new(AtomicU32::new(0));
    let counter = fetched.clone();
    let refreshing = payments::v1::rest::Client::new(&sys.payments_url).with_credentials(
        Credentials::bearer_refreshed(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(if n == 0 {
                    token_with(b"stale key", serde_json::json!({}))
                } else {
                    system::staff_token("agent-9", &[])
                })
            }
        }),
    );
    assert_eq!(refreshing.get_payment(&get).await.unwrap().id, pid);
    assert_eq!(fetched.load(Ordering::SeqCst), 2);
    let stale = payments::v1::rest::Client::new(&sys.payments_url).with_credentials(
        Credentials::bearer(token_with(b"stale key", serde_json::json!({}))),
    );
    match stale.get_payment(&get).await {
        Err(ClientError::Rejected(p)) => assert_eq!(p.status, 401),
        other => panic!("{other:?}"),
    }

    // Idempotency keys are scoped by principal: another agent's refund with the same key
    // is its own refund, not a replay of the first agent's reply.
    let refund_as = |agent: &str| {
        payments::v1::rest::Client::new(&sys.payments_url).with_credentials(Credentials::bearer(
            system::staff_token(agent, &[system::REFUND_SCOPE]),
        ))
    };
    let key_ctx = pactum::Context::default().with_idempotency_key("refund-once");
    let first = key_ctx
        .clone()
        .scope(refund_as("agent-1").refund_payment(&refund))
        .await
        .unwrap();
    let again = key_ctx
        .clone()
        .scope(refund_as("agent-1").refund_payment(&refund))
        .await
        .unwrap();
    assert_eq!(again.amount, first.amount, "the same agent's retry replays");
    let other = key_ctx
        .scope(refund_as("agent-2").refund_payment(&refund))
        .await
        .unwrap();
    assert_eq!(
        other.amount.amount,
        first.amount.amount - pactum::types::Decimal::from(1),
        "another agent's key is its own"
    );
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_refused_before_the_operation_runs() {
    let sys = system::start(Options::default()).await.unwrap();
    let reply = reqwest::get(format!("{}/v1/prices/%FF", sys.pricing_url))
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    let text = reply.text().await.unwrap();
    assert!(text.contains("UTF-8"), "{text}");
}
