// A store backend pactum was built without: the generated item is dropped, so naming it
// fails where the user names it.
#[::pactum::__if_feature(postgres)]
pub fn start_on_postgres() {}

fn main() {
    start_on_postgres();
}
