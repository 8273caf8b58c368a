//! The adversarial fixture at run time: recursive messages (boxed links, a newtype of a
//! boxed message, lists and maps of them) and fields named after the generated code's own
//! locals, and a tagged union that contains itself through its variants, survive a round
//! trip through the generated REST and gRPC clients and routers.

use pactum::{Context, HandlerError};
use pactum_test_output::generated::adversarial::v1 as a;
use std::collections::BTreeMap;
use std::sync::Arc;

struct Echo;

/// Endless padded `Tail` streams dropped so far (the stall test waits for its own).
static TAIL_DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts an endless stream's end when the stream is dropped.
struct DropCounter;

impl Drop for DropCounter {
    fn drop(&mut self) {
        TAIL_DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Quiet `Tail` streams dropped so far.
static QUIET_DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct QuietGuard;

impl Drop for QuietGuard {
    fn drop(&mut self) {
        QUIET_DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A stream that never yields and owns `guard` until dropped.
fn futures_pending<T: Send + 'static>(
    guard: QuietGuard,
) -> impl tokio_stream::Stream<Item = T> + Send + 'static {
    let pending = tokio_stream::pending::<T>();
    tokio_stream::StreamExt::map(pending, move |item| {
        let _held = &guard;
        item
    })
}

impl a::Service for Echo {
    /// `n` from `from + 1` to 5 (or without end: one per 10 ms unpadded, as fast as read
    /// padded), each with `pad` bytes; the declared error `Gone` at `fail_at`.
    async fn tail(
        &self,
        _: Context,
        input: a::TailRequest,
    ) -> Result<
        pactum::BoxStream<Result<a::TailResponse, HandlerError<a::TailError>>>,
        HandlerError<a::TailError>,
    > {
        use tokio_stream::StreamExt;
        if input.quiet == Some(true) {
            // Nothing, ever: the stream ends only when the client leaves.
            let guard = QuietGuard;
            let quiet = futures_pending(guard);
            return Ok(Box::pin(quiet));
        }
        let endless = input.endless == Some(true);
        let last = if endless { u64::MAX } else { 5 };
        let pad = "x".repeat(input.pad.unwrap_or(0) as usize);
        let fail_at = input.fail_at;
        // Counted for the stall test's streams (endless and padded) only.
        let guard = (endless && !pad.is_empty()).then(|| DropCounter);
        let items = tokio_stream::iter(input.from.unwrap_or(0) + 1..=last).then(move |n| {
            // Used, so the closure (and with it the stream) owns the guard.
            let _alive = guard.is_some();
            let pad = pad.clone();
            async move {
                // Unpadded endless items trickle (the deadline test); padded ones flood (the
                // stall test).
                if endless && pad.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                if Some(n) == fail_at {
                    return Err(a::Gone { at: n }.into());
                }
                Ok(a::TailResponse { n, pad })
            }
        });
        Ok(Box::pin(items))
    }

    /// Seven leaves, `limit` (default 2) at a time; the handler's cursor is the next index.
    async fn list_nodes(
        &self,
        _: Context,
        input: a::ListNodesRequest,
    ) -> Result<a::ListNodesResponse, HandlerError<a::ListNodesError>> {
        let start: usize = match input.after {
            Some(c) => c.parse().map_err(HandlerError::internal)?,
            None => 0,
        };
        let end = (start + input.limit.unwrap_or(2) as usize).min(7);
        Ok(a::ListNodesResponse {
            nodes: (start..end).map(|i| leaf(&format!("n{i}"))).collect(),
            more: (end < 7).then(|| end.to_string()),
            total: 7,
        })
    }

    async fn list_paths(
        &self,
        _: Context,
        _: a::ListPathsRequest,
    ) -> Result<a::ListPathsResponse, HandlerError<a::ListPathsError>> {
        Ok(a::ListPathsResponse {
            paths: vec!["/".into()],
            next_page_token: Some("7".into()),
        })
    }

    async fn eval(
        &self,
        _: Context,
        input: a::EvalRequest,
    ) -> Result<a::Expr, HandlerError<a::EvalError>> {
        Ok(input.expr)
    }

    async fn walk(
        &self,
        _: Context,
        input: a::Node,
    ) -> Result<a::Node, HandlerError<a::WalkError>> {
        Ok(input)
    }

    async fn echo(
        &self,
        _: Context,
        input: a::Fields,
    ) -> Result<a::Fields, HandlerError<a::EchoError>> {
        Ok(input)
    }
}

fn leaf(name: &str) -> a::Node {
    a::Node {
        name: name.into(),
        next: None,
        children: Vec::new(),
        index: BTreeMap::new(),
        link: None,
        paths: Vec::new(),
        groups: BTreeMap::new(),
        maybe_counts: Vec::new(),
    }
}

/// Three levels deep through every kind of recursion the contract declares.
fn tree() -> a::Node {
    let mut middle = leaf("middle");
    middle.next = Some(Box::new(leaf("after-middle")));
    middle.link = Some(Box::new(a::NodeRef(leaf("linked-from-middle"))));
    let mut root = leaf("root");
    root.next = Some(Box::new(middle.clone()));
    root.link = Some(Box::new(a::NodeRef(middle.clone())));
    root.children = vec![leaf("c1"), middle.clone()];
    root.index = BTreeMap::from([
        ("m".to_string(), middle.clone()),
        ("l".to_string(), leaf("l")),
    ]);
    root.paths = vec![vec!["a".into(), "b".into()], vec![], vec!["c".into()]];
    root.groups = BTreeMap::from([
        ("g".to_string(), vec![leaf("g1"), middle]),
        ("e".to_string(), vec![]),
    ]);
    root.maybe_counts = vec![Some(1), None, Some(3)];
    root
}

fn lit(value: i64) -> a::Expr {
    a::Expr::Lit(a::Lit { value })
}

/// `(1 + (2 + 3))` with every recursive position of `Add` used, and the keyword variant.
fn expr() -> a::Expr {
    let inner = a::Add {
        left: Box::new(lit(2)),
        right: Box::new(lit(3)),
        terms: vec![lit(4), a::Expr::Match(a::Box { label: "m".into() })],
        maybe: None,
    };
    a::Expr::Add(a::Add {
        left: Box::new(lit(1)),
        right: Box::new(a::Expr::Add(inner.clone())),
        terms: vec![],
        maybe: Some(Box::new(a::Expr::Add(inner))),
    })
}

fn fields() -> a::Fields {
    a::Fields {
        r#box: a::Box { label: "b".into() },
        vec: a::Vec {
            items: vec!["x".into()],
        },
        ok: a::Ok { fine: true },
        err: a::Err { reason: "r".into() },
        some: Some(a::Some::B),
        ctx: a::Context { depth: 3 },
        input: "i".into(),
        output: "o".into(),
        path: "p q/r".into(),
        query: "q".into(),
        body: "b".into(),
        state: "s".into(),
        service: "svc".into(),
        client: "c".into(),
        router: a::Router { path: "/x".into() },
        request: "rq".into(),
        response: "rs".into(),
        headers: "h".into(),
        letters: a::S {
            d: a::D::V(a::V { s: "v".into() }),
            e: Some(a::E("e".into())),
            t: a::T::Y,
            b: a::B {
                b: vec![1, 2].into(),
            },
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_and_shadowing_types_round_trip_over_rest_and_grpc() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = Arc::new(Echo);
    let router = a::rest::router(service.clone()).merge(a::grpc::router(service));
    let server = tokio::spawn(pactum::router::serve(listener, router));

    let rest = a::rest::Client::new(url.clone());
    assert_eq!(rest.walk(&tree()).await.unwrap(), tree());
    assert_eq!(rest.echo(&fields()).await.unwrap(), fields());
    let eval = a::EvalRequest { expr: expr() };
    assert_eq!(rest.eval(&eval).await.unwrap(), expr());

    let grpc = a::grpc::Client::connect_lazy(url).unwrap();
    assert_eq!(grpc.walk(&tree()).await.unwrap(), tree());
    assert_eq!(grpc.echo(&fields()).await.unwrap(), fields());
    assert_eq!(grpc.eval(&eval).await.unwrap(), expr());
    server.abort();
}

/// One HTTP/1.1 POST with a raw JSON body: what a client that is not Pactum's might send.
async fn post_raw(addr: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_string(&mut reply),
    )
    .await
    .expect("a reply within 5 s")
    .unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_union_with_a_missing_unknown_or_unset_variant_is_refused_as_input() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = Arc::new(Echo);
    let router = a::rest::router(service.clone()).merge(a::grpc::router(service));
    let server = tokio::spawn(pactum::router::serve(listener, router));

    // Over REST, as a plain client sends it: 422 problems naming what is wrong.
    let (status, problem) = post_raw(&addr, "/v1/eval", r#"{"expr": {"value": 1}}"#).await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("missing `type`: it names the variant, one of `lit`, `add`, `match`"),
        "{detail}"
    );
    let (status, problem) =
        post_raw(&addr, "/v1/eval", r#"{"expr": {"type": "mul", "by": 2}}"#).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["violations"][0]["pointer"], "/expr/type");
    assert_eq!(
        problem["violations"][0]["message"],
        "unknown variant `mul`: `type` must be one of `lit`, `add`, `match`"
    );
    // A known variant's own fields are checked, deep inside the recursion.
    let nested = r#"{"expr": {"type": "add", "left": {"type": "lit", "value": 1}, "right": {"type": "lit"}, "terms": []}}"#;
    let (status, problem) = post_raw(&addr, "/v1/eval", nested).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("variant `add`: variant `lit`: missing field `value`"),
        "{problem}"
    );

    // The typed clients send an unknown variant as it is; the servers refuse it.
    let unknown = a::EvalRequest {
        expr: a::Expr::Unrecognized(pactum::union::UnknownVariant {
            tag: "mul".into(),
            fields: Default::default(),
        }),
    };
    let rest = a::rest::Client::new(format!("http://{addr}"));
    match rest.eval(&unknown).await {
        Err(pactum::ClientError::Rejected(p)) => assert_eq!(p.status, 422, "{p:?}"),
        other => panic!("{other:?}"),
    }
    // Over gRPC an unknown variant travels as an unset `oneof` (protobuf has no name for
    // it): INVALID_ARGUMENT, saying no variant was set.
    let grpc = a::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
    match grpc.eval(&unknown).await {
        Err(pactum::ClientError::Rpc { code: 3, message }) => {
            assert!(message.contains("no variant set"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stream_over_rest_and_grpc_and_foreign_or_altered_cursors_are_refused() {
    use pactum::pagination::Cursors;
    use tokio_stream::StreamExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let key = b"adversarial cursor key, 32 bytes".to_vec();
    let config = || pactum::router::ServerConfig {
        cursors: Cursors::new(key.clone()),
        ..Default::default()
    };
    let service = Arc::new(Echo);
    let router = a::rest::router_with(service.clone(), config())
        .merge(a::grpc::router_with(service, config()));
    let server = tokio::spawn(pactum::router::serve(listener, router));
    let names = |nodes: Vec<Result<a::Node, pactum::ClientError<a::ListNodesError>>>| {
        nodes
            .into_iter()
            .map(|n| n.unwrap().name)
            .collect::<Vec<_>>()
    };
    let all: Vec<String> = (0..7).map(|i| format!("n{i}")).collect();
    let first = a::ListNodesRequest {
        after: None,
        limit: Some(3),
        prefix: None,
    };

    let rest = a::rest::Client::new(format!("http://{addr}"));
    assert_eq!(names(rest.list_nodes_items(&first).collect().await), all);
    let grpc = a::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
    assert_eq!(names(grpc.list_nodes_items(&first).collect().await), all);
    // Starting from a cursor a page returned resumes after that page.
    let page = rest.list_nodes(&first).await.unwrap();
    let resumed = a::ListNodesRequest {
        after: page.more,
        ..first.clone()
    };
    assert_eq!(
        names(grpc.list_nodes_items(&resumed).collect().await),
        &all[3..]
    );

    // A cursor of another operation, sealed with this server's own key, is refused: by REST
    // at the cursor's field, by gRPC as INVALID_ARGUMENT.
    let paths = rest
        .list_paths(&a::ListPathsRequest { page_token: None })
        .await
        .unwrap();
    let foreign = a::ListNodesRequest {
        after: paths.next_page_token,
        ..first.clone()
    };
    match rest.list_nodes(&foreign).await {
        Err(pactum::ClientError::Rejected(p)) => {
            assert_eq!(p.status, 422);
            assert_eq!(p.extensions["violations"][0]["pointer"], "/after");
            let message = p.extensions["violations"][0]["message"].as_str().unwrap();
            assert!(
                message.contains("issued by `adversarial.v1.ListPaths`"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut forged = Cursors::new(b"guessed".to_vec()).seal("adversarial.v1.ListNodes", "0");
    match grpc
        .list_nodes(&a::ListNodesRequest {
            after: Some(forged.clone()),
            ..first.clone()
        })
        .await
    {
        Err(pactum::ClientError::Rpc { code: 3, message }) => {
            assert!(message.contains("altered"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // The stream ends with the refusal rather than starting over.
    forged.push('x');
    let refused: Vec<_> = rest
        .list_nodes_items(&a::ListNodesRequest {
            after: Some(forged),
            ..first
        })
        .collect()
        .await;
    assert!(
        matches!(&refused[..], [Err(pactum::ClientError::Rejected(_))]),
        "{refused:?}"
    );
    server.abort();
}

fn tail(from: Option<u64>) -> a::TailRequest {
    a::TailRequest {
        from,
        fail_at: None,
        endless: None,
        quiet: None,
        pad: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_ends_when_its_client_leaves() {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, server) = serve_echo(Default::default()).await;
    let before = QUIET_DROPPED.load(Ordering::SeqCst);
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /v1/tail?quiet=true HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    // The client leaves while the stream has nothing to say: the handler's stream (and the
    // operation's concurrency slot) is released at once, not kept until an item comes or the
    // operation's 3 s deadline passes.
    drop(stream);
    let mut waited = 0;
    while QUIET_DROPPED.load(Ordering::SeqCst) == before {
        assert!(waited < 15, "the quiet stream outlived its client by 1.5 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    server.abort();
}

async fn serve_echo(
    config: pactum::router::ServerConfig,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = Arc::new(Echo);
    let router = a::rest::router_with(service.clone(), config.clone())
        .merge(a::grpc::router_with(service, config));
    (addr, tokio::spawn(pactum::router::serve(listener, router)))
}

fn numbers(items: Vec<Result<a::TailResponse, pactum::ClientError<a::TailError>>>) -> Vec<u64> {
    items.into_iter().map(|i| i.unwrap().n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_is_server_sent_events_that_end_fail_and_resume() {
    use tokio_stream::StreamExt;
    let (addr, server) = serve_echo(Default::default()).await;
    let rest = a::rest::Client::new(format!("http://{addr}"));
    // To its `end`, then no more.
    let all: Vec<_> = rest.tail(&tail(None)).await.unwrap().collect().await;
    assert_eq!(numbers(all), [1, 2, 3, 4, 5]);
    // A declared error mid-stream is the stream's last item, typed.
    let failing = a::TailRequest {
        fail_at: Some(3),
        ..tail(None)
    };
    let items: Vec<_> = rest.tail(&failing).await.unwrap().collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(matches!(
        &items[2],
        Err(pactum::ClientError::Declared(a::TailError::Gone(a::Gone {
            at: 3
        })))
    ));
    // The same handler over gRPC.
    let grpc = a::grpc::Client::connect_lazy(format!("http://{addr}")).unwrap();
    let over_grpc: Vec<_> = grpc.tail(&tail(Some(3))).await.unwrap().collect().await;
    assert_eq!(numbers(over_grpc), [4, 5]);

    // As any HTTP client sees it: `text/event-stream`, each item an event with its id, and
    // `Last-Event-ID` resuming after an id (winning over the query's `from`).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /v1/tail?from=0 HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\nlast-event-id: 2\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_string(&mut reply),
    )
    .await
    .expect("the stream ends within 5 s")
    .unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    for n in 3..=5 {
        assert!(
            body.contains(&format!("data: {{\"n\":{n},\"pad\":\"\"}}\nid: {n}\n")),
            "{n}: {body}"
        );
    }
    assert!(!body.contains("\"n\":2"), "{body}");
    assert!(body.contains("event: end\ndata: {}\n"), "{body}");

    // An input the contract refuses is a problem before any event.
    let too_big = a::TailRequest {
        pad: Some(2_000_000),
        ..tail(None)
    };
    match rest.tail(&too_big).await {
        Err(pactum::ClientError::Rejected(p)) => assert_eq!(p.status, 422),
        other => panic!("{:?}", other.map(|_| "a stream")),
    }
    server.abort();
}

/// Forwards connections to `upstream`; the first one is cut after `cut` bytes of reply.
async fn cutting_proxy(upstream: String, cut: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        for i in 0..20 {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                return;
            };
            if i > 0 {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                continue;
            }
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async { tokio::io::copy(&mut cr, &mut sw).await };
                let down = async {
                    let mut sent = 0;
                    let mut buf = vec![0u8; 1024];
                    while sent < cut {
                        let n = sr.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        cw.write_all(&buf[..n]).await?;
                        sent += n;
                    }
                    Ok::<_, std::io::Error>(())
                };
                // The reply is cut: both sides close when `down` is done.
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_after_its_last_id_without_gaps_or_repeats() {
    use tokio_stream::StreamExt;
    let (addr, server) = serve_echo(Default::default()).await;
    // Each event carries 2 kB: the cut lands after the second or third.
    let proxy = cutting_proxy(addr, 5_000).await;
    let rest = a::rest::Client::new(format!("http://{proxy}"));
    let padded = a::TailRequest {
        pad: Some(2_000),
        ..tail(None)
    };
    let items: Vec<_> = rest.tail(&padded).await.unwrap().collect().await;
    assert_eq!(numbers(items), [1, 2, 3, 4, 5]);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_told_why() {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = pactum::router::ServerConfig {
        stream_buffer: 4,
        stream_stall: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let (addr, server) = serve_echo(config).await;
    let before = TAIL_DROPPED.load(Ordering::SeqCst);
    // A reader with a small window that reads nothing: 64 kB events fill it, then the
    // server's queue.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let request = format!(
        "GET /v1/tail?endless=true&pad=65536 HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The handler's stream is dropped (what it holds released) while the client still reads
    // nothing.
    let mut waited = 0;
    while TAIL_DROPPED.load(Ordering::SeqCst) == before {
        assert!(
            waited < 200,
            "the stalled stream was not cut off within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // What was queued still arrives, then why the stream ended.
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut reply),
    )
    .await
    .expect("the rest arrives within 20 s")
    .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    let last = reply.rsplit("event: ").next().unwrap();
    assert!(
        last.starts_with("problem\n"),
        "{}",
        &last[..last.len().min(300)]
    );
    assert!(last.contains("read nothing for 300 ms"), "{last}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_at_its_deadline() {
    use tokio_stream::StreamExt;
    let (addr, server) = serve_echo(Default::default()).await;
    let rest = a::rest::Client::new(format!("http://{addr}"));
    let endless = a::TailRequest {
        endless: Some(true),
        ..tail(None)
    };
    let started = std::time::Instant::now();
    let items: Vec<_> = rest.tail(&endless).await.unwrap().collect().await;
    let took = started.elapsed();
    assert!(items.len() > 10, "{}", items.len());
    assert!(matches!(
        items.last(),
        Some(Err(pactum::ClientError::DeadlineExceeded))
    ));
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    assert!(
        took >= std::time::Duration::from_millis(2_900) && took < std::time::Duration::from_secs(6),
        "{took:?}"
    );
    server.abort();
}
