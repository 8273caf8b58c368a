//! Kubernetes and service-mesh manifests from the contracts (`pactum manifests`), so the
//! mesh's timeouts and retries are the contract's, not a second copy kept by hand.
//!
//! Per service, `<service>.yaml`: a `Service` whose name and ports are what the generated
//! clients' `for_service(namespace, port)` resolves (`<service>.<namespace>.svc.cluster.local`,
//! ports named `http` and `grpc`). With a mesh, `<service>.<mesh>.yaml` beside it:
//!
//! - **Linkerd**: a Gateway API `HTTPRoute` per REST operation and `GRPCRoute` per gRPC
//!   operation, attached to the `Service` (GAMMA), carrying `timeout.linkerd.io/request`
//!   (the deadline) and, only for safe or keyed operations with retries, `retry.linkerd.io/*`
//!   (the clients' retry conditions — 429, 502, 503, and 409 for keyed operations — and
//!   `per_try` as the per-try timeout), and catch-all routes so unlisted paths keep working;
//! - **Istio**: a `VirtualService` with one route per operation (timeout; retries with
//!   `perTryTimeout` only on safe or keyed operations, and `attempts: 0` on every other route,
//!   since Istio otherwise retries by default), a `DestinationRule` (outlier detection from the
//!   breaker policy, `ISTIO_MUTUAL`) and a `PeerAuthentication` in `STRICT` mode.
//!
//! **One retry layer.** Where the mesh retries, the generated clients must not: with a mesh,
//! `<service>.yaml` also holds a `ConfigMap` `<service>-pactum-mesh` with
//! `PACTUM_MESH_RETRIES: "1"`, which the service's pods load (`envFrom`); the runtime then
//! makes one attempt per call and leaves retrying to the mesh (budget and breaker stay on).
//! Core objects and the mesh's are in separate files so each is validated against its own
//! schemas.

use super::GeneratedFile;
use crate::ir::{Contract, Ir, Operation};
use crate::naming::{convert, Case};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which mesh's routing objects to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mesh {
    /// Only the `Service`s.
    None,
    /// Gateway API routes with Linkerd's annotations.
    Linkerd,
    /// Istio's `VirtualService`, `DestinationRule` and `PeerAuthentication`.
    Istio,
}

/// How the services are deployed.
#[derive(Clone, Debug)]
pub struct Options {
    /// The mesh, if any.
    pub mesh: Mesh,
    /// The namespace; default: each contract's `namespace`, else `default`.
    pub namespace: Option<String>,
    /// The port REST is served on.
    pub http_port: u16,
    /// The port gRPC is served on.
    pub grpc_port: u16,
}

/// The environment variable, and its value, that turns the generated clients' own retries
/// off where the mesh retries (read by `pactum::retry::mesh_retries`).
pub const MESH_RETRIES_ENV: (&str, &str) = (pactum_rules::resilience::MESH_RETRIES_ENV, "1");

/// One file per service, and one more per service with a mesh. Refused, with the reason, when
/// a name cannot be a Kubernetes name or two objects would have one name.
pub fn files(ir: &Ir, o: &Options) -> Result<Vec<GeneratedFile>, String> {
    if let Some(ns) = &o.namespace {
        if !pactum_rules::kube::is_namespace(ns) {
            return Err(format!(
                "`--namespace {ns}` is not a Kubernetes namespace: 1-63 lower-case letters, digits and `-`"
            ));
        }
    }
    // Every major of a service is served by the same deployment, under /v1, /v2, …
    let mut services: BTreeMap<&str, Vec<&Contract>> = BTreeMap::new();
    for c in &ir.contracts {
        services.entry(&c.id.service).or_default().push(c);
    }
    let mut files = Vec::new();
    let mut names: BTreeMap<(String, String), String> = BTreeMap::new();
    for (service, contracts) in services {
        let name = pactum_rules::kube::service_name(service);
        if !pactum_rules::kube::is_dns_label(&name) {
            return Err(format!(
                "service `{service}` cannot be a Kubernetes Service name (`{name}`: 1-63 lower-case letters, digits and `-`, starting with a letter)"
            ));
        }
        let ns = namespace(service, &contracts, o)?;
        let s = ServiceManifests {
            name: name.clone(),
            ns: &ns,
            host: format!("{name}.{ns}.svc.cluster.local"),
            contracts: &contracts,
            o,
        };
        // A service with neither REST nor gRPC (only events) has nothing to route to.
        if !s.has_rest() && !s.has_grpc() {
            continue;
        }
        if s.has_rest() && s.has_grpc() && o.http_port == o.grpc_port {
            return Err(format!(
                "`{service}` serves REST and gRPC, so `--http-port` and `--grpc-port` must differ (both are {})",
                o.http_port
            ));
        }
        // Core objects in one file (what `kubernetes-validate` checks), the mesh's in another.
        let core = match o.mesh {
            Mesh::None => vec![s.service()],
            _ => vec![s.service(), s.mesh_retries()],
        };
        let mesh = match o.mesh {
            Mesh::None => Vec::new(),
            Mesh::Linkerd => s.linkerd(),
            Mesh::Istio => s.istio(),
        };
        for d in core.iter().chain(&mesh) {
            let (kind, object) = (
                d["kind"].as_str().unwrap_or_default(),
                d["metadata"]["name"].as_str().unwrap_or_default(),
            );
            if object.len() > 253 {
                return Err(format!(
                    "the {kind} name `{object}` is longer than Kubernetes allows (253)"
                ));
            }
            if let Some(other) =
                names.insert((kind.to_string(), object.to_string()), service.to_string())
            {
                return Err(format!(
                    "services `{other}` and `{service}` would both write the {kind} `{object}`; rename one"
                ));
            }
        }
        files.push(file(format!("{name}.yaml"), &core)?);
        let suffix = match o.mesh {
            Mesh::None => continue,
            Mesh::Linkerd => "linkerd",
            Mesh::Istio => "istio",
        };
        files.push(file(format!("{name}.{suffix}.yaml"), &mesh)?);
    }
    Ok(files)
}

/// The namespace of `service`: `--namespace`, else the one its contracts name (all the same,
/// and a valid namespace), else `default`.
fn namespace(service: &str, contracts: &[&Contract], o: &Options) -> Result<String, String> {
    if let Some(ns) = &o.namespace {
        return Ok(ns.clone());
    }
    let named: std::collections::BTreeSet<&str> = contracts
        .iter()
        .filter_map(|c| c.namespace.as_deref())
        .collect();
    match named.into_iter().collect::<Vec<_>>()[..] {
        [] => Ok("default".into()),
        [ns] if pactum_rules::kube::is_namespace(ns) => Ok(ns.to_string()),
        [ns] => Err(format!(
            "the contracts of `{service}` say `namespace: {ns}`, which is not a Kubernetes namespace; pass `--namespace`"
        )),
        ref many => Err(format!(
            "the contracts of `{service}` name different namespaces ({}); pass `--namespace`",
            many.join(", ")
        )),
    }
}

/// A duration as the meshes read one: whole milliseconds (Istio refuses less, Linkerd reads
/// only `ms`, `s`, `m`, `h`), rounded up so no budget shrinks.
fn mesh_duration(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000).max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn file(path: String, docs: &[Value]) -> Result<GeneratedFile, String> {
    let mut out = String::from(
        "# @generated by pactum from the contracts. Do not edit: change the contracts and run `pactum manifests`.\n",
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml::to_string(d).map_err(|e| format!("internal error: manifest: {e}"))?,
        );
    }
    Ok(GeneratedFile {
        path: PathBuf::from(path),
        contents: out,
    })
}

struct ServiceManifests<'a> {
    /// The service's Kubernetes name.
    name: String,
    ns: &'a str,
    host: String,
    contracts: &'a [&'a Contract],
    o: &'a Options,
}

/// Whether the contract lets a caller (or the mesh) retry `op`: safe or keyed, and more than
/// one attempt declared.
fn retries(op: &Operation) -> Option<u32> {
    let retryable = op.safe || op.idempotency == crate::ir::Idempotency::Key;
    op.retry
        .as_ref()
        .filter(|r| retryable && r.attempts > 1)
        .map(|r| r.attempts - 1)
}

/// A Kubernetes name for an operation's route over `transport`: `orders-v1-place-order-http`.
fn route_name(c: &Contract, op: &Operation, transport: &str) -> String {
    format!(
        "{}-v{}-{}-{transport}",
        pactum_rules::kube::service_name(&c.id.service),
        c.id.major,
        convert(&op.name, Case::Snake).replace('_', "-")
    )
}

/// The conditions a mesh retries on, as the generated clients do: no answer, 429, 502, 503,
/// and, for a keyed operation, 409 (its key is busy; the retry gets the stored reply).
fn http_retry_codes(op: &Operation) -> &'static str {
    if op.idempotency == crate::ir::Idempotency::Key {
        "409,429,502,503"
    } else {
        "429,502,503"
    }
}

/// The timeout a mesh gives one call when it does not retry it: the deadline, or `per_try`
/// if sooner (the clients leave `per_try` to the mesh).
fn call_timeout(op: &Operation) -> Option<u64> {
    let per_try = op.retry.as_ref().and_then(|r| r.per_try_ns);
    match (op.deadline_ns, per_try, retries(op)) {
        (Some(d), Some(p), None) => Some(d.min(p)),
        (None, Some(p), None) => Some(p),
        (d, _, _) => d,
    }
}

/// An anchored RE2 pattern for a route's path: literal segments escaped, `{param}` one segment.
fn path_regex(full_path: &str) -> String {
    let segments: Vec<String> = full_path
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "[^/]+".to_string()
            } else {
                seg.chars()
                    .map(|ch| match ch {
                        '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^'
                        | '$' | '\\' => format!("\\{ch}"),
                        other => other.to_string(),
                    })
                    .collect()
            }
        })
        .collect();
    format!("^{}$", segments.join("/"))
}

impl ServiceManifests<'_> {
    fn labels(&self) -> Value {
        json!({ "app.kubernetes.io/name": self.name, "app.kubernetes.io/managed-by": "pactum" })
    }

    fn metadata(&self, name: &str) -> Value {
        json!({ "name": name, "namespace": self.ns, "labels": self.labels() })
    }

    fn has_rest(&self) -> bool {
        self.ops().any(|(_, op)| op.rest.is_some())
    }

    fn has_grpc(&self) -> bool {
        self.ops().any(|(_, op)| op.grpc)
    }

    fn ops(&self) -> impl Iterator<Item = (&Contract, &Operation)> {
        self.contracts
            .iter()
            .flat_map(|c| c.operations.iter().map(move |op| (*c, op)))
    }

    fn service(&self) -> Value {
        let mut ports = Vec::new();
        if self.has_rest() {
            ports.push(json!({ "name": "http", "port": self.o.http_port, "targetPort": self.o.http_port, "protocol": "TCP", "appProtocol": "http" }));
        }
        if self.has_grpc() {
            ports.push(json!({ "name": "grpc", "port": self.o.grpc_port, "targetPort": self.o.grpc_port, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c" }));
        }
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(&self.name),
            "spec": {
                "selector": { "app.kubernetes.io/name": self.name },
                "ports": ports,
            },
        })
    }

    /// The `ConfigMap` that turns the callers' own retries off.
    fn mesh_retries(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.metadata(&format!("{}-pactum-mesh", self.name)),
            "data": { MESH_RETRIES_ENV.0: MESH_RETRIES_ENV.1 },
        })
    }

    fn linkerd(&self) -> Vec<Value> {
        let mut docs = Vec::new();
        let route = |kind: &str,
                     name: String,
                     annotations: serde_json::Map<String, Value>,
                     port: u16,
                     rules: Value| {
            let mut meta = self.metadata(&name);
            meta["annotations"] = Value::Object(annotations);
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": kind,
                "metadata": meta,
                "spec": {
                    "parentRefs": [{ "group": "", "kind": "Service", "name": self.name, "port": port }],
                    "rules": rules,
                },
            })
        };
        for (c, op) in self.ops() {
            let mut annotations = serde_json::Map::new();
            if let Some(t) = call_timeout(op) {
                annotations.insert("timeout.linkerd.io/request".into(), mesh_duration(t).into());
            }
            let retry_annotations =
                |kind: &str, on: &str, a: &mut serde_json::Map<String, Value>| {
                    if let Some(n) = retries(op) {
                        a.insert(format!("retry.linkerd.io/{kind}"), on.into());
                        a.insert("retry.linkerd.io/limit".into(), n.to_string().into());
                        if let Some(p) = op.retry.as_ref().and_then(|r| r.per_try_ns) {
                            a.insert("retry.linkerd.io/timeout".into(), mesh_duration(p).into());
                        }
                    }
                };
            if let Some(r) = &op.rest {
                let mut a = annotations.clone();
                retry_annotations("http", http_retry_codes(op), &mut a);
                let path = if r.params.is_empty() {
                    json!({ "type": "Exact", "value": r.full_path })
                } else {
                    json!({ "type": "RegularExpression", "value": path_regex(&r.full_path) })
                };
                docs.push(route(
                    "HTTPRoute",
                    route_name(c, op, "http"),
                    a,
                    self.o.http_port,
                    json!([{ "matches": [{ "path": path, "method": r.method.as_str() }] }]),
                ));
            }
            if op.grpc {
                let mut a = annotations.clone();
                retry_annotations("grpc", "unavailable,resource-exhausted", &mut a);
                docs.push(route(
                    "GRPCRoute",
                    route_name(c, op, "grpc"),
                    a,
                    self.o.grpc_port,
                    json!([{ "matches": [{ "method": {
                        "type": "Exact",
                        "service": format!("{}.{}", super::proto::package(c), super::proto::service_name(c)),
                        "method": op.name,
                    } }] }]),
                ));
            }
        }
        // Once a port has routes, Linkerd answers what none matches with 404: everything else
        // (health checks, HEAD, a later deployment's paths) gets a route with no timeout or
        // retry of its own.
        if self.has_rest() {
            docs.push(route(
                "HTTPRoute",
                format!("{}-default-http", self.name),
                serde_json::Map::new(),
                self.o.http_port,
                json!([{ "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }] }]),
            ));
        }
        if self.has_grpc() {
            docs.push(route(
                "GRPCRoute",
                format!("{}-default-grpc", self.name),
                serde_json::Map::new(),
                self.o.grpc_port,
                json!([{}]),
            ));
        }
        docs
    }

    fn istio(&self) -> Vec<Value> {
        // Istio takes the first route that matches: exact paths first, then patterns with more
        // literal segments first, so a keyed `/orders/{id}`'s retries never reach
        // `/orders/bulk`; the catch-all last.
        let mut routes: Vec<(u8, usize, Value)> = Vec::new();
        for (c, op) in self.ops() {
            let policy = |on: &str| match retries(op) {
                Some(n) => {
                    let mut r = json!({ "attempts": n, "retryOn": on });
                    if let Some(p) = op.retry.as_ref().and_then(|r| r.per_try_ns) {
                        r["perTryTimeout"] = mesh_duration(p).into();
                    }
                    r
                }
                // Istio retries twice by default: an operation the contract does not let
                // anyone retry says so.
                None => json!({ "attempts": 0 }),
            };
            let mut add = |rank: (u8, usize), name: String, matched: Value, port: u16, on: &str| {
                let mut route = json!({
                    "name": name,
                    "match": [matched],
                    "retries": policy(on),
                    "route": [{ "destination": { "host": self.host, "port": { "number": port } } }],
                });
                if let Some(t) = call_timeout(op) {
                    route["timeout"] = mesh_duration(t).into();
                }
                routes.push((rank.0, rank.1, route));
            };
            if let Some(r) = &op.rest {
                let literals = r
                    .full_path
                    .split('/')
                    .filter(|seg| !seg.starts_with('{'))
                    .count();
                let (rank, uri) = if r.params.is_empty() {
                    ((0, 0), json!({ "exact": r.full_path }))
                } else {
                    (
                        (1, usize::MAX - literals),
                        json!({ "regex": path_regex(&r.full_path) }),
                    )
                };
                let on = format!(
                    "connect-failure,refused-stream,reset,{}",
                    http_retry_codes(op)
                );
                add(
                    rank,
                    route_name(c, op, "http"),
                    json!({ "uri": uri, "method": { "exact": r.method.as_str() }, "port": self.o.http_port }),
                    self.o.http_port,
                    &on,
                );
            }
            if op.grpc {
                let path = format!(
                    "/{}.{}/{}",
                    super::proto::package(c),
                    super::proto::service_name(c),
                    op.name
                );
                add(
                    (0, 0),
                    route_name(c, op, "grpc"),
                    json!({ "uri": { "exact": path }, "port": self.o.grpc_port }),
                    self.o.grpc_port,
                    "connect-failure,reset,unavailable,resource-exhausted",
                );
            }
        }
        // A stable sort: within a rank, the contracts' order.
        routes.sort_by_key(|(rank, literals, _)| (*rank, *literals));
        let mut http: Vec<Value> = routes.into_iter().map(|(_, _, r)| r).collect();
        // What no operation names (health checks, a later deployment's routes): never retried.
        http.push(json!({
            "name": "default",
            "retries": { "attempts": 0 },
            "route": [{ "destination": { "host": self.host } }],
        }));
        // One pool per host: the strictest breaker among its operations.
        let failures = self
            .ops()
            .map(|(_, op)| op.resilience.failures)
            .min()
            .unwrap_or(pactum_rules::resilience::DEFAULT_BREAKER_FAILURES);
        let cooldown = self
            .ops()
            .map(|(_, op)| op.resilience.cooldown_ns)
            .max()
            .unwrap_or(pactum_rules::resilience::DEFAULT_BREAKER_COOLDOWN_NS);
        vec![
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": self.metadata(&self.name),
                "spec": { "hosts": [self.host], "http": http },
            }),
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": self.metadata(&self.name),
                "spec": {
                    "host": self.host,
                    "trafficPolicy": {
                        "tls": { "mode": "ISTIO_MUTUAL" },
                        // Gateway errors (502, 503, 504, no connection) only: a declared error
                        // with a 5xx status is an answer, as it is for the clients' breaker.
                        "outlierDetection": {
                            "consecutiveGatewayErrors": failures,
                            "interval": "10s",
                            "baseEjectionTime": mesh_duration(cooldown),
                            "maxEjectionPercent": 100,
                        },
                    },
                },
            }),
            json!({
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": self.metadata(&self.name),
                "spec": {
                    "selector": { "matchLabels": { "app.kubernetes.io/name": self.name } },
                    "mtls": { "mode": "STRICT" },
                },
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::path_regex;

    #[test]
    fn paths_become_anchored_patterns_with_one_segment_per_parameter() {
        assert_eq!(
            path_regex("/v1/carts/{cart_id}/checkout"),
            "^/v1/carts/[^/]+/checkout$"
        );
        assert_eq!(path_regex("/v1/a.b/{x}"), "^/v1/a\\.b/[^/]+$");
    }
}
