//! Two replicas of the orders server share idempotency keys through the real PostgreSQL
//! (`PACTUM_TEST_POSTGRES`, default `host=127.0.0.1 port=5432 user=postgres dbname=test`):
//! a retry that lands on the other replica replays the reply instead of placing the order
//! again.

use generated_example::generated::{orders, pricing};
use generated_example::services::orders::Orders;
use generated_example::system::serve;
use pactum::router::ServerConfig;
use pactum::store::idempotency::PostgresStore;
use pactum::types::Uuid;
use pactum::Context;
use std::sync::atomic::Ordering;
use std::sync::Arc;

async fn replica(orders: Arc<Orders>, table: &str) -> String {
    let config = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let store = PostgresStore::connect(&config, table).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
    });
    let server = ServerConfig {
        idempotency: Arc::new(store),
        ..ServerConfig::default()
    };
    serve(orders::v1::rest::router_with(orders, server))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_keys_through_postgres() {
    let table = format!("pactum_e2e_idem_{}", std::process::id());
    // One shared order book stands for the shared database the replicas write to.
    let book = Arc::new(Orders::default());
    let a = orders::v1::rest::Client::new(replica(book.clone(), &table).await);
    let b = orders::v1::rest::Client::new(replica(book.clone(), &table).await);
    let request = orders::v1::PlaceOrderRequest {
        cart_id: Uuid::from_u128(1),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("BOOK-42".into()),
            quantity: 1,
            unit_price: pricing::v1::Money {
                amount: "12.50".parse().unwrap(),
                currency: pricing::v1::Currency("EUR".into()),
            },
        }],
        note: None,
    };
    let key = format!("replicated-{}", std::process::id());
    let ctx = Context::new().with_idempotency_key(key);
    let first = ctx.clone().scope(a.place_order(&request)).await.unwrap();
    let again = ctx.clone().scope(b.place_order(&request)).await.unwrap();
    assert_eq!(first, again, "replica B replays replica A's reply");
    assert_eq!(book.placed.load(Ordering::SeqCst), 1);

    // Concurrent first attempts on both replicas: one order, whichever wins.
    let ctx = Context::new().with_idempotency_key(format!("racing-{}", std::process::id()));
    let (ra, rb) = tokio::join!(
        ctx.clone().scope(a.place_order(&request)),
        ctx.scope(b.place_order(&request))
    );
    assert!(ra.is_ok() || rb.is_ok());
    assert_eq!(book.placed.load(Ordering::SeqCst), 2);

    let config = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let (client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}
