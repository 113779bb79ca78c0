//! A person's erasure (GDPR art. 17), the store's side: what one erasure removes, what
//! it removed, and the suppression list that keeps an erased identifier from being
//! contacted again.
//!
//! Erasure is the one exception to the log being append-only: it removes events, but
//! never changes another event, and never gives a removed event's position again.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use unavoce_core::identity::ProfileId;

use crate::log::StoreError;

/// What to remove for one person's erasure, in one transaction.
///
/// Not `Debug`: it holds the very identifiers being erased, which must not reach a log.
#[derive(Default)]
pub struct Erasure {
    /// Log positions of the person's events.
    pub seqs: Vec<i64>,
    /// Their decisions, outbox entries and journey runs are kept under these ids
    /// (the profile's and those merged into it).
    pub profile_ids: Vec<ProfileId>,
    /// Their identifier values (user ids, anonymous ids, e-mails, phones…): a quarantined
    /// message whose stored payload contains any of them (as text, values of 3+ chars) is
    /// removed.
    pub identifier_values: Vec<String>,
    /// Added to the suppression list (an existing hash is kept, not duplicated).
    pub suppress: Vec<Suppression>,
}

impl Erasure {
    /// Whether it names nothing to remove or suppress.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
            && self.profile_ids.is_empty()
            && self.identifier_values.is_empty()
            && self.suppress.is_empty()
    }
}

/// An identifier that must not be contacted again: kept as a hash, never as itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// The identifier's hash.
    pub hash: String,
    /// The identifier type, e.g. `"email"`.
    pub kind: String,
    /// When it was suppressed.
    pub at: Timestamp,
}

/// What was removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReceipt {
    /// Events removed from the log.
    pub events: u64,
    /// Quarantined messages removed.
    pub quarantined: u64,
    /// Decisions removed.
    pub decisions: u64,
    /// Outbox entries removed.
    pub outbox_entries: u64,
    /// Of which were still to be sent (pending or being sent).
    pub cancelled: u64,
    /// Journey runs removed.
    pub journey_runs: u64,
    /// Suppressions added (those already listed are not counted).
    pub suppressed: u64,
}

/// Erasing a person's data, and the suppression list.
#[async_trait]
pub trait Erasing: Send + Sync + 'static {
    /// Removes everything the erasure names, atomically, and adds its suppressions;
    /// then checkpoints the write-ahead log (TRUNCATE) so no removed byte stays in it.
    async fn erase(&self, erasure: Erasure) -> Result<ErasureReceipt, StoreError>;

    /// Every suppression, by hash.
    async fn suppressions(&self) -> Result<Vec<Suppression>, StoreError>;

    /// Lifts a suppression; false if there was none.
    async fn lift_suppression(&self, hash: &str) -> Result<bool, StoreError>;
}
