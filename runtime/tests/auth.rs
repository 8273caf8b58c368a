//! Authentication at run time, through `pactum::auth::authenticate` as the servers call it:
//! JWTs checked against a JWKS document served over loopback (fetched once, refetched when
//! the issuer rotates its keys, never in a loop for made-up key ids), API keys, and client
//! certificates with an allow list.

use base64::Engine;
use pactum::auth::{
    self, jwt::JwtVerifier, ApiKeys, Certificates, Refusal, Scheme, SchemeKind, Verifiers,
};
use pactum::router::axum;
use pactum::{OperationInfo, PeerIdentity};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "staff",
        kind: SchemeKind::Bearer,
    },
    Scheme {
        name: "partner",
        kind: SchemeKind::ApiKey {
            header: "x-partner-key",
        },
    },
    Scheme {
        name: "robot",
        kind: SchemeKind::Mtls,
    },
];

static OP: OperationInfo = OperationInfo {
    service: "vault",
    major: 1,
    name: "Open",
    route: None,
    grpc: false,
    deadline: None,
    safe: true,
    idempotency: pactum::Idempotency::None,
    retry: None,
    per_try: None,
    streaming: pactum::Streaming::None,
    resilience: pactum::ResiliencePolicy::DEFAULT,
    auth: SCHEMES,
};

/// An ES256 key: the signing key and its public JWK.
fn es256(kid: &str) -> (jsonwebtoken::EncodingKey, serde_json::Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw(); // 0x04 || X || Y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
    });
    (
        jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk,
    )
}

fn token(key: &jsonwebtoken::EncodingKey, kid: &str, sub: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({"sub": sub, "exp": exp, "iss": "idp", "scope": "read write"});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

/// Serves `keys` as a JWKS document; counts the fetches.
async fn jwks_server(
    keys: Arc<Mutex<Vec<serde_json::Value>>>,
    fetches: Arc<AtomicUsize>,
) -> String {
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (keys, fetches) = (keys.clone(), fetches.clone());
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({ "keys": *keys.lock().unwrap() }).to_string();
                ([(http::header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = pactum::router::serve(listener, app).await;
    });
    format!("http://{addr}/jwks.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_against_a_rotating_jwks_document_fetched_a_bounded_number_of_times() {
    let (key_a, jwk_a) = es256("a");
    let (key_b, jwk_b) = es256("b");
    let keys = Arc::new(Mutex::new(vec![jwk_a]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(keys.clone(), fetches.clone()).await;
    let verifiers = Verifiers::new().with(
        "staff",
        JwtVerifier::jwks_url(url)
            .issuer("idp")
            .min_refetch(std::time::Duration::from_millis(200)),
    );

    let who = auth::authenticate(&verifiers, &OP, &bearer(&token(&key_a, "a", "ann")), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (who.scheme.as_str(), who.subject.as_str()),
        ("staff", "ann")
    );
    assert_eq!(who.scopes, ["read", "write"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates to key b (a is withdrawn): a token naming `b` makes the verifier
    // fetch the document again, once (no sooner than `min_refetch` after the last fetch).
    *keys.lock().unwrap() = vec![jwk_b];
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let who = auth::authenticate(&verifiers, &OP, &bearer(&token(&key_b, "b", "bob")), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.subject, "bob");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // A withdrawn key, and a flood of made-up key ids: refused, with no fetch in between
    // (at most one per MIN_REFETCH).
    for i in 0..30 {
        let kid = if i == 0 {
            "a".to_string()
        } else {
            format!("made-up-{i}")
        };
        let refused =
            auth::authenticate(&verifiers, &OP, &bearer(&token(&key_a, &kid, "eve")), None).await;
        match refused {
            Err(Refusal::Unauthenticated { reason, challenges }) => {
                assert!(reason.contains("among the issuer's keys"), "{reason}");
                assert!(
                    challenges[0].contains("error=\"invalid_token\""),
                    "{challenges:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // A token signed by another key under a known id does not verify.
    let (forger, _) = es256("b");
    let forged =
        auth::authenticate(&verifiers, &OP, &bearer(&token(&forger, "b", "eve")), None).await;
    assert!(
        matches!(&forged, Err(Refusal::Unauthenticated { reason, .. }) if reason.contains("signature")),
        "{forged:?}"
    );
}

#[tokio::test]
async fn api_keys_and_certificates_name_the_caller_or_refuse() {
    let verifiers = Verifiers::new()
        .with("partner", ApiKeys::new().key("k-123", "acme"))
        .with("robot", Certificates::only(["spiffe://shop/robot"]))
        .with("staff", JwtVerifier::hs256(b"secret").unwrap());
    let mut headers = http::HeaderMap::new();
    headers.insert("x-partner-key", "k-123".parse().unwrap());
    let who = auth::authenticate(&verifiers, &OP, &headers, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (who.scheme.as_str(), who.subject.as_str()),
        ("partner", "acme")
    );
    headers.insert("x-partner-key", "k-124".parse().unwrap());
    assert!(matches!(
        auth::authenticate(&verifiers, &OP, &headers, None).await,
        Err(Refusal::Unauthenticated { .. })
    ));

    let robot = PeerIdentity {
        common_name: "robot".into(),
        dns_names: vec![],
        uris: vec!["spiffe://shop/robot".into()],
        certificate: vec![],
    };
    let who = auth::authenticate(&verifiers, &OP, &http::HeaderMap::new(), Some(&robot))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.subject, "spiffe://shop/robot");
    let stranger = PeerIdentity {
        uris: vec!["spiffe://shop/stranger".into()],
        ..robot.clone()
    };
    assert!(matches!(
        auth::authenticate(&verifiers, &OP, &http::HeaderMap::new(), Some(&stranger)).await,
        Err(Refusal::Forbidden(_))
    ));

    // Nothing presented: 401 naming what would do, a challenge per HTTP scheme.
    match auth::authenticate(&verifiers, &OP, &http::HeaderMap::new(), None).await {
        Err(Refusal::Unauthenticated { reason, challenges }) => {
            assert!(reason.contains("a bearer token (staff)"), "{reason}");
            assert!(
                reason.contains("an API key in `x-partner-key` (partner)"),
                "{reason}"
            );
            assert_eq!(challenges.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    // A scheme without a verifier is the server's fault, not the caller's.
    let none = Verifiers::new();
    headers.insert("x-partner-key", "k-123".parse().unwrap());
    assert_eq!(
        auth::authenticate(&none, &OP, &headers, None).await,
        Err(Refusal::Misconfigured("partner"))
    );
}

#[tokio::test]
async fn a_configured_issuer_and_audience_must_be_in_the_token_and_not_before_is_checked() {
    let verifiers = Verifiers::new().with(
        "staff",
        JwtVerifier::hs256(b"secret")
            .unwrap()
            .issuer("idp")
            .audience("vault"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"secret").unwrap(),
        )
        .unwrap()
    };
    let good = sign(serde_json::json!({"sub": "s", "exp": now + 60, "iss": "idp", "aud": "vault"}));
    assert!(auth::authenticate(&verifiers, &OP, &bearer(&good), None)
        .await
        .is_ok());
    for (claims, why) in [
        (
            serde_json::json!({"sub": "s", "exp": now + 60, "aud": "vault"}),
            "has no `iss`",
        ),
        (
            serde_json::json!({"sub": "s", "exp": now + 60, "iss": "idp"}),
            "has no `aud`",
        ),
        (
            serde_json::json!({"sub": "s", "exp": now + 600, "nbf": now + 300, "iss": "idp", "aud": "vault"}),
            "not valid yet",
        ),
    ] {
        match auth::authenticate(&verifiers, &OP, &bearer(&sign(claims)), None).await {
            Err(Refusal::Unauthenticated { reason, .. }) => {
                assert!(reason.contains(why), "{why}: {reason}")
            }
            other => panic!("{why}: {other:?}"),
        }
    }
}

/// The error type of an operation that declares none.
#[derive(Debug)]
enum Never {}

impl std::fmt::Display for Never {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl pactum::OperationError for Never {
    fn status(&self) -> pactum::ErrorStatus {
        match *self {}
    }
    fn code(&self) -> &'static str {
        match *self {}
    }
    fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        match *self {}
    }
    fn from_problem(_: &str, _: serde_json::Value) -> Option<Self> {
        None
    }
}

/// A server stream that needs a `staff` bearer token.
static WATCH: OperationInfo = OperationInfo {
    name: "Watch",
    streaming: pactum::Streaming::Server,
    auth: SCHEMES.split_at(1).0,
    ..OP
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refused_with_401_is_opened_again_once_with_a_renewed_token() {
    use pactum::auth::Credentials;
    let config = pactum::router::ServerConfig {
        auth: Verifiers::new().with("staff", JwtVerifier::hs256(b"secret").unwrap()),
        ..Default::default()
    };
    let app = axum::Router::new().route(
        "/v1/watch",
        axum::routing::get(move |request: axum::extract::Request| {
            let config = config.clone();
            async move {
                pactum::rest::server::handle_stream(
                    &config,
                    &WATCH,
                    Vec::new(),
                    request,
                    |_| Ok(serde_json::Map::new()),
                    None,
                    |_ctx, _input: pactum::NoInput| async move {
                        let items: pactum::BoxStream<Result<u32, pactum::HandlerError<Never>>> =
                            Box::pin(futures_util::stream::iter([Ok(1), Ok(2)]));
                        Ok(items)
                    },
                )
                .await
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = pactum::router::serve(listener, app).await;
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = move |key: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::json!({"sub": "s", "exp": now + 60}),
            &jsonwebtoken::EncodingKey::from_secret(key).unwrap(),
        )
        .unwrap()
    };
    // The first token is signed with a stale key; the source gives a good one when asked again.
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    let client = pactum::rest::client::HttpClient::new(url.clone()).with_credentials(
        Credentials::bearer_refreshed(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let token = if n == 0 {
                sign(b"stale")
            } else {
                sign(b"secret")
            };
            async move { Ok(token) }
        }),
    );
    let items: Vec<u32> = futures_util::StreamExt::collect::<Vec<_>>(
        client
            .stream::<u32, Never>(&WATCH, "/v1/watch".into(), false)
            .await
            .unwrap(),
    )
    .await
    .into_iter()
    .map(|i| i.unwrap())
    .collect();
    assert_eq!(items, [1, 2]);
    assert_eq!(fetched.load(Ordering::SeqCst), 2);
    // A token that stays bad is refused once: no second try with the same token.
    let stale = pactum::rest::client::HttpClient::new(url)
        .with_credentials(Credentials::bearer(sign(b"stale")));
    match stale
        .stream::<u32, Never>(&WATCH, "/v1/watch".into(), false)
        .await
    {
        Err(pactum::ClientError::Rejected(p)) => assert_eq!(p.status, 401),
        other => panic!("{:?}", other.map(|_| "a stream")),
    }
}
