// `include_contract!` needs the generator at compile time, behind the `contract` feature.
pactum::include_contract!("contracts/pricing/v1.yaml");

fn main() {}
