//! Messages from people (an SMS, a WhatsApp message), with the keywords STOP and
//! START. Each becomes the person's `Message Replied`; a STOP also withdraws their
//! consents on that channel and, the first time, is confirmed to them (the one message
//! sent whatever their consents); a START gives the consents back.

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use unavoce_core::identifier::Identifier;
use unavoce_core::identity::ProfileId;
use unavoce_core::message::{MessageConfig, SmsTemplate, WhatsAppTemplate};
use unavoce_core::platform_events::{self, MessageOutcome};
use unavoce_core::policy::Outcome;
use unavoce_store::NewDecision;

use crate::Dispatcher;
use crate::config::DeliveryConfig;
use crate::feedback::ReportError;
use crate::record::{record, record_about};

/// The purpose of the one message that confirms an opt-out: sent although every
/// consent on that channel was just withdrawn (the confirmation is what the law asks).
pub const OPT_OUT_PURPOSE: &str = "opt-out";
/// The catalog message that confirms an opt-out.
pub const OPT_OUT_MESSAGE: &str = "opt-out-confirmation";

/// The built-in message that confirms an opt-out (unless the catalog defines
/// [`OPT_OUT_MESSAGE`] itself).
pub fn opt_out_message(config: &DeliveryConfig) -> MessageConfig {
    let text = config.opt_out_confirmation();
    MessageConfig {
        id: OPT_OUT_MESSAGE.into(),
        description: Some("Confirms an SMS or WhatsApp STOP, once.".into()),
        email: None,
        sms: Some(SmsTemplate {
            text: text.clone(),
            max_segments: 2,
        }),
        whatsapp: Some(WhatsAppTemplate {
            text,
            buttons: Vec::new(),
        }),
        push: None,
        call_task: None,
    }
}

/// The purposes a STOP withdraws and a START gives back, on the channel it came from.
pub const OPT_OUT_PURPOSES: [&str; 2] = ["promotional", "service"];

/// Keywords that opt out (those carriers and Twilio recognise, and Italian ones).
const STOP_WORDS: [&str; 11] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
    "BASTA",
    "CANCELLAMI",
];
/// Keywords that opt back in.
const START_WORDS: [&str; 4] = ["START", "UNSTOP", "YES", "RIPRENDI"];

/// What a reply asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// Opt out on this channel.
    Stop,
    /// Opt back in on this channel.
    Start,
    /// Neither: a reply like any other.
    None,
}

/// Whether a reply is an opt-out or opt-in keyword: the whole message, in any case,
/// with surrounding spaces and punctuation ignored.
pub fn keyword(text: &str) -> Keyword {
    let word = text
        .trim()
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_uppercase();
    let word = word.split_whitespace().collect::<Vec<_>>().join(" ");
    if STOP_WORDS.contains(&word.as_str()) {
        Keyword::Stop
    } else if START_WORDS.contains(&word.as_str()) {
        Keyword::Start
    } else {
        Keyword::None
    }
}

/// A message from a person, as a provider passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Their phone number, as the provider gives it (with or without the `+`).
    pub from: String,
    /// What they wrote (or the reply button they pressed).
    pub text: String,
    /// The provider's id for it: a repeated report of it counts once.
    pub provider_id: Option<String>,
}

/// What a reply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Recorded as the person's reply.
    Recorded,
    /// Consents withdrawn; `confirmed`: a confirmation was queued (not when they had
    /// already opted out on this channel).
    OptedOut { confirmed: bool },
    /// Consents given back.
    OptedIn,
}

impl Dispatcher {
    /// A message from a person on `channel` (`sms`, `whatsapp`) from phone number
    /// `from`; `provider_id` (the provider's id for it) makes a repeated report count
    /// once.
    pub async fn reply(
        &self,
        channel: &str,
        from: &str,
        text: &str,
        provider_id: Option<&str>,
    ) -> Result<ReplyOutcome, ReportError> {
        let phone = if from.starts_with('+') {
            from.to_string()
        } else {
            format!("+{}", from.trim())
        };
        let now = Timestamp::now();
        let key = provider_id
            .map(str::to_string)
            .unwrap_or_else(|| format!("{channel}-{phone}-{}", now.as_microsecond()));
        let before = self.person_with_phone(&phone);
        let mut replied = Map::new();
        replied.insert("channel".into(), channel.into());
        replied.insert("text".into(), text.into());
        let mut events = vec![with_id(
            platform_events::message_outcome(MessageOutcome::Replied, replied),
            format!("reply-{key}"),
        )];
        let word = keyword(text);
        if word != Keyword::None {
            for purpose in OPT_OUT_PURPOSES {
                let mut said = Map::new();
                said.insert("keyword".into(), text.trim().into());
                events.push(with_id(
                    platform_events::consent(purpose, Some(channel), word == Keyword::Start, said),
                    format!("reply-{key}-{purpose}"),
                ));
            }
        }
        let already_out = before.is_some_and(|profile| {
            let (facts, _) = self.platform().identity.person(profile, now);
            OPT_OUT_PURPOSES.iter().all(|p| {
                facts
                    .consent_statement(p, channel)
                    .is_some_and(|s| !s.granted)
            })
        });
        self.record_from_phone(before, &phone, channel, events)
            .await?;
        match word {
            Keyword::None => Ok(ReplyOutcome::Recorded),
            Keyword::Start => Ok(ReplyOutcome::OptedIn),
            Keyword::Stop if already_out => Ok(ReplyOutcome::OptedOut { confirmed: false }),
            Keyword::Stop => {
                self.platform().identity.catch_up().await?;
                let Some(profile) = self.person_with_phone(&phone) else {
                    return Ok(ReplyOutcome::OptedOut { confirmed: false });
                };
                self.platform()
                    .decisions
                    .record_decisions(vec![NewDecision {
                        profile_id: profile,
                        message: OPT_OUT_MESSAGE.into(),
                        purpose: OPT_OUT_PURPOSE.into(),
                        channel: channel.into(),
                        journey: None,
                        broadcast: None,
                        decided_at: now,
                        outcome: Outcome::Send,
                        send_at: Some(now),
                        reasons: json!([{
                            "code": "opt_out_confirmation",
                            "detail": "confirms the person's opt-out on this channel; sent once, whatever their consents",
                        }]),
                    }])
                    .await?;
                Ok(ReplyOutcome::OptedOut { confirmed: true })
            }
        }
    }

    /// The profile holding phone number `phone`, if exactly one does.
    fn person_with_phone(&self, phone: &str) -> Option<ProfileId> {
        let identity = &self.platform().identity;
        let key = identity.rules().key_of(&Identifier {
            kind: "phone".to_string().into(),
            value: phone.to_string(),
        })?;
        identity.read(|g| {
            (!g.is_ambiguous(&key))
                .then(|| g.lookup(&key).map(|n| n.id))
                .flatten()
        })
    }

    /// Records events about the person with `phone`: under their profile's identity, or,
    /// for a number nobody has yet, under an anonymous id with the number as a trait
    /// (so the identity graph links it).
    async fn record_from_phone(
        &self,
        profile: Option<ProfileId>,
        phone: &str,
        channel: &str,
        events: Vec<Map<String, Value>>,
    ) -> Result<(), ReportError> {
        for mut event in events {
            event.insert("context".into(), json!({"traits": {"phone": phone}}));
            match profile {
                Some(profile) => {
                    record_about(self.platform(), profile, event).await?;
                }
                None => {
                    event.insert("anonymousId".into(), format!("{channel}:{phone}").into());
                    record(self.platform(), event).await?;
                }
            }
        }
        Ok(())
    }
}

/// `message` with its message id.
fn with_id(mut message: Map<String, Value>, id: String) -> Map<String, Value> {
    message.insert("messageId".into(), id.into());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_and_start_are_recognised_in_their_common_forms() {
        for text in [
            "STOP",
            "stop",
            " Stop. ",
            "STOPALL",
            "unsubscribe",
            "Opt out",
            "basta!",
        ] {
            assert_eq!(keyword(text), Keyword::Stop, "{text}");
        }
        for text in ["START", "unstop", "Yes"] {
            assert_eq!(keyword(text), Keyword::Start, "{text}");
        }
        for text in [
            "stop sending me offers please",
            "when does the store open?",
            "",
        ] {
            assert_eq!(keyword(text), Keyword::None, "{text}");
        }
    }
}
