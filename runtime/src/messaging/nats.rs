//! NATS JetStream as the transport: the same envelope, groups and settling as the embedded
//! [`bus`](crate::messaging::bus), on a real server.
//!
//! A contract's delivery mode maps onto JetStream like this: `queue` is a work-queue stream
//! with one durable consumer its workers share; `pubsub` and `stream` are limits streams
//! with one durable consumer per group, starting where [`StartAt`] says. Publishing sets
//! `Nats-Msg-Id`, so a producer's retry inside the stream's duplicate window is stored once.

use crate::messaging::bus::{event_message, EventSink, Headers, PublishError, Published, StartAt};
use crate::messaging::consumer::{dead_letter_message, Inbound};
use crate::{Context, DeliveryMode as Mode, Event};
use async_nats::jetstream::{self, consumer, stream, AckKind};
use futures_util::StreamExt;
use std::time::Duration;

/// A transport failure, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsError(pub String);

impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NatsError {}

fn err(doing: &str) -> impl FnOnce(&dyn std::fmt::Display) -> NatsError + '_ {
    move |e| NatsError(format!("{doing}: {e}"))
}

/// The limits a stream is created with, so no stream grows without bound. When one is
/// reached JetStream discards the oldest messages (a work queue's are removed once
/// acknowledged anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Messages older than this are discarded. Default: 7 days — longer than any consumer
    /// outage worth surviving, and the horizon consumers' dedup records must outlive.
    pub max_age: Duration,
    /// Bytes the stream may hold. Default: 1 GiB.
    pub max_bytes: u64,
    /// Messages the stream may hold. Default: 10 million.
    pub max_messages: u64,
    /// How long dead letters are kept. Default: 30 days, time for someone to look.
    pub dead_letter_max_age: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            max_messages: 10_000_000,
            dead_letter_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A JetStream connection.
#[derive(Clone)]
pub struct Nats {
    js: jetstream::Context,
}

impl Nats {
    /// Connects to `url` (`nats://127.0.0.1:4222`).
    pub async fn connect(url: &str) -> Result<Self, NatsError> {
        let client = async_nats::connect(url)
            .await
            .map_err(|e| err("cannot connect to NATS")(&format!("{url}: {e}")))?;
        Ok(Self {
            js: jetstream::new(client),
        })
    }

    /// Whether the connection to the server is up now, for a readiness probe. The client
    /// reconnects by itself, so `false` is an outage in progress (publishing waits or fails
    /// until it ends), not a dead client.
    pub fn is_connected(&self) -> bool {
        self.js.client().connection_state() == async_nats::connection::State::Connected
    }

    /// Creates (or finds) stream `name` holding `subject` and its dead letters
    /// (`<subject>.dlq`), with the retention `mode` needs, a duplicate window for
    /// `Nats-Msg-Id` and the default [`StreamLimits`].
    pub async fn ensure_stream(
        &self,
        name: &str,
        subject: &str,
        mode: Mode,
        duplicate_window: Duration,
    ) -> Result<(), NatsError> {
        self.ensure_stream_with(
            name,
            subject,
            mode,
            duplicate_window,
            StreamLimits::default(),
        )
        .await
    }

    /// [`ensure_stream`](Self::ensure_stream) with explicit `limits`. A stream that exists is
    /// left as it is (its limits are an operator's to change).
    pub async fn ensure_stream_with(
        &self,
        name: &str,
        subject: &str,
        mode: Mode,
        duplicate_window: Duration,
        limits: StreamLimits,
    ) -> Result<(), NatsError> {
        let retention = match mode {
            Mode::Queue => stream::RetentionPolicy::WorkQueue,
            Mode::Pubsub | Mode::Stream => stream::RetentionPolicy::Limits,
        };
        let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
        self.js
            .get_or_create_stream(stream::Config {
                name: name.to_string(),
                subjects: vec![subject.to_string()],
                retention,
                duplicate_window,
                max_age: limits.max_age,
                max_bytes: bytes(limits.max_bytes),
                max_messages: bytes(limits.max_messages),
                ..Default::default()
            })
            .await
            .map_err(|e| err("cannot create stream")(&e))?;
        // Dead letters are kept in a limits stream of their own: a work-queue stream would
        // refuse a second subject's consumer, and ops must be able to read them at leisure —
        // for longer than the events themselves.
        self.js
            .get_or_create_stream(stream::Config {
                name: format!("{name}_DLQ"),
                subjects: vec![format!("{subject}.dlq")],
                max_age: limits.dead_letter_max_age,
                max_bytes: bytes(limits.max_bytes),
                ..Default::default()
            })
            .await
            .map_err(|e| err("cannot create dead-letter stream")(&e))?;
        Ok(())
    }

    /// Publishes raw headers and body, waiting for the server's acknowledgement.
    pub async fn publish(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Vec<u8>,
    ) -> Result<Published, NatsError> {
        self.start_publish(subject, headers, payload)
            .await
            .map_err(|e| NatsError(e.message))?
            .await
            .map_err(|e| NatsError(e.message))
    }

    /// Sends a publish and returns the wait for its acknowledgement, so several can be in
    /// flight on the connection at once.
    async fn start_publish(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Vec<u8>,
    ) -> Result<impl std::future::Future<Output = Result<Published, PublishError>>, PublishError>
    {
        let map = header_map(headers);
        let ack = self
            .js
            .publish_with_headers(subject.to_string(), map, payload.into())
            .await
            .map_err(publish_error("publish failed"))?;
        Ok(async move {
            let ack = ack
                .await
                .map_err(publish_error("publish not acknowledged"))?;
            Ok(Published {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
        })
    }
}

/// A JetStream publish failure, marked permanent when sending the same message again cannot
/// help: no stream holds the subject, or the message is over the server's size limit.
fn publish_error(
    doing: &'static str,
) -> impl Fn(async_nats::jetstream::context::PublishError) -> PublishError {
    use async_nats::jetstream::context::PublishErrorKind as Kind;
    move |e| {
        let message = format!("{doing}: {e}");
        match e.kind() {
            Kind::StreamNotFound | Kind::MaxPayloadExceeded => PublishError::permanent(message),
            _ => PublishError::transient(message),
        }
    }
}

/// The NATS form of `headers`. The client asserts on CR, LF and bad names, which would panic
/// the task: a header that cannot be carried is dropped (and said), a value is cleaned.
fn header_map(headers: &Headers) -> async_nats::HeaderMap {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        if !crate::wire::valid_header_name(name) {
            tracing::warn!(header = %name.escape_debug(), "header name not valid for NATS; dropped");
            continue;
        }
        map.insert(name.as_str(), &*crate::wire::sanitize_header_value(value));
    }
    map
}

impl Nats {
    /// Publishes `event` with the CloudEvents envelope of [`crate::messaging::bus::publish_event`].
    pub async fn publish_event<E: Event>(
        &self,
        ctx: &Context,
        id: &str,
        event: &E,
    ) -> Result<Published, NatsError> {
        let (h, payload) = event_message(ctx, id, event).map_err(|e| err("encode")(&e))?;
        self.publish(E::SUBJECT, &h, payload).await
    }

    /// Joins durable consumer group `group` on `stream`, reading `subject` from `start`
    /// (ignored when the group exists). Unacknowledged messages come back after `ack_wait`.
    ///
    /// Each worker holds one message at a time: a worker that prefetched a batch would hoard a
    /// queue's messages (and run down their ack wait) while its peers sit idle. A group with
    /// one busy worker can prefetch instead, with [`join_prefetching`](Self::join_prefetching).
    pub async fn join(
        &self,
        stream: &str,
        subject: &str,
        group: &str,
        start: StartAt,
        ack_wait: Duration,
    ) -> Result<Group, NatsError> {
        self.join_prefetching(stream, subject, group, start, ack_wait, 1)
            .await
    }

    /// [`join`](Self::join), pulling up to `prefetch` messages per request. Messages wait in
    /// the worker while their ack wait runs, so keep `prefetch` × handling time well under
    /// `ack_wait`.
    pub async fn join_prefetching(
        &self,
        stream: &str,
        subject: &str,
        group: &str,
        start: StartAt,
        ack_wait: Duration,
        prefetch: usize,
    ) -> Result<Group, NatsError> {
        let deliver_policy = match start {
            StartAt::First => consumer::DeliverPolicy::All,
            StartAt::New => consumer::DeliverPolicy::New,
            StartAt::Sequence(start_sequence) => {
                consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
            StartAt::Time(t) => consumer::DeliverPolicy::ByStartTime {
                start_time: chrono::DateTime::<chrono::Utc>::from(t),
            },
        };
        let mut stream = self
            .js
            .get_stream(stream)
            .await
            .map_err(|e| err("no such stream")(&e))?;
        // A work queue keeps only unconsumed messages and JetStream accepts no other start
        // there: every start point means "what is waiting".
        let work_queue = stream
            .info()
            .await
            .map(|i| i.config.retention == stream::RetentionPolicy::WorkQueue)
            .unwrap_or(false);
        let deliver_policy = if work_queue {
            consumer::DeliverPolicy::All
        } else {
            deliver_policy
        };
        let consumer = stream
            .get_or_create_consumer(
                group,
                consumer::pull::Config {
                    durable_name: Some(group.to_string()),
                    filter_subject: subject.to_string(),
                    deliver_policy,
                    ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| err("cannot create consumer")(&e))?;
        let prefetch = prefetch.max(1);
        let messages = pull(&consumer, prefetch)
            .await
            .map_err(|e| err("cannot pull")(&e))?;
        Ok(Group {
            nats: self.clone(),
            consumer,
            prefetch,
            messages: Some(messages),
        })
    }
}

impl EventSink for Nats {
    async fn send(
        &self,
        subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Published, PublishError> {
        self.start_publish(subject, &headers, payload).await?.await
    }

    async fn send_all(
        &self,
        messages: Vec<(String, Headers, Vec<u8>)>,
    ) -> Vec<Result<Published, PublishError>> {
        // Every publish is sent before any acknowledgement is awaited: one round trip for the
        // lot. JetStream keeps the order of one connection's publishes.
        let mut pending = Vec::with_capacity(messages.len());
        for (subject, headers, payload) in messages {
            pending.push(self.start_publish(&subject, &headers, payload).await);
        }
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            results.push(match p {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            });
        }
        results
    }
}

async fn pull(
    consumer: &consumer::PullConsumer,
    prefetch: usize,
) -> Result<consumer::pull::Stream, consumer::StreamError> {
    consumer
        .stream()
        .max_messages_per_batch(prefetch)
        // The server sends an idle heartbeat this often; two missed ones are reported as an
        // error, which `Group::next` pulls past. Without it a pull on a silently dead server
        // would go unnoticed until the request expires.
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
}

/// How often the server signals an idle pull subscription is alive.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

/// One worker's pull subscription to a consumer group.
pub struct Group {
    nats: Nats,
    consumer: consumer::PullConsumer,
    prefetch: usize,
    /// The pull subscription; `None` once [`Group::release`] has closed it (the next `next`
    /// opens another).
    messages: Option<consumer::pull::Stream>,
}

/// The longest pause between two attempts to pull again after an error.
const MAX_PULL_PAUSE: Duration = Duration::from_secs(2);

impl Group {
    /// The next delivery, waiting for one. Transport trouble does not end the subscription:
    /// a pull error (a missed heartbeat while the server restarts, a leader election) is
    /// logged and pulled past, and a subscription that closed is opened again, with backoff
    /// up to 2 s between attempts, until a message arrives.
    pub async fn next(&mut self) -> Result<NatsDelivery, NatsError> {
        let mut pause = Duration::from_millis(50);
        loop {
            let received = match self.messages.as_mut() {
                Some(messages) => messages.next().await,
                None => None,
            };
            match received {
                Some(Ok(message)) => return Ok(self.delivery(message)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pull failed; pulling again");
                }
                None => match pull(&self.consumer, self.prefetch).await {
                    Ok(messages) => {
                        tracing::info!("pull subscription reopened");
                        self.messages = Some(messages);
                        continue;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot reopen the pull subscription"),
                },
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PULL_PAUSE);
        }
    }

    /// Waits for one delivery, then adds those already received, up to `max`: a batch for
    /// `process_batch` that never waits for a second message.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<NatsDelivery>, NatsError> {
        let mut batch = vec![self.next().await?];
        while batch.len() < max {
            let Some(messages) = self.messages.as_mut() else {
                break;
            };
            match futures_util::FutureExt::now_or_never(messages.next()) {
                Some(Some(Ok(message))) => batch.push(self.delivery(message)),
                Some(Some(Err(e))) => {
                    // The batch so far is good; the stream recovers or the next `next` fails.
                    tracing::warn!(error = %e, "pull failed while filling a batch");
                    break;
                }
                // Nothing more received yet, or the subscription closed.
                Some(None) | None => break,
            }
        }
        Ok(batch)
    }

    /// For a worker that is stopping: closes the pull subscription, then naks, with no delay,
    /// the messages it had received but [`next`](Self::next) had not returned, so another
    /// worker takes them now instead of after their ack wait.
    ///
    /// Only a group joined with `prefetch` above 1 holds such messages: with 1 (the default)
    /// nothing is pulled while a handler runs, and the subscription is closed without polling
    /// it again (a poll would ask the server for one more). Messages still on their way under
    /// a pull request when the subscription closes cannot be handed back: they reach another
    /// worker after their ack wait, as after a crash.
    pub async fn release(&mut self) {
        let Some(mut messages) = self.messages.take() else {
            return;
        };
        let mut held = Vec::new();
        if self.prefetch > 1 {
            // At most a batch is buffered; errors in the stream are skipped, not a stop.
            for _ in 0..self.prefetch * 2 {
                match futures_util::FutureExt::now_or_never(messages.next()) {
                    Some(Some(Ok(message))) => held.push(message),
                    Some(Some(Err(_))) => continue,
                    Some(None) | None => break,
                }
            }
        }
        // Unsubscribe before the naks, or the server could hand them straight back here.
        drop(messages);
        if let Err(e) = self.nats.js.client().flush().await {
            tracing::warn!(error = %e, "cannot flush before handing messages back");
        }
        for message in &held {
            if let Err(e) = message.ack_with(jetstream::AckKind::Nak(None)).await {
                tracing::warn!(error = %e, "cannot hand a prefetched message back");
            }
        }
        if !held.is_empty() {
            tracing::info!(released = held.len(), "prefetched messages handed back");
        }
    }

    fn delivery(&self, message: jetstream::Message) -> NatsDelivery {
        let delivered = message
            .info()
            .map(|i| i.delivered.max(1) as u32)
            .unwrap_or(1);
        let headers = message
            .headers
            .iter()
            .flat_map(|map| map.iter())
            .filter_map(|(name, values)| {
                let value = values.first()?;
                Some((name.to_string(), value.as_str().to_string()))
            })
            .collect();
        NatsDelivery {
            nats: self.nats.clone(),
            headers,
            delivered,
            message,
        }
    }
}

/// A message delivered by JetStream.
pub struct NatsDelivery {
    nats: Nats,
    headers: Headers,
    delivered: u32,
    message: jetstream::Message,
}

impl NatsDelivery {
    /// Its stream sequence number.
    pub fn sequence(&self) -> u64 {
        self.message.info().map_or(0, |i| i.stream_sequence)
    }
}

impl Inbound for NatsDelivery {
    fn subject(&self) -> &str {
        self.message.subject.as_str()
    }
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn payload(&self) -> &[u8] {
        &self.message.payload
    }
    fn delivered(&self) -> u32 {
        self.delivered
    }
    fn pending(&self) -> Option<u64> {
        self.message.info().ok().map(|i| i.pending)
    }
    async fn ack(self) {
        // Fire and forget rather than waiting for the server to confirm (a round trip per
        // message): a lost ack is a redelivery, which the dedup record absorbs.
        let _ = self.message.ack().await;
    }
    async fn nak(self, delay: Duration) {
        let _ = self.message.ack_with(AckKind::Nak(Some(delay))).await;
    }
    async fn progress(&self) {
        let _ = self.message.ack_with(AckKind::Progress).await;
    }
    async fn dead_letter(self, reason: &str) {
        let (subject, h) = dead_letter_message(&self, reason);
        match self
            .nats
            .publish(&subject, &h, self.payload().to_vec())
            .await
        {
            Ok(_) => {
                let _ = self.message.ack_with(AckKind::Term).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "dead letter not stored; leaving the message for redelivery");
                let _ = self
                    .message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
            }
        }
    }
}
