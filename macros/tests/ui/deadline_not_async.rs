#[derive(Debug)]
struct E;
impl From<pactum::DeadlineExceeded> for E {
    fn from(_: pactum::DeadlineExceeded) -> Self {
        E
    }
}

#[pactum::deadline("250ms")]
fn not_async() -> Result<(), E> {
    Ok(())
}

fn main() {
    let _ = not_async();
}
