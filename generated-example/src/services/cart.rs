//! The cart service: checks out carts, pricing them through `pricing`.

use super::pricing::Pricing;
use crate::generated::{cart::v1 as api, pricing::v1 as pricing_api};
use pactum::types::Uuid;
use pactum::HandlerError;
use std::collections::HashMap;
use std::sync::Arc;

/// Carts in memory.
pub struct CartService {
    carts: HashMap<Uuid, api::Cart>,
    pricing: Arc<Pricing>,
}

impl CartService {
    /// A cart service over `carts`, pricing through `pricing`.
    pub fn new(carts: Vec<api::Cart>, pricing: Arc<Pricing>) -> Self {
        CartService {
            carts: carts.into_iter().map(|c| (c.id.0, c)).collect(),
            pricing,
        }
    }

    /// `CheckoutCart`: the contract gives it 2 s; the pricing call inherits what is left.
    #[pactum::traced]
    #[pactum::deadline("2s")]
    pub async fn checkout(
        &self,
        req: api::CheckoutCartRequest,
    ) -> Result<api::CheckoutCartResponse, HandlerError<api::CheckoutCartError>> {
        let cart = self
            .carts
            .get(&req.cart_id.0)
            .ok_or_else(|| api::CartNotFound {
                cart_id: req.cart_id.clone(),
            })?;
        if cart.items.is_empty() {
            Err(api::CartEmpty {
                cart_id: req.cart_id.clone(),
            })?;
        }
        let quote = self
            .pricing
            .quote_cart(pricing_api::QuoteCartRequest {
                currency: pricing_api::Currency("EUR".into()),
                lines: cart
                    .items
                    .iter()
                    .map(|i| pricing_api::QuoteLine {
                        sku: i.sku.clone(),
                        quantity: i.quantity,
                    })
                    .collect(),
            })
            .await
            .map_err(|e| match e {
                HandlerError::DeadlineExceeded => HandlerError::DeadlineExceeded,
                other => HandlerError::internal(format!("pricing failed: {other}")),
            })?;
        Ok(api::CheckoutCartResponse {
            order_id: Uuid::from_u128(fastrand_like(&req.cart_id.0)),
            total: quote.total,
        })
    }
}

/// A stable order id per cart, so the demo's output is reproducible.
fn fastrand_like(cart: &Uuid) -> u128 {
    cart.as_u128().rotate_left(17) ^ 0x5eed
}
