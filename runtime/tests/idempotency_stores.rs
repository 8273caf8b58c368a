//! Every idempotency store behaves the same: memory, SQLite, and the real PostgreSQL
//! (`PACTUM_TEST_POSTGRES`, default `host=127.0.0.1 port=5432 user=postgres dbname=test`).

use pactum::store::idempotency::{
    admit, Admission, Begin, Claim, Held, IdempotencyStore, MemoryStore, PostgresStore, Released,
    SqliteStore, StoredReply, Token,
};
use std::sync::Arc;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

fn reply(status: u16) -> StoredReply {
    StoredReply {
        status,
        content_type: Some("application/json".into()),
        body: br#"{"ok":true}"#.to_vec(),
    }
}

const LEASE: Duration = Duration::from_secs(60);

/// Claims `key` and returns the token; panics if the store says anything else.
async fn claim(store: &dyn IdempotencyStore, scope: &str, key: &str, fp: &[u8]) -> Token {
    match store.begin(scope, key, fp, LEASE, DAY).await.unwrap() {
        Begin::Started(token) => token,
        other => panic!("expected to claim {scope}/{key}, got {other:?}"),
    }
}

fn busy(b: &Begin) -> bool {
    matches!(b, Begin::InProgress { .. })
}

/// The contract every store must meet.
async fn conformance(store: Arc<dyn IdempotencyStore>) {
    let s = "orders.v1.PlaceOrder";
    let t1 = claim(&*store, s, "k1", b"fp-a").await;
    let again = store.begin(s, "k1", b"fp-a", LEASE, DAY).await.unwrap();
    match again {
        Begin::InProgress { retry_after } => assert!(
            retry_after > Duration::from_secs(50) && retry_after <= LEASE,
            "the hint is the rest of the lease: {retry_after:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.begin(s, "k1", b"fp-b", LEASE, DAY).await.unwrap(),
        Begin::Mismatch
    );
    // Writes are fenced by the token.
    let stranger = Token::new();
    assert!(!store
        .complete(s, "k1", &stranger, &reply(200))
        .await
        .unwrap());
    assert_eq!(
        store.release(s, "k1", &stranger).await.unwrap(),
        Released::Lost
    );
    assert!(!store.renew(s, "k1", &stranger, LEASE).await.unwrap());
    assert!(store.renew(s, "k1", &t1, LEASE).await.unwrap());
    assert!(store.complete(s, "k1", &t1, &reply(200)).await.unwrap());
    assert!(
        !store.complete(s, "k1", &t1, &reply(201)).await.unwrap(),
        "a recorded reply is final"
    );
    assert_eq!(
        store.begin(s, "k1", b"fp-a", LEASE, DAY).await.unwrap(),
        Begin::Completed(reply(200))
    );
    assert_eq!(
        store.begin(s, "k1", b"fp-b", LEASE, DAY).await.unwrap(),
        Begin::Mismatch
    );
    // A release after a recorded reply keeps it and hands it back.
    assert_eq!(
        store.release(s, "k1", &t1).await.unwrap(),
        Released::Completed(reply(200))
    );
    // Keys are scoped per operation.
    claim(&*store, "orders.v1.CancelOrder", "k1", b"fp-a").await;
    // A released key can run again.
    let t2 = claim(&*store, s, "k2", b"fp").await;
    assert_eq!(store.release(s, "k2", &t2).await.unwrap(), Released::Freed);
    let t2b = claim(&*store, s, "k2", b"fp").await;
    assert_ne!(t2, t2b);

    // A claim whose lease ended is taken over by the next request, and the old holder can
    // no longer record, renew or release anything.
    let short = Duration::from_millis(300);
    let old = match store.begin(s, "crashed", b"fp", short, DAY).await.unwrap() {
        Begin::Started(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(busy(
        &store.begin(s, "crashed", b"fp", short, DAY).await.unwrap()
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        store
            .begin(s, "crashed", b"other", short, DAY)
            .await
            .unwrap(),
        Begin::Mismatch,
        "an expired claim is only taken over with the same payload"
    );
    let new = match store.begin(s, "crashed", b"fp", LEASE, DAY).await.unwrap() {
        Begin::Started(t) => t,
        other => panic!("expected a takeover, got {other:?}"),
    };
    assert_ne!(old, new);
    assert!(!store
        .complete(s, "crashed", &old, &reply(200))
        .await
        .unwrap());
    assert!(!store.renew(s, "crashed", &old, LEASE).await.unwrap());
    assert_eq!(
        store.release(s, "crashed", &old).await.unwrap(),
        Released::Lost
    );
    assert!(store
        .complete(s, "crashed", &new, &reply(201))
        .await
        .unwrap());
    assert_eq!(
        store.begin(s, "crashed", b"fp", LEASE, DAY).await.unwrap(),
        Begin::Completed(reply(201))
    );
    // A renewed lease is not taken over.
    let held = match store.begin(s, "renewed", b"fp", short, DAY).await.unwrap() {
        Begin::Started(t) => t,
        other => panic!("{other:?}"),
    };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(store.renew(s, "renewed", &held, short).await.unwrap());
        assert!(busy(
            &store.begin(s, "renewed", b"fp", short, DAY).await.unwrap()
        ));
    }

    // Entries past their retention are forgotten.
    claim(&*store, s, "old", b"fp").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        store
            .begin(s, "old", b"fp", LEASE, Duration::from_millis(500))
            .await
            .unwrap(),
        Begin::Started(_)
    ));
    // Racing claims: exactly one wins; so do racing takeovers of an expired claim.
    let claims = race(store.clone(), s, "race", LEASE).await;
    assert_eq!(
        claims
            .iter()
            .filter(|b| matches!(b, Begin::Started(_)))
            .count(),
        1,
        "{claims:?}"
    );
    match store
        .begin(s, "race-expired", b"fp", short, DAY)
        .await
        .unwrap()
    {
        Begin::Started(_) => {}
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let takeovers = race(store.clone(), s, "race-expired", LEASE).await;
    assert_eq!(
        takeovers
            .iter()
            .filter(|b| matches!(b, Begin::Started(_)))
            .count(),
        1,
        "{takeovers:?}"
    );
    // Hostile keys are stored as data, never interpreted.
    for key in ["'; DROP TABLE x; --", "\\", "\"", &"k".repeat(255)] {
        claim(&*store, s, key, b"fp").await;
    }
}

async fn race(
    store: Arc<dyn IdempotencyStore>,
    scope: &'static str,
    key: &'static str,
    lease: Duration,
) -> Vec<Begin> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.begin(scope, key, b"fp", lease, DAY).await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    conformance(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("idem-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    conformance(Arc::new(SqliteStore::open(path.to_str().unwrap()).unwrap())).await;
    // Keys survive reopening the database.
    let reopened = SqliteStore::open(path.to_str().unwrap()).unwrap();
    assert_eq!(
        reopened
            .begin("orders.v1.PlaceOrder", "k1", b"fp-a", LEASE, DAY)
            .await
            .unwrap(),
        Begin::Completed(reply(200))
    );
}

/// The PostgreSQL connection string tests use.
pub fn postgres_config() -> String {
    std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store() {
    let config = postgres_config();
    let table = format!("pactum_idem_test_{}", std::process::id());
    let store = PostgresStore::connect(&config, &table).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for this test and is unreachable: {e}\nstart it (README: Services) or set PACTUM_TEST_POSTGRES")
    });
    conformance(Arc::new(store)).await;
    // A second connection (another replica) sees the same keys.
    let replica = PostgresStore::connect(&config, &table).await.unwrap();
    assert_eq!(
        replica
            .begin("orders.v1.PlaceOrder", "k1", b"fp-a", LEASE, DAY)
            .await
            .unwrap(),
        Begin::Completed(reply(200))
    );
    let (client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

async fn pg_client(config: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(config, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn text_reply(s: &String) -> StoredReply {
    StoredReply {
        status: 200,
        content_type: Some("text/plain".into()),
        body: s.as_bytes().to_vec(),
    }
}

async fn admitted(store: &Arc<dyn IdempotencyStore>, key: &str, lease: Duration) -> Claim {
    let held = Held {
        lease,
        max_hold: Duration::from_secs(600),
    };
    match admit(store, "svc.v1.Op".into(), key.into(), b"fp", held, DAY).await {
        Admission::Run(claim) => {
            claim.set_encoder::<String>(text_reply);
            claim
        }
        _ => panic!("expected to claim {key}"),
    }
}

/// Runs a handler under `claim` that writes an effect for `key` and records the reply
/// `order <key>` in its transaction, commits it (or drops it), then fails with `status`.
async fn in_transaction(
    claim: Claim,
    config: &str,
    effects: &str,
    key: &'static str,
    commit: bool,
    status: u16,
) -> StoredReply {
    let (handler_claim, cfg, fx) = (claim.clone(), config.to_string(), effects.to_string());
    claim
        .run(
            async move {
                let mut db = pg_client(&cfg).await;
                let tx = db.transaction().await.unwrap();
                tx.execute(&format!("INSERT INTO {fx} VALUES ('{key}')"), &[])
                    .await
                    .unwrap();
                handler_claim
                    .record_in_postgres(&tx, &format!("order {key}"))
                    .await
                    .unwrap();
                if commit {
                    tx.commit().await.unwrap();
                }
                StoredReply {
                    status,
                    content_type: None,
                    body: Vec::new(),
                }
            },
            |r| r.status < 500,
            |_| unreachable!(),
        )
        .await
}

/// The effect and the reply commit together: a failure after the commit replays the reply,
/// a holder whose lease was taken over cannot commit its effect, and a lost connection is
/// recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_effect_and_reply_commit_together() {
    let config = postgres_config();
    let table = format!("pactum_idem_tx_{}", std::process::id());
    let app = format!("pactum_idem_tx_{}", std::process::id());
    let store: Arc<dyn IdempotencyStore> = Arc::new(
        PostgresStore::connect(&format!("{config} application_name={app}"), &table)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required and unreachable: {e}")),
    );
    let admin = pg_client(&config).await;
    let effects = format!("{table}_effects");
    admin
        .batch_execute(&format!("CREATE TABLE {effects} (key TEXT NOT NULL)"))
        .await
        .unwrap();
    let count = |key: &'static str| {
        let (admin, effects) = (&admin, effects.clone());
        async move {
            admin
                .query_one(
                    &format!("SELECT COUNT(*) FROM {effects} WHERE key = $1"),
                    &[&key],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };

    // A handler commits its effect and reply, then misses its deadline: the answer, and
    // every retry's, is the recorded reply; the key is not released.
    let claim = admitted(&store, "committed", LEASE).await;
    let answer = in_transaction(claim, &config, &effects, "committed", true, 504).await;
    assert_eq!(answer, text_reply(&"order committed".into()));
    assert_eq!(
        store
            .begin("svc.v1.Op", "committed", b"fp", LEASE, DAY)
            .await
            .unwrap(),
        Begin::Completed(text_reply(&"order committed".into()))
    );
    assert_eq!(count("committed").await, 1);

    // A handler that rolls back (or dies before commit) leaves nothing: the key is freed.
    let claim = admitted(&store, "rolled-back", LEASE).await;
    let answer = in_transaction(claim, &config, &effects, "rolled-back", false, 500).await;
    assert_eq!(answer.status, 500);
    assert_eq!(count("rolled-back").await, 0);
    assert!(matches!(
        store
            .begin("svc.v1.Op", "rolled-back", b"fp", LEASE, DAY)
            .await
            .unwrap(),
        Begin::Started(_)
    ));

    // A holder that outlived its lease is fenced: its transaction cannot record, so it rolls
    // back, and only the new holder's effect exists.
    let short = Duration::from_millis(300);
    let stale = admitted(&store, "fenced", short).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let fresh = admitted(&store, "fenced", LEASE).await;
    let mut db = pg_client(&config).await;
    let tx = db.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {effects} VALUES ('fenced')"), &[])
        .await
        .unwrap();
    let err = stale
        .record_in_postgres(&tx, &"stale".to_string())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("taken over"), "{err}");
    drop(tx);
    let tx = db.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {effects} VALUES ('fenced')"), &[])
        .await
        .unwrap();
    fresh
        .record_in_postgres(&tx, &"fresh".to_string())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count("fenced").await, 1);
    // The wrong output type is refused, not stored.
    let typed = admitted(&store, "typed", LEASE).await;
    let tx = db.transaction().await.unwrap();
    assert!(typed.record_in_postgres(&tx, &42u32).await.is_err());
    drop(tx);

    // The store's connection is terminated (a failover): requests fail with a store error
    // (503) until it reconnects, and then work again.
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..20 {
        if store
            .begin("svc.v1.Op", "after-failover", b"fp", LEASE, DAY)
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store never reconnected");

    admin
        .batch_execute(&format!("DROP TABLE {table}; DROP TABLE {effects}"))
        .await
        .unwrap();
}

/// SQLite: the reply recorded in the handler's transaction on the same file commits with
/// it; a rolled-back one leaves the key free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_effect_and_reply_commit_together() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("idem-tx-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let path = path.to_str().unwrap().to_string();
    let store: Arc<dyn IdempotencyStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let claim = admitted(&store, "k", LEASE).await;
    let mut db = rusqlite::Connection::open(&path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch("CREATE TABLE effects (key TEXT)").unwrap();
    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO effects VALUES ('k')", []).unwrap();
    claim.record_in_sqlite(&tx, &"done".to_string()).unwrap();
    tx.commit().unwrap();
    assert_eq!(
        store
            .release("svc.v1.Op", "k", &Token::new())
            .await
            .unwrap(),
        Released::Lost
    );
    assert_eq!(
        store
            .begin("svc.v1.Op", "k", b"fp", LEASE, DAY)
            .await
            .unwrap(),
        Begin::Completed(text_reply(&"done".into()))
    );
    let claim = admitted(&store, "k2", LEASE).await;
    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO effects VALUES ('k2')", []).unwrap();
    claim.record_in_sqlite(&tx, &"done".to_string()).unwrap();
    drop(tx);
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM effects WHERE key = 'k2'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 0);
    let memory: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
    let on_memory = admitted(&memory, "k", LEASE).await;
    let tx = db.transaction().unwrap();
    assert!(
        on_memory.record_in_sqlite(&tx, &"x".to_string()).is_err(),
        "a memory store cannot share a SQLite transaction"
    );
    on_memory.record(&"x".to_string()).await.unwrap();
}

/// The memory store is bounded: when full it forgets its oldest finished key, never a claim
/// that is still running; when every key is running it refuses new claims (503).
#[tokio::test]
async fn memory_store_is_bounded() {
    let store = MemoryStore::with_capacity(3);
    let mut tokens = Vec::new();
    for k in ["a", "b", "c"] {
        match store.begin("s", k, b"", LEASE, DAY).await.unwrap() {
            Begin::Started(t) => tokens.push(t),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        store.begin("s", "d", b"", LEASE, DAY).await.is_err(),
        "all running"
    );
    assert_eq!(store.len(), 3);
    assert!(store
        .complete("s", "b", &tokens[1], &reply(200))
        .await
        .unwrap());
    assert!(matches!(
        store.begin("s", "d", b"", LEASE, DAY).await.unwrap(),
        Begin::Started(_)
    ));
    assert_eq!(store.len(), 3);
    // "b" (finished) made room; "a" and "c" (running) are still held.
    assert!(matches!(
        store.begin("s", "a", b"", LEASE, DAY).await.unwrap(),
        Begin::InProgress { .. }
    ));
    assert!(matches!(
        store.begin("s", "c", b"", LEASE, DAY).await.unwrap(),
        Begin::InProgress { .. }
    ));
    // Pruning respects each key's own retention: a short-lived key in one scope does not
    // make the store forget a day-long key of another.
    let store = MemoryStore::new();
    store.begin("rest", "long", b"", LEASE, DAY).await.unwrap();
    store
        .begin("hook", "short", b"", LEASE, Duration::from_millis(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        store
            .begin("hook", "other", b"", LEASE, Duration::from_millis(10))
            .await
            .unwrap(),
        Begin::Started(_)
    ));
    assert!(matches!(
        store
            .begin("hook", "short", b"", LEASE, Duration::from_millis(10))
            .await
            .unwrap(),
        Begin::Started(_)
    ));
    assert!(matches!(
        store.begin("rest", "long", b"", LEASE, DAY).await.unwrap(),
        Begin::InProgress { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_prunes_keys_past_their_retention_by_itself() {
    let config = postgres_config();
    let table = format!("pactum_idem_prune_{}", std::process::id());
    let client = pg_client(&config).await;
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
    let store = PostgresStore::connect(&config, &table)
        .await
        .unwrap()
        .with_pruning(Duration::ZERO);
    let count = |key: &'static str| {
        let (client, table) = (&client, &table);
        async move {
            client
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE key = $1"),
                    &[&key],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let short = Duration::from_millis(1);
    // Finished, and running (lease held): both past a 1 ms retention soon.
    let done = match store.begin("s", "done", b"fp", LEASE, short).await.unwrap() {
        Begin::Started(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(store
        .complete("s", "done", &done, &reply(200))
        .await
        .unwrap());
    assert!(matches!(
        store
            .begin("s", "running", b"fp", LEASE, short)
            .await
            .unwrap(),
        Begin::Started(_)
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The next request finds a prune due and starts it beside itself (bounded: 5 s).
    let _ = store
        .begin("s", "trigger", b"fp", LEASE, short)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while count("done").await != 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "never pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        count("running").await,
        1,
        "a claim whose lease runs is kept"
    );
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_prunes_keys_past_their_retention_by_itself() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("idem-prune-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open(path.to_str().unwrap())
        .unwrap()
        .with_pruning(Duration::ZERO);
    let short = Duration::from_millis(1);
    let done = match store.begin("s", "done", b"fp", LEASE, short).await.unwrap() {
        Begin::Started(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(store
        .complete("s", "done", &done, &reply(200))
        .await
        .unwrap());
    assert!(matches!(
        store
            .begin("s", "running", b"fp", LEASE, short)
            .await
            .unwrap(),
        Begin::Started(_)
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Another key's request finds a prune due: the finished key goes, the leased one stays.
    let _ = store
        .begin("s", "trigger", b"fp", LEASE, short)
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let keys: Vec<String> = conn
        .prepare("SELECT key FROM pactum_idempotency ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys, ["running", "trigger"]);
}
