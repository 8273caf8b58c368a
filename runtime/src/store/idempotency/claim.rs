//! The claim protocol every transport runs: admit a keyed request, run it to completion
//! whatever happens to its caller, keep its lease alive while it runs, and settle it.

use super::{Begin, IdempotencyStore, Released, StoreError, StoredReply, Token};
use std::any::Any;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a claim is leased.
///
/// A claim is leased for the operation's deadline plus `margin` (the handler cannot run
/// longer than its deadline, so a live holder never loses its lease), or for
/// `without_deadline` when the operation has none. While the request runs its lease is
/// renewed every third of a lease, so only a holder that died (or lost its store) lets the lease
/// run out; the next retry then takes the key over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Added to the operation's deadline. Default 5 s.
    pub margin: Duration,
    /// The lease of operations without a deadline. Default 30 s.
    pub without_deadline: Duration,
    /// The longest a request that is still running keeps its claim by renewing it: a hung
    /// handler of an operation without a deadline frees its key after this. Default 10 min.
    pub max_hold: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            margin: Duration::from_secs(5),
            without_deadline: Duration::from_secs(30),
            max_hold: Duration::from_secs(600),
        }
    }
}

impl Lease {
    /// The lease of an operation whose contract deadline is `deadline`.
    pub fn for_deadline(&self, deadline: Option<Duration>) -> Held {
        Held {
            lease: match deadline {
                Some(d) => d.saturating_add(self.margin),
                None => self.without_deadline,
            },
            max_hold: self.max_hold,
        }
    }
}

/// How one claim is leased: for `lease` at a time, renewed while its request runs, for at
/// most `max_hold` in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// One lease.
    pub lease: Duration,
    /// The longest a running request keeps renewing it.
    pub max_hold: Duration,
}

/// What to do with a keyed request.
pub enum Admission {
    /// The request holds the key: run it under this claim.
    Run(Claim),
    /// The key finished before: answer this, byte for byte.
    Replay(StoredReply),
    /// Another request holds the key: ask the caller to retry after this long.
    Busy {
        /// The rest of the holder's lease.
        retry_after: Duration,
    },
    /// The key was used with another payload.
    Mismatch,
    /// The store cannot be reached: refuse (503 / `UNAVAILABLE`) without running anything.
    Unavailable(StoreError),
}

/// Claims `key` in `scope` for `lease`, or says why the request must not run.
pub async fn admit(
    store: &Arc<dyn IdempotencyStore>,
    scope: String,
    key: String,
    fingerprint: &[u8],
    lease: Held,
    retention: Duration,
) -> Admission {
    match store
        .begin(&scope, &key, fingerprint, lease.lease, retention)
        .await
    {
        Ok(Begin::Started(token)) => Admission::Run(Claim(Arc::new(Inner {
            store: Arc::clone(store),
            scope,
            key,
            token,
            lease: lease.lease,
            max_hold: lease.max_hold,
            encoder: OnceLock::new(),
        }))),
        Ok(Begin::Completed(reply)) => Admission::Replay(reply),
        Ok(Begin::InProgress { retry_after }) => Admission::Busy { retry_after },
        Ok(Begin::Mismatch) => Admission::Mismatch,
        Err(e) => Admission::Unavailable(e),
    }
}

/// Turns a handler's output (as `&dyn Any`) into the transport's stored reply.
type Encoder = Box<dyn Fn(&dyn Any) -> Option<StoredReply> + Send + Sync>;

/// A held claim on one idempotency key.
///
/// A handler finds it with [`Context::claim`](crate::Context::claim) and records its reply in
/// its own database transaction, so the effect and the reply commit together:
///
/// ```ignore
/// let tx = db.transaction().await?;
/// let order = insert_order(&tx, input).await?;
/// ctx.claim().expect("keyed").record_in_postgres(&tx, &order).await?;
/// tx.commit().await?;
/// Ok(order)
/// ```
///
/// A record fails when the claim was taken over (the lease ended): the transaction must then
/// roll back, and the `?` above does that.
#[derive(Clone)]
pub struct Claim(Arc<Inner>);

struct Inner {
    store: Arc<dyn IdempotencyStore>,
    scope: String,
    key: String,
    token: Token,
    lease: Duration,
    max_hold: Duration,
    encoder: OnceLock<Encoder>,
}

impl Inner {
    /// Renews the lease every third of it while the request runs (a failed renewal is tried
    /// again well before the lease ends), for at most [`Lease::max_hold`]; stops for good
    /// once the claim is no longer this holder's. Runs beside the work, so a hung store
    /// call never holds up the reply.
    async fn keep_leased(self: Arc<Self>) {
        let every = (self.lease / 3).max(Duration::from_millis(10));
        let started = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            if started.elapsed() + self.lease > self.max_hold {
                tracing::warn!(scope = %self.scope, "idempotency claim held for its maximum; no longer renewed");
                return;
            }
            let renewal = self
                .store
                .renew(&self.scope, &self.key, &self.token, self.lease);
            match tokio::time::timeout(every, renewal).await {
                Ok(Ok(true)) => {}
                // Recorded (in the handler's transaction) or taken over: nothing to keep.
                Ok(Ok(false)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the idempotency lease"),
                Err(_) => tracing::warn!("renewing the idempotency lease timed out"),
            }
        }
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("scope", &self.0.scope)
            .field("key", &self.0.key)
            .finish_non_exhaustive()
    }
}

impl Claim {
    /// The scope the key is claimed in (`service.vN.Operation`, with the caller when known).
    pub fn scope(&self) -> &str {
        &self.0.scope
    }

    /// The idempotency key.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// Says how the transport encodes the handler's output `O` as a stored reply; transports
    /// call this once, before the handler runs.
    pub fn set_encoder<O: 'static>(
        &self,
        encode: impl Fn(&O) -> StoredReply + Send + Sync + 'static,
    ) {
        let boxed: Encoder = Box::new(move |any| any.downcast_ref::<O>().map(&encode));
        // Set once, by the transport, before the handler runs.
        let _ = self.0.encoder.set(boxed);
    }

    fn encode<O: 'static>(&self, output: &O) -> Result<StoredReply, StoreError> {
        self.0
            .encoder
            .get()
            .and_then(|encode| encode(output))
            .ok_or_else(|| {
                StoreError(format!(
                    "`{}` is not the output type of `{}`: record the value the handler returns",
                    std::any::type_name::<O>(),
                    self.0.scope
                ))
            })
    }

    fn lost(&self) -> StoreError {
        StoreError(format!(
            "the claim on `{}` in `{}` was taken over after its lease ended; roll back",
            self.0.key, self.0.scope
        ))
    }

    /// Records `output` as this request's reply inside `tx`, a transaction on the
    /// [`PostgresStore`](super::PostgresStore)'s database: when `tx` commits, so does the reply,
    /// and a retry replays it even if this request then fails. Errors when the store is not
    /// PostgreSQL, when `output` is not the operation's output type, or when the claim was
    /// taken over (then roll `tx` back).
    #[cfg(feature = "postgres")]
    pub async fn record_in_postgres<O: 'static>(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        output: &O,
    ) -> Result<(), StoreError> {
        let super::Backend::Postgres { table } = self.0.store.backend() else {
            return Err(StoreError(
                "record_in_postgres needs the PostgreSQL idempotency store".into(),
            ));
        };
        let reply = self.encode(output)?;
        let ok =
            super::postgres::record(tx, table, &self.0.scope, &self.0.key, &self.0.token, &reply)
                .await?;
        if ok {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    /// Records `output` as this request's reply inside `tx`, a transaction on the
    /// [`SqliteStore`](super::SqliteStore)'s database file; see
    /// [`record_in_postgres`](Self::record_in_postgres).
    #[cfg(feature = "sqlite")]
    pub fn record_in_sqlite<O: 'static>(
        &self,
        tx: &rusqlite::Transaction<'_>,
        output: &O,
    ) -> Result<(), StoreError> {
        if self.0.store.backend() != super::Backend::Sqlite {
            return Err(StoreError(
                "record_in_sqlite needs the SQLite idempotency store".into(),
            ));
        }
        let reply = self.encode(output)?;
        match super::sqlite::record(tx, &self.0.scope, &self.0.key, &self.0.token, &reply) {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.lost()),
            Err(e) => Err(StoreError(e.to_string())),
        }
    }

    /// Records `output` as this request's reply now, through the store itself: for effects
    /// that are not in a transaction the store can share (the memory store). A failure after
    /// this point replays the reply instead of running the effect again; a crash before it
    /// still can.
    pub async fn record<O: 'static>(&self, output: &O) -> Result<(), StoreError> {
        let reply = self.encode(output)?;
        let ok = self
            .0
            .store
            .complete(&self.0.scope, &self.0.key, &self.0.token, &reply)
            .await?;
        if ok {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    /// Runs `work` to the end in a task of its own, so a caller that hangs up does not
    /// cancel a request halfway through its effect; renews the lease while it runs; then
    /// settles the claim and returns what to answer:
    ///
    /// - a final reply (`is_final`) is stored for replays;
    /// - any other (5xx, deadline, a panic) releases the key for a retry — unless the
    ///   handler recorded a reply in its transaction, which is answered instead;
    /// - if the store cannot be told, the lease runs out and the next retry takes over.
    pub async fn run<W>(
        self,
        work: W,
        is_final: fn(&StoredReply) -> bool,
        failed: fn(String) -> StoredReply,
    ) -> StoredReply
    where
        W: Future<Output = StoredReply> + Send + 'static,
    {
        // One task per keyed request: the work, its lease renewals beside it (both polled
        // here, so neither waits on the other), then the settlement.
        let task = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let mut work = std::pin::pin!(futures_util::FutureExt::catch_unwind(
                std::panic::AssertUnwindSafe(work)
            ));
            let mut renewals = std::pin::pin!(Arc::clone(&self.0).keep_leased());
            let mut renewing = true;
            let reply = loop {
                tokio::select! {
                    done = &mut work => break match done {
                        Ok(reply) => reply,
                        Err(_) => failed("the handler panicked".into()),
                    },
                    () = &mut renewals, if renewing => renewing = false,
                }
            };
            self.settle(reply, is_final).await
        }));
        match task.await {
            Ok(reply) => reply,
            Err(e) => failed(format!("the request's task failed: {e}")),
        }
    }

    async fn settle(&self, reply: StoredReply, is_final: fn(&StoredReply) -> bool) -> StoredReply {
        let Inner {
            store,
            scope,
            key,
            token,
            ..
        } = &*self.0;
        if is_final(&reply) {
            match store.complete(scope, key, token, &reply).await {
                Ok(true) => return reply,
                Ok(false) => {}
                Err(e) => {
                    // The effect happened; answer it. The claim stays leased and a retry
                    // after the lease runs the request again: the memory store's limit.
                    tracing::error!(error = %e, scope = %scope, "could not store the idempotent reply");
                    return reply;
                }
            }
        }
        match store.release(scope, key, token).await {
            // Recorded in the handler's transaction (or by `Claim::record`): that is the
            // outcome every retry will see, so answer it now too.
            Ok(Released::Completed(recorded)) => recorded,
            Ok(Released::Freed | Released::Lost) => reply,
            Err(e) => {
                tracing::error!(error = %e, scope = %scope, "could not release the idempotency key; it frees when its lease ends");
                reply
            }
        }
    }
}
