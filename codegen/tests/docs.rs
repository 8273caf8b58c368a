//! `pactum docs` on the example system: the topology has exactly the edges the contracts
//! declare, and each page has the sections its contract calls for.

use std::collections::BTreeSet;
use std::path::Path;

fn docs() -> Vec<pactum_codegen::emit::GeneratedFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    let outcome = pactum_codegen::check(&[root]);
    let ir = outcome.ir.expect("the example contracts validate");
    pactum_codegen::emit::docs::pages(&ir).expect("renders")
}

fn file<'a>(files: &'a [pactum_codegen::emit::GeneratedFile], name: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == Path::new(name))
        .unwrap_or_else(|| panic!("{name} is written"))
        .contents
}

#[test]
fn topology_has_exactly_the_declared_calls_events_and_webhooks() {
    let files = docs();
    let dot = file(&files, "topology.dot");
    let edges: BTreeSet<&str> = dot
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" -> "))
        .collect();
    let expected: BTreeSet<&str> = [
        r#"cart_v1 -> pricing_v1 [label="REST QuoteCart"];"#,
        r#"cart_v1 -> inventory_v1 [label="gRPC CheckStock"];"#,
        r#"cart_v1 -> orders_v1 [label="REST PlaceOrder"];"#,
        r#"orders_v1 -> inventory_v1 [label="OrderPlaced v1 · stream", style=dashed];"#,
        r#"orders_v1 -> payments_v1 [label="OrderPlaced v1 · stream", style=dashed];"#,
        r#"payments_v1 -> notifications_v1 [label="PaymentCaptured v1 · pubsub", style=dashed];"#,
        r#"payments_v1 -> orders_v1 [label="PaymentCaptured v1 · pubsub", style=dashed];"#,
        r#"orders_v1 -> notifications_v1 [label="OrderCancelled v1 · pubsub", style=dashed];"#,
        r#"shipping_v1 -> notifications_v1 [label="ShipmentDispatched v1 · pubsub", style=dashed];"#,
        r#"inventory_v1 -> shipping_v1 [label="StockReserved v1 · queue", style=dashed];"#,
        r#"shipping_v1 -> webhook_subscribers [label="webhook OrderShipped", style=bold];"#,
    ]
    .into();
    assert_eq!(edges, expected);

    // The Mermaid diagram draws the same edges.
    let md = file(&files, "topology.md");
    assert!(md.contains("```mermaid\nflowchart LR\n"));
    assert_eq!(md.matches(" --> ").count(), 3, "calls");
    assert_eq!(md.matches(" .-> ").count(), 7, "events");
    assert_eq!(md.matches(" ==> ").count(), 1, "webhooks");
}

#[test]
fn pages_carry_operations_guardrails_events_and_owners() {
    let files = docs();
    let cart = file(&files, "cart.v1.md");
    assert!(cart.contains("| owner | team-storefront |"));
    assert!(cart.contains(
        "| [`CheckoutCart`](#checkoutcart) | `POST /v1/carts/{cart_id}/checkout` | — | 2 s | no | `Idempotency-Key` | 2 attempts, 100 ms..1 s, full jitter | [`CartNotFound`](#errors), [`CartEmpty`](#errors) |"
    ), "{cart}");
    assert!(cart.contains("| [`inventory.CheckStock`](inventory.v1.md#checkstock) | gRPC |"));
    let orders = file(&files, "orders.v1.md");
    assert!(
        orders.contains("| `OrderNotFound` | 404 | `NOT_FOUND` | `id` | No order has this id. |")
    );
    assert!(
        orders.contains("| `OrderPlaced` | 1 | `orders.order_placed.v1` | stream | `order_id` |")
    );
    assert!(orders.contains("value ≥ 1"), "constraints are shown");
    let shipping = file(&files, "shipping.v1.md");
    assert!(shipping.contains("## Events consumed") && shipping.contains("## Webhooks sent"));
    assert!(shipping.contains("`inventory.stock_reserved.v1.dlq`"));
    assert!(files.iter().all(|f| f.contents.ends_with('\n')));
}
