#[pactum::deadline("1s")]
async fn nothing_to_return() {}

#[derive(Debug)]
struct MyError;

#[pactum::deadline("1s")]
async fn wrong_error() -> Result<(), MyError> {
    Ok(())
}

fn main() {}
