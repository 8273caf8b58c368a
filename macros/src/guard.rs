//! `#[deadline]` and `#[traced]`: wrap an async fn's body, keeping its signature.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr, ReturnType};

fn require_async(f: &ItemFn, attr: &str, why: &str) -> syn::Result<()> {
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            f.sig.fn_token.span,
            format!("`#[pactum::{attr}]` needs an `async fn`: {why}"),
        ));
    }
    Ok(())
}

/// The body as an `async move` block whose output is typed as the fn's return type, so `?`
/// and `return` inside it behave as they did in the fn.
fn typed_body(f: &ItemFn) -> TokenStream {
    let block = &f.block;
    let ret = match &f.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    quote! {
        async move {
            let __pactum_out: #ret = #block;
            __pactum_out
        }
    }
}

pub fn deadline(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut f: ItemFn = syn::parse2(item)?;
    let lit: LitStr = syn::parse2(attr.clone()).map_err(|_| {
        syn::Error::new(
            if attr.is_empty() {
                proc_macro2::Span::call_site()
            } else {
                attr.span()
            },
            "expected a duration string: `#[pactum::deadline(\"250ms\")]`",
        )
    })?;
    let nanos = match pactum_rules::duration::parse(&lit.value()) {
        Ok(0) => {
            return Err(syn::Error::new(
                lit.span(),
                "a deadline of zero can never be met; give a positive budget such as \"250ms\"",
            ))
        }
        Ok(n) if n > u128::from(u64::MAX) => {
            return Err(syn::Error::new(lit.span(), "deadline too long"))
        }
        Ok(n) => n as u64,
        Err(msg) => {
            return Err(syn::Error::new(
                lit.span(),
                format!("invalid deadline: {msg}; write e.g. \"250ms\", \"2s\" or \"1m30s\""),
            ))
        }
    };
    require_async(
        &f,
        "deadline",
        "when the deadline passes, the fn's future is dropped",
    )?;
    let ReturnType::Type(_, ret) = &f.sig.output else {
        return Err(syn::Error::new(
            f.sig.ident.span(),
            "`#[pactum::deadline]` needs the fn to return `Result<_, E>` with `E: From<pactum::DeadlineExceeded>`, so the timeout can be returned",
        ));
    };
    let body = typed_body(&f);
    // Spanned at the return type: a type that cannot hold `DeadlineExceeded` is reported there.
    let call = quote_spanned! {ret.span()=>
        ::pactum::run_with_deadline(__pactum_ctx, #body).await
    };
    f.block = syn::parse2(quote! {{
        let __pactum_ctx = ::pactum::Context::current()
            .with_timeout(::core::time::Duration::from_nanos(#nanos));
        #call
    }})?;
    Ok(quote!(#f))
}

pub fn traced(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut f: ItemFn = syn::parse2(item)?;
    let mut name = f.sig.ident.to_string();
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                name = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else {
                Err(meta.error("unknown `traced` option; expected `name = \"…\"`"))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
    }
    require_async(
        &f,
        "traced",
        "the span follows the fn's future across awaits",
    )?;
    let body = typed_body(&f);
    let t = quote!(::pactum::__private::tracing);
    f.block = syn::parse2(quote! {{
        let __pactum_span = #t::info_span!(
            target: ::core::module_path!(),
            #name,
            otel.name = #name,
            trace_id = #t::field::Empty,
            span_id = #t::field::Empty,
            parent_span_id = #t::field::Empty,
            outcome = #t::field::Empty,
            error.kind = #t::field::Empty,
            error.message = #t::field::Empty,
        );
        let __pactum_ctx = ::pactum::__private::enter_span(&__pactum_span, ::pactum::Context::current());
        // Records an outcome even if this future is dropped (deadline, caller gone).
        let __pactum_guard = ::pactum::__private::DropGuard::new(&__pactum_span, &__pactum_ctx);
        let __pactum_out = ::pactum::__private::Instrument::instrument(
            __pactum_ctx.scope(#body),
            ::core::clone::Clone::clone(&__pactum_span),
        )
        .await;
        __pactum_guard.finished();
        {
            #[allow(unused_imports)]
            use ::pactum::__private::{RecordKind as _, RecordOther as _, RecordResult as _};
            (&&::pactum::__private::SpanOutcome(&__pactum_out)).record(&__pactum_span);
        }
        __pactum_out
    }})?;
    Ok(quote!(#f))
}
