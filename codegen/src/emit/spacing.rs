//! Blank lines between items, as a person would leave them. prettyplease prints items back
//! to back; generated files are read (in review, in "go to definition"), so this pass puts
//! one blank line before an item that follows another item at the same indentation: between
//! structs, impls, functions, methods and modules, never inside a block of statements,
//! fields or match arms.

/// How an item's first line starts (after indentation).
const ITEM_STARTS: &[&str] = &[
    "///",
    "#[",
    "pub ",
    "pub(",
    "fn ",
    "async fn ",
    "impl ",
    "impl<",
    "struct ",
    "enum ",
    "const ",
    "static ",
    "mod ",
    "type ",
    "trait ",
    "use ",
    "::pactum::__requires_feature!",
    "::pactum::__operation_error!",
    "::pactum::__validate_fields!",
    "::pactum::__serde_struct!",
    "::pactum::__open_enum!",
    "::pactum::__newtype!",
];

/// `text` with a blank line between consecutive items.
pub(crate) fn space_items(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && starts_item(lines[i - 1], line) {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether `line` begins an item right after `prev` ended one at the same indentation.
fn starts_item(prev: &str, line: &str) -> bool {
    let (p, l) = (prev.trim_start(), line.trim_start());
    let same_indent = prev.len() - p.len() == line.len() - l.len();
    let prev_ends_item = p == "}" || p == "};" || (p.ends_with(';') && !p.starts_with("//"));
    // A multi-line item (a constant built by a method chain) ends on a deeper-indented
    // line: `.retry(…);`, `});`.
    let deeper = prev.len() - p.len() > line.len() - l.len();
    if deeper
        && p.ends_with(';')
        && !p.starts_with("//")
        && ITEM_STARTS.iter().any(|s| l.starts_with(s))
    {
        return true;
    }
    // Consecutive `use`s stay together.
    let both = |start: &str| p.starts_with(start) && l.starts_with(start);
    same_indent
        && prev_ends_item
        && ITEM_STARTS.iter().any(|s| l.starts_with(s))
        && !both("use ")
        && !both("pub use ")
}

#[cfg(test)]
mod tests {
    use super::space_items;

    #[test]
    fn items_get_a_blank_line_and_statements_fields_and_arms_do_not() {
        let text = "\
/// A.
pub struct A {
    pub x: u32,
    /// y.
    pub y: u32,
}
impl A {
    fn f(&self) -> u32 {
        let a = 1;
        let b = 2;
        match a {
            1 => {}
            _ => {}
        }
        a + b
    }
    fn g() {}
}
use a::b;
use c::d;
::pactum::__requires_feature!(rest);
pub const A: Info = Info::new(\"a\")
    .route(\"GET\", \"/a\")
    .safe();
pub const B: Info = Info::new(\"b\").auth(&[
    Scheme { name: \"b\" },
]);
/// C.
pub const C: Info = Info::new(\"c\");
pub fn h() {}
";
        let spaced = space_items(text);
        assert_eq!(
            spaced,
            "\
/// A.
pub struct A {
    pub x: u32,
    /// y.
    pub y: u32,
}

impl A {
    fn f(&self) -> u32 {
        let a = 1;
        let b = 2;
        match a {
            1 => {}
            _ => {}
        }
        a + b
    }

    fn g() {}
}

use a::b;
use c::d;

::pactum::__requires_feature!(rest);

pub const A: Info = Info::new(\"a\")
    .route(\"GET\", \"/a\")
    .safe();

pub const B: Info = Info::new(\"b\").auth(&[
    Scheme { name: \"b\" },
]);

/// C.
pub const C: Info = Info::new(\"c\");

pub fn h() {}
"
        );
        assert_eq!(
            space_items(&spaced),
            spaced,
            "spacing twice changes nothing"
        );
    }
}
