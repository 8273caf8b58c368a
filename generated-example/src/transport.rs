//! Where the example's events travel: the embedded bus (the default) or NATS JetStream, behind
//! one publishing sink and one subscription type, so the services' code is the same on both.

use pactum::messaging::bus::{Bus, EventSink, Headers, PublishError, Published, StartAt};
use pactum::messaging::consumer::Inbound;
use pactum::messaging::nats::{Group, Nats, NatsDelivery};
use pactum::ConsumerInfo;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The broker.
#[derive(Clone)]
pub enum Broker {
    /// In-process, nothing to run.
    Embedded(Bus),
    /// A NATS server with JetStream.
    Nats(Box<Nats>),
}

/// Publishes through a [`Broker`], delivering chosen subjects twice (a second copy under
/// another broker id, as a broker does when an ack is lost) to show consumers skipping them.
#[derive(Clone)]
pub struct Sink {
    broker: Broker,
    duplicate: Arc<Mutex<BTreeSet<String>>>,
}

impl Sink {
    /// A sink over `broker` that duplicates nothing yet.
    pub fn new(broker: Broker) -> Self {
        Sink {
            broker,
            duplicate: Arc::default(),
        }
    }

    /// Delivers every event published on `subject` twice from now on.
    pub fn duplicate(&self, subject: &str) {
        self.duplicate
            .lock()
            .expect("sink lock")
            .insert(subject.to_string());
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    async fn send_once(
        &self,
        subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Published, PublishError> {
        self.broker.send(subject, headers, payload).await
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
            Broker::Nats(nats) => nats.send(subject, headers, payload).await,
        }
    }
}

impl EventSink for Sink {
    async fn send(
        &self,
        subject: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Published, PublishError> {
        let twice = self.duplicate.lock().expect("sink lock").contains(subject);
        // Inside a PostgreSQL consumer: into its outbox (the copy as a second row under
        // another broker id), published by the relay after the commit.
        if let Some(msg_id) = headers
            .get(pactum::messaging::bus::headers::MSG_ID)
            .cloned()
        {
            let row = |msg_id: String| {
                let mut headers = headers.clone();
                headers.insert(
                    pactum::messaging::bus::headers::MSG_ID.into(),
                    msg_id.clone(),
                );
                pactum::store::outbox::Row {
                    subject: subject.to_string(),
                    ordering_key: headers
                        .get(pactum::messaging::bus::headers::SUBJECT)
                        .cloned(),
                    msg_id,
                    headers,
                    payload: payload.clone(),
                }
            };
            if crate::flow::defer(crate::flow::EVENT_OUTBOX, row(msg_id.clone())) {
                if twice {
                    crate::flow::defer(
                        crate::flow::EVENT_OUTBOX,
                        row(format!("{msg_id}#redelivered")),
                    );
                }
                return Ok(Published {
                    sequence: 0,
                    duplicate: false,
                });
            }
        }
        let first = self
            .send_once(subject, headers.clone(), payload.clone())
            .await?;
        if twice && !first.duplicate {
            let mut copy = headers;
            if let Some(id) = copy.get_mut(pactum::messaging::bus::headers::MSG_ID) {
                id.push_str("#redelivered");
            }
            self.send_once(subject, copy, payload).await?;
        }
        Ok(first)
    }
}

/// The JetStream stream holding `subject`: its name in capitals, dots as underscores.
pub fn stream_name(subject: &str) -> String {
    subject.replace('.', "_").to_uppercase()
}

/// One consumer group's subscription.
pub enum Source {
    /// On the embedded bus.
    Embedded {
        /// The bus.
        bus: Bus,
        /// Subject read.
        subject: &'static str,
        /// Group name.
        group: &'static str,
    },
    /// On JetStream.
    Nats(Box<Group>),
}

impl Source {
    /// Joins the group a contract's `consumes` entry describes, creating the stream if needed.
    pub async fn join(broker: &Broker, info: &ConsumerInfo) -> Result<Source, String> {
        match broker {
            Broker::Embedded(bus) => {
                // A queue keeps only what is waiting, as a JetStream work-queue stream does.
                if info.delivery == pactum::DeliveryMode::Queue {
                    bus.configure(
                        info.subject,
                        pactum::messaging::bus::StreamSettings {
                            retention: pactum::messaging::bus::Retention::WorkQueue,
                            ..pactum::messaging::bus::StreamSettings::default()
                        },
                    );
                }
                bus.join(info.subject, info.group, StartAt::New);
                Ok(Source::Embedded {
                    bus: bus.clone(),
                    subject: info.subject,
                    group: info.group,
                })
            }
            Broker::Nats(nats) => {
                let stream = stream_name(info.subject);
                nats.ensure_stream(
                    &stream,
                    info.subject,
                    info.delivery,
                    Duration::from_secs(120),
                )
                .await
                .map_err(|e| e.to_string())?;
                let group = nats
                    .join(
                        &stream,
                        info.subject,
                        info.group,
                        StartAt::New,
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Source::Nats(Box::new(group)))
            }
        }
    }

    /// The next delivery.
    pub async fn next(&mut self) -> Result<Message, String> {
        match self {
            Source::Embedded {
                bus,
                subject,
                group,
            } => Ok(Message::Embedded(bus.next(subject, group).await)),
            Source::Nats(group) => group
                .next()
                .await
                .map(|d| Message::Nats(Box::new(d)))
                .map_err(|e| e.to_string()),
        }
    }
}

/// A delivery from either broker.
pub enum Message {
    /// From the embedded bus.
    Embedded(pactum::messaging::bus::Delivery),
    /// From JetStream.
    Nats(Box<NatsDelivery>),
}

impl Inbound for Message {
    fn subject(&self) -> &str {
        match self {
            Message::Embedded(d) => Inbound::subject(d),
            Message::Nats(d) => d.subject(),
        }
    }
    fn headers(&self) -> &Headers {
        match self {
            Message::Embedded(d) => Inbound::headers(d),
            Message::Nats(d) => d.headers(),
        }
    }
    fn payload(&self) -> &[u8] {
        match self {
            Message::Embedded(d) => Inbound::payload(d),
            Message::Nats(d) => d.payload(),
        }
    }
    fn delivered(&self) -> u32 {
        match self {
            Message::Embedded(d) => Inbound::delivered(d),
            Message::Nats(d) => d.delivered(),
        }
    }
    async fn ack(self) {
        match self {
            Message::Embedded(d) => Inbound::ack(d).await,
            Message::Nats(d) => d.ack().await,
        }
    }
    async fn nak(self, delay: Duration) {
        match self {
            Message::Embedded(d) => Inbound::nak(d, delay).await,
            Message::Nats(d) => d.nak(delay).await,
        }
    }
    async fn progress(&self) {
        match self {
            Message::Embedded(d) => Inbound::progress(d).await,
            Message::Nats(d) => d.progress().await,
        }
    }
    async fn dead_letter(self, reason: &str) {
        match self {
            Message::Embedded(d) => Inbound::dead_letter(d, reason).await,
            Message::Nats(d) => d.dead_letter(reason).await,
        }
    }
}
