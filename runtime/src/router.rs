//! What every generated router, REST or gRPC, is served with: axum (both kinds of router
//! are axum `Router`s, so one process can serve both on one port), [`serve`] and
//! [`serve_with`] (`TCP_NODELAY`, a header read timeout, a connection limit, graceful
//! shutdown), and the [`ServerConfig`] their routes share (body limit, idempotency
//! store, retention, lease, caller). Compiled with the `rest` or `grpc` feature.

use crate::context::Context;
use crate::contract::OperationInfo;
use crate::store::idempotency::{IdempotencyStore, Lease, MemoryStore};
use crate::wire;
use axum::response::IntoResponse as _;
use std::sync::Arc;
use std::time::Duration;

pub use axum;

/// How [`serve_with`] runs its listener. The defaults suit a service behind a load balancer.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long a connection may take to send a request's headers (HTTP/1.1) before it is
    /// closed: a slow or stalled client cannot hold a connection open for free. Default 10 s.
    pub header_read_timeout: Duration,
    /// Most connections open at once; beyond it the listener stops accepting (the kernel's
    /// backlog holds new ones) until one closes. Default 10,000.
    pub max_connections: usize,
    /// After shutdown is asked for, how long in-flight requests may take to finish before the
    /// remaining connections are dropped. Default 30 s.
    pub shutdown_grace: Duration,
    /// Serve TLS (and mutual TLS, if it requires client certificates) instead of plain TCP.
    /// The handshake must finish within `header_read_timeout`. Default: none.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ServerTls>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Serves `router` on `listener` with the default [`ServeOptions`] until the process ends.
/// See [`serve_with`].
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    serve_with(
        listener,
        router,
        ServeOptions::default(),
        std::future::pending(),
    )
    .await
}

/// Serves `router` (REST, gRPC, or both on one port) on `listener` until `shutdown`
/// completes, then stops accepting, lets in-flight requests finish for up to
/// `shutdown_grace`, and returns.
///
/// Every connection gets `TCP_NODELAY` (`axum::serve` leaves Nagle's algorithm on: HTTP/2
/// writes a response as several small frames, and with Nagle on the kernel holds each small
/// segment that follows another until the peer acknowledges the first — up to 40 ms per call
/// when the peer has nothing to send). HTTP/1.1 and HTTP/2 are both served; a connection that
/// does not finish its request headers within `header_read_timeout` is closed, and at most
/// `max_connections` are open at once. Use [`shutdown_signal`] for `shutdown` to drain on
/// SIGTERM, as Kubernetes asks.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let builder = Arc::new(builder);
    let connections = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A place first, then a connection: at the limit, new ones wait in the backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
            () = &mut shutdown => break,
        };
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors or a connection reset before accept: the listener is
                // fine; pause briefly so a descriptor shortage does not spin the loop.
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            // A latency defect, not a reason to refuse the peer.
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &options.tls {
            // The handshake runs in the connection's task, so a slow one never holds up
            // accepting; it gets as long as a client has for its headers.
            let (acceptor, builder, router) = (tls.acceptor(), builder.clone(), router.clone());
            let (watcher, handshake) = (graceful.watcher(), options.header_read_timeout);
            tokio::spawn(async move {
                let _permit = permit;
                let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                };
                let peer = crate::tls::peer_identity(stream.get_ref().1);
                let service = tower::ServiceExt::map_request(
                    router,
                    move |mut request: http::Request<hyper::body::Incoming>| {
                        if let Some(peer) = &peer {
                            request.extensions_mut().insert(peer.clone());
                        }
                        request
                    },
                );
                let connection = builder
                    .serve_connection_with_upgrades(
                        TokioIo::new(stream),
                        hyper_util::service::TowerToHyperService::new(service),
                    )
                    .into_owned();
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        }
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = options.shutdown_grace.as_millis() as u64,
            "requests still running after the shutdown grace; their connections are dropped"
        );
    }
    Ok(())
}

/// Completes on SIGTERM (what Kubernetes sends before it kills a pod) or Ctrl-C: the
/// `shutdown` of [`serve_with`]. A service that also runs consumers or relays takes
/// [`crate::shutdown::Shutdown`] instead, so one signal drains them all.
pub async fn shutdown_signal() {
    crate::shutdown::signal().await
}

/// A readiness check: `Ok` when what it checks (a database, a broker) can be used.
pub type Check = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Liveness and readiness over HTTP, for Kubernetes' probes: `GET /healthz` answers 200 while
/// the process serves; `GET /readyz` runs every check at once (each bounded by 2 s) and answers
/// 200, or 503 with a problem naming each check that failed and why — so a pod whose database
/// or broker is down is taken out of rotation instead of failing requests.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    /// No checks: ready as soon as it serves.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Adds the check `name` (`"postgres"`, `"nats"`).
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Runs every check; the failures, by name.
    pub async fn failures(&self) -> Vec<(&'static str, String)> {
        let runs = self.checks.iter().map(|(name, check)| {
            let run = check();
            async move {
                match tokio::time::timeout(Duration::from_secs(2), run).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((*name, e)),
                    Err(_) => Some((*name, "no answer within 2 s".to_string())),
                }
            }
        });
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The `/healthz` and `/readyz` routes, to merge into a REST router.
    pub fn router(self) -> axum::Router {
        let readiness = Arc::new(self);
        axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/readyz",
                axum::routing::get(move || {
                    let readiness = Arc::clone(&readiness);
                    async move {
                        let failed = readiness.failures().await;
                        if failed.is_empty() {
                            return (http::StatusCode::OK, "ready").into_response();
                        }
                        let detail = failed
                            .iter()
                            .map(|(name, why)| format!("{name}: {why}"))
                            .collect::<Vec<_>>()
                            .join("; ");
                        let body = serde_json::json!({
                            "type": "about:blank",
                            "title": "Service Unavailable",
                            "status": 503,
                            "detail": format!("not ready: {detail}"),
                            "checks": failed.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                        });
                        (
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            [(http::header::CONTENT_TYPE, crate::problem::PROBLEM_JSON)],
                            body.to_string(),
                        )
                            .into_response()
                    }
                }),
            )
    }
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
    /// The longest a REST request body may take to arrive when the request's deadline is not
    /// sooner (408 after it). Default 30 s.
    pub body_read_timeout: Duration,
    /// The keys that seal paginated operations' page cursors. Default: a random key of this
    /// process; give every replica the same keys ([`Cursors::new`](crate::pagination::Cursors::new))
    /// so a cursor from one works on another and after a restart.
    pub cursors: crate::pagination::Cursors,
    /// Events a Server-Sent Events stream may queue for a client that is not reading.
    /// Default 64.
    pub stream_buffer: usize,
    /// How long a stream waits, its queue full, for a client that reads nothing before it is
    /// ended (its handler's stream dropped, a `problem` event queued). Default 30 s.
    pub stream_stall: Duration,
    /// The verifier of each authentication scheme the contract declares (`auth:`). Default:
    /// none, so an operation that requires a scheme is refused (500, logged) until one is set.
    pub auth: crate::auth::Verifiers,
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
            body_read_timeout: Duration::from_secs(30),
            cursors: Default::default(),
            stream_buffer: 64,
            stream_stall: Duration::from_secs(30),
            auth: Default::default(),
        }
    }
}

impl ServerConfig {
    /// The scope `op`'s keys are claimed in: `service.vN.Operation`, after the caller: the
    /// authenticated principal where there is one, else whom [`caller`](Self::caller) names.
    /// So one caller's key can never replay another's reply.
    pub fn claim_scope(
        &self,
        op: &OperationInfo,
        headers: &http::HeaderMap,
        principal: Option<&crate::auth::Principal>,
    ) -> String {
        if let Some(p) = principal {
            return format!("{p}|{}", op.scope());
        }
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
