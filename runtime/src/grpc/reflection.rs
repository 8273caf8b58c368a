//! gRPC server reflection (`grpc.reflection.v1` and the older `v1alpha` that many clients
//! still ask first, both served by tonic-reflection): what `grpcurl list`, `grpcurl
//! describe` and Postman read to call a server that has no `.proto` beside them. One
//! reflection service per server, merged once beside the health service.

pub use tonic_reflection::server::Error;

/// The reflection service as an axum router, answering from `descriptor_sets` — the
/// generated `grpc::FILE_DESCRIPTOR_SET` of each contract the server serves. A file that
/// several sets carry (an imported contract, a well-known type) is registered once. Fails
/// only when a set does not decode, which a generated one always does.
pub fn router(descriptor_sets: &[&'static [u8]]) -> Result<axum::Router, Error> {
    let builder = |sets: &[&'static [u8]]| {
        sets.iter().fold(
            tonic_reflection::server::Builder::configure(),
            |builder, set| builder.register_encoded_file_descriptor_set(set),
        )
    };
    let v1 = builder(descriptor_sets).build_v1()?;
    let v1alpha = builder(descriptor_sets).build_v1alpha()?;
    Ok(axum::Router::new()
        .route_service("/grpc.reflection.v1.ServerReflection/{*method}", v1)
        .route_service(
            "/grpc.reflection.v1alpha.ServerReflection/{*method}",
            v1alpha,
        ))
}
