// Generated gRPC code in a crate whose pactum has only `rest`: the build stops with the
// feature to enable, not with unresolved paths.
::pactum::__requires_feature!(grpc);

fn main() {}
