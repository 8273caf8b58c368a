//! What every generated router, REST or gRPC, is served with: axum (both kinds of router
//! are axum `Router`s, so one process can serve both on one port), [`serve`] with
//! `TCP_NODELAY`, and the [`ServerConfig`] their routes share (body limit, idempotency
//! store, retention, lease, caller). Compiled with the `rest` or `grpc` feature.

use crate::context::Context;
use crate::contract::OperationInfo;
use crate::store::idempotency::{IdempotencyStore, Lease, MemoryStore};
use crate::wire;
use std::sync::Arc;
use std::time::Duration;

pub use axum;

/// Serves `router` on `listener`, with `TCP_NODELAY` on every accepted connection.
///
/// `axum::serve` leaves Nagle's algorithm on. HTTP/2 (gRPC) writes a response as several
/// small frames, and with Nagle on the kernel holds each small segment that follows another
/// until the peer acknowledges the first — which a peer with nothing to send delays by up to
/// 40 ms. Sequential calls then take 40 ms each. Prefer this to `axum::serve` for generated
/// routers.
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            // A latency defect, not a reason to refuse the peer.
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router).await
}

/// Names the caller of a request from its headers, when the server can trust them (a
/// verified client-certificate identity forwarded by your proxy, an authenticated principal):
/// idempotency keys are then claimed per caller, so one caller cannot collide with — or
/// replay — another's keys.
pub type CallerOf = Arc<dyn Fn(&http::HeaderMap) -> Option<String> + Send + Sync>;

/// Server settings shared by every route of a generated router (REST and gRPC).
#[derive(Clone)]
pub struct ServerConfig {
    /// Largest request body accepted (413 / `RESOURCE_EXHAUSTED` above it). Default 1 MiB.
    pub body_limit: usize,
    /// Where idempotency keys live. Default: in memory.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// How long a key and its reply are kept. Default 24 h.
    pub retention: Duration,
    /// How long a claim on a key is leased (the operation's deadline plus a margin).
    pub lease: Lease,
    /// Who the caller is, when known; keys are scoped by it. Default: unknown.
    pub caller: Option<CallerOf>,
    /// Requests running per operation, against each one's `resilience.concurrency`; shared by
    /// the clones of one router.
    pub limits: crate::resilience::Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 1024 * 1024,
            idempotency: Arc::new(MemoryStore::new()),
            retention: Duration::from_secs(24 * 3600),
            lease: Lease::default(),
            caller: None,
            limits: Default::default(),
        }
    }
}

impl ServerConfig {
    /// The scope `op`'s keys are claimed in: `service.vN.Operation`, after the caller when
    /// [`caller`](Self::caller) names one.
    pub fn claim_scope(&self, op: &OperationInfo, headers: &http::HeaderMap) -> String {
        match self.caller.as_ref().and_then(|caller| caller(headers)) {
            Some(who) => format!("{who}|{}", op.scope()),
            None => op.scope(),
        }
    }
}

/// How a request's idempotency key reads, or why it cannot be used.
#[derive(Clone)]
pub(crate) enum KeyHeader {
    /// A well-formed key.
    Key(String),
    /// No key sent.
    Missing,
    /// A key that is not an sf-string or token of 1–255 visible ASCII characters.
    Malformed,
}

impl KeyHeader {
    pub(crate) fn read(ctx: &Context, headers: &http::HeaderMap) -> Self {
        match (
            ctx.idempotency_key(),
            headers.get(wire::IDEMPOTENCY_KEY_HEADER),
        ) {
            (Some(k), _) => KeyHeader::Key(k.to_string()),
            (None, None) => KeyHeader::Missing,
            (None, Some(_)) => KeyHeader::Malformed,
        }
    }
}

/// A response with a status, an optional content type and a body: every reply the runtime
/// builds by hand (routes, replays, webhook refusals) goes through here.
#[cfg(feature = "rest")]
pub(crate) fn body_response(
    status: u16,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> axum::response::Response {
    let mut builder = axum::response::Response::builder().status(status);
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    builder
        .body(axum::body::Body::from(body))
        .unwrap_or_else(|_| axum::response::Response::new(axum::body::Body::empty()))
}
