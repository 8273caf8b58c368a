//! Structs, enums, newtypes and declared errors, with their serde and `Validate` impls.

use super::{deprecated, docs, rust_type, Ctx};
use crate::ast::{Number, Primitive};
use crate::ir::{Constraints, EnumValue, ErrorDef, Field, TypeDef, TypeKind, TypeRef, Union};
use crate::naming::{ident, Case};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// Derives shared by every generated data type; serde's for a newtype that travels as JSON
/// ([`Json`](super::Json)). Structs and open enums get serde from runtime macros instead
/// (`serde_impls.rs`): the derives were two fifths of a large generated crate's build.
fn data_derives(eq_hash: bool, serde: bool) -> TokenStream {
    let extra = if eq_hash {
        quote!(::core::cmp::Eq, ::core::hash::Hash,)
    } else {
        TokenStream::new()
    };
    if !serde {
        return quote! {
            #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, #extra)]
        };
    }
    quote! {
        #[derive(
            ::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, #extra
            ::pactum::__private::serde::Serialize, ::pactum::__private::serde::Deserialize
        )]
        #[serde(crate = "::pactum::__private::serde")]
    }
}

/// `#[serde(…)]` on a field or variant, when the type is a serde type.
fn serde_attr(json: bool, attr: TokenStream) -> TokenStream {
    if json {
        quote!(#[serde(#attr)])
    } else {
        TokenStream::new()
    }
}

/// `Default` for a struct that is a protobuf message: decoding starts from it (every field
/// the message leaves out keeps protobuf's default).
fn protobuf_default(message: bool) -> TokenStream {
    if message {
        quote!(#[derive(::core::default::Default)])
    } else {
        TokenStream::new()
    }
}

pub(crate) fn type_def(ctx: &Ctx<'_>, t: &TypeDef) -> TokenStream {
    let name = ident(&t.name, Case::Pascal);
    // Without a description, say what the contract does: its shape.
    let fallback = match &t.kind {
        TypeKind::Struct(fields) if fields.is_empty() => format!("`{}`: no fields.", t.name),
        TypeKind::Struct(fields) => format!(
            "`{}`: {}.",
            t.name,
            super::listed(fields.iter().map(|f| f.wire_name.as_str()), 6)
        ),
        TypeKind::Enum(values) => format!(
            "`{}`: one of {}.",
            t.name,
            super::listed(values.iter().map(|v| v.wire.as_str()), 6)
        ),
        TypeKind::Union(u) => format!(
            "`{}`: one of {}, named by `{}`.",
            t.name,
            super::listed(u.variants.iter().map(|v| v.wire.as_str()), 6),
            u.tag
        ),
        TypeKind::Newtype { inner, .. } => {
            format!(
                "`{}`: a `{}` of its own type.",
                t.name,
                super::spelled(inner)
            )
        }
    };
    let doc = docs(Some(t.docs.as_deref().unwrap_or(&fallback)));
    let dep = deprecated(t.deprecated.as_deref());
    let json = ctx.json.has_type(&ctx.contract.id, &t.name);
    match &t.kind {
        TypeKind::Struct(fields) => {
            let default = protobuf_default(ctx.reached.has_type(&ctx.contract.id, &t.name));
            struct_def(ctx, &name, quote!(#doc #dep #default), fields, json)
        }
        TypeKind::Enum(values) => enum_def(&name, quote!(#doc #dep), values, json),
        TypeKind::Union(u) => union_def(ctx, &name, quote!(#doc #dep), u, json),
        TypeKind::Newtype { inner, constraints } => {
            newtype_def(ctx, &name, quote!(#doc #dep), inner, constraints, json)
        }
    }
}

/// A struct with named fields and its `Validate` impl. Shared by types, events, webhooks
/// and errors.
pub(crate) fn struct_def(
    ctx: &Ctx<'_>,
    name: &proc_macro2::Ident,
    attrs: TokenStream,
    fields: &[Field],
    json: bool,
) -> TokenStream {
    let derives = data_derives(false, false);
    let decls = fields.iter().map(|f| {
        let fname = ident(&f.name, Case::Snake);
        let ty = rust_type(ctx, &f.ty, f.boxed);
        let doc = docs(f.docs.as_deref());
        let dep = deprecated(f.deprecated.as_deref());
        quote! { #doc #dep pub #fname: #ty, }
    });
    // serde as the derives would write it, through the runtime: an optional field is left
    // out of the JSON when `None` and read as `None` when left out; a required one is an
    // error when left out.
    let serde = if json {
        let entries = fields.iter().enumerate().map(|(i, f)| {
            let (fname, wire) = (ident(&f.name, Case::Snake), &f.wire_name);
            let index = Literal::usize_unsuffixed(i);
            let kind = if matches!(f.ty, TypeRef::Optional(_)) {
                quote!(default)
            } else {
                quote!(required)
            };
            quote!(#index #fname = #wire #kind)
        });
        quote!(::pactum::__serde_struct!(#name { #(#entries),* });)
    } else {
        TokenStream::new()
    };
    if fields.iter().all(|f| f.constraints.is_empty()) {
        // The common case: every field checked as its type says, one macro call.
        let entries = fields.iter().map(|f| {
            let (fname, wire) = (ident(&f.name, Case::Snake), &f.wire_name);
            quote!(#fname = #wire)
        });
        return quote! {
            #attrs
            #derives
            pub struct #name { #(#decls)* }

            #serde

            ::pactum::__validate_fields!(#name { #(#entries),* });
        };
    }
    let checks = fields.iter().map(|f| {
        let fname = ident(&f.name, Case::Snake);
        let wire = &f.wire_name;
        if f.constraints.is_empty() {
            // The common case, one line: only the field type's own checks apply.
            return quote!(::pactum::__private::check::field(#wire, &self.#fname, path, out););
        }
        let body = value_checks(ctx, &f.ty, &f.constraints, quote!(value));
        quote! {
            path.push_field(#wire);
            {
                let value = &self.#fname;
                #body
            }
            path.pop();
        }
    });
    let unused = if fields.is_empty() {
        quote!(let _ = (path, out);)
    } else {
        TokenStream::new()
    };
    quote! {
        #attrs
        #derives
        pub struct #name { #(#decls)* }

        #serde

        #[allow(deprecated)]
        impl ::pactum::Validate for #name {
            fn validate_into(
                &self,
                path: &mut ::pactum::FieldPath,
                out: &mut ::std::vec::Vec<::pactum::Violation>,
            ) {
                #unused
                #(#checks)*
            }
        }
    }
}

fn enum_def(
    name: &proc_macro2::Ident,
    attrs: TokenStream,
    values: &[EnumValue],
    json: bool,
) -> TokenStream {
    // serde's derive of an enum with an untagged fallback buffers every value and tries twice;
    // the runtime macro reads it once, with the same results (`runtime/src/serde_impls.rs`).
    let derives = data_derives(true, false);
    let variants = values.iter().map(|v| {
        let var = ident(&v.variant, Case::Pascal);
        let doc = docs(v.docs.as_deref());
        let dep = deprecated(v.deprecated.as_deref());
        quote! { #doc #dep #var, }
    });
    let entries = values.iter().map(|v| {
        let var = ident(&v.variant, Case::Pascal);
        let wire = &v.wire;
        quote!(#var = #wire)
    });
    let json = if json {
        quote!(, json)
    } else {
        TokenStream::new()
    };
    quote! {
        #attrs
        ///
        /// Open for evolution: a value added by a newer contract version deserializes as
        /// `Unrecognized` (and serializes back unchanged) instead of failing the whole message.
        /// `validate()` reports it, so a server still refuses it as input.
        #derives
        pub enum #name {
            #(#variants)*
            /// A value this version of the contract does not know.
            Unrecognized(::std::string::String),
        }

        ::pactum::__open_enum!(#name { #(#entries),* } #json);
    }
}

/// A tagged union: an enum with one tuple variant per struct and `Unrecognized` for variants
/// of newer versions. Serde is written out (through runtime helpers) rather than derived: a
/// derived internally tagged enum cannot keep an unknown variant.
fn union_def(
    ctx: &Ctx<'_>,
    name: &proc_macro2::Ident,
    attrs: TokenStream,
    u: &Union,
    json: bool,
) -> TokenStream {
    let tag = &u.tag;
    let wires: Vec<&String> = u.variants.iter().map(|v| &v.wire).collect();
    let variants = u.variants.iter().map(|v| {
        let var = ident(&v.variant, Case::Pascal);
        let doc = match &v.docs {
            Some(d) => docs(Some(d)),
            None => docs(Some(&format!("`{tag}: {}`.", v.wire))),
        };
        let dep = deprecated(v.deprecated.as_deref());
        let ty = rust_type(ctx, &TypeRef::Named(v.ty.clone()), false);
        quote! { #doc #dep #var(#ty), }
    });
    let names = u.variants.iter().map(|v| {
        let var = ident(&v.variant, Case::Pascal);
        let wire = &v.wire;
        quote!(#name::#var(_) => #wire,)
    });
    let ser = u.variants.iter().map(|v| {
        let var = ident(&v.variant, Case::Pascal);
        let wire = &v.wire;
        quote!(Self::#var(v) => ::pactum::__private::union::serialize(serializer, #tag, #wire, v),)
    });
    let de = u.variants.iter().map(|v| {
        let var = ident(&v.variant, Case::Pascal);
        let wire = &v.wire;
        quote!(#wire => ::pactum::__private::union::variant::<D, _>(&tag, fields).map(Self::#var),)
    });
    let checks = u.variants.iter().map(|v| {
        let var = ident(&v.variant, Case::Pascal);
        quote!(#name::#var(v) => ::pactum::Validate::validate_into(v, path, out),)
    });
    let wire_doc = docs(Some(&format!(
        "\nOn the JSON wire, one object: `{tag}` names the variant, beside the variant's own fields.\n\
         Open for evolution: a variant added by a newer contract version deserializes as\n\
         `Unrecognized` (and serializes back unchanged); `validate()` reports it, so a server\n\
         still refuses it as input."
    )));
    let serde_impls = if json {
        quote! {
        #[allow(deprecated)]
        impl ::pactum::__private::serde::Serialize for #name {
            fn serialize<S: ::pactum::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                match self {
                    #(#ser)*
                    Self::Unrecognized(other) => {
                        ::pactum::__private::union::serialize_unknown(serializer, #tag, other)
                    }
                }
            }
        }

        #[allow(deprecated)]
        impl<'de> ::pactum::__private::serde::Deserialize<'de> for #name {
            fn deserialize<D: ::pactum::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                let (tag, fields) =
                    ::pactum::__private::union::split(deserializer, #tag, Self::KNOWN)?;
                match tag.as_str() {
                    #(#de)*
                    _ => ::core::result::Result::Ok(Self::Unrecognized(
                        ::pactum::union::UnknownVariant { tag, fields },
                    )),
                }
            }
        }
        }
    } else {
        TokenStream::new()
    };
    quote! {
        #attrs
        #wire_doc
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
        pub enum #name {
            #(#variants)*
            /// A variant this version of the contract does not know.
            Unrecognized(::pactum::union::UnknownVariant),
        }

        #[allow(deprecated)]
        impl #name {
            /// The JSON property that names the variant.
            pub const TAG: &'static str = #tag;
            /// Every variant this version knows, in contract order.
            pub const KNOWN: &'static [&'static str] = &[#(#wires),*];

            /// The variant's tag as sent on the wire.
            pub fn variant(&self) -> &str {
                match self {
                    #(#names)*
                    #name::Unrecognized(other) => &other.tag,
                }
            }
        }

        #serde_impls

        #[allow(deprecated)]
        impl ::pactum::Validate for #name {
            fn validate_into(
                &self,
                path: &mut ::pactum::FieldPath,
                out: &mut ::std::vec::Vec<::pactum::Violation>,
            ) {
                match self {
                    #(#checks)*
                    #name::Unrecognized(other) => ::pactum::__private::check::unrecognized_variant(
                        #tag, &other.tag, #name::KNOWN, path, out,
                    ),
                }
            }
        }
    }
}

/// Does a type (through newtypes) support `Eq + Hash`, and `Display`?
fn scalar_traits(ctx: &Ctx<'_>, ty: &TypeRef) -> (bool, bool) {
    let mut current = ty.clone();
    for _ in 0..32 {
        match current {
            TypeRef::Prim(p) => {
                return (!matches!(p, Primitive::F64), !matches!(p, Primitive::Bytes))
            }
            TypeRef::Named(ref r) => match ctx.lookup(r) {
                Some(TypeKind::Newtype { inner, .. }) => current = inner.clone(),
                Some(TypeKind::Enum(_)) => return (true, true),
                _ => return (false, false),
            },
            _ => return (false, false),
        }
    }
    (false, false)
}

fn newtype_def(
    ctx: &Ctx<'_>,
    name: &proc_macro2::Ident,
    attrs: TokenStream,
    inner: &TypeRef,
    constraints: &Constraints,
    json: bool,
) -> TokenStream {
    let (eq_hash, display) = scalar_traits(ctx, inner);
    let derives = data_derives(eq_hash, json);
    let transparent = serde_attr(json, quote!(transparent));
    let ty = rust_type(ctx, inner, false);
    let checks = value_checks(ctx, inner, constraints, quote!(value));
    let display = if display {
        quote!(, display)
    } else {
        TokenStream::new()
    };
    quote! {
        #attrs
        #derives
        #transparent
        pub struct #name(pub #ty);

        ::pactum::__newtype!(#name(#ty) #display);

        impl ::pactum::Validate for #name {
            fn validate_into(
                &self,
                path: &mut ::pactum::FieldPath,
                out: &mut ::std::vec::Vec<::pactum::Violation>,
            ) {
                let value = &self.0;
                #checks
            }
        }
    }
}

/// Constraint checks on `value` (an expression of type `&T`), then recursion into the value's
/// own `Validate`.
fn value_checks(ctx: &Ctx<'_>, ty: &TypeRef, k: &Constraints, value: TokenStream) -> TokenStream {
    if let TypeRef::Optional(inner) = ty {
        if k.is_empty() {
            return quote!(::pactum::Validate::validate_into(#value, path, out););
        }
        let body = value_checks(ctx, inner, k, quote!(value));
        return quote! {
            if let ::std::option::Option::Some(value) = #value {
                #body
            }
        };
    }
    let mut checks = TokenStream::new();
    if !k.is_empty() {
        // Constraints apply to the base value, reached through newtypes with `.0`.
        let (base, place, prim) = base_access(ctx, ty, value.clone());
        let opt = |v: Option<u64>| match v {
            Some(n) => {
                let n = Literal::usize_suffixed(n as usize);
                quote!(::std::option::Option::Some(#n))
            }
            None => quote!(::std::option::Option::None),
        };
        if k.min_len.is_some() || k.max_len.is_some() {
            let len = if prim == Some(Primitive::String) {
                quote!(#place.chars().count())
            } else {
                quote!(#place.len())
            };
            let (lo, hi) = (opt(k.min_len), opt(k.max_len));
            checks.extend(quote!(::pactum::__private::check::length(#len, #lo, #hi, path, out);));
        }
        if k.min_items.is_some() || k.max_items.is_some() {
            let (lo, hi) = (opt(k.min_items), opt(k.max_items));
            checks.extend(
                quote!(::pactum::__private::check::items(#place.len(), #lo, #hi, path, out);),
            );
        }
        if k.min.is_some() || k.max.is_some() {
            let bound = |n: Option<Number>| match (n, prim) {
                (Some(n), Some(p)) => number_bound(n, p),
                _ => quote!(::std::option::Option::None),
            };
            let (lo, hi) = (bound(k.min), bound(k.max));
            checks.extend(quote!(::pactum::__private::check::range(#base, #lo, #hi, path, out);));
        }
        if let Some(p) = &k.pattern {
            checks.extend(quote! {
                static PATTERN: ::pactum::__private::LazyLock<::pactum::__private::Regex> =
                    ::pactum::__private::LazyLock::new(|| {
                        ::pactum::__private::Regex::new(#p).expect("pattern checked by pactum")
                    });
                ::pactum::__private::check::pattern(#base, &PATTERN, path, out);
            });
        }
    }
    quote! {
        #checks
        ::pactum::Validate::validate_into(#value, path, out);
    }
}

/// The base value reached through newtypes (`.0` per level) as `(reference, place)`:
/// `(&value.0.0, value.0.0)`, or `(value, value)` with no newtype. `value` is a reference.
/// Method calls use the place (auto-ref); function arguments use the reference.
fn base_access(
    ctx: &Ctx<'_>,
    ty: &TypeRef,
    value: TokenStream,
) -> (TokenStream, TokenStream, Option<Primitive>) {
    let mut levels = TokenStream::new();
    let mut current = ty.clone();
    let mut prim = None;
    for _ in 0..32 {
        match current {
            TypeRef::Prim(p) => {
                prim = Some(p);
                break;
            }
            TypeRef::Named(ref r) => match ctx.lookup(r) {
                Some(TypeKind::Newtype { inner, .. }) => {
                    levels.extend(quote!(.0));
                    current = inner.clone();
                }
                _ => break,
            },
            _ => break,
        }
    }
    if levels.is_empty() {
        (value.clone(), value, prim)
    } else {
        (quote!(&#value #levels), quote!(#value #levels), prim)
    }
}

/// `Option<T>` expression of a bound, typed like the value it bounds.
fn number_bound(n: Number, p: Primitive) -> TokenStream {
    let lit = match (p, n) {
        (Primitive::I32, Number::Int(v)) => Literal::i32_suffixed(v as i32),
        (Primitive::I64, Number::Int(v)) => Literal::i64_suffixed(v as i64),
        (Primitive::U32, Number::Int(v)) => Literal::u32_suffixed(v as u32),
        (Primitive::U64, Number::Int(v)) => Literal::u64_suffixed(v as u64),
        (Primitive::Decimal, n) => {
            let text = n.to_string();
            // A constant, not a parse on every `validate()`.
            return match decimal_parts(&text) {
                Some((lo, mid, hi, negative, scale)) => {
                    let [lo, mid, hi, scale] = [lo, mid, hi, scale].map(Literal::u32_unsuffixed);
                    quote! {
                        ::std::option::Option::Some(::pactum::types::Decimal::from_parts(#lo, #mid, #hi, #negative, #scale))
                    }
                }
                None => {
                    quote!(<::pactum::types::Decimal as ::std::str::FromStr>::from_str(#text).ok())
                }
            };
        }
        (_, n) => Literal::f64_suffixed(n.as_f64()),
    };
    quote!(::std::option::Option::Some(#lit))
}

/// The parts `rust_decimal::Decimal::from_parts` takes for a plain decimal literal
/// (`-12.50`): the 96-bit mantissa as three 32-bit words, the sign and the scale. `None` when
/// it does not fit a `Decimal` (then the bound is parsed at run time, as before).
fn decimal_parts(text: &str) -> Option<(u32, u32, u32, bool, u32)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = u32::try_from(fraction.len()).ok().filter(|s| *s <= 28)?;
    let mantissa: u128 = format!("{whole}{fraction}").parse().ok()?;
    if mantissa >> 96 != 0 {
        return None;
    }
    let word = |shift: u32| ((mantissa >> shift) & 0xFFFF_FFFF) as u32;
    Some((
        word(0),
        word(32),
        word(64),
        negative && mantissa != 0,
        scale,
    ))
}

pub(crate) fn error_def(ctx: &Ctx<'_>, e: &ErrorDef) -> TokenStream {
    let name = ident(&e.name, Case::Pascal);
    let message = e.docs.clone().unwrap_or_else(|| e.name.clone());
    let doc = docs(Some(&message));
    let code = &e.name;
    let status = ident(e.status.variant(), Case::Pascal);
    let default = protobuf_default(ctx.reached.has_error(&ctx.contract.id, &e.name));
    let body = struct_def(
        ctx,
        &name,
        quote!(#doc #default),
        &e.fields,
        ctx.json.errors(),
    );
    let message = message.trim();
    quote! {
        #body

        impl ::pactum::DeclaredError for #name {
            const CODE: &'static str = #code;
            const STATUS: ::pactum::ErrorStatus = ::pactum::ErrorStatus::#status;
        }

        impl ::std::fmt::Display for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(#message)
            }
        }

        impl ::std::error::Error for #name {}

        impl ::pactum::ErrorKind for #name {
            fn error_kind(&self) -> &str {
                #code
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decimal_parts;

    #[test]
    fn decimal_bounds_become_their_parts() {
        assert_eq!(decimal_parts("0.01"), Some((1, 0, 0, false, 2)));
        assert_eq!(decimal_parts("-12.50"), Some((1250, 0, 0, true, 2)));
        assert_eq!(decimal_parts("100"), Some((100, 0, 0, false, 0)));
        assert_eq!(decimal_parts("-0"), Some((0, 0, 0, false, 0)));
        // 2^64 + 5: the middle and high words carry it.
        assert_eq!(
            decimal_parts("18446744073709551621"),
            Some((5, 0, 1, false, 0))
        );
        assert_eq!(
            decimal_parts("79228162514264337593543950336"),
            None,
            "2^96 does not fit"
        );
        assert_eq!(decimal_parts("1e5"), None);
        assert_eq!(
            decimal_parts("0.12345678901234567890123456789"),
            None,
            "scale 29"
        );
    }
}
