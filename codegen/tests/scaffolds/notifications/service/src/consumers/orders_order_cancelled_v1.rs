
//! Consumes `orders.OrderCancelled v1` as group `notifications`. Written once by `pactum new`: this file is yours.
//!
//! Each delivery runs `handle` once: its dedup record commits in `tx`, so write the effect (and the events it causes, through `crate::wiring::notifications_v1::outbox(tx)`) in `tx` too, and a redelivery after a crash is skipped. An `Err` rolls back and retries as the contract's policy says, then dead-letters the event with the message as its reason.
use crate::app::App;
use ::pactum::messaging::consumer::tokio_postgres::Transaction;
use ::pactum::messaging::consumer::PgHandler;
use ::pactum::Context;
use ::std::sync::Arc;

/// The consumer's handler; `wiring::start_events` builds it with the service's `App`.
pub struct Handler {
    /// The service's state.
    pub app: Arc<App>,
}

impl PgHandler<::notifications_api::orders::v1::OrderCancelled> for Handler {
    async fn handle(
        &self,
        tx: &Transaction<'_>,
        ctx: &Context,
        event: ::notifications_api::orders::v1::OrderCancelled,
    ) -> ::core::result::Result<(), ::std::string::String> {
        let _ = (&self.app, tx, ctx, event);
        ::core::result::Result::Err(
            "not implemented yet: notifications consumer of orders.OrderCancelled v1"
                .to_string(),
        )
    }
}
