//! AsyncAPI 3.0, one document per contract major version that publishes, consumes or sends
//! webhooks.
//!
//! The document describes what the runtime puts on the wire (see `pactum::messaging::bus::event_message`
//! and `pactum::webhook`): one channel per broker subject, CloudEvents attributes as message
//! headers with the payload as JSON, a `.dlq` channel where a consumer dead-letters, and one
//! channel per webhook whose address is the subscriber's URL (unknown here, so `null`).
//! Delivery mode, consumer group and retry policy have no AsyncAPI field of their own; they
//! are `x-pactum-*` extensions on the operation. AMQP bindings (0.3.0) say how the same
//! channels look on RabbitMQ: each subject a routing key on the events topic exchange (dead
//! letters on the dead-letter exchange), persistent publishes, acknowledged receives; the queue a group reads from, which AMQP's operation binding has no field for,
//! is `x-pactum-amqp-queue`. The layout is `templates/asyncapi.yaml`;
//! JSON Schema fragments come from `json_schema`.

use super::json_schema::{per_contract, q, Flavour, Schemas};
use super::GeneratedFile;
use crate::ir::{Consumer, Contract, ContractId, Delivery, EventDef, Field, Ir, Retry};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(askama::Template)]
#[template(path = "asyncapi.yaml", escape = "none")]
struct Document {
    source: String,
    title: String,
    version: String,
    description: String,
    owner: String,
    channels: Vec<Channel>,
    operations: Vec<OpItem>,
    messages: Vec<(String, String)>,
    schemas: Vec<(String, String)>,
}

struct Channel {
    id: String,
    address: String,
    description: String,
    messages: Vec<(String, String)>,
    /// The channel's bindings object, if it has one (JSON).
    bindings: Option<String>,
}

/// AMQP bindings version this document writes.
const AMQP_BINDING: &str = "0.3.0";

/// The AMQP channel binding of a subject: a routing key on `exchange`.
fn amqp_channel(exchange: &str) -> Value {
    json!({"amqp": {
        "is": "routingKey",
        "exchange": {"name": exchange, "type": "topic", "durable": true, "autoDelete": false, "vhost": "/"},
        "bindingVersion": AMQP_BINDING,
    }})
}

/// The AMQP operation binding of a publish: persistent and timestamped. An event is not
/// mandatory (the exchange's alternate exchange keeps what no queue takes); a dead letter is
/// (it must reach its `.dlq` queue, or stay with the consumer).
fn amqp_send(mandatory: bool) -> Value {
    json!({"deliveryMode": 2, "mandatory": mandatory, "timestamp": true, "bindingVersion": AMQP_BINDING})
}

struct OpItem {
    id: String,
    action: &'static str,
    channel: String,
    summary: String,
    messages: String,
    fields: Vec<(String, String)>,
}

/// One AsyncAPI document per contract with events, consumers or webhooks:
/// `<service>.v<major>.asyncapi.yaml`, a name that cannot clash with the OpenAPI document when
/// both go to one directory.
pub fn documents(ir: &Ir) -> Result<Vec<GeneratedFile>, String> {
    per_contract(
        ir,
        |c| !c.events.is_empty() || !c.consumers.is_empty() || !c.webhooks.is_empty(),
        ".asyncapi.yaml",
        "AsyncAPI",
        |c| Builder::new(ir, c).build(),
    )
}

/// Channel and operation ids may only hold `[A-Za-z0-9_-]` in every tool we checked.
fn id_part(s: &str) -> String {
    s.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

fn retry_value(r: &Retry) -> Value {
    json!({
        "attempts": r.attempts,
        "initialBackoffMs": r.initial_ns as f64 / 1e6,
        "maxBackoffMs": r.max_ns as f64 / 1e6,
        "fullJitter": r.jitter == crate::ir::Jitter::Full,
    })
}

/// The headers `pactum::messaging::bus::event_message` writes, as a JSON Schema object.
fn event_headers(owner: &ContractId, e: &EventDef, dead_letter: bool) -> Value {
    let mut props = json!({
        "ce-id": {"type": "string", "description": "CloudEvents id, chosen by the publisher. With ce-source, the consumer's dedup key."},
        "ce-source": {"type": "string", "const": owner.service},
        "ce-type": {"type": "string", "const": pactum_rules::subject::event_type(&owner.service, &e.name, e.version.into())},
        "ce-specversion": {"type": "string", "const": "1.0"},
        "ce-time": {"type": "string", "format": "date-time"},
        "content-type": {"type": "string", "const": "application/json"},
        "Nats-Msg-Id": {"type": "string", "description": "`<ce-source>/<ce-id>`: a publisher's retry is stored once."},
        "traceparent": {"type": "string", "description": "W3C trace context of the publisher.", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
        "tracestate": {"type": "string"},
        "pactum-deadline": {"type": "string", "pattern": "^[0-9]+$", "description": "Absolute deadline in milliseconds since the Unix epoch; a consumer does not process the event after it."},
    });
    let mut required = vec![
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-specversion",
        "ce-time",
        "content-type",
        "Nats-Msg-Id",
    ];
    if let Some(key) = &e.key {
        props["ce-subject"] =
            json!({"type": "string", "description": format!("Ordering key: the event's `{key}`.")});
        required.push("ce-subject");
    }
    if dead_letter {
        props["pactum-dead-letter-reason"] = json!({"type": "string", "description": "Why the consumer gave up: the handler's last error, or why the message could not be decoded."});
        required.push("pactum-dead-letter-reason");
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// Builds one document; `schemas` collects the payload and type schemas as it goes.
struct Builder<'a> {
    ir: &'a Ir,
    home: &'a Contract,
    schemas: Schemas<'a>,
    channels: BTreeMap<String, Channel>,
    operations: Vec<OpItem>,
    messages: BTreeMap<String, Value>,
    payloads: BTreeMap<String, Value>,
}

impl<'a> Builder<'a> {
    fn new(ir: &'a Ir, home: &'a Contract) -> Self {
        Builder {
            ir,
            home,
            schemas: Schemas::new(ir, home, Flavour::AsyncApi),
            channels: BTreeMap::new(),
            operations: Vec::new(),
            messages: BTreeMap::new(),
            payloads: BTreeMap::new(),
        }
    }

    /// Component name of something owned by `owner`: plain at home, qualified otherwise.
    fn name(&self, owner: &ContractId, name: &str) -> String {
        if *owner == self.home.id {
            name.to_string()
        } else {
            format!("{}.v{}.{}", owner.service, owner.major, name)
        }
    }

    fn payload(&mut self, component: &str, fields: &[Field], docs: Option<&str>) -> Value {
        if !self.payloads.contains_key(component) {
            let schema = self.schemas.object(fields, docs, false);
            self.payloads.insert(component.to_string(), schema);
        }
        json!({"$ref": format!("#/components/schemas/{component}")})
    }

    /// Adds the channel for an event's subject (or its dead-letter subject) with its message,
    /// and returns the channel id and the message key within it.
    fn event_channel(&mut self, owner: &ContractId, e: &EventDef, dead: bool) -> (String, String) {
        let component = self.name(owner, &e.name);
        let payload = self.payload(&component, &e.fields, e.docs.as_deref());
        let (address, message) = if dead {
            (
                format!("{}.dlq", e.subject),
                format!("{component}.DeadLettered"),
            )
        } else {
            (e.subject.clone(), component.clone())
        };
        let id = id_part(&address);
        if !self.messages.contains_key(&message) {
            let mut m = json!({
                "name": e.name,
                "title": format!("{} v{}", e.name, e.version),
                "contentType": "application/json",
                "headers": event_headers(owner, e, dead),
                "payload": payload,
                "x-pactum-delivery": e.delivery.as_str(),
                "bindings": {"amqp": {
                    "messageType": pactum_rules::subject::event_type(&owner.service, &e.name, e.version.into()),
                    "bindingVersion": AMQP_BINDING,
                }},
            });
            if let Some(d) = &e.docs {
                m["summary"] = json!(d.trim().lines().next().unwrap_or(""));
                m["description"] = json!(d.trim());
            }
            if let Some(key) = &e.key {
                m["x-pactum-ordering-key"] = json!(key);
            }
            if let Some(why) = &e.deprecated {
                m["x-pactum-deprecated"] = json!(why);
            }
            self.messages.insert(message.clone(), m);
        }
        let description = if dead {
            format!(
                "Dead letters of `{}`: the original headers and body, plus the reason.",
                e.subject
            )
        } else {
            format!(
                "`{}.{}` v{}, delivered as `{}`.",
                owner.service,
                e.name,
                e.version,
                e.delivery.as_str()
            )
        };
        let key = id_part(&message);
        let exchange = if dead {
            pactum_rules::subject::AMQP_DEAD_LETTER_EXCHANGE
        } else {
            pactum_rules::subject::AMQP_EVENTS_EXCHANGE
        };
        self.channels.entry(id.clone()).or_insert_with(|| Channel {
            id: q(&id),
            address: q(&address),
            description: q(&description),
            messages: vec![(
                q(&key),
                json!({"$ref": format!("#/components/messages/{message}")}).to_string(),
            )],
            bindings: Some(amqp_channel(exchange).to_string()),
        });
        (id, key)
    }

    fn operation(
        &mut self,
        id: String,
        action: &'static str,
        (channel, message): (String, String),
        summary: String,
        fields: Vec<(String, String)>,
    ) {
        self.operations.push(OpItem {
            id: q(&id),
            action,
            channel: json!({"$ref": format!("#/channels/{channel}")}).to_string(),
            summary: q(&summary),
            messages: json!([{"$ref": format!("#/channels/{channel}/messages/{message}")}])
                .to_string(),
            fields,
        });
    }

    fn publish(&mut self, e: &'a EventDef) {
        let owner = self.home.id.clone();
        let at = self.event_channel(&owner, e, false);
        let mut fields = vec![("x-pactum-delivery".to_string(), q(e.delivery.as_str()))];
        if let Some(why) = &e.deprecated {
            fields.push(("x-pactum-deprecated".into(), q(why)));
        }
        fields.push((
            "bindings".into(),
            json!({"amqp": amqp_send(false)}).to_string(),
        ));
        let summary = format!("{} publishes {} v{}.", owner.service, e.name, e.version);
        self.operation(format!("publish_{}", at.0), "send", at, summary, fields);
    }

    fn consume(&mut self, c: &'a Consumer) {
        let Some(e) = self
            .ir
            .contracts
            .iter()
            .find(|o| o.id == c.event.contract)
            .and_then(|o| o.events.iter().find(|e| e.name == c.event.name))
        else {
            // The validator resolves every consumed event; nothing to describe otherwise.
            return;
        };
        let owner = c.event.contract.clone();
        let at = self.event_channel(&owner, e, false);
        let mut fields = vec![
            ("x-pactum-group".to_string(), q(&c.group)),
            ("x-pactum-delivery".to_string(), q(c.delivery.as_str())),
            (
                "x-pactum-dead-letter".to_string(),
                json!(c.dead_letter).to_string(),
            ),
        ];
        if let Some(d) = &c.docs {
            fields.push(("description".into(), q(d.trim())));
        }
        if let Some(r) = &c.retry {
            fields.push(("x-pactum-retry".into(), retry_value(r).to_string()));
        }
        fields.push((
            "x-pactum-amqp-queue".into(),
            q(&pactum_rules::subject::amqp_queue(
                &e.subject, &c.group, c.delivery,
            )),
        ));
        fields.push((
            "x-pactum-amqp-queue-type".into(),
            q(pactum_rules::subject::amqp_queue_type(c.delivery)),
        ));
        let mut bindings = json!({"amqp": {"ack": true, "bindingVersion": AMQP_BINDING}});
        if c.delivery == Delivery::Queue {
            // NATS queue groups are the one consumer-group notion AsyncAPI has a field for.
            bindings["nats"] = json!({"queue": c.group, "bindingVersion": "0.1.0"});
        }
        fields.push(("bindings".into(), bindings.to_string()));
        let summary = format!(
            "{} consumes {}.{} v{} as group `{}`, each event applied once.",
            self.home.id.service, owner.service, e.name, e.version, c.group
        );
        let base = format!("{}_{}", at.0, id_part(&c.group));
        self.operation(format!("consume_{base}"), "receive", at, summary, fields);
        if c.dead_letter {
            let dlq = self.event_channel(&owner, e, true);
            let summary = format!(
                "Group `{}` dead-letters what it cannot process, with the reason.",
                c.group
            );
            self.operation(
                format!("dead_letter_{base}"),
                "send",
                dlq,
                summary,
                vec![(
                    "bindings".into(),
                    json!({"amqp": amqp_send(true)}).to_string(),
                )],
            );
        }
    }

    fn webhook(&mut self, w: &'a crate::ir::WebhookDef) {
        let component = self.name(&self.home.id.clone(), &w.name);
        let data = self.payload(&component, &w.fields, w.docs.as_deref());
        let message = format!("{component}.Webhook");
        let envelope = json!({
            "type": "object",
            "properties": {
                "type": {"type": "string", "const": w.wire_type},
                "timestamp": {"type": "string", "format": "date-time", "description": "When the payload was produced, not when this attempt was sent."},
                "data": data,
            },
            "required": ["type", "timestamp", "data"],
        });
        let headers = json!({
            "type": "object",
            "properties": {
                "webhook-id": {"type": "string", "description": "One id per message, the same on every attempt; receivers dedup by it."},
                "webhook-timestamp": {"type": "string", "pattern": "^[0-9]+$", "description": "Unix seconds of this attempt; receivers refuse it outside their tolerance."},
                "webhook-signature": {"type": "string", "description": "Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per active secret."},
                "content-type": {"type": "string", "const": "application/json"},
            },
            "required": ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"],
        });
        let mut m = json!({
            "name": w.name,
            "title": format!("{} v{}", w.name, w.version),
            "contentType": "application/json",
            "headers": headers,
            "payload": envelope,
        });
        if let Some(d) = &w.docs {
            m["summary"] = json!(d.trim().lines().next().unwrap_or(""));
        }
        self.messages.insert(message.clone(), m);
        let id = format!("webhook_{}", id_part(&w.wire_type));
        let key = id_part(&message);
        self.channels.insert(
            id.clone(),
            Channel {
                id: q(&id),
                address: "null".into(),
                description: q(&format!(
                    "The subscriber's URL: `{}` webhooks are POSTed there, signed per Standard \
                     Webhooks, retried with backoff; 410 Gone disables the endpoint.",
                    w.wire_type
                )),
                messages: vec![(
                    q(&key),
                    json!({"$ref": format!("#/components/messages/{message}")}).to_string(),
                )],
                bindings: None,
            },
        );
        let summary = format!("{} sends the {} webhook.", self.home.id.service, w.name);
        let fields = vec![(
            "bindings".to_string(),
            json!({"http": {"method": "POST", "bindingVersion": "0.3.0"}}).to_string(),
        )];
        self.operation(format!("send_{id}"), "send", (id, key), summary, fields);
    }

    fn build(mut self) -> Document {
        let home = self.home;
        for e in &home.events {
            self.publish(e);
        }
        for c in &home.consumers {
            self.consume(c);
        }
        for w in &home.webhooks {
            self.webhook(w);
        }
        let mut schemas = std::mem::take(&mut self.payloads);
        // Only the types the messages reach: a document about events need not list every
        // REST request type of the contract.
        self.schemas.referenced(&mut schemas);
        Document {
            source: home.source.to_string_lossy().replace('\\', "/"),
            title: q(&home.id.service),
            version: q(&home.version),
            description: q(home.docs.as_deref().unwrap_or("").trim()),
            owner: q(&home.owner),
            channels: self.channels.into_values().collect(),
            operations: self.operations,
            messages: self
                .messages
                .into_iter()
                .map(|(k, v)| (q(&k), v.to_string()))
                .collect(),
            schemas: schemas
                .into_iter()
                .map(|(k, v)| (q(&k), v.to_string()))
                .collect(),
        }
    }
}
