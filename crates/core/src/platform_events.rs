//! The platform's own events about people: one vocabulary of their names, sources and
//! shapes, for every writer (the consent API, unsubscribe links, delivery, segments,
//! journeys) and every reader (consents, engagement, segment membership), so a writer
//! can never drift from its reader.
//!
//! Each builder answers a Segment `track` (or `identify`) message without identity; the
//! one path that records it about a person adds their user or anonymous id.

use serde_json::{Map, Value, json};

use crate::identity::ProfileId;

/// A consent given for a purpose, on a channel or every channel.
pub const CONSENT_GIVEN: &str = "Consent Given";
/// A consent withdrawn for a purpose, on a channel or every channel.
pub const CONSENT_WITHDRAWN: &str = "Consent Withdrawn";
/// A person entered a segment (source [`SEGMENT_SOURCE`]).
pub const SEGMENT_ENTERED: &str = "Segment Entered";
/// A person left a segment (source [`SEGMENT_SOURCE`]).
pub const SEGMENT_EXITED: &str = "Segment Exited";
/// A journey told a department about a person.
pub const DEPARTMENT_NOTIFIED: &str = "Department Notified";
/// A note an agent adds to a person's case (read by `profile::cases` like any
/// `Case Updated`).
pub const CASE_UPDATED: &str = "Case Updated";

/// The source of segment membership changes: only the platform's own count.
pub const SEGMENT_SOURCE: &str = "segments";
/// The source of journeys' profile updates and notifications.
pub const JOURNEY_SOURCE: &str = "journeys";
/// The source of what delivery learns: outcomes, reports, replies, opens and clicks.
pub const DELIVERY_SOURCE: &str = "delivery";
/// The source of withdrawals made through an e-mail's unsubscribe link.
pub const UNSUBSCRIBE_SOURCE: &str = "unsubscribe";
/// The source of statements recorded through the admin API.
pub const API_SOURCE: &str = "api";

/// What happened to a message sent to a person, as their event says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageOutcome {
    Sent,
    Delivered,
    Read,
    Opened,
    Clicked,
    Replied,
    Failed,
    Bounced,
}

impl MessageOutcome {
    pub const ALL: [MessageOutcome; 8] = [
        MessageOutcome::Sent,
        MessageOutcome::Delivered,
        MessageOutcome::Read,
        MessageOutcome::Opened,
        MessageOutcome::Clicked,
        MessageOutcome::Replied,
        MessageOutcome::Failed,
        MessageOutcome::Bounced,
    ];

    /// The event's name: `Message Sent`, `Message Opened`, ...
    pub fn event_name(self) -> &'static str {
        match self {
            MessageOutcome::Sent => "Message Sent",
            MessageOutcome::Delivered => "Message Delivered",
            MessageOutcome::Read => "Message Read",
            MessageOutcome::Opened => "Message Opened",
            MessageOutcome::Clicked => "Message Clicked",
            MessageOutcome::Replied => "Message Replied",
            MessageOutcome::Failed => "Message Failed",
            MessageOutcome::Bounced => "Message Bounced",
        }
    }

    /// The outcome's verb, as the outbox records a delivery report: `sent`, `read`, ...
    pub fn verb(self) -> &'static str {
        match self {
            MessageOutcome::Sent => "sent",
            MessageOutcome::Delivered => "delivered",
            MessageOutcome::Read => "read",
            MessageOutcome::Opened => "opened",
            MessageOutcome::Clicked => "clicked",
            MessageOutcome::Replied => "replied",
            MessageOutcome::Failed => "failed",
            MessageOutcome::Bounced => "bounced",
        }
    }

    /// The outcome a verb names, from our events and other tools' alike (`Email
    /// Opened`, `SMS Undelivered`).
    pub fn from_verb(verb: &str) -> Option<MessageOutcome> {
        // Compared in place: every event's name is tried, and most are not messages.
        let is = |word: &str| verb.eq_ignore_ascii_case(word);
        Some(if is("undelivered") {
            MessageOutcome::Failed
        } else {
            *MessageOutcome::ALL.iter().find(|o| is(o.verb()))?
        })
    }
}

fn track(name: &str, properties: Value) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("type".into(), "track".into());
    message.insert("event".into(), name.into());
    message.insert("properties".into(), properties);
    message
}

/// A consent statement: `purpose` on `channel` (every channel when `None`), given or
/// withdrawn; `extra` properties (where it was said, the keyword) are added.
pub fn consent(
    purpose: &str,
    channel: Option<&str>,
    granted: bool,
    extra: Map<String, Value>,
) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("purpose".into(), purpose.into());
    properties.insert("channel".into(), channel.into());
    properties.extend(extra);
    let name = if granted {
        CONSENT_GIVEN
    } else {
        CONSENT_WITHDRAWN
    };
    track(name, Value::Object(properties))
}

/// An agent's note on case `case_id`.
pub fn case_note(case_id: &str, note: &str) -> Map<String, Value> {
    track(CASE_UPDATED, json!({"case_id": case_id, "note": note}))
}

/// A segment membership change (recorded from [`SEGMENT_SOURCE`]).
pub fn segment_change(segment: &str, entered: bool) -> Map<String, Value> {
    let name = if entered {
        SEGMENT_ENTERED
    } else {
        SEGMENT_EXITED
    };
    track(name, json!({"segment": segment}))
}

/// What happened to a message; `properties` say which (channel, message, outbox id...).
pub fn message_outcome(
    outcome: MessageOutcome,
    properties: Map<String, Value>,
) -> Map<String, Value> {
    track(outcome.event_name(), Value::Object(properties))
}

/// A journey's notification of a department about a person.
pub fn department_notified(
    department: &str,
    text: &str,
    journey: &str,
    profile_id: ProfileId,
) -> Map<String, Value> {
    track(
        DEPARTMENT_NOTIFIED,
        json!({"department": department, "message": text, "journey": journey,
            "profile_id": profile_id}),
    )
}

/// A journey's update of the person's traits.
pub fn profile_update(traits: Map<String, Value>) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("type".into(), "identify".into());
    message.insert("traits".into(), Value::Object(traits));
    message
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::event::Event;
    use crate::profile::{
        ProfileState, consent_statement, message_step, segment_change as read_change,
    };
    use crate::segment::{IntakeContext, normalise};

    /// A built message as the intake stores it, from `source`.
    fn stored(mut message: Map<String, Value>, source: &str) -> Event {
        message.insert("userId".into(), "u".into());
        let ctx = IntakeContext::new(Timestamp::UNIX_EPOCH, source);
        normalise(message, &ctx, || "m".into()).unwrap()
    }

    #[test]
    fn every_consent_written_is_read_back_as_written() {
        for granted in [true, false] {
            for channel in [None, Some("email")] {
                let event = stored(
                    consent("promotional", channel, granted, Map::new()),
                    API_SOURCE,
                );
                let (key, read) = consent_statement(&event).unwrap();
                assert_eq!(read, granted);
                assert_eq!(key.purpose, "promotional");
                assert_eq!(key.channel.as_deref(), channel);
            }
        }
    }

    #[test]
    fn every_message_outcome_written_is_read_back_as_its_step() {
        for outcome in MessageOutcome::ALL {
            let mut properties = Map::new();
            properties.insert("channel".into(), "sms".into());
            let event = stored(message_outcome(outcome, properties), DELIVERY_SOURCE);
            let (channel, step) = message_step(&event).unwrap();
            assert_eq!(channel, "sms", "{outcome:?}");
            assert_eq!(
                MessageOutcome::from_verb(
                    event.name.as_deref().unwrap().rsplit(' ').next().unwrap()
                ),
                Some(outcome)
            );
            assert!(!step.is_empty());
        }
    }

    #[test]
    fn a_segment_change_counts_only_from_the_segment_source() {
        for entered in [true, false] {
            let ours = stored(segment_change("vip", entered), SEGMENT_SOURCE);
            assert_eq!(read_change(&ours), Some(("vip", entered)));
            let forged = stored(segment_change("vip", entered), "web");
            assert_eq!(read_change(&forged), None);
        }
        let mut state = ProfileState::default();
        state.apply(&[], 1, &stored(segment_change("vip", true), SEGMENT_SOURCE));
        assert!(state.in_segment("vip"));
    }
}
