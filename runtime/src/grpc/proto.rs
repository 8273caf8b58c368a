//! Protobuf encoding of contract types, written once here so a contract type *is* its
//! protobuf message: no mirror struct, no conversions in and out of it.
//!
//! Generated code implements [`Message`] for each struct, union and declared error that a
//! gRPC operation reaches — its fields by number, each one call into this module — and one
//! macro call ([`__grpc_message!`](crate::__grpc_message),
//! [`__grpc_enum!`](crate::__grpc_enum), [`__grpc_newtype!`](crate::__grpc_newtype)) adds
//! [`Value`] and `prost::Message`. [`Value`] says how one value travels: scalars, strings
//! and bytes as protobuf has them; uuids and decimals as strings; timestamps and durations as
//! the well-known types; a list, map or optional where protobuf allows only an element as
//! the one field of a wrapper message (`ListOfString`) — the same bytes prost writes for the
//! `.proto` the generator emits, so any gRPC library reads them.
//!
//! Decoding checks what the contract's types need and protobuf does not: a uuid or decimal
//! that does not parse, a required message or id that was not sent. Those faults are not
//! wire errors: decoding goes on to the end of the message and reports the first of them in
//! field order (what a field-by-field conversion reported before), as `INVALID_ARGUMENT`.

use prost::encoding::{self, encode_varint, encoded_len_varint, key_len};
use std::collections::BTreeMap;

pub use prost::bytes::{Buf, BufMut};
pub use prost::encoding::{DecodeContext, WireType};
pub use prost::DecodeError;

/// What stops one field from decoding.
#[derive(Debug)]
pub enum Fault {
    /// The bytes are not protobuf (or not this field's wire type): decoding stops.
    Wire(DecodeError),
    /// The value arrived but the contract's type cannot hold it (a uuid that does not parse,
    /// a required message left out): decoding goes on, and the message is refused with this
    /// text.
    Value(String),
}

impl From<DecodeError> for Fault {
    fn from(e: DecodeError) -> Self {
        Fault::Wire(e)
    }
}

/// How one value of a contract type travels: as an element (of a field, a list or a map)
/// and, through the provided methods, as a field of its own. Lists and maps override the
/// field methods (a list field is `repeated`, not a wrapper message).
pub trait Value: Default + Send + Sync {
    /// The wire type of one element.
    const WIRE_TYPE: WireType;
    /// Numbers and enums: a `repeated` field of them is packed.
    const PACKED: bool = false;

    /// Writes one element, without its key (length-prefixed where the wire type says so).
    fn encode_value(&self, buf: &mut impl BufMut);
    /// The length [`encode_value`](Value::encode_value) writes.
    fn value_len(&self) -> usize;
    /// Reads one element of wire type `wire_type` into `self`; `name` is the field's, for
    /// the fault's text.
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault>;
    /// Is this protobuf's default, which a proto3 field without `optional` leaves out?
    fn is_default(&self) -> bool;
    /// The fault for a field of this type that was not sent, if absence is one: messages
    /// are required unless the contract says optional, and an id or decimal cannot be empty.
    fn absent(name: &'static str) -> Option<String> {
        let _ = name;
        None
    }
    /// The fault of a value read from no bytes at all (a map entry without its value, which
    /// is how prost sends a default value): a message checked as empty, an id or decimal
    /// as the empty string.
    fn empty_fault(name: &'static str) -> Option<String> {
        let _ = name;
        None
    }

    /// Writes a field holding this value (left out when it is the default).
    fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        if !self.is_default() {
            encoding::encode_key(tag, Self::WIRE_TYPE, buf);
            self.encode_value(buf);
        }
    }
    /// The length [`encode_field`](Value::encode_field) writes.
    fn field_len(&self, tag: u32) -> usize {
        if self.is_default() {
            0
        } else {
            key_len(tag) + self.value_len()
        }
    }
    /// Reads one occurrence of the field.
    fn merge_field(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        self.merge_value(wire_type, buf, ctx, name)
    }

    /// Writes an optional field: present whenever it is `Some` (proto3 `optional`, or a
    /// message field).
    fn encode_optional(this: Option<&Self>, tag: u32, buf: &mut impl BufMut) {
        if let Some(v) = this {
            encoding::encode_key(tag, Self::WIRE_TYPE, buf);
            v.encode_value(buf);
        }
    }
    /// The length [`encode_optional`](Value::encode_optional) writes.
    fn optional_len(this: Option<&Self>, tag: u32) -> usize {
        this.map_or(0, |v| key_len(tag) + v.value_len())
    }
    /// Reads one occurrence of an optional field.
    fn merge_optional(
        this: &mut Option<Self>,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        this.get_or_insert_with(Self::default)
            .merge_value(wire_type, buf, ctx, name)
    }
}

/// A struct, union or declared error as a protobuf message: its fields by number. The
/// generator writes one impl per type; [`__grpc_message!`](crate::__grpc_message) turns it
/// into a [`Value`] and a `prost::Message`.
pub trait Message: Default + Send + Sync {
    /// Indices (in declaration order) of the fields whose absence is a fault
    /// ([`Value::absent`]).
    const REQUIRED: &'static [usize] = &[];

    /// Writes every field, in field-number order.
    fn encode_fields(&self, buf: &mut impl BufMut);
    /// The length [`encode_fields`](Message::encode_fields) writes.
    fn fields_len(&self) -> usize;
    /// Reads one field (the key is read already), noting in `seen` which field it was and
    /// any fault in its value.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        seen: &mut Seen,
    ) -> Result<(), DecodeError>;
    /// The fault of field `index` not being sent (one of [`REQUIRED`](Message::REQUIRED)).
    fn absent(index: usize) -> Option<String> {
        let _ = index;
        None
    }
}

/// What one message's decoding has seen: which fields arrived, and the first value fault in
/// field order.
#[derive(Debug, Default)]
pub struct Seen {
    bits: u64,
    more: Vec<usize>,
    fault: Option<(usize, String)>,
}

impl Seen {
    /// Notes that field `index` arrived, with `result` of reading it: a wire error stops
    /// decoding; a value fault is kept (the first in field order wins) and decoding goes on.
    pub fn note(&mut self, index: usize, result: Result<(), Fault>) -> Result<(), DecodeError> {
        if index < 64 {
            self.bits |= 1 << index;
        } else if !self.more.contains(&index) {
            self.more.push(index);
        }
        match result {
            Ok(()) => Ok(()),
            Err(Fault::Wire(e)) => Err(e),
            Err(Fault::Value(text)) => {
                self.keep(index, text);
                Ok(())
            }
        }
    }

    fn keep(&mut self, index: usize, text: String) {
        if self.fault.as_ref().is_none_or(|(first, _)| index < *first) {
            self.fault = Some((index, text));
        }
    }

    fn has(&self, index: usize) -> bool {
        if index < 64 {
            self.bits & (1 << index) != 0
        } else {
            self.more.contains(&index)
        }
    }

    /// The message's fault, once every field is read: the first value fault or missing
    /// field, in field order.
    fn fault<M: Message>(mut self) -> Option<String> {
        for &index in M::REQUIRED {
            if !self.has(index) {
                if let Some(text) = M::absent(index) {
                    self.keep(index, text);
                }
            }
        }
        self.fault.map(|(_, text)| text)
    }
}

/// A message being decoded, with what its decoding has seen: what a server decodes a
/// request into (its `prost::Message` impl is the decoding loop) before
/// [`finish`](Decoded::finish) checks it.
#[derive(Debug, Default)]
pub struct Decoded<M> {
    value: M,
    seen: Seen,
}

impl<M: Message> Decoded<M> {
    /// The message, or the fault that refuses it (a uuid that does not parse, a required
    /// field not sent).
    pub fn finish(self) -> Result<M, String> {
        match self.seen.fault::<M>() {
            Some(text) => Err(text),
            None => Ok(self.value),
        }
    }
}

impl<M: Message> prost::Message for Decoded<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.value.encode_fields(buf)
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        self.value
            .merge_field(tag, wire_type, buf, ctx, &mut self.seen)
    }

    fn encoded_len(&self) -> usize {
        self.value.fields_len()
    }

    fn clear(&mut self) {
        *self = Decoded::default();
    }
}

/// Decodes a whole message, checked as a server checks a request.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, String> {
    <Decoded<M> as prost::Message>::decode(bytes)
        .map_err(|e| format!("not a valid message: {e}"))?
        .finish()
}

// ---- the calls generated `Message` impls make, one per field ----

/// Writes a field (proto3: left out when default; a message always).
pub fn field<T: Value>(tag: u32, value: &T, buf: &mut impl BufMut) {
    value.encode_field(tag, buf)
}

/// The length [`field`] writes.
pub fn field_len<T: Value>(tag: u32, value: &T) -> usize {
    value.field_len(tag)
}

/// Writes an optional field (present when `Some`; an optional list or map as its items).
pub fn optional<T: Value>(tag: u32, value: &Option<T>, buf: &mut impl BufMut) {
    T::encode_optional(value.as_ref(), tag, buf)
}

/// The length [`optional`] writes.
pub fn optional_len<T: Value>(tag: u32, value: &Option<T>) -> usize {
    T::optional_len(value.as_ref(), tag)
}

/// Reads one occurrence of a field.
pub fn merge<T: Value>(
    wire_type: WireType,
    value: &mut T,
    buf: &mut impl Buf,
    ctx: DecodeContext,
    name: &'static str,
) -> Result<(), Fault> {
    value.merge_field(wire_type, buf, ctx, name)
}

/// Reads one occurrence of an optional field.
pub fn merge_optional<T: Value>(
    wire_type: WireType,
    value: &mut Option<T>,
    buf: &mut impl Buf,
    ctx: DecodeContext,
    name: &'static str,
) -> Result<(), Fault> {
    T::merge_optional(value, wire_type, buf, ctx, name)
}

/// Skips a field this version does not know (a newer version's, kept out of the value).
pub fn skip(
    tag: u32,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    encoding::skip_field(wire_type, tag, buf, ctx)
}

/// A plain field (`T`): the calls [`__grpc_struct!`](crate::__grpc_struct) makes for it.
pub mod plain {
    use super::*;

    /// Writes the field (proto3: left out when default; a message always).
    pub fn encode<T: Value>(tag: u32, value: &T, buf: &mut impl BufMut) {
        value.encode_field(tag, buf)
    }
    /// The length [`encode`] writes.
    pub fn len<T: Value>(tag: u32, value: &T) -> usize {
        value.field_len(tag)
    }
    /// Reads one occurrence of the field.
    pub fn merge<T: Value>(
        wire_type: WireType,
        value: &mut T,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        value.merge_field(wire_type, buf, ctx, name)
    }
}

/// An optional field (`Option<T>`): the calls [`__grpc_struct!`](crate::__grpc_struct)
/// makes for it.
pub mod optional {
    use super::*;

    /// Writes the field when `Some` (an optional list or map as its items).
    pub fn encode<T: Value>(tag: u32, value: &Option<T>, buf: &mut impl BufMut) {
        T::encode_optional(value.as_ref(), tag, buf)
    }
    /// The length [`encode`] writes.
    pub fn len<T: Value>(tag: u32, value: &Option<T>) -> usize {
        T::optional_len(value.as_ref(), tag)
    }
    /// Reads one occurrence of the field.
    pub fn merge<T: Value>(
        wire_type: WireType,
        value: &mut Option<T>,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        T::merge_optional(value, wire_type, buf, ctx, name)
    }
}

/// [`Value::absent`] of a field's type, named by the field (a value of it).
pub fn absent_like<T: Value>(_: &T, name: &'static str) -> Option<String> {
    T::absent(name)
}

/// [`Value::absent`] of `T`, for a generated [`Message::absent`].
pub fn absent<T: Value>(name: &'static str) -> Option<String> {
    T::absent(name)
}

/// Reads the variant `tag` of a union (a `oneof`): into the value already there when it is
/// that variant, as prost merges, else into a new one.
pub fn merge_variant<U: Default, T: Value>(
    union: &mut U,
    take: fn(U) -> Option<T>,
    make: fn(T) -> U,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
    name: &'static str,
) -> Result<(), Fault> {
    let mut value = take(std::mem::take(union)).unwrap_or_default();
    let read = value.merge_field(wire_type, buf, ctx, name);
    *union = make(value);
    read
}

// ---- what the macros' impls call ----

/// A message as an element: its length, then its fields.
pub fn message_encode<M: Message>(message: &M, buf: &mut impl BufMut) {
    encode_varint(message.fields_len() as u64, buf);
    message.encode_fields(buf);
}

/// The length [`message_encode`] writes.
pub fn message_len<M: Message>(message: &M) -> usize {
    let len = message.fields_len();
    encoded_len_varint(len as u64) + len
}

/// Reads a message element into `message` (prost's loop, with its recursion limit), then
/// checks it: its first fault is this field's.
pub fn message_merge<M: Message>(
    message: &mut M,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), Fault> {
    let mut decoding = Decoded {
        value: std::mem::take(message),
        seen: Seen::default(),
    };
    let read = encoding::message::merge(wire_type, &mut decoding, buf, ctx);
    let Decoded { value, seen } = decoding;
    *message = value;
    read?;
    match seen.fault::<M>() {
        Some(text) => Err(Fault::Value(text)),
        None => Ok(()),
    }
}

/// `prost::Message::merge_field` of a contract type decoded with prost's own API (which has
/// no place for the checks of a whole message): a value fault is a decode error.
pub fn message_merge_field<M: Message>(
    message: &mut M,
    tag: u32,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    let mut seen = Seen::default();
    message.merge_field(tag, wire_type, buf, ctx, &mut seen)?;
    match seen.fault {
        #[allow(deprecated)] // prost's only way to say what is wrong.
        Some((_, text)) => Err(DecodeError::new(text)),
        None => Ok(()),
    }
}

/// A wire error of this module's own (prost's kinds are private to it).
fn wire_error(text: &'static str) -> Fault {
    #[allow(deprecated)] // prost's only public constructor.
    Fault::Wire(DecodeError::new(text))
}

/// The fault of a message read from no bytes: its first required field.
pub fn empty_message_fault<M: Message>() -> Option<String> {
    Seen::default().fault::<M>()
}

/// A required message field that was not sent.
pub fn missing(name: &str) -> String {
    super::missing(name)
}

/// A contract enum as an element: its number.
pub fn enum_encode<E: super::ProtoEnum>(value: &E, buf: &mut impl BufMut) {
    encode_varint(value.to_proto() as u64, buf)
}

/// The length [`enum_encode`] writes.
pub fn enum_len<E: super::ProtoEnum>(value: &E) -> usize {
    encoded_len_varint(value.to_proto() as u64)
}

/// Reads an enum number (a number this version does not know is kept as `Unrecognized`).
pub fn enum_merge<E: super::ProtoEnum>(
    value: &mut E,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), Fault> {
    let mut n = 0i32;
    encoding::int32::merge(wire_type, &mut n, buf, ctx)?;
    *value = E::from_proto(n);
    Ok(())
}

// ---- scalars ----

macro_rules! varint {
    ($($ty:ty => $module:ident),* $(,)?) => {$(
        impl Value for $ty {
            const WIRE_TYPE: WireType = WireType::Varint;
            const PACKED: bool = true;
            fn encode_value(&self, buf: &mut impl BufMut) {
                // Negative `int32`s are sign-extended to ten bytes, as protobuf says.
                encode_varint(*self as u64, buf)
            }
            fn value_len(&self) -> usize {
                encoded_len_varint(*self as u64)
            }
            fn merge_value(
                &mut self,
                wire_type: WireType,
                buf: &mut impl Buf,
                ctx: DecodeContext,
                _: &'static str,
            ) -> Result<(), Fault> {
                Ok(encoding::$module::merge(wire_type, self, buf, ctx)?)
            }
            fn is_default(&self) -> bool {
                *self == 0
            }
        }
    )*};
}

varint!(i32 => int32, i64 => int64, u32 => uint32, u64 => uint64);

impl Value for bool {
    const WIRE_TYPE: WireType = WireType::Varint;
    const PACKED: bool = true;
    fn encode_value(&self, buf: &mut impl BufMut) {
        encode_varint(u64::from(*self), buf)
    }
    fn value_len(&self) -> usize {
        1
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        _: &'static str,
    ) -> Result<(), Fault> {
        Ok(encoding::bool::merge(wire_type, self, buf, ctx)?)
    }
    fn is_default(&self) -> bool {
        !*self
    }
}

impl Value for f64 {
    const WIRE_TYPE: WireType = WireType::SixtyFourBit;
    const PACKED: bool = true;
    fn encode_value(&self, buf: &mut impl BufMut) {
        buf.put_f64_le(*self)
    }
    fn value_len(&self) -> usize {
        8
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        _: &'static str,
    ) -> Result<(), Fault> {
        Ok(encoding::double::merge(wire_type, self, buf, ctx)?)
    }
    fn is_default(&self) -> bool {
        *self == 0.0
    }
}

/// A length-delimited byte string.
fn put_bytes(bytes: &[u8], buf: &mut impl BufMut) {
    encode_varint(bytes.len() as u64, buf);
    buf.put_slice(bytes);
}

fn bytes_len(len: usize) -> usize {
    encoded_len_varint(len as u64) + len
}

impl Value for String {
    const WIRE_TYPE: WireType = WireType::LengthDelimited;
    fn encode_value(&self, buf: &mut impl BufMut) {
        put_bytes(self.as_bytes(), buf)
    }
    fn value_len(&self) -> usize {
        bytes_len(self.len())
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        _: &'static str,
    ) -> Result<(), Fault> {
        Ok(encoding::string::merge(wire_type, self, buf, ctx)?)
    }
    fn is_default(&self) -> bool {
        self.is_empty()
    }
}

impl Value for crate::types::Bytes {
    const WIRE_TYPE: WireType = WireType::LengthDelimited;
    fn encode_value(&self, buf: &mut impl BufMut) {
        put_bytes(&self.0, buf)
    }
    fn value_len(&self) -> usize {
        bytes_len(self.0.len())
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        _: &'static str,
    ) -> Result<(), Fault> {
        Ok(encoding::bytes::merge(wire_type, &mut self.0, buf, ctx)?)
    }
    fn is_default(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads a string and parses it (a uuid, a decimal): a text that does not parse is a value
/// fault naming the field, as the `.proto`'s `string` cannot say more.
fn merge_parsed<T: std::str::FromStr>(
    value: &mut T,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
    name: &'static str,
) -> Result<(), Fault>
where
    T::Err: std::fmt::Display,
{
    let mut text = String::new();
    encoding::string::merge(wire_type, &mut text, buf, ctx)?;
    *value = super::parse(name, &text).map_err(Fault::Value)?;
    Ok(())
}

/// The fault of a parsed field left out: what parsing the empty string it reads as says.
fn absent_parsed<T: std::str::FromStr>(name: &'static str) -> Option<String>
where
    T::Err: std::fmt::Display,
{
    super::parse::<T>(name, "").err()
}

impl Value for crate::types::Uuid {
    const WIRE_TYPE: WireType = WireType::LengthDelimited;
    fn encode_value(&self, buf: &mut impl BufMut) {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        put_bytes(self.hyphenated().encode_lower(&mut text).as_bytes(), buf)
    }
    fn value_len(&self) -> usize {
        bytes_len(uuid::fmt::Hyphenated::LENGTH)
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        merge_parsed(self, wire_type, buf, ctx, name)
    }
    /// Never: a uuid's text is never empty, so the field is always written.
    fn is_default(&self) -> bool {
        false
    }
    fn absent(name: &'static str) -> Option<String> {
        absent_parsed::<Self>(name)
    }
    fn empty_fault(name: &'static str) -> Option<String> {
        absent_parsed::<Self>(name)
    }
}

impl Value for crate::types::Decimal {
    const WIRE_TYPE: WireType = WireType::LengthDelimited;
    fn encode_value(&self, buf: &mut impl BufMut) {
        put_bytes(self.to_string().as_bytes(), buf)
    }
    fn value_len(&self) -> usize {
        bytes_len(decimal_text_len(self))
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        merge_parsed(self, wire_type, buf, ctx, name)
    }
    /// Never: a decimal's text is never empty (zero is `0`).
    fn is_default(&self) -> bool {
        false
    }
    fn absent(name: &'static str) -> Option<String> {
        absent_parsed::<Self>(name)
    }
    fn empty_fault(name: &'static str) -> Option<String> {
        absent_parsed::<Self>(name)
    }
}

/// The length of a decimal's text, counted without building it.
fn decimal_text_len(value: &crate::types::Decimal) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = std::fmt::Write::write_fmt(&mut count, format_args!("{value}"));
    count.0
}

/// A well-known type's message around a contract value (`Timestamp`, `Duration`): written
/// as the message, always present as a field, required unless optional.
macro_rules! well_known {
    ($ty:ty, $message:ty, $to:path, $from:path) => {
        impl Value for $ty {
            const WIRE_TYPE: WireType = WireType::LengthDelimited;
            fn encode_value(&self, buf: &mut impl BufMut) {
                let m = $to(*self);
                encode_varint(prost::Message::encoded_len(&m) as u64, buf);
                prost::Message::encode_raw(&m, buf);
            }
            fn value_len(&self) -> usize {
                let len = prost::Message::encoded_len(&$to(*self));
                encoded_len_varint(len as u64) + len
            }
            fn merge_value(
                &mut self,
                wire_type: WireType,
                buf: &mut impl Buf,
                ctx: DecodeContext,
                _: &'static str,
            ) -> Result<(), Fault> {
                let mut m: $message = $to(*self);
                encoding::message::merge(wire_type, &mut m, buf, ctx)?;
                *self = $from(m).map_err(Fault::Value)?;
                Ok(())
            }
            fn is_default(&self) -> bool {
                prost::Message::encoded_len(&$to(*self)) == 0
            }
            fn absent(name: &'static str) -> Option<String> {
                Some(missing(name))
            }
            fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
                encoding::encode_key(tag, WireType::LengthDelimited, buf);
                self.encode_value(buf);
            }
            fn field_len(&self, tag: u32) -> usize {
                key_len(tag) + self.value_len()
            }
        }
    };
}

well_known!(
    crate::types::Timestamp,
    prost_types::Timestamp,
    super::timestamp_to,
    super::timestamp_from
);
well_known!(
    crate::types::Duration,
    prost_types::Duration,
    super::duration_to,
    super::duration_from
);

// ---- containers ----

/// A wrapper message's one field (number 1), read from a length-delimited element.
fn merge_wrapper<T, B: Buf>(
    value: &mut T,
    wire_type: WireType,
    buf: &mut B,
    ctx: DecodeContext,
    mut field: impl FnMut(&mut T, WireType, &mut B, DecodeContext) -> Result<(), Fault>,
) -> Result<(), Fault> {
    encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
    let mut fault = None;
    encoding::merge_loop(value, buf, ctx, |value, buf, ctx| {
        let (tag, wire_type) = encoding::decode_key(buf)?;
        if tag != 1 {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        match field(value, wire_type, buf, ctx) {
            Ok(()) => Ok(()),
            Err(Fault::Wire(e)) => Err(e),
            Err(Fault::Value(text)) => {
                fault.get_or_insert(text);
                Ok(())
            }
        }
    })?;
    fault.map_or(Ok(()), |text| Err(Fault::Value(text)))
}

/// A list or map as an element: the wrapper message whose field 1 holds it.
fn encode_wrapper<T: Value>(items: &T, buf: &mut impl BufMut) {
    encode_varint(items.field_len(1) as u64, buf);
    items.encode_field(1, buf);
}

fn wrapper_len<T: Value>(items: &T) -> usize {
    let len = items.field_len(1);
    encoded_len_varint(len as u64) + len
}

/// One occurrence of an optional list or map field: it travels as its items, so none (or an
/// empty packed run) reads as absent.
fn merge_items<T: Value>(
    this: &mut Option<T>,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
    name: &'static str,
) -> Result<(), Fault> {
    let mut items = this.take().unwrap_or_default();
    let read = items.merge_field(wire_type, buf, ctx, name);
    *this = (!items.is_default()).then_some(items);
    read
}

/// A list: as a field, `repeated` (packed for numbers and enums); as an element, the
/// `ListOf…` wrapper message.
impl<T: Value> Value for Vec<T> {
    const WIRE_TYPE: WireType = WireType::LengthDelimited;
    fn encode_value(&self, buf: &mut impl BufMut) {
        encode_wrapper(self, buf)
    }
    fn value_len(&self) -> usize {
        wrapper_len(self)
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        merge_wrapper(self, wire_type, buf, ctx, |list, wire_type, buf, ctx| {
            list.merge_field(wire_type, buf, ctx, name)
        })
    }
    fn is_default(&self) -> bool {
        self.is_empty()
    }

    fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        if T::PACKED {
            if !self.is_empty() {
                encoding::encode_key(tag, WireType::LengthDelimited, buf);
                encode_varint(self.iter().map(T::value_len).sum::<usize>() as u64, buf);
                self.iter().for_each(|v| v.encode_value(buf));
            }
        } else {
            for v in self {
                encoding::encode_key(tag, T::WIRE_TYPE, buf);
                v.encode_value(buf);
            }
        }
    }
    fn field_len(&self, tag: u32) -> usize {
        if self.is_empty() {
            0
        } else if T::PACKED {
            let len: usize = self.iter().map(T::value_len).sum();
            key_len(tag) + encoded_len_varint(len as u64) + len
        } else {
            key_len(tag) * self.len() + self.iter().map(T::value_len).sum::<usize>()
        }
    }
    fn merge_field(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        if T::PACKED && wire_type == WireType::LengthDelimited {
            // Packed: one length, then elements without keys (a reader must accept both).
            let len = encoding::decode_varint(buf)?;
            if len > buf.remaining() as u64 {
                return Err(wire_error("buffer underflow"));
            }
            let limit = buf.remaining() - len as usize;
            while buf.remaining() > limit {
                let mut v = T::default();
                v.merge_value(T::WIRE_TYPE, buf, ctx.clone(), name)?;
                self.push(v);
            }
            if buf.remaining() != limit {
                return Err(wire_error("delimited length exceeded"));
            }
            return Ok(());
        }
        let mut v = T::default();
        let read = v.merge_value(wire_type, buf, ctx, name);
        self.push(v);
        read
    }

    /// An optional list travels as its items: absent and empty alike.
    fn encode_optional(this: Option<&Self>, tag: u32, buf: &mut impl BufMut) {
        if let Some(v) = this {
            v.encode_field(tag, buf)
        }
    }
    fn optional_len(this: Option<&Self>, tag: u32) -> usize {
        this.map_or(0, |v| v.field_len(tag))
    }
    fn merge_optional(
        this: &mut Option<Self>,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        merge_items(this, wire_type, buf, ctx, name)
    }
}

/// A map with string keys: as a field, protobuf's `map<string, …>` (entries of key 1 and
/// value 2, each left out when default, as prost writes them); as an element, the `MapOf…`
/// wrapper message.
impl<T: Value> Value for BTreeMap<String, T> {
    const WIRE_TYPE: WireType = WireType::LengthDelimited;
    fn encode_value(&self, buf: &mut impl BufMut) {
        encode_wrapper(self, buf)
    }
    fn value_len(&self) -> usize {
        wrapper_len(self)
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        merge_wrapper(self, wire_type, buf, ctx, |map, wire_type, buf, ctx| {
            map.merge_field(wire_type, buf, ctx, name)
        })
    }
    fn is_default(&self) -> bool {
        self.is_empty()
    }

    fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        for (k, v) in self {
            encoding::encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(entry_len(k, v) as u64, buf);
            if !k.is_empty() {
                k.encode_field(1, buf);
            }
            v.encode_field_in_entry(buf);
        }
    }
    fn field_len(&self, tag: u32) -> usize {
        self.iter()
            .map(|(k, v)| {
                let len = entry_len(k, v);
                key_len(tag) + encoded_len_varint(len as u64) + len
            })
            .sum()
    }
    fn merge_field(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
        let mut entry = (String::new(), T::default());
        let (mut fault, mut valued) = (None, false);
        encoding::merge_loop(&mut entry, buf, ctx, |(k, v), buf, ctx| {
            let (tag, wire_type) = encoding::decode_key(buf)?;
            let read = match tag {
                1 => encoding::string::merge(wire_type, k, buf, ctx).map_err(Fault::Wire),
                2 => {
                    valued = true;
                    v.merge_value(wire_type, buf, ctx, name)
                }
                _ => encoding::skip_field(wire_type, tag, buf, ctx).map_err(Fault::Wire),
            };
            match read {
                Ok(()) => Ok(()),
                Err(Fault::Wire(e)) => Err(e),
                Err(Fault::Value(text)) => {
                    fault.get_or_insert(text);
                    Ok(())
                }
            }
        })?;
        if !valued {
            // Left out as the default: checked as a value read from no bytes.
            if let Some(text) = T::empty_fault(name) {
                fault.get_or_insert(text);
            }
        }
        self.insert(entry.0, entry.1);
        fault.map_or(Ok(()), |text| Err(Fault::Value(text)))
    }

    /// An optional map travels as its entries: absent and empty alike.
    fn encode_optional(this: Option<&Self>, tag: u32, buf: &mut impl BufMut) {
        if let Some(v) = this {
            v.encode_field(tag, buf)
        }
    }
    fn optional_len(this: Option<&Self>, tag: u32) -> usize {
        this.map_or(0, |v| v.field_len(tag))
    }
    fn merge_optional(
        this: &mut Option<Self>,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        merge_items(this, wire_type, buf, ctx, name)
    }
}

/// A map entry's value, field 2: left out when it is the default (for a message, one with
/// nothing to write), as prost writes map entries.
trait EntryValue {
    fn encode_field_in_entry(&self, buf: &mut impl BufMut);
    fn entry_field_len(&self) -> usize;
}

impl<T: Value> EntryValue for T {
    fn encode_field_in_entry(&self, buf: &mut impl BufMut) {
        if !self.is_default() {
            encoding::encode_key(2, T::WIRE_TYPE, buf);
            self.encode_value(buf);
        }
    }
    fn entry_field_len(&self) -> usize {
        if self.is_default() {
            0
        } else {
            key_len(2) + self.value_len()
        }
    }
}

fn entry_len<T: Value>(key: &String, value: &T) -> usize {
    let key = if key.is_empty() { 0 } else { key.field_len(1) };
    key + value.entry_field_len()
}

/// An optional element (of a list or map): the `Optional…` wrapper message, its `value`
/// present when `Some`.
impl<T: Value> Value for Option<T> {
    const WIRE_TYPE: WireType = WireType::LengthDelimited;
    fn encode_value(&self, buf: &mut impl BufMut) {
        encode_varint(T::optional_len(self.as_ref(), 1) as u64, buf);
        T::encode_optional(self.as_ref(), 1, buf);
    }
    fn value_len(&self) -> usize {
        let len = T::optional_len(self.as_ref(), 1);
        encoded_len_varint(len as u64) + len
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        merge_wrapper(self, wire_type, buf, ctx, |this, wire_type, buf, ctx| {
            T::merge_optional(this, wire_type, buf, ctx, name)
        })
    }
    fn is_default(&self) -> bool {
        T::optional_len(self.as_ref(), 1) == 0
    }

    // As a field (a newtype that holds an optional value): proto3 `optional`, as the
    // `.proto` says, not the wrapper an element needs.
    fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        T::encode_optional(self.as_ref(), tag, buf)
    }
    fn field_len(&self, tag: u32) -> usize {
        T::optional_len(self.as_ref(), tag)
    }
    fn merge_field(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        T::merge_optional(self, wire_type, buf, ctx, name)
    }
}

/// A boxed value (a message that contains itself) travels as the value.
impl<T: Value> Value for Box<T> {
    const WIRE_TYPE: WireType = T::WIRE_TYPE;
    const PACKED: bool = T::PACKED;
    fn encode_value(&self, buf: &mut impl BufMut) {
        (**self).encode_value(buf)
    }
    fn value_len(&self) -> usize {
        (**self).value_len()
    }
    fn merge_value(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        (**self).merge_value(wire_type, buf, ctx, name)
    }
    fn is_default(&self) -> bool {
        (**self).is_default()
    }
    fn absent(name: &'static str) -> Option<String> {
        T::absent(name)
    }
    fn empty_fault(name: &'static str) -> Option<String> {
        T::empty_fault(name)
    }
    fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        (**self).encode_field(tag, buf)
    }
    fn field_len(&self, tag: u32) -> usize {
        (**self).field_len(tag)
    }
    fn merge_field(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        (**self).merge_field(wire_type, buf, ctx, name)
    }
    fn encode_optional(this: Option<&Self>, tag: u32, buf: &mut impl BufMut) {
        T::encode_optional(this.map(|b| &**b), tag, buf)
    }
    fn optional_len(this: Option<&Self>, tag: u32) -> usize {
        T::optional_len(this.map(|b| &**b), tag)
    }
    fn merge_optional(
        this: &mut Option<Self>,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
        name: &'static str,
    ) -> Result<(), Fault> {
        let mut inner = this.take().map(|b| *b);
        let read = T::merge_optional(&mut inner, wire_type, buf, ctx, name);
        *this = inner.map(Box::new);
        read
    }
}

/// `prost::Message` and [`Value`] for generated structs, unions and declared errors that
/// implement [`Message`]: generated code calls it once per contract, listing them. Not for
/// hand-written code: its input is the generator's.
#[doc(hidden)]
#[macro_export]
macro_rules! __grpc_message {
    ($($ty:ty),* $(,)?) => {$(
        impl $crate::grpc::proto::Value for $ty {
            const WIRE_TYPE: $crate::grpc::proto::WireType =
                $crate::grpc::proto::WireType::LengthDelimited;
            fn encode_value(&self, buf: &mut impl $crate::grpc::proto::BufMut) {
                $crate::grpc::proto::message_encode(self, buf)
            }
            fn value_len(&self) -> usize {
                $crate::grpc::proto::message_len(self)
            }
            fn merge_value(
                &mut self,
                wire_type: $crate::grpc::proto::WireType,
                buf: &mut impl $crate::grpc::proto::Buf,
                ctx: $crate::grpc::proto::DecodeContext,
                _: &'static str,
            ) -> ::core::result::Result<(), $crate::grpc::proto::Fault> {
                $crate::grpc::proto::message_merge(self, wire_type, buf, ctx)
            }
            fn is_default(&self) -> bool {
                $crate::grpc::proto::Message::fields_len(self) == 0
            }
            fn absent(name: &'static str) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::Some($crate::grpc::proto::missing(name))
            }
            fn empty_fault(_: &'static str) -> ::core::option::Option<::std::string::String> {
                $crate::grpc::proto::empty_message_fault::<Self>()
            }
            fn encode_field(&self, tag: u32, buf: &mut impl $crate::grpc::proto::BufMut) {
                $crate::grpc::prost::encoding::encode_key(
                    tag,
                    $crate::grpc::proto::WireType::LengthDelimited,
                    buf,
                );
                $crate::grpc::proto::message_encode(self, buf)
            }
            fn field_len(&self, tag: u32) -> usize {
                $crate::grpc::prost::encoding::key_len(tag) + $crate::grpc::proto::message_len(self)
            }
        }
        impl $crate::grpc::prost::Message for $ty {
            fn encode_raw(&self, buf: &mut impl $crate::grpc::proto::BufMut) {
                $crate::grpc::proto::Message::encode_fields(self, buf)
            }
            fn merge_field(
                &mut self,
                tag: u32,
                wire_type: $crate::grpc::proto::WireType,
                buf: &mut impl $crate::grpc::proto::Buf,
                ctx: $crate::grpc::proto::DecodeContext,
            ) -> ::core::result::Result<(), $crate::grpc::proto::DecodeError> {
                $crate::grpc::proto::message_merge_field(self, tag, wire_type, buf, ctx)
            }
            fn encoded_len(&self) -> usize {
                $crate::grpc::proto::Message::fields_len(self)
            }
            fn clear(&mut self) {
                *self = ::core::default::Default::default();
            }
        }
    )*};
}

/// The [`Message`] impl of a generated struct or declared error: each field with its
/// number, whether it is `plain` or `optional`, its index in declaration order and its
/// name; then the fields whose absence is a fault. Fields are listed in number order, so
/// they are written as prost writes them. Not for hand-written code.
///
/// `__grpc_struct!(Order { id: 1 plain 0 "id", note: 2 optional 1 "note" } required { 0 id "id" });`
#[doc(hidden)]
#[macro_export]
macro_rules! __grpc_struct {
    ($ty:ty {
        $($field:ident: $tag:literal $kind:ident $index:literal $wire:literal),* $(,)?
    } required { $($ri:literal $rfield:ident $rwire:literal),* $(,)? }) => {
        impl $crate::grpc::proto::Message for $ty {
            const REQUIRED: &'static [usize] = &[$($ri),*];

            fn absent(index: usize) -> ::core::option::Option<::std::string::String> {
                match index {
                    $($ri => $crate::grpc::proto::absent_like(
                        &<$ty as ::core::default::Default>::default().$rfield,
                        $rwire,
                    ),)*
                    _ => ::core::option::Option::None,
                }
            }

            fn encode_fields(&self, buf: &mut impl $crate::grpc::proto::BufMut) {
                let _ = &buf;
                $($crate::grpc::proto::$kind::encode($tag, &self.$field, buf);)*
            }

            fn fields_len(&self) -> usize {
                0 $(+ $crate::grpc::proto::$kind::len($tag, &self.$field))*
            }

            fn merge_field(
                &mut self,
                tag: u32,
                wire_type: $crate::grpc::proto::WireType,
                buf: &mut impl $crate::grpc::proto::Buf,
                ctx: $crate::grpc::proto::DecodeContext,
                seen: &mut $crate::grpc::proto::Seen,
            ) -> ::core::result::Result<(), $crate::grpc::proto::DecodeError> {
                let _ = &seen;
                match tag {
                    $($tag => seen.note(
                        $index,
                        $crate::grpc::proto::$kind::merge(wire_type, &mut self.$field, buf, ctx, $wire),
                    ),)*
                    _ => $crate::grpc::proto::skip(tag, wire_type, buf, ctx),
                }
            }
        }
    };
}

/// The two functions that carry an operation's declared errors as `google.rpc.Status`
/// details: its error as an `Any` of the error's message, and back (`None` for a detail
/// this version does not know). Not for hand-written code.
///
/// `__grpc_error_details!(get_order_error_detail, get_order_error_from_detail, GetOrderError,
/// "shop.orders.v1" { OrderNotFound = "OrderNotFound" });`
#[doc(hidden)]
#[macro_export]
macro_rules! __grpc_error_details {
    ($to:ident, $from:ident, $error:ident, $package:literal {}) => {
        fn $to(e: &super::$error) -> $crate::grpc::prost_types::Any {
            match *e {}
        }
        fn $from(
            any: &$crate::grpc::prost_types::Any,
        ) -> ::core::option::Option<super::$error> {
            let _ = any;
            ::core::option::Option::None
        }
    };
    ($to:ident, $from:ident, $error:ident, $package:literal {
        $($variant:ident = $code:literal),+ $(,)?
    }) => {
        fn $to(e: &super::$error) -> $crate::grpc::prost_types::Any {
            match e {
                $(super::$error::$variant(e) => $crate::grpc::prost_types::Any {
                    type_url: ::std::string::String::from(concat!(
                        "type.googleapis.com/", $package, ".", $code
                    )),
                    value: $crate::grpc::prost::Message::encode_to_vec(e),
                },)+
            }
        }
        fn $from(
            any: &$crate::grpc::prost_types::Any,
        ) -> ::core::option::Option<super::$error> {
            $(
                if any.type_url == concat!("type.googleapis.com/", $package, ".", $code) {
                    return $crate::grpc::proto::decode(&any.value)
                        .ok()
                        .map(super::$error::$variant);
                }
            )+
            ::core::option::Option::None
        }
    };
}

/// [`ProtoEnum`](super::ProtoEnum), `Default` (number 0, `*_UNSPECIFIED`) and [`Value`] for
/// a generated enum: `__grpc_enum!(OrderStatus { Pending = 1, Paid = 2 })`. Not for
/// hand-written code.
#[doc(hidden)]
#[macro_export]
macro_rules! __grpc_enum {
    ($ty:ty { $($variant:ident = $n:literal),* $(,)? }) => {
        #[allow(deprecated)]
        impl $crate::grpc::ProtoEnum for $ty {
            fn to_proto(&self) -> i32 {
                match self {
                    $(Self::$variant => $n,)*
                    Self::Unrecognized(other) => other.parse().unwrap_or(0),
                }
            }
            fn from_proto(n: i32) -> Self {
                match n {
                    $($n => Self::$variant,)*
                    other => Self::Unrecognized(::std::string::ToString::to_string(&other)),
                }
            }
        }
        impl ::core::default::Default for $ty {
            fn default() -> Self {
                $crate::grpc::ProtoEnum::from_proto(0)
            }
        }
        impl $crate::grpc::proto::Value for $ty {
            const WIRE_TYPE: $crate::grpc::proto::WireType = $crate::grpc::proto::WireType::Varint;
            const PACKED: bool = true;
            fn encode_value(&self, buf: &mut impl $crate::grpc::proto::BufMut) {
                $crate::grpc::proto::enum_encode(self, buf)
            }
            fn value_len(&self) -> usize {
                $crate::grpc::proto::enum_len(self)
            }
            fn merge_value(
                &mut self,
                wire_type: $crate::grpc::proto::WireType,
                buf: &mut impl $crate::grpc::proto::Buf,
                ctx: $crate::grpc::proto::DecodeContext,
                _: &'static str,
            ) -> ::core::result::Result<(), $crate::grpc::proto::Fault> {
                $crate::grpc::proto::enum_merge(self, wire_type, buf, ctx)
            }
            fn is_default(&self) -> bool {
                $crate::grpc::ProtoEnum::to_proto(self) == 0
            }
        }
    };
}

/// `Default` and [`Value`] for generated newtypes, which travel as the value they hold:
/// `__grpc_newtype!(OrderId => ::pactum::types::Uuid)`. Not for hand-written code.
#[doc(hidden)]
#[macro_export]
macro_rules! __grpc_newtype {
    ($($ty:ty => $inner:ty),* $(,)?) => {$(
        impl ::core::default::Default for $ty {
            fn default() -> Self {
                Self(::core::default::Default::default())
            }
        }
        impl $crate::grpc::proto::Value for $ty {
            const WIRE_TYPE: $crate::grpc::proto::WireType =
                <$inner as $crate::grpc::proto::Value>::WIRE_TYPE;
            const PACKED: bool = <$inner as $crate::grpc::proto::Value>::PACKED;
            fn encode_value(&self, buf: &mut impl $crate::grpc::proto::BufMut) {
                $crate::grpc::proto::Value::encode_value(&self.0, buf)
            }
            fn value_len(&self) -> usize {
                $crate::grpc::proto::Value::value_len(&self.0)
            }
            fn merge_value(
                &mut self,
                wire_type: $crate::grpc::proto::WireType,
                buf: &mut impl $crate::grpc::proto::Buf,
                ctx: $crate::grpc::proto::DecodeContext,
                name: &'static str,
            ) -> ::core::result::Result<(), $crate::grpc::proto::Fault> {
                $crate::grpc::proto::Value::merge_value(&mut self.0, wire_type, buf, ctx, name)
            }
            fn is_default(&self) -> bool {
                $crate::grpc::proto::Value::is_default(&self.0)
            }
            fn absent(name: &'static str) -> ::core::option::Option<::std::string::String> {
                <$inner as $crate::grpc::proto::Value>::absent(name)
            }
            fn empty_fault(name: &'static str) -> ::core::option::Option<::std::string::String> {
                <$inner as $crate::grpc::proto::Value>::empty_fault(name)
            }
            fn encode_field(&self, tag: u32, buf: &mut impl $crate::grpc::proto::BufMut) {
                $crate::grpc::proto::Value::encode_field(&self.0, tag, buf)
            }
            fn field_len(&self, tag: u32) -> usize {
                $crate::grpc::proto::Value::field_len(&self.0, tag)
            }
            fn merge_field(
                &mut self,
                wire_type: $crate::grpc::proto::WireType,
                buf: &mut impl $crate::grpc::proto::Buf,
                ctx: $crate::grpc::proto::DecodeContext,
                name: &'static str,
            ) -> ::core::result::Result<(), $crate::grpc::proto::Fault> {
                $crate::grpc::proto::Value::merge_field(&mut self.0, wire_type, buf, ctx, name)
            }
            fn encode_optional(
                this: ::core::option::Option<&Self>,
                tag: u32,
                buf: &mut impl $crate::grpc::proto::BufMut,
            ) {
                <$inner as $crate::grpc::proto::Value>::encode_optional(this.map(|v| &v.0), tag, buf)
            }
            fn optional_len(this: ::core::option::Option<&Self>, tag: u32) -> usize {
                <$inner as $crate::grpc::proto::Value>::optional_len(this.map(|v| &v.0), tag)
            }
            fn merge_optional(
                this: &mut ::core::option::Option<Self>,
                wire_type: $crate::grpc::proto::WireType,
                buf: &mut impl $crate::grpc::proto::Buf,
                ctx: $crate::grpc::proto::DecodeContext,
                name: &'static str,
            ) -> ::core::result::Result<(), $crate::grpc::proto::Fault> {
                let mut inner = this.take().map(|v| v.0);
                let read = <$inner as $crate::grpc::proto::Value>::merge_optional(
                    &mut inner, wire_type, buf, ctx, name,
                );
                *this = inner.map(Self);
                read
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    //! The bytes are prost's for the same `.proto`: a hand-written `Message` impl (what the
    //! generator writes) against prost-derived mirrors of it.
    use super::{self as w, Value as _};
    use crate::types::{Decimal, Timestamp, Uuid};
    use std::collections::BTreeMap;

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Line {
        sku: String,
        quantity: u32,
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Status {
        Open,
        Closed,
        Unrecognized(String),
    }

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Order {
        id: Uuid,
        note: Option<String>,
        lines: Vec<Line>,
        status: Status,
        total: Decimal,
        placed_at: Timestamp,
        flags: Vec<Status>,
        by_name: BTreeMap<String, Line>,
        grid: Vec<Vec<i32>>,
        tags: Option<Vec<String>>,
        ratio: f64,
        payload: crate::types::Bytes,
        delta: i64,
        parent: Option<Box<Line>>,
    }

    crate::__grpc_enum!(Status { Open = 1, Closed = 2 });
    crate::__grpc_message!(Line, Order);

    impl w::Message for Line {
        fn encode_fields(&self, buf: &mut impl w::BufMut) {
            w::field(1, &self.sku, buf);
            w::field(2, &self.quantity, buf);
        }
        fn fields_len(&self) -> usize {
            w::field_len(1, &self.sku) + w::field_len(2, &self.quantity)
        }
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: w::WireType,
            buf: &mut impl w::Buf,
            ctx: w::DecodeContext,
            seen: &mut w::Seen,
        ) -> Result<(), w::DecodeError> {
            match tag {
                1 => seen.note(0, w::merge(wire_type, &mut self.sku, buf, ctx, "sku")),
                2 => seen.note(
                    1,
                    w::merge(wire_type, &mut self.quantity, buf, ctx, "quantity"),
                ),
                _ => w::skip(tag, wire_type, buf, ctx),
            }
        }
    }

    // What the generator writes for a struct: fields in number order, the required ones.
    crate::__grpc_struct!(Order {
        id: 1 plain 0 "id",
        note: 2 optional 1 "note",
        lines: 3 plain 2 "lines",
        status: 4 plain 3 "status",
        total: 5 plain 4 "total",
        placed_at: 6 plain 5 "placedAt",
        flags: 7 plain 6 "flags",
        by_name: 8 plain 7 "byName",
        grid: 9 plain 8 "grid",
        tags: 10 optional 9 "tags",
        ratio: 11 plain 10 "ratio",
        payload: 12 plain 11 "payload",
        delta: 13 plain 12 "delta",
        parent: 14 optional 13 "parent",
    } required { 0 id "id", 4 total "total", 5 placed_at "placedAt" });

    /// What prost-build writes for the `.proto` of `Order`.
    mod pb {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Line {
            #[prost(string, tag = "1")]
            pub sku: String,
            #[prost(uint32, tag = "2")]
            pub quantity: u32,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct ListOfInt32 {
            #[prost(int32, repeated, tag = "1")]
            pub items: Vec<i32>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Order {
            #[prost(string, tag = "1")]
            pub id: String,
            #[prost(string, optional, tag = "2")]
            pub note: Option<String>,
            #[prost(message, repeated, tag = "3")]
            pub lines: Vec<Line>,
            #[prost(int32, tag = "4")]
            pub status: i32,
            #[prost(string, tag = "5")]
            pub total: String,
            #[prost(message, optional, tag = "6")]
            pub placed_at: Option<prost_types::Timestamp>,
            #[prost(int32, repeated, tag = "7")]
            pub flags: Vec<i32>,
            #[prost(btree_map = "string, message", tag = "8")]
            pub by_name: std::collections::BTreeMap<String, Line>,
            #[prost(message, repeated, tag = "9")]
            pub grid: Vec<ListOfInt32>,
            #[prost(string, repeated, tag = "10")]
            pub tags: Vec<String>,
            #[prost(double, tag = "11")]
            pub ratio: f64,
            #[prost(bytes = "vec", tag = "12")]
            pub payload: Vec<u8>,
            #[prost(int64, tag = "13")]
            pub delta: i64,
            #[prost(message, optional, tag = "14")]
            pub parent: Option<Line>,
        }
    }

    fn order() -> Order {
        Order {
            id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
            note: Some(String::new()),
            lines: vec![
                Line {
                    sku: "BOOK-42".into(),
                    quantity: 2,
                },
                Line::default(),
            ],
            status: Status::Closed,
            total: "-12.50".parse().unwrap(),
            placed_at: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            flags: vec![
                Status::Open,
                Status::Unrecognized("7".into()),
                Status::Closed,
            ],
            by_name: BTreeMap::from([
                (
                    "a".into(),
                    Line {
                        sku: "x".into(),
                        quantity: 0,
                    },
                ),
                (String::new(), Line::default()),
            ]),
            grid: vec![vec![1, -1, 300], vec![]],
            tags: Some(vec!["".into(), "t".into()]),
            ratio: -0.5,
            payload: crate::types::Bytes(vec![0, 255]),
            delta: -3,
            parent: Some(Box::new(Line {
                sku: "p".into(),
                quantity: 1,
            })),
        }
    }

    fn mirror(o: &Order) -> pb::Order {
        let line = |l: &Line| pb::Line {
            sku: l.sku.clone(),
            quantity: l.quantity,
        };
        pb::Order {
            id: o.id.to_string(),
            note: o.note.clone(),
            lines: o.lines.iter().map(line).collect(),
            status: crate::grpc::ProtoEnum::to_proto(&o.status),
            total: o.total.to_string(),
            placed_at: Some(crate::grpc::timestamp_to(o.placed_at)),
            flags: o
                .flags
                .iter()
                .map(crate::grpc::ProtoEnum::to_proto)
                .collect(),
            by_name: o
                .by_name
                .iter()
                .map(|(k, v)| (k.clone(), line(v)))
                .collect(),
            grid: o
                .grid
                .iter()
                .map(|items| pb::ListOfInt32 {
                    items: items.clone(),
                })
                .collect(),
            tags: o.tags.clone().unwrap_or_default(),
            ratio: o.ratio,
            payload: o.payload.0.clone(),
            delta: o.delta,
            parent: o.parent.as_deref().map(line),
        }
    }

    #[test]
    fn the_bytes_are_prosts_for_the_same_proto() {
        let o = order();
        let ours = prost::Message::encode_to_vec(&o);
        let theirs = prost::Message::encode_to_vec(&mirror(&o));
        assert_eq!(ours, theirs);
        assert_eq!(prost::Message::encoded_len(&o), ours.len());
        // Defaults are left out alike (an empty message is all defaults but its required
        // fields, which are always written).
        let d = Order::default();
        assert_eq!(
            prost::Message::encode_to_vec(&d),
            prost::Message::encode_to_vec(&mirror(&d))
        );
        // And read back to the same value.
        assert_eq!(w::decode::<Order>(&theirs).unwrap(), o);
    }

    #[test]
    fn a_value_the_type_cannot_hold_is_the_first_fault_in_field_order() {
        let mut m = mirror(&order());
        m.total = "twelve".into();
        m.id = "not-a-uuid".into();
        let bytes = prost::Message::encode_to_vec(&m);
        let fault = w::decode::<Order>(&bytes).unwrap_err();
        assert!(fault.starts_with("field `id`: "), "{fault}");

        let mut m = mirror(&order());
        m.placed_at = None;
        m.total = "twelve".into();
        let fault = w::decode::<Order>(&prost::Message::encode_to_vec(&m)).unwrap_err();
        assert!(fault.starts_with("field `total`: "), "{fault}");

        let mut m = mirror(&order());
        m.placed_at = None;
        let fault = w::decode::<Order>(&prost::Message::encode_to_vec(&m)).unwrap_err();
        assert_eq!(fault, "missing field `placedAt`");

        // An id left out reads as the empty string, which is not a uuid.
        let mut m = mirror(&order());
        m.id = String::new();
        let fault = w::decode::<Order>(&prost::Message::encode_to_vec(&m)).unwrap_err();
        assert!(fault.starts_with("field `id`: "), "{fault}");
    }

    #[test]
    fn bytes_that_are_not_protobuf_are_a_wire_error() {
        // A length past the end of the buffer.
        let fault = w::decode::<Order>(&[0x1a, 0x05, 0x0a]).unwrap_err();
        assert!(fault.starts_with("not a valid message: "), "{fault}");
        // A known field with the wrong wire type.
        let fault = w::decode::<Order>(&[0x08, 0x01]).unwrap_err();
        assert!(fault.starts_with("not a valid message: "), "{fault}");
    }

    #[test]
    fn unknown_fields_and_unknown_enum_numbers_are_kept_apart() {
        let mut bytes = prost::Message::encode_to_vec(&mirror(&order()));
        // Field 99, a varint this version does not know: skipped.
        bytes.extend([0x98, 0x06, 0x01]);
        let o = w::decode::<Order>(&bytes).unwrap();
        assert_eq!(o.flags[1], Status::Unrecognized("7".into()));
        assert_eq!(o, order());
        // An absent enum is number 0, which this version does not know either.
        assert_eq!(Status::default(), Status::Unrecognized("0".into()));
        assert!(Status::default().is_default());
    }

    /// A newtype that holds an optional value, as a field: proto3 `optional`, not a
    /// wrapper. And a map of ids whose entry comes without its value.
    #[derive(Clone, Debug, PartialEq)]
    struct Note(Option<String>);

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Holder {
        note: Note,
        ids: BTreeMap<String, Uuid>,
    }

    crate::__grpc_newtype!(Note => Option<String>);
    crate::__grpc_struct!(Holder {
        note: 1 plain 0 "note",
        ids: 2 plain 1 "ids",
    } required {});
    crate::__grpc_message!(Holder);

    #[derive(Clone, PartialEq, prost::Message)]
    struct HolderPb {
        #[prost(string, optional, tag = "1")]
        note: Option<String>,
        #[prost(btree_map = "string, string", tag = "2")]
        ids: BTreeMap<String, String>,
    }

    #[test]
    fn a_newtype_of_an_optional_is_a_proto3_optional_field() {
        for note in [None, Some(String::new()), Some("a".to_string())] {
            let ours = Holder {
                note: Note(note.clone()),
                ids: BTreeMap::new(),
            };
            let theirs = HolderPb {
                note,
                ids: BTreeMap::new(),
            };
            let bytes = prost::Message::encode_to_vec(&theirs);
            assert_eq!(prost::Message::encode_to_vec(&ours), bytes);
            assert_eq!(w::decode::<Holder>(&bytes).unwrap(), ours);
        }
    }

    #[test]
    fn a_map_entry_without_its_value_is_checked_as_the_empty_value() {
        // prost leaves an empty value out of the entry: an empty string is no uuid.
        let theirs = HolderPb {
            note: None,
            ids: BTreeMap::from([("a".to_string(), String::new())]),
        };
        let fault = w::decode::<Holder>(&prost::Message::encode_to_vec(&theirs)).unwrap_err();
        assert!(fault.starts_with("field `ids`: "), "{fault}");
    }
}
