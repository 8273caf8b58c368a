//! RabbitMQ as the transport, on lapin: the same envelope, groups and settling as the
//! embedded [`bus`](crate::messaging::bus) and [`nats`](crate::messaging::nats), over AMQP
//! 0.9.1.
//!
//! # Topology
//!
//! Publishers write to one durable topic exchange, [`EVENTS_EXCHANGE`], with the subject as
//! the routing key, persistent, and wait for the broker's publisher confirm. A consumer group
//! declares what it reads from when it joins (declaring is idempotent, so every replica does):
//!
//! | delivery | queue | bound with |
//! |---|---|---|
//! | `queue` | quorum queue `<subject>`, shared by every worker of every group reading it | `<subject>` |
//! | `pubsub` | quorum queue `<subject>.<group>`, one per group | `<subject>` |
//! | `stream` | stream `<subject>` (`x-queue-type: stream`), read by each group from its own offset | `<subject>` |
//!
//! Dead letters go through the topic exchange [`DEAD_LETTER_EXCHANGE`] to the quorum queue
//! `<subject>.dlq`, carrying the reason header as on the other transports. The quorum queues
//! name that exchange as their own dead-letter exchange too (at least once), so a message the
//! broker gives up on — one that crashed its worker [`QueueLimits::delivery_limit`] times,
//! which no handler outcome reports — lands there as well, with RabbitMQ's `x-death` record
//! instead of a reason. Both exchanges have the alternate exchange [`UNROUTABLE`]: an event
//! published before any group joined its subject is kept in the queue of that name, for an
//! operator to move, rather than dropped. (JetStream refuses such a publish instead; an
//! outbox relay parks the row.)
//!
//! The client holds two connections, one publishing and one consuming: RabbitMQ blocks a
//! publishing connection under a memory or disk alarm, and a consumer on it could then not
//! even acknowledge. Events are published many at a time on one channel; the runtime's own
//! publishes (delays, dead letters, offsets) are mandatory and go one at a time on another,
//! so a returned message is known to be the one just sent.
//!
//! # Where AMQP differs from JetStream
//!
//! - **No publish dedup.** AMQP has no duplicate window: a publish retried after a lost
//!   confirm is stored twice, and the message id (`message-id` and the `Nats-Msg-Id` header)
//!   is what the idempotent consumers drop the copy by. [`Published::duplicate`] is always
//!   false and [`Published::sequence`] is 0.
//! - **No history for `pubsub`.** A group's queue holds what was published after it was first
//!   declared; replay from a point ([`StartAt`] other than `New`) needs `delivery: stream`.
//!   Asking for it on a new pub/sub group is an error, not a silent start from now.
//! - **Nak with a delay** republishes the message to a delay queue `<queue>.retry.<ms>` (a
//!   quorum queue with a message TTL, dead-lettered back to `<queue>` at least once), then
//!   acknowledges the original. Delays are rounded up to a 1-2-5 ladder, so a group has a
//!   handful of such queues, not one per jittered value; they are kept (an expiring queue
//!   would be deleted under the messages waiting in it). The count of earlier deliveries
//!   travels in [`ATTEMPTS_HEADER`]; the broker's own records are not carried over.
//! - **Streams keep no consumer position over AMQP.** A stream group's offset is committed to
//!   a one-message queue `<subject>.<group>.offset` (`x-max-length: 1`) when a message is
//!   settled [`COMMIT_EVERY`] messages or [`COMMIT_INTERVAL`] after the last commit, and when
//!   the worker stops; after a crash the group reads again from the last commit and the
//!   consumer's dedup drops what it had already applied. The committed offset is the lowest
//!   one not yet settled, so a message waiting for its retry is never skipped. A stream
//!   cannot requeue, so a nak keeps the message in the worker until its delay has passed.
//!   What a stream group does not have: a delivery limit (a message that crashes the worker
//!   every time is read again after every restart, counted as a first delivery), retries
//!   that survive a reconnect (the group reads again from the lowest unsettled offset
//!   instead), and more than one worker (AMQP 0.9.1 has no single active consumer on
//!   streams, so every worker of a group reads the whole stream): run one per group.
//! - **No ack wait per message.** An unacknowledged message comes back when its channel
//!   closes (the worker crashed or lost its connection), or after the broker's
//!   `consumer_timeout`; [`Inbound::progress`] has nothing to send.

use crate::messaging::bus::{headers as names, Headers, PublishError, Published, StartAt};
use crate::messaging::consumer::{dead_letter_message, Inbound};
use crate::DeliveryMode as Mode;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Acker;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The topic exchange events are published to, the subject as the routing key.
pub const EVENTS_EXCHANGE: &str = pactum_rules::subject::AMQP_EVENTS_EXCHANGE;
/// The topic exchange dead letters go through, routed by `<subject>.dlq`.
pub const DEAD_LETTER_EXCHANGE: &str = pactum_rules::subject::AMQP_DEAD_LETTER_EXCHANGE;
/// How many times a message was delivered before it went to a delay queue: RabbitMQ's own
/// count (`x-delivery-count`) starts again when the message comes back from there.
pub const ATTEMPTS_HEADER: &str = "pactum-delivered";
/// A stream group's offset is committed after this many settled messages...
pub const COMMIT_EVERY: u32 = 100;
/// ... or when this long has passed since the last commit, whichever comes first.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// A transport failure, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitError(pub String);

impl std::fmt::Display for RabbitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RabbitError {}

fn failed(doing: &str, e: &lapin::Error) -> RabbitError {
    RabbitError(format!("{doing}: {e}"))
}

/// The limits queues are declared with, so nothing grows without bound. A queue that exists
/// keeps the arguments it was declared with: declaring it again with others is refused by the
/// broker (`PRECONDITION_FAILED`), which [`RabbitMq::join`] reports as such.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// How long a stream keeps messages. Default: 7 days, as JetStream's streams.
    pub max_age: Duration,
    /// Bytes a queue or stream may hold. A full quorum queue (a group's queue, a delay queue,
    /// a dead-letter queue) refuses publishes (the publisher sees a nack and retries) rather
    /// than dropping the oldest; a stream drops its oldest segments. Default: 1 GiB.
    pub max_bytes: u64,
    /// Deliveries after which a quorum queue dead-letters a message by itself: a backstop
    /// for a message that crashes its worker every time, which no handler outcome reports.
    /// Default 20, well above any contract's retry attempts.
    pub delivery_limit: u32,
    /// How long dead letters are kept. Default: 30 days.
    pub dead_letter_max_age: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            delivery_limit: 20,
            dead_letter_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A RabbitMQ client: publishes with confirms, and opens a channel per consumer group worker.
/// Cloning shares it. It holds two connections, opened again on the next use after the
/// broker dropped them: one that publishes and one that consumes, because RabbitMQ blocks a
/// publishing connection under a memory or disk alarm, and a consumer sharing it could then
/// not even acknowledge — the one thing that frees space.
#[derive(Clone)]
pub struct RabbitMq {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    /// Messages a worker may hold unacknowledged when its subscription does not say: the
    /// URL's `prefetch` parameter, else 1.
    prefetch: u16,
    /// The URL with its password hidden, for messages.
    shown: String,
    limits: QueueLimits,
    publishing: tokio::sync::Mutex<Option<Arc<Connection>>>,
    consuming: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// Events: many publishes in flight, none mandatory (the alternate exchange keeps what
    /// no queue takes).
    events: tokio::sync::Mutex<Option<Channel>>,
    /// The runtime's own publishes (delays, dead letters, offsets): mandatory, one at a time,
    /// so a returned message is known to be the one just sent (lapin hands a return to
    /// whichever confirm resolves next).
    internal: tokio::sync::Mutex<Option<Channel>>,
    /// Delay queues known to exist (`<queue>.retry.<ms>`); a failed publish to one forgets it,
    /// so it is declared again.
    delay_queues: Mutex<HashSet<String>>,
}

/// The alternate exchange of the events and dead-letter exchanges, and the queue behind it:
/// a message no group's queue takes is kept there, for an operator to move, rather than lost.
pub const UNROUTABLE: &str = "pactum.unroutable";

/// How long a publish waits for the broker's confirm before it counts as failed (a quorum
/// queue that lost its majority confirms nothing): the publisher retries, as after any
/// transient failure.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Takes Pactum's own `prefetch` parameter out of an AMQP URL's query (lapin knows only the
/// AMQP URI parameters): the URL to connect to, and the prefetch (1 when absent).
fn split_prefetch(url: &str) -> Result<(String, u16), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), 1));
    };
    let mut prefetch = 1;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefetch", n)) => {
                prefetch = n.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("prefetch must be a whole number from 1 to 65535, not `{n}`")
                })?;
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, prefetch))
}

/// `url` with the password replaced, so errors and logs never carry it.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// What to do about a connection that failed, for the start-up error.
fn connect_advice(e: &lapin::Error) -> &'static str {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError};
    let text = e.to_string();
    // Wrong credentials end the handshake with ACCESS_REFUSED, which lapin reports in more
    // than one shape depending on when the broker closes the socket.
    if text.contains("ACCESS_REFUSED") || text.contains("ACCESS-REFUSED") {
        return "the user name or password is wrong: fix them in the URL \
                (amqp://USER:PASSWORD@HOST:5672/VHOST)";
    }
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
                "the virtual host does not exist or the user may not use it: create it \
                 (`rabbitmqctl add_vhost NAME`) and grant the user access (`rabbitmqctl \
                 set_permissions -p NAME USER '.*' '.*' '.*'`), or fix the URL's path \
                 (`/%2f` is the default vhost `/`)"
            }
            _ => "the broker refused the connection",
        },
        lapin::ErrorKind::IOError(_) => {
            "nothing answers there: start RabbitMQ or fix the URL's host and port \
             (amqp://USER:PASSWORD@HOST:5672/VHOST)"
        }
        _ => "check the URL (amqp://USER:PASSWORD@HOST:5672/VHOST)",
    }
}

/// Opens a connection named for its `role` and declares the exchanges.
async fn open(url: &str, shown: &str, role: &str) -> Result<Connection, RabbitError> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(
        format!("pactum {} {role}", std::process::id()),
    ));
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| {
            RabbitError(format!(
                "cannot connect to RabbitMQ at {shown}: no answer within {CONNECT_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| {
            RabbitError(format!(
                "cannot connect to RabbitMQ at {shown}: {e}; {}",
                connect_advice(&e)
            ))
        })?;
    // Durable exchanges; declaring them on every connection makes a broker whose data was
    // wiped usable again without an operator.
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| failed("cannot open a channel", &e))?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            UNROUTABLE.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(|e| failed(&format!("cannot declare exchange {UNROUTABLE}"), &e))?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    declare_queue(&channel, UNROUTABLE, args)
        .await
        .map_err(|e| failed(&format!("cannot declare queue {UNROUTABLE}"), &e))?;
    bind(&channel, UNROUTABLE, UNROUTABLE, "").await?;
    for exchange in [EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE] {
        let mut args = FieldTable::default();
        args.insert("alternate-exchange".into(), long(UNROUTABLE));
        channel
            .exchange_declare(exchange.into(), ExchangeKind::Topic, durable, args)
            .await
            .map_err(|e| {
                let mut m = failed(&format!("cannot declare exchange {exchange}"), &e).0;
                if m.contains("PRECONDITION") {
                    m.push_str(&format!(
                        "; it exists with other arguments: delete it (it holds no messages) so \
                         it is declared again with `alternate-exchange: {UNROUTABLE}`"
                    ));
                }
                RabbitError(m)
            })?;
    }
    let _ = channel.close(200, "declared".into()).await;
    Ok(connection)
}

fn long(s: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.into()))
}

fn number(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::Timestamp(n) => Some(*n),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Headers the broker writes about a delivery (counts, dead-letter history, stream offset):
/// not carried over when the runtime publishes a message again.
fn broker_header(name: &str) -> bool {
    matches!(
        name,
        "x-death" | "x-delivery-count" | "x-acquired-count" | "x-stream-offset"
    ) || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

/// The AMQP properties of an event: persistent, its id as `message-id`, its headers as a
/// table of strings (header names and values cleaned as on NATS).
fn properties(headers: &Headers) -> BasicProperties {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        if !crate::wire::valid_header_name(name) {
            tracing::warn!(header = %name.escape_debug(), "header name not valid; dropped");
            continue;
        }
        let Ok(key) = ShortString::try_new(name.as_str()) else {
            continue;
        };
        table.insert(
            key,
            long(crate::wire::sanitize_header_value(value).into_owned()),
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut p = BasicProperties::default()
        .with_delivery_mode(2)
        .with_timestamp(now)
        .with_headers(table);
    if let Some(id) = headers.get(names::MSG_ID) {
        if let Ok(id) = ShortString::try_new(id.as_str()) {
            p = p.with_message_id(id);
        }
    }
    if let Some(t) = headers.get(names::CONTENT_TYPE) {
        if let Ok(t) = ShortString::try_new(t.as_str()) {
            p = p.with_content_type(t);
        }
    }
    p
}

/// The 1-2-5 step at or above `delay` (at least 100 ms): delay queues per group stay few.
pub fn delay_step(delay: Duration) -> Duration {
    let wanted = delay.as_millis().max(100);
    let mut decade: u128 = 100;
    loop {
        for step in [1, 2, 5] {
            if decade * step >= wanted {
                return Duration::from_millis(u64::try_from(decade * step).unwrap_or(u64::MAX));
            }
        }
        decade *= 10;
    }
}

/// A connection from `slot`, opened again if the broker dropped it.
async fn connection(
    inner: &Inner,
    slot: &tokio::sync::Mutex<Option<Arc<Connection>>>,
    role: &str,
) -> Result<Arc<Connection>, RabbitError> {
    let mut slot = slot.lock().await;
    if let Some(c) = slot.as_ref() {
        if c.status().connected() {
            return Ok(c.clone());
        }
    }
    let c = Arc::new(open(&inner.url, &inner.shown, role).await?);
    tracing::info!(broker = %inner.shown, role, "connected to RabbitMQ");
    *slot = Some(c.clone());
    Ok(c)
}

/// A new channel on the connection in `slot`. If the connection cannot open one, it is
/// dropped from the slot, so the next call opens a new connection rather than asking a dead
/// one again (its status can lag behind the socket).
async fn channel_on(
    inner: &Inner,
    slot: &tokio::sync::Mutex<Option<Arc<Connection>>>,
    role: &str,
) -> Result<Channel, RabbitError> {
    let c = connection(inner, slot, role).await?;
    let opened = match tokio::time::timeout(CONNECT_TIMEOUT, c.create_channel()).await {
        Ok(Ok(channel)) => return Ok(channel),
        Ok(Err(e)) => failed("cannot open a channel", &e),
        Err(_) => RabbitError(format!("no channel within {CONNECT_TIMEOUT:?}")),
    };
    let mut held = slot.lock().await;
    if held.as_ref().is_some_and(|h| Arc::ptr_eq(h, &c)) {
        *held = None;
    }
    Err(opened)
}

/// Waits for a confirm, bounded by [`CONFIRM_TIMEOUT`].
async fn confirmation(
    routing_key: &str,
    confirm: lapin::PublisherConfirm,
) -> Result<Confirmation, PublishError> {
    match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(PublishError::transient(format!(
            "publish of `{routing_key}` not confirmed: {e}"
        ))),
        Err(_) => Err(PublishError::transient(format!(
            "publish of `{routing_key}` not confirmed within {CONFIRM_TIMEOUT:?}"
        ))),
    }
}

impl RabbitMq {
    /// Connects to `url` (`amqp://guest:guest@127.0.0.1:5672/%2f`) and declares the
    /// exchanges. An unreachable broker, wrong credentials or a missing virtual host fail
    /// here, with what to fix.
    pub async fn connect(url: &str) -> Result<Self, RabbitError> {
        Self::connect_with(url, QueueLimits::default()).await
    }

    /// [`connect`](Self::connect) with explicit queue limits.
    pub async fn connect_with(url: &str, limits: QueueLimits) -> Result<Self, RabbitError> {
        let shown = redact(url);
        let (url, prefetch) =
            split_prefetch(url).map_err(|e| RabbitError(format!("RabbitMQ URL {shown}: {e}")))?;
        let publishing = open(&url, &shown, "publishing").await?;
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                prefetch,
                shown,
                limits,
                publishing: tokio::sync::Mutex::new(Some(Arc::new(publishing))),
                consuming: tokio::sync::Mutex::new(None),
                events: tokio::sync::Mutex::new(None),
                internal: tokio::sync::Mutex::new(None),
                delay_queues: Mutex::default(),
            }),
        })
    }

    /// How many messages a worker holds unacknowledged when its subscription does not say
    /// ([`Subscribe::prefetch`](crate::messaging::Subscribe::prefetch) `None`): the URL's
    /// `prefetch` parameter, else 1.
    pub fn default_prefetch(&self) -> u16 {
        self.inner.prefetch
    }

    /// Whether the publishing connection is up now. A dropped connection is opened again
    /// only when something uses it: a readiness probe calls [`reconnect`](Self::reconnect),
    /// which does.
    pub fn is_connected(&self) -> bool {
        self.inner
            .publishing
            .try_lock()
            .map(|c| c.as_ref().is_some_and(|c| c.status().connected()))
            // Someone holds the lock to reconnect.
            .unwrap_or(false)
    }

    /// Opens the publishing connection again if the broker dropped it, and says whether the
    /// broker answers: what a readiness probe calls, so a service that only consumes (and
    /// so never publishes) becomes ready again after a broker restart.
    pub async fn reconnect(&self) -> Result<(), RabbitError> {
        connection(&self.inner, &self.inner.publishing, "publishing")
            .await
            .map(drop)
    }

    /// A new channel on the consuming connection.
    async fn consumer_channel(&self) -> Result<Channel, RabbitError> {
        channel_on(&self.inner, &self.inner.consuming, "consuming").await
    }

    /// A channel in confirm mode on the publishing connection, kept in `slot` and opened
    /// again if it closed.
    async fn confirming(&self, slot: &mut Option<Channel>) -> Result<Channel, RabbitError> {
        if let Some(c) = slot.as_ref() {
            if c.status().connected() {
                return Ok(c.clone());
            }
        }
        let channel = channel_on(&self.inner, &self.inner.publishing, "publishing").await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| failed("cannot turn on publisher confirms", &e))?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Sends one event and returns the wait for its confirm, so several can be in flight.
    async fn start_publish(
        &self,
        subject: &str,
        properties: BasicProperties,
        payload: &[u8],
    ) -> Result<lapin::PublisherConfirm, PublishError> {
        let channel = {
            let mut slot = self.inner.events.lock().await;
            self.confirming(&mut slot)
                .await
                .map_err(|e| PublishError::transient(e.0))?
        };
        channel
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                subject.into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await
            .map_err(|e| PublishError::transient(format!("publish failed: {e}")))
    }

    /// The broker has the event (on disk, for a durable queue) once this returns `Ok`.
    async fn confirmed(
        subject: &str,
        confirm: lapin::PublisherConfirm,
    ) -> Result<Published, PublishError> {
        match confirmation(subject, confirm).await? {
            Confirmation::Ack(_) | Confirmation::NotRequested => Ok(Published {
                sequence: 0,
                duplicate: false,
            }),
            Confirmation::Nack(_) => Err(PublishError::transient(format!(
                "the broker refused `{subject}` (nack): a queue is full or a node is down"
            ))),
        }
    }

    /// Publishes raw headers and body on `subject`, waiting for the broker's confirm.
    pub async fn publish(
        &self,
        subject: &str,
        headers: &Headers,
        payload: &[u8],
    ) -> Result<Published, PublishError> {
        let result = match self
            .start_publish(subject, properties(headers), payload)
            .await
        {
            Ok(c) => Self::confirmed(subject, c).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            Self::forget(&self.inner.events).await;
        }
        result
    }

    /// One of the runtime's own publishes (a delay, a dead letter, an offset): mandatory and
    /// alone on its channel until confirmed, so a return is this message's. A message no
    /// queue takes is a permanent error.
    async fn publish_internal(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: BasicProperties,
        payload: &[u8],
    ) -> Result<(), PublishError> {
        let mut slot = self.inner.internal.lock().await;
        let channel = self
            .confirming(&mut slot)
            .await
            .map_err(|e| PublishError::transient(e.0))?;
        let sent = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                properties,
            )
            .await
            .map_err(|e| PublishError::transient(format!("publish failed: {e}")));
        let result = match sent {
            Ok(confirm) => match confirmation(routing_key, confirm).await {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(()),
                Ok(Confirmation::Ack(Some(returned))) => Err(PublishError::permanent(format!(
                    "no queue takes `{routing_key}` ({})",
                    returned.reply_text
                ))),
                Ok(Confirmation::Nack(_)) => Err(PublishError::transient(format!(
                    "the broker refused `{routing_key}` (nack)"
                ))),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if matches!(&result, Err(e) if !e.permanent) {
            *slot = None;
        }
        result
    }

    /// Drops a channel that failed, so the next publish opens a fresh one.
    ///
    /// Unconditionally: a channel whose connection the broker dropped can still read as
    /// connected until lapin's IO loop notices, and one kept on that reading would fail every
    /// publish after it.
    async fn forget(slot: &tokio::sync::Mutex<Option<Channel>>) {
        *slot.lock().await = None;
    }

    /// Declares the queue a group reads from, with its dead-letter queue, on `channel`.
    async fn declare(
        &self,
        channel: &Channel,
        subject: &str,
        queue: &str,
        mode: Mode,
    ) -> Result<(), RabbitError> {
        let limits = self.inner.limits;
        let bytes = |b: u64| AMQPValue::LongLongInt(i64::try_from(b).unwrap_or(i64::MAX));
        let dead_letters = format!("{subject}.dlq");
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            long(pactum_rules::subject::amqp_queue_type(mode)),
        );
        if mode == Mode::Stream {
            args.insert(
                "x-max-age".into(),
                long(format!("{}s", limits.max_age.as_secs().max(1))),
            );
            args.insert("x-max-length-bytes".into(), bytes(limits.max_bytes));
        } else {
            args.insert("x-dead-letter-exchange".into(), long(DEAD_LETTER_EXCHANGE));
            args.insert("x-dead-letter-routing-key".into(), long(&*dead_letters));
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(limits.delivery_limit)),
            );
            args.insert("x-max-length-bytes".into(), bytes(limits.max_bytes));
            // A full queue refuses publishes (a nack the publisher retries) instead of dropping
            // its oldest message; and the broker's own dead-lettering (at the delivery limit)
            // is then at least once, not the default at most once.
            args.insert("x-overflow".into(), long("reject-publish"));
            args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
        }
        declare_queue(channel, queue, args).await.map_err(|e| {
            let mut message = failed(&format!("cannot declare queue {queue}"), &e).0;
            if mode == Mode::Stream && !message.contains("PRECONDITION") {
                message.push_str(
                    "; streams need RabbitMQ 3.9 or later with the `stream_queue` feature flag \
                     enabled (`rabbitmqctl enable_feature_flag stream_queue`)",
                );
            } else if message.contains("PRECONDITION") {
                message.push_str(
                    "; the queue exists with other arguments (another delivery mode or limits): \
                     delete it or use the arguments it was declared with",
                );
            }
            RabbitError(message)
        })?;
        bind(channel, queue, EVENTS_EXCHANGE, subject).await?;
        declare_dead_letters(self, channel, &dead_letters).await
    }

    /// Declares `<queue>.retry.<ms>`: messages wait there `step`, then go back to `queue`.
    async fn delay_queue(&self, queue: &str, step: Duration) -> Result<String, RabbitError> {
        let name = format!("{queue}.retry.{}", step.as_millis());
        if self
            .inner
            .delay_queues
            .lock()
            .expect("delay queues lock")
            .contains(&name)
        {
            return Ok(name);
        }
        // A quorum queue, so that going back to `queue` is at least once (a classic queue
        // dead-letters at most once: a message would vanish if `queue` refused it). Kept, not
        // expiring: `x-expires` does not count publishes as use, and would delete it under the
        // messages waiting in it.
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long("quorum"));
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(millis(step)));
        args.insert("x-dead-letter-exchange".into(), long(""));
        args.insert("x-dead-letter-routing-key".into(), long(queue));
        args.insert("x-overflow".into(), long("reject-publish"));
        args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
        // On a channel of its own: a refused declaration closes the channel it was made on.
        let channel = self.consumer_channel().await?;
        let declared = declare_queue(&channel, &name, args)
            .await
            .map_err(|e| failed(&format!("cannot declare delay queue {name}"), &e));
        let _ = channel.close(200, "declared".into()).await;
        declared?;
        self.inner
            .delay_queues
            .lock()
            .expect("delay queues lock")
            .insert(name.clone());
        Ok(name)
    }

    /// Joins group `group` reading `subject` the way `mode` says, starting a new stream
    /// group where `start` says, with up to `prefetch` messages in flight per worker
    /// (through [`EventSource::subscribe`](crate::messaging::EventSource::subscribe), the
    /// subscription's `prefetch` or [`default_prefetch`](Self::default_prefetch)).
    ///
    /// A subject ending in `.dlq` is read as the dead-letter queue it names.
    pub async fn join(
        &self,
        subject: &str,
        group: &str,
        mode: Mode,
        start: StartAt,
        prefetch: u16,
    ) -> Result<Group, RabbitError> {
        let (queue, mode) = if subject.ends_with(".dlq") {
            (subject.to_string(), Mode::Queue)
        } else {
            (
                pactum_rules::subject::amqp_queue(subject, group, mode),
                mode,
            )
        };
        let stream = (mode == Mode::Stream).then(|| {
            Arc::new(Mutex::new(Tracker {
                offsets_queue: format!("{subject}.{group}.offset"),
                start,
                in_flight: BTreeSet::new(),
                next: None,
                retries: Vec::new(),
                settled_since_commit: 0,
                last_commit: None,
                committed: None,
            }))
        });
        if mode == Mode::Pubsub && !matches!(start, StartAt::New) {
            // Replay needs history, which only a stream keeps. A group that exists already
            // ignores `start` (as on JetStream), so only a new one is refused.
            let channel = self.consumer_channel().await?;
            let exists = channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .is_ok();
            if !exists {
                return Err(RabbitError(format!(
                    "group `{group}` of `{subject}` asks to start at {start:?}, but a pub/sub \
                     subject on RabbitMQ keeps no history: declare `delivery: stream` to replay"
                )));
            }
        }
        let mut group = Group {
            rabbit: self.clone(),
            subject: subject.to_string(),
            queue,
            mode,
            prefetch: prefetch.max(1),
            live: None,
            stream,
        };
        // Declare now, so a refused declaration fails the join, not the first pull.
        group.open().await?;
        Ok(group)
    }
}

async fn declare_queue(channel: &Channel, queue: &str, args: FieldTable) -> lapin::Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map(|_| ())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), RabbitError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| failed(&format!("cannot bind {queue} to {exchange}"), &e))
}

impl crate::messaging::bus::EventSink for RabbitMq {
    async fn send(
        &self,
        subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Published, PublishError> {
        self.publish(subject, &headers, &payload).await
    }

    async fn send_all(
        &self,
        messages: Vec<(String, Headers, Vec<u8>)>,
    ) -> Vec<Result<Published, PublishError>> {
        // Every publish is sent before any confirm is awaited: one round trip for the lot.
        // One channel keeps the order of its publishes.
        let mut pending = Vec::with_capacity(messages.len());
        for (subject, headers, payload) in &messages {
            let started = self
                .start_publish(subject, properties(headers), payload)
                .await;
            pending.push((subject, started));
        }
        let mut results = Vec::with_capacity(pending.len());
        for (subject, started) in pending {
            results.push(match started {
                Ok(confirm) => Self::confirmed(subject, confirm).await,
                Err(e) => Err(e),
            });
        }
        if results.iter().any(Result::is_err) {
            Self::forget(&self.inner.events).await;
        }
        results
    }
}

/// Where a stream group is: what it has been given and not yet settled, what waits for a
/// retry, and where it committed.
struct Tracker {
    offsets_queue: String,
    start: StartAt,
    /// Offsets handed out and not settled.
    in_flight: BTreeSet<u64>,
    /// One past the highest offset received.
    next: Option<u64>,
    /// Naked messages, due at their instant.
    retries: Vec<(Instant, Redelivery)>,
    settled_since_commit: u32,
    last_commit: Option<Instant>,
    /// The last value committed.
    committed: Option<u64>,
}

struct Redelivery {
    offset: u64,
    headers: Headers,
    payload: Vec<u8>,
    delivered: u32,
}

impl Tracker {
    /// The offset to read from again: the lowest unsettled one, or one past the last read.
    fn safe_point(&self) -> Option<u64> {
        self.in_flight.first().copied().or(self.next)
    }

    /// Settles `offset`; returns the offset to commit if a commit is due.
    fn settle(&mut self, offset: u64) -> Option<u64> {
        self.in_flight.remove(&offset);
        self.settled_since_commit += 1;
        let due = self.settled_since_commit >= COMMIT_EVERY
            || self
                .last_commit
                .is_none_or(|at| at.elapsed() >= COMMIT_INTERVAL);
        if due {
            self.commit_point()
        } else {
            None
        }
    }

    /// The offset to commit, if it moved.
    fn commit_point(&mut self) -> Option<u64> {
        let point = self.safe_point()?;
        if self.committed == Some(point) {
            return None;
        }
        self.settled_since_commit = 0;
        self.last_commit = Some(Instant::now());
        Some(point)
    }
}

/// One worker's subscription to a consumer group.
pub struct Group {
    rabbit: RabbitMq,
    subject: String,
    queue: String,
    mode: Mode,
    prefetch: u16,
    live: Option<(Channel, lapin::Consumer)>,
    stream: Option<Arc<Mutex<Tracker>>>,
}

impl Group {
    /// Opens a channel, declares the group's queues and starts consuming; a stream group
    /// resumes at its committed offset, or where it was told to start.
    async fn open(&mut self) -> Result<(), RabbitError> {
        let channel = self.rabbit.consumer_channel().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| failed("cannot set the prefetch", &e))?;
        if !self.subject.ends_with(".dlq") {
            self.rabbit
                .declare(&channel, &self.subject, &self.queue, self.mode)
                .await?;
        } else {
            declare_dead_letters(&self.rabbit, &channel, &self.queue).await?;
        }
        let mut args = FieldTable::default();
        if let Some(tracker) = &self.stream {
            let offset = self.resume_point(&channel, tracker).await?;
            args.insert("x-stream-offset".into(), offset);
        }
        let tag = format!("pactum-{:016x}", fastrand::u64(..));
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .map_err(|e| failed(&format!("cannot consume from {}", self.queue), &e))?;
        self.live = Some((channel, consumer));
        Ok(())
    }

    /// Where a stream group reads from: where this worker got to if it read before (it is
    /// reconnecting), else the committed offset, else its start point.
    async fn resume_point(
        &self,
        channel: &Channel,
        tracker: &Arc<Mutex<Tracker>>,
    ) -> Result<AMQPValue, RabbitError> {
        let (queue, start, here) = {
            let mut t = tracker.lock().expect("tracker lock");
            let here = t.safe_point();
            // What was in flight will be read again from `here`: forget it, and the retries
            // waiting here, or they would be handled twice.
            t.in_flight.clear();
            t.retries.clear();
            t.next = here;
            (t.offsets_queue.clone(), t.start, here)
        };
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
        declare_queue(channel, &queue, args)
            .await
            .map_err(|e| failed(&format!("cannot declare queue {queue}"), &e))?;
        if let Some(offset) = here {
            return Ok(AMQPValue::LongLongInt(
                i64::try_from(offset).unwrap_or(i64::MAX),
            ));
        }
        let committed = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(|e| failed(&format!("cannot read the offset in {queue}"), &e))?;
        if let Some(message) = committed {
            let offset = std::str::from_utf8(&message.delivery.data)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            // Leave it there for the next worker to read.
            let _ = message
                .delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
            if let Some(offset) = offset {
                tracker.lock().expect("tracker lock").committed = Some(offset);
                return Ok(AMQPValue::LongLongInt(
                    i64::try_from(offset).unwrap_or(i64::MAX),
                ));
            }
        }
        Ok(match start {
            StartAt::First => long("first"),
            StartAt::New => long("next"),
            // Stream offsets count from 0; Pactum's sequences, as JetStream's, from 1.
            StartAt::Sequence(n) => {
                AMQPValue::LongLongInt(i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX))
            }
            StartAt::Time(t) => {
                AMQPValue::Timestamp(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
            }
        })
    }

    /// A stream retry that is due, if any.
    fn due_retry(&self) -> Option<RabbitDelivery> {
        let tracker = self.stream.as_ref()?;
        let mut t = tracker.lock().expect("tracker lock");
        let now = Instant::now();
        let i = t.retries.iter().position(|(due, _)| *due <= now)?;
        let (_, r) = t.retries.remove(i);
        Some(RabbitDelivery {
            rabbit: self.rabbit.clone(),
            subject: self.subject.clone(),
            queue: self.queue.clone(),
            headers: r.headers,
            payload: r.payload,
            delivered: r.delivered,
            acker: None,
            properties: BasicProperties::default(),
            stream: Some((tracker.clone(), r.offset)),
        })
    }

    /// When the next stream retry is due.
    fn next_retry(&self) -> Option<Instant> {
        let t = self.stream.as_ref()?.lock().expect("tracker lock");
        t.retries.iter().map(|(due, _)| *due).min()
    }

    /// The next delivery, waiting for one. A broker error (the connection dropped) is
    /// returned after the channel is closed; the next call opens another and the broker
    /// delivers again what this worker had not acknowledged.
    pub async fn next(&mut self) -> Result<RabbitDelivery, RabbitError> {
        loop {
            if let Some(retry) = self.due_retry() {
                return Ok(retry);
            }
            if self.live.is_none() {
                self.open().await?;
            }
            let next_retry = self.next_retry();
            let (_, consumer) = self.live.as_mut().expect("opened above");
            let received = match next_retry {
                Some(due) => {
                    tokio::select! {
                        r = consumer.next() => r,
                        () = tokio::time::sleep_until(due.into()) => continue,
                    }
                }
                None => consumer.next().await,
            };
            match received {
                // Buffered before its channel died: the broker gives it to a live channel
                // again, and settling this copy could only go astray.
                Some(Ok(delivery)) if !delivery.acker.usable() => continue,
                Some(Ok(delivery)) => return Ok(self.delivery(delivery)),
                Some(Err(e)) => {
                    self.live = None;
                    return Err(failed("consuming failed", &e));
                }
                None => {
                    self.live = None;
                    return Err(RabbitError(format!(
                        "the broker cancelled the consumer of {}",
                        self.queue
                    )));
                }
            }
        }
    }

    /// Waits for one delivery, then adds those already received, up to `max`: a batch for
    /// `process_batch` that never waits for a second message.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RabbitDelivery>, RabbitError> {
        let mut batch = vec![self.next().await?];
        while batch.len() < max {
            let Some((_, consumer)) = self.live.as_mut() else {
                break;
            };
            match futures_util::FutureExt::now_or_never(consumer.next()) {
                Some(Some(Ok(delivery))) if !delivery.acker.usable() => continue,
                Some(Some(Ok(delivery))) => batch.push(self.delivery(delivery)),
                _ => break,
            }
        }
        Ok(batch)
    }

    /// For a worker that is stopping: commits a stream group's offset, then closes the
    /// channel, which hands what was prefetched and not returned back to the queue at once.
    pub async fn release(&mut self) {
        if let Some(tracker) = &self.stream {
            let point = tracker.lock().expect("tracker lock").commit_point();
            if let Some(point) = point {
                commit(&self.rabbit, tracker, point).await;
            }
        }
        if let Some((channel, _)) = self.live.take() {
            let _ = channel.close(200, "worker stopping".into()).await;
        }
    }

    fn delivery(&self, d: lapin::message::Delivery) -> RabbitDelivery {
        let mut headers = Headers::new();
        let mut earlier = 0u64;
        let mut count = None;
        let mut offset = None;
        if let Some(table) = d.properties.headers() {
            for (name, value) in table {
                match name.as_str() {
                    ATTEMPTS_HEADER => earlier = number(value).unwrap_or(0),
                    // RabbitMQ's count of earlier deliveries: `x-delivery-count` before 4.0,
                    // `x-acquired-count` (every return) after.
                    "x-delivery-count" | "x-acquired-count" => {
                        count = count.max(number(value));
                    }
                    "x-stream-offset" => offset = number(value),
                    // The broker's records (x-death and its summaries): not the event's.
                    name if broker_header(name) => continue,
                    _ => {
                        let text = match value {
                            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()),
                            AMQPValue::ShortString(s) => s.as_str().into(),
                            // x-death and other broker records: not ours to carry.
                            _ => continue,
                        };
                        headers.insert(name.to_string(), text.into_owned());
                    }
                }
            }
        }
        // A message from another publisher carries its id in the property only.
        if let Some(id) = d.properties.message_id() {
            headers
                .entry(names::MSG_ID.to_string())
                .or_insert_with(|| id.to_string());
        }
        let here = count.unwrap_or(u64::from(d.redelivered));
        let delivered = u32::try_from(earlier + here + 1).unwrap_or(u32::MAX);
        let stream = match (&self.stream, offset) {
            (Some(tracker), Some(offset)) => {
                let mut t = tracker.lock().expect("tracker lock");
                t.in_flight.insert(offset);
                t.next = Some(t.next.map_or(offset + 1, |n| n.max(offset + 1)));
                Some((tracker.clone(), offset))
            }
            _ => None,
        };
        RabbitDelivery {
            rabbit: self.rabbit.clone(),
            subject: self.subject.clone(),
            queue: self.queue.clone(),
            headers,
            payload: d.data,
            delivered,
            acker: Some(d.acker),
            properties: d.properties,
            stream,
        }
    }
}

async fn declare_dead_letters(
    rabbit: &RabbitMq,
    channel: &Channel,
    queue: &str,
) -> Result<(), RabbitError> {
    let limits = rabbit.inner.limits;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    args.insert(
        "x-max-length-bytes".into(),
        AMQPValue::LongLongInt(i64::try_from(limits.max_bytes).unwrap_or(i64::MAX)),
    );
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(millis(limits.dead_letter_max_age)),
    );
    // Full: refuse new dead letters (the consumer keeps the message and retries) rather than
    // drop the oldest.
    args.insert("x-overflow".into(), long("reject-publish"));
    declare_queue(channel, queue, args)
        .await
        .map_err(|e| failed(&format!("cannot declare queue {queue}"), &e))?;
    bind(channel, queue, DEAD_LETTER_EXCHANGE, queue).await
}

/// Writes a stream group's offset to its offset queue (the queue keeps only the newest).
async fn commit(rabbit: &RabbitMq, tracker: &Arc<Mutex<Tracker>>, offset: u64) {
    let queue = tracker.lock().expect("tracker lock").offsets_queue.clone();
    let properties = BasicProperties::default().with_delivery_mode(2);
    let result = rabbit
        .publish_internal("", &queue, properties, offset.to_string().as_bytes())
        .await;
    match result {
        Ok(_) => tracker.lock().expect("tracker lock").committed = Some(offset),
        // The group reads again from an older offset after a restart; dedup absorbs it.
        Err(e) => tracing::warn!(error = %e, queue, "cannot commit the stream offset"),
    }
}

/// A message delivered by RabbitMQ.
pub struct RabbitDelivery {
    rabbit: RabbitMq,
    subject: String,
    queue: String,
    headers: Headers,
    payload: Vec<u8>,
    delivered: u32,
    /// `None` for a stream message coming back from its local retry (acknowledged already).
    acker: Option<Acker>,
    properties: BasicProperties,
    /// The stream group's tracker and this message's offset.
    stream: Option<(Arc<Mutex<Tracker>>, u64)>,
}

impl RabbitDelivery {
    /// Its offset in a stream, counted from 1 like JetStream's sequences; 0 off a stream.
    pub fn sequence(&self) -> u64 {
        self.stream.as_ref().map_or(0, |(_, offset)| offset + 1)
    }

    async fn ack_only(&self) {
        if let Some(acker) = &self.acker {
            // Sent without waiting for lapin's IO loop to write it: the first poll queues the
            // ack (in order, behind earlier acks), and waiting for the write cost a task
            // switch per message — a fifth of a batched consumer's rate. A lost ack is a
            // redelivery, which the dedup record absorbs.
            let _ = futures_util::FutureExt::now_or_never(acker.ack(BasicAckOptions::default()));
        }
    }

    /// Back to the queue now. A reject, not a nack: every RabbitMQ version counts a reject
    /// as a delivery attempt (4.x no longer counts a nack), so the delivery limit still holds.
    async fn requeue(&self) {
        if let Some(acker) = &self.acker {
            let _ = acker.reject(BasicRejectOptions { requeue: true }).await;
        }
    }

    /// Settles a stream message, committing the group's offset when one is due.
    async fn settle_stream(&self) {
        if let Some((tracker, offset)) = &self.stream {
            let due = tracker.lock().expect("tracker lock").settle(*offset);
            if let Some(point) = due {
                commit(&self.rabbit, tracker, point).await;
            }
        }
    }

    /// A stream message comes back to this worker after `delay`, its offset held meanwhile.
    fn retry_stream(self, delay: Duration) {
        let Some((tracker, offset)) = &self.stream else {
            return;
        };
        tracker.lock().expect("tracker lock").retries.push((
            Instant::now() + delay,
            Redelivery {
                offset: *offset,
                headers: self.headers.clone(),
                payload: self.payload.clone(),
                delivered: self.delivered.saturating_add(1),
            },
        ));
    }

    /// Republishes to the queue's delay queue, then acknowledges; requeues at once if the
    /// delay queue cannot take it.
    async fn delay(&self, delay: Duration) {
        let step = delay_step(delay);
        let queue = match self.rabbit.delay_queue(&self.queue, step).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "no delay queue; requeueing now");
                return self.requeue().await;
            }
        };
        // The broker's records of this delivery are not carried over; the attempts so far
        // travel in ours.
        let mut table = FieldTable::default();
        if let Some(original) = self.properties.headers() {
            for (name, value) in original {
                if !broker_header(name.as_str()) {
                    table.insert(name.clone(), value.clone());
                }
            }
        }
        table.insert(
            ATTEMPTS_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(self.delivered)),
        );
        let properties = self.properties.clone().with_headers(table);
        match self
            .rabbit
            .publish_internal("", &queue, properties, &self.payload)
            .await
        {
            Ok(()) => self.ack_only().await,
            Err(e) => {
                // Declared again next time, in case it was deleted.
                self.rabbit
                    .inner
                    .delay_queues
                    .lock()
                    .expect("delay queues lock")
                    .remove(&queue);
                tracing::warn!(error = %e, "cannot delay the message; requeueing now");
                self.requeue().await;
            }
        }
    }
}

impl Inbound for RabbitDelivery {
    fn subject(&self) -> &str {
        &self.subject
    }
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn payload(&self) -> &[u8] {
        &self.payload
    }
    fn delivered(&self) -> u32 {
        self.delivered
    }
    async fn ack(self) {
        self.ack_only().await;
        self.settle_stream().await;
    }
    async fn nak(self, delay: Duration) {
        if self.stream.is_some() {
            // A stream cannot requeue: the message waits here, its offset uncommitted.
            self.ack_only().await;
            self.retry_stream(delay);
        } else if delay.is_zero() {
            self.requeue().await;
        } else {
            self.delay(delay).await;
        }
    }
    async fn progress(&self) {}
    async fn dead_letter(self, reason: &str) {
        let (subject, h) = dead_letter_message(&self, reason);
        // Through the dead-letter exchange, whose alternate exchange keeps what no `.dlq`
        // queue takes (a dead letter of a dead letter), so this fails only when the broker
        // cannot store it.
        let result = self
            .rabbit
            .publish_internal(
                DEAD_LETTER_EXCHANGE,
                &subject,
                properties(&h),
                &self.payload,
            )
            .await;
        match result {
            Ok(()) => {
                self.ack_only().await;
                self.settle_stream().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "dead letter not stored; the message comes back in 5 s");
                if self.stream.is_some() {
                    self.ack_only().await;
                    self.retry_stream(Duration::from_secs(5));
                } else {
                    self.delay(Duration::from_secs(5)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_comes_out_of_the_url_and_the_rest_stays() {
        assert_eq!(
            split_prefetch("amqp://u:p@h:5672/%2f").unwrap(),
            ("amqp://u:p@h:5672/%2f".to_string(), 1)
        );
        assert_eq!(
            split_prefetch("amqp://h/%2f?prefetch=16").unwrap(),
            ("amqp://h/%2f".to_string(), 16)
        );
        assert_eq!(
            split_prefetch("amqp://h/%2f?heartbeat=10&prefetch=4&channel_max=8").unwrap(),
            ("amqp://h/%2f?heartbeat=10&channel_max=8".to_string(), 4)
        );
        for bad in ["0", "-1", "many", "70000"] {
            let e = split_prefetch(&format!("amqp://h/%2f?prefetch={bad}")).unwrap_err();
            assert!(e.contains("1 to 65535"), "{e}");
        }
    }

    #[test]
    fn delays_round_up_to_a_one_two_five_ladder() {
        let ms = |n| Duration::from_millis(n);
        assert_eq!(delay_step(Duration::ZERO), ms(100));
        assert_eq!(delay_step(ms(100)), ms(100));
        assert_eq!(delay_step(ms(101)), ms(200));
        assert_eq!(delay_step(ms(300)), ms(500));
        assert_eq!(delay_step(ms(999)), ms(1000));
        assert_eq!(delay_step(ms(37_000)), ms(50_000));
        assert_eq!(delay_step(Duration::from_secs(3600)), ms(5_000_000));
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1/%2f"), "amqp://127.0.0.1/%2f");
    }

    #[test]
    fn a_stream_group_commits_the_lowest_unsettled_offset() {
        let mut t = Tracker {
            offsets_queue: "q".into(),
            start: StartAt::First,
            in_flight: BTreeSet::from([3, 4, 5]),
            next: Some(6),
            retries: Vec::new(),
            settled_since_commit: 0,
            last_commit: None,
            committed: None,
        };
        // 4 settled, 3 still out: the group must read 3 again after a crash.
        assert_eq!(t.settle(4), Some(3));
        // Committed once the broker confirms it; then nothing new to commit.
        t.committed = Some(3);
        assert_eq!(t.commit_point(), None, "unchanged");
        t.in_flight.remove(&3);
        t.in_flight.remove(&5);
        assert_eq!(
            t.commit_point(),
            Some(6),
            "all settled: one past the last read"
        );
    }
}
