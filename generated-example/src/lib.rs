//! The checkout system generated from `contracts/`, and the services that implement it.
//!
//! `generated` is written by `pactum generate contracts --out generated-example/src/generated`
//! and checked in; CI fails when it is stale.

/// Code generated from `contracts/` by `pactum generate`.
// Generated files stay exactly as `pactum generate` wrote them.
#[rustfmt::skip]
pub mod generated;
