//! Channel `auto`: which channel a message goes out on, and which to fall back to.

use super::{Decision, Outcome, Policies, Reason};
use crate::profile::{ChannelEngagement, ProfileFacts};

/// The channels a message can go out on: the identifier type a person needs to be
/// reached there, and a typical cost per message (the last tie-breaker).
pub const MESSAGE_CHANNELS: [(&str, &str, f64); 5] = [
    ("email", "email", 0.001),
    ("push", "device_id", 0.0005),
    ("whatsapp", "phone", 0.02),
    ("rcs", "phone", 0.03),
    ("sms", "phone", 0.05),
];

/// The kind of identifier a message on `channel` is addressed to (`email`, `phone`,
/// `device_id`); `None` for a channel without an address of its own (a call task).
pub fn address_kind(channel: &str) -> Option<&'static str> {
    MESSAGE_CHANNELS
        .iter()
        .find(|(c, _, _)| *c == channel)
        .map(|(_, kind, _)| *kind)
}

/// The channels `purpose` messages can reach the person on, best first: those they
/// consented to and hold an identifier for (`reachable`: identifier type names), ranked
/// by their stated preference (trait `preferred_channel`), then by how they respond on
/// each (opens, clicks and replies over sends, with a prior so an untried channel is
/// neither first nor last), then by cost. The first is the channel; the rest are the
/// fallbacks, in order.
pub fn rank_channels(
    policies: &Policies,
    purpose: &str,
    person: &ProfileFacts,
    reachable: &[&str],
) -> Vec<String> {
    let stated = person
        .traits
        .get("preferred_channel")
        .and_then(|v| v.as_str())
        .map(crate::channel::canonical_name);
    let untried = ChannelEngagement::default();
    let mut options: Vec<(bool, f64, f64, &str)> = MESSAGE_CHANNELS
        .iter()
        .filter(|(channel, needs, _)| {
            reachable.contains(needs) && policies.consented(purpose, channel, person)
        })
        .map(|(channel, _, cost)| {
            let response = person
                .engagement
                .get(*channel)
                .unwrap_or(&untried)
                .response_rate();
            (
                stated.as_deref() == Some(*channel),
                response,
                *cost,
                *channel,
            )
        })
        .collect();
    options.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.total_cmp(&a.1))
            .then(a.2.total_cmp(&b.2))
    });
    options
        .into_iter()
        .map(|(_, _, _, c)| c.to_string())
        .collect()
}

/// The channel a message goes out on and the channels to fall back to: `channel`
/// itself, or with `auto` the best of [`rank_channels`] that the message has a
/// rendering for (`renders`; empty: any) and the rest in order. With `auto` and no
/// channel at all, the suppression that says so.
pub fn choose_channel(
    policies: &Policies,
    purpose: &str,
    channel: &str,
    person: &ProfileFacts,
    reachable: &[&str],
    renders: &[&str],
) -> Result<(String, Vec<String>), Decision> {
    if channel != "auto" {
        return Ok((channel.to_string(), Vec::new()));
    }
    let mut ranked = rank_channels(policies, purpose, person, reachable)
        .into_iter()
        .filter(|c| renders.is_empty() || renders.contains(&c.as_str()));
    match ranked.next() {
        Some(first) => Ok((first, ranked.collect())),
        None => Err(Decision {
            outcome: Outcome::Suppress,
            send_at: None,
            reasons: vec![Reason {
                code: "no_channel",
                detail: format!(
                    "no channel the customer consented to {purpose} messages on and can be reached on"
                ),
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::PolicyConfig;

    fn person(messages: &[Value]) -> ProfileFacts {
        crate::testing::person(messages, "2025-03-01T00:00:00Z")
    }

    fn given(purpose: &str) -> Value {
        json!({"type": "track", "event": "Consent Given", "properties": {"purpose": purpose}})
    }

    #[test]
    fn the_stated_preference_then_engagement_then_cost_decide() {
        let p = Policies::new(&PolicyConfig::default()).unwrap();
        let everywhere = ["email", "phone", "device_id"];
        // Untried everywhere: the cheapest first.
        let card = person(&[given("promotional")]);
        assert_eq!(
            rank_channels(&p, "promotional", &card, &everywhere),
            vec!["push", "email", "whatsapp", "rcs", "sms"]
        );
        // Reads every WhatsApp message, ignores e-mails: WhatsApp first, e-mail last.
        let mut history = vec![given("promotional")];
        for _ in 0..5 {
            history.push(json!({"type": "track", "event": "WhatsApp Sent"}));
            history.push(json!({"type": "track", "event": "WhatsApp Read"}));
            history.push(json!({"type": "track", "event": "Email Sent"}));
        }
        let card = person(&history);
        let ranked = rank_channels(&p, "promotional", &card, &everywhere);
        assert_eq!(ranked.first().map(String::as_str), Some("whatsapp"));
        assert_eq!(ranked.last().map(String::as_str), Some("email"));
        // What they told us wins.
        history.push(json!({"type": "identify", "traits": {"preferred_channel": "SMS"}}));
        let card = person(&history);
        assert_eq!(
            rank_channels(&p, "promotional", &card, &everywhere)[0],
            "sms"
        );
    }

    #[test]
    fn only_consented_and_reachable_channels_are_offered() {
        let p = Policies::new(&PolicyConfig::default()).unwrap();
        let card = person(&[
            given("promotional"),
            json!({"type": "track", "event": "Consent Withdrawn",
                "properties": {"purpose": "promotional", "channel": "whatsapp"}}),
        ]);
        // No device: no push; WhatsApp withdrawn.
        assert_eq!(
            rank_channels(&p, "promotional", &card, &["email", "phone"]),
            vec!["email", "rcs", "sms"]
        );
        let nobody = person(&[]);
        assert!(rank_channels(&p, "promotional", &nobody, &["email"]).is_empty());
        // Service messages need no yes.
        assert_eq!(
            rank_channels(&p, "service", &nobody, &["email"]),
            vec!["email"]
        );
    }
}
