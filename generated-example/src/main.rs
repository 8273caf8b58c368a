//! Walks through what `pactum generate` produced from `contracts/`: typed values, events with
//! their broker facts, constraint validation and operation guardrails.
//!
//! The full checkout flow (REST, gRPC, broker) is built on top of these types as the
//! transports land; this binary shows what the contracts already guarantee.

use generated_example::generated::{orders, pricing, shipping};
use pactum::{Event, Validate};
use std::str::FromStr;

fn main() {
    let money = pricing::v1::Money {
        amount: pactum::types::Decimal::from_str("42.50").expect("literal"),
        currency: pricing::v1::Currency("EUR".into()),
    };
    let order_id = orders::v1::OrderId(pactum::types::Uuid::from_u128(0x5eed));
    let placed = orders::v1::OrderPlaced {
        order_id: order_id.clone(),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("BOOK-42".into()),
            quantity: 1,
            unit_price: money.clone(),
        }],
        total: money,
    };
    println!(
        "event {} v{}",
        orders::v1::OrderPlaced::NAME,
        orders::v1::OrderPlaced::VERSION
    );
    println!("  type      {}", orders::v1::OrderPlaced::TYPE);
    println!("  subject   {}", orders::v1::OrderPlaced::SUBJECT);
    println!("  delivery  {:?}", orders::v1::OrderPlaced::DELIVERY);
    println!("  key       {}", placed.ordering_key().unwrap_or_default());
    println!(
        "  payload   {}",
        serde_json::to_string(&placed).expect("serializes")
    );

    let bad = orders::v1::PlaceOrderRequest {
        cart_id: pactum::types::Uuid::nil(),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("not a sku".into()),
            quantity: 0,
            unit_price: pricing::v1::Money {
                amount: pactum::types::Decimal::from_str("-1").expect("literal"),
                currency: pricing::v1::Currency("euro".into()),
            },
        }],
        note: Some("x".repeat(600)),
    };
    println!("\nvalidating a bad PlaceOrderRequest:");
    if let Err(e) = bad.validate() {
        for v in e.violations {
            println!("  {:<28} {}", v.pointer, v.message);
        }
    }

    let newer: orders::v1::OrderStatus =
        serde_json::from_str("\"refunded\"").expect("open enums accept new values");
    println!("\nv1 reads a v2 status: {newer:?} (round-trips as \"{newer}\")");

    let op = orders::v1::operations::PLACE_ORDER;
    let route = op.route.expect("PlaceOrder has a REST route");
    println!(
        "\noperation {}: {} {} deadline {:?}, idempotency {:?}, retryable {}",
        op.name,
        route.method,
        route.path,
        op.deadline.unwrap_or_default(),
        op.idempotency,
        op.retryable()
    );
    let v2 = orders::v2::operations::PLACE_ORDER;
    println!(
        "  v2 serves it beside v1 at {}",
        v2.route.expect("route").path
    );
    let tracking = shipping::v1::TrackingEvent {
        at: pactum::types::Timestamp::UNIX_EPOCH,
        location: "Hamburg".into(),
        previous: None,
    };
    println!(
        "\nrecursive type shipping::v1::TrackingEvent boxes its link: {}",
        serde_json::to_string(&tracking).expect("serializes")
    );
}
