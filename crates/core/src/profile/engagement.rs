//! Per-channel engagement: messages sent to the person and how they responded, and the
//! interactions they started themselves.

use std::borrow::Borrow;
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
/// channel, millions of times over), and stop at their maximum. What happened to the
/// messages sent to them is held out of line, only once a message was: most channels
/// a person uses are ones they start interactions on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelEngagement {
    /// Events the person started on this channel (visits, calls, purchases, chats).
    pub interactions: u32,
    pub last_engagement: Option<LogTime>,
    /// Opens, clicks, replies and interactions by hour of the week (UTC, Monday 00:00 = 0).
    pub hour_of_week: HourCounts,
    messages: Option<Box<MessageCounts>>,
}

/// What happened to the messages sent to a person on one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub sent: u32,
    pub delivered: u32,
    pub opened: u32,
    pub clicked: u32,
    pub replied: u32,
    pub failed: u32,
}

impl MessageCounts {
    fn merge(&mut self, other: &MessageCounts) {
        self.sent = self.sent.saturating_add(other.sent);
        self.delivered = self.delivered.saturating_add(other.delivered);
        self.opened = self.opened.saturating_add(other.opened);
        self.clicked = self.clicked.saturating_add(other.clicked);
        self.replied = self.replied.saturating_add(other.replied);
        self.failed = self.failed.saturating_add(other.failed);
    }
}

/// Both serialised shapes (JSON and snapshots) are the flat record it always was:
/// the message counts first, then the person's own. Written with the hours borrowed,
/// read with them owned.
#[derive(Serialize, serde::Deserialize)]
#[serde(bound(serialize = "H: Serialize + Borrow<HourCounts>"))]
struct Flat<H> {
    sent: u32,
    delivered: u32,
    opened: u32,
    clicked: u32,
    replied: u32,
    failed: u32,
    interactions: u32,
    last_engagement: Option<LogTime>,
    // Last, with a default: in a snapshot (fields by position) an empty one is left out.
    #[serde(skip_serializing_if = "no_hours", default)]
    hour_of_week: H,
}

fn no_hours<H: Borrow<HourCounts>>(hours: &H) -> bool {
    hours.borrow().is_empty()
}

impl Serialize for ChannelEngagement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.messages();
        Flat {
            sent: m.sent,
            delivered: m.delivered,
            opened: m.opened,
            clicked: m.clicked,
            replied: m.replied,
            failed: m.failed,
            interactions: self.interactions,
            last_engagement: self.last_engagement,
            hour_of_week: &self.hour_of_week,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ChannelEngagement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let flat = Flat::<HourCounts>::deserialize(d)?;
        let messages = MessageCounts {
            sent: flat.sent,
            delivered: flat.delivered,
            opened: flat.opened,
            clicked: flat.clicked,
            replied: flat.replied,
            failed: flat.failed,
        };
        Ok(ChannelEngagement {
            interactions: flat.interactions,
            last_engagement: flat.last_engagement,
            hour_of_week: flat.hour_of_week,
            messages: (messages != MessageCounts::default()).then(|| Box::new(messages)),
        })
    }
}

/// Counts by hour of the week (0–167), kept sparse: most people engage in a few hours.
/// Each hour and its count packed in 4 bytes (the hour in the top 8 bits, so the packed
/// values sort by hour; the count in the low 24), held per person and channel millions
/// of times over: a count stops at [`HourCounts::MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourCounts(Box<[u32]>);

impl HourCounts {
    /// The most an hour counts.
    pub const MAX: u32 = (1 << 24) - 1;

    /// Adds `n` to `hour` (0–167; others are ignored).
    pub fn add(&mut self, hour: usize, n: u32) {
        let Ok(hour) = u8::try_from(hour) else {
            return;
        };
        if hour >= 168 {
            return;
        }
        match self
            .0
            .binary_search_by_key(&hour, |&packed| hour_of(packed))
        {
            Ok(i) => {
                let count = count_of(self.0[i]).saturating_add(n).min(Self::MAX);
                self.0[i] = pack(hour, count);
            }
            Err(i) => insert_exact(&mut self.0, i, pack(hour, n.min(Self::MAX))),
        }
    }

    /// The count of `hour`.
    pub fn get(&self, hour: usize) -> u32 {
        self.pairs()
            .find(|(h, _)| usize::from(*h) == hour)
            .map_or(0, |(_, n)| n)
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds these counts into a dense histogram of 168 hours.
    pub fn add_to(&self, dense: &mut [u32]) {
        for (h, n) in self.pairs() {
            if let Some(slot) = dense.get_mut(usize::from(h)) {
                *slot = slot.saturating_add(n);
            }
        }
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &HourCounts) {
        for (h, n) in other.pairs() {
            self.add(usize::from(h), n);
        }
    }

    /// Each hour counted and its count, hours ascending.
    fn pairs(&self) -> impl Iterator<Item = (u8, u32)> + '_ {
        self.0
            .iter()
            .map(|&packed| (hour_of(packed), count_of(packed)))
    }
}

fn pack(hour: u8, count: u32) -> u32 {
    (u32::from(hour) << 24) | count
}

fn hour_of(packed: u32) -> u8 {
    (packed >> 24) as u8
}

fn count_of(packed: u32) -> u32 {
    packed & HourCounts::MAX
}

/// A map from the hour (as text) to its count in human-readable formats (JSON); the
/// (hour, count) pairs in binary ones (snapshots).
impl Serialize for HourCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_map(self.pairs().map(|(h, n)| (h.to_string(), n)))
        } else {
            s.collect_seq(self.pairs())
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
                return Ok(HourCounts(
                    pairs
                        .into_iter()
                        .map(|(h, n)| pack(h, n.min(Self::MAX)))
                        .collect(),
                ));
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
    /// What happened to the messages sent on this channel (all 0 when none was).
    pub fn messages(&self) -> MessageCounts {
        self.messages.as_deref().copied().unwrap_or_default()
    }

    fn messages_mut(&mut self) -> &mut MessageCounts {
        self.messages.get_or_insert_default()
    }

    /// Adds another profile's engagement on the same channel (a merge).
    pub fn merge(&mut self, other: &ChannelEngagement) {
        if let Some(theirs) = &other.messages {
            self.messages_mut().merge(theirs);
        }
        self.interactions = self.interactions.saturating_add(other.interactions);
        self.last_engagement = self.last_engagement.max(other.last_engagement);
        self.hour_of_week.merge(&other.hour_of_week);
    }

    /// Responses (opens, clicks, replies) per message sent, with a prior of one response
    /// in four sends so that a channel never tried is not ranked last or first.
    pub fn response_rate(&self) -> f64 {
        let m = self.messages();
        let sent = f64::from(m.sent);
        (f64::from(m.opened.max(m.clicked)) + f64::from(m.replied)) / (sent + 4.0)
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
        "sent" => &mut entry.messages_mut().sent,
        "delivered" => &mut entry.messages_mut().delivered,
        "failed" => &mut entry.messages_mut().failed,
        "opened" => &mut entry.messages_mut().opened,
        "clicked" => &mut entry.messages_mut().clicked,
        "replied" => &mut entry.messages_mut().replied,
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

    /// Messages on three channels (sent, opened, replied, bounced) and a purchase in a
    /// store.
    fn messages_and_a_purchase() -> [Event; 6] {
        [
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
        ]
    }

    #[test]
    fn messages_and_interactions_are_counted_per_channel() {
        let events = messages_and_a_purchase();
        let engagement = fold_engagement(&events);
        let email = &engagement["email"];
        assert_eq!((email.messages().sent, email.messages().opened), (1, 1));
        assert_eq!(email.hour_of_week.get(20), 1, "Monday 20:00 UTC");
        assert_eq!(engagement["whatsapp"].messages().replied, 1);
        assert_eq!(engagement["sms"].messages().failed, 1);
        assert_eq!(engagement["store"].interactions, 1);
        assert_eq!(engagement["store"].messages(), MessageCounts::default());
        assert!(engagement["whatsapp"].response_rate() > engagement["sms"].response_rate());
    }

    /// The message counts are held out of line, but both serialised shapes stay the flat
    /// record they were (the API's JSON, and snapshots field by field).
    #[test]
    fn engagement_serialises_as_the_flat_record() {
        let engagement = fold_engagement(&messages_and_a_purchase());
        let email = serde_json::to_value(&engagement["email"]).unwrap();
        assert_eq!(
            email,
            json!({"sent": 1, "delivered": 0, "opened": 1, "clicked": 0, "replied": 0,
                "failed": 0, "interactions": 0, "last_engagement": email["last_engagement"],
                "hour_of_week": {"20": 1}})
        );
        let store = serde_json::to_value(&engagement["store"]).unwrap();
        assert_eq!(
            (store["sent"].clone(), store["interactions"].clone()),
            (json!(0), json!(1))
        );
        for e in engagement.values() {
            let json: ChannelEngagement =
                serde_json::from_value(serde_json::to_value(e).unwrap()).unwrap();
            let binary: ChannelEngagement =
                rmp_serde::from_slice(&rmp_serde::to_vec(e).unwrap()).unwrap();
            assert_eq!((&json, &binary), (e, e));
        }
    }
}
