//! The event path under faults, the whole checkout after the order: an order placed over REST
//! writes `OrderPlaced` in its transaction; the services' relay publishes it to a NATS server
//! of the suite's own; a consumer process charges the order (payments), reserves its stock and
//! publishes `StockReserved` through its outbox (inventory), records the shipment and sends
//! the `OrderShipped` webhook through its webhook outbox (shipping); a merchant endpoint in the
//! suite records each webhook once, in its own transaction. Each run hits one point of that
//! path with a fault and then counts every step in PostgreSQL: exactly one charge,
//! reservation, shipment and accepted webhook per order, and nothing in a dead letter.
//!
//! The broker is NATS JetStream or RabbitMQ ([`Transport`]), started on a free loopback port
//! with its data in a temporary directory (`nats-server -js`, or `PACTUM_NATS_SERVER`;
//! `rabbitmq-server` with a node name of its own, or `PACTUM_RABBITMQ_SERVER`), so it can be
//! killed and restarted; the machine's own server is never touched.

use crate::harness::{call, free_port, pg, spawn, start, Op, Options, Report, Server};
use crate::services::{
    merchant_secret, CONSUMER_ACK_WAIT, CONSUMER_APP, CONSUMER_OUTBOX, EVENT_STREAM,
    INVENTORY_STREAM, ORDER_PLACED_DELIVERY, RELAY_APP, STOCK_RESERVED_DELIVERY, WEBHOOK_OUTBOX,
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
    /// The broker is SIGKILLed before the order and restarted 1.5 s later.
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

/// The broker the event path runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// NATS JetStream.
    Nats,
    /// RabbitMQ.
    RabbitMq,
}

/// A broker of the suite's own.
pub enum OwnBroker {
    /// `nats-server -js`.
    Nats(OwnNats),
    /// `rabbitmq-server`.
    RabbitMq(OwnRabbit),
}

impl OwnBroker {
    /// Starts one on a free port.
    pub async fn start(transport: Transport) -> Result<Self, String> {
        Ok(match transport {
            Transport::Nats => OwnBroker::Nats(OwnNats::start().await?),
            Transport::RabbitMq => OwnBroker::RabbitMq(OwnRabbit::start().await?),
        })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        match self {
            OwnBroker::Nats(n) => n.url(),
            OwnBroker::RabbitMq(r) => r.url(),
        }
    }

    async fn up(&mut self) -> Result<(), String> {
        match self {
            OwnBroker::Nats(n) => n.up().await,
            OwnBroker::RabbitMq(r) => r.up().await,
        }
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        match self {
            OwnBroker::Nats(n) => n.kill().await,
            OwnBroker::RabbitMq(r) => r.kill().await,
        }
    }
}

/// A RabbitMQ node of the suite's own: its node name, ports, data and logs in a temporary
/// directory. The script under /usr/lib/rabbitmq/bin runs as the calling user (the /usr/sbin
/// wrapper switches to the `rabbitmq` user).
pub struct OwnRabbit {
    port: u16,
    dist: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRabbit {
    /// Starts one on a free port.
    pub async fn start() -> Result<Self, String> {
        let (port, dist) = (free_port()?, free_port()?);
        let dir = std::env::temp_dir().join(format!("pactum-faults-rabbit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n").map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .map_err(|e| e.to_string())?;
        let mut rabbit = Self {
            port,
            dist,
            dir,
            child: None,
        };
        rabbit.up().await?;
        Ok(rabbit)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn up(&mut self) -> Result<(), String> {
        let bin = std::env::var("PACTUM_RABBITMQ_SERVER").unwrap_or_else(|_| {
            let lib = "/usr/lib/rabbitmq/bin/rabbitmq-server";
            if std::path::Path::new(lib).exists() {
                lib.into()
            } else {
                "rabbitmq-server".into()
            }
        });
        let dir = &self.dir;
        let mut child = Command::new(&bin)
            .env("HOME", dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("pactum-faults-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            // The script then execs the VM, so SIGKILL reaches the broker itself; the VM
            // reads its standard input and stops at its end, so it gets a pipe held open.
            .env("RABBITMQ_ALLOW_INPUT", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("`{bin}` is required (set PACTUM_RABBITMQ_SERVER): {e}"))?;
        // Up once it accepts connections (bounded: 60 s, a cold Erlang VM on a busy machine).
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "rabbitmq-server exited with {status}; logs in {}",
                    dir.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "rabbitmq-server did not start on port {}",
            self.port
        ))
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
    broker: &str,
    merchant: &str,
    env: &[(&str, String)],
) -> Result<Server, String> {
    let args = [
        "consume".to_string(),
        "--postgres".into(),
        options.postgres.clone(),
        "--broker".into(),
        broker.to_string(),
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

/// The suite's subjects, and the groups reading each.
const GROUPS: [(&str, &str, pactum::DeliveryMode, &[&str]); 2] = [
    (
        EVENT_STREAM,
        <generated_example::generated::orders::v1::OrderPlaced as pactum::Event>::SUBJECT,
        ORDER_PLACED_DELIVERY,
        &["payments", "inventory"],
    ),
    (
        INVENTORY_STREAM,
        <generated_example::generated::inventory::v1::StockReserved as pactum::Event>::SUBJECT,
        STOCK_RESERVED_DELIVERY,
        &["shipping"],
    ),
];

/// Creates the streams (NATS) or the groups' queues (RabbitMQ, where a group declares its
/// queue and an event published before then would go to the unroutable queue), and the
/// tables, empty.
async fn prepare(broker_url: &str, db: &tokio_postgres::Client) -> Result<(), String> {
    match crate::services::broker(broker_url).await? {
        pactum::messaging::Broker::Nats(nats) => {
            for (stream, subject, mode, _) in GROUPS {
                nats.ensure_stream(stream, subject, mode, Duration::from_secs(120))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        pactum::messaging::Broker::RabbitMq(rabbit) => {
            // Empty: a stream keeps earlier schedules' events, and a group would resume
            // among them (after a kill, from an older commit), so a fault meant for this
            // run's order could hit another's.
            let (_connection, channel) = amqp(broker_url).await?;
            // Counted as dead letters at the end of each run: empty at the start of each
            // schedule, like the rest.
            channel
                .queue_purge(
                    pactum::messaging::rabbitmq::UNROUTABLE.into(),
                    Default::default(),
                )
                .await
                .map_err(|e| {
                    format!(
                        "cannot empty {}: {e}",
                        pactum::messaging::rabbitmq::UNROUTABLE
                    )
                })?;
            for (_, subject, _, groups) in GROUPS {
                let mut queues = vec![subject.to_string(), format!("{subject}.dlq")];
                for group in groups {
                    queues.push(format!("{subject}.{group}"));
                    queues.push(format!("{subject}.{group}.offset"));
                }
                for queue in queues {
                    channel
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await
                        .map_err(|e| format!("cannot delete {queue}: {e}"))?;
                }
            }
            for (_, subject, mode, groups) in GROUPS {
                for group in groups {
                    let mut g = rabbit
                        .join(
                            subject,
                            group,
                            mode,
                            pactum::messaging::bus::StartAt::First,
                            1,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    g.release().await;
                }
            }
        }
        pactum::messaging::Broker::Embedded(_) => {}
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

/// A raw AMQP channel to the suite's RabbitMQ, to inspect and empty its queues; the channel
/// lives as long as the connection returned with it.
async fn amqp(url: &str) -> Result<(lapin::Connection, lapin::Channel), String> {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    Ok((connection, channel))
}

/// Messages in the dead letters (and, on RabbitMQ, in the unroutable queue: an event no
/// group's queue took).
async fn dead_letters(broker_url: &str) -> Result<u64, String> {
    if broker_url.starts_with("amqp") {
        let (_connection, channel) = amqp(broker_url).await?;
        let mut total = 0;
        let queues = GROUPS
            .iter()
            .map(|(_, subject, _, _)| format!("{subject}.dlq"))
            .chain([pactum::messaging::rabbitmq::UNROUTABLE.to_string()]);
        for queue in queues {
            let q = channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    Default::default(),
                )
                .await
                .map_err(|e| format!("{queue}: {e}"))?;
            total += u64::from(q.message_count());
        }
        return Ok(total);
    }
    let client = async_nats::connect(broker_url)
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
    broker_url: &str,
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
    use pactum::messaging::bus::EventSink as _;
    let broker = crate::services::broker(broker_url).await?;
    let published = broker
        .send(&row.get::<_, String>(0), headers, row.get(2))
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
    broker: &mut OwnBroker,
    merchant: &str,
    fault: EventFault,
) -> Result<EventOutcome, String> {
    let db = pg(&options.postgres).await?;
    let url_broker = broker.url();
    let options = Options {
        broker: Some(url_broker.clone()),
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
    let mut reader = Some(consumer(&options, &url_broker, merchant, &consumer_env).await?);
    let mut fired = matches!(fault, EventFault::None);
    let mut errors = Vec::new();
    if fault == EventFault::RestartBroker {
        broker.kill().await;
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
            broker.up().await?;
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
                reader = Some(consumer(&options, &url_broker, merchant, &forget).await?);
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    if fault == EventFault::DuplicateDelivery {
        // The same event again under another broker id: stored, delivered, and skipped.
        fired = deliver_again(&url_broker, &db, &order).await?;
    }
    // Let redeliveries (after the consumer's ack wait) and copies arrive, then count.
    tokio::time::sleep(CONSUMER_ACK_WAIT + Duration::from_secs(1)).await;
    let counted = steps(&db, &order).await?;
    let dead = dead_letters(&url_broker).await?;
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
    run_on(Transport::Nats, options, runs, seed, schedule).await
}

/// [`run`] on the broker `transport` names.
pub async fn run_on(
    transport: Transport,
    options: &Options,
    runs: u32,
    seed: u64,
    schedule: Option<&[EventFault]>,
) -> Result<Report, String> {
    let mut broker = OwnBroker::start(transport).await?;
    run_with(&mut broker, options, runs, seed, schedule).await
}

/// [`run`] on a broker already started (a RabbitMQ node takes seconds to boot, so a caller
/// running several schedules starts one).
pub async fn run_with(
    broker: &mut OwnBroker,
    options: &Options,
    runs: u32,
    seed: u64,
    schedule: Option<&[EventFault]>,
) -> Result<Report, String> {
    crate::harness::prepare(options).await?;
    let db = pg(&options.postgres).await?;
    prepare(&broker.url(), &db).await?;
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
        let outcome = run_one(options, broker, &merchant, fault).await?;
        report.add_event(&outcome);
    }
    Ok(report)
}
