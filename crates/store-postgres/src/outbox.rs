//! The outbox on PostgreSQL.

use unavoce_store::{Settlement, StoreError};

/// Records what became of attempts, inside `tx`.
pub(crate) async fn settle(
    _tx: &tokio_postgres::Transaction<'_>,
    settlements: &[Settlement],
) -> Result<(), StoreError> {
    if settlements.is_empty() {
        return Ok(());
    }
    Err(StoreError::Storage("outbox: not yet".into()))
}

use async_trait::async_trait;
use jiff::Timestamp;
use unavoce_store::{EarlyReport, Outbox, OutboxCount, OutboxEntry, OutboxQuery};

use crate::PgStore;

fn not_yet<T>() -> Result<T, StoreError> {
    Err(StoreError::Storage("outbox: not yet".into()))
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim(&self, _: &str, _: Timestamp, _: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        not_yet()
    }
    async fn settle(&self, _: Vec<Settlement>) -> Result<(), StoreError> {
        not_yet()
    }
    async fn resume_in_flight(&self) -> Result<u64, StoreError> {
        not_yet()
    }
    async fn requeue(&self, _: i64, _: Timestamp) -> Result<bool, StoreError> {
        not_yet()
    }
    async fn outbox(&self, _: OutboxQuery) -> Result<Vec<OutboxEntry>, StoreError> {
        not_yet()
    }
    async fn park_report(&self, _: EarlyReport) -> Result<(), StoreError> {
        not_yet()
    }
    async fn take_early_reports(&self, _: Vec<String>) -> Result<Vec<EarlyReport>, StoreError> {
        not_yet()
    }
    async fn early_reports_due(&self) -> Result<Vec<String>, StoreError> {
        not_yet()
    }
    async fn outbox_by_provider_id(&self, _: &str) -> Result<Option<OutboxEntry>, StoreError> {
        not_yet()
    }
    async fn outbox_entry(&self, _: i64) -> Result<Option<OutboxEntry>, StoreError> {
        not_yet()
    }
    async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
        not_yet()
    }
    async fn next_due(&self, _: &str) -> Result<Option<Timestamp>, StoreError> {
        not_yet()
    }
}
