//! Tagged unions on the JSON wire: one object holding the tag property beside the variant's
//! own fields (`{"kind": "card", "last4": "4242"}`), the form OpenAPI's `discriminator`
//! describes and TypeSpec's `@discriminated` and serde's internally tagged enums produce.
//!
//! Generated unions call these functions rather than deriving serde: a derived internally
//! tagged enum cannot keep a variant it does not know, and a union must, so a value from a
//! newer contract version is passed along unchanged and reported by `validate()` rather than
//! failing the whole message (as enums do with their `Unrecognized` value).

use serde::de::Error as _;
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A variant this version of the contract does not know: its tag and its other fields, kept
/// so the value serializes back as it came.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnknownVariant {
    /// The tag's value (empty when a protobuf `oneof` arrived unset or with a field number
    /// this version does not know: protobuf keeps no name for it).
    pub tag: String,
    /// The other properties, as received.
    pub fields: Map<String, Value>,
}

/// Writes `value` (a struct) as one object with `tag_key: tag` first.
#[doc(hidden)]
pub fn serialize<S: Serializer, T: Serialize + ?Sized>(
    serializer: S,
    tag_key: &str,
    tag: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    match serde_json::to_value(value).map_err(S::Error::custom)? {
        Value::Object(fields) => write(serializer, tag_key, tag, &fields),
        _ => Err(S::Error::custom(format!(
            "union variant `{tag}` did not serialize as an object"
        ))),
    }
}

/// Writes an [`UnknownVariant`] back as it came.
#[doc(hidden)]
pub fn serialize_unknown<S: Serializer>(
    serializer: S,
    tag_key: &str,
    unknown: &UnknownVariant,
) -> Result<S::Ok, S::Error> {
    write(serializer, tag_key, &unknown.tag, &unknown.fields)
}

fn write<S: Serializer>(
    serializer: S,
    tag_key: &str,
    tag: &str,
    fields: &Map<String, Value>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(fields.len() + 1))?;
    map.serialize_entry(tag_key, tag)?;
    for (k, v) in fields {
        // A variant never has a field named like the tag (the validator refuses it); an
        // unknown one received with a duplicate is written once, with the tag above.
        if k != tag_key {
            map.serialize_entry(k, v)?;
        }
    }
    map.end()
}

/// Reads a union's object and takes its tag out: the tag's value and the remaining fields.
/// A missing or non-string tag, or a value that is not an object, is an error naming the tag
/// and the variants this version knows.
#[doc(hidden)]
pub fn split<'de, D: Deserializer<'de>>(
    deserializer: D,
    tag_key: &str,
    known: &[&str],
) -> Result<(String, Map<String, Value>), D::Error> {
    let value = Value::deserialize(deserializer)?;
    let Value::Object(mut fields) = value else {
        return Err(D::Error::custom(format!(
            "expected an object with `{tag_key}` set to one of {}, found {}",
            listed(known),
            kind(&value)
        )));
    };
    match fields.remove(tag_key) {
        Some(Value::String(tag)) => Ok((tag, fields)),
        Some(other) => Err(D::Error::custom(format!(
            "`{tag_key}` must be a string naming the variant (one of {}), found {}",
            listed(known),
            kind(&other)
        ))),
        None => Err(D::Error::custom(format!(
            "missing `{tag_key}`: it names the variant, one of {}",
            listed(known)
        ))),
    }
}

/// Decodes a known variant's struct from the fields [`split`] left.
#[doc(hidden)]
pub fn variant<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    tag: &str,
    fields: Map<String, Value>,
) -> Result<T, D::Error> {
    T::deserialize(Value::Object(fields))
        .map_err(|e| D::Error::custom(format!("variant `{tag}`: {e}")))
}

fn listed(known: &[&str]) -> String {
    known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a JSON value is, for messages ("found an array").
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Card {
        last4: String,
    }

    #[derive(Debug, PartialEq)]
    enum Method {
        Card(Card),
        Unrecognized(UnknownVariant),
    }

    impl Serialize for Method {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Method::Card(c) => serialize(s, "kind", "card", c),
                Method::Unrecognized(u) => serialize_unknown(s, "kind", u),
            }
        }
    }

    impl<'de> Deserialize<'de> for Method {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let (tag, fields) = split(d, "kind", &["card"])?;
            match tag.as_str() {
                "card" => variant::<D, _>(&tag, fields).map(Method::Card),
                _ => Ok(Method::Unrecognized(UnknownVariant { tag, fields })),
            }
        }
    }

    #[test]
    fn known_and_unknown_variants_round_trip() {
        let card = Method::Card(Card {
            last4: "4242".into(),
        });
        let text = serde_json::to_string(&card).unwrap();
        assert_eq!(text, r#"{"kind":"card","last4":"4242"}"#);
        assert_eq!(serde_json::from_str::<Method>(&text).unwrap(), card);

        let newer = r#"{"kind":"crypto","wallet":"0xab","chain":1}"#;
        let m: Method = serde_json::from_str(newer).unwrap();
        let Method::Unrecognized(u) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(u.tag, "crypto");
        let back: Value = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(newer).unwrap());
    }

    #[test]
    fn a_missing_or_malformed_tag_is_an_error_naming_the_variants() {
        for (text, expected) in [
            (
                r#"{"last4":"4242"}"#,
                "missing `kind`: it names the variant, one of `card`",
            ),
            (
                r#"{"kind":7}"#,
                "`kind` must be a string naming the variant (one of `card`), found a number",
            ),
            (
                r#"[1]"#,
                "expected an object with `kind` set to one of `card`, found an array",
            ),
            (
                r#"{"kind":"card"}"#,
                "variant `card`: missing field `last4`",
            ),
        ] {
            let e = serde_json::from_str::<Method>(text)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(expected), "{text}: {e}");
        }
    }
}
