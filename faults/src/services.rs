//! The process under test: the example's orders and inventory services with their state and
//! their idempotency keys in PostgreSQL, plus pricing and cart (whose checkout places the
//! order downstream), all on one loopback port that speaks REST and gRPC.

use generated_example::generated::{cart, inventory, orders, payments, pricing};
use generated_example::services::cart::CartService;
use generated_example::services::durable::{Db, PgInventory, PgOrders, PgPayments};
use generated_example::services::pricing::Pricing;
use pactum::idempotency::{IdempotencyStore, Lease, PostgresStore};
use pactum::server::ServerConfig;
use std::sync::Arc;
use std::time::Duration;

/// The table the services keep idempotency keys in.
pub const KEYS_TABLE: &str = "pactum_faults_keys";
/// The `application_name` of the idempotency store's connection (the harness terminates it).
pub const STORE_APP: &str = "pactum-faults-store";
/// How much longer than its deadline a claim is leased here: short, so a killed holder's
/// keys are taken over within a run.
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// The cart the checkout schedule checks out (two books).
pub const CART: u128 = 42;

/// Serves on `127.0.0.1:port` until killed; prints `ready <url>` on stdout once listening.
pub async fn serve(postgres: &str, port: u16) -> Result<(), String> {
    let store: Arc<dyn IdempotencyStore> = Arc::new(
        PostgresStore::connect(
            &format!("{postgres} application_name={STORE_APP}"),
            KEYS_TABLE,
        )
        .await
        .map_err(|e| e.to_string())?,
    );
    let config = ServerConfig {
        idempotency: store,
        lease: Lease {
            margin: LEASE_MARGIN,
            without_deadline: Duration::from_secs(5),
            ..Lease::default()
        },
        ..ServerConfig::default()
    };
    let db = Arc::new(Db::new(&format!(
        "{postgres} application_name=pactum-faults-handlers"
    )));
    // The relay beside the service: it publishes the handlers' committed events (to the
    // embedded bus here) and marks them sent; killing the service kills it too.
    let relay_db = pactum::postgres::Database::new(postgres)
        .map_err(|e| e.to_string())?
        .named("pactum-faults-relay");
    tokio::spawn(async move {
        let relay = pactum::outbox::Relay::new(pactum::bus::Bus::new());
        let e = relay
            .run_postgres(&relay_db, generated_example::services::durable::OUTBOX)
            .await;
        eprintln!("outbox relay stopped: {e}");
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let orders = Arc::new(PgOrders::new(db.clone()));
    let inventory = Arc::new(PgInventory::new(db.clone()));
    let payments = Arc::new(PgPayments::new(db.clone()));
    let pricing = Arc::new(Pricing::new(
        "EUR",
        &[("BOOK-42", "12.50"), ("PEN-7", "1.20")],
    ));
    let cart = Arc::new(
        CartService::new(
            // The carts live in PostgreSQL (the harness writes them).
            Vec::new(),
            pricing::v1::Client::new(url.clone()),
        )
        .with_durable(db)
        .with_orders(orders::v1::Client::new(url.clone())),
    );
    let router = orders::v1::router_with(orders.clone(), config.clone())
        .merge(orders::v2::router_with(orders.clone(), config.clone()))
        .merge(orders::v1::grpc::router_with(orders, config.clone()))
        .merge(payments::v1::router_with(payments, config.clone()))
        .merge(inventory::v1::router_with(
            inventory.clone(),
            config.clone(),
        ))
        .merge(inventory::v1::grpc::router_with(inventory, config.clone()))
        .merge(pricing::v1::router_with(pricing, config.clone()))
        .merge(cart::v1::router_with(cart, config));
    println!("ready {url}");
    pactum::server::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}
