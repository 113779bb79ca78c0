//! What the context card reads of a person's events, kept as their events arrive: the
//! newest few of each of its lists by time, as log positions, and the times of their
//! latest browsing. The card then reads back only those few events, whatever the
//! length of the person's history.
//!
//! Like every part of a profile's state, [`Recent`] takes in events in any order (a late
//! event with an old time takes its place by time) and merges with another person's
//! into what all their events together would give.

use std::cmp::Reverse;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::engagement::message_step;
use super::state::segment_change;
use crate::event::{Event, EventType};
use crate::log_time::LogTime;
use crate::small_map::insert_exact;

/// How many last interactions, and how many recent messages, the card shows.
pub const SHOWN: usize = 10;
/// How many days back an unhappy survey answer calls for a call back.
pub const UNHAPPY_DAYS: i64 = 30;
/// How many days of product and pricing views tell an interested prospect.
pub const BROWSING_DAYS: i64 = 14;
/// The most product and pricing views the card counts: a person with more shows as
/// having this many or more, and a profile holds the times of this many at the most.
pub const VIEWS_COUNTED: usize = 20;

/// The moment `days` days before `now`.
pub fn days_before(now: Timestamp, days: i64) -> Timestamp {
    now - SignedDuration::from_hours(24 * days)
}

/// The card's lists: a message (its lifecycle: sent, delivered, opened, ...) or an
/// interaction on any channel (an identify call is neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Line {
    Interaction,
    Message,
}

/// The card list an event is shown in, if any; segment membership changes are the
/// platform's bookkeeping and shown in none.
pub fn line_of(event: &Event) -> Option<Line> {
    if segment_change(event).is_some() {
        None
    } else if message_step(event).is_some() {
        Some(Line::Message)
    } else if event.event_type == EventType::Identify {
        None
    } else {
        Some(Line::Interaction)
    }
}

/// A survey answer that says the person is unhappy: NPS 6 or less, or CSAT 2 or less.
pub fn is_unhappy(event: &Event) -> bool {
    let properties = event.message.get("properties").and_then(Value::as_object);
    let score = |key: &str| properties?.get(key).and_then(Value::as_f64);
    segment_change(event).is_none()
        && (score("nps").is_some_and(|n| n <= 6.0) || score("csat").is_some_and(|c| c <= 2.0))
}

/// A product or pricing view: a page or screen view, or an event named `... Viewed`.
pub fn is_browsing(event: &Event) -> bool {
    segment_change(event).is_none()
        && (matches!(event.event_type, EventType::Page | EventType::Screen)
            || event.name.as_deref().is_some_and(|n| n.contains("Viewed")))
}

/// How many of `events` are product or pricing views made in the [`BROWSING_DAYS`]
/// before `now` (or after it), [`VIEWS_COUNTED`] at the most.
pub fn browsing_at<'a>(events: impl IntoIterator<Item = &'a Event>, now: Timestamp) -> usize {
    let since = days_before(now, BROWSING_DAYS);
    events
        .into_iter()
        .filter(|e| is_browsing(e) && e.timestamp >= since)
        .take(VIEWS_COUNTED)
        .count()
}

/// One event's place: its time as the log keeps it, and its log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Place {
    at: LogTime,
    seq: i64,
}

impl Place {
    fn of(seq: i64, event: &Event) -> Self {
        Place {
            at: LogTime::of(event.timestamp),
            seq,
        }
    }

    /// Newest first; log order between events of the same time (as the card sorts).
    fn rank(&self) -> (Reverse<LogTime>, i64) {
        (Reverse(self.at), self.seq)
    }
}

/// The newest [`SHOWN`] places of one list, newest first (a list exactly its length).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Newest(Box<[Place]>);

impl Newest {
    fn offer(&mut self, place: Place) {
        let at = self.0.partition_point(|p| p.rank() < place.rank());
        if at >= SHOWN {
            return;
        }
        put_within(&mut self.0, at, place, SHOWN);
    }
}

/// Puts `item` at `i` (below `cap`) in a list of at most `cap`: in place of its last
/// item when full, else grown by exactly one.
fn put_within<T>(list: &mut Box<[T]>, i: usize, item: T, cap: usize) {
    if list.len() < cap {
        insert_exact(list, i, item);
    } else {
        list[i..].rotate_right(1);
        list[i] = item;
    }
}

/// The times of a person's product and pricing views that the card may count, newest
/// first: the newest [`VIEWS_COUNTED`] of those from their newest back
/// [`BROWSING_DAYS`]; of those let go (older, or past the count), only the newest time.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Browsing {
    /// Exactly its length.
    held: Box<[LogTime]>,
    let_go: Option<LogTime>,
}

impl Browsing {
    const WINDOW: i64 = BROWSING_DAYS * 24 * 3_600 * 1_000_000;

    /// The moment a window's length before `at`.
    fn window_before(at: LogTime) -> LogTime {
        LogTime::from_micros(at.micros().saturating_sub(Self::WINDOW))
    }

    fn take(&mut self, at: LogTime) {
        let place = self.held.partition_point(|&t| t > at);
        let too_old = (self.held.first()).is_some_and(|&newest| at < Self::window_before(newest));
        if too_old || place >= VIEWS_COUNTED {
            self.let_go = self.let_go.max(Some(at));
            return;
        }
        if self.held.len() == VIEWS_COUNTED {
            self.let_go = self.let_go.max(self.held.last().copied());
        }
        put_within(&mut self.held, place, at, VIEWS_COUNTED);
        if place == 0 {
            let keep = self.held.partition_point(|&t| t >= Self::window_before(at));
            if let Some(&dropped) = self.held.get(keep) {
                self.let_go = self.let_go.max(Some(dropped));
                self.held = self.held[..keep].into();
            }
        }
    }

    /// How many at or after `since` ([`VIEWS_COUNTED`] at the most), when what is held
    /// can tell.
    fn since(&self, since: Timestamp) -> Option<usize> {
        let since = LogTime::of(since);
        let held = self.held.partition_point(|&t| t >= since);
        let more = self.let_go.is_some_and(|t| t >= since);
        (!more || held == VIEWS_COUNTED).then_some(held)
    }
}

/// What the card reads of a person's events: the log positions of their newest
/// [`SHOWN`] interactions and messages and of their newest unhappy survey answer, and
/// the times of their recent product and pricing views. See the module docs.
///
/// Memory: 16 bytes per position held (at most 21, in two lists of at most ten) and 8
/// bytes per view held ([`VIEWS_COUNTED`] at the most): bounded, whatever the length of
/// the person's history.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recent {
    interactions: Newest,
    messages: Newest,
    /// Boxed: few people have one.
    unhappy: Option<Box<Place>>,
    browsing: Browsing,
}

impl Recent {
    /// Takes in the event at log position `seq`.
    pub fn apply(&mut self, seq: i64, event: &Event) {
        let place = Place::of(seq, event);
        match line_of(event) {
            Some(Line::Interaction) => self.interactions.offer(place),
            Some(Line::Message) => self.messages.offer(place),
            None => {}
        }
        if is_unhappy(event) {
            self.keep_unhappy(place);
        }
        if is_browsing(event) {
            self.browsing.take(place.at);
        }
    }

    /// Keeps `place` as the newest unhappy answer if it is newer.
    fn keep_unhappy(&mut self, place: Place) {
        match &mut self.unhappy {
            Some(newest) if newest.rank() <= place.rank() => {}
            Some(newest) => **newest = place,
            None => self.unhappy = Some(Box::new(place)),
        }
    }

    /// Adds the recent events of a profile merged into this one.
    pub fn merge(&mut self, other: Recent) {
        for place in other.interactions.0.into_iter() {
            self.interactions.offer(place);
        }
        for place in other.messages.0.into_iter() {
            self.messages.offer(place);
        }
        if let Some(place) = other.unhappy {
            self.keep_unhappy(*place);
        }
        for at in other.browsing.held.into_iter() {
            self.browsing.take(at);
        }
        self.browsing.let_go = self.browsing.let_go.max(other.browsing.let_go);
    }

    /// The log positions of the events the card shows or weighs, ascending: the last
    /// [`SHOWN`] interactions, the last [`SHOWN`] messages, the newest unhappy answer.
    pub fn card_events(&self) -> Vec<i64> {
        let mut seqs: Vec<i64> = self
            .interactions
            .0
            .iter()
            .chain(self.messages.0.iter())
            .chain(self.unhappy.as_deref())
            .map(|p| p.seq)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }

    /// How many product or pricing views the person made in the [`BROWSING_DAYS`]
    /// before `now` (or after it), [`VIEWS_COUNTED`] at the most, as [`browsing_at`]
    /// counts them over all their events;
    /// `None` when views it let go may count (possible only when a view is dated after
    /// `now`): then count them over the person's events with [`browsing_at`].
    pub fn browsing_at(&self, now: Timestamp) -> Option<usize> {
        self.browsing.since(days_before(now, BROWSING_DAYS))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    fn view(at: Timestamp) -> Event {
        let ctx = IntakeContext::new(at, "test");
        let message = json!({"type": "page", "userId": "u", "name": "Prices",
            "timestamp": at.to_string()});
        normalise(message.as_object().unwrap().clone(), &ctx, || "m".into()).unwrap()
    }

    #[test]
    fn views_are_counted_up_to_the_cap_and_held_no_further() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let minute = SignedDuration::from_mins(1);
        let mut recent = Recent::default();
        let mut events = Vec::new();
        for i in 0..500_i32 {
            // Out of order, as late events come: newest and oldest interleaved.
            let at = now - minute * if i % 2 == 0 { i } else { 1_000 - i };
            let event = view(at);
            recent.apply(i64::from(i), &event);
            events.push(event);
            let expected = browsing_at(&events, now);
            assert_eq!(recent.browsing_at(now), Some(expected), "after {i} views");
            assert!(recent.browsing.held.len() <= VIEWS_COUNTED);
        }
        assert_eq!(browsing_at(&events, now), VIEWS_COUNTED);
        // Read earlier: views after the moment count too, those let go among them.
        let early = now - minute * 995;
        assert_eq!(browsing_at(&events, early), VIEWS_COUNTED);
        assert_eq!(recent.browsing_at(early), Some(VIEWS_COUNTED));
    }

    #[test]
    fn below_the_cap_the_count_is_exact_and_merges_add_up() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let day = SignedDuration::from_hours(24);
        let (mut a, mut b) = (Recent::default(), Recent::default());
        let mut events = Vec::new();
        for i in 0..12_i32 {
            let event = view(now - day * (i * 2));
            let person = if i % 3 == 0 { &mut a } else { &mut b };
            person.apply(i64::from(i), &event);
            events.push(event);
        }
        a.merge(b);
        // Views 0, 2, ..., 14 days back: eight in the last fourteen days.
        assert_eq!(browsing_at(&events, now), 8);
        assert_eq!(a.browsing_at(now), Some(8));
        // A month earlier, the views let go as too old may count: the card counts them
        // over the person's events instead.
        assert_eq!(a.browsing_at(now - day * 30), None);
    }
}
