//! What a user sees when generated code needs a pactum feature the crate did not enable
//! (this crate's pactum has only `rest`).

#[test]
fn missing_features_are_named() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
