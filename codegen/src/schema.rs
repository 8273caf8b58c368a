//! The JSON Schema of the contract language (draft 2020-12), for editors and other tools.
//!
//! It describes shapes only; the meaning checks (references, names, rules) are the
//! validator's. A test keeps the schema's keys in step with the decoder's.

/// The schema text, as printed by `pactum schema`.
pub const JSON_SCHEMA: &str = include_str!("../schema/pactum.schema.json");
