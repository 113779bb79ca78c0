//! Events: immutable facts that happened at a touchpoint.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The Segment call type of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 6] = [
        Self::Identify,
        Self::Track,
        Self::Page,
        Self::Screen,
        Self::Group,
        Self::Alias,
    ];

    /// The Segment name of the call (`identify`, `track`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identify => "identify",
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an unknown call type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}; expected identify, track, page, screen, group or alias")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownEventType(s.to_string()))
    }
}

/// A validated, normalised event, ready for the log.
///
/// The extracted fields are what the rest of the system indexes and reasons about;
/// `message` is the whole normalised Segment message, kept verbatim so nothing the
/// sender said is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per event; a retried message carries the same id and is stored once.
    pub message_id: String,
    pub event_type: EventType,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// The `event` of a track call, or the `name` of a page or screen call.
    pub name: Option<String>,
    /// When it happened, corrected for the sender's clock skew.
    pub timestamp: Timestamp,
    /// When the platform received it.
    pub received_at: Timestamp,
    /// The registered touchpoint it happened at, as the sender declared it.
    pub touchpoint: Option<String>,
    /// The channel, as declared (normalised when recognised) or inferred.
    pub channel: Option<String>,
    /// The source (write key or import) it came through.
    pub source: String,
    /// The whole normalised message.
    pub message: Map<String, Value>,
}

/// The text of a JSON value senders write as a string or a number: trimmed, `None`
/// when empty or of another kind.
pub fn scalar_text(value: &Value) -> Option<String> {
    scalar_str(value).map(Cow::into_owned)
}

/// [`scalar_text`], borrowed from the value when it is a string.
pub fn scalar_str(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s.trim())).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

impl Event {
    /// A trait the event states, in `traits` (identify) or `context.traits` (any call).
    pub fn trait_value(&self, name: &str) -> Option<&Value> {
        ["traits", "context.traits"]
            .iter()
            .find_map(|root| self.get(root).and_then(|t| t.get(name)))
    }

    /// The value at a dot-separated path of the message (`traits.email`,
    /// `context.device.id`), if present.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut current = self.message.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }
}
