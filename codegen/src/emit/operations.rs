//! Per-operation error enums and the `operations` module of contract facts.

use super::{deprecated, docs, Ctx};
use crate::ir::{Idempotency, Operation, Resilience, SchemeKind, Streaming};
use crate::naming::{ident, Case};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

pub(crate) fn operations(ctx: &Ctx<'_>) -> TokenStream {
    let json = ctx.json.errors();
    let enums = ctx
        .contract
        .operations
        .iter()
        .map(|op| error_enum(op, json));
    let infos = ctx.contract.operations.iter().map(|op| info(ctx, op));
    let timed = ctx
        .contract
        .operations
        .iter()
        .any(|op| op.deadline_ns.is_some() || op.retry.is_some());
    let import = if timed {
        quote!(
            use ::std::time::Duration;
        )
    } else {
        TokenStream::new()
    };
    let import = quote!(use ::pactum::OperationInfo; #import);
    if ctx.contract.operations.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #(#enums)*

        /// What the contract says about each operation: route, deadline, safety, idempotency,
        /// retry policy. Transports read these; so can hand-written code.
        pub mod operations {
            #import
            #(#infos)*
        }
    }
}

/// `<Op>Error`: exactly the errors the contract declares for the operation. Its impls come
/// from `pactum::__operation_error!`, written once in the runtime: the same code for every
/// enum, and a large share of what a big contract would otherwise print (rustc still
/// expands it to the same impls).
fn error_enum(op: &Operation, json: bool) -> TokenStream {
    let name = format_ident!("{}Error", op.name);
    let doc = format!(" Errors declared for `{}`.", op.name);
    // An operation without declared errors gets an uninhabited enum: `Result<T, E>` with an
    // `E` that cannot occur, which callers can match away.
    let variants: Vec<_> = op.errors.iter().map(|e| ident(e, Case::Pascal)).collect();
    // Without REST the errors are not serde types and there is no problem document.
    let no_json = if json {
        TokenStream::new()
    } else {
        quote!(no_json)
    };
    let codes = op.errors.iter();
    let variant_docs = op
        .errors
        .iter()
        .map(|e| format!(" The declared error [`{e}`]."));
    quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
        pub enum #name {
            #(
                #[doc = #variant_docs]
                #variants(#variants),
            )*
        }

        ::pactum::__operation_error!(#no_json #name { #(#variants = #codes),* });
    }
}

/// What an operation is, for its docs when the contract gives none: its name and how it is
/// reached (`` `GetOrder`, over `GET /v1/orders/{id}` and gRPC. ``).
pub(crate) fn summary(op: &Operation) -> String {
    let mut ways = Vec::new();
    if let Some(r) = &op.rest {
        ways.push(format!("`{} {}`", r.method.as_str(), r.full_path));
    }
    if op.grpc {
        ways.push("gRPC".to_string());
    }
    if ways.is_empty() {
        format!("`{}`.", op.name)
    } else {
        format!("`{}`, over {}.", op.name, ways.join(" and "))
    }
}

/// The operation's `OperationInfo`, built from `OperationInfo::new` with only what the
/// contract says (the builder's defaults are the contract's).
fn info(ctx: &Ctx<'_>, op: &Operation) -> TokenStream {
    let konst = ident(&op.name, Case::Screaming);
    let fallback = summary(op);
    let doc = docs(Some(op.docs.as_deref().unwrap_or(&fallback)));
    let dep = deprecated(op.deprecated.as_deref());
    let (service, major, name) = (
        &ctx.contract.id.service,
        proc_macro2::Literal::u32_unsuffixed(ctx.contract.id.major as u32),
        &op.name,
    );
    // `operations` imports `OperationInfo`, and `Duration` when any operation has one.
    let duration = |ns| super::duration_as(quote!(Duration), ns);
    let mut calls = Vec::new();
    if let Some(r) = &op.rest {
        let (method, path) = (r.method.as_str(), &r.full_path);
        calls.push(quote!(.route(#method, #path)));
    }
    if op.grpc {
        calls.push(quote!(.grpc()));
    }
    if let Some(ns) = op.deadline_ns {
        let deadline = duration(ns);
        calls.push(quote!(.deadline(#deadline)));
    }
    if op.safe {
        calls.push(quote!(.safe()));
    }
    if op.idempotency == Idempotency::Key {
        calls.push(quote!(.keyed()));
    }
    if let Some(r) = &op.retry {
        let attempts = proc_macro2::Literal::u32_unsuffixed(r.attempts);
        let (initial, max) = (duration(r.initial_ns), duration(r.max_ns));
        calls.push(quote!(.retry(#attempts, #initial, #max)));
        if r.jitter != crate::ir::Jitter::Full {
            calls.push(quote!(.no_jitter()));
        }
        if let Some(ns) = r.per_try_ns {
            let per_try = duration(ns);
            calls.push(quote!(.per_try(#per_try)));
        }
    }
    match op.streaming {
        Streaming::None => {}
        Streaming::Server => calls.push(quote!(.streaming(::pactum::Streaming::Server))),
        Streaming::Client => calls.push(quote!(.streaming(::pactum::Streaming::Client))),
        Streaming::Bidi => calls.push(quote!(.streaming(::pactum::Streaming::Bidi))),
    }
    if op.resilience != Resilience::default() {
        let resilience = resilience_policy(&op.resilience);
        calls.push(quote!(.resilience(#resilience)));
    }
    // The schemes it accepts, spelled out from the contract's `auth.schemes`.
    let schemes: Vec<TokenStream> = op
        .auth
        .iter()
        .filter_map(|name| {
            let s = ctx.contract.auth.iter().find(|s| &s.name == name)?;
            let kind = match &s.kind {
                SchemeKind::Bearer => quote!(::pactum::auth::SchemeKind::Bearer),
                SchemeKind::ApiKey { header } => {
                    let header = header.to_ascii_lowercase();
                    quote!(::pactum::auth::SchemeKind::ApiKey { header: #header })
                }
                SchemeKind::Mtls => quote!(::pactum::auth::SchemeKind::Mtls),
            };
            Some(quote!(::pactum::auth::Scheme { name: #name, kind: #kind }))
        })
        .collect();
    if !schemes.is_empty() {
        calls.push(quote!(.auth(&[#(#schemes),*])));
    }
    quote! {
        #doc
        #dep
        pub const #konst: OperationInfo = OperationInfo::new(#service, #major, #name) #(#calls)*;
    }
}

/// The operation's `resilience:` as a `pactum::ResiliencePolicy` (only called when it is
/// not the default, which `OperationInfo::new` already holds).
fn resilience_policy(r: &Resilience) -> TokenStream {
    let lit = proc_macro2::Literal::u32_unsuffixed;
    let (ratio, floor, failures) = (
        lit(r.ratio_permille),
        lit(r.min_per_second),
        lit(r.failures),
    );
    let cooldown = super::duration(r.cooldown_ns);
    let concurrency = match r.concurrency.map(lit) {
        Some(n) => quote!(::std::option::Option::Some(#n)),
        None => quote!(::std::option::Option::None),
    };
    quote! {
        ::pactum::ResiliencePolicy {
            retry_budget: ::pactum::resilience::RetryBudgetPolicy {
                ratio_permille: #ratio,
                min_per_second: #floor,
            },
            breaker: ::pactum::resilience::BreakerPolicy {
                failures: #failures,
                cooldown: #cooldown,
            },
            concurrency: #concurrency,
        }
    }
}
