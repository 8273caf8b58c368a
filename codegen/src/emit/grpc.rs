//! gRPC: a `grpc` module per contract with unary `grpc: true` operations.
//!
//! - no messages of its own: the domain types are the protobuf messages (`messages.rs`
//!   writes their impls, in each type's own contract), so requests and replies go on the
//!   wire as they are; decoding checks ids, decimals and required message fields;
//! - `grpc::router(service)` / `grpc::router_with(service, config)`: an axum router serving
//!   the same `Service` trait as REST, with the same idempotency store and settings;
//! - `grpc::Client`: typed calls returning the operation's `ClientError<E>`.
//!
//! Streaming operations (server, client, bidirectional) are served and called with
//! `pactum::BoxStream`s of domain values.

use super::Ctx;
use crate::ir::{Contract, NamedRef, Operation, Streaming, TypeRef};
use crate::naming::{ident, Case};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `bytes` as a byte string literal, wrapped every 96 characters with line continuations so
/// the generated file stays readable (a space is written `\x20`: a continuation skips the
/// whitespace that starts the next line).
fn byte_string(bytes: &[u8]) -> TokenStream {
    let mut text = String::from("b\"");
    let mut width = 0;
    for &b in bytes {
        let before = text.len();
        match b {
            b'"' => text.push_str("\\\""),
            b'\\' => text.push_str("\\\\"),
            0x21..=0x7e => text.push(b as char),
            _ => text.push_str(&format!("\\x{b:02x}")),
        }
        width += text.len() - before;
        if width >= 96 {
            text.push_str("\\\n");
            width = 0;
        }
    }
    text.push('"');
    text.parse().unwrap_or_else(|_| {
        // Every byte above is escaped or printable, so the literal always parses; an empty
        // set (which reflection reads as no files) is the fallback that still compiles.
        quote!(b"")
    })
}

fn grpc_ops(c: &Contract) -> Vec<&Operation> {
    c.operations.iter().filter(|o| o.grpc).collect()
}

/// The `grpc` module, or nothing.
pub(crate) fn grpc(ctx: &Ctx<'_>) -> TokenStream {
    let ops = grpc_ops(ctx.contract);
    if ops.is_empty() {
        return TokenStream::new();
    }
    let mut g = Gen { ctx };
    let package = super::proto::package(ctx.contract);
    let service_name = super::proto::service_name(ctx.contract);
    let details: Vec<_> = ops.iter().map(|op| g.error_details(op, &package)).collect();
    let routes: Vec<_> = ops
        .iter()
        .map(|op| g.route(op, &package, &service_name))
        .collect();
    let methods: Vec<_> = ops
        .iter()
        .map(|op| g.client_method(op, &package, &service_name))
        .collect();
    let full_name = format!("{package}.{service_name}");
    let descriptors = byte_string(&super::descriptor::descriptor_set(ctx.ir, ctx.contract));
    let doc = format!(
        " gRPC for `{}` v{}: package `{package}`, service `{service_name}`; the same wire as the emitted `.proto`.",
        ctx.contract.id.service, ctx.contract.id.major
    );
    quote! {
        #[doc = #doc]
        // Mechanical conversions: clippy's style lints add nothing here (prost and tonic
        // generated code does the same).
        #[allow(clippy::all)]
        pub mod grpc {
            ::pactum::__requires_feature!(grpc);

            /// The gRPC service's full name, as health checks and reflection name it.
            pub const SERVICE_NAME: &str = #full_name;

            /// The protobuf descriptors of this contract's `.proto`, of the contract files it
            /// imports and of the well-known types they use, as an encoded
            /// `FileDescriptorSet`: what server reflection answers with
            /// (`pactum::grpc::reflection::router(&[(SERVICE_NAME, FILE_DESCRIPTOR_SET)])`), so
            /// `grpcurl` needs no `.proto`.
            pub const FILE_DESCRIPTOR_SET: &[u8] = #descriptors;

            #(#details)*

            /// An axum router serving every gRPC operation through the contract's
            /// `Service` implementation, with default settings. Serve it over HTTP/2
            /// (`pactum::router::serve` does).
            pub fn router<S: super::Service>(service: ::std::sync::Arc<S>) -> ::pactum::router::axum::Router {
                router_with(service, ::pactum::router::ServerConfig::default())
            }

            /// [`router`] with explicit settings: the idempotency store, leases and body
            /// limit. Give it the same `ServerConfig` as the REST router, so keys live in
            /// one store whichever transport a call takes.
            pub fn router_with<S: super::Service>(service: ::std::sync::Arc<S>, config: ::pactum::router::ServerConfig) -> ::pactum::router::axum::Router {
                let config = ::std::sync::Arc::new(config);
                let _ = (&service, &config);
                ::pactum::router::axum::Router::new()
                    #(#routes)*
            }

            /// A typed gRPC client.
            #[derive(::core::clone::Clone, ::core::fmt::Debug)]
            pub struct Client {
                inner: ::pactum::grpc::GrpcClient,
            }

            impl Client {
                /// A client for `url` (`http://127.0.0.1:50051`), connecting on first use.
                pub fn connect_lazy(url: impl ::core::convert::Into<::std::string::String>) -> ::core::result::Result<Self, ::std::string::String> {
                    ::core::result::Result::Ok(Client { inner: ::pactum::grpc::GrpcClient::connect_lazy(url)? })
                }

                /// A client for this service's stable in-cluster name.
                pub fn for_service(namespace: &str, port: u16) -> ::core::result::Result<Self, ::std::string::String> {
                    ::core::result::Result::Ok(Client { inner: ::pactum::grpc::GrpcClient::for_service(super::SERVICE, namespace, port)? })
                }

                /// A client over a configured channel.
                pub fn from_client(inner: ::pactum::grpc::GrpcClient) -> Self {
                    Client { inner }
                }

                /// Sends `credentials` with every call: what the contract's `auth:` asks for.
                pub fn with_credentials(self, credentials: ::pactum::auth::Credentials) -> Self {
                    Client { inner: self.inner.with_credentials(credentials) }
                }

                #(#methods)*
            }
        }
    }
}

struct Gen<'c, 'a> {
    ctx: &'c Ctx<'a>,
}

impl Gen<'_, '_> {
    /// The domain type, seen from inside the `grpc` module.
    fn domain_path(&self, r: &NamedRef) -> TokenStream {
        self.ctx.nested(1).type_path(r)
    }

    fn error_details(&mut self, op: &Operation, package: &str) -> TokenStream {
        let snake = ident(&op.name, Case::Snake);
        let to = format_ident!("{}_error_detail", snake);
        let from = format_ident!("{}_error_from_detail", snake);
        let error = format_ident!("{}Error", op.name);
        let variants = op.errors.iter().map(|e| {
            let var = ident(e, Case::Pascal);
            quote!(#var = #e)
        });
        quote! {
            ::pactum::__grpc_error_details!(#to, #from, #error, #package { #(#variants),* });
        }
    }

    fn io(&self, op: &Operation) -> (TokenStream, TokenStream, TokenStream, TokenStream) {
        // (decode input, encode output, encode input (client), decode output (client))
        let (decode_in, encode_in) = match &op.input {
            // The domain types are the messages: decoding checks them on the way in.
            Some(_) => (
                quote!(::pactum::grpc::proto::Decoded::finish),
                quote!(::core::clone::Clone::clone(input)),
            ),
            None => (
                quote!(|_: ()| ::core::result::Result::Ok(::pactum::NoInput)),
                quote!(()),
            ),
        };
        let (encode_out, decode_out) = match &op.output {
            Some(TypeRef::Named(_)) => (
                quote!(::core::convert::identity),
                quote!(::pactum::grpc::proto::Decoded::finish),
            ),
            _ => (
                quote!(|(): ()| ()),
                quote!(|(): ()| ::core::result::Result::Ok(())),
            ),
        };
        (decode_in, encode_out, encode_in, decode_out)
    }

    fn route(&mut self, op: &Operation, package: &str, service: &str) -> TokenStream {
        let path = format!("/{package}.{service}/{}", op.name);
        let konst = ident(&op.name, Case::Screaming);
        let method = ident(&op.name, Case::Snake);
        let detail = format_ident!("{}_error_detail", method);
        if op.streaming == Streaming::None && op.input.is_some() && op.paginate.is_none() {
            // The common case, one call: the route's body is the runtime's.
            return quote! {
                .route(#path, ::pactum::grpc::unary_route(
                    &super::operations::#konst,
                    &config,
                    &service,
                    #detail,
                    |s, ctx, input| async move { s.#method(ctx, input).await },
                ))
            };
        }
        let (decode_in, encode_out, _, _) = self.io(op);
        let streams_in = matches!(op.streaming, Streaming::Client | Streaming::Bidi);
        let call = if let (Some(i), Some(TypeRef::Named(o))) = (&op.input, &op.output) {
            super::pagination::serve(
                op,
                &self.domain_path(i),
                &self.domain_path(o),
                quote!(&cursors),
                quote!(s.#method(ctx, input).await),
            )
        } else if op.input.is_some() || streams_in {
            quote!(s.#method(ctx, input).await)
        } else {
            quote!({ let _ = input; s.#method(ctx).await })
        };
        let cursors = if op.paginate.is_some() {
            quote!(let cursors = ::core::clone::Clone::clone(&config.cursors);)
        } else {
            TokenStream::new()
        };
        let serve = match op.streaming {
            Streaming::None => quote!(unary),
            Streaming::Server => quote!(server_streaming),
            Streaming::Client => quote!(client_streaming),
            Streaming::Bidi => quote!(bidi_streaming),
        };
        quote! {
            .route(#path, ::pactum::router::axum::routing::post({
                let s = ::std::sync::Arc::clone(&service);
                let config = ::std::sync::Arc::clone(&config);
                move |request: ::pactum::router::axum::extract::Request| {
                    let s = ::std::sync::Arc::clone(&s);
                    let config = ::std::sync::Arc::clone(&config);
                    async move {
                        #cursors
                        ::pactum::grpc::#serve(
                            &super::operations::#konst,
                            &config,
                            request,
                            #decode_in,
                            #encode_out,
                            #detail,
                            move |ctx, input| async move { #call },
                        )
                        .await
                    }
                }
            }))
        }
    }

    fn client_method(&mut self, op: &Operation, package: &str, service: &str) -> TokenStream {
        let path = format!("/{package}.{service}/{}", op.name);
        let konst = ident(&op.name, Case::Screaming);
        let method = ident(&op.name, Case::Snake);
        let from_detail = format_ident!("{}_error_from_detail", method);
        let error = format_ident!("{}Error", op.name);
        let (_, _, encode_in, decode_out) = self.io(op);
        let out = match &op.output {
            Some(TypeRef::Named(o)) => self.domain_path(o),
            _ => quote!(()),
        };
        let in_ty = match &op.input {
            Some(i) => self.domain_path(i),
            None => quote!(::pactum::NoInput),
        };
        // The inputs are the messages; without an input, each is an empty message.
        let inputs = match &op.input {
            Some(_) => quote!(inputs),
            None => quote!(::pactum::__private::tokio_stream::StreamExt::map(
                inputs,
                |_: ::pactum::NoInput| ()
            )),
        };
        let doc = format!(" Calls `{}` over gRPC.", op.name);
        let ce = quote!(::pactum::ClientError<super::#error>);
        match op.streaming {
            Streaming::None => {
                let param = op.input.as_ref().map(|_| quote!(, input: &#in_ty));
                let nested = self.ctx.nested(1);
                let items = super::pagination::client_items(op, &in_ty, &out, |t| {
                    super::rust_type(&nested, t, false)
                });
                quote! {
                    #[doc = #doc]
                    pub async fn #method(&self #param) -> ::core::result::Result<#out, #ce> {
                        self.inner
                            .unary(&super::operations::#konst, #path, #encode_in, #decode_out, #from_detail)
                            .await
                    }

                    #items
                }
            }
            Streaming::Server => {
                let param = op.input.as_ref().map(|_| quote!(, input: &#in_ty));
                quote! {
                    #[doc = #doc]
                    pub async fn #method(&self #param) -> ::core::result::Result<::pactum::BoxStream<::core::result::Result<#out, #ce>>, #ce> {
                        self.inner
                            .server_streaming(&super::operations::#konst, #path, #encode_in, #decode_out, #from_detail)
                            .await
                    }
                }
            }
            Streaming::Client | Streaming::Bidi => {
                let (call, ret) = if op.streaming == Streaming::Client {
                    (quote!(client_streaming), quote!(#out))
                } else {
                    (
                        quote!(bidi_streaming),
                        quote!(::pactum::BoxStream<::core::result::Result<#out, #ce>>),
                    )
                };
                quote! {
                    #[doc = #doc]
                    pub async fn #method(
                        &self,
                        inputs: impl ::pactum::__private::tokio_stream::Stream<Item = #in_ty> + ::core::marker::Send + 'static,
                    ) -> ::core::result::Result<#ret, #ce> {
                        let inputs = #inputs;
                        self.inner
                            .#call(&super::operations::#konst, #path, ::std::boxed::Box::pin(inputs), #decode_out, #from_detail)
                            .await
                    }
                }
            }
        }
    }
}
