//! The orders service, serving major versions 1 and 2 of its contract from one store.

use super::Seen;
use crate::generated::{orders, pricing};
use pactum::types::{Timestamp, Uuid};
use pactum::{Context, HandlerError};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// An order as stored, independent of the API version that created it.
#[derive(Clone)]
struct Stored {
    id: Uuid,
    customer_id: Option<Uuid>,
    lines: Vec<(pricing::v1::Sku, u32, pricing::v1::Money)>,
    status: &'static str,
    total: pricing::v1::Money,
    note: Option<String>,
    /// Every status it has had, with when: what `WatchOrder` streams.
    history: Vec<(&'static str, Timestamp)>,
}

impl Stored {
    /// Moves to `status`, remembering the step.
    fn set_status(&mut self, status: &'static str) {
        self.status = status;
        self.history
            .push((status, Timestamp::from(std::time::SystemTime::now())));
    }
}

/// Statuses an order never leaves.
fn is_final(status: &str) -> bool {
    matches!(status, "cancelled" | "refunded" | "shipped")
}

/// Orders in memory. `placed` counts effects, so tests can see retries applied once.
#[derive(Default)]
pub struct Orders {
    orders: Arc<Mutex<BTreeMap<Uuid, Stored>>>,
    /// Woken on every status change, for the streams watching orders.
    changed: Arc<tokio::sync::Notify>,
    /// Orders created so far (the effect idempotency protects).
    pub placed: AtomicU32,
    /// Calls seen, with their trace ids.
    pub seen: Arc<Seen>,
    /// Publishes `OrderPlaced` when set.
    events: Option<orders::v1::events::Publisher<crate::transport::Sink>>,
}

fn status_v1(s: &str) -> orders::v1::OrderStatus {
    serde_json::from_value(serde_json::Value::String(s.into())).expect("strings are open enums")
}

fn status_v2(s: &str) -> orders::v2::OrderStatus {
    serde_json::from_value(serde_json::Value::String(s.into())).expect("strings are open enums")
}

impl Orders {
    /// Publishes `OrderPlaced` for every order placed through v1.
    pub fn with_events(
        mut self,
        events: orders::v1::events::Publisher<crate::transport::Sink>,
    ) -> Self {
        self.events = Some(events);
        self
    }

    /// Marks `id` paid; false if there is no such order.
    pub fn mark_paid(&self, id: Uuid) -> bool {
        let mut all = self.orders.lock().expect("orders lock");
        match all.get_mut(&id) {
            Some(order) => {
                if order.status == "pending" {
                    order.set_status("paid");
                    self.changed.notify_waiters();
                }
                true
            }
            None => false,
        }
    }

    /// The status of `id`, if it exists.
    pub fn status(&self, id: Uuid) -> Option<&'static str> {
        self.get(id).map(|o| o.status)
    }

    fn total(lines: &[(pricing::v1::Sku, u32, pricing::v1::Money)]) -> pricing::v1::Money {
        let currency = lines.first().map_or_else(
            || pricing::v1::Currency("EUR".into()),
            |l| l.2.currency.clone(),
        );
        pricing::v1::Money {
            amount: lines
                .iter()
                .map(|(_, q, m)| m.amount * pactum::types::Decimal::from(*q))
                .sum(),
            currency,
        }
    }

    fn insert(
        &self,
        customer_id: Option<Uuid>,
        lines: Vec<(pricing::v1::Sku, u32, pricing::v1::Money)>,
        note: Option<String>,
    ) -> Stored {
        self.placed.fetch_add(1, Ordering::SeqCst);
        // Random ids: with a durable broker and store, a second run must not reuse the first
        // run's ids (their events would be recognised as already processed).
        let id: Uuid = pactum::random_id().parse().expect("a UUID");
        let order = Stored {
            id,
            customer_id,
            total: Self::total(&lines),
            lines,
            status: "pending",
            note,
            history: vec![("pending", Timestamp::from(std::time::SystemTime::now()))],
        };
        self.orders
            .lock()
            .expect("orders lock")
            .insert(order.id, order.clone());
        order
    }

    fn get(&self, id: Uuid) -> Option<Stored> {
        self.orders.lock().expect("orders lock").get(&id).cloned()
    }

    fn v1(o: Stored) -> orders::v1::Order {
        orders::v1::Order {
            id: orders::v1::OrderId(o.id),
            customer_id: o.customer_id,
            lines: o
                .lines
                .into_iter()
                .map(|(sku, quantity, unit_price)| orders::v1::OrderLine {
                    sku,
                    quantity,
                    unit_price,
                })
                .collect(),
            status: status_v1(o.status),
            total: o.total,
            placed_at: Timestamp::UNIX_EPOCH,
            note: o.note,
        }
    }

    fn v2(o: Stored) -> orders::v2::Order {
        orders::v2::Order {
            id: orders::v2::OrderId(o.id),
            customer_id: orders::v2::CustomerId(o.customer_id.unwrap_or_default()),
            items: o
                .lines
                .into_iter()
                .map(|(sku, quantity, unit_price)| orders::v2::OrderItem {
                    sku,
                    quantity,
                    unit_price,
                })
                .collect(),
            status: status_v2(o.status),
            total: o.total,
            placed_at: Timestamp::UNIX_EPOCH,
        }
    }
}

impl orders::v1::Service for Orders {
    async fn get_order(
        &self,
        _ctx: Context,
        input: orders::v1::GetOrderRequest,
    ) -> Result<orders::v1::Order, HandlerError<orders::v1::GetOrderError>> {
        self.seen.record("GetOrder");
        let order = self
            .get(input.id.0)
            .ok_or(orders::v1::OrderNotFound { id: input.id })?;
        Ok(Self::v1(order))
    }

    async fn place_order(
        &self,
        ctx: Context,
        input: orders::v1::PlaceOrderRequest,
    ) -> Result<orders::v1::Order, HandlerError<orders::v1::PlaceOrderError>> {
        self.seen.record("PlaceOrder");
        let lines = input
            .lines
            .into_iter()
            .map(|l| (l.sku, l.quantity, l.unit_price))
            .collect();
        let order = Self::v1(self.insert(input.customer_id, lines, input.note));
        if let Some(events) = &self.events {
            let placed = orders::v1::OrderPlaced {
                order_id: order.id.clone(),
                customer_id: order.customer_id,
                lines: order.lines.clone(),
                total: order.total.clone(),
            };
            // Under the request's trace and deadline. A replayed request (same idempotency
            // key) gets the stored reply and does not publish again.
            events
                .order_placed(&format!("placed-{}", order.id.0), &placed)
                .await
                .map_err(|e| HandlerError::internal(format!("cannot publish OrderPlaced: {e}")))?;
        }
        // The effect and its event are done: from here on a failure replays the order.
        super::recorded(&ctx, order).await
    }

    async fn cancel_order(
        &self,
        ctx: Context,
        input: orders::v1::CancelOrderRequest,
    ) -> Result<orders::v1::Order, HandlerError<orders::v1::CancelOrderError>> {
        self.seen.record("CancelOrder");
        let reply = {
            let mut all = self.orders.lock().expect("orders lock");
            let order = all.get_mut(&input.id.0).ok_or(orders::v1::OrderNotFound {
                id: input.id.clone(),
            })?;
            if !matches!(order.status, "pending" | "paid") {
                Err(orders::v1::OrderNotCancellable {
                    id: input.id,
                    status: status_v1(order.status),
                })?;
            }
            order.set_status("cancelled");
            self.changed.notify_waiters();
            Self::v1(order.clone())
        };
        super::recorded(&ctx, reply).await
    }
}

impl orders::v2::Service for Orders {
    async fn get_order(
        &self,
        _ctx: Context,
        input: orders::v2::GetOrderRequest,
    ) -> Result<orders::v2::Order, HandlerError<orders::v2::GetOrderError>> {
        let order = self
            .get(input.id.0)
            .ok_or(orders::v2::OrderNotFound { id: input.id })?;
        Ok(Self::v2(order))
    }

    async fn place_order(
        &self,
        ctx: Context,
        input: orders::v2::PlaceOrderRequest,
    ) -> Result<orders::v2::Order, HandlerError<orders::v2::PlaceOrderError>> {
        let lines = input
            .items
            .into_iter()
            .map(|l| (l.sku, l.quantity, l.unit_price))
            .collect();
        let order = Self::v2(self.insert(Some(input.customer_id.0), lines, None));
        super::recorded(&ctx, order).await
    }

    async fn list_orders(
        &self,
        _ctx: Context,
        input: orders::v2::ListOrdersRequest,
    ) -> Result<orders::v2::ListOrdersResponse, HandlerError<orders::v2::ListOrdersError>> {
        // Pages in id order; the cursor is the last id of the page before (the runtime
        // seals it for the client and refuses it altered, so it parses unless this code
        // wrote something else).
        let size = input.page_size.unwrap_or(20) as usize;
        let after = match &input.page_token {
            Some(t) => Some(t.parse::<Uuid>().map_err(HandlerError::internal)?),
            None => None,
        };
        let all = self.orders.lock().expect("orders lock");
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<(Uuid, Stored)> = all
            .range((lower, Bound::Unbounded))
            .filter(|(_, o)| o.customer_id == Some(input.customer_id.0))
            .filter(|(_, o)| input.status.as_ref().is_none_or(|s| s.as_str() == o.status))
            .take(size + 1)
            .map(|(id, o)| (*id, o.clone()))
            .collect();
        let more = page.len() > size;
        page.truncate(size);
        let next_page_token = more
            .then(|| page.last().map(|(id, _)| id.to_string()))
            .flatten();
        Ok(orders::v2::ListOrdersResponse {
            orders: page.into_iter().map(|(_, o)| Self::v2(o)).collect(),
            next_page_token,
        })
    }

    async fn watch_order(
        &self,
        _ctx: Context,
        input: orders::v2::WatchOrderRequest,
    ) -> Result<
        pactum::BoxStream<
            Result<orders::v2::OrderStatusChange, HandlerError<orders::v2::WatchOrderError>>,
        >,
        HandlerError<orders::v2::WatchOrderError>,
    > {
        let id = input.id.0;
        if self.get(id).is_none() {
            Err(orders::v2::OrderNotFound { id: input.id })?;
        }
        let (orders, changed) = (self.orders.clone(), self.changed.clone());
        // `seq` counts from 1; the next one to send follows `after` (a resume).
        let next = input.after.unwrap_or(0) + 1;
        let changes = futures_util::stream::unfold(next, move |seq| {
            let (orders, changed) = (orders.clone(), changed.clone());
            async move {
                // Each turn sends the next step, or waits for one; the stream ends after a
                // final status (or, from outside, at the client's leaving or the deadline).
                loop {
                    // Registered before the state is read, so a change in between wakes it.
                    let notified = changed.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    let (step, done) = {
                        let all = orders.lock().expect("orders lock");
                        let order = all.get(&id)?;
                        let step = order.history.get(seq as usize - 1).copied();
                        (
                            step,
                            is_final(order.status) && seq as usize > order.history.len(),
                        )
                    };
                    if let Some((status, at)) = step {
                        let change = orders::v2::OrderStatusChange {
                            order_id: orders::v2::OrderId(id),
                            seq,
                            status: status_v2(status),
                            at,
                        };
                        return Some((Ok(change), seq + 1));
                    }
                    if done {
                        return None;
                    }
                    notified.await;
                }
            }
        });
        Ok(Box::pin(changes))
    }
}
