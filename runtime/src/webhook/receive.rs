//! The receiving side: an axum extractor that verifies the signature before the body is
//! parsed, and answers problem+json when it cannot.

use super::{Envelope, SignedDelivery, WebhookError, WebhookSecret, DEFAULT_TOLERANCE};
use crate::problem::{Problem, PROBLEM_JSON};
use crate::Webhook;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use std::time::{SystemTime, UNIX_EPOCH};

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
pub struct Refused(Problem);

impl Refused {
    /// The problem document sent back.
    pub fn problem(&self) -> &Problem {
        &self.0
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        Response::builder()
            .status(self.0.status)
            .header(http::header::CONTENT_TYPE, PROBLEM_JSON)
            .body(Body::from(self.0.to_json()))
            .unwrap_or_else(|_| Response::new(Body::empty()))
    }
}

fn unauthorized(e: WebhookError) -> Refused {
    Refused(Problem::new(401, "Unauthorized", e.to_string()))
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
        let delivery = SignedDelivery::from_headers(&headers).map_err(unauthorized)?;
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            Refused(Problem::new(
                e.status().as_u16(),
                "Unreadable body",
                e.body_text(),
            ))
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        secret
            .verify(&delivery, &body, now, DEFAULT_TOLERANCE)
            .map_err(unauthorized)?;
        let envelope: Envelope<W> = serde_json::from_slice(&body).map_err(|e| {
            Refused(Problem::new(
                400,
                "Bad Request",
                format!("body is not a `{}` webhook: {e}", W::TYPE),
            ))
        })?;
        if envelope.kind != W::TYPE {
            return Err(Refused(Problem::new(
                400,
                "Bad Request",
                format!(
                    "webhook type `{}` delivered where `{}` is expected",
                    envelope.kind,
                    W::TYPE
                ),
            )));
        }
        Ok(Self {
            id: delivery.id.to_string(),
            envelope,
        })
    }
}
