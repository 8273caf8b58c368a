//! `notifications`'s contracts and the contracts they use, as Rust: `generated/` is written
//! by `pactum generate` from `contracts/` (never edit it). A crate of its own, so a change to
//! a handler does not recompile it.

#[rustfmt::skip]
mod generated;

pub use generated::*;
