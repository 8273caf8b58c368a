//! The `{{ f.name }}` service: serves `{{ f.serves }}` ({{ f.versions }}) over REST and gRPC,
//! with health probes, telemetry and graceful shutdown. Written once by `pactum new`: yours
//! to edit. What the contracts decide is in `wiring.rs`, which `pactum generate` rewrites;
//! the operations are implemented in `handlers/`, the consumers in `consumers/`.

mod app;
mod consumers;
mod handlers;
mod wiring;

use pactum::messaging::Broker;
use pactum::router::axum::Router;
use pactum::router::{Readiness, ServeOptions, ServerConfig};
use pactum::shutdown::{Drained, Shutdown};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
usage: {{ f.name }} [--listen ADDR] [--http PORT] [--grpc PORT] [--postgres CONFIG]
       [--nats URL | --rabbitmq URL | --in-process-bus]

  --listen ADDR      address both servers bind (LISTEN_ADDR; default 0.0.0.0)
  --http PORT        REST port (HTTP_PORT; default 8080; 0 picks a free one)
  --grpc PORT        gRPC port (GRPC_PORT; default 50051; 0 picks a free one)
  --postgres CONFIG  PostgreSQL, as a URL or `host=… user=… dbname=…` (DATABASE_URL):
                     idempotency keys, the outbox and consumers' records; without it keys
                     live in memory
  --nats URL         NATS with JetStream for events (NATS_URL)
  --rabbitmq URL     RabbitMQ for events, amqp://USER:PASSWORD@HOST:5672/VHOST
                     (RABBITMQ_URL)
  --in-process-bus   keep events inside this process instead (a try-out: nothing else
                     hears them)

Flags win over the environment. OTEL_EXPORTER_OTLP_ENDPOINT exports traces and metrics by
OTLP (the other OTEL_* variables apply) and serves Prometheus text on /metrics. SIGTERM or
Ctrl-C stops accepting, finishes what is in flight, then exits.";

/// The idempotency keys' table, when the service has PostgreSQL.
const IDEMPOTENCY_TABLE: &str = "{{ f.serves }}_idempotency";

/// How long requests and deliveries in flight may take once a shutdown starts, and then the
/// relay: inside the 30 s Kubernetes waits between SIGTERM and SIGKILL.
const DRAIN: Duration = Duration::from_secs(24);
const RELAY_DRAIN: Duration = Duration::from_secs(4);

/// What the service was told at start-up: flags over the environment over defaults.
struct Config {
    listen: String,
    http: u16,
    grpc: u16,
    postgres: Option<String>,
    nats: Option<String>,
    rabbitmq: Option<String>,
    in_process_bus: bool,
}

fn port(name: &str, text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .map_err(|_| format!("{name} must be a port number (0 to 65535), not `{text}`"))
}

fn config(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let (mut listen, mut http, mut grpc) = (None, None, None);
    let (mut postgres, mut nats, mut rabbitmq, mut in_process_bus) = (None, None, None, false);
    while let Some(arg) = args.next() {
        // `--flag value` or `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => listen = Some(value()?),
            "--http" => http = Some(port("--http", &value()?)?),
            "--grpc" => grpc = Some(port("--grpc", &value()?)?),
            "--postgres" => postgres = Some(value()?),
            "--nats" => nats = Some(value()?),
            "--rabbitmq" => rabbitmq = Some(value()?),
            "--in-process-bus" => in_process_bus = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let port_or_env = |given: Option<u16>, name: &str, default: u16| match given {
        Some(p) => Ok(p),
        None => env(name).map_or(Ok(default), |v| port(name, &v)),
    };
    Ok(Config {
        listen: listen
            .or_else(|| env("LISTEN_ADDR"))
            .unwrap_or_else(|| "0.0.0.0".to_string()),
        http: port_or_env(http, "HTTP_PORT", 8080)?,
        grpc: port_or_env(grpc, "GRPC_PORT", 50051)?,
        postgres: postgres.or_else(|| env("DATABASE_URL")),
        nats: nats.or_else(|| env("NATS_URL")),
        rabbitmq: rabbitmq.or_else(|| env("RABBITMQ_URL")),
        in_process_bus,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match config(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{{ f.name }}: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{{ f.name }}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    // Traces and metrics go out by OTLP when a collector is configured; logs go to stderr
    // either way. An unreachable collector is a warning, not a reason to stop.
    let telemetry = if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        let options = pactum::telemetry::Options {
            prometheus: true,
            ..pactum::telemetry::Options::default()
        };
        Some(pactum::telemetry::init_with(wiring::SERVICE, options).map_err(|e| e.to_string())?)
    } else {
        let logs = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .finish();
        tracing::subscriber::set_global_default(logs).map_err(|e| e.to_string())?;
        None
    };

    // The stores and the broker, checked now so a wrong address stops the start with a
    // reason.
    let database = match &config.postgres {
        Some(url) => Some(
            pactum::store::postgres::Database::new(url).map_err(|e| format!("--postgres: {e}"))?,
        ),
        None if wiring::EVENTS => {
            return Err(format!(
                "`{}` keeps its outbox and its consumers' records in PostgreSQL: pass --postgres CONFIG or set DATABASE_URL",
                wiring::SERVICE
            ))
        }
        None => None,
    };
    let mut server = ServerConfig::default();
    // Who may call: each authentication scheme's verifier, from AUTH_<SCHEME>_… variables.
    server.auth = wiring::verifiers()?;
    if let Some(url) = &config.postgres {
        let store = pactum::store::idempotency::PostgresStore::connect(url, IDEMPOTENCY_TABLE)
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        server.idempotency = Arc::new(store);
    }
    let chosen = [config.nats.is_some(), config.rabbitmq.is_some(), config.in_process_bus];
    if chosen.iter().filter(|&&c| c).count() > 1 {
        return Err("--nats, --rabbitmq and --in-process-bus exclude each other".into());
    }
    let broker = match (&config.nats, &config.rabbitmq) {
        (Some(url), _) => Broker::Nats(Box::new(
            pactum::messaging::nats::Nats::connect(url)
                .await
                .map_err(|e| e.to_string())?,
        )),
        (None, Some(url)) => Broker::RabbitMq(Box::new(
            pactum::messaging::rabbitmq::RabbitMq::connect(url)
                .await
                .map_err(|e| e.to_string())?,
        )),
        (None, None) if wiring::EVENTS && !config.in_process_bus => {
            return Err(format!(
                "`{}` publishes or consumes events: pass --nats URL or --rabbitmq URL (or set NATS_URL or RABBITMQ_URL; --in-process-bus keeps them inside this process, for a try-out)",
                wiring::SERVICE
            ))
        }
        (None, None) => Broker::Embedded(pactum::messaging::bus::Bus::new()),
    };
    let app = Arc::new(app::App::new(database.clone()).await?);

    // Probes: /healthz and /readyz beside the REST API, grpc.health.v1 beside the gRPC one.
    let mut readiness = Readiness::new();
    if let Some(db) = app.database.clone() {
        readiness = readiness.check("postgres", move || {
            let db = db.clone();
            async move { db.connect().await.map(drop).map_err(|e| e.to_string()) }
        });
    }
    if !matches!(broker, Broker::Embedded(_)) {
        let broker = broker.clone();
        readiness = readiness.check(broker.name(), move || {
            let broker = broker.clone();
            async move { broker.ready().await }
        });
    }
    let mut rest = wiring::rest_router(&app, &server).merge(readiness.router());
    if let Some(metrics) = telemetry.as_ref().and_then(|t| t.prometheus_router()) {
        rest = rest.merge(metrics);
    }
    let (_health, health) = pactum::grpc::health::router(wiring::GRPC_SERVICES).await;
    let grpc = wiring::grpc_router(&app, &server)?.merge(health);
    // Both ports before anything runs: a port in use stops the start with nothing to undo.
    let rest_listener = bind(&config.listen, config.http).await?;
    let grpc_listener = bind(&config.listen, config.grpc).await?;

    // One shutdown for the servers and consumers (SIGTERM or Ctrl-C), and the relay's own,
    // stopped last so events committed while the rest drains are still published.
    let shutdown = Shutdown::new().on_signals();
    let relay = Shutdown::new();
    if let Err(e) = wiring::start_events(&app, &broker, database.as_ref(), &shutdown, &relay).await
    {
        stop(&shutdown, &relay).await;
        return Err(e);
    }
    let rest_at = serve(rest_listener, rest, &shutdown)?;
    let grpc_at = serve(grpc_listener, grpc, &shutdown)?;
    println!(
        "{} serving REST on http://{rest_at} and gRPC on http://{grpc_at} (idempotency keys {})",
        wiring::SERVICE,
        if config.postgres.is_some() {
            "in PostgreSQL"
        } else {
            "in memory"
        }
    );

    shutdown.triggered().await;
    stop(&shutdown, &relay).await;
    // Dropping the telemetry flushes what it still holds.
    drop(telemetry);
    Ok(())
}

/// Stops in two steps: the servers and consumers finish what they hold, then the relay
/// publishes what they committed meanwhile and stops.
async fn stop(shutdown: &Shutdown, relay: &Shutdown) {
    shutdown.trigger();
    let first = shutdown.drain(DRAIN).await;
    relay.trigger();
    let second = relay.drain(RELAY_DRAIN).await;
    for drained in [first, second] {
        if let Drained::TimedOut { remaining } = drained {
            tracing::warn!(remaining, "stopped with work still running after the drain");
        }
    }
}

async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))
}

/// Serves `router` on `listener` until `shutdown`, as a task the shutdown's drain waits for.
fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: &Shutdown,
) -> Result<SocketAddr, String> {
    let at = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = shutdown.triggered();
    shutdown.spawn(async move {
        // Requests get 20 s to finish, inside the drain.
        let options = ServeOptions {
            shutdown_grace: Duration::from_secs(20),
            ..ServeOptions::default()
        };
        if let Err(e) = pactum::router::serve_with(listener, router, options, stop).await {
            tracing::error!(error = %e, %at, "server stopped");
        }
    });
    Ok(at)
}
