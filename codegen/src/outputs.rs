//! The one table of what Pactum can write. The CLI's flags, `pactum.yaml`'s `outputs:`
//! keys, the build-script [`Builder`](crate::Builder)'s targets and the snapshot tests all
//! name outputs through [`Output`], so adding one is a single new row here.

use crate::emit::{self, GeneratedFile};
use crate::ir::Ir;

/// One kind of output: a directory of files derived from the whole IR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "project", derive(serde::Deserialize))]
#[cfg_attr(feature = "project", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Output {
    /// Rust: types, errors, events, contract facts, REST, gRPC and messaging code; a
    /// `mod.rs` and `<service>/v<major>.rs` per contract (the builder writes its own
    /// `include!` layout into `OUT_DIR`).
    Rust,
    /// OpenAPI 3.1, `<service>.v<major>.yaml` per contract with REST operations.
    OpenApi,
    /// proto3, `<service>.v<major>.proto` per contract.
    Proto,
    /// AsyncAPI 3.0, `<service>.v<major>.asyncapi.yaml` per contract with events,
    /// consumers or webhooks.
    AsyncApi,
    /// Markdown: a page per contract, the topology as Mermaid and Graphviz DOT.
    Docs,
}

impl Output {
    /// Every output, in the order they are written and reported.
    pub const ALL: [Output; 5] = [
        Output::Rust,
        Output::OpenApi,
        Output::Proto,
        Output::AsyncApi,
        Output::Docs,
    ];

    /// The name used for it everywhere: `pactum.yaml`'s `outputs:` key and, for all but
    /// `rust` (which is `--out`), the CLI flag `--<key>`.
    pub fn key(self) -> &'static str {
        match self {
            Output::Rust => "rust",
            Output::OpenApi => "openapi",
            Output::Proto => "proto",
            Output::AsyncApi => "asyncapi",
            Output::Docs => "docs",
        }
    }

    /// The CLI flag that sets its directory.
    pub fn flag(self) -> &'static str {
        match self {
            Output::Rust => "--out",
            Output::OpenApi => "--openapi",
            Output::Proto => "--proto",
            Output::AsyncApi => "--asyncapi",
            Output::Docs => "--docs",
        }
    }

    /// Where a crate conventionally keeps it, relative to its root: the snapshot tests'
    /// layout, and a reasonable first `pactum.yaml`.
    pub fn conventional_dir(self) -> &'static str {
        match self {
            Output::Rust => "src/generated",
            other => other.key(),
        }
    }

    /// Emits its files, paths relative to its directory.
    pub fn files(self, ir: &Ir) -> Result<Vec<GeneratedFile>, String> {
        self.files_with(ir, emit::Parts::ALL)
    }

    /// [`files`](Self::files), the Rust output holding only `parts`.
    pub fn files_with(self, ir: &Ir, parts: emit::Parts) -> Result<Vec<GeneratedFile>, String> {
        match self {
            Output::Rust => emit::module_tree_with(ir, parts),
            Output::OpenApi => emit::openapi::documents(ir),
            Output::Proto => emit::proto::files(ir),
            Output::AsyncApi => emit::asyncapi::documents(ir),
            Output::Docs => emit::docs::pages(ir),
        }
    }
}
