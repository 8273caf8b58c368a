//! Generates the `audit` contract into OUT_DIR: the build.rs way of using Pactum. And the
//! `pricing` contract once more with gRPC only, as a service that speaks nothing else would.

fn main() -> Result<(), pactum_codegen::builder::Error> {
    pactum_codegen::Builder::new()
        .contracts("internal-contracts/audit")
        .compile()?;
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("run by cargo"));
    pactum_codegen::Builder::new()
        .contracts("../contracts/pricing")
        .out_dir(out.join("grpc_only"))
        .rest(false)
        .messaging(false)
        .compile()?;
    Ok(())
}
