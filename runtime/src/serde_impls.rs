//! serde's `Serialize` and `Deserialize` for generated structs and open enums, written once
//! here and reached through two macros (`__serde_struct!`, and `__open_enum!` in
//! `validate.rs`), instead of derived per type.
//!
//! Why not the derives: for every struct, serde's `Deserialize` derive writes a field-name
//! enum with its own visitor and two visitors over the struct's fields, and for an open enum a
//! buffered two-attempt body; the derive macro itself runs unoptimised in a debug build. On a
//! 500-operation contract that was about two fifths of the generated crate's build
//! (BENCHMARKS.md, "where the everything crate's time goes"). Here a struct supplies only a
//! `serialize` and a [`Fields::build`], every line a call into this module; the visitor, the
//! key lookup and the errors are [`StructVisitor`]'s, compiled once.
//!
//! What a client sees is unchanged: the same JSON is written (an optional field that is
//! `None` is left out), the same inputs are accepted (an object, or an array in field order,
//! as the derive accepts), unknown fields are skipped, and every error has the derive's text
//! (`missing field`, `duplicate field`, `invalid length … expected struct X with N
//! elements`, `invalid type: … expected struct X`, `data did not match any variant of
//! untagged enum X`), at the same position. `runtime/tests/derive_parity.rs` holds both to
//! the derives on a corpus and on seeded random JSON documents, and, through `serde_test`,
//! on the serializer calls and on what other self-describing formats can send an enum.

use serde::de::{
    self, DeserializeSeed, Deserializer, Expected, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A generated struct's side of deserialization, written by `__serde_struct!`: its name, its
/// fields' wire names, and `build`, which reads the fields from a [`Source`] (an object or an
/// array) and assembles the struct. Everything else — the visitor, the key lookup, the errors
/// — is [`StructVisitor`]'s, compiled once for every struct.
#[doc(hidden)]
pub trait Fields: Sized {
    /// The Rust name, as the derive reports it (`expected struct Order`).
    const NAME: &'static str;
    /// The wire names, in declaration order.
    const FIELDS: &'static [&'static str];

    /// Reads every field `source` offers, then assembles the struct.
    fn build<'de, S: Source<'de>>(source: S) -> Result<Self, S::Error>;
}

/// Where a struct's fields come from: a JSON object ([`FromMap`]) or an array standing for the
/// struct in field order ([`FromSeq`]), as serde's derive accepts both.
#[doc(hidden)]
pub trait Source<'de> {
    /// The deserializer's error.
    type Error: de::Error;

    /// The index of the next field present, an index past the last field for one this
    /// version does not know, or `None` at the end.
    fn next_field(&mut self) -> Result<Option<usize>, Self::Error>;

    /// Reads the field `next_field` named into `slot`. `required` says what an array that
    /// ends before the field means: an error, or the field's default.
    fn read<T: Deserialize<'de>>(
        &mut self,
        slot: &mut Option<T>,
        wire: &'static str,
        required: bool,
    ) -> Result<(), Self::Error>;

    /// Skips the value of a field this version does not know.
    fn skip(&mut self) -> Result<(), Self::Error>;
}

/// The visitor every generated struct deserializes through.
#[doc(hidden)]
pub struct StructVisitor<T>(std::marker::PhantomData<T>);

impl<T> StructVisitor<T> {
    /// The visitor for `T`.
    pub const NEW: Self = StructVisitor(std::marker::PhantomData);
}

impl<'de, T: Fields> Visitor<'de> for StructVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", T::NAME)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::build(FromSeq {
            seq,
            next: 0,
            expected: Elements(T::NAME, T::FIELDS.len()),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::build(FromMap {
            map,
            fields: T::FIELDS,
        })
    }
}

/// A struct's fields from an object: each key looked up among the wire names.
struct FromMap<A> {
    map: A,
    fields: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> Source<'de> for FromMap<A> {
    type Error = A::Error;

    fn next_field(&mut self) -> Result<Option<usize>, A::Error> {
        self.map.next_key_seed(FieldIndex(self.fields))
    }

    fn read<T: Deserialize<'de>>(
        &mut self,
        slot: &mut Option<T>,
        wire: &'static str,
        _required: bool,
    ) -> Result<(), A::Error> {
        if slot.is_some() {
            return Err(de::Error::duplicate_field(wire));
        }
        *slot = Some(self.map.next_value()?);
        Ok(())
    }

    fn skip(&mut self) -> Result<(), A::Error> {
        self.map.next_value::<IgnoredAny>().map(|_| ())
    }
}

/// A struct's fields from an array, in declaration order. As with the derive, an array that
/// ends early leaves the remaining optional fields at their default and is `invalid length`
/// at the first required one; elements past the last field are the deserializer's to refuse.
struct FromSeq<A> {
    seq: A,
    next: usize,
    expected: Elements,
}

impl<'de, A: SeqAccess<'de>> Source<'de> for FromSeq<A> {
    type Error = A::Error;

    fn next_field(&mut self) -> Result<Option<usize>, A::Error> {
        if self.next == self.expected.1 {
            return Ok(None);
        }
        self.next += 1;
        Ok(Some(self.next - 1))
    }

    fn read<T: Deserialize<'de>>(
        &mut self,
        slot: &mut Option<T>,
        _wire: &'static str,
        required: bool,
    ) -> Result<(), A::Error> {
        // Asked again after the end, as the derive asks: a sequence keeps answering `None`.
        *slot = self.seq.next_element()?;
        if slot.is_none() && required {
            return Err(de::Error::invalid_length(self.next - 1, &self.expected));
        }
        Ok(())
    }

    fn skip(&mut self) -> Result<(), A::Error> {
        Ok(()) // every index an array gives names a field
    }
}

/// Reads a map key as the index in `fields` of the field it names; `fields.len()` for a key
/// that names none (skipped, as the derive does without `deny_unknown_fields`).
#[derive(Clone, Copy)]
struct FieldIndex(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldIndex {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldIndex {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        let unknown = self.0.len();
        Ok(usize::try_from(v)
            .ok()
            .filter(|i| *i < unknown)
            .unwrap_or(unknown))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        Ok(self.0.iter().position(|f| *f == v).unwrap_or(self.0.len()))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<usize, E> {
        Ok(self
            .0
            .iter()
            .position(|f| f.as_bytes() == v)
            .unwrap_or(self.0.len()))
    }
}

/// What a struct read from an array expects: `struct Order with 3 elements`, the derive's
/// words for an array too short.
struct Elements(&'static str, usize);

impl Expected for Elements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            1 => write!(f, "struct {} with 1 element", self.0),
            n => write!(f, "struct {} with {n} elements", self.0),
        }
    }
}

/// A field the contract requires.
#[doc(hidden)]
pub mod required {
    use super::*;

    /// Written always: one field.
    pub fn len<T>(_: &T) -> usize {
        1
    }

    /// Writes the field.
    pub fn write<S: SerializeStruct, T: Serialize>(
        state: &mut S,
        wire: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        state.serialize_field(wire, value)
    }

    /// Reads the field; an array that ends before it is an error.
    pub fn read<'de, S: Source<'de>, T: Deserialize<'de>>(
        source: &mut S,
        slot: &mut Option<T>,
        wire: &'static str,
    ) -> Result<(), S::Error> {
        source.read(slot, wire, true)
    }

    /// The field's value, or, when the document left it out, what its type makes of a
    /// missing value: `None` for an `Option`, else the `missing field` error.
    pub fn take<'de, T: Deserialize<'de>, E: de::Error>(
        slot: Option<T>,
        wire: &'static str,
    ) -> Result<T, E> {
        match slot {
            Some(value) => Ok(value),
            None => T::deserialize(Missing(wire, std::marker::PhantomData)),
        }
    }
}

/// An optional field (`#[serde(default, skip_serializing_if = "Option::is_none")]` in the
/// derive's terms).
#[doc(hidden)]
pub mod default {
    use super::*;

    /// Written only when it has a value.
    pub fn len<T>(value: &Option<T>) -> usize {
        usize::from(value.is_some())
    }

    /// Writes the field when it has a value; skips it (left out of the JSON) when `None`.
    pub fn write<S: SerializeStruct, T: Serialize>(
        state: &mut S,
        wire: &'static str,
        value: &Option<T>,
    ) -> Result<(), S::Error> {
        match value {
            Some(_) => state.serialize_field(wire, value),
            None => state.skip_field(wire),
        }
    }

    /// Reads the field; an array that ends before it leaves it at its default.
    pub fn read<'de, S: Source<'de>, T: Deserialize<'de>>(
        source: &mut S,
        slot: &mut Option<T>,
        wire: &'static str,
    ) -> Result<(), S::Error> {
        source.read(slot, wire, false)
    }

    /// The field's value, or its default when the document left it out.
    pub fn take<T: Default, E>(slot: Option<T>, _wire: &'static str) -> Result<T, E> {
        Ok(slot.unwrap_or_default())
    }
}

/// A field the document left out, as serde's derive presents it to the field's type: an
/// `Option` reads it as `None`; anything else fails with `missing field`.
struct Missing<E>(&'static str, std::marker::PhantomData<E>);

impl<'de, E: de::Error> Deserializer<'de> for Missing<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, E> {
        Err(E::missing_field(self.0))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Writes an open enum's value as the derive does: a known value as its unit variant (a
/// string in JSON), one this version does not know as the string it came as.
#[doc(hidden)]
pub fn serialize_enum<S: serde::Serializer>(
    serializer: S,
    name: &'static str,
    known: &'static [&'static str],
    value: &str,
    unrecognized: bool,
) -> Result<S::Ok, S::Error> {
    match known.iter().position(|k| *k == value) {
        Some(index) if !unrecognized => {
            // `known` comes from a contract's enum, far below `u32::MAX` values.
            serializer.serialize_unit_variant(name, index as u32, known[index])
        }
        _ => serializer.serialize_str(value),
    }
}

/// Reads an open enum's wire value, as the derive of an enum whose last variant is
/// `#[serde(untagged)] Unrecognized(String)` does: `Ok` with a known value named by a string,
/// or by the one-entry object `{"known": null}` (a variant with its unit value); `Err` with
/// any other string (or UTF-8 bytes), which is `Unrecognized`. Anything else is the derive's
/// error, `data did not match any variant of untagged enum …`.
///
/// The whole value is read first, every part parsed as the derive's buffer parses it, so an
/// error inside it (a number out of range, a bad escape) is the same error at the same
/// position, and the derive's own error comes after the value, as there.
#[doc(hidden)]
pub fn open_enum<'de, D: Deserializer<'de>>(
    deserializer: D,
    name: &'static str,
    known: &'static [&'static str],
) -> Result<Result<&'static str, String>, D::Error> {
    let found = |wire: &str| known.iter().copied().find(|k| *k == wire);
    let mut entries = match deserializer.deserialize_any(Shape)? {
        Shaped::Str(value) => return Ok(found(&value).ok_or(value)),
        Shaped::Bytes(value) => return Ok(Err(value)),
        Shaped::Map(entries) => entries,
        Shaped::Other => Vec::new(),
    };
    let known_entry = match entries.pop() {
        Some((key, true)) if entries.is_empty() => match key {
            Key::Name(wire) => found(&wire),
            Key::Bytes(wire) => known.iter().copied().find(|k| k.as_bytes() == wire),
            Key::Index(index) => usize::try_from(index)
                .ok()
                .and_then(|i| known.get(i).copied()),
            Key::Other => None,
        },
        _ => None,
    };
    known_entry.map(Ok).ok_or_else(|| {
        de::Error::custom(format_args!(
            "data did not match any variant of untagged enum {name}"
        ))
    })
}

/// An open enum's value, read whole: a string, UTF-8 bytes, an object's entries (each key
/// with whether its value was the unit value, `null` in JSON), or anything else.
enum Shaped {
    Str(String),
    Bytes(String),
    Map(Vec<(Key, bool)>),
    Other,
}

/// A key of that object, as a variant name can be given: a string, bytes, or an index.
enum Key {
    Name(String),
    Bytes(Vec<u8>),
    Index(u64),
    Other,
}

struct Shape;

impl<'de> Visitor<'de> for Shape {
    type Value = Shaped;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Shaped, E> {
        Ok(Shaped::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Shaped, E> {
        Ok(Shaped::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Shaped, E> {
        Ok(match std::str::from_utf8(v) {
            Ok(text) => Shaped::Bytes(text.to_owned()),
            Err(_) => Shaped::Other,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shaped, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            entries.push((key, map.next_value_seed(UnitSeed)?));
        }
        Ok(Shaped::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shaped, A::Error> {
        Drain.visit_seq(seq).map(|_| Shaped::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shaped, D::Error> {
        deserializer.deserialize_any(Drain).map(|_| Shaped::Other)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Shaped, D::Error> {
        deserializer.deserialize_any(Drain).map(|_| Shaped::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shaped, E> {
        Ok(Shaped::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shaped, E> {
        Ok(Shaped::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shaped, E> {
        Ok(Shaped::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shaped, E> {
        Ok(Shaped::Other)
    }

    fn visit_char<E: de::Error>(self, _: char) -> Result<Shaped, E> {
        Ok(Shaped::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shaped, E> {
        Ok(Shaped::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Shaped, E> {
        Ok(Shaped::Other)
    }
}

/// Reads a key of an open enum's object.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key::Name(v.to_owned()))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key, E> {
        Ok(Key::Bytes(v.to_owned()))
    }

    // Only 8- and 64-bit unsigned numbers name a variant by index, as in serde's buffer.
    fn visit_u8<E: de::Error>(self, v: u8) -> Result<Key, E> {
        Ok(Key::Index(v.into()))
    }

    fn visit_u16<E: de::Error>(self, _: u16) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_u32<E: de::Error>(self, _: u32) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(Key::Index(v))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_char<E: de::Error>(self, _: char) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_any(Drain).map(|_| Key::Other)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_any(Drain).map(|_| Key::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Key, A::Error> {
        Drain.visit_seq(seq).map(|_| Key::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key, A::Error> {
        Drain.visit_map(map).map(|_| Key::Other)
    }
}

/// Reads a value of an open enum's object: whether it is the unit value (`null` in JSON).
struct UnitSeed;

impl<'de> DeserializeSeed<'de> for UnitSeed {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UnitSeed {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_char<E: de::Error>(self, _: char) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(Drain).map(|_| false)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(Drain).map(|_| false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        Drain.visit_seq(seq).map(|_| false)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        Drain.visit_map(map).map(|_| false)
    }
}

/// Reads any value to its end and keeps nothing. Unlike `IgnoredAny`, every part is read
/// with `deserialize_any`, so it is parsed (and refused) as serde's buffer parses it:
/// serde_json's skipping of an ignored value checks neither numbers nor escapes.
struct Drain;

impl<'de> DeserializeSeed<'de> for Drain {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Drain {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_char<E: de::Error>(self, _: char) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Drain)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry_seed(Drain, Drain)?.is_some() {}
        Ok(())
    }
}

/// `Serialize` and `Deserialize` for a generated struct with named fields, with the derives'
/// behaviour (see the module docs): `__serde_struct!(Order { 0 id = "id" required, 1 note =
/// "note" default })` — per field its index, name, wire name and whether the contract
/// requires it. Not for hand-written code.
#[doc(hidden)]
#[macro_export]
macro_rules! __serde_struct {
    ($ty:ident { $($index:literal $field:ident = $wire:literal $kind:ident),* $(,)? }) => {
        #[allow(deprecated)]
        impl $crate::__private::serde::Serialize for $ty {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                let len = 0 $(+ $crate::__private::serde_impls::$kind::len(&self.$field))*;
                #[allow(unused_mut)] // a struct without fields writes none
                let mut state = serializer.serialize_struct(::core::stringify!($ty), len)?;
                $($crate::__private::serde_impls::$kind::write(&mut state, $wire, &self.$field)?;)*
                $crate::__private::serde::ser::SerializeStruct::end(state)
            }
        }

        #[allow(deprecated)]
        impl $crate::__private::serde_impls::Fields for $ty {
            const NAME: &'static str = ::core::stringify!($ty);
            const FIELDS: &'static [&'static str] = &[$($wire),*];

            fn build<'de, S: $crate::__private::serde_impls::Source<'de>>(
                mut source: S,
            ) -> ::core::result::Result<Self, S::Error> {
                $(let mut $field = ::core::option::Option::None;)*
                while let ::core::option::Option::Some(index) = source.next_field()? {
                    match index {
                        $($index => $crate::__private::serde_impls::$kind::read(&mut source, &mut $field, $wire),)*
                        _ => source.skip(),
                    }?;
                }
                // `Self`, not the type's name: a type named `S` would be the parameter.
                ::core::result::Result::Ok(Self {
                    $($field: $crate::__private::serde_impls::$kind::take($field, $wire)?,)*
                })
            }
        }

        #[allow(deprecated)]
        impl<'de> $crate::__private::serde::Deserialize<'de> for $ty {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                deserializer.deserialize_struct(
                    <Self as $crate::__private::serde_impls::Fields>::NAME,
                    <Self as $crate::__private::serde_impls::Fields>::FIELDS,
                    $crate::__private::serde_impls::StructVisitor::<Self>::NEW,
                )
            }
        }
    };
}
