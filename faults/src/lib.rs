//! Fault injection for the example services: the write path under kills, connection resets,
//! client timeouts and database failovers, with every effect counted in PostgreSQL.
//!
//! - [`services`]: the process under test (`faults serve`);
//! - [`proxy`]: a loopback TCP proxy that resets connections at chosen points;
//! - [`harness`]: schedules of faults, the logical calls, and the counting;
//! - [`events`]: the event path (outbox, relay, NATS, consumer) under kills, a broker
//!   restart, terminated connections and duplicate deliveries.

pub mod events;
pub mod harness;
pub mod proxy;
pub mod services;
