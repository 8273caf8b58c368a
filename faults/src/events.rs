//! The event path under faults, the whole checkout after the order: an order placed over REST
//! writes `OrderPlaced` in its transaction; the services' relay publishes it to a NATS server
//! of the suite's own; a consumer process charges the order (payments), reserves its stock and
//! publishes `StockReserved` through its outbox (inventory), records the shipment and sends
//! the `OrderShipped` webhook through its webhook outbox (shipping); a merchant endpoint in the
//! suite records each webhook once, in its own transaction. Each run hits one point of that
//! path with a fault and then counts every step in PostgreSQL: exactly one charge,
//! reservation, shipment and accepted webhook per order, and nothing in a dead letter.
//!
//! The NATS server is started on a free loopback port with its store in a temporary
//! directory (`nats-server -js`, or `PACTUM_NATS_SERVER`), so it can be killed and
//! restarted; the machine's own server is never touched.

use crate::harness::{call, free_port, pg, spawn, start, Op, Options, Report, Server};
use crate::services::{
    merchant_secret, CONSUMER_ACK_WAIT, CONSUMER_APP, CONSUMER_OUTBOX, EVENT_STREAM,
    INVENTORY_STREAM, RELAY_APP, WEBHOOK_OUTBOX,
};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Where the event path is hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFault {
    /// Nothing: the baseline.
    None,
    /// SIGKILL of the services (handlers and relay) after the order committed, before it
    /// answered and (most likely) before the relay published.
    KillServiceAfterCommit,
    /// SIGKILL of the services after the relay published the event, before it marked the row.
    KillRelayAfterPublish,
    /// SIGKILL of the consumer after its transaction committed, before the ack.
    KillConsumerAfterCommit,
    /// The NATS server is SIGKILLed before the order and restarted 1.5 s later.
    RestartBroker,
    /// The relay's database connection is terminated while the event waits to be relayed.
    TerminateRelay,
    /// The consumer's database connection is terminated before the event reaches it.
    TerminateConsumer,
    /// The event is delivered a second time (a copy under another broker id).
    DuplicateDelivery,
}

/// Every event fault.
pub const EVENT_FAULTS: [EventFault; 8] = [
    EventFault::None,
    EventFault::KillServiceAfterCommit,
    EventFault::KillRelayAfterPublish,
    EventFault::KillConsumerAfterCommit,
    EventFault::RestartBroker,
    EventFault::TerminateRelay,
    EventFault::TerminateConsumer,
    EventFault::DuplicateDelivery,
];

/// A NATS server of the suite's own.
pub struct OwnNats {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnNats {
    /// Starts one on a free port.
    pub async fn start() -> Result<Self, String> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("pactum-faults-nats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut nats = Self {
            port,
            dir,
            child: None,
        };
        nats.up().await?;
        Ok(nats)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) -> Result<(), String> {
        let bin = std::env::var("PACTUM_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("`{bin}` is required (set PACTUM_NATS_SERVER): {e}"))?;
        self.child = Some(child);
        // Up once it accepts connections (bounded: 10 s).
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("nats-server did not start on port {}", self.port))
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn consumer(
    options: &Options,
    nats: &str,
    merchant: &str,
    env: &[(&str, String)],
) -> Result<Server, String> {
    let args = [
        "consume".to_string(),
        "--postgres".into(),
        options.postgres.clone(),
        "--nats".into(),
        nats.to_string(),
        "--merchant".into(),
        merchant.to_string(),
    ];
    spawn(options, &args, env).await
}

/// The tables that count each step, with no unique key: a second effect shows as a row.
const STEPS: [&str; 4] = [
    "event_charges",
    "event_reservations",
    "event_shipments",
    "event_merchant",
];

/// Creates the streams and the tables, empty.
async fn prepare(nats_url: &str, db: &tokio_postgres::Client) -> Result<(), String> {
    use pactum::Event as _;
    let nats = pactum::messaging::nats::Nats::connect(nats_url)
        .await
        .map_err(|e| e.to_string())?;
    for (stream, subject, mode) in [
        (
            EVENT_STREAM,
            generated_example::generated::orders::v1::OrderPlaced::SUBJECT,
            pactum::DeliveryMode::Stream,
        ),
        (
            INVENTORY_STREAM,
            generated_example::generated::inventory::v1::StockReserved::SUBJECT,
            pactum::DeliveryMode::Queue,
        ),
    ] {
        nats.ensure_stream(stream, subject, mode, Duration::from_secs(120))
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut sql = format!(
        "DROP TABLE IF EXISTS {}, event_processed, event_merchant_receipts, {CONSUMER_OUTBOX}, {WEBHOOK_OUTBOX};",
        STEPS.join(", ")
    );
    for step in STEPS {
        sql.push_str(&format!(
            "CREATE TABLE {step} (order_id TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());"
        ));
    }
    db.batch_execute(&sql).await.map_err(|e| e.to_string())?;
    for table in [CONSUMER_OUTBOX, WEBHOOK_OUTBOX] {
        pactum::store::outbox::create_table(db, table)
            .await
            .map_err(|e| e.to_string())?;
    }
    pactum::webhook::durable::create_receipts(db, "event_merchant_receipts")
        .await
        .map_err(|e| e.to_string())
}

/// The merchant's endpoint: verifies each delivery, and records its `webhook-id` and the
/// order in one transaction, so a redelivered webhook is accepted without a second row.
async fn merchant(postgres: &str) -> Result<String, String> {
    use generated_example::generated::shipping::v1 as shipping;
    let db = std::sync::Arc::new(tokio::sync::Mutex::new(pg(postgres).await?));
    let app = pactum::router::axum::Router::new().route(
        "/hooks/shipping",
        pactum::router::axum::routing::post(
            move |headers: http::HeaderMap, body: pactum::router::axum::body::Bytes| {
                let db = db.clone();
                async move {
                    let refuse = http::StatusCode::UNAUTHORIZED;
                    let Ok(delivery) = pactum::webhook::SignedDelivery::from_headers(&headers)
                    else {
                        return refuse;
                    };
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    let tolerance = Duration::from_secs(300);
                    if merchant_secret()
                        .verify(&delivery, &body, now, tolerance)
                        .is_err()
                    {
                        return refuse;
                    }
                    let Ok(hook) = serde_json::from_slice::<
                        pactum::webhook::Envelope<shipping::OrderShipped>,
                    >(&body) else {
                        return http::StatusCode::BAD_REQUEST;
                    };
                    let mut db = db.lock().await;
                    let recorded = async {
                        let tx = db.transaction().await.map_err(|e| e.to_string())?;
                        let first = pactum::webhook::durable::record_in_postgres(
                            &tx,
                            "event_merchant_receipts",
                            delivery.id,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                        if first {
                            tx.execute(
                                "INSERT INTO event_merchant (order_id) VALUES ($1)",
                                &[&hook.data.order_id.to_string()],
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                        }
                        tx.commit().await.map_err(|e| e.to_string())
                    };
                    match recorded.await {
                        Ok(()) => http::StatusCode::NO_CONTENT,
                        Err(_) => http::StatusCode::SERVICE_UNAVAILABLE,
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { pactum::router::serve(listener, app).await });
    Ok(format!("http://{addr}/hooks/shipping"))
}

async fn terminate(db: &tokio_postgres::Client, app: &str) -> Result<u64, String> {
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    )
    .await
    .map_err(|e| e.to_string())
}

/// How many times each step happened for `order`, in [`STEPS`] order.
async fn steps(db: &tokio_postgres::Client, order: &str) -> Result<[i64; 4], String> {
    let mut counts = [0; 4];
    for (count, step) in counts.iter_mut().zip(STEPS) {
        *count = db
            .query_one(
                &format!("SELECT COUNT(*) FROM {step} WHERE order_id = $1"),
                &[&order],
            )
            .await
            .map(|r| r.get(0))
            .map_err(|e| e.to_string())?;
    }
    Ok(counts)
}

async fn dead_letters(nats_url: &str) -> Result<u64, String> {
    let client = async_nats::connect(nats_url)
        .await
        .map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    let mut total = 0;
    for stream in [EVENT_STREAM, INVENTORY_STREAM] {
        let mut dlq = js
            .get_stream(format!("{stream}_DLQ"))
            .await
            .map_err(|e| e.to_string())?;
        total += dlq.info().await.map_err(|e| e.to_string())?.state.messages;
    }
    Ok(total)
}

/// Publishes the order's event once more, as stored in the outbox, under another broker id
/// (so the broker stores it and the consumer must recognise it).
async fn deliver_again(
    nats_url: &str,
    db: &tokio_postgres::Client,
    order: &str,
) -> Result<bool, String> {
    let outbox = generated_example::services::durable::OUTBOX;
    let row = db
        .query_opt(
            &format!("SELECT subject, headers, payload FROM {outbox} WHERE ordering_key = $1"),
            &[&order],
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = row else {
        return Ok(false);
    };
    let mut headers: pactum::messaging::bus::Headers =
        serde_json::from_str(&row.get::<_, String>(1)).map_err(|e| e.to_string())?;
    headers.insert(
        pactum::messaging::bus::headers::MSG_ID.into(),
        format!("copy-{}", pactum::random_id()),
    );
    let nats = pactum::messaging::nats::Nats::connect(nats_url)
        .await
        .map_err(|e| e.to_string())?;
    let published = nats
        .publish(&row.get::<_, String>(0), &headers, row.get(2))
        .await
        .map_err(|e| e.to_string())?;
    Ok(!published.duplicate)
}

/// What one run saw.
#[derive(Debug)]
pub struct EventOutcome {
    /// The fault.
    pub fault: EventFault,
    /// Charges, reservations, shipments and accepted webhooks for the order (exactly one of
    /// each is right; none is a lost event).
    pub steps: [i64; 4],
    /// Messages in the dead letter.
    pub dead_letters: u64,
    /// The fault happened.
    pub fired: bool,
    /// Errors along the way.
    pub errors: Vec<String>,
}

/// How long a run waits for the charge.
const SETTLE: Duration = Duration::from_secs(40);

/// One order through the event path under `fault`.
pub async fn run_one(
    options: &Options,
    nats: &mut OwnNats,
    merchant: &str,
    fault: EventFault,
) -> Result<EventOutcome, String> {
    let db = pg(&options.postgres).await?;
    let url_nats = nats.url();
    let options = Options {
        nats: Some(url_nats.clone()),
        ..options.clone()
    };
    let port = free_port()?;
    let service_env: Vec<(&str, String)> = match fault {
        EventFault::KillServiceAfterCommit => {
            vec![("PACTUM_FAULT_PAUSE", "orders.place.after_commit".into())]
        }
        EventFault::KillRelayAfterPublish => {
            vec![("PACTUM_FAULT_PAUSE", "relay.after_publish".into())]
        }
        // The relay waits a moment after publishing so its connection can be cut first.
        EventFault::TerminateRelay => {
            vec![("PACTUM_FAULT_DELAY", "relay.after_publish:300".into())]
        }
        _ => Vec::new(),
    };
    let consumer_env: Vec<(&str, String)> = match fault {
        EventFault::KillConsumerAfterCommit => {
            vec![("PACTUM_FAULT_PAUSE", "consumer.after_commit".into())]
        }
        EventFault::TerminateConsumer => {
            vec![("PACTUM_FAULT_DELAY", "consumer.after_commit:300".into())]
        }
        _ => Vec::new(),
    };
    let mut service = Some(start(&options, port, &service_env).await?);
    let mut reader = Some(consumer(&options, &url_nats, merchant, &consumer_env).await?);
    let mut fired = matches!(fault, EventFault::None);
    let mut errors = Vec::new();
    if fault == EventFault::RestartBroker {
        nats.kill().await;
        fired = true;
    }
    // The order, retried under one key until answered (bounded: 10 attempts, 30 s).
    let key = format!("events-{}", pactum::random_id());
    let cart = pactum::types::Uuid::from_u128(fastrand::u128(..));
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut order = None;
    for _ in 0..10 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let attempt = call(Op::PlaceOrder, &url, &key, cart, Duration::from_secs(5));
        let mut attempt = std::pin::pin!(attempt);
        let paused = async {
            match service.as_mut() {
                Some(s) => s.faults.recv().await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            r = &mut attempt => r,
            Some(_) = paused => {
                if let Some(s) = service.take() {
                    s.kill().await;
                }
                fired = true;
                service = Some(start(&options, port, &[]).await?);
                attempt.await
            }
        };
        match result {
            Ok(answer) => {
                order = answer
                    .get("id")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                break;
            }
            Err(e) => {
                errors.push(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let Some(order) = order else {
        return Ok(EventOutcome {
            fault,
            steps: [0; 4],
            dead_letters: 0,
            fired,
            errors,
        });
    };
    match fault {
        EventFault::RestartBroker => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            nats.up().await?;
        }
        EventFault::TerminateRelay => {
            // Bounded: 5 s for the relay to be holding the row.
            let until = Instant::now() + Duration::from_secs(5);
            while !fired && Instant::now() < until {
                fired = terminate(&db, RELAY_APP).await? > 0;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        EventFault::TerminateConsumer => {
            fired = terminate(&db, CONSUMER_APP).await? > 0;
        }
        _ => {}
    }
    // Wait for the charge (bounded), killing the services (their relay) or the consumer
    // where they pause, and starting them again clean.
    // A pause after the charge committed (the consumer's, or the relay's after a publish the
    // consumer already handled) is waited for too: the kill there is the point of the run.
    let pauses_later = matches!(
        fault,
        EventFault::KillRelayAfterPublish | EventFault::KillConsumerAfterCommit
    );
    let until = Instant::now() + SETTLE;
    // The last step is the merchant's webhook.
    while (steps(&db, &order).await?[3] == 0 || (pauses_later && !fired)) && Instant::now() < until
    {
        let relay_paused = async {
            match service.as_mut() {
                Some(s) => s.faults.recv().await,
                None => std::future::pending().await,
            }
        };
        let consumer_paused = async {
            match reader.as_mut() {
                Some(r) => r.faults.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(_) = relay_paused => {
                if let Some(s) = service.take() {
                    s.kill().await;
                }
                fired = true;
                service = Some(start(&options, port, &[]).await?);
            }
            Some(_) = consumer_paused => {
                if let Some(r) = reader.take() {
                    r.kill().await;
                }
                fired = true;
                let forget: Vec<(&str, String)> = if options.forget_keys_on_restart {
                    vec![("PACTUM_FAULTS_FORGET_PROCESSED", "1".into())]
                } else {
                    Vec::new()
                };
                reader = Some(consumer(&options, &url_nats, merchant, &forget).await?);
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    if fault == EventFault::DuplicateDelivery {
        // The same event again under another broker id: stored, delivered, and skipped.
        fired = deliver_again(&url_nats, &db, &order).await?;
    }
    // Let redeliveries (after the consumer's ack wait) and copies arrive, then count.
    tokio::time::sleep(CONSUMER_ACK_WAIT + Duration::from_secs(1)).await;
    let counted = steps(&db, &order).await?;
    let dead = dead_letters(&url_nats).await?;
    if let Some(s) = service.take() {
        s.kill().await;
    }
    if let Some(r) = reader.take() {
        r.kill().await;
    }
    Ok(EventOutcome {
        fault,
        steps: counted,
        dead_letters: dead,
        fired,
        errors,
    })
}

impl Report {
    /// Counts an event-path run in.
    pub fn add_event(&mut self, o: &EventOutcome) {
        self.runs += 1;
        let mut bad = Vec::new();
        let named = |i: usize| STEPS[i].trim_start_matches("event_");
        if let Some(i) = o.steps.iter().position(|&n| n == 0) {
            self.lost += 1;
            bad.push(format!("lost: no {} (steps {:?})", named(i), o.steps));
        }
        if let Some(i) = o.steps.iter().position(|&n| n > 1) {
            self.duplicated += 1;
            bad.push(format!(
                "{} {} times (steps {:?})",
                named(i),
                o.steps[i],
                o.steps
            ));
        }
        if o.dead_letters > 0 {
            self.lost += 1;
            bad.push(format!("{} dead letter(s)", o.dead_letters));
        }
        if !o.fired {
            self.unfired += 1;
            bad.push("the fault never happened".into());
        }
        if !bad.is_empty() {
            self.problems.push(format!(
                "event path under {:?}: {}; errors: {:?}",
                o.fault,
                bad.join(", "),
                o.errors
            ));
        }
    }
}

/// Runs `schedule` (or `runs` random event faults from `seed`) on one NATS server of the
/// suite's own, after [`crate::harness::prepare`].
pub async fn run(
    options: &Options,
    runs: u32,
    seed: u64,
    schedule: Option<&[EventFault]>,
) -> Result<Report, String> {
    crate::harness::prepare(options).await?;
    let mut nats = OwnNats::start().await?;
    let db = pg(&options.postgres).await?;
    prepare(&nats.url(), &db).await?;
    let merchant = merchant(&options.postgres).await?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let faults: Vec<EventFault> = match schedule {
        Some(s) => s.to_vec(),
        None => (0..runs)
            .map(|_| EVENT_FAULTS[rng.usize(..EVENT_FAULTS.len())])
            .collect(),
    };
    let mut report = Report::default();
    for fault in faults {
        let outcome = run_one(options, &mut nats, &merchant, fault).await?;
        report.add_event(&outcome);
    }
    Ok(report)
}
