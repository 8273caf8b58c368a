//! The example's checkout after the order, under every event-path fault: `OrderPlaced` goes
//! through the outbox, the relay and a broker of the test's own (NATS, then RabbitMQ) to a
//! consumer process (payments, inventory, shipping), `StockReserved` and the `OrderShipped`
//! webhook through its outboxes; each order must be charged, reserved, shipped and notified
//! exactly once, with nothing dead-lettered.

use faults::events::{self, Transport, EVENT_FAULTS};
use faults::harness::Options;

fn options(forget_keys_on_restart: bool) -> Options {
    Options {
        services: env!("CARGO_BIN_EXE_faults").into(),
        postgres: std::env::var("PACTUM_TEST_POSTGRES")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into()),
        forget_keys_on_restart,
        broker: None,
    }
}

/// One test, so the two phases never share the tables at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checkout_step_happens_once_under_every_event_fault() {
    let report = events::run(&options(false), 0, 1, Some(&EVENT_FAULTS))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert_eq!(report.runs, EVENT_FAULTS.len() as u32);
    assert!(
        report.lost == 0 && report.duplicated == 0 && report.unfired == 0,
        "{report}\n{}",
        report.problems.join("\n")
    );

    // The self-check: a consumer that forgets its records on restart charges the order again
    // when the event it committed but never acknowledged comes back. The suite must say so.
    let report = events::run(
        &options(true),
        0,
        1,
        Some(&[events::EventFault::KillConsumerAfterCommit]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.duplicated, 1, "{report}: {:?}", report.problems);

    // The same faults on RabbitMQ: a node of the test's own (one for both phases: it takes
    // seconds to boot), SIGKILLed and restarted for the broker fault, the consumer
    // reconnecting by itself.
    let mut rabbit = events::OwnBroker::start(Transport::RabbitMq)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = events::run_with(&mut rabbit, &options(false), 0, 1, Some(&EVENT_FAULTS))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("RabbitMQ: {report}");
    assert_eq!(report.runs, EVENT_FAULTS.len() as u32);
    assert!(
        report.lost == 0 && report.duplicated == 0 && report.unfired == 0,
        "RabbitMQ: {report}\n{}",
        report.problems.join("\n")
    );
    // And its self-check: on RabbitMQ too the killed consumer's event comes back, and a
    // consumer that forgot its records applies it twice.
    let report = events::run_with(
        &mut rabbit,
        &options(true),
        0,
        1,
        Some(&[events::EventFault::KillConsumerAfterCommit]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.duplicated, 1,
        "RabbitMQ: {report}: {:?}",
        report.problems
    );
}
