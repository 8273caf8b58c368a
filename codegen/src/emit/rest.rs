//! REST: the `Service` handler trait, the axum `router`, and the reqwest `Client`.
//!
//! Binding rules (the same on both sides, and in the OpenAPI document): `{param}` segments
//! bind input fields of the same name; on GET, HEAD and DELETE every other input field is a
//! query parameter (lists repeat the key); on POST, PUT and PATCH the other fields form the JSON
//! body. Operations without a REST route still get a `Service` method (gRPC serves them).

use super::{docs, rust_type, Ctx};
use crate::ir::{Field, Operation, Place, Streaming, TypeKind, TypeRef};
use crate::naming::{ident, Case};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::collections::BTreeMap;

fn input_fields<'a>(ctx: &'a Ctx<'_>, op: &Operation) -> Vec<&'a Field> {
    let Some(input) = &op.input else {
        return Vec::new();
    };
    match ctx.lookup(input) {
        Some(TypeKind::Struct(fields)) => fields.iter().collect(),
        _ => Vec::new(),
    }
}

/// Unary operations, and server streams (as Server-Sent Events), can have REST routes.
fn served(op: &Operation) -> bool {
    matches!(op.streaming, Streaming::None | Streaming::Server)
}

fn output_type(ctx: &Ctx<'_>, op: &Operation) -> TokenStream {
    match &op.output {
        Some(t) => rust_type(ctx, t, false),
        None => quote!(()),
    }
}

/// Everything REST for one contract: empty when it has no operations. Without `transport`,
/// only the `Service` trait (which gRPC serves too).
pub(crate) fn rest(ctx: &Ctx<'_>, transport: bool) -> TokenStream {
    if ctx.contract.operations.is_empty() {
        return TokenStream::new();
    }
    // Every operation is a `Service` method; unary ones and server streams can have REST
    // routes.
    let all: Vec<&Operation> = ctx.contract.operations.iter().collect();
    let service = service_trait(ctx, &all);
    let ops: Vec<&Operation> = ctx
        .contract
        .operations
        .iter()
        .filter(|o| served(o))
        .collect();
    let routed: Vec<&Operation> = ops.iter().copied().filter(|o| o.rest.is_some()).collect();
    if routed.is_empty() || !transport {
        return service;
    }
    // The router and the client live in `rest`, one module down from the types.
    let inner = ctx.nested(1);
    let server = server(&inner, &routed);
    let client = client(&inner, &routed);
    let doc = format!(
        " REST for `{}` v{}: the axum `router` serving a `Service`, and the reqwest `Client`.",
        ctx.contract.id.service, ctx.contract.id.major
    );
    quote! {
        #service

        #[doc = #doc]
        pub mod rest {
            ::pactum::__requires_feature!(rest);

            #server
            #client
        }
    }
}

fn method_name(op: &Operation) -> proc_macro2::Ident {
    ident(&op.name, Case::Snake)
}

fn service_trait(ctx: &Ctx<'_>, ops: &[&Operation]) -> TokenStream {
    let doc = format!(
        " The operations of `{}` v{}: implement this once; the REST router (and the gRPC server) call it.",
        ctx.contract.id.service, ctx.contract.id.major
    );
    let methods = ops.iter().map(|op| {
        let name = method_name(op);
        let error = format_ident!("{}Error", op.name);
        let out = output_type(ctx, op);
        let fallback = super::operations::summary(op);
        let doc = docs(Some(op.docs.as_deref().unwrap_or(&fallback)));
        let in_ty = match &op.input {
            Some(i) => ctx.type_path(i),
            None => quote!(::pactum::NoInput),
        };
        let streams_in = matches!(op.streaming, Streaming::Client | Streaming::Bidi);
        let streams_out = matches!(op.streaming, Streaming::Server | Streaming::Bidi);
        let input = if streams_in {
            Some(quote!(, input: ::pactum::BoxStream<::core::result::Result<#in_ty, ::pactum::StreamError>>))
        } else {
            op.input.as_ref().map(|_| quote!(, input: #in_ty))
        };
        let out = if streams_out {
            quote!(::pactum::BoxStream<::core::result::Result<#out, ::pactum::HandlerError<#error>>>)
        } else {
            out
        };
        quote! {
            #doc
            fn #name(&self, ctx: ::pactum::Context #input)
                -> impl ::core::future::Future<Output = ::core::result::Result<#out, ::pactum::HandlerError<#error>>>
                + ::core::marker::Send;
        }
    });
    quote! {
        #[doc = #doc]
        pub trait Service: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*
        }
    }
}

fn server(ctx: &Ctx<'_>, ops: &[&Operation]) -> TokenStream {
    let ax = quote!(::pactum::router::axum);
    // Each operation's route: one call into the runtime, which holds the axum handler.
    let endpoint = |op: &Operation| -> TokenStream {
        let route = op.rest.as_ref().expect("routed");
        let method = method_name(op);
        let konst = ident(&op.name, Case::Screaming);
        let reply = if op.output.is_some() {
            quote!(::pactum::rest::Reply::Json)
        } else {
            quote!(::pactum::rest::Reply::Empty)
        };
        let fields = input_fields(ctx, op);
        let inserts: Vec<TokenStream> = fields
            .iter()
            .filter_map(|f| {
                let wire = &f.wire_name;
                let ty = match &f.ty {
                    TypeRef::Optional(inner) => &**inner,
                    other => other,
                };
                match route.place(&f.wire_name) {
                    Place::Body => None,
                    Place::Path => {
                        let t = rust_type(ctx, ty, false);
                        Some(quote!(members.insert(#wire.into(), incoming.path::<#t>(#wire)?);))
                    }
                    Place::Query => {
                        let getter = match ty {
                            TypeRef::List(item) => {
                                let t = rust_type(ctx, item, false);
                                quote!(incoming.query_list::<#t>(#wire)?)
                            }
                            _ => {
                                let t = rust_type(ctx, ty, false);
                                quote!(incoming.query::<#t>(#wire)?)
                            }
                        };
                        Some(quote! {
                            if let ::core::option::Option::Some(v) = #getter {
                                members.insert(#wire.into(), v);
                            }
                        })
                    }
                }
            })
            .collect();
        // A reconnecting stream client's `Last-Event-ID` arrives in the resume field,
        // winning over the query parameter of the same name.
        let mut inserts = inserts;
        if let Some(r) = &op.resume {
            if let Some(f) = fields.iter().find(|f| f.name == r.after) {
                let wire = &f.wire_name;
                let ty = match &f.ty {
                    TypeRef::Optional(inner) => &**inner,
                    other => other,
                };
                let t = rust_type(ctx, ty, false);
                inserts.push(quote! {
                    if let ::core::option::Option::Some(v) = incoming.resumed::<#t>(#wire)? {
                        members.insert(#wire.into(), v);
                    }
                });
            }
        }
        let (input, call) = match &op.input {
            Some(i) => {
                let t = ctx.type_path(i);
                let call = super::pagination::serve(
                    op,
                    &t,
                    &output_type(ctx, op),
                    quote!(&cursors),
                    quote!(service.#method(ctx, input).await),
                );
                (quote!(input: #t), call)
            }
            None => (
                quote!(_: ::pactum::NoInput),
                quote!(service.#method(ctx).await),
            ),
        };
        let filter = format_ident!("{}", route.method.as_str().to_ascii_uppercase());
        let filter = quote!(#ax::routing::MethodFilter::#filter);
        // Path and query parameters become members of the input object; an operation
        // without any needs no closure state.
        let extract = if inserts.is_empty() {
            quote! {
                |_: &::pactum::rest::server::Incoming| {
                    ::core::result::Result::Ok(::pactum::__private::serde_json::Map::new())
                }
            }
        } else {
            quote! {
                |incoming: &::pactum::rest::server::Incoming| {
                    let mut members = ::pactum::__private::serde_json::Map::new();
                    #(#inserts)*
                    ::core::result::Result::Ok(members)
                }
            }
        };
        let (settings, cursors) = if op.paginate.is_some() {
            (
                quote!(config),
                quote!(let cursors = ::core::clone::Clone::clone(&config.cursors);),
            )
        } else {
            (quote!(_), TokenStream::new())
        };
        if op.streaming == Streaming::Server {
            let event_id = match (&op.resume, &op.output) {
                (Some(r), Some(o)) => {
                    let o = rust_type(ctx, o, false);
                    let id = ident(&r.id, Case::Snake);
                    quote!(::core::option::Option::Some(|o: &#o| ::pactum::rest::client::param_text(&o.#id)))
                }
                _ => quote!(::core::option::Option::None),
            };
            return quote! {
                ::pactum::rest::server::stream_endpoint(
                    #filter,
                    &super::operations::#konst,
                    &config,
                    &service,
                    #extract,
                    #event_id,
                    |service, #settings, ctx, #input| async move { #cursors #call },
                )
            };
        }
        quote! {
            ::pactum::rest::server::endpoint(
                #filter,
                &super::operations::#konst,
                &config,
                &service,
                #reply,
                #extract,
                |service, #settings, ctx, #input| async move { #cursors #call },
            )
        }
    };
    // One `.route` per path, with every method on it.
    let mut by_path: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        by_path
            .entry(op.rest.as_ref().expect("routed").full_path.as_str())
            .or_default()
            .push(op);
    }
    let routes = by_path.iter().map(|(path, ops)| {
        let mut chain = TokenStream::new();
        for (i, op) in ops.iter().enumerate() {
            let e = endpoint(op);
            chain = if i == 0 { e } else { quote!(#chain.merge(#e)) };
        }
        quote!(.route(#path, #chain))
    });
    let doc = format!(
        " An axum router serving every REST operation of `{}` v{} under `/v{}`.",
        ctx.contract.id.service, ctx.contract.id.major, ctx.contract.id.major
    );
    quote! {
        #[doc = #doc]
        pub fn router<S: super::Service>(service: ::std::sync::Arc<S>) -> #ax::Router {
            router_with(service, ::pactum::router::ServerConfig::default())
        }

        /// [`router`] with explicit settings (body limit, idempotency store, retention).
        pub fn router_with<S: super::Service>(
            service: ::std::sync::Arc<S>,
            config: ::pactum::router::ServerConfig,
        ) -> #ax::Router {
            let config = ::std::sync::Arc::new(config);
            let _ = (&service, &config);
            #ax::Router::new()
                #(#routes)*
        }
    }
}

fn client(ctx: &Ctx<'_>, ops: &[&Operation]) -> TokenStream {
    let cl = quote!(::pactum::rest::client);
    let methods = ops.iter().map(|op| {
        let route = op.rest.as_ref().expect("routed");
        let name = method_name(op);
        let konst = ident(&op.name, Case::Screaming);
        let error = format_ident!("{}Error", op.name);
        let out = output_type(ctx, op);
        let reply = if op.output.is_some() {
            quote!(::pactum::rest::Reply::Json)
        } else {
            quote!(::pactum::rest::Reply::Empty)
        };
        let fields = input_fields(ctx, op);
        let by_wire: BTreeMap<&str, &Field> = fields.iter().map(|f| (f.wire_name.as_str(), *f)).collect();
        // The path: literal runs as one string, each parameter percent-encoded.
        let mut parts: Vec<(String, Option<proc_macro2::Ident>)> = vec![(String::new(), None)];
        for seg in route.full_path.split('/').skip(1) {
            let last = parts.len() - 1;
            parts[last].0.push('/');
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(p) => {
                    parts[last].1 = Some(ident(&by_wire[p].name, Case::Snake));
                    parts.push((String::new(), None));
                }
                None => parts[last].0.push_str(seg),
            }
        }
        let start = parts[0].0.clone();
        let mut pushes = Vec::new();
        for (i, (lit, param)) in parts.iter().enumerate() {
            if i > 0 && !lit.is_empty() {
                pushes.push(quote!(path.push_str(#lit);));
            }
            if let Some(f) = param {
                pushes.push(quote!(path.push_str(&#cl::encode(&#cl::param_text(&input.#f)));));
            }
        }
        let query: Vec<TokenStream> = fields
            .iter()
            .filter(|f| route.place(&f.wire_name) == Place::Query)
            .map(|f| {
                let wire = &f.wire_name;
                let fname = ident(&f.name, Case::Snake);
                quote!(#cl::push_query(&mut query, #wire, &input.#fname);)
            })
            .collect();
        let not_body: Vec<&String> = fields
            .iter()
            .filter(|f| route.place(&f.wire_name) != Place::Body)
            .map(|f| &f.wire_name)
            .collect();
        let has_body = fields.iter().any(|f| route.place(&f.wire_name) == Place::Body);
        let body = if has_body && not_body.is_empty() {
            quote! {
                let body = ::pactum::__private::serde_json::to_value(input).ok();
            }
        } else if has_body {
            quote! {
                let body = match ::pactum::__private::serde_json::to_value(input) {
                    ::core::result::Result::Ok(::pactum::__private::serde_json::Value::Object(mut m)) => {
                        #( m.remove(#not_body); )*
                        ::core::option::Option::Some(::pactum::__private::serde_json::Value::Object(m))
                    }
                    _ => ::core::option::Option::None,
                };
            }
        } else {
            quote!(let body = ::core::option::Option::None;)
        };
        let param = op.input.as_ref().map(|i| {
            let t = ctx.type_path(i);
            quote!(, input: &#t)
        });
        let path = if query.is_empty() && pushes.is_empty() {
            quote!(let path = ::std::string::String::from(#start);)
        } else if query.is_empty() {
            quote! {
                let mut path = ::std::string::String::from(#start);
                #(#pushes)*
            }
        } else {
            quote! {
                let mut path = ::std::string::String::from(#start);
                #(#pushes)*
                let mut query: ::std::vec::Vec<::std::string::String> = ::std::vec::Vec::new();
                #(#query)*
                if !query.is_empty() {
                    path.push('?');
                    path.push_str(&query.join("&"));
                }
            }
        };
        let fallback = format!("Calls `{} {}`.", route.method.as_str(), route.full_path);
        let doc = docs(Some(op.docs.as_deref().unwrap_or(&fallback)));
        let items = match &op.input {
            Some(i) => super::pagination::client_items(op, &ctx.type_path(i), &out, |t| {
                rust_type(ctx, t, false)
            }),
            None => TokenStream::new(),
        };
        if op.streaming == Streaming::Server {
            let resumable = op.resume.is_some();
            let fallback = format!(
                "Opens the stream `{} {}` (Server-Sent Events).",
                route.method.as_str(),
                route.full_path
            );
            let doc = docs(Some(op.docs.as_deref().unwrap_or(&fallback)));
            return quote! {
                #doc
                pub async fn #name(&self #param) -> ::core::result::Result<
                    ::pactum::BoxStream<::core::result::Result<#out, ::pactum::ClientError<super::#error>>>,
                    ::pactum::ClientError<super::#error>,
                > {
                    #path
                    self.http.stream(&super::operations::#konst, path, #resumable).await
                }
            };
        }
        quote! {
            #doc
            pub async fn #name(&self #param) -> ::core::result::Result<#out, ::pactum::ClientError<super::#error>> {
                #path
                #body
                self.http.call(&super::operations::#konst, #reply, path, body).await
            }

            #items
        }
    });
    let doc = format!(
        " A typed REST client for `{}` v{}: the contract's deadlines, retry policy and idempotency keys applied, the caller's trace and remaining deadline sent.",
        ctx.contract.id.service, ctx.contract.id.major
    );
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        pub struct Client {
            http: #cl::HttpClient,
        }

        impl Client {
            /// A client for the service at `base_url` (`http://127.0.0.1:8080`).
            pub fn new(base_url: impl ::core::convert::Into<::std::string::String>) -> Self {
                Client { http: #cl::HttpClient::new(base_url) }
            }

            /// A client for this service's stable in-cluster name:
            /// `http://<service>.<namespace>.svc.cluster.local:<port>`.
            pub fn for_service(namespace: &str, port: u16) -> Self {
                Client { http: #cl::HttpClient::for_service(super::SERVICE, namespace, port) }
            }

            /// A client over a configured [`HttpClient`](::pactum::rest::client::HttpClient)
            /// (your reqwest client, a default timeout for calls without a deadline).
            pub fn from_http(http: #cl::HttpClient) -> Self {
                Client { http }
            }

            /// Sends `credentials` with every call: what the contract's `auth:` asks for.
            pub fn with_credentials(self, credentials: ::pactum::auth::Credentials) -> Self {
                Client { http: self.http.with_credentials(credentials) }
            }

            #(#methods)*
        }
    }
}
