//! Leases on SQLite: one process works on a data folder, so a lease is only refused to
//! a second taker in the same process, and never lost.

use async_trait::async_trait;

use super::SqliteLog;
use crate::leases::{Lease, Leases};
use crate::log::StoreError;

#[async_trait]
impl Leases for SqliteLog {
    async fn try_lease(&self, work: &str) -> Result<Option<Lease>, StoreError> {
        if !self.held.take(work) {
            return Ok(None);
        }
        let held = self.held.clone();
        let name = work.to_string();
        Ok(Some(Lease::new(
            work,
            self.never_lost.subscribe(),
            Box::new(move || held.give_up(&name)),
        )))
    }
}
