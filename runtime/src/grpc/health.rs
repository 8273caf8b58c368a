//! The gRPC health checking protocol (`grpc.health.v1.Health`, served by tonic-health), what
//! Kubernetes' gRPC probes, `grpc_health_probe` and load balancers ask. One health service per
//! server, merged once into the router that serves every contract's gRPC router.

pub use tonic_health::server::HealthReporter;
pub use tonic_health::ServingStatus;

/// The health service's name and descriptors, for the reflection router of a server that
/// serves health (so `grpcurl list` shows `grpc.health.v1.Health` too).
pub const REFLECTION: (&str, &[u8]) = (
    "grpc.health.v1.Health",
    tonic_health::pb::FILE_DESCRIPTOR_SET,
);

/// The health service as an axum router, with each of `services` (the generated
/// `grpc::SERVICE_NAME`s) and the server as a whole (`""`) reported `SERVING`, and the reporter
/// that changes them (`set_service_status`: `NOT_SERVING` while a store the service needs is
/// down, or while draining). A service not named answers `NOT_FOUND`.
pub async fn router(services: &[&str]) -> (HealthReporter, axum::Router) {
    let (reporter, server) = tonic_health::server::health_reporter();
    for name in services.iter().copied().chain([""]) {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let router = axum::Router::new().route_service("/grpc.health.v1.Health/{*method}", server);
    (reporter, router)
}
