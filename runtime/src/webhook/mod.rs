//! Signing and verifying webhook deliveries, following the Standard Webhooks scheme.
//!
//! A delivery carries three headers: `webhook-id` (the message id, which doubles as the
//! receiver's idempotency key), `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (space-separated `v1,<base64 HMAC-SHA256>` entries, several while a secret is being
//! rotated). The signed content is `"{id}.{timestamp}.{body}"`, so neither the id nor the
//! timestamp can be swapped onto another body, and a tolerance window on the timestamp bounds
//! how long a captured delivery can be replayed.
//!
//! The body is the envelope `{"type", "timestamp", "data"}` ([`Envelope`]); [`WebhookSender`]
//! signs and delivers it with retries, and [`SignedWebhook`] is the axum extractor that
//! verifies it on the receiving side.

pub mod durable;
mod receive;
mod send;

pub use receive::{Inbox, Refused, SignedWebhook, Verified, DEDUP_RETENTION};
pub use send::{Attempt, Delivered, SendError, WebhookSender};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::time::Duration;

/// Header carrying the message id.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the send time in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying one or more `v1,<signature>` entries.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a delivery's timestamp may lie from the receiver's clock, either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const SECRET_PREFIX: &str = "whsec_";

/// The delivered body: the payload's wire `type`, when it was produced, and the payload.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Envelope<T> {
    /// The payload's [`Webhook::TYPE`](crate::Webhook::TYPE).
    #[serde(rename = "type")]
    pub kind: String,
    /// When the payload was produced (RFC 3339), not when this attempt was sent.
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// The payload.
    pub data: T,
}

/// A shared signing secret.
///
/// Its `Debug` output never shows the key, so it can sit in configuration structs that are
/// logged.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    /// Parses the textual form `whsec_<base64>`; the prefix is optional.
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD
            .decode(encoded.trim())
            .map_err(|_| WebhookError::BadSecret)?;
        Self::from_bytes(key)
    }

    /// Wraps raw key bytes. Keys shorter than 24 bytes are refused: the scheme asks for
    /// 24–64 random bytes, and a short key makes signatures guessable.
    pub fn from_bytes(key: Vec<u8>) -> Result<Self, WebhookError> {
        if key.len() < 24 {
            return Err(WebhookError::BadSecret);
        }
        Ok(Self { key })
    }

    /// The textual form, `whsec_<base64>`.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value for one delivery: `v1,<base64 signature>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Checks a delivery against this secret, with the receiver's clock at `now` (Unix
    /// seconds). Any one matching `v1` entry is enough; comparison is constant-time.
    pub fn verify(
        &self,
        delivery: &SignedDelivery<'_>,
        body: &[u8],
        now: i64,
        tolerance: Duration,
    ) -> Result<(), WebhookError> {
        let skew = now.abs_diff(delivery.timestamp);
        if skew > tolerance.as_secs() {
            return Err(if delivery.timestamp < now {
                WebhookError::TooOld
            } else {
                WebhookError::TooNew
            });
        }
        // The body is hashed once; each entry checks against a copy of the finished state.
        let mac = self.mac(delivery.id, delivery.timestamp, body);
        if delivery.matches(&mac)? {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }
}

/// The most `v1,` entries a `webhook-signature` header may carry. Senders add one per active
/// secret (two during a rotation); a header with more is refused before any is compared.
pub const MAX_SIGNATURES: usize = 8;

/// Length of a base64 HMAC-SHA256 tag (32 bytes, padded).
const TAG_BASE64_LEN: usize = 44;

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// The three signature headers of one delivery, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct SignedDelivery<'a> {
    /// `webhook-id`: the message id, stable across redeliveries of the same message.
    pub id: &'a str,
    /// `webhook-timestamp`, in Unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`, as sent.
    pub signature: &'a str,
}

impl SignedDelivery<'_> {
    /// True when one of the header's `v1,` entries is `tag`. Entries are space-separated and
    /// at most [`MAX_SIGNATURES`] (more refuses the header before any comparison); only a
    /// well-formed `v1,` entry (a 44-character base64 tag) is compared, and the rest (other
    /// versions, truncated tags) are skipped, as the scheme asks of unknown versions.
    /// `mac` has absorbed the body already (it is hashed once per secret, not once per entry);
    /// each entry is compared in constant time by the `hmac` crate.
    fn matches(&self, mac: &Hmac<Sha256>) -> Result<bool, WebhookError> {
        let entries: Vec<&str> = self
            .signature
            .split(' ')
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() || entries.len() > MAX_SIGNATURES {
            return Err(WebhookError::MissingHeader(SIGNATURE_HEADER));
        }
        let mut matched = false;
        for entry in entries {
            let Some(sig) = entry.strip_prefix("v1,") else {
                continue;
            };
            if sig.len() != TAG_BASE64_LEN {
                continue;
            }
            let Ok(sig) = STANDARD.decode(sig) else {
                continue;
            };
            // The loop does not stop at a match, so timing does not say which entry matched.
            matched |= mac.clone().verify_slice(&sig).is_ok();
        }
        Ok(matched)
    }
}

impl<'a> SignedDelivery<'a> {
    /// Reads the three headers; a missing or malformed one is an error naming it.
    pub fn from_headers(headers: &'a http::HeaderMap) -> Result<Self, WebhookError> {
        let get = |name: &'static str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .ok_or(WebhookError::MissingHeader(name))
        };
        let id = get(ID_HEADER)?;
        let timestamp = get(TIMESTAMP_HEADER)?
            .parse()
            .map_err(|_| WebhookError::MissingHeader(TIMESTAMP_HEADER))?;
        Ok(Self {
            id,
            timestamp,
            signature: get(SIGNATURE_HEADER)?,
        })
    }
}

/// Why a delivery was refused. Each is the sender's (or an attacker's) doing, so receivers
/// answer 4xx and log the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// The secret is not `whsec_` followed by base64 of at least 24 bytes.
    BadSecret,
    /// A signature header is missing or not valid (the timestamp must be an integer).
    MissingHeader(&'static str),
    /// The timestamp is older than the tolerance allows: possibly a replay.
    TooOld,
    /// The timestamp is further in the future than the tolerance allows.
    TooNew,
    /// No `v1` signature matched the body under this secret.
    BadSignature,
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSecret => f.write_str(
                "webhook secret must be `whsec_` followed by base64 of at least 24 bytes",
            ),
            Self::MissingHeader(name) => write!(f, "missing or malformed `{name}` header"),
            Self::TooOld => f.write_str("webhook timestamp is too old (possible replay)"),
            Self::TooNew => f.write_str("webhook timestamp is too far in the future"),
            Self::BadSignature => f.write_str("no webhook signature matches the body"),
        }
    }
}

impl std::error::Error for WebhookError {}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn delivery(signature: &str) -> SignedDelivery<'_> {
        SignedDelivery {
            id: ID,
            timestamp: TIMESTAMP,
            signature,
        }
    }

    #[test]
    fn signs_the_specification_vector() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY), EXPECTED);
        assert_eq!(secret.to_text(), SECRET);
    }

    #[test]
    fn verifies_and_refuses() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let ok = |sig: &str, body: &[u8], now: i64| {
            secret.verify(&delivery(sig), body, now, DEFAULT_TOLERANCE)
        };
        assert_eq!(ok(EXPECTED, BODY, TIMESTAMP), Ok(()));
        // One good entry among several (secret rotation) is enough.
        let rotated = format!("v1,AAAA {EXPECTED} v2,zzz");
        assert_eq!(ok(&rotated, BODY, TIMESTAMP + 60), Ok(()));
        assert_eq!(
            ok(EXPECTED, br#"{"test": 2432232315}"#, TIMESTAMP),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            ok(EXPECTED, BODY, TIMESTAMP + 301),
            Err(WebhookError::TooOld)
        );
        assert_eq!(
            ok(EXPECTED, BODY, TIMESTAMP - 301),
            Err(WebhookError::TooNew)
        );
        // More entries than any sender writes: refused before any is compared, even with a
        // good one among them.
        let crowded = format!("{} {EXPECTED}", ["v1,AAAA"; MAX_SIGNATURES].join(" "));
        assert_eq!(
            ok(&crowded, BODY, TIMESTAMP),
            Err(WebhookError::MissingHeader(SIGNATURE_HEADER))
        );
        let most = format!("{} {EXPECTED}", ["v1,AAAA"; MAX_SIGNATURES - 1].join(" "));
        assert_eq!(ok(&most, BODY, TIMESTAMP), Ok(()));
        assert_eq!(
            ok("", BODY, TIMESTAMP),
            Err(WebhookError::MissingHeader(SIGNATURE_HEADER))
        );
        let other = WebhookSecret::from_bytes(vec![7; 32]).unwrap();
        assert_eq!(
            other.verify(&delivery(EXPECTED), BODY, TIMESTAMP, DEFAULT_TOLERANCE),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn reads_headers_and_refuses_bad_secrets() {
        let mut headers = http::HeaderMap::new();
        headers.insert(ID_HEADER, ID.parse().unwrap());
        headers.insert(SIGNATURE_HEADER, EXPECTED.parse().unwrap());
        assert_eq!(
            SignedDelivery::from_headers(&headers).unwrap_err(),
            WebhookError::MissingHeader(TIMESTAMP_HEADER)
        );
        headers.insert(TIMESTAMP_HEADER, "1614265330".parse().unwrap());
        let read = SignedDelivery::from_headers(&headers).unwrap();
        assert_eq!((read.id, read.timestamp), (ID, TIMESTAMP));
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert!(secret
            .verify(&read, BODY, TIMESTAMP, DEFAULT_TOLERANCE)
            .is_ok());
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");

        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            WebhookError::BadSecret
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").unwrap_err(),
            WebhookError::BadSecret
        );
    }
}
