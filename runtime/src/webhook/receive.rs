//! The receiving side: an axum extractor that verifies the signature before the body is
//! parsed, and answers problem+json when it cannot.

use super::{Envelope, SignedDelivery, WebhookError, WebhookSecret, DEFAULT_TOLERANCE};
use crate::problem::{Problem, PROBLEM_JSON};
use crate::router::body_response;
use crate::store::idempotency::{admit, Admission, Held, IdempotencyStore, Lease, StoredReply};
use crate::Webhook;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a receiver remembers message ids by default: longer than any sender's retry
/// schedule, so every redelivery of a message is recognised.
pub const DEDUP_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);

/// A verified webhook delivery, extracted from a request.
///
/// The router's state must provide the [`WebhookSecret`] (`FromRef`). A missing or wrong
/// signature, or a timestamp outside [`DEFAULT_TOLERANCE`], is refused with 401; a body that
/// is not this payload type is refused with 400. Both are problem+json documents, and
/// nothing reaches the handler. Deduplicate on [`id`](Self::id): senders retry, and each
/// retry of a message carries its id.
#[derive(Debug, Clone)]
pub struct SignedWebhook<W> {
    /// The `webhook-id`.
    pub id: String,
    /// The verified envelope.
    pub envelope: Envelope<W>,
}

/// Why a request was not a valid delivery; answered as problem+json.
#[derive(Debug)]
pub struct Refused(Box<Problem>);

impl Refused {
    fn new(problem: Problem) -> Self {
        Self(Box::new(problem))
    }

    /// The problem document sent back.
    pub fn problem(&self) -> &Problem {
        &self.0
    }
}

impl<W: Webhook> SignedWebhook<W> {
    /// Runs `handler` at most once per message id, recorded in `store` for `retention`,
    /// under the same claim protocol as keyed operations (see [`crate::store::idempotency`]).
    ///
    /// - First delivery: the handler runs to the end in a task of its own (a sender that
    ///   hangs up does not cancel it). Success is remembered and answered 204. A problem
    ///   below 500 is remembered and answered as is (the sender will not retry it); a 5xx
    ///   forgets the id, so the sender's retry runs the handler again — unless the handler
    ///   recorded its outcome in its own transaction ([`crate::Context::claim`]).
    /// - A redelivery of a finished message gets the remembered answer; the handler is not
    ///   called.
    /// - A redelivery while the first still holds its lease, or a store that cannot be
    ///   reached, gets 503 with `Retry-After`, so the sender tries again later rather than
    ///   giving up. A holder that died frees the id when its lease (`lease`) ends.
    pub async fn handle_once<F, Fut>(
        self,
        store: &Arc<dyn IdempotencyStore>,
        retention: Duration,
        lease: Duration,
        handler: F,
    ) -> Response
    where
        F: FnOnce(Envelope<W>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Problem>> + Send + 'static,
    {
        let scope = format!("webhook:{}", W::TYPE);
        // The id alone is the key: a message resent after a crash carries its id but may be
        // re-enveloped, so its bytes need not match.
        let held = Held {
            lease,
            max_hold: Lease::default().max_hold,
        };
        let claim = match admit(store, scope.clone(), self.id.clone(), b"", held, retention).await {
            Admission::Run(claim) => claim,
            Admission::Replay(reply) => return replay(reply),
            Admission::Busy { retry_after } => {
                return busy(
                    "this message is being handled by another delivery",
                    retry_after,
                )
            }
            // Every delivery of an id has the same (empty) fingerprint.
            Admission::Mismatch => {
                return busy("this message id is in use", Duration::from_secs(1))
            }
            Admission::Unavailable(e) => {
                // The store's error stays in the log: it may name hosts and settings.
                tracing::error!(error = %e, "webhook deduplication store unavailable");
                return busy("deduplication store unavailable", Duration::from_secs(1));
            }
        };
        claim.set_encoder::<()>(|()| handled());
        let ctx = crate::Context::current()
            .with_key_basis(format!("{scope}/{}", self.id))
            .with_claim(claim.clone());
        let envelope = self.envelope;
        let work = ctx.scope(async move {
            match handler(envelope).await {
                Ok(()) => handled(),
                Err(problem) => StoredReply {
                    status: problem.status,
                    content_type: Some(PROBLEM_JSON.to_string()),
                    body: problem.to_json(),
                },
            }
        });
        let reply = claim
            .run(
                work,
                |r| crate::store::idempotency::is_final_http(r.status),
                |message| {
                    tracing::error!(%message, "webhook handler failed");
                    StoredReply {
                        status: 500,
                        content_type: Some(PROBLEM_JSON.to_string()),
                        body: Problem::new(500, "Internal Server Error", "the receiver failed")
                            .to_json(),
                    }
                },
            )
            .await;
        replay(reply)
    }
}

/// The answer to a handled delivery.
fn handled() -> StoredReply {
    StoredReply {
        status: 204,
        content_type: None,
        body: Vec::new(),
    }
}

fn replay(reply: StoredReply) -> Response {
    body_response(reply.status, reply.content_type.as_deref(), reply.body)
}

fn busy(detail: &str, retry_after: Duration) -> Response {
    let mut response =
        Refused::new(Problem::new(503, "Service Unavailable", detail)).into_response();
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(secs.max(1)),
    );
    response
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        body_response(self.0.status, Some(PROBLEM_JSON), self.0.to_json())
    }
}

fn unauthorized(e: WebhookError) -> Refused {
    Refused::new(Problem::new(401, "Unauthorized", e.to_string()))
}

impl<S, W> FromRequest<S> for SignedWebhook<W>
where
    S: Send + Sync,
    W: Webhook,
    WebhookSecret: FromRef<S>,
{
    type Rejection = Refused;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let secret = WebhookSecret::from_ref(state);
        let headers = req.headers().clone();
        let body = read_body(req, state).await?;
        let id = verify(
            std::slice::from_ref(&secret),
            &headers,
            &body,
            DEFAULT_TOLERANCE,
        )?;
        Ok(Self {
            id,
            envelope: decode::<W>(&body)?,
        })
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Refused> {
    Bytes::from_request(req, state).await.map_err(|e| {
        Refused::new(Problem::new(
            e.status().as_u16(),
            "Unreadable body",
            e.body_text(),
        ))
    })
}

/// Checks the signature headers against any of `secrets`; returns the `webhook-id`.
fn verify(
    secrets: &[WebhookSecret],
    headers: &http::HeaderMap,
    body: &[u8],
    tolerance: Duration,
) -> Result<String, Refused> {
    let delivery = SignedDelivery::from_headers(headers).map_err(unauthorized)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut outcome = Err(WebhookError::BadSignature);
    for secret in secrets {
        outcome = secret.verify(&delivery, body, now, tolerance);
        // A timestamp outside the tolerance fails the same way under every key.
        if !matches!(outcome, Err(WebhookError::BadSignature)) {
            break;
        }
    }
    outcome.map_err(unauthorized)?;
    // The id is the deduplication key: bounded like an idempotency key, so a hostile id can
    // neither overflow the store's index nor reach logs unescaped.
    if crate::wire::accept_request_id(delivery.id).is_none() {
        return Err(Refused::new(Problem::new(
            400,
            "Bad Request",
            "webhook-id must be 1-255 visible ASCII characters",
        )));
    }
    Ok(delivery.id.to_string())
}

fn decode<W: Webhook>(body: &[u8]) -> Result<Envelope<W>, Refused> {
    let envelope: Envelope<W> = serde_json::from_slice(body).map_err(|e| {
        Refused::new(Problem::new(
            400,
            "Bad Request",
            format!("body is not a `{}` webhook: {e}", W::TYPE),
        ))
    })?;
    if envelope.kind != W::TYPE {
        return Err(Refused::new(Problem::new(
            400,
            "Bad Request",
            format!(
                "webhook type `{}` delivered where `{}` is expected",
                envelope.kind,
                W::TYPE
            ),
        )));
    }
    Ok(envelope)
}

/// The receiving end of one webhook endpoint that may carry several payload types: the
/// secrets a delivery may be signed with (several during a key rotation) and the store that
/// remembers delivered ids. Generated `webhooks::receiver` functions are built on it.
#[derive(Clone)]
pub struct Inbox {
    secrets: Arc<[WebhookSecret]>,
    store: Arc<dyn IdempotencyStore>,
    retention: Duration,
    lease: Duration,
    tolerance: Duration,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("secrets", &self.secrets.len())
            .field("retention", &self.retention)
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

/// A delivery whose signature checked out; its payload type is known, its body not yet
/// decoded.
#[derive(Debug)]
pub struct Verified {
    id: String,
    kind: String,
    body: Bytes,
    /// The sender's trace, when it sent one.
    ctx: crate::Context,
}

impl Inbox {
    /// Accepts deliveries signed with any of `secrets`, remembering ids in `store` for
    /// [`DEDUP_RETENTION`] and allowing [`DEFAULT_TOLERANCE`] of clock skew.
    pub fn new(
        secrets: impl IntoIterator<Item = WebhookSecret>,
        store: Arc<dyn IdempotencyStore>,
    ) -> Self {
        Self {
            secrets: secrets.into_iter().collect(),
            store,
            retention: DEDUP_RETENTION,
            lease: Lease::default().without_deadline,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// How long delivered ids are remembered; keep it longer than the sender's retry schedule.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long a delivery's claim on its id is leased (renewed while its handler runs; a
    /// receiver that dies frees the id when it ends). Default 30 s.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How far a delivery's timestamp may be from the receiver's clock.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies the signature and reads the payload type. Refusals are 401 (signature,
    /// timestamp) or 400 (a body without a `type`).
    pub fn verify(&self, headers: &http::HeaderMap, body: Bytes) -> Result<Verified, Refused> {
        if self.secrets.is_empty() {
            return Err(unauthorized(WebhookError::BadSignature));
        }
        let id = verify(&self.secrets, headers, &body, self.tolerance)?;
        #[derive(serde::Deserialize)]
        struct Kind {
            #[serde(rename = "type")]
            kind: String,
        }
        let kind = serde_json::from_slice::<Kind>(&body)
            .map_err(|e| {
                Refused::new(Problem::new(
                    400,
                    "Bad Request",
                    format!("body is not a webhook envelope: {e}"),
                ))
            })?
            .kind;
        Ok(Verified {
            id,
            kind,
            body,
            ctx: crate::Context::from_headers(headers),
        })
    }

    /// Reads and verifies a request; the first step of a receiver's axum handler.
    pub async fn accept(&self, req: Request) -> Result<Verified, Refused> {
        let headers = req.headers().clone();
        let body = read_body(req, &()).await?;
        self.verify(&headers, body)
    }
}

impl Verified {
    /// The `webhook-id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The envelope's `type`, e.g. `shipping.order_shipped`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Decodes the payload as `W` and runs `handler` at most once per id, as
    /// [`SignedWebhook::handle_once`] does; a body that is not a `W` is answered 400.
    pub async fn handle<W, F, Fut>(self, inbox: &Inbox, handler: F) -> Response
    where
        W: Webhook,
        F: FnOnce(Envelope<W>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Problem>> + Send + 'static,
    {
        let envelope = match decode::<W>(&self.body) {
            Ok(envelope) => envelope,
            Err(refused) => return refused.into_response(),
        };
        let span = tracing::info_span!(
            "pactum.webhook",
            otel.name = %format!("webhook {}", W::NAME),
            webhook.id = %self.id,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let ctx = crate::trace::enter(&span, self.ctx);
        let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let signed = SignedWebhook {
            id: self.id,
            envelope,
        };
        let flag = Arc::clone(&called);
        let response = tracing::Instrument::instrument(
            ctx.scope(signed.handle_once(
                &inbox.store,
                inbox.retention,
                inbox.lease,
                move |envelope| {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    handler(envelope)
                },
            )),
            span.clone(),
        )
        .await;
        let called = called.load(std::sync::atomic::Ordering::Relaxed);
        let outcome = match (called, response.status().is_success()) {
            (false, true) => "skipped",
            (_, true) => "ok",
            _ => "error",
        };
        span.record("outcome", outcome);
        response
    }

    /// The answer for a payload type this receiver does not know: 400, so the sender stops
    /// retrying and reports the delivery as rejected rather than it being dropped silently.
    pub fn unknown(self, expected: &[&str]) -> Response {
        Refused::new(Problem::new(
            400,
            "Bad Request",
            format!(
                "this endpoint does not receive `{}` webhooks; it receives: {}",
                self.kind,
                expected.join(", ")
            ),
        ))
        .into_response()
    }
}
