//! JSON Schema fragments for contract types, shared by the OpenAPI and AsyncAPI documents.
//!
//! Built with serde_json so every string is escaped correctly; the documents inline them as
//! JSON flow mappings (JSON is valid YAML). A contract's own types are plain component names;
//! types of other contracts are `<service>.v<major>.<Type>` and are pulled in, with whatever
//! they reference in turn, by [`Schemas::components`].

use super::GeneratedFile;
use crate::ast::{Number, Primitive};
use crate::ir::{Constraints, Contract, Field, Ir, NamedRef, TypeKind, TypeRef, Union};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A JSON string literal, which is also a YAML scalar that needs no further escaping.
pub(crate) fn q(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Renders one document per contract that `keep` selects, named `<service>.v<major><suffix>`.
pub(crate) fn per_contract<T: askama::Template>(
    ir: &Ir,
    keep: impl Fn(&Contract) -> bool,
    suffix: &str,
    what: &str,
    build: impl Fn(&Contract) -> T,
) -> Result<Vec<GeneratedFile>, String> {
    ir.contracts
        .iter()
        .filter(|c| keep(c))
        .map(|c| {
            let text = build(c)
                .render()
                .map_err(|e| format!("internal error: {what} template failed: {e}"))?;
            Ok(GeneratedFile {
                path: PathBuf::from(format!("{}.v{}{suffix}", c.id.service, c.id.major)),
                contents: text,
            })
        })
        .collect()
}

pub(crate) struct Schemas<'a> {
    ir: &'a Ir,
    /// The contract this document describes: its types have plain component names.
    home: &'a Contract,
    /// Types referenced so far (service, major, name), to include as components.
    used: BTreeSet<(String, u64, String)>,
    /// Which document: their schema objects spell `discriminator` differently.
    flavour: Flavour,
}

/// The document a schema goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// OpenAPI 3.1: `discriminator` is an object with `propertyName` and `mapping`.
    OpenApi,
    /// AsyncAPI 3.0: `discriminator` is the property's name, a string.
    AsyncApi,
}

impl<'a> Schemas<'a> {
    /// Schemas for a document about `home`.
    pub(crate) fn new(ir: &'a Ir, home: &'a Contract, flavour: Flavour) -> Self {
        Schemas {
            ir,
            home,
            used: BTreeSet::new(),
            flavour,
        }
    }

    fn component_name(&self, r: &NamedRef) -> String {
        if r.contract == self.home.id {
            r.name.clone()
        } else {
            format!("{}.v{}.{}", r.contract.service, r.contract.major, r.name)
        }
    }

    pub(crate) fn reference(&mut self, r: &NamedRef) -> Value {
        self.used
            .insert((r.contract.service.clone(), r.contract.major, r.name.clone()));
        json!({ "$ref": format!("#/components/schemas/{}", self.component_name(r)) })
    }

    fn prim(p: Primitive) -> Value {
        match p {
            Primitive::Bool => json!({"type": "boolean"}),
            Primitive::I32 => json!({"type": "integer", "format": "int32"}),
            Primitive::I64 => json!({"type": "integer", "format": "int64"}),
            Primitive::U32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64})
            }
            Primitive::U64 => json!({"type": "integer", "minimum": 0}),
            Primitive::F64 => json!({"type": "number", "format": "double"}),
            Primitive::String => json!({"type": "string"}),
            Primitive::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Primitive::Timestamp => json!({"type": "string", "format": "date-time"}),
            Primitive::Duration => {
                json!({"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,9})?s$", "examples": ["1.5s"]})
            }
            Primitive::Uuid => json!({"type": "string", "format": "uuid"}),
            Primitive::Decimal => {
                json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "examples": ["12.50"]})
            }
        }
    }

    pub(crate) fn ty(&mut self, t: &TypeRef) -> Value {
        match t {
            TypeRef::Prim(p) => Self::prim(*p),
            TypeRef::List(inner) => json!({"type": "array", "items": self.ty(inner)}),
            TypeRef::Map(inner) => {
                json!({"type": "object", "additionalProperties": self.ty(inner)})
            }
            TypeRef::Optional(inner) => json!({"anyOf": [self.ty(inner), {"type": "null"}]}),
            TypeRef::Named(r) => self.reference(r),
        }
    }

    pub(crate) fn constrained(&mut self, t: &TypeRef, k: &Constraints) -> Value {
        let mut schema = self.ty(t);
        if k.is_empty() {
            return schema;
        }
        // Constraints go beside a `$ref` through `allOf`, so the referenced schema stays intact.
        let mut extra = Map::new();
        let num = |n: Number| match n {
            Number::Int(i) => json!(i),
            Number::Float(f) => json!(f),
        };
        let decimal = matches!(t, TypeRef::Prim(Primitive::Decimal));
        if let Some(n) = k.min {
            extra.insert(
                if decimal {
                    "x-pactum-minimum"
                } else {
                    "minimum"
                }
                .into(),
                num(n),
            );
        }
        if let Some(n) = k.max {
            extra.insert(
                if decimal {
                    "x-pactum-maximum"
                } else {
                    "maximum"
                }
                .into(),
                num(n),
            );
        }
        let bytes = matches!(t, TypeRef::Prim(Primitive::Bytes));
        if let Some(n) = k.min_len {
            extra.insert(
                if bytes {
                    "x-pactum-min-bytes"
                } else {
                    "minLength"
                }
                .into(),
                json!(n),
            );
        }
        if let Some(n) = k.max_len {
            extra.insert(
                if bytes {
                    "x-pactum-max-bytes"
                } else {
                    "maxLength"
                }
                .into(),
                json!(n),
            );
        }
        if let Some(p) = &k.pattern {
            extra.insert("pattern".into(), json!(p));
        }
        let map = matches!(t, TypeRef::Map(_));
        if let Some(n) = k.min_items {
            extra.insert(
                if map { "minProperties" } else { "minItems" }.into(),
                json!(n),
            );
        }
        if let Some(n) = k.max_items {
            extra.insert(
                if map { "maxProperties" } else { "maxItems" }.into(),
                json!(n),
            );
        }
        match &mut schema {
            Value::Object(m) if !m.contains_key("$ref") && !m.contains_key("anyOf") => {
                m.extend(extra);
                schema
            }
            _ => json!({"allOf": [schema, Value::Object(extra)]}),
        }
    }

    pub(crate) fn object(
        &mut self,
        fields: &[Field],
        docs: Option<&str>,
        deprecated: bool,
    ) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        for f in fields {
            let (ty, optional) = match &f.ty {
                TypeRef::Optional(inner) => (&**inner, true),
                other => (other, false),
            };
            let mut s = self.constrained(ty, &f.constraints);
            if let Value::Object(m) = &mut s {
                if let Some(d) = &f.docs {
                    m.insert("description".into(), json!(d.trim()));
                }
                if f.deprecated.is_some() {
                    m.insert("deprecated".into(), json!(true));
                }
            }
            if !optional {
                required.push(json!(f.wire_name));
            }
            props.insert(f.wire_name.clone(), s);
        }
        let mut o = Map::new();
        o.insert("type".into(), json!("object"));
        if let Some(d) = docs {
            o.insert("description".into(), json!(d.trim()));
        }
        if deprecated {
            o.insert("deprecated".into(), json!(true));
        }
        o.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            o.insert("required".into(), Value::Array(required));
        }
        Value::Object(o)
    }

    /// A tagged union: `oneOf` the variants, each its struct with the tag fixed beside it
    /// (so exactly one branch matches), and the `discriminator`: in OpenAPI mapping each tag
    /// value to its struct, in AsyncAPI (whose discriminator is only the property's name)
    /// the tag.
    fn union(&mut self, u: &Union) -> Value {
        let mut branches = Vec::new();
        let mut mapping = Map::new();
        for v in &u.variants {
            let r = self.reference(&v.ty);
            if let Some(target) = r.get("$ref") {
                mapping.insert(v.wire.clone(), target.clone());
            }
            let mut tag = Map::new();
            tag.insert(u.tag.clone(), json!({ "const": v.wire }));
            let mut branch = json!({
                "allOf": [r, {"type": "object", "properties": tag, "required": [u.tag]}],
            });
            if let (Some(d), Value::Object(m)) = (&v.docs, &mut branch) {
                m.insert("description".into(), json!(d.trim()));
            }
            if let (Some(_), Value::Object(m)) = (&v.deprecated, &mut branch) {
                m.insert("deprecated".into(), json!(true));
            }
            branches.push(branch);
        }
        let discriminator = match self.flavour {
            Flavour::OpenApi => json!({"propertyName": u.tag, "mapping": mapping}),
            Flavour::AsyncApi => json!(u.tag),
        };
        json!({
            "type": "object",
            "oneOf": branches,
            "discriminator": discriminator,
            "x-pactum-open-union": true,
        })
    }

    pub(crate) fn type_schema(
        &mut self,
        kind: &TypeKind,
        docs: Option<&str>,
        deprecated: bool,
    ) -> Value {
        let mut s = match kind {
            TypeKind::Struct(fields) => return self.object(fields, docs, deprecated),
            TypeKind::Enum(values) => json!({
                "type": "string",
                "enum": values.iter().map(|v| v.wire.clone()).collect::<Vec<_>>(),
                "x-pactum-open-enum": true,
            }),
            TypeKind::Union(u) => self.union(u),
            TypeKind::Newtype { inner, constraints } => self.constrained(inner, constraints),
        };
        if let Value::Object(m) = &mut s {
            if let Some(d) = docs {
                m.insert("description".into(), json!(d.trim()));
            }
            if deprecated {
                m.insert("deprecated".into(), json!(true));
            }
        }
        s
    }

    /// Every type of the home contract, and every type referenced so far with what those
    /// reference in turn, keyed by component name. Call after building the rest of the
    /// document, so its references are known.
    pub(crate) fn components(mut self, into: &mut BTreeMap<String, Value>) {
        let home = self.home.id.clone();
        for t in &self.home.types {
            self.used
                .insert((home.service.clone(), home.major, t.name.clone()));
        }
        self.referenced(into);
    }

    /// Only the types referenced so far, and what those reference in turn.
    pub(crate) fn referenced(mut self, into: &mut BTreeMap<String, Value>) {
        let mut done = BTreeSet::new();
        while let Some(next) = self.used.iter().find(|f| !done.contains(*f)).cloned() {
            done.insert(next.clone());
            let (service, major, name) = next;
            let Some(owner) = self
                .ir
                .contracts
                .iter()
                .find(|c| c.id.service == service && c.id.major == major)
            else {
                continue;
            };
            let Some(t) = owner.types.iter().find(|t| t.name == name) else {
                continue;
            };
            let key = self.component_name(&NamedRef {
                contract: owner.id.clone(),
                name: name.clone(),
            });
            // References inside carry their own contract, so names resolve from this document.
            let schema = self.type_schema(&t.kind, t.docs.as_deref(), t.deprecated.is_some());
            into.insert(key, schema);
        }
    }
}
