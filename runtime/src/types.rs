//! Rust types for contract primitives.
//!
//! | contract | Rust | JSON |
//! |---|---|---|
//! | `timestamp` | [`Timestamp`] (`chrono::DateTime<Utc>`) | RFC 3339 string |
//! | `uuid` | [`Uuid`] | hyphenated string |
//! | `decimal` | [`Decimal`] | string (no precision lost to floats) |
//! | `bytes` | [`Bytes`] | standard base64 string (as proto3 JSON) |
//! | `duration` | [`Duration`] | `"1.500s"` (as proto3 JSON) |

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

pub use chrono;
pub use rust_decimal::Decimal;
pub use uuid::Uuid;

/// A point in time, UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Binary data; base64 in JSON.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// A span of time; `"<seconds>[.<fraction>]s"` in JSON, like proto3's `Duration`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        if nanos == 0 {
            write!(f, "{secs}s")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a duration like \"1.5s\"");
        let body = s.strip_suffix('s').ok_or_else(bad)?;
        let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || secs.len() > 12 {
            return Err(bad());
        }
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let secs: u64 = secs.parse().map_err(|_| bad())?;
        let nanos: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().map_err(|_| bad())?
        };
        Ok(Duration(std::time::Duration::new(secs, nanos)))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_as_base64() {
        let b = Bytes(vec![0, 1, 2, 250]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"AAEC+g==\"");
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"not base64!\"").is_err());
    }

    #[test]
    fn durations_use_proto_json_form() {
        let d = Duration(std::time::Duration::from_millis(1500));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1.5s\"");
        assert_eq!("2s".parse::<Duration>().unwrap().0.as_secs(), 2);
        assert_eq!("0.000000001s".parse::<Duration>().unwrap().0.as_nanos(), 1);
        for bad in [
            "",
            "s",
            "1",
            "1.s0",
            "-1s",
            "1.0000000001s",
            "99999999999999s",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }
}
