//! The JSON Schema printed by `pactum schema` describes the same keys the decoder accepts.

use pactum_codegen::decode;
use serde_json::Value;
use std::collections::BTreeSet;

fn schema() -> Value {
    serde_json::from_str(pactum_codegen::schema::JSON_SCHEMA).expect("schema is JSON")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties in {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(k: &[&str]) -> BTreeSet<String> {
    k.iter().map(|s| s.to_string()).collect()
}

#[test]
fn schema_keys_match_the_decoder() {
    let s = schema();
    let defs = &s["$defs"];
    assert_eq!(keys(&s), set(decode::TOP_KEYS));
    assert_eq!(keys(&defs["field"]["oneOf"][1]), set(decode::FIELD_KEYS));
    assert_eq!(
        keys(&defs["typeDecl"]["oneOf"][1]),
        set(decode::STRUCT_KEYS)
    );
    assert_eq!(keys(&defs["typeDecl"]["oneOf"][2]), set(decode::ENUM_KEYS));
    assert_eq!(
        keys(&defs["typeDecl"]["oneOf"][3]),
        set(decode::NEWTYPE_KEYS)
    );
    assert_eq!(keys(&defs["typeDecl"]["oneOf"][4]), set(decode::UNION_KEYS));
    assert_eq!(
        keys(&defs["variant"]["oneOf"][1]),
        set(decode::VARIANT_KEYS)
    );
    assert_eq!(keys(&defs["errorDecl"]), set(decode::ERROR_KEYS));
    assert_eq!(keys(&defs["operation"]), set(decode::OPERATION_KEYS));
    assert_eq!(
        keys(&defs["operation"]["properties"]["paginate"]["oneOf"][1]),
        set(decode::PAGINATE_KEYS)
    );
    assert_eq!(keys(&defs["auth"]), set(decode::AUTH_KEYS));
    assert_eq!(
        keys(&defs["auth"]["properties"]["schemes"]["additionalProperties"]),
        set(decode::SCHEME_KEYS)
    );
    assert_eq!(
        keys(&defs["operation"]["properties"]["resume"]),
        set(decode::RESUME_KEYS)
    );
    assert_eq!(keys(&defs["event"]), set(decode::EVENT_KEYS));
    assert_eq!(keys(&defs["consume"]), set(decode::CONSUME_KEYS));
    assert_eq!(keys(&defs["call"]), set(decode::CALL_KEYS));
    assert_eq!(keys(&defs["webhook"]), set(decode::WEBHOOK_KEYS));
    assert_eq!(keys(&defs["retry"]), set(decode::RETRY_KEYS));
}

#[test]
fn schema_lists_every_error_status_and_primitive() {
    let s = schema();
    let statuses: BTreeSet<String> = s["$defs"]["errorDecl"]["properties"]["status"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let known: BTreeSet<String> = pactum_codegen::ir::ErrorStatus::ALL
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(statuses, known);
    let described = s["$defs"]["typeExpr"]["description"].as_str().unwrap();
    for (name, _) in pactum_codegen::ast::Primitive::ALL {
        assert!(
            described.contains(name),
            "typeExpr description lacks `{name}`"
        );
    }
}
