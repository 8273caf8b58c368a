//! What is particular to RabbitMQ: start-up errors that say what to fix, the envelope carried
//! unchanged, messages from other publishers, refusals, and a broker killed under a running
//! consumer (a RabbitMQ node of the test's own). The scenarios every broker shares are in
//! `conformance.rs`. The machine's RabbitMQ is `PACTUM_TEST_RABBITMQ` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`); PostgreSQL is `PACTUM_TEST_POSTGRES`.

use pactum::messaging::bus::{event_message, headers, EventSink, Headers, StartAt};
use pactum::messaging::consumer::{Inbound, Outcome, PgConsumer, REASON_HEADER};
use pactum::messaging::rabbitmq::{RabbitMq, EVENTS_EXCHANGE, UNROUTABLE};
use pactum::messaging::{Broker, EventSource, Subscribe, Subscription};
use pactum::shutdown::Shutdown;
use pactum::{Context, DeliveryMode as Mode};
use std::time::{Duration, Instant};

mod support;
use support::{info, postgres, postgres_config, rabbit_url, Reservations, StockReserved, POLICY};

/// This file's subject for `StockReserved`.
const SUBJECT: &str = "rabbit_test.stock_reserved";

const WAIT: Duration = Duration::from_secs(15);

/// `host:port` of the machine's RabbitMQ.
fn rabbit_host() -> String {
    let url = rabbit_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

async fn rabbit() -> RabbitMq {
    RabbitMq::connect(&rabbit_url()).await.unwrap_or_else(|e| {
        panic!("RabbitMQ is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_RABBITMQ")
    })
}

/// Deletes `queues` on the machine's broker, so a rerun starts clean.
async fn delete(queues: &[String]) {
    let connection =
        lapin::Connection::connect(&rabbit_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for q in queues {
        let _ = channel
            .queue_delete(q.as_str().into(), Default::default())
            .await;
    }
}

async fn next<S: Subscription>(s: &mut S) -> S::Message {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("a delivery within the wait")
        .expect("the broker answers")
}

#[tokio::test]
async fn start_up_errors_say_what_to_fix_and_never_show_the_password() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = RabbitMq::connect(&format!("amqp://guest:s3cret-pw@127.0.0.1:{free}/%2f"))
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        unreachable
            .0
            .contains("cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1"),
        "{unreachable}"
    );
    assert!(unreachable.0.contains("start RabbitMQ"), "{unreachable}");
    assert!(!unreachable.0.contains("s3cret-pw"), "{unreachable}");

    let wrong = RabbitMq::connect(&format!("amqp://guest:s3cret-pw@{}/%2f", rabbit_host()))
        .await
        .err()
        .expect("the password is wrong");
    assert!(
        wrong.0.contains("user name or password is wrong"),
        "{wrong}"
    );
    assert!(!wrong.0.contains("s3cret-pw"), "{wrong}");

    let vhost = RabbitMq::connect(&format!(
        "amqp://guest:guest@{}/no-such-vhost",
        rabbit_host()
    ))
    .await
    .err()
    .expect("the vhost does not exist");
    assert!(vhost.0.contains("virtual host does not exist"), "{vhost}");
    assert!(vhost.0.contains("rabbitmqctl add_vhost"), "{vhost}");
}

#[tokio::test]
async fn refusals_are_clear_and_unroutable_events_are_kept() {
    let rabbit = rabbit().await;
    let subject = "rabbit_test.refusals";
    delete(&[
        subject.to_string(),
        format!("{subject}.dlq"),
        format!("{subject}.late"),
    ])
    .await;
    // No group has joined: the publish is confirmed and kept in the unroutable queue (the
    // exchange's alternate exchange), not lost.
    let id = format!("lonely-{}", std::process::id());
    rabbit
        .send(
            "rabbit_test.nobody_listens",
            Headers::from([(headers::MSG_ID.to_string(), id.clone())]),
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    let raw = lapin::Connection::connect(&rabbit_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = raw.create_channel().await.unwrap();
    let mut kept = false;
    // Bounded: what other runs left there is read and left in place.
    for _ in 0..1000 {
        let Some(m) = channel
            .basic_get(
                UNROUTABLE.into(),
                lapin::options::BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap()
        else {
            break;
        };
        if m.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str())
            == Some(id.as_str())
        {
            assert_eq!(
                m.delivery.routing_key.as_str(),
                "rabbit_test.nobody_listens"
            );
            m.delivery.acker.ack(Default::default()).await.unwrap();
            kept = true;
            break;
        }
    }
    assert!(kept, "the unroutable event is kept in {UNROUTABLE}");
    drop(channel);
    // Replay on a new pub/sub group: refused, not a silent start from now.
    let err = rabbit
        .subscribe(
            info(subject, "late", Mode::Pubsub),
            &Subscribe {
                start: StartAt::First,
                ..Subscribe::default()
            },
        )
        .await
        .err()
        .expect("no history to replay");
    assert!(err.0.contains("delivery: stream"), "{err}");
    // A subject joined as a queue cannot then be read as a stream.
    rabbit
        .subscribe(info(subject, "workers", Mode::Queue), &Subscribe::default())
        .await
        .unwrap();
    let err = rabbit
        .subscribe(
            info(subject, "readers", Mode::Stream),
            &Subscribe::default(),
        )
        .await
        .err()
        .expect("the queue exists with other arguments");
    assert!(err.0.contains("PRECONDITION"), "{err}");
    assert!(err.0.contains("exists with other arguments"), "{err}");
}

#[tokio::test]
async fn the_envelope_travels_unchanged_and_foreign_messages_are_dead_lettered_with_a_reason() {
    let rabbit = rabbit().await;
    let subject = SUBJECT;
    delete(&[subject.to_string(), format!("{subject}.dlq")]).await;
    let mut group = rabbit
        .subscribe(
            info(subject, "reservations", Mode::Queue),
            &Subscribe::default(),
        )
        .await
        .unwrap();
    // CloudEvents, traceparent and deadline headers, as the NATS transport carries them.
    let ctx = Context::new()
        .with_deadline(tokio::time::Instant::now() + Duration::from_secs(30))
        .with_span_context(opentelemetry::trace::SpanContext::new(
            opentelemetry::trace::TraceId::from_hex("5b8efff798038103d269b633813fc60c").unwrap(),
            opentelemetry::trace::SpanId::from_hex("eee19b7ec3c1b174").unwrap(),
            opentelemetry::trace::TraceFlags::SAMPLED,
            true,
            Default::default(),
        ));
    let event = StockReserved {
        sku: "sku-1".into(),
        quantity: 1,
    };
    let (mut sent, body) = event_message(&ctx, "res-1", &event).unwrap();
    // A value with a line break is cleaned, not a failure.
    sent.insert("x-note".into(), "two\r\nlines".into());
    rabbit
        .send(subject, sent.clone(), body.clone())
        .await
        .unwrap();
    let d = next(&mut group).await;
    sent.insert("x-note".into(), "two lines".into());
    assert_eq!(d.headers(), &sent);
    assert!(d.headers().contains_key("traceparent"), "{:?}", d.headers());
    assert_eq!(d.headers()[headers::ID], "res-1");
    assert_eq!(d.payload(), &body[..]);
    assert_eq!(d.delivered(), 1);
    d.ack().await;

    // Another publisher's message, with no CloudEvents headers: dead-lettered at once.
    let check = postgres().await;
    check
        .batch_execute(
            "DROP TABLE IF EXISTS rabbit_foreign_reserved; DROP TABLE IF EXISTS rabbit_foreign_processed;
             CREATE TABLE rabbit_foreign_reserved (sku TEXT PRIMARY KEY, quantity BIGINT NOT NULL);",
        )
        .await
        .unwrap();
    let database = pactum::store::postgres::Database::new(&postgres_config()).unwrap();
    let mut consumer = PgConsumer::new(
        &database,
        "rabbit_foreign_processed",
        "reservations",
        POLICY,
        Reservations {
            table: "rabbit_foreign_reserved".into(),
        },
    )
    .await
    .unwrap();
    let raw = lapin::Connection::connect(&rabbit_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = raw.create_channel().await.unwrap();
    channel
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            subject.into(),
            Default::default(),
            br#"{"sku":"sku-9","quantity":1}"#,
            lapin::BasicProperties::default().with_message_id("foreign-1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let d = next(&mut group).await;
    assert_eq!(d.headers()[headers::MSG_ID], "foreign-1");
    let outcome = consumer.process(d).await;
    assert!(matches!(outcome, Outcome::DeadLettered(_)), "{outcome:?}");
    let mut ops = rabbit
        .subscribe(
            info(&format!("{subject}.dlq"), "ops", Mode::Queue),
            &Subscribe::default(),
        )
        .await
        .unwrap();
    let dead = next(&mut ops).await;
    assert!(
        dead.headers()[REASON_HEADER].contains("missing ce-source or ce-id"),
        "{:?}",
        dead.headers()
    );
    assert_eq!(dead.payload(), br#"{"sku":"sku-9","quantity":1}"#);
    dead.ack().await;
    let rows: i64 = check
        .query_one("SELECT count(*) FROM rabbit_foreign_reserved", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "nothing applied");
}

/// A RabbitMQ node of this test's own (`rabbitmq-server` with its node name, ports, data and
/// logs in a temporary directory), so it can be killed and restarted without touching the
/// machine's. `PACTUM_RABBITMQ_SERVER` names the script; by default the one under
/// /usr/lib/rabbitmq/bin, which runs as the calling user (the /usr/sbin wrapper switches to the
/// `rabbitmq` user).
struct OwnRabbit {
    port: u16,
    dist: u16,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl OwnRabbit {
    fn start(test: &str) -> Self {
        let (port, dist) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("pactum-rabbit-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        let child = Self::spawn(port, dist, &dir);
        Self {
            port,
            dist,
            dir,
            child,
        }
    }

    fn spawn(port: u16, dist: u16, dir: &std::path::Path) -> std::process::Child {
        let bin = std::env::var("PACTUM_RABBITMQ_SERVER").unwrap_or_else(|_| {
            let lib = "/usr/lib/rabbitmq/bin/rabbitmq-server";
            if std::path::Path::new(lib).exists() {
                lib.into()
            } else {
                "rabbitmq-server".into()
            }
        });
        let mut child = std::process::Command::new(&bin)
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", format!("pactum-test-{port}@localhost"))
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            // The script then execs the VM, so the child's pid is the broker's: SIGKILL
            // reaches it, not only a wrapping shell. The VM reads its standard input then,
            // and stops at its end: a pipe held open (in `Child`) keeps it running.
            .env("RABBITMQ_ALLOW_INPUT", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("`{bin}` is required for this test (set PACTUM_RABBITMQ_SERVER): {e}")
            });
        // Up once it accepts connections (bounded: 60 s, a cold Erlang VM on a busy machine).
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return child;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "rabbitmq-server exited with {status}; logs in {}",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("rabbitmq-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// SIGKILL, stay down for `down`, then start again on the same ports and data.
    fn restart(&mut self, down: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down);
        self.child = Self::spawn(self.port, self.dist, &self.dir);
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The broker is SIGKILLed while a consumer runs and a producer publishes; it comes back on
/// the same data. The producer retries what was not confirmed (as the outbox relay does), the
/// consumer reconnects by itself, and every event is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_survives_a_broker_kill_and_every_event_is_applied_once() {
    const EVENTS: usize = 60;
    let mut server = OwnRabbit::start("kill");
    let rabbit = RabbitMq::connect(&server.url()).await.unwrap();
    // A client that never publishes, as a service that only consumes: its readiness probe
    // must bring it back after the restart.
    let idle = Broker::RabbitMq(Box::new(RabbitMq::connect(&server.url()).await.unwrap()));
    let broker = Broker::RabbitMq(Box::new(rabbit.clone()));
    let check = postgres().await;
    check
        .batch_execute(
            "DROP TABLE IF EXISTS rabbit_kill_reserved; DROP TABLE IF EXISTS rabbit_kill_processed;
             CREATE TABLE rabbit_kill_reserved (sku TEXT PRIMARY KEY, quantity BIGINT NOT NULL);",
        )
        .await
        .unwrap();
    let database = pactum::store::postgres::Database::new(&postgres_config()).unwrap();
    let shutdown = Shutdown::new();
    PgConsumer::<StockReserved, _>::spawn(
        &broker,
        info(SUBJECT, "reservations", Mode::Queue),
        &database,
        "rabbit_kill_processed",
        Reservations {
            table: "rabbit_kill_reserved".into(),
        },
        &shutdown,
    )
    .await
    .unwrap();
    let publisher = {
        let rabbit = rabbit.clone();
        tokio::spawn(async move {
            let mut retries = 0;
            for i in 0..EVENTS {
                let event = StockReserved {
                    sku: format!("sku-{i:02}"),
                    quantity: 1,
                };
                let (h, body) = event_message(&Context::new(), &format!("ev-{i}"), &event).unwrap();
                // Bounded: 60 s per event covers a restart.
                let until = Instant::now() + Duration::from_secs(60);
                while let Err(e) = rabbit.send(SUBJECT, h.clone(), body.clone()).await {
                    assert!(!e.permanent, "{e}");
                    assert!(Instant::now() < until, "not published in time: {e}");
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            retries
        })
    };
    let applied = async || -> i64 {
        check
            .query_one("SELECT count(*) FROM rabbit_kill_reserved", &[])
            .await
            .unwrap()
            .get(0)
    };
    // Kill the broker once the consumer has applied some and the producer is mid-way.
    let until = Instant::now() + WAIT;
    while applied().await < 15 {
        assert!(Instant::now() < until, "the consumer applies nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = tokio::task::spawn_blocking(move || {
        server.restart(Duration::from_secs(1));
        server
    });
    let server = down.await.unwrap();
    let Broker::RabbitMq(idle_client) = &idle else {
        unreachable!()
    };
    assert!(
        !idle_client.is_connected(),
        "its connection died with the broker"
    );
    idle.ready()
        .await
        .expect("ready again once the broker is back");
    assert!(idle_client.is_connected());
    let retries = publisher.await.unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while applied().await < EVENTS as i64 {
        assert!(
            Instant::now() < until,
            "only {} of {EVENTS} applied after the restart",
            applied().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Redeliveries after the reconnect are skipped, not applied again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let row = check
        .query_one(
            "SELECT count(*), sum(quantity)::BIGINT, max(quantity) FROM rabbit_kill_reserved",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (EVENTS as i64, EVENTS as i64, 1),
        "every event applied exactly once"
    );
    assert!(retries > 0, "the kill interrupted publishing");
    assert!(rabbit.is_connected(), "connected again after the restart");
    shutdown.trigger();
    shutdown.drain(Duration::from_secs(10)).await;
    drop(server);
}

/// The URL's `prefetch` is how many messages a worker holds unacknowledged when its
/// subscription does not say.
#[tokio::test]
async fn the_urls_prefetch_bounds_what_a_worker_holds() {
    let subject = "rabbit_test.prefetch";
    delete(&[subject.to_string(), format!("{subject}.dlq")]).await;
    let rabbit = RabbitMq::connect(&format!("{}?prefetch=5", rabbit_url()))
        .await
        .unwrap();
    assert_eq!(rabbit.default_prefetch(), 5);
    let mut worker = rabbit
        .subscribe(info(subject, "workers", Mode::Queue), &Subscribe::default())
        .await
        .unwrap();
    for i in 0..12 {
        rabbit
            .send(
                subject,
                Headers::from([(headers::MSG_ID.to_string(), format!("p{i}"))]),
                i.to_string().into_bytes(),
            )
            .await
            .unwrap();
    }
    // Time for the broker to push what it may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = tokio::time::timeout(WAIT, worker.next_batch(12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.len(), 5, "five unacknowledged at once");
    for d in held {
        d.ack().await;
    }
    let mut rest = 0;
    while rest < 7 {
        let batch = tokio::time::timeout(WAIT, worker.next_batch(12))
            .await
            .unwrap()
            .unwrap();
        assert!(batch.len() <= 5);
        rest += batch.len();
        for d in batch {
            d.ack().await;
        }
    }
    assert_eq!(rest, 7);
    let bad = RabbitMq::connect(&format!("{}?prefetch=none", rabbit_url()))
        .await
        .err()
        .expect("refused");
    assert!(bad.0.contains("prefetch must be a whole number"), "{bad}");
}
