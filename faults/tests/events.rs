//! The example's checkout after the order, under every event-path fault: `OrderPlaced` goes
//! through the outbox, the relay and a NATS server of the test's own to a consumer process
//! (payments, inventory, shipping), `StockReserved` and the `OrderShipped` webhook through its
//! outboxes; each order must be charged, reserved, shipped and notified exactly once, with
//! nothing dead-lettered.

use faults::events::{self, EVENT_FAULTS};
use faults::harness::Options;

fn options(forget_keys_on_restart: bool) -> Options {
    Options {
        services: env!("CARGO_BIN_EXE_faults").into(),
        postgres: std::env::var("PACTUM_TEST_POSTGRES")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into()),
        forget_keys_on_restart,
        nats: None,
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
}
