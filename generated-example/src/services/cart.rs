//! The cart service: keeps carts and checks them out, pricing them through the pricing
//! service's generated REST client.

use super::Seen;
use crate::generated::{
    cart::v1 as api, inventory::v1 as inventory, orders::v1 as orders, pricing::v1 as pricing,
};
use pactum::types::{Timestamp, Uuid};
use pactum::ClientError;
use pactum::{Context, HandlerError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Carts in memory, priced through `pricing` (REST), stock checked with `inventory` (gRPC).
pub struct CartService {
    carts: Mutex<HashMap<Uuid, api::Cart>>,
    /// Carts in PostgreSQL instead (`with_durable`).
    durable: Option<Arc<super::durable::Db>>,
    pricing: pricing::rest::Client,
    inventory: Option<inventory::grpc::Client>,
    orders: Option<orders::rest::Client>,
    /// Calls seen, with their trace ids.
    pub seen: Arc<Seen>,
}

impl CartService {
    /// A cart service over `carts`, pricing through `pricing`.
    pub fn new(carts: Vec<api::Cart>, pricing: pricing::rest::Client) -> Self {
        CartService {
            carts: Mutex::new(carts.into_iter().map(|c| (c.id.0, c)).collect()),
            durable: None,
            pricing,
            inventory: None,
            orders: None,
            seen: Arc::default(),
        }
    }

    /// Checks stock with `inventory` over gRPC before checking out.
    pub fn with_inventory(mut self, inventory: inventory::grpc::Client) -> Self {
        self.inventory = Some(inventory);
        self
    }

    /// Keeps carts in PostgreSQL (`durable_carts`), adding items in one transaction with the
    /// stored reply; the carts given to `new` are ignored.
    pub fn with_durable(mut self, db: Arc<super::durable::Db>) -> Self {
        self.durable = Some(db);
        self
    }

    /// The cart `id`, from memory or PostgreSQL.
    async fn load<E>(&self, id: &api::CartId) -> Result<api::Cart, HandlerError<E>>
    where
        HandlerError<E>: From<api::CartNotFound>,
    {
        let Some(db) = &self.durable else {
            return Ok(self.cart(id)?);
        };
        let db = db.get().await.map_err(HandlerError::internal)?;
        let row = db
            .query_opt(
                "SELECT body FROM durable_carts WHERE id = $1",
                &[&id.0.to_string()],
            )
            .await
            .map_err(HandlerError::internal)?
            .ok_or_else(|| api::CartNotFound {
                cart_id: id.clone(),
            })?;
        serde_json::from_str(row.get::<_, &str>(0)).map_err(HandlerError::internal)
    }

    async fn add_durable(
        &self,
        db: &super::durable::Db,
        ctx: &Context,
        input: api::AddItemRequest,
    ) -> Result<api::Cart, HandlerError<api::AddItemError>> {
        let mut db = db.get().await.map_err(HandlerError::internal)?;
        let tx = db.transaction().await.map_err(HandlerError::internal)?;
        let id = input.cart_id.0.to_string();
        let row = tx
            .query_opt(
                "SELECT body FROM durable_carts WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(HandlerError::internal)?
            .ok_or_else(|| api::CartNotFound {
                cart_id: input.cart_id.clone(),
            })?;
        let mut cart: api::Cart =
            serde_json::from_str(row.get::<_, &str>(0)).map_err(HandlerError::internal)?;
        add(&mut cart, input.item);
        let body = serde_json::to_string(&cart).map_err(HandlerError::internal)?;
        tx.execute(
            "UPDATE durable_carts SET body = $2 WHERE id = $1",
            &[&id, &body],
        )
        .await
        .map_err(HandlerError::internal)?;
        tx.execute(
            "INSERT INTO durable_effects VALUES ($1, 'item added')",
            &[&id],
        )
        .await
        .map_err(HandlerError::internal)?;
        crate::fault::point("cart.add.before_commit").await;
        if let Some(claim) = ctx.claim() {
            claim
                .record_in_postgres(&tx, &cart)
                .await
                .map_err(HandlerError::internal)?;
        }
        tx.commit().await.map_err(HandlerError::internal)?;
        crate::fault::point("cart.add.after_commit").await;
        Ok(cart)
    }

    /// Places the order with `orders` over REST after pricing, instead of only quoting.
    pub fn with_orders(mut self, orders: orders::rest::Client) -> Self {
        self.orders = Some(orders);
        self
    }

    fn cart(&self, id: &api::CartId) -> Result<api::Cart, api::CartNotFound> {
        self.carts
            .lock()
            .expect("carts lock")
            .get(&id.0)
            .cloned()
            .ok_or_else(|| api::CartNotFound {
                cart_id: id.clone(),
            })
    }
}

impl api::Service for CartService {
    async fn get_cart(
        &self,
        _ctx: Context,
        input: api::GetCartRequest,
    ) -> Result<api::Cart, HandlerError<api::GetCartError>> {
        self.seen.record("GetCart");
        self.load(&input.cart_id).await
    }

    async fn add_item(
        &self,
        ctx: Context,
        input: api::AddItemRequest,
    ) -> Result<api::Cart, HandlerError<api::AddItemError>> {
        self.seen.record("AddItem");
        if let Some(db) = &self.durable {
            return self.add_durable(db, &ctx, input).await;
        }
        let reply = {
            let mut carts = self.carts.lock().expect("carts lock");
            let cart = carts
                .get_mut(&input.cart_id.0)
                .ok_or_else(|| api::CartNotFound {
                    cart_id: input.cart_id.clone(),
                })?;
            add(cart, input.item);
            cart.clone()
        };
        super::recorded(&ctx, reply).await
    }

    #[pactum::traced]
    async fn checkout_cart(
        &self,
        _ctx: Context,
        input: api::CheckoutCartRequest,
    ) -> Result<api::CheckoutCartResponse, HandlerError<api::CheckoutCartError>> {
        self.seen.record("CheckoutCart");
        let cart = self.load(&input.cart_id).await?;
        if cart.items.is_empty() {
            Err(api::CartEmpty {
                cart_id: input.cart_id.clone(),
            })?;
        }
        if let Some(stock) = &self.inventory {
            for item in &cart.items {
                let level = stock
                    .check_stock(&inventory::CheckStockRequest {
                        sku: item.sku.clone(),
                    })
                    .await
                    .map_err(|e| match e {
                        ClientError::DeadlineExceeded => HandlerError::DeadlineExceeded,
                        other => HandlerError::internal(format!("inventory: {other}")),
                    })?;
                if level.available < item.quantity {
                    return Err(HandlerError::internal(format!(
                        "{} is out of stock",
                        item.sku
                    )));
                }
            }
        }
        let request = pricing::QuoteCartRequest {
            currency: pricing::Currency("EUR".into()),
            lines: cart
                .items
                .iter()
                .map(|i| pricing::QuoteLine {
                    sku: i.sku.clone(),
                    quantity: i.quantity,
                })
                .collect(),
        };
        // The trace and the remaining deadline travel with this call on their own.
        let quote = self
            .pricing
            .quote_cart(&request)
            .await
            .map_err(|e| match e {
                ClientError::DeadlineExceeded => HandlerError::DeadlineExceeded,
                other => HandlerError::internal(format!("pricing: {other}")),
            })?;
        let Some(orders) = &self.orders else {
            return Ok(api::CheckoutCartResponse {
                order_id: Uuid::from_u128(cart.id.0.as_u128().rotate_left(17) ^ 0x5eed),
                total: quote.total,
            });
        };
        let request = orders::PlaceOrderRequest {
            cart_id: cart.id.0,
            customer_id: Some(cart.customer_id),
            lines: quote
                .lines
                .into_iter()
                .map(|l| orders::OrderLine {
                    sku: l.sku,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect(),
            note: None,
        };
        // PlaceOrder is keyed: the client sends one Idempotency-Key for all its retries.
        let order = orders.place_order(&request).await.map_err(|e| match e {
            ClientError::DeadlineExceeded => HandlerError::DeadlineExceeded,
            other => HandlerError::internal(format!("orders: {other}")),
        })?;
        Ok(api::CheckoutCartResponse {
            order_id: order.id.0,
            total: order.total,
        })
    }
}

/// Adds `item` to `cart`: more of a SKU already there, or a new line.
fn add(cart: &mut api::Cart, item: api::CartItem) {
    match cart.items.iter_mut().find(|i| i.sku == item.sku) {
        Some(existing) => existing.quantity += item.quantity,
        None => cart.items.push(item),
    }
    cart.updated_at = Timestamp::UNIX_EPOCH;
}
