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
