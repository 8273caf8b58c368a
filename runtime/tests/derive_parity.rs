//! Generated types get serde through `__serde_struct!` and `__open_enum!(…, json)` rather
//! than serde's derives (they were two fifths of a large generated crate's build). This
//! holds them to the derives: the same types, written both ways, must give the same value or
//! the same error text for every document of a hand-picked corpus and of a seeded random
//! one, read from text, bytes, a reader and a `serde_json::Value`, and must write every value
//! read back as the same JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The types as serde's derive writes them.
#[allow(dead_code)] // fields are read through `Debug` only
mod derived {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Line {
        pub sku: String,
        pub qty: u32,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Order {
        pub id: String,
        #[serde(rename = "lineItems")]
        pub line_items: Vec<Line>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub note: Option<String>,
        pub status: Status,
        /// Required, but an `Option`: missing reads as `None`, as the derive does.
        pub maybe: Option<u32>,
        #[serde(rename = "type")]
        pub r#type: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Single {
        pub only: i64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Empty {}

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub enum Status {
        #[serde(rename = "active")]
        Active,
        #[serde(rename = "closed")]
        Closed,
        #[serde(untagged)]
        Unrecognized(String),
    }
}

/// The same types as the generator now writes them.
#[allow(dead_code)] // fields are read through `Debug` only
mod written {
    #[derive(Debug)]
    pub struct Line {
        pub sku: String,
        pub qty: u32,
    }
    pactum::__serde_struct!(Line { 0 sku = "sku" required, 1 qty = "qty" required });

    #[derive(Debug)]
    pub struct Order {
        pub id: String,
        pub line_items: Vec<Line>,
        pub note: Option<String>,
        pub status: Status,
        pub maybe: Option<u32>,
        pub r#type: String,
    }
    pactum::__serde_struct!(Order {
        0 id = "id" required,
        1 line_items = "lineItems" required,
        2 note = "note" default,
        3 status = "status" required,
        4 maybe = "maybe" required,
        5 r#type = "type" required,
    });

    #[derive(Debug)]
    pub struct Single {
        pub only: i64,
    }
    pactum::__serde_struct!(Single { 0 only = "only" required });

    #[derive(Debug)]
    pub struct Empty {}
    pactum::__serde_struct!(Empty {});

    #[derive(Debug, PartialEq)]
    pub enum Status {
        Active,
        Closed,
        Unrecognized(String),
    }
    pactum::__open_enum!(Status { Active = "active", Closed = "closed" }, json);

    // Names of the impls' own type parameters, and deprecated types: each must compile
    // warning-free (this file is built with `-D warnings` in CI).
    #[derive(Debug)]
    pub struct S {
        pub d: D,
    }
    pactum::__serde_struct!(S { 0 d = "d" required });

    #[derive(Debug)]
    pub enum D {
        X,
        Unrecognized(String),
    }
    pactum::__open_enum!(D { X = "x" }, json);

    #[deprecated = "gone in v2"]
    #[derive(Debug)]
    pub struct Old {
        #[deprecated]
        #[allow(deprecated)] // naming a deprecated type is the naming code's to allow
        pub kind: Older,
    }
    pactum::__serde_struct!(Old { 0 kind = "kind" required });

    #[deprecated]
    #[derive(Debug)]
    pub enum Older {
        #[deprecated]
        A,
        Unrecognized(String),
    }
    pactum::__open_enum!(Older { A = "a" }, json);
}

/// Every way a document is read, each result as text: `Ok(<Debug>) <written back>` or
/// `Err(<message>)`.
fn readings<T: for<'de> Deserialize<'de> + Serialize + std::fmt::Debug>(doc: &str) -> Vec<String> {
    let show = |r: Result<T, serde_json::Error>| match r {
        Ok(v) => format!(
            "Ok({v:?}) {} {:?}",
            serde_json::to_string(&v).unwrap(),
            serde_json::to_value(&v).unwrap()
        ),
        Err(e) => format!("Err({e})"),
    };
    let mut out = vec![
        show(serde_json::from_str(doc)),
        show(serde_json::from_slice(doc.as_bytes())),
        show(serde_json::from_reader(doc.as_bytes())),
    ];
    if let Ok(value) = serde_json::from_str::<Value>(doc) {
        out.push(show(serde_json::from_value(value)));
    }
    out
}

/// Reads `doc` as each pair of types and returns the documents where they differ.
fn compare(doc: &str) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |kind: &str, a: Vec<String>, b: Vec<String>| {
        if a != b {
            diffs.push(format!("{kind} {doc}\n  derive:  {a:?}\n  written: {b:?}"));
        }
    };
    check(
        "Order",
        readings::<derived::Order>(doc),
        readings::<written::Order>(doc),
    );
    check(
        "Line",
        readings::<derived::Line>(doc),
        readings::<written::Line>(doc),
    );
    check(
        "Single",
        readings::<derived::Single>(doc),
        readings::<written::Single>(doc),
    );
    check(
        "Empty",
        readings::<derived::Empty>(doc),
        readings::<written::Empty>(doc),
    );
    check(
        "Status",
        readings::<derived::Status>(doc),
        readings::<written::Status>(doc),
    );
    check(
        "Vec<Status>",
        readings::<Vec<derived::Status>>(doc),
        readings::<Vec<written::Status>>(doc),
    );
    diffs
}

const CORPUS: &[&str] = &[
    // Objects: whole, partial, extra, duplicated, wrongly typed.
    r#"{"id":"o1","lineItems":[{"sku":"a","qty":1}],"status":"active","maybe":3,"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":"active","type":"t","note":"n"}"#,
    r#"{"id":"o1","lineItems":[],"status":"paused","type":"t","note":null,"maybe":null}"#,
    r#"{"lineItems":[],"status":"active","type":"t"}"#,
    r#"{"id":"o1","status":"active","type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":"active"}"#,
    r#"{"id":"o1","id":"o2","lineItems":[],"status":"active","type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":"active","type":"t","note":"a","note":"b"}"#,
    r#"{"id":"o1","lineItems":[],"status":"active","type":"t","extra":{"deep":[1,2,{"x":null}]}}"#,
    r#"{"id":1,"lineItems":[],"status":"active","type":"t"}"#,
    r#"{"id":"o1","lineItems":{},"status":"active","type":"t"}"#,
    r#"{"id":"o1","lineItems":[{"sku":"a"}],"status":"active","type":"t"}"#,
    r#"{"id":"o1","lineItems":[{"sku":"a","qty":-1}],"status":"active","type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":5,"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":{"active":null},"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":{"closed":null,"active":null},"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":{"other":null},"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":{"active":1},"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":{"active":null,"active":null},"type":"t"}"#,
    r#"{"ID":"o1","LineItems":[],"Status":"active","Type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":"active","type":"t""#,
    r#"{"id":"o1","lineItems":[],"status":"active","type":"t"} x"#,
    r#"{"id":"o1","lineItems":[],"status":"active","type":"t",}"#,
    r#"{"only":1}"#,
    r#"{"only":1.5}"#,
    r#"{"only":"1"}"#,
    r#"{"only":99999999999999999999}"#,
    r#"{"only":1,"only":2}"#,
    r#"{"sku":"a","qty":1}"#,
    r#"{"sku":"a","qty":4294967296}"#,
    r#"{"\u0073ku":"escaped key","qty":1}"#,
    r#"{}"#,
    r#"{"x":1}"#,
    // Arrays stand for structs in field order.
    r#"["o1",[["a",1]],"n","active",3,"t"]"#,
    r#"["o1",[["a",1]]]"#,
    r#"["o1",[["a",1]],"n","active"]"#,
    r#"["o1",[],null,"closed",null,"t","extra"]"#,
    r#"[]"#,
    r#"[1]"#,
    r#"[1,2]"#,
    r#"["a"]"#,
    r#"["a",1]"#,
    // Scalars and the enum's forms.
    r#""active""#,
    r#""closed""#,
    r#""Active""#,
    r#""Unrecognized""#,
    r#""""#,
    r#""\u00e9t\u00e9""#,
    r#"null"#,
    r#"true"#,
    r#"0"#,
    r#"-1.5e3"#,
    r#"1e400"#,
    r#"["active","closed","new",{"active":null},7]"#,
    r#"["active","closed","new"]"#,
    r#"{"active":null}"#,
    r#"{"active":[]}"#,
    r#"{"active":{}}"#,
    r#"{"closed":null} "#,
    r#"  {"closed" : null}"#,
    r#"{"closed":null"#,
    r#""active"#,
    r#""#,
    r#"nul"#,
    // Bad content inside an enum's value: refused where it is bad, as the derive does.
    r#"[1e400]"#,
    r#"["\ud800"]"#,
    r#"[[1,]]"#,
    r#"[{"a":1,}]"#,
    r#"{"active":[1e400]}"#,
    r#"{"active":null,"x":"\ud800"}"#,
    r#"{"id":"o1","lineItems":[],"status":[1e400],"type":"t"}"#,
    r#"{"id":"o1","lineItems":[],"status":{"active":"\u00e9"},"type":"t"}"#,
];

#[test]
fn the_written_impls_read_every_corpus_document_as_the_derive_does() {
    let diffs: Vec<String> = CORPUS.iter().flat_map(|doc| compare(doc)).collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn the_corpus_reaches_every_outcome() {
    // A corpus that only succeeds (or only fails) would prove little: each kind of error the
    // written impls produce, and success, must appear.
    let all: Vec<String> = CORPUS
        .iter()
        .flat_map(|doc| {
            let mut r = readings::<written::Order>(doc);
            r.extend(readings::<written::Single>(doc));
            r.extend(readings::<written::Status>(doc));
            r
        })
        .collect();
    for needle in [
        "Ok(Order",
        "Ok(Single",
        "Ok(Active)",
        "Ok(Unrecognized(",
        "missing field `id`",
        "duplicate field `id`",
        "invalid length 3, expected struct Order with 6 elements",
        "invalid length 0, expected struct Single with 1 element",
        "expected struct Order",
        "data did not match any variant of untagged enum Status",
    ] {
        assert!(
            all.iter().any(|r| r.contains(needle)),
            "no reading contains {needle:?}"
        );
    }
}

/// A random JSON value drawn from pieces that matter to these types: their field names
/// (and near misses), the enum's values, right and wrong scalars, arrays and objects.
fn random_value(rng: &mut fastrand::Rng, depth: u32) -> String {
    const KEYS: &[&str] = &[
        "id",
        "lineItems",
        "note",
        "status",
        "maybe",
        "type",
        "sku",
        "qty",
        "only",
        "active",
        "closed",
        "Id",
        "extra",
    ];
    const SCALARS: &[&str] = &[
        "\"active\"",
        "\"closed\"",
        "\"other\"",
        "\"o1\"",
        "\"\"",
        "null",
        "true",
        "0",
        "1",
        "-1",
        "4294967296",
        "2.5",
    ];
    let pick = rng.u32(0..10);
    if depth == 0 || pick < 4 {
        return SCALARS[rng.usize(0..SCALARS.len())].to_string();
    }
    let n = rng.usize(0..7);
    if pick < 6 {
        let items: Vec<String> = (0..n).map(|_| random_value(rng, depth - 1)).collect();
        format!("[{}]", items.join(","))
    } else {
        let items: Vec<String> = (0..n)
            .map(|_| {
                format!(
                    "\"{}\":{}",
                    KEYS[rng.usize(0..KEYS.len())],
                    random_value(rng, depth - 1)
                )
            })
            .collect();
        format!("{{{}}}", items.join(","))
    }
}

/// A valid order, then a few random edits: a field dropped, doubled, renamed or given a
/// random value, or the whole written as an array.
fn mutated_order(rng: &mut fastrand::Rng) -> String {
    let mut fields: Vec<(String, String)> = [
        ("id", "\"o1\""),
        ("lineItems", r#"[{"sku":"a","qty":1},["b",2]]"#),
        ("note", "\"n\""),
        ("status", "\"active\""),
        ("maybe", "3"),
        ("type", "\"t\""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for _ in 0..rng.usize(0..3) {
        let i = rng.usize(0..fields.len());
        match rng.u32(0..5) {
            0 => {
                fields.remove(i);
            }
            1 => {
                let doubled = fields[i].clone();
                fields.insert(rng.usize(0..=fields.len()), doubled);
            }
            2 => fields[i].0.push('x'),
            _ => fields[i].1 = random_value(rng, 2),
        }
        if fields.is_empty() {
            break;
        }
    }
    if rng.u32(0..4) == 0 {
        let values: Vec<&str> = fields.iter().map(|(_, v)| v.as_str()).collect();
        format!("[{}]", values.join(","))
    } else {
        let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", pairs.join(","))
    }
}

#[test]
fn the_written_impls_read_random_documents_as_the_derive_does() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0019);
    let mut diffs = Vec::new();
    let mut accepted = 0;
    for _ in 0..4000 {
        let doc = if rng.bool() {
            random_value(&mut rng, 4)
        } else {
            mutated_order(&mut rng)
        };
        if readings::<written::Order>(&doc)[0].starts_with("Ok") {
            accepted += 1;
        }
        diffs.extend(compare(&doc));
        if diffs.len() > 5 {
            break;
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(
        accepted > 0,
        "no random document was an order: the generator proves little"
    );
}

#[test]
#[allow(deprecated)]
fn names_of_the_impls_type_parameters_and_deprecated_types_work() {
    let s: written::S = serde_json::from_str(r#"{"d":"x"}"#).unwrap();
    assert!(matches!(s.d, written::D::X));
    assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"d":"x"}"#);
    let old: written::Old = serde_json::from_str(r#"{"kind":"b"}"#).unwrap();
    assert!(matches!(old.kind, written::Older::Unrecognized(ref b) if b == "b"));
    assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"kind":"b"}"#);
}

/// The calls a serializer sees, and what a self-describing format other than JSON gives an
/// enum (bytes, a variant index as key, `None` rather than unit), as with serde's derive.
#[test]
fn open_enums_meet_other_formats_as_the_derive_does() {
    use serde_test::{assert_de_tokens, assert_de_tokens_error, assert_ser_tokens, Token};
    let closed = [Token::UnitVariant {
        name: "Status",
        variant: "closed",
    }];
    assert_ser_tokens(&derived::Status::Closed, &closed);
    assert_ser_tokens(&written::Status::Closed, &closed);
    // A string equal to a known value, but built as unrecognized, is written as a string.
    for text in ["x", "active"] {
        let tokens = [Token::Str(text)];
        assert_ser_tokens(&derived::Status::Unrecognized(text.into()), &tokens);
        assert_ser_tokens(&written::Status::Unrecognized(text.into()), &tokens);
    }
    macro_rules! both {
        ($variant:ident $(($arg:expr))?, $tokens:expr) => {
            assert_de_tokens(&derived::Status::$variant$(($arg.into()))?, $tokens);
            assert_de_tokens(&written::Status::$variant$(($arg.into()))?, $tokens);
        };
    }
    macro_rules! both_refuse {
        ($tokens:expr) => {
            let message = "data did not match any variant of untagged enum Status";
            assert_de_tokens_error::<derived::Status>($tokens, message);
            assert_de_tokens_error::<written::Status>($tokens, message);
        };
    }
    both!(Closed, &[Token::Str("closed")]);
    both!(Unrecognized("new"), &[Token::Str("new")]);
    // Bytes never name a known value: the derive reads them as the untagged string.
    both!(Unrecognized("active"), &[Token::Bytes(b"active")]);
    let map = |key: Token, value: Token| [Token::Map { len: Some(1) }, key, value, Token::MapEnd];
    both!(Closed, &map(Token::Str("closed"), Token::Unit));
    both!(Closed, &map(Token::Bytes(b"closed"), Token::Unit));
    both!(Closed, &map(Token::U64(1), Token::Unit));
    both!(Closed, &map(Token::U8(1), Token::Unit));
    both_refuse!(&map(Token::U32(1), Token::Unit));
    both_refuse!(&map(Token::U64(2), Token::Unit));
    both_refuse!(&map(Token::Str("closed"), Token::None));
    both_refuse!(&map(Token::Str("closed"), Token::Bool(true)));
    both_refuse!(&[Token::Some, Token::Str("closed")]);
    both_refuse!(&[Token::Char('a')]);
    both_refuse!(&[Token::U8(0)]);
}

#[test]
fn open_enums_serialize_as_the_derive_does() {
    for (a, b) in [
        (derived::Status::Active, written::Status::Active),
        (derived::Status::Closed, written::Status::Closed),
        (
            derived::Status::Unrecognized("paused".into()),
            written::Status::Unrecognized("paused".into()),
        ),
    ] {
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap()
        );
    }
}
