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
    /// When this entry is forgotten: its creation plus the retention it was claimed with.
    expires: Instant,
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
/// restart (see the module docs for what it cannot promise). Each key is kept for the
/// retention it was claimed with. Holds at most `capacity` keys: when full, the oldest
/// finished key is forgotten early to make room (a retry of it would run again, as after a
/// restart); claims still running are never evicted, and when every held key is running,
/// new claims are refused with a [`StoreError`] (503).
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
    /// Forgets entries past their own expiry, oldest first. An entry whose retention is
    /// longer than a younger one's may hold the younger one back; it goes as soon as it is
    /// the oldest and expired, and capacity stays bounded either way.
    fn expire(&mut self, now: Instant) {
        while let Some((created, id)) = self.by_age.front() {
            match self.entries.get(id) {
                Some(e) if e.created == *created && e.expires > now => break,
                Some(e) if e.created == *created => {
                    let id = id.clone();
                    self.entries.remove(&id);
                }
                // A stale position: the key was released and claimed again.
                _ => {}
            }
            self.by_age.pop_front();
        }
        // Release and re-claim churn leaves stale positions behind: compact now and then.
        if self.by_age.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.by_age
                .retain(|(created, id)| entries.get(id).is_some_and(|e| e.created == *created));
        }
    }

    /// Makes room for one more key by forgetting the oldest finished one; false when every
    /// held key is still running.
    fn evict_one(&mut self) -> bool {
        for _ in 0..self.by_age.len() {
            let Some((created, id)) = self.by_age.pop_front() else {
                return false;
            };
            match self.entries.get(&id) {
                Some(e) if e.created == created && e.reply.is_some() => {
                    self.entries.remove(&id);
                    return true;
                }
                // Running: keep it, and its place in the queue (at the back now).
                Some(e) if e.created == created => self.by_age.push_back((created, id)),
                _ => {}
            }
        }
        false
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
            inner.expire(now);
            let id = id(scope, key);
            if let Some(e) = inner.entries.get_mut(&id) {
                // The caller's retention decides for its key, as in the SQL stores; the
                // entry's own expiry decides for pruning other keys.
                let expired =
                    e.expires <= now || now.saturating_duration_since(e.created) >= retention;
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
            if inner.entries.len() >= self.capacity
                && !inner.entries.contains_key(&id)
                && !inner.evict_one()
            {
                return Err(StoreError(format!(
                    "the in-memory store holds its maximum of {} keys, all still running",
                    self.capacity
                )));
            }
            let token = Token::new();
            inner.entries.insert(
                id.clone(),
                Entry {
                    fingerprint: fingerprint.to_vec(),
                    created: now,
                    expires: now + retention,
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
