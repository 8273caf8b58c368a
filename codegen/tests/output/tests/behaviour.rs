//! What generated code does at run time: wire names, encodings, open enums, constraint
//! validation, error enums, event and operation facts.

use pactum::{DeclaredError, Event, Validate, Webhook};
use pactum_test_output::generated::{common, features::v1 as f};
use serde_json::json;
use std::str::FromStr;

fn pointers<T: Validate>(v: &T) -> Vec<(String, String)> {
    match v.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e
            .violations
            .into_iter()
            .map(|v| (v.pointer, v.message))
            .collect(),
    }
}

fn primitives() -> f::Primitives {
    f::Primitives {
        flag: true,
        small: 2,
        big: -7,
        count: 3,
        huge: u64::MAX,
        ratio: 0.5,
        name: "n".into(),
        blob: vec![1, 2, 3].into(),
        at: "2026-01-02T03:04:05Z".parse().unwrap(),
        ttl: std::time::Duration::from_millis(1500).into(),
        id: pactum::types::Uuid::nil(),
        price: pactum::types::Decimal::from_str("9.99").unwrap(),
    }
}

#[test]
fn primitives_use_their_documented_json_forms() {
    let json = serde_json::to_value(primitives()).unwrap();
    assert_eq!(json["blob"], "AQID");
    assert_eq!(json["ttl"], "1.5s");
    assert_eq!(json["price"], "9.99");
    assert_eq!(json["at"], "2026-01-02T03:04:05Z");
    assert_eq!(json["huge"], u64::MAX);
    let back: f::Primitives = serde_json::from_value(json).unwrap();
    assert_eq!(back, primitives());
}

#[test]
fn keyword_and_camel_case_fields_keep_their_wire_names() {
    let k = f::Keywords {
        r#type: "t".into(),
        r#match: 1,
        r#async: true,
        user_id: pactum::types::Uuid::nil(),
    };
    assert_eq!(
        serde_json::to_value(&k).unwrap(),
        json!({"type": "t", "match": 1, "async": true, "userId": "00000000-0000-0000-0000-000000000000"})
    );
}

#[test]
fn enums_are_open_but_validation_refuses_unknown_values() {
    let known: f::Level = serde_json::from_str("\"critical-now\"").unwrap();
    #[allow(deprecated)]
    let expected = f::Level::CriticalNow;
    assert_eq!(known, expected);
    let newer: f::Level = serde_json::from_str("\"catastrophic\"").unwrap();
    assert_eq!(newer, f::Level::Unrecognized("catastrophic".into()));
    assert_eq!(serde_json::to_string(&newer).unwrap(), "\"catastrophic\"");
    assert_eq!(
        pointers(&newer),
        vec![(String::new(), "unknown value `catastrophic`".to_string())]
    );
    assert_eq!(f::Level::KNOWN, &["low", "high", "critical-now"]);
    assert!(serde_json::from_str::<f::Level>("7").is_err());
}

#[test]
fn optional_fields_may_be_absent_and_are_not_serialized_when_none() {
    let v = f::Versioned {
        id: pactum::types::Uuid::nil(),
        name: "x".into(),
        #[allow(deprecated)]
        legacy: None,
    };
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(
        json,
        json!({"id": "00000000-0000-0000-0000-000000000000", "name": "x"})
    );
    let back: f::Versioned = serde_json::from_value(json).unwrap();
    assert_eq!(back, v);
    assert!(serde_json::from_value::<f::Versioned>(json!({"name": "x"})).is_err());
}

#[test]
fn recursive_types_box_optional_links_only() {
    let leaf = f::Tree {
        label: "leaf".into(),
        parent: None,
        children: vec![],
    };
    let root = f::Tree {
        label: "root".into(),
        parent: Some(Box::new(leaf.clone())),
        children: vec![leaf],
    };
    let back: f::Tree = serde_json::from_value(serde_json::to_value(&root).unwrap()).unwrap();
    assert_eq!(back, root);
    let _mutual = f::Ping {
        pong: Some(Box::new(f::Pong { ping: None })),
    };
}

#[test]
fn validation_reports_every_violation_with_a_json_pointer() {
    let mut c = f::Containers {
        tags: vec![],
        labels: [("a", "1"), ("b", "2"), ("c", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        nested: vec![],
        maybe: Some(f::Primitives {
            small: 9,
            ratio: 1.5,
            ..primitives()
        }),
        maybe_list: Some(vec!["a".into(), "b".into(), "c".into()]),
        money: common::v3::Money {
            amount: pactum::types::Decimal::from_str("-1").unwrap(),
            currency: "eur".into(),
        },
        result: f::Result { ok: true },
        option: f::Option::Some,
        string: f::String("s".into()),
    };
    assert_eq!(
        pointers(&c),
        vec![
            ("/tags".into(), "0 item(s) is outside 1..=3".into()),
            ("/labels".into(), "3 item(s) is outside ..=2".into()),
            ("/maybe/small".into(), "must be at most 5, got 9".into()),
            ("/maybe/ratio".into(), "must be at most 1, got 1.5".into()),
            ("/maybe_list".into(), "3 item(s) is outside ..=2".into()),
            ("/money/amount".into(), "must be at least 0, got -1".into()),
            ("/money/currency".into(), "must match /^[A-Z]{3}$/".into()),
        ]
    );
    c.tags = vec![common::v3::Tag("this tag is far too long".into())];
    assert!(pointers(&c).contains(&("/tags/0".into(), "length 24 is outside 1..=16".into())));
}

#[test]
fn newtype_constraints_apply_at_every_level() {
    assert!(f::ProductSlug(f::Slug("shoes-42".into()))
        .validate()
        .is_ok());
    assert_eq!(
        pointers(&f::ProductSlug(f::Slug("ab".into()))),
        vec![(String::new(), "length 2 is outside 3..".into())]
    );
    assert_eq!(
        pointers(&f::ProductSlug(f::Slug("No Caps".into()))),
        vec![(String::new(), "must match /^[a-z0-9-]+$/".into())]
    );
    assert_eq!(
        pointers(&f::Blob(vec![0; 9].into())),
        vec![(String::new(), "length 9 is outside ..=8".into())]
    );
    assert_eq!(f::Count(10_000).validate().unwrap_err().violations.len(), 1);
    assert_eq!(f::ProductSlug(f::Slug("x-y".into())).to_string(), "x-y");
}

#[test]
fn operation_error_enums_carry_status_code_and_message() {
    let e: f::FetchError = f::NotThere {
        id: pactum::types::Uuid::nil(),
        nearest: Some(circle(1.0)),
    }
    .into();
    assert_eq!(e.status(), pactum::ErrorStatus::NotFound);
    assert_eq!(e.status().http_status(), 404);
    assert_eq!(e.status().grpc_code(), 5);
    assert_eq!(e.code(), "NotThere");
    assert_eq!(e.to_string(), "Nothing has this id.");
    assert_eq!(<f::Busy as DeclaredError>::STATUS.http_status(), 503);
    assert_eq!(
        f::Conflicting {}.to_string(),
        "Someone else changed it first.\nReload and try again."
    );
    // An operation without declared errors has an error type that cannot be built.
    fn never(e: f::PingError) -> ! {
        match e {}
    }
    let _ = never;
}

#[test]
fn events_know_their_broker_facts() {
    let e = f::ThingStored {
        id: pactum::types::Uuid::from_u128(7),
        slug: f::ProductSlug(f::Slug("s".into())),
        at: pactum::types::Timestamp::UNIX_EPOCH,
        outline: None,
    };
    assert_eq!(f::ThingStored::NAME, "ThingStored");
    assert_eq!(f::ThingStored::VERSION, 3);
    assert_eq!(f::ThingStored::SOURCE, "features");
    assert_eq!(f::ThingStored::TYPE, "features.ThingStored.v3");
    assert_eq!(f::ThingStored::SUBJECT, "features.thing_stored.v3");
    assert_eq!(f::ThingStored::DELIVERY, pactum::DeliveryMode::Stream);
    assert_eq!(
        e.ordering_key().as_deref(),
        Some("00000000-0000-0000-0000-000000000007")
    );
    #[allow(deprecated)]
    let alarm = f::AlarmRaised {
        level: f::Level::High,
    };
    assert_eq!(alarm.ordering_key(), None);
    assert_eq!(<f::ThingShipped as Webhook>::TYPE, "features.thing_shipped");
    assert_eq!(<f::ThingShipped as Webhook>::VERSION, 2);
}

#[test]
fn operation_and_consumer_facts_follow_the_contract() {
    let fetch = f::operations::FETCH;
    assert_eq!(
        fetch.route,
        Some(pactum::Route {
            method: "GET",
            path: "/v1/things/{id}"
        })
    );
    assert_eq!(fetch.deadline, Some(std::time::Duration::from_millis(250)));
    assert!(fetch.safe && fetch.retryable() && fetch.grpc);
    let retry = fetch.retry.unwrap();
    assert_eq!((retry.attempts, retry.full_jitter), (3, false));
    assert_eq!(retry.max_backoff, std::time::Duration::from_millis(100));
    assert_eq!(f::operations::STORE.idempotency, pactum::Idempotency::Key);
    assert_eq!(f::operations::WATCH.streaming, pactum::Streaming::Server);
    assert_eq!(f::operations::UPLOAD.streaming, pactum::Streaming::Client);
    assert!(!f::operations::WATCH.retryable());
    let audit = f::events::consumers::FEATURES_THING_STORED_V3;
    assert_eq!((audit.group, audit.dead_letter), ("auditors", true));
    let tagged = f::events::consumers::FEATURES_THING_TAGGED_V1;
    assert_eq!((tagged.group, tagged.dead_letter), ("features", false));
    assert_eq!(tagged.retry.unwrap().attempts, 4);
    assert_eq!(f::VERSION, "1.4.2");
    assert_eq!(common::v3::OWNER, "team-platform");
}

fn circle(radius: f64) -> f::Shape {
    f::Shape::Circle(f::Circle { radius })
}

#[test]
fn unions_are_one_object_with_the_tag_beside_the_variants_fields() {
    assert_eq!(
        serde_json::to_value(circle(1.5)).unwrap(),
        json!({"kind": "circle", "radius": 1.5})
    );
    let price = f::Shape::Price(common::v3::Money {
        amount: pactum::types::Decimal::from_str("2.50").unwrap(),
        currency: "EUR".into(),
    });
    let json = serde_json::to_value(&price).unwrap();
    assert_eq!(
        json,
        json!({"kind": "price", "amount": "2.50", "currency": "EUR"})
    );
    assert_eq!(serde_json::from_value::<f::Shape>(json).unwrap(), price);
    assert_eq!(price.variant(), "price");
    assert_eq!(f::Shape::TAG, "kind");
    assert_eq!(f::Shape::KNOWN, &["circle", "square", "tree", "price"]);
    // In every position a field can hold one.
    let drawing = f::Drawing {
        main: circle(1.0),
        backup: None,
        layers: vec![f::Shape::Square(f::Square { side: 2.0 }), circle(3.0)],
        named: [("sun".to_string(), circle(9.0))].into(),
    };
    let json = serde_json::to_value(&drawing).unwrap();
    assert_eq!(json["layers"][0], json!({"kind": "square", "side": 2.0}));
    assert_eq!(json["named"]["sun"]["kind"], "circle");
    assert!(json.get("backup").is_none());
    assert_eq!(serde_json::from_value::<f::Drawing>(json).unwrap(), drawing);
}

#[test]
fn unions_keep_unknown_variants_and_validation_refuses_them() {
    let newer = json!({"kind": "hexagon", "side": 1, "rotation": 30});
    let shape: f::Shape = serde_json::from_value(newer.clone()).unwrap();
    assert_eq!(shape.variant(), "hexagon");
    // Passed along unchanged.
    assert_eq!(serde_json::to_value(&shape).unwrap(), newer);
    assert_eq!(
        pointers(&shape),
        vec![(
            "/kind".to_string(),
            "unknown variant `hexagon`: `kind` must be one of `circle`, `square`, `tree`, `price`"
                .to_string()
        )]
    );
    // Each variant's own constraints apply, under the union's place.
    let drawing = f::Drawing {
        main: circle(-1.0),
        backup: Some(circle(1.0)),
        layers: vec![circle(0.0), circle(-2.0)],
        named: Default::default(),
    };
    let found: Vec<String> = pointers(&drawing).into_iter().map(|(p, _)| p).collect();
    assert_eq!(found, ["/main/radius", "/layers/1/radius"]);
}

#[test]
fn a_union_without_its_tag_or_with_a_bad_variant_body_is_refused_with_the_reason() {
    let cases = [
        (
            json!({"radius": 1.0}),
            "missing `kind`: it names the variant, one of `circle`, `square`, `tree`, `price`",
        ),
        (
            json!({"kind": 3, "radius": 1.0}),
            "`kind` must be a string naming the variant",
        ),
        (
            json!({"kind": "circle"}),
            "variant `circle`: missing field `radius`",
        ),
        (
            json!({"kind": "circle", "radius": "wide"}),
            "variant `circle`: invalid type: string \"wide\"",
        ),
        (
            json!("circle"),
            "expected an object with `kind` set to one of",
        ),
    ];
    for (value, expected) in cases {
        let e = serde_json::from_value::<f::Shape>(value.clone())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(expected), "{value}: {e}");
    }
}

/// Validates each JSON value against `#/components/schemas/<schema>` of the fixture's
/// OpenAPI document with Python's `jsonschema` (Draft 2020-12, as OpenAPI 3.1 uses); returns
/// whether each one is valid.
fn openapi_accepts(schema: &str, values: &[serde_json::Value]) -> Vec<bool> {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/features.v1.yaml");
    let script = r##"
import json, sys, yaml, jsonschema
doc = yaml.safe_load(open(sys.argv[1]))
root = {"$ref": "#/components/schemas/" + sys.argv[2], "components": doc["components"]}
validator = jsonschema.Draft202012Validator(root)
print(json.dumps([validator.is_valid(v) for v in json.loads(sys.stdin.read())]))
"##;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&doc)
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(values).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "this test needs jsonschema and pyyaml (python3 -m pip install jsonschema pyyaml):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn union_json_is_what_the_openapi_schema_describes() {
    let drawing = f::Drawing {
        main: circle(1.0),
        backup: Some(f::Shape::Square(f::Square { side: 2.0 })),
        layers: vec![f::Shape::Price(common::v3::Money {
            amount: pactum::types::Decimal::from_str("1.00").unwrap(),
            currency: "EUR".into(),
        })],
        named: [("sun".to_string(), circle(9.0))].into(),
    };
    let valid = serde_json::to_value(&drawing).unwrap();
    let mut unknown = valid.clone();
    unknown["main"] = json!({"kind": "hexagon", "side": 1});
    let mut untagged = valid.clone();
    untagged["main"] = json!({"radius": 1.0});
    let mut wrong_body = valid.clone();
    wrong_body["main"] = json!({"kind": "circle", "side": 1.0});
    assert_eq!(
        openapi_accepts("Drawing", &[valid, unknown, untagged, wrong_body]),
        [true, false, false, false]
    );
}
