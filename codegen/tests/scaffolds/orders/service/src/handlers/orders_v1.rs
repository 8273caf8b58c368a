
//! The handlers of `orders` v1. Written once by `pactum new`: this file is yours, and `pactum generate` never touches it.
//!
//! An operation of the contract that has no method here answers 501 / `UNIMPLEMENTED`: `pactum generate` lists those after a contract change.
//!
//!To publish an event, write it in the effect's transaction: `crate::wiring::orders_v1::outbox(&tx).<event>(&event).await?`; the relay `main.rs` starts publishes it once the transaction commits. PostgreSQL is `self.database`.
use crate::app::App;
use ::orders_api::orders::v1 as api;

impl crate::wiring::orders_v1::Handlers for App {
    /// `GetOrder`, over `GET /v1/orders/{id}` and gRPC.
    ///
    /// Replace the body; until then it answers 501 / `UNIMPLEMENTED`. Its declared errors convert with `?`: `Err(OrderNotFound { … })?`.
    async fn get_order(
        &self,
        ctx: ::pactum::Context,
        input: api::GetOrderRequest,
    ) -> ::core::result::Result<api::Order, ::pactum::HandlerError<api::GetOrderError>> {
        let _ = (ctx, input);
        ::core::result::Result::Err(
            ::pactum::HandlerError::NotImplemented("orders.v1.GetOrder"),
        )
    }

    /// `PlaceOrder`, over `POST /v1/orders`.
    ///
    /// Replace the body; until then it answers 501 / `UNIMPLEMENTED`. Keyed: a retry with the same `Idempotency-Key` is answered from the first reply. With PostgreSQL, record the reply in the effect's transaction (`ctx.claim()` → `Claim::record_in_postgres(&tx, &reply)`) so the two commit together.
    async fn place_order(
        &self,
        ctx: ::pactum::Context,
        input: api::PlaceOrderRequest,
    ) -> ::core::result::Result<
        api::Order,
        ::pactum::HandlerError<api::PlaceOrderError>,
    > {
        let _ = (ctx, input);
        ::core::result::Result::Err(
            ::pactum::HandlerError::NotImplemented("orders.v1.PlaceOrder"),
        )
    }

    /// `CancelOrder`, over `POST /v1/orders/{id}/cancel`.
    ///
    /// Replace the body; until then it answers 501 / `UNIMPLEMENTED`. Its declared errors convert with `?`: `Err(OrderNotFound { … })?`. Keyed: a retry with the same `Idempotency-Key` is answered from the first reply. With PostgreSQL, record the reply in the effect's transaction (`ctx.claim()` → `Claim::record_in_postgres(&tx, &reply)`) so the two commit together.
    async fn cancel_order(
        &self,
        ctx: ::pactum::Context,
        input: api::CancelOrderRequest,
    ) -> ::core::result::Result<
        api::Order,
        ::pactum::HandlerError<api::CancelOrderError>,
    > {
        let _ = (ctx, input);
        ::core::result::Result::Err(
            ::pactum::HandlerError::NotImplemented("orders.v1.CancelOrder"),
        )
    }
}
