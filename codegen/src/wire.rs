//! Stable gRPC/protobuf numbers for fields and enum values.
//!
//! A number is either written (`number: 3`) or derived from the name alone: FNV-1a of the wire
//! name, folded into 1..=2047. Deriving from the name (not the position) means adding,
//! removing or reordering fields never renumbers the others; 2047 keeps every tag within two
//! bytes on the wire. Two names that derive the same number are refused with a free number to
//! write instead — the contract is never silently renumbered.

use crate::diagnostics::{Code, Diagnostic, Span};

/// Derived numbers fall in `1..=DERIVED_MAX`.
pub const DERIVED_MAX: u32 = 2047;
/// Largest protobuf field number.
pub const FIELD_MAX: u64 = 536_870_911;
/// Field numbers protobuf reserves for itself.
pub const PROTO_RESERVED: std::ops::RangeInclusive<u64> = 19_000..=19_999;

/// The number a name derives when none is written.
pub fn derived_number(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % DERIVED_MAX + 1
}

/// One numbered member (field or enum value).
pub struct Member<'a> {
    /// Wire name.
    pub name: &'a str,
    /// Written number, if any.
    pub explicit: Option<(u64, Span)>,
    /// Where the member is declared.
    pub span: Span,
}

/// What is being numbered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Message fields.
    Fields,
    /// Enum values (0 is taken by `*_UNSPECIFIED`).
    EnumValues,
}

/// Assigns a number to each member; collisions and invalid numbers become diagnostics.
pub fn assign(
    members: &[Member<'_>],
    reserved: &[(u64, Span)],
    space: Space,
) -> (Vec<u32>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let max = match space {
        Space::Fields => FIELD_MAX,
        Space::EnumValues => i32::MAX as u64,
    };
    for (n, span) in reserved {
        if *n == 0 || *n > max {
            diags.push(Diagnostic::new(
                Code::WireNumber,
                *span,
                format!("reserved number {n} is out of range 1..={max}"),
                "reserve only numbers that were once used",
            ));
        }
    }
    let mut numbers = Vec::with_capacity(members.len());
    let mut taken: Vec<(u32, &str)> = Vec::new();
    for m in members {
        let (number, span, derived) = match m.explicit {
            Some((n, span)) => {
                let bad =
                    n == 0 || n > max || (space == Space::Fields && PROTO_RESERVED.contains(&n));
                if bad {
                    diags.push(Diagnostic::new(
                        Code::WireNumber,
                        span,
                        format!(
                            "`{}` has number {n}, which protobuf does not allow here",
                            m.name
                        ),
                        format!("use a number in 1..={max} outside 19000..=19999"),
                    ));
                    numbers.push(0);
                    continue;
                }
                (n as u32, span, false)
            }
            None => (derived_number(m.name), m.span, true),
        };
        let how = if derived { "derives" } else { "has" };
        if reserved.iter().any(|(r, _)| *r == u64::from(number)) {
            diags.push(Diagnostic::new(
                Code::WireNumber,
                span,
                format!("`{}` {how} wire number {number}, which is reserved", m.name),
                format!(
                    "reserved numbers belonged to removed members; give `{}` `number: {}`",
                    m.name,
                    free(&taken, reserved, numbers.len())
                ),
            ));
        } else if let Some((_, other)) = taken.iter().find(|(n, _)| *n == number) {
            diags.push(Diagnostic::new(
                Code::WireNumber,
                span,
                format!(
                    "`{}` {how} wire number {number}, already used by `{other}`",
                    m.name
                ),
                format!(
                    "give `{}` an explicit `number: {}`",
                    m.name,
                    free(&taken, reserved, numbers.len())
                ),
            ));
        }
        taken.push((number, m.name));
        numbers.push(number);
    }
    (numbers, diags)
}

fn free(taken: &[(u32, &str)], reserved: &[(u64, Span)], hint: usize) -> u32 {
    (1..)
        .skip(hint)
        .find(|n: &u32| {
            !taken.iter().any(|(t, _)| t == n) && !reserved.iter().any(|(r, _)| *r == u64::from(*n))
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::FileId;

    const S: Span = Span {
        file: FileId(0),
        line: 1,
        col: 1,
    };

    #[test]
    fn derived_numbers_are_stable_under_reordering_and_adding() {
        let a = derived_number("order_id");
        let members = [
            Member {
                name: "lines",
                explicit: None,
                span: S,
            },
            Member {
                name: "order_id",
                explicit: None,
                span: S,
            },
        ];
        let (nums, diags) = assign(&members, &[], Space::Fields);
        assert!(diags.is_empty());
        assert_eq!(nums[1], a);
        let more = [
            Member {
                name: "order_id",
                explicit: None,
                span: S,
            },
            Member {
                name: "note",
                explicit: None,
                span: S,
            },
            Member {
                name: "lines",
                explicit: None,
                span: S,
            },
        ];
        let (nums2, _) = assign(&more, &[], Space::Fields);
        assert_eq!((nums2[0], nums2[2]), (nums[1], nums[0]));
        assert!((1..=DERIVED_MAX).contains(&a));
    }

    #[test]
    fn refuses_collisions_reserved_and_out_of_range() {
        let members = [
            Member {
                name: "a",
                explicit: Some((5, S)),
                span: S,
            },
            Member {
                name: "b",
                explicit: Some((5, S)),
                span: S,
            },
            Member {
                name: "c",
                explicit: Some((19_500, S)),
                span: S,
            },
            Member {
                name: "d",
                explicit: Some((7, S)),
                span: S,
            },
        ];
        let (_, diags) = assign(&members, &[(7, S)], Space::Fields);
        assert_eq!(diags.len(), 3);
        assert!(diags.iter().all(|d| d.code == Code::WireNumber));
        assert!(diags[0].help.contains("number:"));
    }
}
