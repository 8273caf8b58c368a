//! YAML text → a tree of [`Node`]s, each carrying the file:line:col it came from.
//!
//! This is the only module that touches a YAML library. We read yaml-rust2's event stream
//! (every event carries a marker) and build our own small tree, instead of deserializing with
//! serde_yaml: serde_yaml is unmaintained upstream and drops positions, and every later
//! diagnostic needs one. Swapping the parser means rewriting this file only.
//!
//! Hostile input is bounded here, before anything recurses over it: file size, nesting depth and
//! node count are capped, and anchors/aliases (the "billion laughs" vector) are refused.

use crate::diagnostics::{Code, Diagnostic, FileId, Span};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Largest contract file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of mappings/sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes accepted in one file.
pub const MAX_NODES: usize = 500_000;

/// A YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What it holds.
    pub kind: NodeKind,
    /// Where it starts.
    pub span: Span,
}

/// The shapes a YAML node can take.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// `~`, `null`, or an empty value.
    Null,
    /// A scalar. `quoted` scalars are always strings; plain ones may read as numbers or booleans.
    Scalar {
        /// The text, unescaped.
        text: String,
        /// Written in quotes or as a block scalar.
        quoted: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order. Keys are unique (duplicates are refused while loading).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A human name for the node's shape, for "expected X, found Y" messages.
    pub fn shape(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "nothing (null)",
            NodeKind::Scalar { quoted: true, .. } => "a string",
            NodeKind::Scalar { text, .. } => {
                if text.parse::<f64>().is_ok() {
                    "a number"
                } else if matches!(text.as_str(), "true" | "false") {
                    "a boolean"
                } else {
                    "a string"
                }
            }
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The scalar's text, when it is one.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

enum Frame {
    Seq(Span, Vec<Node>),
    Map(Span, Vec<(Node, Node)>, Option<Node>),
}

fn span_of(file: FileId, m: &Marker) -> Span {
    // yaml-rust2 0.13 reports 1-based lines and 0-based columns.
    Span {
        file,
        line: m.line().max(1) as u32,
        col: m.col() as u32 + 1,
    }
}

/// Parses one YAML document into a [`Node`]. Multi-document files are refused: one contract
/// per file keeps positions and ownership unambiguous.
pub fn load_str(file: FileId, text: &str) -> Result<Node, Diagnostic> {
    let at = |line, col| Span { file, line, col };
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::new(
            Code::TooLarge,
            at(1, 1),
            format!(
                "contract file is {} bytes; the limit is {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
            "split the contract: one service per file, one file per major version",
        ));
    }
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| {
            Diagnostic::new(
                Code::YamlSyntax,
                span_of(file, e.marker()),
                format!("YAML syntax error: {}", e.info()),
                "fix the YAML at this position (check indentation, quotes and `:` after keys)",
            )
        })?;
        let span = span_of(file, &marker);
        let finished: Option<Node> = match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::new(
                        Code::YamlSyntax,
                        span,
                        "a contract file holds one YAML document; found a second `---`",
                        "put each contract (service + major version) in its own file",
                    ));
                }
                None
            }
            Event::Alias(_) => {
                return Err(Diagnostic::new(
                    Code::AliasUnsupported,
                    span,
                    "YAML aliases (`*name`) are not supported in contracts",
                    "write the value out, or declare a named type and reference it by name",
                ))
            }
            Event::Scalar(text, style, anchor, _) => {
                if anchor > 0 {
                    return Err(anchor_error(span));
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                let kind =
                    if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                        NodeKind::Null
                    } else {
                        NodeKind::Scalar { text, quoted }
                    };
                Some(Node { kind, span })
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor > 0 {
                    return Err(anchor_error(span));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Diagnostic::new(
                        Code::TooLarge,
                        span,
                        format!("nesting is deeper than {MAX_DEPTH} levels"),
                        "flatten the structure: declare nested shapes as named types",
                    ));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(span, Vec::new())
                } else {
                    Frame::Map(span, Vec::new(), None)
                });
                None
            }
            // A block collection's marker lands after its first entry's start; the first
            // entry is where a reader sees the collection begin.
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(span, items)) => Some(Node {
                    span: earliest(span, items.first().map(|n| n.span)),
                    kind: NodeKind::Seq(items),
                }),
                _ => return Err(internal(span)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(span, entries, None)) => Some(Node {
                    span: earliest(span, entries.first().map(|(k, _)| k.span)),
                    kind: NodeKind::Map(entries),
                }),
                _ => return Err(internal(span)),
            },
        };
        let Some(node) = finished else { continue };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(Diagnostic::new(
                Code::TooLarge,
                node.span,
                format!("contract has more than {MAX_NODES} YAML nodes"),
                "split the contract into smaller services",
            ));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                None => {
                    match &node.kind {
                        NodeKind::Scalar { .. } | NodeKind::Null => {}
                        _ => {
                            return Err(Diagnostic::new(
                                Code::WrongType,
                                node.span,
                                "mapping keys must be plain names, not lists or mappings",
                                "use a simple name as the key",
                            ))
                        }
                    }
                    if let Some((first, _)) = entries
                        .iter()
                        .find(|(k, _)| k.as_scalar() == node.as_scalar())
                    {
                        return Err(Diagnostic::new(
                            Code::DuplicateKey,
                            node.span,
                            format!(
                                "key `{}` appears twice in this mapping (first at line {})",
                                node.as_scalar().unwrap_or("~"),
                                first.span.line
                            ),
                            "remove or rename one of them; YAML keys must be unique",
                        ));
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
    root.ok_or_else(|| {
        Diagnostic::new(
            Code::MissingKey,
            at(1, 1),
            "the file is empty",
            "start a contract with `pactum: 1`, `service:`, `version:` and `owner:`",
        )
    })
}

fn earliest(span: Span, first: Option<Span>) -> Span {
    match first {
        Some(f) if (f.line, f.col) < (span.line, span.col) => f,
        _ => span,
    }
}

fn anchor_error(span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::AliasUnsupported,
        span,
        "YAML anchors (`&name`) are not supported in contracts",
        "remove the anchor; declare shared shapes as named types instead",
    )
}

fn internal(span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::YamlSyntax,
        span,
        "unbalanced YAML structure",
        "check the indentation around this position",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Node, Diagnostic> {
        load_str(FileId(0), text)
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let node = load("a: 1\nb:\n  c: [x, 'y']\n").unwrap();
        let NodeKind::Map(entries) = &node.kind else {
            panic!("not a map")
        };
        assert_eq!((entries[0].0.span.line, entries[0].0.span.col), (1, 1));
        assert_eq!((entries[0].1.span.line, entries[0].1.span.col), (1, 4));
        let NodeKind::Map(inner) = &entries[1].1.kind else {
            panic!("not a map")
        };
        assert_eq!((inner[0].0.span.line, inner[0].0.span.col), (3, 3));
        let NodeKind::Seq(items) = &inner[0].1.kind else {
            panic!("not a seq")
        };
        assert_eq!((items[1].span.line, items[1].span.col), (3, 10));
        assert_eq!(
            items[1].kind,
            NodeKind::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn refuses_duplicate_keys_aliases_and_depth() {
        assert_eq!(load("a: 1\na: 2\n").unwrap_err().code, Code::DuplicateKey);
        assert_eq!(
            load("a: &x 1\nb: *x\n").unwrap_err().code,
            Code::AliasUnsupported
        );
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(load(&deep).unwrap_err().code, Code::TooLarge);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = load("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.code, Code::YamlSyntax);
        assert!(err.span.unwrap().line >= 1);
    }
}
