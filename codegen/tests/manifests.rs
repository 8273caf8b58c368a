//! `pactum manifests` on the example system: the mesh carries each operation's deadline and,
//! only where the contract lets anyone retry, its retries; the objects the generated clients
//! resolve (`<service>.<namespace>.svc.cluster.local`, ports `http` and `grpc`); nothing is
//! written when a contract has an error. (CI validates the same files against the Kubernetes,
//! Gateway API and Istio schemas.)

use pactum_codegen::emit::manifests::{files, Mesh, Options};
use serde_yaml::Value;
use std::path::Path;

fn docs(mesh: Mesh) -> Vec<(String, Vec<Value>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    let ir = pactum_codegen::check(&[root])
        .ir
        .expect("the example validates");
    let options = Options {
        mesh,
        namespace: None,
        http_port: 8080,
        grpc_port: 50051,
    };
    files(&ir, &options)
        .unwrap()
        .into_iter()
        .map(|f| {
            let docs = serde_yaml::Deserializer::from_str(&f.contents)
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .collect();
            (f.path.display().to_string(), docs)
        })
        .collect()
}

fn named<'a>(all: &'a [(String, Vec<Value>)], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .flat_map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn services_are_what_the_generated_clients_resolve() {
    let all = docs(Mesh::None);
    let names: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    // Both majors of orders in one; notifications, which only consumes events, has nothing
    // to route to.
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("notifications")),
        "{names:?}"
    );
    let orders = named(&all, "Service", "orders");
    assert_eq!(orders["metadata"]["namespace"], "shop");
    let ports: Vec<(&str, u64)> = orders["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["port"].as_u64().unwrap()))
        .collect();
    assert_eq!(ports, vec![("http", 8080), ("grpc", 50051)]);
    // Without a mesh, the clients retry: no ConfigMap taking it from them.
    assert!(!all
        .iter()
        .flat_map(|(_, d)| d)
        .any(|d| d["kind"] == "ConfigMap"));
}

#[test]
fn linkerd_routes_carry_deadlines_and_only_allowed_retries() {
    let all = docs(Mesh::Linkerd);
    let place = named(&all, "HTTPRoute", "orders-v1-place-order-http");
    let a = &place["metadata"]["annotations"];
    assert_eq!(a["timeout.linkerd.io/request"], "2s");
    // The clients' conditions: 429, 502, 503, and a busy key's 409.
    assert_eq!(a["retry.linkerd.io/http"], "409,429,502,503");
    assert_eq!(a["retry.linkerd.io/limit"], "2");
    assert_eq!(a["retry.linkerd.io/timeout"], "400ms");
    let rule = &place["spec"]["rules"][0]["matches"][0];
    assert_eq!(rule["method"], "POST");
    assert_eq!(rule["path"]["value"], "/v1/orders");
    assert_eq!(place["spec"]["parentRefs"][0]["kind"], "Service");
    // Keyed but declared without retries: a deadline, no retry.
    let cancel =
        &named(&all, "HTTPRoute", "orders-v1-cancel-order-http")["metadata"]["annotations"];
    assert_eq!(cancel["timeout.linkerd.io/request"], "1s");
    assert!(cancel.get("retry.linkerd.io/http").is_none());
    // A path parameter matches one segment.
    let get = named(&all, "HTTPRoute", "orders-v1-get-order-http");
    assert_eq!(
        get["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "^/v1/orders/[^/]+$"
    );
    // gRPC by method, with gRPC's retry conditions.
    let stock = named(&all, "GRPCRoute", "inventory-v1-check-stock-grpc");
    assert_eq!(
        stock["spec"]["rules"][0]["matches"][0]["method"]["service"],
        "shop.inventory.v1.InventoryService"
    );
    assert_eq!(
        stock["metadata"]["annotations"]["retry.linkerd.io/grpc"],
        "unavailable,resource-exhausted"
    );
    // Routes for everything no operation names, so health checks keep working.
    let rest = named(&all, "HTTPRoute", "orders-default-http");
    assert_eq!(rest["spec"]["rules"][0]["matches"][0]["path"]["value"], "/");
    assert!(rest["metadata"]["annotations"]
        .as_mapping()
        .unwrap()
        .is_empty());
    named(&all, "GRPCRoute", "orders-default-grpc");
    // The switch that takes retrying from the generated clients.
    let cm = named(&all, "ConfigMap", "orders-pactum-mesh");
    assert_eq!(cm["data"]["PACTUM_MESH_RETRIES"], "1");
}

#[test]
fn istio_never_retries_what_the_contract_does_not_allow() {
    let all = docs(Mesh::Istio);
    let vs = named(&all, "VirtualService", "inventory");
    let routes = vs["spec"]["http"].as_sequence().unwrap();
    let route = |name: &str| {
        routes
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no route {name}"))
    };
    let reserve = route("inventory-v1-reserve-stock-grpc");
    assert_eq!(
        reserve["retries"]["retryOn"],
        "connect-failure,reset,unavailable,resource-exhausted"
    );
    assert_eq!(reserve["retries"]["attempts"], 2);
    assert_eq!(reserve["timeout"], "500ms");
    // Neither safe nor keyed (a client stream): Istio would retry twice by default.
    assert_eq!(
        route("inventory-v1-bulk-restock-grpc")["retries"]["attempts"],
        0
    );
    // Keyed without a retry policy.
    assert_eq!(
        route("inventory-v1-release-stock-grpc")["retries"]["attempts"],
        0
    );
    assert_eq!(
        routes.last().unwrap()["retries"]["attempts"],
        0,
        "the catch-all"
    );
    let place = named(&all, "VirtualService", "orders")["spec"]["http"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "orders-v1-place-order-http")
        .unwrap()
        .clone();
    assert_eq!(place["retries"]["perTryTimeout"], "400ms");
    let dr = named(&all, "DestinationRule", "orders");
    assert_eq!(dr["spec"]["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL");
    assert_eq!(
        dr["spec"]["trafficPolicy"]["outlierDetection"]["consecutiveGatewayErrors"],
        5
    );
    assert_eq!(
        dr["spec"]["trafficPolicy"]["outlierDetection"]["baseEjectionTime"],
        "5s"
    );
    let pa = named(&all, "PeerAuthentication", "orders");
    assert_eq!(pa["spec"]["mtls"]["mode"], "STRICT");
}

#[test]
fn nothing_is_written_when_a_contract_has_an_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifests-refused");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "pactum: 1\nservice: bad\nversion: 1.0.0\nowner: t\nresilience: { retry_budget: { ratio: 2 } }\n",
    )
    .unwrap();
    let out = dir.join("deploy");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_pactum"))
        .args([
            "manifests",
            "bad.yaml",
            "--out",
            "deploy",
            "--mesh",
            "istio",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("E0271") && stderr.contains("nothing written"),
        "{stderr}"
    );
    assert!(!out.exists(), "no manifest written");
    let _ = std::fs::remove_dir_all(&dir);
}

fn one(service: &str, body: &str) -> pactum_codegen::ir::Ir {
    let text = format!("pactum: 1\nservice: {service}\nversion: 1.0.0\nowner: t\n{body}");
    let outcome = pactum_codegen::check_sources(&[(format!("{service}.yaml").into(), text)]);
    outcome.ir.expect("valid")
}

fn options(mesh: Mesh) -> Options {
    Options {
        mesh,
        namespace: None,
        http_port: 8080,
        grpc_port: 50051,
    }
}

#[test]
fn istio_tries_exact_paths_first_and_patterns_by_their_literal_segments() {
    let ir = one(
        "orders",
        "operations:
  Update:
    input: { id: string }
    rest: POST /orders/{id}
    idempotency: key
    retry: { attempts: 3 }
  Bulk:
    input: { n: u32 }
    rest: POST /orders/bulk
  Note:
    input: { id: string }
    rest: POST /orders/{id}/note
",
    );
    let files = files(&ir, &options(Mesh::Istio)).unwrap();
    let istio = files
        .iter()
        .find(|f| f.path.ends_with("orders.istio.yaml"))
        .unwrap();
    let vs: Value = serde_yaml::Deserializer::from_str(&istio.contents)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|d: &Value| d["kind"] == "VirtualService")
        .unwrap();
    let order: Vec<&str> = vs["spec"]["http"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // `/orders/bulk` (not keyed) before `/orders/{id}` (retried), and `{id}/note` (two
    // literal segments) before `{id}` (one).
    assert_eq!(
        order,
        [
            "orders-v1-bulk-http",
            "orders-v1-note-http",
            "orders-v1-update-http",
            "default"
        ]
    );
}

#[test]
fn names_become_kubernetes_names_or_are_refused_with_the_reason() {
    let ir = one(
        "order_history",
        "operations:\n  Get: { output: { ok: bool }, rest: GET /h, safe: true }\n",
    );
    let written = files(&ir, &options(Mesh::None)).unwrap();
    assert!(
        written[0].contents.contains("name: order-history"),
        "{}",
        written[0].contents
    );

    let bad_ns = one(
        "orders",
        "namespace: acme.shop\noperations:\n  Get: { output: { ok: bool }, rest: GET /o, safe: true }\n",
    );
    let e = files(&bad_ns, &options(Mesh::None)).unwrap_err();
    assert!(
        e.contains("not a Kubernetes namespace") && e.contains("--namespace"),
        "{e}"
    );
    let given = Options {
        namespace: Some("shop".into()),
        ..options(Mesh::None)
    };
    assert!(files(&bad_ns, &given).is_ok());
    let invalid = Options {
        namespace: Some("Shop_EU".into()),
        ..options(Mesh::None)
    };
    assert!(files(&bad_ns, &invalid)
        .unwrap_err()
        .contains("--namespace Shop_EU"));

    let both = one(
        "orders",
        "operations:\n  Get: { output: { ok: bool }, rest: GET /o, grpc: true, safe: true }\n",
    );
    let same = Options {
        grpc_port: 8080,
        ..options(Mesh::None)
    };
    assert!(files(&both, &same).unwrap_err().contains("must differ"));
}

#[test]
fn mesh_durations_are_whole_milliseconds_rounded_up() {
    let ir = one(
        "quick",
        "operations:\n  Get:\n    output: { ok: bool }\n    rest: GET /q\n    safe: true\n    deadline: 1500us\n    retry: { attempts: 2, per_try: 700us }\n",
    );
    let files = files(&ir, &options(Mesh::Linkerd)).unwrap();
    let linkerd = &files
        .iter()
        .find(|f| f.path.ends_with("quick.linkerd.yaml"))
        .unwrap()
        .contents;
    assert!(
        linkerd.contains("timeout.linkerd.io/request: 2ms"),
        "{linkerd}"
    );
    assert!(
        linkerd.contains("retry.linkerd.io/timeout: 1ms"),
        "{linkerd}"
    );
}
