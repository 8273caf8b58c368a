//! The in-process store: the embedded default.

use super::{
    Begin, BoxFuture, IdempotencyStore, Released, StoreError, StoredReply, Token, MIN_RETRY_AFTER,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

type Id = (String, String);

struct Entry {
    fingerprint: Vec<u8>,
    created: Instant,
    token: Token,
    lease_until: Instant,
    reply: Option<StoredReply>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Id, Entry>,
    /// Entries by creation time, oldest first, so expiry costs O(1) amortised instead of a
    /// scan of the whole map per request. A key re-created after a release appears twice;
    /// the stale position is skipped because its time no longer matches the entry's.
    by_age: VecDeque<(Instant, Id)>,
}

/// In-process store: the embedded default. Not shared between replicas and forgotten on
/// restart (see the module docs for what it cannot promise). Holds at most `capacity`
/// keys: past that, new claims are refused with a [`StoreError`] (answered 503) rather
/// than evicting a key that may still be retried.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// The default [`MemoryStore`] capacity.
pub const DEFAULT_CAPACITY: usize = 100_000;

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryStore {
    /// An empty store holding up to [`DEFAULT_CAPACITY`] keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding up to `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// How many keys are held now.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.entries.len())
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError("poisoned".into()))
    }
}

fn id(scope: &str, key: &str) -> Id {
    (scope.to_string(), key.to_string())
}

impl Inner {
    fn expire(&mut self, now: Instant, retention: Duration) {
        while let Some((created, _)) = self.by_age.front() {
            if now.saturating_duration_since(*created) < retention {
                break;
            }
            let Some((created, id)) = self.by_age.pop_front() else {
                break;
            };
            if self.entries.get(&id).is_some_and(|e| e.created == created) {
                self.entries.remove(&id);
            }
        }
    }

    fn holder<'a>(&'a mut self, id: &Id, token: &Token) -> Option<&'a mut Entry> {
        self.entries.get_mut(id).filter(|e| e.token == *token)
    }
}

impl IdempotencyStore for MemoryStore {
    fn begin<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a [u8],
        lease: Duration,
        retention: Duration,
    ) -> BoxFuture<'a, Result<Begin, StoreError>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut inner = self.lock()?;
            inner.expire(now, retention);
            let id = id(scope, key);
            if let Some(e) = inner.entries.get_mut(&id) {
                let expired = now.saturating_duration_since(e.created) >= retention;
                if !expired {
                    if e.fingerprint != fingerprint {
                        return Ok(Begin::Mismatch);
                    }
                    if let Some(r) = &e.reply {
                        return Ok(Begin::Completed(r.clone()));
                    }
                    if e.lease_until > now {
                        return Ok(Begin::InProgress {
                            retry_after: (e.lease_until - now).max(MIN_RETRY_AFTER),
                        });
                    }
                    // The holder's lease ended without a reply: take the claim over.
                    let token = Token::new();
                    e.token = token.clone();
                    e.lease_until = now + lease;
                    return Ok(Begin::Started(token));
                }
            }
            if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&id) {
                return Err(StoreError(format!(
                    "the in-memory store holds its maximum of {} keys",
                    self.capacity
                )));
            }
            let token = Token::new();
            inner.entries.insert(
                id.clone(),
                Entry {
                    fingerprint: fingerprint.to_vec(),
                    created: now,
                    token: token.clone(),
                    lease_until: now + lease,
                    reply: None,
                },
            );
            inner.by_age.push_back((now, id));
            Ok(Begin::Started(token))
        })
    }

    fn renew<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            Ok(match inner.holder(&id(scope, key), token) {
                Some(e) if e.reply.is_none() => {
                    e.lease_until = Instant::now() + lease;
                    true
                }
                _ => false,
            })
        })
    }

    fn complete<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
        reply: &'a StoredReply,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            Ok(match inner.holder(&id(scope, key), token) {
                Some(e) if e.reply.is_none() => {
                    e.reply = Some(reply.clone());
                    true
                }
                _ => false,
            })
        })
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Released, StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            let id = id(scope, key);
            let found = match inner.holder(&id, token) {
                None => return Ok(Released::Lost),
                Some(e) => e.reply.clone(),
            };
            Ok(match found {
                // A recorded reply stays for replays.
                Some(r) => Released::Completed(r),
                None => {
                    inner.entries.remove(&id);
                    Released::Freed
                }
            })
        })
    }
}
