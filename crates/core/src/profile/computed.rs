//! Computed traits: aggregates over a person's events declared in the config file
//! (`orders_90d`, `lifetime_value`, `last_store_visit`).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::event::Event;

/// How matching events are aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Count,
    Sum,
    Min,
    Max,
    /// The property (or the time, without `property`) of the earliest matching event.
    First,
    /// The property (or the time, without `property`) of the latest matching event.
    Last,
    /// How many distinct values the property took.
    Distinct,
}

/// One computed trait, as declared in `[[computed_traits]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputedTrait {
    pub name: String,
    pub aggregate: Aggregate,
    /// Only events with this name (any case).
    #[serde(default)]
    pub event: Option<String>,
    /// The property aggregated (`revenue`); required by sum, min, max and distinct.
    #[serde(default)]
    pub property: Option<String>,
    /// Only events on this channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Only events at this touchpoint.
    #[serde(default)]
    pub touchpoint: Option<String>,
    /// Only events of the last so many days.
    #[serde(default)]
    pub window_days: Option<u32>,
}

/// Why a computed trait definition is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("computed trait {name:?}: {problem}")]
pub struct ComputedTraitError {
    pub name: String,
    pub problem: String,
}

impl ComputedTrait {
    /// Checks the definition.
    pub fn validate(&self) -> Result<(), ComputedTraitError> {
        let problem = |p: &str| {
            Err(ComputedTraitError {
                name: self.name.clone(),
                problem: p.into(),
            })
        };
        if self.name.trim().is_empty() {
            return problem("the name is empty");
        }
        if matches!(
            self.aggregate,
            Aggregate::Sum | Aggregate::Min | Aggregate::Max | Aggregate::Distinct
        ) && self.property.is_none()
        {
            return problem("sum, min, max and distinct need a `property` to aggregate");
        }
        if self.window_days == Some(0) {
            return problem("window_days must be at least 1; leave it out for all time");
        }
        Ok(())
    }

    fn matches(&self, event: &Event, now: Timestamp) -> bool {
        let name_ok = self.event.as_ref().is_none_or(|n| {
            event
                .name
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(n))
        });
        let channel_ok = self
            .channel
            .as_ref()
            .is_none_or(|c| event.channel.as_deref() == Some(c));
        let touchpoint_ok = self
            .touchpoint
            .as_ref()
            .is_none_or(|t| event.touchpoint.as_deref() == Some(t));
        let window_ok = self.window_days.is_none_or(|days| {
            event.timestamp >= now - SignedDuration::from_hours(24 * i64::from(days))
                && event.timestamp <= now
        });
        name_ok && channel_ok && touchpoint_ok && window_ok
    }
}

/// The defaults when the config declares none.
pub fn default_computed_traits() -> Vec<ComputedTrait> {
    let def = |name: &str,
               aggregate,
               event: Option<&str>,
               property: Option<&str>,
               channel: Option<&str>,
               window| ComputedTrait {
        name: name.into(),
        aggregate,
        event: event.map(str::to_string),
        property: property.map(str::to_string),
        channel: channel.map(str::to_string),
        touchpoint: None,
        window_days: window,
    };
    vec![
        def(
            "orders_90d",
            Aggregate::Count,
            Some("Order Completed"),
            None,
            None,
            Some(90),
        ),
        def(
            "lifetime_value",
            Aggregate::Sum,
            Some("Order Completed"),
            Some("revenue"),
            None,
            None,
        ),
        def(
            "last_order",
            Aggregate::Last,
            Some("Order Completed"),
            None,
            None,
            None,
        ),
        def(
            "last_store_visit",
            Aggregate::Last,
            None,
            None,
            Some("store"),
            None,
        ),
        def(
            "calls_30d",
            Aggregate::Count,
            None,
            None,
            Some("phone"),
            Some(30),
        ),
    ]
}

/// Evaluates every definition over the person's events at `now`. A trait with no
/// matching event is 0 for counts and sums and absent otherwise.
pub fn evaluate<'a>(
    definitions: &[ComputedTrait],
    events: impl IntoIterator<Item = &'a Event> + Clone,
    now: Timestamp,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for def in definitions {
        let mut matching: Vec<&Event> = events
            .clone()
            .into_iter()
            .filter(|e| def.matches(e, now))
            .collect();
        matching.sort_by_key(|e| e.timestamp);
        let property = |e: &Event| {
            def.property
                .as_ref()
                .and_then(|p| e.get(&format!("properties.{p}")).cloned())
        };
        let numbers = || {
            matching
                .iter()
                .filter_map(|e| property(e).and_then(|v| v.as_f64()))
        };
        let number = |x: f64| Number::from_f64((x * 100.0).round() / 100.0).map(Value::Number);
        let value = match def.aggregate {
            Aggregate::Count => Some(Value::from(matching.len())),
            Aggregate::Sum => number(numbers().sum()),
            Aggregate::Min => numbers().reduce(f64::min).and_then(number),
            Aggregate::Max => numbers().reduce(f64::max).and_then(number),
            Aggregate::First | Aggregate::Last => {
                let event = if def.aggregate == Aggregate::First {
                    matching.first()
                } else {
                    matching.last()
                };
                event.map(|e| match &def.property {
                    Some(_) => property(e).unwrap_or(Value::Null),
                    None => Value::String(e.timestamp.to_string()),
                })
            }
            Aggregate::Distinct => Some(Value::from(
                matching
                    .iter()
                    .filter_map(|e| property(e))
                    .map(|v| v.to_string())
                    .collect::<BTreeSet<_>>()
                    .len(),
            )),
        };
        if let Some(value) = value {
            out.insert(def.name.clone(), value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    fn order(at: &str, revenue: f64, channel: &str) -> Event {
        let ctx = IntakeContext::new("2024-05-10T00:00:00Z".parse().unwrap(), "test");
        let message = json!({"type": "track", "userId": "u", "event": "Order Completed", "timestamp": at,
            "properties": {"revenue": revenue, "sku": format!("sku-{revenue}")}, "context": {"channel": channel}});
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    #[test]
    fn defaults_count_sum_and_remember_the_last_store_visit() {
        let now: Timestamp = "2024-06-01T00:00:00Z".parse().unwrap();
        let events = [
            order("2023-12-01T10:00:00Z", 100.0, "web"),
            order("2024-04-01T10:00:00Z", 19.9, "store"),
            order("2024-05-20T10:00:00Z", 5.5, "web"),
        ];
        let values = evaluate(&default_computed_traits(), &events, now);
        assert_eq!(values["orders_90d"], 2);
        assert_eq!(values["lifetime_value"], json!(125.4));
        assert_eq!(values["last_order"], "2024-05-20T10:00:00Z");
        assert_eq!(values["last_store_visit"], "2024-04-01T10:00:00Z");
        assert_eq!(values["calls_30d"], 0);
    }

    #[test]
    fn min_max_distinct_and_validation() {
        let now: Timestamp = "2024-06-01T00:00:00Z".parse().unwrap();
        let events = [
            order("2024-05-01T10:00:00Z", 10.0, "web"),
            order("2024-05-02T10:00:00Z", 30.0, "web"),
        ];
        let defs: Vec<ComputedTrait> = serde_json::from_value(json!([
            {"name": "biggest", "aggregate": "max", "event": "order completed", "property": "revenue"},
            {"name": "smallest", "aggregate": "min", "property": "revenue"},
            {"name": "skus", "aggregate": "distinct", "property": "sku"},
            {"name": "first_sku", "aggregate": "first", "property": "sku"},
        ]))
        .unwrap();
        let values = evaluate(&defs, &events, now);
        assert_eq!(
            (values["biggest"].clone(), values["smallest"].clone()),
            (json!(30.0), json!(10.0))
        );
        assert_eq!(values["skus"], 2);
        assert_eq!(values["first_sku"], "sku-10");
        let bad: ComputedTrait =
            serde_json::from_value(json!({"name": "x", "aggregate": "sum"})).unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("need a `property`")
        );
    }
}
