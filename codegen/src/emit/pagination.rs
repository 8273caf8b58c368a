//! Paginated operations in generated code: the server wraps the handler call so page
//! cursors are sealed on the way out and opened (or refused) on the way in, and each client
//! gets an `<operation>_items` method streaming the items of every page. Both call
//! `pactum::pagination`, so what a page does is written once, in the runtime.

use crate::ir::{Operation, TypeRef};
use crate::naming::{ident, Case};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `call` (the handler call, using `input`) wrapped for a paginated operation; `call` as it
/// is otherwise. `cursors` is an expression of type `&pactum::pagination::Cursors`.
pub(crate) fn serve(
    op: &Operation,
    input_ty: &TokenStream,
    output_ty: &TokenStream,
    cursors: TokenStream,
    call: TokenStream,
) -> TokenStream {
    let Some(p) = &op.paginate else {
        return call;
    };
    let konst = ident(&op.name, Case::Screaming);
    let cursor = ident(&p.cursor, Case::Snake);
    let next = ident(&p.next, Case::Snake);
    let wire = &p.cursor_wire;
    quote! {
        ::pactum::pagination::serve_page(
            #cursors,
            &super::operations::#konst,
            #wire,
            input,
            |i: &mut #input_ty| &mut i.#cursor,
            |o: &mut #output_ty| &mut o.#next,
            move |input| async move { #call },
        )
        .await
    }
}

/// `<operation>_items`, beside the client's `<operation>` method, for a paginated operation.
pub(crate) fn client_items(
    op: &Operation,
    input_ty: &TokenStream,
    output_ty: &TokenStream,
    item_ty: impl Fn(&TypeRef) -> TokenStream,
) -> TokenStream {
    let Some(p) = &op.paginate else {
        return TokenStream::new();
    };
    let method = ident(&op.name, Case::Snake);
    let items_method = format_ident!("{}_items", crate::naming::convert(&op.name, Case::Snake));
    let error = format_ident!("{}Error", op.name);
    let cursor = ident(&p.cursor, Case::Snake);
    let next = ident(&p.next, Case::Snake);
    let items = ident(&p.items, Case::Snake);
    let item = item_ty(&p.item);
    let doc = super::docs(Some(&format!(
        "Every item of [`{method}`](Self::{method}), page after page: the next page is fetched\n\
         when the last one's items are taken, each page one call with the operation's deadline\n\
         and retry policy. Starts at `input`'s `{}` (none: the first page); ends after the\n\
         last page, or with the first error.",
        p.cursor_wire
    )));
    quote! {
        #doc
        pub fn #items_method(
            &self,
            input: &#input_ty,
        ) -> ::pactum::BoxStream<::core::result::Result<#item, ::pactum::ClientError<super::#error>>> {
            let client = ::core::clone::Clone::clone(self);
            ::pactum::pagination::items(
                ::core::clone::Clone::clone(input),
                move |input: #input_ty| {
                    let client = ::core::clone::Clone::clone(&client);
                    async move { client.#method(&input).await }
                },
                |o: #output_ty| (o.#items, o.#next),
                |i: &mut #input_ty, cursor| i.#cursor = cursor,
            )
        }
    }
}
