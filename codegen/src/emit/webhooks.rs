//! `pub mod webhooks`: a typed sender and an axum receiver for the webhooks a contract sends.
//!
//! Both sides are thin over `pactum::webhook`: the sender over `WebhookSender` (signing,
//! retries, 410), the receiver over `Inbox` (verification against several secrets, dedup by
//! `webhook-id`). What is generated is what only the contract knows: one method per payload
//! type, and the dispatch from the envelope's `type` to the subscriber's method.

use super::Ctx;
use crate::naming::{ident, Case};
use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn webhooks(ctx: &Ctx<'_>) -> TokenStream {
    let hooks = &ctx.contract.webhooks;
    if hooks.is_empty() {
        return TokenStream::new();
    }
    let service = &ctx.contract.id.service;
    let send = hooks.iter().map(|w| {
        let name = ident(&w.name, Case::Pascal);
        let method = ident(&w.name, Case::Snake);
        let with_id = ident(&format!("{}_with_id", w.name), Case::Snake);
        let doc = format!(
            " Sends [`{0}`](super::{0}) (`{1}`) to `url` under a fresh message id, signed with \
             every configured secret and retried per the sender's policy.",
            w.name, w.wire_type
        );
        let doc_id = format!(
            " Sends [`{0}`](super::{0}) under `id`: resending a message with its original id \
             (from an outbox, after a crash) lets the receiver drop the duplicate.",
            w.name
        );
        quote! {
            #[doc = #doc]
            pub async fn #method(
                &self,
                url: &str,
                payload: &super::#name,
            ) -> ::std::result::Result<::pactum::webhook::Delivered, ::pactum::webhook::SendError> {
                self.inner.send(url, payload).await
            }

            #[doc = #doc_id]
            pub async fn #with_id(
                &self,
                url: &str,
                id: &str,
                payload: &super::#name,
            ) -> ::std::result::Result<::pactum::webhook::Delivered, ::pactum::webhook::SendError> {
                self.inner.send_with_id(url, id, payload).await
            }
        }
    });
    let enqueue = hooks.iter().map(|w| {
        let name = ident(&w.name, Case::Pascal);
        let method = ident(&w.name, Case::Snake);
        let doc = format!(
            " Writes a delivery of [`{}`](super::{}) (`{}`) to `url` under `id` into the \
             outbox, in the caller's transaction. Once it commits, a relay with a \
             `pactum::webhook::durable::WebhookSink` sends it on the durable schedule.",
            w.name, w.name, w.wire_type
        );
        quote! {
            #[doc = #doc]
            pub async fn #method(
                &self,
                url: &str,
                id: &str,
                payload: &super::#name,
            ) -> ::std::result::Result<(), ::pactum::store::outbox::OutboxError> {
                ::pactum::webhook::durable::enqueue(&self.writer, url, id, payload).await
            }
        }
    });
    let receive = hooks.iter().map(|w| {
        let name = ident(&w.name, Case::Pascal);
        let method = ident(&w.name, Case::Snake);
        let doc = format!(
            " A verified `{}` delivery, once per `webhook-id`. `Ok` is answered 204 and \
             remembered; a problem below 500 is answered and remembered; a 5xx is answered and \
             forgotten, so the sender's retry calls this again.",
            w.wire_type
        );
        quote! {
            #[doc = #doc]
            fn #method(
                &self,
                id: ::std::string::String,
                webhook: ::pactum::webhook::Envelope<super::#name>,
            ) -> impl ::core::future::Future<
                Output = ::std::result::Result<(), ::pactum::Problem>,
            > + ::core::marker::Send;
        }
    });
    let arms = hooks.iter().map(|w| {
        let name = ident(&w.name, Case::Pascal);
        let method = ident(&w.name, Case::Snake);
        let wire = &w.wire_type;
        quote! {
            #wire => {
                let id = ::std::string::ToString::to_string(verified.id());
                verified
                    .handle::<super::#name, _, _>(&inbox, move |webhook| async move { receiver.#method(id, webhook).await })
                    .await
            }
        }
    });
    let wires = hooks.iter().map(|w| &w.wire_type);
    let sender_doc = format!(" Sends the webhooks of `{service}`.");
    let receiver_doc = format!(
        " What a subscriber to `{service}`'s webhooks implements; serve it with [`receiver`]."
    );
    quote! {
        /// Sending and receiving this contract's webhooks (Standard Webhooks signatures).
        pub mod webhooks {
            ::pactum::__requires_feature!(webhooks);

            #[doc = #sender_doc]
            #[derive(Clone, Debug)]
            pub struct Sender {
                inner: ::pactum::webhook::WebhookSender,
            }

            impl Sender {
                /// Wraps a configured `WebhookSender` (secrets, retry policy, timeout).
                pub fn new(inner: ::pactum::webhook::WebhookSender) -> Self {
                    Self { inner }
                }

                /// The underlying sender, e.g. to re-`enable` an endpoint that answered 410.
                pub fn inner(&self) -> &::pactum::webhook::WebhookSender {
                    &self.inner
                }

                #(#send)*
            }

            /// Durable deliveries: the webhooks written into the transactional outbox through
            /// the handler's own transaction (`pactum::store::outbox::Pg::new(&tx)`), sent after the
            /// commit with retries for about a day, surviving restarts.
            pub struct InTx<W> {
                writer: W,
            }

            impl<W: ::pactum::store::outbox::Writer> InTx<W> {
                /// Writes through `writer`.
                pub fn new(writer: W) -> Self {
                    Self { writer }
                }

                #(#enqueue)*
            }

            #[doc = #receiver_doc]
            pub trait Receiver: ::core::marker::Send + ::core::marker::Sync + 'static {
                #(#receive)*
            }

            /// The `POST` handler of one endpoint receiving every webhook type of this
            /// contract: mount it with `Router::route(path, receiver(..))`. Deliveries are
            /// verified against the inbox's secrets (401 otherwise), dispatched by their
            /// `type` (400 for a type this contract does not send) and deduplicated by
            /// `webhook-id` in the inbox's store.
            pub fn receiver<R, S>(
                receiver: R,
                inbox: ::pactum::webhook::Inbox,
            ) -> ::pactum::router::axum::routing::MethodRouter<S>
            where
                R: Receiver,
                S: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                let receiver = ::std::sync::Arc::new(receiver);
                ::pactum::router::axum::routing::post(
                    move |request: ::pactum::router::axum::extract::Request| {
                        let (receiver, inbox) = (::std::sync::Arc::clone(&receiver), inbox.clone());
                        async move {
                            let verified = match inbox.accept(request).await {
                                ::std::result::Result::Ok(v) => v,
                                ::std::result::Result::Err(refused) => {
                                    return ::pactum::router::axum::response::IntoResponse::into_response(refused);
                                }
                            };
                            match verified.kind() {
                                #(#arms)*
                                _ => verified.unknown(&[#(#wires),*]),
                            }
                        }
                    },
                )
            }
        }
    }
}
