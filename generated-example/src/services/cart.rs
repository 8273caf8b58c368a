//! The cart service: keeps carts and checks them out, pricing them through the pricing
//! service's generated REST client.

use super::Seen;
use crate::generated::{
    cart::v1 as api, inventory::v1 as inventory, orders::v1 as orders, pricing::v1 as pricing,
};
use pactum::client::ClientError;
use pactum::types::{Timestamp, Uuid};
use pactum::{Context, HandlerError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Carts in memory, priced through `pricing` (REST), stock checked with `inventory` (gRPC).
pub struct CartService {
    carts: Mutex<HashMap<Uuid, api::Cart>>,
    pricing: pricing::Client,
    inventory: Option<inventory::grpc::Client>,
    orders: Option<orders::Client>,
    /// Calls seen, with their trace ids.
    pub seen: Arc<Seen>,
}

impl CartService {
    /// A cart service over `carts`, pricing through `pricing`.
    pub fn new(carts: Vec<api::Cart>, pricing: pricing::Client) -> Self {
        CartService {
            carts: Mutex::new(carts.into_iter().map(|c| (c.id.0, c)).collect()),
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

    /// Places the order with `orders` over REST after pricing, instead of only quoting.
    pub fn with_orders(mut self, orders: orders::Client) -> Self {
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
        Ok(self.cart(&input.cart_id)?)
    }

    async fn add_item(
        &self,
        _ctx: Context,
        input: api::AddItemRequest,
    ) -> Result<api::Cart, HandlerError<api::AddItemError>> {
        self.seen.record("AddItem");
        let mut carts = self.carts.lock().expect("carts lock");
        let cart = carts
            .get_mut(&input.cart_id.0)
            .ok_or_else(|| api::CartNotFound {
                cart_id: input.cart_id.clone(),
            })?;
        match cart.items.iter_mut().find(|i| i.sku == input.item.sku) {
            Some(existing) => existing.quantity += input.item.quantity,
            None => cart.items.push(input.item),
        }
        cart.updated_at = Timestamp::UNIX_EPOCH;
        Ok(cart.clone())
    }

    #[pactum::traced]
    async fn checkout_cart(
        &self,
        _ctx: Context,
        input: api::CheckoutCartRequest,
    ) -> Result<api::CheckoutCartResponse, HandlerError<api::CheckoutCartError>> {
        self.seen.record("CheckoutCart");
        let cart = self.cart(&input.cart_id)?;
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
