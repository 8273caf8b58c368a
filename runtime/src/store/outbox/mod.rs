//! The transactional outbox: events are written in the handler's own database transaction and
//! published afterwards by a [`relay`], so an event exists if and only if its effect committed.
//!
//! Publishing from a handler directly is a dual write. Publish before the commit and a
//! rollback leaves a ghost event (a payment taken for an order that was never saved); publish
//! after it and a crash in between loses the event (an order that is never paid). Here the
//! handler inserts a row into the outbox table through its transaction
//! ([`Pg`], [`Sqlite`]), and a relay started next to the service reads committed rows and
//! publishes them:
//!
//! - **with their id**: `Nats-Msg-Id` is the event's `<source>/<id>`, so a relay killed between
//!   publish and marking the row re-publishes a copy that the broker's duplicate window, or
//!   else the consumers' dedup record, absorbs;
//! - **in commit order per ordering key**: writers of one key serialise on a transaction
//!   lock, so the row sequence per key is the commit order, and a relay publishes a key's
//!   next row only once the previous one is sent;
//! - **safely from several replicas**: rows are claimed `FOR UPDATE SKIP LOCKED`, so relays
//!   share the backlog without publishing a row twice (except after a crash, as above);
//! - **without retrying the impossible**: a row the broker refuses for good (no stream for
//!   the subject, a payload over its limit) is parked with the reason and counted, and stays
//!   in the table for an operator — never retried forever, never dropped.
//!
//! Event ids: [`Context::event_id`](crate::Context::event_id) derives them from the
//! operation's idempotency key (or the consumed event), so the handler of a retried request
//! writes the same id, which the table's unique index accepts once.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod relay;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::{create_table, Pg};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use relay::{Relay, RelayConfig, RelayStats, WEBHOOK_SCHEDULE};
#[cfg(feature = "sqlite")]
pub use sqlite::{create_table as create_sqlite_table, Sqlite};

use crate::messaging::bus::{event_message, Headers};
use crate::{Context, Event};
use std::future::Future;

/// The outbox table's default name.
pub const DEFAULT_TABLE: &str = "pactum_outbox";

/// One event ready to be stored: what the relay will publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Broker subject.
    pub subject: String,
    /// The ordering key (CloudEvents `subject`), if the event has one.
    pub ordering_key: Option<String>,
    /// `Nats-Msg-Id`: `<source>/<id>`, unique in the table.
    pub msg_id: String,
    /// The envelope headers.
    pub headers: Headers,
    /// The JSON body.
    pub payload: Vec<u8>,
}

impl Row {
    /// The row for `event` under CloudEvents id `id`, with the envelope of
    /// [`crate::messaging::bus::publish_event`] (trace context of `ctx`, the event's deadline if its
    /// contract gives one).
    pub fn new<E: Event>(ctx: &Context, id: &str, event: &E) -> Result<Self, OutboxError> {
        let (headers, payload) = event_message(ctx, id, event)
            .map_err(|e| OutboxError(format!("cannot encode `{}`: {e}", E::NAME)))?;
        Ok(Self {
            subject: E::SUBJECT.to_string(),
            ordering_key: event.ordering_key(),
            msg_id: format!("{}/{id}", E::SOURCE),
            headers,
            payload,
        })
    }
}

/// The transaction (or connection) an event is written through. Implemented for PostgreSQL
/// ([`Pg`]) and SQLite ([`Sqlite`]); generated `events::InTx` values are built on one.
pub trait Writer: Send + Sync {
    /// Stores `row` in the outbox as part of the caller's transaction. A row whose `msg_id` is
    /// already there is not stored again (a re-run of the same handler).
    fn write(&self, row: Row) -> impl Future<Output = Result<(), OutboxError>> + Send;
}

/// Writes `event` under `id` through `writer`: what every generated `InTx` method calls.
pub async fn write<E: Event>(writer: &impl Writer, id: &str, event: &E) -> Result<(), OutboxError> {
    writer
        .write(Row::new(&Context::current(), id, event)?)
        .await
}

/// An outbox write or relay step that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxError(pub String);

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "outbox: {}", self.0)
    }
}

impl std::error::Error for OutboxError {}

impl<E> From<OutboxError> for crate::HandlerError<E> {
    fn from(e: OutboxError) -> Self {
        crate::HandlerError::internal(e)
    }
}

/// A row a relay claimed, decoded.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) struct Claimed {
    pub seq: i64,
    pub subject: String,
    pub headers: Headers,
    pub payload: Vec<u8>,
    pub attempts: i32,
}

/// What becomes of a claimed row after its publish.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) enum Fate {
    /// Published: mark it sent.
    Sent,
    /// Failed for now: try again after this pause.
    Retry(std::time::Duration),
    /// Refused for good (or given up): park it with this reason.
    Park(String),
}

/// Checks `table` is a plain identifier (it is spliced into SQL).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
fn check_table(table: &str) -> Result<(), OutboxError> {
    crate::store::idempotency::check_table_name(table).map_err(|e| OutboxError(e.0))
}
