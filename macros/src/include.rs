//! `include_contract!`: a contract's generated code, in place, at compile time.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use std::path::PathBuf;
use syn::punctuated::Punctuated;
use syn::{LitStr, Token};

pub fn expand(input: TokenStream, caller_dir: Option<PathBuf>) -> syn::Result<TokenStream> {
    let paths =
        syn::parse::Parser::parse2(Punctuated::<LitStr, Token![,]>::parse_terminated, input)?;
    if paths.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "expected contract paths: `include_contract!(\"contracts/orders/v1.yaml\")`",
        ));
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let resolved: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            let in_crate = root.join(p.value());
            match &caller_dir {
                Some(dir) if !in_crate.exists() => dir.join(p.value()),
                _ => in_crate,
            }
        })
        .collect();
    let outcome = pactum_codegen::check(&resolved);
    // Depend on every file read, so editing a contract rebuilds the crate.
    let tracked = outcome.sources.files().map(|p| {
        let p = p.to_string_lossy().into_owned();
        quote!(
            const _: &[u8] = ::core::include_bytes!(#p);
        )
    });
    let span = paths[0].span();
    if outcome.failed(false) {
        let errors = outcome
            .diagnostics
            .iter()
            .filter(|d| d.severity() == pactum_codegen::diagnostics::Severity::Error)
            .map(|d| {
                let text = d.render(&outcome.sources, false);
                let mut text = text.replace(&format!("{}/", root.display()), "");
                if let Some(dir) = &caller_dir {
                    text = text.replace(&format!("{}/", dir.display()), "");
                }
                syn::Error::new(span, text).to_compile_error()
            });
        return Ok(quote!(#(#errors)* #(#tracked)*));
    }
    let Some(ir) = &outcome.ir else {
        return Err(syn::Error::new(span, "pactum: no contracts found"));
    };
    let modules = pactum_codegen::emit::inline_modules(ir);
    Ok(quote!(#modules #(#tracked)*))
}
