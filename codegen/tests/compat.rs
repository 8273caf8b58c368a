//! Breaking-change classification: a table of change pairs, each with the exact rules it must
//! trigger; version discipline; and `pactum check --against <git ref>` in a temporary repo.

use pactum_codegen::compat::{compare, Level, Report, Rule};
use std::collections::BTreeSet;
use std::path::PathBuf;

const BASE: &str = r#"pactum: 1
service: shop
version: 1.0.0
owner: team-shop
description: A shop.
types:
  Id: uuid
  Status: { enum: [open, closed] }
  Legacy: { fields: { x: string } }
  Card: { fields: { last4: string } }
  Bank: { fields: { iban: string } }
  Method: { oneof: { card: Card, bank: Bank }, tag: kind }
  Item:
    description: An item.
    fields:
      id: { type: Id, number: 1 }
      name: { type: string, number: 2, max_len: 50 }
      note: { type: optional<string>, number: 3 }
      qty: { type: u32, number: 4, min: 1 }
errors:
  Missing: { status: not_found, fields: { id: Id } }
operations:
  GetItem:
    input: { id: Id }
    output: Item
    errors: [Missing]
    rest: GET /items/{id}
    grpc: true
    safe: true
    deadline: 1s
  PutItem:
    input: Item
    output: Item
    rest: PUT /items
    idempotency: key
  FindItems:
    input: { page_token: optional<string>, after: optional<string> }
    output: { items: list<Item>, next_page_token: optional<string> }
    rest: GET /found
    safe: true
  ListAll:
    input: { page_token: optional<string>, after: optional<string> }
    output: { items: list<Item>, next_page_token: optional<string> }
    paginate: true
    rest: GET /all
    safe: true
  WatchItems:
    input: { after: optional<u64> }
    output: { seq: u64 }
    grpc: true
    streaming: server
    resume: { id: seq, after: after }
events:
  ItemChanged:
    version: 1
    key: id
    delivery: stream
    fields: { id: Id, sku: string, status: Status }
auth:
  schemes:
    staff: { type: bearer }
    partner: { type: api_key }
  default: [staff]
"#;

fn ir(text: &str) -> pactum_codegen::ir::Ir {
    let outcome = pactum_codegen::check_sources(&[(PathBuf::from("shop.yaml"), text.to_string())]);
    outcome.ir.unwrap_or_else(|| {
        panic!(
            "{}\n{text}",
            outcome.diagnostics.render(&outcome.sources, false)
        )
    })
}

fn diff(old: &str, new: &str) -> Report {
    compare(&ir(old), &ir(new))
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "base lacks {from:?}");
    BASE.replacen(from, to, 1)
}

#[test]
fn every_change_pair_triggers_exactly_its_rules() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("remove a field", edit("      note: { type: optional<string>, number: 3 }\n", ""), &["json/field-removed"]),
        ("change a field's type", edit("qty: { type: u32,", "qty: { type: u64,"), &["json/field-type-changed"]),
        ("add a required field", edit("      qty:", "      price: { type: decimal, number: 5 }\n      qty:"), &["json/required-field-added"]),
        ("add an optional field", edit("      qty:", "      price: { type: optional<decimal>, number: 5 }\n      qty:"), &["json/optional-field-added"]),
        ("optional to required", edit("note: { type: optional<string>", "note: { type: string"), &["json/optional-to-required"]),
        ("required to optional", edit("name: { type: string,", "name: { type: optional<string>,"), &["json/required-to-optional"]),
        ("rename a field, same number", edit("      name: {", "      title: {"), &["json/name-changed"]),
        ("change a wire number", edit("number: 4", "number: 6"), &["binary/number-changed"]),
        // Unnumbered fields count up in declaration order: appending keeps the others'
        // numbers, inserting before one renumbers it, and that is refused.
        ("append an unnumbered field", edit("Legacy: { fields: { x: string } }", "Legacy: { fields: { x: string, y: optional<string> } }"), &["json/optional-field-added"]),
        ("insert an unnumbered field before another", edit("Legacy: { fields: { x: string } }", "Legacy: { fields: { w: optional<string>, x: string } }"), &["json/optional-field-added", "binary/number-changed"]),
        ("insert it with the old number written", edit("Legacy: { fields: { x: string } }", "Legacy: { fields: { w: optional<string>, x: { type: string, number: 1 } } }"), &["json/optional-field-added"]),
        ("reuse a removed field's number", edit("      note: { type: optional<string>, number: 3 }", "      memo: { type: bool, number: 3 }"), &["json/field-removed", "binary/number-reused"]),
        ("remove an enum value", edit("enum: [open, closed]", "enum: [open]"), &["json/enum-value-removed"]),
        ("add an enum value", edit("enum: [open, closed]", "enum: [open, closed, archived]"), &["json/enum-value-added"]),
        ("add a union variant", edit("oneof: { card: Card, bank: Bank }", "oneof: { card: Card, bank: Bank, legacy: Legacy }"), &["json/variant-added"]),
        ("remove a union variant", edit("oneof: { card: Card, bank: Bank }", "oneof: { card: Card, legacy: Legacy }"), &["json/variant-removed", "json/variant-added", "binary/number-reused"]),
        ("reorder union variants", edit("oneof: { card: Card, bank: Bank }", "oneof: { bank: Bank, card: Card }"), &["binary/number-changed"]),
        ("keep numbers when reordering", edit("oneof: { card: Card, bank: Bank }", "oneof: { bank: { type: Bank, number: 2 }, card: { type: Card, number: 1 } }"), &[]),
        ("change a variant's type", edit("oneof: { card: Card, bank: Bank }", "oneof: { card: Card, bank: Legacy }"), &["json/variant-type-changed"]),
        ("change a union's tag", edit("tag: kind", "tag: method"), &["json/union-tag-changed"]),
        ("deprecate a variant", edit("oneof: { card: Card, bank: Bank }", "oneof: { card: Card, bank: { type: Bank, deprecated: use card } }"), &["api/deprecated"]),
        ("tighten max_len", edit("max_len: 50", "max_len: 20"), &["json/constraint-tightened"]),
        ("relax max_len", edit("max_len: 50", "max_len: 100"), &["json/constraint-relaxed"]),
        ("add a pattern", edit("max_len: 50 }", "max_len: 50, pattern: \"^[a-z]+$\" }"), &["json/constraint-tightened"]),
        ("raise a minimum", edit("min: 1 }", "min: 2 }"), &["json/constraint-tightened"]),
        ("newtype wraps another type", edit("  Id: uuid", "  Id: string"), &["json/field-type-changed"]),
        ("remove an operation", edit("  PutItem:\n    input: Item\n    output: Item\n    rest: PUT /items\n    idempotency: key\n", ""), &["api/operation-removed"]),
        ("add an operation", edit("events:", "  ListItems:\n    output: { items: list<Item> }\n    rest: GET /items\n    safe: true\nevents:"), &["api/operation-added", "api/type-added"]),
        ("start paginating", edit("    rest: GET /found\n", "    paginate: true\n    rest: GET /found\n"), &["api/pagination-added"]),
        ("stop paginating", edit("    paginate: true\n", ""), &["api/pagination-changed"]),
        ("page by another cursor", edit("    paginate: true\n", "    paginate: { cursor: after }\n"), &["api/pagination-changed"]),
        ("stop resuming a stream", edit("    resume: { id: seq, after: after }\n", ""), &["api/resume-changed"]),
        ("serve a stream as Server-Sent Events too", edit("    streaming: server\n", "    streaming: server\n    rest: GET /watch\n"), &["rest/route-added"]),
        ("accept another scheme", edit("    deadline: 1s\n", "    deadline: 1s\n    auth: [staff, partner]\n"), &["api/auth-relaxed"]),
        ("make an operation public", edit("    deadline: 1s\n", "    deadline: 1s\n    auth: none\n"), &["api/auth-relaxed"]),
        ("require another scheme instead", edit("    deadline: 1s\n", "    deadline: 1s\n    auth: [partner]\n"), &["api/auth-tightened"]),
        ("change what a scheme's callers present", edit("partner: { type: api_key }", "partner: { type: mtls }"), &["api/auth-tightened"]),
        ("change the HTTP method", edit("rest: PUT /items", "rest: POST /items"), &["rest/method-changed"]),
        ("change the path", edit("rest: GET /items/{id}", "rest: GET /things/{id}"), &["rest/path-changed"]),
        ("drop the REST route", edit("    rest: PUT /items\n", ""), &["rest/route-removed"]),
        ("stop serving over gRPC", edit("    grpc: true\n", ""), &["api/grpc-removed"]),
        ("safe becomes unsafe", edit("    safe: true\n", ""), &["api/safety-changed"]),
        ("drop the idempotency key", edit("    idempotency: key\n", ""), &["api/safety-changed"]),
        ("an operation gains an error", edit("  Missing: { status: not_found, fields: { id: Id } }", "  Missing: { status: not_found, fields: { id: Id } }\n  Gone: { status: not_found }").replacen("errors: [Missing]", "errors: [Missing, Gone]", 1), &["api/error-added", "api/operation-error-added"]),
        ("an operation drops an error", edit("    errors: [Missing]\n", ""), &["api/operation-error-removed"]),
        ("an error is removed", edit("  Missing: { status: not_found, fields: { id: Id } }\n", "").replacen("    errors: [Missing]\n", "", 1).replacen("errors:\n", "", 1), &["api/error-removed", "api/operation-error-removed"]),
        ("change an error's status", edit("Missing: { status: not_found", "Missing: { status: invalid_argument"), &["api/output-changed"]),
        ("change an output", edit("    output: Item\n    errors", "    output: Legacy\n    errors"), &["api/output-changed"]),
        ("change an input", edit("    input: Item\n", "    input: Legacy\n"), &["api/input-changed"]),
        ("remove a type", edit("  Legacy: { fields: { x: string } }\n", ""), &["api/type-removed"]),
        ("change a type's shape", edit("  Legacy: { fields: { x: string } }", "  Legacy: { enum: [x] }"), &["api/shape-changed"]),
        ("change an event's key", edit("    key: id\n", "    key: sku\n"), &["events/key-changed"]),
        ("change an event's delivery", edit("delivery: stream", "delivery: pubsub"), &["events/delivery-changed"]),
        ("bump an event's version", edit("    version: 1\n    key: id", "    version: 2\n    key: id"), &["events/event-removed", "events/event-added"]),
        ("remove an event field", edit("fields: { id: Id, sku: string, status: Status }", "fields: { id: Id, sku: string }"), &["json/field-removed"]),
        ("deprecate a field", edit("qty: { type: u32, number: 4, min: 1 }", "qty: { type: u32, number: 4, min: 1, deprecated: use count }"), &["api/deprecated"]),
        ("change a deadline", edit("deadline: 1s", "deadline: 2s"), &["api/guardrail-changed"]),
        ("change a description", edit("description: An item.", "description: A thing for sale."), &["docs/changed"]),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, new, expected) in &cases {
        let report = diff(BASE, new);
        let got: BTreeSet<&str> = report.findings.iter().map(|f| f.rule.id()).collect();
        let want: BTreeSet<&str> = expected.iter().copied().collect();
        if got != want {
            failures.push(format!("{name}: expected {want:?}, got {got:?}"));
        }
        // Every finding points into the new file, with a help line.
        for f in &report.findings {
            assert!(f.span.is_some(), "{name}: {f:?}");
            assert!(!f.rule.advice().is_empty());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_rule_table_covers_every_group_and_each_rule_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/versioning.md"
    ))
    .unwrap();
    for rule in Rule::ALL {
        assert!(
            doc.contains(&format!("`{}`", rule.id())),
            "docs/versioning.md lacks `{}`",
            rule.id()
        );
    }
    for group in ["api/", "json/", "binary/", "rest/", "events/"] {
        assert!(Rule::ALL.iter().any(|r| r.id().starts_with(group)));
    }
}

#[test]
fn version_discipline() {
    let breaking = edit("      note: { type: optional<string>, number: 3 }\n", "");
    let r = diff(BASE, &breaking);
    assert_eq!(r.discipline.len(), 1);
    assert!(r.discipline[0].error && r.discipline[0].message.contains("2.0.0"));
    assert!(r.failed(false));

    let compatible = edit("enum: [open, closed]", "enum: [open, closed, archived]");
    let r = diff(BASE, &compatible);
    assert!(!r.discipline[0].error && r.discipline[0].message.contains("1.1.0"));
    assert!(!r.failed(false) && r.failed(true));
    let bumped = compatible.replacen("version: 1.0.0", "version: 1.1.0", 1);
    assert!(diff(BASE, &bumped).discipline.is_empty());

    let docs_only = edit("description: An item.", "description: Another item.");
    assert!(diff(BASE, &docs_only).discipline.is_empty());

    let lower = BASE.replacen("version: 1.0.0", "version: 0.9.0", 1);
    let r = diff(
        &BASE.replacen("version: 1.0.0", "version: 1.2.0", 1),
        &lower.replacen("version: 0.9.0", "version: 1.1.0", 1),
    );
    assert!(r.discipline[0].error && r.discipline[0].message.contains("went down"));

    // A new major beside the old one: the old contract is compared with itself, the new one is added.
    let v2 = BASE
        .replacen("version: 1.0.0", "version: 2.0.0", 1)
        .replacen("      note: { type: optional<string>, number: 3 }\n", "", 1);
    let old = ir(BASE);
    let both = pactum_codegen::check_sources(&[
        (PathBuf::from("v1.yaml"), BASE.to_string()),
        (PathBuf::from("v2.yaml"), v2),
    ]);
    let r = compare(&old, both.ir.as_ref().unwrap());
    assert_eq!(r.breaking(), 0);
    assert!(r.findings.iter().any(|f| f.rule == Rule::ContractAdded));
    assert!(!r.failed(true));
    // Dropping the old major is breaking.
    let only_v2 = ir(&BASE.replacen("version: 1.0.0", "version: 2.0.0", 1));
    let r = compare(&old, &only_v2);
    assert!(r
        .findings
        .iter()
        .any(|f| f.rule == Rule::ContractRemoved && f.rule.level() == Level::Breaking));
}

#[test]
fn json_output_names_rule_location_and_help() {
    let new = edit("max_len: 50", "max_len: 20");
    let outcome = pactum_codegen::check_sources(&[(PathBuf::from("shop.yaml"), new)]);
    let report = compare(&ir(BASE), outcome.ir.as_ref().unwrap());
    let json = report.to_json(&outcome.sources);
    let f = &json["findings"][0];
    assert_eq!(f["rule"], "json/constraint-tightened");
    assert_eq!(f["level"], "breaking");
    assert_eq!(f["location"]["file"], "shop.yaml");
    assert_eq!(f["location"]["line"], 17);
    assert!(f["help"].as_str().unwrap().contains("old bound"));
    assert_eq!(json["versions"][0]["severity"], "error");
}

#[test]
fn check_against_a_git_revision_in_a_temporary_repository() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat_git");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("contracts")).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::write(dir.join("contracts/shop.yaml"), BASE).unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "v1.0.0"]);
    std::fs::write(
        dir.join("contracts/shop.yaml"),
        edit("rest: GET /items/{id}", "rest: GET /things/{id}"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pactum"))
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = run(&["check", "contracts", "--against", "HEAD"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("contracts/shop.yaml:23:3: breaking[rest/path-changed]: `GetItem` moved from /v1/items/{id} to /v1/things/{id}"), "{stdout}");
    assert!(stdout.contains("error[version]"), "{stdout}");
    let json = run(&[
        "check",
        "contracts",
        "--against",
        "HEAD",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["breaking"], 1);
    let missing = run(&["check", "contracts", "--against", "no-such-rev"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("neither a path nor a git revision"));
}
