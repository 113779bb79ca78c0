//! Who may use the API and what they did: named API keys (kept as hashes) and the
//! append-only, hash-chained audit log.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use unavoce_core::access::Role;
use unavoce_core::audit::{AuditEntry, AuditRecord};

use crate::log::StoreError;

/// A named API key. The key itself is never kept: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub key_hash: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// Which audit records to read: newest first, after `before` (a seq) when given.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub profile_id: Option<String>,
    /// A prefix of the action, e.g. `POST` or `GET /api/profiles/{id}`.
    pub action: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub before: Option<i64>,
    pub limit: usize,
}

/// Keys and the audit log.
#[async_trait]
pub trait Governance: Send + Sync + 'static {
    /// Adds a key; false if one of that name exists.
    async fn create_key(&self, key: ApiKey) -> Result<bool, StoreError>;

    /// Adds a key, or gives an existing one of that name this role and hash.
    async fn put_key(&self, key: ApiKey) -> Result<(), StoreError>;

    /// The key whose hash this is.
    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// The key of this name.
    async fn key_by_name(&self, name: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, by name.
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Removes a key: it no longer opens anything. False if there was none.
    async fn revoke_key(&self, name: &str) -> Result<bool, StoreError>;

    /// Notes that a key was used at `at`.
    async fn touch_key(&self, name: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Ends the dashboard session signed `signature`, which would otherwise hold until
    /// `expires`, and forgets ended sessions that expired before `now`.
    async fn end_session(
        &self,
        signature: &str,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Whether the session signed `signature` was ended.
    async fn session_ended(&self, signature: &str) -> Result<bool, StoreError>;

    /// Appends entries to the audit log, each chained to the one before.
    async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError>;

    /// Reads audit records, newest first.
    async fn audit_records(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Every audit record from `after` (a seq) on, oldest first, at most `limit`.
    async fn audit_chain(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
}
