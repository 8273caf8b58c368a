//! What outlives a request: [`idempotency`] key stores (claims and saved replies), the
//! transactional [`outbox`] and its relay, and reconnecting [`postgres`] connections
//! (with the `postgres` feature). Backends: memory always; PostgreSQL with `postgres`,
//! SQLite with `sqlite`.

pub mod idempotency;
pub mod outbox;
#[cfg(feature = "postgres")]
pub mod postgres;
