//! Recording what delivery learns as the person's events, from the delivery source:
//! outcomes of messages, reports, replies, opens and clicks.

use serde_json::{Map, Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_store::{OutboxEntry, StoreError};

use crate::Platform;

/// The source of the events delivery records.
pub const DELIVERY_SOURCE: &str = "delivery";

/// What every event about an outbox entry says about it.
pub(crate) fn entry_properties(entry: &OutboxEntry) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("channel".into(), entry.channel.clone().into());
    p.insert("message".into(), entry.message.clone().into());
    p.insert("purpose".into(), entry.purpose.clone().into());
    p.insert("outbox_id".into(), entry.id.into());
    p.insert("decision_id".into(), entry.decision_id.into());
    if let Some(journey) = &entry.journey {
        p.insert("journey".into(), journey.clone().into());
    }
    if let Some(broadcast) = &entry.broadcast {
        p.insert("broadcast".into(), broadcast.clone().into());
    }
    p
}

/// Why an event about a person could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("profile {0} no longer exists or has no user or anonymous id to record under")]
    NoIdentity(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event was quarantined: {0}")]
    Rejected(String),
}

/// `message` (a Segment message without identity) made an event of profile
/// `profile_id` (or the profile it was merged into): with their user or anonymous id.
pub(crate) fn about(
    platform: &Platform,
    profile_id: &str,
    mut message: Value,
) -> Option<Map<String, Value>> {
    let identity = &platform.identity;
    let (key, value) = profile_id
        .parse::<ProfileId>()
        .ok()
        .and_then(|id| identity.read(|g| g.profile(id).and_then(|n| identity.event_identity(n))))?;
    message[key] = value.into();
    match message {
        Value::Object(message) => Some(message),
        _ => None,
    }
}

/// Records `message` (a Segment message without identity) as an event of profile
/// `profile_id` (or the profile it was merged into).
pub async fn record_about(
    platform: &Platform,
    profile_id: &str,
    message: Value,
) -> Result<(), RecordError> {
    let Some(message) = about(platform, profile_id, message) else {
        return Err(RecordError::NoIdentity(profile_id.to_string()));
    };
    record(platform, message).await
}

/// Records `message` (a Segment message with its identity) from the delivery source.
pub async fn record(platform: &Platform, message: Map<String, Value>) -> Result<(), RecordError> {
    let report = platform
        .intake
        .record(
            DELIVERY_SOURCE,
            vec![message],
            json!({"component": "delivery"}),
        )
        .await?;
    match report.rejected.first() {
        Some(r) => Err(RecordError::Rejected(r.message.clone())),
        None => Ok(()),
    }
}
