//! The vocabulary of the transport-neutral `Service` trait every contract generates: what
//! its methods take and return, whichever transport (REST, gRPC, or a test calling it
//! directly) is in front.

use crate::validate::{FieldPath, Validate, Violation};

/// Input of operations that take none: accepts any (or no) body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoInput;

impl<'de> serde::Deserialize<'de> for NoInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| NoInput)
    }
}

impl Validate for NoInput {
    fn validate_into(&self, _: &mut FieldPath, _: &mut Vec<Violation>) {}
}

/// A stream of messages, as streaming `Service` methods take and return them.
pub type BoxStream<T> = std::pin::Pin<Box<dyn futures_core::Stream<Item = T> + Send + 'static>>;

/// A message of an incoming stream that could not be used (undecodable, invalid, or the
/// stream broke).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError(pub String);

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StreamError {}
