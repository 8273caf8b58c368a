//! `pactum new`: a standalone service for one contract's service, from the IR.
//!
//! Two kinds of file come out, and the writer treats them differently:
//!
//! - **generated** ([`Owner::Generated`]): `service/src/wiring.rs` (each served contract
//!   version's `Handlers` trait, whose every method answers "not implemented" until the
//!   service overrides it, the routers, the outbox relay and the consumers),
//!   `service/src/handlers/mod.rs` and `service/src/consumers/mod.rs`. They carry the
//!   `@generated` header and are rewritten on every run.
//! - **the user's** ([`Owner::User`]): the manifests, `main.rs`, `app.rs`, one handler file per
//!   served contract version and one consumer file per `consumes` entry, the README. Written
//!   once, when absent, and never again.
//!
//! The handler traits with default methods are what let a contract grow: a new operation
//! appears in the trait answering 501 / `UNIMPLEMENTED`, the service still compiles, and
//! `pactum generate` names the operations no handler file implements yet
//! ([`handler_groups`] says which methods each file should have).

use super::{docs, rust_type_with};
use crate::ir::{Consumer, Contract, ContractId, Ir, NamedRef, Operation, SchemeKind, Streaming};
use crate::naming::{ident, Case};
use askama::Template;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::path::PathBuf;

/// Who owns a scaffold file once it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Rewritten by every `pactum new` and `pactum generate`.
    Generated,
    /// Written only when absent; never overwritten.
    User,
}

/// One file of a scaffold, path relative to the scaffold's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaffoldFile {
    /// Relative path (`service/src/main.rs`).
    pub path: PathBuf,
    /// Full text.
    pub contents: String,
    /// Whether it may be rewritten.
    pub owner: Owner,
}

/// What a scaffold is for, beside the IR.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The contract service the scaffold implements (`orders`): every major of it in the IR
    /// is served.
    pub serves: String,
    /// The service crate's package name (`orders`); the generated code's crate is
    /// `<name>-api`.
    pub name: String,
    /// The TOML value of the `pactum` dependency (`{ version = "0.1.0", … }`), without the
    /// features, which the scaffold chooses.
    pub pactum: String,
    /// The service crate's directory, relative to the scaffold root (`service`).
    pub service_dir: PathBuf,
}

/// The `pactum` features every scaffold builds with: both servers, PostgreSQL (durable
/// idempotency keys, the outbox, consumers' dedup records), NATS JetStream and RabbitMQ (the
/// broker is chosen at start-up), webhooks and telemetry.
/// One set for every service, so services built side by side share one build of the stack.
pub const PACTUM_FEATURES: &[&str] = &[
    "rest",
    "grpc",
    "postgres",
    "nats",
    "rabbitmq",
    "webhooks",
    "telemetry",
];

/// One handler file: the served contract version it implements and the methods its trait
/// has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerGroup {
    /// Path relative to the scaffold root (`service/src/handlers/orders_v1.rs`).
    pub file: PathBuf,
    /// The contract version (`orders.v1`).
    pub contract: ContractId,
    /// Each operation: its method name and its name in the contract.
    pub methods: Vec<(String, String)>,
}

/// The contracts the scaffold serves: every major of `serves`.
fn served<'a>(ir: &'a Ir, spec: &Spec) -> Vec<&'a Contract> {
    ir.contracts
        .iter()
        .filter(|c| c.id.service == spec.serves)
        .collect()
}

/// `orders_v1`: the module, file and group name of a served contract version.
fn group_name(id: &ContractId) -> String {
    format!("{}_{}", id.service, id.version_module())
}

/// The Rust identifier of the generated code's crate (`orders_api`).
fn api_crate(spec: &Spec) -> proc_macro2::Ident {
    // As cargo names a library: the package name with `-` as `_`, nothing else changed.
    proc_macro2::Ident::new(
        &format!("{}_api", spec.name.replace('-', "_")),
        proc_macro2::Span::call_site(),
    )
}

/// The handler files the served contracts call for, with their methods.
pub fn handler_groups(ir: &Ir, spec: &Spec) -> Vec<HandlerGroup> {
    served(ir, spec)
        .into_iter()
        .filter(|c| !c.operations.is_empty())
        .map(|c| HandlerGroup {
            file: spec
                .service_dir
                .join("src/handlers")
                .join(format!("{}.rs", group_name(&c.id))),
            contract: c.id.clone(),
            methods: c
                .operations
                .iter()
                .map(|o| (method(o).to_string(), o.name.clone()))
                .collect(),
        })
        .collect()
}

fn method(op: &Operation) -> proc_macro2::Ident {
    ident(&op.name, Case::Snake)
}

/// The base name of a `consumes` entry, as its generated constant is named
/// (`payments_payment_captured_v1` for `PAYMENTS_PAYMENT_CAPTURED_V1`).
fn consumer_base(c: &Consumer) -> String {
    crate::naming::convert(&super::events::consumer_base(c), Case::Snake)
}

/// One consumer the service runs, and the name of its module, file and dedup table.
struct Entry<'a> {
    contract: &'a Contract,
    consumer: &'a Consumer,
    name: String,
}

/// The served contracts' `consumes` entries as consumers: two majors' entries for one event,
/// version and group are one consumer (one group reads each event once); entries for one
/// event in different groups are named with their group, and with their major after that.
fn entries<'a>(contracts: &[&'a Contract]) -> Vec<Entry<'a>> {
    let mut out: Vec<Entry<'a>> = Vec::new();
    for c in contracts {
        for k in &c.consumers {
            let same = |e: &Entry<'_>| {
                e.consumer.event == k.event
                    && e.consumer.version == k.version
                    && e.consumer.group == k.group
            };
            if out.iter().any(same) {
                continue;
            }
            let base = consumer_base(k);
            let candidates = [
                base.clone(),
                crate::naming::convert(&format!("{base}_{}", k.group), Case::Snake),
                crate::naming::convert(
                    &format!("{base}_{}_{}", k.group, c.id.version_module()),
                    Case::Snake,
                ),
            ];
            let name = candidates
                .iter()
                .find(|n| out.iter().all(|e| &e.name != *n))
                .cloned()
                .unwrap_or_else(|| format!("{}_{}", candidates[2], out.len()));
            out.push(Entry {
                contract: c,
                consumer: k,
                name,
            });
        }
    }
    out
}

/// Every file of the scaffold.
pub fn files(ir: &Ir, spec: &Spec) -> Result<Vec<ScaffoldFile>, String> {
    let contracts = served(ir, spec);
    if contracts.is_empty() {
        return Err(format!(
            "no contract of service `{}` is loaded, so there is nothing to serve",
            spec.serves
        ));
    }
    let dir = &spec.service_dir;
    let mut out = Vec::new();
    let mut push = |path: PathBuf, contents: String, owner: Owner| {
        out.push(ScaffoldFile {
            path,
            contents,
            owner,
        })
    };
    let render = |what: &str, r: Result<String, askama::Error>| {
        r.map(|s| s + "\n")
            .map_err(|e| format!("internal error: cannot render {what}: {e}"))
    };
    let facts = Facts::of(&contracts, spec);
    push(
        PathBuf::from("Cargo.toml"),
        render("Cargo.toml", WorkspaceToml { f: &facts }.render())?,
        Owner::User,
    );
    push(
        PathBuf::from("api/Cargo.toml"),
        render("api/Cargo.toml", ApiToml { f: &facts }.render())?,
        Owner::User,
    );
    push(
        PathBuf::from("api/src/lib.rs"),
        render("api/src/lib.rs", ApiLib { f: &facts }.render())?,
        Owner::User,
    );
    push(
        dir.join("Cargo.toml"),
        render("service/Cargo.toml", ServiceToml { f: &facts }.render())?,
        Owner::User,
    );
    push(
        dir.join("src/main.rs"),
        render("main.rs", MainRs { f: &facts }.render())?,
        Owner::User,
    );
    push(
        dir.join("src/app.rs"),
        render("app.rs", AppRs { f: &facts }.render())?,
        Owner::User,
    );
    push(
        PathBuf::from("README.md"),
        render("README.md", Readme { f: &facts }.render())?,
        Owner::User,
    );
    push(
        PathBuf::from(".gitignore"),
        "/target\n".to_string(),
        Owner::User,
    );
    let header = "// @generated by pactum. Do not edit: change the contract and run `pactum generate` (or `pactum new` again).\n";
    push(
        dir.join("src/wiring.rs"),
        super::render(wiring(&contracts, spec), header)?,
        Owner::Generated,
    );
    push(
        dir.join("src/handlers/mod.rs"),
        super::render(handlers_mod(&contracts), header)?,
        Owner::Generated,
    );
    push(
        dir.join("src/consumers/mod.rs"),
        super::render(consumers_mod(&contracts), header)?,
        Owner::Generated,
    );
    for c in contracts.iter().filter(|c| !c.operations.is_empty()) {
        push(
            dir.join("src/handlers")
                .join(format!("{}.rs", group_name(&c.id))),
            super::render(handler_file(c, spec), "")?,
            Owner::User,
        );
    }
    for e in entries(&contracts) {
        push(
            dir.join("src/consumers").join(format!("{}.rs", e.name)),
            super::render(consumer_file(e.contract, e.consumer, spec), "")?,
            Owner::User,
        );
    }
    Ok(out)
}

/// What the text templates need to know.
struct Facts {
    /// The service crate's package name.
    name: String,
    /// The generated code's crate, as a package name (`orders-api`).
    api_package: String,
    /// The contract service served.
    serves: String,
    /// `orders v1, v2`.
    versions: String,
    /// The service crate's directory.
    service_dir: String,
    /// The `pactum` dependency with the scaffold's features.
    pactum: String,
    /// What the service does with events.
    emits: bool,
    consumes: bool,
    /// REST and gRPC operations exist.
    rest: bool,
    grpc: bool,
    /// Operations, for the README: `GetOrder (orders v1): GET /v1/orders/{id}, gRPC`.
    operations: Vec<String>,
    /// Consumed events, for the README.
    consumed: Vec<String>,
    /// Handler files, for the README.
    handler_files: Vec<String>,
    /// A REST route to try, for the README.
    try_rest: Option<String>,
}

impl Facts {
    fn of(contracts: &[&Contract], spec: &Spec) -> Facts {
        // JSON Web Tokens only where a served contract takes bearer tokens.
        let bearer = contracts
            .iter()
            .flat_map(|c| &c.auth)
            .any(|s| s.kind == SchemeKind::Bearer);
        let features = PACTUM_FEATURES
            .iter()
            .chain(bearer.then_some(&"jwt"))
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let pactum = match spec.pactum.trim().strip_prefix('{') {
            Some(rest) => format!(
                "{{ {}, default-features = false, features = [{features}] }}",
                rest.trim_end()
                    .trim_end_matches('}')
                    .trim()
                    .trim_end_matches(',')
            ),
            None => format!(
                "{{ version = {}, default-features = false, features = [{features}] }}",
                spec.pactum.trim()
            ),
        };
        let ops = || contracts.iter().flat_map(|c| &c.operations);
        let operations = contracts
            .iter()
            .flat_map(|c| {
                c.operations.iter().map(move |o| {
                    let mut ways = Vec::new();
                    if let Some(r) = &o.rest {
                        ways.push(format!("`{} {}`", r.method.as_str(), r.full_path));
                    }
                    if o.grpc {
                        ways.push("gRPC".to_string());
                    }
                    format!(
                        "`{}` ({} v{}): {}",
                        o.name,
                        c.id.service,
                        c.id.major,
                        if ways.is_empty() {
                            "no transport".to_string()
                        } else {
                            ways.join(", ")
                        }
                    )
                })
            })
            .collect();
        let consumed = entries(contracts)
            .into_iter()
            .map(
                |Entry {
                     consumer: k, name, ..
                 }| {
                    format!(
                        "`{}.{}` v{} as group `{}` → `{}/src/consumers/{}.rs`",
                        k.event.contract.service,
                        k.event.name,
                        k.version,
                        k.group,
                        spec.service_dir.display(),
                        name
                    )
                },
            )
            .collect();
        // A GET, which needs no body and no idempotency key.
        let try_rest = ops()
            .filter_map(|o| o.rest.as_ref())
            .find(|r| r.method.as_str() == "GET")
            .map(|r| format!("GET {}", r.full_path));
        Facts {
            name: spec.name.clone(),
            api_package: format!("{}-api", spec.name),
            serves: spec.serves.clone(),
            versions: contracts
                .iter()
                .map(|c| format!("v{}", c.id.major))
                .collect::<Vec<_>>()
                .join(", "),
            service_dir: spec.service_dir.display().to_string(),
            pactum,
            emits: contracts.iter().any(|c| !c.events.is_empty()),
            consumes: contracts.iter().any(|c| !c.consumers.is_empty()),
            rest: ops().any(|o| o.rest.is_some()),
            grpc: ops().any(|o| o.grpc),
            operations,
            consumed,
            handler_files: contracts
                .iter()
                .filter(|c| !c.operations.is_empty())
                .map(|c| {
                    format!(
                        "{}/src/handlers/{}.rs",
                        spec.service_dir.display(),
                        group_name(&c.id)
                    )
                })
                .collect(),
            try_rest,
        }
    }
}

#[derive(Template)]
#[template(path = "scaffold/workspace.Cargo.toml", escape = "none")]
struct WorkspaceToml<'a> {
    f: &'a Facts,
}

#[derive(Template)]
#[template(path = "scaffold/api.Cargo.toml", escape = "none")]
struct ApiToml<'a> {
    f: &'a Facts,
}

#[derive(Template)]
#[template(path = "scaffold/api.lib.rs", escape = "none")]
struct ApiLib<'a> {
    f: &'a Facts,
}

#[derive(Template)]
#[template(path = "scaffold/service.Cargo.toml", escape = "none")]
struct ServiceToml<'a> {
    f: &'a Facts,
}

#[derive(Template)]
#[template(path = "scaffold/main.rs", escape = "none")]
struct MainRs<'a> {
    f: &'a Facts,
}

#[derive(Template)]
#[template(path = "scaffold/app.rs", escape = "none")]
struct AppRs<'a> {
    f: &'a Facts,
}

#[derive(Template)]
#[template(path = "scaffold/README.md", escape = "none")]
struct Readme<'a> {
    f: &'a Facts,
}

/// A named type as code outside the generated crate spells it: `api::Order` for the served
/// contract's own (`use … as api`), the absolute path for another contract's.
fn type_of(spec: &Spec, own: Option<&ContractId>, r: &NamedRef) -> TokenStream {
    let name = ident(&r.name, Case::Pascal);
    if own == Some(&r.contract) {
        return quote!(api::#name);
    }
    let krate = api_crate(spec);
    let service = ident(&r.contract.service, Case::Snake);
    let version = ident(&r.contract.version_module(), Case::Snake);
    quote!(::#krate::#service::#version::#name)
}

/// One operation's input parameter type (none for an operation without input) and its
/// result, as the generated `Service` trait has them, with types spelled by `named`.
fn signature(
    op: &Operation,
    named: &dyn Fn(&NamedRef) -> TokenStream,
) -> (Option<TokenStream>, TokenStream) {
    let error = format_ident!("{}Error", op.name);
    let in_ty = match &op.input {
        Some(i) => named(i),
        None => quote!(::pactum::NoInput),
    };
    let out = match &op.output {
        Some(t) => rust_type_with(t, false, named),
        None => quote!(()),
    };
    let streams_in = matches!(op.streaming, Streaming::Client | Streaming::Bidi);
    let streams_out = matches!(op.streaming, Streaming::Server | Streaming::Bidi);
    let input = if streams_in {
        Some(quote!(::pactum::BoxStream<::core::result::Result<#in_ty, ::pactum::StreamError>>))
    } else {
        op.input.as_ref().map(|_| in_ty)
    };
    let out = if streams_out {
        quote!(::pactum::BoxStream<::core::result::Result<#out, ::pactum::HandlerError<api::#error>>>)
    } else {
        out
    };
    let result = quote!(::core::result::Result<#out, ::pactum::HandlerError<api::#error>>);
    (input, result)
}

/// `service/src/wiring.rs`.
/// `verifiers()`: a verifier for each authentication scheme of the served contracts, set up
/// from the environment (`AUTH_<SCHEME>_…`), so a deployment gives keys, not code.
fn verifiers(contracts: &[&Contract]) -> TokenStream {
    let mut seen = std::collections::BTreeSet::new();
    let schemes: Vec<_> = contracts
        .iter()
        .flat_map(|c| &c.auth)
        .filter(|s| seen.insert(s.name.clone()))
        .collect();
    let mut env_doc = Vec::new();
    let steps = schemes.iter().map(|s| {
        let name = &s.name;
        let var = |what: &str| format!("AUTH_{}_{what}", s.name.to_ascii_uppercase());
        match &s.kind {
            SchemeKind::Bearer => {
                let (url, issuer, audience) = (var("JWKS_URL"), var("ISSUER"), var("AUDIENCE"));
                env_doc.push(format!(
                    " - `{name}` (bearer): `{url}` (its issuer's JWKS document; required), `{issuer}` and `{audience}` (checked when set)."
                ));
                let missing = format!("scheme `{name}` takes bearer tokens: set {url} to its issuer's JWKS document");
                quote! {
                    let url = ::std::env::var(#url).map_err(|_| #missing.to_string())?;
                    let mut jwt = ::pactum::auth::jwt::JwtVerifier::jwks_url(url);
                    if let ::core::result::Result::Ok(issuer) = ::std::env::var(#issuer) {
                        jwt = jwt.issuer(issuer);
                    }
                    if let ::core::result::Result::Ok(audience) = ::std::env::var(#audience) {
                        jwt = jwt.audience(audience);
                    }
                    verifiers = verifiers.with(#name, jwt);
                }
            }
            SchemeKind::ApiKey { header } => {
                let keys = var("KEYS");
                env_doc.push(format!(
                    " - `{name}` (an API key in `{header}`): `{keys}`, `key:subject` pairs separated by commas (required)."
                ));
                let missing = format!("scheme `{name}` takes API keys: set {keys} to `key:subject` pairs, separated by commas");
                let malformed = format!("{keys}: write `key:subject` pairs, separated by commas");
                quote! {
                    let listed = ::std::env::var(#keys).map_err(|_| #missing.to_string())?;
                    let mut keys = ::pactum::auth::ApiKeys::new();
                    for pair in listed.split(',').filter(|p| !p.trim().is_empty()) {
                        let (key, subject) = pair.trim().split_once(':').ok_or_else(|| #malformed.to_string())?;
                        keys = keys.key(key, subject);
                    }
                    verifiers = verifiers.with(#name, keys);
                }
            }
            SchemeKind::Mtls => {
                env_doc.push(format!(
                    " - `{name}` (a client certificate): any the server's client CA signed."
                ));
                quote!(verifiers = verifiers.with(#name, ::pactum::auth::Certificates::any());)
            }
        }
    }).collect::<Vec<_>>();
    let mut doc = String::from(
        " The verifier of each authentication scheme of the served contracts, from the environment.",
    );
    if env_doc.is_empty() {
        doc.push_str(" The contracts declare none.");
    }
    let doc_lines = std::iter::once(doc).chain(env_doc);
    let start = if schemes.is_empty() {
        quote!(let verifiers = ::pactum::auth::Verifiers::new();)
    } else {
        quote!(let mut verifiers = ::pactum::auth::Verifiers::new();)
    };
    quote! {
        #(#[doc = #doc_lines])*
        pub fn verifiers() -> ::core::result::Result<::pactum::auth::Verifiers, ::std::string::String> {
            #start
            #(#steps)*
            ::core::result::Result::Ok(verifiers)
        }
    }
}

fn wiring(contracts: &[&Contract], spec: &Spec) -> TokenStream {
    let krate = api_crate(spec);
    let verifiers = verifiers(contracts);
    let service_name = &spec.serves;
    let groups = contracts
        .iter()
        .filter(|c| !c.operations.is_empty() || !c.events.is_empty())
        .map(|c| {
            let module = ident(&group_name(&c.id), Case::Snake);
            let service = ident(&c.id.service, Case::Snake);
            let version = ident(&c.id.version_module(), Case::Snake);
            let own = c.id.clone();
            let named = |r: &NamedRef| type_of(spec, Some(&own), r);
            let trait_doc = format!(
                " The operations of `{}` v{} as this service implements them, in \
             `handlers/{}.rs`. A method the handler file does not write answers 501 / \
             `UNIMPLEMENTED` naming the operation.",
                c.id.service,
                c.id.major,
                group_name(&c.id)
            );
            let defaults = c.operations.iter().map(|op| {
                let name = method(op);
                let (input, result) = signature(op, &named);
                let input = input.map(|ty| quote!(, _input: #ty));
                let scope = format!("{}.v{}.{}", c.id.service, c.id.major, op.name);
                let doc = docs(Some(&super::operations::summary(op)));
                quote! {
                    #doc
                    fn #name(&self, _ctx: ::pactum::Context #input)
                        -> impl ::core::future::Future<Output = #result> + ::core::marker::Send
                    {
                        ::core::future::ready(::core::result::Result::Err(
                            ::pactum::HandlerError::NotImplemented(#scope),
                        ))
                    }
                }
            });
            let forwards = c.operations.iter().map(|op| {
                let name = method(op);
                let (input, result) = signature(op, &named);
                let (params, args) = match input {
                    None => (TokenStream::new(), TokenStream::new()),
                    Some(ty) => (quote!(, input: #ty), quote!(, input)),
                };
                quote! {
                    fn #name(&self, ctx: ::pactum::Context #params)
                        -> impl ::core::future::Future<Output = #result> + ::core::marker::Send
                    {
                        <Self as Handlers>::#name(self, ctx #args)
                    }
                }
            });
            let module_doc = format!(" `{}` v{}.", c.id.service, c.id.major);
            let handlers = (!c.operations.is_empty()).then(|| {
                quote! {
                    #[doc = #trait_doc]
                    pub trait Handlers: ::core::marker::Send + ::core::marker::Sync + 'static {
                        #(#defaults)*
                    }

                    impl api::Service for crate::app::App {
                        #(#forwards)*
                    }
                }
            });
            let outbox = (!c.events.is_empty()).then(|| {
                let doc = format!(
                    " `{}` v{}'s events, written into the outbox in `tx` (the transaction of \
                     the effect they announce) and published by the relay once it commits: \
                     `outbox(&tx).<event>(&event).await?`.",
                    c.id.service, c.id.major
                );
                quote! {
                    #[doc = #doc]
                    // For the handlers and consumers to call: unused until one publishes.
                    #[allow(dead_code)]
                    pub fn outbox<'a, 't>(
                        tx: &'a ::pactum::messaging::consumer::tokio_postgres::Transaction<'t>,
                    ) -> api::events::InTx<::pactum::store::outbox::Pg<'a, 't>> {
                        api::events::InTx::new(::pactum::store::outbox::Pg::new(tx).table(super::OUTBOX))
                    }
                }
            });
            quote! {
                #[doc = #module_doc]
                pub mod #module {
                    use ::#krate::#service::#version as api;

                    #handlers
                    #outbox
                }
            }
        });
    let module_of = |c: &Contract| {
        let service = ident(&c.id.service, Case::Snake);
        let version = ident(&c.id.version_module(), Case::Snake);
        quote!(::#krate::#service::#version)
    };
    let rest: Vec<TokenStream> = contracts
        .iter()
        .filter(|c| {
            c.operations
                .iter()
                .any(|o| o.rest.is_some() && o.streaming == Streaming::None)
        })
        .map(|c| {
            let m = module_of(c);
            quote!(.merge(#m::rest::router_with(::std::sync::Arc::clone(app), config.clone())))
        })
        .collect();
    let grpc: Vec<&&Contract> = contracts
        .iter()
        .filter(|c| c.operations.iter().any(|o| o.grpc))
        .collect();
    let grpc_routers = grpc.iter().map(|c| {
        let m = module_of(c);
        quote!(.merge(#m::grpc::router_with(::std::sync::Arc::clone(app), config.clone())))
    });
    let grpc_names = grpc.iter().map(|c| {
        let m = module_of(c);
        quote!(#m::grpc::SERVICE_NAME)
    });
    let grpc_sets = grpc.iter().map(|c| {
        let m = module_of(c);
        quote!((#m::grpc::SERVICE_NAME, #m::grpc::FILE_DESCRIPTOR_SET))
    });
    let rest_unused = rest.is_empty().then(|| quote!(let _ = (app, config);));
    let grpc_unused = grpc.is_empty().then(|| quote!(let _ = (app, config);));
    let emits = contracts.iter().any(|c| !c.events.is_empty());
    let consumers = entries(contracts);
    let events = emits || !consumers.is_empty();
    let outbox_table = format!("{}_outbox", spec.serves);
    let outbox = if emits {
        let doc = format!(
            " The outbox table: handlers and consumers write `{}`'s events into it in their own \
             transaction (each contract version's `outbox(&tx)`), and the relay publishes them.",
            spec.serves
        );
        quote! {
            #[doc = #doc]
            pub const OUTBOX: &str = #outbox_table;
        }
    } else {
        TokenStream::new()
    };
    let relay = emits.then(|| {
        quote! {
            ::pactum::store::outbox::Relay::new(broker.clone())
                .spawn_postgres(&database.clone().named(#service_name), OUTBOX, relay)
                .await
                .map_err(|e| ::std::format!("the outbox relay: {e}"))?;
        }
    });
    let starts = consumers.iter().map(|e| {
        let m = module_of(e.contract);
        let konst = ident(&consumer_base(e.consumer), Case::Screaming);
        let module = ident(&e.name, Case::Snake);
        let table = inbox_table(service_name, &e.name);
        let name = format!("{service_name}-{}", e.name);
        quote! {
            ::pactum::messaging::consumer::PgConsumer::spawn(
                broker,
                &#m::events::consumers::#konst,
                &database.clone().named(#name),
                #table,
                crate::consumers::#module::Handler { app: ::std::sync::Arc::clone(app) },
                shutdown,
            )
            .await?;
        }
    });
    let events_body = if events {
        let starts: Vec<TokenStream> = starts.collect();
        let unused = if consumers.is_empty() {
            quote!(let _ = (app, shutdown);)
        } else if !emits {
            quote!(let _ = relay;)
        } else {
            TokenStream::new()
        };
        let need = format!(
            "`{service_name}` keeps its outbox and its consumers' dedup records in PostgreSQL: pass --postgres or set DATABASE_URL"
        );
        quote! {
            #unused
            let database = database.ok_or(#need)?;
            #relay
            #(#starts)*
            ::core::result::Result::Ok(())
        }
    } else {
        quote! {
            let _ = (app, broker, database, shutdown, relay);
            ::core::result::Result::Ok(())
        }
    };
    let grpc_names_doc = " The gRPC services served, for `grpc.health.v1`.";
    quote! {
        //! What `pactum` derives from the contracts: each served contract version's `Handlers`
        //! trait (its default methods answer "not implemented"), the `Service` impls that call
        //! it, the routers, the outbox relay and the consumers. `main.rs` calls these.

        use crate::app::App;
        use ::pactum::router::axum::Router;
        use ::pactum::router::ServerConfig;

        /// The contract service this crate serves (the telemetry service name).
        pub const SERVICE: &str = #service_name;

        /// Whether the service emits or consumes events: it then needs PostgreSQL (its outbox,
        /// its consumers' records) and a broker.
        pub const EVENTS: bool = #events;

        #outbox

        #[doc = #grpc_names_doc]
        pub const GRPC_SERVICES: &[&str] = &[#(#grpc_names),*];

        #verifiers

        #(#groups)*

        /// Every REST operation served, sharing `config` (one idempotency store).
        pub fn rest_router(app: &::std::sync::Arc<App>, config: &ServerConfig) -> Router {
            #rest_unused
            Router::new() #(#rest)*
        }

        /// Every gRPC service served, sharing `config`, with server reflection.
        pub fn grpc_router(
            app: &::std::sync::Arc<App>,
            config: &ServerConfig,
        ) -> ::core::result::Result<Router, ::std::string::String> {
            #grpc_unused
            let reflection = ::pactum::grpc::reflection::router(&[
                #(#grpc_sets,)*
                ::pactum::grpc::health::REFLECTION,
            ])
            .map_err(|e| ::std::format!("cannot build gRPC reflection: {e}"))?;
            ::core::result::Result::Ok(Router::new() #(#grpc_routers)* .merge(reflection))
        }

        /// Starts what runs beside the servers: one idempotent consumer per `consumes` entry,
        /// recording what it handled in PostgreSQL in the handler's transaction, until
        /// `shutdown`; and the outbox relay (events to `broker`) until `relay`, which `main`
        /// stops last, so events committed while the rest drains are still published.
        pub async fn start_events(
            app: &::std::sync::Arc<App>,
            broker: &::pactum::messaging::Broker,
            database: ::core::option::Option<&::pactum::store::postgres::Database>,
            shutdown: &::pactum::shutdown::Shutdown,
            relay: &::pactum::shutdown::Shutdown,
        ) -> ::core::result::Result<(), ::std::string::String> {
            #events_body
        }
    }
}

/// A consumer's dedup table: `<service>_inbox_<base>`, kept within PostgreSQL's 63 bytes.
fn inbox_table(service: &str, base: &str) -> String {
    let name = format!("{service}_inbox_{base}");
    if name.len() <= 63 {
        return name;
    }
    // Long names keep a prefix and a digest of the whole, so two never collide.
    let digest = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}_{digest:016x}", &name[..46])
}

/// `service/src/handlers/mod.rs`.
fn handlers_mod(contracts: &[&Contract]) -> TokenStream {
    let modules = contracts
        .iter()
        .filter(|c| !c.operations.is_empty())
        .map(|c| {
            let m = ident(&group_name(&c.id), Case::Snake);
            let doc = format!(" `{}` v{}.", c.id.service, c.id.major);
            quote! {
                #[doc = #doc]
                pub mod #m;
            }
        });
    quote! {
        //! One handler file per served contract version; each implements that version's
        //! `wiring::<service>_v<major>::Handlers` for `App`.
        #(#modules)*
    }
}

/// `service/src/consumers/mod.rs`.
fn consumers_mod(contracts: &[&Contract]) -> TokenStream {
    let modules = entries(contracts).into_iter().map(
        |Entry {
             consumer: k, name, ..
         }| {
            let m = ident(&name, Case::Snake);
            let doc = format!(
                " `{}.{}` v{}, as group `{}`.",
                k.event.contract.service, k.event.name, k.version, k.group
            );
            quote! {
                #[doc = #doc]
                pub mod #m;
            }
        },
    );
    quote! {
        //! One file per `consumes` entry: the handler its idempotent consumer runs.
        #(#modules)*
    }
}

/// A handler file's first text: every operation, answering "not implemented".
fn handler_file(c: &Contract, spec: &Spec) -> TokenStream {
    let krate = api_crate(spec);
    let service = ident(&c.id.service, Case::Snake);
    let version = ident(&c.id.version_module(), Case::Snake);
    let module = ident(&group_name(&c.id), Case::Snake);
    let own = c.id.clone();
    let named = |r: &NamedRef| type_of(spec, Some(&own), r);
    let emits = !c.events.is_empty();
    let methods = c.operations.iter().map(|op| {
        let name = method(op);
        let (input, result) = signature(op, &named);
        let (params, uses) = match input {
            None => (TokenStream::new(), quote!(ctx)),
            Some(ty) => (quote!(, input: #ty), quote!((ctx, input))),
        };
        let scope = format!("{}.v{}.{}", c.id.service, c.id.major, op.name);
        let doc = docs(Some(&super::operations::summary(op)));
        let declared = if op.errors.is_empty() {
            String::new()
        } else {
            format!(
                " Its declared errors convert with `?`: `Err({} {{ … }})?`.",
                op.errors[0]
            )
        };
        let keyed = if op.idempotency == crate::ir::Idempotency::Key {
            " Keyed: a retry with the same `Idempotency-Key` is answered from the first \
             reply. With PostgreSQL, record the reply in the effect's transaction \
             (`ctx.claim()` → `Claim::record_in_postgres(&tx, &reply)`) so the two commit \
             together."
        } else {
            ""
        };
        let hint = format!(
            " Replace the body; until then it answers 501 / `UNIMPLEMENTED`.{declared}{keyed}"
        );
        quote! {
            #doc
            #[doc = ""]
            #[doc = #hint]
            async fn #name(&self, ctx: ::pactum::Context #params) -> #result {
                let _ = #uses;
                ::core::result::Result::Err(::pactum::HandlerError::NotImplemented(#scope))
            }
        }
    });
    let events_doc = if emits {
        format!(
            "\n\nTo publish an event, write it in the effect's transaction: \
             `crate::wiring::{}::outbox(&tx).<event>(&event).await?`; the relay `main.rs` \
             starts publishes it once the transaction commits. PostgreSQL is `self.database`.",
            group_name(&c.id)
        )
    } else {
        String::new()
    };
    let file_doc = format!(
        " The handlers of `{}` v{}. Written once by `pactum new`: this file is yours, and \
         `pactum generate` never touches it.\n\n An operation of the contract that has no \
         method here answers 501 / `UNIMPLEMENTED`: `pactum generate` lists those after a \
         contract change.{events_doc}",
        c.id.service, c.id.major
    );
    let file_doc: Vec<&str> = file_doc.lines().collect();
    quote! {
        #(#![doc = #file_doc])*

        use crate::app::App;
        use ::#krate::#service::#version as api;

        impl crate::wiring::#module::Handlers for App {
            #(#methods)*
        }
    }
}

/// A consumer file's first text: the handler, failing with "not implemented" so nothing is
/// acknowledged before it is written (the event goes to the dead letter with that reason).
fn consumer_file(c: &Contract, k: &Consumer, spec: &Spec) -> TokenStream {
    let event = type_of(spec, None, &k.event);
    let what = format!(
        "{}.{} v{}",
        k.event.contract.service, k.event.name, k.version
    );
    let reason = format!("not implemented yet: {} consumer of {what}", c.id.service);
    let file_doc = format!(
        " Consumes `{what}` as group `{}`. Written once by `pactum new`: this file is yours.\n\n \
         Each delivery runs `handle` once: its dedup record commits in `tx`, so write the \
         effect{} in `tx` too, and a redelivery after a crash is skipped. An `Err` rolls back \
         and retries as the contract's policy says, then dead-letters the event with the \
         message as its reason.",
        k.group,
        if c.events.is_empty() {
            String::new()
        } else {
            format!(
                " (and the events it causes, through `crate::wiring::{}::outbox(tx)`)",
                group_name(&c.id)
            )
        }
    );
    let file_doc: Vec<&str> = file_doc.lines().collect();
    quote! {
        #(#![doc = #file_doc])*

        use crate::app::App;
        use ::pactum::messaging::consumer::tokio_postgres::Transaction;
        use ::pactum::messaging::consumer::PgHandler;
        use ::pactum::Context;
        use ::std::sync::Arc;

        /// The consumer's handler; `wiring::start_events` builds it with the service's `App`.
        pub struct Handler {
            /// The service's state.
            pub app: Arc<App>,
        }

        impl PgHandler<#event> for Handler {
            async fn handle(&self, tx: &Transaction<'_>, ctx: &Context, event: #event) -> ::core::result::Result<(), ::std::string::String> {
                let _ = (&self.app, tx, ctx, event);
                ::core::result::Result::Err(#reason.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inbox_table;

    #[test]
    fn inbox_tables_fit_postgres_and_stay_distinct() {
        assert_eq!(
            inbox_table("notifications", "payments_payment_captured_v1"),
            "notifications_inbox_payments_payment_captured_v1"
        );
        let long_a = inbox_table("fulfilment_service", &"a".repeat(60));
        let long_b = inbox_table("fulfilment_service", &format!("{}b", "a".repeat(59)));
        assert!(long_a.len() <= 63 && long_b.len() <= 63);
        assert_ne!(long_a, long_b);
    }
}
