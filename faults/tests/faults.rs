//! The fault-injection suite on a clean database: every keyed operation of the example under
//! every fault, then a kill against a store that forgets its keys on restart — which the
//! suite must catch, or it proves nothing.

use faults::harness::{self, Fault, Op, Options};

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
async fn every_keyed_operation_takes_effect_once_under_every_fault() {
    let pairs = harness::every_pair();
    let report = harness::run(&options(false), pairs.len() as u32, 7, Some(&pairs))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert!(
        report.lost == 0
            && report.duplicated == 0
            && report.inconsistent == 0
            && report.unfired == 0,
        "{report}\n{}",
        report.problems.join("\n")
    );
    assert_eq!(report.runs, pairs.len() as u32);

    // The self-check: a store that forgets its keys on restart (as an in-memory one does)
    // lets the retry after a SIGKILL place a second order. The suite must say so.
    let schedule = [(Op::PlaceOrder, Fault::KillAfterCommit)];
    let report = harness::run(&options(true), 1, 1, Some(&schedule))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.duplicated, 1, "{report}: {:?}", report.problems);
}
