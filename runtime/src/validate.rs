//! Constraint validation for generated types.

use std::fmt;

/// Where in a value a violation is: a JSON pointer under construction.
///
/// Validation walks every field of every request, and almost always finds nothing, so
/// entering a field stores its `&'static str` name (or a list index) as it is; escaping and
/// joining happen only in [`FieldPath::pointer`], when there is a violation to report.
#[derive(Clone, Debug, Default)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

#[derive(Clone, Debug)]
enum Segment {
    Field(&'static str),
    Index(usize),
    Key(String),
}

impl FieldPath {
    /// Enters a field, by its wire name.
    pub fn push_field(&mut self, name: &'static str) {
        self.segments.push(Segment::Field(name));
    }

    /// Enters a list item.
    pub fn push_index(&mut self, index: usize) {
        self.segments.push(Segment::Index(index));
    }

    /// Enters a field or map key given as any text.
    pub fn push(&mut self, segment: impl fmt::Display) {
        self.segments.push(Segment::Key(segment.to_string()));
    }

    /// Leaves the last field.
    pub fn pop(&mut self) {
        self.segments.pop();
    }

    /// The JSON pointer (`/lines/0/sku`; `""` for the root).
    pub fn pointer(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Index(i) => out.push_str(&i.to_string()),
                Segment::Field(t) => escape_into(t, &mut out),
                Segment::Key(t) => escape_into(t, &mut out),
            }
        }
        out
    }
}

/// RFC 6901 escaping: `~` → `~0`, `/` → `~1`.
fn escape_into(segment: &str, out: &mut String) {
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// One broken constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer to the offending value.
    pub pointer: String,
    /// What is wrong, for a person.
    pub message: String,
}

/// Every violation found in a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// All violations, in field order.
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid value(s)", self.violations.len())?;
        for v in &self.violations {
            let at = if v.pointer.is_empty() {
                "/"
            } else {
                &v.pointer
            };
            write!(f, "; {at}: {}", v.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// Checks the contract's constraints on a value. Generated for every contract type.
pub trait Validate {
    /// Appends every violation under `path` to `out`.
    fn validate_into(&self, path: &mut FieldPath, out: &mut Vec<Violation>);

    /// Checks the whole value.
    fn validate(&self) -> Result<(), ValidationError> {
        let mut out = Vec::new();
        self.validate_into(&mut FieldPath::default(), &mut out);
        if out.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { violations: out })
        }
    }
}

/// `Validate` for a generated struct whose fields have no constraints of their own: each
/// field is checked as its type says, under its wire name:
/// `__validate_fields!(Order { id = "id", lines = "lines" })`. Not for hand-written code.
#[doc(hidden)]
#[macro_export]
macro_rules! __validate_fields {
    ($ty:ident { $($field:ident = $wire:literal),* $(,)? }) => {
        #[allow(deprecated)]
        impl $crate::Validate for $ty {
            fn validate_into(
                &self,
                path: &mut $crate::FieldPath,
                out: &mut ::std::vec::Vec<$crate::Violation>,
            ) {
                let _ = (&path, &out); // a struct without fields checks nothing
                $($crate::__private::check::field($wire, &self.$field, path, out);)*
            }
        }
    };
}

/// The rest of a generated open enum, which has one unit variant per known value and an
/// `Unrecognized(String)` variant: `KNOWN`, `as_str`, `Display` (the wire value) and
/// `Validate` (a value this version does not know is a violation), and with `json` its
/// `Serialize` and `Deserialize` (see `serde_impls.rs`):
/// `__open_enum!(Status { Active = "active", Closed = "closed" }, json)`. Not for hand-written
/// code.
#[doc(hidden)]
#[macro_export]
macro_rules! __open_enum {
    ($ty:ident { $($var:ident = $wire:literal),* $(,)? }) => {
        #[allow(deprecated)]
        impl $ty {
            /// Every value this version knows, in contract order.
            pub const KNOWN: &'static [&'static str] = &[$($wire),*];

            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$var => $wire,)*
                    $ty::Unrecognized(other) => other,
                }
            }
        }

        #[allow(deprecated)]
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[allow(deprecated)]
        impl $crate::Validate for $ty {
            fn validate_into(
                &self,
                path: &mut $crate::FieldPath,
                out: &mut ::std::vec::Vec<$crate::Violation>,
            ) {
                if let Self::Unrecognized(other) = self {
                    $crate::__private::check::unrecognized(other, path, out);
                }
            }
        }
    };
    ($ty:ident { $($var:ident = $wire:literal),* $(,)? }, json) => {
        $crate::__open_enum!($ty { $($var = $wire),* });

        // `Self`, not the type's name, inside the functions: a type named `S` or `D` would
        // be the parameter.
        #[allow(deprecated)]
        impl $crate::__private::serde::Serialize for $ty {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                $crate::__private::serde_impls::serialize_enum(
                    serializer,
                    ::core::stringify!($ty),
                    Self::KNOWN,
                    self.as_str(),
                    ::core::matches!(self, Self::Unrecognized(_)),
                )
            }
        }

        #[allow(deprecated)]
        impl<'de> $crate::__private::serde::Deserialize<'de> for $ty {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                let wire = $crate::__private::serde_impls::open_enum(
                    deserializer,
                    ::core::stringify!($ty),
                    Self::KNOWN,
                )?;
                ::core::result::Result::Ok(match wire {
                    $(::core::result::Result::Ok($wire) => Self::$var,)*
                    // `open_enum` returns only values of `KNOWN`: never taken.
                    ::core::result::Result::Ok(other) => Self::Unrecognized(other.into()),
                    ::core::result::Result::Err(other) => Self::Unrecognized(other),
                })
            }
        }
    };
}

/// `From` its value for a generated newtype, and `Display` as that value with `display`:
/// `__newtype!(Sku(::std::string::String), display)`. Not for hand-written code.
#[doc(hidden)]
#[macro_export]
macro_rules! __newtype {
    ($ty:ident($inner:ty)) => {
        #[allow(deprecated)]
        impl ::std::convert::From<$inner> for $ty {
            fn from(value: $inner) -> Self {
                $ty(value)
            }
        }
    };
    ($ty:ident($inner:ty), display) => {
        $crate::__newtype!($ty($inner));

        #[allow(deprecated)]
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

macro_rules! no_constraints {
    ($($t:ty),*) => {$(
        impl Validate for $t {
            fn validate_into(&self, _: &mut FieldPath, _: &mut Vec<Violation>) {}
        }
    )*};
}

no_constraints!(
    bool,
    i32,
    i64,
    u32,
    u64,
    f64,
    String,
    crate::types::Bytes,
    crate::types::Duration,
    crate::types::Timestamp,
    crate::types::Uuid,
    crate::types::Decimal
);

impl<T: Validate> Validate for Option<T> {
    fn validate_into(&self, path: &mut FieldPath, out: &mut Vec<Violation>) {
        if let Some(v) = self {
            v.validate_into(path, out);
        }
    }
}

impl<T: Validate> Validate for Box<T> {
    fn validate_into(&self, path: &mut FieldPath, out: &mut Vec<Violation>) {
        (**self).validate_into(path, out);
    }
}

impl<T: Validate> Validate for Vec<T> {
    fn validate_into(&self, path: &mut FieldPath, out: &mut Vec<Violation>) {
        for (i, v) in self.iter().enumerate() {
            path.push_index(i);
            v.validate_into(path, out);
            path.pop();
        }
    }
}

impl<T: Validate> Validate for std::collections::BTreeMap<String, T> {
    fn validate_into(&self, path: &mut FieldPath, out: &mut Vec<Violation>) {
        for (k, v) in self {
            path.push(k);
            v.validate_into(path, out);
            path.pop();
        }
    }
}

/// Checks called by generated `validate_into` bodies.
#[doc(hidden)]
pub mod check {
    use super::{FieldPath, Violation};
    use std::fmt::Display;

    /// A struct field without constraints of its own: what its type checks, under its name.
    pub fn field<T: super::Validate + ?Sized>(
        name: &'static str,
        value: &T,
        path: &mut FieldPath,
        out: &mut Vec<Violation>,
    ) {
        path.push_field(name);
        value.validate_into(path, out);
        path.pop();
    }

    fn violation(path: &FieldPath, out: &mut Vec<Violation>, message: String) {
        out.push(Violation {
            pointer: path.pointer(),
            message,
        });
    }

    /// `min`/`max` on a number.
    pub fn range<T: PartialOrd + Display>(
        v: &T,
        min: Option<T>,
        max: Option<T>,
        path: &FieldPath,
        out: &mut Vec<Violation>,
    ) {
        if let Some(min) = min {
            if *v < min {
                violation(path, out, format!("must be at least {min}, got {v}"));
            }
        }
        if let Some(max) = max {
            if *v > max {
                violation(path, out, format!("must be at most {max}, got {v}"));
            }
        }
    }

    /// `min_len`/`max_len` on a string (in characters) or bytes (in bytes).
    pub fn length(
        len: usize,
        min: Option<usize>,
        max: Option<usize>,
        path: &FieldPath,
        out: &mut Vec<Violation>,
    ) {
        if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
            violation(
                path,
                out,
                format!("length {len} is outside {}", bounds(min, max)),
            );
        }
    }

    /// `min_items`/`max_items` on a list or map.
    pub fn items(
        len: usize,
        min: Option<usize>,
        max: Option<usize>,
        path: &FieldPath,
        out: &mut Vec<Violation>,
    ) {
        if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
            violation(
                path,
                out,
                format!("{len} item(s) is outside {}", bounds(min, max)),
            );
        }
    }

    /// `pattern` on a string.
    pub fn pattern(v: &str, re: &regex::Regex, path: &FieldPath, out: &mut Vec<Violation>) {
        if !re.is_match(v) {
            violation(path, out, format!("must match /{}/", re.as_str()));
        }
    }

    /// An enum value this version does not know, received from a newer peer.
    pub fn unrecognized(value: &str, path: &FieldPath, out: &mut Vec<Violation>) {
        violation(path, out, format!("unknown value `{value}`"));
    }

    /// A union variant this version does not know, reported at the tag property; `tag` is
    /// empty when a protobuf `oneof` arrived unset (or set to a variant it cannot name).
    pub fn unrecognized_variant(
        tag_key: &'static str,
        tag: &str,
        known: &[&str],
        path: &mut FieldPath,
        out: &mut Vec<Violation>,
    ) {
        let known = known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        path.push_field(tag_key);
        let message = if tag.is_empty() {
            format!("no variant set: `{tag_key}` must be one of {known}")
        } else {
            format!("unknown variant `{tag}`: `{tag_key}` must be one of {known}")
        };
        violation(path, out, message);
        path.pop();
    }

    fn bounds(min: Option<usize>, max: Option<usize>) -> String {
        match (min, max) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            (Some(a), None) => format!("{a}.."),
            (None, Some(b)) => format!("..={b}"),
            (None, None) => "..".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn pointers_escape_names_and_keys_and_number_list_items() {
        let mut path = FieldPath::default();
        assert_eq!(path.pointer(), "");
        path.push_field("a/b");
        path.push_index(3);
        path.push("x~y");
        assert_eq!(path.pointer(), "/a~1b/3/x~0y");
        path.pop();
        path.pop();
        assert_eq!(path.pointer(), "/a~1b");
    }

    struct Short(String);
    impl Validate for Short {
        fn validate_into(&self, path: &mut FieldPath, out: &mut Vec<Violation>) {
            check::length(self.0.chars().count(), None, Some(3), path, out);
        }
    }

    #[test]
    fn field_checks_report_under_the_field_then_leave_it() {
        let lines = vec![Short("ok".into()), Short("too long".into())];
        let tags = BTreeMap::from([("k/1".to_string(), Short("long!".into()))]);
        let (mut path, mut out) = (FieldPath::default(), Vec::new());
        check::field("lines", &lines, &mut path, &mut out);
        check::field("tags", &tags, &mut path, &mut out);
        assert_eq!(path.pointer(), "", "every field was left");
        let pointers: Vec<&str> = out.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/lines/1", "/tags/k~11"]);
    }
}
