//! Per-operation error enums and the `operations` module of contract facts.

use super::events::retry_policy;
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
    if ctx.contract.operations.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #(#enums)*

        /// What the contract says about each operation: route, deadline, safety, idempotency,
        /// retry policy. Transports read these; so can hand-written code.
        pub mod operations {
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

fn info(ctx: &Ctx<'_>, op: &Operation) -> TokenStream {
    let konst = ident(&op.name, Case::Screaming);
    let fallback = summary(op);
    let doc = docs(Some(op.docs.as_deref().unwrap_or(&fallback)));
    let dep = deprecated(op.deprecated.as_deref());
    let (service, major, name, grpc, safe) = (
        &ctx.contract.id.service,
        proc_macro2::Literal::u32_unsuffixed(ctx.contract.id.major as u32),
        &op.name,
        op.grpc,
        op.safe,
    );
    let route = match &op.rest {
        Some(r) => {
            let (method, path) = (r.method.as_str(), &r.full_path);
            quote!(::std::option::Option::Some(::pactum::Route { method: #method, path: #path }))
        }
        None => quote!(::std::option::Option::None),
    };
    let deadline = match op.deadline_ns {
        Some(ns) => {
            let deadline = super::duration(ns);
            quote!(::std::option::Option::Some(#deadline))
        }
        None => quote!(::std::option::Option::None),
    };
    let idempotency = match op.idempotency {
        Idempotency::Key => quote!(::pactum::Idempotency::Key),
        Idempotency::None => quote!(::pactum::Idempotency::None),
    };
    let streaming = match op.streaming {
        Streaming::None => quote!(::pactum::Streaming::None),
        Streaming::Server => quote!(::pactum::Streaming::Server),
        Streaming::Client => quote!(::pactum::Streaming::Client),
        Streaming::Bidi => quote!(::pactum::Streaming::Bidi),
    };
    let retry = retry_policy(op.retry.as_ref());
    let per_try = match op.retry.as_ref().and_then(|r| r.per_try_ns) {
        Some(ns) => {
            let per_try = super::duration(ns);
            quote!(::std::option::Option::Some(#per_try))
        }
        None => quote!(::std::option::Option::None),
    };
    let resilience = resilience_policy(&op.resilience);
    // The schemes it accepts, spelled out from the contract's `auth.schemes`.
    let schemes = op.auth.iter().filter_map(|name| {
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
    });
    quote! {
        #doc
        #dep
        pub const #konst: ::pactum::OperationInfo = ::pactum::OperationInfo {
            service: #service,
            major: #major,
            name: #name,
            route: #route,
            grpc: #grpc,
            deadline: #deadline,
            safe: #safe,
            idempotency: #idempotency,
            retry: #retry,
            per_try: #per_try,
            streaming: #streaming,
            resilience: #resilience,
            auth: &[#(#schemes),*],
        };
    }
}

/// The operation's `resilience:` as a `pactum::ResiliencePolicy`: the runtime's `DEFAULT`
/// when the contract changes nothing.
fn resilience_policy(r: &Resilience) -> TokenStream {
    if *r == Resilience::default() {
        return quote!(::pactum::ResiliencePolicy::DEFAULT);
    }
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
