//! [`Node`] tree → [`ast::Contract`]: shapes and keys only.
//!
//! Unknown keys (with "did you mean"), missing keys and wrong value types are reported here,
//! all of them, each at its own position. Meaning (references, names, rules) is checked later
//! by [`crate::validate`].

use crate::ast::*;
use crate::diagnostics::{closest, Code, Diagnostics, FileId, Span};
use crate::loader::{Node, NodeKind};
use crate::wire::{self, Member, Space};
use std::path::Path;

/// Decodes a loaded file. Returns `None` when the top level is too broken to continue; the
/// reasons are in `diags` either way.
pub fn decode_contract(
    file: FileId,
    path: &Path,
    root: &Node,
    diags: &mut Diagnostics,
) -> Option<Contract> {
    let mut d = Decoder { diags };
    let mut top = d.map(root, "a contract")?;
    let language = top.get("pactum").and_then(|n| d.u64(n, "`pactum`"));
    let service = top.get("service").and_then(|n| d.string(n, "`service`"));
    let version = top.get("version").and_then(|n| d.version(n));
    let owner = top.get("owner").and_then(|n| d.string(n, "`owner`"));
    let namespace = top
        .get("namespace")
        .and_then(|n| d.string(n, "`namespace`"));
    let description = top.get("description").and_then(|n| d.text(n));
    let types = top
        .get("types")
        .map(|n| d.named(n, "`types`", Decoder::type_decl))
        .unwrap_or_default();
    let errors = top
        .get("errors")
        .map(|n| d.named(n, "`errors`", Decoder::error_decl))
        .unwrap_or_default();
    let operations = top
        .get("operations")
        .map(|n| d.named(n, "`operations`", Decoder::operation_decl))
        .unwrap_or_default();
    let events = top
        .get("events")
        .map(|n| d.named(n, "`events`", Decoder::event_decl))
        .unwrap_or_default();
    let consumes = top
        .get("consumes")
        .map(|n| d.list(n, "`consumes`", Decoder::consume_decl))
        .unwrap_or_default();
    let calls = top
        .get("calls")
        .map(|n| d.list(n, "`calls`", Decoder::call_decl))
        .unwrap_or_default();
    let webhooks = top
        .get("webhooks")
        .map(|n| d.named(n, "`webhooks`", Decoder::webhook_decl))
        .unwrap_or_default();
    let resilience = top.get("resilience").and_then(|n| d.resilience(n));
    let auth = top.get("auth").and_then(|n| d.auth(n));
    let absent: Vec<bool> = ["pactum", "service", "version", "owner"]
        .iter()
        .map(|k| top.was_missing(k))
        .collect();
    top.finish(d.diags, TOP_KEYS, "the top level of a contract");
    let mut missing = |key: &str, example: &str| {
        d.diags.emit(
            Code::MissingKey,
            root.span,
            format!("contract has no `{key}`"),
            format!("add `{key}: {example}` at the top level"),
        )
    };
    let (Some(language), Some(service), Some(version), Some(owner)) = (
        language.clone(),
        service.clone(),
        version.clone(),
        owner.clone(),
    ) else {
        if language.is_none() && absent[0] {
            missing("pactum", "1");
        }
        if service.is_none() && absent[1] {
            missing("service", "orders");
        }
        if version.is_none() && absent[2] {
            missing("version", "1.0.0");
        }
        if owner.is_none() && absent[3] {
            missing("owner", "team-orders");
        }
        return None;
    };
    Some(Contract {
        file,
        path: path.to_path_buf(),
        language,
        service,
        version,
        owner,
        namespace,
        description,
        types,
        errors,
        operations,
        events,
        consumes,
        calls,
        webhooks,
        resilience,
        auth,
    })
}

/// Keys of a mapping, taken one by one; what is left at the end is unknown.
struct MapReader<'a> {
    entries: &'a [(Node, Node)],
    taken: Vec<bool>,
}

impl<'a> MapReader<'a> {
    fn get(&mut self, key: &str) -> Option<&'a Node> {
        let i = self
            .entries
            .iter()
            .position(|(k, _)| k.as_scalar() == Some(key))?;
        self.taken[i] = true;
        Some(&self.entries[i].1)
    }

    fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(k, _)| k.span)
    }

    fn was_missing(&self, key: &str) -> bool {
        self.key_span(key).is_none()
    }

    fn finish(self, diags: &mut Diagnostics, allowed: &[&str], context: &str) {
        for ((key, _), taken) in self.entries.iter().zip(&self.taken) {
            if *taken {
                continue;
            }
            let name = key.as_scalar().unwrap_or("~");
            let help = match closest(name, allowed.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("allowed keys here: {}", allowed.join(", ")),
            };
            diags.emit(
                Code::UnknownKey,
                key.span,
                format!("unknown key `{name}` in {context}"),
                help,
            );
        }
    }
}

struct Decoder<'d> {
    diags: &'d mut Diagnostics,
}

impl Decoder<'_> {
    fn wrong(&mut self, node: &Node, what: &str, expected: &str, help: &str) {
        self.diags.emit(
            Code::WrongType,
            node.span,
            format!("{what} must be {expected}, found {}", node.shape()),
            help.to_string(),
        );
    }

    fn map<'a>(&mut self, node: &'a Node, what: &str) -> Option<MapReader<'a>> {
        match &node.kind {
            NodeKind::Map(entries) => Some(MapReader {
                entries,
                taken: vec![false; entries.len()],
            }),
            _ => {
                self.wrong(
                    node,
                    what,
                    "a mapping",
                    "write `key: value` pairs, one per line",
                );
                None
            }
        }
    }

    /// `s` parsed with `parse`, once; a value that means nothing is reported at its span
    /// under `code` and kept as [`Parsed::Invalid`], so the rest of its declaration is still
    /// checked.
    fn parsed<T>(
        &mut self,
        s: Spanned<String>,
        code: Code,
        parse: impl FnOnce(&str) -> Result<T, (String, String)>,
    ) -> Spanned<Parsed<T>> {
        match parse(&s.value) {
            Ok(v) => Spanned::new(Parsed::Ok(v), s.span),
            Err((message, help)) => {
                self.diags.emit(code, s.span, message, help);
                Spanned::new(Parsed::Invalid, s.span)
            }
        }
    }

    /// A string key parsed with `parse`: absent, or typed.
    fn parsed_key<T>(
        &mut self,
        node: Option<&Node>,
        what: &str,
        code: Code,
        parse: impl FnOnce(&str) -> Result<T, (String, String)>,
    ) -> Option<Spanned<Parsed<T>>> {
        let s = self.string(node?, what)?;
        Some(self.parsed(s, code, parse))
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match &node.kind {
            NodeKind::Scalar { text, .. } => Some(Spanned::new(text.clone(), node.span)),
            _ => {
                self.wrong(node, what, "a string", "write a single value on this line");
                None
            }
        }
    }

    fn text(&mut self, node: &Node) -> Option<String> {
        self.string(node, "`description`").map(|s| s.value)
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<Spanned<bool>> {
        match &node.kind {
            NodeKind::Scalar {
                text,
                quoted: false,
            } if text == "true" || text == "false" => Some(Spanned::new(text == "true", node.span)),
            _ => {
                self.wrong(
                    node,
                    what,
                    "`true` or `false`",
                    "write `true` or `false` without quotes",
                );
                None
            }
        }
    }

    fn u64(&mut self, node: &Node, what: &str) -> Option<Spanned<u64>> {
        match &node.kind {
            NodeKind::Scalar {
                text,
                quoted: false,
            } => match text.parse::<u64>() {
                Ok(v) => Some(Spanned::new(v, node.span)),
                Err(_) => {
                    self.wrong(node, what, "a whole number ≥ 0", "write a number like `1`");
                    None
                }
            },
            _ => {
                self.wrong(
                    node,
                    what,
                    "a whole number ≥ 0",
                    "write a number like `1`, without quotes",
                );
                None
            }
        }
    }

    fn number(&mut self, node: &Node, what: &str) -> Option<Spanned<Number>> {
        if let NodeKind::Scalar {
            text,
            quoted: false,
        } = &node.kind
        {
            if let Ok(i) = text.parse::<i128>() {
                return Some(Spanned::new(Number::Int(i), node.span));
            }
            if let Ok(f) = text.parse::<f64>() {
                if f.is_finite() {
                    return Some(Spanned::new(Number::Float(f), node.span));
                }
            }
        }
        self.wrong(
            node,
            what,
            "a number",
            "write a finite number like `1` or `0.5`, without quotes",
        );
        None
    }

    fn version(&mut self, node: &Node) -> Option<Spanned<Version>> {
        let s = self.string(node, "`version`")?;
        match Version::parse(&s.value) {
            Some(v) => Some(Spanned::new(v, s.span)),
            None => {
                self.diags.emit(
                    Code::InvalidVersion,
                    s.span,
                    format!("`{}` is not a semantic version", s.value),
                    "write MAJOR.MINOR.PATCH, e.g. `version: 1.2.0`",
                );
                None
            }
        }
    }

    fn type_expr(&mut self, node: &Node, what: &str) -> Option<Spanned<TypeExpr>> {
        let s = self.string(node, what)?;
        match TypeExpr::parse(&s.value) {
            Ok(t) => Some(Spanned::new(t, s.span)),
            Err(msg) => {
                self.diags.emit(
                    Code::InvalidTypeExpr,
                    s.span,
                    format!("invalid type `{}`: {msg}", s.value),
                    "write a primitive (string, u32, uuid, …), a type name, `list<T>`, `map<string, T>` or `T?`",
                );
                None
            }
        }
    }

    fn deprecated(&mut self, node: Option<&Node>) -> Deprecation {
        self.string(node?, "`deprecated`")
    }

    /// A mapping of `Name: body` entries.
    fn named<T>(
        &mut self,
        node: &Node,
        what: &str,
        each: fn(&mut Self, Spanned<String>, &Node) -> Option<T>,
    ) -> Vec<T> {
        let NodeKind::Map(entries) = &node.kind else {
            if node.kind != NodeKind::Null {
                self.wrong(
                    node,
                    what,
                    "a mapping of names",
                    "write `Name: …` entries under it",
                );
            }
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|(k, v)| {
                let name = Spanned::new(k.as_scalar().unwrap_or("~").to_string(), k.span);
                each(self, name, v)
            })
            .collect()
    }

    fn list<T>(
        &mut self,
        node: &Node,
        what: &str,
        each: fn(&mut Self, &Node) -> Option<T>,
    ) -> Vec<T> {
        match &node.kind {
            NodeKind::Seq(items) => items.iter().filter_map(|n| each(self, n)).collect(),
            NodeKind::Null => Vec::new(),
            _ => {
                self.wrong(node, what, "a list", "write one `- …` entry per line");
                Vec::new()
            }
        }
    }

    fn numbers(&mut self, node: Option<&Node>, what: &str) -> Vec<Spanned<u64>> {
        let Some(node) = node else { return Vec::new() };
        self.list(node, what, |d, n| d.u64(n, "a reserved number"))
    }

    /// A `fields:` map, numbered with no reserved numbers (events, errors, webhooks, inline
    /// inputs and outputs).
    fn fields(&mut self, node: &Node) -> Vec<FieldDecl> {
        let mut fields = self.named(node, "`fields`", Decoder::field_decl);
        self.number_fields(&mut fields, &[]);
        fields
    }

    /// Gives every field its wire number (written, or positional around written and
    /// reserved ones), once; collisions and bad numbers are reported here.
    fn number_fields(&mut self, fields: &mut [FieldDecl], reserved: &[Spanned<u64>]) {
        self.assign_numbers(fields, reserved, Space::Fields);
    }

    /// [`number_fields`](Self::number_fields) for enum values (0 is `*_UNSPECIFIED`).
    fn number_values(&mut self, values: &mut [EnumValueDecl], reserved: &[Spanned<u64>]) {
        self.assign_numbers(values, reserved, Space::EnumValues);
    }

    /// [`number_fields`](Self::number_fields) for union variants: the fields of the
    /// protobuf `oneof`, so the same number space as message fields.
    fn number_variants(&mut self, variants: &mut [VariantDecl], reserved: &[Spanned<u64>]) {
        self.assign_numbers(variants, reserved, Space::Fields);
    }

    fn assign_numbers<T: Numbered>(
        &mut self,
        members: &mut [T],
        reserved: &[Spanned<u64>],
        space: Space,
    ) {
        let listed: Vec<Member<'_>> = members
            .iter()
            .map(|m| {
                let (name, number) = m.numbering();
                Member {
                    name: &name.value,
                    explicit: number.map(|n| (n.value, n.span)),
                    span: name.span,
                }
            })
            .collect();
        let reserved: Vec<(u64, Span)> = reserved.iter().map(|r| (r.value, r.span)).collect();
        let (numbers, diags) = wire::assign(&listed, &reserved, space);
        for d in diags {
            self.diags.push(d);
        }
        for (m, n) in members.iter_mut().zip(numbers) {
            m.set_wire(n);
        }
    }

    /// A union variant: `card: CardDetails`, or `card: { type: CardDetails, number: 3, … }`.
    fn variant_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<VariantDecl> {
        if let NodeKind::Scalar { .. } = node.kind {
            let ty = self.type_expr(node, "a variant type")?;
            return Some(VariantDecl {
                wire: 0,
                name,
                ty,
                description: None,
                deprecated: None,
                number: None,
            });
        }
        let mut m = self.map(node, "a union variant")?;
        let ty = m.get("type").and_then(|n| self.type_expr(n, "`type`"));
        let missing = m.was_missing("type");
        let description = m.get("description").and_then(|n| self.text(n));
        let deprecated = self.deprecated(m.get("deprecated"));
        let number = m.get("number").and_then(|n| self.u64(n, "`number`"));
        m.finish(self.diags, VARIANT_KEYS, "a union variant");
        if missing {
            self.diags.emit(
                Code::MissingKey,
                node.span,
                format!("variant `{}` has no `type`", name.value),
                "write `type: CardDetails` (a struct declared under `types:`)",
            );
        }
        Some(VariantDecl {
            wire: 0,
            name,
            ty: ty?,
            description,
            deprecated,
            number,
        })
    }

    fn constraints(&mut self, m: &mut MapReader<'_>) -> Constraints {
        Constraints {
            min: m.get("min").and_then(|n| self.number(n, "`min`")),
            max: m.get("max").and_then(|n| self.number(n, "`max`")),
            min_len: m.get("min_len").and_then(|n| self.u64(n, "`min_len`")),
            max_len: m.get("max_len").and_then(|n| self.u64(n, "`max_len`")),
            pattern: m.get("pattern").and_then(|n| self.string(n, "`pattern`")),
            min_items: m.get("min_items").and_then(|n| self.u64(n, "`min_items`")),
            max_items: m.get("max_items").and_then(|n| self.u64(n, "`max_items`")),
        }
    }

    fn field_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<FieldDecl> {
        if let NodeKind::Scalar { .. } = node.kind {
            let ty = self.type_expr(node, "a field type")?;
            return Some(FieldDecl {
                wire: 0,
                name,
                ty,
                description: None,
                deprecated: None,
                constraints: Constraints::default(),
                number: None,
            });
        }
        let mut m = self.map(node, "a field")?;
        let ty = match m.get("type") {
            Some(n) => self.type_expr(n, "`type`"),
            None => {
                self.diags.emit(
                    Code::MissingKey,
                    node.span,
                    format!("field `{}` has no `type`", name.value),
                    "add `type: string` (or another type) to the field",
                );
                None
            }
        };
        let optional = m.get("optional").and_then(|n| self.bool(n, "`optional`"));
        let description = m.get("description").and_then(|n| self.text(n));
        let deprecated = self.deprecated(m.get("deprecated"));
        let number = m.get("number").and_then(|n| self.u64(n, "`number`"));
        let constraints = self.constraints(&mut m);
        m.finish(self.diags, FIELD_KEYS, "a field");
        let mut ty = ty?;
        if optional.is_some_and(|o| o.value) && !matches!(ty.value, TypeExpr::Optional(_)) {
            ty.value = TypeExpr::Optional(Box::new(ty.value));
        }
        Some(FieldDecl {
            wire: 0,
            name,
            ty,
            description,
            deprecated,
            constraints,
            number,
        })
    }

    fn type_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<TypeDecl> {
        if let NodeKind::Scalar { .. } = node.kind {
            // `OrderId: uuid` — a newtype shorthand.
            let ty = self.type_expr(node, "a type")?;
            return Some(TypeDecl {
                name,
                description: None,
                deprecated: None,
                body: TypeBody::Newtype {
                    ty,
                    constraints: Constraints::default(),
                },
            });
        }
        let mut m = self.map(node, "a type declaration")?;
        let description = m.get("description").and_then(|n| self.text(n));
        let deprecated = self.deprecated(m.get("deprecated"));
        let shapes: Vec<&str> = ["fields", "enum", "oneof", "type"]
            .into_iter()
            .filter(|k| m.key_span(k).is_some())
            .collect();
        let has_unknown_key = m.entries.iter().any(|(k, _)| {
            ![
                "fields",
                "enum",
                "oneof",
                "tag",
                "type",
                "description",
                "deprecated",
                "reserved",
            ]
            .contains(&k.as_scalar().unwrap_or(""))
                && !NEWTYPE_KEYS.contains(&k.as_scalar().unwrap_or(""))
        });
        if shapes.is_empty() && has_unknown_key {
            // A misspelt shape key (`fileds:`) is already reported as unknown, with its fix.
            m.finish(self.diags, STRUCT_KEYS, "a type declaration");
            return None;
        }
        if shapes.len() != 1 {
            let (span, msg) = match shapes.len() {
                0 => (node.span, format!("type `{}` has no shape", name.value)),
                _ => (
                    m.key_span(shapes[1]).unwrap_or(node.span),
                    format!(
                        "type `{}` has both `{}` and `{}`",
                        name.value, shapes[0], shapes[1]
                    ),
                ),
            };
            self.diags.emit(
                Code::MissingKey,
                span,
                msg,
                "give exactly one of `fields:` (struct), `enum:` (list of values), `oneof:` (tagged union) or `type:` (newtype)",
            );
            m.finish(self.diags, &[], "a type declaration");
            return None;
        }
        let reserved_node = m.get("reserved");
        let body = match shapes[0] {
            "fields" => {
                let mut fields = m
                    .get("fields")
                    .map(|n| self.named(n, "`fields`", Decoder::field_decl))
                    .unwrap_or_default();
                let reserved = self.numbers(reserved_node, "`reserved`");
                self.number_fields(&mut fields, &reserved);
                m.finish(self.diags, STRUCT_KEYS, "a struct type");
                TypeBody::Struct { fields, reserved }
            }
            "enum" => {
                let mut values = m
                    .get("enum")
                    .map(|n| self.list(n, "`enum`", Decoder::enum_value))
                    .unwrap_or_default();
                let reserved = self.numbers(reserved_node, "`reserved`");
                self.number_values(&mut values, &reserved);
                m.finish(self.diags, ENUM_KEYS, "an enum type");
                TypeBody::Enum { values, reserved }
            }
            "oneof" => {
                let mut variants = m
                    .get("oneof")
                    .map(|n| self.named(n, "`oneof`", Decoder::variant_decl))
                    .unwrap_or_default();
                let tag = m.get("tag").and_then(|n| self.string(n, "`tag`"));
                let reserved = self.numbers(reserved_node, "`reserved`");
                self.number_variants(&mut variants, &reserved);
                m.finish(self.diags, UNION_KEYS, "a tagged union");
                TypeBody::Union {
                    variants,
                    tag,
                    reserved,
                }
            }
            _ => {
                let ty = m.get("type").and_then(|n| self.type_expr(n, "`type`"));
                let constraints = self.constraints(&mut m);
                if let Some(r) = reserved_node {
                    self.diags.emit(
                        Code::UnknownKey,
                        r.span,
                        "`reserved` applies to structs, enums and unions, not newtypes",
                        "remove `reserved:` from this type",
                    );
                }
                m.finish(self.diags, NEWTYPE_KEYS, "a newtype");
                TypeBody::Newtype {
                    ty: ty?,
                    constraints,
                }
            }
        };
        Some(TypeDecl {
            name,
            description,
            deprecated,
            body,
        })
    }

    fn enum_value(&mut self, node: &Node) -> Option<EnumValueDecl> {
        if let NodeKind::Scalar { .. } = node.kind {
            return Some(EnumValueDecl {
                wire: 0,
                name: self.string(node, "an enum value")?,
                description: None,
                number: None,
                deprecated: None,
            });
        }
        let mut m = self.map(node, "an enum value")?;
        let name = m.get("value").and_then(|n| self.string(n, "`value`"));
        let description = m.get("description").and_then(|n| self.text(n));
        let number = m.get("number").and_then(|n| self.u64(n, "`number`"));
        let deprecated = self.deprecated(m.get("deprecated"));
        m.finish(
            self.diags,
            &["value", "description", "number", "deprecated"],
            "an enum value",
        );
        if name.is_none() && m_missing(node, "value") {
            self.diags.emit(
                Code::MissingKey,
                node.span,
                "enum value has no `value`",
                "write `- value: pending` (or just `- pending`)",
            );
        }
        Some(EnumValueDecl {
            wire: 0,
            name: name?,
            description,
            number,
            deprecated,
        })
    }

    fn error_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<ErrorDecl> {
        let mut m = self.map(node, "an error declaration")?;
        let status = self.parsed_key(m.get("status"), "`status`", Code::InvalidValue, |s| {
            ErrorStatus::from_name(s).ok_or_else(|| {
                let names: Vec<&str> = ErrorStatus::ALL.iter().map(|(n, _)| *n).collect();
                (
                    format!("unknown error status `{s}`"),
                    match closest(s, names.iter().copied()) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!("use one of: {}", names.join(", ")),
                    },
                )
            })
        });
        let description = m.get("description").and_then(|n| self.text(n));
        let fields = m.get("fields").map(|n| self.fields(n)).unwrap_or_default();
        let missing = m.was_missing("status");
        m.finish(self.diags, ERROR_KEYS, "an error");
        if missing {
            self.diags.emit(
                Code::MissingKey,
                node.span,
                format!("error `{}` has no `status`", name.value),
                "add `status: not_found` (or invalid_argument, conflict, …)",
            );
        }
        Some(ErrorDecl {
            name,
            status: status?,
            description,
            fields,
        })
    }

    fn payload(&mut self, node: &Node, what: &str) -> Option<Payload> {
        match &node.kind {
            NodeKind::Map(_) => Some(Payload::Inline(self.fields(node), node.span)),
            _ => self.type_expr(node, what).map(Payload::Named),
        }
    }

    fn retry(&mut self, node: &Node) -> Option<RetryDecl> {
        let mut m = self.map(node, "`retry`")?;
        let attempts = m.get("attempts").and_then(|n| self.u64(n, "`attempts`"));
        let backoff = m.get("backoff").and_then(|n| {
            let s = self.string(n, "`backoff`")?;
            let parsed = s
                .value
                .split_once("..")
                .ok_or_else(|| "expected `initial..max`".to_string())
                .and_then(|(a, b)| Ok((parse_duration(a)?, parse_duration(b)?)));
            match parsed {
                Ok(pair) => Some(Spanned::new(pair, s.span)),
                Err(msg) => {
                    self.diags.emit(
                        Code::InvalidDuration,
                        s.span,
                        format!("invalid backoff `{}`: {msg}", s.value),
                        "write `initial..max`, e.g. `backoff: 50ms..1s`",
                    );
                    None
                }
            }
        });
        let jitter = self.parsed_key(
            m.get("jitter"),
            "`jitter`",
            Code::InvalidValue,
            Jitter::parse,
        );
        let per_try = self.parsed_key(m.get("per_try"), "`per_try`", Code::InvalidDuration, |s| {
            duration(s).map_err(|msg| {
                (
                    format!("invalid per_try `{s}`: {msg}"),
                    "write a duration such as `400ms`".into(),
                )
            })
        });
        let missing = m.was_missing("attempts");
        m.finish(self.diags, RETRY_KEYS, "`retry`");
        if missing {
            self.diags.emit(
                Code::MissingKey,
                node.span,
                "`retry` has no `attempts`",
                "add `attempts: 3` (total tries, including the first)",
            );
        }
        Some(RetryDecl {
            span: node.span,
            attempts: attempts?,
            backoff,
            jitter,
            per_try,
        })
    }

    fn operation_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<OperationDecl> {
        let mut m = self.map(node, "an operation")?;
        let op = OperationDecl {
            description: m.get("description").and_then(|n| self.text(n)),
            deprecated: self.deprecated(m.get("deprecated")),
            input: m.get("input").and_then(|n| self.payload(n, "`input`")),
            output: m.get("output").and_then(|n| self.payload(n, "`output`")),
            errors: m
                .get("errors")
                .map(|n| self.list(n, "`errors`", |d, n| d.string(n, "an error name")))
                .unwrap_or_default(),
            rest: self.parsed_key(m.get("rest"), "`rest`", Code::InvalidRoute, parse_route),
            grpc: m.get("grpc").and_then(|n| self.bool(n, "`grpc`")),
            deadline: self.parsed_key(
                m.get("deadline"),
                "`deadline`",
                Code::InvalidDuration,
                |s| {
                    duration(s).map_err(|msg| {
                        (
                            format!("invalid deadline `{s}`: {msg}"),
                            "write a duration such as `300ms`, `2s` or `1m30s`".into(),
                        )
                    })
                },
            ),
            safe: m.get("safe").and_then(|n| self.bool(n, "`safe`")),
            idempotency: self.parsed_key(
                m.get("idempotency"),
                "`idempotency`",
                Code::InvalidValue,
                Idempotency::parse,
            ),
            retry: m.get("retry").and_then(|n| self.retry(n)),
            streaming: self.parsed_key(
                m.get("streaming"),
                "`streaming`",
                Code::InvalidValue,
                Streaming::parse,
            ),
            calls: m
                .get("calls")
                .map(|n| self.list(n, "`calls`", Decoder::call_step))
                .unwrap_or_default(),
            resilience: m.get("resilience").and_then(|n| self.resilience(n)),
            paginate: m.get("paginate").and_then(|n| self.paginate(n)),
            resume: m.get("resume").and_then(|n| self.resume(n)),
            auth: m.get("auth").and_then(|n| self.operation_auth(n)),
            name,
        };
        m.finish(self.diags, OPERATION_KEYS, "an operation");
        Some(op)
    }

    /// `auth: { schemes, default }` at the top level.
    fn auth(&mut self, node: &Node) -> Option<AuthDecl> {
        let mut m = self.map(node, "`auth`")?;
        let schemes = m
            .get("schemes")
            .map(|n| self.named(n, "`schemes`", Decoder::scheme_decl))
            .unwrap_or_default();
        let default = m
            .get("default")
            .map(|n| self.list(n, "`default`", |d, n| d.string(n, "a scheme name")))
            .unwrap_or_default();
        let no_schemes = m.was_missing("schemes");
        m.finish(self.diags, AUTH_KEYS, "`auth`");
        if no_schemes {
            self.diags.emit(
                Code::MissingKey,
                node.span,
                "`auth` has no `schemes`",
                "declare them: `schemes: { staff: { type: bearer } }`",
            );
        }
        Some(AuthDecl {
            span: node.span,
            schemes,
            default,
        })
    }

    fn scheme_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<SchemeDecl> {
        let mut m = self.map(node, "a scheme")?;
        let kind = m.get("type").and_then(|n| self.string(n, "`type`"));
        let header = m.get("header").and_then(|n| self.string(n, "`header`"));
        let description = m.get("description").and_then(|n| self.text(n));
        m.finish(self.diags, SCHEME_KEYS, "a scheme");
        let Some(kind) = kind else {
            self.diags.emit(
                Code::MissingKey,
                node.span,
                format!("scheme `{}` has no `type`", name.value),
                "write `type: bearer` (a JWT), `type: api_key` or `type: mtls`",
            );
            return None;
        };
        Some(SchemeDecl {
            name,
            kind,
            header,
            description,
        })
    }

    /// An operation's `auth: none | [scheme…]`.
    fn operation_auth(&mut self, node: &Node) -> Option<Spanned<OperationAuth>> {
        if let NodeKind::Scalar { text, .. } = &node.kind {
            if text == "none" {
                return Some(Spanned::new(OperationAuth::Public, node.span));
            }
            // One scheme, unbracketed.
            return Some(Spanned::new(
                OperationAuth::Schemes(vec![Spanned::new(text.clone(), node.span)]),
                node.span,
            ));
        }
        let names = self.list(node, "`auth`", |d, n| d.string(n, "a scheme name"));
        Some(Spanned::new(OperationAuth::Schemes(names), node.span))
    }

    /// `resume: { id, after }`.
    fn resume(&mut self, node: &Node) -> Option<ResumeDecl> {
        let mut m = self.map(node, "`resume`")?;
        let decl = ResumeDecl {
            span: node.span,
            id: m.get("id").and_then(|n| self.string(n, "`id`")),
            after: m.get("after").and_then(|n| self.string(n, "`after`")),
        };
        let missing: Vec<&str> = ["id", "after"]
            .into_iter()
            .filter(|k| m.was_missing(k))
            .collect();
        m.finish(self.diags, RESUME_KEYS, "`resume`");
        if !missing.is_empty() {
            self.diags.emit(
                Code::MissingKey,
                node.span,
                format!("`resume` has no `{}`", missing.join("` or `")),
                "write `resume: { id: <output field>, after: <input field> }`",
            );
            return None;
        }
        Some(decl)
    }

    /// `paginate: true | false`, or the mapping naming the fields.
    fn paginate(&mut self, node: &Node) -> Option<PaginateDecl> {
        if let NodeKind::Scalar { .. } = node.kind {
            let on = self.bool(node, "`paginate`")?;
            return on.value.then_some(PaginateDecl {
                span: node.span,
                cursor: None,
                next: None,
                items: None,
                size: None,
            });
        }
        let mut m = self.map(node, "`paginate`")?;
        let decl = PaginateDecl {
            span: node.span,
            cursor: m.get("cursor").and_then(|n| self.string(n, "`cursor`")),
            next: m.get("next").and_then(|n| self.string(n, "`next`")),
            items: m.get("items").and_then(|n| self.string(n, "`items`")),
            size: m.get("size").and_then(|n| self.string(n, "`size`")),
        };
        m.finish(self.diags, PAGINATE_KEYS, "`paginate`");
        Some(decl)
    }

    fn event_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<EventDecl> {
        let mut m = self.map(node, "an event")?;
        let description = m.get("description").and_then(|n| self.text(n));
        let deprecated = self.deprecated(m.get("deprecated"));
        let version = m.get("version").and_then(|n| self.u64(n, "`version`"));
        let key = m.get("key").and_then(|n| self.string(n, "`key`"));
        let delivery = self.parsed_key(m.get("delivery"), "`delivery`", Code::InvalidValue, |s| {
            Delivery::parse(s).ok_or_else(|| {
                (
                    format!("unknown delivery `{s}`"),
                    "use `stream` (ordered, replayable), `pubsub` (every group) or `queue` (one worker)".into(),
                )
            })
        });
        let deadline = self.parsed_key(
            m.get("deadline"),
            "`deadline`",
            Code::InvalidDuration,
            |s| {
                if s == "inherit" {
                    return Ok(EventDeadlineDecl::Inherit);
                }
                duration(s).map(EventDeadlineDecl::After).map_err(|msg| {
                    (
                        format!("invalid `deadline` `{s}`: {msg}"),
                        EVENT_DEADLINE_HELP.into(),
                    )
                })
            },
        );
        let fields = m.get("fields").map(|n| self.fields(n)).unwrap_or_default();
        let (no_version, no_delivery) = (m.was_missing("version"), m.was_missing("delivery"));
        m.finish(self.diags, EVENT_KEYS, "an event");
        if no_version {
            self.diags.emit(
                Code::MissingKey,
                name.span,
                format!("event `{}` has no `version`", name.value),
                "add `version: 1`; bump it when the event's schema changes incompatibly",
            );
        }
        if no_delivery {
            self.diags.emit(
                Code::MissingKey,
                name.span,
                format!("event `{}` has no `delivery`", name.value),
                "add `delivery: stream` (or `pubsub` or `queue`)",
            );
        }
        Some(EventDecl {
            name,
            description,
            deprecated,
            version: version?,
            key,
            delivery: delivery?,
            deadline,
            fields,
        })
    }

    fn consume_decl(&mut self, node: &Node) -> Option<ConsumeDecl> {
        let mut m = self.map(node, "a `consumes` entry")?;
        let event = m.get("event").and_then(|n| self.string(n, "`event`"));
        let c = ConsumeDecl {
            span: node.span,
            delivery: self.parsed_key(m.get("delivery"), "`delivery`", Code::InvalidValue, |s| {
                Delivery::parse(s).ok_or_else(|| {
                    (
                        format!("unknown delivery `{s}`"),
                        "use `stream`, `pubsub` or `queue`".into(),
                    )
                })
            }),
            group: m.get("group").and_then(|n| self.string(n, "`group`")),
            retry: m.get("retry").and_then(|n| self.retry(n)),
            dead_letter: m
                .get("dead_letter")
                .and_then(|n| self.bool(n, "`dead_letter`")),
            budget: self.parsed_key(m.get("budget"), "`budget`", Code::InvalidDuration, |s| {
                duration(s)
                    .map_err(|msg| (format!("invalid `budget` `{s}`: {msg}"), BUDGET_HELP.into()))
            }),
            description: m.get("description").and_then(|n| self.text(n)),
            event: match event {
                Some(e) => e,
                None => {
                    if m.was_missing("event") {
                        self.diags.emit(
                            Code::MissingKey,
                            node.span,
                            "`consumes` entry has no `event`",
                            "add `event: payments.PaymentCaptured@1`",
                        );
                    }
                    m.finish(self.diags, CONSUME_KEYS, "a `consumes` entry");
                    return None;
                }
            },
        };
        m.finish(self.diags, CONSUME_KEYS, "a `consumes` entry");
        Some(c)
    }

    /// `resilience: { retry_budget: { ratio, min_per_second }, breaker: { failures,
    /// cooldown }, concurrency }`.
    fn resilience(&mut self, node: &Node) -> Option<ResilienceDecl> {
        let mut m = self.map(node, "`resilience`")?;
        let (mut ratio, mut min_per_second) = (None, None);
        if let Some(b) = m.get("retry_budget") {
            if let Some(mut b) = self.map(b, "`retry_budget`") {
                ratio = b.get("ratio").and_then(|n| self.number(n, "`ratio`"));
                min_per_second = b
                    .get("min_per_second")
                    .and_then(|n| self.u64(n, "`min_per_second`"));
                b.finish(self.diags, RETRY_BUDGET_KEYS, "`retry_budget`");
            }
        }
        let (mut failures, mut cooldown) = (None, None);
        if let Some(b) = m.get("breaker") {
            if let Some(mut b) = self.map(b, "`breaker`") {
                failures = b.get("failures").and_then(|n| self.u64(n, "`failures`"));
                cooldown = self.parsed_key(
                    b.get("cooldown"),
                    "`cooldown`",
                    Code::InvalidDuration,
                    |s| {
                        duration(s).map_err(|msg| {
                            (
                                format!("invalid cooldown `{s}`: {msg}"),
                                "write a duration such as `5s`".into(),
                            )
                        })
                    },
                );
                b.finish(self.diags, BREAKER_KEYS, "`breaker`");
            }
        }
        let concurrency = m
            .get("concurrency")
            .and_then(|n| self.u64(n, "`concurrency`"));
        m.finish(self.diags, RESILIENCE_KEYS, "`resilience`");
        Some(ResilienceDecl {
            span: node.span,
            ratio,
            min_per_second,
            failures,
            cooldown,
            concurrency,
        })
    }

    /// One step of an operation's `calls:`: a reference, or a list of references made at the
    /// same time.
    fn call_step(&mut self, node: &Node) -> Option<CallStepDecl> {
        let operations = match &node.kind {
            NodeKind::Seq(_) => {
                let ops = self.list(node, "a step of `calls`", |d, n| {
                    d.string(n, "an operation reference")
                });
                if ops.is_empty() {
                    self.diags.emit(
                        Code::InvalidValue,
                        node.span,
                        "an empty step in `calls`",
                        "remove `[]`, or list the calls made at the same time, e.g. `[pricing.QuoteCart, inventory.CheckStock]`",
                    );
                    return None;
                }
                ops
            }
            _ => vec![self.string(node, "an operation reference")?],
        };
        Some(CallStepDecl {
            span: node.span,
            operations,
        })
    }

    fn call_decl(&mut self, node: &Node) -> Option<CallDecl> {
        let mut m = self.map(node, "a `calls` entry")?;
        let operation = m
            .get("operation")
            .and_then(|n| self.string(n, "`operation`"));
        let via = self.parsed_key(m.get("via"), "`via`", Code::InvalidValue, Via::parse);
        let description = m.get("description").and_then(|n| self.text(n));
        let missing = m.was_missing("operation");
        m.finish(self.diags, CALL_KEYS, "a `calls` entry");
        let Some(operation) = operation else {
            if missing {
                self.diags.emit(
                    Code::MissingKey,
                    node.span,
                    "`calls` entry has no `operation`",
                    "add `operation: pricing.QuoteCart`",
                );
            }
            return None;
        };
        Some(CallDecl {
            span: node.span,
            operation,
            via,
            description,
        })
    }

    fn webhook_decl(&mut self, name: Spanned<String>, node: &Node) -> Option<WebhookDecl> {
        let mut m = self.map(node, "a webhook")?;
        let w = WebhookDecl {
            description: m.get("description").and_then(|n| self.text(n)),
            version: m.get("version").and_then(|n| self.u64(n, "`version`")),
            fields: m.get("fields").map(|n| self.fields(n)).unwrap_or_default(),
            name,
        };
        m.finish(
            self.diags,
            &["description", "version", "fields"],
            "a webhook",
        );
        Some(w)
    }
}

fn m_missing(node: &Node, key: &str) -> bool {
    match &node.kind {
        NodeKind::Map(entries) => !entries.iter().any(|(k, _)| k.as_scalar() == Some(key)),
        _ => true,
    }
}

/// Keys allowed at the top level of a contract.
pub const TOP_KEYS: &[&str] = &[
    "pactum",
    "service",
    "version",
    "owner",
    "namespace",
    "description",
    "types",
    "errors",
    "operations",
    "events",
    "consumes",
    "calls",
    "webhooks",
    "resilience",
    "auth",
];
/// Keys allowed in `auth`.
pub const AUTH_KEYS: &[&str] = &["schemes", "default"];
/// Keys allowed in an `auth` scheme.
pub const SCHEME_KEYS: &[&str] = &["type", "header", "description"];
/// Keys allowed in `resilience`.
pub const RESILIENCE_KEYS: &[&str] = &["retry_budget", "breaker", "concurrency"];
/// Keys allowed in `resilience.retry_budget`.
pub const RETRY_BUDGET_KEYS: &[&str] = &["ratio", "min_per_second"];
/// Keys allowed in `resilience.breaker`.
pub const BREAKER_KEYS: &[&str] = &["failures", "cooldown"];
/// How to write an event's `deadline:`, for its diagnostics.
pub const EVENT_DEADLINE_HELP: &str = "write `deadline: inherit` (the publisher's remaining budget) or a duration such as `deadline: 1h`; leave it out for an event worth processing however late";
/// How to write a `consumes` entry's `budget:`, for its diagnostics.
pub const BUDGET_HELP: &str =
    "write how long one delivery may take to handle, e.g. `budget: 30s` (at most 1h)";

/// A duration and its text.
fn duration(s: &str) -> Result<DurationDecl, String> {
    parse_duration(s).map(|nanos| DurationDecl {
        nanos,
        written: s.to_string(),
    })
}

/// `METHOD /path`: the method, and a path of `/`-separated segments of letters, digits,
/// `-._~` and `{param}`s.
fn parse_route(text: &str) -> Result<RouteDecl, (String, String)> {
    let Some((m, path)) = text.trim().split_once(' ') else {
        return Err((
            format!("route `{text}` has no method"),
            "write `rest: GET /orders/{id}`".into(),
        ));
    };
    let path = path.trim();
    let Some(method) = HttpMethod::parse(m) else {
        return Err((
            format!("unknown HTTP method `{m}`"),
            "use GET, HEAD, POST, PUT, PATCH or DELETE, in capitals".into(),
        ));
    };
    let mut params = Vec::new();
    let mut ok = path.starts_with('/');
    for seg in path.split('/').skip(1) {
        if let Some(p) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                ok = false;
            }
            params.push(p.to_string());
        } else if seg.is_empty() && path != "/"
            || !seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        {
            ok = false;
        }
    }
    if !ok {
        return Err((
            format!("invalid path `{path}`"),
            "start with `/`; use segments of letters, digits, `-._~`, and `{param}` for parameters"
                .into(),
        ));
    }
    Ok(RouteDecl {
        method,
        path: path.to_string(),
        params,
    })
}

/// A member of a numbered list: a field, an enum value or a union variant.
trait Numbered {
    /// Its name, and the number written for it.
    fn numbering(&self) -> (&Spanned<String>, Option<&Spanned<u64>>);
    /// Records the number it was given.
    fn set_wire(&mut self, n: u32);
}

impl Numbered for FieldDecl {
    fn numbering(&self) -> (&Spanned<String>, Option<&Spanned<u64>>) {
        (&self.name, self.number.as_ref())
    }
    fn set_wire(&mut self, n: u32) {
        self.wire = n;
    }
}

impl Numbered for EnumValueDecl {
    fn numbering(&self) -> (&Spanned<String>, Option<&Spanned<u64>>) {
        (&self.name, self.number.as_ref())
    }
    fn set_wire(&mut self, n: u32) {
        self.wire = n;
    }
}

impl Numbered for VariantDecl {
    fn numbering(&self) -> (&Spanned<String>, Option<&Spanned<u64>>) {
        (&self.name, self.number.as_ref())
    }
    fn set_wire(&mut self, n: u32) {
        self.wire = n;
    }
}

/// Keys allowed in an error.
pub const ERROR_KEYS: &[&str] = &["status", "description", "fields"];
/// Keys allowed in a webhook.
pub const WEBHOOK_KEYS: &[&str] = &["description", "version", "fields"];
/// Keys allowed in `retry`.
pub const RETRY_KEYS: &[&str] = &["attempts", "backoff", "jitter", "per_try"];

/// Keys allowed in a field mapping.
pub const FIELD_KEYS: &[&str] = &[
    "type",
    "optional",
    "description",
    "deprecated",
    "number",
    "min",
    "max",
    "min_len",
    "max_len",
    "pattern",
    "min_items",
    "max_items",
];
/// Keys allowed in a struct type.
pub const STRUCT_KEYS: &[&str] = &["fields", "description", "deprecated", "reserved"];
/// Keys allowed in an enum type.
pub const ENUM_KEYS: &[&str] = &["enum", "description", "deprecated", "reserved"];
/// Keys allowed in a tagged union.
pub const UNION_KEYS: &[&str] = &["oneof", "tag", "description", "deprecated", "reserved"];
/// Keys allowed in a union variant's mapping.
pub const VARIANT_KEYS: &[&str] = &["type", "description", "deprecated", "number"];
/// Keys allowed in a newtype.
pub const NEWTYPE_KEYS: &[&str] = &[
    "type",
    "description",
    "deprecated",
    "min",
    "max",
    "min_len",
    "max_len",
    "pattern",
    "min_items",
    "max_items",
];
/// Keys allowed in an operation.
pub const OPERATION_KEYS: &[&str] = &[
    "description",
    "deprecated",
    "input",
    "output",
    "errors",
    "rest",
    "grpc",
    "deadline",
    "safe",
    "idempotency",
    "retry",
    "streaming",
    "calls",
    "resilience",
    "paginate",
    "resume",
    "auth",
];
/// Keys allowed in `resume`.
pub const RESUME_KEYS: &[&str] = &["id", "after"];
/// Keys allowed in `paginate`.
pub const PAGINATE_KEYS: &[&str] = &["cursor", "next", "items", "size"];
/// Keys allowed in an event.
pub const EVENT_KEYS: &[&str] = &[
    "description",
    "deprecated",
    "version",
    "key",
    "delivery",
    "deadline",
    "fields",
];
/// Keys allowed in a `calls` entry.
pub const CALL_KEYS: &[&str] = &["operation", "via", "description"];
/// Keys allowed in a `consumes` entry.
pub const CONSUME_KEYS: &[&str] = &[
    "event",
    "delivery",
    "group",
    "retry",
    "dead_letter",
    "budget",
    "description",
];
