//! Keys and the audit log on PostgreSQL.

use async_trait::async_trait;
use jiff::Timestamp;
use unavoce_core::audit::{AuditEntry, AuditRecord};
use unavoce_store::{ApiKey, AuditQuery, Governance, StoreError};

use crate::PgStore;

fn not_yet<T>() -> Result<T, StoreError> {
    Err(StoreError::Storage("governance: not yet".into()))
}

#[async_trait]
impl Governance for PgStore {
    async fn create_key(&self, _: ApiKey) -> Result<bool, StoreError> {
        not_yet()
    }
    async fn put_key(&self, _: ApiKey) -> Result<(), StoreError> {
        not_yet()
    }
    async fn key_by_hash(&self, _: &str) -> Result<Option<ApiKey>, StoreError> {
        not_yet()
    }
    async fn key_by_name(&self, _: &str) -> Result<Option<ApiKey>, StoreError> {
        not_yet()
    }
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        not_yet()
    }
    async fn revoke_key(&self, _: &str) -> Result<bool, StoreError> {
        not_yet()
    }
    async fn touch_key(&self, _: &str, _: Timestamp) -> Result<(), StoreError> {
        not_yet()
    }
    async fn audit(&self, _: Vec<AuditEntry>) -> Result<(), StoreError> {
        not_yet()
    }
    async fn audit_records(&self, _: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        not_yet()
    }
    async fn audit_chain(&self, _: i64, _: usize) -> Result<Vec<AuditRecord>, StoreError> {
        not_yet()
    }
}
