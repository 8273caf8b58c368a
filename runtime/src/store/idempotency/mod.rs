//! Server-side idempotency for operations declared `idempotency: key`, shared by REST, gRPC
//! and webhook receivers: one store, one claim protocol.
//!
//! The protocol (the IETF Idempotency-Key draft, made to hold under faults):
//!
//! 1. [`IdempotencyStore::begin`] claims `(scope, key)` with a **lease** and a fresh token,
//!    or reports the key's state: still leased by another request ([`Begin::InProgress`],
//!    answered 409 with `Retry-After` / `UNAVAILABLE` with a `RetryInfo` detail), finished ([`Begin::Completed`], the stored
//!    reply is replayed byte for byte) or used with another payload ([`Begin::Mismatch`],
//!    422 / `FAILED_PRECONDITION`).
//! 2. A claim whose holder crashed, hung or lost its store is **taken over** by the first
//!    retry after its lease: no key is stuck for longer than its lease.
//! 3. Every later write by the holder — [`complete`](IdempotencyStore::complete),
//!    [`release`](IdempotencyStore::release), [`renew`](IdempotencyStore::renew), and the
//!    in-transaction record of [`Claim`] — is **fenced** by the token, so a holder that lost its
//!    lease can no longer record anything (and, with the in-transaction record, can no longer
//!    commit its effect either).
//! 4. A handler on PostgreSQL or SQLite records its reply **in its own transaction**
//!    ([`Claim::record_in_postgres`], [`Claim::record_in_sqlite`]): the effect and the reply
//!    commit together. A deadline or 5xx after that commit replays the recorded reply; a
//!    release never deletes a recorded reply.
//!
//! What each store promises:
//! - [`MemoryStore`]: one process. Claims are atomic and leased inside it; a crash forgets
//!   every key, and a handler's effects are not in the store's transaction, so a crash (or a
//!   5xx) after an effect and before its reply is recorded lets a retry run the effect again.
//!   [`Claim::record`] narrows that window to the handler's own code; only the SQL stores
//!   close it.
//! - [`SqliteStore`]: one replica, survives restarts; effect and reply commit together when the
//!   handler uses [`Claim::record_in_sqlite`] on the same database file.
//! - [`PostgresStore`]: many replicas (the claim is one atomic `INSERT … ON CONFLICT`), lease
//!   times from the database's clock, reconnects after a lost connection; effect and reply
//!   commit together with [`Claim::record_in_postgres`].

mod claim;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use claim::{admit, Admission, Claim, Held, Lease};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How often a `PostgresStore` (on a connection of its own, beside the requests) or an
/// `SqliteStore` (in the request's transaction) deletes entries past their retention.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// A boxed future, for object-safe store methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A reply as stored for replay, in the wire form of the transport that produced it.
///
/// REST: the HTTP status, `content-type` and body. gRPC: `status` is the gRPC code,
/// `content_type` is [`GRPC_REPLY`], and `body` is the encoded reply message (code 0) or the
/// encoded `google.rpc.Status` (any other code). Webhooks: the HTTP answer to the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReply {
    /// HTTP status, or gRPC code for gRPC replies.
    pub status: u16,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The `content_type` of a stored gRPC reply.
pub const GRPC_REPLY: &str = "application/grpc+proto";

/// Is an HTTP answer the request's final outcome, stored for replays? Below 500, except
/// what a later try may change: 408, 409 (busy), 425 and 429 (rate limits).
pub fn is_final_http(status: u16) -> bool {
    status < 500 && !matches!(status, 408 | 409 | 425 | 429)
}

/// Is a gRPC status the call's final outcome, stored for replays? Every code but those a
/// retry may change: CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
pub fn is_final_grpc(code: u16) -> bool {
    !matches!(code, 1 | 2 | 4 | 8 | 10 | 12 | 13 | 14 | 15)
}

/// A claim's fencing token: every write by the claim's holder names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub String);

impl Token {
    /// A fresh random token.
    pub fn new() -> Self {
        Token(crate::random_id())
    }
}

impl Default for Token {
    fn default() -> Self {
        Self::new()
    }
}

/// What the store says about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Claimed (first use, or taken over after an expired lease): run the request under this
    /// token, then `complete` or `release`.
    Started(Token),
    /// Another request holds the key; its lease ends in `retry_after` at the latest.
    InProgress {
        /// When to try again (the rest of the holder's lease, at least a moment).
        retry_after: Duration,
    },
    /// Finished before: replay this.
    Completed(StoredReply),
    /// Used before with a different payload.
    Mismatch,
}

/// What [`IdempotencyStore::release`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    /// The claim is gone: the key may run again.
    Freed,
    /// The holder had already recorded a reply (in its transaction): answer with it.
    Completed(StoredReply),
    /// The claim was no longer this holder's (taken over, expired, or never there).
    Lost,
}

/// Which database a store keeps its claims in, for recording a reply in a handler's own
/// transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend<'a> {
    /// No transaction a handler can share (memory, or a store of your own).
    Other,
    /// PostgreSQL, in this table.
    Postgres {
        /// The table name (a plain identifier).
        table: &'a str,
    },
    /// SQLite, in the `pactum_idempotency` table.
    Sqlite,
}

/// Where keys and replies live. `scope` separates operations (and callers); `fingerprint`
/// identifies the payload. Every method takes untrusted keys and must never panic.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `lease`, or reports its state. A key whose entry is older than
    /// `retention` starts over; an unfinished claim whose lease ended is taken over.
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        lease: Duration,
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>>;

    /// Extends the holder's lease to `lease` from now; false when the claim is no longer
    /// `token`'s.
    fn renew<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Stores the final reply for the holder's claim; false when the claim is no longer
    /// `token`'s or a reply is already recorded.
    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Gives up the holder's claim (the request failed in a way a retry may fix), unless a
    /// reply was recorded for it, which is returned instead.
    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Released, StoreError>>;

    /// Where this store keeps claims, for [`Claim::record_in_postgres`] and
    /// [`Claim::record_in_sqlite`].
    fn backend(&self) -> Backend<'_> {
        Backend::Other
    }
}

/// A store failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "idempotency store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Table names are spliced into SQL, so only plain identifiers are accepted.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn check_table_name(table: &str) -> Result<(), StoreError> {
    if !table.is_empty()
        && table.len() <= 63
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(StoreError(format!(
            "table name must be a plain identifier (letters, digits, `_`, at most 63), got `{table}`"
        )))
    }
}

/// The shortest retry hint given to a request that finds its key busy.
pub(crate) const MIN_RETRY_AFTER: Duration = Duration::from_millis(50);
