//! The generated gRPC client's own HTTP/2 connection: it reconnects after the server goes
//! away and comes back, reports a server that is down as UNAVAILABLE, refuses URLs it cannot
//! serve with a message that says what to do, and a tonic `Channel` can be used instead.

use generated_example::generated::pricing::v1 as api;
use generated_example::services::pricing::Pricing;
use pactum::ClientError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A pricing gRPC server on its own runtime; dropping the handle shuts the runtime down,
/// which closes every connection it holds (as a crashed process would).
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

fn serve_pricing(addr: SocketAddr) -> (Server, SocketAddr) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            bound_tx.send(listener.local_addr().unwrap()).unwrap();
            let prices = Pricing::new("EUR", &[("BOOK-42", "12.50")]);
            tokio::select! {
                r = pactum::router::serve(listener, api::grpc::router(Arc::new(prices))) => r.unwrap(),
                _ = stopped => {}
            }
        });
        // The runtime drops here, with every connection task.
    });
    let addr = bound.recv().unwrap();
    (
        Server {
            stop: Some(stop),
            thread: Some(thread),
        },
        addr,
    )
}

fn book() -> api::GetPriceRequest {
    api::GetPriceRequest {
        sku: api::Sku("BOOK-42".into()),
        currency: None,
    }
}

#[tokio::test]
async fn reconnects_after_the_server_restarts() {
    let (server, addr) = serve_pricing("127.0.0.1:0".parse().unwrap());
    let client = api::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
    assert_eq!(
        client.get_price(&book()).await.unwrap().amount.to_string(),
        "12.50"
    );

    drop(server);
    match client.get_price(&book()).await {
        Err(ClientError::Rpc { code, message }) => {
            assert_eq!(
                code,
                pactum::grpc::tonic::Code::Unavailable as i32,
                "{message}"
            )
        }
        other => panic!("expected UNAVAILABLE while the server is down, got {other:?}"),
    }

    let (_server, _) = serve_pricing(addr);
    let price = client.get_price(&book()).await.unwrap();
    assert_eq!(price.amount.to_string(), "12.50");
}

#[tokio::test]
async fn ipv6_literal_urls_connect() {
    let (_server, addr) = serve_pricing("[::1]:0".parse().unwrap());
    let client = api::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
    assert!(format!("http://{addr}").starts_with("http://[::1]:"));
    assert_eq!(
        client.get_price(&book()).await.unwrap().amount.to_string(),
        "12.50"
    );
}

#[tokio::test]
async fn urls_it_cannot_serve_are_refused_with_what_to_do() {
    // `https://` is TLS (the system's roots); tests/tls.rs of the generator's output crate
    // calls over it. A scheme it cannot speak is refused, saying which it can.
    assert!(api::grpc::Client::connect_lazy("https://pricing.example:443").is_ok());
    let other = api::grpc::Client::connect_lazy("ftp://pricing.example:21").unwrap_err();
    assert!(
        other.contains("only `http://` (h2c) and `https://`"),
        "{other}"
    );
    let junk = api::grpc::Client::connect_lazy("not a url").unwrap_err();
    assert!(junk.contains("not a URL"), "{junk}");
}

#[tokio::test]
async fn a_tonic_channel_can_carry_the_calls_instead() {
    let (_server, addr) = serve_pricing("127.0.0.1:0".parse().unwrap());
    let channel = pactum::grpc::tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let client = api::grpc::Client::from_client(pactum::grpc::GrpcClient::from_channel(channel));
    assert_eq!(
        client.get_price(&book()).await.unwrap().amount.to_string(),
        "12.50"
    );
    let unknown = api::GetPriceRequest {
        sku: api::Sku("NOPE-1".into()),
        currency: None,
    };
    match client.get_price(&unknown).await {
        Err(ClientError::Declared(api::GetPriceError::UnknownSku(e))) => {
            assert_eq!(e.sku.0, "NOPE-1")
        }
        other => panic!("expected the declared UnknownSku, got {other:?}"),
    }
}

/// A listener that accepts and then says nothing: no HTTP/2 handshake ever completes.
async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

#[tokio::test]
async fn the_client_gives_up_at_its_deadline_even_if_the_server_never_answers() {
    let addr = silent_server().await;
    let client = api::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
    let started = std::time::Instant::now();
    // GetPrice's contract budget is 100 ms.
    let outcome = tokio::time::timeout(Duration::from_secs(5), client.get_price(&book()))
        .await
        .expect("the client ignored its deadline");
    assert!(
        matches!(outcome, Err(ClientError::DeadlineExceeded)),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_streaming_call_gives_up_at_the_callers_deadline_too() {
    use generated_example::generated::inventory::v1 as inventory;
    let addr = silent_server().await;
    let client = inventory::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
    let watch = inventory::WatchStockRequest {
        skus: vec![generated_example::generated::pricing::v1::Sku(
            "BOOK-42".into(),
        )],
    };
    let started = std::time::Instant::now();
    // Bounded here too, so a client that ignores its deadline fails the test, not hangs it.
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        pactum::Context::new()
            .with_timeout(Duration::from_millis(100))
            .scope(client.watch_stock(&watch)),
    )
    .await
    .expect("the client ignored its deadline");
    assert!(
        matches!(outcome, Err(ClientError::DeadlineExceeded)),
        "expected DeadlineExceeded, got {:?}",
        outcome.err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// The `pricing` contract built with `Builder::rest(false).messaging(false)`: its own
/// `Service` trait, served and called over gRPC with nothing else generated.
mod grpc_only {
    use generated_example::grpc_only::pricing::v1 as api;
    use pactum::{Context, HandlerError};
    use std::sync::Arc;

    struct Flat;

    impl api::Service for Flat {
        async fn quote_cart(
            &self,
            _: Context,
            _: api::QuoteCartRequest,
        ) -> Result<api::QuoteCartResponse, HandlerError<api::QuoteCartError>> {
            Err(HandlerError::internal("not priced here"))
        }

        async fn get_price(
            &self,
            _: Context,
            input: api::GetPriceRequest,
        ) -> Result<api::Money, HandlerError<api::GetPriceError>> {
            match input.sku.0.as_str() {
                "BOOK-42" => Ok(api::Money {
                    amount: "9.99".parse().unwrap(),
                    currency: api::Currency("EUR".into()),
                }),
                _ => Err(api::UnknownSku { sku: input.sku }.into()),
            }
        }
    }

    #[tokio::test]
    async fn a_grpc_only_build_serves_and_calls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(pactum::router::serve(
            listener,
            api::grpc::router(Arc::new(Flat)),
        ));
        let client = api::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
        let ok = client
            .get_price(&api::GetPriceRequest {
                sku: api::Sku("BOOK-42".into()),
                currency: None,
            })
            .await
            .unwrap();
        assert_eq!(ok.amount.to_string(), "9.99");
        let unknown = client
            .get_price(&api::GetPriceRequest {
                sku: api::Sku("NOPE-1".into()),
                currency: None,
            })
            .await;
        assert!(
            matches!(
                unknown,
                Err(pactum::ClientError::Declared(
                    api::GetPriceError::UnknownSku(_)
                ))
            ),
            "{unknown:?}"
        );
    }
}

/// A loopback proxy to `target` whose open connections can be frozen: bytes stop flowing both
/// ways while the sockets stay open — a peer that vanished without a FIN (a crashed host, a
/// dropped NAT entry). Connections made after the freeze flow normally.
async fn freezing_proxy(target: SocketAddr) -> (SocketAddr, tokio::sync::watch::Sender<u64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (freeze, frozen) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        let mut generation = 0u64;
        while let Ok((mut inbound, _)) = listener.accept().await {
            generation += 1;
            let mut frozen = frozen.clone();
            let mine = generation;
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
                    _ = frozen.wait_for(|up_to| *up_to >= mine) => {}
                }
                // Frozen: hold both sockets open and silent.
                let _held = (inbound, outbound);
                std::future::pending::<()>().await;
            });
        }
    });
    (addr, freeze)
}

#[tokio::test]
async fn a_connection_to_a_vanished_peer_is_found_dead_and_replaced() {
    let (_server, server_addr) = serve_pricing("127.0.0.1:0".parse().unwrap());
    let (proxy, freeze) = freezing_proxy(server_addr).await;
    // No breaker: it would open after the first failed calls and let a probe through only
    // every 5 s, so when the connection is found dead would be rounded up to the next probe
    // (10.1 s found, next probe at 11.3 s; 16.3 s if a loaded machine finds it just after a
    // probe). This test times the keep-alive alone; the breaker has tests of its own.
    let no_breaker = pactum::ResiliencePolicy {
        breaker: pactum::resilience::BreakerPolicy {
            failures: u32::MAX,
            cooldown: Duration::ZERO,
        },
        ..pactum::ResiliencePolicy::DEFAULT
    };
    let client = api::grpc::Client::from_client(
        pactum::grpc::GrpcClient::connect_lazy(format!("http://{proxy}"))
            .unwrap()
            .with_resilience(no_breaker),
    );
    client.get_price(&book()).await.unwrap();
    // The connection goes silent. HTTP/2 keep-alive PINGs (every 5 s, 5 s to answer) find it
    // dead and close it; the next call opens a new one. Without them every later call would
    // be sent down the silent connection and run out its 100 ms deadline, forever.
    freeze.send_replace(u64::MAX);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = client.get_price(&book()).await;
    assert!(
        matches!(before, Err(ClientError::DeadlineExceeded)),
        "the frozen connection cannot answer: {before:?}"
    );
    // Connections opened from now on flow.
    freeze.send_replace(1);
    let started = std::time::Instant::now();
    let mut answered = false;
    // Bounded: 30 s, a call every 250 ms.
    while started.elapsed() < Duration::from_secs(30) {
        if client.get_price(&book()).await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered, "the dead connection was never replaced");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "found dead in {:?}",
        started.elapsed()
    );
}
