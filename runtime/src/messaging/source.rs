//! The subscribe side, as [`EventSink`] is the publish side: a broker a consumer group joins
//! ([`EventSource`]), the group's deliveries ([`Subscription`]), and [`Broker`], the embedded
//! bus, JetStream or RabbitMQ chosen at run time, which is both.
//!
//! A consumer joins from the contract's `consumes` entry ([`ConsumerInfo`]): its subject,
//! group and delivery mode decide the stream (a work queue keeps only what is waiting, a
//! stream or pub/sub subject keeps history) and the durable group, so every replica of a
//! service subscribes the same way.

use super::bus::{Bus, Delivery, EventSink, Headers, PublishError, Published, StartAt};
use super::consumer::Inbound;
use crate::{ConsumerInfo, DeliveryMode};
use std::future::Future;
use std::time::Duration;

/// How a group is joined when it does not exist yet.
#[derive(Clone, Copy, Debug)]
pub struct Subscribe {
    /// Where a new group starts reading. Default: new messages only.
    pub start: StartAt,
    /// How long a delivery may stay unacknowledged before it goes to another worker.
    /// Default 30 s.
    pub ack_wait: Duration,
    /// How long the broker remembers message ids to drop republished duplicates (JetStream's
    /// duplicate window). Default 2 min.
    pub duplicate_window: Duration,
    /// How many messages a worker may hold unacknowledged at once (RabbitMQ's `basic.qos`,
    /// JetStream's pull batch). `None`, the default: the broker client's own default — 1,
    /// or for RabbitMQ the `prefetch` parameter of its URL (`amqp://…/%2f?prefetch=16`), so
    /// an operator can tune the consumers a service starts without a code change. 1 keeps a
    /// worker from hoarding a queue's messages while its peers sit idle; a group with one
    /// busy worker, or one consuming in batches, raises it.
    pub prefetch: Option<u16>,
}

impl Default for Subscribe {
    fn default() -> Self {
        Subscribe {
            start: StartAt::New,
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            prefetch: None,
        }
    }
}

/// Joining or reading a group failed (the broker is unreachable, or refused the stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError(pub String);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

/// A broker consumer groups join.
pub trait EventSource: Send + Sync {
    /// One group's deliveries.
    type Subscription: Subscription;

    /// Joins the group `info` describes, creating its stream if needed.
    fn subscribe(
        &self,
        info: &ConsumerInfo,
        options: &Subscribe,
    ) -> impl Future<Output = Result<Self::Subscription, SourceError>> + Send;
}

/// One consumer group's deliveries, one at a time.
pub trait Subscription: Send {
    /// A delivery, settled through [`Inbound`].
    type Message: Inbound + 'static;

    /// The next delivery; waits for one. An error is the broker's, not the message's: call
    /// again (JetStream pulls past a missed heartbeat by itself). Dropping the future before
    /// it completes loses nothing: a message not yet returned stays with the subscription.
    fn next(&mut self) -> impl Future<Output = Result<Self::Message, SourceError>> + Send;

    /// Hands back what was received but not yet returned by [`next`](Self::next) (a
    /// prefetched batch), so another worker gets it now rather than after its ack wait. Called
    /// by [`consume`] when it stops.
    fn release(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Waits for one delivery, then adds those already received, up to `max`, without
    /// waiting for more: a batch for `process_batch`. Brokers that prefetch override it; the
    /// default returns one.
    fn next_batch(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Self::Message>, SourceError>> + Send {
        let _ = max;
        async move { Ok(vec![self.next().await?]) }
    }
}

/// Runs a consumer loop until `shutdown` starts: takes each delivery from `source` and awaits
/// `each` on it (which processes and settles it — `consumer.process(delivery)`). Once the
/// shutdown starts no new delivery is taken; the one `each` holds is finished, never cut, and
/// what was prefetched is [released](Subscription::release). A broker error is logged and the
/// pull tried again, with backoff up to 2 s. Spawn it with [`Shutdown::spawn`] so the
/// shutdown's drain waits for it.
///
/// [`Shutdown::spawn`]: crate::shutdown::Shutdown::spawn
pub async fn consume<S, F>(mut source: S, shutdown: crate::shutdown::Shutdown, mut each: F)
where
    S: Subscription,
    F: AsyncFnMut(S::Message),
{
    let mut pause = Duration::from_millis(50);
    loop {
        // `biased`: a shutdown that has started wins over a delivery that is also ready.
        let next = tokio::select! {
            biased;
            () = shutdown.triggered() => break,
            next = source.next() => next,
        };
        match next {
            Ok(delivery) => {
                pause = Duration::from_millis(50);
                each(delivery).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the next delivery; trying again");
                tokio::select! {
                    () = shutdown.triggered() => break,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
    source.release().await;
}

/// The JetStream stream holding `subject`: its name in capitals, dots as underscores.
pub fn stream_name(subject: &str) -> String {
    subject.replace('.', "_").to_uppercase()
}

/// A group on the embedded bus.
pub struct BusSubscription {
    bus: Bus,
    subject: String,
    group: String,
}

impl EventSource for Bus {
    type Subscription = BusSubscription;

    async fn subscribe(
        &self,
        info: &ConsumerInfo,
        options: &Subscribe,
    ) -> Result<BusSubscription, SourceError> {
        // A queue keeps only what is waiting, as a JetStream work-queue stream does.
        if info.delivery == DeliveryMode::Queue {
            self.configure(
                info.subject,
                super::bus::StreamSettings {
                    retention: super::bus::Retention::WorkQueue,
                    ..super::bus::StreamSettings::default()
                },
            );
        }
        self.join(info.subject, info.group, options.start);
        Ok(BusSubscription {
            bus: self.clone(),
            subject: info.subject.to_string(),
            group: info.group.to_string(),
        })
    }
}

impl Subscription for BusSubscription {
    type Message = Delivery;

    async fn next(&mut self) -> Result<Delivery, SourceError> {
        Ok(self.bus.next(&self.subject, &self.group).await)
    }

    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, SourceError> {
        let mut batch = vec![self.bus.next(&self.subject, &self.group).await];
        // `Bus::next` takes nothing until it returns, so giving up on it loses nothing.
        while batch.len() < max {
            match futures_util::FutureExt::now_or_never(self.bus.next(&self.subject, &self.group)) {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        Ok(batch)
    }
}

#[cfg(feature = "nats")]
impl EventSource for super::nats::Nats {
    type Subscription = super::nats::Group;

    async fn subscribe(
        &self,
        info: &ConsumerInfo,
        options: &Subscribe,
    ) -> Result<super::nats::Group, SourceError> {
        let stream = stream_name(info.subject);
        let failed = |e: super::nats::NatsError| SourceError(e.to_string());
        self.ensure_stream(
            &stream,
            info.subject,
            info.delivery,
            options.duplicate_window,
        )
        .await
        .map_err(failed)?;
        self.join_prefetching(
            &stream,
            info.subject,
            info.group,
            options.start,
            options.ack_wait,
            usize::from(options.prefetch.unwrap_or(1)),
        )
        .await
        .map_err(failed)
    }
}

#[cfg(feature = "nats")]
impl Subscription for super::nats::Group {
    type Message = super::nats::NatsDelivery;

    async fn next(&mut self) -> Result<super::nats::NatsDelivery, SourceError> {
        super::nats::Group::next(self)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }

    async fn release(&mut self) {
        super::nats::Group::release(self).await
    }

    async fn next_batch(
        &mut self,
        max: usize,
    ) -> Result<Vec<super::nats::NatsDelivery>, SourceError> {
        super::nats::Group::next_batch(self, max)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }
}

#[cfg(feature = "rabbitmq")]
impl EventSource for super::rabbitmq::RabbitMq {
    type Subscription = super::rabbitmq::Group;

    async fn subscribe(
        &self,
        info: &ConsumerInfo,
        options: &Subscribe,
    ) -> Result<super::rabbitmq::Group, SourceError> {
        self.join(
            info.subject,
            info.group,
            info.delivery,
            options.start,
            options.prefetch.unwrap_or_else(|| self.default_prefetch()),
        )
        .await
        .map_err(|e| SourceError(e.to_string()))
    }
}

#[cfg(feature = "rabbitmq")]
impl Subscription for super::rabbitmq::Group {
    type Message = super::rabbitmq::RabbitDelivery;

    async fn next(&mut self) -> Result<super::rabbitmq::RabbitDelivery, SourceError> {
        super::rabbitmq::Group::next(self)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }

    async fn release(&mut self) {
        super::rabbitmq::Group::release(self).await
    }

    async fn next_batch(
        &mut self,
        max: usize,
    ) -> Result<Vec<super::rabbitmq::RabbitDelivery>, SourceError> {
        super::rabbitmq::Group::next_batch(self, max)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }
}

/// The embedded bus, a JetStream connection or a RabbitMQ connection, chosen at run time (a flag, an environment
/// variable), behind one sink and one source so the service's code is the same on each.
#[derive(Clone)]
pub enum Broker {
    /// In process, nothing to run.
    Embedded(Bus),
    /// A NATS server with JetStream.
    #[cfg(feature = "nats")]
    Nats(Box<super::nats::Nats>),
    /// A RabbitMQ broker.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(Box<super::rabbitmq::RabbitMq>),
}

impl Broker {
    /// The broker's name, for probes and logs: `bus`, `nats` or `rabbitmq`.
    pub fn name(&self) -> &'static str {
        match self {
            Broker::Embedded(_) => "bus",
            #[cfg(feature = "nats")]
            Broker::Nats(_) => "nats",
            #[cfg(feature = "rabbitmq")]
            Broker::RabbitMq(_) => "rabbitmq",
        }
    }

    /// For a readiness probe: `Ok` when the broker is reachable now (the embedded bus always
    /// is). The NATS client reconnects by itself, so its state is read; a RabbitMQ connection
    /// is opened again here if the broker dropped it, since nothing else would for a service
    /// that only consumes.
    pub async fn ready(&self) -> Result<(), String> {
        match self {
            Broker::Embedded(_) => Ok(()),
            #[cfg(feature = "nats")]
            Broker::Nats(nats) => nats
                .is_connected()
                .then_some(())
                .ok_or_else(|| "not connected to NATS (reconnecting)".to_string()),
            #[cfg(feature = "rabbitmq")]
            Broker::RabbitMq(rabbit) => rabbit.reconnect().await.map_err(|e| e.to_string()),
        }
    }
}

impl EventSink for Broker {
    async fn send(
        &self,
        subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Published, PublishError> {
        match self {
            Broker::Embedded(bus) => bus.send(subject, headers, payload).await,
            #[cfg(feature = "nats")]
            Broker::Nats(nats) => nats.send(subject, headers, payload).await,
            #[cfg(feature = "rabbitmq")]
            Broker::RabbitMq(rabbit) => rabbit.send(subject, headers, payload).await,
        }
    }

    async fn send_all(
        &self,
        messages: Vec<(String, Headers, Vec<u8>)>,
    ) -> Vec<Result<Published, PublishError>> {
        match self {
            Broker::Embedded(bus) => bus.send_all(messages).await,
            #[cfg(feature = "nats")]
            Broker::Nats(nats) => nats.send_all(messages).await,
            #[cfg(feature = "rabbitmq")]
            Broker::RabbitMq(rabbit) => rabbit.send_all(messages).await,
        }
    }
}

impl EventSource for Broker {
    type Subscription = BrokerSubscription;

    async fn subscribe(
        &self,
        info: &ConsumerInfo,
        options: &Subscribe,
    ) -> Result<BrokerSubscription, SourceError> {
        Ok(match self {
            Broker::Embedded(bus) => {
                BrokerSubscription::Embedded(bus.subscribe(info, options).await?)
            }
            #[cfg(feature = "nats")]
            Broker::Nats(nats) => {
                BrokerSubscription::Nats(Box::new(nats.subscribe(info, options).await?))
            }
            #[cfg(feature = "rabbitmq")]
            Broker::RabbitMq(rabbit) => {
                BrokerSubscription::RabbitMq(Box::new(rabbit.subscribe(info, options).await?))
            }
        })
    }
}

/// A group on a [`Broker`].
pub enum BrokerSubscription {
    /// On the embedded bus.
    Embedded(BusSubscription),
    /// On JetStream.
    #[cfg(feature = "nats")]
    Nats(Box<super::nats::Group>),
    /// On RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(Box<super::rabbitmq::Group>),
}

impl Subscription for BrokerSubscription {
    type Message = BrokerMessage;

    async fn next(&mut self) -> Result<BrokerMessage, SourceError> {
        match self {
            BrokerSubscription::Embedded(s) => s.next().await.map(BrokerMessage::Embedded),
            #[cfg(feature = "nats")]
            BrokerSubscription::Nats(g) => Subscription::next(&mut **g)
                .await
                .map(|d| BrokerMessage::Nats(Box::new(d))),
            #[cfg(feature = "rabbitmq")]
            BrokerSubscription::RabbitMq(g) => Subscription::next(&mut **g)
                .await
                .map(|d| BrokerMessage::RabbitMq(Box::new(d))),
        }
    }

    async fn next_batch(&mut self, max: usize) -> Result<Vec<BrokerMessage>, SourceError> {
        Ok(match self {
            BrokerSubscription::Embedded(s) => s
                .next_batch(max)
                .await?
                .into_iter()
                .map(BrokerMessage::Embedded)
                .collect(),
            #[cfg(feature = "nats")]
            BrokerSubscription::Nats(g) => Subscription::next_batch(&mut **g, max)
                .await?
                .into_iter()
                .map(|d| BrokerMessage::Nats(Box::new(d)))
                .collect(),
            #[cfg(feature = "rabbitmq")]
            BrokerSubscription::RabbitMq(g) => Subscription::next_batch(&mut **g, max)
                .await?
                .into_iter()
                .map(|d| BrokerMessage::RabbitMq(Box::new(d)))
                .collect(),
        })
    }

    async fn release(&mut self) {
        match self {
            BrokerSubscription::Embedded(s) => s.release().await,
            #[cfg(feature = "nats")]
            BrokerSubscription::Nats(g) => Subscription::release(&mut **g).await,
            #[cfg(feature = "rabbitmq")]
            BrokerSubscription::RabbitMq(g) => Subscription::release(&mut **g).await,
        }
    }
}

/// A delivery from a [`Broker`].
pub enum BrokerMessage {
    /// From the embedded bus.
    Embedded(Delivery),
    /// From JetStream.
    #[cfg(feature = "nats")]
    Nats(Box<super::nats::NatsDelivery>),
    /// From RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(Box<super::rabbitmq::RabbitDelivery>),
}

impl Inbound for BrokerMessage {
    fn subject(&self) -> &str {
        match self {
            BrokerMessage::Embedded(d) => Inbound::subject(d),
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::subject(&**d),
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::subject(&**d),
        }
    }
    fn headers(&self) -> &Headers {
        match self {
            BrokerMessage::Embedded(d) => Inbound::headers(d),
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::headers(&**d),
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::headers(&**d),
        }
    }
    fn payload(&self) -> &[u8] {
        match self {
            BrokerMessage::Embedded(d) => Inbound::payload(d),
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::payload(&**d),
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::payload(&**d),
        }
    }
    fn delivered(&self) -> u32 {
        match self {
            BrokerMessage::Embedded(d) => Inbound::delivered(d),
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::delivered(&**d),
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::delivered(&**d),
        }
    }
    fn pending(&self) -> Option<u64> {
        match self {
            BrokerMessage::Embedded(d) => Inbound::pending(d),
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::pending(&**d),
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::pending(&**d),
        }
    }
    async fn ack(self) {
        match self {
            BrokerMessage::Embedded(d) => Inbound::ack(d).await,
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::ack(*d).await,
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::ack(*d).await,
        }
    }
    async fn nak(self, delay: Duration) {
        match self {
            BrokerMessage::Embedded(d) => Inbound::nak(d, delay).await,
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::nak(*d, delay).await,
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::nak(*d, delay).await,
        }
    }
    async fn progress(&self) {
        match self {
            BrokerMessage::Embedded(d) => Inbound::progress(d).await,
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::progress(&**d).await,
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::progress(&**d).await,
        }
    }
    async fn dead_letter(self, reason: &str) {
        match self {
            BrokerMessage::Embedded(d) => Inbound::dead_letter(d, reason).await,
            #[cfg(feature = "nats")]
            BrokerMessage::Nats(d) => Inbound::dead_letter(*d, reason).await,
            #[cfg(feature = "rabbitmq")]
            BrokerMessage::RabbitMq(d) => Inbound::dead_letter(*d, reason).await,
        }
    }
}
