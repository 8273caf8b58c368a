//! gRPC server reflection (`grpc.reflection.v1` and the older `v1alpha` that many clients
//! still ask first, both served by tonic-reflection): what `grpcurl list`, `grpcurl
//! describe` and Postman read to call a server that has no `.proto` beside them. One
//! reflection service per server, merged once beside the health service.

pub use tonic_reflection::server::Error;

/// The reflection service as an axum router for a server that serves `services`: pairs of a
/// generated `grpc::SERVICE_NAME` and that module's `grpc::FILE_DESCRIPTOR_SET` (and
/// [`health::REFLECTION`](super::health::REFLECTION) when it serves health). `list` names
/// exactly these services and the reflection service itself — not the services of contracts
/// whose types they only import, whose files are there to describe those types. A file that
/// several sets carry (an imported contract, a well-known type) is registered once. Fails only
/// when a set does not decode, which a generated one always does.
pub fn router(services: &[(&str, &'static [u8])]) -> Result<axum::Router, Error> {
    let builder = |reflection: &str| {
        services.iter().fold(
            tonic_reflection::server::Builder::configure().with_service_name(reflection),
            |builder, (name, set)| {
                builder
                    .with_service_name(*name)
                    .register_encoded_file_descriptor_set(set)
            },
        )
    };
    let v1 = builder("grpc.reflection.v1.ServerReflection").build_v1()?;
    let v1alpha = builder("grpc.reflection.v1alpha.ServerReflection").build_v1alpha()?;
    Ok(axum::Router::new()
        .route_service("/grpc.reflection.v1.ServerReflection/{*method}", v1)
        .route_service(
            "/grpc.reflection.v1alpha.ServerReflection/{*method}",
            v1alpha,
        ))
}
