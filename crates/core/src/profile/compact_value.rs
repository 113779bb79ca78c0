//! A JSON value as a profile holds it: in 24 bytes, a short text without a heap
//! allocation. A person's traits are nearly always a short text or a number, held for
//! millions of people; a [`Value`] takes 32 bytes and a heap allocation for any text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON value, compactly. Serialised as the value it stands for, so what reads it
/// (the API, a snapshot) sees the [`Value`] it was made from.
#[derive(Debug, Clone, PartialEq)]
pub enum CompactValue {
    /// Up to 24 bytes inline.
    Text(compact_str::CompactString),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Anything else (null, arrays, objects, integers beyond `i64`), as it came.
    Other(Box<Value>),
}

impl CompactValue {
    /// The text, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            CompactValue::Text(text) => Some(text),
            CompactValue::Other(value) => value.as_str(),
            _ => None,
        }
    }

    /// The number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            CompactValue::Int(n) => Some(*n as f64),
            CompactValue::Float(n) => Some(*n),
            CompactValue::Other(value) => value.as_f64(),
            _ => None,
        }
    }

    /// The value it stands for.
    pub fn to_value(&self) -> Value {
        match self {
            CompactValue::Text(text) => Value::String(text.to_string()),
            CompactValue::Int(n) => Value::from(*n),
            CompactValue::Float(n) => Value::from(*n),
            CompactValue::Bool(b) => Value::Bool(*b),
            CompactValue::Other(value) => (**value).clone(),
        }
    }
}

impl From<&Value> for CompactValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::String(text) => CompactValue::Text(text.as_str().into()),
            Value::Bool(b) => CompactValue::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => CompactValue::Int(i),
                (None, Some(f)) if n.is_f64() => CompactValue::Float(f),
                // Beyond i64: kept exact.
                _ => CompactValue::Other(Box::new(value.clone())),
            },
            other => CompactValue::Other(Box::new(other.clone())),
        }
    }
}

impl Serialize for CompactValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CompactValue::Text(text) => s.serialize_str(text),
            CompactValue::Int(n) => s.serialize_i64(*n),
            CompactValue::Float(n) => s.serialize_f64(*n),
            CompactValue::Bool(b) => s.serialize_bool(*b),
            CompactValue::Other(value) => value.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CompactValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(CompactValue::from(&Value::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_value_reads_back_as_it_came_in_json_and_in_a_snapshot() {
        assert_eq!(size_of::<CompactValue>(), 24);
        for value in [
            json!("Milano"),
            json!("a text longer than twenty-four bytes, held on the heap"),
            json!(42),
            json!(-7),
            json!(u64::MAX),
            json!(2.5),
            json!(3.0),
            json!(true),
            json!(null),
            json!([1, "two"]),
            json!({"city": "Roma"}),
        ] {
            let compact = CompactValue::from(&value);
            assert_eq!(compact.to_value(), value);
            let text = serde_json::to_string(&compact).expect("json");
            assert_eq!(text, serde_json::to_string(&value).expect("json"));
            let back: CompactValue = serde_json::from_str(&text).expect("json");
            assert_eq!(back, compact);
            let packed = rmp_serde::to_vec(&compact).expect("msgpack");
            let back: CompactValue = rmp_serde::from_slice(&packed).expect("msgpack");
            assert_eq!(back, compact, "{value}");
        }
        assert!(matches!(
            CompactValue::from(&json!("short")),
            CompactValue::Text(t) if !t.is_heap_allocated()
        ));
    }
}
