//! A [`Verifier`] for `bearer` schemes: JSON Web Tokens checked with the `jsonwebtoken`
//! crate (on aws-lc-rs, the crypto the TLS stack already builds).
//!
//! Keys come from a shared secret (HS256), a fixed JWKS document, or a JWKS URL. A URL's
//! document is fetched on first use, again when it is older than [`MAX_KEYS_AGE`], and again
//! when a token names a key id it does not hold (the issuer rotated its keys), at most once
//! per [`MIN_REFETCH`]: a flood of tokens with made-up key ids cannot make it fetch in a loop.
//! Expiry, not-before, issuer and audience are checked; the principal is the token's `sub`,
//! its scopes the `scope` (space-separated) or `scp` claim.

use super::{BoxFuture, Denied, Presented, Principal, Verifier};
use crate::contract::OperationInfo;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A JWKS URL's document is fetched again when older than this.
pub const MAX_KEYS_AGE: Duration = Duration::from_secs(15 * 60);
/// The least time between two fetches of a JWKS URL, by default
/// ([`JwtVerifier::min_refetch`]).
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

/// Algorithms accepted with keys from a JWKS document: public-key ones only, so a token
/// cannot pick HMAC with the public key as its secret.
const PUBLIC_KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

enum Keys {
    Secret(DecodingKey),
    Fixed(JwkSet),
    Remote(Arc<Remote>),
}

struct Remote {
    url: String,
    min_refetch: Duration,
    http: reqwest::Client,
    /// The keys held, when they were last fetched, and when a fetch was last tried.
    state: tokio::sync::Mutex<(Option<JwkSet>, Option<Instant>, Option<Instant>)>,
}

impl Remote {
    /// The key set, fetched when missing, stale, or (`want` naming a key it lacks) possibly
    /// rotated; at most once per [`MIN_REFETCH`].
    async fn keys(&self, want: Option<&str>) -> Result<JwkSet, Denied> {
        // Held across the fetch on purpose: one fetch at a time, others wait for its keys.
        let mut state = self.state.lock().await;
        let (set, fetched, tried) = &*state;
        let stale = fetched.is_none_or(|at| at.elapsed() > MAX_KEYS_AGE);
        let missing = want.is_some_and(|kid| set.as_ref().is_none_or(|s| s.find(kid).is_none()));
        let may_fetch = tried.is_none_or(|at| at.elapsed() >= self.min_refetch);
        if (stale || missing) && may_fetch {
            state.2 = Some(Instant::now());
            match self.fetch().await {
                Ok(fresh) => {
                    state.0 = Some(fresh);
                    state.1 = Some(Instant::now());
                }
                Err(e) => {
                    // Keep the keys held (a stale set is refused below); try again after
                    // `min_refetch`.
                    tracing::warn!(url = %self.url, error = %e, "cannot fetch the JWKS document");
                }
            }
        }
        if state.1.is_some_and(|at| at.elapsed() > 2 * MAX_KEYS_AGE) {
            // Keys not confirmed for twice their age may have been withdrawn: refuse rather
            // than trust them on.
            return Err(Denied::Unauthenticated(
                "the server cannot confirm its token keys (the issuer's JWKS is unreachable)"
                    .into(),
            ));
        }
        state.0.clone().ok_or_else(|| {
            Denied::Unauthenticated("the server cannot get its token keys yet".into())
        })
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let reply = self
            .http
            .get(&self.url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !reply.status().is_success() {
            return Err(format!("HTTP {}", reply.status()));
        }
        let body = reply.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))
    }
}

/// Verifies JSON Web Tokens; see the module docs.
pub struct JwtVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    /// Operation scope (`orders.v1.RefundPayment`) → the token scopes it needs.
    scopes: HashMap<String, Vec<String>>,
}

impl JwtVerifier {
    fn with_keys(keys: Keys) -> Self {
        JwtVerifier {
            keys,
            issuer: None,
            audience: None,
            scopes: HashMap::new(),
        }
    }

    /// Tokens signed with HS256 under `secret` (a secret shared with the issuer).
    pub fn hs256(secret: &[u8]) -> Result<Self, String> {
        let key = DecodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        Ok(Self::with_keys(Keys::Secret(key)))
    }

    /// Tokens signed with a key of this JWKS document.
    pub fn jwks(set: JwkSet) -> Self {
        Self::with_keys(Keys::Fixed(set))
    }

    /// Tokens signed with a key of the JWKS document at `url` (fetched as the module docs say).
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Self::with_keys(Keys::Remote(Arc::new(Remote {
            url: url.into(),
            min_refetch: MIN_REFETCH,
            http: reqwest::Client::new(),
            state: tokio::sync::Mutex::new((None, None, None)),
        })))
    }

    /// The least time between two fetches of the JWKS URL (default [`MIN_REFETCH`]): how soon
    /// a key the issuer has just started using is found.
    pub fn min_refetch(mut self, every: Duration) -> Self {
        if let Keys::Remote(remote) = &mut self.keys {
            if let Some(r) = Arc::get_mut(remote) {
                r.min_refetch = every;
            }
        }
        self
    }

    /// Only tokens whose `iss` is `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Only tokens whose `aud` includes `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Calls of `operation` (its scope, `payments.v1.RefundPayment`) need `scope` in the
    /// token: without it, 403.
    pub fn require_scope(mut self, operation: &str, scope: &str) -> Self {
        self.scopes
            .entry(operation.to_string())
            .or_default()
            .push(scope.to_string());
        self
    }

    fn validation(&self, algorithms: &[Algorithm]) -> Validation {
        let mut v = Validation::new(algorithms[0]);
        v.algorithms = algorithms.to_vec();
        // A configured issuer or audience must be in the token: jsonwebtoken checks them only
        // when present.
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.required_spec_claims = required.iter().map(|s| s.to_string()).collect();
        v.validate_nbf = true;
        v
    }

    async fn claims(&self, token: &str) -> Result<Map<String, Value>, Denied> {
        let refused = |e: jsonwebtoken::errors::Error| Denied::Unauthenticated(reason(e.kind()));
        match &self.keys {
            Keys::Secret(key) => jsonwebtoken::decode::<Map<String, Value>>(
                token,
                key,
                &self.validation(&[Algorithm::HS256]),
            )
            .map(|d| d.claims)
            .map_err(refused),
            Keys::Fixed(set) => self.with_set(set, token),
            Keys::Remote(remote) => {
                let header = jsonwebtoken::decode_header(token).map_err(refused)?;
                let set = remote.keys(header.kid.as_deref()).await?;
                self.with_set(&set, token)
            }
        }
    }

    fn with_set(&self, set: &JwkSet, token: &str) -> Result<Map<String, Value>, Denied> {
        let refused = |e: jsonwebtoken::errors::Error| Denied::Unauthenticated(reason(e.kind()));
        let header = jsonwebtoken::decode_header(token).map_err(refused)?;
        let jwk = match &header.kid {
            Some(kid) => set.find(kid),
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        }
        .ok_or_else(|| {
            Denied::Unauthenticated(format!(
                "no key `{}` among the issuer's keys",
                header.kid.as_deref().unwrap_or("(none named)")
            ))
        })?;
        let key = DecodingKey::from_jwk(jwk).map_err(refused)?;
        // The token's own algorithm, if it is a public-key one (the key's family is checked
        // against it when the signature is).
        if !PUBLIC_KEY_ALGORITHMS.contains(&header.alg) {
            return Err(Denied::Unauthenticated(reason(
                &ErrorKind::InvalidAlgorithm,
            )));
        }
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation(&[header.alg]))
            .map(|d| d.claims)
            .map_err(refused)
    }
}

/// What a client is told about a refused token (RFC 6750's `error_description`).
fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted here".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no `{c}`"),
        _ => "the token is malformed".into(),
    }
}

impl Verifier for JwtVerifier {
    fn verify<'a>(
        &'a self,
        presented: Presented<'a>,
        op: &'static OperationInfo,
    ) -> BoxFuture<'a, Result<Principal, Denied>> {
        Box::pin(async move {
            let Presented::Bearer(token) = presented else {
                return Err(Denied::Unauthenticated("not a bearer token".into()));
            };
            if token.len() > 16 * 1024 {
                return Err(Denied::Unauthenticated("the token is too long".into()));
            }
            let claims = self.claims(token).await?;
            let subject = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let scopes: Vec<String> = match claims.get("scope").or_else(|| claims.get("scp")) {
                Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(needed) = self.scopes.get(&op.scope()) {
                if let Some(missing) = needed.iter().find(|s| !scopes.contains(s)) {
                    return Err(Denied::Forbidden(format!(
                        "`{}` needs the scope `{missing}`",
                        op.name
                    )));
                }
            }
            Ok(Principal {
                scheme: String::new(),
                subject,
                scopes,
                claims,
            })
        })
    }
}
