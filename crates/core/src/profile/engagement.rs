//! Per-channel engagement: messages sent to the person and how they responded, and the
//! interactions they started themselves.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::channel::ChannelKind;
use crate::event::Event;

/// How a person engages on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelEngagement {
    pub sent: u64,
    pub delivered: u64,
    pub opened: u64,
    pub clicked: u64,
    pub replied: u64,
    pub failed: u64,
    /// Events the person started on this channel (visits, calls, purchases, chats).
    pub interactions: u64,
    pub last_engagement: Option<Timestamp>,
    /// Opens, clicks, replies and interactions by hour of the week (UTC, Monday 00:00 = 0).
    #[serde(skip_serializing_if = "is_empty_histogram")]
    pub hour_of_week: Vec<u32>,
}

fn is_empty_histogram(h: &[u32]) -> bool {
    h.iter().all(|n| *n == 0)
}

impl Default for ChannelEngagement {
    fn default() -> Self {
        ChannelEngagement {
            sent: 0,
            delivered: 0,
            opened: 0,
            clicked: 0,
            replied: 0,
            failed: 0,
            interactions: 0,
            last_engagement: None,
            hour_of_week: vec![0; 168],
        }
    }
}

impl ChannelEngagement {
    /// Responses (opens, clicks, replies) per message sent, with a prior of one response
    /// in four sends so that a channel never tried is not ranked last or first.
    pub fn response_rate(&self) -> f64 {
        (self.opened.max(self.clicked) + self.replied) as f64 / (self.sent as f64 + 4.0)
            + 0.25 * 4.0 / (self.sent as f64 + 4.0)
    }
}

/// What a message lifecycle event (`Email Opened`, `Message Sent` with
/// `properties.channel`) says: its channel and step; `None` for other events.
pub(crate) fn message_step(event: &Event) -> Option<(String, &'static str)> {
    let name = event.name.as_deref()?.to_ascii_lowercase();
    let (kind, verb) = name.rsplit_once(' ')?;
    let step = match verb {
        "sent" => "sent",
        "delivered" => "delivered",
        "opened" | "read" => "opened",
        "clicked" => "clicked",
        "replied" => "replied",
        "failed" | "bounced" | "undelivered" => "failed",
        _ => return None,
    };
    let from_kind = match kind {
        "message" | "notification" => None,
        other => Some(ChannelKind::recognise(other)?),
    };
    let channel = event
        .get("properties.channel")
        .and_then(Value::as_str)
        .map(crate::channel::canonical_name)
        .or(from_kind.map(|k| k.as_str().to_string()))
        .or(event.channel.clone())?;
    Some((channel, step))
}

/// Per-channel engagement from the person's events.
pub fn fold_engagement<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<String, ChannelEngagement> {
    let mut by_channel: BTreeMap<String, ChannelEngagement> = BTreeMap::new();
    for event in events {
        let (channel, step) = match message_step(event) {
            Some((channel, step)) => (channel, step),
            None => match &event.channel {
                Some(channel) => (channel.clone(), "interaction"),
                None => continue,
            },
        };
        let entry = by_channel.entry(channel).or_default();
        let engaged = match step {
            "sent" => {
                entry.sent += 1;
                false
            }
            "delivered" => {
                entry.delivered += 1;
                false
            }
            "failed" => {
                entry.failed += 1;
                false
            }
            "opened" => {
                entry.opened += 1;
                true
            }
            "clicked" => {
                entry.clicked += 1;
                true
            }
            "replied" => {
                entry.replied += 1;
                true
            }
            _ => {
                entry.interactions += 1;
                true
            }
        };
        if engaged {
            entry.last_engagement = entry.last_engagement.max(Some(event.timestamp));
            entry.hour_of_week[hour_of_week(event.timestamp)] += 1;
        }
    }
    by_channel
}

/// Monday 00:00–00:59 UTC is 0, Sunday 23:00–23:59 is 167.
pub fn hour_of_week(at: Timestamp) -> usize {
    let civil = at.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let day = civil.weekday().to_monday_zero_offset() as usize;
    day * 24 + civil.hour() as usize
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    fn track(name: &str, at: &str, props: serde_json::Value, touchpoint: Option<&str>) -> Event {
        let ctx = IntakeContext::new("2024-05-10T00:00:00Z".parse().unwrap(), "test");
        let mut message = json!({"type": "track", "userId": "u", "event": name, "timestamp": at, "properties": props});
        if let Some(t) = touchpoint {
            message["context"] = json!({"touchpoint": t, "channel": "store"});
        }
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    #[test]
    fn messages_and_interactions_are_counted_per_channel() {
        let events = [
            track("Email Sent", "2024-05-06T09:00:00Z", json!({}), None),
            track("Email Opened", "2024-05-06T20:15:00Z", json!({}), None),
            track(
                "Message Sent",
                "2024-05-07T09:00:00Z",
                json!({"channel": "WhatsApp"}),
                None,
            ),
            track(
                "Message Replied",
                "2024-05-07T09:05:00Z",
                json!({"channel": "whatsapp"}),
                None,
            ),
            track("SMS Bounced", "2024-05-07T09:00:00Z", json!({}), None),
            track(
                "Order Completed",
                "2024-05-08T17:00:00Z",
                json!({}),
                Some("store-rome-01"),
            ),
        ];
        let engagement = fold_engagement(&events);
        let email = &engagement["email"];
        assert_eq!((email.sent, email.opened), (1, 1));
        assert_eq!(email.hour_of_week[20], 1, "Monday 20:00 UTC");
        assert_eq!(engagement["whatsapp"].replied, 1);
        assert_eq!(engagement["sms"].failed, 1);
        assert_eq!(engagement["store"].interactions, 1);
        assert!(engagement["whatsapp"].response_rate() > engagement["sms"].response_rate());
    }
}
