#[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
#[event(version = 1, key = "ordr_id")]
struct OrderPlaced {
    order_id: u64,
    total: i64,
}

#[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
#[event(key = "id")]
struct OrderShipped {
    id: u64,
}

#[derive(serde::Serialize, serde::Deserialize, pactum::Event)]
#[event(version = 1, delivery = "broadcast")]
struct OrderPaid {
    id: u64,
}

fn main() {}
