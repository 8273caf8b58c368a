
//! The handlers of `orders` v2. Written once by `pactum new`: this file is yours, and `pactum generate` never touches it.
//!
//! An operation of the contract that has no method here answers 501 / `UNIMPLEMENTED`: `pactum generate` lists those after a contract change.
//!
//!To publish an event, write it in the effect's transaction: `crate::wiring::orders_v2::outbox(&tx).<event>(&event).await?`; the relay `main.rs` starts publishes it once the transaction commits. PostgreSQL is `self.database`.
use crate::app::App;
use ::orders_api::orders::v2 as api;

impl crate::wiring::orders_v2::Handlers for App {
    /// `GetOrder`, over `GET /v2/orders/{id}` and gRPC.
    ///
    /// Replace the body; until then it answers 501 / `UNIMPLEMENTED`. Its declared errors convert with `?`: `Err(OrderNotFound { … })?`.
    async fn get_order(
        &self,
        ctx: ::pactum::Context,
        input: api::GetOrderRequest,
    ) -> ::core::result::Result<api::Order, ::pactum::HandlerError<api::GetOrderError>> {
        let _ = (ctx, input);
        ::core::result::Result::Err(
            ::pactum::HandlerError::NotImplemented("orders.v2.GetOrder"),
        )
    }

    /// `PlaceOrder`, over `POST /v2/orders`.
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
            ::pactum::HandlerError::NotImplemented("orders.v2.PlaceOrder"),
        )
    }

    /// `ListOrders`, over `GET /v2/customers/{customer_id}/orders` and gRPC.
    ///
    /// Replace the body; until then it answers 501 / `UNIMPLEMENTED`.
    async fn list_orders(
        &self,
        ctx: ::pactum::Context,
        input: api::ListOrdersRequest,
    ) -> ::core::result::Result<
        api::ListOrdersResponse,
        ::pactum::HandlerError<api::ListOrdersError>,
    > {
        let _ = (ctx, input);
        ::core::result::Result::Err(
            ::pactum::HandlerError::NotImplemented("orders.v2.ListOrders"),
        )
    }

    /// `WatchOrder`, over `GET /v2/orders/{id}/changes` and gRPC.
    ///
    /// Replace the body; until then it answers 501 / `UNIMPLEMENTED`. Its declared errors convert with `?`: `Err(OrderNotFound { … })?`.
    async fn watch_order(
        &self,
        ctx: ::pactum::Context,
        input: api::WatchOrderRequest,
    ) -> ::core::result::Result<
        ::pactum::BoxStream<
            ::core::result::Result<
                api::OrderStatusChange,
                ::pactum::HandlerError<api::WatchOrderError>,
            >,
        >,
        ::pactum::HandlerError<api::WatchOrderError>,
    > {
        let _ = (ctx, input);
        ::core::result::Result::Err(
            ::pactum::HandlerError::NotImplemented("orders.v2.WatchOrder"),
        )
    }
}
