//! Diagnostics: every problem Pactum finds, with the place it was found and how to fix it.
//!
//! A run collects all diagnostics instead of stopping at the first, so a user fixes a contract
//! in one pass. Rendering (`path:line:col: error[CODE]: message` + `help:`) lives here too, so
//! the CLI, build.rs and the macros print the same text.

use std::fmt;
use std::path::{Path, PathBuf};

/// Index of a source file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A position in a contract file: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

/// The files a run read, so spans can be printed as paths.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<PathBuf>,
}

impl SourceMap {
    /// Registers a file and returns its id.
    pub fn add(&mut self, path: &Path) -> FileId {
        self.files.push(path.to_path_buf());
        FileId(self.files.len() as u32 - 1)
    }

    /// The path of a file.
    pub fn path(&self, id: FileId) -> &Path {
        self.files
            .get(id.0 as usize)
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("<unknown>"))
    }

    /// Every file read, in the order they were added.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(PathBuf::as_path)
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A lint: reported, fatal only when warnings are denied.
    Warning,
    /// The contract is refused.
    Error,
}

/// Declares [`Code`] from one table: variant and printed code, in documentation order.
macro_rules! codes {
    ($($variant:ident => $code:literal,)*) => {
        /// Stable diagnostic codes. Documented in `docs/contract-language.md#diagnostics`;
        /// tests assert them, so a code never changes meaning.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)] // each variant is documented by its code's row in the docs table
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The printed code, e.g. `E0210`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }
        }
    };
}

codes! {
    YamlSyntax => "E0001",
    Io => "E0002",
    TooLarge => "E0003",
    AliasUnsupported => "E0004",
    DuplicateKey => "E0005",
    UnknownKey => "E0100",
    WrongType => "E0101",
    MissingKey => "E0102",
    InvalidValue => "E0103",
    InvalidTypeExpr => "E0104",
    InvalidDuration => "E0105",
    InvalidVersion => "E0106",
    UnsupportedLanguage => "E0107",
    Unresolved => "E0200",
    DuplicateName => "E0201",
    CaseCollision => "E0202",
    InvalidIdentifier => "E0203",
    ReservedName => "E0204",
    GeneratedNameClash => "E0205",
    EventNotPastTense => "E0210",
    PathParamMissing => "E0220",
    SafeNotReadOnly => "E0221",
    RetryNotIdempotent => "E0222",
    InvalidRoute => "E0223",
    DuplicateRoute => "E0224",
    StreamingOverRest => "E0225",
    ParamNotScalar => "E0226",
    GrpcShape => "E0227",
    Pagination => "E0228",
    Resume => "E0229",
    EventKey => "E0230",
    ConsumeMismatch => "E0231",
    WireNumber => "E0240",
    InvalidConstraint => "E0241",
    InfiniteType => "E0250",
    NestingTooDeep => "E0251",
    InvalidUnion => "E0252",
    DuplicateContract => "E0260",
    CallBudget => "E0270",
    ContradictoryPolicy => "E0271",
    Auth => "E0280",
    VagueFieldName => "W0001",
    OperationNamedAsEvent => "W0002",
    EventNamedAsCommand => "W0003",
    ContractCycle => "W0004",
    CallsOverBudget => "W0005",
    RetryAmplification => "W0006",
    DeepCallChain => "W0007",
    ChattyCalls => "W0008",
    CallCycle => "W0009",
}

impl Code {
    /// Lints are warnings; everything else refuses the contract.
    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding: what is wrong, where, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Where; `None` only for problems with no file position (e.g. an unreadable path).
    pub span: Option<Span>,
    /// Path for span-less diagnostics about a file.
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl Diagnostic {
    /// A diagnostic at a position.
    pub fn new(
        code: Code,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            span: Some(span),
            path: None,
            message: message.into(),
            help: help.into(),
        }
    }

    /// A diagnostic about a whole file (no position).
    pub fn for_path(
        code: Code,
        path: &Path,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            span: None,
            path: Some(path.to_path_buf()),
            message: message.into(),
            help: help.into(),
        }
    }

    /// Error or warning, from the code.
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    /// Renders `path:line:col: error[CODE]: message` and the `help:` line.
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let location = match (self.span, &self.path) {
            (Some(span), _) => format!(
                "{}:{}:{}",
                sources.path(span.file).display(),
                span.line,
                span.col
            ),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => "pactum".to_string(),
        };
        let (label, paint) = match self.severity() {
            Severity::Error => ("error", "\x1b[1;31m"),
            Severity::Warning => ("warning", "\x1b[1;33m"),
        };
        if color {
            format!(
                "\x1b[1m{location}\x1b[0m: {paint}{label}[{code}]\x1b[0m: \x1b[1m{msg}\x1b[0m\n  \x1b[1;36mhelp\x1b[0m: {help}",
                code = self.code,
                msg = self.message,
                help = self.help
            )
        } else {
            format!(
                "{location}: {label}[{code}]: {msg}\n  help: {help}",
                code = self.code,
                msg = self.message,
                help = self.help
            )
        }
    }
}

/// All diagnostics of a run, in the order found.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Shorthand for [`Diagnostic::new`] + push.
    pub fn emit(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(Diagnostic::new(code, span, message, help));
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity() == Severity::Error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity() == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    /// All of them.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves another set in.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Sorted by file, then position, so output is stable whatever order checks ran in.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            (a.span, &a.path, a.code.as_str()).cmp(&(b.span, &b.path, b.code.as_str()))
        });
        self.items.dedup();
    }

    /// Renders every diagnostic, one blank line apart.
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&d.render(sources, color));
            out.push('\n');
        }
        out
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a small distance, for `did you mean ...?`.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1) + usize::from(c.len() > 6))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plain_with_position_and_help() {
        let mut sources = SourceMap::default();
        let f = sources.add(Path::new("contracts/orders.yaml"));
        let d = Diagnostic::new(
            Code::EventNotPastTense,
            Span {
                file: f,
                line: 12,
                col: 3,
            },
            "event `CreateOrder` does not read as a fact that happened",
            "did you mean `OrderCreated`?",
        );
        assert_eq!(
            d.render(&sources, false),
            "contracts/orders.yaml:12:3: error[E0210]: event `CreateOrder` does not read as a fact that happened\n  help: did you mean `OrderCreated`?"
        );
        assert!(d.render(&sources, true).contains("\x1b[1;31merror[E0210]"));
    }

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(closest("fileds", ["fields", "types"]), Some("fields"));
        assert_eq!(
            closest("idempotence", ["idempotency", "input"]),
            Some("idempotency")
        );
        assert_eq!(closest("zzz", ["fields", "types"]), None);
    }

    #[test]
    fn lint_codes_are_warnings() {
        assert_eq!(Code::VagueFieldName.severity(), Severity::Warning);
        assert_eq!(Code::Unresolved.severity(), Severity::Error);
    }
}
