//! A person's state, kept current event by event: what audiences, segments and the
//! policy gate decide on, without reading the person's events back.
//!
//! [`ProfileState`] takes in one event at a time, in any order (each part keeps what it
//! needs to put a late event in its place by time), merges with another person's state
//! when the identity graph merges their profiles, and is read at any `now` as
//! [`ProfileFacts`]. The context card is built from the same state, so what an agent
//! reads and what the rules decide on cannot disagree.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;

use super::cases::{Case, CaseLog, CaseStatus};
use super::computed::{ComputedState, ComputedTrait};
use super::consent::{self, ConsentLine, Consents};
use super::engagement::{ChannelEngagement, count_engagement};
use super::latest::{Latest, Stated};
use super::recent::Recent;
use super::traits::Traits;
use crate::event::{Event, EventType};
use crate::log_time::LogTime;
use crate::name::Name;
use crate::platform_events::{SEGMENT_ENTERED, SEGMENT_EXITED, SEGMENT_SOURCE};
use crate::small_map::SmallMap;

/// Whether the event records a segment membership change: the segment, and whether
/// the person entered it. Only the platform's own segment events count (source
/// [`SEGMENT_SOURCE`]), so no sender can claim a membership.
pub fn segment_change(event: &Event) -> Option<(&str, bool)> {
    if event.source != SEGMENT_SOURCE || event.event_type != EventType::Track {
        return None;
    }
    let entered = match event.name.as_deref()? {
        SEGMENT_ENTERED => true,
        SEGMENT_EXITED => false,
        _ => return None,
    };
    let segment = event.get("properties.segment")?.as_str()?;
    Some((segment, entered))
}

/// Where a person is in their relationship with the company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    /// Known, but has bought nothing.
    Prospect,
    /// Has bought.
    Customer,
    /// Has bought three times or more.
    Loyal,
    /// Not seen for 180 days.
    Lapsed,
}

/// A person as the rules see them at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileFacts {
    pub traits: BTreeMap<String, Value>,
    pub computed_traits: BTreeMap<String, Value>,
    pub lifecycle_stage: LifecycleStage,
    /// The stated preference (`preferred_channel` trait), else the channel they use most.
    pub preferred_channel: Option<String>,
    pub consents: Vec<ConsentLine>,
    pub open_cases: Vec<Case>,
    /// How long the oldest open case has been open, in hours (0 with none open).
    pub open_case_hours: f64,
    pub resolved_cases: usize,
    /// Messages and interactions per channel.
    pub engagement: BTreeMap<String, ChannelEngagement>,
}

impl ProfileFacts {
    /// Whether the person consented to `purpose` on `channel`: the latest statement
    /// that applies there says yes (see [`consent::applicable`]); no statement means no
    /// consent.
    pub fn consents_to(&self, purpose: &str, channel: &str) -> bool {
        self.consent_statement(purpose, channel)
            .is_some_and(|l| l.granted)
    }

    /// The statement that decides `purpose` on `channel`.
    pub fn consent_statement(&self, purpose: &str, channel: &str) -> Option<&ConsentLine> {
        consent::applicable(&self.consents, purpose, channel)
    }
}

/// A recorded segment membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Membership {
    entered: bool,
    at: LogTime,
}

impl Stated for Membership {
    fn at(&self) -> LogTime {
        self.at
    }
}

/// A person's state, kept current as their events arrive. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProfileState {
    traits: Traits,
    consents: Consents,
    cases: CaseLog,
    engagement: SmallMap<Name, ChannelEngagement>,
    computed: ComputedState,
    purchases: u32,
    last_seen: Option<LogTime>,
    /// Segment membership as recorded: entered or not, by the latest change.
    segments: Latest<String, Membership>,
    /// What the context card reads of the person's events.
    recent: Recent,
}

impl ProfileState {
    /// The person's name, from their traits.
    pub fn display_name(&self) -> Option<String> {
        super::traits::display_name(|k| self.traits.get(k)?.value.as_str())
    }

    /// The state of a person with these events, in log order.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = &'a Event>,
        computed: &[ComputedTrait],
    ) -> Self {
        let mut state = ProfileState::default();
        for (seq, event) in events.into_iter().enumerate() {
            state.apply(computed, seq as i64, event);
        }
        state
    }

    /// Takes in the event at log position `seq`.
    pub fn apply(&mut self, computed: &[ComputedTrait], seq: i64, event: &Event) {
        if let Some((segment, entered)) = segment_change(event) {
            let change = Membership {
                entered,
                at: LogTime::of(event.timestamp),
            };
            self.segments.state(segment, change, seq);
            return;
        }
        self.traits.apply(seq, event);
        self.consents.apply(seq, event);
        self.cases.apply(seq, event);
        count_engagement(&mut self.engagement, event);
        self.computed.apply(computed, seq, event);
        self.recent.apply(seq, event);
        if event
            .name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("Order Completed"))
        {
            self.purchases += 1;
        }
        self.last_seen = self.last_seen.max(Some(LogTime::of(event.timestamp)));
    }

    /// Adds the state of a profile merged into this one.
    pub fn merge(&mut self, other: ProfileState) {
        self.traits.merge(other.traits);
        self.consents.merge(other.consents);
        self.cases.merge(other.cases);
        for (channel, e) in other.engagement.iter() {
            self.engagement.or_default(channel.clone()).merge(e);
        }
        self.computed.merge(other.computed);
        self.purchases += other.purchases;
        self.last_seen = self.last_seen.max(other.last_seen);
        self.segments.merge(other.segments);
        self.recent.merge(other.recent);
    }

    /// The segments whose latest recorded change for the person is an entry.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments
            .iter()
            .filter(|(_, m)| m.entered)
            .map(|(name, _)| name.as_str())
    }

    /// Whether the person's latest recorded change for `segment` is an entry.
    pub fn in_segment(&self, segment: &str) -> bool {
        self.segments.get(segment).is_some_and(|m| m.entered)
    }

    /// When the person was last seen on any touchpoint.
    pub fn last_seen(&self) -> Option<Timestamp> {
        self.last_seen.map(LogTime::timestamp)
    }

    /// When the person's latest event happened, segment membership changes included.
    pub fn last_event_at(&self) -> Option<Timestamp> {
        let changed = self.segments.iter().map(|(_, m)| m.at).max();
        self.last_seen.max(changed).map(LogTime::timestamp)
    }

    /// The person's traits.
    pub fn traits(&self) -> &Traits {
        &self.traits
    }

    /// What the context card reads of the person's events.
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// The person at `now`.
    pub fn facts(&self, computed: &[ComputedTrait], now: Timestamp) -> ProfileFacts {
        let lifecycle_stage = match (self.purchases, self.last_seen) {
            (_, Some(seen)) if seen < LogTime::of(now - SignedDuration::from_hours(24 * 180)) => {
                LifecycleStage::Lapsed
            }
            (0, _) => LifecycleStage::Prospect,
            (1..=2, _) => LifecycleStage::Customer,
            _ => LifecycleStage::Loyal,
        };
        let stated = self
            .traits
            .get("preferred_channel")
            .and_then(|t| t.value.as_str())
            .map(str::to_string);
        let observed = self
            .engagement
            .iter()
            .max_by_key(|(_, e)| {
                let m = e.messages();
                [e.interactions, m.opened, m.clicked, m.replied]
                    .map(u64::from)
                    .iter()
                    .sum::<u64>()
            })
            .map(|(channel, _)| channel.to_string());
        let (open_cases, resolved): (Vec<Case>, Vec<Case>) = self
            .cases
            .cases()
            .into_iter()
            .partition(|c| c.status == CaseStatus::Open);
        ProfileFacts {
            traits: self
                .traits
                .iter()
                .map(|(k, t)| (k.to_string(), t.value.to_value()))
                .collect(),
            computed_traits: self.computed.values(computed, now),
            lifecycle_stage,
            preferred_channel: stated.or(observed),
            consents: self.consents.lines(),
            open_case_hours: open_cases
                .iter()
                .map(|c| (now - c.opened_at).as_secs_f64().max(0.0) / 3600.0)
                .fold(0.0, f64::max),
            open_cases,
            resolved_cases: resolved.len(),
            engagement: self
                .engagement
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

/// One history as two people's states, the web visitor's (events with an anonymous id)
/// and the caller's (the others), each event at its position in `events`.
#[cfg(test)]
pub(crate) fn web_and_caller(
    events: &[Event],
    computed: &[ComputedTrait],
) -> (ProfileState, ProfileState) {
    let (mut web, mut caller) = (ProfileState::default(), ProfileState::default());
    for (seq, event) in events.iter().enumerate() {
        let person = if event.anonymous_id.is_some() {
            &mut web
        } else {
            &mut caller
        };
        person.apply(computed, seq as i64, event);
    }
    (web, caller)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::profile::default_computed_traits;
    use crate::segment::{IntakeContext, normalise};

    fn events(messages: &[serde_json::Value], source: &str) -> Vec<Event> {
        let ctx = IntakeContext::new("2025-03-01T00:00:00Z".parse().unwrap(), source);
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                normalise(m.as_object().unwrap().clone(), &ctx, || format!("m{i}")).unwrap()
            })
            .collect()
    }

    /// Two people's histories, interleaved in the log: the web visitor `a` and the
    /// caller `u`, who turn out to be the same person.
    fn history() -> Vec<Event> {
        let track = |who: &str, name: &str, at: &str, props: serde_json::Value, channel: &str| {
            let key = if who == "a" { "anonymousId" } else { "userId" };
            json!({"type": "track", key: who, "event": name, "timestamp": at,
                "properties": props, "context": {"channel": channel}})
        };
        events(
            &[
                json!({"type": "identify", "userId": "u", "timestamp": "2025-02-01T10:00:00Z",
                    "traits": {"city": "Roma", "firstName": "Giulia"}}),
                track(
                    "a",
                    "Order Completed",
                    "2025-02-20T10:00:00Z",
                    json!({"revenue": 30.5}),
                    "web",
                ),
                track(
                    "u",
                    "Case Opened",
                    "2025-02-21T09:00:00Z",
                    json!({"case_id": "C-1", "subject": "outage"}),
                    "phone",
                ),
                json!({"type": "identify", "anonymousId": "a", "timestamp": "2025-02-22T10:00:00Z",
                    "traits": {"city": "Milano"}}),
                track(
                    "a",
                    "Consent Given",
                    "2025-02-22T11:00:00Z",
                    json!({"purpose": "promotional"}),
                    "web",
                ),
                track(
                    "u",
                    "Consent Withdrawn",
                    "2025-02-10T11:00:00Z",
                    json!({"purpose": "promotional"}),
                    "phone",
                ),
                track(
                    "a",
                    "Case Updated",
                    "2025-02-21T18:00:00Z",
                    json!({"case_id": "C-1", "note": "technician"}),
                    "email",
                ),
                track(
                    "u",
                    "Email Opened",
                    "2025-02-23T20:00:00Z",
                    json!({}),
                    "email",
                ),
                track(
                    "a",
                    "Order Completed",
                    "2024-01-01T10:00:00Z",
                    json!({"revenue": 10}),
                    "store",
                ),
            ],
            "test",
        )
    }

    #[test]
    fn merging_two_states_equals_folding_their_events_together() {
        let computed = default_computed_traits();
        let now: Timestamp = "2025-03-01T00:00:00Z".parse().unwrap();
        let all = history();
        let together = ProfileState::fold(&all, &computed);
        let (mut web, caller) = web_and_caller(&all, &computed);
        // Merged either way round, the facts are those of the whole history.
        let mut merged = caller.clone();
        merged.merge(web.clone());
        assert_eq!(merged.facts(&computed, now), together.facts(&computed, now));
        web.merge(caller);
        let facts = web.facts(&computed, now);
        assert_eq!(facts, together.facts(&computed, now));

        assert_eq!(facts.traits["city"], "Milano", "the latest said, by time");
        assert!(
            facts.consents_to("promotional", "email"),
            "given after withdrawn"
        );
        assert_eq!(facts.open_cases.len(), 1);
        assert_eq!(facts.open_cases[0].channels, ["phone", "email"]);
        assert_eq!(facts.computed_traits["orders_90d"], 1);
        assert_eq!(facts.computed_traits["lifetime_value"], json!(40.5));
        assert_eq!(facts.lifecycle_stage, LifecycleStage::Customer);
        assert_eq!(facts.engagement["email"].messages().opened, 1);
    }

    #[test]
    fn segment_membership_is_the_latest_recorded_change_from_the_platform_only() {
        let computed = default_computed_traits();
        let change = |name: &str, at: &str| {
            json!({"type": "track", "userId": "u", "event": name, "timestamp": at,
                "properties": {"segment": "vip"}})
        };
        let recorded = events(
            &[
                change(SEGMENT_ENTERED, "2025-02-01T00:00:00Z"),
                change(SEGMENT_EXITED, "2025-02-03T00:00:00Z"),
                change(SEGMENT_ENTERED, "2025-02-02T00:00:00Z"),
            ],
            SEGMENT_SOURCE,
        );
        let state = ProfileState::fold(&recorded, &computed);
        assert!(!state.in_segment("vip"), "the exit is the latest by time");
        assert_eq!(state.last_seen(), None, "membership is not activity");
        let claimed = events(&[change(SEGMENT_ENTERED, "2025-02-05T00:00:00Z")], "api");
        let mut state = state;
        state.apply(&computed, 10, &claimed[0]);
        assert!(
            !state.in_segment("vip"),
            "a sender cannot claim a membership"
        );
    }
}
