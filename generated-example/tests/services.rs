//! The hand-written services over generated types: declared errors, deadlines, and the
//! budget flowing from cart to pricing.

use generated_example::generated::{cart::v1 as cart, pricing::v1 as pricing};
use generated_example::services::{cart::CartService, pricing::Pricing};
use pactum::types::{Timestamp, Uuid};
use pactum::{Context, HandlerError};
use std::sync::Arc;
use std::time::Duration;

fn service(items: &[(&str, u32)], latency: Duration) -> CartService {
    let pricing =
        Pricing::new("EUR", &[("BOOK-42", "12.50"), ("PEN-7", "1.20")]).with_latency(latency);
    CartService::new(
        vec![cart::Cart {
            id: cart::CartId(Uuid::from_u128(1)),
            customer_id: Uuid::from_u128(2),
            items: items
                .iter()
                .map(|(sku, q)| cart::CartItem {
                    sku: pricing::Sku(sku.to_string()),
                    quantity: *q,
                })
                .collect(),
            total: None,
            updated_at: Timestamp::UNIX_EPOCH,
        }],
        Arc::new(pricing),
    )
}

fn checkout(id: u128) -> cart::CheckoutCartRequest {
    cart::CheckoutCartRequest {
        cart_id: cart::CartId(Uuid::from_u128(id)),
    }
}

#[tokio::test(start_paused = true)]
async fn checkout_prices_the_cart() {
    let r = service(&[("BOOK-42", 2), ("PEN-7", 3)], Duration::from_millis(5))
        .checkout(checkout(1))
        .await
        .unwrap();
    assert_eq!(r.total.amount.to_string(), "28.60");
    assert_eq!(r.total.currency.0, "EUR");
}

#[tokio::test(start_paused = true)]
async fn declared_errors_come_back_typed() {
    let svc = service(&[], Duration::ZERO);
    match svc.checkout(checkout(9)).await {
        Err(HandlerError::Declared(cart::CheckoutCartError::CartNotFound(e))) => {
            assert_eq!(e.cart_id.0, Uuid::from_u128(9))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        svc.checkout(checkout(1)).await,
        Err(HandlerError::Declared(cart::CheckoutCartError::CartEmpty(
            _
        )))
    ));
    let unknown = service(&[("GHOST-1", 1)], Duration::ZERO);
    assert!(
        matches!(unknown.checkout(checkout(1)).await, Err(HandlerError::Internal(m)) if m.contains("No price"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_dependency_hits_its_contract_deadline() {
    let started = tokio::time::Instant::now();
    let r = service(&[("BOOK-42", 1)], Duration::from_secs(5))
        .checkout(checkout(1))
        .await;
    assert_eq!(r, Err(HandlerError::DeadlineExceeded));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(200),
        "pricing's 200 ms budget"
    );
}

#[tokio::test(start_paused = true)]
async fn the_callers_tighter_budget_reaches_pricing() {
    let started = tokio::time::Instant::now();
    let caller = Context::new().with_timeout(Duration::from_millis(50));
    let r = caller
        .scope(service(&[("BOOK-42", 1)], Duration::from_millis(100)).checkout(checkout(1)))
        .await;
    assert_eq!(r, Err(HandlerError::DeadlineExceeded));
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}
