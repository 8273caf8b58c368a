//! What generated gRPC code calls: [`unary`] serves one call through the operation's `Service`
//! method with the same guardrails as REST; [`GrpcClient::unary`] makes one. Declared errors
//! travel as standard `google.rpc.Status` details (`grpc-status-details-bin`) holding the
//! error message as an `Any`, so any language's gRPC library can read them.
//!
//! Generated routers are served by axum (HTTP/2), not tonic's transport server: tonic's own
//! timeout layer answers an expired `grpc-timeout` with `CANCELLED`; here the deadline is the
//! handler's, and the answer is `DEADLINE_EXCEEDED`. Generated clients call through
//! one shared HTTP/2 connection (`connection.rs`) unless given a tonic `Channel`.

use crate::call::ClientError;
use crate::context::{Context, Transport};
use crate::contract::{Idempotency, OperationInfo};
use crate::deadline::run_with_deadline;
use crate::handler::HandlerError;
use crate::problem::OperationError;
use crate::retry::{call_guarded, Transient};
use crate::router::ServerConfig;
pub use crate::service::{BoxStream, StreamError};
use crate::validate::Validate;
use std::future::Future;
use std::time::Duration;

mod connection;
pub mod health;
mod keyed;
pub mod proto;
pub mod reflection;
use connection::{Connection, Link};

pub use prost;
pub use prost_types;
pub use tonic;
pub use tonic_prost;

/// `google.rpc.Status`, the standard payload of `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details; Pactum puts the declared error here.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// A contract enum as a protobuf enum number (0 is `*_UNSPECIFIED`).
pub trait ProtoEnum: Sized {
    /// The number sent on the wire.
    fn to_proto(&self) -> i32;
    /// The value for a received number (unknown numbers are kept as `Unrecognized`).
    fn from_proto(n: i32) -> Self;
}

/// Converts a `google.protobuf.Timestamp`.
pub fn timestamp_from(t: prost_types::Timestamp) -> Result<crate::types::Timestamp, String> {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .ok_or_else(|| format!("timestamp out of range: {}s", t.seconds))
}

/// Converts to a `google.protobuf.Timestamp`.
pub fn timestamp_to(t: crate::types::Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a `google.protobuf.Duration`.
pub fn duration_from(d: prost_types::Duration) -> Result<crate::types::Duration, String> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err("negative durations are not allowed".into());
    }
    Ok(crate::types::Duration(Duration::new(
        d.seconds as u64,
        d.nanos as u32,
    )))
}

/// Converts to a `google.protobuf.Duration`.
pub fn duration_to(d: crate::types::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.0.as_secs().min(i64::MAX as u64) as i64,
        nanos: d.0.subsec_nanos() as i32,
    }
}

/// Parses a text field (uuid, decimal) received as a string.
pub fn parse<T: std::str::FromStr>(field: &str, text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("field `{field}`: {e}"))
}

/// A required message field that was not sent.
pub fn missing(field: &str) -> String {
    format!("missing field `{field}`")
}

fn status(code: i32, message: impl Into<String>) -> tonic::Status {
    tonic::Status::new(tonic::Code::from_i32(code), message)
}

/// Serves one unary call of `op`: context from metadata (trace, `grpc-timeout`, key, request
/// id), a span, decode and validate (`INVALID_ARGUMENT`), the handler under the deadline
/// (`DEADLINE_EXCEEDED`), declared errors with their code and typed details.
///
/// A keyed operation runs under the same claim protocol as REST (see
/// [`crate::store::idempotency`]), keyed by the `idempotency-key` metadata:
///
/// | case | status |
/// |---|---|
/// | no key, or a malformed one | `INVALID_ARGUMENT` |
/// | the key is held by a request still running | `UNAVAILABLE` with a `google.rpc.RetryInfo` detail (the rest of its lease) — retry |
/// | the key was used with another message | `FAILED_PRECONDITION` |
/// | the key finished before | its reply (message or status, with details) replayed byte for byte, with `idempotent-replayed: true` metadata |
/// | the store is unreachable | `UNAVAILABLE`; nothing ran |
/// | the operation runs as many requests as its `resilience.concurrency` | `RESOURCE_EXHAUSTED` at once; nothing ran (any operation, keyed or not) |
pub async fn unary<PbIn, PbOut, I, O, E, H, Fut>(
    op: &'static OperationInfo,
    config: &ServerConfig,
    request: http::Request<axum::body::Body>,
    decode: fn(PbIn) -> Result<I, String>,
    encode: fn(O) -> PbOut,
    detail: fn(&E) -> prost_types::Any,
    handler: H,
) -> axum::response::Response
where
    PbIn: prost::Message + Default + Send + 'static,
    PbOut: prost::Message + Send + 'static,
    I: Validate + Send + 'static,
    O: Clone + Send + 'static,
    E: OperationError + std::fmt::Display + Send + 'static,
    H: FnOnce(Context, I) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<O, HandlerError<E>>> + Send + 'static,
{
    let started = std::time::Instant::now();
    // Over the operation's concurrency limit: RESOURCE_EXHAUSTED now, before decoding,
    // rather than queue past the caller's deadline.
    let Some(slot) = config.limits.try_enter(op) else {
        return shed(op);
    };
    // The slot goes with the handler: a keyed request's handler runs on in a task of its own
    // after the caller hangs up, and holds its place until it finishes.
    let slot = std::sync::Arc::new(slot);
    let handler = move |ctx: Context, input: I| {
        let (running, slot) = (handler(ctx, input), std::sync::Arc::clone(&slot));
        async move {
            let _slot = slot;
            running.await
        }
    };
    let (ctx, span) = server_context(op, request.headers(), request.extensions());
    let ctx = match authenticated(config, op, request.headers(), ctx).await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let guard = crate::trace::DropGuard::new(&span, &ctx);
    let mut abandoned = Abandoned {
        op,
        started,
        armed: true,
    };
    let response = if op.idempotency == Idempotency::Key {
        let keyed = keyed::Keyed::new(op, config, request.headers(), &ctx);
        let service = tower::service_fn(move |req: tonic::Request<Vec<u8>>| {
            let (keyed, ctx, handler) = (keyed.clone(), ctx.clone(), handler.clone());
            async move {
                let raw = req.into_inner();
                let fingerprint = keyed::fingerprint(&raw);
                let run =
                    move |ctx: Context| serve_raw(op, raw, ctx, decode, encode, detail, handler);
                keyed.serve(ctx, &fingerprint, run, encode).await
            }
        });
        let mut grpc =
            tonic::server::Grpc::new(keyed::RawCodec).max_decoding_message_size(config.body_limit);
        tracing::Instrument::instrument(grpc.unary(service, request), span.clone())
            .await
            .map(axum::body::Body::new)
    } else {
        // Decoded here rather than by prost's codec, which answers bytes that are not the
        // message with INTERNAL: they are the client's mistake, INVALID_ARGUMENT.
        let service = tower::service_fn(move |req: tonic::Request<Vec<u8>>| {
            let (ctx, handler) = (ctx.clone(), handler.clone());
            async move {
                serve_raw(op, req.into_inner(), ctx, decode, encode, detail, handler)
                    .await
                    .map(tonic::Response::new)
            }
        });
        let mut grpc =
            tonic::server::Grpc::new(keyed::RawCodec).max_decoding_message_size(config.body_limit);
        tracing::Instrument::instrument(grpc.unary(service, request), span.clone())
            .await
            .map(axum::body::Body::new)
    };
    guard.finished();
    abandoned.armed = false;
    let code = grpc_status(response.headers());
    span.record("outcome", if code == 0 { "ok" } else { "error" });
    crate::metrics::served(op, crate::metrics::Status::Grpc(code), started.elapsed());
    response
}

/// The axum route of one unary operation whose request and reply are contract types (the
/// types are the messages): what a generated `router_with` adds per operation,
/// `.route(path, unary_route(&OP, &config, &service, detail, |s, ctx, input| async move {
/// s.op(ctx, input).await }))`. The route's body is written once here rather than as
/// nested closures per operation in generated code: rustc then checks one generic body,
/// not one axum handler per operation (BENCHMARKS.md, gRPC (c)).
pub fn unary_route<S, I, O, E, H, Fut>(
    op: &'static OperationInfo,
    config: &std::sync::Arc<ServerConfig>,
    service: &std::sync::Arc<S>,
    detail: fn(&E) -> prost_types::Any,
    handler: H,
) -> axum::routing::MethodRouter
where
    S: Send + Sync + 'static,
    I: proto::Message + Validate + Send + 'static,
    O: prost::Message + Clone + Send + 'static,
    E: OperationError + std::fmt::Display + Send + 'static,
    H: Fn(std::sync::Arc<S>, Context, I) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<O, HandlerError<E>>> + Send + 'static,
{
    let (service, config) = (
        std::sync::Arc::clone(service),
        std::sync::Arc::clone(config),
    );
    axum::routing::post(move |request: axum::extract::Request| {
        let (service, config, handler) = (
            std::sync::Arc::clone(&service),
            std::sync::Arc::clone(&config),
            handler.clone(),
        );
        async move {
            unary(
                op,
                &config,
                request,
                proto::Decoded::<I>::finish,
                std::convert::identity::<O>,
                detail,
                move |ctx, input| handler(service, ctx, input),
            )
            .await
        }
    })
}

/// `INVALID_ARGUMENT` listing every violation, when `input` breaks the contract's constraints.
fn validated<I: Validate>(input: &I) -> Result<(), tonic::Status> {
    match input.validate() {
        Ok(()) => Ok(()),
        Err(invalid) => {
            let list: Vec<String> = invalid
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.pointer, v.message))
                .collect();
            Err(tonic::Status::invalid_argument(list.join("; ")))
        }
    }
}

/// Decodes a raw request message, validates it and runs the handler under the deadline:
/// the encoded reply message, or the status to answer.
async fn serve_raw<PbIn, PbOut, I, O, E, H, Fut>(
    op: &'static OperationInfo,
    raw: Vec<u8>,
    ctx: Context,
    decode: fn(PbIn) -> Result<I, String>,
    encode: fn(O) -> PbOut,
    detail: fn(&E) -> prost_types::Any,
    handler: H,
) -> Result<Vec<u8>, tonic::Status>
where
    PbIn: prost::Message + Default,
    PbOut: prost::Message,
    I: Validate,
    E: OperationError + std::fmt::Display,
    H: FnOnce(Context, I) -> Fut,
    Fut: Future<Output = Result<O, HandlerError<E>>>,
{
    let message = <PbIn as prost::Message>::decode(raw.as_slice()).map_err(|e| {
        tonic::Status::invalid_argument(format!("the request is not a valid message: {e}"))
    })?;
    let input = decode(message).map_err(tonic::Status::invalid_argument)?;
    validated(&input)?;
    run_with_deadline(ctx.clone(), handler(ctx, input))
        .await
        .map(|out| prost::Message::encode_to_vec(&encode(out)))
        .map_err(|e| to_status(op, e, detail))
}

/// A gRPC client for generated code: one shared HTTP/2 connection (or a tonic `Channel`),
/// the deadline, retries and error decoding.
#[derive(Clone, Debug)]
pub struct GrpcClient {
    link: Link,
    default_timeout: Duration,
    /// The target's retry budget and circuit breaker, shared by the client's clones.
    target: std::sync::Arc<crate::resilience::Target>,
    /// Set in code, over every operation's contract policy.
    resilience: Option<crate::ResiliencePolicy>,
    /// What it sends to prove who it is (`auth:`).
    credentials: Option<crate::auth::Credentials>,
}

impl GrpcClient {
    /// Sends `credentials` with every call (as metadata). `UNAUTHENTICATED` is retried once,
    /// and only when a bearer token source, asked again, gives another token.
    pub fn with_credentials(mut self, credentials: crate::auth::Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The call's metadata: context headers and credentials.
    async fn metadata<E>(
        &self,
        ctx: &Context,
        key: Option<&str>,
    ) -> Result<tonic::metadata::MetadataMap, ClientError<E>> {
        let mut headers = http::HeaderMap::new();
        ctx.inject_headers(&mut headers, Transport::Grpc);
        if let Some(key) = key {
            crate::HeaderSink::set_header(
                &mut headers,
                crate::wire::IDEMPOTENCY_KEY_HEADER,
                crate::wire::format_sf_string(key),
            );
        }
        if let Some(c) = &self.credentials {
            c.apply(&mut headers)
                .await
                .map_err(|e| ClientError::Transport(format!("cannot get credentials: {e}")))?;
        }
        Ok(tonic::metadata::MetadataMap::from_headers(headers))
    }
    /// A client for `url` (`http://127.0.0.1:50051`, or `https://…` trusting the system's
    /// roots with the `tls` feature); connects on first use and reconnects after the
    /// connection closes.
    pub fn connect_lazy(url: impl Into<String>) -> Result<Self, String> {
        Ok(Self::direct(Connection::new(&url.into(), None)?))
    }

    /// A client for `url` (`https://…`) over TLS as `tls` says: the CA it trusts, and its own
    /// certificate for mutual TLS.
    #[cfg(feature = "tls")]
    pub fn connect_lazy_tls(
        url: impl Into<String>,
        tls: crate::tls::ClientTls,
    ) -> Result<Self, String> {
        Ok(Self::direct(Connection::new(&url.into(), Some(tls))?))
    }

    fn direct(connection: Connection) -> Self {
        GrpcClient {
            link: Link::Direct(connection),
            default_timeout: crate::call::DEFAULT_TIMEOUT,
            target: Default::default(),
            resilience: None,
            credentials: None,
        }
    }

    /// A client over a tonic `channel`, configured however the caller needs (TLS, load
    /// balancing, keep-alive). Each call then also passes through the channel's own layers.
    pub fn from_channel(channel: tonic::transport::Channel) -> Self {
        GrpcClient {
            link: Link::Channel(channel),
            default_timeout: crate::call::DEFAULT_TIMEOUT,
            target: Default::default(),
            resilience: None,
            credentials: None,
        }
    }

    /// Uses `policy` (retry budget and breaker) for every call of this client instead of each
    /// operation's contract policy.
    pub fn with_resilience(mut self, policy: crate::ResiliencePolicy) -> Self {
        self.resilience = Some(policy);
        self
    }

    /// tonic's client over this client's link; the built-in connection needs its origin.
    fn grpc(&self) -> tonic::client::Grpc<Link> {
        match &self.link {
            Link::Direct(c) => tonic::client::Grpc::with_origin(self.link.clone(), c.origin()),
            Link::Channel(_) => tonic::client::Grpc::new(self.link.clone()),
        }
    }

    /// The stable in-cluster address of `service`: `http://<service>.<namespace>.svc.cluster.local:<port>`.
    pub fn for_service(service: &str, namespace: &str, port: u16) -> Result<Self, String> {
        let name = pactum_rules::kube::service_name(service);
        Self::connect_lazy(format!(
            "http://{name}.{namespace}.svc.cluster.local:{port}"
        ))
    }

    /// Sets the budget for calls with neither a contract nor a caller deadline.
    pub fn with_default_timeout(mut self, budget: Duration) -> Self {
        self.default_timeout = budget;
        self
    }

    /// One logical unary call: the caller's and the contract's deadline, trace context and
    /// request id in metadata, retries only for safe or keyed operations on `UNAVAILABLE` /
    /// `RESOURCE_EXHAUSTED`, declared errors decoded from the status details.
    pub async fn unary<PbIn, PbOut, O, E>(
        &self,
        op: &'static OperationInfo,
        path: &'static str,
        input: PbIn,
        decode: fn(PbOut) -> Result<O, String>,
        error: fn(&prost_types::Any) -> Option<E>,
    ) -> Result<O, ClientError<E>>
    where
        PbIn: prost::Message + Send + Sync + 'static,
        PbOut: prost::Message + Default + Send + 'static,
        E: Send,
    {
        let Some(ctx) = self.call_context(op) else {
            return Err(ClientError::DeadlineExceeded);
        };
        // The call's own span: its id goes out as the server span's parent.
        let span = crate::trace::client_span(op, "grpc");
        let ctx = crate::trace::enter(&span, ctx);
        // Shared, not cloned, by the attempts: each encodes it straight into its buffer.
        let input = std::sync::Arc::new(input);
        let attempt = |a: crate::retry::Attempt| {
            let body = std::sync::Arc::clone(&input);
            // Borrowed unless `per_try` gives this attempt a deadline of its own.
            let ctx = match a.deadline.filter(|at| Some(*at) != ctx.deadline()) {
                Some(at) => std::borrow::Cow::Owned(ctx.clone().with_deadline(at)),
                None => std::borrow::Cow::Borrowed(&ctx),
            };
            async move {
                let key = a.idempotency_key.as_deref();
                let sent = match &self.credentials {
                    Some(crate::auth::Credentials::Bearer(source)) => source.token().await.ok(),
                    _ => None,
                };
                let first = self
                    .attempt(&ctx, key, path, std::sync::Arc::clone(&body), decode, error)
                    .await;
                match (&first, &self.credentials) {
                    (Err(GrpcAttemptError(ClientError::Rpc { code: 16, .. }, _)), Some(c))
                        if c.renewed(sent.as_deref()).await =>
                    {
                        self.attempt(&ctx, key, path, body, decode, error).await
                    }
                    _ => first,
                }
            }
        };
        // A policy set in code replaces the contract's (the facts are a small `Copy` struct).
        let op = &self
            .resilience
            .map_or(*op, |resilience| OperationInfo { resilience, ..*op });
        let started = std::time::Instant::now();
        let call = call_guarded(&ctx, op, &self.target, attempt);
        let result = tracing::Instrument::instrument(call, span.clone())
            .await
            .map_err(|e| e.0);
        crate::trace::finish_call(&span, &result);
        crate::metrics::called(op, result.as_ref().err(), started.elapsed());
        result
    }

    /// The context of one outgoing call: the caller's, its deadline shortened to the
    /// contract's budget, or the client's default budget when neither sets one. `None` when
    /// the deadline has already passed.
    fn call_context(&self, op: &'static OperationInfo) -> Option<Context> {
        let now = tokio::time::Instant::now();
        let mut ctx = Context::current();
        if let Some(at) = op.deadline.and_then(|b| now.checked_add(b)) {
            ctx = ctx.with_deadline(at);
        }
        if ctx.deadline().is_none() {
            if let Some(at) = now.checked_add(self.default_timeout) {
                ctx = ctx.with_deadline(at);
            }
        }
        match ctx.deadline() {
            Some(at) if at <= now => None,
            _ => Some(ctx),
        }
    }

    async fn attempt<PbIn, PbOut, O, E>(
        &self,
        ctx: &Context,
        key: Option<&str>,
        path: &'static str,
        body: std::sync::Arc<PbIn>,
        decode: fn(PbOut) -> Result<O, String>,
        error: fn(&prost_types::Any) -> Option<E>,
    ) -> Result<O, GrpcAttemptError<E>>
    where
        PbIn: prost::Message + Send + Sync + 'static,
        PbOut: prost::Message + Default + Send + 'static,
    {
        let fail = GrpcAttemptError::failed;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata(ctx, key).await.map_err(fail)?;
        let mut grpc = self.grpc();
        let call = async {
            grpc.ready().await?;
            grpc.unary(
                request,
                http::uri::PathAndQuery::from_static(path),
                Shared::<PbIn, PbOut>::default(),
            )
            .await
        };
        // Every call has a deadline (the contract's, the caller's or the default budget);
        // dropping the call at it resets the HTTP/2 stream, so the server sees it end too.
        let response = match ctx.deadline() {
            Some(at) => match tokio::time::timeout_at(at, call).await {
                Ok(response) => response,
                Err(_) => return Err(fail(ClientError::DeadlineExceeded)),
            },
            None => call.await,
        };
        match response {
            Ok(r) => decode(r.into_inner()).map_err(|e| {
                fail(ClientError::Unexpected {
                    status: 200,
                    body: format!("reply does not fit the contract: {e}"),
                })
            }),
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => {
                Err(fail(ClientError::DeadlineExceeded))
            }
            // A tonic `Channel` also enforces the `grpc-timeout` we send and reports CANCELLED
            // ("Timeout expired"); that is our deadline, whatever tonic calls it.
            Err(s)
                if s.code() == tonic::Code::Cancelled
                    && (ctx.is_expired() || s.message() == "Timeout expired") =>
            {
                Err(fail(ClientError::DeadlineExceeded))
            }
            Err(s) => {
                let details = <RpcStatus as prost::Message>::decode(s.details()).ok();
                let declared = details
                    .as_ref()
                    .and_then(|d| d.details.iter().find_map(error));
                // UNAVAILABLE with a RetryInfo is a live server saying the key is busy (as a
                // REST 409 does): an answer, not a sign the endpoint is unwell.
                let busy = s.code() == tonic::Code::Unavailable
                    && details.is_some_and(|d| {
                        d.details
                            .iter()
                            .any(|a| a.type_url == "type.googleapis.com/google.rpc.RetryInfo")
                    });
                if busy {
                    return Err(GrpcAttemptError::answered(ClientError::Rpc {
                        code: s.code() as i32,
                        message: s.message().to_string(),
                    }));
                }
                Err(fail(match declared {
                    Some(e) => ClientError::Declared(e),
                    None => ClientError::Rpc {
                        code: s.code() as i32,
                        message: s.message().to_string(),
                    },
                }))
            }
        }
    }
}

/// A codec that encodes a request shared by every attempt of a call (retries need not clone
/// it) and decodes replies with prost.
struct Shared<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for Shared<T, U> {
    fn default() -> Self {
        Shared(std::marker::PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Shared<T, U>
where
    T: prost::Message + Send + Sync + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = std::sync::Arc<T>;
    type Decode = U;
    type Encoder = SharedEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> SharedEncoder<T> {
        SharedEncoder(std::marker::PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Encodes the message behind an `Arc`.
struct SharedEncoder<T>(std::marker::PhantomData<T>);

impl<T: prost::Message> tonic::codec::Encoder for SharedEncoder<T> {
    type Item = std::sync::Arc<T>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: std::sync::Arc<T>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        // `EncodeBuf` grows as needed, so encoding cannot run out of room.
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("cannot encode the request: {e}")))
    }
}

/// Waits for a streaming call's response headers until the context's deadline, if any: the
/// messages that follow are the handler's to bound.
async fn within<T, E>(ctx: &Context, call: impl Future<Output = T>) -> Result<T, ClientError<E>> {
    match ctx.deadline() {
        Some(at) => tokio::time::timeout_at(at, call)
            .await
            .map_err(|_| ClientError::DeadlineExceeded),
        None => Ok(call.await),
    }
}

/// One attempt's failure.
pub struct GrpcAttemptError<E>(ClientError<E>, bool);

impl<E> GrpcAttemptError<E> {
    fn failed(e: ClientError<E>) -> Self {
        GrpcAttemptError(e, false)
    }

    /// A failure the server answered with on purpose (a busy key): never counted by the
    /// breaker.
    fn answered(e: ClientError<E>) -> Self {
        GrpcAttemptError(e, true)
    }
}

impl<E> Transient for GrpcAttemptError<E> {
    fn is_transient(&self) -> bool {
        match &self.0 {
            ClientError::Rpc { code, .. } => {
                *code == tonic::Code::Unavailable as i32
                    || *code == tonic::Code::ResourceExhausted as i32
            }
            other => other.is_transient(),
        }
    }
    fn is_deadline(&self) -> bool {
        self.0.is_deadline()
    }
    fn is_endpoint_failure(&self) -> bool {
        !self.1 && self.0.is_endpoint_failure()
    }
}

impl<E> From<crate::resilience::CircuitOpen> for GrpcAttemptError<E> {
    fn from(open: crate::resilience::CircuitOpen) -> Self {
        GrpcAttemptError::failed(open.into())
    }
}

fn to_status<E: OperationError + std::fmt::Display>(
    op: &'static OperationInfo,
    e: HandlerError<E>,
    detail: fn(&E) -> prost_types::Any,
) -> tonic::Status {
    match e {
        HandlerError::Declared(e) => {
            let code = e.status().grpc_code();
            let details = RpcStatus {
                code,
                message: e.to_string(),
                details: vec![detail(&e)],
            };
            tonic::Status::with_details(
                tonic::Code::from_i32(code),
                e.to_string(),
                prost::Message::encode_to_vec(&details).into(),
            )
        }
        HandlerError::DeadlineExceeded => status(
            crate::DeadlineExceeded::GRPC_CODE,
            format!("`{}` did not finish before its deadline", op.name),
        ),
        HandlerError::NotImplemented(what) => {
            tonic::Status::unimplemented(format!("`{what}` is not implemented yet"))
        }
        HandlerError::InvalidInput(invalid) => tonic::Status::invalid_argument(invalid.to_string()),
        HandlerError::Internal(message) => {
            tracing::error!(%message, operation = op.name, "handler failed");
            tonic::Status::internal("the server failed to handle the request")
        }
    }
}

fn incoming<PbIn, I>(
    stream: tonic::Streaming<PbIn>,
    decode: fn(PbIn) -> Result<I, String>,
) -> BoxStream<Result<I, StreamError>>
where
    PbIn: Send + 'static,
    I: Validate + Send + 'static,
{
    use tokio_stream::StreamExt;
    Box::pin(stream.map(move |item| {
        let message = item.map_err(|s| StreamError(s.message().to_string()))?;
        let value = decode(message).map_err(StreamError)?;
        value.validate().map_err(|e| StreamError(e.to_string()))?;
        Ok(value)
    }))
}

/// `RESOURCE_EXHAUSTED` for a request over its operation's concurrency limit: answered at
/// once, before anything is decoded; nothing ran.
/// Records a streaming call once its reply has started: a status in the headers is a call that
/// failed before streaming (trailers-only); otherwise it is under way, recorded as `OK`.
fn streamed<B>(op: &OperationInfo, response: &http::Response<B>, started: std::time::Instant) {
    crate::metrics::served(
        op,
        crate::metrics::Status::Grpc(grpc_status(response.headers())),
        started.elapsed(),
    );
}

/// The `grpc-status` of `headers`, `0` (OK) when there is none.
fn grpc_status(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

/// Records a unary call whose caller went away before it was answered (its future dropped):
/// `CANCELLED`, unless disarmed first.
struct Abandoned {
    op: &'static OperationInfo,
    started: std::time::Instant,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if self.armed {
            crate::metrics::served(
                self.op,
                crate::metrics::Status::Grpc(1),
                self.started.elapsed(),
            );
        }
    }
}

/// `ctx` with the caller's principal, or the refusal: `UNAUTHENTICATED`, `PERMISSION_DENIED`,
/// or `INTERNAL` for a scheme the server has no verifier for.
async fn authenticated(
    config: &ServerConfig,
    op: &'static OperationInfo,
    headers: &http::HeaderMap,
    ctx: Context,
) -> Result<Context, axum::response::Response> {
    match crate::auth::authenticate(&config.auth, op, headers, ctx.peer()).await {
        Ok(principal) => Ok(ctx.with_principal(principal)),
        Err(refusal) => {
            let (code, status) = match &refusal {
                crate::auth::Refusal::Unauthenticated { .. } => {
                    (16, tonic::Status::unauthenticated(refusal.detail()))
                }
                crate::auth::Refusal::Forbidden(_) => {
                    (7, tonic::Status::permission_denied(refusal.detail()))
                }
                crate::auth::Refusal::Misconfigured(_) => {
                    (13, tonic::Status::internal(refusal.detail()))
                }
            };
            crate::metrics::served(
                op,
                crate::metrics::Status::Grpc(code),
                std::time::Duration::ZERO,
            );
            Err(status.into_http())
        }
    }
}

fn shed(op: &OperationInfo) -> axum::response::Response {
    // Shed at once: a request that took no time, answered RESOURCE_EXHAUSTED.
    crate::metrics::served(
        op,
        crate::metrics::Status::Grpc(8),
        std::time::Duration::ZERO,
    );
    tonic::Status::resource_exhausted(format!(
        "{} is running as many requests as its contract allows; nothing was done; retry later",
        op.name
    ))
    .into_http()
}

/// The reply stream, holding the request's concurrency slot until it ends or is dropped.
fn outgoing<O, PbOut, E>(
    op: &'static OperationInfo,
    stream: BoxStream<Result<O, HandlerError<E>>>,
    encode: fn(O) -> PbOut,
    detail: fn(&E) -> prost_types::Any,
    slot: std::sync::Arc<Option<crate::resilience::Slot>>,
) -> BoxStream<Result<PbOut, tonic::Status>>
where
    O: Send + 'static,
    PbOut: Send + 'static,
    E: OperationError + std::fmt::Display + Send + 'static,
{
    use tokio_stream::StreamExt;
    Box::pin(stream.map(move |item| {
        let _held = &slot;
        item.map(encode).map_err(|e| to_status(op, e, detail))
    }))
}

fn server_context(
    op: &'static OperationInfo,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> (Context, tracing::Span) {
    let mut ctx = Context::from_headers(headers).with_peer(
        extensions
            .get::<std::sync::Arc<crate::PeerIdentity>>()
            .cloned(),
    );
    // A request id travels on when the caller sent one; gRPC has no response header for it.
    let request_id = ctx.request_id().unwrap_or_default().to_string();
    if let Some(budget) = op.deadline {
        ctx = ctx.with_timeout(budget);
    }
    let span = tracing::info_span!(
        "pactum.grpc",
        otel.name = op.name,
        otel.kind = "server",
        rpc.system = "grpc",
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error.kind = tracing::field::Empty,
        error.message = tracing::field::Empty,
    );
    // Calls made by the handler derive their keys from this request alone; a keyed unary
    // call replaces the basis with its own key's.
    let ctx = crate::trace::enter(&span, ctx)
        .with_key_basis(format!("request:{}", crate::context::random_id()));
    (ctx, span)
}

/// Serves a server-streaming call: the handler (bounded by the deadline, if the contract or
/// the caller sets one) returns the stream of replies.
pub async fn server_streaming<PbIn, PbOut, I, O, E, H, Fut>(
    op: &'static OperationInfo,
    config: &ServerConfig,
    request: http::Request<axum::body::Body>,
    decode: fn(PbIn) -> Result<I, String>,
    encode: fn(O) -> PbOut,
    detail: fn(&E) -> prost_types::Any,
    handler: H,
) -> axum::response::Response
where
    PbIn: prost::Message + Default + Send + 'static,
    PbOut: prost::Message + Send + 'static,
    I: Validate + Send + 'static,
    O: Send + 'static,
    E: OperationError + std::fmt::Display + Send + 'static,
    H: FnOnce(Context, I) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<BoxStream<Result<O, HandlerError<E>>>, HandlerError<E>>>
        + Send
        + 'static,
{
    let Some(slot) = config.limits.try_enter(op) else {
        return shed(op);
    };
    let slot = std::sync::Arc::new(slot);
    let (ctx, span) = server_context(op, request.headers(), request.extensions());
    let ctx = match authenticated(config, op, request.headers(), ctx).await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let service = tower::service_fn(move |req: tonic::Request<PbIn>| {
        let (ctx, handler, slot) = (ctx.clone(), handler.clone(), slot.clone());
        async move {
            let input = decode(req.into_inner()).map_err(tonic::Status::invalid_argument)?;
            input
                .validate()
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            let stream = run_with_deadline(ctx.clone(), handler(ctx, input))
                .await
                .map_err(|e| to_status(op, e, detail))?;
            Ok(tonic::Response::new(outgoing(
                op, stream, encode, detail, slot,
            )))
        }
    });
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<PbOut, PbIn>::default())
        .max_decoding_message_size(config.body_limit);
    let started = std::time::Instant::now();
    let response =
        tracing::Instrument::instrument(grpc.server_streaming(service, request), span).await;
    streamed(op, &response, started);
    response.map(axum::body::Body::new)
}

/// Serves a client-streaming call: the handler reads the stream of requests (each decoded and
/// validated; a bad one arrives as a [`StreamError`]) and returns one reply.
pub async fn client_streaming<PbIn, PbOut, I, O, E, H, Fut>(
    op: &'static OperationInfo,
    config: &ServerConfig,
    request: http::Request<axum::body::Body>,
    decode: fn(PbIn) -> Result<I, String>,
    encode: fn(O) -> PbOut,
    detail: fn(&E) -> prost_types::Any,
    handler: H,
) -> axum::response::Response
where
    PbIn: prost::Message + Default + Send + 'static,
    PbOut: prost::Message + Send + 'static,
    I: Validate + Send + 'static,
    O: Send + 'static,
    E: OperationError + std::fmt::Display + Send + 'static,
    H: FnOnce(Context, BoxStream<Result<I, StreamError>>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<O, HandlerError<E>>> + Send + 'static,
{
    let Some(slot) = config.limits.try_enter(op) else {
        return shed(op);
    };
    let slot = std::sync::Arc::new(slot);
    let (ctx, span) = server_context(op, request.headers(), request.extensions());
    let ctx = match authenticated(config, op, request.headers(), ctx).await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let service = tower::service_fn(move |req: tonic::Request<tonic::Streaming<PbIn>>| {
        let (ctx, handler, slot) = (ctx.clone(), handler.clone(), slot.clone());
        async move {
            let _held = slot;
            let input = incoming(req.into_inner(), decode);
            let out = run_with_deadline(ctx.clone(), handler(ctx, input))
                .await
                .map_err(|e| to_status(op, e, detail))?;
            Ok(tonic::Response::new(encode(out)))
        }
    });
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<PbOut, PbIn>::default())
        .max_decoding_message_size(config.body_limit);
    let started = std::time::Instant::now();
    let response =
        tracing::Instrument::instrument(grpc.client_streaming(service, request), span).await;
    streamed(op, &response, started);
    response.map(axum::body::Body::new)
}

/// Serves a bidirectional-streaming call.
pub async fn bidi_streaming<PbIn, PbOut, I, O, E, H, Fut>(
    op: &'static OperationInfo,
    config: &ServerConfig,
    request: http::Request<axum::body::Body>,
    decode: fn(PbIn) -> Result<I, String>,
    encode: fn(O) -> PbOut,
    detail: fn(&E) -> prost_types::Any,
    handler: H,
) -> axum::response::Response
where
    PbIn: prost::Message + Default + Send + 'static,
    PbOut: prost::Message + Send + 'static,
    I: Validate + Send + 'static,
    O: Send + 'static,
    E: OperationError + std::fmt::Display + Send + 'static,
    H: FnOnce(Context, BoxStream<Result<I, StreamError>>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<BoxStream<Result<O, HandlerError<E>>>, HandlerError<E>>>
        + Send
        + 'static,
{
    let Some(slot) = config.limits.try_enter(op) else {
        return shed(op);
    };
    let slot = std::sync::Arc::new(slot);
    let (ctx, span) = server_context(op, request.headers(), request.extensions());
    let ctx = match authenticated(config, op, request.headers(), ctx).await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let service = tower::service_fn(move |req: tonic::Request<tonic::Streaming<PbIn>>| {
        let (ctx, handler, slot) = (ctx.clone(), handler.clone(), slot.clone());
        async move {
            let input = incoming(req.into_inner(), decode);
            let stream = run_with_deadline(ctx.clone(), handler(ctx, input))
                .await
                .map_err(|e| to_status(op, e, detail))?;
            Ok(tonic::Response::new(outgoing(
                op, stream, encode, detail, slot,
            )))
        }
    });
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<PbOut, PbIn>::default())
        .max_decoding_message_size(config.body_limit);
    let started = std::time::Instant::now();
    let response = tracing::Instrument::instrument(grpc.streaming(service, request), span).await;
    streamed(op, &response, started);
    response.map(axum::body::Body::new)
}

impl GrpcClient {
    /// A streaming call's context (the caller's, bounded by the contract's budget if it sets
    /// one; streams get no default budget), its request with that context in metadata, and
    /// a ready client.
    async fn start_stream<T, E>(
        &self,
        op: &'static OperationInfo,
        message: T,
    ) -> Result<
        (
            Context,
            tonic::Request<T>,
            tonic::client::Grpc<Link>,
            tracing::Span,
        ),
        ClientError<E>,
    > {
        let mut ctx = Context::current();
        if let Some(budget) = op.deadline {
            ctx = ctx.with_timeout(budget);
        }
        // The call's span, until the server has answered the stream's start.
        let span = crate::trace::client_span(op, "grpc");
        let ctx = crate::trace::enter(&span, ctx);
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata(&ctx, None).await?;
        let mut grpc = self.grpc();
        grpc.ready()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok((ctx, request, grpc, span))
    }

    fn status_error<E>(
        s: tonic::Status,
        error: fn(&prost_types::Any) -> Option<E>,
    ) -> ClientError<E> {
        if s.code() == tonic::Code::DeadlineExceeded {
            return ClientError::DeadlineExceeded;
        }
        let declared = <RpcStatus as prost::Message>::decode(s.details())
            .ok()
            .and_then(|d| d.details.iter().find_map(error));
        match declared {
            Some(e) => ClientError::Declared(e),
            None => ClientError::Rpc {
                code: s.code() as i32,
                message: s.message().to_string(),
            },
        }
    }

    // `ClientError` is every generated call's error type; boxing it here alone would make
    // streams differ from unary calls.
    #[allow(clippy::result_large_err)]
    fn replies<PbOut, O, E>(
        stream: tonic::Streaming<PbOut>,
        decode: fn(PbOut) -> Result<O, String>,
        error: fn(&prost_types::Any) -> Option<E>,
    ) -> BoxStream<Result<O, ClientError<E>>>
    where
        PbOut: Send + 'static,
        O: Send + 'static,
        E: Send + 'static,
    {
        use tokio_stream::StreamExt;
        Box::pin(stream.map(move |item| match item {
            Ok(m) => decode(m).map_err(|e| ClientError::Unexpected {
                status: 200,
                body: format!("reply does not fit the contract: {e}"),
            }),
            Err(s) => Err(Self::status_error(s, error)),
        }))
    }

    /// A server-streaming call: the stream of replies (not retried: a stream is consumed once).
    pub async fn server_streaming<PbIn, PbOut, O, E>(
        &self,
        op: &'static OperationInfo,
        path: &'static str,
        input: PbIn,
        decode: fn(PbOut) -> Result<O, String>,
        error: fn(&prost_types::Any) -> Option<E>,
    ) -> Result<BoxStream<Result<O, ClientError<E>>>, ClientError<E>>
    where
        PbIn: prost::Message + Send + Sync + 'static,
        PbOut: prost::Message + Default + Send + 'static,
        O: Send + 'static,
        E: Send + 'static,
    {
        let (ctx, request, mut grpc, _span) = self.start_stream(op, input).await?;
        let call = grpc.server_streaming(
            request,
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<PbIn, PbOut>::default(),
        );
        let response = within(&ctx, call)
            .await?
            .map_err(|s| Self::status_error(s, error))?;
        Ok(Self::replies(response.into_inner(), decode, error))
    }

    /// A client-streaming call: sends every message of `inputs`, returns the one reply.
    pub async fn client_streaming<PbIn, PbOut, O, E>(
        &self,
        op: &'static OperationInfo,
        path: &'static str,
        inputs: BoxStream<PbIn>,
        decode: fn(PbOut) -> Result<O, String>,
        error: fn(&prost_types::Any) -> Option<E>,
    ) -> Result<O, ClientError<E>>
    where
        PbIn: prost::Message + Send + Sync + 'static,
        PbOut: prost::Message + Default + Send + 'static,
    {
        let (ctx, request, mut grpc, _span) = self.start_stream(op, inputs).await?;
        let call = grpc.client_streaming(
            request,
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<PbIn, PbOut>::default(),
        );
        let response = within(&ctx, call)
            .await?
            .map_err(|s| Self::status_error(s, error))?;
        decode(response.into_inner()).map_err(|e| ClientError::Unexpected {
            status: 200,
            body: format!("reply does not fit the contract: {e}"),
        })
    }

    /// A bidirectional-streaming call.
    pub async fn bidi_streaming<PbIn, PbOut, O, E>(
        &self,
        op: &'static OperationInfo,
        path: &'static str,
        inputs: BoxStream<PbIn>,
        decode: fn(PbOut) -> Result<O, String>,
        error: fn(&prost_types::Any) -> Option<E>,
    ) -> Result<BoxStream<Result<O, ClientError<E>>>, ClientError<E>>
    where
        PbIn: prost::Message + Send + Sync + 'static,
        PbOut: prost::Message + Default + Send + 'static,
        O: Send + 'static,
        E: Send + 'static,
    {
        let (ctx, request, mut grpc, _span) = self.start_stream(op, inputs).await?;
        let call = grpc.streaming(
            request,
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<PbIn, PbOut>::default(),
        );
        let response = within(&ctx, call)
            .await?
            .map_err(|s| Self::status_error(s, error))?;
        Ok(Self::replies(response.into_inner(), decode, error))
    }
}
