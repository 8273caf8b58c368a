//! `pactum.yaml`, the project file: which contracts, which outputs, and where (as
//! `buf.gen.yaml` is for buf). `cargo pactum generate` with no arguments reads it.
//!
//! ```yaml
//! pactum: 1
//! contracts: [contracts]
//! outputs:
//!   rust: src/generated
//!   openapi: openapi
//! ```
//!
//! It is plain configuration, so it is read with serde_yaml into typed structs (contracts
//! need every node's position and go through [`loader`](crate::loader) instead). Paths are
//! relative to the file's directory. Every error names `file:line:col`; a project file with
//! an error makes the CLI write nothing.

use crate::emit::Parts;
use crate::outputs::Output;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The file name looked for in the current directory and its ancestors.
pub const FILE_NAME: &str = "pactum.yaml";

/// The project-file language versions this generator reads.
const VERSIONS: &[u32] = &[1];

/// A read and checked `pactum.yaml`. Its paths are as written, relative to [`root`]
/// (`Project::resolve` joins them); the CLI runs from `root`, so sources and generated
/// headers name contracts the same way from any directory.
///
/// [`root`]: Project::root
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// The file it was read from.
    pub path: PathBuf,
    /// The directory its paths are relative to: the file's own.
    pub root: PathBuf,
    /// Contract files or directories, in the order given.
    pub contracts: Vec<PathBuf>,
    /// Each output written, and its directory.
    pub outputs: BTreeMap<Output, PathBuf>,
    /// Fail on lint warnings too.
    pub deny_warnings: bool,
    /// Which transports' code the Rust output holds (default: all); each maps onto the
    /// `pactum` feature of the same name (`messaging` needs none for the embedded bus).
    pub parts: Parts,
    /// Set in a service laid out by `pactum new`: `generate` also rewrites the service
    /// crate's generated files and names the operations that have no handler yet.
    pub scaffold: Option<Scaffold>,
}

/// `scaffold:`, which `pactum new` writes: the service a crate implements.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaffold {
    /// The contract service served (`orders`): every major of it among `contracts:`.
    pub serves: String,
    /// The service crate's package name; the generated code's crate is `<name>-api`.
    pub name: String,
    /// The service crate's directory, relative to the project file. Default `service`.
    #[serde(default = "Scaffold::default_dir")]
    pub dir: PathBuf,
}

impl Scaffold {
    fn default_dir() -> PathBuf {
        PathBuf::from("service")
    }
}

/// The file as written: what serde reads, before paths are resolved.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    pactum: u32,
    contracts: Vec<PathBuf>,
    outputs: BTreeMap<Output, PathBuf>,
    #[serde(default)]
    deny_warnings: bool,
    #[serde(default)]
    parts: RawParts,
    #[serde(default)]
    scaffold: Option<Scaffold>,
}

/// `parts:` as written; every part defaults to on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawParts {
    rest: bool,
    grpc: bool,
    messaging: bool,
}

impl Default for RawParts {
    fn default() -> Self {
        RawParts {
            rest: true,
            grpc: true,
            messaging: true,
        }
    }
}

/// A project file that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a position.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: ", self.path.display())?,
            None => write!(f, "{}: ", self.path.display())?,
        }
        write!(f, "error: {}\n  help: {}", self.message, self.help)
    }
}

impl std::error::Error for Error {}

impl Project {
    /// Finds `pactum.yaml` in `dir` or the nearest ancestor that has one. The path returned
    /// is relative to `dir` (`pactum.yaml`, `../pactum.yaml`, …), so the paths it resolves,
    /// and the diagnostics that name them, read as the user would type them.
    pub fn find(dir: &Path) -> Option<PathBuf> {
        dir.ancestors().enumerate().find_map(|(up, d)| {
            d.join(FILE_NAME).is_file().then(|| {
                let mut rel: PathBuf = std::iter::repeat_n("..", up).collect();
                rel.push(FILE_NAME);
                rel
            })
        })
    }

    /// Reads and checks the project file at `path`.
    pub fn read(path: &Path) -> Result<Project, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error {
            path: path.to_path_buf(),
            position: None,
            message: format!("cannot read the project file: {e}"),
            help: format!(
                "create `{FILE_NAME}` (README: Project file) or pass contract paths and `--out`"
            ),
        })?;
        Project::parse(path, &text)
    }

    /// Parses `text` as the project file at `path` (which only names it and anchors its
    /// relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Project, Error> {
        let at = |position: Option<(usize, usize)>, message: String, help: &str| Error {
            path: path.to_path_buf(),
            position,
            message,
            help: help.to_string(),
        };
        let raw: Raw = serde_yaml::from_str(text).map_err(|e| {
            let position = e.location().map(|l| (l.line(), l.column()));
            at(position, serde_message(&e), &help_for(&e.to_string()))
        })?;
        if !VERSIONS.contains(&raw.pactum) {
            return Err(at(
                locate(text, "pactum"),
                format!(
                    "project file version {} is not one this pactum reads",
                    raw.pactum
                ),
                "write `pactum: 1`",
            ));
        }
        if raw.contracts.is_empty() {
            return Err(at(
                locate(text, "contracts"),
                "no contracts listed".into(),
                "list contract files or directories, e.g. `contracts: [contracts]`",
            ));
        }
        if raw.outputs.is_empty() {
            return Err(at(
                locate(text, "outputs"),
                "no outputs listed".into(),
                "give at least one of `rust`, `openapi`, `proto`, `asyncapi`, `docs` with its directory",
            ));
        }
        // Each output owns its directory: a second output there would see the first's
        // files as left over from an earlier run.
        let mut seen: BTreeMap<&Path, Output> = BTreeMap::new();
        for (&output, dir) in &raw.outputs {
            if let Some(first) = seen.insert(dir.as_path(), output) {
                return Err(at(
                    locate(text, output.key()),
                    format!(
                        "outputs `{}` and `{}` share the directory `{}`",
                        first.key(),
                        output.key(),
                        dir.display()
                    ),
                    "give each output a directory of its own",
                ));
            }
        }
        if let Some(scaffold) = &raw.scaffold {
            let at_scaffold =
                |message: String, help: &str| at(locate(text, "scaffold"), message, help);
            if let Err(e) = crate::scaffold::check_name(&scaffold.name) {
                return Err(at_scaffold(
                    e.lines().next().unwrap_or_default().to_string(),
                    "`name` is the service crate's package name: lower-case letters, digits, `-` and `_`, starting with a letter",
                ));
            }
            let inside = scaffold
                .dir
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside || scaffold.dir.as_os_str().is_empty() {
                return Err(at_scaffold(
                    format!(
                        "`dir: {}` is not a directory inside the project",
                        scaffold.dir.display()
                    ),
                    "give the service crate's directory relative to this file, without `..` (`dir: service`)",
                ));
            }
            let all = raw.parts.rest && raw.parts.grpc && raw.parts.messaging;
            if !all {
                return Err(at(
                    locate(text, "parts"),
                    "a scaffolded service (`scaffold:`) needs every part of the generated code".into(),
                    "remove `parts:`: the service's wiring serves REST and gRPC and runs its events",
                ));
            }
        }
        Ok(Project {
            path: path.to_path_buf(),
            root: path.parent().unwrap_or(Path::new("")).to_path_buf(),
            contracts: raw.contracts,
            outputs: raw.outputs,
            deny_warnings: raw.deny_warnings,
            parts: Parts {
                rest: raw.parts.rest,
                grpc: raw.parts.grpc,
                messaging: raw.parts.messaging,
            },
            scaffold: raw.scaffold,
        })
    }

    /// `p` (one of this project's paths) as seen from the current directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || self.root.as_os_str().is_empty() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }
}

/// serde_yaml's message without the ` at line L column C` it appends (the position is
/// printed in front, as everywhere else).
fn serde_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match e.location() {
        Some(l) => {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            text.replace(&suffix, "")
        }
        None => text,
    }
}

/// A fix for serde's usual complaints.
fn help_for(message: &str) -> String {
    if message.contains("unknown variant") {
        "outputs are `rust`, `openapi`, `proto`, `asyncapi` and `docs`".into()
    } else if message.contains("unknown field") {
        "the keys are `pactum`, `contracts`, `outputs`, `parts` (`rest`, `grpc`, `messaging`), `deny_warnings` and `scaffold` (`serves`, `name`, `dir`)".into()
    } else if message.contains("missing field") {
        "a project file needs `pactum: 1`, `contracts:` and `outputs:`".into()
    } else {
        format!("see README: Project file for the shape of `{FILE_NAME}`")
    }
}

/// Where the top-level or `outputs:` key `key` is written: serde_yaml gives positions for
/// what it cannot read, not for values it read but we refuse.
fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(n, line)| {
        let trimmed = line.trim_start();
        let col = line.len() - trimmed.len();
        trimmed
            .strip_prefix(key)
            .filter(|rest| rest.trim_start().starts_with(':'))
            .map(|_| (n + 1, col + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Project, Error> {
        Project::parse(Path::new("app/pactum.yaml"), text)
    }

    #[test]
    fn reads_outputs_and_resolves_paths_against_the_file() {
        let p = parse("pactum: 1\ncontracts: [contracts, extra/one.yaml]\noutputs:\n  rust: src/generated\n  proto: proto\n").unwrap();
        assert_eq!(
            p.contracts,
            [PathBuf::from("contracts"), PathBuf::from("extra/one.yaml")]
        );
        assert_eq!(p.root, PathBuf::from("app"));
        assert_eq!(
            p.resolve(&p.outputs[&Output::Rust]),
            PathBuf::from("app/src/generated")
        );
        assert_eq!(
            p.resolve(&p.outputs[&Output::Proto]),
            PathBuf::from("app/proto")
        );
        assert!(!p.deny_warnings);
    }

    #[test]
    fn a_scaffold_section_is_checked() {
        let base = "pactum: 1\ncontracts: [contracts]\noutputs: { rust: api/src/generated }\n";
        let p = parse(&format!(
            "{base}scaffold: {{ serves: orders, name: orders }}\n"
        ))
        .unwrap();
        assert_eq!(p.scaffold.unwrap().dir, PathBuf::from("service"));
        for (bad, says) in [
            (
                "scaffold: { serves: orders, name: orders, dir: ../elsewhere }",
                "not a directory inside",
            ),
            (
                "scaffold: { serves: orders, name: orders, dir: /srv/x }",
                "not a directory inside",
            ),
            (
                "scaffold: { serves: orders, name: 9orders }",
                "cannot be the crate's name",
            ),
            (
                "parts: { grpc: false }\nscaffold: { serves: orders, name: orders }",
                "every part",
            ),
        ] {
            let e = parse(&format!("{base}{bad}\n")).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {e}");
            assert!(e.position.is_some(), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_name_line_and_column() {
        let e =
            parse("pactum: 1\ncontracts: [c]\noutputs:\n  rust: src\n  grpc: proto\n").unwrap_err();
        assert_eq!(e.position, Some((5, 3)), "{e}");
        assert!(e.message.contains("unknown variant `grpc`"), "{e}");
        assert!(e.help.contains("`proto`"), "{e}");
        assert!(!e.message.contains("at line"), "{e}");

        let e = parse("pactum: 1\ncontracts: [c]\noutput:\n  rust: src\n").unwrap_err();
        assert_eq!(e.position, Some((3, 1)), "{e}");
        assert!(e.message.contains("unknown field `output`"), "{e}");

        let e = parse("pactum: 2\ncontracts: [c]\noutputs: { rust: src }\n").unwrap_err();
        assert_eq!(e.position, Some((1, 1)), "{e}");

        let e = parse("pactum: 1\ncontracts: []\noutputs: { rust: src }\n").unwrap_err();
        assert_eq!(e.position, Some((2, 1)), "{e}");

        let e =
            parse("pactum: 1\ncontracts: [c]\noutputs:\n  rust: out\n  docs: out\n").unwrap_err();
        assert_eq!(e.position, Some((5, 3)), "{e}");
        assert!(e.message.contains("share the directory `out`"), "{e}");

        let e = parse("pactum: 1\ncontracts: [c\n").unwrap_err();
        assert!(e.position.is_some(), "{e}");
        assert_eq!(
            e.to_string()
                .lines()
                .next()
                .unwrap()
                .split(": error")
                .next()
                .unwrap(),
            format!(
                "app/pactum.yaml:{}:{}",
                e.position.unwrap().0,
                e.position.unwrap().1
            )
        );
    }
}
