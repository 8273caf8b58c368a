//! The REST client tells a declared error from any other problem with the same status before
//! it decides to retry: a declared error is the operation's answer, sent once, even when its
//! status (503, 409) would make an undeclared problem worth another attempt. The call's
//! machinery is compiled once for every operation and sees a declared error only as its
//! problem, so these tests pin that it still asks the operation's error type.

use pactum::rest::client::{ClientError, HttpClient, Reply};
use pactum::{OperationError, OperationInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Keyed, so the client may retry it: three attempts, a millisecond or two apart.
static OP: OperationInfo = OperationInfo::new("things", 1, "Store")
    .route("POST", "/v1/things")
    .deadline(Duration::from_secs(5))
    .keyed()
    .retry(3, Duration::from_millis(1), Duration::from_millis(2));

/// What `Store` declares: `Busy` (503) and `Taken` (409).
#[derive(Debug, PartialEq)]
enum StoreError {
    Busy,
    Taken,
}

impl OperationError for StoreError {
    fn status(&self) -> pactum::ErrorStatus {
        match self {
            StoreError::Busy => pactum::ErrorStatus::Unavailable,
            StoreError::Taken => pactum::ErrorStatus::Conflict,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            StoreError::Busy => "Busy",
            StoreError::Taken => "Taken",
        }
    }
    fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    fn from_problem(code: &str, _: serde_json::Value) -> Option<Self> {
        match code {
            "Busy" => Some(StoreError::Busy),
            "Taken" => Some(StoreError::Taken),
            _ => None,
        }
    }
}

/// A server answering every `POST /v1/things` with a problem of `status` and `code`;
/// returns its base URL and the count of requests it received.
async fn answering(status: u16, code: &'static str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/v1/things",
        axum::routing::post(move || {
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({
                    "type": format!("urn:test:{code}"),
                    "title": code,
                    "status": status,
                    "code": code,
                });
                (
                    http::StatusCode::from_u16(status).unwrap(),
                    [(http::header::CONTENT_TYPE, pactum::PROBLEM_JSON)],
                    body.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = pactum::router::serve(listener, app).await;
    });
    (format!("http://{addr}"), hits)
}

async fn store(base: String) -> Result<serde_json::Value, ClientError<StoreError>> {
    HttpClient::new(base)
        .call(
            &OP,
            Reply::Json,
            "/v1/things".to_string(),
            Some(serde_json::json!({})),
        )
        .await
}

#[tokio::test]
async fn a_declared_503_is_the_answer_and_is_sent_once() {
    let (base, hits) = answering(503, "Busy").await;
    let result = store(base).await;
    assert!(
        matches!(result, Err(ClientError::Declared(StoreError::Busy))),
        "{result:?}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a declared error is not retried"
    );
}

#[tokio::test]
async fn an_undeclared_503_problem_is_retried_up_to_the_contract_attempts() {
    let (base, hits) = answering(503, "Overloaded").await;
    let result = store(base).await;
    assert!(
        matches!(result, Err(ClientError::Unexpected { status: 503, .. })),
        "{result:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_declared_409_is_the_answer_and_an_undeclared_one_is_retried() {
    let (base, hits) = answering(409, "Taken").await;
    let result = store(base).await;
    assert!(
        matches!(result, Err(ClientError::Declared(StoreError::Taken))),
        "{result:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (base, hits) = answering(409, "InFlight").await;
    let result = store(base).await;
    assert!(
        matches!(&result, Err(ClientError::Rejected(p)) if p.status == 409),
        "{result:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
