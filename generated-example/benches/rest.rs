//! Requests/s and p99 latency of the generated REST server against a hand-written axum server
//! doing the same work, driven by the same load generator in the same run, twice: a public
//! operation (look up a price, answer JSON), and one behind bearer authentication (check a
//! JWT, then look up a payment and answer JSON: the generated server through the contract's
//! `auth:` and `JwtVerifier`, the hand-written one through an axum extractor making the same
//! check with jsonwebtoken). `cargo bench -p generated-example --bench rest`
//!
//! Both servers run on their own 1-worker tokio runtime; the load generator runs on another,
//! with 16 concurrent keep-alive connections. Rounds alternate A/B/A/B to cancel drift.

use generated_example::generated::{payments::v1 as payments, pricing::v1 as api};
use generated_example::services::{payments::Payments, pricing::Pricing};
use generated_example::system;
use pactum::router::axum;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 2;

fn hand_written() -> axum::Router {
    let prices: Arc<HashMap<String, String>> =
        Arc::new([("BOOK-42".to_string(), "12.50".to_string())].into());
    axum::Router::new().route(
        "/v1/prices/{sku}",
        axum::routing::get(
            move |axum::extract::Path(sku): axum::extract::Path<String>| {
                let prices = prices.clone();
                async move {
                    let (status, body) = match prices.get(&sku) {
                        Some(p) => (
                            200,
                            serde_json::to_vec(
                                &serde_json::json!({"amount": p, "currency": "EUR"}),
                            )
                            .unwrap(),
                        ),
                        None => (404, b"{}".to_vec()),
                    };
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body))
                        .unwrap()
                }
            },
        ),
    )
}

fn generated() -> axum::Router {
    api::rest::router(Arc::new(Pricing::new("EUR", &[("BOOK-42", "12.50")])))
}

/// The payment both payment servers answer with.
fn payment_id() -> pactum::types::Uuid {
    pactum::types::Uuid::from_u128(0xfee)
}

/// A payments service holding that payment, and the payment.
fn payments_service() -> (Arc<Payments>, payments::Payment) {
    let service = Arc::new(Payments::default());
    let payment = service.capture(
        payment_id(),
        pactum::types::Uuid::from_u128(1),
        api::Money {
            amount: "28.60".parse().unwrap(),
            currency: api::Currency("EUR".into()),
        },
    );
    (service, payment)
}

/// The generated payments server, verifying staff tokens as the example system does.
fn generated_with_auth() -> axum::Router {
    let config = system::payments_config(&pactum::router::ServerConfig::default());
    payments::rest::router_with(payments_service().0, config)
}

/// What a hand-written service would write: an extractor checking the same JWT (HS256,
/// issuer, audience, expiry) before the handler looks the payment up.
struct Staff;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Staff {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        static KEY: std::sync::LazyLock<jsonwebtoken::DecodingKey> =
            std::sync::LazyLock::new(|| {
                jsonwebtoken::DecodingKey::from_secret(system::DEMO_SIGNING_KEY).unwrap()
            });
        static VALIDATION: std::sync::LazyLock<jsonwebtoken::Validation> =
            std::sync::LazyLock::new(|| {
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
                v.set_issuer(&[system::DEMO_ISSUER]);
                v.set_audience(&["payments"]);
                v
            });
        let refuse = || {
            axum::response::Response::builder()
                .status(401)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(refuse)?;
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &KEY,
            &VALIDATION,
        )
        .map_err(|_| refuse())?;
        Ok(Staff)
    }
}

fn hand_written_with_auth() -> axum::Router {
    let stored: Arc<HashMap<String, payments::Payment>> =
        Arc::new([(payment_id().to_string(), payments_service().1)].into());
    axum::Router::new().route(
        "/v1/payments/{id}",
        axum::routing::get(
            move |_: Staff, axum::extract::Path(id): axum::extract::Path<String>| {
                let stored = stored.clone();
                async move {
                    let (status, body) = match stored.get(&id) {
                        Some(p) => (200, serde_json::to_vec(p).unwrap()),
                        None => (404, b"{}".to_vec()),
                    };
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body))
                        .unwrap()
                }
            },
        ),
    )
}

/// Serves `router` on a 1-worker runtime in its own thread; returns the base URL.
fn spawn_server(router: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

struct Stats {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

async fn load(url: String, path: String, token: Option<String>) -> Stats {
    let client = reqwest::Client::new();
    let target = format!("{url}{path}");
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, target, token) = (client.clone(), target.clone(), token.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let mut request = client.get(&target);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let r = request.send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Stats {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

/// One comparison: `rounds` alternating rounds against each server, then the figures.
fn compare(
    rt: &tokio::runtime::Runtime,
    title: &str,
    (baseline_url, generated_url): (String, String),
    path: &str,
    token: Option<String>,
) {
    // Warm up both (connections, caches).
    rt.block_on(async {
        let c = reqwest::Client::new();
        for url in [&baseline_url, &generated_url] {
            for _ in 0..200 {
                let mut request = c.get(format!("{url}{path}"));
                if let Some(t) = &token {
                    request = request.bearer_auth(t);
                }
                let r = request.send().await.unwrap();
                assert_eq!(r.status(), 200, "{url}{path}");
            }
        }
    });
    let mut base = Vec::new();
    let mut gen = Vec::new();
    for _ in 0..ROUNDS {
        base.push(rt.block_on(load(baseline_url.clone(), path.into(), token.clone())));
        gen.push(rt.block_on(load(generated_url.clone(), path.into(), token.clone())));
    }
    let merge = |v: Vec<Stats>| {
        let mut all = Stats {
            requests: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        };
        for s in v {
            all.requests += s.requests;
            all.elapsed += s.elapsed;
            all.latencies.extend(s.latencies);
        }
        all
    };
    let (mut b, mut g) = (merge(base), merge(gen));
    let (b50, b99, g50, g99) = (
        b.percentile(0.5),
        b.percentile(0.99),
        g.percentile(0.5),
        g.percentile(0.99),
    );
    println!("{title}, {CONCURRENCY} connections, {ROUNDS} x {ROUND:?} per server, alternating");
    println!(
        "  hand-written axum   {:>9.0} req/s   p50 {:>7.1?}   p99 {:>7.1?}",
        b.rps(),
        b50,
        b99
    );
    println!(
        "  pactum generated    {:>9.0} req/s   p50 {:>7.1?}   p99 {:>7.1?}",
        g.rps(),
        g50,
        g99
    );
    println!(
        "  ratio generated/hand-written: throughput {:.3}, p99 latency {:.3}",
        g.rps() / b.rps(),
        g99.as_secs_f64() / b99.as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    compare(
        &rt,
        "GET /v1/prices/{sku}",
        (spawn_server(hand_written()), spawn_server(generated())),
        "/v1/prices/BOOK-42",
        None,
    );
    compare(
        &rt,
        "GET /v1/payments/{id} with a bearer JWT",
        (
            spawn_server(hand_written_with_auth()),
            spawn_server(generated_with_auth()),
        ),
        &format!("/v1/payments/{}", payment_id()),
        Some(system::staff_token("bench", &[])),
    );
}
