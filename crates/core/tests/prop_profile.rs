//! Properties of a person's state (`profile::state` and its parts: traits, consents,
//! cases, engagement, computed traits, segment membership, what the card reads):
//! the identity graph merges profiles in whatever order people turn out to be one, so a
//! state merged from several people's states must be the state of all their events
//! folded together, whatever the partition, the order each part took its events in,
//! and the order (or tree) of the merges.
//!
//! `PROPTEST_CASES` runs more cases than the default here.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};
use unavoce_core::Event;
use unavoce_core::identifier::Identifier;
use unavoce_core::platform_events::{self, MessageOutcome, SEGMENT_SOURCE};
use unavoce_core::profile::recent::browsing_at;
use unavoce_core::profile::{ComputedTrait, ProfileState, context_card, default_computed_traits};
use unavoce_core::segment::{IntakeContext, normalise};

/// The cases of each property: `PROPTEST_CASES`, else `default`.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn start() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

/// One of a person's events, before it is a message.
#[derive(Debug, Clone)]
enum Kind {
    /// Traits said in an identify call (at a touchpoint, or not).
    Identify {
        city: usize,
        first_name: Option<usize>,
        preferred: Option<usize>,
        touchpoint: bool,
    },
    /// Traits said in the context of another call.
    ContextTraits {
        city: usize,
    },
    Order {
        quarters: u32,
        channel: usize,
        sku: usize,
    },
    /// Given, withdrawn, or updated either way.
    Consent {
        purpose: usize,
        channel: Option<usize>,
        granted: bool,
        updated: bool,
    },
    Case {
        id: usize,
        step: usize,
        channel: usize,
        note: bool,
    },
    Message {
        outcome: usize,
        channel: usize,
    },
    Browse {
        page: bool,
    },
    Survey {
        nps: u8,
    },
    Visit {
        channel: usize,
    },
    Segment {
        segment: usize,
        entered: bool,
    },
}

const CITIES: [&str; 3] = ["Roma", "Milano", "Napoli"];
const NAMES: [&str; 2] = ["Giulia", "Marco"];
const CHANNELS: [&str; 6] = ["email", "sms", "whatsapp", "store", "phone", "web"];
const PURPOSES: [&str; 2] = ["promotional", "service"];
const CASE_STEPS: [&str; 3] = ["Case Opened", "Case Updated", "Case Resolved"];

fn kind() -> impl Strategy<Value = Kind> {
    let channel = || 0..CHANNELS.len();
    prop_oneof![
        (
            0..CITIES.len(),
            prop::option::of(0..NAMES.len()),
            prop::option::of(channel()),
            any::<bool>()
        )
            .prop_map(|(city, first_name, preferred, touchpoint)| Kind::Identify {
                city,
                first_name,
                preferred,
                touchpoint
            }),
        (0..CITIES.len()).prop_map(|city| Kind::ContextTraits { city }),
        // Amounts in quarters: sums are exact in any order.
        (0u32..2_000, channel(), 0usize..3).prop_map(|(quarters, channel, sku)| Kind::Order {
            quarters,
            channel,
            sku
        }),
        (
            0..PURPOSES.len(),
            prop::option::of(0usize..3),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(purpose, channel, granted, updated)| Kind::Consent {
                purpose,
                channel,
                granted,
                updated
            }),
        (0usize..2, 0..CASE_STEPS.len(), channel(), any::<bool>()).prop_map(
            |(id, step, channel, note)| Kind::Case {
                id,
                step,
                channel,
                note
            }
        ),
        (0..MessageOutcome::ALL.len(), 0usize..3)
            .prop_map(|(outcome, channel)| Kind::Message { outcome, channel }),
        any::<bool>().prop_map(|page| Kind::Browse { page }),
        (0u8..=10).prop_map(|nps| Kind::Survey { nps }),
        channel().prop_map(|channel| Kind::Visit { channel }),
        (0usize..2, any::<bool>())
            .prop_map(|(segment, entered)| Kind::Segment { segment, entered }),
    ]
}

/// An event's time: often on the hour of one of a few days, so that many share a time.
fn when() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (0i64..6).prop_map(|day| start() + SignedDuration::from_hours(24 * day)),
        (0i64..200 * 24).prop_map(|hour| start() + SignedDuration::from_hours(hour)),
        (0i64..200 * 24 * 60).prop_map(|minute| start() + SignedDuration::from_mins(minute)),
    ]
}

fn message(kind: &Kind, at: Timestamp) -> (Map<String, Value>, &'static str) {
    let mut source = "test";
    let mut m = match kind {
        Kind::Identify {
            city,
            first_name,
            preferred,
            touchpoint,
        } => {
            let mut traits = json!({"city": CITIES[*city]});
            if let Some(n) = first_name {
                traits["firstName"] = json!(NAMES[*n]);
            }
            if let Some(c) = preferred {
                traits["preferred_channel"] = json!(CHANNELS[*c]);
            }
            let mut m = json!({"type": "identify", "traits": traits});
            if *touchpoint {
                m["context"] = json!({"touchpoint": "web-shop"});
            }
            m
        }
        Kind::ContextTraits { city } => json!({"type": "track", "event": "Moved",
            "context": {"traits": {"city": CITIES[*city]}}}),
        Kind::Order {
            quarters,
            channel,
            sku,
        } => json!({"type": "track", "event": "Order Completed",
            "properties": {"revenue": f64::from(*quarters) / 4.0, "sku": format!("sku-{sku}")},
            "context": {"channel": CHANNELS[*channel]}}),
        Kind::Consent {
            purpose,
            channel,
            granted,
            updated,
        } => {
            let channel = channel.map(|c| CHANNELS[c]);
            let mut m = platform_events::consent(PURPOSES[*purpose], channel, *granted, Map::new());
            if *updated {
                m.insert("event".into(), "Consent Updated".into());
                m.insert(
                    "properties".into(),
                    json!({"purpose": PURPOSES[*purpose], "channel": channel, "granted": granted}),
                );
            }
            Value::Object(m)
        }
        Kind::Case {
            id,
            step,
            channel,
            note,
        } => {
            let mut props =
                json!({"case_id": format!("C-{id}"), "subject": format!("subject {step}")});
            if *note {
                props["note"] = json!("called back");
            }
            json!({"type": "track", "event": CASE_STEPS[*step], "properties": props,
                "context": {"channel": CHANNELS[*channel]}})
        }
        Kind::Message { outcome, channel } => Value::Object(platform_events::message_outcome(
            MessageOutcome::ALL[*outcome],
            json!({"channel": CHANNELS[*channel]})
                .as_object()
                .unwrap()
                .clone(),
        )),
        Kind::Browse { page: true } => json!({"type": "page", "name": "Pricing"}),
        Kind::Browse { page: false } => {
            json!({"type": "track", "event": "Product Viewed", "context": {"channel": "web"}})
        }
        Kind::Survey { nps } => json!({"type": "track", "event": "Survey Answered",
            "properties": {"nps": nps}, "context": {"channel": "phone"}}),
        Kind::Visit { channel } => json!({"type": "track", "event": "Visit",
            "context": {"channel": CHANNELS[*channel], "touchpoint": "store-rome-01"}}),
        Kind::Segment { segment, entered } => {
            source = SEGMENT_SOURCE;
            Value::Object(platform_events::segment_change(
                ["vip", "lapsing"][*segment],
                *entered,
            ))
        }
    };
    m["userId"] = json!("u");
    m["timestamp"] = json!(at.to_string());
    (m.as_object().unwrap().clone(), source)
}

fn events(kinds: &[(Kind, Timestamp)]) -> Vec<Event> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, (kind, at))| {
            let (m, source) = message(kind, *at);
            // Received long after: no timestamp is corrected as being in the future.
            let ctx = IntakeContext::new("2030-01-01T00:00:00Z".parse().unwrap(), source);
            normalise(m, &ctx, || format!("m{i}")).expect("a valid message")
        })
        .collect()
}

/// The defaults and one trait of every other aggregate, all time and over a week.
fn computed() -> Vec<ComputedTrait> {
    let mut defs = default_computed_traits();
    let more: Vec<ComputedTrait> = serde_json::from_value(json!([
        {"name": "biggest", "aggregate": "max", "event": "order completed", "property": "revenue"},
        {"name": "smallest", "aggregate": "min", "property": "revenue"},
        {"name": "skus", "aggregate": "distinct", "property": "sku"},
        {"name": "first_sku", "aggregate": "first", "property": "sku"},
        {"name": "first_seen", "aggregate": "first"},
        {"name": "last_city", "aggregate": "last", "event": "Moved"},
        {"name": "week_revenue", "aggregate": "sum", "property": "revenue", "window_days": 7},
        {"name": "week_skus", "aggregate": "distinct", "property": "sku", "window_days": 7},
        {"name": "week_last", "aggregate": "last", "property": "sku", "window_days": 7},
        {"name": "week_biggest", "aggregate": "max", "property": "revenue", "window_days": 7},
    ]))
    .unwrap();
    defs.extend(more);
    defs
}

/// Everything that reads a state, at `now`: the facts (traits, computed traits, stage,
/// preferred channel, consents, cases, engagement), segments, name, activity times,
/// and the context card built from the events it names.
fn reading(
    state: &ProfileState,
    events: &[Event],
    computed: &[ComputedTrait],
    now: Timestamp,
) -> Value {
    let card_events: Vec<&Event> = state
        .recent()
        .card_events()
        .into_iter()
        .map(|seq| &events[seq as usize])
        .collect();
    // The person's own events, for the fallback count of views the state let go.
    let browsing = state.recent().browsing_at(now);
    let card = context_card(
        "p-1",
        vec![Identifier {
            kind: String::from("user_id").into(),
            value: "u".into(),
        }],
        state.facts(computed, now),
        &card_events,
        browsing.unwrap_or(usize::MAX),
        now,
    );
    json!({
        "card": card,
        "browsing": browsing,
        "segments": state.segments().collect::<Vec<_>>(),
        "name": state.display_name(),
        "last_seen": state.last_seen(),
        "last_event_at": state.last_event_at(),
        "traits": state.traits().iter().map(|(k, t)| (k.to_string(), json!([t.value, t.source, t.at]))).collect::<Map<_, _>>(),
    })
}

/// Moments to read the states at: before, during and long after the history (for
/// windows, open-case ages, the lapsed stage and browsing).
fn moments() -> [Timestamp; 4] {
    [-3i64, 60, 203, 400].map(|day| start() + SignedDuration::from_hours(24 * day))
}

proptest! {
    #![proptest_config(config(512))]

    /// Merged states equal the fold of all events in log order: events split between
    /// up to five people, each person's events taken in a shuffled order (late events
    /// arrive), and the people merged pairwise in a random order and direction.
    #[test]
    fn merged_states_equal_all_events_folded_together(
        history in prop::collection::vec((kind(), when()), 0..60),
        people in prop::collection::vec(0usize..5, 60),
        shuffles in prop::collection::vec(any::<prop::sample::Index>(), 60),
        merges in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 5),
    ) {
        let computed = computed();
        let events = events(&history);
        let whole = ProfileState::fold(&events, &computed);

        // Each person's events, in a shuffled order, keeping their log positions.
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); 5];
        for seq in 0..events.len() {
            parts[people[seq]].push(seq);
        }
        let mut states: Vec<ProfileState> = parts
            .into_iter()
            .map(|mut seqs| {
                for i in (1..seqs.len()).rev() {
                    seqs.swap(i, shuffles[i].index(i + 1));
                }
                let mut state = ProfileState::default();
                for seq in seqs {
                    state.apply(&computed, seq as i64, &events[seq]);
                }
                state
            })
            .collect();
        // Merged pairwise, any two, either into the other: any tree of merges.
        for (a, b, flip) in merges {
            if states.len() < 2 {
                break;
            }
            let i = a.index(states.len());
            let mut j = b.index(states.len() - 1);
            if j >= i {
                j += 1;
            }
            let (into, from) = if flip { (j, i) } else { (i, j) };
            let absorbed = states[from].clone();
            states[into].merge(absorbed);
            states.remove(from);
        }
        let merged = states.pop().expect("one state is left");
        for now in moments() {
            prop_assert_eq!(
                reading(&merged, &events, &computed, now),
                reading(&whole, &events, &computed, now),
                "at {}", now
            );
        }
        // What the card counts of recent browsing agrees with a count over the events.
        let now = moments()[2];
        if let Some(views) = whole.recent().browsing_at(now) {
            prop_assert_eq!(views, browsing_at(&events, now));
        }
    }
}
