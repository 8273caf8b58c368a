#[pactum::traced]
fn sync_work() -> u32 {
    1
}

#[pactum::traced(level = "debug")]
async fn unknown_option() {}

fn main() {}
