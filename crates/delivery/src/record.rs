//! Recording what delivery learns as the person's events, from the delivery source:
//! outcomes of messages, reports, replies, opens and clicks.

use serde_json::{Map, Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_core::platform_events::DELIVERY_SOURCE;
use unavoce_projections::RecordError;
use unavoce_store::OutboxEntry;

use crate::Platform;

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

/// `message` (a Segment message without identity) made an event of profile
/// `profile_id` (or the profile it was merged into): with their user or anonymous id.
pub(crate) fn about(
    platform: &Platform,
    profile_id: ProfileId,
    message: Map<String, Value>,
) -> Option<Map<String, Value>> {
    platform.recorder.about(profile_id, message)
}

/// Records `message` (a Segment message without identity) as an event of profile
/// `profile_id` (or the profile it was merged into), from the delivery source.
pub async fn record_about(
    platform: &Platform,
    profile_id: ProfileId,
    message: Map<String, Value>,
) -> Result<(), RecordError> {
    platform
        .recorder
        .record_about(DELIVERY_SOURCE, profile_id, message, origin())
        .await
}

/// Records `message` (a Segment message with its identity) from the delivery source.
pub async fn record(platform: &Platform, message: Map<String, Value>) -> Result<(), RecordError> {
    let report = platform
        .recorder
        .record(DELIVERY_SOURCE, vec![message], origin())
        .await?;
    match report.rejected.first() {
        Some(r) => Err(RecordError::Rejected(r.message.clone())),
        None => Ok(()),
    }
}

/// Where delivery's events come from, as their origin says.
pub(crate) fn origin() -> Value {
    json!({"component": "delivery"})
}
