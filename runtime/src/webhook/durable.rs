//! Durable webhooks: a delivery is written to the transactional outbox in the handler's own
//! transaction ([`enqueue`]) and sent by an outbox [`Relay`](crate::store::outbox::Relay) whose sink
//! is a [`WebhookSink`], on the long [`WEBHOOK_SCHEDULE`](crate::store::outbox::WEBHOOK_SCHEDULE).
//! A restart loses nothing (the row waits in the table), a receiver down for a day still gets
//! every message, and each attempt carries the same `webhook-id` with a fresh signature.
//!
//! The receiving side's counterpart is `record_in_postgres` / `record_in_sqlite` (with the
//! `postgres` / `sqlite` features): the
//! `webhook-id` is recorded in the handler's transaction, so the effect and the dedup record
//! commit together, as consumers' do.

use super::send::{trace_headers, Attempt};
use super::{Envelope, WebhookSender, ID_HEADER};
use crate::messaging::bus::{EventSink, Headers, PublishError, Published};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::store::idempotency::{check_table_name, StoreError};
use crate::store::outbox::{OutboxError, Row, Writer};
use crate::Webhook;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The outbox subject of webhook deliveries (a relay with a [`WebhookSink`] sends them).
pub const WEBHOOK_SUBJECT: &str = "pactum.webhooks";

/// The outbox row header holding the endpoint URL.
pub const URL_HEADER: &str = "pactum-webhook-url";

/// How long an endpoint may fail without a success before [`WebhookSink`] disables it.
pub const DISABLE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The outbox row that delivers `payload` to `url` under `id`. The envelope's timestamp is
/// now — when the payload was produced — not when an attempt goes out.
pub fn row<W: Webhook>(url: &str, id: &str, payload: &W) -> Result<Row, OutboxError> {
    let payload = serde_json::to_vec(&Envelope {
        kind: W::TYPE.to_string(),
        timestamp: chrono::Utc::now(),
        data: payload,
    })
    .map_err(|e| OutboxError(format!("cannot encode `{}`: {e}", W::NAME)))?;
    let mut headers: Headers = trace_headers().into_iter().collect();
    headers.insert(URL_HEADER.into(), url.to_string());
    headers.insert(ID_HEADER.into(), id.to_string());
    Ok(Row {
        subject: WEBHOOK_SUBJECT.to_string(),
        // Deliveries are independent: one failing endpoint must not hold up the others.
        ordering_key: None,
        msg_id: format!("webhook {id} {url}"),
        headers,
        payload,
    })
}

/// Writes a delivery of `payload` to `url` under `id` through `writer`, in the caller's
/// transaction: it is sent once that commits.
pub async fn enqueue<W: Webhook>(
    writer: &impl Writer,
    url: &str,
    id: &str,
    payload: &W,
) -> Result<(), OutboxError> {
    writer.write(row(url, id, payload)?).await
}

/// Sends outbox rows of [`WEBHOOK_SUBJECT`] as signed webhooks: the sink of a relay that
/// delivers webhooks.
///
/// A 2xx is delivered; 408, 429, 5xx and connection errors are retried on the relay's
/// schedule; 410 Gone disables the endpoint and any other 4xx parks the row (retrying will not
/// change it). An endpoint that has failed for [`DISABLE_AFTER`] without one success is
/// disabled, said in an error log, and its deliveries are parked with the reason until it is
/// enabled again ([`WebhookSender::enable`]).
pub struct WebhookSink {
    sender: WebhookSender,
    disable_after: Duration,
    /// Endpoint → when its current run of failures began.
    failing: Mutex<HashMap<String, Instant>>,
}

impl WebhookSink {
    /// Sends with `sender`'s secrets and timeout (its own retry policy is not used: the
    /// relay's schedule is).
    pub fn new(sender: WebhookSender) -> Self {
        Self {
            sender,
            disable_after: DISABLE_AFTER,
            failing: Mutex::default(),
        }
    }

    /// Disables an endpoint after it has failed for `after` without a success.
    pub fn disable_after(mut self, after: Duration) -> Self {
        self.disable_after = after;
        self
    }

    /// The sender (to see or change which endpoints are disabled).
    pub fn sender(&self) -> &WebhookSender {
        &self.sender
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EventSink for WebhookSink {
    async fn send(
        &self,
        _subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Published, PublishError> {
        let (Some(url), Some(id)) = (headers.get(URL_HEADER), headers.get(ID_HEADER)) else {
            return Err(PublishError::permanent(
                "not a webhook delivery: no endpoint or webhook-id",
            ));
        };
        if self.sender.is_disabled(url) {
            return Err(PublishError::permanent(format!(
                "endpoint {url} is disabled"
            )));
        }
        let trace: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| *k == "traceparent" || *k == "tracestate")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match self.sender.attempt(url, id, &payload, &trace).await {
            Attempt::Delivered => {
                self.failing().remove(url);
                Ok(Published {
                    sequence: 0,
                    duplicate: false,
                })
            }
            Attempt::Gone => Err(PublishError::permanent(format!(
                "endpoint {url} answered 410 Gone and is disabled"
            ))),
            Attempt::Rejected(status) => Err(PublishError::permanent(format!(
                "endpoint {url} rejected the delivery with {status}"
            ))),
            Attempt::Failed(why) => {
                let since = *self
                    .failing()
                    .entry(url.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() >= self.disable_after {
                    self.sender.disable(url);
                    tracing::error!(%url, failing_for = ?since.elapsed(), "webhook endpoint disabled: it has failed without a success for too long");
                    return Err(PublishError::permanent(format!(
                        "endpoint {url} disabled after failing for {:?}: {why}",
                        since.elapsed()
                    )));
                }
                Err(PublishError::transient(format!("endpoint {url}: {why}")))
            }
        }
    }
}

/// Creates the receiver's dedup table `table`, if missing.
#[cfg(feature = "postgres")]
pub async fn create_receipts(
    client: &tokio_postgres::Client,
    table: &str,
) -> Result<(), StoreError> {
    check_table_name(table)?;
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                id TEXT PRIMARY KEY,
                received_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )"
        ))
        .await
        .map_err(|e| StoreError(format!("cannot create `{table}`: {e}")))
}

/// Records `webhook-id` `id` in `table` inside the handler's transaction `tx`; false when it
/// was recorded before (a redelivery: skip the effect, answer 2xx). The record commits or
/// rolls back with the effect, so a crash before the commit leaves the redelivery to run
/// again and one after it is recognised. Concurrent copies wait on the key and then see it.
#[cfg(feature = "postgres")]
pub async fn record_in_postgres(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    id: &str,
) -> Result<bool, StoreError> {
    check_table_name(table)?;
    let n = tx
        .execute(
            &format!("INSERT INTO {table} (id) VALUES ($1) ON CONFLICT DO NOTHING"),
            &[&id],
        )
        .await
        .map_err(|e| StoreError(format!("cannot record webhook {id}: {e}")))?;
    Ok(n == 1)
}

/// `record_in_postgres` on SQLite (the table is created if missing).
#[cfg(feature = "sqlite")]
pub fn record_in_sqlite(
    conn: &rusqlite::Connection,
    table: &str,
    id: &str,
) -> Result<bool, StoreError> {
    check_table_name(table)?;
    let sqlite = |e: rusqlite::Error| StoreError(format!("cannot record webhook {id}: {e}"));
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            id TEXT PRIMARY KEY,
            received_at INTEGER NOT NULL DEFAULT (unixepoch())
        )"
    ))
    .map_err(sqlite)?;
    let n = conn
        .execute(
            &format!("INSERT OR IGNORE INTO {table} (id) VALUES (?1)"),
            [id],
        )
        .map_err(sqlite)?;
    Ok(n == 1)
}
