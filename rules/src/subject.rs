//! How an event version is named on the wire: one subject and one CloudEvents `type` per
//! event version, the same whether the event comes from a contract or from
//! `#[derive(pactum::Event)]`.

use heck::ToSnakeCase;

/// The subject an event version is published on: `<service>.<event_snake>.v<version>`.
pub fn event_subject(service: &str, event: &str, version: u64) -> String {
    format!("{service}.{}.v{version}", event.to_snake_case())
}

/// The CloudEvents `type` of an event version: `<service>.<Event>.v<version>`.
pub fn event_type(service: &str, event: &str, version: u64) -> String {
    format!("{service}.{event}.v{version}")
}

/// RabbitMQ: the durable topic exchange events are published to, with the subject as the
/// routing key. The runtime declares it; AsyncAPI documents name it in their AMQP bindings.
pub const AMQP_EVENTS_EXCHANGE: &str = "pactum.events";

/// RabbitMQ: the topic exchange dead letters go through, routed by `<subject>.dlq` to the
/// queue of that name.
pub const AMQP_DEAD_LETTER_EXCHANGE: &str = "pactum.dead-letters";

/// RabbitMQ: the queue consumer group `group` reads `subject` from. A work queue and a stream
/// are the subject's own, shared by every group; a pub/sub group has a queue of its own.
pub fn amqp_queue(subject: &str, group: &str, delivery: crate::modes::DeliveryMode) -> String {
    match delivery {
        crate::modes::DeliveryMode::Pubsub => format!("{subject}.{group}"),
        crate::modes::DeliveryMode::Queue | crate::modes::DeliveryMode::Stream => {
            subject.to_string()
        }
    }
}

/// RabbitMQ: the queue type `delivery` is declared as (`x-queue-type`).
pub fn amqp_queue_type(delivery: crate::modes::DeliveryMode) -> &'static str {
    match delivery {
        crate::modes::DeliveryMode::Stream => "stream",
        crate::modes::DeliveryMode::Queue | crate::modes::DeliveryMode::Pubsub => "quorum",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subject_is_snake_and_type_keeps_the_name() {
        assert_eq!(
            super::event_subject("orders", "OrderPlaced", 2),
            "orders.order_placed.v2"
        );
        assert_eq!(
            super::event_type("orders", "OrderPlaced", 2),
            "orders.OrderPlaced.v2"
        );
    }
}
