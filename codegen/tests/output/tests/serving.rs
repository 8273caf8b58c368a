//! `pactum::router::serve_with` over real sockets: a client that stalls in its headers is cut
//! off; at the connection limit the listener waits instead of accepting; shutdown stops
//! accepting, lets an in-flight request finish and returns; and a generated REST route reads
//! a request body only as long as the request's deadline allows.

use pactum::router::{serve_with, ServeOptions};
use pactum_test_output::generated::resilience::v1 as r;
use support::Idle;

mod support;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `/slow` answers after 300 ms, `/` at once.
fn app() -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow ok"
            }),
        )
}

async fn start(
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(serve_with(listener, app(), options, shutdown));
    (addr, server)
}

/// Sends `request` on a new connection and reads until the peer closes or `wait` passes.
async fn exchange(addr: &str, request: &str, wait: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(wait, tcp.read_to_end(&mut got)).await;
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_in_its_headers_is_cut_off() {
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    };
    let (addr, _server) = start(options, std::future::pending()).await;
    // Half a request line, then nothing.
    let (_, took) = exchange(
        &addr,
        "GET / HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "closed after the header timeout, not held: {took:?}"
    );
    // A complete request on a fresh connection is served.
    let (answer, _) = exchange(
        &addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_the_listener_waits() {
    let options = ServeOptions {
        max_connections: 2,
        ..ServeOptions::default()
    };
    let (addr, _server) = start(options, std::future::pending()).await;
    // Two idle keep-alive connections take both places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(tcp);
    }
    // A third is not served while they are open …
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let waited =
        tokio::time::timeout(Duration::from_millis(300), third.read_to_end(&mut got)).await;
    assert!(
        waited.is_err(),
        "served past the limit: {}",
        String::from_utf8_lossy(&got)
    );
    // … and is as soon as one closes.
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut got))
        .await
        .expect("served once a place is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_request_in_flight_and_stops_accepting() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = start(ServeOptions::default(), async {
        let _ = stopped.await;
    })
    .await;
    let in_flight = {
        let addr = addr.clone();
        tokio::spawn(async move {
            exchange(
                &addr,
                "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                Duration::from_secs(3),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    let (answer, _) = in_flight.await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow ok"),
        "{answer}"
    );
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("serve_with returns once drained")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_answered_408_at_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(pactum::router::serve(
        listener,
        r::rest::router(Arc::new(Idle::default())),
    ));
    // The caller's budget is 200 ms; the body promises 100 bytes and sends 8.
    let (answer, took) = exchange(
        &addr,
        "POST /v1/busy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\npactum-timeout: 200m\r\nConnection: close\r\n\r\n{\"n\": 1",
        Duration::from_secs(3),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "at the deadline, not later: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_answers_for_each_service_and_follows_the_reporter() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let (reporter, health) = pactum::grpc::health::router(&[r::grpc::SERVICE_NAME]).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = r::grpc::router(Arc::new(Idle::default())).merge(health);
    tokio::spawn(pactum::router::serve(listener, router));
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let status = |name: &str| HealthCheckRequest {
        service: name.to_string(),
    };
    let serving = client
        .check(status(r::grpc::SERVICE_NAME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);
    assert_eq!(
        r::grpc::SERVICE_NAME,
        "resilience.v1.ResilienceService",
        "the name the .proto gives it"
    );
    let whole = client.check(status("")).await.unwrap().into_inner();
    assert_eq!(whole.status, ServingStatus::Serving as i32);
    let unknown = client.check(status("nope.v1.Nope")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // A store the service needs goes down: the reporter says so, and probes see it.
    reporter
        .set_service_status(
            r::grpc::SERVICE_NAME,
            pactum::grpc::health::ServingStatus::NotServing,
        )
        .await;
    let down = client
        .check(status(r::grpc::SERVICE_NAME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.status, ServingStatus::NotServing as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_the_check_that_fails_and_healthz_stays_up() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let database_up = Arc::new(AtomicBool::new(false));
    let up = database_up.clone();
    let readiness = pactum::router::Readiness::new()
        .check("postgres", move || {
            let up = up.load(SeqCst);
            async move {
                if up {
                    Ok(())
                } else {
                    Err("connection refused".into())
                }
            }
        })
        .check("nats", || async { Ok(()) });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = r::rest::router(Arc::new(Idle::default())).merge(readiness.router());
    tokio::spawn(pactum::router::serve(listener, router));
    let get = |path: &str| {
        let addr = addr.clone();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        async move { exchange(&addr, &request, Duration::from_secs(3)).await.0 }
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    let not_ready = get("/readyz").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    assert!(
        not_ready.contains("postgres: connection refused") && !not_ready.contains("nats:"),
        "{not_ready}"
    );
    database_up.store(true, SeqCst);
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
}
