//! The context card: what an agent needs before speaking to a customer, so the
//! customer never has to repeat themself.

use std::cmp::Reverse;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::cases::Case;
use super::consent::ConsentLine;
use super::recent::{self, Line, SHOWN, UNHAPPY_DAYS, days_before, line_of};
use super::state::{LifecycleStage, ProfileFacts};
use crate::event::Event;
use crate::identifier::Identifier;
use crate::journey::JourneyPosition;

/// A contact on any channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interaction {
    pub at: Timestamp,
    pub touchpoint: Option<String>,
    pub channel: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
}

/// What to do next with this person, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextBestAction {
    /// A stable code: `resolve_case`, `recover_detractor`, `ask_consent`, `offer_help`,
    /// `win_back`, `none`.
    pub action: &'static str,
    pub summary: String,
    pub reason: String,
}

/// The context card of one person: the facts the rules decide on, and what an agent
/// reads before speaking to them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextCard {
    pub profile_id: String,
    pub name: Option<String>,
    pub identifiers: Vec<Identifier>,
    #[serde(flatten)]
    pub facts: ProfileFacts,
    pub last_interactions: Vec<Interaction>,
    pub recent_messages: Vec<Interaction>,
    /// The journeys the person is in, with what comes next: the journey runs' part,
    /// filled by whoever reads them (the platform); empty as the profile alone builds it.
    pub active_journeys: Vec<JourneyPosition>,
    pub next_best_action: NextBestAction,
}

/// Builds the card at `now` from the person's facts at `now`, their events the card
/// shows (in log order), and how many product or pricing views they made in the last
/// [`BROWSING_DAYS`](recent::BROWSING_DAYS) days.
///
/// `events` need only be those [`Recent::card_events`](super::Recent::card_events)
/// names, read back from the log: any others rank below them. `browsing` is
/// [`Recent::browsing_at`](super::Recent::browsing_at), or [`recent::browsing_at`] over
/// all the person's events when the held times cannot tell.
pub fn context_card(
    profile_id: &str,
    identifiers: Vec<Identifier>,
    facts: ProfileFacts,
    events: &[&Event],
    browsing: usize,
    now: Timestamp,
) -> ContextCard {
    let mut by_time: Vec<&Event> = events.to_vec();
    by_time.sort_by_key(|e| Reverse(e.timestamp));
    let shown = |list: Line| -> Vec<Interaction> {
        by_time
            .iter()
            .filter(|e| line_of(e) == Some(list))
            .take(SHOWN)
            .map(|e| Interaction {
                at: e.timestamp,
                touchpoint: e.touchpoint.clone(),
                channel: e.channel.clone(),
                kind: e.event_type.as_str().to_string(),
                name: e.name.clone(),
            })
            .collect()
    };
    let last_interactions = shown(Line::Interaction);
    let recent_messages = shown(Line::Message);
    let unhappy = by_time
        .iter()
        .find(|e| recent::is_unhappy(e))
        .filter(|e| e.timestamp >= days_before(now, UNHAPPY_DAYS))
        .copied();

    let name = super::traits::display_name(|k| facts.traits.get(k)?.as_str());
    let next_best_action = next_best_action(
        &facts.open_cases,
        unhappy,
        browsing,
        &facts.consents,
        facts.lifecycle_stage,
        now,
    );
    ContextCard {
        profile_id: profile_id.to_string(),
        name,
        identifiers,
        facts,
        last_interactions,
        recent_messages,
        active_journeys: Vec::new(),
        next_best_action,
    }
}

fn next_best_action(
    open_cases: &[Case],
    unhappy: Option<&Event>,
    browsing: usize,
    consents: &[ConsentLine],
    stage: LifecycleStage,
    now: Timestamp,
) -> NextBestAction {
    if let Some(case) = open_cases.iter().min_by_key(|c| c.opened_at) {
        let hours = now.duration_since(case.opened_at).as_hours();
        return NextBestAction {
            action: "resolve_case",
            summary: format!(
                "Resolve case {}{}: open for {} h, {} contacts on {}; do not ask again what they already told us",
                case.id,
                case.subject
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default(),
                hours,
                case.contacts(),
                case.channels.join(", ")
            ),
            reason: "an open problem comes before anything else; no promotion while a case is open"
                .into(),
        };
    }
    if let Some(answer) = unhappy {
        return NextBestAction {
            action: "recover_detractor",
            summary: format!(
                "Call back: an unhappy survey answer on {} about {}",
                answer.timestamp,
                answer
                    .get("properties.about_touchpoint")
                    .and_then(Value::as_str)
                    .or(answer.touchpoint.as_deref())
                    .unwrap_or("a recent contact")
            ),
            reason: "NPS 6 or less, or CSAT 2 or less, in the last 30 days".into(),
        };
    }
    if !consents
        .iter()
        .any(|c| c.purpose == "promotional" && c.granted)
        && stage != LifecycleStage::Lapsed
    {
        return NextBestAction {
            action: "ask_consent",
            summary: "Ask whether they want to hear about offers, and on which channel".into(),
            reason: "no promotional consent on any channel".into(),
        };
    }
    if stage == LifecycleStage::Prospect && browsing >= 2 {
        let views = if browsing >= recent::VIEWS_COUNTED {
            format!("{browsing} or more")
        } else {
            browsing.to_string()
        };
        return NextBestAction {
            action: "offer_help",
            summary: format!(
                "Offer help choosing: {views} product or pricing views in 14 days, no purchase yet"
            ),
            reason: "an interested prospect".into(),
        };
    }
    if stage == LifecycleStage::Lapsed {
        return NextBestAction {
            action: "win_back",
            summary: "Welcome them back; ask what changed".into(),
            reason: "not seen for 180 days".into(),
        };
    }
    NextBestAction {
        action: "none",
        summary: "Nothing pressing: answer their question".into(),
        reason: "no open case, no unhappy answer, consent in place".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::profile::computed::{ComputedTrait, default_computed_traits};
    use crate::profile::recent::browsing_at;
    use crate::profile::state::{ProfileState, web_and_caller};
    use crate::segment::{IntakeContext, normalise};

    /// The card as the identity projection builds it: from the person's held state and
    /// only the events it names, their positions here being their log positions.
    fn card(events: &[Event], computed: &[ComputedTrait], now: Timestamp) -> ContextCard {
        held_card(&ProfileState::fold(events, computed), events, computed, now)
    }

    fn held_card(
        state: &ProfileState,
        events: &[Event],
        computed: &[ComputedTrait],
        now: Timestamp,
    ) -> ContextCard {
        let named: Vec<&Event> = (state.recent().card_events().iter())
            .map(|&seq| &events[seq as usize])
            .collect();
        let browsing =
            (state.recent().browsing_at(now)).unwrap_or_else(|| browsing_at(events, now));
        context_card(
            "p-1",
            Vec::new(),
            state.facts(computed, now),
            &named,
            browsing,
            now,
        )
    }

    /// The card from every one of the person's events, as it was built before the
    /// profiles held what it reads.
    fn card_from_every_event(
        events: &[Event],
        computed: &[ComputedTrait],
        now: Timestamp,
    ) -> ContextCard {
        let every: Vec<&Event> = events.iter().collect();
        let facts = ProfileState::fold(events, computed).facts(computed, now);
        context_card(
            "p-1",
            Vec::new(),
            facts,
            &every,
            browsing_at(events, now),
            now,
        )
    }

    fn ev(message: serde_json::Value) -> Event {
        let ctx = IntakeContext::new("2024-05-10T00:00:00Z".parse().unwrap(), "test");
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    fn track(name: &str, at: &str, touchpoint: &str, props: serde_json::Value) -> Event {
        ev(
            json!({"type": "track", "userId": "u", "event": name, "timestamp": at, "properties": props,
            "context": {"touchpoint": touchpoint}}),
        )
    }

    #[test]
    fn the_outage_story_card_puts_the_open_case_first() {
        let now: Timestamp = "2024-05-03T09:00:00Z".parse().unwrap();
        let events = [
            ev(
                json!({"type": "identify", "userId": "u", "timestamp": "2024-01-01T00:00:00Z",
                "traits": {"firstName": "Giulia", "lastName": "Rossi"}}),
            ),
            track(
                "Consent Given",
                "2024-01-01T00:00:00Z",
                "web-shop",
                json!({"purpose": "promotional"}),
            ),
            track(
                "Order Completed",
                "2024-01-02T00:00:00Z",
                "web-shop",
                json!({"revenue": 29.9}),
            ),
            track(
                "Line Down",
                "2024-05-01T08:00:00Z",
                "smart-router",
                json!({}),
            ),
            track(
                "Call Received",
                "2024-05-01T08:30:00Z",
                "call-center-milan",
                json!({}),
            ),
            track(
                "Case Opened",
                "2024-05-01T08:36:00Z",
                "call-center-milan",
                json!({"case_id": "C-9", "subject": "Internet outage"}),
            ),
            track(
                "Email Sent",
                "2024-05-02T10:00:00Z",
                "newsletter",
                json!({"campaign": "tv-sport"}),
            ),
        ];
        let card = card(&events, &default_computed_traits(), now);
        assert_eq!(card.name.as_deref(), Some("Giulia Rossi"));
        assert_eq!(card.facts.lifecycle_stage, LifecycleStage::Customer);
        assert_eq!(card.facts.open_cases.len(), 1);
        assert_eq!(card.next_best_action.action, "resolve_case");
        assert!(
            card.next_best_action.summary.contains("Internet outage"),
            "{}",
            card.next_best_action.summary
        );
        assert!(card.next_best_action.summary.contains("open for 48 h"));
        assert_eq!(
            card.last_interactions[0].name.as_deref(),
            Some("Case Opened")
        );
        assert_eq!(card.recent_messages[0].name.as_deref(), Some("Email Sent"));
        assert_eq!(card.facts.consents[0].purpose, "promotional");
        assert_eq!(card.facts.computed_traits["lifetime_value"], json!(29.9));
    }

    #[test]
    fn without_a_case_an_unhappy_answer_then_missing_consent_drive_the_action() {
        let now: Timestamp = "2024-05-03T09:00:00Z".parse().unwrap();
        let detractor = [track(
            "Survey Answered",
            "2024-05-02T00:00:00Z",
            "nps-survey",
            json!({"nps": 3}),
        )];
        let answered = card(&detractor, &[], now);
        assert_eq!(answered.next_best_action.action, "recover_detractor");
        let quiet = [track(
            "Order Completed",
            "2024-05-02T00:00:00Z",
            "web-shop",
            json!({}),
        )];
        assert_eq!(
            card(&quiet, &[], now).next_best_action.action,
            "ask_consent"
        );
    }

    #[test]
    fn late_events_take_their_place_by_time_in_the_last_interactions() {
        let now: Timestamp = "2024-05-30T12:00:00Z".parse().unwrap();
        let day = |d: u32| format!("2024-05-{d:02}T10:00:00Z");
        // Twelve calls, one a day, arriving in order...
        let mut events: Vec<Event> = (1..=12)
            .map(|d| {
                track(
                    &format!("Call {d}"),
                    &day(d),
                    "call-center-milan",
                    json!({}),
                )
            })
            .collect();
        // ...then, late, a visit from before all of them, a chat from between the
        // newest two, and a message sent before them.
        events.push(track("Store Visit", &day(1), "store-rome-01", json!({})));
        events.push(track(
            "Chat Started",
            "2024-05-11T22:00:00Z",
            "live-chat",
            json!({}),
        ));
        events.push(track("Email Sent", &day(3), "newsletter", json!({})));
        let shown = card(&events, &[], now);
        let names: Vec<&str> = (shown.last_interactions.iter())
            .map(|i| i.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            [
                "Call 12",
                "Chat Started",
                "Call 11",
                "Call 10",
                "Call 9",
                "Call 8",
                "Call 7",
                "Call 6",
                "Call 5",
                "Call 4"
            ],
            "newest first by when they happened, not by when they arrived"
        );
        assert_eq!(shown.recent_messages.len(), 1);
        assert_eq!(shown, card_from_every_event(&events, &[], now));
    }

    /// A person's generated history, out of time order: calls, messages, identify
    /// calls, page and product views, survey answers, consents, orders and cases at
    /// random times (some the same, some after `now`), in random log order.
    fn scrambled_history(seed: u64, len: usize) -> Vec<Event> {
        let mut state = seed;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        (0..len)
            .map(|_| {
                // Within 60 days before 2024-06-01, on whole hours so that times tie.
                let at = format!(
                    "2024-{:02}-{:02}T{:02}:00:00Z",
                    4 + next(2),
                    1 + next(30),
                    next(3)
                );
                let user = ["u", "a"][next(2) as usize];
                let key = if user == "u" { "userId" } else { "anonymousId" };
                let message = match next(12) {
                    0 => json!({"type": "page", key: user, "name": "Pricing", "timestamp": at}),
                    1 => json!({"type": "track", key: user, "event": "Product Viewed", "timestamp": at}),
                    2 => json!({"type": "identify", key: user, "timestamp": at,
                        "traits": {"name": format!("N{}", next(5))}}),
                    3 => json!({"type": "track", key: user, "event": "Email Sent", "timestamp": at}),
                    4 if seed.is_multiple_of(2) => json!({"type": "track", key: user, "event": "Survey Answered",
                        "timestamp": at, "properties": {"nps": next(11)}}),
                    5 if !seed.is_multiple_of(3) => json!({"type": "track", key: user, "event": "Consent Given",
                        "timestamp": at, "properties": {"purpose": "promotional"}}),
                    6 => json!({"type": "track", key: user, "event": "Order Completed",
                        "timestamp": at}),
                    7 if next(4) == 0 => json!({"type": "track", key: user, "event": "Case Opened",
                        "timestamp": at, "properties": {"case_id": "C-1"}}),
                    _ => json!({"type": "track", key: user, "event": format!("Call {}", next(4)),
                        "timestamp": at, "context": {"channel": "phone"}}),
                };
                ev(message)
            })
            .collect()
    }

    #[test]
    fn the_card_from_held_state_equals_the_card_from_every_event() {
        let computed = default_computed_traits();
        let nows = [
            "2024-03-01T00:00:00Z",
            "2024-04-20T00:00:00Z",
            "2024-05-15T01:00:00Z",
            "2024-06-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
        ];
        let (mut actions, mut counted_over_every_event) = (Vec::new(), 0);
        for seed in 1..40 {
            let events = scrambled_history(seed, 5 + seed as usize * 3);
            // The same history as two people's, merged.
            let (mut web, caller) = web_and_caller(&events, &computed);
            web.merge(caller);
            for now in nows {
                let now: Timestamp = now.parse().unwrap();
                let everything = card_from_every_event(&events, &computed, now);
                actions.push(everything.next_best_action.action);
                counted_over_every_event += usize::from(web.recent().browsing_at(now).is_none());
                assert_eq!(card(&events, &computed, now), everything, "seed {seed}");
                assert_eq!(
                    held_card(&web, &events, &computed, now),
                    everything,
                    "seed {seed}, merged"
                );
            }
        }
        for action in [
            "resolve_case",
            "recover_detractor",
            "ask_consent",
            "offer_help",
            "win_back",
            "none",
        ] {
            assert!(actions.contains(&action), "no history led to {action}");
        }
        assert!(
            counted_over_every_event > 0,
            "views dated after now: the held times cannot tell"
        );
    }
}
