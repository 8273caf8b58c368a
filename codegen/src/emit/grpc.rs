//! gRPC: a `grpc` module per contract with unary `grpc: true` operations.
//!
//! - `grpc::pb`: prost messages for every type those operations reach (foreign types get a
//!   prefixed local copy: the module needs nothing from other contracts' gRPC code), with the
//!   contract's field numbers — the same wire as the emitted `.proto`, because both are
//!   spelled from one model (`protobuf.rs`: scalars, `optional`, wrappers and their names);
//! - conversions between domain types and messages (`*_to_pb`, `*_from_pb`; decoding checks
//!   ids, decimals and required message fields);
//! - `grpc::router(service)` / `grpc::router_with(service, config)`: an axum router serving
//!   the same `Service` trait as REST, with the same idempotency store and settings;
//! - `grpc::Client`: typed calls returning the operation's `ClientError<E>`.
//!
//! Streaming operations (server, client, bidirectional) are served and called with
//! `pactum::BoxStream`s of domain values.

use super::protobuf::{primitive, Element, Label, Model, Scalar, WellKnown, Wire, Wrapper};
use super::Ctx;
use crate::ast::Primitive;
use crate::ir::{Contract, Field, NamedRef, Operation, Streaming, TypeKind, TypeRef, Union};
use crate::naming::{ident, Case};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use std::collections::BTreeMap;

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
    let mut g = Gen {
        ctx,
        model: Model::new(ctx.ir, &ctx.contract.id),
        types: BTreeMap::new(),
        wrappers: BTreeMap::new(),
    };
    for op in &ops {
        if let Some(i) = &op.input {
            g.reach(i);
        }
        if let Some(TypeRef::Named(o)) = &op.output {
            g.reach(o);
        }
    }
    let errors: Vec<_> = ctx
        .contract
        .errors
        .iter()
        .filter(|e| ops.iter().any(|o| o.errors.contains(&e.name)))
        .collect();
    for e in &errors {
        for f in &e.fields {
            g.reach_type(&f.ty);
        }
    }
    let mut messages = Vec::new();
    let mut conversions = Vec::new();
    let reached: Vec<(String, NamedRef)> = g
        .types
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (pb_name, r) in &reached {
        match ctx.lookup(r) {
            Some(TypeKind::Struct(fields)) => {
                let fields = fields.clone();
                messages.push(g.message(pb_name, &fields));
                conversions.push(g.struct_conversions(pb_name, &g.domain_path(r), &fields));
            }
            Some(TypeKind::Union(u)) => {
                let u = u.clone();
                messages.push(g.union_message(pb_name, &u));
                conversions.push(g.union_conversions(pb_name, &g.domain_path(r), &u));
            }
            Some(TypeKind::Enum(values)) => {
                let name = format_ident!("{}", pb_name);
                let to = g.fn_name(pb_name, "to_pb");
                let from = g.fn_name(pb_name, "from_pb");
                let path = g.domain_path(r);
                let to_arms = values.iter().map(|v| {
                    let var = ident(&v.variant, Case::Pascal);
                    let n = v.number as i32;
                    quote!(#path::#var => #n,)
                });
                let from_arms = values.iter().map(|v| {
                    let var = ident(&v.variant, Case::Pascal);
                    let n = v.number as i32;
                    quote!(#n => #path::#var,)
                });
                let _ = name;
                conversions.push(quote! {
                    #[allow(dead_code)]
                    fn #to(v: &#path) -> i32 {
                        match v {
                            #(#to_arms)*
                            #path::Unrecognized(other) => other.parse().unwrap_or(0),
                        }
                    }
                    #[allow(dead_code)]
                    fn #from(n: i32) -> #path {
                        match n {
                            #(#from_arms)*
                            other => #path::Unrecognized(::std::string::ToString::to_string(&other)),
                        }
                    }
                });
            }
            _ => {}
        }
    }
    for e in &errors {
        let r = NamedRef {
            contract: ctx.contract.id.clone(),
            name: e.name.clone(),
        };
        let path = g.domain_path(&r);
        messages.push(g.message(&e.name, &e.fields));
        conversions.push(g.struct_conversions(&e.name, &path, &e.fields));
    }
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
    let wrappers: Vec<TokenStream> = std::mem::take(&mut g.wrappers).into_values().collect();
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

            /// Protobuf messages of the types the gRPC operations use.
            #[allow(missing_docs, clippy::all)]
            pub mod pb {
                #(#messages)*
                #(#wrappers)*
            }

            #(#conversions)*
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
    /// The shapes: scalars, `optional`, wrappers and names (shared with the `.proto`).
    model: Model<'a>,
    /// pb message name → the domain type it mirrors.
    types: BTreeMap<String, NamedRef>,
    /// Wrapper messages for nested containers, by name.
    wrappers: BTreeMap<String, TokenStream>,
}

impl Gen<'_, '_> {
    fn pb_name(&self, r: &NamedRef) -> String {
        self.model.local_name(r)
    }

    fn fn_name(&self, pb_name: &str, suffix: &str) -> Ident {
        format_ident!("{}_{suffix}", crate::naming::convert(pb_name, Case::Snake))
    }

    /// The domain type, seen from inside the `grpc` module.
    fn domain_path(&self, r: &NamedRef) -> TokenStream {
        let name = ident(&r.name, Case::Pascal);
        if r.contract == self.ctx.contract.id {
            quote!(super::#name)
        } else {
            let s = ident(&r.contract.service, Case::Snake);
            let v = ident(&r.contract.version_module(), Case::Snake);
            quote!(super::super::super::#s::#v::#name)
        }
    }

    /// Records every struct and enum reachable from `r`.
    fn reach(&mut self, r: &NamedRef) {
        let name = self.pb_name(r);
        if self.types.contains_key(&name) {
            return;
        }
        match self.ctx.lookup(r) {
            Some(TypeKind::Struct(fields)) => {
                self.types.insert(name, r.clone());
                for f in fields.clone() {
                    self.reach_type(&f.ty);
                }
            }
            Some(TypeKind::Enum(_)) => {
                self.types.insert(name, r.clone());
            }
            Some(TypeKind::Union(u)) => {
                self.types.insert(name, r.clone());
                for v in u.variants.clone() {
                    self.reach(&v.ty);
                }
            }
            Some(TypeKind::Newtype { inner, .. }) => {
                let inner = inner.clone();
                self.reach_type(&inner);
            }
            None => {}
        }
    }

    fn reach_type(&mut self, t: &TypeRef) {
        match t {
            TypeRef::Named(r) => self.reach(r),
            TypeRef::List(i) | TypeRef::Map(i) | TypeRef::Optional(i) => self.reach_type(i),
            TypeRef::Prim(_) => {}
        }
    }

    /// Newtypes peeled off: the wire type and the newtype paths, outermost first.
    fn peel(&self, t: &TypeRef) -> (TypeRef, Vec<TokenStream>) {
        let mut current = t.clone();
        let mut wraps = Vec::new();
        for _ in 0..32 {
            match &current {
                TypeRef::Named(r) => match self.ctx.lookup(r) {
                    Some(TypeKind::Newtype { inner, .. }) => {
                        wraps.push(self.domain_path(r));
                        current = inner.clone();
                    }
                    _ => break,
                },
                _ => break,
            }
        }
        (current, wraps)
    }

    fn is_enum(&self, r: &NamedRef) -> bool {
        self.model.is_enum(r)
    }

    /// (Rust type, prost kind) of a scalar wire type, or `None` for messages.
    fn scalar(&self, t: &TypeRef) -> Option<(TokenStream, &'static str)> {
        match t {
            TypeRef::Prim(p) => match primitive(*p) {
                Wire::Scalar(s) => Some(scalar_rust(s)),
                Wire::WellKnown(_) => None,
            },
            TypeRef::Named(r) if self.is_enum(r) => Some((quote!(i32), "int32")),
            _ => None,
        }
    }

    /// The wrapper message for a container nested in a container (named, and its field
    /// named, by the shared model, as in the `.proto`): returns (message, field).
    fn wrapper(&mut self, t: &TypeRef) -> (String, &'static str) {
        let Wrapper {
            name,
            field: field_name,
        } = self.model.wrapper(t);
        if !self.wrappers.contains_key(&name) {
            self.wrappers.insert(name.clone(), TokenStream::new());
            let field = Field {
                name: field_name.into(),
                wire_name: field_name.into(),
                ty: t.clone(),
                docs: None,
                deprecated: None,
                constraints: Default::default(),
                number: 1,
                boxed: false,
                span: self.ctx.contract.span,
            };
            let msg = self.message(&name, &[field]);
            self.wrappers.insert(name.clone(), msg);
        }
        (name, field_name)
    }

    /// (Rust type, prost attribute) of a field, as the model shapes it.
    fn field_type(&mut self, f: &Field) -> (TokenStream, String) {
        let tag = f.number;
        let shape = self.model.shape(&f.ty);
        let (ty, kind) = self.rust_element(&shape.element);
        let message = kind == "message";
        match shape.label {
            Label::Repeated => (
                quote!(::std::vec::Vec<#ty>),
                format!("{kind}, repeated, tag = \"{tag}\""),
            ),
            Label::Map => {
                // prost names map values `bytes`, not `bytes = "vec"`.
                let kind = if kind.starts_with("bytes") {
                    "bytes".into()
                } else {
                    kind
                };
                (
                    quote!(::std::collections::BTreeMap<::std::string::String, #ty>),
                    format!("btree_map = \"string, {kind}\", tag = \"{tag}\""),
                )
            }
            // Messages always have presence: prost holds them as `Option`, boxed when the
            // message contains itself.
            Label::Singular | Label::Optional if message => {
                let (ty, boxed) = if f.boxed {
                    (quote!(::std::boxed::Box<#ty>), ", boxed")
                } else {
                    (ty, "")
                };
                (
                    quote!(::core::option::Option<#ty>),
                    format!("message, optional{boxed}, tag = \"{tag}\""),
                )
            }
            Label::Optional => (
                quote!(::core::option::Option<#ty>),
                format!("{kind}, optional, tag = \"{tag}\""),
            ),
            Label::Singular => (ty, format!("{kind}, tag = \"{tag}\"")),
        }
    }

    /// (Rust type, prost kind) of one element.
    fn rust_element(&mut self, element: &Element) -> (TokenStream, String) {
        match element {
            Element::Scalar(s) => {
                let (ty, kind) = scalar_rust(*s);
                (ty, kind.into())
            }
            Element::Enum(_) => (quote!(i32), "int32".into()),
            Element::WellKnown(WellKnown::Timestamp) => (
                quote!(::pactum::grpc::prost_types::Timestamp),
                "message".into(),
            ),
            Element::WellKnown(WellKnown::Duration) => (
                quote!(::pactum::grpc::prost_types::Duration),
                "message".into(),
            ),
            Element::Message(r) => {
                let n = format_ident!("{}", self.pb_name(r));
                (quote!(#n), "message".into())
            }
            Element::Wrapper(container) => {
                let n = format_ident!("{}", self.wrapper(container).0);
                (quote!(#n), "message".into())
            }
        }
    }

    fn message(&mut self, name: &str, fields: &[Field]) -> TokenStream {
        let n = format_ident!("{}", name);
        let fs: Vec<TokenStream> = fields
            .iter()
            .map(|f| {
                let fname = ident(&f.name, Case::Snake);
                let (ty, attr) = self.field_type(f);
                let attr: TokenStream = attr.parse().unwrap_or_default();
                quote! { #[prost(#attr)] pub #fname: #ty, }
            })
            .collect();
        // `skip_debug` and a derived Debug: prost-derive's own Debug impl names
        // `::prost::alloc` for map fields, ignoring `prost_path`, and the user's crate has no
        // `prost` of its own.
        quote! {
            #[derive(::core::clone::Clone, ::core::cmp::PartialEq, ::core::fmt::Debug, ::pactum::grpc::prost::Message)]
            #[prost(prost_path = "::pactum::grpc::prost")]
            #[prost(skip_debug)]
            pub struct #n { #(#fs)* }
        }
    }

    /// A union's message: one `oneof` field (named for the tag) whose variants are the
    /// structs' messages, in a module named for the union (as prost-build nests them), so no
    /// name it adds can meet a message's.
    fn union_message(&mut self, name: &str, u: &Union) -> TokenStream {
        let n = format_ident!("{}", name);
        let module = ident(&crate::naming::convert(name, Case::Snake), Case::Snake);
        let field = ident(&u.tag, Case::Snake);
        let tags = u
            .variants
            .iter()
            .map(|v| v.number.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let oneof = format!("{}::Variant", crate::naming::convert(name, Case::Snake));
        let variants = u.variants.iter().map(|v| {
            let var = ident(&v.variant, Case::Pascal);
            let ty = format_ident!("{}", self.pb_name(&v.ty));
            let tag = v.number.to_string();
            quote!(#[prost(message, tag = #tag)] #var(super::#ty),)
        });
        quote! {
            #[derive(::core::clone::Clone, ::core::cmp::PartialEq, ::core::fmt::Debug, ::pactum::grpc::prost::Message)]
            #[prost(prost_path = "::pactum::grpc::prost")]
            #[prost(skip_debug)]
            pub struct #n {
                #[prost(oneof = #oneof, tags = #tags)]
                pub #field: ::core::option::Option<#module::Variant>,
            }

            pub mod #module {
                #[derive(::core::clone::Clone, ::core::cmp::PartialEq, ::core::fmt::Debug, ::pactum::grpc::prost::Oneof)]
                #[prost(prost_path = "::pactum::grpc::prost")]
                #[prost(skip_debug)]
                pub enum Variant {
                    #(#variants)*
                }
            }
        }
    }

    /// Conversions of a union: a variant this version does not know becomes an unset
    /// `oneof`, and an unset one (absent, or a field number from a newer version, which
    /// protobuf drops) becomes `Unrecognized` with no tag, which `validate()` refuses.
    fn union_conversions(&mut self, pb_name: &str, domain: &TokenStream, u: &Union) -> TokenStream {
        let n = format_ident!("{}", pb_name);
        let module = ident(&crate::naming::convert(pb_name, Case::Snake), Case::Snake);
        let field = ident(&u.tag, Case::Snake);
        let to = self.fn_name(pb_name, "to_pb");
        let from = self.fn_name(pb_name, "from_pb");
        let mut to_arms = Vec::new();
        let mut from_arms = Vec::new();
        for v in &u.variants {
            let var = ident(&v.variant, Case::Pascal);
            let ty = TypeRef::Named(v.ty.clone());
            let to_v = self.elem_to_pb(quote!(v), &ty);
            let from_v = self.elem_from_pb(quote!(v), &ty, &v.wire);
            to_arms.push(quote!(#domain::#var(v) => ::core::option::Option::Some(pb::#module::Variant::#var(#to_v)),));
            from_arms.push(quote!(::core::option::Option::Some(pb::#module::Variant::#var(v)) => #domain::#var(#from_v),));
        }
        quote! {
            #[allow(dead_code, deprecated)]
            fn #to(v: #domain) -> pb::#n {
                pb::#n {
                    #field: match v {
                        #(#to_arms)*
                        #domain::Unrecognized(_) => ::core::option::Option::None,
                    },
                }
            }
            #[allow(dead_code, deprecated)]
            fn #from(v: pb::#n) -> ::core::result::Result<#domain, ::std::string::String> {
                ::core::result::Result::Ok(match v.#field {
                    #(#from_arms)*
                    ::core::option::Option::None => {
                        #domain::Unrecognized(::core::default::Default::default())
                    }
                })
            }
        }
    }

    // ---- domain → protobuf ----

    /// `e` is an owned domain value of `t`; yields the value of a field of that type.
    fn field_to_pb(&mut self, e: TokenStream, t: &TypeRef, boxed: bool) -> TokenStream {
        let (wire, wraps) = self.peel(t);
        // A boxed message is dereferenced before its newtypes are unwrapped: `(*v).0`.
        let leaf_message = !matches!(
            wire,
            TypeRef::Optional(_) | TypeRef::List(_) | TypeRef::Map(_)
        ) && self.scalar(&wire).is_none();
        let e = if boxed && leaf_message {
            quote!(*#e)
        } else {
            e
        };
        let e = unwrap_expr(e, wraps.len());
        match &wire {
            TypeRef::Optional(inner) => {
                let (inner_wire, _) = self.peel(inner);
                let v = self.field_to_pb(quote!(v), inner, boxed);
                match inner_wire {
                    TypeRef::List(_) | TypeRef::Map(_) => {
                        quote!(match #e { ::core::option::Option::Some(v) => #v, ::core::option::Option::None => ::core::default::Default::default() })
                    }
                    // `field_to_pb` of a message already wraps it in `Some`.
                    _ if self.scalar(&inner_wire).is_none() => {
                        quote!(match #e { ::core::option::Option::Some(v) => #v, ::core::option::Option::None => ::core::option::Option::None })
                    }
                    _ => quote!(#e.map(|v| #v)),
                }
            }
            TypeRef::List(item) => {
                let v = self.elem_to_pb(quote!(v), item);
                quote!(#e.into_iter().map(|v| #v).collect())
            }
            TypeRef::Map(value) => {
                let v = self.elem_to_pb(quote!(v), value);
                quote!(#e.into_iter().map(|(k, v)| (k, #v)).collect())
            }
            other => {
                if self.scalar(other).is_some() {
                    self.elem_to_pb(e, other)
                } else {
                    let v = self.elem_to_pb(e, other);
                    if boxed {
                        quote!(::core::option::Option::Some(::std::boxed::Box::new(#v)))
                    } else {
                        quote!(::core::option::Option::Some(#v))
                    }
                }
            }
        }
    }

    fn elem_to_pb(&mut self, e: TokenStream, t: &TypeRef) -> TokenStream {
        let (wire, wraps) = self.peel(t);
        let e = unwrap_expr(e, wraps.len());
        match &wire {
            TypeRef::Prim(p) => match p {
                Primitive::Uuid | Primitive::Decimal => {
                    quote!(::std::string::ToString::to_string(&#e))
                }
                Primitive::Bytes => quote!(#e.0),
                Primitive::Timestamp => quote!(::pactum::grpc::timestamp_to(#e)),
                Primitive::Duration => quote!(::pactum::grpc::duration_to(#e)),
                _ => e,
            },
            TypeRef::Named(r) => {
                let f = self.fn_name(&self.pb_name(r), "to_pb");
                if self.is_enum(r) {
                    quote!(#f(&#e))
                } else {
                    quote!(#f(#e))
                }
            }
            other => {
                let (w, field) = self.wrapper(other);
                let (w, field) = (format_ident!("{}", w), format_ident!("{}", field));
                let v = self.field_to_pb(e, other, false);
                quote!(pb::#w { #field: #v })
            }
        }
    }

    // ---- protobuf → domain ----

    /// `e` is the pb field value; yields the domain value (uses `?` with `String` errors).
    fn field_from_pb(
        &mut self,
        e: TokenStream,
        t: &TypeRef,
        name: &str,
        boxed: bool,
    ) -> TokenStream {
        let (wire, wraps) = self.peel(t);
        let inner = match &wire {
            TypeRef::Optional(inner) => {
                let (inner_wire, _) = self.peel(inner);
                match inner_wire {
                    TypeRef::List(_) | TypeRef::Map(_) => {
                        let v = self.field_from_pb(quote!(v), inner, name, false);
                        quote!({ let v = #e; if v.is_empty() { ::core::option::Option::None } else { ::core::option::Option::Some(#v) } })
                    }
                    _ if self.scalar(&inner_wire).is_some() => {
                        let v = self.elem_from_pb(quote!(v), inner, name);
                        quote!(match #e { ::core::option::Option::Some(v) => ::core::option::Option::Some(#v), ::core::option::Option::None => ::core::option::Option::None })
                    }
                    _ => {
                        let v = self.elem_from_pb(
                            if boxed { quote!(*v) } else { quote!(v) },
                            inner,
                            name,
                        );
                        let v = if boxed {
                            quote!(::std::boxed::Box::new(#v))
                        } else {
                            v
                        };
                        quote!(match #e { ::core::option::Option::Some(v) => ::core::option::Option::Some(#v), ::core::option::Option::None => ::core::option::Option::None })
                    }
                }
            }
            TypeRef::List(item) => {
                let v = self.elem_from_pb(quote!(v), item, name);
                quote!(#e.into_iter().map(|v| -> ::core::result::Result<_, ::std::string::String> { ::core::result::Result::Ok(#v) }).collect::<::core::result::Result<::std::vec::Vec<_>, _>>()?)
            }
            TypeRef::Map(value) => {
                let v = self.elem_from_pb(quote!(v), value, name);
                quote!(#e.into_iter().map(|(k, v)| -> ::core::result::Result<_, ::std::string::String> { ::core::result::Result::Ok((k, #v)) }).collect::<::core::result::Result<::std::collections::BTreeMap<_, _>, _>>()?)
            }
            other => {
                if self.scalar(other).is_some() {
                    self.elem_from_pb(e, other, name)
                } else {
                    let v =
                        self.elem_from_pb(if boxed { quote!(*v) } else { quote!(v) }, other, name);
                    let v = if boxed {
                        quote!(::std::boxed::Box::new(#v))
                    } else {
                        v
                    };
                    quote!({ let v = #e.ok_or_else(|| ::pactum::grpc::missing(#name))?; #v })
                }
            }
        };
        wrap_expr(inner, &wraps)
    }

    fn elem_from_pb(&mut self, e: TokenStream, t: &TypeRef, name: &str) -> TokenStream {
        let (wire, wraps) = self.peel(t);
        let v = match &wire {
            TypeRef::Prim(p) => match p {
                Primitive::Uuid => {
                    quote!(::pactum::grpc::parse::<::pactum::types::Uuid>(#name, &#e)?)
                }
                Primitive::Decimal => {
                    quote!(::pactum::grpc::parse::<::pactum::types::Decimal>(#name, &#e)?)
                }
                Primitive::Bytes => quote!(::pactum::types::Bytes(#e)),
                Primitive::Timestamp => quote!(::pactum::grpc::timestamp_from(#e)?),
                Primitive::Duration => quote!(::pactum::grpc::duration_from(#e)?),
                _ => e,
            },
            TypeRef::Named(r) => {
                let f = self.fn_name(&self.pb_name(r), "from_pb");
                if self.is_enum(r) {
                    quote!(#f(#e))
                } else {
                    quote!(#f(#e)?)
                }
            }
            other => {
                let field = format_ident!("{}", self.wrapper(other).1);
                self.field_from_pb(quote!(#e.#field), other, name, false)
            }
        };
        wrap_expr(v, &wraps)
    }

    fn struct_conversions(
        &mut self,
        pb_name: &str,
        domain: &TokenStream,
        fields: &[Field],
    ) -> TokenStream {
        let n = format_ident!("{}", pb_name);
        let to = self.fn_name(pb_name, "to_pb");
        let from = self.fn_name(pb_name, "from_pb");
        let to_fields: Vec<TokenStream> = fields
            .iter()
            .map(|f| {
                let fname = ident(&f.name, Case::Snake);
                let v = self.field_to_pb(quote!(v.#fname), &f.ty, f.boxed);
                quote!(#fname: #v,)
            })
            .collect();
        let from_fields: Vec<TokenStream> = fields
            .iter()
            .map(|f| {
                let fname = ident(&f.name, Case::Snake);
                let v = self.field_from_pb(quote!(v.#fname), &f.ty, &f.wire_name, f.boxed);
                quote!(#fname: #v,)
            })
            .collect();
        let unused = if fields.is_empty() {
            quote!(let _ = v;)
        } else {
            TokenStream::new()
        };
        quote! {
            #[allow(dead_code, clippy::redundant_closure, clippy::useless_conversion)]
            fn #to(v: #domain) -> pb::#n {
                #unused
                pb::#n { #(#to_fields)* }
            }
            #[allow(dead_code, clippy::redundant_closure, clippy::useless_conversion)]
            fn #from(v: pb::#n) -> ::core::result::Result<#domain, ::std::string::String> {
                #unused
                ::core::result::Result::Ok(#domain { #(#from_fields)* })
            }
        }
    }

    fn error_details(&mut self, op: &Operation, package: &str) -> TokenStream {
        let snake = ident(&op.name, Case::Snake);
        let to = format_ident!("{}_error_detail", snake);
        let from = format_ident!("{}_error_from_detail", snake);
        let error = format_ident!("{}Error", op.name);
        let to_arms = op.errors.iter().map(|e| {
            let var = ident(e, Case::Pascal);
            let conv = self.fn_name(e, "to_pb");
            let url = format!("type.googleapis.com/{package}.{e}");
            quote! {
                super::#error::#var(e) => ::pactum::grpc::prost_types::Any {
                    type_url: #url.into(),
                    value: ::pactum::grpc::prost::Message::encode_to_vec(&#conv(::core::clone::Clone::clone(e))),
                },
            }
        });
        let from_arms = op.errors.iter().map(|e| {
            let var = ident(e, Case::Pascal);
            let conv = self.fn_name(e, "from_pb");
            let pbn = format_ident!("{}", e);
            let url = format!("type.googleapis.com/{package}.{e}");
            quote! {
                #url => {
                    let m = <pb::#pbn as ::pactum::grpc::prost::Message>::decode(&*any.value).ok()?;
                    #conv(m).ok().map(super::#error::#var)
                }
            }
        });
        let to_body = if op.errors.is_empty() {
            quote!(match *e {})
        } else {
            quote!(match e { #(#to_arms)* })
        };
        let from_body = if op.errors.is_empty() {
            quote!(let _ = any; ::core::option::Option::None)
        } else {
            quote!(match any.type_url.as_str() { #(#from_arms)* _ => ::core::option::Option::None })
        };
        quote! {
            fn #to(e: &super::#error) -> ::pactum::grpc::prost_types::Any {
                #to_body
            }
            fn #from(any: &::pactum::grpc::prost_types::Any) -> ::core::option::Option<super::#error> {
                #from_body
            }
        }
    }

    fn io(&self, op: &Operation) -> (TokenStream, TokenStream, TokenStream, TokenStream) {
        // (decode input, encode output, encode input (client), decode output (client))
        let (decode_in, encode_in) = match &op.input {
            Some(i) => {
                let n = self.pb_name(i);
                let (to, from) = (self.fn_name(&n, "to_pb"), self.fn_name(&n, "from_pb"));
                (
                    quote!(#from),
                    quote!(#to(::core::clone::Clone::clone(input))),
                )
            }
            None => (
                quote!(|_: ()| ::core::result::Result::Ok(::pactum::NoInput)),
                quote!(()),
            ),
        };
        let (encode_out, decode_out) = match &op.output {
            Some(TypeRef::Named(o)) => {
                let n = self.pb_name(o);
                let (to, from) = (self.fn_name(&n, "to_pb"), self.fn_name(&n, "from_pb"));
                (quote!(#to), quote!(#from))
            }
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
        let to_pb = match &op.input {
            Some(i) => {
                let f = self.fn_name(&self.pb_name(i), "to_pb");
                quote!(#f)
            }
            None => quote!(|_: ::pactum::NoInput| ()),
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
                        let inputs = ::pactum::__private::tokio_stream::StreamExt::map(inputs, #to_pb);
                        self.inner
                            .#call(&super::operations::#konst, #path, ::std::boxed::Box::pin(inputs), #decode_out, #from_detail)
                            .await
                    }
                }
            }
        }
    }
}

/// `e.0.0…`: the value inside `levels` newtypes. A dereference (`*v`, a boxed recursive
/// message) is parenthesised only when a field access follows: elsewhere, as a function
/// argument, the parentheses would trip `unused_parens` in the user's build.
/// (Rust type, prost kind) of a scalar.
fn scalar_rust(s: Scalar) -> (TokenStream, &'static str) {
    match s {
        Scalar::Bool => (quote!(bool), "bool"),
        Scalar::Int32 => (quote!(i32), "int32"),
        Scalar::Int64 => (quote!(i64), "int64"),
        Scalar::Uint32 => (quote!(u32), "uint32"),
        Scalar::Uint64 => (quote!(u64), "uint64"),
        Scalar::Double => (quote!(f64), "double"),
        Scalar::String => (quote!(::std::string::String), "string"),
        Scalar::Bytes => (quote!(::std::vec::Vec<u8>), "bytes = \"vec\""),
    }
}

fn unwrap_expr(e: TokenStream, levels: usize) -> TokenStream {
    let mut e = if levels > 0 && e.to_string().starts_with('*') {
        quote!((#e))
    } else {
        e
    };
    for _ in 0..levels {
        e = quote!(#e.0);
    }
    e
}

fn wrap_expr(v: TokenStream, wraps: &[TokenStream]) -> TokenStream {
    let mut v = v;
    for w in wraps.iter().rev() {
        v = quote!(#w(#v));
    }
    v
}
