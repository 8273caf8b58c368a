//! The request context: deadline, W3C trace context, idempotency key and request id.
//!
//! A handler runs inside [`Context::scope`]; anything it calls — generated clients, publishers,
//! `#[pactum::deadline]` and `#[pactum::traced]` functions — reads [`Context::current`], so the
//! remaining budget and the trace reach the next hop without anyone copying headers.

use crate::store::idempotency::Claim;
use crate::wire;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static CURRENT: Context;
}

/// What travels with a request across every hop.
#[derive(Clone, Debug)]
pub struct Context {
    deadline: Option<Instant>,
    span: SpanContext,
    idempotency_key: Option<String>,
    request_id: Option<String>,
    /// Set inside a handler or consumer: keys of the keyed calls it makes are derived from
    /// this, never copied from the incoming request.
    calls: Option<Arc<CallKeys>>,
    /// The idempotency claim the running handler holds, if its operation is keyed.
    claim: Option<Claim>,
    /// The client certificate the caller's TLS connection presented (mutual TLS).
    peer: Option<Arc<PeerIdentity>>,
    /// Who the caller proved to be (`auth:`), set by the server before the handler runs.
    principal: Option<Arc<crate::auth::Principal>>,
}

/// Who is calling, as the client certificate of a mutual-TLS connection says: what a handler
/// authorizes against (a SPIFFE id among the URIs, a DNS name, the common name). The
/// certificate was verified against the server's client CA before any handler ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name (`CN=`), empty when it has none.
    pub common_name: String,
    /// The DNS names among its subject alternative names.
    pub dns_names: Vec<String>,
    /// The URIs among its subject alternative names (`spiffe://cluster.local/ns/…/sa/…`).
    pub uris: Vec<String>,
    /// The certificate itself, DER-encoded, for checks of one's own.
    pub certificate: Vec<u8>,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            deadline: None,
            span: SpanContext::empty_context(),
            idempotency_key: None,
            request_id: None,
            calls: None,
            claim: None,
            peer: None,
            principal: None,
        }
    }
}

/// Derives the idempotency keys of the keyed calls one handler run makes.
///
/// The key of the `n`-th call to operation `op` is a hash of (basis, `op`, `n`), where the
/// basis is the incoming request's scoped idempotency key (or its request id, or the event
/// being consumed): a retried handler re-sends the same downstream keys, two different calls
/// never share one, and a caller cannot choose the keys its request's calls carry downstream.
#[derive(Debug)]
struct CallKeys {
    basis: String,
    counts: Mutex<HashMap<String, u32>>,
}

impl CallKeys {
    fn next(&self, op: &str) -> String {
        let n = {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(op.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        derive_key(&self.basis, op, n)
    }
}

/// The key of the `n`-th keyed call to `op` made under `basis`: a UUID (version 8) from the
/// SHA-256 of the three.
pub fn derive_key(basis: &str, op: &str, n: u32) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(basis.as_bytes());
    hash.update([0]);
    hash.update(op.as_bytes());
    hash.update([0]);
    hash.update(n.to_be_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Which header names a transport uses for the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP: `pactum-timeout`.
    Http,
    /// gRPC metadata: `grpc-timeout`.
    Grpc,
}

impl Context {
    /// An empty context: no deadline, no trace (a new one starts at the first span).
    pub fn new() -> Self {
        Self::default()
    }

    /// The context of the running task, or an empty one outside any scope.
    pub fn current() -> Self {
        CURRENT.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `fut` with `self` as the current context.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// Runs `f` with `self` as the current context (synchronous code).
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// The absolute deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once passed); `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// True once the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// Sets the deadline to the earlier of the current one and `at`: a callee can shorten its
    /// caller's budget, never extend it.
    pub fn with_deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(match self.deadline {
            Some(d) => d.min(at),
            None => at,
        });
        self
    }

    /// [`Context::with_deadline`] at `now + budget` (no change if that overflows).
    pub fn with_timeout(self, budget: Duration) -> Self {
        match Instant::now().checked_add(budget) {
            Some(at) => self.with_deadline(at),
            None => self,
        }
    }

    /// The current span's W3C trace context (invalid when no trace has started).
    pub fn span_context(&self) -> &SpanContext {
        &self.span
    }

    /// The trace id as 32 hex digits, when a trace has started.
    pub fn trace_id(&self) -> Option<String> {
        self.span
            .is_valid()
            .then(|| self.span.trace_id().to_string())
    }

    /// Replaces the span this context points at.
    pub fn with_span_context(mut self, span: SpanContext) -> Self {
        self.span = span;
        self
    }

    /// A new span id under the same trace, or a new sampled trace when there is none yet.
    pub fn child_span_context(&self) -> SpanContext {
        let (trace_id, flags, state) = if self.span.is_valid() {
            (
                self.span.trace_id(),
                self.span.trace_flags(),
                self.span.trace_state().clone(),
            )
        } else {
            (
                TraceId::from(fastrand::u128(1..)),
                TraceFlags::SAMPLED,
                TraceState::default(),
            )
        };
        SpanContext::new(
            trace_id,
            SpanId::from(fastrand::u64(1..)),
            flags,
            false,
            state,
        )
    }

    /// The idempotency key of this logical call, if any: in a handler, the key the caller
    /// sent.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// Sets the idempotency key of the next keyed call made under this context: every
    /// attempt of that call sends it. This overrides the keys a handler derives for its
    /// calls, so set it only for one call.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self.calls = None;
        self
    }

    /// Makes the keyed calls made under this context carry keys derived from `basis` (see
    /// [`derive_key`]): servers set the incoming request's scoped key or request id,
    /// consumers the event's source and id.
    pub fn with_key_basis(mut self, basis: impl Into<String>) -> Self {
        self.calls = Some(Arc::new(CallKeys {
            basis: basis.into(),
            counts: Mutex::new(HashMap::new()),
        }));
        self
    }

    /// The key for the next call to the keyed operation `op` (`service.vN.Operation`): derived
    /// inside a handler, the context's own key outside one, or a fresh random key.
    pub fn key_for_call(&self, op: &str) -> String {
        match (&self.calls, &self.idempotency_key) {
            (Some(calls), _) => calls.next(op),
            (None, Some(key)) => key.clone(),
            (None, None) => random_id(),
        }
    }

    /// The id for the next event of type `event_type` (`orders.OrderPlaced.v1`) this handler
    /// publishes: derived from the request's idempotency key (or the consumed event) when
    /// there is one — so a retried request, or a redelivered event, writes the same ids and
    /// the outbox and the broker store them once — and random otherwise.
    pub fn event_id(&self, event_type: &str) -> String {
        match &self.calls {
            Some(calls) => calls.next(&format!("event {event_type}")),
            None => random_id(),
        }
    }

    /// The idempotency claim held by the running handler (keyed operations only): record the
    /// reply in the handler's transaction with it.
    pub fn claim(&self) -> Option<&Claim> {
        self.claim.as_ref()
    }

    /// Attaches the claim the request holds; transports call this before the handler runs.
    pub fn with_claim(mut self, claim: Claim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// The request id, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// The caller's verified client certificate, when it came over mutual TLS (a server
    /// given `ServerTls::require_client_certs`). Never sent on to the next hop.
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.as_deref()
    }

    /// Sets the caller's identity (the servers do, from the connection).
    pub fn with_peer(mut self, peer: Option<Arc<PeerIdentity>>) -> Self {
        self.peer = peer;
        self
    }

    /// Who the caller proved to be, when the operation requires authentication.
    pub fn principal(&self) -> Option<&crate::auth::Principal> {
        self.principal.as_deref()
    }

    /// Sets the caller's principal (the servers do, after its verifier accepted it).
    pub fn with_principal(mut self, principal: Option<crate::auth::Principal>) -> Self {
        self.principal = principal.map(Arc::new);
        self
    }

    /// Builds the context of an incoming request from its headers (HTTP headers, gRPC
    /// metadata or message headers). Malformed values are ignored: a bad `traceparent` starts a
    /// fresh trace, a bad timeout means no deadline, a bad key or id is dropped.
    pub fn from_headers(headers: &impl HeaderSource) -> Self {
        let span = headers
            .header(wire::TRACEPARENT_HEADER)
            .and_then(|parent| {
                wire::parse_traceparent(parent, headers.header(wire::TRACESTATE_HEADER))
            })
            .unwrap_or_else(SpanContext::empty_context);
        let timeout = headers
            .header(wire::TIMEOUT_HEADER)
            .or_else(|| headers.header(wire::GRPC_TIMEOUT_HEADER))
            .and_then(wire::parse_timeout);
        let mut ctx = Context {
            deadline: None,
            span,
            idempotency_key: headers
                .header(wire::IDEMPOTENCY_KEY_HEADER)
                .and_then(wire::parse_idempotency_key),
            request_id: headers
                .header(wire::REQUEST_ID_HEADER)
                .and_then(wire::accept_request_id),
            calls: None,
            claim: None,
            peer: None,
            principal: None,
        };
        if let Some(t) = timeout {
            ctx = ctx.with_timeout(t);
        }
        ctx
    }

    /// Writes the context for the next hop: `traceparent`/`tracestate`, the remaining budget
    /// and the request id. Never the idempotency key: a key belongs to one call, so clients
    /// write each call's own key (see [`Context::key_for_call`]), and events carry none.
    pub fn inject_headers(&self, headers: &mut impl HeaderSink, transport: Transport) {
        if self.span.is_valid() {
            headers.set_header(
                wire::TRACEPARENT_HEADER,
                wire::format_traceparent(&self.span),
            );
            let state = self.span.trace_state().header();
            if !state.is_empty() {
                headers.set_header(wire::TRACESTATE_HEADER, state);
            }
        }
        if let Some(left) = self.remaining() {
            let name = match transport {
                Transport::Http => wire::TIMEOUT_HEADER,
                Transport::Grpc => wire::GRPC_TIMEOUT_HEADER,
            };
            headers.set_header(name, wire::format_timeout(left));
        }
        if let Some(id) = &self.request_id {
            headers.set_header(wire::REQUEST_ID_HEADER, id.clone());
        }
    }
}

/// A random UUID (v4 layout) as text: fresh request ids and idempotency keys.
pub fn random_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// Read access to a header map, lower-case names.
pub trait HeaderSource {
    /// The value of `name`, if present and text.
    fn header(&self, name: &str) -> Option<&str>;
    /// Every header name.
    fn header_names(&self) -> Vec<&str>;
}

/// Write access to a header map.
pub trait HeaderSink {
    /// Sets `name` (lower case) to `value`; values a map cannot hold are skipped.
    fn set_header(&mut self, name: &str, value: String);
}

impl HeaderSource for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
    fn header_names(&self) -> Vec<&str> {
        self.keys().map(http::HeaderName::as_str).collect()
    }
}

impl HeaderSink for http::HeaderMap {
    fn set_header(&mut self, name: &str, value: String) {
        // `TryFrom<String>` takes the string's buffer; `from_str` would copy it.
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::try_from(value),
        ) {
            self.insert(n, v);
        }
    }
}

macro_rules! string_maps {
    ($($map:ident),*) => {$(
        impl HeaderSource for $map<String, String> {
            fn header(&self, name: &str) -> Option<&str> {
                self.get(name).map(String::as_str)
            }
            fn header_names(&self) -> Vec<&str> {
                self.keys().map(String::as_str).collect()
            }
        }
        impl HeaderSink for $map<String, String> {
            fn set_header(&mut self, name: &str, value: String) {
                self.insert(name.to_string(), value);
            }
        }
    )*};
}

string_maps!(HashMap, BTreeMap);

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_writes_every_wire_field() {
        let incoming = headers(&[
            ("traceparent", PARENT),
            ("tracestate", "vendor=abc"),
            ("pactum-timeout", "250m"),
            ("idempotency-key", "\"k-1\""),
            ("x-request-id", "req-7"),
        ]);
        let ctx = Context::from_headers(&incoming);
        assert_eq!(
            ctx.trace_id().as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(ctx.remaining(), Some(Duration::from_millis(250)));
        assert_eq!(ctx.idempotency_key(), Some("k-1"));
        assert_eq!(ctx.request_id(), Some("req-7"));

        tokio::time::advance(Duration::from_millis(100)).await;
        let mut out = http::HeaderMap::new();
        ctx.inject_headers(&mut out, Transport::Grpc);
        assert_eq!(out["traceparent"], PARENT);
        assert_eq!(out["tracestate"], "vendor=abc");
        assert_eq!(out["grpc-timeout"], "150000u");
        assert!(
            out.get("idempotency-key").is_none(),
            "a key belongs to one call and is never passed on"
        );
        assert_eq!(out["x-request-id"], "req-7");
    }

    #[test]
    fn hostile_headers_give_a_fresh_context_and_never_panic() {
        let long = "9".repeat(10_000);
        let junk = [
            (
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (
                "traceparent",
                "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736"),
            ("traceparent", long.as_str()),
            ("pactum-timeout", "-1S"),
            ("pactum-timeout", long.as_str()),
            ("grpc-timeout", "1.5S"),
            ("idempotency-key", "two words"),
            ("idempotency-key", "\"\""),
            ("x-request-id", "a\u{7f}b"),
        ];
        for (k, v) in junk {
            let ctx = Context::from_headers(&headers(&[(k, v)]));
            assert!(ctx.trace_id().is_none(), "{k}: {v}");
            assert!(ctx.deadline().is_none(), "{k}: {v}");
            assert!(ctx.idempotency_key().is_none() && ctx.request_id().is_none());
        }
        // An enormous but well-formed timeout must not overflow.
        let ctx = Context::from_headers(&headers(&[("pactum-timeout", "99999999H")]));
        assert!(ctx.remaining().unwrap() > Duration::from_secs(3600));
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_only_shrink_and_flow_through_scopes() {
        let outer = Context::new().with_timeout(Duration::from_millis(100));
        let inner = outer.clone().with_timeout(Duration::from_secs(5));
        assert_eq!(inner.remaining(), Some(Duration::from_millis(100)));
        let seen = outer
            .scope(async {
                tokio::time::advance(Duration::from_millis(40)).await;
                Context::current().remaining()
            })
            .await;
        assert_eq!(seen, Some(Duration::from_millis(60)));
        assert!(
            Context::current().deadline().is_none(),
            "no scope, no deadline"
        );
    }

    #[test]
    fn calls_in_a_handler_get_derived_keys_never_the_incoming_one() {
        let incoming = Context::from_headers(&headers(&[("idempotency-key", "caller-key")]));
        assert_eq!(incoming.idempotency_key(), Some("caller-key"));
        let handler = incoming.with_key_basis("orders.v1.PlaceOrder/caller-key");
        let first = handler.key_for_call("pricing.v1.Quote");
        let second = handler.clone().key_for_call("pricing.v1.Quote");
        let other = handler.key_for_call("orders.v1.PlaceOrder");
        assert!(first != second && first != other && second != other);
        assert!(![&first, &second, &other].contains(&&"caller-key".to_string()));
        // A retried handler run (same basis) sends the same keys in the same order.
        let retry = Context::new().with_key_basis("orders.v1.PlaceOrder/caller-key");
        assert_eq!(retry.key_for_call("pricing.v1.Quote"), first);
        assert_eq!(retry.key_for_call("pricing.v1.Quote"), second);
        // Outside a handler: the context's own key, or a fresh one.
        let explicit = Context::new().with_idempotency_key("mine");
        assert_eq!(explicit.key_for_call("a.v1.B"), "mine");
        assert_ne!(
            Context::new().key_for_call("a.v1.B"),
            Context::new().key_for_call("a.v1.B")
        );
        // An explicit key overrides derivation.
        let set = retry.with_idempotency_key("explicit");
        assert_eq!(set.key_for_call("pricing.v1.Quote"), "explicit");
    }

    #[test]
    fn child_spans_keep_the_trace_and_start_one_when_missing() {
        let ctx = Context::from_headers(&headers(&[("traceparent", PARENT)]));
        let child = ctx.child_span_context();
        assert_eq!(child.trace_id(), ctx.span_context().trace_id());
        assert_ne!(child.span_id(), ctx.span_context().span_id());
        let root = Context::new().child_span_context();
        assert!(root.is_valid() && root.is_sampled());
        assert_eq!(random_id().len(), 36);
    }
}
