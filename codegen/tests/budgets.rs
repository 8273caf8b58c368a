//! The budget checks across `calls:` on systems built for them: the worst-case figures, the
//! generated example's contracts (clean), and call graphs shaped to defeat a naive walk (a
//! chain thousands of hops long, a lattice with 2^40 paths), which must finish and report
//! once.

use pactum_codegen::budget::{worst_case, MAX_CALL_DEPTH};
use pactum_codegen::check_sources;
use pactum_codegen::diagnostics::Code;
use std::path::PathBuf;

fn contract(service: &str, body: &str) -> (PathBuf, String) {
    (
        PathBuf::from(format!("{service}.yaml")),
        format!("pactum: 1\nservice: {service}\nversion: 1.0.0\nowner: team-{service}\n{body}"),
    )
}

fn codes(sources: &[(PathBuf, String)]) -> Vec<(Code, String)> {
    check_sources(sources)
        .diagnostics
        .iter()
        .map(|d| (d.code, d.message.clone()))
        .collect()
}

#[test]
fn worst_cases_follow_the_runtime_model() {
    let src = [contract(
        "s",
        "operations:
  Keyed:
    input: { id: uuid }
    rest: POST /keyed
    idempotency: key
    deadline: 2s
    retry: { attempts: 3, backoff: 50ms..1s, per_try: 400ms }
  Whole:
    output: { ok: bool }
    rest: GET /whole
    safe: true
    deadline: 300ms
    retry: { attempts: 3, backoff: 20ms..30ms }
  Once:
    input: { id: uuid }
    rest: POST /once
    deadline: 1s
  Unbounded:
    input: { id: uuid }
    rest: POST /unbounded
",
    )];
    let outcome = check_sources(&src);
    let ir = outcome.ir.expect("valid");
    let ops = &ir.contracts[0].operations;
    let ms = |name: &str| {
        let op = ops.iter().find(|o| o.name == name).unwrap();
        let w = worst_case(op);
        (w.plan_ns() / 1_000_000, w.wait_ns() / 1_000_000)
    };
    // 3 × 400 ms + pauses of 50 and 100 ms.
    assert_eq!(ms("Keyed"), (1_350, 1_350));
    // No per_try: each attempt may take the whole 300 ms; pauses 20, then 30 (the cap). The
    // client cuts the call at its deadline all the same.
    assert_eq!(ms("Whole"), (950, 300));
    assert_eq!(ms("Once"), (1_000, 1_000));
    // No deadline: the clients' default.
    assert_eq!(ms("Unbounded"), (30_000, 30_000));
}

#[test]
fn the_example_contracts_are_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    let outcome = pactum_codegen::check(&[root]);
    let found: Vec<String> = outcome
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.code.as_str(), d.message))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
    // And the checkout is checked, not skipped: its calls are declared.
    let ir = outcome.ir.unwrap();
    let cart = ir
        .contracts
        .iter()
        .find(|c| c.id.service == "cart")
        .unwrap();
    let checkout = cart
        .operations
        .iter()
        .find(|o| o.name == "CheckoutCart")
        .unwrap();
    assert_eq!(checkout.calls.len(), 3);
}

#[test]
fn the_checkout_of_before_is_refused_with_the_per_try_that_fits() {
    // cart.CheckoutCart (2 s) calling orders.PlaceOrder (2 s, 3 attempts, no per_try), as the
    // example's contracts had it.
    let src = [
        contract(
            "cart",
            "operations:
  CheckoutCart:
    input: { id: uuid }
    rest: POST /checkout
    idempotency: key
    deadline: 2s
    calls: [orders.PlaceOrder]
calls:
  - operation: orders.PlaceOrder
",
        ),
        contract(
            "orders",
            "operations:
  PlaceOrder:
    input: { id: uuid }
    rest: POST /orders
    idempotency: key
    deadline: 2s
    retry: { attempts: 3, backoff: 50ms..1s, jitter: full }
",
        ),
    ];
    let outcome = check_sources(&src);
    assert!(outcome.ir.is_none(), "an E0270 refuses generation");
    let d: Vec<_> = outcome.diagnostics.iter().collect();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].code, Code::CallBudget);
    assert!(d[0].message.contains("may need 6150ms"), "{}", d[0].message);
    // (2 s − 150 ms of backoff) / 3 attempts, rounded down to a millisecond.
    assert!(d[0].help.contains("per_try: 616ms"), "{}", d[0].help);
}

/// `n` operations in one contract, each calling the next.
fn chain(n: usize) -> Vec<(PathBuf, String)> {
    let mut ops = String::from("operations:\n");
    let mut calls = String::from("calls:\n");
    for i in 0..n {
        ops.push_str(&format!(
            "  Op{i}:\n    input: {{ id: uuid }}\n    rest: POST /op{i}\n    idempotency: key\n"
        ));
        if i + 1 < n {
            ops.push_str(&format!("    calls: [long.Op{}]\n", i + 1));
            calls.push_str(&format!("  - operation: long.Op{}\n", i + 1));
        }
    }
    vec![contract("long", &format!("{ops}{calls}"))]
}

#[test]
fn a_chain_thousands_of_hops_long_is_walked_without_recursion() {
    // Recursion one frame per hop would overflow a test thread's 2 MiB stack long before this.
    let found = codes(&chain(5_000));
    let deep: Vec<_> = found
        .iter()
        .filter(|(c, _)| *c == Code::DeepCallChain)
        .collect();
    // Every operation more than MAX_CALL_DEPTH hops from the end starts a chain that is too
    // deep, but only the call where a chain first crosses the bound is reported.
    assert_eq!(deep.len(), 1, "{deep:?}");
    assert!(deep[0]
        .1
        .contains(&format!("chain of {}", MAX_CALL_DEPTH + 1)));
}

#[test]
fn a_lattice_with_two_to_the_forty_paths_is_checked_once_per_operation() {
    // 40 layers of two operations, each calling both of the next layer, every one retried
    // twice: 2^40 distinct chains, and retries that multiply to 2^40 attempts.
    let layers = 40;
    let mut ops = String::from("operations:\n");
    let mut calls = String::from("calls:\n");
    for l in 0..layers {
        for side in ["A", "B"] {
            ops.push_str(&format!(
                "  {side}{l}:\n    output: {{ ok: bool }}\n    rest: GET /{side}{l}\n    safe: true\n    retry: {{ attempts: 2 }}\n"
            ));
            if l + 1 < layers {
                ops.push_str(&format!("    calls: [[grid.A{n}, grid.B{n}]]\n", n = l + 1));
            }
        }
        if l > 0 {
            calls.push_str(&format!(
                "  - operation: grid.A{l}\n  - operation: grid.B{l}\n"
            ));
        }
    }
    let found = codes(&[contract("grid", &format!("{ops}{calls}"))]);
    let count = |code| found.iter().filter(|(c, _)| *c == code).count();
    // 2 × 2 × 2 × 2 = 16 > 10 is first crossed four layers from the end: reported at both
    // calls of both operations of that layer.
    assert_eq!(count(Code::RetryAmplification), 4, "{found:#?}");
    assert_eq!(count(Code::DeepCallChain), 4, "{found:#?}");
    assert!(found.iter().all(|(c, _)| c.as_str().starts_with('W')));
}

#[test]
fn steps_made_at_the_same_time_count_their_longest() {
    let fast = contract(
        "fast",
        "operations:
  A: { output: { ok: bool }, rest: GET /a, safe: true, deadline: 100ms }
  B: { output: { ok: bool }, rest: GET /b, safe: true, deadline: 150ms }
",
    );
    let caller = |calls: &str| {
        contract(
            "edge",
            &format!(
                "operations:
  Go:
    input: {{ id: uuid }}
    rest: POST /go
    idempotency: key
    deadline: 200ms
    calls: {calls}
calls:
  - operation: fast.A
  - operation: fast.B
"
            ),
        )
    };
    let over = codes(&[caller("[fast.A, fast.B]"), fast.clone()]);
    assert_eq!(over.len(), 1, "{over:?}");
    assert_eq!(over[0].0, Code::CallsOverBudget);
    assert!(over[0].1.contains("250ms"), "{}", over[0].1);
    assert!(codes(&[caller("[[fast.A, fast.B]]"), fast]).is_empty());
}

#[test]
fn a_chain_through_a_cycle_is_measured_whatever_order_the_contracts_come_in() {
    // Y → Z → B, where B and A call each other and A → C → D: four hops from Y to D, through
    // the cycle. Once with the cycle's services sorting first, once last.
    for (a, b) in [("aa", "ab"), ("za", "zb")] {
        let op = |name: &str, calls: &[&str]| {
            let list = calls.join(", ");
            format!(
                "  {name}:\n    input: {{ id: uuid }}\n    rest: POST /{name}\n    idempotency: key\n    calls: [{list}]\n"
            )
        };
        let contract_with = |service: &str, ops: &[String], calls: &[&str]| {
            let entries: String = calls
                .iter()
                .map(|c| format!("  - operation: {c}\n"))
                .collect();
            contract(
                service,
                &format!("operations:\n{}calls:\n{entries}", ops.concat()),
            )
        };
        let a_b = format!("{b}.B");
        let a_c = "cc.C".to_string();
        let b_a = format!("{a}.A");
        let src = vec![
            contract_with(a, &[op("A", &[&a_b, &a_c])], &[&a_b, &a_c]),
            contract_with(b, &[op("B", &[&b_a])], &[&b_a]),
            contract_with("cc", &[op("C", &["dd.D"])], &["dd.D"]),
            contract(
                "dd",
                "operations:\n  D: { input: { id: uuid }, rest: POST /d, idempotency: key }\n",
            ),
            contract_with("yy", &[op("Y", &["zz.Z"])], &["zz.Z"]),
            contract_with("zz", &[op("Z", &[&a_b])], &[&a_b]),
        ];
        let found = codes(&src);
        let count = |code| found.iter().filter(|(c, _)| *c == code).count();
        assert_eq!(count(Code::CallCycle), 1, "{a}/{b}: {found:#?}");
        let deep: Vec<_> = found
            .iter()
            .filter(|(c, _)| *c == Code::DeepCallChain)
            .collect();
        assert_eq!(deep.len(), 1, "{a}/{b}: {found:#?}");
        assert!(
            deep[0].1.contains("`yy.Y@1` starts a chain of 4"),
            "{a}/{b}: {}",
            deep[0].1
        );
    }
}
