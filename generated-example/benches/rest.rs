//! Requests/s and p99 latency of the generated REST server against a hand-written axum server
//! doing the same work (look up a price, answer JSON), driven by the same load generator in
//! the same run. `cargo bench -p generated-example --bench rest`
//!
//! Both servers run on their own 1-worker tokio runtime; the load generator runs on another,
//! with 16 concurrent keep-alive connections. Rounds alternate A/B/A/B to cancel drift.

use generated_example::generated::pricing::v1 as api;
use generated_example::services::pricing::Pricing;
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

async fn load(url: String) -> Stats {
    let client = reqwest::Client::new();
    let target = format!("{url}/v1/prices/BOOK-42");
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = client.get(&target).send().await.unwrap();
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

fn main() {
    let baseline_url = spawn_server(hand_written());
    let generated_url = spawn_server(generated());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Warm up both (connections, caches).
    rt.block_on(async {
        let c = reqwest::Client::new();
        for url in [&baseline_url, &generated_url] {
            for _ in 0..200 {
                c.get(format!("{url}/v1/prices/BOOK-42"))
                    .send()
                    .await
                    .unwrap();
            }
        }
    });
    let mut base = Vec::new();
    let mut gen = Vec::new();
    for _ in 0..ROUNDS {
        base.push(rt.block_on(load(baseline_url.clone())));
        gen.push(rt.block_on(load(generated_url.clone())));
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
    println!("GET /v1/prices/{{sku}}, {CONCURRENCY} connections, {ROUNDS} x {ROUND:?} per server, alternating");
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
