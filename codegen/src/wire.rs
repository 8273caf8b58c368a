//! gRPC/protobuf numbers for fields and enum values, as a protobuf user writes them.
//!
//! A number is either written (`number: 3`) or positional: members without one get, in
//! declaration order, the lowest numbers from 1 that no member writes and `reserved:` does
//! not hold — `1, 2, 3, …` for a message nobody has numbered, so the first fifteen fields
//! take one-byte tags and the `.proto` reads like a hand-written one. Positions are not
//! stable by themselves: inserting a field in the middle renumbers the ones after it.
//! `pactum check --against <baseline>` refuses exactly that (`binary/number-changed`) and
//! says to write the old number, so a contract that has shipped keeps its numbers by
//! writing them, and one that has not pays nothing for it.

use crate::diagnostics::{Code, Diagnostic, Span};

/// Largest protobuf field number.
pub const FIELD_MAX: u64 = 536_870_911;
/// Field numbers protobuf reserves for itself.
pub const PROTO_RESERVED: std::ops::RangeInclusive<u64> = 19_000..=19_999;

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
    // Written numbers first: they are fixed, and positional ones go around them.
    let written: Vec<u64> = members
        .iter()
        .filter_map(|m| m.explicit.map(|(n, _)| n))
        .collect();
    // Positional numbers depend only on the written and reserved ones, so they are known
    // before any hint is given: a hint never suggests a number a later member takes.
    let mut positional: Vec<u32> = Vec::new();
    let mut next: u32 = 1;
    for _ in members.iter().filter(|m| m.explicit.is_none()) {
        while written.contains(&u64::from(next))
            || reserved.iter().any(|(r, _)| *r == u64::from(next))
            || (space == Space::Fields && PROTO_RESERVED.contains(&u64::from(next)))
        {
            next += 1;
        }
        positional.push(next);
        next += 1;
    }
    let mut positional_iter = positional.iter();
    let mut numbers = Vec::with_capacity(members.len());
    let mut taken: Vec<(u32, &str)> = Vec::new();
    for m in members {
        let Some((n, span)) = m.explicit else {
            let number = positional_iter.next().copied().unwrap_or(0);
            taken.push((number, m.name));
            numbers.push(number);
            continue;
        };
        let bad = n == 0 || n > max || (space == Space::Fields && PROTO_RESERVED.contains(&n));
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
        let number = n as u32;
        if reserved.iter().any(|(r, _)| *r == n) {
            diags.push(Diagnostic::new(
                Code::WireNumber,
                span,
                format!("`{}` has wire number {number}, which is reserved", m.name),
                format!(
                    "reserved numbers belonged to removed members; give `{}` `number: {}`",
                    m.name,
                    free(&taken, &written, &positional, reserved)
                ),
            ));
        } else if let Some((_, other)) = taken.iter().find(|(t, _)| *t == number) {
            diags.push(Diagnostic::new(
                Code::WireNumber,
                span,
                format!(
                    "`{}` has wire number {number}, already used by `{other}`",
                    m.name
                ),
                format!(
                    "give `{}` another `number:`, e.g. {}",
                    m.name,
                    free(&taken, &written, &positional, reserved)
                ),
            ));
        }
        taken.push((number, m.name));
        numbers.push(number);
    }
    (numbers, diags)
}

/// The lowest number nobody holds, for "write this instead" hints.
fn free(
    taken: &[(u32, &str)],
    written: &[u64],
    positional: &[u32],
    reserved: &[(u64, Span)],
) -> u32 {
    (1..)
        .find(|n: &u32| {
            !taken.iter().any(|(t, _)| t == n)
                && !written.contains(&u64::from(*n))
                && !positional.contains(n)
                && !reserved.iter().any(|(r, _)| *r == u64::from(*n))
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

    fn member(name: &str, explicit: Option<u64>) -> Member<'_> {
        Member {
            name,
            explicit: explicit.map(|n| (n, S)),
            span: S,
        }
    }

    #[test]
    fn unnumbered_members_count_up_in_declaration_order_around_written_and_reserved_ones() {
        let plain = [
            member("id", None),
            member("lines", None),
            member("note", None),
        ];
        assert_eq!(assign(&plain, &[], Space::Fields).0, [1, 2, 3]);
        // `2` is written further down and `3` reserved: the positional ones go around them.
        let mixed = [
            member("id", None),
            member("lines", None),
            member("note", None),
            member("total", Some(2)),
        ];
        let (numbers, diags) = assign(&mixed, &[(3, S)], Space::Fields);
        assert!(diags.is_empty());
        assert_eq!(numbers, [1, 4, 5, 2]);
        // Enum values start at 1 as well: 0 is the `.proto`'s `*_UNSPECIFIED`.
        let values = [member("pending", None), member("paid", None)];
        assert_eq!(assign(&values, &[], Space::EnumValues).0, [1, 2]);
    }

    #[test]
    fn a_collision_hint_never_names_a_number_a_later_member_takes() {
        let members = [
            member("a", Some(1)),
            member("b", Some(1)),
            member("c", None),
        ];
        let (numbers, diags) = assign(&members, &[], Space::Fields);
        assert_eq!(numbers[2], 2);
        assert_eq!(diags.len(), 1);
        assert!(diags[0].help.ends_with("e.g. 3"), "{}", diags[0].help);
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
