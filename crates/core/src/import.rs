//! Mapping rows of offline touchpoint files (POS exports, call-center logs, sign-up
//! forms) to Segment messages.
//!
//! Reading the file is the caller's job; this module turns one record — a list of
//! column names and values — into a message, or says precisely why it cannot.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::event::EventType;
use crate::segment::{Rejection, RejectionCode};

/// How the columns of a file become a message, as written in a mapping file (TOML).
///
/// ```toml
/// type = "track"
/// event = "Order Completed"
/// touchpoint = "store-rome-01"
/// channel = "store"
/// timezone = "Europe/Rome"
/// timestamp_format = "%d/%m/%Y %H:%M"
/// unmapped = "properties"
///
/// [columns]
/// receipt = "messageId"
/// card = "traits.loyalty_id"
/// email = "traits.email"
/// total = { path = "properties.revenue", as = "number" }
/// when = "timestamp"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The call type of every row; otherwise a `type` column, else `track` when an
    /// event name is known, else `identify`.
    #[serde(rename = "type")]
    pub event_type: Option<EventType>,
    /// The event name of every row that has no `event` column.
    pub event: Option<String>,
    /// `context.touchpoint` of every row that names none (default: the import's source).
    pub touchpoint: Option<String>,
    /// `context.channel` of every row that names none.
    pub channel: Option<String>,
    /// IANA time zone of timestamps written without an offset (default: UTC).
    pub timezone: Option<String>,
    /// `strftime` format of timestamps that are not ISO-8601, e.g. `%d/%m/%Y %H:%M`.
    pub timestamp_format: Option<String>,
    /// Where columns not listed in `columns` and not named like a message field go.
    #[serde(default)]
    pub unmapped: Unmapped,
    /// Column name → message path (`traits.email`, `properties.total`, `userId`, ...).
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnTarget>,
}

/// Where unmapped columns go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmapped {
    /// Under `properties` (the default): nothing in the file is lost.
    #[default]
    Properties,
    /// Under `traits`.
    Traits,
    /// Dropped, on purpose.
    Ignore,
}

/// The target of one column: a path, optionally with a value conversion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ColumnTarget {
    Path(String),
    Converted {
        path: String,
        #[serde(rename = "as")]
        kind: ValueKind,
    },
}

impl ColumnTarget {
    fn path(&self) -> &str {
        match self {
            Self::Path(p) | Self::Converted { path: p, .. } => p,
        }
    }
}

/// How a cell's text becomes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    String,
    Number,
    Integer,
    Boolean,
    Timestamp,
    /// Numbers and booleans when the text is plainly one (`12`, `3.5`, `true`),
    /// text otherwise; `007` stays text.
    Auto,
}

/// Why a mapping file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "column {column:?} maps to {path:?}, which is not a message path (use e.g. traits.email, properties.total, userId)"
    )]
    BadPath { column: String, path: String },
    #[error("unknown time zone {0:?}; use an IANA name such as Europe/Rome")]
    UnknownTimeZone(String),
}

const TOP_LEVEL_FIELDS: [&str; 13] = [
    "type",
    "event",
    "name",
    "userId",
    "anonymousId",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "groupId",
    "previousId",
    "category",
    "channel",
];
const OBJECT_FIELDS: [&str; 4] = ["traits", "properties", "context", "integrations"];

/// A validated mapping, ready to map records.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    mapping: Mapping,
    timezone: TimeZone,
}

impl CompiledMapping {
    /// Validates `mapping`; `timezone` is the resolved `mapping.timezone` (UTC if none).
    pub fn new(mapping: Mapping, timezone: TimeZone) -> Result<Self, MappingError> {
        for (column, target) in &mapping.columns {
            if !is_message_path(target.path()) {
                return Err(MappingError::BadPath {
                    column: column.clone(),
                    path: target.path().to_string(),
                });
            }
        }
        Ok(CompiledMapping { mapping, timezone })
    }

    /// Whether the mapping names columns explicitly.
    pub fn has_columns(&self) -> bool {
        !self.mapping.columns.is_empty()
    }

    /// Maps one record to a message. Empty cells are left out rather than sent empty.
    pub fn map_record<'a>(
        &self,
        record: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Result<Map<String, Value>, Rejection> {
        let mut message = Map::new();
        for (column, value) in record {
            if is_empty(&value) {
                continue;
            }
            // A path's parts; an unmapped column is one key, whatever its name holds.
            let (parts, kind): (Vec<&str>, _) = match self.mapping.columns.get(column) {
                Some(ColumnTarget::Path(p)) => (p.split('.').collect(), default_kind(p)),
                Some(ColumnTarget::Converted { path, kind }) => (path.split('.').collect(), *kind),
                None if is_message_path(column) => {
                    (column.split('.').collect(), default_kind(column))
                }
                None => match self.mapping.unmapped {
                    Unmapped::Properties => (vec!["properties", column], ValueKind::Auto),
                    Unmapped::Traits => (vec!["traits", column], ValueKind::String),
                    Unmapped::Ignore => continue,
                },
            };
            let value = self.convert(column, value, kind)?;
            set_path(&mut message, &parts, value).map_err(|()| {
                let path = parts.join(".");
                Rejection::new(
                    RejectionCode::InvalidRow,
                    format!("column {column:?} writes to {path:?}, which another column already holds as a plain value"),
                )
            })?;
        }
        self.apply_defaults(&mut message);
        Ok(message)
    }

    /// Sets the mapping's constant type, event, touchpoint and channel on a message
    /// that does not say them itself.
    pub fn apply_defaults(&self, message: &mut Map<String, Value>) {
        let m = &self.mapping;
        if let Some(event) = &m.event {
            message
                .entry("event")
                .or_insert_with(|| event.clone().into());
        }
        if let Some(t) = m.event_type {
            message.insert("type".into(), t.as_str().into());
        } else if !message.contains_key("type") {
            let t = if message.contains_key("event") {
                "track"
            } else {
                "identify"
            };
            message.insert("type".into(), t.into());
        }
        for (key, value) in [("touchpoint", &m.touchpoint), ("channel", &m.channel)] {
            if let Some(value) = value
                && let Value::Object(context) = message
                    .entry("context")
                    .or_insert_with(|| Value::Object(Map::new()))
            {
                context.entry(key).or_insert_with(|| value.clone().into());
            }
        }
    }

    fn convert(&self, column: &str, value: Value, kind: ValueKind) -> Result<Value, Rejection> {
        let text = match &value {
            Value::String(s) => s.trim().to_string(),
            other if kind == ValueKind::Auto => return Ok(other.clone()),
            other => other.to_string(),
        };
        let bad = |what: &str| {
            Rejection::new(
                RejectionCode::InvalidRow,
                format!("column {column:?}: {text:?} is not {what}"),
            )
        };
        Ok(match kind {
            ValueKind::String => Value::String(text),
            ValueKind::Number => parse_number(&text).ok_or_else(|| bad("a number"))?,
            ValueKind::Integer => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad("a whole number"))?,
            ValueKind::Boolean => parse_bool(&text)
                .map(Value::Bool)
                .ok_or_else(|| bad("true or false"))?,
            ValueKind::Timestamp => Value::String(
                self.parse_time(&text)
                    .ok_or_else(|| match &self.mapping.timestamp_format {
                        Some(f) => bad(&format!("a date-time in the format {f:?}")),
                        None => bad("an ISO-8601 date-time such as 2024-05-01T09:30:00"),
                    })?
                    .to_string(),
            ),
            ValueKind::Auto => plain_number(&text)
                .or_else(|| parse_bool(&text).map(Value::Bool))
                .unwrap_or(Value::String(text)),
        })
    }

    fn parse_time(&self, text: &str) -> Option<Timestamp> {
        let civil = match &self.mapping.timestamp_format {
            Some(format) => DateTime::strptime(format, text).ok().or_else(|| {
                jiff::civil::Date::strptime(format, text)
                    .ok()
                    .map(|d| d.into())
            })?,
            None => {
                if let Ok(ts) = text.parse::<Timestamp>() {
                    return Some(ts);
                }
                text.parse::<DateTime>()
                    .ok()
                    .or_else(|| text.parse::<jiff::civil::Date>().ok().map(DateTime::from))?
            }
        };
        civil
            .to_zoned_datetime(self.timezone.clone())
            .ok()
            .map(|z| z.timestamp())
    }
}

fn default_kind(path: &str) -> ValueKind {
    match path {
        "timestamp" | "originalTimestamp" | "sentAt" => ValueKind::Timestamp,
        p if p.starts_with("properties.") => ValueKind::Auto,
        _ => ValueKind::String,
    }
}

/// The most parts a message path may have (`traits.address.city` has 3): a message
/// nested much deeper could not be read back from the log.
const MAX_PATH_PARTS: usize = 16;

fn is_message_path(path: &str) -> bool {
    match path.split_once('.') {
        None => TOP_LEVEL_FIELDS.contains(&path),
        Some((root, rest)) => {
            OBJECT_FIELDS.contains(&root)
                && !rest.is_empty()
                && rest.split('.').all(|p| !p.is_empty())
                && path.split('.').count() <= MAX_PATH_PARTS
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn set_path(message: &mut Map<String, Value>, parts: &[&str], value: Value) -> Result<(), ()> {
    let mut parts = parts.iter().peekable();
    let mut current = message;
    while let Some(&part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        current = match current
            .entry(part)
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(inner) => inner,
            _ => return Err(()),
        };
    }
    Ok(())
}

fn parse_number(text: &str) -> Option<Value> {
    let cleaned = text.replace('_', "");
    if let Ok(i) = cleaned.parse::<i64>() {
        return Some(i.into());
    }
    // Accept a decimal comma ("19,90") as offline files from European tills write it.
    let dotted = if cleaned.contains(',') && !cleaned.contains('.') {
        cleaned.replace(',', ".")
    } else {
        cleaned
    };
    dotted
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// A number only when the text is plainly one: no leading zeros, no plus sign.
fn plain_number(text: &str) -> Option<Value> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int_ok = int == "0" || (!int.is_empty() && !int.starts_with('0'));
    let plain = int_ok
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
        && (frac.is_empty() != digits.contains('.'))
        && int.len() <= 15;
    if plain { parse_number(text) } else { None }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" => Some(true),
        "false" | "no" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(toml_like: Mapping) -> CompiledMapping {
        CompiledMapping::new(toml_like, TimeZone::UTC).unwrap()
    }

    fn record(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, Value)> {
        pairs
            .iter()
            .map(|(k, v)| (*k, Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn columns_named_like_fields_need_no_mapping() {
        let m = mapping(Mapping::default());
        let msg = m
            .map_record(record(&[
                ("userId", "u1"),
                ("event", "Order Completed"),
                ("properties.total", "19.90"),
                ("traits.phone", "3331234567"),
                ("zip", "00123"),
                ("qty", "2"),
                ("note", ""),
            ]))
            .unwrap();
        assert_eq!(
            Value::Object(msg),
            json!({"type": "track", "userId": "u1", "event": "Order Completed",
                "properties": {"total": 19.9, "zip": "00123", "qty": 2},
                "traits": {"phone": "3331234567"}})
        );
    }

    #[test]
    fn mapping_file_converts_and_sets_defaults() {
        let file = r#"
            event = "Order Completed"
            touchpoint = "store-rome-01"
            channel = "store"
            timezone = "Europe/Rome"
            timestamp_format = "%d/%m/%Y %H:%M"
            unmapped = "ignore"
            [columns]
            receipt = "messageId"
            card = "traits.loyalty_id"
            total = { path = "properties.revenue", as = "number" }
            when = "timestamp"
        "#;
        let parsed: Mapping = toml_from_str(file);
        let m = CompiledMapping::new(parsed, TimeZone::fixed(jiff::tz::offset(2))).unwrap();
        let msg = m
            .map_record(record(&[
                ("receipt", "R-1"),
                ("card", "L-9"),
                ("total", "12,50"),
                ("when", "01/05/2024 11:30"),
                ("cashier", "Maria"),
            ]))
            .unwrap();
        assert_eq!(
            Value::Object(msg),
            json!({"type": "track", "event": "Order Completed", "messageId": "R-1",
                "traits": {"loyalty_id": "L-9"}, "properties": {"revenue": 12.5},
                "timestamp": "2024-05-01T09:30:00Z",
                "context": {"touchpoint": "store-rome-01", "channel": "store"}})
        );
    }

    #[test]
    fn conversion_errors_name_the_column() {
        let m = mapping(Mapping {
            columns: [(
                "total".to_string(),
                ColumnTarget::Converted {
                    path: "properties.total".into(),
                    kind: ValueKind::Number,
                },
            )]
            .into(),
            ..Mapping::default()
        });
        let err = m.map_record(record(&[("total", "abc")])).unwrap_err();
        assert_eq!(err.code, RejectionCode::InvalidRow);
        assert!(err.message.contains("\"total\""), "{}", err.message);
        let bad_time = mapping(Mapping::default())
            .map_record(record(&[("timestamp", "31/02/2024")]))
            .unwrap_err();
        assert!(bad_time.message.contains("ISO-8601"));
    }

    #[test]
    fn bad_paths_are_rejected_when_the_mapping_is_loaded() {
        let err = CompiledMapping::new(
            Mapping {
                columns: [("x".to_string(), ColumnTarget::Path("email".into()))].into(),
                ..Mapping::default()
            },
            TimeZone::UTC,
        )
        .unwrap_err();
        assert!(matches!(err, MappingError::BadPath { .. }));
    }

    /// Found by the import_rows fuzz target (fuzz/regressions/import_rows): a column
    /// named `timestam` and 145 dots made a message 150 objects deep, which the log could
    /// not read back.
    #[test]
    fn a_columns_name_never_nests_the_message_deeper_than_a_path_can() {
        let m = mapping(Mapping::default());
        let dots = format!("timestam{}p", ".".repeat(145));
        let deep = format!("properties{}", ".x".repeat(MAX_PATH_PARTS));
        let msg = m
            .map_record([
                ("order.total", json!("5")),
                (dots.as_str(), json!("1")),
                (deep.as_str(), json!("2")),
                ("properties.a.b", json!("3")),
            ])
            .unwrap();
        let properties = msg["properties"].as_object().unwrap();
        assert_eq!(properties["order.total"], json!(5));
        assert_eq!(properties[dots.as_str()], json!(1));
        assert_eq!(properties[deep.as_str()], json!(2));
        assert_eq!(properties["a"], json!({"b": 3}));
        let text = Value::Object(msg).to_string();
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
        let err = CompiledMapping::new(
            Mapping {
                columns: [("x".to_string(), ColumnTarget::Path(deep.clone()))].into(),
                ..Mapping::default()
            },
            TimeZone::UTC,
        )
        .unwrap_err();
        assert!(matches!(err, MappingError::BadPath { .. }));
    }

    fn toml_from_str(text: &str) -> Mapping {
        toml::from_str(text).unwrap()
    }
}
