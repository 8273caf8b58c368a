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

#[test]
fn pages_show_budgets_and_the_topology_marks_calls_past_the_deadline() {
    // The example's checkout, costed against its deadline.
    let files = docs();
    let cart = file(&files, "cart.v1.md");
    assert!(cart.contains(
        "- calls, in order: [`inventory.CheckStock`](inventory.v1.md#checkstock) 150 ms → [`pricing.QuoteCart`](pricing.v1.md#quotecart) 200 ms → [`orders.PlaceOrder`](orders.v1.md#placeorder) 1.35 s: 1.7 s in the worst case, within its deadline of 2 s"
    ), "{cart}");
    let orders = file(&files, "orders.v1.md");
    assert!(
        orders.contains(
            "- worst case for a caller: 1.35 s (3 attempts × 400 ms + 150 ms of backoff)"
        ),
        "{orders}"
    );
    assert!(orders.contains("3 attempts, 50 ms..1 s, full jitter, 400 ms per try"));
    assert!(!file(&files, "topology.dot").contains("color=red"));

    // A caller whose steps add up past its deadline (W0005, a warning, so docs are written).
    let contract = |service: &str, body: &str| {
        (
            std::path::PathBuf::from(format!("{service}.yaml")),
            format!("pactum: 1\nservice: {service}\nversion: 1.0.0\nowner: team-{service}\n{body}"),
        )
    };
    let outcome = pactum_codegen::check_sources(&[
        contract(
            "edge",
            "operations:
  Go:
    input: { id: uuid }
    rest: POST /go
    idempotency: key
    deadline: 250ms
    calls: [[fast.A, fast.B], fast.C]
calls:
  - operation: fast.A
  - operation: fast.B
  - operation: fast.C
",
        ),
        contract(
            "fast",
            "operations:
  A: { output: { ok: bool }, rest: GET /a, safe: true, deadline: 100ms }
  B: { output: { ok: bool }, rest: GET /b, safe: true, deadline: 200ms }
  C: { output: { ok: bool }, rest: GET /c, safe: true, deadline: 100ms }
",
        ),
    ]);
    let ir = outcome.ir.expect("a warning does not stop the docs");
    let files = pactum_codegen::emit::docs::pages(&ir).unwrap();
    let edge = file(&files, "edge.v1.md");
    assert!(edge.contains("at once: [`fast.A`](fast.v1.md#a) 100 ms, [`fast.B`](fast.v1.md#b) 200 ms → [`fast.C`](fast.v1.md#c) 100 ms: 300 ms in the worst case, **more than its deadline of 250 ms**"), "{edge}");
    // C is the call made past the deadline: its edge is red; A's and B's are not.
    let dot = file(&files, "topology.dot");
    assert!(
        dot.contains(
            r#"edge_v1 -> fast_v1 [label="REST C · over budget", color=red, fontcolor=red];"#
        ),
        "{dot}"
    );
    assert!(
        dot.contains(r#"edge_v1 -> fast_v1 [label="REST A"];"#),
        "{dot}"
    );
    let md = file(&files, "topology.md");
    assert!(
        md.contains(r#"edge_v1 -- "REST C · over budget" --> fast_v1"#),
        "{md}"
    );
}
