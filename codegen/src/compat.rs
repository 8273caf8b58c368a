//! Is a new version of a contract compatible with the old one?
//!
//! Compares two IRs contract by contract (same service, same major) and classifies every
//! change under a named rule. Rules are grouped by what they protect: the Rust API of
//! generated code (`api`), the JSON wire (`json`), the protobuf wire (`binary`), the REST
//! surface (`rest`) and events (`events`). Each finding points at the new contract (or at the
//! enclosing declaration, for removals) and says what to do instead. `docs/versioning.md`
//! lists every rule.

use crate::ast::Number;
use crate::diagnostics::{SourceMap, Span};
use crate::ir::{
    Constraints, Contract, ContractId, EventDef, Field, Idempotency, Ir, Operation, TypeDef,
    TypeKind, TypeRef, Union,
};
use std::collections::BTreeMap;
use std::fmt::Write;

/// How much a change matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Documentation only: any version may carry it.
    Patch,
    /// Compatible addition or relaxation: needs a minor bump.
    Compatible,
    /// Breaks some client: needs a new major version.
    Breaking,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Patch => "patch",
            Level::Compatible => "compatible",
            Level::Breaking => "breaking",
        }
    }
}

/// Declares every rule once: id, level, what it protects, and the advice.
macro_rules! rules {
    ($($variant:ident => ($id:literal, $level:ident, $advice:literal),)*) => {
        /// A named compatibility rule.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)] // each rule is documented by its row in docs/versioning.md
        pub enum Rule {
            $($variant,)*
        }

        impl Rule {
            /// Every rule, in documentation order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The rule id, `<group>/<name>`.
            pub fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)*
                }
            }

            /// How much it matters.
            pub fn level(self) -> Level {
                match self {
                    $(Rule::$variant => Level::$level,)*
                }
            }

            /// What to do instead (for breaking rules) or what it means.
            pub fn advice(self) -> &'static str {
                match self {
                    $(Rule::$variant => $advice,)*
                }
            }
        }
    };
}

rules! {
    ContractRemoved => ("api/contract-removed", Breaking, "keep serving the old major beside the new one until its clients are gone"),
    TypeRemoved => ("api/type-removed", Breaking, "keep the type and mark it `deprecated:`; remove it in the next major version"),
    OperationRemoved => ("api/operation-removed", Breaking, "keep the operation and mark it `deprecated:`; remove it in the next major version"),
    ErrorRemoved => ("api/error-removed", Breaking, "keep the error declared; stop returning it if it no longer happens"),
    OperationErrorAdded => ("api/operation-error-added", Breaking, "a new declared error is a new reply old clients cannot decode: add it in a new major, or a new operation"),
    OperationErrorRemoved => ("api/operation-error-removed", Breaking, "generated code matching on it stops compiling: keep it listed"),
    InputChanged => ("api/input-changed", Breaking, "add a new operation with the new input, and deprecate this one"),
    OutputChanged => ("api/output-changed", Breaking, "add a new operation with the new output, and deprecate this one"),
    SafetyChanged => ("api/safety-changed", Breaking, "clients retry by this promise: keep `safe`/`idempotency` as they were, or add a new operation"),
    StreamingChanged => ("api/streaming-changed", Breaking, "add a new operation with the new streaming shape"),
    AuthTightened => ("api/auth-tightened", Breaking, "callers with the credentials accepted before are refused: keep accepting the old schemes until every caller has moved"),
    ResumeChanged => ("api/resume-changed", Breaking, "clients resume streams by these ids: keep `resume:` as it was, or add a new operation"),
    PaginationChanged => ("api/pagination-changed", Breaking, "clients walk pages by these fields and hold cursors from them: keep `paginate:` as it was, or add a new operation"),
    GrpcRemoved => ("api/grpc-removed", Breaking, "keep serving the operation over gRPC until the next major version"),
    ShapeChanged => ("api/shape-changed", Breaking, "a struct, enum, union and newtype are different things in every language: add a new type"),
    FieldRemoved => ("json/field-removed", Breaking, "keep the field (mark it `deprecated:`), or reserve its number and bump the major version"),
    FieldTypeChanged => ("json/field-type-changed", Breaking, "add a new field with the new type and deprecate the old one"),
    RequiredFieldAdded => ("json/required-field-added", Breaking, "add the field as optional (`T?`); old clients do not send it and old servers do not return it"),
    OptionalToRequired => ("json/optional-to-required", Breaking, "keep it optional and treat absence as before"),
    RequiredToOptional => ("json/required-to-optional", Breaking, "old readers fail when it is missing: keep it required and send a default"),
    JsonNameChanged => ("json/name-changed", Breaking, "the wire name is the field's name: add a field with the new name and deprecate the old one"),
    EnumValueRemoved => ("json/enum-value-removed", Breaking, "keep the value (mark it `deprecated:`); old peers still send it"),
    VariantRemoved => ("json/variant-removed", Breaking, "keep the variant (mark it `deprecated:`); old peers still send it"),
    VariantTypeChanged => ("json/variant-type-changed", Breaking, "add a variant with the new type and deprecate the old one"),
    UnionTagChanged => ("json/union-tag-changed", Breaking, "every reader looks for the old tag property: keep it, or add a new type"),
    ConstraintTightened => ("json/constraint-tightened", Breaking, "values valid before would now be refused: keep the old bound, or validate the new one only in new operations"),
    NumberChanged => ("binary/number-changed", Breaking, "protobuf identifies fields by number: keep the old number (write `number:` explicitly)"),
    NumberReused => ("binary/number-reused", Breaking, "old messages still carry that number with another meaning: add the old number to `reserved:` and give the new field another"),
    MethodChanged => ("rest/method-changed", Breaking, "add a new operation with the new route and deprecate this one"),
    PathChanged => ("rest/path-changed", Breaking, "add a new operation with the new path and deprecate this one"),
    RouteRemoved => ("rest/route-removed", Breaking, "keep the REST route until the next major version"),
    EventRemoved => ("events/event-removed", Breaking, "keep publishing the event version until its consumers moved; deprecate it"),
    EventKeyChanged => ("events/key-changed", Breaking, "ordering per key is a promise to consumers: publish a new event version with the new key"),
    DeliveryChanged => ("events/delivery-changed", Breaking, "consumers are set up for the delivery mode: publish a new event version"),
    ContractAdded => ("api/contract-added", Compatible, "a new service or major version"),
    TypeAdded => ("api/type-added", Compatible, "a new type"),
    OperationAdded => ("api/operation-added", Compatible, "a new operation"),
    ErrorAdded => ("api/error-added", Compatible, "a newly declared error (not yet returned by existing operations)"),
    EventAdded => ("events/event-added", Compatible, "a new event or event version"),
    OptionalFieldAdded => ("json/optional-field-added", Compatible, "a new optional field: old peers ignore or omit it"),
    EnumValueAdded => ("json/enum-value-added", Compatible, "a new enum value: older readers see it as `Unrecognized` and keep working"),
    VariantAdded => ("json/variant-added", Compatible, "a new union variant: older readers see it as `Unrecognized` and keep working (older servers refuse it as input)"),
    ConstraintRelaxed => ("json/constraint-relaxed", Compatible, "values valid before stay valid"),
    RouteAdded => ("rest/route-added", Compatible, "an operation gained a REST route"),
    GrpcAdded => ("api/grpc-added", Compatible, "an operation is now also served over gRPC"),
    AuthRelaxed => ("api/auth-relaxed", Compatible, "more callers may call it: a scheme added, or the operation made public"),
    ResumeAdded => ("api/resume-added", Compatible, "a server stream now resumes after a dropped connection"),
    PaginationAdded => ("api/pagination-added", Compatible, "an operation now pages: its clients gain a stream of every item"),
    GuardrailChanged => ("api/guardrail-changed", Compatible, "a deadline or retry policy changed"),
    Deprecated => ("api/deprecated", Compatible, "marked deprecated: plan its removal for the next major version"),
    DocsChanged => ("docs/changed", Patch, "documentation only"),
}

/// One classified change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The contract it concerns.
    pub contract: ContractId,
    /// Where, in the new contract (the enclosing declaration for removals).
    pub span: Option<Span>,
    /// What changed.
    pub message: String,
}

/// A version-discipline verdict for one contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discipline {
    /// The contract.
    pub contract: ContractId,
    /// Old and new versions.
    pub versions: (String, String),
    /// Error (breaking without major bump, version went down) or warning (compatible change
    /// without minor bump).
    pub error: bool,
    /// What is wrong and what to do.
    pub message: String,
    /// Where the new contract declares its version.
    pub span: Span,
}

/// The whole comparison.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every change, in contract and source order.
    pub findings: Vec<Finding>,
    /// Version discipline per contract.
    pub discipline: Vec<Discipline>,
}

impl Report {
    /// Breaking findings.
    pub fn breaking(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.rule.level() == Level::Breaking)
            .count()
    }

    /// Does the comparison fail? Discipline errors always; warnings when denied.
    pub fn failed(&self, deny_warnings: bool) -> bool {
        self.discipline.iter().any(|d| d.error || deny_warnings)
    }

    /// `path:line:col: breaking[json/field-removed]: …` lines with `help:`, then discipline.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        let at = |span: Option<Span>| match span {
            Some(s) => format!("{}:{}:{}", sources.path(s.file).display(), s.line, s.col),
            None => "pactum".into(),
        };
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{}: {}[{}]: {}\n  help: {}",
                at(f.span),
                f.rule.level().as_str(),
                f.rule.id(),
                f.message,
                f.rule.advice()
            );
        }
        for d in &self.discipline {
            let _ = writeln!(
                out,
                "{}: {}[version]: {}",
                at(Some(d.span)),
                if d.error { "error" } else { "warning" },
                d.message
            );
        }
        out
    }

    /// The report as JSON, for tools.
    pub fn to_json(&self, sources: &SourceMap) -> serde_json::Value {
        let place = |span: Option<Span>| match span {
            Some(s) => serde_json::json!({
                "file": sources.path(s.file).display().to_string(),
                "line": s.line,
                "col": s.col,
            }),
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "findings": self.findings.iter().map(|f| serde_json::json!({
                "rule": f.rule.id(),
                "level": f.rule.level().as_str(),
                "contract": f.contract.to_string(),
                "message": f.message,
                "help": f.rule.advice(),
                "location": place(f.span),
            })).collect::<Vec<_>>(),
            "versions": self.discipline.iter().map(|d| serde_json::json!({
                "contract": d.contract.to_string(),
                "old": d.versions.0,
                "new": d.versions.1,
                "severity": if d.error { "error" } else { "warning" },
                "message": d.message,
                "location": place(Some(d.span)),
            })).collect::<Vec<_>>(),
            "breaking": self.breaking(),
        })
    }
}

/// Compares every contract of `old` with its counterpart (same service and major) in `new`.
pub fn compare(old: &Ir, new: &Ir) -> Report {
    let mut report = Report::default();
    for o in &old.contracts {
        match new.contracts.iter().find(|n| n.id == o.id) {
            Some(n) => {
                let mut cmp = Comparer {
                    old: o,
                    new: n,
                    findings: Vec::new(),
                };
                cmp.contract();
                let findings = cmp.findings;
                if let Some(d) = discipline(o, n, &findings) {
                    report.discipline.push(d);
                }
                report.findings.extend(findings);
            }
            None => report.findings.push(Finding {
                rule: Rule::ContractRemoved,
                contract: o.id.clone(),
                span: None,
                message: format!("contract `{}` (version {}) is gone", o.id, o.version),
            }),
        }
    }
    for n in &new.contracts {
        if !old.contracts.iter().any(|o| o.id == n.id) {
            report.findings.push(Finding {
                rule: Rule::ContractAdded,
                contract: n.id.clone(),
                span: Some(n.span),
                message: format!("contract `{}` {} is new", n.id, n.version),
            });
        }
    }
    report
}

fn parse_version(v: &str) -> (u64, u64, u64) {
    let core = v.split('-').next().unwrap_or(v);
    let mut parts = core.split('.').map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

fn discipline(old: &Contract, new: &Contract, findings: &[Finding]) -> Option<Discipline> {
    let (ov, nv) = (parse_version(&old.version), parse_version(&new.version));
    let worst = findings.iter().map(|f| f.rule.level()).max();
    let make = |error: bool, message: String| Discipline {
        contract: new.id.clone(),
        versions: (old.version.clone(), new.version.clone()),
        error,
        message,
        span: new.span,
    };
    if nv < ov {
        return Some(make(
            true,
            format!("version went down from {} to {}", old.version, new.version),
        ));
    }
    match worst {
        Some(Level::Breaking) => Some(make(
            true,
            format!(
                "`{}` has breaking changes but stays at major {}: keep the old contract and put these changes in a new file with version {}.0.0",
                new.id.service,
                nv.0,
                nv.0 + 1
            ),
        )),
        Some(Level::Compatible) if nv.1 <= ov.1 => Some(make(
            false,
            format!(
                "`{}` has compatible changes but version {} does not bump the minor: use {}.{}.0",
                new.id, new.version, nv.0, ov.1 + 1
            ),
        )),
        _ => None,
    }
}

struct Comparer<'a> {
    old: &'a Contract,
    new: &'a Contract,
    findings: Vec<Finding>,
}

impl<'a> Comparer<'a> {
    fn push(&mut self, rule: Rule, span: Option<Span>, message: String) {
        self.findings.push(Finding {
            rule,
            contract: self.new.id.clone(),
            span,
            message,
        });
    }

    fn contract(&mut self) {
        if self.old.docs != self.new.docs {
            self.push(
                Rule::DocsChanged,
                Some(self.new.span),
                "the contract's description changed".into(),
            );
        }
        for os in &self.old.auth {
            if let Some(ns) = self.new.auth.iter().find(|s| s.name == os.name) {
                if ns.kind != os.kind {
                    self.push(
                        Rule::AuthTightened,
                        Some(self.new.span),
                        format!(
                            "scheme `{}` changed what callers present ({:?} → {:?})",
                            os.name, os.kind, ns.kind
                        ),
                    );
                }
            }
        }
        self.types();
        self.errors();
        self.operations();
        self.events();
    }

    fn types(&mut self) {
        let old = self.old;
        let new = self.new;
        for ot in &old.types {
            let Some(nt) = new.types.iter().find(|t| t.name == ot.name) else {
                self.push(
                    Rule::TypeRemoved,
                    Some(new.span),
                    format!("type `{}` was removed", ot.name),
                );
                continue;
            };
            if ot.deprecated.is_none() && nt.deprecated.is_some() {
                self.push(
                    Rule::Deprecated,
                    Some(nt.span),
                    format!("type `{}` is now deprecated", nt.name),
                );
            }
            if ot.docs != nt.docs {
                self.push(
                    Rule::DocsChanged,
                    Some(nt.span),
                    format!("the description of `{}` changed", nt.name),
                );
            }
            match (&ot.kind, &nt.kind) {
                (TypeKind::Struct(of), TypeKind::Struct(nf)) => {
                    self.fields(&nt.name, nt.span, of, nf, &nt.reserved);
                }
                (TypeKind::Enum(ov), TypeKind::Enum(nv)) => {
                    for v in ov {
                        if !nv.iter().any(|n| n.wire == v.wire) {
                            self.push(
                                Rule::EnumValueRemoved,
                                Some(nt.span),
                                format!("value `{}` was removed from enum `{}`", v.wire, nt.name),
                            );
                        }
                    }
                    for v in nv {
                        match ov.iter().find(|o| o.wire == v.wire) {
                            None => self.push(
                                Rule::EnumValueAdded,
                                Some(nt.span),
                                format!("enum `{}` gained value `{}`", nt.name, v.wire),
                            ),
                            Some(o) if o.number != v.number => self.push(
                                Rule::NumberChanged,
                                Some(nt.span),
                                format!(
                                    "value `{}` of `{}` changed number {} → {}",
                                    v.wire, nt.name, o.number, v.number
                                ),
                            ),
                            Some(o) => {
                                if o.deprecated.is_none() && v.deprecated.is_some() {
                                    self.push(
                                        Rule::Deprecated,
                                        Some(nt.span),
                                        format!(
                                            "value `{}` of `{}` is now deprecated",
                                            v.wire, nt.name
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
                (TypeKind::Union(ou), TypeKind::Union(nu)) => self.union(nt, ou, nu),
                (
                    TypeKind::Newtype {
                        inner: oi,
                        constraints: oc,
                    },
                    TypeKind::Newtype {
                        inner: ni,
                        constraints: nc,
                    },
                ) => {
                    if oi != ni {
                        self.push(
                            Rule::FieldTypeChanged,
                            Some(nt.span),
                            format!(
                                "newtype `{}` now wraps {} instead of {}",
                                nt.name,
                                show(ni),
                                show(oi)
                            ),
                        );
                    } else {
                        self.constraints(&nt.name, nt.span, oc, nc);
                    }
                }
                _ => self.push(
                    Rule::ShapeChanged,
                    Some(nt.span),
                    format!(
                        "`{}` changed between struct, enum, union and newtype",
                        nt.name
                    ),
                ),
            }
        }
        for nt in &new.types {
            if !old.types.iter().any(|t| t.name == nt.name) {
                self.push(
                    Rule::TypeAdded,
                    Some(nt.span),
                    format!("type `{}` was added", nt.name),
                );
            }
        }
    }

    /// A union's tag, its variants' presence, types and numbers.
    fn union(&mut self, nt: &TypeDef, old: &Union, new: &Union) {
        if old.tag != new.tag {
            self.push(
                Rule::UnionTagChanged,
                Some(nt.span),
                format!(
                    "union `{}` is now tagged by `{}` instead of `{}`",
                    nt.name, new.tag, old.tag
                ),
            );
        }
        for v in &old.variants {
            if !new.variants.iter().any(|n| n.wire == v.wire) {
                self.push(
                    Rule::VariantRemoved,
                    Some(nt.span),
                    format!("variant `{}` was removed from union `{}`", v.wire, nt.name),
                );
            }
        }
        for v in &new.variants {
            let Some(o) = old.variants.iter().find(|o| o.wire == v.wire) else {
                self.push(
                    Rule::VariantAdded,
                    Some(nt.span),
                    format!("union `{}` gained variant `{}`", nt.name, v.wire),
                );
                if let Some(gone) = old.variants.iter().find(|o| o.number == v.number) {
                    self.push(
                        Rule::NumberReused,
                        Some(nt.span),
                        format!(
                            "variant `{}` of `{}` takes number {}, which was `{}`'s",
                            v.wire, nt.name, v.number, gone.wire
                        ),
                    );
                }
                continue;
            };
            if o.ty != v.ty {
                self.push(
                    Rule::VariantTypeChanged,
                    Some(nt.span),
                    format!(
                        "variant `{}` of `{}` now carries `{}` instead of `{}`",
                        v.wire, nt.name, v.ty.name, o.ty.name
                    ),
                );
            }
            if o.number != v.number {
                self.push(
                    Rule::NumberChanged,
                    Some(nt.span),
                    format!(
                        "variant `{}` of `{}` changed number {} → {}",
                        v.wire, nt.name, o.number, v.number
                    ),
                );
            }
            if o.deprecated.is_none() && v.deprecated.is_some() {
                self.push(
                    Rule::Deprecated,
                    Some(nt.span),
                    format!("variant `{}` of `{}` is now deprecated", v.wire, nt.name),
                );
            }
        }
    }

    fn fields(
        &mut self,
        owner: &str,
        owner_span: Span,
        old: &[Field],
        new: &[Field],
        reserved: &[u32],
    ) {
        for of in old {
            let Some(nf) = new.iter().find(|f| f.wire_name == of.wire_name) else {
                // Same number and type, other name: a rename.
                match new.iter().find(|f| f.number == of.number && f.ty == of.ty) {
                    Some(renamed) => self.push(
                        Rule::JsonNameChanged,
                        Some(renamed.span),
                        format!(
                            "field `{}` of `{owner}` looks renamed to `{}` (same wire number {})",
                            of.wire_name, renamed.wire_name, of.number
                        ),
                    ),
                    None => self.push(
                        Rule::FieldRemoved,
                        Some(owner_span),
                        format!("field `{}` was removed from `{owner}`", of.wire_name),
                    ),
                }
                continue;
            };
            let (ot, o_opt) = strip(&of.ty);
            let (nt, n_opt) = strip(&nf.ty);
            if ot != nt {
                self.push(
                    Rule::FieldTypeChanged,
                    Some(nf.span),
                    format!(
                        "field `{}` of `{owner}` changed type {} → {}",
                        nf.wire_name,
                        show(&of.ty),
                        show(&nf.ty)
                    ),
                );
            } else if o_opt && !n_opt {
                self.push(
                    Rule::OptionalToRequired,
                    Some(nf.span),
                    format!("field `{}` of `{owner}` became required", nf.wire_name),
                );
            } else if !o_opt && n_opt {
                self.push(
                    Rule::RequiredToOptional,
                    Some(nf.span),
                    format!("field `{}` of `{owner}` became optional", nf.wire_name),
                );
            }
            if of.number != nf.number {
                self.push(
                    Rule::NumberChanged,
                    Some(nf.span),
                    format!(
                        "field `{}` of `{owner}` changed wire number {} → {}",
                        nf.wire_name, of.number, nf.number
                    ),
                );
            }
            if ot == nt {
                self.constraints(
                    &format!("{owner}.{}", nf.wire_name),
                    nf.span,
                    &of.constraints,
                    &nf.constraints,
                );
            }
            if of.deprecated.is_none() && nf.deprecated.is_some() {
                self.push(
                    Rule::Deprecated,
                    Some(nf.span),
                    format!("field `{}` of `{owner}` is now deprecated", nf.wire_name),
                );
            }
            if of.docs != nf.docs {
                self.push(
                    Rule::DocsChanged,
                    Some(nf.span),
                    format!("the description of `{owner}.{}` changed", nf.wire_name),
                );
            }
        }
        for nf in new {
            if old.iter().any(|f| f.wire_name == nf.wire_name) {
                continue;
            }
            // A number that belonged to a field now gone: a rename, or a reuse. When that
            // field is still there under a new number (an unnumbered field inserted before
            // it), its renumbering is reported above and this one is simply new.
            if let Some(gone) = old.iter().find(|f| f.number == nf.number) {
                let still_there = new.iter().any(|f| f.wire_name == gone.wire_name);
                if !still_there {
                    let renamed = gone.ty == nf.ty;
                    if !renamed && !reserved.contains(&nf.number) {
                        self.push(
                            Rule::NumberReused,
                            Some(nf.span),
                            format!(
                                "field `{}` of `{owner}` reuses wire number {} of removed field `{}`",
                                nf.wire_name, nf.number, gone.wire_name
                            ),
                        );
                    }
                    continue;
                }
            }
            let rule = if matches!(nf.ty, TypeRef::Optional(_)) {
                Rule::OptionalFieldAdded
            } else {
                Rule::RequiredFieldAdded
            };
            self.push(
                rule,
                Some(nf.span),
                format!("field `{}` was added to `{owner}`", nf.wire_name),
            );
        }
    }

    fn constraints(&mut self, what: &str, span: Span, old: &Constraints, new: &Constraints) {
        let f = |n: Number| n.as_f64();
        let mut tightened = Vec::new();
        let mut relaxed = Vec::new();
        let mut lower = |name: &str, o: Option<f64>, n: Option<f64>| match (o, n) {
            (None, Some(_)) => tightened.push(format!("{name} added")),
            (Some(_), None) => relaxed.push(format!("{name} removed")),
            (Some(a), Some(b)) if b > a => tightened.push(format!("{name} {a} → {b}")),
            (Some(a), Some(b)) if b < a => relaxed.push(format!("{name} {a} → {b}")),
            _ => {}
        };
        lower("min", old.min.map(f), new.min.map(f));
        lower(
            "min_len",
            old.min_len.map(|v| v as f64),
            new.min_len.map(|v| v as f64),
        );
        lower(
            "min_items",
            old.min_items.map(|v| v as f64),
            new.min_items.map(|v| v as f64),
        );
        let mut upper = |name: &str, o: Option<f64>, n: Option<f64>| match (o, n) {
            (None, Some(_)) => tightened.push(format!("{name} added")),
            (Some(_), None) => relaxed.push(format!("{name} removed")),
            (Some(a), Some(b)) if b < a => tightened.push(format!("{name} {a} → {b}")),
            (Some(a), Some(b)) if b > a => relaxed.push(format!("{name} {a} → {b}")),
            _ => {}
        };
        upper("max", old.max.map(f), new.max.map(f));
        upper(
            "max_len",
            old.max_len.map(|v| v as f64),
            new.max_len.map(|v| v as f64),
        );
        upper(
            "max_items",
            old.max_items.map(|v| v as f64),
            new.max_items.map(|v| v as f64),
        );
        match (&old.pattern, &new.pattern) {
            (None, Some(_)) => tightened.push("pattern added".into()),
            (Some(a), Some(b)) if a != b => tightened.push("pattern changed".into()),
            (Some(_), None) => relaxed.push("pattern removed".into()),
            _ => {}
        }
        if !tightened.is_empty() {
            self.push(
                Rule::ConstraintTightened,
                Some(span),
                format!(
                    "constraints of `{what}` tightened: {}",
                    tightened.join(", ")
                ),
            );
        }
        if !relaxed.is_empty() {
            self.push(
                Rule::ConstraintRelaxed,
                Some(span),
                format!("constraints of `{what}` relaxed: {}", relaxed.join(", ")),
            );
        }
    }

    fn errors(&mut self) {
        let (old, new) = (self.old, self.new);
        for oe in &old.errors {
            match new.errors.iter().find(|e| e.name == oe.name) {
                None => self.push(
                    Rule::ErrorRemoved,
                    Some(new.span),
                    format!("error `{}` was removed", oe.name),
                ),
                Some(ne) => {
                    if oe.status != ne.status {
                        self.push(
                            Rule::OutputChanged,
                            Some(ne.span),
                            format!(
                                "error `{}` changed status {:?} → {:?}",
                                ne.name, oe.status, ne.status
                            ),
                        );
                    }
                    self.fields(&ne.name, ne.span, &oe.fields, &ne.fields, &[]);
                }
            }
        }
        for ne in &new.errors {
            if !old.errors.iter().any(|e| e.name == ne.name) {
                self.push(
                    Rule::ErrorAdded,
                    Some(ne.span),
                    format!("error `{}` was added", ne.name),
                );
            }
        }
    }

    fn operations(&mut self) {
        let (old, new) = (self.old, self.new);
        for oo in &old.operations {
            match new.operations.iter().find(|o| o.name == oo.name) {
                None => self.push(
                    Rule::OperationRemoved,
                    Some(new.span),
                    format!("operation `{}` was removed", oo.name),
                ),
                Some(no) => self.operation(oo, no),
            }
        }
        for no in &new.operations {
            if !old.operations.iter().any(|o| o.name == no.name) {
                self.push(
                    Rule::OperationAdded,
                    Some(no.span),
                    format!("operation `{}` was added", no.name),
                );
            }
        }
    }

    fn operation(&mut self, o: &Operation, n: &Operation) {
        let name = &n.name;
        let at = Some(n.span);
        // Inline inputs/outputs are compared as types (`<Op>Request`); a switch between named
        // types is a different input.
        if o.input.as_ref().map(|r| &r.name) != n.input.as_ref().map(|r| &r.name) {
            self.push(
                Rule::InputChanged,
                at,
                format!("operation `{name}` takes a different input type"),
            );
        }
        if o.output != n.output {
            self.push(
                Rule::OutputChanged,
                at,
                format!(
                    "operation `{name}` returns {} instead of {}",
                    opt_show(&n.output),
                    opt_show(&o.output)
                ),
            );
        }
        for e in &n.errors {
            if !o.errors.contains(e) {
                self.push(
                    Rule::OperationErrorAdded,
                    at,
                    format!("operation `{name}` can now return `{e}`"),
                );
            }
        }
        for e in &o.errors {
            if !n.errors.contains(e) {
                self.push(
                    Rule::OperationErrorRemoved,
                    at,
                    format!("operation `{name}` no longer lists `{e}`"),
                );
            }
        }
        match (&o.rest, &n.rest) {
            (Some(or), Some(nr)) => {
                if or.method != nr.method {
                    self.push(
                        Rule::MethodChanged,
                        at,
                        format!(
                            "`{name}` changed method {} → {}",
                            or.method.as_str(),
                            nr.method.as_str()
                        ),
                    );
                }
                if or.path != nr.path {
                    self.push(
                        Rule::PathChanged,
                        at,
                        format!("`{name}` moved from {} to {}", or.full_path, nr.full_path),
                    );
                }
            }
            (Some(or), None) => self.push(
                Rule::RouteRemoved,
                at,
                format!(
                    "`{name}` no longer has its REST route {} {}",
                    or.method.as_str(),
                    or.full_path
                ),
            ),
            (None, Some(_)) => self.push(
                Rule::RouteAdded,
                at,
                format!("`{name}` gained a REST route"),
            ),
            (None, None) => {}
        }
        match (o.grpc, n.grpc) {
            (true, false) => self.push(
                Rule::GrpcRemoved,
                at,
                format!("`{name}` is no longer served over gRPC"),
            ),
            (false, true) => self.push(
                Rule::GrpcAdded,
                at,
                format!("`{name}` is now served over gRPC"),
            ),
            _ => {}
        }
        if o.safe != n.safe || o.idempotency != n.idempotency {
            let show = |op: &Operation| {
                format!(
                    "safe: {}, idempotency: {}",
                    op.safe,
                    if op.idempotency == Idempotency::Key {
                        "key"
                    } else {
                        "none"
                    }
                )
            };
            self.push(
                Rule::SafetyChanged,
                at,
                format!("`{name}` changed from {} to {}", show(o), show(n)),
            );
        }
        if o.streaming != n.streaming {
            self.push(
                Rule::StreamingChanged,
                at,
                format!(
                    "`{name}` changed streaming {:?} → {:?}",
                    o.streaming, n.streaming
                ),
            );
        }
        // Any one accepted scheme lets a caller in: losing one refuses its callers, gaining
        // one (or going public) refuses nobody.
        let (was_public, is_public) = (o.auth.is_empty(), n.auth.is_empty());
        let lost: Vec<String> = o
            .auth
            .iter()
            .filter(|s| !is_public && !n.auth.contains(s))
            .map(|s| format!("`{s}`"))
            .collect();
        if was_public && !is_public {
            self.push(
                Rule::AuthTightened,
                at,
                format!("`{name}` was public and now needs {}", n.auth.join(" or ")),
            );
        } else if !lost.is_empty() {
            self.push(
                Rule::AuthTightened,
                at,
                format!("`{name}` no longer accepts {}", lost.join(", ")),
            );
        } else if (is_public && !was_public) || n.auth.iter().any(|s| !o.auth.contains(s)) {
            self.push(
                Rule::AuthRelaxed,
                at,
                format!("`{name}` accepts more callers"),
            );
        }
        let resuming = |r: &Option<crate::ir::Resume>| {
            r.as_ref()
                .map(|r| (r.id_wire.clone(), r.after_wire.clone()))
        };
        match (resuming(&o.resume), resuming(&n.resume)) {
            (None, Some(_)) => self.push(
                Rule::ResumeAdded,
                at,
                format!("`{name}` now resumes after a dropped connection"),
            ),
            (Some(_), None) => self.push(
                Rule::ResumeChanged,
                at,
                format!("`{name}` no longer resumes"),
            ),
            (Some(a), Some(b)) if a != b => self.push(
                Rule::ResumeChanged,
                at,
                format!(
                    "`{name}` now resumes by `{}` into `{}` instead of `{}` into `{}`",
                    b.0, b.1, a.0, a.1
                ),
            ),
            _ => {}
        }
        let paging = |p: &Option<crate::ir::Pagination>| {
            p.as_ref().map(|p| {
                (
                    p.cursor_wire.clone(),
                    p.next_wire.clone(),
                    p.items_wire.clone(),
                )
            })
        };
        match (paging(&o.paginate), paging(&n.paginate)) {
            (None, Some(_)) => self.push(
                Rule::PaginationAdded,
                at,
                format!("`{name}` is now paginated"),
            ),
            (Some(_), None) => self.push(
                Rule::PaginationChanged,
                at,
                format!("`{name}` is no longer paginated"),
            ),
            (Some(a), Some(b)) if a != b => self.push(
                Rule::PaginationChanged,
                at,
                format!(
                    "`{name}` now pages by cursor `{}`, next `{}`, items `{}` instead of `{}`, `{}`, `{}`",
                    b.0, b.1, b.2, a.0, a.1, a.2
                ),
            ),
            _ => {}
        }
        if o.deadline_ns != n.deadline_ns || o.retry != n.retry {
            self.push(
                Rule::GuardrailChanged,
                at,
                format!("`{name}` changed its deadline or retry policy"),
            );
        }
        if o.deprecated.is_none() && n.deprecated.is_some() {
            self.push(
                Rule::Deprecated,
                at,
                format!("operation `{name}` is now deprecated"),
            );
        }
        if o.docs != n.docs {
            self.push(
                Rule::DocsChanged,
                at,
                format!("the description of `{name}` changed"),
            );
        }
    }

    fn events(&mut self) {
        let (old, new) = (self.old, self.new);
        let key = |e: &EventDef| (e.name.clone(), e.version);
        let olds: BTreeMap<_, _> = old.events.iter().map(|e| (key(e), e)).collect();
        let news: BTreeMap<_, _> = new.events.iter().map(|e| (key(e), e)).collect();
        for (k, oe) in &olds {
            let Some(ne) = news.get(k) else {
                self.push(
                    Rule::EventRemoved,
                    Some(new.span),
                    format!("event `{}` v{} is no longer published", oe.name, oe.version),
                );
                continue;
            };
            if oe.key != ne.key {
                self.push(
                    Rule::EventKeyChanged,
                    Some(ne.span),
                    format!(
                        "event `{}` v{} changed ordering key {:?} → {:?}",
                        ne.name, ne.version, oe.key, ne.key
                    ),
                );
            }
            if oe.delivery != ne.delivery {
                self.push(
                    Rule::DeliveryChanged,
                    Some(ne.span),
                    format!(
                        "event `{}` v{} changed delivery {} → {}",
                        ne.name,
                        ne.version,
                        oe.delivery.as_str(),
                        ne.delivery.as_str()
                    ),
                );
            }
            self.fields(
                &format!("{} v{}", ne.name, ne.version),
                ne.span,
                &oe.fields,
                &ne.fields,
                &[],
            );
            if oe.deprecated.is_none() && ne.deprecated.is_some() {
                self.push(
                    Rule::Deprecated,
                    Some(ne.span),
                    format!("event `{}` v{} is now deprecated", ne.name, ne.version),
                );
            }
        }
        for (k, ne) in &news {
            if !olds.contains_key(k) {
                self.push(
                    Rule::EventAdded,
                    Some(ne.span),
                    format!("event `{}` v{} was added", ne.name, ne.version),
                );
            }
        }
    }
}

fn strip(t: &TypeRef) -> (&TypeRef, bool) {
    match t {
        TypeRef::Optional(inner) => (inner, true),
        other => (other, false),
    }
}

fn show(t: &TypeRef) -> String {
    match t {
        TypeRef::Prim(p) => p.name().to_string(),
        TypeRef::List(i) => format!("list<{}>", show(i)),
        TypeRef::Map(i) => format!("map<string, {}>", show(i)),
        TypeRef::Optional(i) => format!("{}?", show(i)),
        TypeRef::Named(r) => format!("{}.v{}.{}", r.contract.service, r.contract.major, r.name),
    }
}

fn opt_show(t: &Option<TypeRef>) -> String {
    t.as_ref().map_or_else(|| "nothing".into(), show)
}
