//! `pactum new` and the scaffold half of `pactum generate`: lays out a standalone service for
//! one contract's service, then keeps its generated files current without touching the
//! user's.
//!
//! `pactum new` copies the contract and every contract it uses into the new directory (so the
//! service builds on its own), writes the user's files once ([`emit::scaffold`] says which
//! are whose) and a `pactum.yaml` with a `scaffold:` section. From then on `pactum generate`
//! in that directory regenerates the generated crate and [`refresh`]es the service crate's
//! generated files, naming every operation no handler file implements yet.

use crate::emit::scaffold::{self as emit, Owner, Spec};
use crate::ir::{Contract, ContractId, Ir, TypeKind, TypeRef};
use crate::outputs::Output;
use crate::write::FileStatus;
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What `pactum new` found wrong before writing anything.
pub type Refusal = String;

/// Refuses a target directory that has anything in it, unless `force`.
pub fn check_target(dir: &Path, force: bool) -> Result<(), Refusal> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(format!(
                    "`{}` is not empty\n  help: choose a new directory, or pass --force to add what the scaffold is missing there (no existing file is overwritten)",
                    dir.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot read `{}`: {e}", dir.display())),
    }
}

/// A crate name cargo accepts and Rust can spell: a letter, then letters, digits, `-`, `_`.
pub fn check_name(name: &str) -> Result<(), Refusal> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot be the crate's name\n  help: use lower-case letters, digits, `-` and `_`, starting with a letter (`--name orders-service`)"
        ))
    }
}

/// The contracts to load so that `contracts` resolve: those files and every contract under
/// `search` (default: the directory above each contract's service directory, the
/// `<root>/<service>/v<major>.yaml` layout).
pub fn contract_set(contracts: &[PathBuf], search: Option<&Path>) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = match search {
        Some(s) => vec![s.to_path_buf()],
        None => contracts
            .iter()
            .filter_map(|c| c.parent().and_then(Path::parent))
            .filter(|r| r.is_dir())
            .map(|r| {
                if r.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    r.to_path_buf()
                }
            })
            .collect(),
    };
    roots.sort();
    roots.dedup();
    let inside = |c: &PathBuf| {
        let c = fs::canonicalize(c).unwrap_or_else(|_| c.clone());
        roots
            .iter()
            .any(|r| c.starts_with(fs::canonicalize(r).unwrap_or_else(|_| r.clone())))
    };
    let mut set = roots.clone();
    set.extend(contracts.iter().filter(|c| !inside(c)).cloned());
    set
}

/// The contracts of `ir` loaded from `files`: they must all be one service's.
pub fn served<'a>(ir: &'a Ir, files: &[PathBuf]) -> Result<Vec<&'a Contract>, Refusal> {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let wanted: Vec<PathBuf> = files.iter().map(|f| canon(f)).collect();
    let found: Vec<&Contract> = ir
        .contracts
        .iter()
        .filter(|c| wanted.contains(&canon(&c.source)))
        .collect();
    let services: BTreeSet<&str> = found.iter().map(|c| c.id.service.as_str()).collect();
    match services.len() {
        1 => Ok(found),
        0 => Err("none of the given files declares a contract".to_string()),
        _ => Err(format!(
            "the contracts given are of {} services ({}); a scaffold serves one\n  help: run `pactum new` once per service",
            services.len(),
            services.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `roots` and every contract they use, transitively: through types, errors, events,
/// operations, calls and consumed events.
pub fn closure<'a>(ir: &'a Ir, roots: &[&'a Contract]) -> Vec<&'a Contract> {
    let mut seen: BTreeSet<ContractId> = roots.iter().map(|c| c.id.clone()).collect();
    let mut todo: Vec<&Contract> = roots.to_vec();
    while let Some(c) = todo.pop() {
        for id in references(c) {
            if seen.insert(id.clone()) {
                if let Some(next) = ir.contracts.iter().find(|k| k.id == id) {
                    todo.push(next);
                }
            }
        }
    }
    ir.contracts
        .iter()
        .filter(|c| seen.contains(&c.id))
        .collect()
}

/// Every other contract `c` names.
fn references(c: &Contract) -> BTreeSet<ContractId> {
    let mut out = BTreeSet::new();
    fn walk(t: &TypeRef, out: &mut BTreeSet<ContractId>) {
        match t {
            TypeRef::Prim(_) => {}
            TypeRef::List(i) | TypeRef::Map(i) | TypeRef::Optional(i) => walk(i, out),
            TypeRef::Named(r) => {
                out.insert(r.contract.clone());
            }
        }
    }
    for t in &c.types {
        match &t.kind {
            TypeKind::Struct(fields) => fields.iter().for_each(|f| walk(&f.ty, &mut out)),
            TypeKind::Newtype { inner, .. } => walk(inner, &mut out),
            TypeKind::Union(u) => u
                .variants
                .iter()
                .for_each(|v| walk(&TypeRef::Named(v.ty.clone()), &mut out)),
            TypeKind::Enum(_) => {}
        }
    }
    let fields = c
        .errors
        .iter()
        .flat_map(|e| &e.fields)
        .chain(c.events.iter().flat_map(|e| &e.fields))
        .chain(c.webhooks.iter().flat_map(|w| &w.fields));
    for f in fields {
        walk(&f.ty, &mut out);
    }
    for op in &c.operations {
        if let Some(i) = &op.input {
            out.insert(i.contract.clone());
        }
        if let Some(o) = &op.output {
            walk(o, &mut out);
        }
        for step in &op.calls {
            out.extend(step.calls.iter().map(|r| r.target.clone()));
        }
    }
    out.extend(c.consumers.iter().map(|k| k.event.contract.clone()));
    out.extend(c.calls.iter().map(|k| k.target.clone()));
    out.remove(&c.id);
    out
}

/// Copies each contract's file to `<dir>/contracts/<service>/v<major>.yaml`. A copy already
/// there is the user's: it is left as it is.
pub fn copy_contracts(dir: &Path, contracts: &[&Contract]) -> io::Result<Vec<FileStatus>> {
    let mut out = Vec::new();
    for c in contracts {
        let to = dir
            .join("contracts")
            .join(&c.id.service)
            .join(format!("{}.yaml", c.id.version_module()));
        if to.exists() {
            out.push(FileStatus::Unchanged(to));
            continue;
        }
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&c.source, &to)?;
        out.push(FileStatus::Created(to));
    }
    Ok(out)
}

/// Where a new scaffold's `pactum.yaml` puts each output.
pub const OUTPUTS: [(Output, &str); 4] = [
    (Output::Rust, "api/src/generated"),
    (Output::OpenApi, "openapi"),
    (Output::Proto, "proto"),
    (Output::AsyncApi, "asyncapi"),
];

/// The scaffold's `pactum.yaml`.
pub fn project_file(spec: &Spec) -> String {
    let outputs: String = OUTPUTS
        .iter()
        .map(|(o, dir)| format!("  {}: {dir}\n", o.key()))
        .collect();
    format!(
        "# What `pactum generate` reads and writes for the `{name}` service. Written by\n\
         # `pactum new`; yours to edit. `scaffold:` makes `generate` also rewrite the service\n\
         # crate's generated files and list the operations that have no handler yet.\n\
         pactum: 1\n\
         contracts: [contracts]\n\
         outputs:\n{outputs}\
         scaffold:\n  serves: {serves}\n  name: {name}\n  dir: {dir}\n",
        name = spec.name,
        serves = spec.serves,
        dir = spec.service_dir.display()
    )
}

/// Files under `dir` that generating `contracts` into `outputs`, and the scaffold's generated
/// files, would overwrite although pactum did not write them (no `@generated` header): what
/// `pactum new --force` must not touch.
pub fn in_the_way(
    dir: &Path,
    contracts: &[&Contract],
    spec: &Spec,
    outputs: &[(Output, PathBuf)],
) -> Result<Vec<PathBuf>, String> {
    let ir = Ir {
        contracts: contracts.iter().map(|c| (*c).clone()).collect(),
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for (output, out_dir) in outputs {
        paths.extend(
            output
                .files(&ir)?
                .into_iter()
                .map(|f| dir.join(out_dir).join(f.path)),
        );
    }
    paths.extend(
        emit::files(&ir, spec)?
            .into_iter()
            .filter(|f| f.owner == Owner::Generated)
            .map(|f| dir.join(f.path)),
    );
    Ok(paths
        .into_iter()
        .filter(|p| fs::read_to_string(p).is_ok_and(|t| !crate::write::is_generated(&t)))
        .collect())
}

/// An operation of a served contract that its handler file does not implement: it answers
/// 501 / `UNIMPLEMENTED`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhandled {
    /// The handler file.
    pub file: PathBuf,
    /// `orders.v1`.
    pub contract: ContractId,
    /// The operation (`PlaceOrder`) and its method (`place_order`).
    pub operation: String,
    /// The method to write.
    pub method: String,
}

/// What [`refresh`] did and found.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Generated files (and user files created because they were absent).
    pub statuses: Vec<FileStatus>,
    /// Generated files the user has taken over (their `@generated` header removed): kept.
    pub taken_over: Vec<PathBuf>,
    /// Operations without a handler method.
    pub unhandled: Vec<Unhandled>,
    /// Operations whose handler method is still the stub `pactum new` wrote (it returns
    /// `HandlerError::NotImplemented`).
    pub stubs: Vec<Unhandled>,
    /// Handler files that could not be read or parsed, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Writes (with `write`; otherwise only compares) the scaffold's files under `root`:
/// generated ones when they differ, the user's only when absent — all of them with
/// `all_user_files` (`pactum new`), otherwise just the handler and consumer files a new
/// contract version or `consumes` entry calls for. Then reads the handler files for the
/// operations they do not implement.
pub fn refresh(
    root: &Path,
    ir: &Ir,
    spec: &Spec,
    write: bool,
    all_user_files: bool,
) -> Result<Refreshed, String> {
    let files = emit::files(ir, spec)?;
    let mut done = Refreshed::default();
    let per_entry = [
        spec.service_dir.join("src/handlers"),
        spec.service_dir.join("src/consumers"),
    ];
    let io = |p: &Path, e: io::Error| format!("cannot write {}: {e}", p.display());
    for f in files {
        let path = root.join(&f.path);
        let existing = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let status = match (f.owner, existing) {
            (Owner::Generated, Some(t)) if t == f.contents => FileStatus::Unchanged(path),
            (Owner::Generated, Some(t)) if !crate::write::is_generated(&t) => {
                done.taken_over.push(path);
                continue;
            }
            (Owner::Generated, Some(_)) => FileStatus::Updated(path),
            (Owner::Generated, None) => FileStatus::Created(path),
            (Owner::User, Some(_)) => continue,
            (Owner::User, None) => {
                let wanted = all_user_files || per_entry.iter().any(|d| f.path.parent() == Some(d));
                if !wanted {
                    continue;
                }
                FileStatus::Created(path)
            }
        };
        if write && status.changed() {
            if let Some(parent) = status.path().parent() {
                fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            fs::write(status.path(), &f.contents).map_err(|e| io(status.path(), e))?;
        }
        done.statuses.push(status);
    }
    for group in emit::handler_groups(ir, spec) {
        let path = root.join(&group.file);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            // Not written (a check run): every method would be a stub, so none is missing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                done.unreadable.push((path, e.to_string()));
                continue;
            }
        };
        let written = match implemented(&text) {
            Ok(m) => m,
            Err(e) => {
                done.unreadable.push((path, e));
                continue;
            }
        };
        for (method, operation) in group.methods {
            let stub = written.get(&method).copied();
            let entry = Unhandled {
                file: path.clone(),
                contract: group.contract.clone(),
                operation,
                method,
            };
            match stub {
                None => done.unhandled.push(entry),
                Some(true) => done.stubs.push(entry),
                Some(false) => {}
            }
        }
    }
    Ok(done)
}

/// The methods a handler file writes in its `impl … Handlers for …` blocks, each with whether
/// it is still a stub (its body names `NotImplemented`).
fn implemented(text: &str) -> Result<std::collections::BTreeMap<String, bool>, String> {
    let file = syn::parse_file(text).map_err(|e| format!("not valid Rust ({e})"))?;
    let mut out = std::collections::BTreeMap::new();
    for item in file.items {
        let syn::Item::Impl(block) = item else {
            continue;
        };
        let is_handlers = block
            .trait_
            .as_ref()
            .and_then(|(path, _)| path.segments.last())
            .is_some_and(|s| s.ident == "Handlers");
        if !is_handlers {
            continue;
        }
        for inner in block.items {
            if let syn::ImplItem::Fn(f) = inner {
                let stub = quote::ToTokens::to_token_stream(&f.block)
                    .to_string()
                    .contains("NotImplemented");
                out.insert(f.sig.ident.to_string(), stub);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_methods_of_handlers_impls_only() {
        let text = "impl crate::wiring::orders_v1::Handlers for App {\n    async fn get_order(&self) {}\n    async fn cancel_order(&self) { Err(HandlerError::NotImplemented(\"x\")) }\n}\nimpl Other for App { fn place_order(&self) {} }\n";
        let found = implemented(text).unwrap();
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            [
                ("cancel_order".to_string(), true),
                ("get_order".to_string(), false)
            ]
        );
        let e = implemented("impl Handlers for App {").unwrap_err();
        assert!(e.starts_with("not valid Rust"), "{e}");
    }

    #[test]
    fn crate_names_are_checked() {
        assert!(check_name("orders-service").is_ok());
        assert!(check_name("Orders").is_err());
        assert!(check_name("1orders").is_err());
        assert!(check_name("").is_err());
    }
}
