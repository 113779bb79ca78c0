//! The single customer view, folded from a person's events.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::event::Event;

/// A trait's current value, with where and when it was said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraitValue {
    pub value: Value,
    /// The touchpoint it was said at, or the source when no touchpoint was named.
    pub source: String,
    pub at: Timestamp,
}

/// The latest value of each trait by event time (ties: the later in the log), from
/// `traits` of identify calls and `context.traits` of any call. `events` are in log order.
pub fn fold_traits<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<String, TraitValue> {
    let mut traits: BTreeMap<String, TraitValue> = BTreeMap::new();
    for event in events {
        let source = event
            .touchpoint
            .clone()
            .unwrap_or_else(|| event.source.clone());
        for path in ["traits", "context.traits"] {
            let Some(Value::Object(said)) = event.get(path) else {
                continue;
            };
            for (name, value) in said {
                if value.is_null() {
                    continue;
                }
                let newer = traits.get(name).is_none_or(|t| t.at <= event.timestamp);
                if newer {
                    traits.insert(
                        name.clone(),
                        TraitValue {
                            value: value.clone(),
                            source: source.clone(),
                            at: event.timestamp,
                        },
                    );
                }
            }
        }
    }
    traits
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    fn event(message: serde_json::Value) -> Event {
        normalise(
            message.as_object().unwrap().clone(),
            &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "api"),
            || "m".into(),
        )
        .unwrap()
    }

    #[test]
    fn the_latest_said_value_wins_by_event_time() {
        let events = [
            event(
                json!({"type": "identify", "userId": "u", "timestamp": "2024-04-01T00:00:00Z",
                "traits": {"city": "Roma", "plan": "fibra"}, "context": {"touchpoint": "web-shop"}}),
            ),
            // Arrives later but happened earlier: does not overwrite.
            event(
                json!({"type": "identify", "userId": "u", "timestamp": "2024-03-01T00:00:00Z",
                "traits": {"city": "Napoli"}}),
            ),
            event(
                json!({"type": "track", "userId": "u", "event": "Moved", "timestamp": "2024-04-02T00:00:00Z",
                "context": {"traits": {"city": "Milano"}, "touchpoint": "store-milan-02"}}),
            ),
        ];
        let traits = fold_traits(&events);
        assert_eq!(traits["city"].value, "Milano");
        assert_eq!(traits["city"].source, "store-milan-02");
        assert_eq!(traits["plan"].source, "web-shop");
        assert_eq!(traits["plan"].at.to_string(), "2024-04-01T00:00:00Z");
    }
}
