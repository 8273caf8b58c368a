//! Every macro diagnostic, with its expected message checked in under `tests/ui/`.
//! `TRYBUILD=overwrite cargo test -p pactum-macros --test compile_fail` accepts new messages.

#[test]
fn macro_misuse_is_a_spanned_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
