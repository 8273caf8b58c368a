//! Generates the `audit` contract into OUT_DIR: the build.rs way of using Pactum.

fn main() -> Result<(), pactum_codegen::builder::Error> {
    pactum_codegen::Builder::new()
        .contracts("internal-contracts/audit")
        .compile()?;
    Ok(())
}
