//! Validated contracts → [`Ir`]. Runs only after [`crate::validate`] found no error; anything
//! that still fails to resolve here is skipped rather than panicking, and is reported by the
//! validator in the same run.
//!
//! Values arrive parsed ([`ast::Parsed`]); a key left out means what the language says it
//! means (no idempotency key, no streaming, full jitter, no event deadline). A value that did
//! not parse was reported when decoded, so lowering never runs on one; if it ever met one it
//! would return no IR at all rather than guess.

use crate::ast::{self, EventDeadlineDecl, Parsed, Payload, TypeBody, TypeExpr};
use crate::ir::*;
use crate::naming::{convert, Case};
use crate::resolve::{id_of, Scope};
use crate::validate::{parse_event_ref, parse_operation_ref};
use std::collections::{HashMap, HashSet};

/// Lowers every contract; `None` only if a value that did not parse reached it (a bug: the
/// validator refuses such contracts first).
pub fn lower(scope: &Scope<'_>) -> Option<Ir> {
    let contracts = scope.contracts();
    let graph = ContainmentGraph::new(scope);
    let unparsed = std::cell::Cell::new(false);
    let mut out: Vec<Contract> = contracts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Lowerer {
                scope,
                graph: &graph,
                index: i,
                c,
                unparsed: &unparsed,
            }
            .contract()
        })
        .collect();
    if unparsed.get() {
        return None;
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Some(Ir { contracts: out })
}

struct Lowerer<'a> {
    scope: &'a Scope<'a>,
    graph: &'a ContainmentGraph,
    index: usize,
    c: &'a ast::Contract,
    /// Set when a value that did not parse is met: the IR is then thrown away.
    unparsed: &'a std::cell::Cell<bool>,
}

impl Lowerer<'_> {
    /// A duration in nanoseconds (validated to fit), or nothing for one that did not parse.
    fn nanos(&self, d: &Parsed<ast::DurationDecl>) -> Option<u64> {
        match d {
            Parsed::Ok(d) => Some(d.nanos as u64),
            Parsed::Invalid => {
                self.unparsed.set(true);
                None
            }
        }
    }

    /// A retry policy; backoff 100 ms..2 s and full jitter unless the contract says.
    fn retry(&self, r: &ast::RetryDecl) -> Retry {
        let (initial_ns, max_ns) = r
            .backoff
            .as_ref()
            .map_or((100_000_000, 2_000_000_000), |b| {
                (b.value.0 as u64, b.value.1 as u64)
            });
        Retry {
            attempts: r.attempts.value as u32,
            initial_ns,
            max_ns,
            jitter: r
                .jitter
                .as_ref()
                .map_or(Jitter::Full, |j| self.value(&j.value, Jitter::Full)),
            per_try_ns: r.per_try.as_ref().and_then(|d| self.nanos(&d.value)),
        }
    }

    /// The parsed value; for one that did not parse, marks the whole lowering void and
    /// returns `placeholder`, which never reaches an emitter.
    fn value<T: Copy>(&self, p: &Parsed<T>, placeholder: T) -> T {
        match p {
            Parsed::Ok(v) => *v,
            Parsed::Invalid => {
                self.unparsed.set(true);
                placeholder
            }
        }
    }

    fn contract(&self) -> Contract {
        let c = self.c;
        let mut types: Vec<TypeDef> = c.types.iter().map(|t| self.type_def(t)).collect();
        let operations = c
            .operations
            .iter()
            .map(|op| self.operation(op, &mut types))
            .collect();
        Contract {
            id: id_of(c),
            version: c.version.value.to_string(),
            owner: c.owner.value.clone(),
            namespace: c.namespace.as_ref().map(|n| n.value.clone()),
            docs: c.description.clone(),
            source: c.path.clone(),
            span: c.service.span,
            types,
            errors: c
                .errors
                .iter()
                .map(|e| ErrorDef {
                    name: convert(&e.name.value, Case::Pascal),
                    status: self.value(&e.status.value, ErrorStatus::Internal),
                    docs: e.description.clone(),
                    fields: self.fields(&e.fields, None),
                    span: e.name.span,
                })
                .collect(),
            operations,
            events: c.events.iter().map(|e| self.event(e)).collect(),
            consumers: c.consumes.iter().filter_map(|x| self.consumer(x)).collect(),
            calls: c.calls.iter().filter_map(|x| self.call(x)).collect(),
            webhooks: c
                .webhooks
                .iter()
                .map(|w| WebhookDef {
                    name: convert(&w.name.value, Case::Pascal),
                    docs: w.description.clone(),
                    version: w.version.as_ref().map_or(1, |v| v.value as u32),
                    wire_type: format!(
                        "{}.{}",
                        c.service.value,
                        convert(&w.name.value, Case::Snake)
                    ),
                    fields: self.fields(&w.fields, None),
                    span: w.name.span,
                })
                .collect(),
            auth: c.auth.as_ref().map_or_else(Vec::new, |a| {
                a.schemes
                    .iter()
                    .map(|s| AuthScheme {
                        name: s.name.value.clone(),
                        kind: match s.kind.value.as_str() {
                            "api_key" => SchemeKind::ApiKey {
                                header: s.header.as_ref().map_or_else(
                                    || ast::DEFAULT_API_KEY_HEADER.to_string(),
                                    |h| h.value.clone(),
                                ),
                            },
                            "mtls" => SchemeKind::Mtls,
                            _ => SchemeKind::Bearer,
                        },
                        docs: s.description.clone(),
                    })
                    .collect()
            }),
        }
    }

    fn resolve(&self, ty: &TypeExpr) -> TypeRef {
        // Validation guarantees resolution; a string keeps the IR total if it ever did not.
        self.scope
            .resolve(self.index, ty)
            .unwrap_or(TypeRef::Prim(ast::Primitive::String))
    }

    fn fields(&self, fields: &[ast::FieldDecl], owner: Option<&str>) -> Vec<Field> {
        fields
            .iter()
            .map(|f| {
                let number = f.wire;
                let ty = self.resolve(&f.ty.value);
                let boxed = owner.is_some_and(|owner| {
                    direct_target(&ty).is_some_and(|target| {
                        self.graph
                            .reaches(target, &(id_of(self.c), owner.to_string()))
                    })
                });
                Field {
                    name: convert(&f.name.value, Case::Snake),
                    wire_name: f.name.value.clone(),
                    ty,
                    docs: f.description.clone(),
                    deprecated: f.deprecated.as_ref().map(|d| d.value.clone()),
                    constraints: constraints(&f.constraints),
                    number,
                    boxed,
                    span: f.name.span,
                }
            })
            .collect()
    }

    fn type_def(&self, t: &ast::TypeDecl) -> TypeDef {
        let name = convert(&t.name.value, Case::Pascal);
        let kind = match &t.body {
            TypeBody::Struct { fields, .. } => TypeKind::Struct(self.fields(fields, Some(&name))),
            TypeBody::Enum { values, .. } => TypeKind::Enum(
                values
                    .iter()
                    .map(|v| EnumValue {
                        variant: convert(&v.name.value, Case::Pascal),
                        wire: v.name.value.clone(),
                        number: v.wire,
                        docs: v.description.clone(),
                        deprecated: v.deprecated.as_ref().map(|d| d.value.clone()),
                    })
                    .collect(),
            ),
            TypeBody::Union { variants, tag, .. } => TypeKind::Union(Union {
                tag: tag
                    .as_ref()
                    .map_or_else(|| ast::DEFAULT_UNION_TAG.to_string(), |t| t.value.clone()),
                variants: variants
                    .iter()
                    .filter_map(|v| {
                        let TypeRef::Named(ty) = self.resolve(&v.ty.value) else {
                            return None; // refused by validation
                        };
                        Some(Variant {
                            variant: convert(&v.name.value, Case::Pascal),
                            wire: v.name.value.clone(),
                            ty,
                            number: v.wire,
                            docs: v.description.clone(),
                            deprecated: v.deprecated.as_ref().map(|d| d.value.clone()),
                        })
                    })
                    .collect(),
            }),
            TypeBody::Newtype { ty, constraints: k } => TypeKind::Newtype {
                inner: self.resolve(&ty.value),
                constraints: constraints(k),
            },
        };
        let reserved = match &t.body {
            TypeBody::Struct { reserved, .. }
            | TypeBody::Enum { reserved, .. }
            | TypeBody::Union { reserved, .. } => reserved.iter().map(|r| r.value as u32).collect(),
            TypeBody::Newtype { .. } => Vec::new(),
        };
        TypeDef {
            name,
            docs: t.description.clone(),
            deprecated: t.deprecated.as_ref().map(|d| d.value.clone()),
            kind,
            origin: Origin::Declared,
            reserved,
            span: t.name.span,
        }
    }

    fn payload(&self, p: &Payload, op: &str, suffix: &str, types: &mut Vec<TypeDef>) -> TypeRef {
        match p {
            Payload::Named(ty) => self.resolve(&ty.value),
            Payload::Inline(fields, span) => {
                let name = format!("{op}{suffix}");
                types.push(TypeDef {
                    name: name.clone(),
                    docs: Some(format!(
                        "{} of [`{op}`](operations::{}).",
                        if suffix == "Request" {
                            "Input"
                        } else {
                            "Output"
                        },
                        convert(op, Case::Screaming)
                    )),
                    deprecated: None,
                    kind: TypeKind::Struct(self.fields(fields, Some(&name))),
                    origin: if suffix == "Request" {
                        Origin::Input(op.to_string())
                    } else {
                        Origin::Output(op.to_string())
                    },
                    reserved: Vec::new(),
                    span: *span,
                });
                TypeRef::Named(NamedRef {
                    contract: id_of(self.c),
                    name,
                })
            }
        }
    }

    /// The fields of an input or output payload (inline, or a named struct's).
    fn payload_fields<'p>(&'p self, p: &'p Payload) -> &'p [ast::FieldDecl] {
        match p {
            Payload::Inline(fields, _) => fields,
            Payload::Named(ty) => match &ty.value {
                TypeExpr::Ref(r) => match self.scope.resolve_named(self.index, r) {
                    Ok((_, decl)) => match &decl.body {
                        TypeBody::Struct { fields, .. } => fields,
                        _ => &[],
                    },
                    Err(_) => &[],
                },
                _ => &[],
            },
        }
    }

    /// `paginate:` with its defaults filled in (validation checked the fields exist).
    fn pagination(&self, op: &ast::OperationDecl, p: &ast::PaginateDecl) -> Option<Pagination> {
        let (cursor_default, next_default, size_default) = ast::PAGINATE_DEFAULTS;
        let input = self.payload_fields(op.input.as_ref()?);
        let output = self.payload_fields(op.output.as_ref()?);
        let named = |n: &Option<ast::Spanned<String>>, d: &str| {
            n.as_ref()
                .map_or_else(|| d.to_string(), |n| n.value.clone())
        };
        let items = match &p.items {
            Some(n) => output.iter().find(|f| f.name.value == n.value)?,
            None => output
                .iter()
                .find(|f| matches!(f.ty.value, TypeExpr::List(_)))?,
        };
        let TypeRef::List(item) = self.resolve(&items.ty.value) else {
            return None;
        };
        let size = match &p.size {
            Some(n) => Some(n.value.clone()),
            None => input
                .iter()
                .any(|f| f.name.value == size_default)
                .then(|| size_default.to_string()),
        };
        Some(Pagination {
            cursor: convert(&named(&p.cursor, cursor_default), Case::Snake),
            cursor_wire: named(&p.cursor, cursor_default),
            next: convert(&named(&p.next, next_default), Case::Snake),
            next_wire: named(&p.next, next_default),
            items: convert(&items.name.value, Case::Snake),
            items_wire: items.name.value.clone(),
            item: *item,
            size_wire: size,
        })
    }

    fn operation(&self, op: &ast::OperationDecl, types: &mut Vec<TypeDef>) -> Operation {
        let name = convert(&op.name.value, Case::Pascal);
        let input =
            op.input
                .as_ref()
                .and_then(|p| match self.payload(p, &name, "Request", types) {
                    TypeRef::Named(n) => Some(n),
                    _ => None,
                });
        let output = op
            .output
            .as_ref()
            .map(|p| self.payload(p, &name, "Response", types));
        let rest = op.rest.as_ref().and_then(|r| {
            let Parsed::Ok(route) = &r.value else {
                self.unparsed.set(true);
                return None;
            };
            let path = route.path.clone();
            Some(Route {
                method: route.method,
                full_path: format!(
                    "/v{}{}",
                    self.c.version.value.major,
                    if path == "/" { "" } else { &path }
                ),
                path,
                params: route.params.clone(),
            })
        });
        Operation {
            name,
            docs: op.description.clone(),
            deprecated: op.deprecated.as_ref().map(|d| d.value.clone()),
            input,
            output,
            errors: op
                .errors
                .iter()
                .map(|e| convert(&e.value, Case::Pascal))
                .collect(),
            rest,
            grpc: op.grpc.as_ref().is_some_and(|g| g.value),
            deadline_ns: op.deadline.as_ref().and_then(|d| self.nanos(&d.value)),
            safe: op.safe.as_ref().is_some_and(|s| s.value),
            idempotency: op.idempotency.as_ref().map_or(Idempotency::None, |i| {
                self.value(&i.value, Idempotency::None)
            }),
            retry: op.retry.as_ref().map(|r| self.retry(r)),
            streaming: op
                .streaming
                .as_ref()
                .map_or(Streaming::None, |s| self.value(&s.value, Streaming::None)),
            resilience: self.resilience(op.resilience.as_ref()),
            paginate: op.paginate.as_ref().and_then(|p| self.pagination(op, p)),
            auth: match op.auth.as_ref().map(|a| &a.value) {
                Some(ast::OperationAuth::Public) => Vec::new(),
                Some(ast::OperationAuth::Schemes(names)) => {
                    names.iter().map(|n| n.value.clone()).collect()
                }
                None => self.c.auth.as_ref().map_or_else(Vec::new, |a| {
                    a.default.iter().map(|n| n.value.clone()).collect()
                }),
            },
            resume: op.resume.as_ref().and_then(|r| {
                let (id, after) = (r.id.as_ref()?, r.after.as_ref()?);
                Some(Resume {
                    id: convert(&id.value, Case::Snake),
                    id_wire: id.value.clone(),
                    after: convert(&after.value, Case::Snake),
                    after_wire: after.value.clone(),
                })
            }),
            calls: op
                .calls
                .iter()
                .map(|step| CallStep {
                    calls: step
                        .operations
                        .iter()
                        .filter_map(|r| self.call_ref(r))
                        .collect(),
                    span: step.span,
                })
                .collect(),
            span: op.name.span,
        }
    }

    /// `op`'s `resilience:` over the contract's, key by key, over the defaults.
    fn resilience(&self, op: Option<&ast::ResilienceDecl>) -> Resilience {
        let mut r = Resilience::default();
        for layer in [self.c.resilience.as_ref(), op].into_iter().flatten() {
            if let Some(ratio) = &layer.ratio {
                r.ratio_permille = (ratio.value.as_f64().clamp(0.0, 1.0) * 1000.0).round() as u32;
            }
            if let Some(n) = &layer.min_per_second {
                r.min_per_second = n.value as u32;
            }
            if let Some(n) = &layer.failures {
                r.failures = n.value as u32;
            }
            if let Some(d) = &layer.cooldown {
                r.cooldown_ns = self.nanos(&d.value).unwrap_or(r.cooldown_ns);
            }
            if let Some(n) = &layer.concurrency {
                r.concurrency = Some(n.value as u32);
            }
        }
        r
    }

    /// An operation reference of `calls:`, resolved (validation refused any that do not).
    fn call_ref(&self, r: &ast::Spanned<String>) -> Option<CallRef> {
        let (service, name, major) = parse_operation_ref(&r.value)?;
        let (i, _) = self.scope.resolve_operation(&service, &name, major).ok()?;
        Some(CallRef {
            target: id_of(&self.scope.contracts()[i]),
            operation: convert(&name, Case::Pascal),
            span: r.span,
        })
    }

    fn event(&self, e: &ast::EventDecl) -> EventDef {
        let name = convert(&e.name.value, Case::Pascal);
        EventDef {
            subject: event_subject(&self.c.service.value, &e.name.value, e.version.value),
            docs: e.description.clone(),
            deprecated: e.deprecated.as_ref().map(|d| d.value.clone()),
            version: e.version.value as u32,
            key: e.key.as_ref().map(|k| convert(&k.value, Case::Snake)),
            delivery: self.value(&e.delivery.value, Delivery::Stream),
            deadline: match e.deadline.as_ref().map(|d| &d.value) {
                None => EventDeadline::None,
                Some(Parsed::Ok(EventDeadlineDecl::Inherit)) => EventDeadline::Inherit,
                Some(Parsed::Ok(EventDeadlineDecl::After(d))) => {
                    EventDeadline::After(d.nanos as u64)
                }
                Some(Parsed::Invalid) => {
                    self.unparsed.set(true);
                    EventDeadline::None
                }
            },
            fields: self.fields(&e.fields, None),
            span: e.name.span,
            name,
        }
    }

    fn call(&self, call: &ast::CallDecl) -> Option<Call> {
        let (service, name, major) = parse_operation_ref(&call.operation.value)?;
        let (i, op) = self.scope.resolve_operation(&service, &name, major).ok()?;
        // Without `via:`, REST when the operation has a route, else gRPC.
        let default = if op.rest.is_some() {
            Via::Rest
        } else {
            Via::Grpc
        };
        let via = call
            .via
            .as_ref()
            .map_or(default, |v| self.value(&v.value, default));
        Some(Call {
            target: id_of(&self.scope.contracts()[i]),
            operation: convert(&name, Case::Pascal),
            via,
            docs: call.description.clone(),
            span: call.span,
        })
    }

    fn consumer(&self, con: &ast::ConsumeDecl) -> Option<Consumer> {
        let (service, name, version) = parse_event_ref(&con.event.value)?;
        let (i, e) = self.scope.resolve_event(&service, &name, version).ok()?;
        let source = &self.scope.contracts()[i];
        Some(Consumer {
            event: NamedRef {
                contract: id_of(source),
                name: convert(&name, Case::Pascal),
            },
            version: version as u32,
            subject: event_subject(&service, &name, version),
            delivery: self.value(&e.delivery.value, Delivery::Stream),
            group: con
                .group
                .as_ref()
                .map_or_else(|| self.c.service.value.clone(), |g| g.value.clone()),
            retry: con.retry.as_ref().map(|r| self.retry(r)),
            dead_letter: con.dead_letter.as_ref().is_none_or(|d| d.value),
            budget_ns: con.budget.as_ref().and_then(|b| self.nanos(&b.value)),
            docs: con.description.clone(),
            span: con.span,
        })
    }
}

pub use pactum_rules::subject::event_subject;

fn constraints(k: &ast::Constraints) -> Constraints {
    Constraints {
        min: k.min.as_ref().map(|v| v.value),
        max: k.max.as_ref().map(|v| v.value),
        min_len: k.min_len.as_ref().map(|v| v.value),
        max_len: k.max_len.as_ref().map(|v| v.value),
        pattern: k.pattern.as_ref().map(|v| v.value.clone()),
        min_items: k.min_items.as_ref().map(|v| v.value),
        max_items: k.max_items.as_ref().map(|v| v.value),
    }
}

/// The named type a value of this type holds inline (not behind a collection).
fn direct_target(ty: &TypeRef) -> Option<(ContractId, String)> {
    match ty {
        TypeRef::Named(n) => Some((n.contract.clone(), n.name.clone())),
        TypeRef::Optional(inner) => direct_target(inner),
        _ => None,
    }
}

type Key = (ContractId, String);

/// "Type A holds a B inline" over every contract, to find fields that need a `Box`.
struct ContainmentGraph {
    edges: HashMap<Key, Vec<Key>>,
}

impl ContainmentGraph {
    fn new(scope: &Scope<'_>) -> Self {
        let mut edges: HashMap<Key, Vec<Key>> = HashMap::new();
        for (i, c) in scope.contracts().iter().enumerate() {
            let from_id = id_of(c);
            for t in &c.types {
                let from = (from_id.clone(), convert(&t.name.value, Case::Pascal));
                let inner: Vec<&TypeExpr> = match &t.body {
                    TypeBody::Struct { fields, .. } => fields.iter().map(|f| &f.ty.value).collect(),
                    TypeBody::Newtype { ty, .. } => vec![&ty.value],
                    // A union holds its variant's struct inline.
                    TypeBody::Union { variants, .. } => {
                        variants.iter().map(|v| &v.ty.value).collect()
                    }
                    TypeBody::Enum { .. } => Vec::new(),
                };
                for ty in inner {
                    if let Some(target) = scope.resolve(i, ty).ok().as_ref().and_then(direct_target)
                    {
                        edges.entry(from.clone()).or_default().push(target);
                    }
                }
            }
        }
        ContainmentGraph { edges }
    }

    /// Does `from` (transitively) hold `to` inline?
    fn reaches(&self, from: Key, to: &Key) -> bool {
        let mut stack = vec![from];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if &n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                if let Some(next) = self.edges.get(&n) {
                    stack.extend(next.iter().cloned());
                }
            }
        }
        false
    }
}
