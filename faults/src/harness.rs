//! Runs schedules of faults against the services process and counts effects.
//!
//! A run picks one of the example's keyed operations and a fault, starts a fresh services process (on a fixed port, so
//! a restart comes back at the same address) behind the [`Proxy`], and makes one logical
//! keyed call — the generated client's own retries included — repeating it with the same key
//! until it succeeds (at most [`MAX_ATTEMPTS`] times, [`RUN_LIMIT`] in all). Then it replays
//! the call twice more and reads PostgreSQL: the effect must be there exactly once, and every
//! answer must be the same. A run that never succeeds counts as lost; an effect applied twice
//! as duplicated.

use crate::proxy::{Break, Proxy};
use crate::services::{CART, STORE_APP};
use generated_example::generated::{cart, inventory, orders, payments, pricing};
use pactum::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Logical attempts per run.
pub const MAX_ATTEMPTS: u32 = 40;
/// Time limit of one run.
pub const RUN_LIMIT: Duration = Duration::from_secs(45);

/// A keyed operation of the example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `orders.v1.PlaceOrder` over REST.
    PlaceOrder,
    /// `orders.v2.PlaceOrder` over REST.
    PlaceOrderV2,
    /// `orders.v1.CancelOrder` over REST.
    CancelOrder,
    /// `inventory.v1.ReserveStock` over gRPC.
    ReserveStock,
    /// `inventory.v1.ReleaseStock` over gRPC.
    ReleaseStock,
    /// `cart.v1.AddItem` over REST.
    AddItem,
    /// `cart.v1.CheckoutCart` over REST, which prices the cart (a keyed `QuoteCart`) and
    /// places the order downstream (a keyed `PlaceOrder`), each with a key derived from the
    /// checkout's.
    Checkout,
    /// `payments.v1.RefundPayment` over REST.
    RefundPayment,
    /// `pricing.v1.QuoteCart` over REST: keyed, but with no effect to count; its answers
    /// are still compared.
    QuoteCart,
}

/// Every keyed operation of the example.
pub const OPS: [Op; 9] = [
    Op::PlaceOrder,
    Op::PlaceOrderV2,
    Op::CancelOrder,
    Op::ReserveStock,
    Op::ReleaseStock,
    Op::AddItem,
    Op::Checkout,
    Op::RefundPayment,
    Op::QuoteCart,
];

impl Op {
    /// The handler points it pauses or slows down at (before and after its commit).
    fn points(self) -> (&'static str, &'static str) {
        match self {
            Op::PlaceOrder | Op::Checkout => {
                ("orders.place.before_commit", "orders.place.after_commit")
            }
            Op::PlaceOrderV2 => (
                "orders.v2.place.before_commit",
                "orders.v2.place.after_commit",
            ),
            Op::CancelOrder => ("orders.cancel.before_commit", "orders.cancel.after_commit"),
            Op::ReserveStock => (
                "inventory.reserve.before_commit",
                "inventory.reserve.after_commit",
            ),
            Op::ReleaseStock => (
                "inventory.release.before_commit",
                "inventory.release.after_commit",
            ),
            Op::AddItem => ("cart.add.before_commit", "cart.add.after_commit"),
            Op::RefundPayment => (
                "payments.refund.before_commit",
                "payments.refund.after_commit",
            ),
            Op::QuoteCart => ("pricing.quote", "pricing.quote"),
        }
    }

    /// What the contract says of the operation.
    fn info(self) -> &'static pactum::OperationInfo {
        match self {
            Op::PlaceOrder => &orders::v1::operations::PLACE_ORDER,
            Op::PlaceOrderV2 => &orders::v2::operations::PLACE_ORDER,
            Op::CancelOrder => &orders::v1::operations::CANCEL_ORDER,
            Op::ReserveStock => &inventory::v1::operations::RESERVE_STOCK,
            Op::ReleaseStock => &inventory::v1::operations::RELEASE_STOCK,
            Op::AddItem => &cart::v1::operations::ADD_ITEM,
            Op::Checkout => &cart::v1::operations::CHECKOUT_CART,
            Op::RefundPayment => &payments::v1::operations::REFUND_PAYMENT,
            Op::QuoteCart => &pricing::v1::operations::QUOTE_CART,
        }
    }

    /// The longest one attempt of the operation whose handler holds the fault points may take
    /// by the contract, in milliseconds: `retry.per_try` where it declares one, else the
    /// deadline (which every attempt shares). For `Checkout` that handler is `PlaceOrder`'s,
    /// reached through the cart.
    fn attempt_budget_ms(self) -> u64 {
        let holder = match self {
            Op::Checkout => Op::PlaceOrder,
            other => other,
        };
        let info = holder.info();
        let budget = info
            .per_try
            .or(info.deadline)
            .unwrap_or(pactum::call::DEFAULT_TIMEOUT);
        budget.as_millis() as u64
    }
}

/// What goes wrong during the first attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: the baseline.
    None,
    /// SIGKILL of the server after the effect committed, before it answered.
    KillAfterCommit,
    /// SIGKILL of the server inside the handler's transaction, before the commit.
    KillBeforeCommit,
    /// The connection resets after the request was processed, before the answer.
    ResetBeforeResponse,
    /// The connection resets part-way through the answer.
    ResetMidResponse,
    /// The client gives up before the handler commits.
    TimeoutBeforeCommit,
    /// The client gives up after the handler committed (the server then misses its
    /// deadline: a 504 after the effect).
    TimeoutAfterCommit,
    /// The idempotency store's database connection is terminated mid-request.
    TerminateStore,
    /// The handler's database connection is terminated mid-request.
    TerminateHandler,
    /// Two copies of the request race.
    Duplicate,
}

/// Every fault.
pub const FAULTS: [Fault; 10] = [
    Fault::None,
    Fault::KillAfterCommit,
    Fault::KillBeforeCommit,
    Fault::ResetBeforeResponse,
    Fault::ResetMidResponse,
    Fault::TimeoutBeforeCommit,
    Fault::TimeoutAfterCommit,
    Fault::TerminateStore,
    Fault::TerminateHandler,
    Fault::Duplicate,
];

/// How to run the suite.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `faults` binary (it serves with `serve`).
    pub services: PathBuf,
    /// libpq connection string.
    pub postgres: String,
    /// Forget every idempotency key when the server restarts, as an in-memory store would:
    /// the suite's self-check (it must then find duplicates).
    pub forget_keys_on_restart: bool,
    /// The broker the services' relay publishes to (the event suite: a `nats://` or
    /// `amqp://` URL); `None`: an embedded bus.
    pub broker: Option<String>,
}

/// What a set of runs found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Runs made.
    pub runs: u32,
    /// Runs whose call never succeeded, or succeeded without its effect.
    pub lost: u32,
    /// Runs whose effect was applied more than once.
    pub duplicated: u32,
    /// Runs whose answers differed between attempts and replays.
    pub inconsistent: u32,
    /// Runs whose fault never happened (they prove nothing).
    pub unfired: u32,
    /// One line per bad run.
    pub problems: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "faults: {} runs, {} lost, {} duplicated",
            self.runs, self.lost, self.duplicated
        )?;
        if self.inconsistent > 0 {
            write!(f, ", {} inconsistent", self.inconsistent)?;
        }
        if self.unfired > 0 {
            write!(f, ", {} without their fault", self.unfired)?;
        }
        Ok(())
    }
}

/// A process of the suite (the services, or the event suite's consumer).
pub(crate) struct Server {
    child: Child,
    pub(crate) faults: mpsc::UnboundedReceiver<String>,
}

/// Starts the services on `port`.
pub(crate) async fn start(
    options: &Options,
    port: u16,
    env: &[(&str, String)],
) -> Result<Server, String> {
    let mut args = vec![
        "serve".to_string(),
        "--postgres".into(),
        options.postgres.clone(),
        "--port".into(),
        port.to_string(),
    ];
    if let Some(broker) = &options.broker {
        args.extend(["--broker".to_string(), broker.clone()]);
    }
    spawn(options, &args, env).await
}

/// Starts `faults <args>` and waits (20 s at most) for its `ready` line; stderr lines
/// `FAULT <point>` arrive on the returned process's channel.
pub(crate) async fn spawn(
    options: &Options,
    args: &[String],
    env: &[(&str, String)],
) -> Result<Server, String> {
    let mut command = Command::new(&options.services);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", options.services.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, faults) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match line.strip_prefix("FAULT ") {
                Some(point) => {
                    let _ = tx.send(point.to_string());
                }
                None => eprintln!("  services: {line}"),
            }
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("ready") {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        let _ = child.start_kill();
        return Err("the services process did not get ready within 20 s".into());
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { child, faults })
}

impl Server {
    /// SIGKILL, and wait for it to be gone.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

pub(crate) async fn pg(config: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            format!("PostgreSQL is required and unreachable at `{config}`: {e} (set PACTUM_TEST_POSTGRES)")
        })?;
    tokio::spawn(connection);
    Ok(client)
}

fn json<T: serde::Serialize>(v: Result<T, String>) -> Result<serde_json::Value, String> {
    v.and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
}

fn money(amount: &str) -> pricing::v1::Money {
    pricing::v1::Money {
        amount: amount.parse().expect("literal"),
        currency: pricing::v1::Currency("EUR".into()),
    }
}

fn book() -> pricing::v1::Sku {
    pricing::v1::Sku("BOOK-42".into())
}

/// One logical call of `op` under `key` about `id`, with `budget`; the answer as JSON.
pub(crate) async fn call(
    op: Op,
    url: &str,
    key: &str,
    id: pactum::types::Uuid,
    budget: Duration,
) -> Result<serde_json::Value, String> {
    let ctx = Context::new()
        .with_idempotency_key(key)
        .with_timeout(budget);
    let e = |e: pactum::ClientError<_>| e.to_string();
    ctx.scope(async move {
        match op {
            Op::PlaceOrder => json(
                orders::v1::rest::Client::new(url)
                    .place_order(&orders::v1::PlaceOrderRequest {
                        cart_id: id,
                        customer_id: None,
                        lines: vec![orders::v1::OrderLine {
                            sku: book(),
                            quantity: 1,
                            unit_price: money("12.50"),
                        }],
                        note: None,
                    })
                    .await
                    .map_err(e),
            ),
            Op::PlaceOrderV2 => json(
                orders::v2::rest::Client::new(url)
                    .place_order(&orders::v2::PlaceOrderRequest {
                        cart_id: id,
                        customer_id: orders::v2::CustomerId(pactum::types::Uuid::from_u128(7)),
                        items: vec![orders::v2::OrderItem {
                            sku: book(),
                            quantity: 1,
                            unit_price: money("12.50"),
                        }],
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Op::CancelOrder => json(
                orders::v1::rest::Client::new(url)
                    .cancel_order(&orders::v1::CancelOrderRequest {
                        id: orders::v1::OrderId(id),
                        reason: "changed my mind".into(),
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Op::ReserveStock => json(
                inventory::v1::grpc::Client::connect_lazy(url)?
                    .reserve_stock(&inventory::v1::ReserveStockRequest {
                        order_id: id,
                        lines: vec![pricing::v1::QuoteLine {
                            sku: book(),
                            quantity: 1,
                        }],
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Op::ReleaseStock => json(
                inventory::v1::grpc::Client::connect_lazy(url)?
                    .release_stock(&inventory::v1::ReleaseStockRequest {
                        reservation_id: inventory::v1::ReservationId(id),
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Op::AddItem => json(
                cart::v1::rest::Client::new(url)
                    .add_item(&cart::v1::AddItemRequest {
                        cart_id: cart::v1::CartId(id),
                        item: cart::v1::CartItem {
                            sku: book(),
                            quantity: 1,
                        },
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Op::Checkout => json(
                cart::v1::rest::Client::new(url)
                    .checkout_cart(&cart::v1::CheckoutCartRequest {
                        cart_id: cart::v1::CartId(pactum::types::Uuid::from_u128(CART)),
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Op::RefundPayment => json(
                payments::v1::rest::Client::new(url)
                    .with_credentials(pactum::auth::Credentials::bearer(
                        generated_example::system::staff_token(
                            "fault-suite",
                            &[generated_example::system::REFUND_SCOPE],
                        ),
                    ))
                    .refund_payment(&payments::v1::RefundPaymentRequest {
                        id: payments::v1::PaymentId(id),
                        amount: money("1.00"),
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Op::QuoteCart => json(
                pricing::v1::rest::Client::new(url)
                    .quote_cart(&pricing::v1::QuoteCartRequest {
                        currency: pricing::v1::Currency("EUR".into()),
                        lines: vec![pricing::v1::QuoteLine {
                            sku: book(),
                            quantity: 2,
                        }],
                    })
                    .await
                    .map_err(|e| e.to_string()),
            ),
        }
    })
    .await
}

/// Writes what `op` needs to exist before it runs on `id`: an order to cancel, a
/// reservation to release, a cart to add to, a payment to refund.
pub(crate) async fn setup(
    db: &tokio_postgres::Client,
    op: Op,
    id: pactum::types::Uuid,
) -> Result<(), String> {
    let text = id.to_string();
    let sql = |e: tokio_postgres::Error| e.to_string();
    match op {
        Op::CancelOrder => {
            let order = orders::v1::Order {
                id: orders::v1::OrderId(id),
                customer_id: None,
                lines: Vec::new(),
                status: serde_json::from_str("\"pending\"").map_err(|e| e.to_string())?,
                total: money("0"),
                placed_at: pactum::types::Timestamp::UNIX_EPOCH,
                note: None,
            };
            let body = serde_json::to_string(&order).map_err(|e| e.to_string())?;
            db.execute(
                "INSERT INTO durable_orders VALUES ($1, $1, 'pending', 1, $2)",
                &[&text, &body],
            )
            .await
            .map_err(sql)?;
        }
        Op::ReleaseStock => {
            db.batch_execute(&format!(
                "INSERT INTO durable_reservations VALUES ('{text}', '{text}', 'BOOK-42', 1);
                 UPDATE durable_stock SET available = available - 1, reserved = reserved + 1
                 WHERE sku = 'BOOK-42';"
            ))
            .await
            .map_err(sql)?;
        }
        Op::AddItem => {
            let cart = cart::v1::Cart {
                id: cart::v1::CartId(id),
                customer_id: pactum::types::Uuid::from_u128(7),
                items: Vec::new(),
                total: None,
                updated_at: pactum::types::Timestamp::UNIX_EPOCH,
            };
            let body = serde_json::to_string(&cart).map_err(|e| e.to_string())?;
            db.execute("INSERT INTO durable_carts VALUES ($1, $2)", &[&text, &body])
                .await
                .map_err(sql)?;
        }
        Op::RefundPayment => {
            let payment = payments::v1::Payment {
                id: payments::v1::PaymentId(id),
                order_id: id,
                amount: money("100.00"),
                method: payments::v1::PaymentMethod::Card(payments::v1::CardPayment {
                    last4: "4242".into(),
                }),
                captured_at: Some(pactum::types::Timestamp::UNIX_EPOCH),
            };
            let body = serde_json::to_string(&payment).map_err(|e| e.to_string())?;
            db.execute(
                "INSERT INTO durable_payments VALUES ($1, $2)",
                &[&text, &body],
            )
            .await
            .map_err(sql)?;
        }
        _ => {}
    }
    Ok(())
}

/// How many times `op`'s effect on `id` is in the database (`None`: it has none).
async fn effects(
    db: &tokio_postgres::Client,
    op: Op,
    id: pactum::types::Uuid,
) -> Result<Option<i64>, String> {
    let cart = pactum::types::Uuid::from_u128(CART).to_string();
    let (sql, arg) = match op {
        // An order counts with its `OrderPlaced` in the outbox: an order without its event is
        // lost, and a second order or a second event is a duplicate. (A second order's event
        // would carry the first one's id, derived from the key, and be refused by the
        // outbox: counting orders too keeps that duplicate visible.)
        Op::PlaceOrder => (
            "WITH o AS (SELECT id FROM durable_orders WHERE cart_id = $1 AND major = 1),
                  e AS (SELECT 1 FROM durable_outbox, o
                        WHERE ordering_key = o.id AND subject = 'orders.order_placed.v1')
             SELECT CASE WHEN (SELECT COUNT(*) FROM e) = 0 THEN 0
                    ELSE GREATEST((SELECT COUNT(*) FROM o), (SELECT COUNT(*) FROM e)) END",
            id.to_string(),
        ),
        Op::PlaceOrderV2 => (
            "WITH o AS (SELECT id FROM durable_orders WHERE cart_id = $1 AND major = 2),
                  e AS (SELECT 1 FROM durable_outbox, o
                        WHERE ordering_key = o.id AND subject = 'orders.order_placed.v2')
             SELECT CASE WHEN (SELECT COUNT(*) FROM e) = 0 THEN 0
                    ELSE GREATEST((SELECT COUNT(*) FROM o), (SELECT COUNT(*) FROM e)) END",
            id.to_string(),
        ),
        Op::ReserveStock => (
            "SELECT COUNT(DISTINCT id) FROM durable_reservations WHERE order_id = $1",
            id.to_string(),
        ),
        Op::CancelOrder | Op::ReleaseStock | Op::AddItem | Op::RefundPayment => (
            "SELECT COUNT(*) FROM durable_effects WHERE subject = $1",
            id.to_string(),
        ),
        Op::Checkout => (
            "SELECT COUNT(*) FROM durable_orders WHERE cart_id = $1",
            cart,
        ),
        Op::QuoteCart => return Ok(None),
    };
    db.query_one(sql, &[&arg])
        .await
        .map(|r| Some(r.get(0)))
        .map_err(|e| e.to_string())
}

/// Prepares the tables: fresh effect tables and keys, plenty of stock, the checkout's cart.
pub async fn prepare(options: &Options) -> Result<(), String> {
    let db = pg(&options.postgres).await?;
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS durable_orders, durable_stock, durable_reservations,
             durable_effects, durable_payments, durable_carts, durable_outbox, {}",
        crate::services::KEYS_TABLE
    ))
    .await
    .map_err(|e| e.to_string())?;
    generated_example::services::durable::Db::new(&options.postgres)
        .prepare(&[("BOOK-42", 1_000_000), ("PEN-7", 1_000_000)])
        .await?;
    let cart = cart::v1::Cart {
        id: cart::v1::CartId(pactum::types::Uuid::from_u128(CART)),
        customer_id: pactum::types::Uuid::from_u128(7),
        items: vec![cart::v1::CartItem {
            sku: book(),
            quantity: 2,
        }],
        total: None,
        updated_at: pactum::types::Timestamp::UNIX_EPOCH,
    };
    let body = serde_json::to_string(&cart).map_err(|e| e.to_string())?;
    db.execute(
        "INSERT INTO durable_carts VALUES ($1, $2)",
        &[&cart.id.0.to_string(), &body],
    )
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}

/// The stock invariant: what is reserved is exactly what the reservations hold.
pub async fn stock_is_consistent(options: &Options) -> Result<bool, String> {
    let db = pg(&options.postgres).await?;
    let row = db
        .query_one(
            "SELECT s.reserved::bigint, s.available::bigint,
                    COALESCE((SELECT SUM(quantity) FROM durable_reservations WHERE sku = s.sku), 0)::bigint
             FROM durable_stock s WHERE sku = 'BOOK-42'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (reserved, available, held): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    Ok(reserved == held && reserved + available == 1_000_000)
}

/// Runs `op` under `fault` once and reports what went wrong, if anything.
pub async fn run_one(
    options: &Options,
    op: Op,
    fault: Fault,
    rng: &mut fastrand::Rng,
) -> Result<Outcome, String> {
    let db = pg(&options.postgres).await?;
    let id = pactum::types::Uuid::from_u128(rng.u128(..));
    let key = format!("faults-{}", pactum::random_id());
    setup(&db, op, id).await?;
    let before = effects(&db, op, id).await?;
    let port = free_port()?;
    let (before_commit, after_commit) = op.points();
    // A slowed handler stays inside what the contract gives one attempt (40-70 % of it), so
    // only the first attempt's shorter budget makes it miss.
    let slow = op.attempt_budget_ms() * (40 + rng.u64(0..30)) / 100;
    let env: Vec<(&str, String)> = match fault {
        Fault::KillAfterCommit => vec![("PACTUM_FAULT_PAUSE", after_commit.into())],
        Fault::KillBeforeCommit => vec![("PACTUM_FAULT_PAUSE", before_commit.into())],
        Fault::TimeoutBeforeCommit
        | Fault::TerminateStore
        | Fault::TerminateHandler
        | Fault::Duplicate => {
            vec![("PACTUM_FAULT_DELAY", format!("{before_commit}:{slow}"))]
        }
        Fault::TimeoutAfterCommit => vec![("PACTUM_FAULT_DELAY", format!("{after_commit}:{slow}"))],
        _ => Vec::new(),
    };
    let mut server = Some(start(options, port, &env).await?);
    let upstream: SocketAddr = ([127, 0, 0, 1], port).into();
    let proxy = Proxy::start(upstream).await.map_err(|e| e.to_string())?;
    let url = format!("http://{}", proxy.addr());
    match fault {
        Fault::ResetBeforeResponse => proxy.arm(Break::BeforeResponse),
        Fault::ResetMidResponse => proxy.arm(Break::MidResponse),
        _ => {}
    }
    let started = Instant::now();
    // Whether the fault really happened: a run whose fault never fired proves nothing.
    let mut fired = matches!(fault, Fault::None | Fault::Duplicate);
    let mut answers: Vec<serde_json::Value> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut attempt = 0;
    while attempt < MAX_ATTEMPTS && started.elapsed() < RUN_LIMIT && answers.is_empty() {
        attempt += 1;
        // The first attempt's budget is shorter than the slowed handler for the timeout faults;
        // later ones get the contract's own deadline.
        let budget = match fault {
            Fault::TimeoutBeforeCommit | Fault::TimeoutAfterCommit if attempt == 1 => {
                Duration::from_millis(slow / 3)
            }
            _ => Duration::from_secs(5),
        };
        let first = call(op, &url, &key, id, budget);
        let result = if attempt == 1 && fault == Fault::Duplicate {
            // The handler is slowed, so the copies overlap: one holds the key while the
            // other is told to retry (409 / UNAVAILABLE), then gets the same answer.
            let (a, b) = tokio::join!(first, call(op, &url, &key, id, budget));
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    answers.push(b);
                    Ok(a)
                }
                (a, b) => a.or(b),
            }
        } else if attempt == 1 && matches!(fault, Fault::TerminateStore | Fault::TerminateHandler) {
            let app = if fault == Fault::TerminateStore {
                STORE_APP
            } else {
                "pactum-faults-handlers"
            };
            let terminate = async {
                tokio::time::sleep(Duration::from_millis(slow / 2)).await;
                db.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&app],
                )
                .await
                .map_err(|e| e.to_string())
            };
            let (result, terminated) = tokio::join!(first, terminate);
            fired = terminated? > 0;
            result
        } else {
            let mut first = std::pin::pin!(first);
            let paused = async {
                match server.as_mut() {
                    Some(s) => s.faults.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = &mut first => result,
                Some(_point) = paused => {
                    // The server stopped at the named point: kill it there and bring it back
                    // clean on the same port, while the call is still in flight.
                    if let Some(s) = server.take() {
                        s.kill().await;
                    }
                    fired = true;
                    if options.forget_keys_on_restart {
                        db.execute(&format!("DELETE FROM {}", crate::services::KEYS_TABLE), &[])
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    server = Some(start(options, port, &[]).await?);
                    first.await
                }
            }
        };
        if attempt == 1
            && matches!(
                fault,
                Fault::TimeoutBeforeCommit | Fault::TimeoutAfterCommit
            )
            && result.as_ref().is_err_and(|e| e.contains("deadline"))
        {
            fired = true;
        }
        match result {
            Ok(answer) => answers.push(answer),
            Err(e) => {
                errors.push(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Two replays: the same key must give the same answer, without running again.
    if !answers.is_empty() {
        for _ in 0..2 {
            match call(op, &url, &key, id, Duration::from_secs(5)).await {
                Ok(answer) => answers.push(answer),
                Err(e) => errors.push(format!("replay: {e}")),
            }
        }
    }
    if let Some(s) = server.take() {
        s.kill().await;
    }
    if matches!(fault, Fault::ResetBeforeResponse | Fault::ResetMidResponse) {
        fired = !proxy.armed();
    }
    // An operation with no effect (a quote) counts as applied once when it answered.
    let applied = match (effects(&db, op, id).await?, before) {
        (Some(after), Some(before)) => after - before,
        _ => i64::from(!answers.is_empty()),
    };
    Ok(Outcome {
        op,
        fault,
        attempts: attempt,
        applied,
        consistent: answers.windows(2).all(|w| w[0] == w[1]),
        answered: !answers.is_empty(),
        fired,
        errors,
    })
}

/// What one run saw.
#[derive(Debug)]
pub struct Outcome {
    /// The operation.
    pub op: Op,
    /// The fault.
    pub fault: Fault,
    /// Logical attempts made.
    pub attempts: u32,
    /// How many times the effect was applied (exactly once is right).
    pub applied: i64,
    /// Every answer (attempts and replays) was the same.
    pub consistent: bool,
    /// Some attempt succeeded.
    pub answered: bool,
    /// The fault happened (the kill, the reset, the timeout, the termination).
    pub fired: bool,
    /// The failed attempts' errors.
    pub errors: Vec<String>,
}

impl Report {
    /// Counts `outcome` in.
    pub fn add(&mut self, o: &Outcome) {
        self.runs += 1;
        let mut bad = Vec::new();
        if !o.answered || o.applied == 0 {
            self.lost += 1;
            bad.push(format!(
                "lost (applied {}, answered {})",
                o.applied, o.answered
            ));
        }
        if o.applied > 1 {
            self.duplicated += 1;
            bad.push(format!("applied {} times", o.applied));
        }
        if !o.fired {
            self.unfired += 1;
            bad.push("the fault never happened".into());
        }
        if o.answered && !o.consistent {
            self.inconsistent += 1;
            bad.push("answers differ".into());
        }
        if !bad.is_empty() {
            self.problems.push(format!(
                "{:?} under {:?}: {} after {} attempt(s); {} error(s), first: {:?}",
                o.op,
                o.fault,
                bad.join(", "),
                o.attempts,
                o.errors.len(),
                o.errors.iter().take(3).collect::<Vec<_>>()
            ));
        }
    }
}

/// `runs` randomized runs from `seed` (`schedule` overrides the random pick).
pub async fn run(
    options: &Options,
    runs: u32,
    seed: u64,
    schedule: Option<&[(Op, Fault)]>,
) -> Result<Report, String> {
    prepare(options).await?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut report = Report::default();
    for i in 0..runs {
        let (op, fault) = match schedule {
            Some(s) if !s.is_empty() => s[i as usize % s.len()],
            _ => {
                let op = OPS[rng.usize(..OPS.len())];
                let faults: Vec<Fault> = FAULTS.into_iter().filter(|f| applies(op, *f)).collect();
                (op, faults[rng.usize(..faults.len())])
            }
        };
        let outcome = run_one(options, op, fault, &mut rng).await?;
        report.add(&outcome);
    }
    if !stock_is_consistent(options).await? {
        report
            .problems
            .push("stock: reserved units differ from the reservations held".into());
        report.duplicated += 1;
    }
    Ok(report)
}

/// Can `fault` happen to `op`? Pricing keeps no state, so it has no database connection of
/// its own to terminate.
pub fn applies(op: Op, fault: Fault) -> bool {
    !(op == Op::QuoteCart && fault == Fault::TerminateHandler)
}

/// Every (operation, fault) pair that can happen, once.
pub fn every_pair() -> Vec<(Op, Fault)> {
    OPS.iter()
        .flat_map(|op| FAULTS.iter().map(move |f| (*op, *f)))
        .filter(|(op, f)| applies(*op, *f))
        .collect()
}
