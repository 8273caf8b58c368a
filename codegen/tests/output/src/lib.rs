//! Snapshot output of the generator's feature fixtures (`codegen/tests/fixtures`).
//! Written by `EXPECTORATE=overwrite cargo test -p pactum-codegen --test snapshots`;
//! compiling this crate proves the snapshots are valid Rust.

// Generated files stay exactly as `pactum generate` wrote them.
#[rustfmt::skip]
pub mod generated;
