//! One protobuf picture of the IR. `proto.rs` spells it as `.proto` text (and `descriptor.rs`
//! as descriptors); the Rust side is the runtime's `Value` impls, which follow the same
//! shapes (`messages.rs` only lists each type's fields). The decisions live here once —
//! which scalar a primitive travels as, what newtypes unwrap to, which values take proto3
//! `optional`, where protobuf needs a wrapper message because it cannot nest a label inside a
//! label, and what that wrapper and its one field are called — so the `.proto` a Python or Go
//! client compiles and the Rust the server runs agree.
//!
//! A wrapper around another contract's type is named with that contract's service and major
//! (`ListOfPricingV1Money`, [`Model::local_name`]), so two contracts' wrappers never meet.
//! [`Reached`] says which types gRPC operations reach: those are messages in Rust.

use crate::ast::Primitive;
use crate::ir::{ContractId, Ir, NamedRef, TypeKind, TypeRef};
use crate::naming::{convert, Case};
use std::collections::BTreeSet;

/// A protobuf scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Double,
    String,
    Bytes,
}

impl Scalar {
    /// The `.proto` spelling (also prost's kind, but for `bytes`).
    pub fn proto(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::Int32 => "int32",
            Scalar::Int64 => "int64",
            Scalar::Uint32 => "uint32",
            Scalar::Uint64 => "uint64",
            Scalar::Double => "double",
            Scalar::String => "string",
            Scalar::Bytes => "bytes",
        }
    }
}

/// A well-known type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WellKnown {
    Timestamp,
    Duration,
}

/// What a primitive travels as.
pub(crate) enum Wire {
    Scalar(Scalar),
    WellKnown(WellKnown),
}

/// The protobuf form of a contract primitive: uuids and decimals as strings (exact, and
/// readable in every language), `bytes` as bytes, timestamps and durations as well-known types.
pub(crate) fn primitive(p: Primitive) -> Wire {
    Wire::Scalar(match p {
        Primitive::Bool => Scalar::Bool,
        Primitive::I32 => Scalar::Int32,
        Primitive::I64 => Scalar::Int64,
        Primitive::U32 => Scalar::Uint32,
        Primitive::U64 => Scalar::Uint64,
        Primitive::F64 => Scalar::Double,
        Primitive::String | Primitive::Uuid | Primitive::Decimal => Scalar::String,
        Primitive::Bytes => Scalar::Bytes,
        Primitive::Timestamp => return Wire::WellKnown(WellKnown::Timestamp),
        Primitive::Duration => return Wire::WellKnown(WellKnown::Duration),
    })
}

/// A wrapper message: protobuf cannot say `repeated repeated T`, `map<string, repeated T>` or
/// `repeated optional T`, so the inner container travels as the one field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wrapper {
    /// `ListOfString`, `MapOfOrderLine`, `OptionalInt32`.
    pub name: String,
    /// Its one field (number 1): `items`, `entries` or `value`.
    pub field: &'static str,
}

/// How a field is labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Label {
    /// A plain field (a message field has presence by itself).
    Singular,
    /// proto3 `optional`: a scalar or enum whose absence is kept.
    Optional,
    /// `repeated`.
    Repeated,
    /// `map<string, …>`.
    Map,
}

/// What one element of a field is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Element {
    /// A scalar.
    Scalar(Scalar),
    /// An enum (an `int32` on the wire).
    Enum(NamedRef),
    /// A message of a contract type.
    Message(NamedRef),
    /// `google.protobuf.Timestamp` or `Duration`.
    WellKnown(WellKnown),
    /// A wrapper message around this container ([`Model::wrapper`] names it).
    Wrapper(TypeRef),
}

/// A field's protobuf shape: its label and its element.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shape {
    /// `optional`, `repeated`, `map` or none.
    pub label: Label,
    /// What each value is.
    pub element: Element,
}

/// The protobuf model of one contract's types, seen from that contract.
pub(crate) struct Model<'a> {
    ir: &'a Ir,
    home: &'a ContractId,
}

impl<'a> Model<'a> {
    /// The model for the contract `home` of `ir`.
    pub fn new(ir: &'a Ir, home: &'a ContractId) -> Self {
        Model { ir, home }
    }

    /// What a named type is.
    pub fn kind(&self, r: &NamedRef) -> Option<&'a TypeKind> {
        self.ir.kind(r)
    }

    /// `ty` with its newtypes unwrapped: what goes on the wire (newtypes have no protobuf
    /// form of their own).
    pub fn wire(&self, ty: &TypeRef) -> TypeRef {
        let mut current = ty.clone();
        for _ in 0..32 {
            match &current {
                TypeRef::Named(r) => match self.kind(r) {
                    Some(TypeKind::Newtype { inner, .. }) => current = inner.clone(),
                    _ => return current,
                },
                _ => return current,
            }
        }
        current
    }

    /// Is `r` an enum (an `int32` on the wire)?
    pub fn is_enum(&self, r: &NamedRef) -> bool {
        matches!(self.kind(r), Some(TypeKind::Enum(_)))
    }

    /// Does `ty` travel as a scalar or an enum — the values proto3 `optional` applies to?
    /// (Messages and well-known types have presence already.)
    pub fn has_scalar_form(&self, ty: &TypeRef) -> bool {
        match self.wire(ty) {
            TypeRef::Prim(p) => matches!(primitive(p), Wire::Scalar(_)),
            TypeRef::Named(r) => self.is_enum(&r),
            _ => false,
        }
    }

    /// The shape of a field of type `ty`: `optional<list<T>>` travels as `repeated T` (absent
    /// and empty alike), an optional scalar or enum as proto3 `optional`, an optional message
    /// as a plain message field; lists are `repeated`, maps `map<string, …>`; an element
    /// that is itself a container is a wrapper.
    pub fn shape(&self, ty: &TypeRef) -> Shape {
        match self.wire(ty) {
            TypeRef::Optional(inner) => match self.wire(&inner) {
                container @ (TypeRef::List(_) | TypeRef::Map(_)) => self.shape(&container),
                other if self.has_scalar_form(&other) => Shape {
                    label: Label::Optional,
                    element: self.element(&other),
                },
                other => Shape {
                    label: Label::Singular,
                    element: self.element(&other),
                },
            },
            TypeRef::List(item) => Shape {
                label: Label::Repeated,
                element: self.element(&item),
            },
            TypeRef::Map(value) => Shape {
                label: Label::Map,
                element: self.element(&value),
            },
            other => Shape {
                label: Label::Singular,
                element: self.element(&other),
            },
        }
    }

    /// What a value of `ty` is as one element (of a field, a list or a map).
    pub fn element(&self, ty: &TypeRef) -> Element {
        match self.wire(ty) {
            TypeRef::Prim(p) => match primitive(p) {
                Wire::Scalar(s) => Element::Scalar(s),
                Wire::WellKnown(w) => Element::WellKnown(w),
            },
            TypeRef::Named(r) if self.is_enum(&r) => Element::Enum(r),
            TypeRef::Named(r) => Element::Message(r),
            container => Element::Wrapper(container),
        }
    }

    /// The name a message of `r` has in this contract's protobuf: its own name at home, the
    /// service, major and name (`PricingV1Money`) for another contract's.
    pub fn local_name(&self, r: &NamedRef) -> String {
        if &r.contract == self.home {
            r.name.clone()
        } else {
            format!(
                "{}V{}{}",
                convert(&r.contract.service, Case::Pascal),
                r.contract.major,
                r.name
            )
        }
    }

    /// The wrapper for a container `ty` (a list, map or optional) that sits where protobuf
    /// allows only an element: named for what it holds, so both writers name it alike.
    pub fn wrapper(&self, ty: &TypeRef) -> Wrapper {
        let (prefix, field) = match self.wire(ty) {
            TypeRef::List(_) => ("ListOf", "items"),
            TypeRef::Map(_) => ("MapOf", "entries"),
            _ => ("Optional", "value"),
        };
        Wrapper {
            name: format!("{prefix}{}", self.spelled(&self.inner(ty))),
            field,
        }
    }

    /// The element type a container holds.
    fn inner(&self, ty: &TypeRef) -> TypeRef {
        match self.wire(ty) {
            TypeRef::List(i) | TypeRef::Map(i) | TypeRef::Optional(i) => *i,
            other => other,
        }
    }

    /// A type's part of a wrapper name: `String`, `Timestamp`, `OrderLine`, `PricingV1Money`,
    /// `ListOfString` (wrappers of wrappers nest).
    fn spelled(&self, ty: &TypeRef) -> String {
        match self.wire(ty) {
            TypeRef::Prim(p) => match primitive(p) {
                Wire::Scalar(s) => convert(s.proto(), Case::Pascal),
                Wire::WellKnown(WellKnown::Timestamp) => "Timestamp".into(),
                Wire::WellKnown(WellKnown::Duration) => "Duration".into(),
            },
            TypeRef::Named(r) => self.local_name(&r),
            container => self.wrapper(&container).name,
        }
    }
}

/// The types and declared errors some gRPC operation reaches, across every contract. Each is
/// a protobuf message (or enum, or the value a newtype holds) and gets its impls once, in
/// its own contract's module, whichever contract's operations reach it.
#[derive(Debug, Default)]
pub(crate) struct Reached {
    /// Named types, by contract and name.
    types: BTreeSet<(ContractId, String)>,
    /// Declared errors, by contract and name.
    errors: BTreeSet<(ContractId, String)>,
}

impl Reached {
    /// What the gRPC operations of `ir` reach (nothing when gRPC code is not emitted).
    pub fn of(ir: &Ir, grpc: bool) -> Reached {
        let mut reached = Reached::default();
        if !grpc {
            return reached;
        }
        for c in &ir.contracts {
            for op in c.operations.iter().filter(|o| o.grpc) {
                if let Some(input) = &op.input {
                    reached.reach(ir, input);
                }
                if let Some(TypeRef::Named(output)) = &op.output {
                    reached.reach(ir, output);
                }
                for e in &op.errors {
                    let Some(def) = c.errors.iter().find(|d| &d.name == e) else {
                        continue;
                    };
                    if reached.errors.insert((c.id.clone(), e.clone())) {
                        for f in &def.fields {
                            reached.reach_type(ir, &f.ty);
                        }
                    }
                }
            }
        }
        reached
    }

    fn reach(&mut self, ir: &Ir, r: &NamedRef) {
        if !self.types.insert((r.contract.clone(), r.name.clone())) {
            return;
        }
        match ir.kind(r) {
            Some(TypeKind::Struct(fields)) => {
                for f in fields {
                    self.reach_type(ir, &f.ty);
                }
            }
            Some(TypeKind::Union(u)) => {
                for v in &u.variants {
                    self.reach(ir, &v.ty);
                }
            }
            Some(TypeKind::Newtype { inner, .. }) => self.reach_type(ir, inner),
            Some(TypeKind::Enum(_)) | None => {}
        }
    }

    fn reach_type(&mut self, ir: &Ir, t: &TypeRef) {
        match t {
            TypeRef::Named(r) => self.reach(ir, r),
            TypeRef::List(i) | TypeRef::Map(i) | TypeRef::Optional(i) => self.reach_type(ir, i),
            TypeRef::Prim(_) => {}
        }
    }

    /// Is the type `name` of contract `c` reached?
    pub fn has_type(&self, c: &ContractId, name: &str) -> bool {
        self.types.contains(&(c.clone(), name.to_string()))
    }

    /// Is the declared error `name` of contract `c` reached?
    pub fn has_error(&self, c: &ContractId, name: &str) -> bool {
        self.errors.contains(&(c.clone(), name.to_string()))
    }

    /// Does contract `c` hold anything reached?
    pub fn any_in(&self, c: &ContractId) -> bool {
        self.types.iter().chain(&self.errors).any(|(id, _)| id == c)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrappers_are_named_for_what_they_hold() {
        let contracts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let ir = crate::check(&[contracts])
            .ir
            .expect("the fixtures are valid");
        let home = &ir.contracts[0].id;
        let m = super::Model::new(&ir, home);
        use crate::ast::Primitive::{String as S, U32};
        use crate::ir::TypeRef::{List, Map, Optional, Prim};
        let list_of = |t| List(Box::new(t));
        assert_eq!(m.wrapper(&list_of(Prim(S))).name, "ListOfString");
        assert_eq!(m.wrapper(&list_of(Prim(S))).field, "items");
        assert_eq!(
            m.wrapper(&Map(Box::new(list_of(Prim(U32))))).name,
            "MapOfListOfUint32"
        );
        assert_eq!(m.wrapper(&Optional(Box::new(Prim(U32)))).field, "value");
    }
}
