//! Starts the example services on loopback ports, each behind its generated router, with the
//! generated clients wired between them (cart → pricing over REST).

use crate::generated::{cart, inventory, orders, payments, pricing, shipping};
use crate::services::{
    cart::CartService, inventory::Inventory, orders::Orders, payments::Payments, pricing::Pricing,
    shipping::Shipping,
};
use pactum::rest::server::{axum, ServerConfig};
use pactum::types::{Timestamp, Uuid};
use std::sync::Arc;
use std::time::Duration;

/// The issuer of the demo's staff tokens (the shop's identity provider, in a real shop).
pub const DEMO_ISSUER: &str = "shop-idp";
/// The key the demo's staff tokens are signed with (HS256). A real deployment verifies
/// its identity provider's tokens against the provider's JWKS document instead
/// (`JwtVerifier::jwks_url`).
pub const DEMO_SIGNING_KEY: &[u8] = b"pactum demo: staff tokens are signed with this";
/// A payment partner's API key in the demo.
pub const DEMO_PARTNER_KEY: &str = "demo-partner-key-acme";
/// The scope a token needs to refund a payment.
pub const REFUND_SCOPE: &str = "payments:refund";

/// `cfg` with the payments service's verifiers: staff tokens (issued by [`DEMO_ISSUER`], for
/// the `payments` audience; refunds need [`REFUND_SCOPE`]) and partner keys.
pub fn payments_config(cfg: &ServerConfig) -> ServerConfig {
    use pactum::auth::{jwt::JwtVerifier, ApiKeys, Verifiers};
    let staff = JwtVerifier::hs256(DEMO_SIGNING_KEY)
        .expect("an HMAC key of any length")
        .issuer(DEMO_ISSUER)
        .audience("payments")
        .require_scope(
            &payments::v1::operations::REFUND_PAYMENT.scope(),
            REFUND_SCOPE,
        );
    ServerConfig {
        auth: Verifiers::new()
            .with("staff", staff)
            .with("partner", ApiKeys::new().key(DEMO_PARTNER_KEY, "acme")),
        ..cfg.clone()
    }
}

/// A staff token for `subject` with `scopes`, valid for an hour: the demo's stand-in for
/// the shop's identity provider.
pub fn staff_token(subject: &str, scopes: &[&str]) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + 3600);
    let claims = serde_json::json!({
        "sub": subject,
        "iss": DEMO_ISSUER,
        "aud": "payments",
        "exp": exp,
        "scope": scopes.join(" "),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEMO_SIGNING_KEY).expect("an HMAC key"),
    )
    .expect("HS256 signs any claims")
}

/// Serves `router` on `127.0.0.1` at a free port; returns its base URL.
pub async fn serve(router: axum::Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = pactum::router::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// Serves `router` on `0.0.0.0:port` (all interfaces, for outside clients; over `tls` if
/// given) until `shutdown` starts, then drains it; returns its URL and the server's task (one
/// `shutdown` drains too), which ends once drained.
pub async fn serve_on(
    port: u16,
    router: axum::Router,
    shutdown: &pactum::shutdown::Shutdown,
    tls: Option<pactum::tls::ServerTls>,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let stop = shutdown.triggered();
    let server = shutdown.spawn(async move {
        // Requests get 20 s to finish: inside `main`'s 25 s drain, itself inside the 30 s
        // Kubernetes waits before SIGKILL.
        let options = pactum::router::ServeOptions {
            shutdown_grace: Duration::from_secs(20),
            tls,
            ..pactum::router::ServeOptions::default()
        };
        if let Err(e) = pactum::router::serve_with(listener, router, options, stop).await {
            eprintln!("server on port {port} stopped: {e}");
        }
    });
    Ok((format!("{scheme}://127.0.0.1:{}", addr.port()), server))
}

/// How to start the system.
#[derive(Clone)]
pub struct Options {
    /// Simulated work per pricing quote.
    pub pricing_latency: Duration,
    /// Server settings (idempotency store, body limit) for every service.
    pub server: ServerConfig,
    /// The whole checkout: cart places the order with orders, which publishes `OrderPlaced`
    /// here. Without it, checkout only prices the cart.
    pub events: Option<crate::transport::Sink>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pricing_latency: Duration::from_millis(5),
            server: ServerConfig::default(),
            events: None,
        }
    }
}

/// The running system: service state (for inspection) and base URLs.
pub struct System {
    /// Pricing's state.
    pub pricing: Arc<Pricing>,
    /// Cart's state.
    pub cart: Arc<CartService>,
    /// Orders' state (serving v1 and v2).
    pub orders: Arc<Orders>,
    /// Payments' state.
    pub payments: Arc<Payments>,
    /// Inventory's state.
    pub inventory: Arc<Inventory>,
    /// Shipping's state.
    pub shipping: Arc<Shipping>,
    /// Base URL of each service, by name.
    pub pricing_url: String,
    /// Cart's base URL.
    pub cart_url: String,
    /// Orders' base URL (both majors, under `/v1` and `/v2`, and gRPC).
    pub orders_url: String,
    /// Payments' base URL.
    pub payments_url: String,
    /// Inventory's base URL.
    pub inventory_url: String,
    /// Shipping's base URL.
    pub shipping_url: String,
}

impl System {
    /// Every service's REST API in one router (their paths do not overlap), over the same
    /// service state as the per-service ports.
    pub fn rest_router(&self) -> axum::Router {
        let cfg = ServerConfig::default();
        pricing::v1::rest::router_with(self.pricing.clone(), cfg.clone())
            .merge(cart::v1::rest::router_with(self.cart.clone(), cfg.clone()))
            .merge(orders::v1::rest::router_with(
                self.orders.clone(),
                cfg.clone(),
            ))
            .merge(orders::v2::rest::router_with(
                self.orders.clone(),
                cfg.clone(),
            ))
            .merge(payments::v1::rest::router_with(
                self.payments.clone(),
                payments_config(&cfg),
            ))
            .merge(inventory::v1::rest::router_with(
                self.inventory.clone(),
                cfg.clone(),
            ))
            .merge(shipping::v1::rest::router_with(self.shipping.clone(), cfg))
    }

    /// Every gRPC service in one router: HTTP/2, `/<package>.<Service>/<Method>` paths, and
    /// server reflection over all of them (and over `grpc.health.v1`, which `main` merges in),
    /// so `grpcurl list` and `describe` need no `.proto`.
    pub fn grpc_router(&self) -> Result<axum::Router, pactum::grpc::reflection::Error> {
        use pactum::grpc::health;
        let reflection = pactum::grpc::reflection::router(&[
            (
                pricing::v1::grpc::SERVICE_NAME,
                pricing::v1::grpc::FILE_DESCRIPTOR_SET,
            ),
            (
                inventory::v1::grpc::SERVICE_NAME,
                inventory::v1::grpc::FILE_DESCRIPTOR_SET,
            ),
            (
                orders::v1::grpc::SERVICE_NAME,
                orders::v1::grpc::FILE_DESCRIPTOR_SET,
            ),
            (
                orders::v2::grpc::SERVICE_NAME,
                orders::v2::grpc::FILE_DESCRIPTOR_SET,
            ),
            (
                payments::v1::grpc::SERVICE_NAME,
                payments::v1::grpc::FILE_DESCRIPTOR_SET,
            ),
            health::REFLECTION,
        ])?;
        let cfg = ServerConfig::default();
        Ok(
            pricing::v1::grpc::router_with(self.pricing.clone(), cfg.clone())
                .merge(inventory::v1::grpc::router_with(
                    self.inventory.clone(),
                    cfg.clone(),
                ))
                .merge(orders::v1::grpc::router_with(
                    self.orders.clone(),
                    cfg.clone(),
                ))
                .merge(orders::v2::grpc::router_with(
                    self.orders.clone(),
                    cfg.clone(),
                ))
                .merge(payments::v1::grpc::router_with(
                    self.payments.clone(),
                    payments_config(&cfg),
                ))
                .merge(reflection),
        )
    }
}

/// The demo cart: two books and three pens.
pub const DEMO_CART: u128 = 42;
/// A shipment scanned in Hamburg, then Berlin.
pub const DEMO_SHIPMENT: u128 = 0x5417;

/// Starts every service with demo data.
pub async fn start(options: Options) -> std::io::Result<System> {
    let cfg = options.server;
    let pricing = Arc::new(
        Pricing::new("EUR", &[("BOOK-42", "12.50"), ("PEN-7", "1.20")])
            .with_latency(options.pricing_latency),
    );
    let pricing_url = serve(
        pricing::v1::rest::router_with(pricing.clone(), cfg.clone())
            .merge(pricing::v1::grpc::router_with(pricing.clone(), cfg.clone())),
    )
    .await?;

    // Inventory serves REST and gRPC on one port: axum speaks HTTP/1.1 and HTTP/2.
    let inventory = Arc::new(Inventory::default());
    inventory.restock("BOOK-42", 10);
    inventory.restock("PEN-7", 100);
    let inventory_url = serve(
        inventory::v1::rest::router_with(inventory.clone(), cfg.clone()).merge(
            inventory::v1::grpc::router_with(inventory.clone(), cfg.clone()),
        ),
    )
    .await?;

    let orders = match &options.events {
        Some(sink) => {
            Orders::default().with_events(orders::v1::events::Publisher::new(sink.clone()))
        }
        None => Orders::default(),
    };
    let orders = Arc::new(orders);
    let orders_url = serve(
        orders::v1::rest::router_with(orders.clone(), cfg.clone())
            .merge(orders::v2::rest::router_with(orders.clone(), cfg.clone()))
            .merge(orders::v1::grpc::router_with(orders.clone(), cfg.clone()))
            .merge(orders::v2::grpc::router_with(orders.clone(), cfg.clone())),
    )
    .await?;

    let mut cart_service = CartService::new(
        vec![
            cart::v1::Cart {
                id: cart::v1::CartId(Uuid::from_u128(DEMO_CART)),
                customer_id: Uuid::from_u128(7),
                items: vec![
                    cart::v1::CartItem {
                        sku: pricing::v1::Sku("BOOK-42".into()),
                        quantity: 2,
                    },
                    cart::v1::CartItem {
                        sku: pricing::v1::Sku("PEN-7".into()),
                        quantity: 3,
                    },
                ],
                total: None,
                updated_at: Timestamp::UNIX_EPOCH,
            },
            cart::v1::Cart {
                id: cart::v1::CartId(Uuid::from_u128(43)),
                customer_id: Uuid::from_u128(7),
                items: vec![],
                total: None,
                updated_at: Timestamp::UNIX_EPOCH,
            },
        ],
        pricing::v1::rest::Client::new(pricing_url.clone()),
    )
    .with_inventory(
        inventory::v1::grpc::Client::connect_lazy(inventory_url.clone())
            .map_err(std::io::Error::other)?,
    );
    if options.events.is_some() {
        cart_service = cart_service.with_orders(orders::v1::rest::Client::new(orders_url.clone()));
    }
    let cart = Arc::new(cart_service);
    let cart_url = serve(cart::v1::rest::router_with(cart.clone(), cfg.clone())).await?;

    let payments = Arc::new(Payments::default());
    payments.capture(
        Uuid::from_u128(0xfee),
        Uuid::from_u128(1),
        pricing::v1::Money {
            amount: "28.60".parse().expect("literal"),
            currency: pricing::v1::Currency("EUR".into()),
        },
    );
    let payments_url = serve(
        payments::v1::rest::router_with(payments.clone(), payments_config(&cfg)).merge(
            payments::v1::grpc::router_with(payments.clone(), payments_config(&cfg)),
        ),
    )
    .await?;

    let shipping = Arc::new(Shipping::default());
    shipping.ship(Uuid::from_u128(DEMO_SHIPMENT), &["Hamburg", "Berlin"]);
    let shipping_url = serve(shipping::v1::rest::router_with(shipping.clone(), cfg)).await?;

    Ok(System {
        pricing,
        cart,
        orders,
        payments,
        inventory,
        shipping,
        pricing_url,
        cart_url,
        orders_url,
        payments_url,
        inventory_url,
        shipping_url,
    })
}
