//! Consents: per purpose and channel, from `Consent Given` / `Consent Withdrawn` events.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::latest::{Latest, Stated};
use crate::event::Event;
use crate::log_time::LogTime;
use crate::name::Name;
use crate::platform_events::{CONSENT_GIVEN, CONSENT_WITHDRAWN};

/// A consent is given for a purpose (`service`, `promotional`, ...) on a channel, or on
/// every channel when `channel` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct ConsentKey {
    pub purpose: Name,
    pub channel: Option<Name>,
}

/// A statement's key, taken from one of the same key.
impl From<&ConsentKey> for ConsentKey {
    fn from(key: &ConsentKey) -> ConsentKey {
        key.clone()
    }
}

/// The current state of one consent, and where it was said.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Consent {
    pub granted: bool,
    pub at: LogTime,
    /// The touchpoint it was given or withdrawn at, or the source.
    pub source: Name,
}

/// Event names that grant a consent.
const GRANTING: [&str; 3] = [CONSENT_GIVEN, "Consent Granted", "Subscribed"];
/// Event names that withdraw one.
const WITHDRAWING: [&str; 3] = [CONSENT_WITHDRAWN, "Consent Revoked", "Unsubscribed"];
/// The event name that grants or withdraws by `properties.granted`.
const UPDATING: &str = "Consent Updated";

/// Whether events named `name` are consent statements (any case).
pub fn is_consent_statement_name(name: &str) -> bool {
    GRANTING
        .iter()
        .chain(&WITHDRAWING)
        .chain(&[UPDATING])
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// What one event says about a consent, if anything: the key and whether it is granted.
/// Events: the platform's own [`CONSENT_GIVEN`] / [`CONSENT_WITHDRAWN`] (other tools'
/// `Consent Granted`, `Subscribed`, `Consent Revoked`, `Unsubscribed`, or `Consent Updated`
/// with `properties.granted`), with `properties.purpose` and optionally
/// `properties.channel`.
pub fn consent_statement(event: &Event) -> Option<(ConsentKey, bool)> {
    let name = event.name.as_deref()?;
    let is = |names: &[&str]| names.iter().any(|n| name.eq_ignore_ascii_case(n));
    let granted = if is(&GRANTING) {
        true
    } else if is(&WITHDRAWING) {
        false
    } else if is(&[UPDATING]) {
        match event.get("properties.granted") {
            Some(Value::Bool(granted)) => *granted,
            _ => return None,
        }
    } else {
        return None;
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
    let (purpose, channel) = (Name::from(purpose), channel.map(Name::from));
    Some((ConsentKey { purpose, channel }, granted))
}

/// What decides a purpose on a channel: the latest statement that applies to it (made
/// for that channel, or for every channel), a withdrawal winning at equal times. Lines
/// for one channel are already decided this way (see [`Consents::lines`]), so this is the
/// channel's line, else the all-channel one.
pub fn applicable<'a>(
    lines: &'a [ConsentLine],
    purpose: &str,
    channel: &str,
) -> Option<&'a ConsentLine> {
    let line = |c: Option<&str>| {
        lines
            .iter()
            .find(|l| l.purpose == purpose && l.channel.as_deref() == c)
    };
    line(Some(channel)).or_else(|| line(None))
}

/// One consent line: a purpose on a channel (or every channel), granted or not, as
/// decided by the statement that applies there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentLine {
    pub purpose: String,
    /// `None`: every channel not named in a line of its own.
    pub channel: Option<String>,
    pub granted: bool,
    /// When the deciding statement was made.
    pub at: Timestamp,
    /// Where the deciding statement was made.
    pub source: String,
}

/// Statements by purpose and channel, the latest of each by event time winning (a
/// withdrawal at equal times, then log order): what a profile keeps as its events arrive.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Consents(Latest<ConsentKey, Consent>);

impl Consents {
    /// Takes in the event at log position `seq`, if it states a consent.
    pub fn apply(&mut self, seq: i64, event: &Event) {
        let Some((key, granted)) = consent_statement(event) else {
            return;
        };
        let consent = Consent {
            granted,
            at: LogTime::of(event.timestamp),
            source: Name::from(event.touchpoint.as_ref().unwrap_or(&event.source)),
        };
        self.0.state(&key, consent, seq);
    }

    /// Adds another profile's statements (a merge): the latest of each wins. What a
    /// channel is decided by is worked out when read, so merges in any order agree.
    pub fn merge(&mut self, other: Consents) {
        self.0.merge(other.0);
    }

    /// The current consents, one line per purpose and channel stated, by purpose and
    /// channel: a channel's line carries whichever applies to it last — its own latest
    /// statement or a later one for every channel ("stop all promotions" ends an
    /// e-mail consent given before it) — a withdrawal winning at equal times.
    pub fn lines(&self) -> Vec<ConsentLine> {
        self.0
            .iter()
            .map(|(key, own)| {
                let every_channel = key.channel.as_ref().and_then(|_| {
                    self.0.get(&ConsentKey {
                        purpose: key.purpose.clone(),
                        channel: None,
                    })
                });
                let deciding = match every_channel {
                    Some(all) if (all.at, all.precedence()) > (own.at, own.precedence()) => all,
                    _ => own,
                };
                ConsentLine {
                    purpose: key.purpose.to_string(),
                    channel: key.channel.as_ref().map(Name::to_string),
                    granted: deciding.granted,
                    at: deciding.at.timestamp(),
                    source: deciding.source.to_string(),
                }
            })
            .collect()
    }
}

impl Stated for Consent {
    fn at(&self) -> LogTime {
        self.at
    }

    fn precedence(&self) -> u8 {
        u8::from(!self.granted)
    }
}

/// Current consents from events in log order (see [`Consents::lines`]).
pub fn fold_consents<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<ConsentLine> {
    let mut consents = Consents::default();
    for (seq, event) in events.into_iter().enumerate() {
        consents.apply(seq as i64, event);
    }
    consents.lines()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    fn allows(lines: &[ConsentLine], purpose: &str, channel: &str) -> bool {
        applicable(lines, purpose, channel).is_some_and(|l| l.granted)
    }

    fn consent(name: &str, at: &str, props: serde_json::Value) -> Event {
        let ctx = IntakeContext::new("2024-05-10T00:00:00Z".parse().unwrap(), "test");
        let message = json!({"type": "track", "userId": "u", "event": name, "timestamp": at,
            "properties": props, "context": {"touchpoint": "web-shop"}});
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    #[test]
    fn the_latest_statement_for_a_key_wins_whatever_the_log_order() {
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

    /// A statement of a test story: given or withdrawn, on a channel or all, at an hour.
    fn said(granted: bool, channel: Option<&str>, hour: u8) -> Event {
        let mut props = json!({"purpose": "promotional"});
        if let Some(channel) = channel {
            props["channel"] = json!(channel);
        }
        let name = if granted {
            "Consent Given"
        } else {
            "Consent Withdrawn"
        };
        consent(name, &format!("2024-05-01T{hour:02}:00:00Z"), props)
    }

    /// `(story, statements in log order, may e-mail, may text)`.
    fn stories() -> Vec<(&'static str, Vec<Event>, bool, bool)> {
        let (all, email, sms) = (None, Some("email"), Some("sms"));
        vec![
            (
                "grant e-mail, then withdraw all",
                vec![said(true, email, 9), said(false, all, 10)],
                false,
                false,
            ),
            (
                "withdraw all, then grant e-mail",
                vec![said(false, all, 9), said(true, email, 10)],
                true,
                false,
            ),
            (
                "grant all, then withdraw SMS",
                vec![said(true, all, 9), said(false, sms, 10)],
                true,
                false,
            ),
            (
                "withdraw SMS, then grant all",
                vec![said(false, sms, 9), said(true, all, 10)],
                true,
                true,
            ),
            (
                "withdraw all arriving before the earlier e-mail grant",
                vec![said(false, all, 10), said(true, email, 9)],
                false,
                false,
            ),
            (
                "grant e-mail and withdraw all at the same time",
                vec![said(true, email, 9), said(false, all, 9)],
                false,
                false,
            ),
            (
                "withdraw all and grant e-mail at the same time",
                vec![said(false, all, 9), said(true, email, 9)],
                false,
                false,
            ),
            (
                "grant and withdraw all at the same time",
                vec![said(false, all, 9), said(true, all, 9)],
                false,
                false,
            ),
            (
                "grant all, withdraw all, grant e-mail",
                vec![
                    said(true, all, 8),
                    said(false, all, 9),
                    said(true, email, 10),
                ],
                true,
                false,
            ),
            (
                "grant e-mail, grant all, withdraw all",
                vec![
                    said(true, email, 8),
                    said(true, all, 9),
                    said(false, all, 10),
                ],
                false,
                false,
            ),
        ]
    }

    #[test]
    fn the_latest_applicable_statement_decides_and_a_withdrawal_wins_a_tie() {
        for (story, events, email, sms) in stories() {
            let lines = fold_consents(&events);
            assert_eq!(
                (
                    allows(&lines, "promotional", "email"),
                    allows(&lines, "promotional", "sms")
                ),
                (email, sms),
                "{story}: {lines:?}"
            );
            // The line the card and the dashboard show for e-mail says the same.
            if let Some(line) = lines.iter().find(|l| l.channel.as_deref() == Some("email")) {
                assert_eq!(line.granted, email, "{story}");
            }
            // "Any channel" (audiences, the card's next best action) agrees.
            assert_eq!(
                lines.iter().any(|l| l.granted),
                email || sms || allows(&lines, "promotional", "push"),
                "{story}"
            );
        }
    }

    #[test]
    fn two_peoples_ledgers_merge_into_the_ledger_of_all_their_statements() {
        for (story, events, email, sms) in stories() {
            let whole = fold_consents(&events);
            // Every way of splitting the statements between two people, merged both ways.
            for split in 0..1u32 << events.len() {
                let mut people = [Consents::default(), Consents::default()];
                for (seq, event) in events.iter().enumerate() {
                    people[(split >> seq & 1) as usize].apply(seq as i64, event);
                }
                let [a, b] = people;
                for (mut into, from) in [(a.clone(), b.clone()), (b, a)] {
                    into.merge(from);
                    let merged = into.lines();
                    assert_eq!(merged, whole, "{story}, split {split:b}");
                    assert_eq!(
                        (
                            allows(&merged, "promotional", "email"),
                            allows(&merged, "promotional", "sms")
                        ),
                        (email, sms),
                        "{story}, split {split:b}"
                    );
                }
            }
        }
    }
}
