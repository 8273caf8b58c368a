//! The `notifications` service: serves `notifications` (v1) over REST and gRPC,
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
usage: notifications [--listen ADDR] [--http PORT] [--grpc PORT] [--postgres CONFIG] [--nats URL]

  --listen ADDR      address both servers bind (LISTEN_ADDR; default 0.0.0.0)
  --http PORT        REST port (HTTP_PORT; default 8080; 0 picks a free one)
  --grpc PORT        gRPC port (GRPC_PORT; default 50051; 0 picks a free one)
  --postgres CONFIG  PostgreSQL, as a URL or `host=… user=… dbname=…` (DATABASE_URL):
                     idempotency keys, the outbox and consumers' records; without it keys
                     live in memory
  --nats URL         NATS with JetStream for events (NATS_URL); without it, an in-process bus

OTEL_EXPORTER_OTLP_ENDPOINT exports traces and metrics by OTLP (the other OTEL_* variables
apply) and serves Prometheus text on /metrics. SIGTERM or Ctrl-C stops accepting, finishes
what is in flight, then exits.";

/// The idempotency keys' table, when the service has PostgreSQL.
const IDEMPOTENCY_TABLE: &str = "notifications_idempotency";

/// How long in-flight work may take once a shutdown starts: inside the 30 s Kubernetes waits
/// between SIGTERM and SIGKILL.
const DRAIN: Duration = Duration::from_secs(25);

/// What the service was told at start-up: flags over the environment over defaults.
struct Config {
    listen: String,
    http: u16,
    grpc: u16,
    postgres: Option<String>,
    nats: Option<String>,
}

fn config(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let port = |name: &str, text: String| {
        text.parse::<u16>()
            .map_err(|_| format!("{name} must be a port number (0 to 65535), not `{text}`"))
    };
    let mut config = Config {
        listen: env("LISTEN_ADDR").unwrap_or_else(|| "0.0.0.0".to_string()),
        http: env("HTTP_PORT")
            .map(|v| port("HTTP_PORT", v))
            .transpose()?
            .unwrap_or(8080),
        grpc: env("GRPC_PORT")
            .map(|v| port("GRPC_PORT", v))
            .transpose()?
            .unwrap_or(50051),
        postgres: env("DATABASE_URL"),
        nats: env("NATS_URL"),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => config.listen = value()?,
            "--http" => config.http = port("--http", value()?)?,
            "--grpc" => config.grpc = port("--grpc", value()?)?,
            "--postgres" => config.postgres = Some(value()?),
            "--nats" => config.nats = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(config)
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
            eprintln!("notifications: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notifications: {e}");
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

    // The stores and the broker, checked now so a wrong address stops the start with a reason.
    let database = match &config.postgres {
        Some(url) => Some(
            pactum::store::postgres::Database::new(url).map_err(|e| format!("--postgres: {e}"))?,
        ),
        None if wiring::NEEDS_POSTGRES => {
            return Err(format!(
                "`{}` keeps its outbox and its consumers' records in PostgreSQL: pass --postgres CONFIG or set DATABASE_URL",
                wiring::SERVICE
            ))
        }
        None => None,
    };
    let mut server = ServerConfig::default();
    if let Some(url) = &config.postgres {
        let store = pactum::store::idempotency::PostgresStore::connect(url, IDEMPOTENCY_TABLE)
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        server.idempotency = Arc::new(store);
    }
    let broker = match &config.nats {
        Some(url) => Broker::Nats(Box::new(
            pactum::messaging::nats::Nats::connect(url)
                .await
                .map_err(|e| format!("NATS at {url}: {e}"))?,
        )),
        None => Broker::Embedded(pactum::messaging::bus::Bus::new()),
    };

    let app = Arc::new(app::App::new(database.clone()).await?);
    let durable = app.database.is_some();
    // One shutdown for everything: SIGTERM or Ctrl-C stops the servers accepting and the
    // consumers and the relay taking work; what is in flight finishes.
    let shutdown = Shutdown::new().on_signals();
    wiring::start_events(&app, &broker, database.as_ref(), &shutdown).await?;

    // Probes: /healthz and /readyz beside the REST API, grpc.health.v1 beside the gRPC one.
    let mut readiness = Readiness::new();
    if let Some(db) = database {
        readiness = readiness.check("postgres", move || {
            let db = db.clone();
            async move { db.connect().await.map(drop).map_err(|e| e.to_string()) }
        });
    }
    let mut rest = wiring::rest_router(&app, &server).merge(readiness.router());
    if let Some(metrics) = telemetry.as_ref().and_then(|t| t.prometheus_router()) {
        rest = rest.merge(metrics);
    }
    let (_health, health) = pactum::grpc::health::router(wiring::GRPC_SERVICES).await;
    let grpc = wiring::grpc_router(&app, &server)?.merge(health);
    let rest_at = serve(&config.listen, config.http, rest, &shutdown)
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.listen, config.http))?;
    let grpc_at = serve(&config.listen, config.grpc, grpc, &shutdown)
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.listen, config.grpc))?;
    println!(
        "{} serving REST on http://{rest_at} and gRPC on http://{grpc_at} (idempotency keys {})",
        wiring::SERVICE,
        if durable { "in PostgreSQL" } else { "in memory" }
    );

    shutdown.triggered().await;
    match shutdown.drain(DRAIN).await {
        Drained::All => tracing::info!("drained; stopped"),
        Drained::TimedOut { remaining } => {
            tracing::warn!(remaining, "stopped with work still running after the drain");
        }
    }
    // Dropping the telemetry flushes what it still holds.
    drop(telemetry);
    Ok(())
}

/// Serves `router` on `host:port` until `shutdown`, as a task the shutdown's drain waits for.
async fn serve(
    host: &str,
    port: u16,
    router: Router,
    shutdown: &Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((host, port)).await?;
    let at = listener.local_addr()?;
    let stop = shutdown.triggered();
    shutdown.spawn(async move {
        // Requests get 20 s to finish, inside the drain's 25 s.
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
