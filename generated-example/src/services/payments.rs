//! The payments service: payments and refunds.

use crate::generated::{payments::v1 as api, pricing::v1 as pricing};
use pactum::types::{Timestamp, Uuid};
use pactum::{Context, HandlerError};
use std::collections::HashMap;
use std::sync::Mutex;

/// Payments in memory.
#[derive(Default)]
pub struct Payments {
    payments: Mutex<HashMap<Uuid, api::Payment>>,
}

impl Payments {
    /// Records a captured payment (the demo's stand-in for a payment provider).
    pub fn capture(&self, id: Uuid, order_id: Uuid, amount: pricing::Money) -> api::Payment {
        let p = api::Payment {
            id: api::PaymentId(id),
            order_id,
            amount,
            method: api::PaymentMethod::Card(api::CardPayment {
                last4: "4242".into(),
            }),
            captured_at: Some(Timestamp::UNIX_EPOCH),
        };
        self.payments
            .lock()
            .expect("payments lock")
            .insert(id, p.clone());
        p
    }
}

impl api::Service for Payments {
    async fn get_payment(
        &self,
        _ctx: Context,
        input: api::GetPaymentRequest,
    ) -> Result<api::Payment, HandlerError<api::GetPaymentError>> {
        let payments = self.payments.lock().expect("payments lock");
        Ok(payments
            .get(&input.id.0)
            .cloned()
            .ok_or(api::PaymentNotFound { id: input.id })?)
    }

    async fn refund_payment(
        &self,
        ctx: Context,
        input: api::RefundPaymentRequest,
    ) -> Result<api::Payment, HandlerError<api::RefundPaymentError>> {
        let reply = {
            let mut payments = self.payments.lock().expect("payments lock");
            let p = payments.get_mut(&input.id.0).ok_or(api::PaymentNotFound {
                id: input.id.clone(),
            })?;
            if input.amount.currency != p.amount.currency || input.amount.amount > p.amount.amount {
                Err(api::PaymentDeclined {
                    reason: "refund exceeds the captured amount".into(),
                })?;
            }
            p.amount.amount -= input.amount.amount;
            p.clone()
        };
        super::recorded(&ctx, reply).await
    }
}
