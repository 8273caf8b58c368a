//! The generator never panics, whatever it is given; and whatever it accepts, it emits as
//! Rust that parses and as OpenAPI/AsyncAPI documents that are YAML.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

fn run(text: &str) {
    let outcome = pactum_codegen::check_sources(&[(PathBuf::from("fuzz.yaml"), text.to_string())]);
    let _ = outcome.diagnostics.render(&outcome.sources, true);
    if let Some(ir) = &outcome.ir {
        let files = pactum_codegen::emit::module_tree(ir).expect("accepted contracts emit");
        for f in files {
            syn::parse_file(&f.contents).unwrap_or_else(|e| {
                panic!(
                    "emitted Rust does not parse ({e}) for:\n{text}\n---\n{}",
                    f.contents
                )
            });
        }
        let docs = [
            pactum_codegen::emit::openapi::documents(ir),
            pactum_codegen::emit::asyncapi::documents(ir),
            pactum_codegen::emit::proto::files(ir),
        ];
        for files in docs {
            for f in files.expect("accepted contracts render their documents") {
                if f.path.extension().is_some_and(|e| e == "yaml") {
                    yaml_rust2::YamlLoader::load_from_str(&f.contents).unwrap_or_else(|e| {
                        panic!("{} is not YAML ({e}):\n{}", f.path.display(), f.contents)
                    });
                }
            }
        }
    }
}

const KEYS: &[&str] = &[
    "pactum",
    "service",
    "version",
    "owner",
    "types",
    "fields",
    "enum",
    "type",
    "oneof",
    "tag",
    "errors",
    "operations",
    "events",
    "consumes",
    "webhooks",
    "input",
    "output",
    "rest",
    "grpc",
    "deadline",
    "safe",
    "idempotency",
    "retry",
    "attempts",
    "backoff",
    "key",
    "delivery",
    "status",
    "optional",
    "min",
    "max",
    "min_len",
    "pattern",
    "number",
    "reserved",
    "event",
];
const SCALARS: &[&str] = &[
    "1",
    "0",
    "-1",
    "1.0.0",
    "true",
    "false",
    "~",
    "string",
    "u32",
    "list<string>",
    "map<string, u32>",
    "Order?",
    "list<",
    "GET /a/{id}",
    "POST /x",
    "300ms",
    "1m30s",
    "stream",
    "queue",
    "pubsub",
    "key",
    "not_found",
    "payments.Money",
    "a.b.c.d",
    "OrderPlaced",
    "CreateOrder",
    "self",
    "type",
    "9x",
    "",
    "💥",
    "18446744073709551616",
    "1e400",
    "^[a-z",
    "x@1",
    "orders.OrderPlaced@1",
];

fn yamlish() -> impl Strategy<Value = String> {
    let line = (
        0usize..6,
        prop::sample::select(KEYS),
        prop::sample::select(
            &[
                ": ", ":", " ", ": - ", ": { ", ": [", ": &a ", ": *a ", ": |\n",
            ][..],
        ),
        prop::sample::select(SCALARS),
    )
        .prop_map(|(indent, k, sep, v)| format!("{}{k}{sep}{v}", " ".repeat(indent * 2)));
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
}

/// Random JSON values (JSON is YAML) shaped loosely like contracts.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop::sample::select(SCALARS).prop_map(|s| {
        if let Ok(n) = s.parse::<i64>() {
            json!(n)
        } else if s == "true" || s == "false" {
            json!(s == "true")
        } else {
            json!(s)
        }
    });
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

const NAMES: &[&str] = &[
    "Order", "Line", "Money", "Self_", "Type", "Node", "userId", "Result", "A1",
];
const FIELD_NAMES: &[&str] = &[
    "id", "type", "match", "userId", "user_id", "lines", "self", "r#x", "data",
];
const PRIMS: &[&str] = &[
    "bool",
    "i32",
    "i64",
    "u32",
    "u64",
    "f64",
    "string",
    "bytes",
    "timestamp",
    "duration",
    "uuid",
    "decimal",
];

/// Mostly-valid contracts: real type graphs with keywords, recursion, containers and
/// constraints, so that emission is exercised often.
fn contract() -> impl Strategy<Value = String> {
    let ty = (
        prop::sample::select(PRIMS.iter().chain(NAMES).copied().collect::<Vec<_>>()),
        0usize..5,
    )
        .prop_map(|(base, wrap)| match wrap {
            0 => format!("list<{base}>"),
            1 => format!("map<string, {base}>"),
            2 => format!("{base}?"),
            _ => base.to_string(),
        });
    let field = (prop::sample::select(FIELD_NAMES), ty.clone(), 0usize..4).prop_map(|(n, t, k)| {
        let spec = match k {
            0 => json!({"type": t, "max_len": 5}),
            1 => json!({"type": t, "min": 1, "max": 3}),
            2 => json!({"type": t, "min_items": 1}),
            _ => json!(t),
        };
        (n.to_string(), spec)
    });
    let type_decl = (
        prop::sample::select(NAMES),
        prop::collection::vec(field, 0..5),
        0usize..5,
        ty,
        prop::collection::vec(prop::sample::select(NAMES), 1..4),
    )
        .prop_map(|(name, fields, shape, t, variants)| {
            let body = match shape {
                0 => json!({"enum": ["a", "b-c", "unknown"]}),
                1 => json!({"type": t, "pattern": "^x"}),
                2 => json!({
                    "oneof": variants
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("v{i}"), json!(v)))
                        .collect::<Map<_, _>>(),
                    "tag": "kind",
                }),
                _ => json!({"fields": fields.into_iter().collect::<Map<_, _>>()}),
            };
            (name.to_string(), body)
        });
    (
        prop::collection::vec(type_decl, 0..6),
        prop::bool::ANY,
    )
        .prop_map(|(types, with_ops)| {
            let mut c = json!({
                "pactum": 1,
                "service": "fuzz",
                "version": "1.0.0",
                "owner": "team",
                "types": types.into_iter().collect::<Map<_, _>>(),
                "errors": {"Gone": {"status": "not_found", "fields": {"id": "uuid"}}},
            });
            if with_ops {
                c["operations"] = json!({
                    "GetOrder": {"input": {"id": "uuid"}, "output": "Order", "errors": ["Gone"],
                                 "rest": "GET /orders/{id}", "safe": true, "deadline": "1s"},
                });
                c["events"] = json!({
                    "OrderPlaced": {"version": 1, "key": "id", "delivery": "stream", "fields": {"id": "uuid"}}
                });
                c["consumes"] = json!([{"event": "fuzz.OrderPlaced@1", "group": "g", "dead_letter": true}]);
                c["webhooks"] = json!({"OrderShipped": {"version": 1, "fields": {"id": "uuid"}}});
            }
            serde_json::to_string_pretty(&c).unwrap()
        })
}

proptest! {
    // 300 cases each in CI; set PROPTEST_CASES to search harder locally.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        run(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_like_text_never_panics(text in yamlish()) {
        run(&text);
    }

    #[test]
    fn arbitrary_yaml_trees_never_panic(v in value()) {
        run(&serde_json::to_string(&v).unwrap());
        let mut with_header = json!({"pactum": 1, "service": "s", "version": "1.0.0", "owner": "o"});
        with_header["types"] = v;
        run(&serde_json::to_string(&with_header).unwrap());
    }

    #[test]
    fn accepted_contracts_emit_rust_that_parses(text in contract()) {
        run(&text);
    }
}

#[test]
fn structured_generator_produces_accepted_contracts() {
    // Guard against a generator that only ever produces rejected input (a test that cannot fail).
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let accepted = (0..200)
        .filter(|_| {
            let text = contract().new_tree(&mut runner).unwrap().current();
            pactum_codegen::check_sources(&[(PathBuf::from("c.yaml"), text)])
                .ir
                .is_some()
        })
        .count();
    assert!(
        accepted >= 20,
        "only {accepted}/200 generated contracts were accepted"
    );
}

#[test]
fn huge_inputs_are_refused_not_exhausting_the_stack() {
    let deep = format!(
        "pactum: 1\ntypes: {}{}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    run(&deep);
    let long_type = format!(
        "pactum: 1\nservice: s\nversion: 1.0.0\nowner: o\ntypes:\n  A: {{ type: \"{}string{}\" }}\n",
        "list<".repeat(10_000),
        ">".repeat(10_000)
    );
    run(&long_type);
    let big = "a".repeat(pactum_codegen::loader::MAX_FILE_BYTES + 1);
    let out = pactum_codegen::check_sources(&[(PathBuf::from("big.yaml"), big)]);
    assert_eq!(
        out.diagnostics.iter().next().unwrap().code,
        pactum_codegen::diagnostics::Code::TooLarge
    );
}
