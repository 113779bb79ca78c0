//! Computed traits: aggregates over a person's events declared in the config file
//! (`orders_90d`, `lifetime_value`, `last_store_visit`).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::event::Event;
use crate::log_time::LogTime;
use crate::small_map::insert_exact;

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
    /// Only events of the last so many days, counted in whole days (UTC): those of
    /// today and of the `window_days` days before it.
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

    /// Whether an event counts for this trait, its time aside.
    fn matches(&self, event: &Event) -> bool {
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
        name_ok && channel_ok && touchpoint_ok
    }
}

/// The day (UTC) of a moment, counted from 1970-01-01.
fn day_of(at: Timestamp) -> i64 {
    at.as_second().div_euclid(24 * 3_600)
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

/// One matching event, as a first, last or windowed aggregate keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sample {
    at: LogTime,
    seq: i64,
    /// The aggregated property's value, when the trait names one and the event has it:
    /// boxed, as most traits name none (a sample 24 bytes, not 48).
    value: Option<Box<Value>>,
}

/// What a person's events have contributed to one computed trait. 16 bytes: what does
/// not fit in 8 is boxed (held for every person and trait).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Contribution {
    Count(u64),
    Sum(f64),
    Min(Extreme),
    Max(Extreme),
    First(Option<Box<Sample>>),
    Last(Option<Box<Sample>>),
    #[expect(
        clippy::box_collection,
        reason = "a set inline would make every contribution 32 bytes"
    )]
    Distinct(Box<BTreeSet<String>>),
    /// A trait over the last N days keeps its matching events aggregated per day, the
    /// days from its newest back N: which of them count depends on when it is read.
    /// `None` until an event matches.
    Window(Option<Box<Window>>),
}

/// The least or greatest number seen: NaN until one is (`f64::min` and `max` pass NaN
/// over), an option in 8 bytes. Two unknowns are equal; written as an option.
#[derive(Debug, Clone, Copy)]
struct Extreme(f64);

impl Extreme {
    const UNKNOWN: Extreme = Extreme(f64::NAN);

    fn fold(self, number: Option<f64>, f: fn(f64, f64) -> f64) -> Extreme {
        Extreme(f(self.0, number.unwrap_or(f64::NAN)))
    }
}

impl PartialEq for Extreme {
    fn eq(&self, other: &Extreme) -> bool {
        self.0 == other.0 || (self.0.is_nan() && other.0.is_nan())
    }
}

impl Serialize for Extreme {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (!self.0.is_nan()).then_some(self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Extreme {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Extreme, D::Error> {
        Ok(Extreme(
            Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN),
        ))
    }
}

/// A windowed trait's matching events, aggregated day by day (see [`Window::add`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Window {
    aggregate: Aggregate,
    days: u32,
    /// Each day with matching events, ascending: the day and its events' aggregate.
    kept: Box<[(i64, Contribution)]>,
}

impl Window {
    /// Adds a matching event to its day. Days more than the window's length before the newest
    /// day held are let go: they count only when read before that newest day, that
    /// is before an event that has happened (a profile is read at the time of reading,
    /// after its events), and a day that counts for no reading is not worth holding.
    fn add(&mut self, sample: Sample) {
        let day = day_of(sample.at.timestamp());
        match self.kept.binary_search_by_key(&day, |(d, _)| *d) {
            Ok(i) => self.kept[i].1.add(sample),
            Err(i) => {
                let mut inside = Contribution::all_time(self.aggregate);
                inside.add(sample);
                insert_exact(&mut self.kept, i, (day, inside));
                self.let_go_old_days();
            }
        }
    }

    fn merge(&mut self, other: Window) {
        for (day, theirs) in other.kept {
            match self.kept.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(i) => self.kept[i].1.merge(theirs),
                Err(i) => insert_exact(&mut self.kept, i, (day, theirs)),
            }
        }
        self.let_go_old_days();
    }

    fn let_go_old_days(&mut self) {
        if let Some(&(newest, _)) = self.kept.last() {
            let oldest = newest - i64::from(self.days);
            let old = self.kept.partition_point(|(d, _)| *d < oldest);
            if old > 0 {
                let mut kept = std::mem::take(&mut self.kept).into_vec();
                kept.drain(..old);
                self.kept = kept.into_boxed_slice();
            }
        }
    }

    /// The aggregate of the days that count at `now`: its day and the window's days
    /// before it.
    fn at(&self, now: Timestamp) -> Contribution {
        let today = day_of(now);
        let since = today - i64::from(self.days);
        let mut inside = Contribution::all_time(self.aggregate);
        for (_, day) in self
            .kept
            .iter()
            .filter(|(d, _)| (since..=today).contains(d))
        {
            inside.merge(day.clone());
        }
        inside
    }
}

/// What a person's events have contributed to each computed trait, one entry per
/// definition in order (none at all until an event matches one): what a profile keeps
/// as its events arrive, mergeable, and read at any `now`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComputedState(Box<[Contribution]>);

impl ComputedState {
    /// Takes in the event at log position `seq`.
    pub fn apply(&mut self, definitions: &[ComputedTrait], seq: i64, event: &Event) {
        if self.0.len() != definitions.len() {
            if !definitions.iter().any(|def| def.matches(event)) {
                return;
            }
            self.0 = definitions.iter().map(Contribution::empty).collect();
        }
        for (def, contribution) in definitions.iter().zip(&mut self.0) {
            if def.matches(event) {
                if let (Contribution::Window(window @ None), Some(days)) =
                    (&mut *contribution, def.window_days)
                {
                    *window = Some(Box::new(Window {
                        aggregate: def.aggregate,
                        days,
                        kept: Box::default(),
                    }));
                }
                contribution.add(Sample {
                    at: LogTime::of(event.timestamp),
                    seq,
                    value: def
                        .property
                        .as_ref()
                        .and_then(|p| event.get(&format!("properties.{p}")).cloned())
                        .map(Box::new),
                });
            }
        }
    }

    /// Adds another profile's contributions (a merge) under the same definitions.
    pub fn merge(&mut self, other: ComputedState) {
        if self.0.is_empty() {
            *self = other;
            return;
        }
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            mine.merge(theirs);
        }
    }

    /// Every trait's value at `now`. A trait with no matching event is 0 for counts and
    /// sums and absent otherwise.
    pub fn values(&self, definitions: &[ComputedTrait], now: Timestamp) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (i, def) in definitions.iter().enumerate() {
            let value = match self.0.get(i) {
                Some(contribution) => contribution.value(def, now),
                None => Contribution::empty(def).value(def, now),
            };
            if let Some(value) = value {
                out.insert(def.name.clone(), value);
            }
        }
        out
    }
}

impl Contribution {
    fn empty(def: &ComputedTrait) -> Self {
        if def.window_days.is_some() {
            Contribution::Window(None)
        } else {
            Contribution::all_time(def.aggregate)
        }
    }

    fn all_time(aggregate: Aggregate) -> Self {
        match aggregate {
            Aggregate::Count => Contribution::Count(0),
            Aggregate::Sum => Contribution::Sum(0.0),
            Aggregate::Min => Contribution::Min(Extreme::UNKNOWN),
            Aggregate::Max => Contribution::Max(Extreme::UNKNOWN),
            Aggregate::First => Contribution::First(None),
            Aggregate::Last => Contribution::Last(None),
            Aggregate::Distinct => Contribution::Distinct(Box::default()),
        }
    }

    /// Adds what another person's events contributed to the same definition.
    fn merge(&mut self, other: Contribution) {
        match (self, other) {
            (Contribution::Count(a), Contribution::Count(b)) => *a += b,
            (Contribution::Sum(a), Contribution::Sum(b)) => *a += b,
            (Contribution::Min(a), Contribution::Min(b)) => *a = a.fold(Some(b.0), f64::min),
            (Contribution::Max(a), Contribution::Max(b)) => *a = a.fold(Some(b.0), f64::max),
            (Contribution::First(a), Contribution::First(Some(b))) => keep(a, *b, true),
            (Contribution::Last(a), Contribution::Last(Some(b))) => keep(a, *b, false),
            (Contribution::Distinct(a), Contribution::Distinct(b)) => a.extend(*b),
            (Contribution::Window(a), Contribution::Window(Some(b))) => match a {
                Some(a) => a.merge(*b),
                None => *a = Some(b),
            },
            _ => {}
        }
    }

    fn add(&mut self, sample: Sample) {
        let number = sample.value.as_deref().and_then(Value::as_f64);
        match self {
            Contribution::Count(n) => *n += 1,
            Contribution::Sum(sum) => *sum += number.unwrap_or(0.0),
            Contribution::Min(min) => *min = min.fold(number, f64::min),
            Contribution::Max(max) => *max = max.fold(number, f64::max),
            Contribution::First(first) => keep(first, sample, true),
            Contribution::Last(last) => keep(last, sample, false),
            Contribution::Distinct(seen) => {
                if let Some(v) = &sample.value {
                    seen.insert(v.to_string());
                }
            }
            Contribution::Window(window) => {
                if let Some(window) = window {
                    window.add(sample);
                }
            }
        }
    }

    fn value(&self, def: &ComputedTrait, now: Timestamp) -> Option<Value> {
        let number = |x: f64| Number::from_f64((x * 100.0).round() / 100.0).map(Value::Number);
        match self {
            Contribution::Count(n) => Some(Value::from(*n)),
            Contribution::Sum(sum) => number(*sum),
            Contribution::Min(x) | Contribution::Max(x) => number(x.0),
            Contribution::First(s) | Contribution::Last(s) => {
                s.as_ref().map(|s| match &def.property {
                    Some(_) => s.value.as_deref().cloned().unwrap_or(Value::Null),
                    None => Value::String(s.at.to_string()),
                })
            }
            Contribution::Distinct(seen) => Some(Value::from(seen.len())),
            Contribution::Window(Some(window)) => window.at(now).value(def, now),
            Contribution::Window(None) => Contribution::all_time(def.aggregate).value(def, now),
        }
    }
}

/// Keeps the earliest (`first`) or latest sample by time, log order breaking ties.
fn keep(kept: &mut Option<Box<Sample>>, candidate: Sample, first: bool) {
    let better = kept.as_ref().is_none_or(|k| {
        let (old, new) = ((k.at, k.seq), (candidate.at, candidate.seq));
        if first { new < old } else { new >= old }
    });
    if better {
        match kept {
            Some(k) => **k = candidate,
            None => *kept = Some(Box::new(candidate)),
        }
    }
}

/// Evaluates every definition over the person's events (in log order) at `now`.
pub fn evaluate<'a>(
    definitions: &[ComputedTrait],
    events: impl IntoIterator<Item = &'a Event>,
    now: Timestamp,
) -> BTreeMap<String, Value> {
    let mut state = ComputedState::default();
    for (seq, event) in events.into_iter().enumerate() {
        state.apply(definitions, seq as i64, event);
    }
    state.values(definitions, now)
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
    fn a_person_holds_no_contributions_until_an_event_matches() {
        let defs = default_computed_traits();
        let now: Timestamp = "2024-06-01T00:00:00Z".parse().unwrap();
        let ctx = IntakeContext::new(now, "test");
        let message = json!({"type": "page", "userId": "u", "name": "Home",
            "timestamp": "2024-05-01T10:00:00Z", "context": {"channel": "web"}});
        let visit = normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap();
        let mut state = ComputedState::default();
        state.apply(&defs, 1, &visit);
        assert!(state.0.is_empty());
        assert_eq!(state.values(&defs, now), evaluate(&defs, [&visit], now));
        assert_eq!(state.values(&defs, now)["orders_90d"], 0);
        // Merged with someone who ordered: their contributions, as all events together.
        let mut other = ComputedState::default();
        let bought = order("2024-05-02T10:00:00Z", 20.0, "web");
        other.apply(&defs, 2, &bought);
        assert_eq!(other.0.len(), defs.len());
        state.merge(other.clone());
        let mut reversed = other;
        reversed.merge(ComputedState::default());
        assert_eq!(state, reversed);
        assert_eq!(
            state.values(&defs, now),
            evaluate(&defs, [&visit, &bought], now)
        );
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
    fn a_window_counts_whole_days_and_holds_one_aggregate_a_day() {
        let defs = default_computed_traits();
        let now: Timestamp = "2024-06-01T09:00:00Z".parse().unwrap();
        // 90 days before 2024-06-01 is 2024-03-03: its first minute counts, though it
        // is more than 90 × 24 hours before now; the day before does not.
        let mut events = vec![
            order("2024-03-02T23:59:00Z", 1.0, "web"),
            order("2024-03-03T00:01:00Z", 2.0, "web"),
        ];
        for minute in 0..1_000 {
            let at = format!("2024-05-31T{:02}:{:02}:00Z", minute / 60 % 24, minute % 60);
            events.push(order(&at, 3.0, "web"));
        }
        let mut state = ComputedState::default();
        for (seq, event) in events.iter().enumerate() {
            state.apply(&defs, seq as i64, event);
        }
        assert_eq!(state.values(&defs, now)["orders_90d"], 1_001);
        let Contribution::Window(Some(window)) = &state.0[0] else {
            panic!("orders_90d is windowed")
        };
        assert_eq!(window.kept.len(), 3, "one aggregate for each day");
        // An order on 2 June lets both March days go (91 and 92 days before it): they
        // count for no reading after it.
        state.apply(&defs, 9_999, &order("2024-06-02T10:00:00Z", 4.0, "web"));
        let Contribution::Window(Some(window)) = &state.0[0] else {
            panic!("orders_90d is windowed")
        };
        assert_eq!(window.kept.len(), 2);
        let later: Timestamp = "2024-06-02T12:00:00Z".parse().unwrap();
        assert_eq!(state.values(&defs, later)["orders_90d"], 1_001);
    }

    #[test]
    fn min_max_distinct_and_validation() {
        // Held for every person and trait: what does not fit in 8 bytes is boxed.
        assert_eq!(size_of::<Contribution>(), 16);
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
