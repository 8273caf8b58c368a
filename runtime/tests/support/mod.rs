//! What the broker suites (`conformance.rs`, `rabbitmq.rs`) share: the event they carry, the
//! PostgreSQL handler that applies it, and the addresses of the machine's services.

// Each suite uses its own part of this module.
#![allow(dead_code)]

use pactum::messaging::consumer::PgHandler;
use pactum::{ConsumerInfo, Context, DeliveryMode as Mode, Event, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The event every scenario publishes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockReserved {
    pub sku: String,
    pub quantity: i64,
}

impl Event for StockReserved {
    const NAME: &'static str = "StockReserved";
    const VERSION: u32 = 1;
    const SOURCE: &'static str = "inventory";
    const TYPE: &'static str = "inventory.StockReserved.v1";
    const SUBJECT: &'static str = "pactum_test.stock_reserved";
    const DELIVERY: Mode = Mode::Queue;
    fn ordering_key(&self) -> Option<String> {
        Some(self.sku.clone())
    }
}

/// Counts reserved units per SKU in the runner's transaction.
pub struct Reservations {
    pub table: String,
}

impl PgHandler<StockReserved> for Reservations {
    async fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        _ctx: &Context,
        event: StockReserved,
    ) -> Result<(), String> {
        tx.execute(
            &format!(
                "INSERT INTO {} (sku, quantity) VALUES ($1, $2)
                 ON CONFLICT (sku) DO UPDATE SET quantity = {0}.quantity + EXCLUDED.quantity",
                self.table
            ),
            &[&event.sku, &event.quantity],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

/// Three attempts, quickly: the scenarios do not wait for backoff.
pub const POLICY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial_backoff: Duration::from_millis(10),
    max_backoff: Duration::from_millis(20),
    full_jitter: false,
};

/// PostgreSQL: `PACTUM_TEST_POSTGRES`, default the machine's.
pub fn postgres_config() -> String {
    std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A client of it, or a panic saying how to start it.
pub async fn postgres() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&postgres_config(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
        });
    tokio::spawn(conn);
    client
}

/// RabbitMQ: `PACTUM_TEST_RABBITMQ`, default the machine's.
pub fn rabbit_url() -> String {
    std::env::var("PACTUM_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The `consumes` entry of group `group` reading `subject` as `delivery`.
pub fn info(subject: &str, group: &str, delivery: Mode) -> &'static ConsumerInfo {
    Box::leak(Box::new(ConsumerInfo {
        service: "test",
        subject: Box::leak(subject.to_string().into_boxed_str()),
        group: Box::leak(group.to_string().into_boxed_str()),
        delivery,
        retry: None,
        dead_letter: true,
        budget: None,
    }))
}
