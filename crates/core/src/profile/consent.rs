//! Consents: per purpose and channel, from `Consent Given` / `Consent Withdrawn` events.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::latest::{Latest, Stated};
use crate::event::Event;

/// A consent is given for a purpose (`service`, `promotional`, ...) on a channel, or on
/// every channel when `channel` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ConsentKey {
    pub purpose: String,
    pub channel: Option<String>,
}

/// The current state of one consent, and where it was said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consent {
    pub granted: bool,
    pub at: Timestamp,
    /// The touchpoint it was given or withdrawn at, or the source.
    pub source: String,
}

impl Stated for Consent {
    fn at(&self) -> Timestamp {
        self.at
    }
}

/// What one event says about a consent, if anything: the key and whether it is granted.
/// Events: `Consent Given` / `Consent Withdrawn` (or `Consent Updated` with
/// `properties.granted`), with `properties.purpose` and optionally `properties.channel`.
pub fn consent_statement(event: &Event) -> Option<(ConsentKey, bool)> {
    let name = event.name.as_deref()?;
    let granted = match name.to_ascii_lowercase().as_str() {
        "consent given" | "consent granted" | "subscribed" => true,
        "consent withdrawn" | "consent revoked" | "unsubscribed" => false,
        "consent updated" => match event.get("properties.granted") {
            Some(Value::Bool(granted)) => *granted,
            _ => return None,
        },
        _ => return None,
    };
    let purpose = event
        .get("properties.purpose")
        .and_then(Value::as_str)
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())?;
    let channel = event
        .get("properties.channel")
        .and_then(Value::as_str)
        .map(crate::channel::canonical_name);
    Some((ConsentKey { purpose, channel }, granted))
}

/// Current consents by purpose and channel, the latest statement by event time winning
/// (log order breaking ties): what a profile keeps as its events arrive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consents(Latest<ConsentKey, Consent>);

impl Consents {
    /// Takes in the event at log position `seq`, if it states a consent.
    pub fn apply(&mut self, seq: i64, event: &Event) {
        let Some((key, granted)) = consent_statement(event) else {
            return;
        };
        let consent = Consent {
            granted,
            at: event.timestamp,
            source: event
                .touchpoint
                .clone()
                .unwrap_or_else(|| event.source.clone()),
        };
        self.0.state(&key, consent, seq);
    }

    /// Adds another profile's consents (a merge): the latest statement of each wins.
    pub fn merge(&mut self, other: Consents) {
        self.0.merge(other.0);
    }

    /// Every consent, by purpose and channel.
    pub fn iter(&self) -> impl Iterator<Item = (&ConsentKey, &Consent)> {
        self.0.iter()
    }
}

/// Current consents from events in log order (see [`Consents`]).
pub fn fold_consents<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<ConsentKey, Consent> {
    let mut consents = Consents::default();
    for (seq, event) in events.into_iter().enumerate() {
        consents.apply(seq as i64, event);
    }
    consents.0.into_values().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn allows(consents: &BTreeMap<ConsentKey, Consent>, purpose: &str, channel: &str) -> bool {
        let key = |channel: Option<&str>| ConsentKey {
            purpose: purpose.to_string(),
            channel: channel.map(str::to_string),
        };
        consents
            .get(&key(Some(channel)))
            .or_else(|| consents.get(&key(None)))
            .is_some_and(|c| c.granted)
    }
    use crate::segment::{IntakeContext, normalise};

    fn consent(name: &str, at: &str, props: serde_json::Value) -> Event {
        let ctx = IntakeContext::new("2024-05-10T00:00:00Z".parse().unwrap(), "test");
        let message = json!({"type": "track", "userId": "u", "event": name, "timestamp": at,
            "properties": props, "context": {"touchpoint": "web-shop"}});
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    #[test]
    fn the_latest_statement_wins_and_a_channel_overrides_all_channels() {
        let events = [
            consent(
                "Consent Given",
                "2024-05-01T00:00:00Z",
                json!({"purpose": "Promotional"}),
            ),
            consent(
                "Consent Withdrawn",
                "2024-05-02T00:00:00Z",
                json!({"purpose": "promotional", "channel": "SMS"}),
            ),
            consent(
                "Consent Given",
                "2024-04-01T00:00:00Z",
                json!({"purpose": "promotional", "channel": "sms"}),
            ),
            consent(
                "Consent Updated",
                "2024-05-03T00:00:00Z",
                json!({"purpose": "service", "granted": true}),
            ),
        ];
        let consents = fold_consents(&events);
        assert!(allows(&consents, "promotional", "email"));
        assert!(
            !allows(&consents, "promotional", "sms"),
            "withdrawn later for SMS"
        );
        assert!(allows(&consents, "service", "whatsapp"));
        assert!(!allows(&consents, "research", "email"), "never given");
        assert_eq!(consents.len(), 3);
    }
}
