//! `#[derive(Event)]`.

use pactum_rules::subject;
use pactum_rules::tense::{check_event_name, Verdict};
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitInt, LitStr};

struct Args {
    version: Option<LitInt>,
    key: Option<LitStr>,
    source: Option<LitStr>,
    delivery: Option<LitStr>,
}

fn parse_args(input: &DeriveInput) -> syn::Result<Args> {
    let mut args = Args {
        version: None,
        key: None,
        source: None,
        delivery: None,
    };
    let mut found = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        found = true;
        attr.parse_nested_meta(|meta| {
            let slot = if meta.path.is_ident("version") {
                args.version = Some(meta.value()?.parse()?);
                return Ok(());
            } else if meta.path.is_ident("key") {
                &mut args.key
            } else if meta.path.is_ident("source") {
                &mut args.source
            } else if meta.path.is_ident("delivery") {
                &mut args.delivery
            } else {
                return Err(meta.error(
                    "unknown `event` key; expected `version`, `key`, `source` or `delivery`",
                ));
            };
            *slot = Some(meta.value()?.parse()?);
            Ok(())
        })?;
    }
    if !found {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "`#[derive(Event)]` needs `#[event(version = N)]` (and usually `key = \"field\"`)",
        ));
    }
    Ok(args)
}

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "`#[derive(Event)]` supports structs with named fields: an event is a record of a fact",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            name,
            "`#[derive(Event)]` needs named fields, so the ordering key can be named",
        ));
    };
    if let Verdict::NotPast { suggestion } = check_event_name(&name.to_string()) {
        let help = match suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("name what happened, e.g. `{name}Changed` or `{name}Created`"),
        };
        return Err(syn::Error::new_spanned(
            name,
            format!("event `{name}` does not read as a fact that already happened; {help}"),
        ));
    }
    let args = parse_args(input)?;
    let version = match &args.version {
        Some(v) => {
            let n: u32 = v.base10_parse()?;
            if n == 0 {
                return Err(syn::Error::new_spanned(v, "event versions start at 1"));
            }
            n
        }
        None => {
            return Err(syn::Error::new_spanned(
                name,
                "missing `version` in `#[event(..)]`: write `#[event(version = 1)]`",
            ))
        }
    };
    let key = match &args.key {
        Some(k) => {
            let wanted = k.value();
            let field = fields
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref())
                .find(|i| *i == &wanted);
            match field {
                Some(ident) => Some(ident.clone()),
                None => {
                    let names: Vec<String> = fields
                        .named
                        .iter()
                        .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
                        .collect();
                    return Err(syn::Error::new_spanned(
                        k,
                        format!(
                            "no field `{wanted}` in `{name}` to use as the ordering key; fields: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        None => None,
    };
    let delivery = match args.delivery.as_ref().map(|d| (d.value(), d)) {
        None if key.is_some() => quote!(Stream),
        None => quote!(Pubsub),
        Some((d, _)) if d == "stream" => quote!(Stream),
        Some((d, _)) if d == "pubsub" => quote!(Pubsub),
        Some((d, _)) if d == "queue" => quote!(Queue),
        Some((_, lit)) => {
            return Err(syn::Error::new_spanned(
                lit,
                "unknown delivery; use \"stream\", \"pubsub\" or \"queue\"",
            ))
        }
    };
    if matches!(
        args.delivery.as_ref().map(LitStr::value).as_deref(),
        Some("stream")
    ) && key.is_none()
    {
        return Err(syn::Error::new_spanned(
            name,
            "a `stream` event needs `key = \"field\"`: streams are ordered per key",
        ));
    }
    let name_str = name.to_string();
    let (source, type_, subject) = match &args.source {
        Some(s) => {
            let s = s.value();
            let t = subject::event_type(&s, &name_str, version.into());
            let sub = subject::event_subject(&s, &name_str, version.into());
            (quote!(#s), quote!(#t), quote!(#sub))
        }
        None => {
            // The crate name is only known where the derive expands: build the names for
            // an empty service and prefix `CARGO_PKG_NAME` at compile time.
            let t = subject::event_type("", &name_str, version.into());
            let sub = subject::event_subject("", &name_str, version.into());
            (
                quote!(::core::env!("CARGO_PKG_NAME")),
                quote!(::core::concat!(::core::env!("CARGO_PKG_NAME"), #t)),
                quote!(::core::concat!(::core::env!("CARGO_PKG_NAME"), #sub)),
            )
        }
    };
    let ordering_key = match key {
        Some(k) => {
            quote!(::core::option::Option::Some(::std::string::ToString::to_string(&self.#k)))
        }
        None => quote!(::core::option::Option::None),
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::pactum::Event for #name #ty_generics #where_clause {
            const NAME: &'static str = #name_str;
            const VERSION: u32 = #version;
            const SOURCE: &'static str = #source;
            const TYPE: &'static str = #type_;
            const SUBJECT: &'static str = #subject;
            const DELIVERY: ::pactum::DeliveryMode = ::pactum::DeliveryMode::#delivery;

            fn ordering_key(&self) -> ::core::option::Option<::std::string::String> {
                #ordering_key
            }
        }
    })
}

/// After an error, an impl that compiles, so uses of the type as an `Event` do not pile
/// further errors on top of the real one.
pub fn fallback(input: &DeriveInput) -> TokenStream {
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        impl #impl_generics ::pactum::Event for #name #ty_generics #where_clause {
            const NAME: &'static str = "";
            const VERSION: u32 = 0;
            const SOURCE: &'static str = "";
            const TYPE: &'static str = "";
            const SUBJECT: &'static str = "";
            const DELIVERY: ::pactum::DeliveryMode = ::pactum::DeliveryMode::Pubsub;
            fn ordering_key(&self) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::None
            }
        }
    }
}
