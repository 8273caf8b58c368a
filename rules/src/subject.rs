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
