//! The rules of Pactum's contract language that more than one crate applies: the generator
//! (`pactum-codegen`) when it reads contracts, and the macros (`pactum-macros`) when they read
//! hand-written attributes. Kept apart so the macros need not compile the generator, and so
//! each rule is written once.
//!
//! - [`tense`]: event names read as facts that already happened (`OrderPlaced`).
//! - [`duration`]: `300ms`, `2s`, `1m30s`.
//! - [`kube`]: a service's Kubernetes name, and the DNS label rules it must meet.
//! - [`subject`]: an event version's subject and CloudEvents type.
//! - [`modes`]: idempotency, streaming and delivery modes.
//! - [`status`]: the classes of declared errors, with their HTTP status and gRPC code.
//! - [`resilience`]: the defaults and bounds of retry budgets, breakers and concurrency limits.

pub mod duration;
pub mod kube;
pub mod modes;
pub mod resilience;
pub mod status;
pub mod subject;
pub mod tense;
