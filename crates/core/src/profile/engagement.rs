//! Per-channel engagement: messages sent to the person and how they responded, and the
//! interactions they started themselves.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::channel::ChannelKind;
use crate::event::Event;
use crate::log_time::LogTime;
use crate::name::Name;
use crate::platform_events::MessageOutcome;
use crate::small_map::{SmallMap, insert_exact};

/// How a person engages on one channel. Counts are 32-bit (held per person and
/// channel, millions of times over), and stop at their maximum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ChannelEngagement {
    pub sent: u32,
    pub delivered: u32,
    pub opened: u32,
    pub clicked: u32,
    pub replied: u32,
    pub failed: u32,
    /// Events the person started on this channel (visits, calls, purchases, chats).
    pub interactions: u32,
    pub last_engagement: Option<LogTime>,
    /// Opens, clicks, replies and interactions by hour of the week (UTC, Monday 00:00 = 0).
    // Last, with a default: in a snapshot (fields by position) an empty one is left out.
    #[serde(skip_serializing_if = "HourCounts::is_empty", default)]
    pub hour_of_week: HourCounts,
}

/// Counts by hour of the week (0–167), kept sparse: most people engage in a few hours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourCounts(Box<[(u8, u32)]>);

impl HourCounts {
    /// Adds `n` to `hour` (0–167; others are ignored).
    pub fn add(&mut self, hour: usize, n: u32) {
        let Ok(hour) = u8::try_from(hour) else {
            return;
        };
        if hour >= 168 {
            return;
        }
        match self.0.binary_search_by_key(&hour, |(h, _)| *h) {
            Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(n),
            Err(i) => insert_exact(&mut self.0, i, (hour, n)),
        }
    }

    /// The count of `hour`.
    pub fn get(&self, hour: usize) -> u32 {
        self.0
            .iter()
            .find(|(h, _)| usize::from(*h) == hour)
            .map_or(0, |(_, n)| *n)
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds these counts into a dense histogram of 168 hours.
    pub fn add_to(&self, dense: &mut [u32]) {
        for (h, n) in &self.0 {
            if let Some(slot) = dense.get_mut(usize::from(*h)) {
                *slot = slot.saturating_add(*n);
            }
        }
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &HourCounts) {
        for (h, n) in other.0.iter() {
            self.add(usize::from(*h), *n);
        }
    }
}

/// A map from the hour (as text) to its count in human-readable formats (JSON); the
/// (hour, count) pairs in binary ones (snapshots).
impl Serialize for HourCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_map(self.0.iter().map(|(h, n)| (h.to_string(), n)))
        } else {
            self.0.serialize(s)
        }
    }
}

/// Read back from what [`Serialize`] writes.
impl<'de> serde::Deserialize<'de> for HourCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            let pairs = Vec::<(u8, u32)>::deserialize(d)?;
            // As written: hours ascending, each once, in range (taken as they are).
            if pairs.is_sorted_by(|(a, _), (b, _)| a < b)
                && pairs.last().is_none_or(|(h, _)| *h < 168)
            {
                return Ok(HourCounts(pairs.into_boxed_slice()));
            }
            let mut counts = HourCounts::default();
            for (hour, n) in pairs {
                counts.add(usize::from(hour), n);
            }
            return Ok(counts);
        }
        let by_hour = std::collections::BTreeMap::<String, u32>::deserialize(d)?;
        let mut counts = HourCounts::default();
        for (hour, n) in by_hour {
            let hour = hour
                .parse::<usize>()
                .map_err(|_| serde::de::Error::custom(format!("{hour:?} is not an hour")))?;
            counts.add(hour, n);
        }
        Ok(counts)
    }
}

impl ChannelEngagement {
    /// Adds another profile's engagement on the same channel (a merge).
    pub fn merge(&mut self, other: &ChannelEngagement) {
        self.sent = self.sent.saturating_add(other.sent);
        self.delivered = self.delivered.saturating_add(other.delivered);
        self.opened = self.opened.saturating_add(other.opened);
        self.clicked = self.clicked.saturating_add(other.clicked);
        self.replied = self.replied.saturating_add(other.replied);
        self.failed = self.failed.saturating_add(other.failed);
        self.interactions = self.interactions.saturating_add(other.interactions);
        self.last_engagement = self.last_engagement.max(other.last_engagement);
        self.hour_of_week.merge(&other.hour_of_week);
    }

    /// Responses (opens, clicks, replies) per message sent, with a prior of one response
    /// in four sends so that a channel never tried is not ranked last or first.
    pub fn response_rate(&self) -> f64 {
        let sent = f64::from(self.sent);
        (f64::from(self.opened.max(self.clicked)) + f64::from(self.replied)) / (sent + 4.0)
            + 0.25 * 4.0 / (sent + 4.0)
    }
}

/// What a message lifecycle event (`Email Opened`, `Message Sent` with
/// `properties.channel`) says: its channel and step; `None` for other events.
pub fn message_step(event: &Event) -> Option<(String, &'static str)> {
    let (kind, verb) = event.name.as_deref()?.rsplit_once(' ')?;
    let step = match MessageOutcome::from_verb(verb)? {
        MessageOutcome::Sent => "sent",
        MessageOutcome::Delivered => "delivered",
        MessageOutcome::Opened | MessageOutcome::Read => "opened",
        MessageOutcome::Clicked => "clicked",
        MessageOutcome::Replied => "replied",
        MessageOutcome::Failed | MessageOutcome::Bounced => "failed",
    };
    let from_kind = if ["message", "notification"]
        .iter()
        .any(|k| kind.eq_ignore_ascii_case(k))
    {
        None
    } else {
        Some(ChannelKind::recognise(kind)?)
    };
    let channel = event
        .get("properties.channel")
        .and_then(Value::as_str)
        .map(crate::channel::canonical_name)
        .or(from_kind.map(|k| k.as_str().to_string()))
        .or(event.channel.clone())?;
    Some((channel, step))
}

/// Counts one event into a person's per-channel engagement.
pub fn count_engagement(by_channel: &mut SmallMap<Name, ChannelEngagement>, event: &Event) {
    let message = message_step(event);
    let (channel, step) = match (&message, event.channel.as_deref()) {
        (Some((channel, step)), _) => (channel.as_str(), *step),
        (None, Some(channel)) => (channel, "interaction"),
        (None, None) => return,
    };
    // Looked up by text first: the shared name is taken only for a channel new to them.
    let entry = match by_channel.get_mut(channel) {
        Some(entry) => entry,
        None => by_channel.or_default(Name::from(channel)),
    };
    let counter = match step {
        "sent" => &mut entry.sent,
        "delivered" => &mut entry.delivered,
        "failed" => &mut entry.failed,
        "opened" => &mut entry.opened,
        "clicked" => &mut entry.clicked,
        "replied" => &mut entry.replied,
        _ => &mut entry.interactions,
    };
    *counter = counter.saturating_add(1);
    let engaged = !matches!(step, "sent" | "delivered" | "failed");
    if engaged {
        entry.last_engagement = entry
            .last_engagement
            .max(Some(LogTime::of(event.timestamp)));
        entry.hour_of_week.add(hour_of_week(event.timestamp), 1);
    }
}

/// Per-channel engagement from the person's events.
pub fn fold_engagement<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<String, ChannelEngagement> {
    let mut by_channel = SmallMap::default();
    for event in events {
        count_engagement(&mut by_channel, event);
    }
    by_channel
        .into_pairs()
        .into_iter()
        .map(|(channel, e)| (channel.to_string(), e))
        .collect()
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
        assert_eq!(email.hour_of_week.get(20), 1, "Monday 20:00 UTC");
        assert_eq!(engagement["whatsapp"].replied, 1);
        assert_eq!(engagement["sms"].failed, 1);
        assert_eq!(engagement["store"].interactions, 1);
        assert!(engagement["whatsapp"].response_rate() > engagement["sms"].response_rate());
    }
}
