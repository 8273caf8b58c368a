//! Attribute and derive macros for Pactum. Use them through the `pactum` crate, which
//! re-exports them.
//!
//! Each entry point parses its input and calls a `expand` function returning
//! `syn::Result<TokenStream>`; errors become `compile_error!` at the offending span. Naming
//! rules come from `pactum-codegen`, so the derive and the contract validator agree.

use proc_macro::TokenStream;

mod event;

/// Implements `pactum::Event` for a struct whose name is a past-tense fact.
///
/// ```ignore
/// #[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
/// #[event(version = 1, key = "order_id")]
/// struct OrderPlaced { order_id: String }
/// ```
///
/// Keys of `#[event(..)]`: `version` (required, ≥ 1), `key` (a field: the ordering key),
/// `source` (the publishing service; default: the crate name), `delivery` (`"stream"`,
/// `"pubsub"` or `"queue"`; default `"stream"` with a key, `"pubsub"` without).
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::expand(&input)
        .unwrap_or_else(|e| {
            let stub = event::fallback(&input);
            let err = e.to_compile_error();
            quote::quote!(#err #stub)
        })
        .into()
}
