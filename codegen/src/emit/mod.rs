//! IR → Rust source. Pure: returns strings; the caller writes files.
//!
//! One module per kind of output (`rust_types`, `operations`, `events`); each reads only the
//! IR. Generated code reaches its dependencies through `::pactum::__private` and names std
//! items by full path, so user type names (`Result`, `Option`, `String`) never clash with it.

pub mod asyncapi;
mod descriptor;
pub mod docs;
mod events;
mod grpc;
mod json_schema;
#[cfg(feature = "manifests")]
pub mod manifests;
mod messages;
pub mod openapi;
mod operations;
mod pagination;
pub mod proto;
mod protobuf;
mod rest;
mod rust_types;
pub mod scaffold;
mod spacing;
mod webhooks;

use crate::ir::{Contract, ContractId, Ir, NamedRef, TypeKind, TypeRef};
use crate::naming::{ident, Case};
use proc_macro2::TokenStream;
use quote::quote;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One generated file: path relative to the output directory, and its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Relative path, e.g. `orders/v1.rs`.
    pub path: PathBuf,
    /// Full text, header included.
    pub contents: String,
}

/// Context shared by the emitters of one contract.
pub(crate) struct Ctx<'a> {
    pub ir: &'a Ir,
    pub contract: &'a Contract,
    /// How many modules below the contract's module the code being emitted sits (`rest` is
    /// 1): type paths climb out by as many `super::`s.
    pub depth: usize,
    /// The types and errors gRPC operations reach: they are protobuf messages.
    pub reached: &'a protobuf::Reached,
    /// The types that travel as JSON: they are serde types.
    pub json: &'a Json,
}

impl Ctx<'_> {
    /// The Rust path to a named type, relative to the module of the contract being emitted.
    /// Sibling contracts are reached through `super::super::<service>::v<major>` so the
    /// generated tree can be mounted anywhere.
    pub fn type_path(&self, r: &NamedRef) -> TokenStream {
        let name = ident(&r.name, Case::Pascal);
        let up = self.up();
        if r.contract == self.contract.id {
            quote!(#up #name)
        } else {
            let service = ident(&r.contract.service, Case::Snake);
            let version = ident(&r.contract.version_module(), Case::Snake);
            quote!(#up super::super::#service::#version::#name)
        }
    }

    /// `super::` once per level of [`depth`](Self::depth): the path from the code being
    /// emitted back to the contract's module.
    pub fn up(&self) -> TokenStream {
        let ups = std::iter::repeat_n(quote!(super::), self.depth);
        quote!(#(#ups)*)
    }

    /// The same contract, `levels` modules further down.
    pub fn nested(&self, levels: usize) -> Ctx<'_> {
        Ctx {
            ir: self.ir,
            contract: self.contract,
            depth: self.depth + levels,
            reached: self.reached,
            json: self.json,
        }
    }

    /// Looks up a named type anywhere in the IR.
    pub fn lookup(&self, r: &NamedRef) -> Option<&TypeKind> {
        self.ir.kind(r)
    }
}

/// A `Duration` constant in the largest unit that divides it: `Duration::from_millis(200)`
/// reads at a glance, `Duration::from_nanos(200000000u64)` does not.
pub(crate) fn duration(nanos: u64) -> TokenStream {
    duration_as(quote!(::std::time::Duration), nanos)
}

/// [`duration`] through `ty`, a path to `std::time::Duration` (`Duration` where it is
/// imported).
pub(crate) fn duration_as(ty: TokenStream, nanos: u64) -> TokenStream {
    let (unit, n) = [
        ("from_secs", 1_000_000_000),
        ("from_millis", 1_000_000),
        ("from_micros", 1_000),
    ]
    .into_iter()
    .find(|(_, per)| nanos.is_multiple_of(*per))
    .map_or(("from_nanos", nanos), |(unit, per)| (unit, nanos / per));
    let unit = proc_macro2::Ident::new(unit, proc_macro2::Span::call_site());
    let n = proc_macro2::Literal::u64_unsuffixed(n);
    quote!(#ty::#unit(#n))
}

/// A type as the contract spells it (`list<OrderLine>`, `Money?`): for docs generated where
/// the contract gives none.
pub(crate) fn spelled(t: &TypeRef) -> String {
    match t {
        TypeRef::Prim(p) => p.name().to_string(),
        TypeRef::List(item) => format!("list<{}>", spelled(item)),
        TypeRef::Map(value) => format!("map<string, {}>", spelled(value)),
        TypeRef::Optional(inner) => format!("{}?", spelled(inner)),
        TypeRef::Named(r) => r.name.clone(),
    }
}

/// `a`, `b` and `c`, each in backticks; the first `most` and a count of the rest.
pub(crate) fn listed<'a>(names: impl IntoIterator<Item = &'a str>, most: usize) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    let shown: Vec<String> = names.iter().take(most).map(|n| format!("`{n}`")).collect();
    let mut text = match shown.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] if names.len() <= most => format!("{} and {last}", init.join(", ")),
        all => all.join(", "),
    };
    if names.len() > most {
        text.push_str(&format!(" and {} more", names.len() - most));
    }
    text
}

/// Doc attributes from a description, one per line (rustdoc joins them).
pub(crate) fn docs(text: Option<&str>) -> TokenStream {
    let Some(text) = text else {
        return TokenStream::new();
    };
    let lines = text.trim_end().lines().map(|l| format!(" {l}"));
    quote!(#(#[doc = #lines])*)
}

/// `#[deprecated(note = ...)]` when a reason is given.
pub(crate) fn deprecated(reason: Option<&str>) -> TokenStream {
    match reason {
        Some(note) => quote!(#[deprecated(note = #note)]),
        None => TokenStream::new(),
    }
}

/// The Rust type of a contract type.
pub(crate) fn rust_type(ctx: &Ctx<'_>, ty: &TypeRef, boxed: bool) -> TokenStream {
    rust_type_with(ty, boxed, &|r| ctx.type_path(r))
}

/// [`rust_type`] with named types spelled by `named`: relative paths inside the generated
/// tree, or absolute ones (`::orders_api::pricing::v1::Money`) for code outside it.
pub(crate) fn rust_type_with(
    ty: &TypeRef,
    boxed: bool,
    named: &dyn Fn(&NamedRef) -> TokenStream,
) -> TokenStream {
    use crate::ast::Primitive as P;
    match ty {
        TypeRef::Prim(p) => match p {
            P::Bool => quote!(bool),
            P::I32 => quote!(i32),
            P::I64 => quote!(i64),
            P::U32 => quote!(u32),
            P::U64 => quote!(u64),
            P::F64 => quote!(f64),
            P::String => quote!(::std::string::String),
            P::Bytes => quote!(::pactum::types::Bytes),
            P::Timestamp => quote!(::pactum::types::Timestamp),
            P::Duration => quote!(::pactum::types::Duration),
            P::Uuid => quote!(::pactum::types::Uuid),
            P::Decimal => quote!(::pactum::types::Decimal),
        },
        TypeRef::List(inner) => {
            let inner = rust_type_with(inner, false, named);
            quote!(::std::vec::Vec<#inner>)
        }
        TypeRef::Map(inner) => {
            let inner = rust_type_with(inner, false, named);
            quote!(::std::collections::BTreeMap<::std::string::String, #inner>)
        }
        TypeRef::Optional(inner) => {
            let inner = rust_type_with(inner, boxed, named);
            quote!(::std::option::Option<#inner>)
        }
        TypeRef::Named(r) => {
            let path = named(r);
            if boxed {
                quote!(::std::boxed::Box<#path>)
            } else {
                path
            }
        }
    }
}

/// Which transports' code goes into a contract's Rust module. The domain types, errors,
/// operation facts, event types and the `Service` trait are always there; each flag adds one
/// transport, like tonic-build's `build_server`/`build_client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// The axum REST router and the reqwest client.
    pub rest: bool,
    /// The `grpc` module: prost messages, the gRPC router and the client.
    pub grpc: bool,
    /// The event publisher, idempotent consumers and the webhook sender and receiver.
    pub messaging: bool,
}

impl Parts {
    /// Every part: what `pactum generate` and `include_contract!` emit.
    pub const ALL: Parts = Parts {
        rest: true,
        grpc: true,
        messaging: true,
    };
}

impl Default for Parts {
    fn default() -> Self {
        Parts::ALL
    }
}

/// Which types travel as JSON and so are serde types: every one when the build has a JSON
/// transport (REST, or events and webhooks); in a gRPC-only build, the event and webhook
/// payloads (JSON on a broker whatever the build) and the types they hold. Serde's derives
/// are a large share of what rustc spends on generated code, and a gRPC-only service needs
/// none of them.
#[derive(Debug)]
pub(crate) struct Json {
    all: bool,
    /// Declared errors are problem documents: JSON with REST only.
    errors: bool,
    types: std::collections::BTreeSet<(ContractId, String)>,
}

impl Json {
    fn of(ir: &Ir, parts: Parts) -> Json {
        let mut json = Json {
            all: parts.rest || parts.messaging,
            errors: parts.rest,
            types: Default::default(),
        };
        if json.all {
            return json;
        }
        let mut todo: Vec<TypeRef> = Vec::new();
        for c in &ir.contracts {
            let fields = c.events.iter().flat_map(|e| &e.fields);
            let fields = fields.chain(c.webhooks.iter().flat_map(|w| &w.fields));
            todo.extend(fields.map(|f| f.ty.clone()));
        }
        // Bounded by the number of named types: each is expanded once.
        while let Some(t) = todo.pop() {
            match t {
                TypeRef::Named(r) => {
                    if !json.types.insert((r.contract.clone(), r.name.clone())) {
                        continue;
                    }
                    match ir.kind(&r) {
                        Some(TypeKind::Struct(fields)) => {
                            todo.extend(fields.iter().map(|f| f.ty.clone()))
                        }
                        Some(TypeKind::Union(u)) => {
                            todo.extend(u.variants.iter().map(|v| TypeRef::Named(v.ty.clone())))
                        }
                        Some(TypeKind::Newtype { inner, .. }) => todo.push(inner.clone()),
                        Some(TypeKind::Enum(_)) | None => {}
                    }
                }
                TypeRef::List(i) | TypeRef::Map(i) | TypeRef::Optional(i) => todo.push(*i),
                TypeRef::Prim(_) => {}
            }
        }
        json
    }

    /// Is the type `name` of contract `c` a serde type?
    pub fn has_type(&self, c: &ContractId, name: &str) -> bool {
        self.all || self.types.contains(&(c.clone(), name.to_string()))
    }

    /// Are declared errors serde types?
    pub fn errors(&self) -> bool {
        self.errors
    }
}

/// One independently renderable piece of a contract's module body, in file order. Pieces
/// are rendered in parallel and concatenated, so a large contract uses every core.
#[derive(Clone, Copy, Debug)]
enum Section {
    Facts,
    /// Types `start..end` of the contract, in order.
    Types(usize, usize),
    Errors,
    Operations,
    EventTypes,
    /// The `events` module: publisher, outbox writer, consumers.
    Events,
    Webhooks,
    Rest,
    Grpc,
    /// The protobuf impls of the contract's types and errors that gRPC operations reach.
    Messages,
}

impl Section {
    /// A rough rank of rendering time: the gRPC module and the operations' error types are
    /// each several times any other piece.
    fn weight(self) -> u8 {
        match self {
            Section::Grpc => 3,
            Section::Operations | Section::Messages => 2,
            Section::Rest => 1,
            _ => 0,
        }
    }
}

/// Types per [`Section::Types`] piece: small enough to spread a big contract over threads,
/// big enough that per-piece overhead stays negligible.
const TYPES_PER_SECTION: usize = 64;

fn sections(contract: &Contract, parts: Parts, reached: &protobuf::Reached) -> Vec<Section> {
    let n = contract.types.len();
    let mut list = vec![Section::Facts];
    list.extend(
        (0..n)
            .step_by(TYPES_PER_SECTION)
            .map(|start| Section::Types(start, (start + TYPES_PER_SECTION).min(n))),
    );
    list.extend([Section::Errors, Section::Operations, Section::EventTypes]);
    if parts.messaging {
        list.extend([Section::Events, Section::Webhooks]);
    }
    // The `Service` trait lives with REST and is emitted even without the rest of it.
    list.push(Section::Rest);
    if parts.grpc {
        list.push(Section::Grpc);
    }
    if reached.any_in(&contract.id) {
        list.push(Section::Messages);
    }
    list
}

fn section_tokens(ctx: &Ctx<'_>, section: Section, parts: Parts) -> TokenStream {
    let contract = ctx.contract;
    match section {
        Section::Facts => {
            let (service, version, owner) =
                (&contract.id.service, &contract.version, &contract.owner);
            quote! {
                /// Service name.
                pub const SERVICE: &str = #service;
                /// Contract version (semver) this module was generated from.
                pub const VERSION: &str = #version;
                /// Team that owns this service's data.
                pub const OWNER: &str = #owner;
            }
        }
        Section::Types(start, end) => {
            let types = contract.types[start..end]
                .iter()
                .map(|t| rust_types::type_def(ctx, t));
            quote!(#(#types)*)
        }
        Section::Errors => {
            let errors = contract
                .errors
                .iter()
                .map(|e| rust_types::error_def(ctx, e));
            quote!(#(#errors)*)
        }
        Section::Operations => operations::operations(ctx),
        Section::EventTypes => {
            let events = contract.events.iter().map(|e| events::event(ctx, e));
            let webhooks = contract.webhooks.iter().map(|w| events::webhook(ctx, w));
            quote!(#(#events)* #(#webhooks)*)
        }
        Section::Events => events::events(ctx),
        Section::Webhooks => webhooks::webhooks(ctx),
        Section::Rest => rest::rest(ctx, parts.rest),
        Section::Grpc => grpc::grpc(ctx),
        Section::Messages => messages::messages(ctx),
    }
}

/// Tokens of one contract's module body. No inner attributes, so the result can be
/// `include!`d as well as used as a module file.
pub fn contract_tokens(ir: &Ir, contract: &Contract) -> TokenStream {
    let reached = protobuf::Reached::of(ir, Parts::ALL.grpc);
    let json = Json::of(ir, Parts::ALL);
    let ctx = Ctx {
        ir,
        contract,
        depth: 0,
        reached: &reached,
        json: &json,
    };
    sections(contract, Parts::ALL, &reached)
        .into_iter()
        .map(|s| section_tokens(&ctx, s, Parts::ALL))
        .collect()
}

/// One contract's module file: `header`, then its sections rendered in `layout` on up to
/// one thread per core (token streams cannot cross threads, so each thread builds the
/// tokens of the sections it renders).
fn render_contract(
    ir: &Ir,
    contract: &Contract,
    header: &str,
    layout: Layout,
    parts: Parts,
) -> Result<String, String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let reached = protobuf::Reached::of(ir, parts.grpc);
    let json = Json::of(ir, parts);
    let list = sections(contract, parts, &reached);
    let slots: Vec<Mutex<Option<Result<String, String>>>> =
        list.iter().map(|_| Mutex::new(None)).collect();
    // Biggest first, so the long sections start at once and the small ones fill the gaps.
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(list[i].weight()));
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let ctx = Ctx {
                ir,
                contract,
                depth: 0,
                reached: &reached,
                json: &json,
            };
            let text = render_body(section_tokens(&ctx, list[i], parts), layout);
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(list.len());
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    let mut body = String::new();
    for slot in slots {
        let text = slot
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| Err("internal error: a section was not rendered".into()))?;
        body.push_str(&text);
    }
    Ok(format!("{header}\n{}", spaced(body, layout)))
}

/// How generated Rust is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Pretty-printed with prettyplease: for checked-in code and compiler messages people read.
    #[default]
    Pretty,
    /// Token text, one long line per section: much faster, for build-script output nobody
    /// reads.
    Compact,
}

/// Renders tokens in `layout` with the `@generated` header.
pub fn render_with(tokens: TokenStream, header: &str, layout: Layout) -> Result<String, String> {
    Ok(format!(
        "{header}\n{}",
        spaced(render_body(tokens, layout)?, layout)
    ))
}

/// Pretty output gets blank lines between items; compact output is left as one line per
/// section.
fn spaced(body: String, layout: Layout) -> String {
    match layout {
        Layout::Pretty => spacing::space_items(&body),
        Layout::Compact => body,
    }
}

/// Formats tokens as a Rust file with the `@generated` header.
pub fn render(tokens: TokenStream, header: &str) -> Result<String, String> {
    render_with(tokens, header, Layout::Pretty)
}

/// Tokens as Rust text in `layout`, without a header. Pretty-printed items end with a newline
/// and carry no separators, so rendering parts of a file and joining them gives the text of
/// rendering the whole.
fn render_body(tokens: TokenStream, layout: Layout) -> Result<String, String> {
    match layout {
        Layout::Pretty => {
            let file: syn::File = syn::parse2(tokens).map_err(|e| {
                format!("internal error: generated Rust does not parse ({e}); please report this with the contract")
            })?;
            Ok(prettyplease::unparse(&file))
        }
        Layout::Compact if tokens.is_empty() => Ok(String::new()),
        Layout::Compact => Ok(format!("{tokens}\n")),
    }
}

fn header(sources: &[String]) -> String {
    let mut h = String::from(
        "// @generated by pactum. Do not edit: change the contract and run `pactum generate`.\n",
    );
    for s in sources {
        h.push_str(&format!("// source: {s}\n"));
    }
    h
}

/// Doc and lint attributes of a `v<major>` module.
fn version_module_attrs(c: &Contract) -> TokenStream {
    let summary = format!(" `{}` {}.", c.id.service, c.version);
    let body = docs(c.docs.as_deref());
    quote! {
        #[doc = #summary]
        #[doc = ""]
        #body
        #[allow(missing_docs, deprecated)]
    }
}

/// `pub mod <service> { … }` wrappers around each service's version modules; `body` gives
/// the tokens of one version module (`pub mod v1;`, or an inline module).
fn service_modules(ir: &Ir, body: impl Fn(&Contract) -> TokenStream) -> TokenStream {
    let mut services: BTreeMap<&str, Vec<&Contract>> = BTreeMap::new();
    for c in &ir.contracts {
        services.entry(&c.id.service).or_default().push(c);
    }
    let mods = services.iter().map(|(service, contracts)| {
        let name = ident(service, Case::Snake);
        let service_doc = format!(" Service `{service}`, owned by `{}`.", contracts[0].owner);
        let versions = contracts.iter().map(|c| {
            let attrs = version_module_attrs(c);
            let module = body(c);
            quote!(#attrs #module)
        });
        quote! {
            #[doc = #service_doc]
            pub mod #name {
                #(#versions)*
            }
        }
    });
    quote!(#(#mods)*)
}

/// Every contract as inline modules, `<service>::v<major>`: what `include_contract!` expands
/// to and what a build script's `pactum.rs` holds.
pub fn inline_modules(ir: &Ir) -> TokenStream {
    service_modules(ir, |c| {
        let v = ident(&c.id.version_module(), Case::Snake);
        let body = contract_tokens(ir, c);
        quote!(pub mod #v { #body })
    })
}

/// An index of inline modules that `include!` each contract's file from `dir` (absolute
/// paths, so the index itself can be `include!`d from anywhere).
pub fn include_index(ir: &Ir, dir: &std::path::Path) -> Result<GeneratedFile, String> {
    let tokens = service_modules(ir, |c| {
        let v = ident(&c.id.version_module(), Case::Snake);
        let path = dir.join(format!("{}.rs", c.id.file_stem()));
        let path = path.to_string_lossy().into_owned();
        quote!(pub mod #v { include!(#path); })
    });
    Ok(GeneratedFile {
        path: PathBuf::from("pactum.rs"),
        contents: render(tokens, &header(&[]))?,
    })
}

/// Every file for a module tree: `mod.rs` declaring `<service>::v<major>`, and one file per
/// contract at `<service>/v<major>.rs`.
pub fn module_tree(ir: &Ir) -> Result<Vec<GeneratedFile>, String> {
    module_tree_with(ir, Parts::ALL)
}

/// [`module_tree`] with only the given parts (pactum.yaml's `parts:`).
pub fn module_tree_with(ir: &Ir, parts: Parts) -> Result<Vec<GeneratedFile>, String> {
    let mut files = Vec::new();
    for c in &ir.contracts {
        let source = c.source.to_string_lossy().replace('\\', "/");
        files.push(GeneratedFile {
            path: PathBuf::from(&c.id.service).join(format!("{}.rs", c.id.version_module())),
            contents: render_contract(ir, c, &header(&[source]), Layout::Pretty, parts)?,
        });
    }
    let tokens = service_modules(ir, |c| {
        let v = ident(&c.id.version_module(), Case::Snake);
        quote! {
            #[rustfmt::skip]
            pub mod #v;
        }
    });
    files.push(GeneratedFile {
        path: PathBuf::from("mod.rs"),
        contents: render(tokens, &header(&[]))?,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// One contract as a single self-contained file (for `include!` and build.rs): its module
/// body only. References to other contracts need those contracts as sibling modules.
pub fn single_file(ir: &Ir, id: &ContractId) -> Result<GeneratedFile, String> {
    single_file_with(ir, id, Layout::Pretty, Parts::ALL)
}

/// [`single_file`] in the given layout, with the given parts.
pub fn single_file_with(
    ir: &Ir,
    id: &ContractId,
    layout: Layout,
    parts: Parts,
) -> Result<GeneratedFile, String> {
    let c = ir
        .contracts
        .iter()
        .find(|c| &c.id == id)
        .ok_or_else(|| format!("no contract {id}"))?;
    let source = c.source.to_string_lossy().replace('\\', "/");
    Ok(GeneratedFile {
        path: PathBuf::from(format!("{}.rs", id.file_stem())),
        contents: render_contract(ir, c, &header(&[source]), layout, parts)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rendering sections on several threads and joining them must give exactly the text of
    /// rendering the whole module at once, whatever the number of cores.
    #[test]
    fn sections_rendered_apart_join_into_the_whole() {
        let contracts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
        let outcome = crate::check(&[contracts]);
        let ir = outcome.ir.expect("the example contracts are valid");
        assert!(ir.contracts.len() > 5);
        for c in &ir.contracts {
            let whole = render(contract_tokens(&ir, c), "// h").unwrap();
            let joined = render_contract(&ir, c, "// h", Layout::Pretty, Parts::ALL).unwrap();
            assert!(whole == joined, "{} renders differently in sections", c.id);
        }
    }
}
