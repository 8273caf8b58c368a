//! Hand-written service logic over the generated types. Every handler runs in a span that
//! continues the caller's trace (`#[pactum::traced]`) and within its contract's deadline
//! (`#[pactum::deadline]`); calls between them carry both without any header copying.

pub mod cart;
pub mod pricing;
