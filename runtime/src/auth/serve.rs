//! Verifying incoming credentials, and carrying outgoing ones.

use super::{Principal, Scheme, SchemeKind};
use crate::context::PeerIdentity;
use crate::contract::OperationInfo;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A boxed future, as [`Verifier`] and [`TokenSource`] return (object-safe traits).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a caller presented for one scheme.
#[derive(Clone, Copy, Debug)]
pub enum Presented<'a> {
    /// A bearer token (without `Bearer `).
    Bearer(&'a str),
    /// An API key.
    ApiKey(&'a str),
    /// A client certificate, already verified against the server's client CA by TLS.
    Certificate(&'a PeerIdentity),
}

/// Why a verifier refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The credential proves nothing: malformed, expired, wrongly signed, unknown (401).
    Unauthenticated(String),
    /// The credential is good, but not for this operation (403).
    Forbidden(String),
}

/// Checks one scheme's credentials. `op` is the operation called, so a verifier can also
/// authorize (a missing scope is [`Denied::Forbidden`]).
pub trait Verifier: Send + Sync + 'static {
    /// The principal `presented` proves, or why not.
    fn verify<'a>(
        &'a self,
        presented: Presented<'a>,
        op: &'static OperationInfo,
    ) -> BoxFuture<'a, Result<Principal, Denied>>;
}

/// The verifier of each scheme, by the scheme's name in the contract.
#[derive(Clone, Default)]
pub struct Verifiers {
    by_scheme: Arc<HashMap<String, Arc<dyn Verifier>>>,
}

impl std::fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.by_scheme.keys().collect();
        names.sort();
        f.debug_struct("Verifiers")
            .field("schemes", &names)
            .finish()
    }
}

impl Verifiers {
    /// No verifiers: every operation that requires a scheme is refused (500, logged).
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies the scheme `name` with `verifier`.
    pub fn with(self, name: impl Into<String>, verifier: impl Verifier) -> Self {
        let mut map = (*self.by_scheme).clone();
        map.insert(name.into(), Arc::new(verifier));
        Verifiers {
            by_scheme: Arc::new(map),
        }
    }
}

/// Why a call was not let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credential, or none that proves anything: 401 / `UNAUTHENTICATED`, with the
    /// `WWW-Authenticate` challenges to send.
    Unauthenticated {
        /// What was wrong, for the problem's detail.
        reason: String,
        /// `WWW-Authenticate` values, one per scheme that has a challenge.
        challenges: Vec<String>,
    },
    /// 403 / `PERMISSION_DENIED`.
    Forbidden(String),
    /// The server has no verifier for a scheme the operation accepts: its own fault
    /// (500 / `INTERNAL`), logged.
    Misconfigured(&'static str),
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthenticated { .. } => 401,
            Refusal::Forbidden(_) => 403,
            Refusal::Misconfigured(_) => 500,
        }
    }

    /// The message a client is told.
    pub fn detail(&self) -> String {
        match self {
            Refusal::Unauthenticated { reason, .. } => reason.clone(),
            Refusal::Forbidden(reason) => reason.clone(),
            Refusal::Misconfigured(_) => {
                "the server cannot check credentials for this operation".into()
            }
        }
    }
}

/// The credential `headers` (or the connection's certificate) present for `scheme`.
fn presented<'a>(
    scheme: &Scheme,
    headers: &'a http::HeaderMap,
    peer: Option<&'a PeerIdentity>,
) -> Option<Presented<'a>> {
    match scheme.kind {
        SchemeKind::Bearer => {
            let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
            let (word, token) = value.split_once(' ')?;
            (word.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
                .then(|| Presented::Bearer(token.trim()))
        }
        SchemeKind::ApiKey { header } => {
            let key = headers.get(header)?.to_str().ok()?;
            (!key.is_empty()).then_some(Presented::ApiKey(key))
        }
        SchemeKind::Mtls => peer.map(Presented::Certificate),
    }
}

/// The `WWW-Authenticate` challenge of a scheme (RFC 6750 for bearer tokens; mutual TLS has
/// none: it happens below HTTP).
fn challenge(scheme: &Scheme, op: &OperationInfo, error: Option<&str>) -> Option<String> {
    match scheme.kind {
        SchemeKind::Bearer => Some(match error {
            Some(e) => format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
                op.service,
                e.replace(['"', '\\'], "'")
            ),
            None => format!("Bearer realm=\"{}\"", op.service),
        }),
        SchemeKind::ApiKey { header } => Some(format!(
            "ApiKey realm=\"{}\", header=\"{header}\"",
            op.service
        )),
        SchemeKind::Mtls => None,
    }
}

/// Lets a call of `op` in, or refuses it: the first accepted scheme whose credential is
/// present and verifies gives the principal; a verifier's 403 stands; with none left, 401.
/// A public operation (no schemes) lets everyone in with no principal.
pub async fn authenticate(
    verifiers: &Verifiers,
    op: &'static OperationInfo,
    headers: &http::HeaderMap,
    peer: Option<&PeerIdentity>,
) -> Result<Option<Principal>, Refusal> {
    if op.auth.is_empty() {
        return Ok(None);
    }
    let mut reasons = Vec::new();
    let mut failed_bearer = None;
    for scheme in op.auth {
        let Some(credential) = presented(scheme, headers, peer) else {
            continue;
        };
        let Some(verifier) = verifiers.by_scheme.get(scheme.name) else {
            tracing::error!(
                operation = op.name,
                scheme = scheme.name,
                "no verifier registered for this scheme (ServerConfig::auth)"
            );
            return Err(Refusal::Misconfigured(scheme.name));
        };
        match verifier.verify(credential, op).await {
            Ok(mut principal) => {
                principal.scheme = scheme.name.to_string();
                return Ok(Some(principal));
            }
            Err(Denied::Forbidden(reason)) => return Err(Refusal::Forbidden(reason)),
            Err(Denied::Unauthenticated(reason)) => {
                if scheme.kind == SchemeKind::Bearer {
                    failed_bearer = Some(reason.clone());
                }
                reasons.push(format!("{}: {reason}", scheme.name));
            }
        }
    }
    let challenges = op
        .auth
        .iter()
        .filter_map(|s| {
            let error = (s.kind == SchemeKind::Bearer)
                .then_some(failed_bearer.as_deref())
                .flatten();
            challenge(s, op, error)
        })
        .collect();
    let reason = if reasons.is_empty() {
        let wanted: Vec<String> = op
            .auth
            .iter()
            .map(|s| match s.kind {
                SchemeKind::Bearer => format!("a bearer token ({})", s.name),
                SchemeKind::ApiKey { header } => format!("an API key in `{header}` ({})", s.name),
                SchemeKind::Mtls => format!("a client certificate ({})", s.name),
            })
            .collect();
        format!("`{}` needs {}", op.name, wanted.join(", or "))
    } else {
        format!("the credentials were refused: {}", reasons.join("; "))
    };
    Err(Refusal::Unauthenticated { reason, challenges })
}

/// API keys, each naming who holds it. Keys are kept as SHA-256 digests and looked up by
/// digest, so neither the key nor its timing is exposed.
#[derive(Clone, Default)]
pub struct ApiKeys {
    owners: HashMap<[u8; 32], String>,
}

impl ApiKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `key`, for the principal `subject`.
    pub fn key(mut self, key: &str, subject: impl Into<String>) -> Self {
        self.owners
            .insert(Sha256::digest(key.as_bytes()).into(), subject.into());
        self
    }
}

impl Verifier for ApiKeys {
    fn verify<'a>(
        &'a self,
        presented: Presented<'a>,
        _op: &'static OperationInfo,
    ) -> BoxFuture<'a, Result<Principal, Denied>> {
        Box::pin(async move {
            let Presented::ApiKey(key) = presented else {
                return Err(Denied::Unauthenticated("not an API key".into()));
            };
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            match self.owners.get(&digest) {
                Some(subject) => Ok(Principal::new("", subject.clone())),
                None => Err(Denied::Unauthenticated("unknown API key".into())),
            }
        })
    }
}

/// Client certificates (mutual TLS): the TLS layer verified the chain; this names the
/// principal (the first URI SAN, such as a SPIFFE id, else the first DNS name, else the
/// common name) and, when given an allow list, refuses others with 403.
#[derive(Clone, Default)]
pub struct Certificates {
    allowed: Option<Vec<String>>,
}

impl Certificates {
    /// Any certificate the server's client CA signed.
    pub fn any() -> Self {
        Self::default()
    }

    /// Only certificates whose identity is one of `identities`.
    pub fn only<S: Into<String>>(identities: impl IntoIterator<Item = S>) -> Self {
        Certificates {
            allowed: Some(identities.into_iter().map(Into::into).collect()),
        }
    }
}

impl Verifier for Certificates {
    fn verify<'a>(
        &'a self,
        presented: Presented<'a>,
        op: &'static OperationInfo,
    ) -> BoxFuture<'a, Result<Principal, Denied>> {
        Box::pin(async move {
            let Presented::Certificate(peer) = presented else {
                return Err(Denied::Unauthenticated("no client certificate".into()));
            };
            let subject = peer
                .uris
                .first()
                .or(peer.dns_names.first())
                .cloned()
                .unwrap_or_else(|| peer.common_name.clone());
            match &self.allowed {
                Some(allowed) if !allowed.contains(&subject) => Err(Denied::Forbidden(format!(
                    "`{subject}` may not call `{}`",
                    op.name
                ))),
                _ => Ok(Principal::new("", subject)),
            }
        })
    }
}

/// Where a client's bearer tokens come from.
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send now (cached by the source as it sees fit).
    fn token(&self) -> BoxFuture<'_, Result<String, String>>;
    /// The server refused the last token: forget it, so the next [`token`](Self::token)
    /// gets a fresh one. A source that cannot refresh does nothing.
    fn refresh(&self) {}
}

/// A token that never changes.
struct StaticToken(String);

impl TokenSource for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<String, String>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// A token fetched by `fetch` and kept until refused.
struct Refreshed<F> {
    fetch: F,
    cached: Mutex<Option<String>>,
}

impl<F, Fut> TokenSource for Refreshed<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    fn token(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            if let Some(t) = self.cached.lock().ok().and_then(|c| c.clone()) {
                return Ok(t);
            }
            let fresh = (self.fetch)().await?;
            if let Ok(mut c) = self.cached.lock() {
                *c = Some(fresh.clone());
            }
            Ok(fresh)
        })
    }

    fn refresh(&self) {
        if let Ok(mut c) = self.cached.lock() {
            *c = None;
        }
    }
}

/// What a client sends to prove who it is.
#[derive(Clone)]
pub enum Credentials {
    /// `Authorization: Bearer <token>` from a source.
    Bearer(Arc<dyn TokenSource>),
    /// A key in a header.
    ApiKey {
        /// The header.
        header: http::HeaderName,
        /// The key.
        key: http::HeaderValue,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Credentials::Bearer(_) => f.write_str("Credentials::Bearer(..)"),
            Credentials::ApiKey { header, .. } => write!(f, "Credentials::ApiKey({header}: ..)"),
        }
    }
}

impl Credentials {
    /// A fixed bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        Credentials::Bearer(Arc::new(StaticToken(token.into())))
    }

    /// Bearer tokens from `fetch`, kept until a server refuses one (401), then fetched again.
    pub fn bearer_refreshed<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        Credentials::Bearer(Arc::new(Refreshed {
            fetch,
            cached: Mutex::new(None),
        }))
    }

    /// Bearer tokens from a source of one's own.
    pub fn bearer_from(source: impl TokenSource) -> Self {
        Credentials::Bearer(Arc::new(source))
    }

    /// `key` in `header`; an invalid header name or value is refused here, not on first use.
    pub fn api_key(header: &str, key: &str) -> Result<Self, String> {
        Ok(Credentials::ApiKey {
            header: http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|e| format!("header `{header}`: {e}"))?,
            key: http::HeaderValue::from_str(key)
                .map_err(|e| format!("the API key is not a header value: {e}"))?,
        })
    }

    /// Adds the credential to `headers`; returns the bearer token sent, if one was.
    pub async fn apply(&self, headers: &mut http::HeaderMap) -> Result<Option<String>, String> {
        match self {
            Credentials::Bearer(source) => {
                let token = source.token().await?;
                let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| format!("the token is not a header value: {e}"))?;
                headers.insert(http::header::AUTHORIZATION, value);
                Ok(Some(token))
            }
            Credentials::ApiKey { header, key } => {
                headers.insert(header.clone(), key.clone());
                Ok(None)
            }
        }
    }

    /// After a 401: whether a retry could differ, having asked the source for a new token.
    /// Only a bearer source that now gives another token than `sent` says yes: a 401 is never
    /// retried blindly.
    pub async fn renewed(&self, sent: Option<&str>) -> bool {
        let Credentials::Bearer(source) = self else {
            return false;
        };
        source.refresh();
        match source.token().await {
            Ok(fresh) => Some(fresh.as_str()) != sent,
            Err(_) => false,
        }
    }
}
