#[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
#[event(version = 1, key = "order_id")]
struct CreateOrder {
    order_id: u64,
}

#[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
#[event(version = 1)]
struct ProductFeed {
    items: Vec<u64>,
}

fn main() {}
