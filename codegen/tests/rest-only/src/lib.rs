//! The example contracts generated with only their REST parts (`pactum.yaml` here says
//! `parts: { grpc: false, messaging: false }`) and compiled against `pactum` with only the
//! `rest` feature: generated code needs no more of the runtime than the parts it holds.
//! CI builds this crate on its own, with `-D warnings`, so the feature set is not unified
//! with the rest of the workspace's.

/// `cargo pactum generate --project codegen/tests/rest-only/pactum.yaml` writes it.
// Generated files stay exactly as `pactum generate` wrote them.
#[rustfmt::skip]
pub mod generated;
