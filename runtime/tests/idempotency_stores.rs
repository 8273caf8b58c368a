//! Every idempotency store behaves the same: memory, SQLite, and the real PostgreSQL
//! (`PACTUM_TEST_POSTGRES`, default `host=127.0.0.1 port=5432 user=postgres dbname=test`).

use pactum::idempotency::{
    Begin, IdempotencyStore, MemoryStore, PostgresStore, SqliteStore, StoredReply,
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

/// The contract every store must meet.
async fn conformance(store: Arc<dyn IdempotencyStore>) {
    let s = "orders.v1.PlaceOrder";
    assert_eq!(
        store.begin(s, "k1", b"fp-a", DAY).await.unwrap(),
        Begin::Started
    );
    assert_eq!(
        store.begin(s, "k1", b"fp-a", DAY).await.unwrap(),
        Begin::InProgress
    );
    assert_eq!(
        store.begin(s, "k1", b"fp-b", DAY).await.unwrap(),
        Begin::Mismatch
    );
    store.complete(s, "k1", &reply(200)).await.unwrap();
    assert_eq!(
        store.begin(s, "k1", b"fp-a", DAY).await.unwrap(),
        Begin::Completed(reply(200))
    );
    assert_eq!(
        store.begin(s, "k1", b"fp-b", DAY).await.unwrap(),
        Begin::Mismatch
    );
    // Keys are scoped per operation.
    assert_eq!(
        store
            .begin("orders.v1.CancelOrder", "k1", b"fp-a", DAY)
            .await
            .unwrap(),
        Begin::Started
    );
    // A released key can run again; a completed one is not released.
    assert_eq!(
        store.begin(s, "k2", b"fp", DAY).await.unwrap(),
        Begin::Started
    );
    store.release(s, "k2").await.unwrap();
    assert_eq!(
        store.begin(s, "k2", b"fp", DAY).await.unwrap(),
        Begin::Started
    );
    store.release(s, "k1").await.unwrap();
    assert_eq!(
        store.begin(s, "k1", b"fp-a", DAY).await.unwrap(),
        Begin::Completed(reply(200))
    );
    // Entries past their retention are forgotten.
    assert_eq!(
        store.begin(s, "old", b"fp", DAY).await.unwrap(),
        Begin::Started
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store
            .begin(s, "old", b"fp", Duration::from_millis(500))
            .await
            .unwrap(),
        Begin::Started
    );
    // Racing claims: exactly one wins.
    let claims = futures_join(store.clone(), s, "race").await;
    assert_eq!(
        claims.iter().filter(|b| **b == Begin::Started).count(),
        1,
        "{claims:?}"
    );
}

async fn futures_join(
    store: Arc<dyn IdempotencyStore>,
    scope: &'static str,
    key: &'static str,
) -> Vec<Begin> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.begin(scope, key, b"fp", DAY).await.unwrap() })
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
            .begin("orders.v1.PlaceOrder", "k1", b"fp-a", DAY)
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
            .begin("orders.v1.PlaceOrder", "k1", b"fp-a", DAY)
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
