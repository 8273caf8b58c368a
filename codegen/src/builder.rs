//! The build-script API: generate Rust from contracts into `OUT_DIR`.

use crate::emit::{self, GeneratedFile};
use crate::write;
use std::fmt;
use std::path::{Path, PathBuf};

/// What to generate: the outputs of [`crate::outputs`]. `Rust` is written in the build-script
/// layout (`<service>_v<major>.rs` and an `include!` index); the others as `pactum generate`
/// writes them.
pub type Target = crate::outputs::Output;

/// Configures and runs code generation from a build script, like prost-build's `Config`.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), pactum_codegen::builder::Error> {
///     pactum_codegen::Builder::new().contracts("contracts").compile()?;
///     Ok(())
/// }
/// ```
///
/// ```ignore
/// // src/lib.rs: every contract, as `<service>::v<major>` modules
/// pub mod contracts {
///     include!(concat!(env!("OUT_DIR"), "/pactum.rs"));
/// }
/// ```
///
/// Writes `<service>_v<major>.rs` per contract and `pactum.rs`, an index mounting them all.
/// Files are rewritten only when their content changes. Prints `cargo:rerun-if-changed` for
/// every contract file and directory read, and nothing else, so the build script reruns only
/// when a contract changes.
#[derive(Clone, Debug)]
pub struct Builder {
    contracts: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
    targets: Vec<Target>,
    deny_warnings: bool,
    cargo_metadata: bool,
    layout: emit::Layout,
    parts: emit::Parts,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            contracts: Vec::new(),
            out_dir: None,
            targets: vec![Target::Rust],
            deny_warnings: false,
            cargo_metadata: true,
            layout: emit::Layout::Pretty,
            parts: emit::Parts::ALL,
        }
    }
}

/// Why generation failed.
pub enum Error {
    /// Contracts have errors (or warnings, when denied): the rendered diagnostics.
    Contracts {
        /// Every diagnostic, `path:line:col: error[CODE]: …` with `help:` lines.
        rendered: String,
        /// Number of errors.
        errors: usize,
    },
    /// No output directory: not run from a build script and none was set.
    NoOutDir,
    /// Writing output failed.
    Io(std::io::Error),
    /// Emission failed (a bug: please report it with the contract).
    Emit(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Contracts { rendered, errors } => {
                write!(
                    f,
                    "{rendered}pactum: {errors} error(s) in contracts; nothing generated"
                )
            }
            Error::NoOutDir => {
                f.write_str("pactum: OUT_DIR is not set; call `out_dir(..)` or run from build.rs")
            }
            Error::Io(e) => write!(f, "pactum: cannot write generated code: {e}"),
            Error::Emit(e) => write!(f, "pactum: {e}"),
        }
    }
}

// Build scripts print a returned error with `{:?}`: make that the readable form.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n{self}")
    }
}

impl std::error::Error for Error {}

impl Builder {
    /// A builder with no contracts, writing Rust into `OUT_DIR`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a contract file, or a directory searched recursively for `*.yaml`/`*.yml`.
    /// Relative paths are relative to the crate (build scripts run there).
    pub fn contracts(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.contracts.push(path.as_ref().to_path_buf());
        self
    }

    /// Where to write; defaults to `OUT_DIR`.
    pub fn out_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Which targets to emit (default: Rust only).
    pub fn targets(&mut self, targets: &[Target]) -> &mut Self {
        self.targets = targets.to_vec();
        self
    }

    /// Fail on lint warnings too (default: warnings are printed as `cargo:warning`).
    pub fn deny_warnings(&mut self, deny: bool) -> &mut Self {
        self.deny_warnings = deny;
        self
    }

    /// Pretty-print the Rust (default true). `false` writes the token stream as is: several
    /// times faster for large contracts, at the cost of compiler messages pointing into one
    /// long line.
    pub fn pretty(&mut self, pretty: bool) -> &mut Self {
        self.layout = if pretty {
            emit::Layout::Pretty
        } else {
            emit::Layout::Compact
        };
        self
    }

    /// Whether to generate the REST router and client (default: yes). Without them the
    /// `Service` trait is still generated, for gRPC to serve.
    pub fn rest(&mut self, on: bool) -> &mut Self {
        self.parts.rest = on;
        self
    }

    /// Whether to generate the `grpc` module: prost messages, router and client (default: yes).
    pub fn grpc(&mut self, on: bool) -> &mut Self {
        self.parts.grpc = on;
        self
    }

    /// Whether to generate the event publisher, consumers and webhook plumbing (default:
    /// yes). Event and webhook types are generated either way.
    pub fn messaging(&mut self, on: bool) -> &mut Self {
        self.parts.messaging = on;
        self
    }

    /// Print `cargo:` lines (default true; turn off outside build scripts).
    pub fn cargo_metadata(&mut self, on: bool) -> &mut Self {
        self.cargo_metadata = on;
        self
    }

    /// Checks the contracts and writes the generated files. Returns the files' paths.
    pub fn compile(&self) -> Result<Vec<PathBuf>, Error> {
        let outcome = crate::check(&self.contracts);
        if self.cargo_metadata {
            for path in self.inputs(&outcome) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            for d in outcome.diagnostics.iter() {
                if d.severity() == crate::diagnostics::Severity::Warning {
                    let text = d.render(&outcome.sources, false).replace('\n', " ");
                    println!("cargo:warning={text}");
                }
            }
        }
        if outcome.failed(self.deny_warnings) {
            return Err(Error::Contracts {
                rendered: outcome.diagnostics.render(&outcome.sources, false),
                errors: outcome.diagnostics.error_count().max(1),
            });
        }
        let Some(ir) = &outcome.ir else {
            return Err(Error::Emit("no IR despite no errors".into()));
        };
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::NoOutDir)?,
        };
        let mut files: Vec<GeneratedFile> = Vec::new();
        if self.targets.contains(&Target::Rust) {
            for c in &ir.contracts {
                files.push(
                    emit::single_file_with(ir, &c.id, self.layout, self.parts)
                        .map_err(Error::Emit)?,
                );
            }
            let abs = std::fs::create_dir_all(&out_dir)
                .and_then(|()| out_dir.canonicalize())
                .map_err(Error::Io)?;
            files.push(emit::include_index(ir, &abs).map_err(Error::Emit)?);
        }
        for target in self.targets.iter().filter(|t| **t != Target::Rust) {
            files.extend(target.files(ir).map_err(Error::Emit)?);
        }
        write::sync(&out_dir, &files, true).map_err(Error::Io)?;
        Ok(files.iter().map(|f| out_dir.join(&f.path)).collect())
    }

    /// Every file and directory whose change should rerun the build script: the contract
    /// files read and the directories given (a new file in one changes its listing).
    /// Paths that do not exist are left out: Cargo would rerun on every build for them.
    fn inputs(&self, outcome: &crate::Outcome) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .contracts
            .iter()
            .filter(|p| p.is_dir())
            .cloned()
            .collect();
        paths.extend(outcome.sources.files().map(Path::to_path_buf));
        paths.retain(|p| p.exists());
        paths.sort();
        paths.dedup();
        paths
    }
}
