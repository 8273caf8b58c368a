//! The baseline: tonic-prost-build's code for the very `.proto` Pactum emitted for pricing.

fn main() {
    tonic_prost_build::configure()
        .compile_protos(
            &["../../generated-example/proto/pricing.v1.proto"],
            &["../../generated-example/proto"],
        )
        .expect("set PROTOC=scripts/protoc (python3 -m pip install grpcio-tools)");
}
