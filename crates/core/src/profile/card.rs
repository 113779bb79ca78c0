//! The context card: what an agent needs before speaking to a customer, so the
//! customer never has to repeat themself.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;

use super::cases::Case;
use super::computed::ComputedTrait;
use super::consent::ConsentLine;
use super::engagement::message_step;
use super::state::{LifecycleStage, ProfileFacts, ProfileState, segment_change};
use crate::event::{Event, EventType};
use crate::identifier::Identifier;

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
    /// Journeys the person is in (none until journeys are defined).
    pub active_journeys: Vec<Value>,
    pub next_best_action: NextBestAction,
}

const SHOWN: usize = 10;

/// Builds the card from the person's events, in log order, at `now`.
pub fn context_card(
    profile_id: &str,
    identifiers: Vec<Identifier>,
    events: &[&Event],
    computed: &[ComputedTrait],
    now: Timestamp,
) -> ContextCard {
    let facts = ProfileState::fold(events.iter().copied(), computed).facts(computed, now);
    let mut by_time: Vec<&Event> = events
        .iter()
        .filter(|e| segment_change(e).is_none())
        .copied()
        .collect();
    by_time.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    let is_message = |e: &Event| message_step(e).is_some();
    let line = |e: &&Event| Interaction {
        at: e.timestamp,
        touchpoint: e.touchpoint.clone(),
        channel: e.channel.clone(),
        kind: e.event_type.as_str().to_string(),
        name: e.name.clone(),
    };
    let last_interactions: Vec<Interaction> = by_time
        .iter()
        .filter(|e| !is_message(e) && e.event_type != EventType::Identify)
        .take(SHOWN)
        .map(line)
        .collect();
    let recent_messages: Vec<Interaction> = by_time
        .iter()
        .filter(|e| is_message(e))
        .take(SHOWN)
        .map(line)
        .collect();

    let name = super::traits::display_name(|k| facts.traits.get(k));
    let next_best_action = next_best_action(
        &facts.open_cases,
        &by_time,
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
    by_time: &[&Event],
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
    let month_ago = now - SignedDuration::from_hours(24 * 30);
    let detractor = by_time
        .iter()
        .take_while(|e| e.timestamp >= month_ago)
        .find(|e| {
            let score = |key: &str| e.get(&format!("properties.{key}")).and_then(Value::as_f64);
            score("nps").is_some_and(|n| n <= 6.0) || score("csat").is_some_and(|c| c <= 2.0)
        });
    if let Some(answer) = detractor {
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
    let fortnight = now - SignedDuration::from_hours(24 * 14);
    let browsing = by_time
        .iter()
        .take_while(|e| e.timestamp >= fortnight)
        .filter(|e| {
            matches!(e.event_type, EventType::Page | EventType::Screen)
                || e.name.as_deref().is_some_and(|n| n.contains("Viewed"))
        })
        .count();
    if stage == LifecycleStage::Prospect && browsing >= 2 {
        return NextBestAction {
            action: "offer_help",
            summary: format!(
                "Offer help choosing: {browsing} product or pricing views in 14 days, no purchase yet"
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
    use crate::profile::computed::default_computed_traits;
    use crate::segment::{IntakeContext, normalise};

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
        let refs: Vec<&Event> = events.iter().collect();
        let card = context_card("p-1", Vec::new(), &refs, &default_computed_traits(), now);
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
        let refs: Vec<&Event> = detractor.iter().collect();
        let card = context_card("p-1", Vec::new(), &refs, &[], now);
        assert_eq!(card.next_best_action.action, "recover_detractor");
        let quiet = [track(
            "Order Completed",
            "2024-05-02T00:00:00Z",
            "web-shop",
            json!({}),
        )];
        let refs: Vec<&Event> = quiet.iter().collect();
        assert_eq!(
            context_card("p-1", Vec::new(), &refs, &[], now)
                .next_best_action
                .action,
            "ask_consent"
        );
    }
}
