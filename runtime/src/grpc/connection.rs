//! The HTTP/2 connection generated gRPC clients use unless given a tonic `Channel`.
//!
//! Why not tonic's `Channel` by default: it hands every call to a `tower::Buffer` worker task
//! and through a reconnect layer before hyper sees it, and arms a timer for `grpc-timeout`.
//! Here a call goes straight to hyper's HTTP/2 `SendRequest` (itself cheap to clone and safe
//! to share), and the generated client's own deadline is the only timer. `https://` is TLS
//! (rustls, ALPN `h2`) with the `tls` feature. What `Channel` adds beyond that (load
//! balancing, endpoint tuning) stays available through
//! [`GrpcClient::from_channel`](super::GrpcClient::from_channel).

use http::uri::{Authority, Scheme};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use tonic::body::Body;

/// How often an open connection PINGs its peer.
pub(crate) const KEEP_ALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long opening a connection (TCP, TLS, HTTP/2) may take.
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a PING may go unanswered before the connection is closed as dead.
pub(crate) const KEEP_ALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One lazily opened, shared HTTP/2 connection to `authority`, reopened when it closes.
#[derive(Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    authority: Authority,
    /// `http://authority`, the origin tonic's client puts in front of each call's path.
    origin: http::Uri,
    /// The open connection, if any; cloned per call.
    sender: Mutex<Option<SendRequest<Body>>>,
    /// Held while connecting, so concurrent first calls open one connection, not many.
    connecting: tokio::sync::Mutex<()>,
    /// For `https://`: how to speak TLS to the server.
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ClientTls>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("authority", &self.inner.authority)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection to `url` (`http://host:port`, or `https://` with the `tls` feature:
    /// `tls`, or the system's roots when `None`), opened on first use.
    pub(crate) fn new(url: &str, tls: Option<TlsConfig>) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let scheme = uri.scheme().cloned();
        #[cfg(feature = "tls")]
        let tls = match (scheme.as_ref().map(Scheme::as_str), tls) {
            (Some("https"), Some(tls)) => Some(tls),
            (Some("https"), None) => Some(system_roots().map_err(|e| format!("`{url}`: {e}"))?),
            (Some("http"), Some(_)) => {
                return Err(format!(
                    "`{url}`: TLS settings were given for an `http://` URL; use `https://`"
                ))
            }
            _ => None,
        };
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        let supported = if cfg!(feature = "tls") {
            scheme == Some(Scheme::HTTP) || scheme == Some(Scheme::HTTPS)
        } else {
            scheme == Some(Scheme::HTTP)
        };
        if !supported {
            return Err(format!(
                "`{url}`: only `http://` (h2c){} is built in",
                if cfg!(feature = "tls") {
                    " and `https://`"
                } else {
                    "; `https://` needs pactum's `tls` feature"
                }
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        let origin = http::Uri::builder()
            .scheme(scheme.unwrap_or(Scheme::HTTP))
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| format!("`{url}`: {e}"))?;
        Ok(Connection {
            inner: Arc::new(Inner {
                authority,
                origin,
                sender: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                #[cfg(feature = "tls")]
                tls,
            }),
        })
    }

    /// The origin to give `tonic::client::Grpc::with_origin`, so requests arrive with
    /// `:scheme` and `:authority` already set.
    pub(crate) fn origin(&self) -> http::Uri {
        self.inner.origin.clone()
    }

    fn open(&self) -> Option<SendRequest<Body>> {
        let sender = self.inner.sender.lock().unwrap_or_else(|e| e.into_inner());
        sender.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    async fn sender(&self) -> Result<SendRequest<Body>, tonic::Status> {
        if let Some(s) = self.open() {
            return Ok(s);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(s) = self.open() {
            return Ok(s); // another call connected while this one waited
        }
        // Bounded: a server that accepts TCP but never finishes a handshake must not hold every
        // call of this client behind the lock (a call's own deadline bounds only that call).
        match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
            Ok(connected) => connected,
            Err(_) => Err(tonic::Status::unavailable(format!(
                "cannot connect to {}: no connection within {} s",
                self.inner.authority,
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Opens the connection: TCP, TLS for `https://`, the HTTP/2 handshake.
    async fn connect(&self) -> Result<SendRequest<Body>, tonic::Status> {
        let unavailable = |e: &dyn std::fmt::Display| {
            tonic::Status::unavailable(format!("cannot connect to {}: {e}", self.inner.authority))
        };
        #[cfg(feature = "tls")]
        let default_port = if self.inner.tls.is_some() { 443 } else { 80 };
        #[cfg(not(feature = "tls"))]
        let default_port = 80;
        let port = self.inner.authority.port_u16().unwrap_or(default_port);
        // `[::1]` in a URL is `::1` to the resolver.
        let host = self
            .inner
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| unavailable(&e))?;
        // Small HTTP/2 frames must not wait for the peer's delayed ACK (see `server::serve`).
        let _ = tcp.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.inner.tls {
            let stream = tls
                .connect_h2(host, tcp)
                .await
                .map_err(|e| unavailable(&format!("TLS: {e}")))?;
            let sender = self.handshake(stream).await.map_err(|e| unavailable(&e))?;
            *self.inner.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
            return Ok(sender);
        }
        let sender = self.handshake(tcp).await.map_err(|e| unavailable(&e))?;
        *self.inner.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    /// HTTP/2 over `io` (plain TCP or TLS); the connection runs in a task of its own.
    async fn handshake<T>(&self, io: T) -> Result<SendRequest<Body>, hyper::Error>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            // HTTP/2 PINGs, idle or not: a peer that vanished without a FIN (a crashed host, a
            // dropped NAT entry) is found within interval + timeout and the connection closed,
            // so the next call reconnects instead of waiting on a dead socket.
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(io))
            .await?;
        let authority = self.inner.authority.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%authority, error = %e, "gRPC connection closed");
            }
        });
        Ok(sender)
    }

    async fn send(
        self,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<Body>, tonic::Status> {
        request.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("pactum/", env!("CARGO_PKG_VERSION"))),
        );
        let mut sender = self.sender().await?;
        sender
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
        match sender.send_request(request).await {
            Ok(response) => Ok(response.map(Body::new)),
            Err(e) => {
                // A stream reset keeps its HTTP/2 reason (REFUSED_STREAM is UNAVAILABLE, CANCEL
                // is CANCELLED, …). Anything tonic cannot classify is the connection failing
                // under the call: UNAVAILABLE, as gRPC prescribes for transport failures.
                // Retrying is the retry policy's call, and it only retries operations that
                // are safe or carry an idempotency key.
                let status = tonic::Status::from_error(Box::new(e));
                if status.code() == tonic::Code::Unknown {
                    Err(tonic::Status::unavailable(format!(
                        "connection lost: {}",
                        status.message()
                    )))
                } else {
                    Err(status)
                }
            }
        }
    }
}

/// The TLS settings a connection may be given.
#[cfg(feature = "tls")]
pub(crate) type TlsConfig = crate::tls::ClientTls;
/// Without the `tls` feature there are none to give.
#[cfg(not(feature = "tls"))]
pub(crate) type TlsConfig = std::convert::Infallible;

/// The system's roots, loaded once per process (reading them is tens of files).
#[cfg(feature = "tls")]
fn system_roots() -> Result<crate::tls::ClientTls, crate::tls::TlsError> {
    static ROOTS: std::sync::OnceLock<Result<crate::tls::ClientTls, crate::tls::TlsError>> =
        std::sync::OnceLock::new();
    ROOTS
        .get_or_init(crate::tls::ClientTls::system_roots)
        .clone()
}

/// What a generated client sends calls through: the built-in connection or a tonic `Channel`.
#[derive(Clone, Debug)]
pub(crate) enum Link {
    Direct(Connection),
    Channel(tonic::transport::Channel),
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, tonic::Status>> + Send + 'static>>;

impl tower::Service<http::Request<Body>> for Link {
    type Response = http::Response<Body>;
    type Error = tonic::Status;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            // Readiness is awaited per call, on the connection it will use.
            Link::Direct(_) => Poll::Ready(Ok(())),
            Link::Channel(c) => tower::Service::poll_ready(c, cx)
                .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}"))),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self {
            Link::Direct(c) => Box::pin(c.clone().send(request)),
            Link::Channel(c) => {
                let call = tower::Service::call(c, request);
                Box::pin(async move {
                    call.await
                        .map_err(|e| tonic::Status::from_error(Box::new(e)))
                })
            }
        }
    }
}
