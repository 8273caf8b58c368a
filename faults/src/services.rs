//! The process under test: the example's orders and inventory services with their state and
//! their idempotency keys in PostgreSQL, plus pricing and cart (whose checkout places the
//! order downstream), all on one loopback port that speaks REST and gRPC.

use generated_example::generated::{cart, inventory, orders, payments, pricing};
use generated_example::services::cart::CartService;
use generated_example::services::durable::{Db, PgInventory, PgOrders, PgPayments};
use generated_example::services::pricing::Pricing;
use pactum::router::ServerConfig;
use pactum::store::idempotency::{IdempotencyStore, Lease, PostgresStore};
use std::sync::Arc;
use std::time::Duration;

/// The table the services keep idempotency keys in.
pub const KEYS_TABLE: &str = "pactum_faults_keys";
/// The `application_name` of the idempotency store's connection (the harness terminates it).
pub const STORE_APP: &str = "pactum-faults-store";
/// How much longer than its deadline a claim is leased here: short, so a killed holder's
/// keys are taken over within a run.
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// The cart the checkout schedule checks out (two books).
pub const CART: u128 = 42;

/// The JetStream stream the event suite's `OrderPlaced` events go to.
pub const EVENT_STREAM: &str = "FAULTS_ORDERS";
/// How the suite's `OrderPlaced` is delivered: a stream, read by payments and inventory.
pub const ORDER_PLACED_DELIVERY: pactum::DeliveryMode = pactum::DeliveryMode::Stream;
/// How the suite's `StockReserved` is delivered: a work queue, read by shipping.
pub const STOCK_RESERVED_DELIVERY: pactum::DeliveryMode = pactum::DeliveryMode::Queue;
/// The consumer process's group, and its connection's `application_name`.
pub const CONSUMER_APP: &str = "pactum-faults-consumer";
/// How long the consumer may hold a delivery unacknowledged before JetStream delivers it
/// again: short, so the suite sees redeliveries within a run.
pub const CONSUMER_ACK_WAIT: Duration = Duration::from_secs(2);
/// The relay's connection's `application_name`.
pub const RELAY_APP: &str = "pactum-faults-relay";

/// The broker at `url`: RabbitMQ for `amqp://`, JetStream otherwise.
pub async fn broker(url: &str) -> Result<pactum::messaging::Broker, String> {
    use pactum::messaging::Broker;
    Ok(if url.starts_with("amqp") {
        Broker::RabbitMq(Box::new(
            pactum::messaging::rabbitmq::RabbitMq::connect(url)
                .await
                .map_err(|e| e.to_string())?,
        ))
    } else {
        Broker::Nats(Box::new(
            pactum::messaging::nats::Nats::connect(url)
                .await
                .map_err(|e| e.to_string())?,
        ))
    })
}

/// Serves on `127.0.0.1:port` until killed; prints `ready <url>` on stdout once listening.
/// Its outbox relay publishes to the broker at `broker` when given (the event suite: NATS or
/// RabbitMQ), else to an embedded bus.
pub async fn serve(postgres: &str, port: u16, broker: Option<&str>) -> Result<(), String> {
    let store: Arc<dyn IdempotencyStore> = Arc::new(
        PostgresStore::connect(
            &format!("{postgres} application_name={STORE_APP}"),
            KEYS_TABLE,
        )
        .await
        .map_err(|e| e.to_string())?,
    );
    let config = ServerConfig {
        idempotency: store,
        lease: Lease {
            margin: LEASE_MARGIN,
            without_deadline: Duration::from_secs(5),
            ..Lease::default()
        },
        ..ServerConfig::default()
    };
    let db = Arc::new(Db::new(&format!(
        "{postgres} application_name=pactum-faults-handlers"
    )));
    // The relay beside the service: it publishes the handlers' committed events and marks
    // them sent; killing the service kills it too. `relay.after_publish` is where the suite
    // stops it between publish and mark.
    let relay_db = pactum::store::postgres::Database::new(postgres)
        .map_err(|e| e.to_string())?
        .named(RELAY_APP);
    let hook: pactum::store::outbox::relay::PublishedHook =
        Arc::new(|_| generated_example::fault::point_blocking("relay.after_publish"));
    let outbox = generated_example::services::durable::OUTBOX;
    match broker {
        Some(url) => {
            let broker = self::broker(url).await?;
            tokio::spawn(async move {
                let relay = pactum::store::outbox::Relay::new(broker).on_published(hook);
                let e = relay.run_postgres(&relay_db, outbox).await;
                eprintln!("outbox relay stopped: {e}");
            });
        }
        None => {
            tokio::spawn(async move {
                let relay = pactum::store::outbox::Relay::new(pactum::messaging::bus::Bus::new())
                    .on_published(hook);
                let e = relay.run_postgres(&relay_db, outbox).await;
                eprintln!("outbox relay stopped: {e}");
            });
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let orders = Arc::new(PgOrders::new(db.clone()));
    let inventory = Arc::new(PgInventory::new(db.clone()));
    let payments = Arc::new(PgPayments::new(db.clone()));
    let pricing = Arc::new(Pricing::new(
        "EUR",
        &[("BOOK-42", "12.50"), ("PEN-7", "1.20")],
    ));
    let cart = Arc::new(
        CartService::new(
            // The carts live in PostgreSQL (the harness writes them).
            Vec::new(),
            pricing::v1::rest::Client::new(url.clone()),
        )
        .with_durable(db)
        .with_orders(orders::v1::rest::Client::new(url.clone())),
    );
    let router = orders::v1::rest::router_with(orders.clone(), config.clone())
        .merge(orders::v2::rest::router_with(
            orders.clone(),
            config.clone(),
        ))
        .merge(orders::v1::grpc::router_with(orders, config.clone()))
        .merge(payments::v1::rest::router_with(
            payments,
            generated_example::system::payments_config(&config),
        ))
        .merge(inventory::v1::rest::router_with(
            inventory.clone(),
            config.clone(),
        ))
        .merge(inventory::v1::grpc::router_with(inventory, config.clone()))
        .merge(pricing::v1::rest::router_with(pricing, config.clone()))
        .merge(cart::v1::rest::router_with(cart, config));
    println!("ready {url}");
    pactum::router::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}

/// The outbox the consumer process's handlers write their events into.
pub const CONSUMER_OUTBOX: &str = "event_outbox";
/// The outbox its shipping handler writes the merchant's webhook into.
pub const WEBHOOK_OUTBOX: &str = "event_webhook_outbox";
/// The stream of `StockReserved` (a work queue).
pub const INVENTORY_STREAM: &str = "FAULTS_INVENTORY";
/// The secret the shipping handler signs the merchant's webhook with.
pub fn merchant_secret() -> pactum::webhook::WebhookSecret {
    pactum::webhook::WebhookSecret::from_bytes(b"pactum-faults-merchant-secret-32".to_vec())
        .expect("a 32-byte key")
}

/// payments ← OrderPlaced: one charge row per order, in the consumer's transaction. The
/// effect tables have no unique key, so a second effect would show.
struct Charge;

impl pactum::messaging::consumer::PgHandler<orders::v1::OrderPlaced> for Charge {
    async fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        _ctx: &pactum::Context,
        event: orders::v1::OrderPlaced,
    ) -> Result<(), String> {
        tx.execute(
            "INSERT INTO event_charges (order_id) VALUES ($1)",
            &[&event.order_id.0.to_string()],
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// inventory ← OrderPlaced: reserve the stock and announce `StockReserved`, through the
/// outbox in the same transaction (its id derived from the consumed event).
struct Reserve;

impl pactum::messaging::consumer::PgHandler<orders::v1::OrderPlaced> for Reserve {
    async fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        _ctx: &pactum::Context,
        event: orders::v1::OrderPlaced,
    ) -> Result<(), String> {
        let order = event.order_id.0;
        tx.execute(
            "INSERT INTO event_reservations (order_id) VALUES ($1)",
            &[&order.to_string()],
        )
        .await
        .map_err(|e| e.to_string())?;
        let reserved = inventory::v1::StockReserved {
            order_id: order,
            reservation_id: inventory::v1::ReservationId(pactum::types::Uuid::from_u128(
                order.as_u128() ^ 0x5e5e,
            )),
            lines: event
                .lines
                .iter()
                .map(|l| pricing::v1::QuoteLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        };
        inventory::v1::events::InTx::new(pactum::store::outbox::Pg::new(tx).table(CONSUMER_OUTBOX))
            .stock_reserved(&reserved)
            .await
            .map_err(|e| e.to_string())
    }
}

/// shipping ← StockReserved: record the shipment and tell the merchant, the webhook through
/// the webhook outbox in the same transaction.
struct Ship {
    merchant: String,
}

impl pactum::messaging::consumer::PgHandler<inventory::v1::StockReserved> for Ship {
    async fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        _ctx: &pactum::Context,
        event: inventory::v1::StockReserved,
    ) -> Result<(), String> {
        let order = event.order_id;
        tx.execute(
            "INSERT INTO event_shipments (order_id) VALUES ($1)",
            &[&order.to_string()],
        )
        .await
        .map_err(|e| e.to_string())?;
        let hook = generated_example::generated::shipping::v1::OrderShipped {
            order_id: order,
            shipment_id: generated_example::generated::shipping::v1::ShipmentId(
                pactum::types::Uuid::from_u128(order.as_u128() ^ 0x5417),
            ),
            carrier: "DHL".into(),
            tracking_code: format!("DHL{:08X}", order.as_u128() as u32),
            shipped_at: pactum::types::Timestamp::UNIX_EPOCH,
        };
        generated_example::generated::shipping::v1::webhooks::InTx::new(
            pactum::store::outbox::Pg::new(tx).table(WEBHOOK_OUTBOX),
        )
        .order_shipped(
            &self.merchant,
            &format!("msg_shipped_{}", order.simple()),
            &hook,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

/// Runs one consumer group until the process ends: apply, the fault point
/// `consumer.after_commit`, then settle. A broker error (a restart) is pulled past, with
/// backoff, as `pactum::messaging::consume` does.
async fn run_group<E, H, S>(
    mut consumer: pactum::messaging::consumer::PgConsumer<E, H>,
    mut group: S,
) -> Result<(), String>
where
    E: pactum::Event,
    H: pactum::messaging::consumer::PgHandler<E>,
    S: pactum::messaging::Subscription,
{
    use pactum::messaging::consumer::{Inbound, Outcome};
    let mut pause = Duration::from_millis(50);
    loop {
        let delivery = match group.next().await {
            Ok(d) => {
                pause = Duration::from_millis(50);
                d
            }
            Err(e) => {
                eprintln!("cannot take the next delivery: {e}; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let outcome = consumer.apply(&delivery).await;
        generated_example::fault::point("consumer.after_commit").await;
        match outcome {
            Outcome::Processed | Outcome::Duplicate => delivery.ack().await,
            Outcome::Retrying(_) | Outcome::Unavailable(_) => {
                delivery.nak(Duration::from_millis(200)).await;
            }
            Outcome::DeadLettered(reason) => delivery.dead_letter(&reason).await,
        }
    }
}

/// The consumer process of the event suite: the checkout after the order, on the broker at
/// `broker` (JetStream, or RabbitMQ for an `amqp://` URL) — payments charges the order, inventory reserves its stock and publishes
/// `StockReserved`, shipping records the shipment and sends the `OrderShipped` webhook to
/// `merchant` — each once per event, its effect, outbox rows and dedup record in one
/// transaction; its relays publish the events and deliver the webhook. Prints `ready` once
/// joined.
pub async fn consume(postgres: &str, broker: &str, merchant: &str) -> Result<(), String> {
    use pactum::messaging::consumer::PgConsumer;
    use pactum::Event as _;
    let broker = self::broker(broker).await?;
    let database = pactum::store::postgres::Database::new(postgres)
        .map_err(|e| e.to_string())?
        .named(CONSUMER_APP);
    let policy = pactum::RetryPolicy {
        attempts: 5,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        full_jitter: true,
    };
    let forget = std::env::var_os("PACTUM_FAULTS_FORGET_PROCESSED").is_some();
    let start = pactum::messaging::bus::StartAt::First;
    let placed = orders::v1::OrderPlaced::SUBJECT;
    let reserved = inventory::v1::StockReserved::SUBJECT;
    let mut charge = PgConsumer::new(&database, "event_processed", "payments", policy, Charge)
        .await
        .map_err(|e| e.to_string())?;
    let mut reserve = PgConsumer::new(&database, "event_processed", "inventory", policy, Reserve)
        .await
        .map_err(|e| e.to_string())?;
    let ship = Ship {
        merchant: merchant.to_string(),
    };
    let mut shipping = PgConsumer::new(&database, "event_processed", "shipping", policy, ship)
        .await
        .map_err(|e| e.to_string())?;
    if forget {
        // The suite's self-check: a consumer that forgets what it processed (as an in-memory
        // record does on restart) must be caught applying an event twice.
        for pruned in [
            charge.prune(Duration::ZERO).await,
            reserve.prune(Duration::ZERO).await,
            shipping.prune(Duration::ZERO).await,
        ] {
            pruned.map_err(|e| e.to_string())?;
        }
    }
    let groups = match &broker {
        pactum::messaging::Broker::Nats(nats) => {
            let join = |stream: &'static str, subject: &'static str, group: &'static str| async move {
                nats.join(stream, subject, group, start, CONSUMER_ACK_WAIT)
                    .await
                    .map(|g| pactum::messaging::source::BrokerSubscription::Nats(Box::new(g)))
                    .map_err(|e| e.to_string())
            };
            (
                join(EVENT_STREAM, placed, "payments").await?,
                join(EVENT_STREAM, placed, "inventory").await?,
                join(INVENTORY_STREAM, reserved, "shipping").await?,
            )
        }
        pactum::messaging::Broker::RabbitMq(rabbit) => {
            let join = |subject: &'static str, group: &'static str, mode| async move {
                rabbit
                    .join(subject, group, mode, start, 1)
                    .await
                    .map(|g| pactum::messaging::source::BrokerSubscription::RabbitMq(Box::new(g)))
                    .map_err(|e| e.to_string())
            };
            (
                join(placed, "payments", ORDER_PLACED_DELIVERY).await?,
                join(placed, "inventory", ORDER_PLACED_DELIVERY).await?,
                join(reserved, "shipping", STOCK_RESERVED_DELIVERY).await?,
            )
        }
        pactum::messaging::Broker::Embedded(_) => {
            return Err("the consumer process needs a broker URL".into())
        }
    };
    // The relays beside the consumers: their events to the broker, the webhook to the
    // merchant.
    let relay_db = pactum::store::postgres::Database::new(postgres)
        .map_err(|e| e.to_string())?
        .named(CONSUMER_APP);
    let events = pactum::store::outbox::Relay::new(broker.clone());
    let db = relay_db.clone();
    tokio::spawn(async move { events.run_postgres(&db, CONSUMER_OUTBOX).await });
    const QUICK: &[Duration] = &[
        Duration::from_millis(50),
        Duration::from_millis(200),
        Duration::from_secs(1),
        Duration::from_secs(2),
    ];
    let hooks = pactum::store::outbox::Relay::new(pactum::webhook::durable::WebhookSink::new(
        pactum::webhook::WebhookSender::new(merchant_secret()),
    ))
    .with_config(pactum::store::outbox::RelayConfig {
        schedule: Some(QUICK),
        ..pactum::store::outbox::RelayConfig::default()
    });
    tokio::spawn(async move { hooks.run_postgres(&relay_db, WEBHOOK_OUTBOX).await });
    println!("ready");
    let (a, b, c) = tokio::join!(
        run_group(charge, groups.0),
        run_group(reserve, groups.1),
        run_group(shipping, groups.2)
    );
    a.and(b).and(c)
}
