//! Retention: how long events are kept, globally and per event name or source, and
//! what is left of an expired event.
//!
//! A rule for the event's name wins over one for its source, which wins over the global
//! one; with none, the event is kept. Consent statements are never expired: they are the
//! proof of a consent (GDPR art. 7(1)) and the record of its withdrawal, and expiring some
//! statements but not others could bring a withdrawn consent back. They go only when
//! their person is erased.
//!
//! What an expired event said goes: its name, properties, context, touchpoint, channel
//! and traits. Who it was about stays, when it is needed: time passing must not split a
//! person in two (a browser linked to a customer two years ago is still theirs) nor
//! change profile ids, which are the log positions of the events that created them. So
//! an expired event is replaced, at its position, by its identity evidence
//! ([`identity_evidence`]): an `identify` call with only its identifiers and
//! distinguishing traits, from which the identity graph resolves exactly as from the
//! original (unmerge rules, limits and link decisions included, since the graph sees the
//! same identifiers at the same position). Only an event that carries no identifier at
//! all is removed. To remove a person's identity, erase them.
//!
//! Segment membership events are kept too: they are the record of who is in a segment,
//! and expiring an old entry would make a long-standing member enter again (restarting
//! journeys, notifying departments).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::event::{Event, EventType};
use crate::identity::{IdentityRules, extract};
use crate::platform_events::{SEGMENT_ENTERED, SEGMENT_EXITED};
use crate::profile::is_consent_statement_name;

/// The `[privacy]` section's retention settings, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Events older than this many days are removed (kept forever when unset).
    pub retention_days: Option<u32>,
    /// Per event name (`"Page Viewed" = 90`): wins over the source's and the global rule.
    #[serde(default)]
    pub retention_days_by_event: BTreeMap<String, u32>,
    /// Per source (`kiosk = 30`): wins over the global rule.
    #[serde(default)]
    pub retention_days_by_source: BTreeMap<String, u32>,
    /// How often the retention job looks for expired events [default: 24].
    pub retention_check_hours: Option<u32>,
}

/// Why a retention setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("{0}: a retention of 0 days would remove events as they arrive; use at least 1")]
    ZeroDays(String),
    #[error(
        "retention_days_by_event names \"{0}\", a record kept until its person is erased \
         (a consent statement, the proof of consent, or a segment membership event)"
    )]
    KeptRecord(String),
    #[error("retention_check_hours must be at least 1")]
    ZeroHours,
}

/// The retention rules in force, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionRules {
    config: RetentionConfig,
}

/// Whether events named `name` are records kept until their person is erased: consent
/// statements and segment membership.
fn is_kept_record(name: &str) -> bool {
    is_consent_statement_name(name) || name == SEGMENT_ENTERED || name == SEGMENT_EXITED
}

/// What the retention rules say about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No rule applies: kept.
    Kept,
    /// A consent statement or a segment membership event: kept until its person is
    /// erased.
    KeptRecord,
    /// Kept until this time, then removed.
    Until(Timestamp),
}

impl RetentionRules {
    /// Checks `config`.
    pub fn new(config: RetentionConfig) -> Result<RetentionRules, RetentionError> {
        let zero = |what: String, days: u32| (days == 0).then_some(RetentionError::ZeroDays(what));
        let mut problems = config
            .retention_days
            .and_then(|d| zero("retention_days".into(), d))
            .into_iter()
            .chain(
                config
                    .retention_days_by_event
                    .iter()
                    .filter_map(|(name, &d)| {
                        if is_kept_record(name) {
                            Some(RetentionError::KeptRecord(name.clone()))
                        } else {
                            zero(format!("retention_days_by_event \"{name}\""), d)
                        }
                    }),
            )
            .chain(
                config
                    .retention_days_by_source
                    .iter()
                    .filter_map(|(source, &d)| {
                        zero(format!("retention_days_by_source \"{source}\""), d)
                    }),
            );
        if let Some(problem) = problems.next() {
            return Err(problem);
        }
        if config.retention_check_hours == Some(0) {
            return Err(RetentionError::ZeroHours);
        }
        Ok(RetentionRules { config })
    }

    /// Whether any rule can expire an event.
    pub fn is_active(&self) -> bool {
        self.config.retention_days.is_some()
            || !self.config.retention_days_by_event.is_empty()
            || !self.config.retention_days_by_source.is_empty()
    }

    /// How often the retention job looks for expired events.
    pub fn check_every(&self) -> SignedDuration {
        SignedDuration::from_hours(i64::from(self.config.retention_check_hours.unwrap_or(24)))
    }

    /// The settings as written.
    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// Until when an event named `name` (track, page and screen calls have names), from
    /// `source`, that happened at `at`, is kept.
    pub fn expiry(&self, name: Option<&str>, source: &str, at: Timestamp) -> Expiry {
        if name.is_some_and(is_kept_record) {
            return Expiry::KeptRecord;
        }
        let days = name
            .and_then(|n| self.config.retention_days_by_event.get(n))
            .or_else(|| self.config.retention_days_by_source.get(source))
            .copied()
            .or(self.config.retention_days);
        match days {
            Some(days) => Expiry::Until(
                at.saturating_add(SignedDuration::from_hours(i64::from(days) * 24))
                    .unwrap_or(Timestamp::MAX),
            ),
            None => Expiry::Kept,
        }
    }

    /// Whether that event has expired at `now`.
    pub fn is_expired(
        &self,
        name: Option<&str>,
        source: &str,
        at: Timestamp,
        now: Timestamp,
    ) -> bool {
        matches!(self.expiry(name, source, at), Expiry::Until(until) if until <= now)
    }

    /// Quarantined messages received before this are removed (the global rule; they are
    /// not events yet, so they have no name to go by).
    pub fn quarantine_cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        self.config.retention_days.map(|days| {
            now.saturating_sub(SignedDuration::from_hours(i64::from(days) * 24))
                .unwrap_or(Timestamp::MIN)
        })
    }
}

/// What becomes of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Kept,
    /// Expired, and it identifies no one: nothing of it is needed.
    Removed,
    /// Expired: replaced by its identity evidence.
    Stripped(Evidence),
}

/// What is left of an expired event that identifies someone.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// `identify`, or `alias` for an alias.
    pub event_type: EventType,
    /// The whole message.
    pub message: Map<String, Value>,
}

/// Decides the fate of each event of the log (see the module docs).
pub struct RetentionScan<'a> {
    retention: &'a RetentionRules,
    identity: &'a IdentityRules,
    now: Timestamp,
}

impl<'a> RetentionScan<'a> {
    /// A scan measuring ages against `now`.
    pub fn new(retention: &'a RetentionRules, identity: &'a IdentityRules, now: Timestamp) -> Self {
        RetentionScan {
            retention,
            identity,
            now,
        }
    }

    /// The fate of one event.
    pub fn decide(&self, event: &Event) -> Fate {
        let expired = self.retention.is_expired(
            event.name.as_deref(),
            &event.source,
            event.timestamp,
            self.now,
        );
        if !expired {
            return Fate::Kept;
        }
        let set = extract(event, self.identity);
        if set.keys.is_empty() && set.alias_previous.is_none() {
            return Fate::Removed;
        }
        let evidence = identity_evidence(event, self.identity);
        if evidence.message == event.message {
            Fate::Kept // stripped by an earlier pass
        } else {
            Fate::Stripped(evidence)
        }
    }
}

/// An event's identity evidence: an `identify` call (an `alias`, for an alias) with its
/// user and anonymous ids, its other identifiers as `context.externalIds`, its
/// distinguishing traits, and nothing else. The identity graph resolves it exactly as the
/// event it replaces.
pub fn identity_evidence(event: &Event, rules: &IdentityRules) -> Evidence {
    let set = extract(event, rules);
    let event_type = if event.event_type == EventType::Alias {
        EventType::Alias
    } else {
        EventType::Identify
    };
    let mut evidence = Map::new();
    evidence.insert("type".into(), event_type.as_str().into());
    evidence.insert("messageId".into(), event.message_id.clone().into());
    evidence.insert("timestamp".into(), event.timestamp.to_string().into());
    if let Some(user_id) = &event.user_id {
        evidence.insert("userId".into(), user_id.clone().into());
    }
    if let Some(anonymous_id) = &event.anonymous_id {
        evidence.insert("anonymousId".into(), anonymous_id.clone().into());
    }
    if let Some(previous) = &set.alias_previous {
        evidence.insert("previousId".into(), previous.clone().into());
    }
    let traits: Map<String, Value> = rules
        .config
        .distinguishing_traits
        .iter()
        .filter_map(|name| Some((name.clone(), event.trait_value(name)?.clone())))
        .collect();
    if !traits.is_empty() {
        evidence.insert("traits".into(), traits.into());
    }
    // The user and anonymous ids already give their keys; the others go as external ids.
    let from_ids = extract(
        &Event {
            message: evidence.clone(),
            ..event.clone()
        },
        rules,
    )
    .keys;
    let external: Vec<Value> = set
        .keys
        .iter()
        .filter(|k| !from_ids.contains(k))
        .map(|k| {
            let identifier = rules.identifier_of(k);
            json!({"type": identifier.kind.to_string(), "id": identifier.value})
        })
        .collect();
    let mut context = Map::new();
    context.insert(
        "retention".into(),
        "identity evidence of an expired event".into(),
    );
    if !external.is_empty() {
        context.insert("externalIds".into(), external.into());
    }
    evidence.insert("context".into(), context.into());
    Evidence {
        event_type,
        message: evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_like: RetentionConfig) -> RetentionRules {
        RetentionRules::new(toml_like).expect("valid")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn the_most_specific_rule_decides_and_consent_statements_are_kept() {
        let rules = rules(RetentionConfig {
            retention_days: Some(365),
            retention_days_by_event: [
                ("Page Viewed".to_string(), 30),
                ("Order Completed".into(), 3650),
            ]
            .into(),
            retention_days_by_source: [("kiosk".to_string(), 7)].into(),
            retention_check_hours: None,
        });
        let now = at("2026-12-01T00:00:00Z");
        let happened = at("2026-10-01T00:00:00Z"); // 61 days before
        let long_ago = at("2020-01-01T00:00:00Z");
        // (name, source, when) -> expired?
        let table = [
            (Some("Page Viewed"), "web", happened, true), // event rule: 30 days
            (Some("Page Viewed"), "kiosk", happened, true), // event rule wins over source
            (Some("Order Completed"), "kiosk", long_ago, false), // 10 years, over kiosk's 7 days
            (
                Some("Order Completed"),
                "web",
                at("2015-01-01T00:00:00Z"),
                true,
            ), // > 10 years
            (Some("Product Added"), "kiosk", happened, true), // source rule: 7 days
            (Some("Product Added"), "web", happened, false), // global: 365 days
            (None, "web", long_ago, true),                // identify: global
            (None, "web", happened, false),
            (Some("Consent Given"), "web", long_ago, false),
            (Some("consent withdrawn"), "kiosk", long_ago, false),
            (Some("Unsubscribed"), "web", long_ago, false),
        ];
        for (name, source, when, expired) in table {
            assert_eq!(
                rules.is_expired(name, source, when, now),
                expired,
                "{name:?} from {source} at {when}"
            );
        }
        assert_eq!(
            rules.quarantine_cutoff(now),
            Some(at("2025-12-01T00:00:00Z"))
        );
        assert_eq!(rules.check_every(), SignedDuration::from_hours(24));
    }

    fn event(message: Value) -> Event {
        crate::segment::normalise(
            message.as_object().expect("object").clone(),
            &crate::segment::IntakeContext::new(at("2026-12-01T00:00:00Z"), "web"),
            || "m-1".into(),
        )
        .expect("valid")
    }

    /// The event the store gives back for stored evidence.
    fn stored(original: &Event, evidence: Evidence) -> Event {
        Event {
            event_type: evidence.event_type,
            name: None,
            touchpoint: None,
            channel: None,
            message: evidence.message,
            ..original.clone()
        }
    }

    #[test]
    fn identity_evidence_resolves_as_the_event_and_says_nothing_else() {
        let rules = IdentityRules::new(crate::identity::IdentityConfig {
            distinguishing_traits: vec!["first_name".into()],
            ..Default::default()
        })
        .expect("rules");
        for original in [
            event(
                json!({"type": "track", "event": "Order Completed", "userId": "u-1",
                "anonymousId": "a-1", "properties": {"revenue": 30, "email": "x@y.z"},
                "context": {"device": {"id": "dev-1"}, "traits": {"email": "Ada@Example.com",
                    "first_name": "Ada", "city": "Torino"}, "touchpoint": "web-shop",
                    "externalIds": [{"type": "loyalty_id", "id": "L-7"}]},
                "traits": {"phone": "333 123 4567"}}),
            ),
            event(json!({"type": "alias", "userId": "u-2", "previousId": "a-9"})),
            event(json!({"type": "page", "anonymousId": "a-3", "name": "Offers"})),
        ] {
            let evidence = identity_evidence(&original, &rules);
            let text = Value::Object(evidence.message.clone()).to_string();
            for gone in ["Torino", "revenue", "web-shop", "Order Completed", "Offers"] {
                assert!(!text.contains(gone), "{gone} in {text}");
            }
            let after = stored(&original, evidence);
            assert_eq!(
                extract(&after, &rules),
                extract(&original, &rules),
                "{text}"
            );
        }
    }

    #[test]
    fn an_expired_event_keeps_its_identity_evidence_and_only_a_nameless_one_goes() {
        let rules = RetentionRules::new(RetentionConfig {
            retention_days: Some(30),
            ..Default::default()
        })
        .expect("rules");
        let identity = IdentityRules::default_rules();
        let old = "2025-01-01T00:00:00Z";
        let events = [
            // (event, what becomes of it)
            (
                json!({"type": "page", "anonymousId": "a-1", "timestamp": old}),
                "stripped",
            ),
            (
                json!({"type": "page", "anonymousId": "a-1", "timestamp": old}),
                "stripped",
            ),
            (
                json!({"type": "identify", "userId": "u-1", "anonymousId": "a-1", "timestamp": old}),
                "stripped",
            ),
            (
                json!({"type": "track", "event": "E", "userId": "u-1"}),
                "kept",
            ), // recent
            (
                json!({"type": "track", "event": "Consent Given", "userId": "u-1", "timestamp": old,
                    "properties": {"purpose": "promotional"}}),
                "kept",
            ),
            (
                json!({"type": "track", "event": "Segment Entered", "userId": "u-1", "timestamp": old,
                    "properties": {"segment": "loyal"}}),
                "kept",
            ),
        ];
        let now = at("2026-12-01T00:00:00Z");
        let scan = RetentionScan::new(&rules, &identity, now);
        let mut left = Vec::new();
        for (message, expected) in events {
            let original = event(message.clone());
            let fate = match scan.decide(&original) {
                Fate::Kept => {
                    left.push(original);
                    "kept"
                }
                Fate::Removed => "removed",
                Fate::Stripped(evidence) => {
                    left.push(stored(&original, evidence));
                    "stripped"
                }
            };
            assert_eq!(fate, expected, "{message}");
        }
        // A second pass over what is left changes nothing.
        for event in &left {
            assert_eq!(scan.decide(event), Fate::Kept, "{:?}", event.message);
        }
        // An event that identifies no one (here: its ids taken away) goes whole.
        let nobody = Event {
            user_id: None,
            anonymous_id: None,
            ..event(json!({"type": "track", "event": "E", "userId": "u-9", "timestamp": old}))
        };
        assert_eq!(scan.decide(&nobody), Fate::Removed);
    }

    #[test]
    fn without_rules_everything_is_kept() {
        let rules = RetentionRules::default();
        assert!(!rules.is_active());
        assert_eq!(rules.expiry(None, "web", Timestamp::MIN), Expiry::Kept);
        assert_eq!(rules.quarantine_cutoff(Timestamp::MAX), None);
    }

    #[test]
    fn bad_settings_say_why() {
        let refused = |config: RetentionConfig| {
            RetentionRules::new(config)
                .expect_err("refused")
                .to_string()
        };
        let consent = refused(RetentionConfig {
            retention_days_by_event: [("Consent Withdrawn".to_string(), 30)].into(),
            ..Default::default()
        });
        assert!(
            consent.contains("\"Consent Withdrawn\", a record kept"),
            "{consent}"
        );
        let zero = refused(RetentionConfig {
            retention_days_by_source: [("kiosk".to_string(), 0)].into(),
            ..Default::default()
        });
        assert!(
            zero.contains("retention_days_by_source \"kiosk\""),
            "{zero}"
        );
        let hours = refused(RetentionConfig {
            retention_days: Some(30),
            retention_check_hours: Some(0),
            ..Default::default()
        });
        assert!(hours.contains("retention_check_hours"), "{hours}");
    }
}
