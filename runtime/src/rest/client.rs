//! What generated reqwest clients call: [`HttpClient::call`] sends one logical call with the
//! contract's guardrails — the earlier of the caller's and the contract's deadline, trace
//! context and request id from the current [`Context`], retries only where the contract allows
//! them, one idempotency key per logical call — and turns the reply into the operation's
//! typed result.

use crate::context::{Context, Transport};
use crate::contract::OperationInfo;
use crate::problem::{OperationError, Problem, PROBLEM_JSON};
use crate::resilience::{CircuitOpen, ResiliencePolicy, Target};
use crate::retry::{call_guarded, Transient};
use crate::wire;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

pub use super::Reply;
pub use crate::call::{ClientError, DEFAULT_TIMEOUT};
pub use reqwest;

/// One attempt's failure with the server's `Retry-After`, if any.
struct AttemptError<E> {
    error: ClientError<E>,
    retry_after: Option<Duration>,
}

impl<E> Transient for AttemptError<E> {
    fn is_transient(&self) -> bool {
        self.error.is_transient()
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
    fn is_deadline(&self) -> bool {
        self.error.is_deadline()
    }
    fn is_endpoint_failure(&self) -> bool {
        self.error.is_endpoint_failure()
    }
}

impl<E> From<CircuitOpen> for AttemptError<E> {
    fn from(open: CircuitOpen) -> Self {
        AttemptError {
            error: open.into(),
            retry_after: None,
        }
    }
}

/// The HTTP side of a generated client: a base URL and a reqwest client, and the target's
/// retry budget and circuit breaker, which its clones share.
#[derive(Clone, Debug)]
pub struct HttpClient {
    http: reqwest::Client,
    base: String,
    default_timeout: Duration,
    target: Arc<Target>,
    /// Set in code, over every operation's contract policy.
    resilience: Option<ResiliencePolicy>,
    /// What it sends to prove who it is (`auth:`).
    credentials: Option<crate::auth::Credentials>,
}

impl HttpClient {
    /// A client for the service at `base_url` (`http://127.0.0.1:8080`, or `https://…`
    /// trusting the system's roots with the `tls` feature).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_client(reqwest::Client::new(), base_url)
    }

    /// A client for `base_url` over TLS as `tls` says: the CA it trusts, and its own
    /// certificate for mutual TLS.
    #[cfg(feature = "tls")]
    pub fn with_tls(
        base_url: impl Into<String>,
        tls: &crate::tls::ClientTls,
    ) -> Result<Self, crate::tls::TlsError> {
        Ok(Self::with_client(tls.reqwest_client()?, base_url))
    }

    /// A client using your reqwest client (TLS, proxies, pools are configured there).
    pub fn with_client(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        HttpClient {
            http,
            base: base_url.into().trim_end_matches('/').to_string(),
            default_timeout: DEFAULT_TIMEOUT,
            target: Arc::new(Target::new()),
            resilience: None,
            credentials: None,
        }
    }

    /// Sends `credentials` with every call (and stream). A 401 is retried once, and only
    /// when a bearer token source, asked again, gives another token.
    pub fn with_credentials(mut self, credentials: crate::auth::Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the budget used when neither the contract nor the caller sets a deadline
    /// (default [`DEFAULT_TIMEOUT`]).
    pub fn with_default_timeout(mut self, budget: Duration) -> Self {
        self.default_timeout = budget;
        self
    }

    /// The stable in-cluster address of `service` as Kubernetes DNS resolves it:
    /// `http://<service>.<namespace>.svc.cluster.local:<port>`, the service named as `pactum
    /// manifests` names its `Service` (`_` as `-`).
    pub fn for_service(service: &str, namespace: &str, port: u16) -> Self {
        let name = pactum_rules::kube::service_name(service);
        Self::new(format!(
            "http://{name}.{namespace}.svc.cluster.local:{port}"
        ))
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The target's retry budget and circuit breaker.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Uses `policy` (retry budget and breaker) for every call of this client instead of each
    /// operation's contract policy: for a target this deployment knows better.
    pub fn with_resilience(mut self, policy: ResiliencePolicy) -> Self {
        self.resilience = Some(policy);
        self
    }

    /// Sends one logical call of `op` to `path_and_query` (already encoded) with `body`.
    pub async fn call<O, E>(
        &self,
        op: &'static OperationInfo,
        reply: Reply,
        path_and_query: String,
        body: Option<serde_json::Value>,
    ) -> Result<O, ClientError<E>>
    where
        O: DeserializeOwned,
        E: OperationError,
    {
        // Everything up to the reply's bytes (deadline, retries, breaker, the attempts) is
        // `call_raw`, compiled once for every operation; only decoding the reply is compiled
        // per operation. (Generic over `O` and `E` all the way down, it was instantiated once
        // per client method: most of a large generated crate's build.)
        let Some(ctx) = self.call_context(op) else {
            return Err(ClientError::DeadlineExceeded);
        };
        // The call's own span: its id goes out as the server span's parent.
        let span = crate::trace::client_span(op, "http");
        let started = std::time::Instant::now();
        let raw = self
            .call_raw(ctx, op, &span, path_and_query, body, is_declared::<E>)
            .await;
        let result = match raw {
            Ok((status, bytes)) => {
                let decoded = match reply {
                    Reply::Empty => serde_json::from_value(serde_json::Value::Null),
                    Reply::Json => serde_json::from_slice(&bytes),
                };
                decoded.map_err(|_| ClientError::Unexpected {
                    status,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                })
            }
            Err(e) => Err(into_typed(e)),
        };
        crate::trace::finish_call(&span, &result);
        crate::metrics::called(op, result.as_ref().err(), started.elapsed());
        result
    }

    /// The call's context: the earlier of the caller's and the contract's deadline, or the
    /// client's default budget; `None` when it has already run out.
    fn call_context(&self, op: &OperationInfo) -> Option<Context> {
        let mut ctx = Context::current();
        if let Some(budget) = op.deadline {
            ctx = ctx.with_timeout(budget);
        }
        if ctx.deadline().is_none() {
            ctx = ctx.with_timeout(self.default_timeout);
        }
        (!ctx.is_expired()).then_some(ctx)
    }

    /// One logical call up to a 2xx reply's status and bytes: attempts under the retry
    /// policy, budget and breaker, inside `span`. A declared error stays a problem
    /// ([`DeclaredProblem`]) until [`into_typed`] makes it the operation's `E`.
    async fn call_raw(
        &self,
        ctx: Context,
        op: &'static OperationInfo,
        span: &tracing::Span,
        path_and_query: String,
        body: Option<serde_json::Value>,
        is_declared: IsDeclared,
    ) -> Result<(u16, axum::body::Bytes), ClientError<DeclaredProblem>> {
        let method = op
            .route
            .map(|r| r.method)
            .unwrap_or("POST")
            .parse::<reqwest::Method>()
            .unwrap_or(reqwest::Method::POST);
        let url = format!("{}{path_and_query}", self.base);
        let body = body.map(|b| serde_json::to_vec(&b).unwrap_or_default());
        let ctx = crate::trace::enter(span, ctx);
        let call_ctx = ctx.clone();
        let attempt = |a: crate::retry::Attempt| {
            let ctx = match a.deadline {
                Some(at) => ctx.clone().with_deadline(at),
                None => ctx.clone(),
            };
            let (method, url, body) = (method.clone(), url.clone(), body.clone());
            async move {
                let key = a.idempotency_key.as_deref();
                self.attempt(&ctx, key, method, &url, body, is_declared)
                    .await
            }
        };
        // A policy set in code replaces the contract's (the facts are a small `Copy` struct).
        let op = &self
            .resilience
            .map_or(*op, |resilience| OperationInfo { resilience, ..*op });
        let call = call_guarded(&call_ctx, op, &self.target, attempt);
        tracing::Instrument::instrument(call, span.clone())
            .await
            .map_err(|e| e.error)
    }

    /// Opens a server stream of `op` (Server-Sent Events, [`super::sse`]) at `path_and_query`:
    /// the reply's items, decoded, until the server's `end` event; a `problem` event is the
    /// stream's last item, as the error it names. When `resumable` (the contract declares
    /// `resume:`), a connection that drops mid-stream is reopened, up to
    /// [`MAX_RECONNECTS`] times in a row, with `Last-Event-ID` set to the last id received,
    /// so the server continues after it; otherwise a drop ends the stream with
    /// [`ClientError::Transport`]. The operation's deadline, if any, bounds the whole stream;
    /// opening it (until the reply's headers) is bounded by the client's default timeout too.
    pub async fn stream<O, E>(
        &self,
        op: &'static OperationInfo,
        path_and_query: String,
        resumable: bool,
    ) -> Result<crate::BoxStream<Result<O, ClientError<E>>>, ClientError<E>>
    where
        O: DeserializeOwned + Send + 'static,
        E: OperationError + Send + 'static,
    {
        let mut ctx = Context::current();
        if let Some(budget) = op.deadline {
            ctx = ctx.with_timeout(budget);
        }
        let span = crate::trace::client_span(op, "http");
        let ctx = crate::trace::enter(&span, ctx);
        let url = format!("{}{path_and_query}", self.base);
        let started = std::time::Instant::now();
        let opened =
            tracing::Instrument::instrument(self.open_stream::<E>(&ctx, &url, None), span.clone())
                .await;
        crate::trace::finish_call(&span, &opened);
        crate::metrics::called(op, opened.as_ref().err(), started.elapsed());
        let response = opened?;
        struct State {
            client: HttpClient,
            ctx: Context,
            url: String,
            response: Option<reqwest::Response>,
            parser: super::sse::EventParser,
            ready: std::collections::VecDeque<super::sse::ReadEvent>,
            last_id: Option<String>,
            reconnects: usize,
            resumable: bool,
        }
        impl State {
            /// Reopens the stream after the last id received, again (after a growing pause)
            /// while it fails in ways that may pass, up to MAX_RECONNECTS in a row; the
            /// error that ends the stream, if it must end.
            async fn reopen<E: OperationError>(&mut self) -> Option<ClientError<E>> {
                self.parser = Default::default();
                loop {
                    if self.reconnects >= MAX_RECONNECTS {
                        return Some(ClientError::Transport(format!(
                            "the stream dropped and could not be resumed in {MAX_RECONNECTS} attempts"
                        )));
                    }
                    self.reconnects += 1;
                    tokio::time::sleep(Duration::from_millis(50 << self.reconnects.min(6))).await;
                    match self
                        .client
                        .open_stream::<E>(&self.ctx, &self.url, self.last_id.as_deref())
                        .await
                    {
                        Ok(r) => {
                            self.response = Some(r);
                            return None;
                        }
                        Err(ClientError::Transport(_)) => continue,
                        Err(ClientError::Unexpected { status, .. }) if status >= 500 => continue,
                        Err(ClientError::Rejected(p)) if p.status == 503 => continue,
                        Err(e) => return Some(e),
                    }
                }
            }
        }
        let state = State {
            client: self.clone(),
            ctx,
            url,
            response: Some(response),
            parser: Default::default(),
            ready: Default::default(),
            last_id: None,
            reconnects: 0,
            resumable,
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            // Each turn yields an item or ends; reading is bounded by the deadline and
            // reconnecting by MAX_RECONNECTS.
            loop {
                if let Some(event) = st.ready.pop_front() {
                    if event.id.is_some() {
                        st.last_id = event.id.clone();
                    }
                    match event.event.as_str() {
                        super::sse::END_EVENT => return None,
                        // The server cut a reader it saw stalled (503): for a resumable
                        // stream, as good as a dropped connection.
                        super::sse::PROBLEM_EVENT
                            if st.resumable
                                && serde_json::from_str::<Problem>(&event.data)
                                    .is_ok_and(|p| p.status == 503) =>
                        {
                            st.ready.clear();
                            st.response = None;
                            if let Some(e) = st.reopen::<E>().await {
                                return Some((Err(e), st));
                            }
                            continue;
                        }
                        super::sse::PROBLEM_EVENT => {
                            let status = serde_json::from_str::<Problem>(&event.data)
                                .map_or(500, |p| p.status);
                            st.response = None;
                            st.ready.clear();
                            let error = reply_error(status, true, event.data.as_bytes());
                            return Some((Err(error), st));
                        }
                        _ => {
                            st.reconnects = 0;
                            let item = serde_json::from_str::<O>(&event.data).map_err(|e| {
                                ClientError::Unexpected {
                                    status: 200,
                                    body: format!(
                                        "a stream item that does not decode ({e}): {}",
                                        event.data
                                    ),
                                }
                            });
                            if item.is_err() {
                                st.response = None;
                                st.ready.clear();
                            }
                            return Some((item, st));
                        }
                    }
                }
                let response = st.response.as_mut()?;
                let chunk = match st.ctx.remaining() {
                    Some(left) => match tokio::time::timeout(left, response.chunk()).await {
                        Ok(c) => c,
                        Err(_) => {
                            st.response = None;
                            return Some((Err(ClientError::DeadlineExceeded), st));
                        }
                    },
                    None => response.chunk().await,
                };
                let dropped = match chunk {
                    Ok(Some(bytes)) => match st.parser.push(&bytes) {
                        Ok(events) => {
                            st.ready.extend(events);
                            continue;
                        }
                        Err(super::sse::EventTooLarge) => {
                            st.response = None;
                            return Some((
                                Err(ClientError::Unexpected {
                                    status: 200,
                                    body: format!(
                                        "a stream event longer than {} bytes",
                                        super::sse::MAX_EVENT_BYTES
                                    ),
                                }),
                                st,
                            ));
                        }
                    },
                    Ok(None) => "the connection closed before the stream's end".to_string(),
                    Err(e) => with_causes(&e),
                };
                // Dropped mid-stream: resume after the last id, or report it.
                st.response = None;
                if !st.resumable {
                    return Some((Err(ClientError::Transport(dropped)), st));
                }
                if let Some(e) = st.reopen::<E>().await {
                    return Some((Err(e), st));
                }
            }
        });
        Ok(Box::pin(stream))
    }

    /// Sends the GET of a stream and waits for the reply's headers: a 2xx reply to read
    /// events from, or the error the reply means.
    async fn open_stream<E: OperationError>(
        &self,
        ctx: &Context,
        url: &str,
        last_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError<E>> {
        let mut sent = None;
        let first = self.open_stream_once(ctx, url, last_id, &mut sent).await;
        if let (Err(ClientError::Rejected(p)), Some(c)) = (&first, &self.credentials) {
            if p.status == 401 && c.renewed(sent.as_deref()).await {
                return self.open_stream_once(ctx, url, last_id, &mut sent).await;
            }
        }
        first
    }

    async fn open_stream_once<E: OperationError>(
        &self,
        ctx: &Context,
        url: &str,
        last_id: Option<&str>,
        sent: &mut Option<String>,
    ) -> Result<reqwest::Response, ClientError<E>> {
        if ctx.is_expired() {
            return Err(ClientError::DeadlineExceeded);
        }
        let mut headers = http::HeaderMap::new();
        ctx.inject_headers(&mut headers, Transport::Http);
        self.authorize(&mut headers, sent).await?;
        let mut request = self
            .http
            .get(url)
            .headers(headers)
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let wait = ctx
            .remaining()
            .map_or(self.default_timeout, |left| left.min(self.default_timeout));
        let response = match tokio::time::timeout(wait, request.send()).await {
            Err(_) => return Err(ClientError::DeadlineExceeded),
            Ok(Err(e)) => return Err(ClientError::Transport(with_causes(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let is_problem = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with(PROBLEM_JSON));
        let bytes = match tokio::time::timeout(wait, response.bytes()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(ClientError::Transport(with_causes(&e))),
            Err(_) => return Err(ClientError::DeadlineExceeded),
        };
        Err(reply_error(status, is_problem, &bytes))
    }

    /// One attempt; refused with 401, once more if the credentials were renewed.
    async fn attempt(
        &self,
        ctx: &Context,
        key: Option<&str>,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
        is_declared: IsDeclared,
    ) -> Result<(u16, axum::body::Bytes), AttemptError<DeclaredProblem>> {
        let mut sent = None;
        let first = self
            .attempt_once(
                ctx,
                key,
                method.clone(),
                url,
                body.clone(),
                is_declared,
                &mut sent,
            )
            .await;
        if let (
            Err(AttemptError {
                error: ClientError::Rejected(p),
                ..
            }),
            Some(c),
        ) = (&first, &self.credentials)
        {
            if p.status == 401 && c.renewed(sent.as_deref()).await {
                return self
                    .attempt_once(ctx, key, method, url, body, is_declared, &mut sent)
                    .await;
            }
        }
        first
    }

    /// Adds the credentials to `headers`; `sent` keeps the bearer token sent, which a 401
    /// is judged against.
    async fn authorize<E>(
        &self,
        headers: &mut http::HeaderMap,
        sent: &mut Option<String>,
    ) -> Result<(), ClientError<E>> {
        if let Some(c) = &self.credentials {
            *sent = c
                .apply(headers)
                .await
                .map_err(|e| ClientError::Transport(format!("cannot get credentials: {e}")))?;
        }
        Ok(())
    }

    /// One request: the reply's status and bytes when it is a 2xx, or what it means.
    #[allow(clippy::too_many_arguments)]
    async fn attempt_once(
        &self,
        ctx: &Context,
        key: Option<&str>,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
        is_declared: IsDeclared,
        sent: &mut Option<String>,
    ) -> Result<(u16, axum::body::Bytes), AttemptError<DeclaredProblem>> {
        let fail = |error| AttemptError {
            error,
            retry_after: None,
        };
        let mut headers = http::HeaderMap::new();
        ctx.inject_headers(&mut headers, Transport::Http);
        self.authorize(&mut headers, sent).await.map_err(fail)?;
        if let Some(key) = key {
            crate::HeaderSink::set_header(
                &mut headers,
                wire::IDEMPOTENCY_KEY_HEADER,
                wire::format_sf_string(key),
            );
        }
        let mut request = self.http.request(method, url).headers(headers);
        if let Some(left) = ctx.remaining() {
            if left.is_zero() {
                return Err(fail(ClientError::DeadlineExceeded));
            }
            request = request.timeout(left);
        }
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(fail(ClientError::DeadlineExceeded)),
            Err(e) => return Err(fail(ClientError::Transport(with_causes(&e)))),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| wire::parse_retry_after(v, std::time::SystemTime::now()));
        let is_problem = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with(PROBLEM_JSON));
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(fail(ClientError::DeadlineExceeded)),
            Err(e) => return Err(fail(ClientError::Transport(with_causes(&e)))),
        };
        if (200..300).contains(&status) {
            return Ok((status, bytes));
        }
        Err(AttemptError {
            error: reply_error_raw(status, is_problem, &bytes, is_declared),
            retry_after,
        })
    }
}

/// Times in a row a resumable stream is reopened after its connection drops (an item
/// received in between resets the count).
pub const MAX_RECONNECTS: usize = 5;

/// The error a non-2xx reply means: the deadline (504), a declared error, a client mistake
/// (4xx problem), or an answer the contract does not describe.
fn reply_error<E: OperationError>(status: u16, is_problem: bool, bytes: &[u8]) -> ClientError<E> {
    into_typed(reply_error_raw(status, is_problem, bytes, is_declared::<E>))
}

/// A declared error's problem while a call is in flight, so the machinery of a call is
/// compiled once rather than once per operation's error type.
struct DeclaredProblem(Problem);

/// Whether a problem's `code` and fields make one of an operation's declared errors.
type IsDeclared = fn(&str, serde_json::Value) -> bool;

/// [`IsDeclared`] for the operation whose errors are `E`.
fn is_declared<E: OperationError>(code: &str, fields: serde_json::Value) -> bool {
    E::from_problem(code, fields).is_some()
}

/// [`reply_error`] with the declared error left as its problem.
fn reply_error_raw(
    status: u16,
    is_problem: bool,
    bytes: &[u8],
    is_declared: IsDeclared,
) -> ClientError<DeclaredProblem> {
    let unexpected = || ClientError::Unexpected {
        status,
        body: String::from_utf8_lossy(bytes).into_owned(),
    };
    if status == 504 {
        return ClientError::DeadlineExceeded;
    }
    if !is_problem {
        return unexpected();
    }
    match serde_json::from_slice::<Problem>(bytes) {
        Ok(problem) => {
            let declared = problem.code.as_deref().is_some_and(|code| {
                is_declared(code, serde_json::Value::Object(problem.extensions.clone()))
            });
            if declared {
                ClientError::Declared(DeclaredProblem(problem))
            } else if (400..500).contains(&status) {
                ClientError::Rejected(problem)
            } else {
                unexpected()
            }
        }
        Err(_) => unexpected(),
    }
}

/// The operation's own error: a declared error's problem decoded as `E`.
fn into_typed<E: OperationError>(error: ClientError<DeclaredProblem>) -> ClientError<E> {
    match error {
        ClientError::Declared(DeclaredProblem(problem)) => {
            let code = problem.code.as_deref().unwrap_or_default();
            match E::from_problem(code, serde_json::Value::Object(problem.extensions.clone())) {
                Some(e) => ClientError::Declared(e),
                // Not reached: `is_declared::<E>` found it declared when the reply came.
                None => ClientError::Rejected(problem),
            }
        }
        ClientError::DeadlineExceeded => ClientError::DeadlineExceeded,
        ClientError::Rejected(p) => ClientError::Rejected(p),
        ClientError::Transport(t) => ClientError::Transport(t),
        ClientError::Rpc { code, message } => ClientError::Rpc { code, message },
        ClientError::Unexpected { status, body } => ClientError::Unexpected { status, body },
        ClientError::CircuitOpen { retry_in } => ClientError::CircuitOpen { retry_in },
    }
}

/// Text of a path or query parameter value: strings as they are, other JSON values as JSON.
pub fn param_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `name=value` pairs for a query parameter: one per list item, none for `null`.
pub fn push_query<T: Serialize>(query: &mut Vec<String>, name: &str, value: &T) {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Null) | Err(_) => {}
        Ok(serde_json::Value::Array(items)) => {
            for item in items {
                query.push(format!("{}={}", encode(name), encode(&param_text(&item))));
            }
        }
        Ok(_) => query.push(format!("{}={}", encode(name), encode(&param_text(value)))),
    }
}

/// An error with its causes (`error sending request: … : invalid peer certificate:
/// UnknownIssuer`): reqwest's own message names only the first step, not why it failed.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    // Bounded: a cause chain is a few links; a cyclic one must not loop.
    for _ in 0..8 {
        let Some(c) = cause else { break };
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}
