//! Traits implemented by generated events, webhooks and declared errors.

use pactum_rules::status::ErrorStatus;
use serde::{de::DeserializeOwned, Serialize};

pub use pactum_rules::modes::DeliveryMode;

/// How long an event stays worth processing, as its contract's `deadline` says.
///
/// The default is [`EventDeadline::None`]: an event is a fact (`OrderPlaced`), and a payment
/// must be taken however late the consumer gets to it — after a restart, a nak, a crash and
/// redelivery. Tying it to the HTTP request that caused it would dead-letter real work
/// whenever a consumer is slower than that request's budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventDeadline {
    /// No deadline: processed whenever it is delivered.
    None,
    /// The publisher's remaining request budget travels with the event (`pactum-deadline`),
    /// for events that only matter while someone waits for them.
    Inherit,
    /// The event expires this long after it is published.
    After(std::time::Duration),
}

/// A fact that happened, published by exactly one service.
///
/// Implemented by generated event structs and by `#[derive(pactum::Event)]`.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Type name, a past-tense fact (`OrderPlaced`).
    const NAME: &'static str;
    /// Schema version of this event.
    const VERSION: u32;
    /// Publishing service (CloudEvents `source`).
    const SOURCE: &'static str;
    /// CloudEvents `type`: `<source>.<Name>.v<version>`.
    const TYPE: &'static str;
    /// Broker subject: `<source>.<name_snake>.v<version>`.
    const SUBJECT: &'static str;
    /// Delivery mode.
    const DELIVERY: DeliveryMode;
    /// Whether the event carries a deadline; by default it does not.
    const DEADLINE: EventDeadline = EventDeadline::None;

    /// The ordering/partition key (CloudEvents `subject`); `None` when the event has none.
    fn ordering_key(&self) -> Option<String>;
}

/// A webhook payload, delivered signed per Standard Webhooks.
pub trait Webhook: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Name (`OrderShipped`).
    const NAME: &'static str;
    /// The `type` field on the wire (`orders.order_shipped`).
    const TYPE: &'static str;
    /// Payload version.
    const VERSION: u32;
}

/// An error declared in a contract. With REST it is also a serde type (its fields are the
/// problem document's); a gRPC-only build sends it as a protobuf message and derives no
/// serde.
pub trait DeclaredError: std::error::Error + Send + Sync + 'static {
    /// Stable code (the error's name), used as the problem `type` suffix and gRPC detail.
    const CODE: &'static str;
    /// Class: HTTP status and gRPC code.
    const STATUS: ErrorStatus;
}
