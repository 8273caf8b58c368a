//! The example system, in one process on embedded defaults.
//!
//! Shows what the contracts guarantee: typed values and events, constraint validation,
//! per-operation guardrails, and generated REST servers and clients on loopback that carry one
//! trace and a shrinking deadline from cart to pricing.

use generated_example::generated::{cart, orders, pricing};
use generated_example::system::{self, Options};
use generated_example::{built, included, timeline::Timeline};
use pactum::client::ClientError;
use pactum::types::{Decimal, Uuid};
use pactum::{Context, Event, Validate};
use std::str::FromStr;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let subscriber = tracing_subscriber::registry().with(Timeline::new());
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");

    events_and_validation();
    checkout_flow().await;
    three_ways();
}

fn events_and_validation() {
    println!("== events and validation (code checked in from `pactum generate`)");
    let money = pricing::v1::Money {
        amount: Decimal::from_str("42.50").expect("literal"),
        currency: pricing::v1::Currency("EUR".into()),
    };
    let placed = orders::v1::OrderPlaced {
        order_id: orders::v1::OrderId(Uuid::from_u128(0x5eed)),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("BOOK-42".into()),
            quantity: 1,
            unit_price: money.clone(),
        }],
        total: money,
    };
    println!(
        "  {} v{} -> subject {} ({:?}), key {}",
        orders::v1::OrderPlaced::NAME,
        orders::v1::OrderPlaced::VERSION,
        orders::v1::OrderPlaced::SUBJECT,
        orders::v1::OrderPlaced::DELIVERY,
        placed.ordering_key().unwrap_or_default()
    );
    println!(
        "  payload {}",
        serde_json::to_string(&placed).expect("serializes")
    );

    let bad = orders::v1::PlaceOrderRequest {
        cart_id: Uuid::nil(),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("not a sku".into()),
            quantity: 0,
            unit_price: pricing::v1::Money {
                amount: Decimal::from_str("-1").expect("literal"),
                currency: pricing::v1::Currency("euro".into()),
            },
        }],
        note: Some("x".repeat(600)),
    };
    println!("  a bad PlaceOrderRequest:");
    if let Err(e) = bad.validate() {
        for v in e.violations {
            println!("    {:<28} {}", v.pointer, v.message);
        }
    }
    let newer: orders::v1::OrderStatus =
        serde_json::from_str("\"refunded\"").expect("open enums accept new values");
    println!("  v1 reads v2's new status as {newer:?}");
    let (v1, v2) = (
        orders::v1::operations::PLACE_ORDER,
        orders::v2::operations::PLACE_ORDER,
    );
    println!(
        "  PlaceOrder: {} {} and {} side by side; deadline {:?}, idempotency {:?}, retryable {}",
        v1.route.expect("route").method,
        v1.route.expect("route").path,
        v2.route.expect("route").path,
        v1.deadline.unwrap_or_default(),
        v1.idempotency,
        v1.retryable()
    );
}

async fn checkout_flow() {
    println!(
        "\n== checkout over REST on loopback: cart -> pricing, one trace, one shrinking deadline"
    );
    let system = system::start(Options::default())
        .await
        .expect("starts on loopback");
    let carts = cart::v1::Client::new(system.cart_url.clone());
    let request = cart::v1::CheckoutCartRequest {
        cart_id: cart::v1::CartId(Uuid::from_u128(system::DEMO_CART)),
    };
    // An incoming request carrying a trace and a 1 s budget from its caller.
    let incoming = Context::from_headers(&std::collections::HashMap::from([(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    )]))
    .with_timeout(Duration::from_secs(1));
    match incoming.clone().scope(carts.checkout_cart(&request)).await {
        Ok(r) => println!(
            "  checkout ok: order {} total {} {}",
            r.order_id, r.total.amount, r.total.currency
        ),
        Err(e) => println!("  checkout failed: {e}"),
    }

    // Pricing slows down past QuoteCart's 200 ms contract deadline: the cart's client gives
    // up at 200 ms, the cart answers 504, and our client sees a typed DeadlineExceeded.
    let slow = system::start(Options {
        pricing_latency: Duration::from_millis(400),
        ..Options::default()
    })
    .await
    .expect("starts on loopback");
    let carts = cart::v1::Client::new(slow.cart_url.clone());
    match incoming.scope(carts.checkout_cart(&request)).await {
        Err(ClientError::DeadlineExceeded) => println!(
            "  slow pricing: DeadlineExceeded after QuoteCart's 200 ms budget (HTTP {}, gRPC code {})",
            pactum::DeadlineExceeded::HTTP_STATUS,
            pactum::DeadlineExceeded::GRPC_CODE
        ),
        other => println!("  slow pricing: unexpected {other:?}"),
    }
}

fn three_ways() {
    println!("\n== three ways to generate");
    println!(
        "  CLI (checked in):     orders::v1::OrderPlaced -> {}",
        orders::v1::OrderPlaced::SUBJECT
    );
    let attempt = built::audit::v1::CheckoutAttempted {
        cart_id: Uuid::from_u128(42),
        actor: built::audit::v1::Actor("customer-7".into()),
        outcome: "ok".into(),
    };
    println!(
        "  build.rs (OUT_DIR):   audit::v1::CheckoutAttempted -> {} key {}",
        built::audit::v1::CheckoutAttempted::SUBJECT,
        attempt.ordering_key().unwrap_or_default()
    );
    let points = included::loyalty::v1::Points(100_001);
    println!(
        "  include_contract!:    loyalty::v1::PointsAwarded -> {}; Points(100001) valid: {}",
        included::loyalty::v1::PointsAwarded::SUBJECT,
        points.validate().is_ok()
    );
}
