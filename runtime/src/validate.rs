//! Constraint validation for generated types.

use std::fmt;

/// Where in a value a violation is: a JSON pointer under construction.
#[derive(Clone, Debug, Default)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Enters a field or map key.
    pub fn push(&mut self, segment: impl fmt::Display) {
        // RFC 6901 escaping: `~` → `~0`, `/` → `~1`.
        self.segments
            .push(segment.to_string().replace('~', "~0").replace('/', "~1"));
    }

    /// Leaves the last field.
    pub fn pop(&mut self) {
        self.segments.pop();
    }

    /// The JSON pointer (`/lines/0/sku`; `""` for the root).
    pub fn pointer(&self) -> String {
        self.segments.iter().map(|s| format!("/{s}")).collect()
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
            path.push(i);
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

    fn bounds(min: Option<usize>, max: Option<usize>) -> String {
        match (min, max) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            (Some(a), None) => format!("{a}.."),
            (None, Some(b)) => format!("..={b}"),
            (None, None) => "..".into(),
        }
    }
}
