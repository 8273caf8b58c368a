//! The symbol table over every loaded contract, used by validation and lowering alike so both
//! resolve a name the same way.

use crate::ast::{self, TypeBody, TypeExpr, TypeRefExpr};
use crate::diagnostics::closest;
use crate::ir::{ContractId, NamedRef, TypeRef};
use crate::naming::{convert, Case};
use std::collections::HashMap;

/// All contracts of a run, indexed.
pub struct Scope<'a> {
    contracts: &'a [ast::Contract],
    by_id: HashMap<ContractId, usize>,
}

/// Why a reference did not resolve: a message and a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

/// The shape a named type has, for checks that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Struct.
    Struct,
    /// Enum.
    Enum,
    /// Tagged union.
    Union,
    /// Newtype.
    Newtype,
}

impl<'a> Scope<'a> {
    /// Indexes contracts; on a duplicate (service, major) the first wins (validation reports it).
    pub fn new(contracts: &'a [ast::Contract]) -> Self {
        let mut by_id = HashMap::new();
        for (i, c) in contracts.iter().enumerate() {
            by_id.entry(id_of(c)).or_insert(i);
        }
        Scope { contracts, by_id }
    }

    /// The contracts.
    pub fn contracts(&self) -> &'a [ast::Contract] {
        self.contracts
    }

    /// Index of a contract by id.
    pub fn index_of(&self, id: &ContractId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Finds which contract a reference points into.
    fn target(&self, from: usize, r: &TypeRefExpr) -> Result<usize, Unresolved> {
        let Some(service) = &r.service else {
            return Ok(from);
        };
        let majors: Vec<u64> = self
            .by_id
            .keys()
            .filter(|id| &id.service == service)
            .map(|id| id.major)
            .collect();
        if majors.is_empty() {
            let services: Vec<&str> = self.by_id.keys().map(|id| id.service.as_str()).collect();
            return Err(Unresolved {
                message: format!("no contract for service `{service}` was loaded"),
                help: match closest(service, services) {
                    Some(s) => format!("did you mean `{s}.{}`?", r.name),
                    None => format!(
                        "pass the file that declares `service: {service}` to pactum along with this one"
                    ),
                },
            });
        }
        let major = match r.major {
            Some(m) if majors.contains(&m) => m,
            Some(m) => {
                return Err(Unresolved {
                    message: format!("service `{service}` has no major version {m} loaded"),
                    help: format!("loaded majors of `{service}`: {}", list(&majors)),
                })
            }
            None if majors.len() == 1 => majors[0],
            None => {
                return Err(Unresolved {
                    message: format!(
                        "`{service}.{}` is ambiguous: majors {} of `{service}` are loaded",
                        r.name,
                        list(&majors)
                    ),
                    help: format!("name the major: `{service}.v{}.{}`", majors[0], r.name),
                })
            }
        };
        Ok(self.by_id[&ContractId {
            service: service.clone(),
            major,
        }])
    }

    /// Resolves a reference to a named type.
    pub fn resolve_named(
        &self,
        from: usize,
        r: &TypeRefExpr,
    ) -> Result<(NamedRef, &'a ast::TypeDecl), Unresolved> {
        let target = self.target(from, r)?;
        let c = &self.contracts[target];
        if let Some(t) = c.types.iter().find(|t| t.name.value == r.name) {
            return Ok((
                NamedRef {
                    contract: id_of(c),
                    name: convert(&r.name, Case::Pascal),
                },
                t,
            ));
        }
        let other_kind = if c.events.iter().any(|e| e.name.value == r.name) {
            Some("an event")
        } else if c.errors.iter().any(|e| e.name.value == r.name) {
            Some("an error")
        } else if c.webhooks.iter().any(|e| e.name.value == r.name) {
            Some("a webhook")
        } else {
            None
        };
        let where_ = if target == from {
            "this contract".to_string()
        } else {
            format!("contract `{}`", id_of(c))
        };
        Err(match other_kind {
            Some(kind) => Unresolved {
                message: format!("`{r}` is {kind}, not a type"),
                help: "fields refer to types; declare the shared shape under `types:` and use it in both places".into(),
            },
            None => Unresolved {
                message: format!("unknown type `{r}` in {where_}"),
                help: match closest(
                    &r.name,
                    c.types.iter().map(|t| t.name.value.as_str()).chain(
                        // Same-contract names may be misspelt primitives (`Strin`).
                        ast::Primitive::ALL
                            .iter()
                            .filter(|_| r.service.is_none())
                            .map(|(n, _)| *n),
                    ),
                ) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "declare `{}` under `types:` of {where_}, or use a primitive (string, u32, uuid, …)",
                        r.name
                    ),
                },
            },
        })
    }

    /// The shape of a named type.
    pub fn shape(decl: &ast::TypeDecl) -> Shape {
        match decl.body {
            TypeBody::Struct { .. } => Shape::Struct,
            TypeBody::Enum { .. } => Shape::Enum,
            TypeBody::Union { .. } => Shape::Union,
            TypeBody::Newtype { .. } => Shape::Newtype,
        }
    }

    /// Resolves a whole type expression.
    pub fn resolve(&self, from: usize, ty: &TypeExpr) -> Result<TypeRef, Unresolved> {
        Ok(match ty {
            TypeExpr::Prim(p) => TypeRef::Prim(*p),
            TypeExpr::List(t) => TypeRef::List(Box::new(self.resolve(from, t)?)),
            TypeExpr::Map(t) => TypeRef::Map(Box::new(self.resolve(from, t)?)),
            TypeExpr::Optional(t) => TypeRef::Optional(Box::new(self.resolve(from, t)?)),
            TypeExpr::Ref(r) => TypeRef::Named(self.resolve_named(from, r)?.0),
        })
    }

    /// Looks up the declaration behind a resolved reference.
    pub fn decl(&self, r: &NamedRef) -> Option<(usize, &'a ast::TypeDecl)> {
        let i = self.index_of(&r.contract)?;
        self.contracts[i]
            .types
            .iter()
            .find(|t| convert(&t.name.value, Case::Pascal) == r.name)
            .map(|t| (i, t))
    }

    /// Finds `service.Event@version`: the highest loaded major of `service` that declares it.
    pub fn resolve_event(
        &self,
        service: &str,
        name: &str,
        version: u64,
    ) -> Result<(usize, &'a ast::EventDecl), Unresolved> {
        let mut candidates: Vec<(u64, usize)> = self
            .by_id
            .iter()
            .filter(|(id, _)| id.service == service)
            .map(|(id, i)| (id.major, *i))
            .collect();
        if candidates.is_empty() {
            return Err(Unresolved {
                message: format!("no contract for service `{service}` was loaded"),
                help: format!("pass the contract of `{service}` to pactum along with this one"),
            });
        }
        candidates.sort();
        let mut seen_versions = Vec::new();
        for (_, i) in candidates.iter().rev() {
            for e in &self.contracts[*i].events {
                if e.name.value == name {
                    if e.version.value == version {
                        return Ok((*i, e));
                    }
                    seen_versions.push(e.version.value);
                }
            }
        }
        let all_events = candidates.iter().flat_map(|(_, i)| {
            self.contracts[*i]
                .events
                .iter()
                .map(|e| e.name.value.as_str())
        });
        Err(if seen_versions.is_empty() {
            Unresolved {
                message: format!("service `{service}` publishes no event `{name}`"),
                help: match closest(name, all_events) {
                    Some(s) => format!("did you mean `{service}.{s}@{version}`?"),
                    None => format!("check the `events:` of the `{service}` contract"),
                },
            }
        } else {
            seen_versions.sort();
            seen_versions.dedup();
            Unresolved {
                message: format!("`{service}.{name}` has no version {version}"),
                help: format!("published versions: {}", list(&seen_versions)),
            }
        })
    }
}

impl<'a> Scope<'a> {
    /// Finds operation `name` of `service`: in major `major` when given, else in the highest
    /// major that has it.
    pub fn resolve_operation(
        &self,
        service: &str,
        name: &str,
        major: Option<u64>,
    ) -> Result<(usize, &'a ast::OperationDecl), Unresolved> {
        let mut candidates: Vec<(u64, usize)> = self
            .by_id
            .iter()
            .filter(|(id, _)| id.service == service && major.is_none_or(|m| id.major == m))
            .map(|(id, i)| (id.major, *i))
            .collect();
        if candidates.is_empty() {
            return Err(Unresolved {
                message: match major {
                    Some(m) => format!("no contract for `{service}` major {m} was loaded"),
                    None => format!("no contract for service `{service}` was loaded"),
                },
                help: format!("pass the contract of `{service}` to pactum along with this one"),
            });
        }
        candidates.sort();
        for (_, i) in candidates.iter().rev() {
            if let Some(op) = self.contracts[*i]
                .operations
                .iter()
                .find(|o| o.name.value == name)
            {
                return Ok((*i, op));
            }
        }
        let all = candidates.iter().flat_map(|(_, i)| {
            self.contracts[*i]
                .operations
                .iter()
                .map(|o| o.name.value.as_str())
        });
        Err(Unresolved {
            message: format!("service `{service}` has no operation `{name}`"),
            help: match closest(name, all) {
                Some(s) => format!("did you mean `{service}.{s}`?"),
                None => format!("check the `operations:` of the `{service}` contract"),
            },
        })
    }
}

/// The id of a decoded contract.
pub fn id_of(c: &ast::Contract) -> ContractId {
    ContractId {
        service: c.service.value.clone(),
        major: c.version.value.major,
    }
}

fn list(v: &[u64]) -> String {
    let mut v = v.to_vec();
    v.sort();
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}
