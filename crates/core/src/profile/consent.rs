//! Consents: per purpose and channel, from `Consent Given` / `Consent Withdrawn` events.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

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

/// Current consents by purpose and channel, the latest statement by event time winning.
/// Events: `Consent Given` / `Consent Withdrawn` (or `Consent Updated` with
/// `properties.granted`), with `properties.purpose` and optionally `properties.channel`.
pub fn fold_consents<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<ConsentKey, Consent> {
    let mut consents: BTreeMap<ConsentKey, Consent> = BTreeMap::new();
    for event in events {
        let Some(name) = event.name.as_deref() else {
            continue;
        };
        let granted = match name.to_ascii_lowercase().as_str() {
            "consent given" | "consent granted" | "subscribed" => true,
            "consent withdrawn" | "consent revoked" | "unsubscribed" => false,
            "consent updated" => match event.get("properties.granted") {
                Some(Value::Bool(granted)) => *granted,
                _ => continue,
            },
            _ => continue,
        };
        let Some(purpose) = event
            .get("properties.purpose")
            .and_then(Value::as_str)
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
        else {
            continue;
        };
        let channel = event
            .get("properties.channel")
            .and_then(Value::as_str)
            .map(crate::channel::canonical_name);
        let key = ConsentKey { purpose, channel };
        let newer = consents.get(&key).is_none_or(|c| c.at <= event.timestamp);
        if newer {
            consents.insert(
                key,
                Consent {
                    granted,
                    at: event.timestamp,
                    source: event
                        .touchpoint
                        .clone()
                        .unwrap_or_else(|| event.source.clone()),
                },
            );
        }
    }
    consents
}

/// Whether `purpose` is consented on `channel`: a statement for that channel wins over
/// one for every channel; no statement means no consent.
pub fn allows(consents: &BTreeMap<ConsentKey, Consent>, purpose: &str, channel: &str) -> bool {
    let specific = consents.get(&ConsentKey {
        purpose: purpose.to_string(),
        channel: Some(channel.to_string()),
    });
    let general = consents.get(&ConsentKey {
        purpose: purpose.to_string(),
        channel: None,
    });
    specific.or(general).is_some_and(|c| c.granted)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
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
