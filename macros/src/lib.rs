//! Attribute and derive macros for Pactum. Use them through the `pactum` crate, which
//! re-exports them; generated code and hand-written services share them.
