//! Protobuf descriptors of the emitted `.proto` files, for gRPC server reflection: what
//! `grpcurl list` and `describe` read from a server that has no `.proto` beside it.
//!
//! A descriptor is the `.proto` after protoc has resolved it, so it is built from the same
//! [`ProtoFile`] the `.proto` text is rendered from — the two agree by construction (and the
//! Python interop test compares them with protoc's own). The conventions are protoc's:
//! every field has a `json_name`, a `map<string, V>` is a repeated nested `…Entry` message
//! marked `map_entry`, a proto3 `optional` field sits alone in a synthetic oneof `_<name>`,
//! message reserved ranges end exclusive and enum ones inclusive.
//!
//! Each contract's set holds its own file, every contract file it imports (transitively) and
//! the well-known types they use, so one contract's gRPC module can answer for all of them.

use super::proto::{
    proto_file, DescElement, FieldDesc, ProtoEnum, ProtoField, ProtoFile, ProtoMessage,
    ProtoService,
};
use super::protobuf::{Label, Scalar};
use crate::ir::{Contract, Ir};
use prost::Message;
use prost_types::field_descriptor_proto::{Label as PbLabel, Type};
use prost_types::{
    descriptor_proto, enum_descriptor_proto, DescriptorProto, EnumDescriptorProto, EnumOptions,
    EnumValueDescriptorProto, EnumValueOptions, FieldDescriptorProto, FieldOptions,
    FileDescriptorProto, FileDescriptorSet, MessageOptions, MethodDescriptorProto, MethodOptions,
    OneofDescriptorProto, ServiceDescriptorProto,
};
use std::collections::BTreeMap;

/// The encoded `FileDescriptorSet` of contract `c`: its file, the contract files it imports
/// and the well-known types among their imports.
pub(crate) fn descriptor_set(ir: &Ir, c: &Contract) -> Vec<u8> {
    let mut files = BTreeMap::new();
    let mut pending = vec![proto_file(ir, c)];
    while let Some(file) = pending.pop() {
        for import in &file.imports {
            if files.contains_key(import) || pending.iter().any(|p| &p.name == import) {
                continue;
            }
            if let Some(wkt) = well_known(import) {
                files.insert(import.clone(), wkt);
            } else if let Some(other) = ir
                .contracts
                .iter()
                .find(|o| &super::proto::file_name(&o.id) == import)
            {
                pending.push(proto_file(ir, other));
            }
        }
        files.insert(file.name.clone(), file_descriptor(&file));
    }
    FileDescriptorSet {
        file: files.into_values().collect(),
    }
    .encode_to_vec()
}

/// One file's descriptor.
pub(crate) fn file_descriptor(file: &ProtoFile) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some(file.name.clone()),
        package: Some(file.package.clone()),
        dependency: file.imports.clone(),
        message_type: file
            .messages
            .iter()
            .map(|m| message(m, &file.package))
            .collect(),
        enum_type: file.enums.iter().map(enumeration).collect(),
        service: file.service.iter().map(service).collect(),
        syntax: Some("proto3".into()),
        ..Default::default()
    }
}

fn message(m: &ProtoMessage, package: &str) -> DescriptorProto {
    let mut out = DescriptorProto {
        name: Some(m.name.clone()),
        options: m.deprecated.then(|| MessageOptions {
            deprecated: Some(true),
            ..Default::default()
        }),
        reserved_range: m
            .reserved_numbers
            .iter()
            .map(|&n| descriptor_proto::ReservedRange {
                start: Some(n as i32),
                end: Some(n as i32 + 1),
            })
            .collect(),
        ..Default::default()
    };
    // A union: one real `oneof` holding every field (and no other fields, so no synthetic
    // `optional` oneofs, which protoc would place after it).
    if let Some(name) = &m.oneof {
        out.oneof_decl.push(OneofDescriptorProto {
            name: Some(name.clone()),
            options: None,
        });
    }
    for f in &m.fields {
        let mut field = field(f);
        if m.oneof.is_some() {
            field.oneof_index = Some(0);
        }
        match f.desc.label {
            Label::Map => {
                let entry = format!("{}Entry", camel(&f.name, true));
                // The entry is nested in this message.
                field.type_name = Some(format!(".{package}.{}.{entry}", m.name));
                out.nested_type.push(map_entry(&entry, &f.desc));
            }
            Label::Optional => {
                field.proto3_optional = Some(true);
                field.oneof_index = Some(out.oneof_decl.len() as i32);
                out.oneof_decl.push(OneofDescriptorProto {
                    name: Some(format!("_{}", f.name)),
                    options: None,
                });
            }
            Label::Singular | Label::Repeated => {}
        }
        out.field.push(field);
    }
    out
}

/// A field, with its value's type (a map field's entry type is named by [`message`]).
fn field(f: &ProtoField) -> FieldDescriptorProto {
    let (ty, type_name) = element(&f.desc.element);
    let (ty, type_name) = if f.desc.label == Label::Map {
        (Type::Message, None)
    } else {
        (ty, type_name)
    };
    FieldDescriptorProto {
        name: Some(f.name.clone()),
        number: Some(f.number as i32),
        label: Some(match f.desc.label {
            Label::Repeated | Label::Map => PbLabel::Repeated,
            Label::Singular | Label::Optional => PbLabel::Optional,
        } as i32),
        r#type: Some(ty as i32),
        type_name,
        json_name: Some(f.json_name.clone().unwrap_or_else(|| camel(&f.name, false))),
        options: f.deprecated.then(|| FieldOptions {
            deprecated: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `map<string, V>`'s entry message: `key = 1`, `value = 2`.
fn map_entry(name: &str, desc: &FieldDesc) -> DescriptorProto {
    let (ty, type_name) = element(&desc.element);
    let entry_field =
        |name: &str, number: i32, ty: Type, type_name: Option<String>| FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(PbLabel::Optional as i32),
            r#type: Some(ty as i32),
            type_name,
            json_name: Some(name.into()),
            ..Default::default()
        };
    DescriptorProto {
        name: Some(name.into()),
        field: vec![
            entry_field("key", 1, Type::String, None),
            entry_field("value", 2, ty, type_name),
        ],
        options: Some(MessageOptions {
            map_entry: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn element(e: &DescElement) -> (Type, Option<String>) {
    match e {
        DescElement::Scalar(s) => (scalar(*s), None),
        DescElement::Enum(name) => (Type::Enum, Some(name.clone())),
        DescElement::Message(name) => (Type::Message, Some(name.clone())),
    }
}

fn scalar(s: Scalar) -> Type {
    match s {
        Scalar::Bool => Type::Bool,
        Scalar::Int32 => Type::Int32,
        Scalar::Int64 => Type::Int64,
        Scalar::Uint32 => Type::Uint32,
        Scalar::Uint64 => Type::Uint64,
        Scalar::Double => Type::Double,
        Scalar::String => Type::String,
        Scalar::Bytes => Type::Bytes,
    }
}

fn enumeration(e: &ProtoEnum) -> EnumDescriptorProto {
    EnumDescriptorProto {
        name: Some(e.name.clone()),
        value: e
            .values
            .iter()
            .map(|v| EnumValueDescriptorProto {
                name: Some(v.name.clone()),
                number: Some(v.number as i32),
                options: v.deprecated.then(|| EnumValueOptions {
                    deprecated: Some(true),
                    ..Default::default()
                }),
            })
            .collect(),
        options: e.deprecated.then(|| EnumOptions {
            deprecated: Some(true),
            ..Default::default()
        }),
        reserved_range: e
            .reserved_numbers
            .iter()
            .map(|&n| enum_descriptor_proto::EnumReservedRange {
                start: Some(n as i32),
                end: Some(n as i32),
            })
            .collect(),
        reserved_name: Vec::new(),
    }
}

fn service(s: &ProtoService) -> ServiceDescriptorProto {
    ServiceDescriptorProto {
        name: Some(s.name.clone()),
        method: s
            .methods
            .iter()
            .map(|m| MethodDescriptorProto {
                name: Some(m.name.clone()),
                input_type: Some(m.input_type.clone()),
                output_type: Some(m.output_type.clone()),
                client_streaming: m.client_streaming.then_some(true),
                server_streaming: m.server_streaming.then_some(true),
                options: m.deprecated.then(|| MethodOptions {
                    deprecated: Some(true),
                    ..Default::default()
                }),
            })
            .collect(),
        options: None,
    }
}

/// protoc's camel case: `order_id` → `orderId` (JSON names), `line_items` → `LineItems`
/// (map entry names, `upper`).
fn camel(name: &str, upper: bool) -> String {
    let mut out = String::with_capacity(name.len());
    let mut capitalize = upper;
    for ch in name.chars() {
        if ch == '_' {
            capitalize = true;
        } else if capitalize {
            out.extend(ch.to_uppercase());
            capitalize = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// The well-known files the emitted `.proto`s import, as protoc knows them (their messages;
/// the per-language file options are left out, as no reflection client reads them).
fn well_known(import: &str) -> Option<FileDescriptorProto> {
    let seconds_nanos = |name: &str| DescriptorProto {
        name: Some(name.into()),
        field: vec![
            plain("seconds", 1, Type::Int64),
            plain("nanos", 2, Type::Int32),
        ],
        ..Default::default()
    };
    let message = match import {
        "google/protobuf/timestamp.proto" => seconds_nanos("Timestamp"),
        "google/protobuf/duration.proto" => seconds_nanos("Duration"),
        "google/protobuf/empty.proto" => DescriptorProto {
            name: Some("Empty".into()),
            ..Default::default()
        },
        _ => return None,
    };
    Some(FileDescriptorProto {
        name: Some(import.into()),
        package: Some("google.protobuf".into()),
        message_type: vec![message],
        syntax: Some("proto3".into()),
        ..Default::default()
    })
}

fn plain(name: &str, number: i32, ty: Type) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(PbLabel::Optional as i32),
        r#type: Some(ty as i32),
        json_name: Some(name.into()),
        ..Default::default()
    }
}
