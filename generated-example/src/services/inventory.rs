//! The inventory service: stock levels and reservations.

use super::Seen;
use crate::generated::{inventory::v1 as api, pricing::v1 as pricing};
use pactum::types::{Timestamp, Uuid};
use pactum::{Context, HandlerError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Stock per SKU and reservations, in memory.
#[derive(Default)]
pub struct Inventory {
    stock: Mutex<HashMap<String, (u32, u32)>>,
    reservations: Mutex<HashMap<Uuid, Vec<(String, u32)>>>,
    /// Simulated work per stock check.
    pub latency: Mutex<Duration>,
    /// Calls seen, with their trace ids.
    pub seen: Arc<Seen>,
}

impl Inventory {
    /// A snapshot of every SKU's (available, reserved).
    pub fn stock_levels(&self) -> HashMap<String, (u32, u32)> {
        self.stock.lock().expect("stock lock").clone()
    }

    /// Sets the available quantity of `sku`.
    pub fn restock(&self, sku: &str, available: u32) {
        self.stock
            .lock()
            .expect("stock lock")
            .insert(sku.into(), (available, 0));
    }
}

type Stream<T, E> = pactum::BoxStream<Result<T, HandlerError<E>>>;

/// The availability of each of `skus` in `stock` (available, reserved), as a stream.
pub(crate) fn changes(
    stock: &HashMap<String, (u32, u32)>,
    skus: Vec<pricing::Sku>,
) -> Stream<api::StockChange, api::WatchStockError> {
    let changes: Vec<_> = skus
        .into_iter()
        .map(|sku| {
            Ok(api::StockChange {
                available: stock.get(&sku.0).map_or(0, |s| s.0),
                sku,
                at: Timestamp::UNIX_EPOCH,
            })
        })
        .collect();
    Box::pin(pactum::__private::tokio_stream::iter(changes))
}

/// Each scanned SKU's level in `stock`, as it is scanned.
pub(crate) fn scan(
    stock: HashMap<String, (u32, u32)>,
    input: pactum::BoxStream<Result<api::ScanStockRequest, pactum::StreamError>>,
) -> Stream<api::StockLevel, api::ScanStockError> {
    use pactum::__private::tokio_stream::StreamExt;
    Box::pin(input.map(move |item| {
        let item = item.map_err(|e| HandlerError::internal(format!("bad scan: {e}")))?;
        let (available, reserved) = stock.get(&item.sku.0).copied().unwrap_or((0, 0));
        Ok(api::StockLevel {
            sku: item.sku,
            available,
            reserved,
        })
    }))
}

impl api::Service for Inventory {
    async fn watch_stock(
        &self,
        _ctx: Context,
        input: api::WatchStockRequest,
    ) -> Result<
        pactum::BoxStream<Result<api::StockChange, HandlerError<api::WatchStockError>>>,
        HandlerError<api::WatchStockError>,
    > {
        self.seen.record("WatchStock");
        Ok(changes(&self.stock_levels(), input.skus))
    }

    async fn scan_stock(
        &self,
        _ctx: Context,
        input: pactum::BoxStream<Result<api::ScanStockRequest, pactum::StreamError>>,
    ) -> Result<
        pactum::BoxStream<Result<api::StockLevel, HandlerError<api::ScanStockError>>>,
        HandlerError<api::ScanStockError>,
    > {
        Ok(scan(self.stock_levels(), input))
    }

    async fn bulk_restock(
        &self,
        _ctx: Context,
        mut input: pactum::BoxStream<Result<api::BulkRestockRequest, pactum::StreamError>>,
    ) -> Result<api::BulkRestockResponse, HandlerError<api::BulkRestockError>> {
        use pactum::__private::tokio_stream::StreamExt;
        let mut skus = std::collections::BTreeSet::new();
        let mut units = 0u64;
        while let Some(item) = input.next().await {
            let item =
                item.map_err(|e| HandlerError::internal(format!("bad restock message: {e}")))?;
            let mut stock = self.stock.lock().expect("stock lock");
            stock.entry(item.sku.0.clone()).or_default().0 += item.quantity;
            skus.insert(item.sku.0);
            units += u64::from(item.quantity);
        }
        Ok(api::BulkRestockResponse {
            skus: skus.len() as u32,
            units,
        })
    }

    async fn check_stock(
        &self,
        _ctx: Context,
        input: api::CheckStockRequest,
    ) -> Result<api::StockLevel, HandlerError<api::CheckStockError>> {
        self.seen.record("CheckStock");
        let latency = *self.latency.lock().expect("latency lock");
        tokio::time::sleep(latency).await;
        let (available, reserved) = self
            .stock
            .lock()
            .expect("stock lock")
            .get(&input.sku.0)
            .copied()
            .unwrap_or((0, 0));
        Ok(api::StockLevel {
            sku: input.sku,
            available,
            reserved,
        })
    }

    async fn reserve_stock(
        &self,
        ctx: Context,
        input: api::ReserveStockRequest,
    ) -> Result<api::ReserveStockResponse, HandlerError<api::ReserveStockError>> {
        let reply = {
            let mut stock = self.stock.lock().expect("stock lock");
            for line in &input.lines {
                let available = stock.get(&line.sku.0).map_or(0, |s| s.0);
                if available < line.quantity {
                    Err(api::OutOfStock {
                        sku: line.sku.clone(),
                        requested: line.quantity,
                        available,
                    })?;
                }
            }
            let mut held = Vec::new();
            for line in input.lines {
                let entry = stock.entry(line.sku.0.clone()).or_default();
                entry.0 -= line.quantity;
                entry.1 += line.quantity;
                held.push((line.sku.0, line.quantity));
            }
            let id = Uuid::from_u128(input.order_id.as_u128() ^ 0x5e5e);
            self.reservations
                .lock()
                .expect("reservations lock")
                .insert(id, held);
            api::ReserveStockResponse {
                reservation_id: api::ReservationId(id),
                expires_at: Timestamp::UNIX_EPOCH,
            }
        };
        super::recorded(&ctx, reply).await
    }

    async fn release_stock(
        &self,
        ctx: Context,
        input: api::ReleaseStockRequest,
    ) -> Result<(), HandlerError<api::ReleaseStockError>> {
        let held = self
            .reservations
            .lock()
            .expect("reservations lock")
            .remove(&input.reservation_id.0)
            .ok_or(api::ReservationNotFound {
                reservation_id: input.reservation_id,
            })?;
        {
            let mut stock = self.stock.lock().expect("stock lock");
            for (sku, q) in held {
                let entry = stock.entry(sku).or_default();
                entry.0 += q;
                entry.1 -= q;
            }
        }
        super::recorded(&ctx, ()).await
    }
}
