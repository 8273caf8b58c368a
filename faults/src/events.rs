//! The event path under faults: an order placed over REST writes `OrderPlaced` in its
//! transaction; the services' relay publishes it to a NATS server of the suite's own; a
//! consumer process charges the order in its transaction. Each run hits one point of that
//! path with a fault and then counts the charges in PostgreSQL: exactly one per order, and
//! nothing in the dead letter.
//!
//! The NATS server is started on a free loopback port with its store in a temporary
//! directory (`nats-server -js`, or `PACTUM_NATS_SERVER`), so it can be killed and
//! restarted; the machine's own server is never touched.

use crate::harness::{call, free_port, pg, spawn, start, Op, Options, Report, Server};
use crate::services::{CONSUMER_ACK_WAIT, CONSUMER_APP, EVENT_STREAM, RELAY_APP};
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

async fn consumer(options: &Options, nats: &str, env: &[(&str, String)]) -> Result<Server, String> {
    let args = [
        "consume".to_string(),
        "--postgres".into(),
        options.postgres.clone(),
        "--nats".into(),
        nats.to_string(),
    ];
    spawn(options, &args, env).await
}

/// Creates the stream and the charges table, empty.
async fn prepare(nats_url: &str, db: &tokio_postgres::Client) -> Result<(), String> {
    let nats = pactum::nats::Nats::connect(nats_url)
        .await
        .map_err(|e| e.to_string())?;
    nats.ensure_stream(
        EVENT_STREAM,
        <generated_example::generated::orders::v1::OrderPlaced as pactum::Event>::SUBJECT,
        pactum::Delivery::Stream,
        Duration::from_secs(120),
    )
    .await
    .map_err(|e| e.to_string())?;
    db.batch_execute(
        "DROP TABLE IF EXISTS event_charges, event_processed;
         CREATE TABLE event_charges (order_id TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());",
    )
    .await
    .map_err(|e| e.to_string())
}

async fn terminate(db: &tokio_postgres::Client, app: &str) -> Result<u64, String> {
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    )
    .await
    .map_err(|e| e.to_string())
}

async fn charges(db: &tokio_postgres::Client, order: &str) -> Result<i64, String> {
    db.query_one(
        "SELECT COUNT(*) FROM event_charges WHERE order_id = $1",
        &[&order],
    )
    .await
    .map(|r| r.get(0))
    .map_err(|e| e.to_string())
}

async fn dead_letters(nats_url: &str) -> Result<u64, String> {
    let client = async_nats::connect(nats_url)
        .await
        .map_err(|e| e.to_string())?;
    let mut dlq = async_nats::jetstream::new(client)
        .get_stream(format!("{EVENT_STREAM}_DLQ"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(dlq.info().await.map_err(|e| e.to_string())?.state.messages)
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
    let mut headers: pactum::bus::Headers =
        serde_json::from_str(&row.get::<_, String>(1)).map_err(|e| e.to_string())?;
    headers.insert(
        pactum::bus::headers::MSG_ID.into(),
        format!("copy-{}", pactum::random_id()),
    );
    let nats = pactum::nats::Nats::connect(nats_url)
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
    /// Charges for the order (exactly one is right; none is a lost event).
    pub charges: i64,
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
    let mut reader = Some(consumer(&options, &url_nats, &consumer_env).await?);
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
            charges: 0,
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
    while (charges(&db, &order).await? == 0 || (pauses_later && !fired)) && Instant::now() < until {
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
                reader = Some(consumer(&options, &url_nats, &forget).await?);
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
    let charged = charges(&db, &order).await?;
    let dead = dead_letters(&url_nats).await?;
    if let Some(s) = service.take() {
        s.kill().await;
    }
    if let Some(r) = reader.take() {
        r.kill().await;
    }
    Ok(EventOutcome {
        fault,
        charges: charged,
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
        if o.charges == 0 {
            self.lost += 1;
            bad.push("lost: the order was never charged".to_string());
        }
        if o.charges > 1 {
            self.duplicated += 1;
            bad.push(format!("charged {} times", o.charges));
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
    let mut rng = fastrand::Rng::with_seed(seed);
    let faults: Vec<EventFault> = match schedule {
        Some(s) => s.to_vec(),
        None => (0..runs)
            .map(|_| EVENT_FAULTS[rng.usize(..EVENT_FAULTS.len())])
            .collect(),
    };
    let mut report = Report::default();
    for fault in faults {
        let outcome = run_one(options, &mut nats, fault).await?;
        report.add_event(&outcome);
    }
    Ok(report)
}
