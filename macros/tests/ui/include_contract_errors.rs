pactum::include_contract!("broken.yaml");

fn main() {}
