//! Snapshot tests of emitted Rust.
//!
//! The expected output is itself compiled: `tests/output` is a workspace crate that mounts the
//! fixture snapshots (and has behaviour tests over them), and `generated-example` mounts the
//! example contracts' output. Run with `EXPECTORATE=overwrite` to accept a change, then review
//! the diff like any code change.

use std::fs;
use std::path::{Path, PathBuf};

/// Reads every contract under `dir`, naming each by `display_root/<relative path>` so the
/// `// source:` header does not depend on where the test runs.
fn sources(dir: &Path, display_root: &str) -> Vec<(PathBuf, String)> {
    let mut diags = pactum_codegen::diagnostics::Diagnostics::default();
    let files = pactum_codegen::collect_files(&[dir.to_path_buf()], &mut diags);
    assert!(diags.is_empty(), "{diags:?}");
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(dir).unwrap();
            let shown = Path::new(display_root).join(rel);
            (shown, fs::read_to_string(&f).unwrap())
        })
        .collect()
}

/// Checks every output of the registry against `root`, each in its conventional directory
/// (Rust in `src/generated`, documents in `openapi`, `proto`, `asyncapi` and `docs`).
fn assert_tree(contracts: &Path, display_root: &str, root: &Path) {
    let outcome = pactum_codegen::check_sources(&sources(contracts, display_root));
    let ir = outcome
        .ir
        .unwrap_or_else(|| panic!("{}", outcome.diagnostics.render(&outcome.sources, false)));
    for output in pactum_codegen::Output::ALL {
        let files = output
            .files(&ir)
            .unwrap_or_else(|e| panic!("{}: {e}", output.key()));
        assert_files(&root.join(output.conventional_dir()), &files);
    }
}

fn assert_files(out: &Path, files: &[pactum_codegen::emit::GeneratedFile]) {
    for f in files {
        if std::env::var_os("EXPECTORATE").is_some() {
            fs::create_dir_all(out.join(&f.path).parent().unwrap()).unwrap();
        }
        expectorate::assert_contents(out.join(&f.path), &f.contents);
    }
    let stale = pactum_codegen::write::stale_files(out, files).unwrap();
    assert!(
        stale.is_empty(),
        "generated files no longer produced: {stale:?}"
    );
}

#[test]
fn fixture_output_matches_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_tree(
        &root.join("tests/fixtures"),
        "codegen/tests/fixtures",
        &root.join("tests/output"),
    );
}

#[test]
fn example_contracts_match_checked_in_generated_example() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert_tree(
        &repo.join("contracts"),
        "contracts",
        &repo.join("generated-example"),
    );
}

#[test]
fn emission_is_deterministic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inputs = sources(&root.join("tests/fixtures"), "fixtures");
    let mut reversed = inputs.clone();
    reversed.reverse();
    let a = pactum_codegen::emit::module_tree(&pactum_codegen::check_sources(&inputs).ir.unwrap());
    let b =
        pactum_codegen::emit::module_tree(&pactum_codegen::check_sources(&reversed).ir.unwrap());
    assert_eq!(a, b, "output must not depend on input order");
}

#[test]
fn deprecations_reach_rust_openapi_and_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/output");
    let rust = fs::read_to_string(root.join("src/generated/features/v1.rs")).unwrap();
    let openapi = fs::read_to_string(root.join("openapi/features.v1.yaml")).unwrap();
    let proto = fs::read_to_string(root.join("proto/features.v1.proto")).unwrap();
    // Field `legacy`, enum value `critical-now`, operation `OldWay`, event `AlarmRaised`.
    assert!(rust.contains("#[deprecated(note = \"use `name`\")]"));
    assert!(rust.contains("#[deprecated(note = \"merged into `high`\")]"));
    assert!(rust.contains("#[deprecated(note = \"use Fetch\")]"));
    assert!(rust.contains("#[deprecated(note = \"use ThingStored\")]"));
    assert!(openapi.contains("operationId: \"OldWay\"") && openapi.contains("deprecated: true"));
    assert!(
        openapi.contains("\"deprecated\":true"),
        "schema-level deprecation"
    );
    assert!(proto.contains("optional string legacy = 519 [deprecated = true];"));
    assert!(proto.contains("LEVEL_CRITICAL_NOW = 1357 [deprecated = true];"));
    assert!(proto.contains("message AlarmRaised {\n  option deprecated = true;"));
}
