//! The adversarial fixture at run time: recursive messages (boxed links, a newtype of a
//! boxed message, lists and maps of them) and fields named after the generated code's own
//! locals survive a round trip through the generated REST and gRPC clients and routers.

use pactum::{Context, HandlerError};
use pactum_test_output::generated::adversarial::v1 as a;
use std::collections::BTreeMap;
use std::sync::Arc;

struct Echo;

impl a::Service for Echo {
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

    let grpc = a::grpc::Client::connect_lazy(url).unwrap();
    assert_eq!(grpc.walk(&tree()).await.unwrap(), tree());
    assert_eq!(grpc.echo(&fields()).await.unwrap(), fields());
    server.abort();
}
