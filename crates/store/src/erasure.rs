//! A person's erasure (GDPR art. 17), the store's side: what one erasure removes, what
//! it removed, and the suppression list that keeps an erased identifier from being
//! contacted again.
//!
//! Erasure and retention are the two exceptions to the log being append-only: they remove
//! events, but never change another event, and never give a removed event's position
//! again.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use unavoce_core::EventType;
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

/// What a quarantined message's stored payload is searched for in an erasure: each
/// identifier value of 3+ characters, as it is and as JSON writes it inside a string,
/// ignoring case. The same rule in every store.
pub struct PayloadSearch {
    needles: Vec<String>,
}

impl PayloadSearch {
    /// The search for these values; none when no value is long enough to search for.
    pub fn new(values: &[String]) -> Option<PayloadSearch> {
        let mut needles = Vec::new();
        for value in values.iter().filter(|v| v.chars().count() >= 3) {
            needles.push(value.to_lowercase());
            let quoted = Value::from(value.as_str()).to_string();
            let escaped = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
            if let Some(escaped) = escaped.filter(|e| e != value) {
                needles.push(escaped.to_lowercase());
            }
        }
        needles.sort();
        needles.dedup();
        (!needles.is_empty()).then_some(PayloadSearch { needles })
    }

    /// Whether a payload as stored (bytes, read as UTF-8 with bad bytes replaced) holds
    /// any of the values.
    pub fn holds(&self, payload: &[u8]) -> bool {
        let payload = String::from_utf8_lossy(payload).to_lowercase();
        self.needles.iter().any(|n| payload.contains(n.as_str()))
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

/// Quarantined messages one [`Erasing::expire`] removes at most: a caller asks again
/// while it removes this many.
pub const QUARANTINE_EXPIRY_CHUNK: usize = 1_000;

/// Expired data to remove (retention), in one small transaction.
///
/// Not `Debug`: it holds identifiers.
#[derive(Clone, Default)]
pub struct Expiring {
    /// Log positions of expired events to remove.
    pub removed: Vec<i64>,
    /// Expired events to replace by their identity evidence.
    pub stripped: Vec<StrippedEvent>,
    /// Quarantined messages received before this are removed too, at most
    /// [`QUARANTINE_EXPIRY_CHUNK`] of them.
    pub quarantined_before: Option<Timestamp>,
}

/// An expired event replaced, at its log position, by what is left of it.
#[derive(Clone)]
pub struct StrippedEvent {
    pub seq: i64,
    /// `identify`, or `alias`.
    pub event_type: EventType,
    /// The whole message now; its name, touchpoint and channel are cleared.
    pub message: Map<String, Value>,
}

/// What an expiry removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryReceipt {
    /// Events removed from the log.
    pub events: u64,
    /// Events replaced by their identity evidence.
    pub stripped: u64,
    /// Quarantined messages removed.
    pub quarantined: u64,
}

/// Erasing a person's data, and the suppression list.
#[async_trait]
pub trait Erasing: Send + Sync + 'static {
    /// Removes everything the erasure names, atomically, and adds its suppressions;
    /// then has the write-ahead log truncated (a `TRUNCATE` checkpoint, as soon as no
    /// reader holds it) so no removed byte stays in it.
    async fn erase(&self, erasure: Erasure) -> Result<ErasureReceipt, StoreError>;

    /// Every suppression, by hash.
    async fn suppressions(&self) -> Result<Vec<Suppression>, StoreError>;

    /// Lifts a suppression; false if there was none.
    async fn lift_suppression(&self, hash: &str) -> Result<bool, StoreError>;

    /// Removes and strips expired data (retention) in one transaction. Like an erasure
    /// it never gives a removed event's position again; unlike one it leaves the
    /// write-ahead log to the background checkpointer.
    async fn expire(&self, expiring: Expiring) -> Result<ExpiryReceipt, StoreError>;
}
