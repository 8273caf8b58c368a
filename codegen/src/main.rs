//! The `pactum` command line.

fn main() -> std::process::ExitCode {
    pactum_codegen::cli::main()
}
