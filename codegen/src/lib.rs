//! Pactum's generator: versioned YAML service contracts → typed Rust.
//!
//! The pipeline runs in one direction, one module per stage:
//!
//! ```text
//! files ─ loader ─▶ Node tree ─ decode ─▶ ast ─ validate ─▶ (diagnostics) ─ lower ─▶ ir ─ emit ─▶ text ─ write
//! ```
//!
//! [`check`] runs everything up to the IR and returns every diagnostic; [`generate`] adds
//! emission. Nothing is written while any contract has an error.
//!
//! ```no_run
//! let outcome = pactum_codegen::check(&["contracts".into()]);
//! eprint!("{}", outcome.diagnostics.render(&outcome.sources, false));
//! if let Some(ir) = &outcome.ir {
//!     let files = pactum_codegen::emit::module_tree(ir).expect("emits");
//!     assert!(!files.is_empty());
//! }
//! ```

pub mod ast;
pub mod budget;
pub mod builder;
#[cfg(feature = "cli")]
pub mod cli;
pub mod compat;
pub mod decode;
pub mod diagnostics;
pub mod emit;
pub mod history;
pub mod ir;
pub mod loader;
pub mod lower;
pub mod naming;
pub mod outputs;
#[cfg(feature = "project")]
pub mod project;
pub mod resolve;
pub mod scaffold;
pub mod schema;
pub mod validate;
pub mod vocab;
pub mod wire;
pub mod write;

pub use builder::{Builder, Target};
use diagnostics::{Code, Diagnostic, Diagnostics, SourceMap};
pub use outputs::Output;
/// Event-name rules, shared with the macros through `pactum-rules`.
pub use pactum_rules::tense;
use std::path::{Path, PathBuf};

/// The result of checking a set of contracts.
#[derive(Debug)]
pub struct Outcome {
    /// Files read, for rendering diagnostics.
    pub sources: SourceMap,
    /// Every error and warning, sorted by position.
    pub diagnostics: Diagnostics,
    /// The IR, when there was no error.
    pub ir: Option<ir::Ir>,
}

impl Outcome {
    /// Did the run fail? Warnings fail it only when `deny_warnings` is set.
    pub fn failed(&self, deny_warnings: bool) -> bool {
        self.ir.is_none()
            || self.diagnostics.has_errors()
            || (deny_warnings && self.diagnostics.warning_count() > 0)
    }
}

/// Expands paths: files as given, directories searched recursively for `*.yaml`/`*.yml`
/// (sorted, so output never depends on directory order).
pub fn collect_files(paths: &[PathBuf], diags: &mut Diagnostics) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            let mut found = Vec::new();
            while let Some(dir) = stack.pop() {
                match std::fs::read_dir(&dir) {
                    Ok(entries) => {
                        for e in entries.flatten() {
                            let path = e.path();
                            if path.is_dir() {
                                stack.push(path);
                            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                                found.push(path);
                            }
                        }
                    }
                    Err(e) => diags.push(Diagnostic::for_path(
                        Code::Io,
                        &dir,
                        format!("cannot read directory: {e}"),
                        "check the path and its permissions",
                    )),
                }
            }
            if found.is_empty() {
                diags.push(Diagnostic::for_path(
                    Code::Io,
                    p,
                    "no contract files (*.yaml, *.yml) in this directory",
                    "point pactum at a directory of contracts or at contract files",
                ));
            }
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            diags.push(Diagnostic::for_path(
                Code::Io,
                p,
                "no such file or directory",
                "check the path; pass contract files or directories holding them",
            ));
        }
    }
    out.dedup();
    out
}

/// Loads, decodes and validates contracts from in-memory sources `(path, text)`, then lowers
/// them when there is no error. The core of [`check`]; tests and macros call it directly.
pub fn check_sources(sources_in: &[(PathBuf, String)]) -> Outcome {
    let mut sources = SourceMap::default();
    let mut diagnostics = Diagnostics::default();
    let mut contracts = Vec::new();
    for (path, text) in sources_in {
        let file = sources.add(path);
        match loader::load_str(file, text) {
            Ok(root) => {
                if let Some(c) = decode::decode_contract(file, path, &root, &mut diagnostics) {
                    contracts.push(c);
                }
            }
            Err(d) => diagnostics.push(d),
        }
    }
    // One symbol table for validation and lowering: names resolve once, the same way.
    let scope = resolve::Scope::new(&contracts);
    validate::validate(&scope, &mut diagnostics);
    diagnostics.sort();
    let mut ir = if diagnostics.has_errors() {
        None
    } else {
        lower::lower(&scope)
    };
    // Budgets across `calls:` need the whole resolved system, so they read the IR.
    if let Some(lowered) = &ir {
        budget::check(lowered, &mut diagnostics);
        diagnostics.sort();
        if diagnostics.has_errors() {
            ir = None;
        }
    }
    Outcome {
        sources,
        diagnostics,
        ir,
    }
}

/// Reads contract files (and directories of them) and checks them.
pub fn check(paths: &[PathBuf]) -> Outcome {
    let mut read_diags = Diagnostics::default();
    let files = collect_files(paths, &mut read_diags);
    let mut inputs = Vec::new();
    for f in &files {
        match read_contract(f) {
            Ok(text) => inputs.push((f.clone(), text)),
            Err(d) => read_diags.push(d),
        }
    }
    let mut outcome = check_sources(&inputs);
    if !read_diags.is_empty() {
        let had_errors = read_diags.has_errors();
        read_diags.extend(std::mem::take(&mut outcome.diagnostics));
        outcome.diagnostics = read_diags;
        if had_errors {
            outcome.ir = None;
        }
    }
    outcome
}

fn read_contract(path: &Path) -> Result<String, Diagnostic> {
    let meta = std::fs::metadata(path).map_err(|e| io_diag(path, &e))?;
    if meta.len() > loader::MAX_FILE_BYTES as u64 {
        return Err(Diagnostic::for_path(
            Code::TooLarge,
            path,
            format!(
                "file is {} bytes; contracts are limited to {} bytes",
                meta.len(),
                loader::MAX_FILE_BYTES
            ),
            "split the contract: one service per file, one file per major version",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| io_diag(path, &e))?;
    String::from_utf8(bytes).map_err(|e| {
        Diagnostic::for_path(
            Code::YamlSyntax,
            path,
            format!(
                "file is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            "save the contract as UTF-8",
        )
    })
}

fn io_diag(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::for_path(
        Code::Io,
        path,
        format!("cannot read: {e}"),
        "check the path and its permissions",
    )
}
