//! What makes a contract's types protobuf messages: for each struct, union and declared error
//! that a gRPC operation reaches (of any contract: [`Reached`](super::protobuf::Reached)), an
//! impl of `pactum::grpc::proto::Message` — its fields by number, each one call into the
//! runtime — and, in one macro call, `prost::Message` and `Value`; enums and newtypes get
//! theirs from one macro call each. The domain type is the message: there is no mirror
//! struct and no conversion.
//!
//! The wire is the `.proto`'s because the runtime's `Value` impls follow the same model
//! (`protobuf.rs`): uuids and decimals as strings, timestamps and durations as well-known
//! types, an optional scalar as proto3 `optional`, an optional list as its items, a container
//! inside a container as a wrapper message.

use super::{rust_type, Ctx};
use crate::ast::Primitive;
use crate::ir::{ErrorDef, Field, NamedRef, TypeDef, TypeKind, TypeRef, Union};
use crate::naming::{ident, Case};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// `mod protobuf` with the impls of every reached type and error of the contract.
pub(crate) fn messages(ctx: &Ctx<'_>) -> TokenStream {
    let nested = ctx.nested(1);
    let id = &ctx.contract.id;
    let mut impls = Vec::new();
    let mut messages = Vec::new();
    let mut newtypes = Vec::new();
    for t in ctx
        .contract
        .types
        .iter()
        .filter(|t| ctx.reached.has_type(id, &t.name))
    {
        let path = type_path(&nested, t);
        match &t.kind {
            TypeKind::Struct(fields) => {
                impls.push(message(&nested, &path, fields));
                messages.push(path);
            }
            TypeKind::Union(u) => {
                impls.push(union(&nested, &path, u));
                messages.push(path);
            }
            TypeKind::Enum(values) => {
                let arms = values.iter().map(|v| {
                    let var = ident(&v.variant, Case::Pascal);
                    let n = Literal::i32_unsuffixed(v.number as i32);
                    quote!(#var = #n)
                });
                impls.push(quote!(::pactum::__grpc_enum!(#path { #(#arms),* });));
            }
            TypeKind::Newtype { inner, .. } => {
                let inner = rust_type(&nested, inner, false);
                newtypes.push(quote!(#path => #inner));
            }
        }
    }
    for e in ctx
        .contract
        .errors
        .iter()
        .filter(|e| ctx.reached.has_error(id, &e.name))
    {
        let path = error_path(&nested, e);
        impls.push(message(&nested, &path, &e.fields));
        messages.push(path);
    }
    let newtypes = if newtypes.is_empty() {
        TokenStream::new()
    } else {
        quote!(::pactum::__grpc_newtype!(#(#newtypes),*);)
    };
    let messages = if messages.is_empty() {
        TokenStream::new()
    } else {
        quote!(::pactum::__grpc_message!(#(#messages),*);)
    };
    quote! {
        /// The protobuf encoding of this contract's types that gRPC operations reach: the
        /// types themselves are the messages.
        #[allow(deprecated)]
        mod protobuf {
            ::pactum::__requires_feature!(grpc);

            #(#impls)*
            #messages
            #newtypes
        }
    }
}

fn type_path(ctx: &Ctx<'_>, t: &TypeDef) -> TokenStream {
    ctx.type_path(&NamedRef {
        contract: ctx.contract.id.clone(),
        name: t.name.clone(),
    })
}

fn error_path(ctx: &Ctx<'_>, e: &ErrorDef) -> TokenStream {
    let name = ident(&e.name, Case::Pascal);
    let up = ctx.up();
    quote!(#up #name)
}

/// Is a field whose type is `t` a fault to leave out? Messages (and the well-known types)
/// unless optional, and ids and decimals, which cannot be empty. Lists, maps, scalars and
/// enums have protobuf's defaults.
fn may_be_absent(ctx: &Ctx<'_>, t: &TypeRef) -> bool {
    let mut current = t.clone();
    for _ in 0..32 {
        match current {
            TypeRef::Prim(p) => {
                return matches!(
                    p,
                    Primitive::Uuid
                        | Primitive::Decimal
                        | Primitive::Timestamp
                        | Primitive::Duration
                )
            }
            TypeRef::Named(ref r) => match ctx.lookup(r) {
                Some(TypeKind::Newtype { inner, .. }) => current = inner.clone(),
                Some(TypeKind::Struct(_) | TypeKind::Union(_)) => return true,
                Some(TypeKind::Enum(_)) | None => return false,
            },
            TypeRef::Optional(_) | TypeRef::List(_) | TypeRef::Map(_) => return false,
        }
    }
    false
}

/// The `Message` impl of a struct or declared error, as one runtime macro call: fields in
/// number order (as prost writes them), each with its declaration index (faults are
/// reported in declaration order), then the fields whose absence is a fault.
fn message(ctx: &Ctx<'_>, path: &TokenStream, fields: &[Field]) -> TokenStream {
    let mut by_number: Vec<(usize, &Field)> = fields.iter().enumerate().collect();
    by_number.sort_by_key(|(_, f)| f.number);
    let listed = by_number.iter().map(|(i, f)| {
        let name = ident(&f.name, Case::Snake);
        let tag = Literal::u32_unsuffixed(f.number);
        let index = Literal::usize_unsuffixed(*i);
        let wire = &f.wire_name;
        let kind = if matches!(f.ty, TypeRef::Optional(_)) {
            quote!(optional)
        } else {
            quote!(plain)
        };
        quote!(#name: #tag #kind #index #wire)
    });
    let required = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| may_be_absent(ctx, &f.ty))
        .map(|(i, f)| {
            let index = Literal::usize_unsuffixed(i);
            let name = ident(&f.name, Case::Snake);
            let wire = &f.wire_name;
            quote!(#index #name #wire)
        });
    quote! {
        ::pactum::__grpc_struct!(#path { #(#listed),* } required { #(#required),* });
    }
}

/// A union as a message with one `oneof`: the variant's struct at the variant's number.
/// No variant set (absent, or a newer version's) reads as `Unrecognized`, which
/// `validate()` refuses; `Unrecognized` writes nothing.
fn union(ctx: &Ctx<'_>, path: &TokenStream, u: &Union) -> TokenStream {
    let w = quote!(::pactum::grpc::proto);
    let mut encodes = Vec::new();
    let mut lens = Vec::new();
    let mut merges = Vec::new();
    let mut variants: Vec<_> = u.variants.iter().enumerate().collect();
    variants.sort_by_key(|(_, v)| v.number);
    for (i, v) in variants {
        let var = ident(&v.variant, Case::Pascal);
        let tag = Literal::u32_unsuffixed(v.number);
        let index = Literal::usize_unsuffixed(i);
        let wire = &v.wire;
        encodes.push(quote!(#path::#var(v) => #w::field(#tag, v, buf),));
        lens.push(quote!(#path::#var(v) => #w::field_len(#tag, v),));
        merges.push(quote! {
            #tag => seen.note(#index, #w::merge_variant(
                self,
                |u| match u { #path::#var(v) => ::core::option::Option::Some(v), _ => ::core::option::Option::None },
                #path::#var,
                wire_type,
                buf,
                ctx,
                #wire,
            )),
        });
    }
    let _ = ctx;
    quote! {
        impl ::core::default::Default for #path {
            fn default() -> Self {
                #path::Unrecognized(::core::default::Default::default())
            }
        }

        impl #w::Message for #path {
            fn encode_fields(&self, buf: &mut impl #w::BufMut) {
                match self {
                    #(#encodes)*
                    #path::Unrecognized(_) => {}
                }
            }

            fn fields_len(&self) -> usize {
                match self {
                    #(#lens)*
                    #path::Unrecognized(_) => 0,
                }
            }

            fn merge_field(
                &mut self,
                tag: u32,
                wire_type: #w::WireType,
                buf: &mut impl #w::Buf,
                ctx: #w::DecodeContext,
                seen: &mut #w::Seen,
            ) -> ::core::result::Result<(), #w::DecodeError> {
                match tag {
                    #(#merges)*
                    _ => #w::skip(tag, wire_type, buf, ctx),
                }
            }
        }
    }
}
