//! What generated axum servers call: one function, [`handle`], runs an operation's request
//! from headers to reply, so every server behaves the same way:
//!
//! context from headers (trace, deadline, key, request id) → span → content type and body
//! limit → idempotency → decode and validate → handler under the deadline → reply or problem.
//!
//! A client's mistake is always a 4xx problem document, never a 500 or a panic.

use crate::context::{random_id, Context, PeerIdentity};
use crate::contract::{Idempotency, OperationInfo};
use crate::deadline::{run_with_deadline, DeadlineExceeded};
use crate::handler::HandlerError;
use crate::problem::{declared_problem, OperationError, Problem, PROBLEM_JSON};
use crate::store::idempotency::{admit, Admission, StoredReply};
use crate::validate::Validate;
use crate::wire;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Digest;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

pub use super::Reply;
pub use crate::router::{axum, serve, CallerOf, ServerConfig};
pub(crate) use crate::router::{body_response, KeyHeader};
pub use crate::service::NoInput;

/// Path and query parameters of a request, raw, for generated decoders.
pub struct Incoming {
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    /// `Last-Event-ID`, on a Server-Sent Events request.
    last_event_id: Option<String>,
}

impl Incoming {
    /// A path or query value parsed as `T`: as a JSON string first (ids, names, enums), then
    /// as a JSON literal (numbers, booleans).
    fn parse<T: DeserializeOwned + Serialize>(
        name: &str,
        raw: &str,
    ) -> Result<Value, Box<Problem>> {
        let parsed = serde_json::from_value::<T>(Value::String(raw.to_string()))
            .or_else(|_| serde_json::from_str::<T>(raw));
        match parsed {
            Ok(v) => serde_json::to_value(v)
                .map_err(|e| Box::new(unprocessable(format!("`{name}`: {e}")))),
            Err(e) => Err(Box::new(unprocessable(format!(
                "parameter `{name}` = `{raw}`: {e}"
            )))),
        }
    }

    /// The path parameter `name` as `T`.
    pub fn path<T: DeserializeOwned + Serialize>(&self, name: &str) -> Result<Value, Box<Problem>> {
        let raw = self
            .path
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                Box::new(Problem::new(
                    400,
                    "Bad Request",
                    format!("missing path parameter `{name}`"),
                ))
            })?;
        Self::parse::<T>(name, raw)
    }

    /// The query parameter `name` as `T`, if present (the last one wins).
    pub fn query<T: DeserializeOwned + Serialize>(
        &self,
        name: &str,
    ) -> Result<Option<Value>, Box<Problem>> {
        match self.query.iter().rev().find(|(k, _)| k == name) {
            Some((_, raw)) => Self::parse::<T>(name, raw).map(Some),
            None => Ok(None),
        }
    }

    /// The `Last-Event-ID` a reconnecting Server-Sent Events client sent, as `T`, for the
    /// input field `name` (named in errors): it wins over a query parameter of that name,
    /// being newer than the URL the client first opened.
    pub fn resumed<T: DeserializeOwned + Serialize>(
        &self,
        name: &str,
    ) -> Result<Option<Value>, Box<Problem>> {
        match &self.last_event_id {
            Some(raw) => Self::parse::<T>(name, raw).map(Some),
            None => Ok(None),
        }
    }

    /// Every `name=…` query parameter as a list of `T`, if any.
    pub fn query_list<T: DeserializeOwned + Serialize>(
        &self,
        name: &str,
    ) -> Result<Option<Value>, Box<Problem>> {
        let values: Result<Vec<Value>, Box<Problem>> = self
            .query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, raw)| Self::parse::<T>(name, raw))
            .collect();
        let values = values?;
        Ok((!values.is_empty()).then_some(Value::Array(values)))
    }
}

fn unprocessable(detail: String) -> Problem {
    Problem::new(422, "Unprocessable Content", detail)
}

fn problem_response(mut p: Problem, request_id: &str) -> Response {
    p.instance = Some(request_id.to_string());
    respond(p.status, Some(PROBLEM_JSON), p.to_json(), request_id)
}

fn respond(status: u16, content_type: Option<&str>, body: Vec<u8>, request_id: &str) -> Response {
    let mut response = body_response(status, content_type, body);
    if let Ok(id) = http::HeaderValue::from_str(request_id) {
        response.headers_mut().insert(wire::REQUEST_ID_HEADER, id);
    }
    response
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` and `+` (as space); invalid escapes stay as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// The path parameters of the matched route, as `handle` takes them (none when the route
/// has none), or axum's 400 when one is not UTF-8, before anything else runs.
async fn path_params(request: Request) -> Result<(Vec<(String, String)>, Request), Response> {
    use axum::extract::rejection::RawPathParamsRejection;
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, body) = request.into_parts();
    let params = match axum::extract::RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        Err(RawPathParamsRejection::MissingPathParams(_)) => Vec::new(),
        Err(rejection) => return Err(rejection.into_response()),
    };
    Ok((params, Request::from_parts(parts, body)))
}

/// The axum route of one REST operation for `method`: what a generated `router_with` adds
/// per operation, `.route(path, endpoint(MethodFilter::GET, &OP, &config, &service, reply,
/// decode, |service, config, ctx, input| async move { … }))`, with [`handle`] as its body.
/// The route is written once here rather than as an axum handler per operation in
/// generated code: rustc then checks one generic body, not one handler per operation
/// (BENCHMARKS.md, gRPC (c)). `handler` gets the service and the server's settings (a
/// paginated operation reads its cursor key there).
pub fn endpoint<S, I, O, E, D, H, Fut>(
    method: axum::routing::MethodFilter,
    op: &'static OperationInfo,
    config: &std::sync::Arc<ServerConfig>,
    service: &std::sync::Arc<S>,
    reply: Reply,
    decode: D,
    handler: H,
) -> axum::routing::MethodRouter
where
    S: Send + Sync + 'static,
    I: DeserializeOwned + Validate + Send + 'static,
    O: Serialize + Send + 'static,
    E: OperationError + Display + Send + 'static,
    D: Fn(&Incoming) -> Result<Map<String, Value>, Box<Problem>> + Clone + Send + Sync + 'static,
    H: Fn(std::sync::Arc<S>, std::sync::Arc<ServerConfig>, Context, I) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = Result<O, HandlerError<E>>> + Send + 'static,
{
    let (service, config) = (
        std::sync::Arc::clone(service),
        std::sync::Arc::clone(config),
    );
    axum::routing::on(method, move |request: Request| {
        let (service, config) = (
            std::sync::Arc::clone(&service),
            std::sync::Arc::clone(&config),
        );
        let (decode, handler) = (decode.clone(), handler.clone());
        async move {
            let (path, request) = match path_params(request).await {
                Ok(found) => found,
                Err(refused) => return refused,
            };
            let settings = std::sync::Arc::clone(&config);
            handle(
                &config,
                op,
                reply,
                path,
                request,
                decode,
                move |ctx, input| handler(service, settings, ctx, input),
            )
            .await
        }
    })
}

/// [`endpoint`] for a server-streaming operation (Server-Sent Events), with
/// [`handle_stream`] as its body.
pub fn stream_endpoint<S, I, O, E, D, H, Fut>(
    method: axum::routing::MethodFilter,
    op: &'static OperationInfo,
    config: &std::sync::Arc<ServerConfig>,
    service: &std::sync::Arc<S>,
    decode: D,
    event_id: Option<fn(&O) -> String>,
    handler: H,
) -> axum::routing::MethodRouter
where
    S: Send + Sync + 'static,
    I: DeserializeOwned + Validate + Send + 'static,
    O: Serialize + Send + 'static,
    E: OperationError + Display + Send + 'static,
    D: Fn(&Incoming) -> Result<Map<String, Value>, Box<Problem>> + Clone + Send + Sync + 'static,
    H: Fn(std::sync::Arc<S>, std::sync::Arc<ServerConfig>, Context, I) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = Result<crate::BoxStream<Result<O, HandlerError<E>>>, HandlerError<E>>>
        + Send
        + 'static,
{
    let (service, config) = (
        std::sync::Arc::clone(service),
        std::sync::Arc::clone(config),
    );
    axum::routing::on(method, move |request: Request| {
        let (service, config) = (
            std::sync::Arc::clone(&service),
            std::sync::Arc::clone(&config),
        );
        let (decode, handler) = (decode.clone(), handler.clone());
        async move {
            let (path, request) = match path_params(request).await {
                Ok(found) => found,
                Err(refused) => return refused,
            };
            let settings = std::sync::Arc::clone(&config);
            handle_stream(
                &config,
                op,
                path,
                request,
                decode,
                event_id,
                move |ctx, input| handler(service, settings, ctx, input),
            )
            .await
        }
    })
}

/// Runs one request of operation `op`. `decode` turns path and query parameters into JSON
/// members of the input (generated per operation); the JSON body supplies the rest.
#[allow(clippy::too_many_arguments)]
pub async fn handle<I, O, E, D, H, Fut>(
    config: &ServerConfig,
    op: &'static OperationInfo,
    reply: Reply,
    path: Vec<(String, String)>,
    request: Request,
    decode: D,
    handler: H,
) -> Response
where
    I: DeserializeOwned + Validate + Send + 'static,
    O: Serialize + Send + 'static,
    E: OperationError + Display + Send + 'static,
    D: FnOnce(&Incoming) -> Result<Map<String, Value>, Box<Problem>> + Send + 'static,
    H: FnOnce(Context, I) -> Fut + Send + 'static,
    Fut: Future<Output = Result<O, HandlerError<E>>> + Send + 'static,
{
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let (mut ctx, request_id) = request_context(&parts);
    // Over the operation's concurrency limit: shed now, before reading the body, rather than
    // queue until the caller's deadline passes.
    let Some(slot) = config.limits.try_enter(op) else {
        let mut r = problem_response(
            Problem::new(
                503,
                "Service Unavailable",
                format!(
                    "{} is running as many requests as its contract allows; nothing was done; retry later",
                    op.name
                ),
            ),
            &request_id,
        );
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            retry_after_header(crate::resilience::SHED_RETRY_AFTER),
        );
        crate::metrics::served(
            op,
            crate::metrics::Status::Http(r.status()),
            started.elapsed(),
        );
        return r;
    };
    // The slot goes with the handler: a keyed request's handler runs on in a task of its own
    // after the caller hangs up, and holds its place until it finishes.
    let handler = move |ctx: Context, input: I| {
        let running = handler(ctx, input);
        async move {
            let _slot = slot;
            running.await
        }
    };
    if let Some(budget) = op.deadline {
        ctx = ctx.with_timeout(budget);
    }
    let span = request_span(op, &parts.method, &request_id);
    let ctx = crate::trace::enter(&span, ctx);
    // A caller that goes away drops this future mid-request: say so on the span, and count
    // it as 499 (the caller closed the request).
    let mut unfinished = Unfinished(Some((span.clone(), op, started)));
    let response = tracing::Instrument::instrument(
        run(
            config,
            op,
            reply,
            path,
            parts,
            body,
            ctx,
            &request_id,
            decode,
            handler,
        ),
        span.clone(),
    )
    .await;
    unfinished.0 = None;
    let status = response.status().as_u16();
    span.record("http.status_code", status);
    span.record("outcome", if status < 400 { "ok" } else { "error" });
    let status = crate::metrics::Status::Http(response.status());
    crate::metrics::served(op, status, started.elapsed());
    response
}

/// Serves a server-streaming operation over REST as Server-Sent Events
/// ([`super::sse`]): decodes and validates the input from the path, query and
/// `Last-Event-ID` (through `decode`), calls the handler, and answers 200 `text/event-stream`
/// with one event per item (`event_id` gives each its id), then `end`; or a problem event
/// when the handler's stream fails, the deadline passes or the client stops reading. A
/// failure before the first event is an ordinary problem response.
#[allow(clippy::too_many_arguments)]
pub async fn handle_stream<I, O, E, D, H, Fut>(
    config: &ServerConfig,
    op: &'static OperationInfo,
    path: Vec<(String, String)>,
    request: Request,
    decode: D,
    event_id: Option<fn(&O) -> String>,
    handler: H,
) -> Response
where
    I: DeserializeOwned + Validate + Send + 'static,
    O: Serialize + Send + 'static,
    E: OperationError + Display + Send + 'static,
    D: FnOnce(&Incoming) -> Result<Map<String, Value>, Box<Problem>>,
    H: FnOnce(Context, I) -> Fut + Send + 'static,
    Fut: Future<Output = Result<crate::BoxStream<Result<O, HandlerError<E>>>, HandlerError<E>>>
        + Send
        + 'static,
{
    let started = std::time::Instant::now();
    let (parts, _body) = request.into_parts();
    let (mut ctx, request_id) = request_context(&parts);
    let answer = |p: Problem| {
        let r = problem_response(p, &request_id);
        crate::metrics::served(
            op,
            crate::metrics::Status::Http(r.status()),
            started.elapsed(),
        );
        r
    };
    // A stream holds its concurrency slot for as long as it runs.
    let Some(slot) = config.limits.try_enter(op) else {
        return answer(Problem::new(
            503,
            "Service Unavailable",
            format!(
                "{} is running as many streams as its contract allows; retry later",
                op.name
            ),
        ));
    };
    if let Some(budget) = op.deadline {
        ctx = ctx.with_timeout(budget);
    }
    let span = request_span(op, &parts.method, &request_id);
    let ctx = crate::trace::enter(&span, ctx);
    let ctx = match crate::auth::authenticate(&config.auth, op, &parts.headers, ctx.peer()).await {
        Ok(principal) => ctx.with_principal(principal),
        Err(refusal) => {
            let r = refused(refusal, &request_id);
            crate::metrics::served(
                op,
                crate::metrics::Status::Http(r.status()),
                started.elapsed(),
            );
            return r;
        }
    };
    let incoming = Incoming {
        path,
        query: parse_query(parts.uri.query()),
        last_event_id: parts
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let members = match decode(&incoming) {
        Ok(m) => m,
        Err(p) => return answer(*p),
    };
    let input: I = match serde_json::from_value(Value::Object(members)) {
        Ok(i) => i,
        Err(e) => return answer(unprocessable(format!("invalid input: {e}"))),
    };
    if let Err(invalid) = input.validate() {
        return answer(invalid_problem(invalid));
    }
    let opened = tracing::Instrument::instrument(
        run_with_deadline(ctx.clone(), handler(ctx.clone(), input)),
        span.clone(),
    )
    .await;
    let stream = match opened {
        Ok(stream) => stream,
        Err(e) => return answer(handler_problem(op, e)),
    };
    span.record("http.status_code", 200);
    crate::metrics::served(
        op,
        crate::metrics::Status::Http(http::StatusCode::OK),
        started.elapsed(),
    );
    let events = super::sse::events(
        op,
        stream,
        event_id,
        ctx.deadline(),
        config.stream_buffer,
        config.stream_stall,
        handler_problem::<E>,
        slot,
        span,
    );
    let mut response = axum::response::IntoResponse::into_response(
        axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()),
    );
    if let Ok(id) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(wire::REQUEST_ID_HEADER, id);
    }
    response
}

/// A refused call's problem: 401 with the `WWW-Authenticate` challenges, 403, or the
/// server's own 500.
fn refused(refusal: crate::auth::Refusal, request_id: &str) -> Response {
    let title = match refusal.status() {
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Internal Server Error",
    };
    let mut response = problem_response(
        Problem::new(refusal.status(), title, refusal.detail()),
        request_id,
    );
    if let crate::auth::Refusal::Unauthenticated { challenges, .. } = &refusal {
        for c in challenges {
            if let Ok(v) = http::HeaderValue::from_str(c) {
                response
                    .headers_mut()
                    .append(http::header::WWW_AUTHENTICATE, v);
            }
        }
    }
    response
}

/// The request's `Context` (deadline, trace, idempotency key, peer) and its request id, sent
/// or made up.
fn request_context(parts: &http::request::Parts) -> (Context, String) {
    let ctx = Context::from_headers(&parts.headers).with_peer(
        parts
            .extensions
            .get::<std::sync::Arc<PeerIdentity>>()
            .cloned(),
    );
    let request_id = ctx.request_id().map_or_else(random_id, str::to_string);
    (ctx.with_request_id(request_id.clone()), request_id)
}

/// The server span of one request.
fn request_span(op: &OperationInfo, method: &http::Method, request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "pactum.request",
        otel.name = op.name,
        otel.kind = "server",
        http.method = %method,
        http.status_code = tracing::field::Empty,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error.kind = tracing::field::Empty,
        error.message = tracing::field::Empty,
    )
}

/// Records `outcome = "cancelled"` on a request span whose future is dropped before it
/// answers (the client disconnected or gave up), and the request as `499`.
struct Unfinished(Option<(tracing::Span, &'static OperationInfo, std::time::Instant)>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some((span, op, started)) = self.0.take() {
            span.record("outcome", "cancelled");
            if let Ok(closed) = http::StatusCode::from_u16(499) {
                crate::metrics::served(op, crate::metrics::Status::Http(closed), started.elapsed());
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<I, O, E, D, H, Fut>(
    config: &ServerConfig,
    op: &'static OperationInfo,
    reply: Reply,
    path: Vec<(String, String)>,
    parts: http::request::Parts,
    body: Body,
    ctx: Context,
    request_id: &str,
    decode: D,
    handler: H,
) -> Response
where
    I: DeserializeOwned + Validate + Send + 'static,
    O: Serialize + Send + 'static,
    E: OperationError + Display + Send + 'static,
    D: FnOnce(&Incoming) -> Result<Map<String, Value>, Box<Problem>> + Send + 'static,
    H: FnOnce(Context, I) -> Fut + Send + 'static,
    Fut: Future<Output = Result<O, HandlerError<E>>> + Send + 'static,
{
    let fail = |p: Problem| problem_response(p, request_id);
    // Who is calling, before anything of the request is read.
    let ctx = match crate::auth::authenticate(&config.auth, op, &parts.headers, ctx.peer()).await {
        Ok(principal) => ctx.with_principal(principal),
        Err(refusal) => return refused(refusal, request_id),
    };
    let has_body = matches!(parts.method.as_str(), "POST" | "PUT" | "PATCH");
    // The body arrives under the request's deadline (or the body read timeout, if sooner): a
    // client that sends headers and then trickles, or stalls, holds nothing for long.
    let until = tokio::time::Instant::now() + config.body_read_timeout;
    let until = ctx.deadline().map_or(until, |d| d.min(until));
    let read = axum::body::to_bytes(body, config.body_limit);
    let bytes =
        match tokio::time::timeout_at(until, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                return fail(Problem::new(
                    413,
                    "Content Too Large",
                    format!("request body exceeds {} bytes", config.body_limit),
                ))
            }
            Err(_) => return fail(Problem::new(
                408,
                "Request Timeout",
                "the request body did not arrive within the request's deadline; nothing was done",
            )),
        };
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if has_body && !bytes.is_empty() && !is_json(content_type) {
        return fail(Problem::new(
            415,
            "Unsupported Media Type",
            format!(
                "expected `application/json`, got `{}`",
                content_type.unwrap_or("nothing")
            ),
        ));
    }
    let call = Call {
        op,
        reply,
        path,
        parts,
        bytes,
        has_body,
        request_id: request_id.to_string(),
    };
    if op.idempotency != Idempotency::Key {
        // Unkeyed: nothing makes this request the same as another, so its calls' keys come
        // from a basis of its own (never the caller-chosen request id).
        let ctx = ctx.with_key_basis(format!("request:{}", random_id()));
        return call.run(ctx, decode, handler).await;
    }
    let key = match KeyHeader::read(&ctx, &call.parts.headers) {
        KeyHeader::Key(key) => key,
        KeyHeader::Missing => {
            return fail(Problem::new(
                400,
                "Bad Request",
                format!(
                    "`{}` requires an Idempotency-Key header: a key of 1-255 visible ASCII characters, as a token (8e03978e-...) or a quoted string (\"8e03978e-...\")",
                    op.name
                ),
            ))
        }
        KeyHeader::Malformed => {
            return fail(Problem::new(
                400,
                "Bad Request",
                "malformed Idempotency-Key: send 1-255 visible ASCII characters, as a token (8e03978e-...) or a quoted string (\"8e03978e-...\")",
            ))
        }
    };
    let scope = config.claim_scope(op, &call.parts.headers, ctx.principal());
    let fingerprint = call.fingerprint();
    let lease = config.lease.for_deadline(op.deadline);
    match admit(
        &config.idempotency,
        scope.clone(),
        key.clone(),
        &fingerprint,
        lease,
        config.retention,
    )
    .await
    {
        Admission::Run(claim) => {
            claim.set_encoder::<O>(move |out| success(reply, out).unwrap_or_else(internal));
            let ctx = ctx
                .with_key_basis(format!("key:{scope}/{key}"))
                .with_claim(claim.clone());
            let work = async move { stored(call.run(ctx, decode, handler).await).await };
            let stored = claim
                .run(
                    work,
                    |r| crate::store::idempotency::is_final_http(r.status),
                    |message| {
                        tracing::error!(%message, "keyed request failed");
                        internal("the server failed to handle the request".into())
                    },
                )
                .await;
            respond(
                stored.status,
                stored.content_type.as_deref(),
                stored.body,
                request_id,
            )
        }
        Admission::Replay(stored) => {
            let mut r = respond(
                stored.status,
                stored.content_type.as_deref(),
                stored.body,
                request_id,
            );
            r.headers_mut().insert(
                "idempotent-replayed",
                http::HeaderValue::from_static("true"),
            );
            r
        }
        Admission::Busy { retry_after } => {
            let mut r = fail(Problem::new(
                409,
                "Conflict",
                "a request with this Idempotency-Key is still being processed; retry after the Retry-After interval",
            ));
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, retry_after_header(retry_after));
            r
        }
        Admission::Mismatch => fail(Problem::new(
            422,
            "Unprocessable Content",
            "this Idempotency-Key was already used with a different request payload",
        )),
        Admission::Unavailable(e) => {
            tracing::error!(error = %e, "idempotency store unavailable");
            let mut r = fail(Problem::new(
                503,
                "Service Unavailable",
                "idempotency store unavailable; nothing was done; retry later",
            ));
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            r
        }
    }
}

/// `Retry-After` in whole seconds, rounded up (a client must not come back early).
fn retry_after_header(wait: Duration) -> http::HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    http::HeaderValue::from(secs.max(1))
}

/// The reply for a successful `out`, as the REST server sends it.
fn success<O: Serialize>(reply: Reply, out: &O) -> Result<StoredReply, String> {
    match reply {
        Reply::Empty => Ok(StoredReply {
            status: 204,
            content_type: None,
            body: Vec::new(),
        }),
        Reply::Json => serde_json::to_vec(out)
            .map(|body| StoredReply {
                status: 200,
                content_type: Some("application/json".into()),
                body,
            })
            .map_err(|e| format!("cannot encode reply: {e}")),
    }
}

fn internal(detail: String) -> StoredReply {
    let p = Problem::new(500, "Internal Server Error", detail);
    StoredReply {
        status: 500,
        content_type: Some(PROBLEM_JSON.into()),
        body: p.to_json(),
    }
}

/// A response built by this module, as stored for replay.
async fn stored(response: Response) -> StoredReply {
    let (head, body) = response.into_parts();
    // Every body here was built in memory by `respond`, so reading it cannot fail.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    StoredReply {
        status: head.status.as_u16(),
        content_type: head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.to_vec(),
    }
}

/// One request, read and checked, ready for the handler: owned, so a keyed request can run
/// in a task of its own.
struct Call {
    op: &'static OperationInfo,
    reply: Reply,
    path: Vec<(String, String)>,
    parts: http::request::Parts,
    bytes: axum::body::Bytes,
    has_body: bool,
    request_id: String,
}

impl Call {
    /// What a key's payload is: method, path, query and body.
    fn fingerprint(&self) -> Vec<u8> {
        let mut hash = sha2::Sha256::new();
        hash.update(self.parts.method.as_str());
        hash.update(b"\n");
        hash.update(self.parts.uri.path());
        hash.update(b"\n");
        hash.update(self.parts.uri.query().unwrap_or(""));
        hash.update(b"\n");
        hash.update(&self.bytes);
        hash.finalize().to_vec()
    }

    async fn run<I, O, E, D, H, Fut>(self, ctx: Context, decode: D, handler: H) -> Response
    where
        I: DeserializeOwned + Validate,
        O: Serialize,
        E: OperationError + Display,
        D: FnOnce(&Incoming) -> Result<Map<String, Value>, Box<Problem>>,
        H: FnOnce(Context, I) -> Fut,
        Fut: Future<Output = Result<O, HandlerError<E>>>,
    {
        decode_and_call(
            self.op,
            self.reply,
            self.path,
            &self.parts,
            &self.bytes,
            self.has_body,
            ctx,
            &self.request_id,
            decode,
            handler,
        )
        .await
    }
}

/// A 422 problem listing each violation with its JSON pointer.
fn invalid_problem(invalid: crate::ValidationError) -> Problem {
    let mut p = unprocessable(format!(
        "{} constraint violation(s)",
        invalid.violations.len()
    ));
    p.extensions.insert(
        "violations".into(),
        Value::Array(
            invalid
                .violations
                .into_iter()
                .map(|v| serde_json::json!({ "pointer": v.pointer, "message": v.message }))
                .collect(),
        ),
    );
    p
}

#[allow(clippy::too_many_arguments)]
async fn decode_and_call<I, O, E, D, H, Fut>(
    op: &'static OperationInfo,
    reply: Reply,
    path: Vec<(String, String)>,
    parts: &http::request::Parts,
    bytes: &[u8],
    has_body: bool,
    ctx: Context,
    request_id: &str,
    decode: D,
    handler: H,
) -> Response
where
    I: DeserializeOwned + Validate,
    O: Serialize,
    E: OperationError + Display,
    D: FnOnce(&Incoming) -> Result<Map<String, Value>, Box<Problem>>,
    H: FnOnce(Context, I) -> Fut,
    Fut: Future<Output = Result<O, HandlerError<E>>>,
{
    let fail = |p: Problem| problem_response(p, request_id);
    let mut members = if has_body && !bytes.is_empty() {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                let kind = crate::union::kind(&other);
                return fail(unprocessable(format!(
                    "the body must be a JSON object, found {kind}"
                )));
            }
            Err(e) => {
                return fail(Problem::new(
                    400,
                    "Bad Request",
                    format!("malformed JSON: {e}"),
                ))
            }
        }
    } else {
        Map::new()
    };
    let incoming = Incoming {
        path,
        query: parse_query(parts.uri.query()),
        last_event_id: None,
    };
    match decode(&incoming) {
        Ok(params) => members.extend(params),
        Err(p) => return fail(*p),
    }
    let input: I = match serde_json::from_value(Value::Object(members)) {
        Ok(i) => i,
        Err(e) => return fail(unprocessable(format!("invalid input: {e}"))),
    };
    if let Err(invalid) = input.validate() {
        return fail(invalid_problem(invalid));
    }
    let outcome = run_with_deadline(ctx.clone(), handler(ctx, input)).await;
    match outcome {
        Ok(out) => match reply {
            Reply::Empty => respond(204, None, Vec::new(), request_id),
            Reply::Json => match serde_json::to_vec(&out) {
                Ok(body) => respond(200, Some("application/json"), body, request_id),
                Err(e) => fail(Problem::new(
                    500,
                    "Internal Server Error",
                    format!("cannot encode reply: {e}"),
                )),
            },
        },
        Err(e) => fail(handler_problem(op, e)),
    }
}

/// The problem a handler's failure is answered with (REST replies and stream `problem`
/// events alike).
fn handler_problem<E: OperationError + Display>(
    op: &'static OperationInfo,
    e: HandlerError<E>,
) -> Problem {
    match e {
        HandlerError::Declared(e) => declared_problem(op.service, op.major, &e),
        HandlerError::DeadlineExceeded => Problem::new(
            DeadlineExceeded::HTTP_STATUS,
            "Gateway Timeout",
            format!("`{}` did not finish before its deadline", op.name),
        ),
        HandlerError::InvalidInput(invalid) => invalid_problem(invalid),
        HandlerError::NotImplemented(what) => Problem::new(
            501,
            "Not Implemented",
            format!("`{what}` is not implemented yet"),
        ),
        HandlerError::Internal(message) => {
            tracing::error!(%message, operation = op.name, "handler failed");
            Problem::new(
                500,
                "Internal Server Error",
                "the server failed to handle the request",
            )
        }
    }
}
