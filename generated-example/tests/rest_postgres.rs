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

/// The orders v2 server over PostgreSQL, its page cursors sealed with `key`.
async fn pg_replica(db: Arc<generated_example::services::durable::Db>, key: &[u8]) -> String {
    let server = ServerConfig {
        cursors: pactum::pagination::Cursors::new(key.to_vec()),
        ..ServerConfig::default()
    };
    let orders = Arc::new(generated_example::services::durable::PgOrders::new(db));
    serve(orders::v2::rest::router_with(orders, server))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_orders_page_across_replicas_that_share_the_cursor_key() {
    use generated_example::services::durable::Db;
    let config = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let db = Arc::new(Db::new(&config));
    db.prepare(&[]).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
    });
    // Seven orders of a customer of this run alone, and one of another customer between them.
    let customer: Uuid = pactum::random_id().parse().unwrap();
    let conn = db.get().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..8u32 {
        let id: Uuid = pactum::random_id().parse().unwrap();
        let owner = if i == 3 { Uuid::nil() } else { customer };
        let order = orders::v2::Order {
            id: orders::v2::OrderId(id),
            customer_id: orders::v2::CustomerId(owner),
            items: Vec::new(),
            status: orders::v2::OrderStatus::Pending,
            total: pricing::v1::Money {
                amount: "1.00".parse().unwrap(),
                currency: pricing::v1::Currency("EUR".into()),
            },
            placed_at: pactum::types::Timestamp::UNIX_EPOCH,
        };
        conn.execute(
            "INSERT INTO durable_orders (id, cart_id, status, major, body) VALUES ($1, $2, 'pending', 2, $3)",
            &[&id.to_string(), &Uuid::nil().to_string(), &serde_json::to_string(&order).unwrap()],
        )
        .await
        .unwrap();
        if owner == customer {
            ids.push(id.to_string());
        }
    }
    drop(conn);
    ids.sort();

    let key = b"a shared 32-byte cursor key .....";
    let a = orders::v2::rest::Client::new(pg_replica(db.clone(), key).await);
    let b = orders::v2::rest::Client::new(pg_replica(db.clone(), key).await);
    let request = |page_token| orders::v2::ListOrdersRequest {
        customer_id: orders::v2::CustomerId(customer),
        status: None,
        page_size: Some(3),
        page_token,
    };
    // Page one from replica A, the rest from replica B.
    let mut seen = Vec::new();
    let mut page = a.list_orders(&request(None)).await.unwrap();
    for _ in 0..10 {
        seen.extend(page.orders.iter().map(|o| o.id.0.to_string()));
        let Some(token) = page.next_page_token.clone() else {
            break;
        };
        page = b.list_orders(&request(Some(token))).await.unwrap();
    }
    assert_eq!(seen, ids, "every order of the customer once, in id order");

    // A replica with another key refuses the cursor: keys must be shared.
    let other = orders::v2::rest::Client::new(pg_replica(db.clone(), b"another key").await);
    let first = a.list_orders(&request(None)).await.unwrap();
    match other.list_orders(&request(first.next_page_token)).await {
        Err(pactum::ClientError::Rejected(p)) => {
            assert_eq!(p.status, 422);
            let violations = &p.extensions["violations"][0];
            assert_eq!(violations["pointer"], "/page_token", "{p:?}");
            assert!(
                violations["message"].as_str().unwrap().contains("altered"),
                "{p:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}
