#[pactum::deadline("5 parsecs")]
async fn a() -> Result<(), pactum::DeadlineExceeded> {
    Ok(())
}

#[pactum::deadline("0ms")]
async fn b() -> Result<(), pactum::DeadlineExceeded> {
    Ok(())
}

#[pactum::deadline(250)]
async fn c() -> Result<(), pactum::DeadlineExceeded> {
    Ok(())
}

fn main() {}
