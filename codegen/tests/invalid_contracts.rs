//! The corpus of invalid contracts under `tests/invalid/`.
//!
//! Each `.yaml` file (or directory of files, loaded together) states the diagnostics it must
//! produce as `# expect: CODE line:col` comments. The run must report exactly that set: the
//! right code at the right place, nothing missing and nothing extra.

use pactum_codegen::diagnostics::{Code, Severity};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

type Expectation = (String, String, u32, u32); // code, file name, line, col

fn expectations(path: &Path, text: &str) -> Vec<Expectation> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (code, pos) = e.trim().split_once(' ').expect("`# expect: CODE line:col`");
            let (line, col) = pos.split_once(':').expect("line:col");
            (
                code.to_string(),
                name.clone(),
                line.parse().unwrap(),
                col.parse().unwrap(),
            )
        })
        .collect()
}

fn cases() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut cases: Vec<(PathBuf, Vec<PathBuf>)> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                let mut files: Vec<PathBuf> = fs::read_dir(&p)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                files.sort();
                (p, files)
            } else {
                (p.clone(), vec![p])
            }
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_invalid_contract_reports_exactly_its_expected_diagnostics() {
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 25, "corpus shrank to {} cases", cases.len());
    for (case, files) in &cases {
        let inputs: Vec<(PathBuf, String)> = files
            .iter()
            .map(|f| (f.clone(), fs::read_to_string(f).unwrap()))
            .collect();
        let expected: BTreeSet<Expectation> = inputs
            .iter()
            .flat_map(|(p, t)| expectations(p, t))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            case.display()
        );
        let outcome = pactum_codegen::check_sources(&inputs);
        let actual: BTreeSet<Expectation> = outcome
            .diagnostics
            .iter()
            .map(|d| {
                let span = d.span.expect("corpus diagnostics have positions");
                let file = outcome.sources.path(span.file).file_name().unwrap();
                (
                    d.code.as_str().to_string(),
                    file.to_string_lossy().to_string(),
                    span.line,
                    span.col,
                )
            })
            .collect();
        if actual != expected {
            failures.push(format!(
                "{}:\n  expected {:?}\n  actual   {:?}\n{}",
                case.display(),
                expected,
                actual,
                outcome.diagnostics.render(&outcome.sources, false)
            ));
        }
        // Errors always refuse; a case of only warnings must still produce the IR.
        let only_warnings = outcome
            .diagnostics
            .iter()
            .all(|d| d.severity() == Severity::Warning);
        assert_eq!(outcome.ir.is_some(), only_warnings, "{}", case.display());
        for d in outcome.diagnostics.iter() {
            assert!(
                !d.help.trim().is_empty(),
                "{} has no help: {d:?}",
                case.display()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_covers_every_positional_code() {
    let mut seen = BTreeSet::new();
    for (_, files) in cases() {
        for f in files {
            for (code, ..) in expectations(&f, &fs::read_to_string(&f).unwrap()) {
                seen.insert(code);
            }
        }
    }
    // Reading a missing file has no position; the CLI tests cover it.
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| **c != Code::Io)
        .map(|c| c.as_str())
        .filter(|c| !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "no corpus case for {missing:?}");
}

#[test]
fn rendered_diagnostics_name_file_line_col_code_and_help() {
    let text = "pactum: 1\nservice: orders\nversion: 1.0.0\nowner: o\nevents:\n  CreateOrder: { version: 1, delivery: queue }\n";
    let outcome =
        pactum_codegen::check_sources(&[(PathBuf::from("contracts/orders.yaml"), text.into())]);
    assert_eq!(
        outcome.diagnostics.render(&outcome.sources, false),
        "contracts/orders.yaml:6:3: error[E0210]: event `CreateOrder` does not read as a fact that already happened\n  help: did you mean `OrderCreated`? events are named `<Subject><PastVerb>`\n"
    );
}
