//! REST: what generated axum routers ([`server`]) and reqwest clients ([`client`]) call.
//! Compiled with the `rest` feature.

pub mod client;
pub mod server;
pub mod sse;

/// What a successful REST reply carries, as the server sends it and the client reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 200 with a JSON body.
    Json,
    /// 204, no body (operations without output).
    Empty,
}
