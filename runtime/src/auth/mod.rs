//! Authentication (`auth:` in the contract): who may call an operation, proven how.
//!
//! A contract names schemes (`bearer` JWTs, `api_key` headers, `mtls` client certificates)
//! and each operation accepts some of them (any one will do), or none (public). The facts are
//! in each operation's [`OperationInfo::auth`](crate::OperationInfo::auth).
//!
//! - **Servers** call the [`Verifier`] registered for a scheme (in
//!   [`ServerConfig::auth`](crate::router::ServerConfig::auth)) before the request's body is
//!   read or decoded. The [`Principal`] it returns is in the handler's
//!   [`Context::principal`](crate::Context::principal), and scopes idempotency keys. A call
//!   without usable credentials is answered 401 with `WWW-Authenticate` (gRPC
//!   `UNAUTHENTICATED`); one the verifier refuses for this operation 403 (`PERMISSION_DENIED`).
//!   Ready verifiers: [`jwt::JwtVerifier`] (with the `jwt` feature; keys from a JWKS document,
//!   refreshed on rotation), [`ApiKeys`], [`Certificates`].
//! - **Clients** carry [`Credentials`]: a static or refreshed bearer token, or an API key. A
//!   401 is retried once, and only after the token source gave a new token.

#[cfg(any(feature = "rest", feature = "grpc"))]
mod serve;
#[cfg(any(feature = "rest", feature = "grpc"))]
pub use serve::*;
#[cfg(feature = "jwt")]
pub mod jwt;

use std::fmt;

/// A scheme an operation accepts, as the contract declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheme {
    /// Its name in the contract (`staff`): the key its [`Verifier`] is registered under.
    pub name: &'static str,
    /// What the caller presents.
    pub kind: SchemeKind,
}

/// What a scheme's caller presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeKind {
    /// `Authorization: Bearer <token>` (a JWT).
    Bearer,
    /// A key in the named header.
    ApiKey {
        /// The header (`X-Api-Key`).
        header: &'static str,
    },
    /// The client certificate of a mutual-TLS connection.
    Mtls,
}

/// Who is calling, as a verifier established it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Principal {
    /// The scheme that proved it (`staff`).
    pub scheme: String,
    /// Who: a token's `sub`, an API key's owner, a certificate's identity.
    pub subject: String,
    /// What it may do: a token's `scope` (space-separated) or `scp` claim.
    pub scopes: Vec<String>,
    /// The token's other claims, for checks of the handler's own.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl Principal {
    /// A principal of `scheme` with only a subject.
    pub fn new(scheme: impl Into<String>, subject: impl Into<String>) -> Self {
        Principal {
            scheme: scheme.into(),
            subject: subject.into(),
            ..Default::default()
        }
    }

    /// Does it hold `scope`?
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.subject)
    }
}
