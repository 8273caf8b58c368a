//! The asynchronous half of the checkout: who consumes what, and what each consumer does.
//!
//! ```text
//! orders --OrderPlaced (stream)--> payments  --PaymentCaptured (pubsub)--> notifications, orders
//!        \-------------------------> inventory --StockReserved (queue)---> shipping
//! shipping --ShipmentDispatched (pubsub)--> notifications;  shipping --OrderShipped webhook--> merchant
//! ```
//!
//! Each consumer is built from its contract's `consumes` entry (group, retry policy, dead
//! letter) and keeps its dedup record in memory (the embedded default) or in PostgreSQL, where
//! the record and the consumer's effect row commit in one transaction. Events derived from an
//! event get ids derived from it (`captured-<order>`), so a consumer that runs again publishes
//! nothing new: JetStream and the bus drop the repeat by its `Nats-Msg-Id`; on RabbitMQ, which
//! has no publish dedup, the next consumer's record drops it by the same id.
//!
//! On PostgreSQL nothing is published from inside a consumer's transaction: what its handler
//! publishes (events, the merchant's webhook) is deferred, written into the outbox tables in
//! that transaction, and sent by relays after the commit — so a rollback sends nothing and a
//! crash after the commit loses nothing.

use crate::generated::{inventory, notifications, orders, payments, pricing, shipping};
use crate::services::{inventory::Inventory, orders::Orders, payments::Payments};
use crate::transport::{Broker, Sink};
use pactum::messaging::consumer::tokio_postgres::{self, Transaction};
use pactum::messaging::consumer::{MemoryConsumer, MemoryHandler, Outcome, PgConsumer, PgHandler};
use pactum::messaging::{consume, EventSource, Subscribe};
use pactum::shutdown::Shutdown;
use pactum::store::idempotency::MemoryStore;
use pactum::store::outbox::{Pg, Relay, RelayConfig, Row, Writer as _};
use pactum::types::{Timestamp, Uuid};
use pactum::webhook::durable::WebhookSink;
use pactum::webhook::{Envelope, Inbox, WebhookSecret, WebhookSender};
use pactum::{ConsumerInfo, Context, Event, Problem, RetryPolicy};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Where consumers keep what they processed.
#[derive(Clone, Debug)]
pub enum Store {
    /// In the process (the embedded default).
    Memory,
    /// In PostgreSQL (a `tokio-postgres` connection string), in the handler's transaction.
    Postgres(String),
}

/// What one consumer does with one event; `Ok` says what happened, for the report.
pub trait Apply<E>: Send + Sync + 'static {
    /// Applies `event`.
    fn apply(&self, event: E) -> impl Future<Output = Result<String, String>> + Send;
}

/// Outcomes per consumer group, and a signal when one arrives.
#[derive(Default)]
pub struct Tally {
    seen: Mutex<BTreeMap<String, Vec<(Outcome, String)>>>,
    changed: Notify,
}

impl Tally {
    fn record(&self, key: &str, outcome: Outcome, what: String) {
        self.seen
            .lock()
            .expect("tally lock")
            .entry(key.to_string())
            .or_default()
            .push((outcome, what));
        self.changed.notify_waiters();
    }

    /// Everything recorded: `<group> <- <Event>` → (outcome, what the handler reported).
    pub fn all(&self) -> BTreeMap<String, Vec<(Outcome, String)>> {
        self.seen.lock().expect("tally lock").clone()
    }

    /// Waits until consumer `key` (`<group> <- <Event>`) has settled `n` deliveries (any
    /// outcome), or `limit` passes.
    pub async fn wait_for(&self, key: &str, n: usize, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if self
                .seen
                .lock()
                .expect("tally lock")
                .get(key)
                .is_some_and(|v| v.len() >= n)
            {
                return true;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return false;
            }
        }
    }
}

/// Reports the last handler result per delivery, for the tally.
type LastWhat = Arc<Mutex<String>>;

struct Memory<A> {
    apply: A,
    last: LastWhat,
}

impl<E: Event, A: Apply<E>> MemoryHandler<E> for Memory<A> {
    async fn handle(&self, _ctx: &Context, event: E) -> Result<(), String> {
        let what = self.apply.apply(event).await?;
        *self.last.lock().expect("last lock") = what;
        Ok(())
    }
}

struct Postgres<A> {
    apply: A,
    group: &'static str,
    last: LastWhat,
}

/// The outbox table of events the PostgreSQL consumers publish.
pub const EVENT_OUTBOX: &str = "example_outbox";
/// The outbox table of webhooks they send.
pub const WEBHOOK_OUTBOX: &str = "example_webhook_outbox";

/// Rows to write in the running PostgreSQL consumer's transaction, by outbox table.
type Deferred = Arc<Mutex<Vec<(&'static str, Row)>>>;

tokio::task_local! {
    static DEFERRED: Deferred;
}

/// Inside a PostgreSQL consumer's handler, keeps `row` for that consumer's transaction and
/// returns true; elsewhere returns false, and the caller publishes at once.
pub fn defer(table: &'static str, row: Row) -> bool {
    DEFERRED
        .try_with(|d| d.lock().expect("deferred lock").push((table, row)))
        .is_ok()
}

impl<E: Event, A: Apply<E>> PgHandler<E> for Postgres<A> {
    async fn handle(&self, tx: &Transaction<'_>, ctx: &Context, event: E) -> Result<(), String> {
        let deferred = Deferred::default();
        let what = DEFERRED
            .scope(deferred.clone(), self.apply.apply(event))
            .await?;
        // What the handler published, into the outbox with the effect.
        let rows = std::mem::take(&mut *deferred.lock().expect("deferred lock"));
        for (table, row) in rows {
            Pg::new(tx)
                .table(table)
                .write(row)
                .await
                .map_err(|e| e.to_string())?;
        }
        // The effect's row commits with the dedup record, or neither does.
        tx.execute(
            "INSERT INTO example_effects (consumer, what, trace_id) VALUES ($1, $2, $3)",
            &[&self.group, &what, &ctx.trace_id()],
        )
        .await
        .map_err(|e| e.to_string())?;
        *self.last.lock().expect("last lock") = what;
        Ok(())
    }
}

/// Creates the tables the PostgreSQL consumers use.
pub async fn prepare_postgres(config: &str) -> Result<(), String> {
    let client = connect(config).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS example_effects (
                at TIMESTAMPTZ NOT NULL DEFAULT now(),
                consumer TEXT NOT NULL,
                what TEXT NOT NULL,
                trace_id TEXT
            )",
        )
        .await
        .map_err(|e| format!("cannot create example_effects: {e}"))?;
    for table in [EVENT_OUTBOX, WEBHOOK_OUTBOX] {
        pactum::store::outbox::create_table(&client, table)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Starts the relays of the PostgreSQL consumers' outboxes: events to `broker`, webhooks to
/// their endpoints (retried quickly, as suits a demonstration; production uses
/// `WEBHOOK_SCHEDULE`).
pub fn spawn_relays(broker: &Broker, config: &str, shutdown: &Shutdown) -> Result<(), String> {
    let database = pactum::store::postgres::Database::new(config).map_err(|e| e.to_string())?;
    let events = Relay::new(broker.clone());
    let db = database.clone().named("example-relay-events");
    let stop = shutdown.clone();
    shutdown.spawn(async move { events.run_postgres_until(&db, EVENT_OUTBOX, &stop).await });
    const QUICK: &[Duration] = &[
        Duration::from_millis(20),
        Duration::from_millis(100),
        Duration::from_millis(500),
    ];
    let hooks =
        Relay::new(WebhookSink::new(WebhookSender::new(demo_secret()))).with_config(RelayConfig {
            schedule: Some(QUICK),
            ..RelayConfig::default()
        });
    let db = database.named("example-relay-webhooks");
    let stop = shutdown.clone();
    shutdown.spawn(async move { hooks.run_postgres_until(&db, WEBHOOK_OUTBOX, &stop).await });
    Ok(())
}

async fn connect(config: &str) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(config, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("PostgreSQL at `{config}` is unreachable: {e}"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// Joins `info`'s group and runs `apply` on every delivery until `shutdown` starts (the
/// delivery in hand is finished first), recording each outcome in `tally`.
pub async fn spawn_consumer<E, A>(
    broker: &Broker,
    store: &Store,
    info: &'static ConsumerInfo,
    apply: A,
    tally: Arc<Tally>,
    shutdown: &Shutdown,
) -> Result<(), String>
where
    E: Event,
    A: Apply<E>,
{
    let source = broker
        .subscribe(info, &Subscribe::default())
        .await
        .map_err(|e| e.to_string())?;
    let last = LastWhat::default();
    let key = format!("{} <- {}", info.group, E::NAME);
    let what = |outcome: &Outcome, last: &LastWhat| match outcome {
        Outcome::Processed => last.lock().expect("last lock").clone(),
        Outcome::Duplicate => "already processed: skipped".to_string(),
        Outcome::Retrying(r) => format!("failed, will retry: {r}"),
        Outcome::DeadLettered(r) => format!("dead-lettered: {r}"),
        Outcome::Unavailable(r) => format!("database unavailable, released: {r}"),
    };
    match store {
        Store::Memory => {
            let mut consumer = MemoryConsumer::for_contract(
                info,
                Memory {
                    apply,
                    last: last.clone(),
                },
            );
            shutdown.spawn(consume(source, shutdown.clone(), async move |delivery| {
                let outcome = consumer.process(delivery).await;
                let text = what(&outcome, &last);
                tally.record(&key, outcome, text);
            }));
        }
        Store::Postgres(config) => {
            let handler = Postgres {
                apply,
                group: info.group,
                last: last.clone(),
            };
            let table = format!("example_processed_{}", info.group);
            let database = pactum::store::postgres::Database::new(config)
                .map_err(|e| e.to_string())?
                .named(&format!("example-consumer-{}", info.group));
            let mut consumer = PgConsumer::for_contract(&database, &table, info, handler)
                .await
                .map_err(|e| e.to_string())?;
            shutdown.spawn(consume(source, shutdown.clone(), async move |delivery| {
                let outcome = consumer.process(delivery).await;
                let text = what(&outcome, &last);
                tally.record(&key, outcome, text);
            }));
        }
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// payments ← OrderPlaced: charge the order, then say so.
pub struct ChargeOrder {
    /// Payments' state.
    pub payments: Arc<Payments>,
    /// Publishes `PaymentCaptured`.
    pub events: payments::v1::events::Publisher<Sink>,
}

impl Apply<orders::v1::OrderPlaced> for ChargeOrder {
    async fn apply(&self, e: orders::v1::OrderPlaced) -> Result<String, String> {
        let order = e.order_id.0;
        // One payment per order, whatever the number of deliveries: the id follows the order.
        let payment = Uuid::from_u128(order.as_u128() ^ 0xfee);
        self.payments.capture(payment, order, e.total.clone());
        let captured = payments::v1::PaymentCaptured {
            payment_id: payments::v1::PaymentId(payment),
            order_id: order,
            amount: e.total.clone(),
        };
        self.events
            .payment_captured(&format!("captured-{order}"), &captured)
            .await
            .map_err(internal)?;
        Ok(format!(
            "captured {} {}; published PaymentCaptured",
            e.total.amount, e.total.currency
        ))
    }
}

/// inventory ← OrderPlaced: hold the stock, then tell shipping.
pub struct HoldStock {
    /// Inventory's state.
    pub inventory: Arc<Inventory>,
    /// Publishes `StockReserved`.
    pub events: inventory::v1::events::Publisher<Sink>,
}

impl Apply<orders::v1::OrderPlaced> for HoldStock {
    async fn apply(&self, e: orders::v1::OrderPlaced) -> Result<String, String> {
        use inventory::v1::Service as _;
        let lines: Vec<pricing::v1::QuoteLine> = e
            .lines
            .iter()
            .map(|l| pricing::v1::QuoteLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        let held = self
            .inventory
            .reserve_stock(
                Context::current(),
                inventory::v1::ReserveStockRequest {
                    order_id: e.order_id.0,
                    lines: lines.clone(),
                },
            )
            .await
            .map_err(|e| format!("cannot reserve: {e:?}"))?;
        let reserved = inventory::v1::StockReserved {
            order_id: e.order_id.0,
            reservation_id: held.reservation_id,
            lines,
        };
        self.events
            .stock_reserved(&format!("reserved-{}", e.order_id.0), &reserved)
            .await
            .map_err(internal)?;
        Ok("reserved stock; published StockReserved".into())
    }
}

/// orders ← PaymentCaptured: mark the order paid.
pub struct MarkPaid {
    /// Orders' state.
    pub orders: Arc<Orders>,
}

impl Apply<payments::v1::PaymentCaptured> for MarkPaid {
    async fn apply(&self, e: payments::v1::PaymentCaptured) -> Result<String, String> {
        self.orders
            .mark_paid(e.order_id)
            .then(|| "order marked paid".to_string())
            .ok_or_else(|| format!("no order {}", e.order_id))
    }
}

/// The messages notifications "sent", in order.
pub type Outbox = Arc<Mutex<Vec<notifications::v1::EmailSent>>>;

/// notifications ← PaymentCaptured and ShipmentDispatched: email the customer.
#[derive(Clone)]
pub struct Notifier {
    /// What was sent.
    pub outbox: Outbox,
}

impl Notifier {
    fn send(&self, order: Uuid, template: &str) -> String {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        let n = outbox.len() as u128;
        outbox.push(notifications::v1::EmailSent {
            message_id: Uuid::from_u128(order.as_u128() ^ n),
            order_id: order,
            channel: notifications::v1::Channel::Email,
            template: template.into(),
        });
        format!("emailed the customer ({template})")
    }
}

impl Apply<payments::v1::PaymentCaptured> for Notifier {
    async fn apply(&self, e: payments::v1::PaymentCaptured) -> Result<String, String> {
        Ok(self.send(e.order_id, "payment-received"))
    }
}

impl Apply<shipping::v1::ShipmentDispatched> for Notifier {
    async fn apply(&self, e: shipping::v1::ShipmentDispatched) -> Result<String, String> {
        Ok(self.send(e.order_id, "parcel-on-its-way"))
    }
}

/// shipping ← StockReserved: dispatch the parcel, announce it, and tell the merchant.
pub struct Dispatch {
    /// Publishes `ShipmentDispatched`.
    pub events: shipping::v1::events::Publisher<Sink>,
    /// Sends `OrderShipped` webhooks.
    pub webhooks: shipping::v1::webhooks::Sender,
    /// The merchant's endpoint.
    pub merchant_url: String,
    /// Send every webhook twice under its id, as after a reply lost in transit.
    pub resend_webhooks: bool,
}

impl Apply<inventory::v1::StockReserved> for Dispatch {
    async fn apply(&self, e: inventory::v1::StockReserved) -> Result<String, String> {
        let order = e.order_id;
        let shipment = shipping::v1::ShipmentId(Uuid::from_u128(order.as_u128() ^ 0x5417));
        let tracking = format!("DHL{:08X}", order.as_u128() as u32);
        let dispatched = shipping::v1::ShipmentDispatched {
            shipment_id: shipment.clone(),
            order_id: order,
            carrier: "DHL".into(),
            tracking_code: tracking.clone(),
        };
        self.events
            .shipment_dispatched(&format!("dispatched-{order}"), &dispatched)
            .await
            .map_err(internal)?;
        let hook = shipping::v1::OrderShipped {
            order_id: order,
            shipment_id: shipment,
            carrier: "DHL".into(),
            tracking_code: tracking.clone(),
            shipped_at: Timestamp::UNIX_EPOCH,
        };
        let id = format!("msg_shipped_{}", order.simple());
        let sends = if self.resend_webhooks { 2 } else { 1 };
        for n in 0..sends {
            // In a PostgreSQL consumer the delivery goes to the outbox with the effect; the
            // resend is a second row under the same webhook-id.
            let mut row =
                pactum::webhook::durable::row(&self.merchant_url, &id, &hook).map_err(internal)?;
            row.msg_id = format!("{} #{n}", row.msg_id);
            if !defer(WEBHOOK_OUTBOX, row) {
                self.webhooks
                    .order_shipped_with_id(&self.merchant_url, &id, &hook)
                    .await
                    .map_err(internal)?;
            }
        }
        Ok(format!(
            "dispatched {tracking}; published ShipmentDispatched; signed webhook sent{}",
            if sends > 1 { " (and resent)" } else { "" }
        ))
    }
}

/// The merchant's side of the `OrderShipped` webhook: what it accepted, once per message.
#[derive(Clone, Default)]
pub struct Merchant {
    /// (webhook id, tracking code) per accepted delivery.
    pub accepted: Arc<Mutex<Vec<(String, String)>>>,
}

impl shipping::v1::webhooks::Receiver for Merchant {
    async fn order_shipped(
        &self,
        id: String,
        webhook: Envelope<shipping::v1::OrderShipped>,
    ) -> Result<(), Problem> {
        self.accepted
            .lock()
            .expect("merchant lock")
            .push((id, webhook.data.tracking_code));
        Ok(())
    }
}

/// The shared secret between shipping and the merchant in the example (24+ bytes).
pub fn demo_secret() -> WebhookSecret {
    WebhookSecret::from_bytes(b"pactum-example-webhook-secret-32".to_vec()).expect("a 32-byte key")
}

/// Serves the merchant's generated webhook receiver on loopback; returns its URL.
pub async fn serve_merchant(merchant: Merchant) -> std::io::Result<String> {
    let inbox = Inbox::new([demo_secret()], Arc::new(MemoryStore::new()));
    let app: pactum::router::axum::Router = pactum::router::axum::Router::new().route(
        "/hooks/shipping",
        shipping::v1::webhooks::receiver(merchant, inbox),
    );
    let base = crate::system::serve(app).await?;
    Ok(format!("{base}/hooks/shipping"))
}

/// The webhook sender shipping uses: the demo secret, quick retries.
pub fn webhook_sender() -> shipping::v1::webhooks::Sender {
    shipping::v1::webhooks::Sender::new(WebhookSender::new(demo_secret()).with_policy(
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            full_jitter: true,
        },
    ))
}
