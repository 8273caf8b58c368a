//! gRPC benchmarks, each against tonic-prost-build in the same run:
//!
//! (a) codegen time for a synthetic 500-operation service: pactum (YAML → all Rust, gRPC
//!     included) vs tonic-prost-build on the `.proto` pactum emits for it;
//! (b) unary requests/s and p99 of the generated gRPC server + client vs hand-written code on
//!     tonic-prost-build's output for the same `.proto` (the pricing service), same handler;
//! (c) lines of generated Rust and compile time of each for the 500-operation service.
//!
//! `PROTOC=$PWD/scripts/protoc cargo run --release --manifest-path benches/grpc/Cargo.toml`
//! (add `-- a`, `-- b` or `-- c` to run one).

#[path = "../../../codegen/benches/support/synth.rs"]
mod synth;

use generated_example::generated::pricing::v1 as api;
use pactum::{Context, HandlerError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[allow(dead_code, clippy::all)]
mod baseline {
    tonic::include_proto!("shop.pricing.v1");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn work_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/work");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the synthetic service's contract, Rust and `.proto`; returns the IR.
fn synth_outputs() -> (pactum_codegen::ir::Ir, String) {
    let text = synth::contract(500, 1000);
    let outcome = pactum_codegen::check_sources(&[(PathBuf::from("synth.yaml"), text.clone())]);
    (outcome.ir.expect("synthetic contract is valid"), text)
}

fn bench_codegen() {
    let (ir, text) = synth_outputs();
    let dir = work_dir().join("codegen");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("proto")).unwrap();
    let proto = &pactum_codegen::emit::proto::files(&ir).unwrap()[0];
    std::fs::write(dir.join("proto").join(&proto.path), &proto.contents).unwrap();
    let rounds = 7;
    let path = dir.join("proto").join(&proto.path);
    let pactum =
        |layout: pactum_codegen::emit::Layout, parts: pactum_codegen::emit::Parts| -> Duration {
            median(
                (0..rounds)
                    .map(|_| {
                        let t = Instant::now();
                        let ir = pactum_codegen::check_sources(&[(
                            PathBuf::from("synth.yaml"),
                            text.clone(),
                        )])
                        .ir
                        .unwrap();
                        std::hint::black_box(
                            pactum_codegen::emit::single_file_with(
                                &ir,
                                &ir.contracts[0].id,
                                layout,
                                parts,
                            )
                            .unwrap(),
                        );
                        t.elapsed()
                    })
                    .collect(),
            )
        };
    let tonic = |format: bool| -> Duration {
        median(
            (0..rounds)
                .map(|i| {
                    let out = dir.join(format!("out{i}-{format}"));
                    std::fs::create_dir_all(&out).unwrap();
                    let mut config = tonic_prost_build::Config::new();
                    config.format(format);
                    let t = Instant::now();
                    tonic_prost_build::configure()
                        .out_dir(&out)
                        .compile_with_config(config, &[&path], &[&dir.join("proto")])
                        .unwrap();
                    t.elapsed()
                })
                .collect(),
        )
    };
    let protoc = median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                let status = Command::new(std::env::var("PROTOC").unwrap())
                    .arg(format!("-I{}", dir.join("proto").display()))
                    .arg(format!(
                        "--descriptor_set_out={}",
                        dir.join("d.bin").display()
                    ))
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(status.success());
                t.elapsed()
            })
            .collect(),
    );
    use pactum_codegen::emit::{Layout, Parts};
    // What the issue compares: YAML -> the Rust a gRPC service needs (domain types with their
    // validation, the `Service` trait, prost messages, router and client), as
    // `Builder::rest(false).messaging(false)` generates it. Everything, for reference.
    let grpc_only = Parts {
        rest: false,
        grpc: true,
        messaging: false,
    };
    let lines = |parts: Parts| {
        pactum_codegen::emit::single_file_with(&ir, &ir.contracts[0].id, Layout::Pretty, parts)
            .unwrap()
            .contents
            .lines()
            .count()
    };
    let (gp, gc) = (
        pactum(Layout::Pretty, grpc_only),
        pactum(Layout::Compact, grpc_only),
    );
    let (ap, ac) = (
        pactum(Layout::Pretty, Parts::ALL),
        pactum(Layout::Compact, Parts::ALL),
    );
    let (tp, tc) = (tonic(true), tonic(false));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "(a) codegen, 500 operations / 1,000 types, median of {rounds}; protoc alone {:.1} ms; {threads} core(s) available",
        ms(protoc)
    );
    println!(
        "  tonic-prost-build .proto -> gRPC Rust:  pretty {:>7.1} ms   unformatted {:>7.1} ms",
        ms(tp),
        ms(tc)
    );
    println!("  pactum YAML -> gRPC Rust ({:>6} lines): pretty {:>7.1} ms   unformatted {:>7.1} ms   ratio {:.2} / {:.2}", lines(grpc_only), ms(gp), ms(gc), ms(gp) / ms(tp), ms(gc) / ms(tc));
    println!("  pactum YAML -> all Rust  ({:>6} lines): pretty {:>7.1} ms   unformatted {:>7.1} ms   ratio {:.2} / {:.2}", lines(Parts::ALL), ms(ap), ms(ac), ms(ap) / ms(tp), ms(ac) / ms(tc));
}

/// A crate around generated code, for compile timing.
fn crate_with(dir: &Path, deps: &str, files: &[(String, String)], lib: &str) {
    let _ = std::fs::remove_dir_all(dir.join("src"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"{}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n\n[dependencies]\n{deps}\n", dir.file_name().unwrap().to_string_lossy()),
    )
    .unwrap();
    for (path, contents) in files {
        let p = dir.join("src").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
}

fn cargo_build_time(dir: &Path) -> Duration {
    let build = || {
        let out = Command::new("cargo")
            .args(["build", "--quiet"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", work_dir().join("ct-target"))
            .env("CARGO_INCREMENTAL", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    build(); // dependencies
    let lib = dir.join("src/lib.rs");
    let times: Vec<Duration> = (0..3)
        .map(|_| {
            let text = std::fs::read_to_string(&lib).unwrap();
            std::fs::write(&lib, text).unwrap();
            let t = Instant::now();
            build();
            t.elapsed()
        })
        .collect();
    median(times)
}

fn bench_size() {
    let (ir, _) = synth_outputs();
    let rust = pactum_codegen::emit::module_tree(&ir).unwrap();
    let lines: usize = rust.iter().map(|f| f.contents.lines().count()).sum();
    let dir = work_dir().join("size");
    std::fs::create_dir_all(dir.join("proto")).unwrap();
    let proto = &pactum_codegen::emit::proto::files(&ir).unwrap()[0];
    std::fs::write(dir.join("proto").join(&proto.path), &proto.contents).unwrap();
    let out = dir.join("tonic-out");
    std::fs::create_dir_all(&out).unwrap();
    tonic_prost_build::configure()
        .out_dir(&out)
        .compile_protos(&[dir.join("proto").join(&proto.path)], &[dir.join("proto")])
        .unwrap();
    let tonic_file = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let tonic_text = std::fs::read_to_string(&tonic_file).unwrap();
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../runtime")
        .canonicalize()
        .unwrap();
    let pactum_crate = dir.join("pactum_synth");
    crate_with(
        &pactum_crate,
        &format!("pactum = {{ path = {:?} }}", runtime.display().to_string()),
        &rust
            .iter()
            .map(|f| {
                (
                    format!("generated/{}", f.path.display()),
                    f.contents.clone(),
                )
            })
            .collect::<Vec<_>>(),
        "#[allow(missing_docs, deprecated)]\npub mod generated;\n",
    );
    // The same contract as a gRPC-only build (`Builder::rest(false).messaging(false)`).
    let grpc_only = pactum_codegen::emit::single_file_with(
        &ir,
        &ir.contracts[0].id,
        pactum_codegen::emit::Layout::Pretty,
        pactum_codegen::emit::Parts {
            rest: false,
            grpc: true,
            messaging: false,
        },
    )
    .unwrap();
    let grpc_lines = grpc_only.contents.lines().count();
    let grpc_crate = dir.join("pactum_grpc_synth");
    crate_with(
        &grpc_crate,
        &format!("pactum = {{ path = {:?} }}", runtime.display().to_string()),
        &[("synth.rs".into(), grpc_only.contents)],
        "#[allow(missing_docs, deprecated)]\npub mod synth { include!(\"synth.rs\"); }\n",
    );
    let tonic_crate = dir.join("tonic_synth");
    crate_with(
        &tonic_crate,
        "tonic = { version = \"0.14\", default-features = false, features = [\"codegen\", \"channel\", \"server\", \"router\"] }\ntonic-prost = \"0.14\"\nprost = \"0.14\"\nprost-types = \"0.14\"",
        &[("synth.rs".into(), tonic_text.clone())],
        "pub mod synth { include!(\"synth.rs\"); }\n",
    );
    let (pt, gt, tt) = (
        cargo_build_time(&pactum_crate),
        cargo_build_time(&grpc_crate),
        cargo_build_time(&tonic_crate),
    );
    println!("(c) size and compile time of the generated code (debug build of the crate alone, median of 3)");
    println!("  pactum (types, validation, REST server+client, gRPC server+client): {lines:>7} lines, {:>6.1} s", pt.as_secs_f64());
    println!("  pactum gRPC only (types, validation, gRPC server+client):           {grpc_lines:>7} lines, {:>6.1} s", gt.as_secs_f64());
    println!("  tonic-prost-build (messages, gRPC server+client):                  {:>7} lines, {:>6.1} s", tonic_text.lines().count(), tt.as_secs_f64());
    println!(
        "  ratio pactum / tonic-prost-build: lines {:.2}, compile time {:.2}; gRPC only: lines {:.2}, compile time {:.2}",
        lines as f64 / tonic_text.lines().count() as f64,
        pt.as_secs_f64() / tt.as_secs_f64(),
        grpc_lines as f64 / tonic_text.lines().count() as f64,
        gt.as_secs_f64() / tt.as_secs_f64()
    );
}

/// The same handler for both servers: look the price up, answer Money.
struct Prices(HashMap<String, String>);

impl api::Service for Prices {
    async fn quote_cart(
        &self,
        _: Context,
        _: api::QuoteCartRequest,
    ) -> Result<api::QuoteCartResponse, HandlerError<api::QuoteCartError>> {
        Err(HandlerError::internal("not benchmarked"))
    }
    async fn get_price(
        &self,
        _: Context,
        input: api::GetPriceRequest,
    ) -> Result<api::Money, HandlerError<api::GetPriceError>> {
        let amount = self.0.get(&input.sku.0).ok_or_else(|| api::UnknownSku {
            sku: input.sku.clone(),
        })?;
        Ok(api::Money {
            amount: amount.parse().unwrap(),
            currency: api::Currency("EUR".into()),
        })
    }
}

#[tonic::async_trait]
impl baseline::pricing_service_server::PricingService for Arc<Prices> {
    async fn get_price(
        &self,
        request: tonic::Request<baseline::GetPriceRequest>,
    ) -> Result<tonic::Response<baseline::Money>, tonic::Status> {
        let sku = request.into_inner().sku;
        let amount = self
            .0
            .get(&sku)
            .ok_or_else(|| tonic::Status::not_found(sku.clone()))?;
        let amount: pactum::types::Decimal = amount.parse().unwrap();
        Ok(tonic::Response::new(baseline::Money {
            amount: amount.to_string(),
            currency: "EUR".into(),
        }))
    }
}

fn spawn_runtime<F: std::future::Future<Output = ()> + Send + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(f());
    });
}

const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;

async fn load<F, Fut>(call: F) -> (f64, Duration, Duration)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    call().await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rps, all[all.len() / 2], all[all.len() * 99 / 100])
}

fn bench_rps() {
    let prices = Arc::new(Prices(
        [("BOOK-42".to_string(), "12.50".to_string())].into(),
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    let p = prices.clone();
    spawn_runtime(move || async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        pactum::router::serve(listener, api::grpc::router(p))
            .await
            .unwrap();
    });
    let generated_addr = rx.recv().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = prices.clone();
    spawn_runtime(move || async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        tonic::transport::Server::builder()
            .add_service(baseline::pricing_service_server::PricingServiceServer::new(
                p,
            ))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            )
            .await
            .unwrap();
    });
    let baseline_addr = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let gen_client = api::grpc::Client::connect_lazy(format!("http://{generated_addr}")).unwrap();
        let base_client = baseline::pricing_service_client::PricingServiceClient::connect(format!("http://{baseline_addr}")).await.unwrap();
        let gen = move || {
            let c = gen_client.clone();
            async move {
                let m = c.get_price(&api::GetPriceRequest { sku: api::Sku("BOOK-42".into()), currency: None }).await.unwrap();
                assert_eq!(m.currency.0, "EUR");
            }
        };
        let base = move || {
            let mut c = base_client.clone();
            async move {
                let m = c.get_price(baseline::GetPriceRequest { sku: "BOOK-42".into(), currency: None }).await.unwrap();
                assert_eq!(m.into_inner().currency, "EUR");
            }
        };
        if std::env::var_os("PACTUM_BENCH_CROSS").is_some() {
            cross(generated_addr, baseline_addr).await;
            return;
        }
        let _ = load(gen.clone()).await; // warm-up round for both
        let _ = load(base.clone()).await;
        // Alternating rounds, so drift in the machine's speed hits both alike; the median
        // round of each, because one disturbed round should not decide the ratio.
        let mut g = Vec::new();
        let mut b = Vec::new();
        for _ in 0..ROUNDS {
            b.push(load(base.clone()).await);
            g.push(load(gen.clone()).await);
        }
        let med = |v: &[(f64, Duration, Duration)]| {
            let mut rps: Vec<f64> = v.iter().map(|x| x.0).collect();
            rps.sort_by(f64::total_cmp);
            let mut p99: Vec<Duration> = v.iter().map(|x| x.2).collect();
            p99.sort();
            (rps[rps.len() / 2], p99[p99.len() / 2])
        };
        let ((grps, gp99), (brps, bp99)) = (med(&g), med(&b));
        let per_round = |v: &[(f64, Duration, Duration)]| v.iter().map(|x| format!("{:.0}", x.0)).collect::<Vec<_>>().join(" ");
        println!("(b) unary GetPrice, 16 concurrent calls, {ROUNDS} x {ROUND:?} rounds each, alternating; medians");
        println!("  tonic-prost-build hand-written server + client  {brps:>8.0} req/s   p99 {bp99:>7.1?}   rounds: {}", per_round(&b));
        println!("  pactum generated server + client                {grps:>8.0} req/s   p99 {gp99:>7.1?}   rounds: {}", per_round(&g));
        println!("  ratio generated / hand-written: throughput {:.3}, p99 {:.3}", grps / brps, gp99.as_secs_f64() / bp99.as_secs_f64());
    });
}

/// Which side costs what: each client against each server, one round each after a warm-up.
async fn cross(generated_addr: std::net::SocketAddr, baseline_addr: std::net::SocketAddr) {
    let gen_client = |addr: std::net::SocketAddr| {
        let c = api::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
        move || {
            let c = c.clone();
            async move {
                let m = c
                    .get_price(&api::GetPriceRequest {
                        sku: api::Sku("BOOK-42".into()),
                        currency: None,
                    })
                    .await
                    .unwrap();
                assert_eq!(m.currency.0, "EUR");
            }
        }
    };
    let base_client =
        |c: baseline::pricing_service_client::PricingServiceClient<tonic::transport::Channel>| {
            move || {
                let mut c = c.clone();
                async move {
                    let m = c
                        .get_price(baseline::GetPriceRequest {
                            sku: "BOOK-42".into(),
                            currency: None,
                        })
                        .await
                        .unwrap();
                    assert_eq!(m.into_inner().currency, "EUR");
                }
            }
        };
    let bc = |addr: std::net::SocketAddr| async move {
        baseline::pricing_service_client::PricingServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap()
    };
    let (gg, gb) = (gen_client(generated_addr), gen_client(baseline_addr));
    let (bg, bb) = (
        base_client(bc(generated_addr).await),
        base_client(bc(baseline_addr).await),
    );
    // `PACTUM_BENCH_CROSS=gb` (client, server: g pactum, b tonic) runs one pair only, for a profiler.
    match std::env::var("PACTUM_BENCH_CROSS").as_deref() {
        Ok("gb") => {
            return println!(
                "pactum client -> tonic server {:.0} req/s",
                load(gb.clone()).await.0
            )
        }
        Ok("bb") => {
            return println!(
                "tonic client -> tonic server {:.0} req/s",
                load(bb.clone()).await.0
            )
        }
        Ok("bg") => {
            return println!(
                "tonic client -> pactum server {:.0} req/s",
                load(bg.clone()).await.0
            )
        }
        Ok("gg") => {
            return println!(
                "pactum client -> pactum server {:.0} req/s",
                load(gg.clone()).await.0
            )
        }
        _ => {}
    }
    for _ in 0..2 {
        let _ = load(gg.clone()).await;
        let _ = load(bb.clone()).await;
    }
    for round in 0..2 {
        println!("round {round}");
        println!(
            "  tonic client -> tonic server     {:>8.0} req/s",
            load(bb.clone()).await.0
        );
        println!(
            "  pactum client -> tonic server    {:>8.0} req/s",
            load(gb.clone()).await.0
        );
        println!(
            "  tonic client -> pactum server    {:>8.0} req/s",
            load(bg.clone()).await.0
        );
        println!(
            "  pactum client -> pactum server   {:>8.0} req/s",
            load(gg.clone()).await.0
        );
    }
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let run = |k: &str| which.is_empty() || which.iter().any(|w| w == k);
    if std::env::var_os("PROTOC").is_none() {
        eprintln!("set PROTOC (e.g. PROTOC=$PWD/scripts/protoc, after python3 -m pip install grpcio-tools)");
        std::process::exit(2);
    }
    if run("a") {
        bench_codegen();
    }
    if run("b") {
        bench_rps();
    }
    if run("c") {
        bench_size();
    }
}
