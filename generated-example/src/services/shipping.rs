//! The shipping service: parcel tracking.

use crate::generated::shipping::v1 as api;
use pactum::types::{Timestamp, Uuid};
use pactum::{Context, HandlerError};
use std::collections::HashMap;
use std::sync::Mutex;

/// Shipments and their latest scan, in memory.
#[derive(Default)]
pub struct Shipping {
    shipments: Mutex<HashMap<Uuid, Option<api::TrackingEvent>>>,
}

impl Shipping {
    /// Registers a shipment with a scan history (`locations`, oldest first).
    pub fn ship(&self, id: Uuid, locations: &[&str]) {
        let mut latest: Option<api::TrackingEvent> = None;
        for l in locations {
            latest = Some(api::TrackingEvent {
                at: Timestamp::UNIX_EPOCH,
                location: l.to_string(),
                previous: latest.map(Box::new),
            });
        }
        self.shipments
            .lock()
            .expect("shipments lock")
            .insert(id, latest);
    }
}

impl api::Service for Shipping {
    async fn track_shipment(
        &self,
        _ctx: Context,
        input: api::TrackShipmentRequest,
    ) -> Result<api::TrackShipmentResponse, HandlerError<api::TrackShipmentError>> {
        let shipments = self.shipments.lock().expect("shipments lock");
        let latest = shipments
            .get(&input.id.0)
            .cloned()
            .ok_or(api::ShipmentNotFound {
                id: input.id.clone(),
            })?;
        Ok(api::TrackShipmentResponse {
            shipment_id: input.id,
            latest,
        })
    }
}
