//! Validating submissions and appending them to the log.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use unavoce_core::segment::{
    self, MAX_MESSAGE_BYTES, Rejection, RejectionCode, TouchpointChannels,
};
use unavoce_core::{Event, EventType, IntakeContext, Touchpoint};
use unavoce_store::{AppendBatch, Appended, EventLog, NewQuarantineEntry, StoreError};

use crate::Suppressions;

/// A message as it arrived.
#[derive(Debug, Clone)]
pub enum ItemBody<'a> {
    /// JSON text, e.g. one item of a batch.
    Raw(&'a str),
    /// An already built message, e.g. a mapped row of an imported file.
    Parsed(Map<String, Value>),
    /// Something that could not be read as a message at all, kept as text.
    Unusable {
        payload: String,
        rejection: Rejection,
    },
}

/// One message of a submission, with where it came from (endpoint, index, line).
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub body: ItemBody<'a>,
    pub origin: Value,
}

/// Messages that arrived together.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub source: &'a str,
    pub received_at: Timestamp,
    /// The call type fixed by the endpoint (`/v1/track`).
    pub endpoint_type: Option<EventType>,
    /// The touchpoint to record for messages that name none.
    pub default_touchpoint: Option<&'a str>,
    /// A batch envelope whose `context`, `integrations` and `sentAt` apply to every item.
    pub envelope: Option<&'a Map<String, Value>>,
    pub items: Vec<Item<'a>>,
}

/// A message that was not accepted, and where it was put.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedItem {
    /// Position in the submission.
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub code: RejectionCode,
    pub message: String,
    /// The quarantine entry holding it, for inspection and replay; none for a message
    /// refused outright (`subject_erased`), which is not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<i64>,
}

/// The durable outcome of a submission.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    /// Events newly stored.
    pub accepted: usize,
    /// Retries already in the log, acknowledged without storing again.
    pub duplicates: usize,
    /// Messages quarantined, with reasons.
    pub rejected: Vec<RejectedItem>,
}

/// What became of a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayOutcome {
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// Position in the log, or `None` when the message was already there.
    pub seq: Option<i64>,
    pub duplicate: bool,
}

/// Why the intake could not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replayed message is still not valid; the entry stays in the quarantine.
    #[error("the message is still invalid: {0}")]
    StillInvalid(Rejection),
}

/// Told of every event the intake stored, once durable, with its log position and as
/// the log gives it back ([`unavoce_store::as_stored`]): how projections in the same
/// process follow the log without reading it back.
pub trait Observer: Send + Sync {
    /// `events` are in log order within one append; appends may be told out of order.
    /// Called before the sender is answered, so it must only hand the events over.
    fn stored(&self, events: Vec<(i64, Event)>);
}

/// A submission validated: what to append, what was quarantined (index, message id,
/// why), and what was refused outright (index, message id).
struct Validated {
    batch: AppendBatch,
    rejected_at: Vec<(usize, Option<String>, Rejection)>,
    refused: Vec<(usize, Option<String>)>,
}

/// The intake pipeline over an event log.
#[derive(Clone)]
pub struct Intake {
    log: Arc<dyn EventLog>,
    touchpoint_channels: Arc<RwLock<TouchpointChannels>>,
    observers: Vec<Arc<dyn Observer>>,
    wakeups: Vec<Arc<dyn Fn() + Send + Sync>>,
    suppressions: Option<Arc<Suppressions>>,
}

impl Intake {
    /// An intake appending to `log`.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Intake {
            log,
            touchpoint_channels: Arc::default(),
            observers: Vec::new(),
            wakeups: Vec::new(),
            suppressions: None,
        }
    }

    /// Refuses messages carrying an identifier on `suppressions` (erased people).
    pub fn with_suppressions(mut self, suppressions: Arc<Suppressions>) -> Self {
        self.suppressions = Some(suppressions);
        self
    }

    /// The suppression list in force, if any.
    pub fn suppressions(&self) -> Option<&Arc<Suppressions>> {
        self.suppressions.as_ref()
    }

    /// Tells `observer` of every event stored from now on.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Also calls `wake` after each append that stored events, for readers that read
    /// the log themselves (the journey runner, the insights reader): they need to know,
    /// not a copy of the events.
    pub fn with_wakeup(mut self, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.wakeups.push(wake);
        self
    }

    fn tell_observers(&self, events: Vec<(i64, Event)>) {
        if events.is_empty() {
            return;
        }
        for wake in &self.wakeups {
            wake();
        }
        let events: Vec<(i64, Event)> = events
            .into_iter()
            .map(|(seq, event)| (seq, unavoce_store::as_stored(event)))
            .collect();
        if let Some((last, others)) = self.observers.split_last() {
            for observer in others {
                observer.stored(events.clone());
            }
            last.stored(events);
        }
    }

    /// Gives events that name a registered touchpoint but no channel that
    /// touchpoint's channel.
    pub fn with_touchpoints<'t>(
        mut self,
        touchpoints: impl IntoIterator<Item = &'t Touchpoint>,
    ) -> Self {
        self.touchpoint_channels = Arc::new(RwLock::new(
            touchpoints
                .into_iter()
                .map(|t| (t.id.clone(), t.channel))
                .collect(),
        ));
        self
    }

    /// Reads touchpoint channels from a map kept current by someone else (the registry).
    pub fn with_touchpoint_channels(mut self, channels: Arc<RwLock<TouchpointChannels>>) -> Self {
        self.touchpoint_channels = channels;
        self
    }

    /// The log this intake appends to.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Appends messages the platform writes itself about people — a consent an agent
    /// took, an unsubscribe, a segment membership, a journey's profile update — from
    /// `source`, received now. They go through the same validation as any other: one
    /// that does not hold is quarantined and reported.
    pub async fn record(
        &self,
        source: &str,
        messages: Vec<Map<String, Value>>,
        origin: Value,
    ) -> Result<IngestReport, StoreError> {
        self.record_settling(source, messages, origin, Vec::new())
            .await
    }

    /// As [`Self::record`], and records what became of outbox attempts in the same
    /// transaction (the delivery worker's outcome events and their settlements).
    pub async fn record_settling(
        &self,
        source: &str,
        messages: Vec<Map<String, Value>>,
        origin: Value,
        settlements: Vec<unavoce_store::Settlement>,
    ) -> Result<IngestReport, StoreError> {
        let validated = self.validate_all(Submission {
            source,
            received_at: Timestamp::now(),
            endpoint_type: None,
            default_touchpoint: None,
            envelope: None,
            items: messages
                .into_iter()
                .map(|m| Item {
                    body: ItemBody::Parsed(m),
                    origin: origin.clone(),
                })
                .collect(),
        });
        self.append(validated, settlements).await
    }

    /// Validates every item, then appends the valid events and quarantines the rest in
    /// one durable append. Returns only once everything is durable.
    pub async fn ingest(&self, submission: Submission<'_>) -> Result<IngestReport, StoreError> {
        let validated = self.validate_all(submission);
        self.append(validated, Vec::new()).await
    }

    /// Validates a submission's items into an append: events and quarantine entries,
    /// and the messages refused outright.
    fn validate_all(&self, submission: Submission<'_>) -> Validated {
        let channels = self
            .touchpoint_channels
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let ctx = IntakeContext {
            received_at: submission.received_at,
            source: submission.source,
            endpoint_type: submission.endpoint_type,
            default_touchpoint: submission.default_touchpoint,
            touchpoint_channels: Some(&channels),
        };
        let mut batch = AppendBatch {
            events: Vec::with_capacity(submission.items.len()),
            quarantine: Vec::new(),
        };
        let mut rejected_at = Vec::new();
        let mut refused = Vec::new();
        for (index, item) in submission.items.into_iter().enumerate() {
            match validate(&item.body, submission.envelope, &ctx) {
                Ok(event) if self.suppressions.as_ref().is_some_and(|s| s.holds(&event)) => {
                    refused.push((index, Some(event.message_id)));
                }
                Ok(event) => batch.events.push(event),
                Err(rejection) => {
                    let (payload, message_id) = quarantine_payload(&item.body, submission.envelope);
                    let mut origin = item.origin;
                    annotate_origin(&mut origin, &ctx);
                    rejected_at.push((index, message_id.clone(), rejection.clone()));
                    batch.quarantine.push(NewQuarantineEntry {
                        received_at: ctx.received_at,
                        source: ctx.source.to_string(),
                        code: rejection.code.as_str().to_string(),
                        reason: rejection.message,
                        message_id,
                        payload,
                        origin,
                    });
                }
            }
        }
        Validated {
            batch,
            rejected_at,
            refused,
        }
    }

    async fn append(
        &self,
        validated: Validated,
        settlements: Vec<unavoce_store::Settlement>,
    ) -> Result<IngestReport, StoreError> {
        let Validated {
            batch,
            rejected_at,
            refused,
        } = validated;
        let outcome = if settlements.is_empty() {
            self.log.append(&batch).await?
        } else {
            self.log.append_settling(&batch, settlements).await?
        };
        let mut report = IngestReport::default();
        let mut stored = Vec::new();
        for (appended, event) in outcome.events.iter().zip(batch.events) {
            match appended {
                Appended::Stored { seq } => {
                    report.accepted += 1;
                    stored.push((*seq, event));
                }
                Appended::Duplicate => report.duplicates += 1,
            }
        }
        self.tell_observers(stored);
        report.rejected = rejected_at
            .into_iter()
            .zip(outcome.quarantine_ids)
            .map(
                |((index, message_id, rejection), quarantine_id)| RejectedItem {
                    index,
                    message_id,
                    code: rejection.code,
                    message: rejection.message,
                    quarantine_id: Some(quarantine_id),
                },
            )
            .chain(refused.into_iter().map(|(index, message_id)| {
                RejectedItem {
                    index,
                    message_id,
                    code: RejectionCode::SubjectErased,
                    message: "the message carries an identifier of a person who was erased; \
                          an owner can lift the suppression (DELETE /api/suppressions/{hash})"
                        .into(),
                    quarantine_id: None,
                }
            }))
            .collect();
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }

    /// Replays quarantine entry `id` into the log — as stored, or as `fixed` — once it
    /// is valid. The original reception time is kept, so clock-skew correction and
    /// ordering are as if it had been accepted the first time.
    pub async fn replay(
        &self,
        id: i64,
        fixed: Option<Map<String, Value>>,
        now: Timestamp,
    ) -> Result<ReplayOutcome, IntakeError> {
        let entry = self
            .log
            .quarantine_entry(id)
            .await?
            .ok_or(StoreError::QuarantineEntryNotFound(id))?;
        if let Some(seq) = entry.replayed_seq {
            return Err(StoreError::AlreadyReplayed { id, seq }.into());
        }
        let message = match fixed {
            Some(message) => message,
            None => parse_object(&entry.payload).map_err(IntakeError::StillInvalid)?,
        };
        let endpoint_type = entry
            .origin
            .get("endpoint_type")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok());
        let default_touchpoint = entry
            .origin
            .get("default_touchpoint")
            .and_then(Value::as_str);
        let event = {
            let channels = self
                .touchpoint_channels
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let ctx = IntakeContext {
                received_at: entry.received_at,
                source: &entry.source,
                endpoint_type,
                default_touchpoint,
                touchpoint_channels: Some(&channels),
            };
            segment::normalise(message, &ctx, new_message_id).map_err(IntakeError::StillInvalid)?
        };
        let message_id = event.message_id.clone();
        let appended = self.log.replay_quarantined(id, event.clone(), now).await?;
        if let Appended::Stored { seq } = appended {
            self.tell_observers(vec![(seq, event)]);
        }
        Ok(ReplayOutcome {
            message_id,
            seq: match appended {
                Appended::Stored { seq } => Some(seq),
                Appended::Duplicate => None,
            },
            duplicate: appended == Appended::Duplicate,
        })
    }
}

fn validate(
    body: &ItemBody<'_>,
    envelope: Option<&Map<String, Value>>,
    ctx: &IntakeContext<'_>,
) -> Result<Event, Rejection> {
    let mut message = match body {
        ItemBody::Raw(text) => {
            if text.len() > MAX_MESSAGE_BYTES {
                return Err(Rejection::new(
                    RejectionCode::MessageTooLarge,
                    format!(
                        "the message is {} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (32 KB)",
                        text.len()
                    ),
                ));
            }
            parse_object(text)?
        }
        ItemBody::Parsed(message) => message.clone(),
        ItemBody::Unusable { rejection, .. } => return Err(rejection.clone()),
    };
    if let Some(envelope) = envelope {
        segment::apply_batch_defaults(&mut message, envelope);
    }
    segment::normalise(message, ctx, new_message_id)
}

/// What to keep of a rejected item: the message with batch defaults merged (so a
/// replay needs nothing else), or the raw text when it is not a JSON object.
fn quarantine_payload(
    body: &ItemBody<'_>,
    envelope: Option<&Map<String, Value>>,
) -> (String, Option<String>) {
    let message = match body {
        ItemBody::Raw(text) => match parse_object(text) {
            Ok(message) => message,
            Err(_) => return (text.to_string(), None),
        },
        ItemBody::Parsed(message) => message.clone(),
        ItemBody::Unusable { payload, .. } => return (payload.clone(), None),
    };
    let mut message = message;
    if let Some(envelope) = envelope {
        segment::apply_batch_defaults(&mut message, envelope);
    }
    let message_id = message
        .get("messageId")
        .and_then(unavoce_core::event::scalar_text);
    (Value::Object(message).to_string(), message_id)
}

/// Records in the origin what a replay needs to validate the message the same way.
fn annotate_origin(origin: &mut Value, ctx: &IntakeContext<'_>) {
    if !origin.is_object() {
        *origin = Value::Object(Map::new());
    }
    if let Value::Object(o) = origin {
        if let Some(t) = ctx.endpoint_type {
            o.insert("endpoint_type".into(), t.as_str().into());
        }
        if let Some(t) = ctx.default_touchpoint {
            o.insert("default_touchpoint".into(), t.into());
        }
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, Rejection> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(message)) => Ok(message),
        Ok(_) => Err(Rejection::new(
            RejectionCode::NotAnObject,
            "a message must be a JSON object",
        )),
        Err(e) => Err(Rejection::new(
            RejectionCode::InvalidJson,
            format!("not valid JSON: {e}"),
        )),
    }
}

fn new_message_id() -> String {
    format!("unavoce-{}", uuid::Uuid::new_v4())
}
