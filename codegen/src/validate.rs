//! Meaning checks over decoded contracts: names, references, HTTP rules, event rules, wire
//! numbers, constraints — and the lints. Every finding is reported at its own span with a fix;
//! nothing stops at the first problem. Lowering runs only when this reports no error, so the
//! IR never holds something that would emit broken Rust.

use crate::ast::*;
use crate::diagnostics::{closest, Code, Diagnostics, Span};
use crate::ir::{Delivery, ErrorStatus, HttpMethod};
use crate::naming::{check_name, collision_key, convert, Case, NameProblem};
use crate::resolve::{id_of, Scope, Shape};
use crate::tense::{self, Verdict};
use crate::wire::{self, Member, Space};
use std::collections::{HashMap, HashSet};

/// Deepest chain of named types one type may hold (through any fields, lists, maps, options).
/// rustc walks such chains when checking drops and auto traits and stops at its recursion limit
/// (128), spending a few steps per level; 40 levels stay well inside it.
pub const MAX_TYPE_NESTING: usize = 40;
/// Largest deadline accepted: longer budgets are almost always a unit mistake.
pub const MAX_DEADLINE_NS: u128 = 3_600 * 1_000_000_000;
/// The longest processing budget a `consumes` entry may give one delivery.
pub const MAX_BUDGET_NS: u128 = MAX_DEADLINE_NS;
/// The longest an event may stay worth processing after it is published: a week, longer than
/// any stream the runtime configures keeps it.
pub const MAX_EVENT_DEADLINE_NS: u128 = 7 * 24 * 3_600 * 1_000_000_000;
/// Most attempts a retry policy may declare.
pub const MAX_ATTEMPTS: u64 = 10;
/// Type names every contract module generates (REST/gRPC service trait, client, router state).
pub const RESERVED_TYPE_NAMES: &[&str] = &["Service", "Client", "ServerState"];
/// Field names that say nothing when they carry unstructured data.
pub const VAGUE_NAMES: &[&str] = &["data", "info", "misc", "payload", "stuff", "value"];

/// Checks every contract and the relations between them.
pub fn validate(contracts: &[Contract], diags: &mut Diagnostics) {
    let scope = Scope::new(contracts);
    let mut seen: HashMap<crate::ir::ContractId, &Contract> = HashMap::new();
    for c in contracts {
        if let Some(first) = seen.get(&id_of(c)) {
            diags.emit(
                Code::DuplicateContract,
                c.service.span,
                format!(
                    "contract `{}` (major {}) is also declared in {}",
                    c.service.value,
                    c.version.value.major,
                    first.path.display()
                ),
                "each service major lives in one file; bump the major or remove one copy",
            );
        } else {
            seen.insert(id_of(c), c);
        }
    }
    check_contract_cycles(contracts, &scope, diags);
    for (i, c) in contracts.iter().enumerate() {
        if scope.index_of(&id_of(c)) != Some(i) {
            continue; // a duplicate, already reported
        }
        ContractChecker {
            scope: &scope,
            index: i,
            c,
            diags,
            param_names: HashMap::new(),
        }
        .run();
    }
}

struct ContractChecker<'a, 'd> {
    scope: &'a Scope<'a>,
    index: usize,
    c: &'a Contract,
    diags: &'d mut Diagnostics,
    /// Path prefix (params as `{}`) → the parameter name routes use at that position, and
    /// the operation that first used it: routers need one name per position.
    param_names: HashMap<String, (String, String)>,
}

impl ContractChecker<'_, '_> {
    fn run(&mut self) {
        let c = self.c;
        if c.language.value != 1 {
            self.diags.emit(
                Code::UnsupportedLanguage,
                c.language.span,
                format!(
                    "contract language version {} is not supported",
                    c.language.value
                ),
                "this Pactum understands `pactum: 1`",
            );
        }
        let service = &c.service.value;
        let lower_snake = service
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if check_name(service, Case::Snake).is_err() || !lower_snake {
            self.diags.emit(
                Code::InvalidIdentifier,
                c.service.span,
                format!("service name `{service}` is not a lower-case identifier"),
                format!(
                    "use lower snake_case, e.g. `{}`; it becomes the Rust module and the proto package",
                    convert(service, Case::Snake).trim_matches('_')
                ),
            );
        }
        if c.owner.value.trim().is_empty() {
            self.diags.emit(
                Code::InvalidValue,
                c.owner.span,
                "`owner` is empty",
                "name the team that owns this service's data, e.g. `owner: team-orders`",
            );
        }
        if let Some(ns) = &c.namespace {
            let ok = ns.value.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_lowercase())
                    && part
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            });
            if !ok {
                self.diags.emit(
                    Code::InvalidIdentifier,
                    ns.span,
                    format!("namespace `{}` is not a dotted lower-case name", ns.value),
                    "write e.g. `namespace: shop` or `namespace: acme.shop`",
                );
            }
        }
        self.check_top_level_names();
        for t in &c.types {
            self.check_type(t);
        }
        for e in &c.errors {
            self.check_error(e);
        }
        let mut routes: HashMap<(HttpMethod, String), String> = HashMap::new();
        for op in &c.operations {
            self.check_operation(op, &mut routes);
        }
        for e in &c.events {
            self.check_event(e);
        }
        for w in &c.webhooks {
            self.check_webhook(w);
        }
        for con in &c.consumes {
            self.check_consume(con);
        }
        for call in &c.calls {
            self.check_call(call);
        }
        self.check_infinite_types();
        self.check_nesting_depth();
    }

    /// Refuses types that hold chains of named types deeper than [`MAX_TYPE_NESTING`]: the
    /// generated Rust would exceed the compiler's recursion limit. Cycles (recursive types)
    /// are fine; only acyclic depth counts. Reported once, at the deepest type.
    fn check_nesting_depth(&mut self) {
        let c = self.c;
        let names: HashMap<&str, &TypeDecl> =
            c.types.iter().map(|t| (t.name.value.as_str(), t)).collect();
        fn refs(ty: &TypeExpr, out: &mut Vec<String>) {
            match ty {
                TypeExpr::Ref(r) if r.service.is_none() => out.push(r.name.clone()),
                TypeExpr::List(i) | TypeExpr::Map(i) | TypeExpr::Optional(i) => refs(i, out),
                _ => {}
            }
        }
        let children = |t: &TypeDecl| {
            let mut out = Vec::new();
            match &t.body {
                TypeBody::Struct { fields, .. } => {
                    fields.iter().for_each(|f| refs(&f.ty.value, &mut out))
                }
                TypeBody::Newtype { ty, .. } => refs(&ty.value, &mut out),
                TypeBody::Enum { .. } => {}
            }
            out
        };
        // Iterative post-order DFS with memo; edges back into the current path are cycles.
        let mut depth: HashMap<String, usize> = HashMap::new();
        for t in &c.types {
            let mut stack: Vec<(String, usize)> = vec![(t.name.value.clone(), 0)];
            let mut on_path: HashSet<String> = HashSet::new();
            while let Some((name, next)) = stack.pop() {
                if depth.contains_key(&name) {
                    continue;
                }
                on_path.insert(name.clone());
                let kids = names
                    .get(name.as_str())
                    .map(|d| children(d))
                    .unwrap_or_default();
                if let Some(k) = kids.get(next) {
                    stack.push((name.clone(), next + 1));
                    if !depth.contains_key(k)
                        && !on_path.contains(k)
                        && names.contains_key(k.as_str())
                    {
                        stack.push((k.clone(), 0));
                    }
                    continue;
                }
                let d = 1 + kids
                    .iter()
                    .filter(|k| !on_path.contains(*k) || depth.contains_key(*k))
                    .filter_map(|k| depth.get(k))
                    .max()
                    .copied()
                    .unwrap_or(0);
                on_path.remove(&name);
                depth.insert(name, d);
            }
        }
        if let Some((name, d)) = depth
            .iter()
            .max_by_key(|(n, d)| (**d, std::cmp::Reverse(n.as_str())))
        {
            if *d > MAX_TYPE_NESTING {
                let span = names[name.as_str()].name.span;
                self.diags.emit(
                    Code::NestingTooDeep,
                    span,
                    format!("type `{name}` holds a chain of {d} nested named types; the limit is {MAX_TYPE_NESTING}"),
                    "Rust's compiler stops at its recursion limit on chains this deep: refer to distant records by id instead of embedding them",
                );
            }
        }
    }

    /// Types, errors, events and webhooks share the Rust type namespace of the module, together
    /// with the names generated for operations.
    fn check_top_level_names(&mut self) {
        let c = self.c;
        let mut declared: Vec<(&Spanned<String>, &str)> = Vec::new();
        declared.extend(c.types.iter().map(|t| (&t.name, "type")));
        declared.extend(c.errors.iter().map(|t| (&t.name, "error")));
        declared.extend(c.events.iter().map(|t| (&t.name, "event")));
        declared.extend(c.webhooks.iter().map(|t| (&t.name, "webhook")));
        let mut names: HashMap<String, (&Spanned<String>, &str)> = HashMap::new();
        for (name, kind) in &declared {
            if !self.name_ok(name, Case::Pascal, kind) {
                continue;
            }
            let pascal = convert(&name.value, Case::Pascal);
            if RESERVED_TYPE_NAMES.contains(&pascal.as_str()) {
                self.diags.emit(
                    Code::GeneratedNameClash,
                    name.span,
                    format!("{kind} `{}` clashes with `{pascal}`, which Pactum generates for every contract", name.value),
                    format!("rename the {kind}, e.g. `{pascal}Info`"),
                );
                continue;
            }
            self.unique(&mut names, name, kind);
        }
        let mut ops: HashMap<String, (&Spanned<String>, &str)> = HashMap::new();
        for op in &c.operations {
            if !self.name_ok(&op.name, Case::Pascal, "operation") {
                continue;
            }
            self.unique(&mut ops, &op.name, "operation");
            let pascal = convert(&op.name.value, Case::Pascal);
            let mut generated = vec![format!("{pascal}Error")];
            if matches!(op.input, Some(Payload::Inline(..))) {
                generated.push(format!("{pascal}Request"));
            }
            if matches!(op.output, Some(Payload::Inline(..))) {
                generated.push(format!("{pascal}Response"));
            }
            for g in generated {
                if let Some((other, kind)) = names.get(&collision_key(&g)) {
                    self.diags.emit(
                        Code::GeneratedNameClash,
                        other.span,
                        format!(
                            "{kind} `{}` clashes with `{g}`, which Pactum generates for operation `{}`",
                            other.value, op.name.value
                        ),
                        format!("rename the {kind}, or declare the operation's payload as a named type and reference it"),
                    );
                }
            }
        }
    }

    fn name_ok(&mut self, name: &Spanned<String>, case: Case, kind: &str) -> bool {
        match check_name(&name.value, case) {
            Ok(()) => true,
            Err(NameProblem::NotAnIdentifier) => {
                self.diags.emit(
                    Code::InvalidIdentifier,
                    name.span,
                    format!(
                        "{kind} name `{}` cannot become a Rust identifier",
                        name.value
                    ),
                    "use ASCII letters, digits and `_`, starting with a letter",
                );
                false
            }
            Err(NameProblem::Reserved(word)) => {
                self.diags.emit(
                    Code::ReservedName,
                    name.span,
                    format!(
                        "{kind} name `{}` becomes `{word}`, which Rust reserves",
                        name.value
                    ),
                    format!("rename it, e.g. `{}_value`", name.value),
                );
                false
            }
        }
    }

    /// Reports exact duplicates and case-conversion collisions within one namespace.
    fn unique<'n>(
        &mut self,
        names: &mut HashMap<String, (&'n Spanned<String>, &'n str)>,
        name: &'n Spanned<String>,
        kind: &'n str,
    ) {
        let key = collision_key(&name.value);
        if let Some((first, first_kind)) = names.get(&key) {
            if first.value == name.value {
                self.diags.emit(
                    Code::DuplicateName,
                    name.span,
                    format!(
                        "`{}` is declared twice (first as {first_kind} at line {})",
                        name.value, first.span.line
                    ),
                    "rename or remove one of them",
                );
            } else {
                self.diags.emit(
                    Code::CaseCollision,
                    name.span,
                    format!(
                        "`{}` and `{}` (line {}) become the same Rust name",
                        name.value, first.value, first.span.line
                    ),
                    "rename one so they differ by more than case or underscores",
                );
            }
        } else {
            names.insert(key, (name, kind));
        }
    }

    fn resolve(&mut self, ty: &Spanned<TypeExpr>) -> bool {
        match self.scope.resolve(self.index, &ty.value) {
            Ok(_) => true,
            Err(u) => {
                self.diags
                    .emit(Code::Unresolved, ty.span, u.message, u.help);
                false
            }
        }
    }

    fn check_fields(&mut self, fields: &[FieldDecl], reserved: &[Spanned<u64>], owner: &str) {
        let mut names = HashMap::new();
        for f in fields {
            if self.name_ok(&f.name, Case::Snake, "field") {
                self.unique(&mut names, &f.name, "field");
            }
            if self.resolve(&f.ty) {
                self.check_constraints(&f.ty, &f.constraints, &f.name.value);
            }
            self.lint_vague(f);
        }
        let members: Vec<Member<'_>> = fields
            .iter()
            .map(|f| Member {
                name: &f.name.value,
                explicit: f.number.as_ref().map(|n| (n.value, n.span)),
                span: f.name.span,
            })
            .collect();
        let reserved: Vec<(u64, Span)> = reserved.iter().map(|r| (r.value, r.span)).collect();
        let (_, wire_diags) = wire::assign(&members, &reserved, Space::Fields);
        let _ = owner;
        for d in wire_diags {
            self.diags.push(d);
        }
    }

    fn lint_vague(&mut self, f: &FieldDecl) {
        let unstructured = match f.ty.value.unwrap_optional().0 {
            TypeExpr::Prim(Primitive::String | Primitive::Bytes) => true,
            TypeExpr::Map(inner) => matches!(**inner, TypeExpr::Prim(_)),
            _ => false,
        };
        if unstructured && VAGUE_NAMES.contains(&f.name.value.to_ascii_lowercase().as_str()) {
            self.diags.emit(
                Code::VagueFieldName,
                f.name.span,
                format!(
                    "field `{}` is vague and carries unstructured data",
                    f.name.value
                ),
                "name what it holds (`shipping_note`, `error_detail`) or give it a declared type",
            );
        }
    }

    /// The primitive a type finally is, through newtypes, for constraint checks.
    fn base_primitive(&self, ty: &TypeExpr) -> Option<Primitive> {
        let mut current = ty.unwrap_optional().0.clone();
        for _ in 0..32 {
            match current {
                TypeExpr::Prim(p) => return Some(p),
                TypeExpr::Ref(r) => {
                    let (_, decl) = self.scope.resolve_named(self.index, &r).ok()?;
                    match &decl.body {
                        TypeBody::Newtype { ty, .. } => {
                            current = ty.value.unwrap_optional().0.clone()
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        None
    }

    fn check_constraints(&mut self, ty: &Spanned<TypeExpr>, k: &Constraints, what: &str) {
        let inner = ty.value.unwrap_optional().0;
        let collection = matches!(inner, TypeExpr::List(_) | TypeExpr::Map(_));
        let prim = self.base_primitive(inner);
        let bad = |diags: &mut Diagnostics, span: Span, key: &str, applies: &str| {
            diags.emit(
                Code::InvalidConstraint,
                span,
                format!("`{key}` does not apply to `{what}`, whose type is not {applies}"),
                format!("remove `{key}`, or use it on {applies}"),
            );
        };
        for (key, n) in [("min", &k.min), ("max", &k.max)] {
            let Some(n) = n else { continue };
            match prim {
                Some(p) if p.is_numeric() => {
                    if let (Some((lo, hi)), Number::Int(v)) = (p.int_range(), n.value) {
                        if v < lo || v > hi {
                            self.diags.emit(
                                Code::InvalidConstraint,
                                n.span,
                                format!("`{key}: {v}` is outside the range of `{}`", p.name()),
                                format!("use a bound within {lo}..={hi}"),
                            );
                        }
                    } else if p.is_integer() {
                        self.diags.emit(
                            Code::InvalidConstraint,
                            n.span,
                            format!(
                                "`{key}` on integer type `{}` must be a whole number",
                                p.name()
                            ),
                            "write a whole number, e.g. `min: 1`",
                        );
                    }
                }
                _ => bad(self.diags, n.span, key, "a number"),
            }
        }
        if let (Some(lo), Some(hi)) = (&k.min, &k.max) {
            if lo.value.as_f64() > hi.value.as_f64() {
                self.diags.emit(
                    Code::InvalidConstraint,
                    hi.span,
                    format!("`max: {}` is below `min: {}`", hi.value, lo.value),
                    "swap them, or fix the bound",
                );
            }
        }
        for (key, n) in [("min_len", &k.min_len), ("max_len", &k.max_len)] {
            if let Some(n) = n {
                if !matches!(prim, Some(Primitive::String | Primitive::Bytes)) || collection {
                    bad(self.diags, n.span, key, "a string or bytes");
                }
            }
        }
        for (key, n) in [("min_items", &k.min_items), ("max_items", &k.max_items)] {
            if let Some(n) = n {
                if !collection {
                    bad(self.diags, n.span, key, "a list or map");
                }
            }
        }
        for (lo, hi) in [(&k.min_len, &k.max_len), (&k.min_items, &k.max_items)] {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo.value > hi.value {
                    self.diags.emit(
                        Code::InvalidConstraint,
                        hi.span,
                        format!("maximum {} is below minimum {}", hi.value, lo.value),
                        "swap them, or fix the bound",
                    );
                }
            }
        }
        if let Some(p) = &k.pattern {
            if prim != Some(Primitive::String) || collection {
                bad(self.diags, p.span, "pattern", "a string");
            } else if let Err(e) = regex_lite::Regex::new(&p.value) {
                self.diags.emit(
                    Code::InvalidConstraint,
                    p.span,
                    format!("`pattern` is not a valid regular expression: {e}"),
                    "fix the expression; Pactum uses the `regex` syntax (no look-around or back-references)",
                );
            }
        }
    }

    fn check_type(&mut self, t: &TypeDecl) {
        match &t.body {
            TypeBody::Struct { fields, reserved } => {
                self.check_fields(fields, reserved, &t.name.value);
            }
            TypeBody::Enum { values, reserved } => {
                if values.is_empty() {
                    self.diags.emit(
                        Code::InvalidValue,
                        t.name.span,
                        format!("enum `{}` has no values", t.name.value),
                        "list at least one value under `enum:`",
                    );
                }
                let mut names = HashMap::new();
                for v in values {
                    // Wire values may use `-` and `.` (`critical-now`, `v1.2`): the variant
                    // name is derived, and that must be an identifier.
                    let wire_ok = !v.name.value.is_empty()
                        && v.name
                            .value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                    let derived = Spanned::new(convert(&v.name.value, Case::Pascal), v.name.span);
                    if !wire_ok {
                        self.diags.emit(
                            Code::InvalidIdentifier,
                            v.name.span,
                            format!("enum value `{}` cannot become a Rust variant", v.name.value),
                            "use ASCII letters, digits, `_`, `-` and `.`, starting with a letter",
                        );
                        continue;
                    }
                    if !self.name_ok(&derived, Case::Pascal, "enum value") {
                        continue;
                    }
                    if convert(&v.name.value, Case::Pascal) == "Unrecognized" {
                        self.diags.emit(
                            Code::ReservedName,
                            v.name.span,
                            "enum value `unrecognized` is reserved",
                            "Pactum adds `Unrecognized(String)` to every enum to carry values from newer versions; rename this one",
                        );
                    }
                    self.unique(&mut names, &v.name, "enum value");
                }
                let members: Vec<Member<'_>> = values
                    .iter()
                    .map(|v| Member {
                        name: &v.name.value,
                        explicit: v.number.as_ref().map(|n| (n.value, n.span)),
                        span: v.name.span,
                    })
                    .collect();
                let reserved: Vec<(u64, Span)> =
                    reserved.iter().map(|r| (r.value, r.span)).collect();
                for d in wire::assign(&members, &reserved, Space::EnumValues).1 {
                    self.diags.push(d);
                }
            }
            TypeBody::Newtype { ty, constraints } => {
                if let TypeExpr::Ref(r) = ty.value.unwrap_optional().0 {
                    if r.service.is_none() && r.name == t.name.value {
                        self.diags.emit(
                            Code::InfiniteType,
                            ty.span,
                            format!("newtype `{}` wraps itself", t.name.value),
                            "wrap a primitive or another type",
                        );
                        return;
                    }
                }
                if self.resolve(ty) {
                    self.check_constraints(ty, constraints, &t.name.value);
                }
            }
        }
    }

    fn check_error(&mut self, e: &ErrorDecl) {
        if ErrorStatus::from_name(&e.status.value).is_none() {
            let names: Vec<&str> = ErrorStatus::ALL.iter().map(|(n, _)| *n).collect();
            self.diags.emit(
                Code::InvalidValue,
                e.status.span,
                format!("unknown error status `{}`", e.status.value),
                match closest(&e.status.value, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("use one of: {}", names.join(", ")),
                },
            );
        }
        self.check_fields(&e.fields, &[], &e.name.value);
    }

    /// Checks an input/output payload; returns the input's fields (for route checks).
    fn check_payload(&mut self, p: &Payload, what: &str, op: &str) -> Option<Vec<FieldDecl>> {
        match p {
            Payload::Inline(fields, _) => {
                self.check_fields(fields, &[], op);
                Some(fields.clone())
            }
            Payload::Named(ty) => {
                let TypeExpr::Ref(r) = &ty.value else {
                    if what == "input" {
                        self.diags.emit(
                            Code::InvalidValue,
                            ty.span,
                            format!("`input` of `{op}` must be a struct type or inline fields"),
                            "write `input: { field: type, … }` or name a struct declared under `types:`",
                        );
                        return None;
                    }
                    self.resolve(ty);
                    return Some(Vec::new());
                };
                match self.scope.resolve_named(self.index, r) {
                    Err(u) => {
                        self.diags
                            .emit(Code::Unresolved, ty.span, u.message, u.help);
                        None
                    }
                    Ok((_, decl)) => match &decl.body {
                        TypeBody::Struct { fields, .. } => Some(fields.clone()),
                        _ if what == "input" => {
                            self.diags.emit(
                                Code::InvalidValue,
                                ty.span,
                                format!("`input` of `{op}` must be a struct, but `{r}` is not"),
                                "wrap it: `input: { value: <type> }` — give the field a meaningful name",
                            );
                            None
                        }
                        _ => Some(Vec::new()),
                    },
                }
            }
        }
    }

    fn check_operation(
        &mut self,
        op: &OperationDecl,
        routes: &mut HashMap<(HttpMethod, String), String>,
    ) {
        let name = &op.name.value;
        if tense::reads_as_event(name) {
            self.diags.emit(
                Code::OperationNamedAsEvent,
                op.name.span,
                format!("operation `{name}` is named like an event (a fact that happened)"),
                "operations are commands: start with a verb, e.g. `PlaceOrder`; publish the fact as an event",
            );
        }
        let input_fields = op
            .input
            .as_ref()
            .and_then(|p| self.check_payload(p, "input", name));
        if let Some(p) = &op.output {
            self.check_payload(p, "output", name);
            if op.grpc.as_ref().is_some_and(|g| g.value) {
                self.check_grpc_output(p, name);
            }
        }
        let error_names: Vec<&str> = self
            .c
            .errors
            .iter()
            .map(|e| e.name.value.as_str())
            .collect();
        let mut seen_errors = HashSet::new();
        for e in &op.errors {
            if !error_names.contains(&e.value.as_str()) {
                self.diags.emit(
                    Code::Unresolved,
                    e.span,
                    format!("operation `{name}` lists unknown error `{}`", e.value),
                    match closest(&e.value, error_names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("declare `{}` under `errors:`", e.value),
                    },
                );
            } else if !seen_errors.insert(e.value.as_str()) {
                self.diags.emit(
                    Code::DuplicateName,
                    e.span,
                    format!("error `{}` is listed twice", e.value),
                    "list each error once",
                );
            }
        }
        let mut method = None;
        if let Some(rest) = &op.rest {
            method = self.check_route(op, rest, input_fields.as_deref(), routes);
        }
        let safe = op.safe.as_ref().is_some_and(|s| s.value);
        if let (Some(s), Some(m)) = (&op.safe, method) {
            if s.value && !m.is_read_only() {
                self.diags.emit(
                    Code::SafeNotReadOnly,
                    s.span,
                    format!("`safe: true` on `{name}`, whose route uses {}", m.as_str()),
                    "safe operations read only: use GET or HEAD, or drop `safe` and use `idempotency: key`",
                );
            }
        }
        if let Some(d) = &op.deadline {
            match parse_duration(&d.value) {
                Ok(0) => self.diags.emit(
                    Code::InvalidDuration,
                    d.span,
                    "a deadline of zero can never be met",
                    "give a positive budget, e.g. `deadline: 300ms`",
                ),
                Ok(ns) if ns > MAX_DEADLINE_NS => self.diags.emit(
                    Code::InvalidDuration,
                    d.span,
                    format!("deadline `{}` is longer than one hour", d.value),
                    "deadlines bound one call; use a shorter budget, or model long work as an event",
                ),
                Ok(_) => {}
                Err(msg) => self.diags.emit(
                    Code::InvalidDuration,
                    d.span,
                    format!("invalid deadline `{}`: {msg}", d.value),
                    "write a duration such as `300ms`, `2s` or `1m30s`",
                ),
            }
        }
        let keyed = match &op.idempotency {
            None => false,
            Some(i) if i.value == "key" => true,
            Some(i) if i.value == "none" => false,
            Some(i) => {
                self.diags.emit(
                    Code::InvalidValue,
                    i.span,
                    format!("unknown idempotency `{}`", i.value),
                    "use `idempotency: key` (Idempotency-Key header) or `none`",
                );
                false
            }
        };
        if let Some(r) = &op.retry {
            self.check_retry(r);
            if r.attempts.value > 1 && !safe && !keyed {
                self.diags.emit(
                    Code::RetryNotIdempotent,
                    r.span,
                    format!("`{name}` is retried but is neither safe nor keyed: a retry could apply it twice"),
                    "add `idempotency: key` (or `safe: true` if it only reads), or remove `retry`",
                );
            }
        }
        if let Some(s) = &op.streaming {
            match s.value.as_str() {
                "none" => {}
                "server" | "client" | "bidi" => {
                    if op.rest.is_some() {
                        self.diags.emit(
                            Code::StreamingOverRest,
                            s.span,
                            format!("`{name}` streams ({}) but also has a REST route", s.value),
                            "serve streaming operations over gRPC only: remove `rest:`",
                        );
                    }
                    if !op.grpc.as_ref().is_some_and(|g| g.value) {
                        self.diags.emit(
                            Code::StreamingOverRest,
                            s.span,
                            format!("`{name}` streams ({}) but is not served over gRPC", s.value),
                            "add `grpc: true`",
                        );
                    }
                }
                other => self.diags.emit(
                    Code::InvalidValue,
                    s.span,
                    format!("unknown streaming mode `{other}`"),
                    "use `none`, `server`, `client` or `bidi`",
                ),
            }
        }
    }

    fn check_route(
        &mut self,
        op: &OperationDecl,
        rest: &Spanned<String>,
        input_fields: Option<&[FieldDecl]>,
        routes: &mut HashMap<(HttpMethod, String), String>,
    ) -> Option<HttpMethod> {
        let name = &op.name.value;
        let Some((m, path)) = rest.value.trim().split_once(' ') else {
            self.diags.emit(
                Code::InvalidRoute,
                rest.span,
                format!("route `{}` has no method", rest.value),
                "write `rest: GET /orders/{id}`",
            );
            return None;
        };
        let path = path.trim();
        let Some(method) = HttpMethod::parse(m) else {
            self.diags.emit(
                Code::InvalidRoute,
                rest.span,
                format!("unknown HTTP method `{m}`"),
                "use GET, HEAD, POST, PUT, PATCH or DELETE, in capitals",
            );
            return None;
        };
        let mut params = Vec::new();
        let mut ok = path.starts_with('/');
        for seg in path.split('/').skip(1) {
            if let Some(p) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    ok = false;
                }
                params.push(p.to_string());
            } else if seg.is_empty() && path != "/"
                || !seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
            {
                ok = false;
            }
        }
        if !ok {
            self.diags.emit(
                Code::InvalidRoute,
                rest.span,
                format!("invalid path `{path}`"),
                "start with `/`; use segments of letters, digits, `-._~`, and `{param}` for parameters",
            );
            return None;
        }
        let first = path.split('/').nth(1).unwrap_or("");
        if first.len() > 1
            && first.starts_with('v')
            && first[1..].bytes().all(|b| b.is_ascii_digit())
        {
            self.diags.emit(
                Code::InvalidRoute,
                rest.span,
                format!("path `{path}` starts with a version segment"),
                format!(
                    "drop `/{first}`: Pactum mounts major {m} under `/v{m}` itself",
                    m = self.c.version.value.major
                ),
            );
            return None;
        }
        let mut seen = HashSet::new();
        for p in &params {
            if !seen.insert(p) {
                self.diags.emit(
                    Code::InvalidRoute,
                    rest.span,
                    format!("path parameter `{{{p}}}` appears twice"),
                    "use each parameter once",
                );
            }
            let found = input_fields.is_some_and(|f| f.iter().any(|f| &f.name.value == p));
            if !found && (input_fields.is_some() || op.input.is_none()) {
                self.diags.emit(
                    Code::PathParamMissing,
                    rest.span,
                    format!("path parameter `{{{p}}}` of `{name}` is not a field of its input"),
                    match op.input {
                        None => format!("add `input: {{ {p}: string }}` (with the right type)"),
                        Some(_) => {
                            format!("add a field `{p}` to the input, or rename the parameter")
                        }
                    },
                );
            }
        }
        self.check_param_types(op, method, &params, input_fields.unwrap_or(&[]));
        let segments: Vec<&str> = path.split('/').collect();
        for (i, seg) in segments.iter().enumerate() {
            let Some(p) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                continue;
            };
            let prefix: String = segments[..i]
                .iter()
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            match self.param_names.get(&prefix) {
                Some((other, other_op)) if other != p => self.diags.emit(
                    Code::DuplicateRoute,
                    rest.span,
                    format!("`{{{p}}}` sits where `{other_op}` names the parameter `{{{other}}}`"),
                    format!("use `{{{other}}}` here too: a router matches one parameter name per position"),
                ),
                Some(_) => {}
                None => {
                    self.param_names.insert(prefix, (p.to_string(), name.clone()));
                }
            }
        }
        let normalized: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        if let Some(other) = routes.insert((method, normalized), name.clone()) {
            self.diags.emit(
                Code::DuplicateRoute,
                rest.span,
                format!(
                    "`{} {path}` is also the route of `{other}`",
                    method.as_str()
                ),
                "give each operation its own method and path",
            );
        }
        Some(method)
    }

    /// A gRPC method returns a message: the output must be a struct (or inline fields).
    fn check_grpc_output(&mut self, p: &Payload, op: &str) {
        let Payload::Named(ty) = p else { return };
        let is_struct = match &ty.value {
            TypeExpr::Ref(r) => self
                .scope
                .resolve_named(self.index, r)
                .map_or(true, |(_, d)| matches!(d.body, TypeBody::Struct { .. })),
            _ => false,
        };
        if !is_struct {
            self.diags.emit(
                Code::GrpcShape,
                ty.span,
                format!("`{op}` is served over gRPC, whose replies are messages, but its output is not a struct"),
                "wrap it in fields: `output: { value: <type> }` (name the field for what it holds)",
            );
        }
    }

    /// Can a value of this type travel as one path or query parameter?
    fn is_scalar(&self, ty: &TypeExpr) -> bool {
        let mut current = ty.clone();
        for _ in 0..32 {
            match current {
                TypeExpr::Prim(_) => return true,
                TypeExpr::Ref(r) => match self.scope.resolve_named(self.index, &r) {
                    Ok((_, decl)) => match &decl.body {
                        TypeBody::Newtype { ty, .. } => current = ty.value.clone(),
                        TypeBody::Enum { .. } => return true,
                        TypeBody::Struct { .. } => return false,
                    },
                    Err(_) => return true, // reported elsewhere
                },
                _ => return false,
            }
        }
        false
    }

    /// Path parameters must be required scalars; on GET, HEAD and DELETE every other input
    /// field is a query parameter and must be a scalar, an optional scalar or a list of them.
    fn check_param_types(
        &mut self,
        op: &OperationDecl,
        method: HttpMethod,
        params: &[String],
        fields: &[FieldDecl],
    ) {
        let query = method.input_in_query();
        for f in fields {
            let in_path = params.contains(&f.name.value);
            let ok = if in_path {
                self.is_scalar(&f.ty.value)
            } else if query {
                let (inner, _) = f.ty.value.unwrap_optional();
                match inner {
                    TypeExpr::List(item) => self.is_scalar(item),
                    other => self.is_scalar(other),
                }
            } else {
                true
            };
            if !ok {
                let (place, allowed) = if in_path {
                    (
                        "path",
                        "a required string, number, id, enum or newtype of one",
                    )
                } else {
                    ("query", "a scalar, an optional scalar or a list of scalars")
                };
                self.diags.emit(
                    Code::ParamNotScalar,
                    f.ty.span,
                    format!(
                        "field `{}` of `{}` is a {place} parameter of `{}`, but its type cannot be one",
                        f.name.value,
                        op.name.value,
                        span_route(op)
                    ),
                    format!("make it {allowed}, or send it in a body with POST, PUT or PATCH"),
                );
            }
        }
    }

    fn check_retry(&mut self, r: &RetryDecl) {
        if r.attempts.value == 0 || r.attempts.value > MAX_ATTEMPTS {
            self.diags.emit(
                Code::InvalidValue,
                r.attempts.span,
                format!(
                    "`attempts: {}` is outside 1..={MAX_ATTEMPTS}",
                    r.attempts.value
                ),
                "count every try, including the first; 3 is a good default",
            );
        }
        if let Some(b) = &r.backoff {
            let (lo, hi) = b.value;
            if lo == 0 || lo > hi {
                self.diags.emit(
                    Code::InvalidDuration,
                    b.span,
                    "backoff must be `initial..max` with 0 < initial ≤ max",
                    "e.g. `backoff: 50ms..1s`",
                );
            }
            if hi > MAX_DEADLINE_NS {
                self.diags.emit(
                    Code::InvalidDuration,
                    b.span,
                    "backoff is longer than one hour",
                    "use a shorter maximum backoff",
                );
            }
        }
        if let Some(j) = &r.jitter {
            if j.value != "full" && j.value != "none" {
                self.diags.emit(
                    Code::InvalidValue,
                    j.span,
                    format!("unknown jitter `{}`", j.value),
                    "use `full` (recommended) or `none`",
                );
            }
        }
    }

    fn check_fact_name(&mut self, name: &Spanned<String>, kind: &str) {
        if let Verdict::NotPast { suggestion } = tense::check_event_name(&name.value) {
            self.diags.emit(
                Code::EventNotPastTense,
                name.span,
                format!("{kind} `{}` does not read as a fact that already happened", name.value),
                match suggestion {
                    Some(s) => format!("did you mean `{s}`? {kind}s are named `<Subject><PastVerb>`"),
                    None => format!(
                        "name what happened, `<Subject><PastVerb>`, e.g. `{}Changed` or `{}Created`",
                        name.value, name.value
                    ),
                },
            );
        } else if tense::reads_as_command(&name.value) {
            self.diags.emit(
                Code::EventNamedAsCommand,
                name.span,
                format!(
                    "{kind} `{}` reads like a command wrapped in an event",
                    name.value
                ),
                "name the fact itself (`OrderCreated`), or model the request as an operation",
            );
        }
    }

    fn check_event(&mut self, e: &EventDecl) {
        self.check_fact_name(&e.name, "event");
        if e.version.value == 0 || e.version.value > u64::from(u32::MAX) {
            self.diags.emit(
                Code::InvalidValue,
                e.version.span,
                "event versions start at 1",
                "write `version: 1`",
            );
        }
        let delivery = Delivery::parse(&e.delivery.value);
        if delivery.is_none() {
            self.diags.emit(
                Code::InvalidValue,
                e.delivery.span,
                format!("unknown delivery `{}`", e.delivery.value),
                "use `stream` (ordered, replayable), `pubsub` (every group) or `queue` (one worker)",
            );
        }
        self.check_fields(&e.fields, &[], &e.name.value);
        match &e.key {
            Some(k) => match e.fields.iter().find(|f| f.name.value == k.value) {
                None => self.diags.emit(
                    Code::EventKey,
                    k.span,
                    format!(
                        "ordering key `{}` is not a field of `{}`",
                        k.value, e.name.value
                    ),
                    match closest(&k.value, e.fields.iter().map(|f| f.name.value.as_str())) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "name one of the event's fields".to_string(),
                    },
                ),
                Some(f) => {
                    let scalar = matches!(f.ty.value, TypeExpr::Prim(_) | TypeExpr::Ref(_))
                        && self
                            .base_primitive(&f.ty.value)
                            .is_some_and(|p| !matches!(p, Primitive::Bytes | Primitive::F64));
                    if !scalar {
                        self.diags.emit(
                            Code::EventKey,
                            k.span,
                            format!("ordering key `{}` must be a required scalar (string, uuid, integer, …)", k.value),
                            "key events by an id field, e.g. `key: order_id`",
                        );
                    }
                }
            },
            None if delivery == Some(Delivery::Stream) => self.diags.emit(
                Code::EventKey,
                e.name.span,
                format!("stream event `{}` has no ordering `key`", e.name.value),
                "add `key: <field>`: streams are ordered per key",
            ),
            None => {}
        }
        if let Some(d) = &e.deadline {
            if d.value != "inherit" {
                self.check_event_duration(d, "deadline", MAX_EVENT_DEADLINE_NS,
                    "write `deadline: inherit` (the publisher's remaining budget) or a duration such as `deadline: 1h`; leave it out for an event worth processing however late");
            }
        }
    }

    /// A duration key of an event or a `consumes` entry: positive, at most `max`.
    fn check_event_duration(&mut self, d: &Spanned<String>, key: &str, max: u128, help: &str) {
        match parse_duration(&d.value) {
            Ok(0) => self.diags.emit(
                Code::InvalidDuration,
                d.span,
                format!("a `{key}` of zero can never be met"),
                help,
            ),
            Ok(ns) if ns > max => self.diags.emit(
                Code::InvalidDuration,
                d.span,
                format!(
                    "`{key}: {}` is longer than {}",
                    d.value,
                    if max == MAX_BUDGET_NS {
                        "one hour"
                    } else {
                        "seven days"
                    }
                ),
                help,
            ),
            Ok(_) => {}
            Err(msg) => self.diags.emit(
                Code::InvalidDuration,
                d.span,
                format!("invalid `{key}` `{}`: {msg}", d.value),
                help,
            ),
        }
    }

    fn check_webhook(&mut self, w: &WebhookDecl) {
        self.check_fact_name(&w.name, "webhook");
        if let Some(v) = &w.version {
            if v.value == 0 || v.value > u64::from(u32::MAX) {
                self.diags.emit(
                    Code::InvalidValue,
                    v.span,
                    "webhook versions start at 1",
                    "write `version: 1`",
                );
            }
        }
        self.check_fields(&w.fields, &[], &w.name.value);
    }

    fn check_call(&mut self, call: &CallDecl) {
        let Some((service, name, major)) = parse_operation_ref(&call.operation.value) else {
            self.diags.emit(
                Code::InvalidValue,
                call.operation.span,
                format!("`{}` is not an operation reference", call.operation.value),
                "write `service.Operation`, or `service.Operation@major`, e.g. `pricing.QuoteCart`",
            );
            return;
        };
        let op = match self.scope.resolve_operation(&service, &name, major) {
            Ok((_, op)) => op,
            Err(u) => {
                self.diags
                    .emit(Code::Unresolved, call.operation.span, u.message, u.help);
                return;
            }
        };
        let Some(via) = &call.via else { return };
        let (has, what, fix) = match via.value.as_str() {
            "rest" => (
                op.rest.is_some(),
                "has no REST route",
                "write `via: grpc`, or give the operation `rest:`",
            ),
            "grpc" => (
                op.grpc.as_ref().is_some_and(|g| g.value),
                "is not served over gRPC",
                "write `via: rest`, or give the operation `grpc: true`",
            ),
            other => {
                self.diags.emit(
                    Code::InvalidValue,
                    via.span,
                    format!("unknown transport `{other}`"),
                    "use `rest` or `grpc`",
                );
                return;
            }
        };
        if !has {
            self.diags.emit(
                Code::InvalidValue,
                via.span,
                format!("`{}` {what}", call.operation.value),
                fix,
            );
        }
    }

    fn check_consume(&mut self, con: &ConsumeDecl) {
        let Some((service, name, version)) = parse_event_ref(&con.event.value) else {
            self.diags.emit(
                Code::InvalidValue,
                con.event.span,
                format!("`{}` is not an event reference", con.event.value),
                "write `service.EventName@version`, e.g. `payments.PaymentCaptured@1`",
            );
            return;
        };
        let event = match self.scope.resolve_event(&service, &name, version) {
            Ok((_, e)) => e,
            Err(u) => {
                self.diags
                    .emit(Code::Unresolved, con.event.span, u.message, u.help);
                return;
            }
        };
        if let Some(d) = &con.delivery {
            match Delivery::parse(&d.value) {
                None => self.diags.emit(
                    Code::InvalidValue,
                    d.span,
                    format!("unknown delivery `{}`", d.value),
                    "use `stream`, `pubsub` or `queue`",
                ),
                Some(_) if d.value != event.delivery.value => self.diags.emit(
                    Code::ConsumeMismatch,
                    d.span,
                    format!(
                        "`{}` is published with `delivery: {}`, not `{}`",
                        con.event.value, event.delivery.value, d.value
                    ),
                    format!(
                        "write `delivery: {}`, or remove the key",
                        event.delivery.value
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Some(g) = &con.group {
            let ok = !g.value.is_empty()
                && g.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.diags.emit(
                    Code::InvalidValue,
                    g.span,
                    format!("group `{}` is not a valid consumer name", g.value),
                    "use letters, digits, `-` and `_` (brokers use it as a durable name)",
                );
            }
        }
        if let Some(r) = &con.retry {
            self.check_retry(r);
        }
        if let Some(b) = &con.budget {
            self.check_event_duration(
                b,
                "budget",
                MAX_BUDGET_NS,
                "write how long one delivery may take to handle, e.g. `budget: 30s` (at most 1h)",
            );
        }
    }

    /// A struct that must contain itself (through required, non-collection fields) can never
    /// be built; optional and collection links are fine (they are boxed or heap-allocated).
    fn check_infinite_types(&mut self) {
        let c = self.c;
        let mut edges: HashMap<String, Vec<(String, Span)>> = HashMap::new();
        for t in &c.types {
            let TypeBody::Struct { fields, .. } = &t.body else {
                continue;
            };
            for f in fields {
                if let TypeExpr::Ref(r) = &f.ty.value {
                    if let Ok((nr, decl)) = self.scope.resolve_named(self.index, r) {
                        if nr.contract == id_of(c) && Scope::shape(decl) == Shape::Struct {
                            edges
                                .entry(t.name.value.clone())
                                .or_default()
                                .push((decl.name.value.clone(), f.ty.span));
                        }
                    }
                }
            }
        }
        let mut reported = HashSet::new();
        for t in &c.types {
            let start = &t.name.value;
            // Iterative DFS: does `start` reach itself?
            let mut stack: Vec<&str> = edges
                .get(start)
                .map(|v| v.iter().map(|(n, _)| n.as_str()).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            while let Some(n) = stack.pop() {
                if n == start {
                    if reported.insert(start.clone()) {
                        let span = edges[start][0].1;
                        self.diags.emit(
                            Code::InfiniteType,
                            span,
                            format!("`{start}` contains itself through required fields, so no value of it can exist"),
                            "make one field on the cycle optional (`T?`) or a list",
                        );
                    }
                    break;
                }
                if seen.insert(n) {
                    if let Some(next) = edges.get(n) {
                        stack.extend(next.iter().map(|(n, _)| n.as_str()));
                    }
                }
            }
        }
    }
}

/// Contracts whose types reference each other compile fine in Rust, but their `.proto` files
/// would import each other, which protoc refuses. Reported once per pair, as a lint.
fn check_contract_cycles(contracts: &[Contract], scope: &Scope<'_>, diags: &mut Diagnostics) {
    fn refs(ty: &TypeExpr, out: &mut Vec<TypeRefExpr>) {
        match ty {
            TypeExpr::Ref(r) => out.push(r.clone()),
            TypeExpr::List(i) | TypeExpr::Map(i) | TypeExpr::Optional(i) => refs(i, out),
            TypeExpr::Prim(_) => {}
        }
    }
    let mut edges: Vec<HashSet<usize>> = vec![HashSet::new(); contracts.len()];
    for (i, c) in contracts.iter().enumerate() {
        let mut found = Vec::new();
        let fields = c
            .types
            .iter()
            .flat_map(|t| match &t.body {
                TypeBody::Struct { fields, .. } => fields.iter().map(|f| &f.ty.value).collect(),
                TypeBody::Newtype { ty, .. } => vec![&ty.value],
                TypeBody::Enum { .. } => Vec::new(),
            })
            .chain(
                c.errors
                    .iter()
                    .flat_map(|e| e.fields.iter().map(|f| &f.ty.value)),
            )
            .chain(
                c.events
                    .iter()
                    .flat_map(|e| e.fields.iter().map(|f| &f.ty.value)),
            );
        for ty in fields {
            refs(ty, &mut found);
        }
        for r in found.iter().filter(|r| r.service.is_some()) {
            if let Ok((target, _)) = scope.resolve_named(i, r) {
                if let Some(j) = scope.index_of(&target.contract) {
                    if j != i {
                        edges[i].insert(j);
                    }
                }
            }
        }
    }
    for i in 0..contracts.len() {
        for &j in &edges[i] {
            if i < j && edges[j].contains(&i) {
                let (a, b) = (&contracts[i], &contracts[j]);
                diags.emit(
                    Code::ContractCycle,
                    b.service.span,
                    format!(
                        "contracts `{}` and `{}` use each other's types, so their .proto files would import each other, which protoc refuses",
                        id_of(a),
                        id_of(b)
                    ),
                    "move the shared types into one of them (or a third contract both use)",
                );
            }
        }
    }
}

fn span_route(op: &OperationDecl) -> String {
    op.rest
        .as_ref()
        .map_or_else(String::new, |r| r.value.clone())
}

/// Splits `service.EventName@version`.
/// Splits `service.Operation` or `service.Operation@major`.
pub fn parse_operation_ref(s: &str) -> Option<(String, String, Option<u64>)> {
    let (path, major) = match s.split_once('@') {
        Some((p, m)) => (p, Some(m.parse().ok()?)),
        None => (s, None),
    };
    let (service, name) = path.split_once('.')?;
    if service.is_empty() || name.is_empty() || name.contains('.') {
        return None;
    }
    Some((service.to_string(), name.to_string(), major))
}

/// Splits `service.EventName@version`.
pub fn parse_event_ref(s: &str) -> Option<(String, String, u64)> {
    let (path, version) = s.split_once('@')?;
    let (service, name) = path.split_once('.')?;
    if service.is_empty() || name.is_empty() || name.contains('.') {
        return None;
    }
    Some((service.to_string(), name.to_string(), version.parse().ok()?))
}
