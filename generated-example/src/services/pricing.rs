//! The pricing service: quotes carts from a price list.

use super::Seen;
use crate::generated::pricing::v1 as api;
use pactum::types::Decimal;
use pactum::{Context, HandlerError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Prices per SKU, in one currency.
pub struct Pricing {
    currency: api::Currency,
    prices: HashMap<String, Decimal>,
    latency: Duration,
    /// Calls seen, with their trace ids.
    pub seen: Arc<Seen>,
}

impl Pricing {
    /// A price list in `currency`.
    pub fn new(currency: &str, prices: &[(&str, &str)]) -> Self {
        Pricing {
            currency: api::Currency(currency.into()),
            prices: prices
                .iter()
                .map(|(sku, p)| (sku.to_string(), p.parse().expect("price literal")))
                .collect(),
            latency: Duration::from_millis(5),
            seen: Arc::default(),
        }
    }

    /// The same price list with `latency` of simulated work per quote.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    fn money(&self, amount: Decimal) -> api::Money {
        api::Money {
            amount,
            currency: self.currency.clone(),
        }
    }

    fn price(&self, sku: &api::Sku) -> Result<Decimal, api::UnknownSku> {
        self.prices
            .get(&sku.0)
            .copied()
            .ok_or_else(|| api::UnknownSku { sku: sku.clone() })
    }

    /// Prices a cart; the contract's 200 ms deadline also bounds in-process callers.
    #[pactum::traced]
    #[pactum::deadline("200ms")]
    pub async fn quote(
        &self,
        req: api::QuoteCartRequest,
    ) -> Result<api::QuoteCartResponse, HandlerError<api::QuoteCartError>> {
        self.seen.record("QuoteCart");
        tokio::time::sleep(self.latency).await;
        if req.currency != self.currency {
            Err(api::CurrencyMismatch {
                expected: self.currency.clone(),
                found: req.currency.clone(),
            })?;
        }
        let mut lines = Vec::with_capacity(req.lines.len());
        let mut total = Decimal::ZERO;
        for line in req.lines {
            let unit = self.price(&line.sku)?;
            let line_total = unit * Decimal::from(line.quantity);
            total += line_total;
            lines.push(api::PricedLine {
                sku: line.sku,
                quantity: line.quantity,
                unit_price: self.money(unit),
                line_total: self.money(line_total),
            });
        }
        Ok(api::QuoteCartResponse {
            lines,
            total: self.money(total),
        })
    }
}

impl api::Service for Pricing {
    async fn quote_cart(
        &self,
        _ctx: Context,
        input: api::QuoteCartRequest,
    ) -> Result<api::QuoteCartResponse, HandlerError<api::QuoteCartError>> {
        // A quote has no effect to protect; the fault suite still checks its replays.
        crate::fault::point("pricing.quote").await;
        self.quote(input).await
    }

    async fn get_price(
        &self,
        _ctx: Context,
        input: api::GetPriceRequest,
    ) -> Result<api::Money, HandlerError<api::GetPriceError>> {
        self.seen.record("GetPrice");
        Ok(self.money(self.price(&input.sku)?))
    }
}
