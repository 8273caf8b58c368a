//! `.proto` (proto3), one file per contract major version: `<service>.v<major>.proto` with
//! package `<namespace>.<service>.v<major>`.
//!
//! Messages for structs, inline inputs/outputs, errors and events; enums with a zero
//! `<ENUM>_UNSPECIFIED` value; the contract's stable field numbers; `reserved` numbers; comments
//! from descriptions; `deprecated` options; well-known types for `timestamp` and `duration`; a
//! service with one rpc per `grpc: true` operation (streaming where declared). Shapes protobuf
//! cannot say directly (a list of lists, a map of lists, an optional inside a list) get small
//! wrapper messages; newtypes are their underlying type. The layout is `templates/service.proto`.

use super::protobuf::{Element, Label, Model, WellKnown, Wrapper};
use super::GeneratedFile;
use crate::ir::{Contract, ContractId, Field, Ir, NamedRef, Streaming, TypeKind, TypeRef};
use crate::naming::{convert, Case};
use askama::Template;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Template)]
#[template(path = "service.proto", escape = "none")]
pub(crate) struct ProtoFile {
    /// `orders.v1.proto`.
    pub(crate) name: String,
    source: String,
    comments: Vec<String>,
    pub(crate) package: String,
    pub(crate) imports: Vec<String>,
    pub(crate) enums: Vec<ProtoEnum>,
    pub(crate) messages: Vec<ProtoMessage>,
    pub(crate) service: Option<ProtoService>,
}

pub(crate) struct ProtoEnum {
    comments: Vec<String>,
    pub(crate) name: String,
    pub(crate) deprecated: bool,
    reserved: String,
    pub(crate) reserved_numbers: Vec<u32>,
    pub(crate) values: Vec<ProtoValue>,
}

pub(crate) struct ProtoValue {
    comments: Vec<String>,
    pub(crate) name: String,
    pub(crate) number: u32,
    pub(crate) deprecated: bool,
}

pub(crate) struct ProtoMessage {
    comments: Vec<String>,
    pub(crate) name: String,
    pub(crate) deprecated: bool,
    reserved: String,
    pub(crate) reserved_numbers: Vec<u32>,
    pub(crate) fields: Vec<ProtoField>,
    /// A union's message: every field sits in this one `oneof` (named for the union's tag).
    pub(crate) oneof: Option<String>,
}

pub(crate) struct ProtoField {
    comments: Vec<String>,
    label: &'static str,
    ty: String,
    pub(crate) name: String,
    pub(crate) number: u32,
    options: String,
    /// The field as a descriptor says it (the text above, resolved to full names).
    pub(crate) desc: FieldDesc,
    /// Its JSON name where the contract gives one other than the field's own.
    pub(crate) json_name: Option<String>,
    pub(crate) deprecated: bool,
}

/// A field's label and what each value is, with full type names (`.shop.pricing.v1.Money`):
/// what a `FieldDescriptorProto` needs, which the `.proto` text leaves to protoc to resolve.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldDesc {
    pub(crate) label: Label,
    pub(crate) element: DescElement,
}

/// One value of a field, resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DescElement {
    Scalar(super::protobuf::Scalar),
    /// An enum's full name.
    Enum(String),
    /// A message's full name.
    Message(String),
}

pub(crate) struct ProtoService {
    comments: Vec<String>,
    pub(crate) name: String,
    pub(crate) methods: Vec<ProtoMethod>,
}

pub(crate) struct ProtoMethod {
    comments: Vec<String>,
    pub(crate) name: String,
    input: String,
    output: String,
    /// Full names of the request and response messages.
    pub(crate) input_type: String,
    pub(crate) output_type: String,
    pub(crate) client_streaming: bool,
    pub(crate) server_streaming: bool,
    pub(crate) deprecated: bool,
}

fn reserved(numbers: &[u32]) -> String {
    numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn comments(text: Option<&str>) -> Vec<String> {
    text.map(|t| {
        t.trim()
            .lines()
            .map(|l| without_rustdoc_links(l.trim_end()))
            .collect()
    })
    .unwrap_or_default()
}

/// `[`GetCart`](operations::GET_CART)` → `` `GetCart` ``: docs are written for rustdoc,
/// whose intra-doc links mean nothing in a `.proto`. Links to URLs stay.
fn without_rustdoc_links(line: &str) -> String {
    static LINK: std::sync::LazyLock<regex_lite::Regex> = std::sync::LazyLock::new(|| {
        regex_lite::Regex::new(r"\[([^\]]*)\]\(([^)]*)\)").expect("a valid pattern")
    });
    LINK.replace_all(line, |c: &regex_lite::Captures<'_>| {
        if c[2].contains("://") {
            c[0].to_string()
        } else {
            c[1].to_string()
        }
    })
    .into_owned()
}

/// The proto package of a contract.
pub fn package(c: &Contract) -> String {
    package_of(c.namespace.as_deref(), &c.id)
}

fn package_of(namespace: Option<&str>, id: &ContractId) -> String {
    match namespace {
        Some(ns) => format!("{ns}.{}.v{}", id.service, id.major),
        None => format!("{}.v{}", id.service, id.major),
    }
}

/// The gRPC service of a contract (`OrdersService`), in its [`package`].
pub fn service_name(c: &Contract) -> String {
    format!("{}Service", convert(&c.id.service, Case::Pascal))
}

/// The file name of a contract's proto.
pub fn file_name(id: &ContractId) -> String {
    format!("{}.v{}.proto", id.service, id.major)
}

/// The protobuf file of contract `c`, before it is spelled as text or as a descriptor.
pub(crate) fn proto_file(ir: &Ir, c: &Contract) -> ProtoFile {
    Protos::new(ir, c).file()
}

/// One `.proto` per contract.
pub fn files(ir: &Ir) -> Result<Vec<GeneratedFile>, String> {
    ir.contracts
        .iter()
        .map(|c| {
            let text = Protos::new(ir, c)
                .file()
                .render()
                .map_err(|e| format!("internal error: proto template failed: {e}"))?;
            Ok(GeneratedFile {
                path: PathBuf::from(file_name(&c.id)),
                contents: text + "\n",
            })
        })
        .collect()
}

struct Protos<'a> {
    ir: &'a Ir,
    home: &'a Contract,
    /// The shapes: scalars, newtypes, `optional`, wrappers (shared with the prost structs).
    model: Model<'a>,
    imports: BTreeSet<String>,
    wrappers: BTreeMap<String, ProtoMessage>,
}

impl<'a> Protos<'a> {
    fn new(ir: &'a Ir, home: &'a Contract) -> Self {
        Protos {
            ir,
            home,
            model: Model::new(ir, &home.id),
            imports: BTreeSet::new(),
            wrappers: BTreeMap::new(),
        }
    }

    /// How the `.proto` names `r` (`Money`, `.shop.pricing.v1.Money`), and its full name.
    fn message_name(&mut self, r: &NamedRef) -> (String, String) {
        if r.contract == self.home.id {
            return (
                r.name.clone(),
                format!(".{}.{}", package(self.home), r.name),
            );
        }
        self.imports.insert(file_name(&r.contract));
        let ns = self
            .ir
            .contracts
            .iter()
            .find(|c| c.id == r.contract)
            .and_then(|c| c.namespace.as_deref());
        let full = format!(".{}.{}", package_of(ns, &r.contract), r.name);
        (full.clone(), full)
    }

    /// A field's label and type, as the model shapes it: the `.proto` text and the
    /// descriptor's form.
    fn field_type(&mut self, ty: &TypeRef) -> (&'static str, String, FieldDesc) {
        let shape = self.model.shape(ty);
        let (element, resolved) = self.spell(&shape.element);
        let desc = FieldDesc {
            label: shape.label,
            element: resolved,
        };
        match shape.label {
            Label::Singular => ("", element, desc),
            Label::Optional => ("optional ", element, desc),
            Label::Repeated => ("repeated ", element, desc),
            Label::Map => ("", format!("map<string, {element}>"), desc),
        }
    }

    /// An element's `.proto` type and its resolved form; a wrapper is declared the first
    /// time it is used.
    fn spell(&mut self, element: &Element) -> (String, DescElement) {
        match element {
            Element::Scalar(s) => (s.proto().into(), DescElement::Scalar(*s)),
            Element::WellKnown(WellKnown::Timestamp) => {
                self.imports
                    .insert("google/protobuf/timestamp.proto".into());
                (
                    "google.protobuf.Timestamp".into(),
                    DescElement::Message(".google.protobuf.Timestamp".into()),
                )
            }
            Element::WellKnown(WellKnown::Duration) => {
                self.imports.insert("google/protobuf/duration.proto".into());
                (
                    "google.protobuf.Duration".into(),
                    DescElement::Message(".google.protobuf.Duration".into()),
                )
            }
            Element::Enum(r) => {
                let (text, full) = self.message_name(r);
                (text, DescElement::Enum(full))
            }
            Element::Message(r) => {
                let (text, full) = self.message_name(r);
                (text, DescElement::Message(full))
            }
            Element::Wrapper(container) => {
                let (label, inner, desc) = self.field_type(container);
                let Wrapper { name, field } = self.model.wrapper(container);
                self.wrappers
                    .entry(name.clone())
                    .or_insert_with(|| ProtoMessage {
                        comments: vec![format!(
                            "Wrapper: protobuf cannot nest `{label}{inner}` directly."
                        )],
                        name: name.clone(),
                        deprecated: false,
                        reserved: String::new(),
                        reserved_numbers: Vec::new(),
                        fields: vec![ProtoField {
                            comments: Vec::new(),
                            label,
                            ty: inner,
                            name: field.into(),
                            number: 1,
                            options: String::new(),
                            desc,
                            json_name: None,
                            deprecated: false,
                        }],
                        oneof: None,
                    });
                let full = format!(".{}.{name}", package(self.home));
                (name, DescElement::Message(full))
            }
        }
    }

    fn fields(&mut self, fields: &[Field]) -> Vec<ProtoField> {
        let out: Vec<ProtoField> = fields
            .iter()
            .map(|f| {
                let (label, ty, desc) = self.field_type(&f.ty);
                let mut options = Vec::new();
                if f.deprecated.is_some() {
                    options.push("deprecated = true".to_string());
                }
                let json_name = (f.wire_name != convert(&f.name, Case::Snake)
                    || f.wire_name != f.name)
                    .then(|| f.wire_name.clone());
                if let Some(json) = &json_name {
                    options.push(format!("json_name = \"{json}\""));
                }
                ProtoField {
                    comments: comments(f.docs.as_deref()),
                    label,
                    ty,
                    name: f.name.clone(),
                    number: f.number,
                    desc,
                    json_name,
                    deprecated: f.deprecated.is_some(),
                    options: if options.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", options.join(", "))
                    },
                }
            })
            .collect();
        // Declaration order, as the contract lists them (and as numbers count up).
        out
    }

    fn file(mut self) -> ProtoFile {
        let c = self.home;
        let mut enums = Vec::new();
        let mut messages = Vec::new();
        for t in &c.types {
            match &t.kind {
                TypeKind::Struct(fields) => {
                    let fields = self.fields(fields);
                    messages.push(ProtoMessage {
                        comments: comments(t.docs.as_deref()),
                        name: t.name.clone(),
                        deprecated: t.deprecated.is_some(),
                        reserved: reserved(&t.reserved),
                        reserved_numbers: t.reserved.clone(),
                        fields,
                        oneof: None,
                    });
                }
                TypeKind::Union(u) => {
                    let fields = u
                        .variants
                        .iter()
                        .map(|v| {
                            let (ty, full) = self.message_name(&v.ty);
                            ProtoField {
                                comments: comments(v.docs.as_deref()),
                                label: "",
                                ty,
                                name: v.wire.clone(),
                                number: v.number,
                                options: if v.deprecated.is_some() {
                                    " [deprecated = true]".into()
                                } else {
                                    String::new()
                                },
                                desc: FieldDesc {
                                    label: Label::Singular,
                                    element: DescElement::Message(full),
                                },
                                json_name: None,
                                deprecated: v.deprecated.is_some(),
                            }
                        })
                        .collect();
                    let mut cs = comments(t.docs.as_deref());
                    cs.push(format!(
                        "A tagged union: `oneof {}` holds exactly one variant (in JSON, the `{}` property names it).",
                        u.tag, u.tag
                    ));
                    messages.push(ProtoMessage {
                        comments: cs,
                        name: t.name.clone(),
                        deprecated: t.deprecated.is_some(),
                        reserved: reserved(&t.reserved),
                        reserved_numbers: t.reserved.clone(),
                        fields,
                        oneof: Some(u.tag.clone()),
                    });
                }
                TypeKind::Enum(values) => {
                    let prefix = convert(&t.name, Case::Screaming);
                    let mut vs = vec![ProtoValue {
                        comments: Vec::new(),
                        name: format!("{prefix}_UNSPECIFIED"),
                        number: 0,
                        deprecated: false,
                    }];
                    vs.extend(values.iter().map(|v| ProtoValue {
                        comments: comments(v.docs.as_deref()),
                        name: format!("{prefix}_{}", convert(&v.variant, Case::Screaming)),
                        number: v.number,
                        deprecated: v.deprecated.is_some(),
                    }));
                    enums.push(ProtoEnum {
                        comments: comments(t.docs.as_deref()),
                        name: t.name.clone(),
                        deprecated: t.deprecated.is_some(),
                        reserved: reserved(&t.reserved),
                        reserved_numbers: t.reserved.clone(),
                        values: vs,
                    });
                }
                // Newtypes are their underlying type on the wire.
                TypeKind::Newtype { .. } => {}
            }
        }
        for e in &c.errors {
            let fields = self.fields(&e.fields);
            messages.push(ProtoMessage {
                comments: comments(e.docs.as_deref()),
                name: e.name.clone(),
                deprecated: false,
                reserved: String::new(),
                reserved_numbers: Vec::new(),
                fields,
                oneof: None,
            });
        }
        for e in &c.events {
            let fields = self.fields(&e.fields);
            let mut cs = comments(e.docs.as_deref());
            cs.push(format!(
                "Event `{}` v{}, subject `{}`.",
                e.name, e.version, e.subject
            ));
            messages.push(ProtoMessage {
                comments: cs,
                name: e.name.clone(),
                deprecated: e.deprecated.is_some(),
                reserved: String::new(),
                reserved_numbers: Vec::new(),
                fields,
                oneof: None,
            });
        }
        let grpc_ops: Vec<_> = c.operations.iter().filter(|o| o.grpc).collect();
        let service = (!grpc_ops.is_empty()).then(|| {
            let methods = grpc_ops
                .iter()
                .map(|op| {
                    let (input, input_type) = match &op.input {
                        Some(i) => self.message_name(i),
                        None => self.empty(),
                    };
                    let (output, output_type) = match &op.output {
                        Some(TypeRef::Named(r)) => self.message_name(r),
                        _ => self.empty(),
                    };
                    let client_streaming =
                        matches!(op.streaming, Streaming::Client | Streaming::Bidi);
                    let server_streaming =
                        matches!(op.streaming, Streaming::Server | Streaming::Bidi);
                    let (input, output) = match op.streaming {
                        Streaming::None => (input, output),
                        Streaming::Server => (input, format!("stream {output}")),
                        Streaming::Client => (format!("stream {input}"), output),
                        Streaming::Bidi => (format!("stream {input}"), format!("stream {output}")),
                    };
                    let mut cs = comments(op.docs.as_deref());
                    if let Some(p) = &op.paginate {
                        cs.push(format!(
                            "Paginated: send `{}` of a reply back as `{}` for the next page (an opaque, sealed cursor); `{}` holds the page, and no `{}` means the last page.",
                            p.next_wire, p.cursor_wire, p.items_wire, p.next_wire
                        ));
                    }
                    ProtoMethod {
                        comments: cs,
                        name: op.name.clone(),
                        input,
                        output,
                        input_type,
                        output_type,
                        client_streaming,
                        server_streaming,
                        deprecated: op.deprecated.is_some(),
                    }
                })
                .collect();
            ProtoService {
                comments: vec![format!(
                    "`{}` v{}, owned by {}.",
                    c.id.service, c.id.major, c.owner
                )],
                name: service_name(c),
                methods,
            }
        });
        messages.extend(std::mem::take(&mut self.wrappers).into_values());
        ProtoFile {
            name: file_name(&c.id),
            source: c.source.to_string_lossy().replace('\\', "/"),
            comments: comments(c.docs.as_deref()),
            package: package(c),
            imports: self.imports.into_iter().collect(),
            enums,
            messages,
            service,
        }
    }

    fn empty(&mut self) -> (String, String) {
        self.imports.insert("google/protobuf/empty.proto".into());
        (
            "google.protobuf.Empty".into(),
            ".google.protobuf.Empty".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rustdoc_links_become_plain_text_in_proto_comments() {
        assert_eq!(
            super::without_rustdoc_links("Input of [`GetCart`](operations::GET_CART)."),
            "Input of `GetCart`."
        );
        let url = "See [the spec](https://example.invalid/spec).";
        assert_eq!(super::without_rustdoc_links(url), url);
    }
}
