//! The README's main command, run as a new user runs it: the example binary on embedded
//! defaults, on NATS JetStream and PostgreSQL (the real services: `PACTUM_TEST_NATS`,
//! `PACTUM_TEST_POSTGRES`), and in `serve` mode answering outside clients.

use generated_example::generated::{cart, inventory, pricing};
use pactum::types::Uuid;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn example() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_generated-example"));
    cmd.env_remove("PACTUM_EXAMPLE_NATS")
        .env_remove("PACTUM_EXAMPLE_POSTGRES");
    cmd
}

fn run(args: &[&str]) -> String {
    let out = example().args(args).output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The checkout section of the output: its timeline and summary.
fn checkout(stdout: &str) -> &str {
    let start = stdout.find("== checkout").expect("a checkout section");
    let end = stdout
        .find("== a slow dependency")
        .expect("a slow-pricing section");
    &stdout[start..end]
}

fn assert_whole_flow(stdout: &str) {
    let flow = checkout(stdout);
    assert!(
        flow.contains(&format!("all 24 hops share trace {TRACE}")),
        "{flow}"
    );
    for hop in [
        "client  CheckoutCart",
        "REST    CheckoutCart",
        "client  CheckStock",
        "client  QuoteCart",
        "client  PlaceOrder",
        "gRPC    CheckStock",
        "REST    QuoteCart",
        "REST    PlaceOrder",
        "event   payments <- OrderPlaced",
        "event   inventory <- OrderPlaced",
        "event   orders <- PaymentCaptured",
        "event   notifications <- PaymentCaptured",
        "event   shipping <- StockReserved",
        "event   notifications <- ShipmentDispatched",
        "webhook webhook OrderShipped",
    ] {
        assert!(flow.contains(hop), "missing hop `{hop}`:\n{flow}");
    }
    // Two duplicated events, each seen by two consumers, and the resent webhook.
    let skipped = flow
        .lines()
        .filter(|l| l.contains(" skipped ") && l.contains(&TRACE[..8]))
        .count();
    assert_eq!(skipped, 5, "{flow}");
    assert!(
        flow.contains(
            " is paid; 2 email(s) sent; the merchant verified and applied 1 webhook(s) of 2 sent"
        ),
        "{flow}"
    );
    assert!(
        stdout.contains("the cart's client gave up at 200 ms; the caller sees DeadlineExceeded"),
        "{stdout}"
    );
}

/// `--trace-file`: every hop of the run as Chrome trace events that a viewer lays out — one
/// process per trace, and on each row events that nest or follow one another, never overlap.
#[test]
fn the_trace_file_holds_every_hop_as_nested_chrome_trace_events() {
    let path =
        std::env::temp_dir().join(format!("pactum-example-trace-{}.json", std::process::id()));
    let stdout = run(&["--trace-file", path.to_str().unwrap()]);
    assert!(stdout.contains("34 hops written to"), "{stdout}");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).ok();
    let events = trace["traceEvents"].as_array().unwrap();
    let slices: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(slices.len(), 34);
    let named = |n: &str| slices.iter().filter(|e| e["name"] == n).count();
    assert_eq!(
        named("REST CheckoutCart"),
        2,
        "the checkout and the slow one"
    );
    assert_eq!(named("gRPC CheckStock"), 4);
    // Two traces, each a process named for it.
    let processes: std::collections::BTreeSet<_> =
        slices.iter().map(|e| e["pid"].as_u64().unwrap()).collect();
    assert_eq!(processes.len(), 2);
    assert_eq!(events.iter().filter(|e| e["ph"] == "M").count(), 2);
    // Per row: sorted by start, each event either inside the one open or after it.
    let mut rows: std::collections::BTreeMap<(u64, u64), Vec<(u64, u64)>> = Default::default();
    for e in &slices {
        let (ts, dur) = (e["ts"].as_u64().unwrap(), e["dur"].as_u64().unwrap());
        assert!(dur > 0, "{e}");
        rows.entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
            .or_default()
            .push((ts, ts + dur));
    }
    for (row, mut spans) in rows {
        spans.sort_by_key(|&(start, end)| (start, std::cmp::Reverse(end)));
        let mut open: Vec<u64> = Vec::new();
        for (start, end) in spans {
            while open.last().is_some_and(|&e| e <= start) {
                open.pop();
            }
            assert!(
                open.last().is_none_or(|&e| end <= e),
                "row {row:?}: overlapping events"
            );
            open.push(end);
        }
    }
}

#[test]
fn the_main_command_runs_the_whole_checkout_on_embedded_defaults() {
    let stdout = run(&[]);
    assert!(stdout.contains("events on the embedded bus (dedup records in memory)"));
    assert_whole_flow(&stdout);
}

/// Deletes the example's queues on the machine's RabbitMQ, so the run starts from nothing: a
/// run cut short leaves its stream groups' offsets up to a second behind (and a run with the
/// in-memory store leaves records PostgreSQL never saw), and the next run would read those
/// events again.
fn fresh_rabbitmq(url: &str) {
    use generated_example::generated::{inventory, notifications, orders, payments, shipping};
    let consumers = [
        &inventory::v1::events::consumers::ORDERS_ORDER_PLACED_V1,
        &notifications::v1::events::consumers::PAYMENTS_PAYMENT_CAPTURED_V1,
        &notifications::v1::events::consumers::ORDERS_ORDER_CANCELLED_V1,
        &notifications::v1::events::consumers::SHIPPING_SHIPMENT_DISPATCHED_V1,
        &orders::v1::events::consumers::PAYMENTS_PAYMENT_CAPTURED_V1,
        &payments::v1::events::consumers::ORDERS_ORDER_PLACED_V1,
        &shipping::v1::events::consumers::INVENTORY_STOCK_RESERVED_V1,
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| {
                panic!("RabbitMQ is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_RABBITMQ")
            });
        for info in consumers {
            let (subject, group) = (info.subject, info.group);
            let mut queues = vec![
                subject.to_string(),
                format!("{subject}.dlq"),
                format!("{subject}.{group}"),
                format!("{subject}.{group}.offset"),
            ];
            for q in queues.clone() {
                for step in [100, 200, 500, 1000, 2000, 5000] {
                    queues.push(format!("{q}.retry.{step}"));
                }
            }
            for q in queues {
                // A refused delete closes its channel: a fresh one each time.
                let channel = connection.create_channel().await.unwrap();
                let _ = channel
                    .queue_delete(q.as_str().into(), Default::default())
                    .await;
            }
        }
    });
}

/// The broker runs share PostgreSQL's outbox table, whose relay publishes whatever it finds
/// there: one at a time, or one run's relay would publish the other's events to its broker.
static POSTGRES_RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_same_flow_runs_on_nats_jetstream_and_postgresql() {
    let _one = POSTGRES_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let nats = std::env::var("PACTUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let pg = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let stdout = run(&["--nats", &nats, "--postgres", &pg]);
    assert!(
        stdout.contains("events on NATS JetStream (dedup records in PostgreSQL"),
        "{stdout}"
    );
    assert_whole_flow(&stdout);
}

#[test]
fn the_same_flow_runs_on_rabbitmq_and_postgresql() {
    let _one = POSTGRES_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let rabbitmq = std::env::var("PACTUM_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let pg = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    fresh_rabbitmq(&rabbitmq);
    let stdout = run(&["--rabbitmq", &rabbitmq, "--postgres", &pg]);
    assert!(
        stdout.contains("events on RabbitMQ (dedup records in PostgreSQL"),
        "{stdout}"
    );
    assert_whole_flow(&stdout);
}

#[test]
fn bad_arguments_get_the_usage_and_exit_2() {
    let out = example().arg("--colour").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown argument `--colour`") && stderr.contains("usage:"));
    let out = example().args(["--nats", "--rabbitmq"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exclude each other"));
    let out = example()
        .args(["serve", "--http", "eighty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on `http` and `grpc` with `extra` arguments and waits for the line saying
/// where it listens; then keeps draining its output (the server prints each request's hops)
/// so it never writes into a closed pipe. Returns the child, that line, every line printed
/// so far (it grows) and the reader thread, which ends with the child's output.
async fn start_serve(
    http: u16,
    grpc: u16,
    extra: &[&str],
) -> (
    Child,
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::thread::JoinHandle<()>,
) {
    let mut child = Child(
        example()
            .args([
                "serve",
                "--http",
                &http.to_string(),
                "--grpc",
                &grpc.to_string(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = std::thread::spawn({
        let printed = printed.clone();
        move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("REST on") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                printed.lock().unwrap().push(line);
            }
        }
    });
    let line = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("ready in time")
        .expect("a ready line");
    (child, line, printed, reader)
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_mode_answers_outside_rest_and_grpc_clients() {
    let (http, grpc) = (free_port(), free_port());
    let (mut child, line, printed, reader) = start_serve(http, grpc, &[]).await;
    assert!(line.contains(&format!(":{http}")) && line.contains(&format!(":{grpc}")));

    // Any HTTP client: plain reqwest, as curl would.
    let base = format!("http://127.0.0.1:{http}");
    let cart_id = Uuid::from_u128(42);
    let got = reqwest::get(format!("{base}/v1/carts/{cart_id}"))
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&got.bytes().await.unwrap()).unwrap();
    assert_eq!(body["id"], cart_id.to_string());
    let missing = reqwest::get(format!("{base}/v1/carts/{}", Uuid::nil()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    // The generated clients, REST and gRPC, against the same ports.
    let carts = cart::v1::rest::Client::new(base.clone());
    let order = carts
        .checkout_cart(&cart::v1::CheckoutCartRequest {
            cart_id: cart::v1::CartId(cart_id),
        })
        .await
        .unwrap();
    assert_eq!(order.total.amount.to_string(), "28.60");
    let stock =
        inventory::v1::grpc::Client::connect_lazy(format!("http://127.0.0.1:{grpc}")).unwrap();
    let level = stock
        .check_stock(&inventory::v1::CheckStockRequest {
            sku: pricing::v1::Sku("PEN-7".into()),
        })
        .await
        .unwrap();
    assert!(level.available > 0);

    // SIGTERM, as Kubernetes stops a pod: the servers, the six consumers and nothing else
    // drain and the process exits cleanly, well inside the grace period.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    reader.join().unwrap();
    let printed = printed.lock().unwrap();
    assert!(
        printed
            .iter()
            .any(|l| l == "drained 8 task(s) (servers, consumers, relays); stopped"),
        "{printed:#?}"
    );
}

/// `serve --tls-cert --tls-key --client-ca`: both ports speak mutual TLS; the generated REST and
/// gRPC clients with a certificate from the CA are served, one without a certificate is not.
#[tokio::test(flavor = "multi_thread")]
async fn serve_mode_speaks_mutual_tls_on_both_ports() {
    use pactum::tls::ClientTls;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let dir = std::env::temp_dir().join(format!("pactum-example-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let leaf = |cn: &str| {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let key = KeyPair::generate().unwrap();
        (p.signed_by(&key, &ca).unwrap().pem(), key.serialize_pem())
    };
    let ca_file = write("ca.pem", ca.pem());
    let (cert, key) = leaf("shop");
    let (cert, key) = (write("server.pem", cert), write("server.key", key));
    let (client_cert, client_key) = leaf("checkout");
    let (client_cert, client_key) = (
        write("client.pem", client_cert),
        write("client.key", client_key),
    );

    let (http, grpc) = (free_port(), free_port());
    let tls_args = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--client-ca",
        &ca_file,
    ];
    let (child, line, _printed, _reader) = start_serve(http, grpc, &tls_args).await;
    assert!(
        line.contains(&format!("https://127.0.0.1:{http}")),
        "{line}"
    );

    let tls = ClientTls::with_ca_file(&ca_file)
        .unwrap()
        .with_identity(&client_cert, &client_key)
        .unwrap();
    let carts = cart::v1::rest::Client::from_http(
        pactum::rest::client::HttpClient::with_tls(format!("https://127.0.0.1:{http}"), &tls)
            .unwrap(),
    );
    let id = Uuid::from_u128(42);
    let got = carts
        .get_cart(&cart::v1::GetCartRequest {
            cart_id: cart::v1::CartId(id),
        })
        .await
        .unwrap();
    assert_eq!(got.id.0, id);
    let stock = inventory::v1::grpc::Client::from_client(
        pactum::grpc::GrpcClient::connect_lazy_tls(format!("https://127.0.0.1:{grpc}"), tls)
            .unwrap(),
    );
    let level = stock
        .check_stock(&inventory::v1::CheckStockRequest {
            sku: pricing::v1::Sku("PEN-7".into()),
        })
        .await
        .unwrap();
    assert!(level.available > 0);

    // Without a client certificate the handshake fails: nothing is served.
    let anonymous = ClientTls::with_ca_file(&ca_file).unwrap();
    let refused = cart::v1::rest::Client::from_http(
        pactum::rest::client::HttpClient::with_tls(format!("https://127.0.0.1:{http}"), &anonymous)
            .unwrap(),
    )
    .get_cart(&cart::v1::GetCartRequest {
        cart_id: cart::v1::CartId(id),
    })
    .await;
    assert!(
        matches!(refused, Err(pactum::ClientError::Transport(_))),
        "{refused:?}"
    );
    drop(child);
    std::fs::remove_dir_all(&dir).ok();
}
