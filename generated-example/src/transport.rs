//! Where the example's events travel: the embedded bus (the default) or NATS JetStream, as
//! the runtime's [`Broker`] (one sink, one source, chosen at run time). [`Sink`] adds what
//! only the example needs: duplicated deliveries on chosen subjects, and publishes deferred
//! into a PostgreSQL consumer's outbox.

use pactum::messaging::bus::{EventSink, Headers, PublishError, Published};
pub use pactum::messaging::Broker;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

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
