//! An event as a store writes it: its columns, with the message serialised.

use unavoce_core::Event;

use crate::log::StoreError;

/// An event ready for insertion: its columns, with the message already serialised.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub message_id: String,
    pub event_type: &'static str,
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub timestamp: i64,
    pub received_at: i64,
    pub touchpoint: Option<String>,
    pub channel: Option<String>,
    pub source: String,
    pub message: String,
}

impl EventRow {
    /// Prepares `event` for insertion.
    pub fn from_event(event: &Event) -> Result<Self, StoreError> {
        Ok(EventRow {
            message_id: event.message_id.clone(),
            event_type: event.event_type.as_str(),
            name: event.name.clone(),
            user_id: event.user_id.clone(),
            anonymous_id: event.anonymous_id.clone(),
            timestamp: event.timestamp.as_microsecond(),
            received_at: event.received_at.as_microsecond(),
            touchpoint: event.touchpoint.clone(),
            channel: event.channel.clone(),
            source: event.source.clone(),
            message: serde_json::to_string(&event.message)
                .map_err(|e| StoreError::Storage(format!("cannot serialise event: {e}")))?,
        })
    }
}
