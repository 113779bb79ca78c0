//! Cases: customer problems that span channels, derived from `Case Opened`, `Case
//! Updated` and `Case Resolved` events that carry a `case_id`.

use compact_str::CompactString;

use crate::log_time::LogTime;
use crate::name::Name;
use crate::small_map::{SmallMap, extend_exact, push_exact};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::event::{Event, EventType, scalar_text};

/// Whether a case still needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    Open,
    Resolved,
}

/// One contact about a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseTouch {
    pub at: Timestamp,
    pub event: String,
    pub touchpoint: Option<String>,
    pub channel: Option<String>,
    /// The event's `properties.note`, when there is one.
    pub note: Option<String>,
}

/// A case and its whole cross-channel history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub id: String,
    pub status: CaseStatus,
    pub subject: Option<String>,
    pub category: Option<String>,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub touches: Vec<CaseTouch>,
    /// Distinct channels it was touched on, in order of first touch.
    pub channels: Vec<String>,
}

impl Case {
    /// Contacts about the case, all channels together.
    pub fn contacts(&self) -> usize {
        self.touches.len()
    }
}

/// One event about a case, as kept until the case is folded: 48 bytes (what it does to
/// the case is read from its event's name).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct CaseStep {
    at: LogTime,
    seq: i64,
    event: Name,
    touchpoint: Option<Name>,
    channel: Option<Name>,
    /// Boxed, and only when the event says any of it: most steps say none.
    text: Option<Box<CaseText>>,
}

/// What a case event says in words.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct CaseText {
    subject: Option<String>,
    category: Option<String>,
    note: Option<String>,
}

/// Every event about each of a person's cases, by case id (up to 24 bytes of it held
/// inline): what a profile keeps as its events arrive (in any order), folded into cases
/// when read, so a late event lands in its place by time.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaseLog(SmallMap<CompactString, Box<[CaseStep]>>);

impl CaseLog {
    /// Takes in the event at log position `seq`, if it is about a case.
    pub fn apply(&mut self, seq: i64, event: &Event) {
        if event.event_type != EventType::Track {
            return;
        }
        let Some(name) = event.name.as_deref() else {
            return;
        };
        let (Some(_), Some(id)) = (case_event(name), case_id(event)) else {
            return;
        };
        let text = |key: &str| {
            event
                .get(&format!("properties.{key}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let said = CaseText {
            subject: text("subject"),
            category: text("category"),
            note: text("note"),
        };
        let said = (said.subject.is_some() || said.category.is_some() || said.note.is_some())
            .then(|| Box::new(said));
        push_exact(
            self.0.or_default(id.into()),
            CaseStep {
                at: LogTime::of(event.timestamp),
                seq,
                event: Name::from(name),
                touchpoint: event.touchpoint.as_deref().map(Name::from),
                channel: event.channel.as_deref().map(Name::from),
                text: said,
            },
        );
    }

    /// Adds another profile's cases (a merge).
    pub fn merge(&mut self, other: CaseLog) {
        for (id, steps) in other.0.into_pairs() {
            extend_exact(self.0.or_default(id), steps);
        }
    }

    /// The cases, oldest first. A case updated or resolved without an `opened` event is
    /// taken as opened at its first event; a case resolved and then touched again is
    /// open again.
    pub fn cases(&self) -> Vec<Case> {
        let mut cases: Vec<(LogTime, i64, Case)> = self
            .0
            .iter()
            .filter_map(|(id, steps)| {
                let mut steps: Vec<&CaseStep> = steps.iter().collect();
                steps.sort_by_key(|s| (s.at, s.seq));
                let first = steps.first()?;
                let mut case = Case {
                    id: id.to_string(),
                    status: CaseStatus::Open,
                    subject: None,
                    category: None,
                    opened_at: first.at.timestamp(),
                    resolved_at: None,
                    touches: Vec::with_capacity(steps.len()),
                    channels: Vec::new(),
                };
                for step in &steps {
                    case.status = match case_event(&step.event) {
                        Some(CaseEvent::Opened) => CaseStatus::Open,
                        Some(CaseEvent::Resolved) => CaseStatus::Resolved,
                        // An update keeps the status (open, for a case new to us).
                        Some(CaseEvent::Updated) | None => case.status,
                    };
                    let said = step.text.as_deref();
                    let subject = said.and_then(|t| t.subject.clone());
                    let category = said.and_then(|t| t.category.clone());
                    case.subject = subject.or(case.subject.take());
                    case.category = category.or(case.category.take());
                    case.resolved_at =
                        (case.status == CaseStatus::Resolved).then_some(step.at.timestamp());
                    if let Some(channel) = &step.channel
                        && !case.channels.iter().any(|c| c == channel.as_str())
                    {
                        case.channels.push(channel.to_string());
                    }
                    case.touches.push(CaseTouch {
                        at: step.at.timestamp(),
                        event: step.event.to_string(),
                        touchpoint: step.touchpoint.as_deref().map(str::to_string),
                        channel: step.channel.as_deref().map(str::to_string),
                        note: said.and_then(|t| t.note.clone()),
                    });
                }
                Some((first.at, first.seq, case))
            })
            .collect();
        cases.sort_by_key(|(at, seq, _)| (*at, *seq));
        cases.into_iter().map(|(_, _, case)| case).collect()
    }
}

/// The person's cases, oldest first, from events in log order (see [`CaseLog::cases`]).
pub fn fold_cases<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Case> {
    let mut log = CaseLog::default();
    for (seq, event) in events.into_iter().enumerate() {
        log.apply(seq as i64, event);
    }
    log.cases()
}

/// What a track event does to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CaseEvent {
    Opened,
    Updated,
    Resolved,
}

/// Whether a track event's name is a case event (`Case Opened`, `Ticket Closed`, ...).
pub fn case_event(name: &str) -> Option<CaseEvent> {
    match name.to_ascii_lowercase().as_str() {
        "case opened" | "case created" | "ticket opened" => Some(CaseEvent::Opened),
        "case updated" | "ticket updated" => Some(CaseEvent::Updated),
        "case resolved" | "case closed" | "ticket resolved" | "ticket closed" => {
            Some(CaseEvent::Resolved)
        }
        _ => None,
    }
}

/// The case an event is about (`properties.case_id`).
pub fn case_id(event: &Event) -> Option<String> {
    event.get("properties.case_id").and_then(scalar_text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    fn event(message: serde_json::Value) -> Event {
        let ctx = IntakeContext::new("2024-05-10T00:00:00Z".parse().unwrap(), "test");
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    fn track(
        name: &str,
        at: &str,
        touchpoint: &str,
        channel: &str,
        props: serde_json::Value,
    ) -> Event {
        event(
            json!({"type": "track", "userId": "u", "event": name, "timestamp": at,
            "properties": props, "context": {"touchpoint": touchpoint, "channel": channel}}),
        )
    }

    #[test]
    fn a_case_opened_by_phone_followed_by_email_and_closed_in_store() {
        let events = [
            track(
                "Case Opened",
                "2024-05-01T09:00:00Z",
                "call-center-milan",
                "phone",
                json!({"case_id": "C-1", "subject": "Internet outage", "category": "network"}),
            ),
            track(
                "Case Updated",
                "2024-05-01T18:00:00Z",
                "service-email",
                "email",
                json!({"case_id": "C-1", "note": "technician booked"}),
            ),
            track(
                "Order Completed",
                "2024-05-02T10:00:00Z",
                "web-shop",
                "web",
                json!({}),
            ),
            track(
                "Case Resolved",
                "2024-05-03T11:00:00Z",
                "store-rome-01",
                "store",
                json!({"case_id": "C-1"}),
            ),
            track(
                "Case Opened",
                "2024-05-04T08:00:00Z",
                "live-chat",
                "chat",
                json!({"case_id": "C-2", "subject": "Bill too high"}),
            ),
        ];
        let cases = fold_cases(&events);
        assert_eq!(cases.len(), 2);
        let outage = &cases[0];
        assert_eq!(outage.status, CaseStatus::Resolved);
        assert_eq!(outage.subject.as_deref(), Some("Internet outage"));
        assert_eq!(outage.channels, vec!["phone", "email", "store"]);
        assert_eq!(outage.contacts(), 3);
        assert_eq!(outage.touches[1].note.as_deref(), Some("technician booked"));
        assert_eq!(
            outage.resolved_at.unwrap().to_string(),
            "2024-05-03T11:00:00Z"
        );
        assert_eq!(cases[1].status, CaseStatus::Open);
    }

    #[test]
    fn events_arriving_out_of_order_are_folded_by_time() {
        let events = [
            track(
                "Case Resolved",
                "2024-05-03T11:00:00Z",
                "store-rome-01",
                "store",
                json!({"case_id": "C-1"}),
            ),
            track(
                "Case Opened",
                "2024-05-01T09:00:00Z",
                "call-center-milan",
                "phone",
                json!({"case_id": "C-1"}),
            ),
        ];
        let cases = fold_cases(&events);
        assert_eq!(cases[0].status, CaseStatus::Resolved);
        assert_eq!(cases[0].opened_at.to_string(), "2024-05-01T09:00:00Z");
    }
}
