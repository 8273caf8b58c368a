//! `PACTUM_MESH_RETRIES=1` (what `pactum manifests --mesh …` sets for the services): the
//! generated client makes one attempt per call and leaves retrying to the mesh, so retries
//! never multiply across the two layers. Its own test binary, since the switch is for the
//! whole process.

use axum::http::StatusCode;
use pactum::ClientError;
use pactum_test_output::generated::resilience::v1 as r;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_mesh_retrying_the_client_makes_one_attempt() {
    // As a pod started with the manifests' ConfigMap would have it.
    std::env::set_var(pactum::retry::MESH_RETRIES_ENV, "1");
    assert!(pactum::retry::mesh_retries());
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, SeqCst);
            StatusCode::SERVICE_UNAVAILABLE
        }
    });
    tokio::spawn(pactum::router::serve(listener, app));
    let client = r::rest::Client::new(url);
    for n in 0..10 {
        let result = client.flaky(&r::FlakyRequest { n }).await;
        assert!(matches!(
            result,
            Err(ClientError::Unexpected { status: 503, .. })
        ));
    }
    assert_eq!(
        hits.load(SeqCst),
        10,
        "three attempts each without the switch"
    );

    // Taken back in code: the contract's three attempts again.
    pactum::retry::set_mesh_retries(false);
    let _ = client.flaky(&r::FlakyRequest { n: 0 }).await;
    assert_eq!(hits.load(SeqCst), 13);
}
