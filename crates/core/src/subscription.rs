//! Department subscriptions: the insight a department wants — "a high-value customer
//! viewed pricing three times this week", "an NPS answer of 6 or less", "a case open
//! longer than 48 hours" — and where it goes: a webhook, or an e-mail digest.
//!
//! A subscription fires either on each event for which its `when` holds (an expression
//! over the `event` and the person), or when a person enters a `segment` (segments are
//! kept current as events arrive and as time passes, so "open longer than 48 hours"
//! fires when it becomes true).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audience::{Audience, AudienceError};
use crate::event::Event;
use crate::journey::parse_duration;
use crate::profile::ProfileFacts;

/// A subscription as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    pub name: String,
    /// Who it is for (`sales`, `customer-care`).
    pub department: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fires on each event for which this holds: an audience expression that may also
    /// read `event` (`name`, `type`, `channel`, `touchpoint`, `source`, `properties`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Or fires when a person enters this segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// A named webhook of `[delivery.webhooks]` to post each insight to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// An address that receives the insights as one e-mail per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The digest's period (`1h`, `1d`, `1w`) [default: 1d].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
}

/// Why a subscription cannot be defined.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("subscription {name:?}: {problem}")]
pub struct SubscriptionError {
    pub name: String,
    pub problem: String,
}

/// A checked subscription.
#[derive(Debug)]
pub struct Subscription {
    pub config: SubscriptionConfig,
    when: Option<Audience>,
    every: SignedDuration,
}

/// Where an insight goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Webhook(String),
    Digest(String),
}

impl Destination {
    /// The outbox channel insights for this destination travel on: the webhook's, or
    /// the one of every digest (the address travels with the insight).
    pub fn channel(&self) -> String {
        match self {
            Destination::Webhook(name) => format!("webhook:{name}"),
            Destination::Digest(_) => "digest".into(),
        }
    }
}

impl Destination {
    /// Whether outbox `channel` carries insights for departments (not messages to
    /// people).
    pub fn is_insight_channel(channel: &str) -> bool {
        channel == "digest" || channel.starts_with("webhook:")
    }
}

impl Subscription {
    /// Checks a subscription: its name, exactly one trigger, at least one destination,
    /// the expression's variables and the digest period.
    pub fn new(config: SubscriptionConfig) -> Result<Self, SubscriptionError> {
        let fail = |problem: String| SubscriptionError {
            name: config.name.clone(),
            problem,
        };
        if !crate::is_valid_name(&config.name) {
            return Err(fail(
                "use 1 to 64 letters, digits, '-' or '_', starting with a letter".into(),
            ));
        }
        if config.department.trim().is_empty() {
            return Err(fail("department is required".into()));
        }
        let when = match (&config.when, &config.segment) {
            (Some(when), None) => Some(
                Audience::parse_with(when, &["event"])
                    .map_err(|e| fail(format!("when: {e} (or `event`)")))?,
            ),
            (None, Some(_)) => None,
            _ => return Err(fail("give exactly one of when or segment".into())),
        };
        if config.webhook.is_none() && config.digest.is_none() {
            return Err(fail("give a webhook, a digest address, or both".into()));
        }
        if let Some(address) = &config.digest
            && !address.contains('@')
        {
            return Err(fail(format!("digest {address:?} is not an e-mail address")));
        }
        let every = match &config.every {
            None => SignedDuration::from_hours(24),
            Some(text) => parse_duration(text)
                .filter(|d| *d >= SignedDuration::from_secs(1))
                .ok_or_else(|| fail(format!("every: {text:?} is not a period like 1h or 1d")))?,
        };
        Ok(Subscription {
            config,
            when,
            every,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Where its insights go.
    pub fn destinations(&self) -> Vec<Destination> {
        let c = &self.config;
        c.webhook
            .iter()
            .map(|w| Destination::Webhook(w.clone()))
            .chain(c.digest.iter().map(|d| Destination::Digest(d.clone())))
            .collect()
    }

    /// Whether `event` raises this insight about the person (`entered`: the segment
    /// the event says they entered, if it is a segment entry).
    pub fn fires(
        &self,
        event: &Event,
        entered: Option<&str>,
        person: &ProfileFacts,
    ) -> Result<bool, AudienceError> {
        match (&self.when, &self.config.segment) {
            (Some(when), _) => when.matches_with(person, vec![("event", event_variable(event))]),
            (None, Some(segment)) => Ok(entered == Some(segment.as_str())),
            (None, None) => Ok(false),
        }
    }

    /// When a digest collecting an insight raised at `now` is sent: the end of the
    /// current period (periods are counted from the Unix epoch, so a daily digest goes
    /// at midnight UTC).
    pub fn digest_at(&self, now: Timestamp) -> Timestamp {
        let period = self.every.as_secs().max(1);
        let next = (now.as_second().div_euclid(period) + 1) * period;
        Timestamp::from_second(next).unwrap_or(now)
    }
}

/// The `event` variable of a subscription's expression.
pub fn event_variable(event: &Event) -> Value {
    json!({
        "name": event.name.clone().unwrap_or_default(),
        "type": event.event_type.as_str(),
        "channel": event.channel.clone().unwrap_or_default(),
        "touchpoint": event.touchpoint.clone().unwrap_or_default(),
        "source": event.source,
        "properties": event.get("properties").cloned().unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};
    use crate::testing::person;

    fn config(value: serde_json::Value) -> SubscriptionConfig {
        serde_json::from_value(value).unwrap()
    }

    fn event(message: serde_json::Value) -> Event {
        let ctx = IntakeContext::new("2024-05-10T00:00:00Z".parse().unwrap(), "web");
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    #[test]
    fn an_nps_detractor_fires_and_a_promoter_does_not() {
        let s = Subscription::new(config(
            json!({"name": "detractors", "department": "customer-care",
            "when": "event.name == 'Survey Answered' && event.properties.nps <= 6",
            "webhook": "care"}),
        ))
        .unwrap();
        let someone = person(&[], "2024-05-10T00:00:00Z");
        let answer = |nps: i64| {
            event(
                json!({"type": "track", "userId": "u", "event": "Survey Answered",
                "properties": {"nps": nps}}),
            )
        };
        assert!(s.fires(&answer(4), None, &someone).unwrap());
        assert!(!s.fires(&answer(9), None, &someone).unwrap());
        let other = event(json!({"type": "track", "userId": "u", "event": "Page Viewed"}));
        assert!(!s.fires(&other, None, &someone).unwrap());
        assert_eq!(s.destinations(), vec![Destination::Webhook("care".into())]);
    }

    #[test]
    fn a_segment_subscription_fires_on_entering_that_segment_only() {
        let s = Subscription::new(config(json!({"name": "stuck", "department": "care",
            "segment": "cases-over-48h", "digest": "care@acme.example", "every": "1h"})))
        .unwrap();
        let someone = person(&[], "2024-05-10T00:00:00Z");
        let e = event(json!({"type": "track", "userId": "u", "event": "Segment Entered"}));
        assert!(s.fires(&e, Some("cases-over-48h"), &someone).unwrap());
        assert!(!s.fires(&e, Some("other"), &someone).unwrap());
        assert!(!s.fires(&e, None, &someone).unwrap());
        let at: Timestamp = "2024-05-10T10:20:00Z".parse().unwrap();
        assert_eq!(
            s.digest_at(at),
            "2024-05-10T11:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            s.destinations(),
            vec![Destination::Digest("care@acme.example".into())]
        );
        assert_eq!(s.destinations()[0].channel(), "digest");
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |v: serde_json::Value| Subscription::new(config(v)).unwrap_err().problem;
        assert!(
            bad(json!({"name": "x", "department": "d", "webhook": "w"})).contains("exactly one")
        );
        assert!(bad(json!({"name": "x", "department": "d", "when": "true"})).contains("webhook"));
        assert!(
            bad(
                json!({"name": "x", "department": "d", "when": "evnt.name == 'a'", "webhook": "w"})
            )
            .contains("evnt")
        );
        assert!(
            bad(json!({"name": "x", "department": "d", "segment": "s", "digest": "nobody"}))
                .contains("e-mail")
        );
        assert!(bad(json!({"name": "x", "department": "d", "segment": "s", "digest": "a@b.c", "every": "soon"})).contains("every"));
    }
}
