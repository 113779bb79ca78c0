//! The single customer view, folded from a person's events.

use serde::Serialize;
use serde_json::Value;

use super::compact_value::CompactValue;
use super::latest::{Latest, Stated};
use crate::event::Event;
use crate::log_time::LogTime;
use crate::name::Name;

/// A trait's current value, with where and when it was said.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TraitValue {
    pub value: CompactValue,
    /// The touchpoint it was said at, or the source when no touchpoint was named.
    pub source: Name,
    pub at: LogTime,
}

impl Stated for TraitValue {
    fn at(&self) -> LogTime {
        self.at
    }
}

/// The traits said so far (`traits` of identify calls, `context.traits` of any call),
/// each the latest by event time (log order breaking ties):
/// what a profile keeps as its events arrive, and merges when profiles merge.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Traits(Latest<Name, TraitValue>);

impl Traits {
    /// Takes in what the event at log position `seq` says about the person.
    pub fn apply(&mut self, seq: i64, event: &Event) {
        for path in ["traits", "context.traits"] {
            let Some(Value::Object(said)) = event.get(path) else {
                continue;
            };
            let source = Name::from(event.touchpoint.as_ref().unwrap_or(&event.source));
            for (name, value) in said {
                if value.is_null() {
                    continue;
                }
                let value = TraitValue {
                    value: CompactValue::from(value),
                    source: source.clone(),
                    at: LogTime::of(event.timestamp),
                };
                self.0.state(name.as_str(), value, seq);
            }
        }
    }

    /// Adds another profile's traits (a merge): the latest statement of each wins.
    pub fn merge(&mut self, other: Traits) {
        self.0.merge(other.0);
    }

    /// One trait.
    pub fn get(&self, name: &str) -> Option<&TraitValue> {
        self.0.get(name)
    }

    /// Every trait, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &TraitValue)> {
        self.0.iter()
    }
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
        let mut traits = Traits::default();
        for (seq, event) in events.iter().enumerate() {
            traits.apply(seq as i64, event);
        }
        let said = |name: &str| traits.get(name).unwrap();
        assert_eq!(said("city").value.as_str(), Some("Milano"));
        assert_eq!(said("city").source, "store-milan-02");
        assert_eq!(said("plan").source, "web-shop");
        assert_eq!(said("plan").at.to_string(), "2024-04-01T00:00:00Z");
    }
}

/// A person's name from their traits: `name`, else first and last name (`firstName` /
/// `lastName` as Segment writes them, or `first_name` / `last_name`).
pub fn display_name<'a>(text_of: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let text = |k: &str| text_of(k).map(str::trim).filter(|t| !t.is_empty());
    if let Some(name) = text("name") {
        return Some(name.to_string());
    }
    let first = text("firstName").or_else(|| text("first_name"));
    let last = text("lastName").or_else(|| text("last_name"));
    let parts: Vec<&str> = [first, last].into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod display_name_tests {
    use serde_json::json;

    use super::display_name;

    #[test]
    fn a_name_comes_from_name_or_first_and_last() {
        let traits = json!({"firstName": "Giulia", "last_name": "Rossi"});
        assert_eq!(
            display_name(|k| traits.get(k)?.as_str()).as_deref(),
            Some("Giulia Rossi")
        );
        let traits = json!({"name": "Bruno Bianchi", "first_name": "B"});
        assert_eq!(
            display_name(|k| traits.get(k)?.as_str()).as_deref(),
            Some("Bruno Bianchi")
        );
        let traits = json!({"first_name": " "});
        assert_eq!(display_name(|k| traits.get(k)?.as_str()), None);
    }
}
