//! The example system, in one process.
//!
//! `cargo run -p generated-example` runs the whole checkout on embedded defaults (in-process
//! bus, in-memory dedup records) and prints a timeline of every hop, synchronous or not, under
//! one trace. `-- --nats [URL] --postgres [CONFIG]` runs the same flow on NATS JetStream and
//! PostgreSQL (also `PACTUM_EXAMPLE_NATS` / `PACTUM_EXAMPLE_POSTGRES`), `-- --rabbitmq [URL]`
//! on RabbitMQ (also `PACTUM_EXAMPLE_RABBITMQ`). `-- serve --http PORT
//! --grpc PORT` keeps the services up for outside clients.

use generated_example::flow::{self, Merchant, Notifier, Store, Tally};
use generated_example::generated::{
    cart, inventory, notifications, orders, payments, pricing, shipping,
};
use generated_example::system::{self, Options};
use generated_example::timeline::{self, Hops, Timeline};
use generated_example::transport::{Broker, Sink};
use generated_example::{built, included};
use pactum::messaging::bus::Bus;
use pactum::messaging::consumer::Outcome;
use pactum::shutdown::{Drained, Shutdown};
use pactum::types::{Decimal, Uuid};
use pactum::ClientError;
use pactum::{Context, Event, Validate};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

const USAGE: &str =
    "usage: generated-example [--nats [URL] | --rabbitmq [URL]] [--postgres [CONFIG]] [--trace-file PATH]
       generated-example serve [--http PORT] [--grpc PORT] [--nats [URL] | --rabbitmq [URL]]
                               [--postgres [CONFIG]]
                               [--tls-cert PATH --tls-key PATH [--client-ca PATH]]
                               [--trace-file PATH]

  --nats [URL]         events on NATS JetStream (default nats://127.0.0.1:4222;
                       or set PACTUM_EXAMPLE_NATS)
  --rabbitmq [URL]     events on RabbitMQ (default amqp://guest:guest@127.0.0.1:5672/%2f;
                       or set PACTUM_EXAMPLE_RABBITMQ)
  --postgres [CONFIG]  consumers' dedup records in PostgreSQL, and what they publish
                       through its outbox (default
                       \"host=127.0.0.1 port=5432 user=postgres dbname=test\";
                       or set PACTUM_EXAMPLE_POSTGRES)
  --tls-cert PATH --tls-key PATH
                       serve: both ports speak TLS with this certificate chain and key
                       (PEM); add --client-ca PATH to require client certificates from
                       that CA (mutual TLS)
  --trace-file PATH    at the end, write every hop as a Chrome trace (JSON) that
                       Perfetto (ui.perfetto.dev) or chrome://tracing opens
  serve                keep the services up: all REST APIs on --http (default 8080),
                       all gRPC services on --grpc (default 50051)";

const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";
const DEFAULT_RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

/// What the command line asked for.
struct Args {
    serve: Option<(u16, u16)>,
    nats: Option<String>,
    rabbitmq: Option<String>,
    postgres: Option<String>,
    trace_file: Option<std::path::PathBuf>,
    /// Certificate, key and client CA files for TLS.
    tls: (Option<String>, Option<String>, Option<String>),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        serve: None,
        nats: std::env::var("PACTUM_EXAMPLE_NATS").ok(),
        rabbitmq: std::env::var("PACTUM_EXAMPLE_RABBITMQ").ok(),
        postgres: std::env::var("PACTUM_EXAMPLE_POSTGRES").ok(),
        trace_file: None,
        tls: (None, None, None),
    };
    let mut pending: Vec<String> = Vec::new();
    for a in args.by_ref() {
        pending.push(a);
    }
    let mut i = 0;
    let (mut nats_flag, mut rabbitmq_flag) = (false, false);
    // A flag's optional value: the next word, unless it is another flag.
    let value = |i: &mut usize, pending: &[String]| -> Option<String> {
        match pending.get(*i + 1) {
            Some(v) if !v.starts_with("--") && v != "serve" => {
                *i += 1;
                Some(v.clone())
            }
            _ => None,
        }
    };
    let port = |v: Option<String>, flag: &str| -> Result<u16, String> {
        v.ok_or_else(|| format!("{flag} needs a port"))?
            .parse()
            .map_err(|_| format!("{flag} needs a port number (1-65535)"))
    };
    while i < pending.len() {
        match pending[i].as_str() {
            "serve" => parsed.serve = Some(parsed.serve.unwrap_or((8080, 50051))),
            // A broker flag wins over the other broker's environment variable.
            "--nats" => {
                parsed.nats = Some(value(&mut i, &pending).unwrap_or_else(|| DEFAULT_NATS.into()));
                nats_flag = true;
            }
            "--rabbitmq" => {
                parsed.rabbitmq =
                    Some(value(&mut i, &pending).unwrap_or_else(|| DEFAULT_RABBITMQ.into()));
                rabbitmq_flag = true;
            }
            "--postgres" => {
                parsed.postgres =
                    Some(value(&mut i, &pending).unwrap_or_else(|| DEFAULT_POSTGRES.into()))
            }
            "--http" => {
                let p = port(value(&mut i, &pending), "--http")?;
                parsed.serve = Some((p, parsed.serve.map_or(50051, |s| s.1)));
            }
            "--grpc" => {
                let p = port(value(&mut i, &pending), "--grpc")?;
                parsed.serve = Some((parsed.serve.map_or(8080, |s| s.0), p));
            }
            "--tls-cert" => {
                parsed.tls.0 = Some(value(&mut i, &pending).ok_or("--tls-cert needs a path")?)
            }
            "--tls-key" => {
                parsed.tls.1 = Some(value(&mut i, &pending).ok_or("--tls-key needs a path")?)
            }
            "--client-ca" => {
                parsed.tls.2 = Some(value(&mut i, &pending).ok_or("--client-ca needs a path")?)
            }
            "--trace-file" => {
                let path = value(&mut i, &pending).ok_or("--trace-file needs a path")?;
                parsed.trace_file = Some(path.into());
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
        i += 1;
    }
    if nats_flag && !rabbitmq_flag {
        parsed.rabbitmq = None;
    }
    if rabbitmq_flag && !nats_flag {
        parsed.nats = None;
    }
    if parsed.nats.is_some() && parsed.rabbitmq.is_some() {
        return Err("--nats and --rabbitmq exclude each other: events travel on one broker".into());
    }
    if parsed.tls.0.is_some() != parsed.tls.1.is_some()
        || (parsed.tls.2.is_some() && parsed.tls.0.is_none())
    {
        return Err(
            "TLS needs both --tls-cert and --tls-key (and --client-ca only with them)".into(),
        );
    }
    Ok(parsed)
}

/// The server TLS the arguments ask for: read and checked now, so a bad file stops the start.
fn server_tls(args: &Args) -> Result<Option<pactum::tls::ServerTls>, String> {
    let (Some(cert), Some(key)) = (&args.tls.0, &args.tls.1) else {
        return Ok(None);
    };
    let tls = pactum::tls::ServerTls::from_pem_files(cert, key).map_err(|e| e.to_string())?;
    let tls = match &args.tls.2 {
        Some(ca) => tls.require_client_certs(ca).map_err(|e| e.to_string())?,
        None => tls,
    };
    // A renewed certificate is picked up without a restart.
    tls.reload_every(Duration::from_secs(30));
    Ok(Some(tls))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("generated-example: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let timeline = Timeline::new();
    let hops = timeline.hops();
    // With an OpenTelemetry collector configured (OTEL_EXPORTER_OTLP_ENDPOINT), the same spans
    // and the metrics are exported too; `serve` also answers Prometheus scrapes on /metrics.
    let telemetry = match std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT") {
        None => None,
        Some(_) => match pactum::telemetry::init_with(
            "shop-example",
            pactum::telemetry::Options {
                prometheus: args.serve.is_some(),
                install_subscriber: false,
            },
        ) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("generated-example: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let otel = telemetry
        .as_ref()
        .and_then(|t| t.tracer())
        .map(|t| tracing_opentelemetry::layer().with_tracer(t));
    let subscriber = tracing_subscriber::registry().with(timeline).with(otel);
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    let metrics = telemetry.as_ref().and_then(|t| t.prometheus_router());

    let (broker, store) = match backends(&args).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("generated-example: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some((http, grpc)) = args.serve {
        let tls = match server_tls(&args) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("generated-example: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ports = Ports {
            http,
            grpc,
            tls,
            metrics,
        };
        let served = serve(broker, store, ports, hops.clone()).await;
        return match served.and_then(|()| write_trace(args.trace_file.as_deref(), &hops)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("generated-example: {e}");
                ExitCode::FAILURE
            }
        };
    }
    events_and_validation();
    if let Err(e) = checkout_flow(broker, store, &hops).await {
        eprintln!("generated-example: {e}");
        return ExitCode::FAILURE;
    }
    slow_pricing(&hops).await;
    three_ways();
    if let Err(e) = write_trace(args.trace_file.as_deref(), &hops) {
        eprintln!("generated-example: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Writes every hop so far to `path` as a Chrome trace, if a path was given.
fn write_trace(path: Option<&std::path::Path>, hops: &Hops) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let all = hops.all();
    let json = serde_json::to_string_pretty(&timeline::chrome_trace(&all))
        .map_err(|e| format!("cannot encode the trace: {e}"))?;
    std::fs::write(path, json + "\n")
        .map_err(|e| format!("cannot write the trace file `{}`: {e}", path.display()))?;
    println!(
        "\n  {} hops written to {} (open it in ui.perfetto.dev or chrome://tracing)",
        all.len(),
        path.display()
    );
    Ok(())
}

/// The broker and the consumers' store the arguments ask for.
async fn backends(args: &Args) -> Result<(Broker, Store), String> {
    let broker = match (&args.nats, &args.rabbitmq) {
        (Some(url), _) => Broker::Nats(Box::new(
            pactum::messaging::nats::Nats::connect(url)
                .await
                .map_err(|e| {
                    format!("{e}\nstart NATS with JetStream (`nats-server -js`; README: Services)")
                })?,
        )),
        (None, Some(url)) => Broker::RabbitMq(Box::new(
            pactum::messaging::rabbitmq::RabbitMq::connect(url)
                .await
                .map_err(|e| format!("{e}\n(README: Services)"))?,
        )),
        (None, None) => Broker::Embedded(Bus::new()),
    };
    let store = match &args.postgres {
        None => Store::Memory,
        Some(config) => {
            flow::prepare_postgres(config)
                .await
                .map_err(|e| format!("{e}\nstart PostgreSQL (README: Services)"))?;
            Store::Postgres(config.clone())
        }
    };
    Ok((broker, store))
}

/// Every consumer the contracts declare, started on `broker` with dedup records in `store`.
async fn start_consumers(
    broker: &Broker,
    store: &Store,
    sink: &Sink,
    system: &system::System,
    merchant_url: &str,
    tally: &Arc<Tally>,
    shutdown: &Shutdown,
) -> Result<Notifier, String> {
    if let Store::Postgres(config) = store {
        flow::spawn_relays(broker, config, shutdown)?;
    }
    let notifier = Notifier {
        outbox: Arc::default(),
    };
    flow::spawn_consumer(
        broker,
        store,
        &payments::v1::events::consumers::ORDERS_ORDER_PLACED_V1,
        flow::ChargeOrder {
            payments: system.payments.clone(),
            events: payments::v1::events::Publisher::new(sink.clone()),
        },
        tally.clone(),
        shutdown,
    )
    .await?;
    flow::spawn_consumer(
        broker,
        store,
        &inventory::v1::events::consumers::ORDERS_ORDER_PLACED_V1,
        flow::HoldStock {
            inventory: system.inventory.clone(),
            events: inventory::v1::events::Publisher::new(sink.clone()),
        },
        tally.clone(),
        shutdown,
    )
    .await?;
    flow::spawn_consumer(
        broker,
        store,
        &orders::v1::events::consumers::PAYMENTS_PAYMENT_CAPTURED_V1,
        flow::MarkPaid {
            orders: system.orders.clone(),
        },
        tally.clone(),
        shutdown,
    )
    .await?;
    flow::spawn_consumer::<payments::v1::PaymentCaptured, _>(
        broker,
        store,
        &notifications::v1::events::consumers::PAYMENTS_PAYMENT_CAPTURED_V1,
        notifier.clone(),
        tally.clone(),
        shutdown,
    )
    .await?;
    flow::spawn_consumer::<shipping::v1::ShipmentDispatched, _>(
        broker,
        store,
        &notifications::v1::events::consumers::SHIPPING_SHIPMENT_DISPATCHED_V1,
        notifier.clone(),
        tally.clone(),
        shutdown,
    )
    .await?;
    flow::spawn_consumer(
        broker,
        store,
        &shipping::v1::events::consumers::INVENTORY_STOCK_RESERVED_V1,
        flow::Dispatch {
            events: shipping::v1::events::Publisher::new(sink.clone()),
            webhooks: flow::webhook_sender(),
            merchant_url: merchant_url.to_string(),
            resend_webhooks: true,
        },
        tally.clone(),
        shutdown,
    )
    .await?;
    Ok(notifier)
}

fn events_and_validation() {
    println!("== events and validation (code checked in from `pactum generate`)");
    let money = pricing::v1::Money {
        amount: Decimal::from_str("42.50").expect("literal"),
        currency: pricing::v1::Currency("EUR".into()),
    };
    let placed = orders::v1::OrderPlaced {
        order_id: orders::v1::OrderId(Uuid::from_u128(0x5eed)),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("BOOK-42".into()),
            quantity: 1,
            unit_price: money.clone(),
        }],
        total: money,
    };
    println!(
        "  {} v{} -> subject {} ({:?}), key {}",
        orders::v1::OrderPlaced::NAME,
        orders::v1::OrderPlaced::VERSION,
        orders::v1::OrderPlaced::SUBJECT,
        orders::v1::OrderPlaced::DELIVERY,
        placed.ordering_key().unwrap_or_default()
    );
    println!(
        "  payload {}",
        serde_json::to_string(&placed).expect("serializes")
    );

    let bad = orders::v1::PlaceOrderRequest {
        cart_id: Uuid::nil(),
        customer_id: None,
        lines: vec![orders::v1::OrderLine {
            sku: pricing::v1::Sku("not a sku".into()),
            quantity: 0,
            unit_price: pricing::v1::Money {
                amount: Decimal::from_str("-1").expect("literal"),
                currency: pricing::v1::Currency("euro".into()),
            },
        }],
        note: Some("x".repeat(600)),
    };
    println!("  a bad PlaceOrderRequest:");
    if let Err(e) = bad.validate() {
        for v in e.violations {
            println!("    {:<28} {}", v.pointer, v.message);
        }
    }
    let newer: orders::v1::OrderStatus =
        serde_json::from_str("\"refunded\"").expect("open enums accept new values");
    println!("  v1 reads v2's new status as {newer:?}");
    let (v1, v2) = (
        orders::v1::operations::PLACE_ORDER,
        orders::v2::operations::PLACE_ORDER,
    );
    println!(
        "  PlaceOrder: {} {} and {} side by side; deadline {:?}, idempotency {:?}, retryable {}",
        v1.route.expect("route").method,
        v1.route.expect("route").path,
        v2.route.expect("route").path,
        v1.deadline.unwrap_or_default(),
        v1.idempotency,
        v1.retryable()
    );
}

/// The keys of the consumers the checkout waits for, and how many deliveries each settles:
/// `OrderPlaced` and `PaymentCaptured` are delivered twice on purpose.
const EXPECTED: [(&str, usize); 6] = [
    ("payments <- OrderPlaced", 2),
    ("inventory <- OrderPlaced", 2),
    ("orders <- PaymentCaptured", 2),
    ("notifications <- PaymentCaptured", 2),
    ("shipping <- StockReserved", 1),
    ("notifications <- ShipmentDispatched", 1),
];

async fn checkout_flow(broker: Broker, store: Store, hops: &Hops) -> Result<(), String> {
    let (where_, kept) = match (&broker, &store) {
        (Broker::Embedded(_), _) => ("the embedded bus", ""),
        (Broker::Nats(_), _) => ("NATS JetStream", ""),
        (Broker::RabbitMq(_), _) => ("RabbitMQ", ""),
    };
    let kept = match &store {
        Store::Memory => format!("{kept}in memory"),
        Store::Postgres(_) => format!("{kept}in PostgreSQL, in each handler's transaction"),
    };
    println!("\n== checkout: REST and gRPC calls, then events on {where_} (dedup records {kept})");
    let sink = Sink::new(broker.clone());
    // Deliver these twice, as a broker does after a lost ack: the consumers must skip the copy.
    sink.duplicate(orders::v1::OrderPlaced::SUBJECT);
    sink.duplicate(payments::v1::PaymentCaptured::SUBJECT);
    let merchant = Merchant::default();
    let merchant_url = flow::serve_merchant(merchant.clone())
        .await
        .map_err(|e| e.to_string())?;
    let system = system::start(Options {
        events: Some(sink.clone()),
        ..Options::default()
    })
    .await
    .map_err(|e| format!("cannot start the services: {e}"))?;
    let tally = Arc::new(Tally::default());
    // The demo runs to its end; its consumers stop with the process.
    let shutdown = Shutdown::new();
    let notifier = start_consumers(
        &broker,
        &store,
        &sink,
        &system,
        &merchant_url,
        &tally,
        &shutdown,
    )
    .await?;
    hops.take();

    // An incoming request carrying a trace and a 2 s budget from its caller.
    let incoming = Context::from_headers(&std::collections::HashMap::from([(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    )]))
    .with_timeout(Duration::from_secs(2));
    let carts = cart::v1::rest::Client::new(system.cart_url.clone());
    let request = cart::v1::CheckoutCartRequest {
        cart_id: cart::v1::CartId(Uuid::from_u128(system::DEMO_CART)),
    };
    let order = incoming
        .scope(carts.checkout_cart(&request))
        .await
        .map_err(|e| format!("checkout failed: {e}"))?;
    for (key, n) in EXPECTED {
        if !tally.wait_for(key, n, Duration::from_secs(10)).await {
            return Err(format!("`{key}` did not settle {n} deliveries within 10 s"));
        }
    }
    // The last spans (the webhook's, the server's) close as their futures finish.
    tokio::time::sleep(Duration::from_millis(50)).await;
    timeline::print(&hops.take());

    println!("\n  what each consumer did (every delivery, duplicates included):");
    for (key, outcomes) in tally.all() {
        for (outcome, what) in outcomes {
            let mark = match outcome {
                Outcome::Processed => "applied",
                Outcome::Duplicate => "skipped",
                Outcome::Retrying(_) => "retry",
                Outcome::DeadLettered(_) => "dead",
                Outcome::Unavailable(_) => "unavailable",
            };
            println!("    {key:<36} {mark:<8} {what}");
        }
    }
    let accepted = merchant.accepted.lock().expect("merchant lock").clone();
    println!(
        "  order {} is {}; {} email(s) sent; the merchant verified and applied {} webhook(s) of 2 sent",
        order.order_id,
        system.orders.status(order.order_id).unwrap_or("unknown"),
        notifier.outbox.lock().expect("outbox lock").len(),
        accepted.len(),
    );
    // The consumers stop cleanly: a stream group on RabbitMQ commits where it got to, so
    // the next run does not read this run's events again.
    shutdown.trigger();
    let _ = shutdown.drain(Duration::from_secs(5)).await;
    Ok(())
}

async fn slow_pricing(hops: &Hops) {
    println!("\n== a slow dependency: pricing takes 400 ms, QuoteCart's contract allows 200 ms");
    let incoming = Context::from_headers(&std::collections::HashMap::from([(
        "traceparent".to_string(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
    )]))
    .with_timeout(Duration::from_secs(1));
    let slow = match system::start(Options {
        pricing_latency: Duration::from_millis(400),
        ..Options::default()
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            println!("  cannot start: {e}");
            return;
        }
    };
    hops.take();
    let carts = cart::v1::rest::Client::new(slow.cart_url.clone());
    let request = cart::v1::CheckoutCartRequest {
        cart_id: cart::v1::CartId(Uuid::from_u128(system::DEMO_CART)),
    };
    let result = incoming.scope(carts.checkout_cart(&request)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    timeline::print(&hops.take());
    match result {
        Err(ClientError::DeadlineExceeded) => println!(
            "  the cart's client gave up at 200 ms; the caller sees DeadlineExceeded (HTTP {}, gRPC code {})",
            pactum::DeadlineExceeded::HTTP_STATUS,
            pactum::DeadlineExceeded::GRPC_CODE
        ),
        other => println!("  unexpected: {other:?}"),
    }
}

/// Keeps the services up: every REST API on one port, every gRPC service on another, with
/// the consumers running, until interrupted.
/// Where and how `serve` listens.
struct Ports {
    http: u16,
    grpc: u16,
    tls: Option<pactum::tls::ServerTls>,
    /// `/metrics`, when telemetry keeps them for Prometheus.
    metrics: Option<pactum::router::axum::Router>,
}

async fn serve(broker: Broker, store: Store, ports: Ports, hops: Hops) -> Result<(), String> {
    let Ports {
        http,
        grpc,
        tls,
        metrics,
    } = ports;
    let sink = Sink::new(broker.clone());
    let merchant = Merchant::default();
    let merchant_url = flow::serve_merchant(merchant.clone())
        .await
        .map_err(|e| e.to_string())?;
    let system = system::start(Options {
        events: Some(sink.clone()),
        ..Options::default()
    })
    .await
    .map_err(|e| format!("cannot start the services: {e}"))?;
    let tally = Arc::new(Tally::default());
    // One shutdown for everything: SIGTERM or Ctrl-C stops the servers accepting, the
    // consumers pulling and the relays polling, and the process waits for what is in flight.
    let shutdown = Shutdown::new().on_signals();
    start_consumers(
        &broker,
        &store,
        &sink,
        &system,
        &merchant_url,
        &tally,
        &shutdown,
    )
    .await?;
    // Probes: /healthz and /readyz beside the REST APIs, grpc.health.v1 beside the gRPC ones.
    let mut rest_router = system
        .rest_router()
        .merge(pactum::router::Readiness::new().router());
    if let Some(metrics) = metrics {
        rest_router = rest_router.merge(metrics);
    }
    let (_health, grpc_health) = pactum::grpc::health::router(&[
        pricing::v1::grpc::SERVICE_NAME,
        inventory::v1::grpc::SERVICE_NAME,
        orders::v1::grpc::SERVICE_NAME,
        orders::v2::grpc::SERVICE_NAME,
        payments::v1::grpc::SERVICE_NAME,
    ])
    .await;
    let (rest, rest_server) = system::serve_on(http, rest_router, &shutdown, tls.clone())
        .await
        .map_err(|e| format!("cannot listen on HTTP port {http}: {e}"))?;
    let grpc_router = system
        .grpc_router()
        .map_err(|e| format!("cannot build gRPC reflection: {e}"))?
        .merge(grpc_health);
    let (rpc, rpc_server) = system::serve_on(grpc, grpc_router, &shutdown, tls)
        .await
        .map_err(|e| format!("cannot listen on gRPC port {grpc}: {e}"))?;
    println!("REST on {rest} (every service, under /v1 and /v2); gRPC on {rpc}. Try:");
    println!(
        "  curl -s {rest}/v1/carts/{}",
        Uuid::from_u128(system::DEMO_CART)
    );
    println!(
        "  curl -s -X POST -H 'Idempotency-Key: \"checkout-1\"' {rest}/v1/carts/{}/checkout",
        Uuid::from_u128(system::DEMO_CART)
    );
    println!(
        "  grpcurl -plaintext -d '{{\"sku\":\"BOOK-42\"}}' {} shop.inventory.v1.InventoryService/CheckStock",
        rpc.trim_start_matches("http://")
    );
    println!("Each request's hops are printed as they finish; Ctrl-C or SIGTERM drains and stops.");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut stop = std::pin::pin!(shutdown.triggered());
    let running = shutdown.running();
    loop {
        tokio::select! {
            () = &mut stop => {
                // The servers, consumers and relays saw it too: wait while they finish what is
                // in flight (the servers are tracked tasks of the same shutdown).
                let drained = shutdown.drain(Duration::from_secs(25)).await;
                let _ = tokio::join!(rest_server, rpc_server);
                timeline::print(&hops.take());
                match drained {
                    Drained::All => println!("drained {running} task(s) (servers, consumers, relays); stopped"),
                    Drained::TimedOut { remaining } => println!(
                        "stopped with {remaining} of {running} task(s) still running after 25 s; their deliveries go to another worker"
                    ),
                }
                return Ok(());
            }
            _ = tick.tick() => {
                let done = hops.take();
                if !done.is_empty() {
                    timeline::print(&done);
                }
            }
        }
    }
}

fn three_ways() {
    println!("\n== three ways to generate");
    println!(
        "  CLI (checked in):     orders::v1::OrderPlaced -> {}",
        orders::v1::OrderPlaced::SUBJECT
    );
    let attempt = built::audit::v1::CheckoutAttempted {
        cart_id: Uuid::from_u128(42),
        actor: built::audit::v1::Actor("customer-7".into()),
        outcome: "ok".into(),
    };
    println!(
        "  build.rs (OUT_DIR):   audit::v1::CheckoutAttempted -> {} key {}",
        built::audit::v1::CheckoutAttempted::SUBJECT,
        attempt.ordering_key().unwrap_or_default()
    );
    let points = included::loyalty::v1::Points(100_001);
    println!(
        "  include_contract!:    loyalty::v1::PointsAwarded -> {}; Points(100001) valid: {}",
        included::loyalty::v1::PointsAwarded::SUBJECT,
        points.validate().is_ok()
    );
}
