//! IR → Rust source. Pure: returns strings; the caller writes files.
//!
//! One module per kind of output (`rust_types`, `operations`, `events`); each reads only the
//! IR. Generated code reaches its dependencies through `::pactum::__private` and names std
//! items by full path, so user type names (`Result`, `Option`, `String`) never clash with it.

pub mod asyncapi;
pub mod docs;
mod events;
mod grpc;
mod json_schema;
pub mod openapi;
mod operations;
pub mod proto;
mod rest;
mod rust_types;
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
}

impl Ctx<'_> {
    /// The Rust path to a named type, relative to the module of the contract being emitted.
    /// Sibling contracts are reached through `super::super::<service>::v<major>` so the
    /// generated tree can be mounted anywhere.
    pub fn type_path(&self, r: &NamedRef) -> TokenStream {
        let name = ident(&r.name, Case::Pascal);
        if r.contract == self.contract.id {
            quote!(#name)
        } else {
            let service = ident(&r.contract.service, Case::Snake);
            let version = ident(&r.contract.version_module(), Case::Snake);
            quote!(super::super::#service::#version::#name)
        }
    }

    /// Looks up a named type anywhere in the IR.
    pub fn lookup(&self, r: &NamedRef) -> Option<&TypeKind> {
        self.ir
            .contracts
            .iter()
            .find(|c| c.id == r.contract)?
            .types
            .iter()
            .find(|t| t.name == r.name)
            .map(|t| &t.kind)
    }
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
            let inner = rust_type(ctx, inner, false);
            quote!(::std::vec::Vec<#inner>)
        }
        TypeRef::Map(inner) => {
            let inner = rust_type(ctx, inner, false);
            quote!(::std::collections::BTreeMap<::std::string::String, #inner>)
        }
        TypeRef::Optional(inner) => {
            let inner = rust_type(ctx, inner, boxed);
            quote!(::std::option::Option<#inner>)
        }
        TypeRef::Named(r) => {
            let path = ctx.type_path(r);
            if boxed {
                quote!(::std::boxed::Box<#path>)
            } else {
                path
            }
        }
    }
}

/// Tokens of one contract's module body. No inner attributes, so the result can be
/// `include!`d as well as used as a module file.
pub fn contract_tokens(ir: &Ir, contract: &Contract) -> TokenStream {
    let ctx = Ctx { ir, contract };
    let service = &contract.id.service;
    let version = &contract.version;
    let owner = &contract.owner;
    let types = contract.types.iter().map(|t| rust_types::type_def(&ctx, t));
    let errors = contract
        .errors
        .iter()
        .map(|e| rust_types::error_def(&ctx, e));
    let operations = operations::operations(&ctx);
    let events = contract.events.iter().map(|e| events::event(&ctx, e));
    let webhooks = contract.webhooks.iter().map(|w| events::webhook(&ctx, w));
    let consumers = events::consumers(&ctx);
    let publisher = events::publisher(&ctx);
    let webhook_plumbing = webhooks::webhooks(&ctx);
    let rest = rest::rest(&ctx);
    let grpc = grpc::grpc(&ctx);
    quote! {
        /// Service name.
        pub const SERVICE: &str = #service;
        /// Contract version (semver) this module was generated from.
        pub const VERSION: &str = #version;
        /// Team that owns this service's data.
        pub const OWNER: &str = #owner;
        #(#types)*
        #(#errors)*
        #operations
        #(#events)*
        #(#webhooks)*
        #consumers
        #publisher
        #webhook_plumbing
        #rest
        #grpc
    }
}

/// How generated Rust is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Pretty-printed with prettyplease: for checked-in code and compiler messages people read.
    #[default]
    Pretty,
    /// The token stream as one long text: much faster, for build-script output nobody reads.
    Compact,
}

/// Renders tokens in `layout` with the `@generated` header.
pub fn render_with(tokens: TokenStream, header: &str, layout: Layout) -> Result<String, String> {
    match layout {
        Layout::Pretty => render(tokens, header),
        Layout::Compact => Ok(format!("{header}\n{tokens}\n")),
    }
}

/// Formats tokens as a Rust file with the `@generated` header.
pub fn render(tokens: TokenStream, header: &str) -> Result<String, String> {
    let file: syn::File = syn::parse2(tokens).map_err(|e| {
        format!("internal error: generated Rust does not parse ({e}); please report this with the contract")
    })?;
    Ok(format!("{header}\n{}", prettyplease::unparse(&file)))
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
    let mut files = Vec::new();
    for c in &ir.contracts {
        let source = c.source.to_string_lossy().replace('\\', "/");
        files.push(GeneratedFile {
            path: PathBuf::from(&c.id.service).join(format!("{}.rs", c.id.version_module())),
            contents: render(contract_tokens(ir, c), &header(&[source]))?,
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
    single_file_with(ir, id, Layout::Pretty)
}

/// [`single_file`] in the given layout.
pub fn single_file_with(ir: &Ir, id: &ContractId, layout: Layout) -> Result<GeneratedFile, String> {
    let c = ir
        .contracts
        .iter()
        .find(|c| &c.id == id)
        .ok_or_else(|| format!("no contract {id}"))?;
    let source = c.source.to_string_lossy().replace('\\', "/");
    Ok(GeneratedFile {
        path: PathBuf::from(format!("{}.rs", id.file_stem())),
        contents: render_with(contract_tokens(ir, c), &header(&[source]), layout)?,
    })
}
