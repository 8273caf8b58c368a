//! Event and webhook structs with their runtime trait impls, and consumer facts.

use super::rust_types::struct_def;
use super::{deprecated, docs, duration, Ctx};
use crate::ir::{Delivery, EventDeadline, EventDef, Retry, WebhookDef};
use crate::naming::{ident, Case};
use proc_macro2::TokenStream;
use quote::quote;

fn delivery(d: Delivery) -> TokenStream {
    let v = ident(d.variant(), Case::Pascal);
    quote!(::pactum::DeliveryMode::#v)
}

pub(crate) fn event(ctx: &Ctx<'_>, e: &EventDef) -> TokenStream {
    let name = ident(&e.name, Case::Pascal);
    let fallback = format!("Event `{}` v{}.", e.name, e.version);
    let doc = docs(Some(e.docs.as_deref().unwrap_or(&fallback)));
    let dep = deprecated(e.deprecated.as_deref());
    // Events are JSON on the broker whatever the build.
    let body = struct_def(ctx, &name, quote!(#doc #dep), &e.fields, true);
    let (event_name, version, source, subject) =
        (&e.name, e.version, &ctx.contract.id.service, &e.subject);
    let cloud_type = pactum_rules::subject::event_type(source, &e.name, version.into());
    let mode = delivery(e.delivery);
    let key = match &e.key {
        Some(k) => {
            let k = ident(k, Case::Snake);
            quote!(::std::option::Option::Some(::std::string::ToString::to_string(&self.#k)))
        }
        None => quote!(::std::option::Option::None),
    };
    // Only a declared deadline is written: the trait's default is "none".
    let deadline = match e.deadline {
        EventDeadline::None => TokenStream::new(),
        EventDeadline::Inherit => {
            quote!(
                const DEADLINE: ::pactum::EventDeadline = ::pactum::EventDeadline::Inherit;
            )
        }
        EventDeadline::After(ns) => {
            let after = duration(ns);
            quote! {
                const DEADLINE: ::pactum::EventDeadline = ::pactum::EventDeadline::After(#after);
            }
        }
    };
    quote! {
        #body

        #[allow(deprecated)]
        impl ::pactum::Event for #name {
            const NAME: &'static str = #event_name;
            const VERSION: u32 = #version;
            const SOURCE: &'static str = #source;
            const TYPE: &'static str = #cloud_type;
            const SUBJECT: &'static str = #subject;
            const DELIVERY: ::pactum::DeliveryMode = #mode;
            #deadline

            fn ordering_key(&self) -> ::std::option::Option<::std::string::String> {
                #key
            }
        }
    }
}

pub(crate) fn webhook(ctx: &Ctx<'_>, w: &WebhookDef) -> TokenStream {
    let name = ident(&w.name, Case::Pascal);
    let fallback = format!("Webhook `{}` v{}.", w.name, w.version);
    let doc = docs(Some(w.docs.as_deref().unwrap_or(&fallback)));
    let body = struct_def(ctx, &name, doc, &w.fields, true);
    let (hook_name, wire_type, version) = (&w.name, &w.wire_type, w.version);
    quote! {
        #body

        impl ::pactum::Webhook for #name {
            const NAME: &'static str = #hook_name;
            const TYPE: &'static str = #wire_type;
            const VERSION: u32 = #version;
        }
    }
}

pub(crate) fn retry_policy(r: Option<&Retry>) -> TokenStream {
    match r {
        None => quote!(::std::option::Option::None),
        Some(r) => {
            let attempts = proc_macro2::Literal::u32_unsuffixed(r.attempts);
            let (initial, max) = (duration(r.initial_ns), duration(r.max_ns));
            let full = r.jitter == crate::ir::Jitter::Full;
            quote! {
                ::std::option::Option::Some(::pactum::RetryPolicy {
                    attempts: #attempts,
                    initial_backoff: #initial,
                    max_backoff: #max,
                    full_jitter: #full,
                })
            }
        }
    }
}

/// `pub mod events`, the messaging half of a contract beside its types: the `Publisher` and
/// the outbox's `InTx` for the events it emits, and `consumers` for those it consumes.
pub(crate) fn events(ctx: &Ctx<'_>) -> TokenStream {
    let publisher = publisher(ctx);
    let consumers = consumers(ctx);
    if publisher.is_empty() && consumers.is_empty() {
        return TokenStream::new();
    }
    let doc = format!(
        " Events of `{}` v{}: publishing what it emits (`Publisher`, `InTx`) and consuming \
         what it reads (`consumers`).",
        ctx.contract.id.service, ctx.contract.id.major
    );
    quote! {
        #[doc = #doc]
        pub mod events {
            #publisher
            #consumers
        }
    }
}

/// `Publisher<S>` and `InTx<W>`: one typed method per event the contract emits, over any
/// `EventSink` or outbox `Writer`.
fn publisher(ctx: &Ctx<'_>) -> TokenStream {
    if ctx.contract.events.is_empty() {
        return TokenStream::new();
    }
    let service = &ctx.contract.id.service;
    let methods = ctx.contract.events.iter().map(|e| {
        let name = ident(&e.name, Case::Pascal);
        let method = ident(&e.name, Case::Snake);
        let doc = format!(
            " Publishes [`{}`](super::{}) on `{}` under CloudEvents id `id`, with the trace of \
             the current `Context`. Publishing again with the same id (a retry) stores it \
             once. This publishes now: from a handler whose effect is in a database, write the \
             event with [`InTx`] instead, so it exists if and only if the effect committed.",
            e.name, e.name, e.subject
        );
        quote! {
            #[doc = #doc]
            pub async fn #method(
                &self,
                id: &str,
                event: &super::#name,
            ) -> ::std::result::Result<::pactum::messaging::bus::Published, ::pactum::messaging::bus::PublishError> {
                ::pactum::messaging::bus::publish(&self.sink, id, event).await
            }
        }
    });
    let outbox_methods = ctx.contract.events.iter().map(|e| {
        let name = ident(&e.name, Case::Pascal);
        let method = ident(&e.name, Case::Snake);
        let with_id = ident(&format!("{}_with_id", e.name), Case::Snake);
        let doc = format!(
            " Writes [`{}`](super::{}) into the outbox through the transaction, under an id \
             derived from the request's idempotency key (or the consumed event): a retried \
             request writes the same id, stored once. The relay publishes it on `{}` after the \
             commit.",
            e.name, e.name, e.subject
        );
        let doc_id = format!(
            " Writes [`{}`](super::{}) into the outbox under CloudEvents id `id`.",
            e.name, e.name
        );
        let cloud_type = pactum_rules::subject::event_type(service, &e.name, e.version.into());
        quote! {
            #[doc = #doc]
            pub async fn #method(
                &self,
                event: &super::#name,
            ) -> ::std::result::Result<(), ::pactum::store::outbox::OutboxError> {
                let id = ::pactum::Context::current().event_id(#cloud_type);
                ::pactum::store::outbox::write(&self.writer, &id, event).await
            }

            #[doc = #doc_id]
            pub async fn #with_id(
                &self,
                id: &str,
                event: &super::#name,
            ) -> ::std::result::Result<(), ::pactum::store::outbox::OutboxError> {
                ::pactum::store::outbox::write(&self.writer, id, event).await
            }
        }
    });
    let doc = format!(" Publishes the events `{service}` emits.");
    let doc_tx = format!(
        " Writes the events `{service}` emits into a transactional outbox, in the handler's \
         own transaction (`pactum::store::outbox::Pg::new(&tx)`); `pactum::store::outbox::Relay` publishes \
         them once committed."
    );
    quote! {
        #[doc = #doc]
            #[derive(Clone, Debug)]
            pub struct Publisher<S> {
                sink: S,
            }

            #[allow(deprecated)]
            impl<S: ::pactum::messaging::bus::EventSink> Publisher<S> {
                /// A publisher over `sink`: a `pactum::messaging::bus::Bus` or a `pactum::messaging::nats::Nats`.
                pub fn new(sink: S) -> Self {
                    Self { sink }
                }

                /// The same events, written into the outbox through `writer` instead.
                pub fn in_tx<W: ::pactum::store::outbox::Writer>(&self, writer: W) -> InTx<W> {
                    InTx::new(writer)
                }

                #(#methods)*
            }

            #[doc = #doc_tx]
            pub struct InTx<W> {
                writer: W,
            }

            #[allow(deprecated)]
            impl<W: ::pactum::store::outbox::Writer> InTx<W> {
                /// Writes through `writer`.
                pub fn new(writer: W) -> Self {
                    Self { writer }
                }

                #(#outbox_methods)*
            }
    }
}

/// `pub mod consumers { pub const <SERVICE>_<EVENT>_V<n>: ConsumerInfo = … }`, inside
/// `events`.
/// The name a `consumes` entry's constant and constructors share, before casing:
/// `payments_PaymentCaptured_v1` (`PAYMENTS_PAYMENT_CAPTURED_V1`,
/// `payments_payment_captured_v1`).
pub(crate) fn consumer_base(c: &crate::ir::Consumer) -> String {
    format!(
        "{}_{}_v{}",
        c.event.contract.service, c.event.name, c.version
    )
}

fn consumers(ctx: &Ctx<'_>) -> TokenStream {
    if ctx.contract.consumers.is_empty() {
        return TokenStream::new();
    }
    let service = &ctx.contract.id.service;
    let items = ctx.contract.consumers.iter().map(|c| {
        // One base name for the constant and the constructor, so they always pair up.
        let base = consumer_base(c);
        let konst = ident(&base, Case::Screaming);
        let start = ident(&base, Case::Snake);
        let summary = format!(
            " Consumes `{}.{}` v{} from `{}` as group `{}`.",
            c.event.contract.service, c.event.name, c.version, c.subject, c.group
        );
        let extra = docs(c.docs.as_deref());
        let (subject, group, dead_letter) = (&c.subject, &c.group, c.dead_letter);
        let mode = delivery(c.delivery);
        let retry = retry_policy(c.retry.as_ref());
        let budget = match c.budget_ns {
            Some(ns) => {
                let budget = duration(ns);
                quote!(::std::option::Option::Some(#budget))
            }
            None => quote!(::std::option::Option::None),
        };
        // Two modules down: `events::consumers`.
        let event = ctx.nested(2).type_path(&c.event);
        let sqlite = ident(&format!("{base}_sqlite"), Case::Snake);
        let memory = ident(&format!("{base}_memory"), Case::Snake);
        let what = format!(
            "`{}.{}` v{}",
            c.event.contract.service, c.event.name, c.version
        );
        let start_doc = format!(
            " Builds the idempotent consumer for {what} on PostgreSQL: implement \
             `pactum::messaging::consumer::PgHandler` for the event, and each delivery runs your handler \
             once, recorded in `table` within the handler's transaction, with the retry policy, \
             budget and dead-lettering of [`{konst}`]. The consumer reconnects to `database` \
             by itself."
        );
        let sqlite_doc = format!(
            " Builds the idempotent consumer for {what} on an SQLite connection (the embedded \
             default): implement `pactum::messaging::consumer::SqliteHandler`; the record shares the \
             handler's SQLite transaction. Policy from [`{konst}`]."
        );
        let memory_doc = format!(
            " Builds the idempotent consumer for {what} with its record in memory (tests, \
             single-process effects): implement `pactum::messaging::consumer::MemoryHandler`; an event is \
             recorded only after the handler succeeds. Policy from [`{konst}`]."
        );
        quote! {
            #[doc = #start_doc]
            #[::pactum::__if_feature(postgres)]
            pub async fn #start<H>(
                database: &::pactum::store::postgres::Database,
                table: &str,
                handler: H,
            ) -> ::std::result::Result<
                ::pactum::messaging::consumer::PgConsumer<#event, H>,
                ::pactum::store::idempotency::StoreError,
            >
            where
                H: ::pactum::messaging::consumer::PgHandler<#event>,
            {
                ::pactum::messaging::consumer::PgConsumer::for_contract(database, table, &#konst, handler).await
            }

            #[doc = #sqlite_doc]
            #[::pactum::__if_feature(sqlite)]
            pub fn #sqlite<H>(
                conn: ::pactum::messaging::consumer::rusqlite::Connection,
                table: &str,
                handler: H,
            ) -> ::std::result::Result<
                ::pactum::messaging::consumer::SqliteConsumer<#event, H>,
                ::pactum::store::idempotency::StoreError,
            >
            where
                H: ::pactum::messaging::consumer::SqliteHandler<#event>,
            {
                ::pactum::messaging::consumer::SqliteConsumer::for_contract(conn, table, &#konst, handler)
            }

            #[doc = #memory_doc]
            pub fn #memory<H>(handler: H) -> ::pactum::messaging::consumer::MemoryConsumer<#event, H>
            where
                H: ::pactum::messaging::consumer::MemoryHandler<#event>,
            {
                ::pactum::messaging::consumer::MemoryConsumer::for_contract(&#konst, handler)
            }

            #[doc = #summary]
            #extra
            pub const #konst: ::pactum::ConsumerInfo = ::pactum::ConsumerInfo {
                service: #service,
                subject: #subject,
                group: #group,
                delivery: #mode,
                retry: #retry,
                dead_letter: #dead_letter,
                budget: #budget,
            };
        }
    });
    quote! {
        /// What the contract says about each event this service consumes.
        pub mod consumers {
            #(#items)*
        }
    }
}
