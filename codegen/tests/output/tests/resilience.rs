//! The contract's `resilience:` at run time, generated client against loopback servers: a
//! dependency failing every request sees at most the retry budget's extra load; the breaker
//! opens, fails fast, half-opens and closes; a saturated generated server sheds (503 with
//! `Retry-After`, `RESOURCE_EXHAUSTED`) instead of queueing past the deadline; an operation
//! neither safe nor keyed is never retried.

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use pactum::{ClientError, Context, HandlerError};
use pactum_test_output::generated::resilience::v1 as r;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A dependency answering 503 to every request, or `{"n":7}` once healthy, counting each.
#[derive(Clone, Default)]
struct Dependency {
    hits: Arc<AtomicU32>,
    healthy: Arc<AtomicBool>,
}

impl Dependency {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let dep = self.clone();
        let app = axum::Router::new().fallback(move || {
            let dep = dep.clone();
            async move {
                dep.hits.fetch_add(1, SeqCst);
                if dep.healthy.load(SeqCst) {
                    ([(header::CONTENT_TYPE, "application/json")], r#"{"n":7}"#).into_response()
                } else {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                }
            }
        });
        tokio::spawn(pactum::router::serve(listener, app));
        url
    }

    fn hits(&self) -> u32 {
        self.hits.load(SeqCst)
    }
}

fn unavailable<E: std::fmt::Debug>(r: Result<impl std::fmt::Debug, ClientError<E>>) -> bool {
    matches!(r, Err(ClientError::Unexpected { status: 503, .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dependency_sees_at_most_the_budgeted_extra_load() {
    let dep = Dependency::default();
    let client = r::rest::Client::new(dep.start().await);
    const CALLS: u32 = 200;
    let started = Instant::now();
    for n in 0..CALLS {
        let result = client.flaky(&r::FlakyRequest { n }).await;
        assert!(unavailable(result), "call {n}");
    }
    let hits = dep.hits();
    // Three attempts each would be 600. The contract's budget: retries ≤ 0.2 × requests of the
    // last 10 s, plus 1 per second of it (one more window's worth per 10 s the test ran).
    let windows = started.elapsed().as_secs() / 10 + 1;
    let bound = CALLS + CALLS / 5 + 10 * windows as u32;
    assert!(
        hits <= bound,
        "{hits} requests for {CALLS} calls (bound {bound})"
    );
    assert!(
        hits > CALLS,
        "retries go out while the budget has some: {hits}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_fails_fast_half_opens_and_closes() {
    let dep = Dependency::default();
    let client = r::rest::Client::new(dep.start().await);
    // `Fragile`: three failures in a row open it, for 300 ms.
    for _ in 0..3 {
        assert!(unavailable(client.fragile().await));
    }
    assert_eq!(dep.hits(), 3);

    let t = Instant::now();
    for _ in 0..20 {
        let r = client.fragile().await;
        assert!(matches!(r, Err(ClientError::CircuitOpen { .. })), "{r:?}");
    }
    // Clones share the target's breaker.
    let clone = client.clone();
    assert!(matches!(
        clone.fragile().await,
        Err(ClientError::CircuitOpen { .. })
    ));
    assert!(t.elapsed() < Duration::from_millis(100), "fails fast");
    assert_eq!(dep.hits(), 3, "nothing reaches the target while open");

    // After the cooldown one probe goes out; it fails, and the breaker opens again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(unavailable(client.fragile().await));
    assert_eq!(dep.hits(), 4);
    assert!(matches!(
        client.fragile().await,
        Err(ClientError::CircuitOpen { .. })
    ));

    // The target recovers: the next probe succeeds and closes the breaker.
    dep.healthy.store(true, SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.fragile().await.unwrap().n, 7);
    for _ in 0..5 {
        assert_eq!(client.fragile().await.unwrap().n, 7);
    }
    assert_eq!(dep.hits(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_neither_safe_nor_keyed_is_never_retried() {
    let dep = Dependency::default();
    let client = r::rest::Client::new(dep.start().await);
    for n in 0..20 {
        assert!(unavailable(client.r#unsafe(&r::UnsafeRequest { n }).await));
    }
    assert_eq!(dep.hits(), 20, "one attempt per call, budget or not");
}

/// `Busy` holds each request 400 ms and records how many ran at once.
#[derive(Default)]
struct Server {
    running: AtomicU32,
    most: AtomicU32,
    patient_calls: AtomicU32,
    patient_effects: AtomicU32,
}

impl r::Service for Server {
    async fn who_am_i(
        &self,
        _: Context,
    ) -> Result<r::WhoAmIResponse, pactum::HandlerError<r::WhoAmIError>> {
        Err(pactum::HandlerError::internal("not used"))
    }
    async fn flaky(
        &self,
        _: Context,
        _: r::FlakyRequest,
    ) -> Result<r::FlakyResponse, HandlerError<r::FlakyError>> {
        Err(HandlerError::internal("not used"))
    }
    async fn fragile(
        &self,
        _: Context,
    ) -> Result<r::FragileResponse, HandlerError<r::FragileError>> {
        Err(HandlerError::internal("not used"))
    }
    async fn busy(
        &self,
        _: Context,
        input: r::BusyRequest,
    ) -> Result<r::BusyResponse, HandlerError<r::BusyError>> {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.running.fetch_sub(1, SeqCst);
        Ok(r::BusyResponse { n: input.n })
    }
    async fn feed(
        &self,
        _: Context,
        input: r::FeedRequest,
    ) -> Result<
        pactum::BoxStream<Result<r::FeedResponse, HandlerError<r::FeedError>>>,
        HandlerError<r::FeedError>,
    > {
        use tokio_stream::StreamExt;
        // Three replies, 100 ms apart.
        let replies = tokio_stream::iter(0..3)
            .throttle(Duration::from_millis(100))
            .map(move |i| Ok(r::FeedResponse { n: input.n + i }));
        Ok(Box::pin(replies))
    }
    async fn patient(
        &self,
        _: Context,
        input: r::PatientRequest,
    ) -> Result<r::PatientResponse, HandlerError<r::PatientError>> {
        // The first request hangs past the whole 2 s deadline (a stuck replica); the effect is
        // counted only once the work is done.
        if self.patient_calls.fetch_add(1, SeqCst) == 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        self.patient_effects.fetch_add(1, SeqCst);
        Ok(r::PatientResponse { n: input.n })
    }
    async fn claimed(
        &self,
        _: Context,
        input: r::ClaimedRequest,
    ) -> Result<r::ClaimedResponse, HandlerError<r::ClaimedError>> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(r::ClaimedResponse { n: input.n })
    }
    async fn r#unsafe(
        &self,
        _: Context,
        _: r::UnsafeRequest,
    ) -> Result<r::UnsafeResponse, HandlerError<r::UnsafeError>> {
        Err(HandlerError::internal("not used"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_handler_keeps_its_place_after_the_caller_hangs_up() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(pactum::router::serve(
        listener,
        r::rest::router(Arc::new(Server::default())),
    ));
    let post = |key: &str, wait: Duration| {
        pactum::rest::client::reqwest::Client::new()
            .post(format!("{url}/v1/claimed"))
            .header("content-type", "application/json")
            .header("idempotency-key", format!("\"{key}\""))
            .timeout(wait)
            .body(r#"{"n":1}"#)
            .send()
    };
    // The caller gives up after 100 ms; the keyed handler runs on for its 400 ms, in its own
    // task, and keeps the operation's one place until then.
    assert!(post("a", Duration::from_millis(100)).await.is_err());
    let other = post("b", Duration::from_secs(2)).await.unwrap();
    assert_eq!(other.status().as_u16(), 503, "the place is still taken");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = post("c", Duration::from_secs(2)).await.unwrap();
    assert_eq!(later.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_server_sheds_instead_of_queueing_past_the_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = Arc::new(Server::default());
    let router = r::rest::router(service.clone()).merge(r::grpc::router(service.clone()));
    tokio::spawn(pactum::router::serve(listener, router));

    // REST: ten at once against a limit of two.
    let rest = r::rest::Client::new(url.clone());
    let calls: Vec<_> = (0..10)
        .map(|n| {
            let rest = rest.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                (rest.busy(&r::BusyRequest { n }).await, t.elapsed())
            })
        })
        .collect();
    let (mut served, mut shed) = (0, 0);
    for call in calls {
        let (result, took) = call.await.unwrap();
        match result {
            Ok(_) => served += 1,
            Err(ClientError::Rejected(p)) if p.status == 503 => {
                shed += 1;
                assert!(
                    took < Duration::from_millis(300),
                    "shed at once, not queued: {took:?}"
                );
            }
            Err(ClientError::Unexpected { status: 503, .. }) => {
                shed += 1;
                assert!(
                    took < Duration::from_millis(300),
                    "shed at once, not queued: {took:?}"
                );
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((served, shed), (2, 8));
    assert_eq!(service.most.load(SeqCst), 2);

    // What a shed request is told: 503, problem+json, Retry-After.
    let http = pactum::rest::client::reqwest::Client::new();
    let hold: Vec<_> = (0..2)
        .map(|n| {
            let rest = rest.clone();
            tokio::spawn(async move { rest.busy(&r::BusyRequest { n }).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = http
        .post(format!("{url}/v1/busy"))
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");
    assert_eq!(answer.headers()["content-type"], pactum::PROBLEM_JSON);
    for h in hold {
        h.await.unwrap().unwrap();
    }

    // gRPC: the same limit, answered RESOURCE_EXHAUSTED.
    let grpc = r::grpc::Client::connect_lazy(url).unwrap();
    let calls: Vec<_> = (0..10)
        .map(|n| {
            let grpc = grpc.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                (grpc.busy(&r::BusyRequest { n }).await, t.elapsed())
            })
        })
        .collect();
    let (mut served, mut shed) = (0, 0);
    for call in calls {
        let (result, took) = call.await.unwrap();
        match result {
            Ok(_) => served += 1,
            Err(ClientError::Rpc { code: 8, .. }) => {
                shed += 1;
                assert!(took < Duration::from_millis(300), "shed at once: {took:?}");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((served, shed), (2, 8));
    assert_eq!(service.most.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_set_in_code_override_the_contract() {
    use pactum::resilience::{BreakerPolicy, Limits};
    // A client whose breaker opens after one failure, where the contract says three.
    let dep = Dependency::default();
    let http = pactum::rest::client::HttpClient::new(dep.start().await).with_resilience(
        pactum::ResiliencePolicy {
            breaker: BreakerPolicy {
                failures: 1,
                cooldown: Duration::from_secs(10),
            },
            ..pactum::ResiliencePolicy::DEFAULT
        },
    );
    let client = r::rest::Client::from_http(http);
    assert!(unavailable(client.fragile().await));
    assert!(matches!(
        client.fragile().await,
        Err(ClientError::CircuitOpen { .. })
    ));
    assert_eq!(dep.hits(), 1);

    // A server that runs one `Busy` at a time, where the contract says two.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = pactum::router::ServerConfig {
        limits: Limits::default().with_limit(&r::operations::BUSY, Some(1)),
        ..Default::default()
    };
    let router = r::rest::router_with(Arc::new(Server::default()), config);
    tokio::spawn(pactum::router::serve(listener, router));
    let rest = r::rest::Client::new(url);
    let calls: Vec<_> = (0..4)
        .map(|n| {
            let rest = rest.clone();
            tokio::spawn(async move { rest.busy(&r::BusyRequest { n }).await.is_ok() })
        })
        .collect();
    let mut served = 0;
    for call in calls {
        served += u32::from(call.await.unwrap());
    }
    assert_eq!(served, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_stream_holds_its_place_until_it_ends() {
    use tokio_stream::StreamExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(pactum::router::serve(
        listener,
        r::grpc::router(Arc::new(Server::default())),
    ));
    let grpc = r::grpc::Client::connect_lazy(url).unwrap();
    let mut first = grpc.feed(&r::FeedRequest { n: 10 }).await.unwrap();
    assert_eq!(first.next().await.unwrap().unwrap().n, 10);
    // The first stream is still open: a second one is shed at once.
    // (Whether the status comes with the headers or as the stream's first item is tonic's.)
    let second = match grpc.feed(&r::FeedRequest { n: 20 }).await {
        Ok(mut s) => s.next().await.and_then(Result::err),
        Err(e) => Some(e),
    };
    assert!(
        matches!(second, Some(ClientError::Rpc { code: 8, .. })),
        "{second:?}"
    );
    // Read to its end, the first gives its place back.
    let rest: Vec<u32> = first.map(|r| r.unwrap().n).collect().await;
    assert_eq!(rest, vec![11, 12]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third: Vec<u32> = grpc
        .feed(&r::FeedRequest { n: 30 })
        .await
        .unwrap()
        .map(|r| r.unwrap().n)
        .collect()
        .await;
    assert_eq!(third, vec![30, 31, 32]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_cut_by_per_try_leaves_time_for_the_retry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = Arc::new(Server::default());
    tokio::spawn(pactum::router::serve(
        listener,
        r::rest::router(service.clone()),
    ));
    let client = r::rest::Client::new(url);
    let started = Instant::now();
    let reply = client.patient(&r::PatientRequest { n: 5 }).await;
    // The hanging first attempt is cut at 150 ms (the server is handed that budget, so it
    // stops too); the retry, under the same key, answers well inside the 2 s deadline.
    // Without per_try the first attempt would hold the whole deadline and the call would fail.
    assert_eq!(reply.unwrap().n, 5);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        service.patient_calls.load(SeqCst),
        2,
        "one cut attempt, one retry"
    );
    assert_eq!(service.patient_effects.load(SeqCst), 1);
}
