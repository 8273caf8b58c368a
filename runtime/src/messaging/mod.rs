//! Events between services: the embedded [`bus`] (streams, consumer groups, acks and
//! redelivery, in process), [`nats`] (JetStream, with the `nats` feature) and [`rabbitmq`]
//! (quorum queues, a topic exchange and streams, with the `rabbitmq` feature), all behind the
//! [`bus::EventSink`] a publisher writes to and the [`EventSource`] a consumer group joins
//! ([`source`]; [`Broker`] is any of them, chosen at run time); and the idempotent
//! [`consumer`] runners that read from them, recording processed events in memory, SQLite or
//! PostgreSQL.

pub mod bus;
pub mod consumer;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod source;

pub use source::{consume, Broker, EventSource, Subscribe, Subscription};
