//! The cost of an idempotency claim: the same operation, handler and request, served with
//! and without `idempotency: key`, over REST and gRPC, on the memory and PostgreSQL stores,
//! in the same run. Each keyed call carries a fresh key, so every one claims and completes.
//! `cargo bench -p generated-example --bench keyed` (PostgreSQL from `PACTUM_TEST_POSTGRES`,
//! default `host=127.0.0.1 port=5432 user=postgres dbname=test`).
//!
//! The server runs on its own 1-worker tokio runtime; the load generator on another, with 16
//! concurrent callers. Rounds alternate unkeyed/keyed to cancel drift; medians are reported.

use generated_example::generated::pricing::v1 as api;
use pactum::grpc::GrpcClient;
use pactum::rest::server::{axum, Incoming, Reply, ServerConfig};
use pactum::store::idempotency::{IdempotencyStore, MemoryStore, PostgresStore};
use pactum::{HandlerError, Idempotency, OperationInfo, Streaming};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;

const fn op(name: &'static str, idempotency: Idempotency) -> OperationInfo {
    OperationInfo {
        service: "bench",
        major: 1,
        name,
        route: None,
        grpc: true,
        deadline: Some(Duration::from_secs(2)),
        safe: false,
        idempotency,
        retry: None,
        per_try: None,
        streaming: Streaming::None,
        resilience: pactum::ResiliencePolicy::DEFAULT,
        auth: &[],
    }
}

static PLAIN: OperationInfo = op("Plain", Idempotency::None);
static KEYED: OperationInfo = op("Keyed", Idempotency::Key);

async fn price(
    _ctx: pactum::Context,
    input: api::GetPriceRequest,
) -> Result<api::Money, HandlerError<api::GetPriceError>> {
    Ok(api::Money {
        amount: "12.50".parse().expect("literal"),
        currency: input
            .currency
            .unwrap_or_else(|| api::Currency("EUR".into())),
    })
}

fn detail(e: &api::GetPriceError) -> pactum::grpc::prost_types::Any {
    let api::GetPriceError::UnknownSku(u) = e;
    pactum::grpc::prost_types::Any {
        type_url: "type.googleapis.com/bench.UnknownSku".into(),
        value: u.sku.0.clone().into_bytes(),
    }
}

fn router(config: ServerConfig) -> axum::Router {
    let rest = |op: &'static OperationInfo, config: ServerConfig| {
        axum::routing::post(move |request: axum::extract::Request| {
            let config = config.clone();
            async move {
                pactum::rest::server::handle(
                    &config,
                    op,
                    Reply::Json,
                    Vec::new(),
                    request,
                    |_: &Incoming| Ok(Default::default()),
                    price,
                )
                .await
            }
        })
    };
    let grpc = |op: &'static OperationInfo, config: ServerConfig| {
        axum::routing::post(move |request: axum::extract::Request| {
            let config = config.clone();
            async move {
                pactum::grpc::unary(
                    op,
                    &config,
                    request,
                    pactum::grpc::proto::Decoded::finish,
                    std::convert::identity,
                    detail,
                    price,
                )
                .await
            }
        })
    };
    axum::Router::new()
        .route("/plain", rest(&PLAIN, config.clone()))
        .route("/keyed", rest(&KEYED, config.clone()))
        .route("/bench.Bench/Plain", grpc(&PLAIN, config.clone()))
        .route("/bench.Bench/Keyed", grpc(&KEYED, config))
}

fn spawn_server(router: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            pactum::router::serve(listener, router)
                .await
                .expect("serve");
        });
    });
    format!("http://{}", rx.recv().expect("address"))
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Rest,
    Grpc,
}

/// Calls per second of one round.
async fn round(url: &str, transport: Transport, keyed: bool) -> f64 {
    let http = reqwest::Client::new();
    let grpc = GrpcClient::connect_lazy(url).expect("url");
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (http, grpc, url) = (http.clone(), grpc.clone(), url.to_string());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    match transport {
                        Transport::Rest => {
                            let mut request = http
                                .post(format!("{url}/{}", if keyed { "keyed" } else { "plain" }))
                                .header("content-type", "application/json")
                                .body(r#"{"sku":"BOOK-42"}"#);
                            if keyed {
                                request = request.header("idempotency-key", pactum::random_id());
                            }
                            let r = request.send().await.expect("send");
                            assert_eq!(r.status(), 200);
                            r.bytes().await.expect("body");
                        }
                        Transport::Grpc => {
                            let (op, path) = if keyed {
                                (&KEYED, "/bench.Bench/Keyed")
                            } else {
                                (&PLAIN, "/bench.Bench/Plain")
                            };
                            // A keyed call outside a handler gets a fresh random key.
                            grpc.unary::<_, pactum::grpc::proto::Decoded<api::Money>, _, api::GetPriceError>(
                                op,
                                path,
                                api::GetPriceRequest {
                                    sku: api::Sku("BOOK-42".into()),
                                    currency: None,
                                },
                                pactum::grpc::proto::Decoded::finish,
                                |_| None,
                            )
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        }
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let postgres = std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let pg: Arc<dyn IdempotencyStore> = rt.block_on(async {
        Arc::new(
            PostgresStore::connect(&postgres, "pactum_bench_keys")
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL is required: {e}")),
        )
    });
    let stores: [(&str, Arc<dyn IdempotencyStore>); 2] = [
        ("memory", Arc::new(MemoryStore::with_capacity(10_000_000))),
        ("PostgreSQL", pg),
    ];
    println!("{CONCURRENCY} concurrent callers, {ROUNDS} alternating rounds of {ROUND:?}, medians");
    for (name, store) in stores {
        let url = spawn_server(router(ServerConfig {
            idempotency: store,
            ..ServerConfig::default()
        }));
        for transport in [Transport::Rest, Transport::Grpc] {
            let (mut plain, mut keyed) = (Vec::new(), Vec::new());
            rt.block_on(async {
                round(&url, transport, false).await;
                for _ in 0..ROUNDS {
                    plain.push(round(&url, transport, false).await);
                    keyed.push(round(&url, transport, true).await);
                }
            });
            let (p, k) = (median(plain), median(keyed));
            println!(
                "{:<4} {name:<10}: unkeyed {p:>8.0} calls/s, keyed {k:>8.0} calls/s, ratio keyed / unkeyed {:.3}",
                if transport == Transport::Rest { "REST" } else { "gRPC" },
                k / p
            );
        }
    }
}
