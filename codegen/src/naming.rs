//! Every name Pactum turns into Rust goes through here: case conversion, keyword escaping,
//! refusals, and the normal form used to detect collisions (`userId` vs `user_id`).

use heck::{ToPascalCase, ToShoutySnakeCase, ToSnakeCase};

/// Rust keywords (all editions up to 2024) that can be written as raw identifiers (`r#type`).
const RAW_OK_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// Keywords that cannot be raw identifiers: a name that converts to one of these is refused.
const NEVER_IDENT: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Why a name cannot become an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// Empty, starts with a digit, or holds characters other than ASCII letters, digits, `_`.
    NotAnIdentifier,
    /// Converts to `self`, `Self`, `super` or `crate`.
    Reserved(String),
}

/// Checks that a contract name can become a Rust identifier in the given case.
pub fn check_name(name: &str, case: Case) -> Result<(), NameProblem> {
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().any(|c| c.is_ascii_alphabetic());
    if !valid {
        return Err(NameProblem::NotAnIdentifier);
    }
    let converted = convert(name, case);
    if NEVER_IDENT.contains(&converted.as_str()) {
        return Err(NameProblem::Reserved(converted));
    }
    Ok(())
}

/// The case a name takes in Rust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Types, variants: `OrderLine`.
    Pascal,
    /// Fields, modules, functions: `order_line`.
    Snake,
    /// Constants: `ORDER_LINE`.
    Screaming,
}

/// Converts without escaping.
pub fn convert(name: &str, case: Case) -> String {
    match case {
        Case::Pascal => name.to_pascal_case(),
        Case::Snake => name.to_snake_case(),
        Case::Screaming => name.to_shouty_snake_case(),
    }
}

/// The identifier text to emit: converted, with `r#` for keywords.
pub fn rust_ident(name: &str, case: Case) -> String {
    let converted = convert(name, case);
    if RAW_OK_KEYWORDS.contains(&converted.as_str()) {
        format!("r#{converted}")
    } else {
        converted
    }
}

/// Builds a `syn::Ident` (raw when needed). Callers pass names that passed [`check_name`].
pub fn ident(name: &str, case: Case) -> proc_macro2::Ident {
    let text = rust_ident(name, case);
    match text.strip_prefix("r#") {
        Some(raw) => proc_macro2::Ident::new_raw(raw, proc_macro2::Span::call_site()),
        None => proc_macro2::Ident::new(&text, proc_macro2::Span::call_site()),
    }
}

/// The form two names are compared in: equal forms collide once converted to any case.
pub fn collision_key(name: &str) -> String {
    name.to_snake_case()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_escapes() {
        assert_eq!(rust_ident("userId", Case::Snake), "user_id");
        assert_eq!(rust_ident("type", Case::Snake), "r#type");
        assert_eq!(rust_ident("order_line", Case::Pascal), "OrderLine");
        assert_eq!(rust_ident("orderLine", Case::Screaming), "ORDER_LINE");
        assert_eq!(ident("match", Case::Snake).to_string(), "r#match");
    }

    #[test]
    fn refuses_what_cannot_be_an_identifier() {
        assert_eq!(
            check_name("9lives", Case::Snake),
            Err(NameProblem::NotAnIdentifier)
        );
        assert_eq!(
            check_name("order-id", Case::Snake),
            Err(NameProblem::NotAnIdentifier)
        );
        assert_eq!(
            check_name("", Case::Snake),
            Err(NameProblem::NotAnIdentifier)
        );
        assert_eq!(
            check_name("_", Case::Snake),
            Err(NameProblem::NotAnIdentifier)
        );
        assert_eq!(
            check_name("prénom", Case::Snake),
            Err(NameProblem::NotAnIdentifier)
        );
        assert_eq!(
            check_name("self", Case::Snake),
            Err(NameProblem::Reserved("self".into()))
        );
        assert_eq!(
            check_name("self", Case::Pascal),
            Err(NameProblem::Reserved("Self".into()))
        );
        assert!(check_name("type", Case::Snake).is_ok());
    }

    #[test]
    fn collisions_are_detected_across_cases() {
        assert_eq!(collision_key("userId"), collision_key("user_id"));
        assert_eq!(collision_key("UserId"), collision_key("user_id"));
        assert_ne!(collision_key("user"), collision_key("users"));
    }
}
