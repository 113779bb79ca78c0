//! What the fuzz targets share: an event log in memory (so the real intake runs without
//! a disk), a runtime to drive it, and checks every accepted event must pass.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::{Map, Value};
use unavoce_core::Event;
use unavoce_core::segment::MAX_MESSAGE_ID_CHARS;
use unavoce_store::{
    AppendBatch, AppendOutcome, Appended, EventLog, EventPage, EventQuery, LogStats,
    QuarantineEntry, QuarantinePage, QuarantineQuery, QuarantineStatus, Settlement, StoreError,
    StoredEvent,
};

/// Runs a future to completion on one shared single-threaded runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    });
    RUNTIME.block_on(future)
}

/// The time every target receives messages at.
pub fn received_at() -> Timestamp {
    Timestamp::from_second(1_717_236_000).expect("a valid time") // 2024-06-01T10:00:00Z
}

/// An event log in memory: events de-duplicated by `messageId`, the quarantine, and
/// settings. Every event is turned into the row a store would write, and read back.
#[derive(Default)]
pub struct MemoryLog {
    state: Mutex<Stored>,
    committed: Option<tokio::sync::watch::Sender<i64>>,
}

#[derive(Default)]
struct Stored {
    ids: HashSet<String>,
    events: Vec<Event>,
    quarantine: Vec<QuarantineEntry>,
    settings: HashMap<String, Value>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Arc<Self> {
        Arc::new(MemoryLog {
            state: Mutex::default(),
            committed: Some(tokio::sync::watch::channel(0).0),
        })
    }

    /// A log holding these settings.
    pub fn with_settings(settings: impl IntoIterator<Item = (String, Value)>) -> Arc<Self> {
        let log = Self::new();
        log.lock().settings.extend(settings);
        log
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Events stored so far, in log order.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Ids of the quarantine entries so far.
    pub fn quarantine_ids(&self) -> Vec<i64> {
        self.lock().quarantine.iter().map(|q| q.id).collect()
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn replay_quarantined(
        &self,
        id: i64,
        event: Event,
        at: Timestamp,
    ) -> Result<Appended, StoreError> {
        check_event(&event);
        let mut state = self.lock();
        let entry = state
            .quarantine
            .iter_mut()
            .find(|q| q.id == id)
            .ok_or(StoreError::QuarantineEntryNotFound(id))?;
        entry.status = QuarantineStatus::Replayed;
        entry.replayed_at = Some(at);
        if !state.ids.insert(event.message_id.clone()) {
            return Ok(Appended::Duplicate);
        }
        state.events.push(event);
        Ok(Appended::Stored {
            seq: state.events.len() as i64,
        })
    }

    async fn events(&self, _query: EventQuery) -> Result<EventPage, StoreError> {
        Ok(EventPage::default())
    }

    async fn events_at(&self, _seqs: Vec<i64>) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(Vec::new())
    }

    fn committed(&self) -> tokio::sync::watch::Receiver<i64> {
        match &self.committed {
            Some(sender) => sender.subscribe(),
            None => tokio::sync::watch::channel(0).1,
        }
    }

    async fn append_settling(
        &self,
        batch: &AppendBatch,
        _settlements: Vec<Settlement>,
    ) -> Result<AppendOutcome, StoreError> {
        for (row, event) in batch.event_rows()?.iter().zip(&batch.events) {
            check_event(event);
            let back: Map<String, Value> = serde_json::from_str(&row.message)
                .expect("a stored message reads back as a JSON object");
            assert_eq!(back.len(), event.message.len(), "{}", row.message);
        }
        let mut state = self.lock();
        let mut outcome = AppendOutcome {
            events: Vec::with_capacity(batch.events.len()),
            quarantine_ids: Vec::with_capacity(batch.quarantine.len()),
        };
        for event in &batch.events {
            if state.ids.insert(event.message_id.clone()) {
                state.events.push(event.clone());
                outcome.events.push(Appended::Stored {
                    seq: state.events.len() as i64,
                });
            } else {
                outcome.events.push(Appended::Duplicate);
            }
        }
        for q in &batch.quarantine {
            let id = state.quarantine.len() as i64 + 1;
            state.quarantine.push(QuarantineEntry {
                id,
                received_at: q.received_at,
                source: q.source.clone(),
                code: q.code.clone(),
                reason: q.reason.clone(),
                message_id: q.message_id.clone(),
                payload: q.payload.clone(),
                origin: q.origin.clone(),
                status: QuarantineStatus::Pending,
                replayed_at: None,
                replayed_seq: None,
            });
            outcome.quarantine_ids.push(id);
        }
        Ok(outcome)
    }

    async fn setting(&self, name: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.lock().settings.get(name).cloned())
    }

    async fn put_setting(&self, name: &str, value: Value) -> Result<(), StoreError> {
        self.lock().settings.insert(name.to_string(), value);
        Ok(())
    }

    async fn setting_or_insert(&self, name: &str, value: Value) -> Result<Value, StoreError> {
        Ok(self
            .lock()
            .settings
            .entry(name.to_string())
            .or_insert(value)
            .clone())
    }

    async fn quarantine(&self, _query: QuarantineQuery) -> Result<QuarantinePage, StoreError> {
        Ok(QuarantinePage::default())
    }

    async fn quarantine_entry(&self, id: i64) -> Result<Option<QuarantineEntry>, StoreError> {
        Ok(self.lock().quarantine.iter().find(|q| q.id == id).cloned())
    }

    async fn stats(&self) -> Result<LogStats, StoreError> {
        let state = self.lock();
        Ok(LogStats {
            events: state.events.len() as u64,
            ..LogStats::default()
        })
    }

    fn is_ready(&self) -> bool {
        true
    }

    async fn close(&self) {}
}

/// What every accepted event must be: its columns as the message says them, each
/// without NUL, its message id within the limit, its type in the message.
pub fn check_event(event: &Event) {
    let m = &event.message;
    assert!(!event.message_id.is_empty());
    assert!(event.message_id.chars().count() <= MAX_MESSAGE_ID_CHARS);
    assert_eq!(
        m.get("messageId").and_then(Value::as_str),
        Some(event.message_id.as_str())
    );
    assert_eq!(
        m.get("type").and_then(Value::as_str),
        Some(event.event_type.as_str())
    );
    assert!(
        event.user_id.is_some() || event.anonymous_id.is_some() || m.contains_key("previousId")
    );
    for column in [
        Some(&event.message_id),
        event.user_id.as_ref(),
        event.anonymous_id.as_ref(),
        event.name.as_ref(),
        event.touchpoint.as_ref(),
        event.channel.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!column.contains('\0'), "a NUL in {column:?}");
        assert_eq!(column.trim(), column, "untrimmed {column:?}");
    }
    let timestamp = m.get("timestamp").and_then(Value::as_str);
    assert_eq!(
        timestamp.and_then(|t| t.parse::<Timestamp>().ok()),
        Some(event.timestamp)
    );
}

/// Splits fuzz input at the first `sep`: the part before, and the rest (empty when
/// there is no `sep`).
pub fn split_at_byte(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
