//! Markdown documentation: one page per contract version, and the system's topology as a
//! Mermaid diagram (in `topology.md`) and a Graphviz DOT file, drawn from `calls:`,
//! `consumes:` and `webhooks:`.
//!
//! Rows are built here from the IR; the pages' layout is the askama templates
//! `templates/contract.md`, `templates/topology.md` and `templates/topology.dot`. Budgets
//! (worst cases, calls against deadlines) come from [`crate::budget`], the same figures
//! `pactum check` uses.

use super::GeneratedFile;
use crate::ast::Number;
use crate::budget;
use crate::ir::{
    CallRef, Constraints, Contract, ContractId, Field, Idempotency, Ir, Jitter, Operation, Retry,
    SchemeKind, Streaming, TypeKind, TypeRef, Union,
};
use askama::Template;
use std::path::PathBuf;

#[derive(Template)]
#[template(path = "contract.md", escape = "none")]
struct Page {
    source: String,
    service: String,
    major: u64,
    version: String,
    owner: String,
    package: String,
    description: String,
    operations: Vec<OpDoc>,
    types: Vec<TypeDoc>,
    errors: Vec<Vec<String>>,
    events: Vec<Vec<String>>,
    consumes: Vec<Vec<String>>,
    calls: Vec<Vec<String>>,
    webhooks: Vec<Vec<String>>,
}

struct OpDoc {
    name: String,
    cells: Vec<String>,
    docs: Option<String>,
    deprecated: Option<String>,
    input: String,
    output: String,
    /// The operation's worst case for a caller, and its calls costed against its deadline.
    budget: Vec<String>,
    /// How it pages, when it does.
    pagination: Option<String>,
    /// Who may call it, when the contract has `auth:`.
    callers: Option<String>,
}

struct TypeDoc {
    name: String,
    docs: Option<String>,
    body: String,
}

#[derive(Template)]
#[template(path = "topology.md", escape = "none")]
struct TopologyMd {
    sources: String,
    nodes: Vec<(String, String)>,
    edges: Vec<String>,
    index: Vec<Vec<String>>,
}

#[derive(Template)]
#[template(path = "topology.dot", escape = "none")]
struct TopologyDot {
    sources: String,
    nodes: Vec<(String, String)>,
    edges: Vec<String>,
}

/// A page per contract (`<service>.v<major>.md`), `topology.md` and `topology.dot`.
pub fn pages(ir: &Ir) -> Result<Vec<GeneratedFile>, String> {
    // Templates drop the final newline; files end with one.
    let render = |what: &str, r: Result<String, askama::Error>| {
        r.map(|text| text + "\n")
            .map_err(|e| format!("internal error: {what} template failed: {e}"))
    };
    let mut files = Vec::new();
    for c in &ir.contracts {
        files.push(GeneratedFile {
            path: PathBuf::from(page_name(&c.id)),
            contents: render("contract page", page(ir, c).render())?,
        });
    }
    let sources = ir
        .contracts
        .iter()
        .map(source)
        .collect::<Vec<_>>()
        .join(", ");
    let graph = Graph::of(ir);
    files.push(GeneratedFile {
        path: PathBuf::from("topology.md"),
        contents: render(
            "topology",
            TopologyMd {
                sources: sources.clone(),
                nodes: graph.mermaid_nodes(ir),
                edges: graph.mermaid_edges(),
                index: ir
                    .contracts
                    .iter()
                    .map(|c| {
                        vec![
                            format!("{} v{}", c.id.service, c.id.major),
                            cell(&c.owner),
                            format!("[{0}]({0})", page_name(&c.id)),
                        ]
                    })
                    .collect(),
            }
            .render(),
        )?,
    });
    files.push(GeneratedFile {
        path: PathBuf::from("topology.dot"),
        contents: render(
            "DOT",
            TopologyDot {
                sources,
                nodes: graph.dot_nodes(ir),
                edges: graph.dot_edges(),
            }
            .render(),
        )?,
    });
    Ok(files)
}

fn page_name(id: &ContractId) -> String {
    format!("{}.v{}.md", id.service, id.major)
}

fn source(c: &Contract) -> String {
    c.source.to_string_lossy().replace('\\', "/")
}

/// Text safe inside a Markdown table cell: one line, `|` escaped.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

/// The heading anchor GitHub and most renderers give `### \`Name\``.
fn anchor(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn type_link(home: &ContractId, t: &TypeRef) -> String {
    match t {
        TypeRef::Prim(p) => code(p.name()),
        // Words rather than `list<T>`: a Markdown renderer may take `<…>` for HTML.
        TypeRef::List(inner) => format!("list of {}", type_link(home, inner)),
        TypeRef::Map(inner) => format!("map of {} by string", type_link(home, inner)),
        TypeRef::Optional(inner) => format!("{} (optional)", type_link(home, inner)),
        TypeRef::Named(r) if r.contract == *home => {
            format!("[{}](#{})", code(&r.name), anchor(&r.name))
        }
        TypeRef::Named(r) => format!(
            "[{}]({}#{})",
            code(&format!("{}.{}", r.contract.service, r.name)),
            page_name(&r.contract),
            anchor(&r.name)
        ),
    }
}

fn number(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(f) => f.to_string(),
    }
}

fn range(min: Option<String>, max: Option<String>) -> Option<String> {
    match (min, max) {
        (None, None) => None,
        (Some(a), Some(b)) => Some(format!("{a}..={b}")),
        (Some(a), None) => Some(format!("≥ {a}")),
        (None, Some(b)) => Some(format!("≤ {b}")),
    }
}

fn constraints(k: &Constraints) -> String {
    let mut parts = Vec::new();
    if let Some(r) = range(k.min.map(number), k.max.map(number)) {
        parts.push(format!("value {r}"));
    }
    if let Some(r) = range(
        k.min_len.map(|n| n.to_string()),
        k.max_len.map(|n| n.to_string()),
    ) {
        parts.push(format!("length {r}"));
    }
    if let Some(r) = range(
        k.min_items.map(|n| n.to_string()),
        k.max_items.map(|n| n.to_string()),
    ) {
        parts.push(format!("items {r}"));
    }
    if let Some(p) = &k.pattern {
        parts.push(format!("matches {}", code(p)));
    }
    if parts.is_empty() {
        "—".into()
    } else {
        cell(&parts.join("; "))
    }
}

fn fields_table(home: &ContractId, fields: &[Field]) -> String {
    if fields.is_empty() {
        return "No fields.".into();
    }
    let mut out = String::from("| field | type | constraints | description |\n|---|---|---|---|");
    for f in fields {
        let mut docs = f.docs.as_deref().map(cell).unwrap_or_default();
        if let Some(d) = &f.deprecated {
            docs = format!("**Deprecated:** {} {docs}", cell(d))
                .trim()
                .to_string();
        }
        out.push_str(&format!(
            "\n| {} | {} | {} | {} |",
            code(&f.wire_name),
            type_link(home, &f.ty),
            constraints(&f.constraints),
            if docs.is_empty() { "—".into() } else { docs }
        ));
    }
    out
}

fn union_table(home: &ContractId, u: &Union) -> String {
    let mut out = format!(
        "Exactly one of these; `{}` names which, beside its fields. Variants from newer \
         versions are kept, and refused as input.\n\n| `{}` | type | description |\n|---|---|---|",
        u.tag, u.tag
    );
    for v in &u.variants {
        let mut docs = v.docs.as_deref().map(cell).unwrap_or_default();
        if let Some(d) = &v.deprecated {
            docs = format!("**Deprecated:** {} {docs}", cell(d))
                .trim()
                .to_string();
        }
        out.push_str(&format!(
            "\n| {} | {} | {} |",
            code(&v.wire),
            type_link(home, &TypeRef::Named(v.ty.clone())),
            if docs.is_empty() { "—".into() } else { docs }
        ));
    }
    out
}

fn field_list(fields: &[Field]) -> String {
    if fields.is_empty() {
        return "—".into();
    }
    fields
        .iter()
        .map(|f| code(&f.wire_name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `300 ms`, `2 s`, `1.5 s`, `250 µs`.
fn duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        let s = ns as f64 / 1e9;
        format!("{s} s")
    } else if ns >= 1_000_000 {
        format!("{} ms", ns as f64 / 1e6)
    } else {
        format!("{} µs", ns as f64 / 1e3)
    }
}

fn retry(r: Option<&Retry>) -> String {
    match r {
        None => "—".into(),
        Some(r) => format!(
            "{} attempts, {}..{}{}{}",
            r.attempts,
            duration(r.initial_ns),
            duration(r.max_ns),
            if r.jitter == Jitter::Full {
                ", full jitter"
            } else {
                ""
            },
            r.per_try_ns
                .map_or(String::new(), |p| format!(", {} per try", duration(p)))
        ),
    }
}

/// What the budget check knows of `o`: the longest a caller may wait for it, and its calls,
/// step by step, against its deadline.
fn budget_lines(ir: &Ir, o: &Operation) -> Vec<String> {
    let mut lines = Vec::new();
    if o.deadline_ns.is_some() || o.retry.is_some() {
        let w = budget::worst_case(o);
        lines.push(if w.wait_ns() < w.plan_ns() {
            format!(
                "worst case for a caller: {}, its deadline; the retry plan needs up to {} ({}), so later attempts run only after earlier ones fail fast",
                duration(w.wait_ns()),
                duration(w.plan_ns()),
                w.explain_with(duration)
            )
        } else {
            format!(
                "worst case for a caller: {} ({})",
                duration(w.plan_ns()),
                w.explain_with(duration)
            )
        });
    }
    let r = &o.resilience;
    lines.push(format!(
        "resilience: retries to it at most {} % of requests plus {} a second; its callers' breaker opens after {} failures in a row, for {}; {}",
        f64::from(r.ratio_permille) / 10.0,
        r.min_per_second,
        r.failures,
        duration(r.cooldown_ns),
        match r.concurrency {
            Some(n) => format!("a server runs at most {n} at once and sheds the rest"),
            None => "no concurrency limit".into(),
        }
    ));
    let steps = budget::step_costs(o, |r| budget::callee(ir, r));
    if let Some(last) = steps.last() {
        let text: Vec<String> = steps
            .iter()
            .map(|s| {
                let calls: Vec<String> = s
                    .calls
                    .iter()
                    .map(|(r, w)| {
                        format!(
                            "[{}]({}#{}) {}",
                            code(&format!("{}.{}", r.target.service, r.operation)),
                            page_name(&r.target),
                            anchor(&r.operation),
                            duration(w.wait_ns())
                        )
                    })
                    .collect();
                budget::step_text(&calls, "at once: ", "")
            })
            .collect();
        let verdict = match o.deadline_ns {
            Some(d) if last.total_ns > d => {
                format!(", **more than its deadline of {}**", duration(d))
            }
            Some(d) => format!(", within its deadline of {}", duration(d)),
            None => ", and it declares no deadline".into(),
        };
        lines.push(format!(
            "calls, in order: {}: {} in the worst case{verdict}",
            text.join(" → "),
            duration(last.total_ns)
        ));
    }
    lines
}

fn page(ir: &Ir, c: &Contract) -> Page {
    let home = &c.id;
    let operations = c
        .operations
        .iter()
        .map(|o| {
            let grpc = if o.grpc {
                match o.streaming {
                    Streaming::None => "unary",
                    Streaming::Server => "server stream",
                    Streaming::Client => "client stream",
                    Streaming::Bidi => "bidi stream",
                }
            } else {
                "—"
            };
            let errors = if o.errors.is_empty() {
                "—".to_string()
            } else {
                o.errors
                    .iter()
                    .map(|e| format!("[{}](#errors)", code(e)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            OpDoc {
                name: o.name.clone(),
                cells: vec![
                    format!("[{}](#{})", code(&o.name), anchor(&o.name)),
                    o.rest.as_ref().map_or("—".into(), |r| {
                        code(&format!("{} {}", r.method.as_str(), r.full_path))
                    }),
                    grpc.into(),
                    o.deadline_ns.map_or("—".into(), duration),
                    if o.safe { "yes" } else { "no" }.into(),
                    match o.idempotency {
                        Idempotency::Key => "`Idempotency-Key`".into(),
                        Idempotency::None => "—".into(),
                    },
                    retry(o.retry.as_ref()),
                    errors,
                ],
                docs: o.docs.as_deref().map(|d| d.trim().to_string()),
                deprecated: o.deprecated.clone(),
                input: o.input.as_ref().map_or("none".into(), |i| {
                    type_link(home, &TypeRef::Named(i.clone()))
                }),
                output: o
                    .output
                    .as_ref()
                    .map_or("none".into(), |t| type_link(home, t)),
                budget: budget_lines(ir, o),
                callers: (!c.auth.is_empty()).then(|| {
                    if o.auth.is_empty() {
                        return "callers: anyone (public)".to_string();
                    }
                    let each: Vec<String> = o
                        .auth
                        .iter()
                        .filter_map(|name| c.auth.iter().find(|s| &s.name == name))
                        .map(|s| match &s.kind {
                            SchemeKind::Bearer => format!("`{}` (a bearer token)", s.name),
                            SchemeKind::ApiKey { header } => {
                                format!("`{}` (an API key in `{header}`)", s.name)
                            }
                            SchemeKind::Mtls => format!("`{}` (a client certificate)", s.name),
                        })
                        .collect();
                    format!("callers: {}", each.join(" or "))
                }),
                pagination: o.paginate.as_ref().map(|p| {
                    let size = p
                        .size_wire
                        .as_ref()
                        .map_or(String::new(), |s| format!(", at most `{s}` per page"));
                    format!(
                        "paginated: `{}` holds a page{size}; pass `{}` back as `{}` for the next (an opaque cursor, refused if altered or used on another operation); generated clients stream every item with `{}_items`",
                        p.items_wire,
                        p.next_wire,
                        p.cursor_wire,
                        crate::naming::convert(&o.name, crate::naming::Case::Snake)
                    )
                }),
            }
        })
        .collect();
    let types = c
        .types
        .iter()
        .map(|t| {
            let mut body = match &t.kind {
                TypeKind::Struct(fields) => fields_table(home, fields),
                TypeKind::Enum(values) => format!(
                    "One of: {}. Unknown values from newer versions are kept, not refused.",
                    values
                        .iter()
                        .map(|v| code(&v.wire))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                TypeKind::Union(u) => union_table(home, u),
                TypeKind::Newtype {
                    inner,
                    constraints: k,
                } => {
                    let k = constraints(k);
                    if k == "—" {
                        format!("A {}.", type_link(home, inner))
                    } else {
                        format!("A {}; {k}.", type_link(home, inner))
                    }
                }
            };
            if let Some(d) = &t.deprecated {
                body = format!("**Deprecated:** {d}\n\n{body}");
            }
            TypeDoc {
                name: t.name.clone(),
                docs: t.docs.as_deref().map(|d| d.trim().to_string()),
                body,
            }
        })
        .collect();
    let errors = c
        .errors
        .iter()
        .map(|e| {
            vec![
                code(&e.name),
                e.status.http_status().to_string(),
                code(e.status.grpc_code_name()),
                field_list(&e.fields),
                e.docs.as_deref().map_or("—".into(), cell),
            ]
        })
        .collect();
    let events = c
        .events
        .iter()
        .map(|e| {
            vec![
                code(&e.name),
                e.version.to_string(),
                code(&e.subject),
                e.delivery.as_str().into(),
                e.key.as_deref().map_or("—".into(), code),
                field_list(&e.fields),
            ]
        })
        .collect();
    let consumes = c
        .consumers
        .iter()
        .map(|x| {
            vec![
                code(&format!("{} v{}", x.event.name, x.version)),
                format!(
                    "[{} v{}]({})",
                    x.event.contract.service,
                    x.event.contract.major,
                    page_name(&x.event.contract)
                ),
                code(&x.group),
                x.delivery.as_str().into(),
                retry(x.retry.as_ref()),
                if x.dead_letter {
                    code(&format!("{}.dlq", x.subject))
                } else {
                    "—".into()
                },
            ]
        })
        .collect();
    let calls = c
        .calls
        .iter()
        .map(|x| {
            vec![
                format!(
                    "[{}]({}#{})",
                    code(&format!("{}.{}", x.target.service, x.operation)),
                    page_name(&x.target),
                    anchor(&x.operation)
                ),
                x.via.label().into(),
                x.docs.as_deref().map_or("—".into(), cell),
            ]
        })
        .collect();
    let webhooks = c
        .webhooks
        .iter()
        .map(|w| {
            vec![
                code(&w.name),
                code(&w.wire_type),
                w.version.to_string(),
                field_list(&w.fields),
                w.docs.as_deref().map_or("—".into(), cell),
            ]
        })
        .collect();
    Page {
        source: source(c),
        service: c.id.service.clone(),
        major: c.id.major,
        version: c.version.clone(),
        owner: cell(&c.owner),
        package: super::proto::package(c),
        description: c.docs.as_deref().unwrap_or("").trim().to_string(),
        operations,
        types,
        errors,
        events,
        consumes,
        calls,
        webhooks,
    }
}

/// One edge of the topology.
enum Edge {
    Call {
        from: ContractId,
        to: ContractId,
        label: String,
        /// Some operation of `from` makes this call after its deadline may already have run
        /// out (W0005): drawn red, labelled.
        over_budget: bool,
    },
    Event {
        from: ContractId,
        to: ContractId,
        label: String,
    },
    Webhook {
        from: ContractId,
        label: String,
    },
}

/// The system as a graph: contracts are nodes.
struct Graph {
    edges: Vec<Edge>,
}

fn node_id(id: &ContractId) -> String {
    format!("{}_v{}", id.service, id.major)
}

/// Node of outside webhook subscribers.
const SUBSCRIBERS: &str = "webhook_subscribers";

impl Graph {
    fn of(ir: &Ir) -> Graph {
        let mut edges = Vec::new();
        for c in &ir.contracts {
            // Calls some operation of `c` makes in a step that ends past its deadline.
            let late: Vec<&CallRef> = c
                .operations
                .iter()
                .flat_map(|o| {
                    let deadline = o.deadline_ns.unwrap_or(u64::MAX);
                    budget::step_costs(o, |r| budget::callee(ir, r))
                        .into_iter()
                        .filter(move |s| s.total_ns > deadline)
                        .flat_map(|s| s.calls.into_iter().map(|(r, _)| r))
                })
                .collect();
            for call in &c.calls {
                let over_budget = late
                    .iter()
                    .any(|r| r.target == call.target && r.operation == call.operation);
                let label = format!("{} {}", call.via.label(), call.operation);
                edges.push(Edge::Call {
                    from: c.id.clone(),
                    to: call.target.clone(),
                    label: if over_budget {
                        format!("{label} · over budget")
                    } else {
                        label
                    },
                    over_budget,
                });
            }
            for con in &c.consumers {
                edges.push(Edge::Event {
                    from: con.event.contract.clone(),
                    to: c.id.clone(),
                    label: format!(
                        "{} v{} · {}",
                        con.event.name,
                        con.version,
                        con.delivery.as_str()
                    ),
                });
            }
            for w in &c.webhooks {
                edges.push(Edge::Webhook {
                    from: c.id.clone(),
                    label: format!("webhook {}", w.name),
                });
            }
        }
        Graph { edges }
    }

    fn has_webhooks(&self) -> bool {
        self.edges.iter().any(|e| matches!(e, Edge::Webhook { .. }))
    }

    fn mermaid_nodes(&self, ir: &Ir) -> Vec<(String, String)> {
        let mut nodes: Vec<(String, String)> = ir
            .contracts
            .iter()
            .map(|c| {
                (
                    node_id(&c.id),
                    format!(
                        "{} v{}<br/><small>{}</small>",
                        c.id.service,
                        c.id.major,
                        c.owner.replace('"', "'")
                    ),
                )
            })
            .collect();
        if self.has_webhooks() {
            nodes.push((SUBSCRIBERS.into(), "webhook subscribers".into()));
        }
        nodes
    }

    fn mermaid_edges(&self) -> Vec<String> {
        self.edges
            .iter()
            .map(|e| match e {
                Edge::Call {
                    from, to, label, ..
                } => {
                    format!("{} -- \"{label}\" --> {}", node_id(from), node_id(to))
                }
                Edge::Event { from, to, label } => {
                    format!("{} -. \"{label}\" .-> {}", node_id(from), node_id(to))
                }
                Edge::Webhook { from, label } => {
                    format!("{} == \"{label}\" ==> {SUBSCRIBERS}", node_id(from))
                }
            })
            .collect()
    }

    fn dot_nodes(&self, ir: &Ir) -> Vec<(String, String)> {
        let mut nodes: Vec<(String, String)> = ir
            .contracts
            .iter()
            .map(|c| {
                (
                    node_id(&c.id),
                    dot_string(&format!("{} v{}\n{}", c.id.service, c.id.major, c.owner)),
                )
            })
            .collect();
        if self.has_webhooks() {
            nodes.push((
                SUBSCRIBERS.into(),
                format!("{}, shape=ellipse", dot_string("webhook subscribers")),
            ));
        }
        nodes
    }

    fn dot_edges(&self) -> Vec<String> {
        self.edges
            .iter()
            .map(|e| match e {
                Edge::Call {
                    from,
                    to,
                    label,
                    over_budget,
                } => format!(
                    "{} -> {} [label={}{}]",
                    node_id(from),
                    node_id(to),
                    dot_string(label),
                    if *over_budget {
                        ", color=red, fontcolor=red"
                    } else {
                        ""
                    }
                ),
                Edge::Event { from, to, label } => format!(
                    "{} -> {} [label={}, style=dashed]",
                    node_id(from),
                    node_id(to),
                    dot_string(label)
                ),
                Edge::Webhook { from, label } => format!(
                    "{} -> {SUBSCRIBERS} [label={}, style=bold]",
                    node_id(from),
                    dot_string(label)
                ),
            })
            .collect()
    }
}

/// A DOT quoted string.
fn dot_string(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}
