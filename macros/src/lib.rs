//! Attribute and derive macros for Pactum. Use them through the `pactum` crate, which
//! re-exports them.
//!
//! Each entry point parses its input and calls a `expand` function returning
//! `syn::Result<TokenStream>`; errors become `compile_error!` at the offending span. Naming
//! rules come from `pactum-codegen`, so the derive and the contract validator agree.

use proc_macro::TokenStream;

mod event;
mod guard;
mod include;

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

/// Bounds an async fn by a deadline: the earlier of the caller's (from the current
/// `pactum::Context`) and this budget. When it passes, the fn's future is dropped and
/// `Err(DeadlineExceeded.into())` is returned, so the return type must be `Result<_, E>` with
/// `E: From<pactum::DeadlineExceeded>`. Calls made inside see the shortened deadline.
///
/// ```ignore
/// #[pactum::deadline("250ms")]
/// async fn quote(cart: Cart) -> Result<Quote, QuoteError> { … }
/// ```
#[proc_macro_attribute]
pub fn deadline(attr: TokenStream, item: TokenStream) -> TokenStream {
    let fallback = proc_macro2::TokenStream::from(item.clone());
    guard::deadline(attr.into(), item.into())
        .unwrap_or_else(|e| {
            let err = e.to_compile_error();
            quote::quote!(#err #fallback)
        })
        .into()
}

/// Runs an async fn in a `tracing` span that is the child of the incoming W3C trace and the
/// parent of every call made inside; records `outcome` (`ok`/`error`) and, for errors,
/// `error.kind` and `error.message`. `#[pactum::traced(name = "…")]` renames the span.
#[proc_macro_attribute]
pub fn traced(attr: TokenStream, item: TokenStream) -> TokenStream {
    let fallback = proc_macro2::TokenStream::from(item.clone());
    guard::traced(attr.into(), item.into())
        .unwrap_or_else(|e| {
            let err = e.to_compile_error();
            quote::quote!(#err #fallback)
        })
        .into()
}

/// Generates the code of one or more contracts in place, as `<service>::v<major>` modules.
/// Paths are relative to the crate root (or, failing that, to the file calling the macro);
/// list every contract the first one references.
/// Editing a contract rebuilds the crate; contract errors are compile errors naming the
/// file, line and column.
///
/// ```ignore
/// pactum::include_contract!("contracts/orders/v1.yaml", "contracts/pricing/v1.yaml");
/// use orders::v1::OrderPlaced;
/// ```
#[proc_macro]
pub fn include_contract(input: TokenStream) -> TokenStream {
    let caller_dir = proc_macro::Span::call_site()
        .local_file()
        .and_then(|f| f.parent().map(std::path::Path::to_path_buf));
    include::expand(input.into(), caller_dir)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}
