//! Attribute and derive macros for Pactum. Use them through the `pactum` crate, which
//! re-exports them.
//!
//! Each entry point parses its input and calls a `expand` function returning
//! `syn::Result<TokenStream>`; errors become `compile_error!` at the offending span. Naming
//! rules come from `pactum-codegen`, so the derive and the contract validator agree.

use proc_macro::TokenStream;

mod event;
mod guard;
#[cfg(feature = "contract")]
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
#[cfg(feature = "contract")]
#[proc_macro]
pub fn include_contract(input: TokenStream) -> TokenStream {
    let caller_dir = proc_macro::Span::call_site()
        .local_file()
        .and_then(|f| f.parent().map(std::path::Path::to_path_buf));
    include::expand(input.into(), caller_dir)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// `include_contract!` runs the whole generator inside the compiler, so it is behind the
/// `contract` feature (on by default in `pactum`); without it, say so instead of a bare
/// "cannot find macro".
#[cfg(not(feature = "contract"))]
#[proc_macro]
pub fn include_contract(_input: TokenStream) -> TokenStream {
    quote::quote! {
        ::core::compile_error!("`pactum::include_contract!` needs pactum's `contract` feature (it compiles the generator into the build): enable it, or generate the code with `cargo pactum generate` or a build.rs `pactum_codegen::Builder`");
    }
    .into()
}

/// Whether `pactum` was built with `feature`; `None` for a name that is not one of its
/// transport or store features. `pactum` forwards each of these features to this crate.
fn feature_enabled(feature: &str) -> Option<bool> {
    Some(match feature {
        "rest" => cfg!(feature = "rest"),
        "grpc" => cfg!(feature = "grpc"),
        "nats" => cfg!(feature = "nats"),
        "postgres" => cfg!(feature = "postgres"),
        "sqlite" => cfg!(feature = "sqlite"),
        "webhooks" => cfg!(feature = "webhooks"),
        _ => return None,
    })
}

/// Generated code: keeps the item it is on when `pactum` has the named store feature
/// (`#[::pactum::__if_feature(postgres)]`), drops it otherwise, so a contract's consumers
/// exist for exactly the backends the service compiled in. A `#[cfg]` in generated code
/// would test the *user's* crate's features, not pactum's.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn __if_feature(attr: TokenStream, item: TokenStream) -> TokenStream {
    let name = attr.to_string();
    match feature_enabled(name.trim()) {
        Some(true) => item,
        Some(false) => TokenStream::new(),
        None => unknown_feature(&name),
    }
}

/// Generated code: `::pactum::__requires_feature!(rest);` at the start of a transport's
/// section stops the build with a message naming the feature to enable, instead of a page
/// of unresolved paths, when `pactum` was built without it.
#[doc(hidden)]
#[proc_macro]
pub fn __requires_feature(input: TokenStream) -> TokenStream {
    let name = input.to_string();
    let name = name.trim();
    match feature_enabled(name) {
        Some(true) => TokenStream::new(),
        Some(false) => {
            let message = format!(
                "this generated code includes pactum's `{name}` part: enable the `{name}` feature of `pactum` \
                 (`pactum = {{ version = \"…\", features = [\"{name}\"] }}`), or generate without it"
            );
            quote::quote!(::core::compile_error!(#message);).into()
        }
        None => unknown_feature(name),
    }
}

fn unknown_feature(name: &str) -> TokenStream {
    let message =
        format!("`{name}` is not a pactum feature (rest, grpc, nats, postgres, sqlite, webhooks)");
    quote::quote!(::core::compile_error!(#message);).into()
}
