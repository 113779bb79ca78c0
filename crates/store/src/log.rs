//! The event log interface and the values that cross it.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use unavoce_core::Event;

/// Why the log could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The writer is behind; the caller should answer 503 with `Retry-After`.
    #[error("the event log is busy: its write queue is full; retry in a moment")]
    Overloaded,
    /// The log is shutting down and takes no more writes.
    #[error("the event log is shut down")]
    Closed,
    /// The disk holding the store is full: nothing of this write was stored, and writes
    /// succeed again once space is freed. The caller should answer 507 with `Retry-After`.
    #[error("the disk holding the event log is full; nothing was written: {0}")]
    Full(String),
    /// The database failed (I/O error, corruption).
    #[error("storage failure: {0}")]
    Storage(String),
    /// The quarantine entry does not exist.
    #[error("quarantine entry {0} does not exist")]
    QuarantineEntryNotFound(i64),
    /// The quarantine entry was already replayed into the log.
    #[error("quarantine entry {id} was already replayed as event {seq}")]
    AlreadyReplayed { id: i64, seq: i64 },
}

/// A message that could not be accepted, kept so it can be inspected, fixed and replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuarantineEntry {
    pub received_at: Timestamp,
    pub source: String,
    /// Stable rejection code (`missing_identity`, `invalid_json`, ...).
    pub code: String,
    /// What is wrong, in a sentence.
    pub reason: String,
    pub message_id: Option<String>,
    /// The message as received (after batch defaults were merged), or the raw text
    /// when it was not JSON.
    pub payload: String,
    /// Where it came from: endpoint, batch index, file and line, ...
    pub origin: Value,
}

/// Everything written in one atomic append.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    pub events: Vec<Event>,
    pub quarantine: Vec<NewQuarantineEntry>,
}

impl AppendBatch {
    /// Rows this batch writes.
    pub fn len(&self) -> usize {
        self.events.len() + self.quarantine.len()
    }

    /// Whether it writes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its events as a store writes them (serialised on the caller's task, so a store's
    /// writer only writes).
    pub fn event_rows(&self) -> Result<Vec<crate::EventRow>, StoreError> {
        self.events
            .iter()
            .map(crate::EventRow::from_event)
            .collect()
    }
}

/// What became of one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this position of the log.
    Stored { seq: i64 },
    /// A message with the same `messageId` is already in the log; nothing was written.
    Duplicate,
}

/// The result of an append, in the order of the batch. Returned only once durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub events: Vec<Appended>,
    pub quarantine_ids: Vec<i64>,
}

/// `event` as a log gives it back: its times to the microsecond, the precision every
/// log keeps. The intake tells its observers of events in this form, so that what they
/// hold from the events pushed to them is what a replay of the log gives.
pub fn as_stored(mut event: Event) -> Event {
    let stored = |at: Timestamp| Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at);
    event.timestamp = stored(event.timestamp);
    event.received_at = stored(event.received_at);
    event
}

/// An event with its position in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Event,
}

/// Which events to read, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// Only events after this log position (the previous page's cursor).
    pub after_seq: Option<i64>,
    pub limit: usize,
}

/// A page of events and the cursor of the next page, if there may be one.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    pub next_cursor: Option<i64>,
}

/// Whether a quarantined message still waits for a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineStatus {
    Pending,
    Replayed,
}

/// A quarantined message.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineEntry {
    pub id: i64,
    pub received_at: Timestamp,
    pub source: String,
    pub code: String,
    pub reason: String,
    pub message_id: Option<String>,
    pub payload: String,
    pub origin: Value,
    pub status: QuarantineStatus,
    pub replayed_at: Option<Timestamp>,
    pub replayed_seq: Option<i64>,
}

/// Which quarantine entries to list, oldest first.
#[derive(Debug, Clone, Default)]
pub struct QuarantineQuery {
    pub status: Option<QuarantineStatus>,
    pub code: Option<String>,
    pub after_id: Option<i64>,
    pub limit: usize,
}

/// A page of quarantine entries.
#[derive(Debug, Clone, Default)]
pub struct QuarantinePage {
    pub entries: Vec<QuarantineEntry>,
    pub next_cursor: Option<i64>,
}

/// Counts kept by the log itself, exact and cheap to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// Events in the log.
    pub events: u64,
    /// Retries recognised by `messageId` and not stored again.
    pub duplicates: u64,
    /// Quarantined messages still pending.
    pub quarantined: u64,
    /// Quarantined messages ever, replayed ones included.
    pub quarantined_total: u64,
}

/// The durable, append-only event log and its quarantine.
///
/// Implementations must make an append durable before its future resolves: a caller
/// that got `Ok` may acknowledge the data to its sender.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends events (de-duplicated by `messageId`) and quarantine entries atomically.
    async fn append(&self, batch: &AppendBatch) -> Result<AppendOutcome, StoreError> {
        self.append_settling(batch, Vec::new()).await
    }

    /// Appends `event`, the fixed form of quarantine entry `id`, and marks the entry
    /// replayed, atomically.
    async fn replay_quarantined(
        &self,
        id: i64,
        event: Event,
        at: Timestamp,
    ) -> Result<Appended, StoreError>;

    /// Reads events in log order.
    async fn events(&self, query: EventQuery) -> Result<EventPage, StoreError>;

    /// Reads the events at these log positions, in log order; missing ones are skipped.
    async fn events_at(&self, seqs: Vec<i64>) -> Result<Vec<StoredEvent>, StoreError>;

    /// The log position of the newest committed event, now and as it changes: the
    /// projections wait on it instead of polling.
    fn committed(&self) -> tokio::sync::watch::Receiver<i64>;

    /// Appends `batch` and records what became of outbox attempts in the same
    /// transaction: a message's outcome event and its settlement are durable together.
    async fn append_settling(
        &self,
        batch: &AppendBatch,
        settlements: Vec<crate::outbox::Settlement>,
    ) -> Result<AppendOutcome, StoreError>;

    /// A stored setting (JSON), e.g. the identity graph's unmerge rules.
    async fn setting(&self, name: &str) -> Result<Option<Value>, StoreError>;

    /// Stores a setting durably.
    async fn put_setting(&self, name: &str, value: Value) -> Result<(), StoreError>;

    /// The setting `name`, stored as `value` first if there is none, atomically: when
    /// several make it at once (a secret made at first start by nodes starting
    /// together), all get the one that was stored. Once it is stored, only a read.
    async fn setting_or_insert(&self, name: &str, value: Value) -> Result<Value, StoreError>;

    /// Lists quarantine entries.
    async fn quarantine(&self, query: QuarantineQuery) -> Result<QuarantinePage, StoreError>;

    /// One quarantine entry.
    async fn quarantine_entry(&self, id: i64) -> Result<Option<QuarantineEntry>, StoreError>;

    /// Counts of events and quarantined messages.
    async fn stats(&self) -> Result<LogStats, StoreError>;

    /// Whether the log takes writes now without queueing past its limit.
    fn is_ready(&self) -> bool;

    /// Stops taking writes and returns once everything already accepted is durable.
    async fn close(&self);
}
