//! What every handler and consumer of `{{ f.name }}` shares. Written once by `pactum new`:
//! yours to edit.

use pactum::store::postgres::Database;

/// The service's state: handlers see it as `self`, consumers as `self.app`. Add what they
/// need here (clients of the services this one calls, caches, settings).
pub struct App {
    /// PostgreSQL, when the service was given one (`--postgres` / `DATABASE_URL`): open a
    /// connection with `connect()`, then a transaction for each effect, and write the
    /// effect, its events (into `wiring::OUTBOX`) and a keyed request's reply in it.
    pub database: Option<Database>,
}

impl App {
    /// Builds the state at start-up; an error stops the service with its message.
    pub async fn new(database: Option<Database>) -> Result<Self, String> {
        Ok(App { database })
    }
}
