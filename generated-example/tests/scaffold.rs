//! `pactum new` from each example contract, as a new user meets it: each scaffold, in a
//! temporary directory, builds with cargo **outside** this workspace (its own workspace and
//! lockfile), starts against the machine's PostgreSQL (`PACTUM_TEST_POSTGRES`), answers 501
//! problems over REST and `UNIMPLEMENTED` over gRPC — to this crate's generated clients, which
//! know nothing of the scaffold — reports ready, and drains and exits 0 on SIGTERM.
//!
//! Then what comes next for its user: a handler is written and the contract grows an
//! operation. `pactum generate` keeps the handler, the rebuild compiles only the service
//! crate for a handler edit, and the service serves the written handler and the new
//! operation (as 501) side by side.
//!
//! The scaffolds build one after another in this workspace's target directory, so the
//! dependency stack they share with it, and with each other, compiles once.

use generated_example::generated::{inventory, orders, payments, pricing};
use pactum::types::Uuid;
use pactum::ClientError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn postgres() -> String {
    std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// The target directory every scaffold builds in: this workspace's own. A scaffold's
/// dependency stack resolves to the same features and profile as much of the workspace's, so
/// cargo reuses those builds (cargo does not hold the directory's lock while tests run).
fn target() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    std::path::absolute(base).expect("absolute target dir")
}

/// `pactum new <root>/<name> --contract …`, through the CLI's own entry point.
fn scaffold(root: &Path, name: &str, contracts: &[&str]) -> PathBuf {
    let dir = root.join(name);
    let mut args = vec![
        "pactum".to_string(),
        "new".into(),
        dir.display().to_string(),
        "--pactum-path".into(),
        workspace().join("runtime").display().to_string(),
    ];
    for c in contracts {
        args.push("--contract".into());
        args.push(workspace().join("contracts").join(c).display().to_string());
    }
    assert_eq!(
        pactum_codegen::cli::run(args),
        ExitCode::SUCCESS,
        "pactum new {name}"
    );
    // This workspace's versions: the build needs nothing it has not already downloaded.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lockfile");
    dir
}

/// `cargo build` in the scaffold; returns what cargo printed. Fails on any warning (the
/// scaffold must compile warning-free) and after 15 minutes.
fn build(dir: &Path) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["build", "--color", "never"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs cargo");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(15 * 60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "cargo build in {} did not finish within 15 minutes",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = reader.join().expect("stderr reader");
    assert!(
        status.success(),
        "cargo build in {} failed:\n{stderr}",
        dir.display()
    );
    assert!(
        !stderr.contains("warning"),
        "the scaffold in {} builds with warnings:\n{stderr}",
        dir.display()
    );
    stderr
}

/// A running scaffolded service.
struct Service {
    name: String,
    child: Child,
    rest: String,
    grpc: String,
}

impl Service {
    /// Starts the built binary on free loopback ports and waits (at most 60 s) for the line
    /// that says where it serves.
    fn start(name: &str) -> Service {
        // Not the machine's NATS: these consumer groups must not share durables with the
        // other tests'; the broker-backed paths are tested where they live.
        Service::start_with(name, &["--in-process-bus"])
    }

    /// [`start`](Self::start) with `broker` naming where events go.
    fn start_with(name: &str, broker: &[&str]) -> Service {
        let exe = target().join("debug").join(name);
        let mut child = Command::new(&exe)
            .args(["--listen", "127.0.0.1", "--http", "0", "--grpc", "0"])
            .args(["--postgres", &postgres()])
            .args(broker)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            // Payments' schemes (others ignore them): staff tokens' keys (never fetched
            // here) and one partner key.
            .env("AUTH_STAFF_JWKS_URL", "http://127.0.0.1:9/jwks.json")
            .env("AUTH_PARTNER_KEYS", format!("{PARTNER_KEY}:scaffold-test"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(" serving REST on ") => {
                    let url = |after: &str| {
                        let from = line.find(after).expect("address") + after.len();
                        line[from..]
                            .split_whitespace()
                            .next()
                            .expect("url")
                            .to_string()
                    };
                    assert!(
                        line.contains("idempotency keys in PostgreSQL"),
                        "{name}: {line}"
                    );
                    return Service {
                        name: name.to_string(),
                        child,
                        rest: url("REST on "),
                        grpc: url("gRPC on "),
                    };
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{name} did not say where it serves within 60 s (status: {:?})",
                        child.try_wait()
                    );
                }
            }
        }
    }

    /// SIGTERM, then the exit within 30 s: a drained service exits 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not stop within 30 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A failed assertion must not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` answers 501 with a problem document naming `operation`.
/// The partner API key the scaffolded payments service is started with.
const PARTNER_KEY: &str = "scaffold-test-key";

async fn rest_501(http: &reqwest::Client, service: &Service, path: &str, operation: &str) {
    let reply = http
        .get(format!("{}{path}", service.rest))
        .header("x-partner-key", PARTNER_KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: GET {path}: {e}", service.name));
    assert_eq!(reply.status().as_u16(), 501, "{}: GET {path}", service.name);
    assert_eq!(
        reply
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body = reply.text().await.expect("body");
    assert!(
        body.contains(&format!("`{operation}` is not implemented yet")),
        "{}: {body}",
        service.name
    );
}

/// A gRPC call's failure is `UNIMPLEMENTED` naming `operation`.
fn grpc_unimplemented<T: std::fmt::Debug, E: std::fmt::Debug>(
    service: &Service,
    result: Result<T, ClientError<E>>,
    operation: &str,
) {
    match result {
        Err(ClientError::Rpc { code: 12, message }) => {
            assert!(message.contains(operation), "{}: {message}", service.name)
        }
        other => panic!(
            "{}: {operation} over gRPC: expected UNIMPLEMENTED, got {other:?}",
            service.name
        ),
    }
}

async fn ready(http: &reqwest::Client, service: &Service) {
    let reply = http
        .get(format!("{}/readyz", service.rest))
        .send()
        .await
        .expect("readyz");
    assert_eq!(reply.status().as_u16(), 200, "{} /readyz", service.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_example_contract_scaffolds_into_a_service_that_builds_alone_and_serves_501() {
    let config = postgres();
    if let Err(e) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await {
        panic!("PostgreSQL is required for this test and is unreachable at `{config}`: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES");
    }
    // Outside this repository altogether, as a user's new service would be.
    let root = std::env::temp_dir().join(format!("pactum-scaffolds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let http = reqwest::Client::new();
    let id = Uuid::from_u128(0x5ca1_ab1e);
    let sku = || pricing::v1::Sku("BOOK-42".into());

    // Every example contract, one service each (orders serves both majors).
    let dirs: Vec<(&str, PathBuf)> = [
        ("pricing", &["pricing/v1.yaml"][..]),
        ("inventory", &["inventory/v1.yaml"]),
        ("cart", &["cart/v1.yaml"]),
        ("orders", &["orders/v1.yaml", "orders/v2.yaml"]),
        ("payments", &["payments/v1.yaml"]),
        ("shipping", &["shipping/v1.yaml"]),
        ("notifications", &["notifications/v1.yaml"]),
    ]
    .into_iter()
    .map(|(name, contracts)| (name, scaffold(&root, name, contracts)))
    .collect();
    for (_, dir) in &dirs {
        build(dir);
    }

    // Pricing has no events, so it joins no group: it can use the machine's NATS, and its
    // /readyz then checks that connection too.
    let nats = std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let s = Service::start_with("pricing", &["--nats", &nats]);
    ready(&http, &s).await;
    rest_501(&http, &s, "/v1/prices/BOOK-42", "pricing.v1.GetPrice").await;
    let client = pricing::v1::grpc::Client::connect_lazy(&s.grpc).expect("client");
    let got = client
        .get_price(&pricing::v1::GetPriceRequest {
            sku: sku(),
            currency: None,
        })
        .await;
    grpc_unimplemented(&s, got, "pricing.v1.GetPrice");
    s.stop();
    // The same on RabbitMQ: /readyz checks that connection instead.
    let rabbitmq = std::env::var("PACTUM_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let s = Service::start_with("pricing", &["--rabbitmq", &rabbitmq]);
    ready(&http, &s).await;
    rest_501(&http, &s, "/v1/prices/BOOK-42", "pricing.v1.GetPrice").await;
    s.stop();

    let s = Service::start("inventory");
    rest_501(&http, &s, "/v1/stock/BOOK-42", "inventory.v1.CheckStock").await;
    let client = inventory::v1::grpc::Client::connect_lazy(&s.grpc).expect("client");
    let got = client
        .check_stock(&inventory::v1::CheckStockRequest { sku: sku() })
        .await;
    grpc_unimplemented(&s, got, "inventory.v1.CheckStock");
    s.stop();

    // REST only in its contract; its gRPC port still answers health and reflection.
    let s = Service::start("cart");
    rest_501(&http, &s, &format!("/v1/carts/{id}"), "cart.v1.GetCart").await;
    ready(&http, &s).await;
    s.stop();

    let s = Service::start("orders");
    rest_501(&http, &s, &format!("/v1/orders/{id}"), "orders.v1.GetOrder").await;
    rest_501(&http, &s, &format!("/v2/orders/{id}"), "orders.v2.GetOrder").await;
    let v1 = orders::v1::grpc::Client::connect_lazy(&s.grpc).expect("client");
    let got = v1
        .get_order(&orders::v1::GetOrderRequest {
            id: orders::v1::OrderId(id),
        })
        .await;
    grpc_unimplemented(&s, got, "orders.v1.GetOrder");
    let v2 = orders::v2::grpc::Client::connect_lazy(&s.grpc).expect("client");
    let got = v2
        .get_order(&orders::v2::GetOrderRequest {
            id: orders::v2::OrderId(id),
        })
        .await;
    grpc_unimplemented(&s, got, "orders.v2.GetOrder");
    ready(&http, &s).await;
    s.stop();

    let s = Service::start("payments");
    rest_501(
        &http,
        &s,
        &format!("/v1/payments/{id}"),
        "payments.v1.GetPayment",
    )
    .await;
    // Who calls is checked before anything is decoded: no key, no call.
    let refused = http
        .get(format!("{}/v1/payments/{id}", s.rest))
        .send()
        .await
        .expect("payments answers");
    assert_eq!(refused.status().as_u16(), 401);
    let client = payments::v1::grpc::Client::connect_lazy(&s.grpc)
        .expect("client")
        .with_credentials(
            pactum::auth::Credentials::api_key("x-partner-key", PARTNER_KEY).expect("a key"),
        );
    let got = client
        .get_payment(&payments::v1::GetPaymentRequest {
            id: payments::v1::PaymentId(id),
        })
        .await;
    grpc_unimplemented(&s, got, "payments.v1.GetPayment");
    s.stop();

    let s = Service::start("shipping");
    rest_501(
        &http,
        &s,
        &format!("/v1/shipments/{id}"),
        "shipping.v1.TrackShipment",
    )
    .await;
    s.stop();

    // No operations: it consumes events only. It joins its groups and reports ready.
    let s = Service::start("notifications");
    ready(&http, &s).await;
    s.stop();

    // Its user writes GetOrder: only the service crate recompiles.
    let orders_dir = &dirs.iter().find(|(n, _)| *n == "orders").expect("orders").1;
    let handlers = orders_dir.join("service/src/handlers/orders_v1.rs");
    let stub = std::fs::read_to_string(&handlers).expect("handlers");
    let at = stub
        .find("NotImplemented(\"orders.v1.GetOrder\")")
        .expect("GetOrder's stub");
    let start = stub[..at]
        .rfind("let _ = (ctx, input);")
        .expect("stub body");
    let end = at + stub[at..].find("\n    }").expect("end of the method");
    let written = format!(
        "{}let _ = ctx;\n        Err(api::OrderNotFound {{ id: input.id }}.into()){}",
        &stub[..start],
        &stub[end..]
    );
    std::fs::write(&handlers, &written).expect("write handler");
    let rebuilt = build(orders_dir);
    assert!(
        rebuilt.contains("Compiling orders v0.1.0") && !rebuilt.contains("Compiling orders-api"),
        "a handler edit recompiles the service crate alone:\n{rebuilt}"
    );

    // The contract grows an operation; `pactum generate` there keeps the handler.
    let contract = orders_dir.join("contracts/orders/v1.yaml");
    let grown = std::fs::read_to_string(&contract).expect("contract").replace(
        "operations:\n",
        "operations:\n  GetOrderStatus:\n    input: { id: OrderId }\n    output: { status: OrderStatus }\n    errors: [OrderNotFound]\n    rest: GET /orders/{id}/status\n    grpc: true\n    safe: true\n    deadline: 300ms\n",
    );
    std::fs::write(&contract, grown).expect("grow the contract");
    let project = orders_dir.join("pactum.yaml").display().to_string();
    assert_eq!(
        pactum_codegen::cli::run(["pactum", "generate", "--project", project.as_str()]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        std::fs::read_to_string(&handlers).expect("handlers"),
        written
    );
    build(orders_dir);
    let s = Service::start("orders");
    let reply = http
        .get(format!("{}/v1/orders/{id}", s.rest))
        .send()
        .await
        .expect("GetOrder");
    assert_eq!(reply.status().as_u16(), 404, "the written handler answers");
    let body = reply.text().await.expect("body");
    assert!(body.contains("OrderNotFound"), "{body}");
    rest_501(
        &http,
        &s,
        &format!("/v1/orders/{id}/status"),
        "orders.v1.GetOrderStatus",
    )
    .await;
    s.stop();
    let _ = std::fs::remove_dir_all(&root);
}
