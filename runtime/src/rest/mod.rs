//! REST: what generated axum routers ([`server`]) and reqwest clients ([`client`]) call.
//! Compiled with the `rest` feature.

pub mod client;
pub mod server;
