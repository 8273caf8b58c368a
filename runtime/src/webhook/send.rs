//! Delivering signed webhooks: one message id for every attempt, a fresh signature and
//! timestamp per attempt, and backoff with jitter between attempts.

use super::{Envelope, WebhookSecret, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::contract::RetryPolicy;
use crate::Webhook;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Signs and posts webhook payloads to subscriber URLs.
///
/// A receiver answering 410 Gone has unsubscribed: its URL is disabled, and later sends to it
/// fail at once with [`SendError::Disabled`] until [`enable`](Self::enable) is called. Clones
/// share the set of disabled endpoints.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    /// Every delivery carries one `v1,` signature per secret, so receivers holding either the
    /// old or the new key accept it during a rotation.
    secrets: Vec<WebhookSecret>,
    policy: RetryPolicy,
    timeout: Duration,
    disabled: Arc<Mutex<HashSet<String>>>,
}

/// A delivery the receiver accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The `webhook-id` sent: receivers deduplicate on it.
    pub id: String,
    /// How many attempts it took (1 when the first was accepted).
    pub attempts: u32,
}

/// A delivery that did not succeed.
#[derive(Debug)]
pub enum SendError {
    /// The receiver answered a status that retrying will not change (4xx other than 408, 410
    /// and 429).
    Rejected {
        /// The `webhook-id` sent.
        id: String,
        /// The receiver's status.
        status: u16,
    },
    /// Every attempt failed transiently (connection error, timeout, 408, 429 or 5xx).
    Exhausted {
        /// The `webhook-id` sent.
        id: String,
        /// Attempts made.
        attempts: u32,
        /// What the last attempt ran into.
        last: String,
    },
    /// The endpoint answered 410 Gone, now or earlier; nothing was sent this time unless it
    /// was this attempt that got the 410.
    Disabled {
        /// The disabled URL.
        url: String,
    },
    /// The payload could not be serialized.
    Encode(serde_json::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { id, status } => write!(f, "webhook {id} rejected with {status}"),
            Self::Exhausted { id, attempts, last } => {
                write!(
                    f,
                    "webhook {id} not delivered after {attempts} attempts: {last}"
                )
            }
            Self::Disabled { url } => write!(f, "webhook endpoint {url} is disabled (410 Gone)"),
            Self::Encode(e) => write!(f, "webhook payload does not serialize: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

impl WebhookSender {
    /// A sender with five attempts, backoff from 1 s up to 60 s with full jitter, and a 10 s
    /// timeout per attempt.
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            http: reqwest::Client::new(),
            secrets: vec![secret],
            policy: RetryPolicy {
                attempts: 5,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                full_jitter: true,
            },
            timeout: Duration::from_secs(10),
            disabled: Arc::default(),
        }
    }

    /// True once `url` has answered 410 Gone.
    pub fn is_disabled(&self, url: &str) -> bool {
        self.disabled_set().contains(url)
    }

    /// Re-enables `url` (the subscriber registered again).
    pub fn enable(&self, url: &str) {
        self.disabled_set().remove(url);
    }

    fn disabled_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays consistent whatever a panicking holder was doing: inserts and
        // removes are single operations.
        self.disabled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Also signs with `secret`: for a key rotation, sign with old and new until every
    /// receiver has the new key, then drop the old one.
    pub fn also_sign_with(mut self, secret: WebhookSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Replaces the retry schedule.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn signatures(&self, id: &str, now: i64, body: &[u8]) -> String {
        let all: Vec<String> = self.secrets.iter().map(|s| s.sign(id, now, body)).collect();
        all.join(" ")
    }

    /// Replaces the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Delivers `payload` to `url` under a fresh message id.
    pub async fn send<W: Webhook>(&self, url: &str, payload: &W) -> Result<Delivered, SendError> {
        let id = format!("msg_{}", crate::random_id().replace('-', ""));
        self.send_with_id(url, &id, payload).await
    }

    /// Delivers `payload` under `id`. Resending a message (say, from an outbox after a crash)
    /// with its original id lets the receiver recognise it as a duplicate.
    pub async fn send_with_id<W: Webhook>(
        &self,
        url: &str,
        id: &str,
        payload: &W,
    ) -> Result<Delivered, SendError> {
        if self.is_disabled(url) {
            return Err(SendError::Disabled {
                url: url.to_string(),
            });
        }
        let body = serde_json::to_vec(&Envelope {
            kind: W::TYPE.to_string(),
            timestamp: chrono::Utc::now(),
            data: payload,
        })
        .map_err(SendError::Encode)?;
        let trace = trace_headers();
        let attempts = self.policy.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                let pause = self.policy.backoff(attempt - 1, fastrand::f64());
                tokio::time::sleep(pause).await;
            }
            match self.attempt(url, id, &body, &trace).await {
                Attempt::Delivered => {
                    return Ok(Delivered {
                        id: id.to_string(),
                        attempts: attempt,
                    })
                }
                Attempt::Gone => {
                    return Err(SendError::Disabled {
                        url: url.to_string(),
                    })
                }
                Attempt::Rejected(status) => {
                    return Err(SendError::Rejected {
                        id: id.to_string(),
                        status,
                    })
                }
                Attempt::Failed(why) => last = why,
            }
        }
        Err(SendError::Exhausted {
            id: id.to_string(),
            attempts,
            last,
        })
    }

    /// Disables `url`, as a 410 Gone would: sends to it fail at once until
    /// [`enable`](Self::enable).
    pub fn disable(&self, url: &str) {
        self.disabled_set().insert(url.to_string());
    }

    /// One signed POST of `body` (an encoded [`Envelope`]) under `id`, with a fresh
    /// timestamp and signature: what every retry schedule is made of.
    pub async fn attempt(
        &self,
        url: &str,
        id: &str,
        body: &[u8],
        trace: &[(String, String)],
    ) -> Attempt {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut request = self.http.post(url);
        // The receiver's handler joins the sender's trace (an extra header; verifiers that do
        // not know it ignore it, and it is not part of what is signed).
        for (name, value) in trace {
            request = request.header(name.as_str(), value.as_str());
        }
        let sent = request
            .timeout(self.timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, id)
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, self.signatures(id, now, body))
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(reply) if reply.status().is_success() => Attempt::Delivered,
            Ok(reply) => match reply.status().as_u16() {
                410 => {
                    self.disable(url);
                    Attempt::Gone
                }
                status @ (408 | 429 | 500..) => Attempt::Failed(format!("status {status}")),
                status => Attempt::Rejected(status),
            },
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx: delivered.
    Delivered,
    /// 410 Gone: the endpoint unsubscribed and is now disabled.
    Gone,
    /// A status retrying will not change (4xx other than 408, 410 and 429).
    Rejected(u16),
    /// A connection error, a timeout, 408, 429 or 5xx: worth trying again later.
    Failed(String),
}

/// `traceparent`/`tracestate` of the current context, if it carries a trace.
pub(crate) fn trace_headers() -> Vec<(String, String)> {
    let ctx = crate::Context::current();
    if !ctx.span_context().is_valid() {
        return Vec::new();
    }
    let mut all = std::collections::BTreeMap::new();
    ctx.inject_headers(&mut all, crate::Transport::Http);
    all.into_iter()
        .filter(|(name, _)| name == "traceparent" || name == "tracestate")
        .collect()
}
