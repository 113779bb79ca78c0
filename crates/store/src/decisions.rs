//! The decision log: every send, hold or suppress decision of the policy gate with its
//! reasons, and the outbox of messages to deliver.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use unavoce_core::identity::ProfileId;
use unavoce_core::policy::Outcome;

use crate::log::StoreError;

/// A decision to record. One whose outcome goes out (`Outcome::goes_out`: a send or a
/// hold) also puts the message in the outbox, in the same transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewDecision {
    pub profile_id: ProfileId,
    pub message: String,
    pub purpose: String,
    pub channel: String,
    pub journey: Option<String>,
    pub broadcast: Option<String>,
    pub decided_at: Timestamp,
    pub outcome: Outcome,
    pub send_at: Option<Timestamp>,
    /// `[{"code", "detail"}]`.
    pub reasons: Value,
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDecision {
    pub id: i64,
    #[serde(flatten)]
    pub decision: NewDecision,
}

/// Which decisions to read.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    /// Decisions for any of these profiles (a profile and those merged into it); all
    /// profiles when empty.
    pub profile_ids: Vec<ProfileId>,
    pub broadcast: Option<String>,
    /// Only decisions to send or hold (what frequency caps count), decided at or after.
    pub sends_since: Option<Timestamp>,
    pub after_id: Option<i64>,
    pub limit: usize,
    /// The latest first (`after_id` then counts down).
    pub newest_first: bool,
}

/// The durable decision log and outbox.
#[async_trait]
pub trait DecisionLog: Send + Sync + 'static {
    /// Records decisions (and outbox entries for those that send), atomically; returns
    /// their ids.
    async fn record_decisions(&self, decisions: Vec<NewDecision>) -> Result<Vec<i64>, StoreError>;

    /// Records decisions and stores a setting (the cursor of whoever decided them) in
    /// one transaction, so a restart neither loses nor repeats them.
    async fn record_decisions_with_setting(
        &self,
        decisions: Vec<NewDecision>,
        name: &str,
        value: Value,
    ) -> Result<Vec<i64>, StoreError>;

    /// How many decisions there are by outcome (`send`, `hold`, `suppress`), leaving out
    /// those of purpose `except` (insights for departments, which are not messages to
    /// people).
    async fn decision_counts(&self, except: &str) -> Result<Vec<(String, u64)>, StoreError>;

    /// Reads decisions, oldest first.
    async fn decisions(&self, query: DecisionQuery) -> Result<Vec<StoredDecision>, StoreError>;
}
