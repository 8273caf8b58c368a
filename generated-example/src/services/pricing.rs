//! The pricing service: quotes carts from a price list.

use crate::generated::pricing::v1 as api;
use pactum::types::Decimal;
use pactum::HandlerError;
use std::collections::HashMap;
use std::time::Duration;

/// Prices per SKU, in one currency.
pub struct Pricing {
    currency: api::Currency,
    prices: HashMap<String, Decimal>,
    /// Simulated work per quote, to show deadlines at work.
    latency: Duration,
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
        }
    }

    /// `QuoteCart`: the contract gives it 200 ms.
    #[pactum::traced]
    #[pactum::deadline("200ms")]
    pub async fn quote_cart(
        &self,
        req: api::QuoteCartRequest,
    ) -> Result<api::QuoteCartResponse, HandlerError<api::QuoteCartError>> {
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
            let unit = *self
                .prices
                .get(&line.sku.0)
                .ok_or_else(|| api::UnknownSku {
                    sku: line.sku.clone(),
                })?;
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
}
