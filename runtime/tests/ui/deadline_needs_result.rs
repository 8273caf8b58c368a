#[pactum::deadline("1s")]
async fn nothing_to_return() {}

#[pactum::deadline("1s")]
async fn wrong_error() -> Result<(), String> {
    Ok(())
}

fn main() {}
