//! Erasure, retention and the suppression list on PostgreSQL.

use async_trait::async_trait;
use unavoce_store::{
    Erasing, Erasure, ErasureReceipt, Expiring, ExpiryReceipt, StoreError, Suppression,
};

use crate::PgStore;

fn not_yet<T>() -> Result<T, StoreError> {
    Err(StoreError::Storage("erasure: not yet".into()))
}

#[async_trait]
impl Erasing for PgStore {
    async fn erase(&self, _: Erasure) -> Result<ErasureReceipt, StoreError> {
        not_yet()
    }
    async fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        not_yet()
    }
    async fn lift_suppression(&self, _: &str) -> Result<bool, StoreError> {
        not_yet()
    }
    async fn expire(&self, _: Expiring) -> Result<ExpiryReceipt, StoreError> {
        not_yet()
    }
}
