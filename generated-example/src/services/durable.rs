//! Orders and inventory with their state in PostgreSQL, for replicas and for the
//! fault-injection suite: every keyed handler writes its effect and records its reply in one
//! transaction (`Claim::record_in_postgres`), so a crash, a deadline or a 5xx after the commit
//! replays the reply and a retry can never apply the effect twice. Ids are random and nothing
//! is unique but the primary keys, so an effect applied twice would show as two rows.

use crate::fault;
use crate::generated::{
    inventory::v1 as inventory, orders::v1 as orders, orders::v2 as orders_v2,
    payments::v1 as payments, pricing::v1 as pricing,
};
use pactum::messaging::consumer::tokio_postgres::{self, Client, NoTls};
use pactum::store::outbox::Pg;
use pactum::types::{Timestamp, Uuid};
use pactum::{Context, HandlerError};
use std::sync::{Arc, Mutex};

/// The outbox table the durable handlers write their events into.
pub const OUTBOX: &str = "durable_outbox";

/// A few PostgreSQL connections, reopened when they close (a failover, a terminated
/// backend): each request takes one and gives it back.
pub struct Db {
    config: String,
    idle: Mutex<Vec<Client>>,
}

/// A connection taken from [`Db`]; returned to it on drop unless it closed.
pub struct Conn<'a> {
    db: &'a Db,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                if let Ok(mut idle) = self.db.idle.lock() {
                    idle.push(client);
                }
            }
        }
    }
}

impl Db {
    /// Connects lazily to `config` (a libpq string).
    pub fn new(config: &str) -> Self {
        Db {
            config: config.to_string(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An open connection.
    pub async fn get(&self) -> Result<Conn<'_>, String> {
        let reused = self.idle.lock().ok().and_then(|mut idle| {
            while let Some(c) = idle.pop() {
                if !c.is_closed() {
                    return Some(c);
                }
            }
            None
        });
        let client = match reused {
            Some(c) => c,
            None => {
                let (client, connection) = tokio_postgres::connect(&self.config, NoTls)
                    .await
                    .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
                tokio::spawn(connection);
                client
            }
        };
        Ok(Conn {
            db: self,
            client: Some(client),
        })
    }

    /// Creates the tables (if missing) and sets the stock levels.
    pub async fn prepare(&self, stock: &[(&str, i32)]) -> Result<(), String> {
        let db = self.get().await?;
        db.batch_execute(
            "CREATE TABLE IF NOT EXISTS durable_orders (
                id TEXT PRIMARY KEY,
                cart_id TEXT NOT NULL,
                status TEXT NOT NULL,
                major INT NOT NULL,
                body TEXT NOT NULL
             );
             -- What each keyed handler did, one row per effect: a duplicate shows as a row.
             CREATE TABLE IF NOT EXISTS durable_effects (
                subject TEXT NOT NULL,
                action TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS durable_payments (
                id TEXT PRIMARY KEY,
                body TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS durable_carts (
                id TEXT PRIMARY KEY,
                body TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS durable_stock (
                sku TEXT PRIMARY KEY,
                available INT NOT NULL,
                reserved INT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS durable_reservations (
                id TEXT NOT NULL,
                order_id TEXT NOT NULL,
                sku TEXT NOT NULL,
                quantity INT NOT NULL
             );",
        )
        .await
        .map_err(|e| e.to_string())?;
        pactum::store::outbox::create_table(&db, OUTBOX)
            .await
            .map_err(|e| e.to_string())?;
        for (sku, available) in stock {
            db.execute(
                "INSERT INTO durable_stock VALUES ($1, $2, 0)
                 ON CONFLICT (sku) DO UPDATE SET available = $2, reserved = 0",
                &[sku, available],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn db_error<E>(e: impl std::fmt::Display) -> HandlerError<E> {
    HandlerError::internal(format!("database: {e}"))
}

/// Notes one effect on `subject` (an order, a reservation, a payment, a cart) in `tx`.
async fn effect<E>(
    tx: &tokio_postgres::Transaction<'_>,
    subject: &str,
    action: &str,
) -> Result<(), HandlerError<E>> {
    tx.execute(
        "INSERT INTO durable_effects VALUES ($1, $2)",
        &[&subject, &action],
    )
    .await
    .map(drop)
    .map_err(db_error)
}

/// Records `reply` as the keyed request's reply inside `tx` (keyed operations always hold a
/// claim; a claim taken over makes this fail, and the `?` rolls the effect back).
async fn record<T: 'static, E>(
    ctx: &Context,
    tx: &tokio_postgres::Transaction<'_>,
    reply: &T,
) -> Result<(), HandlerError<E>> {
    match ctx.claim() {
        Some(claim) => claim
            .record_in_postgres(tx, reply)
            .await
            .map_err(HandlerError::internal),
        None => Ok(()),
    }
}

/// The orders service over PostgreSQL (v1).
pub struct PgOrders {
    db: Arc<Db>,
}

impl PgOrders {
    /// Orders kept in `db`.
    pub fn new(db: Arc<Db>) -> Self {
        PgOrders { db }
    }
}

fn status(s: &str) -> orders::OrderStatus {
    serde_json::from_value(serde_json::Value::String(s.into())).expect("open enums")
}

impl orders::Service for PgOrders {
    async fn get_order(
        &self,
        _ctx: Context,
        input: orders::GetOrderRequest,
    ) -> Result<orders::Order, HandlerError<orders::GetOrderError>> {
        let db = self.db.get().await.map_err(db_error)?;
        let row = db
            .query_opt(
                "SELECT body FROM durable_orders WHERE id = $1 AND major = 1",
                &[&input.id.0.to_string()],
            )
            .await
            .map_err(db_error)?
            .ok_or(orders::OrderNotFound { id: input.id })?;
        serde_json::from_str(row.get::<_, &str>(0)).map_err(db_error)
    }

    async fn place_order(
        &self,
        ctx: Context,
        input: orders::PlaceOrderRequest,
    ) -> Result<orders::Order, HandlerError<orders::PlaceOrderError>> {
        let currency = input.lines.first().map_or_else(
            || pricing::Currency("EUR".into()),
            |l| l.unit_price.currency.clone(),
        );
        let total = pricing::Money {
            amount: input
                .lines
                .iter()
                .map(|l| l.unit_price.amount * pactum::types::Decimal::from(l.quantity))
                .sum(),
            currency,
        };
        let order = orders::Order {
            id: orders::OrderId(pactum::random_id().parse().map_err(db_error)?),
            customer_id: input.customer_id,
            lines: input.lines,
            status: status("pending"),
            total,
            placed_at: Timestamp::UNIX_EPOCH,
            note: input.note,
        };
        let body = serde_json::to_string(&order).map_err(db_error)?;
        let mut db = self.db.get().await.map_err(db_error)?;
        let tx = db.transaction().await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO durable_orders VALUES ($1, $2, 'pending', 1, $3)",
            &[&order.id.0.to_string(), &input.cart_id.to_string(), &body],
        )
        .await
        .map_err(db_error)?;
        // The event is written in the order's transaction: it exists if and only if the order
        // does (publishing here, before the commit, would announce orders a rollback undoes;
        // after it, a crash would lose the announcement). The relay publishes it. Its id comes
        // from the idempotency key, so a re-run of this request writes no second event.
        let placed = orders::OrderPlaced {
            order_id: order.id.clone(),
            customer_id: order.customer_id,
            lines: order.lines.clone(),
            total: order.total.clone(),
        };
        orders::events::InTx::new(Pg::new(&tx).table(OUTBOX))
            .order_placed(&placed)
            .await?;
        fault::point("orders.place.before_commit").await;
        record(&ctx, &tx, &order).await?;
        tx.commit().await.map_err(db_error)?;
        fault::point("orders.place.after_commit").await;
        Ok(order)
    }

    async fn cancel_order(
        &self,
        ctx: Context,
        input: orders::CancelOrderRequest,
    ) -> Result<orders::Order, HandlerError<orders::CancelOrderError>> {
        let mut db = self.db.get().await.map_err(db_error)?;
        let tx = db.transaction().await.map_err(db_error)?;
        let row = tx
            .query_opt(
                "SELECT body FROM durable_orders WHERE id = $1 AND major = 1 FOR UPDATE",
                &[&input.id.0.to_string()],
            )
            .await
            .map_err(db_error)?
            .ok_or(orders::OrderNotFound {
                id: input.id.clone(),
            })?;
        let mut order: orders::Order =
            serde_json::from_str(row.get::<_, &str>(0)).map_err(db_error)?;
        if !matches!(order.status.as_str(), "pending" | "paid") {
            Err(orders::OrderNotCancellable {
                id: input.id,
                status: order.status,
            })?;
        }
        order.status = status("cancelled");
        let body = serde_json::to_string(&order).map_err(db_error)?;
        tx.execute(
            "UPDATE durable_orders SET status = 'cancelled', body = $2 WHERE id = $1",
            &[&order.id.0.to_string(), &body],
        )
        .await
        .map_err(db_error)?;
        effect(&tx, &order.id.0.to_string(), "cancelled").await?;
        fault::point("orders.cancel.before_commit").await;
        record(&ctx, &tx, &order).await?;
        tx.commit().await.map_err(db_error)?;
        fault::point("orders.cancel.after_commit").await;
        Ok(order)
    }
}

fn status_v2(s: &str) -> orders_v2::OrderStatus {
    serde_json::from_value(serde_json::Value::String(s.into())).expect("open enums")
}

impl orders_v2::Service for PgOrders {
    async fn get_order(
        &self,
        _ctx: Context,
        input: orders_v2::GetOrderRequest,
    ) -> Result<orders_v2::Order, HandlerError<orders_v2::GetOrderError>> {
        let db = self.db.get().await.map_err(db_error)?;
        let row = db
            .query_opt(
                "SELECT body FROM durable_orders WHERE id = $1 AND major = 2",
                &[&input.id.0.to_string()],
            )
            .await
            .map_err(db_error)?
            .ok_or(orders_v2::OrderNotFound { id: input.id })?;
        serde_json::from_str(row.get::<_, &str>(0)).map_err(db_error)
    }

    async fn place_order(
        &self,
        ctx: Context,
        input: orders_v2::PlaceOrderRequest,
    ) -> Result<orders_v2::Order, HandlerError<orders_v2::PlaceOrderError>> {
        let currency = input.items.first().map_or_else(
            || pricing::Currency("EUR".into()),
            |l| l.unit_price.currency.clone(),
        );
        let order = orders_v2::Order {
            id: orders_v2::OrderId(pactum::random_id().parse().map_err(db_error)?),
            customer_id: input.customer_id,
            total: pricing::Money {
                amount: input
                    .items
                    .iter()
                    .map(|l| l.unit_price.amount * pactum::types::Decimal::from(l.quantity))
                    .sum(),
                currency,
            },
            items: input.items,
            status: status_v2("pending"),
            placed_at: Timestamp::UNIX_EPOCH,
        };
        let body = serde_json::to_string(&order).map_err(db_error)?;
        let mut db = self.db.get().await.map_err(db_error)?;
        let tx = db.transaction().await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO durable_orders VALUES ($1, $2, 'pending', 2, $3)",
            &[&order.id.0.to_string(), &input.cart_id.to_string(), &body],
        )
        .await
        .map_err(db_error)?;
        let placed = orders_v2::OrderPlaced {
            order_id: order.id.clone(),
            customer_id: order.customer_id.clone(),
            items: order.items.clone(),
            total: order.total.clone(),
        };
        orders_v2::events::InTx::new(Pg::new(&tx).table(OUTBOX))
            .order_placed(&placed)
            .await?;
        fault::point("orders.v2.place.before_commit").await;
        record(&ctx, &tx, &order).await?;
        tx.commit().await.map_err(db_error)?;
        fault::point("orders.v2.place.after_commit").await;
        Ok(order)
    }

    async fn list_orders(
        &self,
        _ctx: Context,
        input: orders_v2::ListOrdersRequest,
    ) -> Result<orders_v2::ListOrdersResponse, HandlerError<orders_v2::ListOrdersError>> {
        let db = self.db.get().await.map_err(db_error)?;
        // Pages in id order, filtered in SQL so each page is full; the cursor is the last id
        // of the page before (sealed by the runtime on its way to the client).
        let size = i64::from(input.page_size.unwrap_or(20));
        let after = input.page_token.clone().unwrap_or_default();
        let customer = input.customer_id.0.to_string();
        let status = input.status.as_ref().map(|s| s.as_str().to_string());
        let rows = db
            .query(
                "SELECT id, body FROM durable_orders \
                 WHERE major = 2 AND id > $1 AND body::jsonb->>'customer_id' = $2 \
                   AND ($3::text IS NULL OR body::jsonb->>'status' = $3) \
                 ORDER BY id LIMIT $4",
                &[&after, &customer, &status, &(size + 1)],
            )
            .await
            .map_err(db_error)?;
        let more = rows.len() as i64 > size;
        let mut orders = Vec::new();
        let mut last = None;
        for row in rows.iter().take(size as usize) {
            last = Some(row.get::<_, String>(0));
            orders.push(serde_json::from_str(row.get::<_, &str>(1)).map_err(db_error)?);
        }
        Ok(orders_v2::ListOrdersResponse {
            orders,
            next_page_token: if more { last } else { None },
        })
    }

    /// Not served from PostgreSQL: this store keeps no history of an order's statuses (the
    /// in-memory service streams them). Answered 501 / `UNIMPLEMENTED`, naming the operation.
    async fn watch_order(
        &self,
        _ctx: Context,
        _input: orders_v2::WatchOrderRequest,
    ) -> Result<
        pactum::BoxStream<
            Result<orders_v2::OrderStatusChange, HandlerError<orders_v2::WatchOrderError>>,
        >,
        HandlerError<orders_v2::WatchOrderError>,
    > {
        Err(HandlerError::NotImplemented("orders.v2.WatchOrder"))
    }
}

/// The inventory service over PostgreSQL.
pub struct PgInventory {
    db: Arc<Db>,
}

impl PgInventory {
    /// Stock kept in `db`.
    pub fn new(db: Arc<Db>) -> Self {
        PgInventory { db }
    }

    async fn levels<E>(
        &self,
    ) -> Result<std::collections::HashMap<String, (u32, u32)>, HandlerError<E>> {
        let db = self.db.get().await.map_err(db_error)?;
        let rows = db
            .query("SELECT sku, available, reserved FROM durable_stock", &[])
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| {
                let n = |i: usize| u32::try_from(r.get::<_, i32>(i)).unwrap_or(0);
                (r.get::<_, String>(0), (n(1), n(2)))
            })
            .collect())
    }
}

type Stream<T, E> = pactum::BoxStream<Result<T, HandlerError<E>>>;
type Incoming<T> = pactum::BoxStream<Result<T, pactum::StreamError>>;

impl inventory::Service for PgInventory {
    async fn watch_stock(
        &self,
        _ctx: Context,
        input: inventory::WatchStockRequest,
    ) -> Result<
        Stream<inventory::StockChange, inventory::WatchStockError>,
        HandlerError<inventory::WatchStockError>,
    > {
        Ok(super::inventory::changes(&self.levels().await?, input.skus))
    }

    async fn scan_stock(
        &self,
        _ctx: Context,
        input: Incoming<inventory::ScanStockRequest>,
    ) -> Result<
        Stream<inventory::StockLevel, inventory::ScanStockError>,
        HandlerError<inventory::ScanStockError>,
    > {
        Ok(super::inventory::scan(self.levels().await?, input))
    }

    async fn bulk_restock(
        &self,
        _ctx: Context,
        mut input: Incoming<inventory::BulkRestockRequest>,
    ) -> Result<inventory::BulkRestockResponse, HandlerError<inventory::BulkRestockError>> {
        use pactum::__private::tokio_stream::StreamExt;
        let mut db = self.db.get().await.map_err(db_error)?;
        let tx = db.transaction().await.map_err(db_error)?;
        let (mut skus, mut units) = (std::collections::BTreeSet::new(), 0u64);
        while let Some(item) = input.next().await {
            let item = item.map_err(|e| HandlerError::internal(format!("bad restock: {e}")))?;
            let quantity = i32::try_from(item.quantity).map_err(db_error)?;
            tx.execute(
                "INSERT INTO durable_stock VALUES ($1, $2, 0)
                 ON CONFLICT (sku) DO UPDATE SET available = durable_stock.available + $2",
                &[&item.sku.0, &quantity],
            )
            .await
            .map_err(db_error)?;
            units += u64::from(item.quantity);
            skus.insert(item.sku.0);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(inventory::BulkRestockResponse {
            skus: u32::try_from(skus.len()).unwrap_or(u32::MAX),
            units,
        })
    }

    async fn check_stock(
        &self,
        _ctx: Context,
        input: inventory::CheckStockRequest,
    ) -> Result<inventory::StockLevel, HandlerError<inventory::CheckStockError>> {
        let (available, reserved) = self
            .levels()
            .await?
            .get(&input.sku.0)
            .copied()
            .unwrap_or((0, 0));
        Ok(inventory::StockLevel {
            sku: input.sku,
            available,
            reserved,
        })
    }

    async fn reserve_stock(
        &self,
        ctx: Context,
        input: inventory::ReserveStockRequest,
    ) -> Result<inventory::ReserveStockResponse, HandlerError<inventory::ReserveStockError>> {
        let id: Uuid = pactum::random_id().parse().map_err(db_error)?;
        let mut db = self.db.get().await.map_err(db_error)?;
        let tx = db.transaction().await.map_err(db_error)?;
        for line in &input.lines {
            let quantity = i32::try_from(line.quantity).map_err(db_error)?;
            let held = tx
                .execute(
                    "UPDATE durable_stock SET available = available - $2, reserved = reserved + $2
                     WHERE sku = $1 AND available >= $2",
                    &[&line.sku.0, &quantity],
                )
                .await
                .map_err(db_error)?;
            if held == 0 {
                let available = tx
                    .query_opt(
                        "SELECT available FROM durable_stock WHERE sku = $1",
                        &[&line.sku.0],
                    )
                    .await
                    .map_err(db_error)?
                    .map_or(0, |r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0));
                // Dropping `tx` rolls back the lines already held.
                Err(inventory::OutOfStock {
                    sku: line.sku.clone(),
                    requested: line.quantity,
                    available,
                })?;
            }
            tx.execute(
                "INSERT INTO durable_reservations VALUES ($1, $2, $3, $4)",
                &[
                    &id.to_string(),
                    &input.order_id.to_string(),
                    &line.sku.0,
                    &quantity,
                ],
            )
            .await
            .map_err(db_error)?;
        }
        let reply = inventory::ReserveStockResponse {
            reservation_id: inventory::ReservationId(id),
            expires_at: Timestamp::UNIX_EPOCH,
        };
        fault::point("inventory.reserve.before_commit").await;
        record(&ctx, &tx, &reply).await?;
        tx.commit().await.map_err(db_error)?;
        fault::point("inventory.reserve.after_commit").await;
        Ok(reply)
    }

    async fn release_stock(
        &self,
        ctx: Context,
        input: inventory::ReleaseStockRequest,
    ) -> Result<(), HandlerError<inventory::ReleaseStockError>> {
        let mut db = self.db.get().await.map_err(db_error)?;
        let tx = db.transaction().await.map_err(db_error)?;
        let reservation = input.reservation_id.0.to_string();
        let rows = tx
            .query(
                "DELETE FROM durable_reservations WHERE id = $1 RETURNING sku, quantity",
                &[&reservation],
            )
            .await
            .map_err(db_error)?;
        if rows.is_empty() {
            Err(inventory::ReservationNotFound {
                reservation_id: input.reservation_id,
            })?;
        }
        for row in rows {
            tx.execute(
                "UPDATE durable_stock SET available = available + $2, reserved = reserved - $2
                 WHERE sku = $1",
                &[&row.get::<_, String>(0), &row.get::<_, i32>(1)],
            )
            .await
            .map_err(db_error)?;
        }
        effect(&tx, &reservation, "released").await?;
        fault::point("inventory.release.before_commit").await;
        record(&ctx, &tx, &()).await?;
        tx.commit().await.map_err(db_error)?;
        fault::point("inventory.release.after_commit").await;
        Ok(())
    }
}

/// The payments service over PostgreSQL.
pub struct PgPayments {
    db: Arc<Db>,
}

impl PgPayments {
    /// Payments kept in `db`.
    pub fn new(db: Arc<Db>) -> Self {
        PgPayments { db }
    }

    /// Records a captured payment (the stand-in for a payment provider).
    pub async fn capture(&self, payment: &payments::Payment) -> Result<(), String> {
        let body = serde_json::to_string(payment).map_err(|e| e.to_string())?;
        self.db
            .get()
            .await?
            .execute(
                "INSERT INTO durable_payments VALUES ($1, $2)",
                &[&payment.id.0.to_string(), &body],
            )
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

impl payments::Service for PgPayments {
    async fn get_payment(
        &self,
        _ctx: Context,
        input: payments::GetPaymentRequest,
    ) -> Result<payments::Payment, HandlerError<payments::GetPaymentError>> {
        let db = self.db.get().await.map_err(db_error)?;
        let row = db
            .query_opt(
                "SELECT body FROM durable_payments WHERE id = $1",
                &[&input.id.0.to_string()],
            )
            .await
            .map_err(db_error)?
            .ok_or(payments::PaymentNotFound { id: input.id })?;
        serde_json::from_str(row.get::<_, &str>(0)).map_err(db_error)
    }

    async fn refund_payment(
        &self,
        ctx: Context,
        input: payments::RefundPaymentRequest,
    ) -> Result<payments::Payment, HandlerError<payments::RefundPaymentError>> {
        let mut db = self.db.get().await.map_err(db_error)?;
        let tx = db.transaction().await.map_err(db_error)?;
        let id = input.id.0.to_string();
        let row = tx
            .query_opt(
                "SELECT body FROM durable_payments WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(db_error)?
            .ok_or(payments::PaymentNotFound {
                id: input.id.clone(),
            })?;
        let mut payment: payments::Payment =
            serde_json::from_str(row.get::<_, &str>(0)).map_err(db_error)?;
        if input.amount.currency != payment.amount.currency
            || input.amount.amount > payment.amount.amount
        {
            Err(payments::PaymentDeclined {
                reason: "refund exceeds the captured amount".into(),
            })?;
        }
        payment.amount.amount -= input.amount.amount;
        let body = serde_json::to_string(&payment).map_err(db_error)?;
        tx.execute(
            "UPDATE durable_payments SET body = $2 WHERE id = $1",
            &[&id, &body],
        )
        .await
        .map_err(db_error)?;
        effect(&tx, &id, "refunded").await?;
        fault::point("payments.refund.before_commit").await;
        record(&ctx, &tx, &payment).await?;
        tx.commit().await.map_err(db_error)?;
        fault::point("payments.refund.after_commit").await;
        Ok(payment)
    }
}
