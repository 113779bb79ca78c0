//! The Segment tracking spec: validating and normalising a raw message into an [`Event`].
//!
//! This is the one place that decides what a well-formed message is. Every source
//! (HTTP tracking API, file import, replay from quarantine) goes through [`normalise`].

use jiff::Timestamp;
use jiff::civil::DateTime;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::channel::ChannelKind;
use crate::event::{Event, EventType};

/// Largest accepted message, in bytes of JSON (Segment's limit).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Largest accepted request body, in bytes of (uncompressed) JSON (Segment's limit).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Most messages accepted in one batch.
pub const MAX_BATCH_MESSAGES: usize = 2_500;
/// Longest accepted `messageId`.
pub const MAX_MESSAGE_ID_CHARS: usize = 256;

/// Why a message was refused; each code is stable and documented in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    /// The body or line is not valid JSON.
    InvalidJson,
    /// The message is valid JSON but not an object.
    NotAnObject,
    /// The message exceeds [`MAX_MESSAGE_BYTES`].
    MessageTooLarge,
    /// The batch holds more than [`MAX_BATCH_MESSAGES`] messages.
    BatchTooLarge,
    /// A batch item has no `type`.
    MissingType,
    /// `type` is not one of the six Segment calls.
    UnknownType,
    /// Neither `userId` nor `anonymousId` is present.
    MissingIdentity,
    /// A track call has no `event` name.
    MissingEvent,
    /// An alias call has no `previousId` or no `userId`.
    MissingPreviousId,
    /// A group call has no `groupId`.
    MissingGroupId,
    /// A field has the wrong JSON type or an unusable value.
    InvalidField,
    /// A timestamp is not an ISO-8601 date-time.
    InvalidTimestamp,
    /// A row of an imported file could not be mapped to a message.
    InvalidRow,
    /// The message carries an identifier of an erased person (on the suppression
    /// list): refused, neither stored nor quarantined.
    SubjectErased,
}

impl RejectionCode {
    /// The code as it appears in API answers and the quarantine.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MessageTooLarge => "message_too_large",
            Self::BatchTooLarge => "batch_too_large",
            Self::MissingType => "missing_type",
            Self::UnknownType => "unknown_type",
            Self::MissingIdentity => "missing_identity",
            Self::MissingEvent => "missing_event",
            Self::MissingPreviousId => "missing_previous_id",
            Self::MissingGroupId => "missing_group_id",
            Self::InvalidField => "invalid_field",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::InvalidRow => "invalid_row",
            Self::SubjectErased => "subject_erased",
        }
    }
}

/// A refused message: a stable code and a sentence saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: RejectionCode,
    pub message: String,
}

impl Rejection {
    /// A rejection with the given code and explanation.
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// What the intake knows about a message besides its content.
#[derive(Debug, Clone, Copy)]
pub struct IntakeContext<'a> {
    /// When the platform received the message.
    pub received_at: Timestamp,
    /// The source it came through (a write key's source name, or an import's `--source`).
    pub source: &'a str,
    /// The call type fixed by the endpoint (`/v1/track`), overriding any `type` field.
    pub endpoint_type: Option<EventType>,
    /// The touchpoint to record when the message names none (an import's source).
    pub default_touchpoint: Option<&'a str>,
    /// The channel kind of each registered touchpoint, used when a message names a
    /// touchpoint but no channel.
    pub touchpoint_channels: Option<&'a TouchpointChannels>,
}

/// Registered touchpoint id → its channel kind.
pub type TouchpointChannels = std::collections::HashMap<String, ChannelKind>;

impl<'a> IntakeContext<'a> {
    /// A context with no endpoint type, default touchpoint or registry.
    pub fn new(received_at: Timestamp, source: &'a str) -> Self {
        IntakeContext {
            received_at,
            source,
            endpoint_type: None,
            default_touchpoint: None,
            touchpoint_channels: None,
        }
    }
}

/// Merges the batch envelope's `context`, `integrations` and `sentAt` into one item;
/// what the item says itself wins.
pub fn apply_batch_defaults(item: &mut Map<String, Value>, envelope: &Map<String, Value>) {
    for key in ["context", "integrations"] {
        if let Some(Value::Object(defaults)) = envelope.get(key) {
            match item.get_mut(key) {
                Some(Value::Object(own)) => merge_missing(own, defaults),
                Some(Value::Null) | None => {
                    item.insert(key.to_string(), Value::Object(defaults.clone()));
                }
                Some(_) => {} // a malformed item field is reported by `normalise`
            }
        }
    }
    if let Some(sent_at) = envelope.get("sentAt")
        && !item.contains_key("sentAt")
    {
        item.insert("sentAt".to_string(), sent_at.clone());
    }
}

fn merge_missing(target: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, value) in defaults {
        match (target.get_mut(key), value) {
            (None, _) => {
                target.insert(key.clone(), value.clone());
            }
            (Some(Value::Object(own)), Value::Object(inner)) => merge_missing(own, inner),
            _ => {}
        }
    }
}

/// Validates a raw message and turns it into an [`Event`].
///
/// `new_message_id` is called only when the message has no `messageId`.
/// The returned event's `message` is the normalised message: identifiers as strings,
/// `timestamp` corrected for clock skew as `receivedAt - (sentAt - originalTimestamp)`,
/// `originalTimestamp`, `receivedAt`, and `context.touchpoint` / `context.channel` set.
pub fn normalise(
    mut message: Map<String, Value>,
    ctx: &IntakeContext<'_>,
    new_message_id: impl FnOnce() -> String,
) -> Result<Event, Rejection> {
    // A write key is a secret: it is never stored, whichever source it came through.
    message.remove("writeKey");
    let event_type = resolve_type(&message, ctx.endpoint_type)?;
    message.insert("type".into(), Value::String(event_type.as_str().into()));

    let user_id = take_id(&mut message, "userId")?;
    let anonymous_id = take_id(&mut message, "anonymousId")?;
    match event_type {
        EventType::Alias if user_id.is_none() || take_id(&mut message, "previousId")?.is_none() => {
            return Err(Rejection::new(
                RejectionCode::MissingPreviousId,
                "an alias call needs both `previousId` and `userId`",
            ));
        }
        EventType::Alias => {}
        _ if user_id.is_none() && anonymous_id.is_none() => {
            return Err(Rejection::new(
                RejectionCode::MissingIdentity,
                "the message has neither `userId` nor `anonymousId`; one of them is required",
            ));
        }
        EventType::Group if take_id(&mut message, "groupId")?.is_none() => {
            return Err(Rejection::new(
                RejectionCode::MissingGroupId,
                "a group call needs a `groupId`",
            ));
        }
        _ => {}
    }

    for key in ["traits", "properties", "context", "integrations"] {
        match message.get(key) {
            None | Some(Value::Object(_)) => {}
            Some(Value::Null) => {
                message.remove(key);
            }
            Some(other) => {
                return Err(Rejection::new(
                    RejectionCode::InvalidField,
                    format!("`{key}` must be an object, not {}", json_kind(other)),
                ));
            }
        }
    }

    let name = match event_type {
        EventType::Track => Some(required_event_name(&message)?),
        EventType::Page | EventType::Screen => optional_string(&message, "name")?,
        _ => None,
    };

    let original = parse_timestamp_field(&message, "originalTimestamp")?
        .or(parse_timestamp_field(&message, "timestamp")?);
    let sent_at = parse_timestamp_field(&message, "sentAt")?;
    let timestamp = match (original, sent_at) {
        (Some(original), Some(sent_at)) => {
            let skew = sent_at.duration_since(original);
            ctx.received_at.checked_sub(skew).map_err(|_| {
                Rejection::new(
                    RejectionCode::InvalidTimestamp,
                    "`sentAt` and `timestamp` are too far apart to correct for clock skew",
                )
            })?
        }
        (Some(original), None) => original,
        (None, _) => ctx.received_at,
    };
    if let Some(original) = original {
        message.insert("originalTimestamp".into(), original.to_string().into());
    }
    if let Some(sent_at) = sent_at {
        message.insert("sentAt".into(), sent_at.to_string().into());
    }
    message.insert("timestamp".into(), timestamp.to_string().into());
    message.insert("receivedAt".into(), ctx.received_at.to_string().into());

    let message_id = match take_id(&mut message, "messageId")? {
        Some(id) if id.chars().count() > MAX_MESSAGE_ID_CHARS => {
            return Err(Rejection::new(
                RejectionCode::InvalidField,
                format!("`messageId` is longer than {MAX_MESSAGE_ID_CHARS} characters"),
            ));
        }
        Some(id) => id,
        None => {
            let id = new_message_id();
            message.insert("messageId".into(), Value::String(id.clone()));
            id
        }
    };

    let (touchpoint, channel) = touchpoint_and_channel(&mut message, event_type, ctx)?;
    // A store keeps these as text columns, which may not hold a NUL character (the
    // message's JSON escapes one, and keeps it).
    for (field, value) in [
        ("messageId", Some(&message_id)),
        ("userId", user_id.as_ref()),
        ("anonymousId", anonymous_id.as_ref()),
        ("event", name.as_ref()),
        ("context.touchpoint", touchpoint.as_ref()),
        ("context.channel", channel.as_ref()),
    ] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(Rejection::new(
                RejectionCode::InvalidField,
                format!(
                    "`{field}` holds a NUL character (\\u0000), which no identifier or name may"
                ),
            ));
        }
    }

    Ok(Event {
        message_id,
        event_type,
        user_id,
        anonymous_id,
        name,
        timestamp,
        received_at: ctx.received_at,
        touchpoint,
        channel,
        source: ctx.source.to_string(),
        message,
    })
}

fn resolve_type(
    message: &Map<String, Value>,
    endpoint_type: Option<EventType>,
) -> Result<EventType, Rejection> {
    if let Some(t) = endpoint_type {
        return Ok(t);
    }
    match message.get("type") {
        None | Some(Value::Null) => Err(Rejection::new(
            RejectionCode::MissingType,
            "the message has no `type`; expected identify, track, page, screen, group or alias",
        )),
        Some(Value::String(s)) => s.parse().map_err(|e: crate::event::UnknownEventType| {
            Rejection::new(RejectionCode::UnknownType, e.to_string())
        }),
        Some(other) => Err(Rejection::new(
            RejectionCode::UnknownType,
            format!("`type` must be a string, not {}", json_kind(other)),
        )),
    }
}

/// Reads an id field that senders may write as a string or a number; writes it back
/// as a trimmed string, or removes it when empty.
fn take_id(message: &mut Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    let id = match message.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(Rejection::new(
                RejectionCode::InvalidField,
                format!(
                    "`{key}` must be a string or a number, not {}",
                    json_kind(other)
                ),
            ));
        }
    };
    match &id {
        Some(id) => message.insert(key.to_string(), Value::String(id.clone())),
        None => message.remove(key),
    };
    Ok(id)
}

fn required_event_name(message: &Map<String, Value>) -> Result<String, Rejection> {
    match optional_string(message, "event")? {
        Some(name) => Ok(name),
        None => Err(Rejection::new(
            RejectionCode::MissingEvent,
            "a track call needs an `event` name, e.g. \"Order Completed\"",
        )),
    }
}

fn optional_string(message: &Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    match message.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(other) => Err(Rejection::new(
            RejectionCode::InvalidField,
            format!("`{key}` must be a string, not {}", json_kind(other)),
        )),
    }
}

fn parse_timestamp_field(
    message: &Map<String, Value>,
    key: &str,
) -> Result<Option<Timestamp>, Rejection> {
    match message.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_timestamp(s).map(Some).ok_or_else(|| {
            Rejection::new(
                RejectionCode::InvalidTimestamp,
                format!(
                    "`{key}` is {s:?}, which is not an ISO-8601 date-time such as 2024-05-01T09:30:00Z"
                ),
            )
        }),
        Some(other) => Err(Rejection::new(
            RejectionCode::InvalidTimestamp,
            format!(
                "`{key}` must be an ISO-8601 date-time string, not {}",
                json_kind(other)
            ),
        )),
    }
}

/// Parses an ISO-8601 date-time; one without an offset is taken as UTC.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let civil: DateTime = text.parse().ok()?;
    civil
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

fn touchpoint_and_channel(
    message: &mut Map<String, Value>,
    event_type: EventType,
    ctx: &IntakeContext<'_>,
) -> Result<(Option<String>, Option<String>), Rejection> {
    let inferred = infer_channel(message, event_type);
    let context = message
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("context was checked to be an object");

    let touchpoint = optional_string(context, "touchpoint")
        .map_err(|_| {
            Rejection::new(
                RejectionCode::InvalidField,
                "`context.touchpoint` must be a string naming a registered touchpoint",
            )
        })?
        .or_else(|| ctx.default_touchpoint.map(str::to_string));
    if let Some(t) = &touchpoint {
        context.insert("touchpoint".into(), Value::String(t.clone()));
    }

    let declared = optional_string(context, "channel").map_err(|_| {
        Rejection::new(
            RejectionCode::InvalidField,
            "`context.channel` must be a string such as \"web\", \"store\" or \"phone\"",
        )
    })?;
    let channel = match declared {
        Some(name) => Some(crate::channel::canonical_name(&name)),
        None => touchpoint
            .as_deref()
            .and_then(|t| ctx.touchpoint_channels?.get(t).copied())
            .or(inferred)
            .map(|k| k.as_str().to_string()),
    };
    match &channel {
        Some(c) => context.insert("channel".into(), Value::String(c.clone())),
        None => context.remove("channel"),
    };
    if context.is_empty() {
        message.remove("context");
    }
    Ok((touchpoint, channel))
}

/// Infers the channel of a message that declares none and names no registered
/// touchpoint, from the sending library, the app or device in its context,
/// Segment's top-level `channel`, the device, and finally the call type.
pub fn infer_channel(message: &Map<String, Value>, event_type: EventType) -> Option<ChannelKind> {
    let context = message.get("context").and_then(Value::as_object);
    let library = context
        .and_then(|c| c.get("library"))
        .and_then(|l| l.get("name"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    if let Some(lib) = library.as_deref() {
        const APP_LIBS: [&str; 7] = [
            "ios",
            "android",
            "react-native",
            "flutter",
            "swift",
            "kotlin",
            "xamarin",
        ];
        if APP_LIBS.iter().any(|l| lib.contains(l)) {
            return Some(ChannelKind::App);
        }
        if lib.contains("analytics.js")
            || lib.contains("analytics-next")
            || lib.contains("javascript")
        {
            return Some(ChannelKind::Web);
        }
    }
    match message.get("channel").and_then(Value::as_str) {
        Some("browser") | Some("client") => return Some(ChannelKind::Web),
        Some("mobile") => return Some(ChannelKind::App),
        _ => {}
    }
    let device_type = context
        .and_then(|c| c.get("device"))
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    if context.is_some_and(|c| c.contains_key("app"))
        || matches!(
            device_type.as_deref(),
            Some("ios" | "android" | "mobile" | "tablet")
        )
    {
        return Some(ChannelKind::App);
    }
    match event_type {
        EventType::Page => Some(ChannelKind::Web),
        EventType::Screen => Some(ChannelKind::App),
        _ => None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
