//! The defaults and bounds of a contract's `resilience:` block, which the generator writes into
//! every operation's facts and the runtime applies: one table, so a contract that says nothing
//! gets exactly what the runtime documents.

/// Retries allowed per request to a target, in thousandths (`ratio: 0.2`).
pub const DEFAULT_RETRY_RATIO_PERMILLE: u32 = 200;
/// Retries allowed per second to a target whatever its traffic.
pub const DEFAULT_RETRIES_PER_SECOND: u32 = 10;
/// Failures in a row that open a target's circuit breaker.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// How long an open breaker waits before letting a probe through, nanoseconds.
pub const DEFAULT_BREAKER_COOLDOWN_NS: u64 = 5_000_000_000;

/// Most retries per second a contract may allow whatever the traffic.
pub const MAX_RETRIES_PER_SECOND: u64 = 10_000;
/// Most failures in a row a breaker may wait for.
pub const MAX_BREAKER_FAILURES: u64 = 1_000;
/// Most requests of one operation a server may run at once.
pub const MAX_CONCURRENCY: u64 = 1_000_000;

/// The environment variable that hands retrying to the service mesh (`1`): the manifests
/// `pactum manifests --mesh …` writes set it, and the runtime's clients read it.
pub const MESH_RETRIES_ENV: &str = "PACTUM_MESH_RETRIES";
