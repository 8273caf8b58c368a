//! Meaning checks over decoded contracts: names, references, HTTP rules, event rules, wire
//! numbers, constraints — and the lints. Every finding is reported at its own span with a fix;
//! nothing stops at the first problem. Lowering runs only when this reports no error, so the
//! IR never holds something that would emit broken Rust.
//!
//! One `ContractChecker` walks each contract (`ContractChecker::run`, here); its checks live
//! by topic in the submodules `names`, `types`, `operations`, `routes`, `events` and `calls`.

use crate::ast::*;
use crate::diagnostics::{closest, Code, Diagnostics, Span};
use crate::ir::{Delivery, HttpMethod};
use crate::naming::{check_name, collision_key, convert, Case, NameProblem};
use crate::resolve::{id_of, Scope, Shape};
use crate::tense::{self, Verdict};
use std::collections::{HashMap, HashSet};

mod auth;
mod calls;
mod events;
mod names;
mod operations;
mod routes;
mod types;

pub use calls::parse_operation_ref;
pub use events::parse_event_ref;
use types::check_contract_cycles;

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

/// Checks every contract of `scope` and the relations between them. The scope (the symbol
/// table) is built once, by the caller, and lowering resolves through the same one.
pub fn validate(scope: &Scope<'_>, diags: &mut Diagnostics) {
    let contracts = scope.contracts();
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
    check_contract_cycles(contracts, scope, diags);
    for (i, c) in contracts.iter().enumerate() {
        if scope.index_of(&id_of(c)) != Some(i) {
            continue; // a duplicate, already reported
        }
        ContractChecker {
            scope,
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
    pub(super) fn run(&mut self) {
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
        if let Some(r) = &c.resilience {
            self.check_resilience(r);
        }
        self.check_auth();
        self.check_top_level_names();
        for t in &c.types {
            self.check_type(t);
        }
        for e in &c.errors {
            self.check_error(e);
        }
        let mut routes: HashMap<(HttpMethod, String), String> = HashMap::new();
        let declared = self.declared_calls();
        for op in &c.operations {
            self.check_operation(op, &mut routes);
            self.check_operation_calls(op, &declared);
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
}
