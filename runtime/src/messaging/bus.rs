//! The embedded message bus: streams, consumer groups and acknowledgements in process, with
//! the semantics a broker gives (so tests, the example system and single-binary deployments
//! behave as they would on one).
//!
//! - Every subject is a stream; messages get sequence numbers from 1, never reused. A stream
//!   keeps at most 100,000 messages, 64 MiB and 24 hours by default ([`StreamSettings`]; the
//!   oldest go first), and a work queue ([`Retention::WorkQueue`]) deletes a message once a
//!   worker settles it, so the bus's memory is bounded.
//! - A publish carrying a message id already seen on the subject (within the dedup window) is
//!   stored once, like JetStream's `Nats-Msg-Id`.
//! - Consumer groups are durable cursors. Workers that join one group share its messages
//!   (queue); separate groups each get every message (pub/sub); a group may start at the
//!   first message, a sequence or a time (replay).
//! - A delivered message is pending until acknowledged. One not acknowledged within the
//!   group's ack wait — its worker crashed — is delivered again, as is one negatively
//!   acknowledged (after the delay it asks for). Nothing is lost by a crash before the ack.
//!
//! Events go through [`publish_event`], which writes the CloudEvents attributes and the
//! trace context as headers (see [`headers`]).

use crate::context::{Context, Transport};
use crate::{wire, Event, EventDeadline};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// Header names of the message envelope.
pub mod headers {
    /// CloudEvents `id`: with `source`, the dedup key.
    pub const ID: &str = "ce-id";
    /// CloudEvents `source`: the publishing service.
    pub const SOURCE: &str = "ce-source";
    /// CloudEvents `type`: `<source>.<Name>.v<version>`.
    pub const TYPE: &str = "ce-type";
    /// CloudEvents `specversion`, always `1.0`.
    pub const SPECVERSION: &str = "ce-specversion";
    /// CloudEvents `time` (RFC 3339).
    pub const TIME: &str = "ce-time";
    /// CloudEvents `subject`: the ordering key, when the event has one.
    pub const SUBJECT: &str = "ce-subject";
    /// CloudEvents `datacontenttype`.
    pub const CONTENT_TYPE: &str = "content-type";
    /// The broker-level dedup id (JetStream's header name), `<source>/<id>`.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// Absolute deadline in Unix milliseconds: a queued message's budget keeps running while
    /// it waits, so a relative timeout would be wrong by the time it is read.
    pub const DEADLINE: &str = "pactum-deadline";
}

/// Message headers, by name.
pub type Headers = BTreeMap<String, String>;

/// Where a new consumer group starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The first message still stored.
    First,
    /// Only messages published after the group is created.
    New,
    /// The message with this sequence number, and everything after.
    Sequence(u64),
    /// The first message published at or after this time.
    Time(SystemTime),
}

/// Tuning for the bus.
#[derive(Clone, Copy, Debug)]
pub struct BusConfig {
    /// How long a message id is remembered for deduplicating publishes.
    pub dedup_window: Duration,
    /// How long a delivered message may stay unacknowledged before it is delivered again.
    pub ack_wait: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            dedup_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// An in-process bus. Clones share the same streams.
#[derive(Clone, Default)]
pub struct Bus {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every publish and every nak, so waiting workers look again.
    changed: Notify,
    config: Mutex<BusConfig>,
}

#[derive(Default)]
struct State {
    streams: HashMap<String, Stream>,
}

#[derive(Default)]
struct Stream {
    /// Stored messages by sequence; the oldest go first when a limit is reached, and a work
    /// queue's once acknowledged.
    log: BTreeMap<u64, Arc<Stored>>,
    /// The sequence the next message gets (sequences are never reused).
    next: u64,
    /// Payload and header bytes stored.
    bytes: usize,
    settings: StreamSettings,
    dedup: HashMap<String, (u64, Instant)>,
    /// Ids in the order they were remembered, so expiry walks from the front instead of
    /// scanning the whole map on every publish.
    dedup_order: std::collections::VecDeque<(Instant, String)>,
    groups: HashMap<String, Group>,
}

struct Stored {
    sequence: u64,
    time: SystemTime,
    headers: Headers,
    payload: Vec<u8>,
}

impl Stored {
    fn size(&self) -> usize {
        self.payload.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// How a subject keeps its messages, as a JetStream stream would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Messages stay until a limit removes the oldest (pub/sub and streams).
    Limits,
    /// A message is deleted once a worker acknowledges it (queues).
    WorkQueue,
}

/// A subject's retention and limits. Defaults: [`Retention::Limits`], at most 100,000
/// messages, 64 MiB and 24 hours — bounds for a process's memory rather than a broker's disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// How messages leave.
    pub retention: Retention,
    /// Most messages kept; the oldest go first.
    pub max_messages: usize,
    /// Most payload and header bytes kept; the oldest go first.
    pub max_bytes: usize,
    /// Messages older than this go.
    pub max_age: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            retention: Retention::Limits,
            max_messages: 100_000,
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl Stream {
    fn new(settings: StreamSettings) -> Self {
        Self {
            next: 1,
            settings,
            ..Self::default()
        }
    }

    fn remove(&mut self, sequence: u64) {
        if let Some(m) = self.log.remove(&sequence) {
            self.bytes -= m.size();
        }
    }

    /// Drops the oldest messages while a limit is exceeded.
    fn enforce(&mut self, now: SystemTime) {
        let s = self.settings;
        while let Some((&seq, oldest)) = self.log.first_key_value() {
            let aged = now
                .duration_since(oldest.time)
                .is_ok_and(|age| age > s.max_age);
            if !(aged || self.log.len() > s.max_messages || self.bytes > s.max_bytes) {
                break;
            }
            self.remove(seq);
        }
    }
}

struct Group {
    /// Next sequence never delivered to this group.
    cursor: u64,
    /// Delivered, not yet acknowledged: sequence → when it is due again.
    pending: BTreeMap<u64, Instant>,
    /// Sequences to deliver again before new ones.
    again: VecDeque<u64>,
    /// Deliveries so far, per sequence (pending ones only).
    deliveries: HashMap<u64, u32>,
}

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message's sequence number on its subject.
    pub sequence: u64,
    /// True when the message id had been seen: nothing new was stored.
    pub duplicate: bool,
}

/// One delivery of a message to a consumer group. Acknowledge it once handled; drop it
/// unacknowledged and it comes back after the ack wait.
#[derive(Clone)]
pub struct Delivery {
    bus: Bus,
    subject: String,
    group: String,
    message: Arc<Stored>,
    /// 1 on the first delivery to this group.
    pub delivered: u32,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.subject)
            .field("group", &self.group)
            .field("sequence", &self.message.sequence)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// An empty bus with the default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus with `config`.
    pub fn with_config(config: BusConfig) -> Self {
        let bus = Self::default();
        *bus.shared
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = config;
        bus
    }

    fn config(&self) -> BusConfig {
        *self
            .shared
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation below completes under the lock, so a panicking holder leaves the
        // state consistent.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a message to `subject`. A `Nats-Msg-Id` header seen on this subject within the
    /// dedup window stores nothing and returns the first copy's sequence.
    pub fn publish(&self, subject: &str, headers: Headers, payload: Vec<u8>) -> Published {
        let window = self.config().dedup_window;
        let now = Instant::now();
        let mut state = self.state();
        let stream = state
            .streams
            .entry(subject.to_string())
            .or_insert_with(|| Stream::new(StreamSettings::default()));
        while let Some((at, _)) = stream.dedup_order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, id)) = stream.dedup_order.pop_front() {
                stream.dedup.remove(&id);
            }
        }
        let msg_id = headers.get(headers::MSG_ID).cloned();
        if let Some((sequence, _)) = msg_id.as_ref().and_then(|id| stream.dedup.get(id)) {
            return Published {
                sequence: *sequence,
                duplicate: true,
            };
        }
        let sequence = stream.next;
        stream.next += 1;
        let stored = Arc::new(Stored {
            sequence,
            time: SystemTime::now(),
            headers,
            payload,
        });
        stream.bytes += stored.size();
        stream.log.insert(sequence, stored);
        stream.enforce(SystemTime::now());
        if let Some(id) = msg_id {
            stream.dedup_order.push_back((now, id.clone()));
            stream.dedup.insert(id, (sequence, now));
        }
        drop(state);
        self.shared.changed.notify_waiters();
        Published {
            sequence,
            duplicate: false,
        }
    }

    /// The last sequence given on `subject` (0 when nothing was ever published), whether or
    /// not that message is still stored.
    pub fn last_sequence(&self, subject: &str) -> u64 {
        self.state()
            .streams
            .get(subject)
            .map_or(0, |s| s.next.saturating_sub(1))
    }

    /// How many messages `subject` stores now.
    pub fn stored(&self, subject: &str) -> usize {
        self.state().streams.get(subject).map_or(0, |s| s.log.len())
    }

    /// Sets how `subject` keeps its messages (before or after messages arrive; limits apply
    /// at once).
    pub fn configure(&self, subject: &str, settings: StreamSettings) {
        let mut state = self.state();
        let stream = state
            .streams
            .entry(subject.to_string())
            .or_insert_with(|| Stream::new(settings));
        stream.settings = settings;
        stream.enforce(SystemTime::now());
    }

    /// Creates consumer group `group` on `subject` starting at `start`, or joins it if it
    /// exists (then `start` is ignored: the group's cursor is shared).
    pub fn join(&self, subject: &str, group: &str, start: StartAt) {
        let mut state = self.state();
        let stream = state
            .streams
            .entry(subject.to_string())
            .or_insert_with(|| Stream::new(StreamSettings::default()));
        if stream.groups.contains_key(group) {
            return;
        }
        let cursor = match start {
            StartAt::First => 1,
            StartAt::New => stream.next,
            StartAt::Sequence(n) => n.max(1),
            StartAt::Time(t) => stream
                .log
                .values()
                .find(|m| m.time >= t)
                .map_or(stream.next, |m| m.sequence),
        };
        stream.groups.insert(
            group.to_string(),
            Group {
                cursor,
                pending: BTreeMap::new(),
                again: VecDeque::new(),
                deliveries: HashMap::new(),
            },
        );
    }

    /// The next message for `group` on `subject`, waiting until there is one. The group must
    /// have been [joined](Self::join).
    pub async fn next(&self, subject: &str, group: &str) -> Delivery {
        loop {
            // Register interest before looking, so a publish between the look and the wait
            // still wakes this worker.
            let changed = self.shared.changed.notified();
            let wait = match self.try_next(subject, group) {
                Ok(delivery) => return delivery,
                Err(wait) => wait,
            };
            match wait {
                Some(due) => {
                    let _ = tokio::time::timeout_at(due.into(), changed).await;
                }
                None => changed.await,
            }
        }
    }

    /// The next message if one is ready now; otherwise when a pending one falls due.
    fn try_next(&self, subject: &str, group: &str) -> Result<Delivery, Option<Instant>> {
        let ack_wait = self.config().ack_wait;
        let now = Instant::now();
        let mut state = self.state();
        let Some(stream) = state.streams.get_mut(subject) else {
            return Err(None);
        };
        // Messages past their age go even when nobody publishes.
        stream.enforce(SystemTime::now());
        let Some(g) = stream.groups.get_mut(group) else {
            return Err(None);
        };
        let overdue: Vec<u64> = g
            .pending
            .iter()
            .filter(|(seq, due)| **due <= now && !g.again.contains(seq))
            .map(|(seq, _)| *seq)
            .collect();
        g.again.extend(overdue);
        loop {
            let sequence = match g.again.pop_front() {
                Some(seq) => seq,
                None => match stream.log.range(g.cursor..).next() {
                    // The next stored message; those skipped were removed by a limit.
                    Some((&seq, _)) => {
                        g.cursor = seq + 1;
                        seq
                    }
                    None => {
                        g.cursor = g.cursor.max(stream.next);
                        return Err(g.pending.values().min().copied());
                    }
                },
            };
            let Some(message) = stream.log.get(&sequence).cloned() else {
                // Removed by a limit while pending: nothing left to deliver.
                g.pending.remove(&sequence);
                g.deliveries.remove(&sequence);
                continue;
            };
            g.pending.insert(sequence, now + ack_wait);
            let delivered = g.deliveries.entry(sequence).or_insert(0);
            *delivered += 1;
            return Ok(Delivery {
                bus: self.clone(),
                subject: subject.to_string(),
                group: group.to_string(),
                message,
                delivered: *delivered,
            });
        }
    }

    fn settle(&self, d: &Delivery, redeliver_after: Option<Duration>) {
        let mut state = self.state();
        let Some(stream) = state.streams.get_mut(&d.subject) else {
            return;
        };
        let work_queue = stream.settings.retention == Retention::WorkQueue;
        let Some(g) = stream.groups.get_mut(&d.group) else {
            return;
        };
        let seq = d.message.sequence;
        match redeliver_after {
            Some(delay) => {
                g.pending.insert(seq, Instant::now() + delay);
            }
            None => {
                g.pending.remove(&seq);
                g.deliveries.remove(&seq);
                // A work queue's message is done once a worker settles it.
                if work_queue {
                    stream.remove(seq);
                }
            }
        }
        drop(state);
        self.shared.changed.notify_waiters();
    }
}

impl Delivery {
    /// The subject it was published on.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// Its sequence number on the subject.
    pub fn sequence(&self) -> u64 {
        self.message.sequence
    }
    /// Its headers.
    pub fn headers(&self) -> &Headers {
        &self.message.headers
    }
    /// Its body.
    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }
    /// The bus it came from (to publish follow-ups or dead letters).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }
    /// Handled: never delivered to this group again.
    pub fn ack(self) {
        self.bus.settle(&self, None);
    }
    /// Not handled: deliver again after `delay`.
    pub fn nak(self, delay: Duration) {
        self.bus.settle(&self, Some(delay));
    }
    /// Still being handled: its ack wait starts again.
    pub fn progress(&self) {
        let ack_wait = self.bus.config().ack_wait;
        let mut state = self.bus.state();
        if let Some(g) = state
            .streams
            .get_mut(&self.subject)
            .and_then(|s| s.groups.get_mut(&self.group))
        {
            if let Some(due) = g.pending.get_mut(&self.message.sequence) {
                *due = Instant::now() + ack_wait;
            }
        }
    }
    /// Never to be handled (it went to a dead letter): like an ack, without the success.
    pub fn term(self) {
        self.bus.settle(&self, None);
    }
}

/// Where events are published: the embedded [`Bus`] or NATS JetStream
/// ([`crate::messaging::nats::Nats`]). Generated publishers are generic over it.
pub trait EventSink: Send + Sync {
    /// Stores one message on `subject`, deduplicated on its `Nats-Msg-Id` header.
    fn send(
        &self,
        subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Published, PublishError>> + Send;

    /// Stores several messages, in order, and says how each went. Brokers that can have many
    /// publishes in flight on one connection (JetStream) override this to wait for all the
    /// acknowledgements at once: what makes an outbox relay keep up with direct publishing.
    fn send_all(
        &self,
        messages: Vec<(String, Headers, Vec<u8>)>,
    ) -> impl std::future::Future<Output = Vec<Result<Published, PublishError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(messages.len());
            for (subject, headers, payload) in messages {
                results.push(self.send(&subject, headers, payload).await);
            }
            results
        }
    }
}

/// A publish that failed: the event is not stored, and publishing it again with the same id
/// is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    /// What went wrong.
    pub message: String,
    /// True when publishing the same message again cannot succeed (no stream holds the
    /// subject, the message is over the broker's size limit): the outbox relay parks such a
    /// row instead of retrying it.
    pub permanent: bool,
}

impl PublishError {
    /// A failure that may pass (the broker is restarting, a timeout).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure that retrying the same message cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PublishError {}

impl EventSink for Bus {
    async fn send(
        &self,
        subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Published, PublishError> {
        Ok(self.publish(subject, headers, payload))
    }
}

/// Publishes `event` under CloudEvents id `id` with the trace and deadline of the current
/// [`Context`]: what every generated publisher method calls.
pub async fn publish<E: Event>(
    sink: &impl EventSink,
    id: &str,
    event: &E,
) -> Result<Published, PublishError> {
    let (h, payload) = event_message(&Context::current(), id, event)
        .map_err(|e| PublishError::permanent(format!("cannot encode `{}`: {e}", E::NAME)))?;
    sink.send(E::SUBJECT, h, payload).await
}

/// Publishes `event` on its subject with CloudEvents headers, the trace context and the
/// deadline of `ctx`. `id` is the CloudEvents id: publishing again with the same id (a
/// producer's retry) stores the event once.
pub fn publish_event<E: Event>(
    bus: &Bus,
    ctx: &Context,
    id: &str,
    event: &E,
) -> Result<Published, serde_json::Error> {
    let (h, payload) = event_message(ctx, id, event)?;
    Ok(bus.publish(E::SUBJECT, h, payload))
}

/// The headers and JSON body of `event` as published under CloudEvents id `id`, whichever
/// transport carries it.
pub fn event_message<E: Event>(
    ctx: &Context,
    id: &str,
    event: &E,
) -> Result<(Headers, Vec<u8>), serde_json::Error> {
    let payload = serde_json::to_vec(event)?;
    let mut h = Headers::new();
    // Trace context for the consumer's span. The request's relative timeout never travels:
    // an event has a deadline only when its contract gives it one.
    ctx.inject_headers(&mut h, Transport::Http);
    h.remove(wire::TIMEOUT_HEADER);
    let expires = match E::DEADLINE {
        EventDeadline::None => None,
        EventDeadline::Inherit => ctx.remaining(),
        EventDeadline::After(after) => Some(after),
    };
    if let Some(left) = expires {
        let at = SystemTime::now() + left;
        let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        h.insert(headers::DEADLINE.into(), ms.to_string());
    }
    h.insert(headers::ID.into(), id.to_string());
    h.insert(headers::SOURCE.into(), E::SOURCE.to_string());
    h.insert(headers::TYPE.into(), E::TYPE.to_string());
    h.insert(headers::SPECVERSION.into(), "1.0".into());
    h.insert(
        headers::TIME.into(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    if let Some(key) = event.ordering_key() {
        h.insert(headers::SUBJECT.into(), key);
    }
    h.insert(headers::CONTENT_TYPE.into(), "application/json".into());
    h.insert(headers::MSG_ID.into(), format!("{}/{id}", E::SOURCE));
    Ok((h, payload))
}
