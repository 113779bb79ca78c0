//! Properties of the policy gate (`policy::decide`, with `choose_channel` and
//! `best_send_time` as `unavoce-engagement`'s gate calls them), over random consent
//! ledgers, send histories, policies and time zones:
//!
//! - no promotional message passes when the latest consent statement that applies to
//!   its channel is a withdrawal (or there is none), whatever the order and channels of
//!   the statements; one that applies and grants lets it through;
//! - no frequency cap is ever exceeded: every window of every cap (rolling hours, or
//!   calendar days in the person's time zone) holds at most its maximum of the messages
//!   the gate let out, whenever they were asked for and whenever they go out;
//! - nothing goes out inside quiet hours in the person's local time, across daylight
//!   saving changes, and a held message waits only until quiet hours end.
//!
//! `PROPTEST_CASES` runs more cases than the defaults here.

use std::collections::BTreeMap;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};
use unavoce_core::Event;
use unavoce_core::platform_events;
use unavoce_core::policy::{
    CapConfig, ConsentMode, MESSAGE_CHANNELS, Outcome, OutgoingMessage, PastSend, Policies,
    PolicyConfig, QuietHoursConfig, best_send_time, choose_channel, decide,
};
use unavoce_core::profile::{ProfileFacts, ProfileState, default_computed_traits};
use unavoce_core::segment::{IntakeContext, normalise};

/// The cases of each property: `PROPTEST_CASES`, else `default`.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn start() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

/// Time zones with daylight saving changes at different local hours (02:00, 03:00,
/// 02:45 in Chatham, midnight in Santiago), in both hemispheres, and two without.
const ZONES: [&str; 7] = [
    "Europe/Rome",
    "America/New_York",
    "Australia/Sydney",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Kolkata",
    "UTC",
];

/// Messages (user `u`) as the intake stores them, in log order.
fn events(messages: Vec<Map<String, Value>>) -> Vec<Event> {
    let ctx = IntakeContext::new("2030-01-01T00:00:00Z".parse().unwrap(), "test");
    messages
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            m.insert("userId".into(), "u".into());
            m.entry("timestamp").or_insert(json!(start().to_string()));
            normalise(m, &ctx, || format!("m{i}")).expect("a valid message")
        })
        .collect()
}

/// A person's facts at `now`, from messages in log order.
fn person(messages: Vec<Map<String, Value>>, now: Timestamp) -> ProfileFacts {
    let computed = default_computed_traits();
    ProfileState::fold(&events(messages), &computed).facts(&computed, now)
}

/// Someone who consented to everything everywhere, in `zone` (or the default).
fn consenting(zone: Option<&str>) -> ProfileFacts {
    let mut messages = vec![
        platform_events::consent("promotional", None, true, Map::new()),
        platform_events::consent("service", None, true, Map::new()),
    ];
    if let Some(zone) = zone {
        messages.push(platform_events::profile_update(
            json!({"timezone": zone}).as_object().unwrap().clone(),
        ));
    }
    person(messages, start())
}

fn message(purpose: &str, channel: &str, not_before: Option<Timestamp>) -> OutgoingMessage {
    OutgoingMessage {
        message: "offer".into(),
        purpose: purpose.into(),
        channel: channel.into(),
        journey: None,
        not_before,
    }
}

// ---------------------------------------------------------------------------------
// Consent

/// Channels as people and tools spell them, with the channel they mean.
const SPELLINGS: [(&str, &str); 9] = [
    ("email", "email"),
    ("E-mail", "email"),
    ("newsletter", "email"),
    ("sms", "sms"),
    ("Text", "sms"),
    ("WhatsApp", "whatsapp"),
    ("push", "push"),
    ("Notification", "push"),
    ("rcs", "rcs"),
];

/// One consent statement: granted or not, on a channel (by its spelling) or all, at an
/// hour (few hours: statements often tie), for a purpose, and the event name it uses.
#[derive(Debug, Clone)]
struct Statement {
    granted: bool,
    channel: Option<usize>,
    hour: i64,
    promotional: bool,
    name: usize,
}

fn statement() -> impl Strategy<Value = Statement> {
    (
        any::<bool>(),
        prop::option::weighted(0.6, 0..SPELLINGS.len()),
        0i64..6,
        prop::bool::weighted(0.8),
        0usize..4,
    )
        .prop_map(|(granted, channel, hour, promotional, name)| Statement {
            granted,
            channel,
            hour,
            promotional,
            name,
        })
}

fn statement_message(s: &Statement) -> Map<String, Value> {
    let purpose = if s.promotional {
        ["promotional", "Promotional"][s.name % 2]
    } else {
        "service"
    };
    let channel = s.channel.map(|c| SPELLINGS[c].0);
    let mut m = platform_events::consent(purpose, channel, s.granted, Map::new());
    // Other tools' names for the same statements.
    let name = match (s.name, s.granted) {
        (1, true) => Some("Consent Granted"),
        (1, false) => Some("Consent Revoked"),
        (2, true) => Some("Subscribed"),
        (2, false) => Some("Unsubscribed"),
        (3, _) => Some("Consent Updated"),
        _ => None,
    };
    if let Some(name) = name {
        m.insert("event".into(), name.into());
        let props = m["properties"].as_object_mut().unwrap();
        props.insert("granted".into(), s.granted.into());
    }
    m.insert(
        "timestamp".into(),
        json!((start() + SignedDuration::from_hours(s.hour)).to_string()),
    );
    m
}

/// Whether the statement that decides promotions (or service messages) on `channel`
/// grants them: the latest of those made for it or for every channel, a withdrawal
/// winning at equal times. `None`: nothing said.
fn deciding(statements: &[Statement], promotional: bool, channel: &str) -> Option<bool> {
    statements
        .iter()
        .filter(|s| s.promotional == promotional)
        .filter(|s| s.channel.is_none_or(|c| SPELLINGS[c].1 == channel))
        .map(|s| (s.hour, !s.granted))
        .max()
        .map(|(_, withdrawn)| !withdrawn)
}

proptest! {
    #![proptest_config(config(512))]

    /// A promotion on a channel passes the gate only when the latest statement that
    /// applies there grants it — whatever the order the statements arrived in, and
    /// whether they were made by one person or by two people found to be one.
    #[test]
    fn no_promotion_passes_after_a_withdrawal_that_applies(
        statements in prop::collection::vec(statement(), 0..12),
        split in prop::collection::vec(any::<bool>(), 12),
        hour in 0i64..48,
        zone in 0..ZONES.len(),
    ) {
        let now = start() + SignedDuration::from_hours(24 + hour);
        let mut messages: Vec<Map<String, Value>> = statements.iter().map(statement_message).collect();
        messages.push(platform_events::profile_update(
            json!({"timezone": ZONES[zone]}).as_object().unwrap().clone(),
        ));
        // One person's ledger, or two people's merged into one.
        let computed = default_computed_traits();
        let events = events(messages);
        let mut people = [ProfileState::default(), ProfileState::default()];
        for (seq, event) in events.iter().enumerate() {
            people[usize::from(split.get(seq).copied().unwrap_or(false))].apply(&computed, seq as i64, event);
        }
        let [mut one, other] = people;
        one.merge(other);
        let facts = one.facts(&computed, now);

        let policies = Policies::new(&PolicyConfig::default()).unwrap();
        for (channel, _, _) in MESSAGE_CHANNELS {
            let refused = |purpose: &str| {
                let decision = decide(&policies, &message(purpose, channel, None), &facts, &[], now);
                let refused = decision.reasons.iter().any(|r| r.code == "no_consent");
                (refused && decision.outcome == Outcome::Suppress, decision)
            };
            // Promotions need a yes.
            let (no, decision) = refused("promotional");
            let granted = deciding(&statements, true, channel) == Some(true);
            prop_assert_eq!(no, !granted, "{}: {:?}", channel, decision);
            // Service messages go out unless withdrawn.
            let (no, decision) = refused("service");
            let withdrawn = deciding(&statements, false, channel) == Some(false);
            prop_assert_eq!(no, withdrawn, "service on {}: {:?}", channel, decision);
        }
        // Channel `auto` never picks, or falls back to, a channel withdrawn there.
        let everything = ["email", "phone", "device_id"];
        if let Ok((first, fallbacks)) =
            choose_channel(&policies, "promotional", "auto", &facts, &everything, &[])
        {
            for channel in std::iter::once(&first).chain(&fallbacks) {
                prop_assert_eq!(deciding(&statements, true, channel), Some(true), "{}", channel);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Frequency caps

/// Purposes and channels a cap may narrow to, and messages may have.
const PURPOSES: [&str; 2] = ["promotional", "service"];
const CHANNELS: [&str; 3] = ["email", "sms", "push"];

fn cap() -> impl Strategy<Value = CapConfig> {
    (
        1u32..4,
        prop::option::of(0..CHANNELS.len()),
        prop::option::of(0..PURPOSES.len()),
        prop_oneof![
            (1u32..100).prop_map(|h| (Some(h), None)),
            (1u32..8).prop_map(|d| (None, Some(d)))
        ],
    )
        .prop_map(|(max, channel, purpose, (hours, days))| CapConfig {
            max,
            channel: channel.map(|c| CHANNELS[c].to_string()),
            purpose: purpose.map(|p| PURPOSES[p].to_string()),
            hours,
            days,
        })
}

/// Quiet hours on the quarter hour (so some start or end inside a daylight saving
/// change), for every purpose or promotions only; or none.
fn quiet_hours() -> impl Strategy<Value = Option<QuietHoursConfig>> {
    let time = || (0i8..24, 0i8..4).prop_map(|(h, q)| format!("{h:02}:{:02}", q * 15));
    prop::option::weighted(
        0.8,
        prop_oneof![
            Just(("21:00".to_string(), "08:00".to_string())),
            (time(), time()),
        ]
        .prop_flat_map(|(from, to)| (Just(from), Just(to), any::<bool>()))
        .prop_map(|(from, to, promotions_only)| QuietHoursConfig {
            from,
            to,
            purposes: if promotions_only {
                vec!["promotional".into()]
            } else {
                Vec::new()
            },
        }),
    )
}

fn policies(caps: Vec<CapConfig>, quiet_hours: Option<QuietHoursConfig>) -> Policies {
    Policies::new(&PolicyConfig {
        consent: BTreeMap::from([("promotional".to_string(), ConsentMode::Explicit)]),
        suppressions: Vec::new(),
        caps,
        quiet_hours,
        ..PolicyConfig::default()
    })
    .expect("valid policies")
}

/// A message asked for: minutes after the previous ask, what, and when at the earliest
/// (now, a moment later, or the person's best hour).
#[derive(Debug, Clone)]
struct Ask {
    after: i64,
    purpose: usize,
    channel: usize,
    not_before: Option<i64>,
    best_hour: bool,
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        prop_oneof![0i64..90, 0i64..3 * 24 * 60],
        0..PURPOSES.len(),
        0..CHANNELS.len(),
        prop::option::weighted(0.25, 0i64..48 * 60),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(after, purpose, channel, not_before, best_hour)| Ask {
            after,
            purpose,
            channel,
            not_before,
            best_hour,
        })
}

/// The most messages of `sent` that `cap` counts in one of its windows: `hours` long
/// (both ends included, as the gate counts), or `days` calendar days in `zone`.
fn fullest_window(cap: &CapConfig, sent: &[PastSend], zone: &TimeZone) -> usize {
    let counted: Vec<&PastSend> = sent
        .iter()
        .filter(|s| cap.channel.as_ref().is_none_or(|c| *c == s.channel))
        .filter(|s| cap.purpose.as_ref().is_none_or(|p| *p == s.purpose))
        .collect();
    let day = |at: Timestamp| at.to_zoned_datetime(zone.clone()).date();
    counted
        .iter()
        .map(|first| match (cap.hours, cap.days) {
            (Some(hours), _) => {
                let end = first.at + SignedDuration::from_hours(i64::from(hours));
                counted
                    .iter()
                    .filter(|s| s.at >= first.at && s.at <= end)
                    .count()
            }
            (_, Some(days)) => {
                let from = day(first.at);
                let to = from
                    .checked_add(jiff::Span::new().days(i64::from(days) - 1))
                    .unwrap();
                counted
                    .iter()
                    .filter(|s| (from..=to).contains(&day(s.at)))
                    .count()
            }
            _ => unreachable!("a cap has a window"),
        })
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(config(512))]

    /// Messages asked for one after another — now, later, or at the person's best hour,
    /// some held for quiet hours — go into the history the gate reads when they pass.
    /// No window of any cap ever holds more than its maximum of them.
    #[test]
    fn no_frequency_cap_is_ever_exceeded(
        caps in prop::collection::vec(cap(), 1..4),
        quiet in quiet_hours(),
        zone in prop::option::weighted(0.8, 0..ZONES.len()),
        asks in prop::collection::vec(ask(), 1..40),
        habits in prop::collection::vec((0usize..168, 1u32..5), 0..6),
    ) {
        let policies = policies(caps.clone(), quiet);
        let person = consenting(zone.map(|z| ZONES[z]));
        let zone = policies.time_zone(&person);
        let mut hours = vec![0u32; 168];
        for (hour, n) in habits {
            hours[hour] += n;
        }
        let mut now = start();
        let mut sent: Vec<PastSend> = Vec::new();
        for ask in asks {
            now += SignedDuration::from_mins(ask.after);
            let (purpose, channel) = (PURPOSES[ask.purpose], CHANNELS[ask.channel]);
            let mut m = message(purpose, channel, ask.not_before.map(|m| now + SignedDuration::from_mins(m)));
            if ask.best_hour {
                m.not_before = Some(best_send_time(&policies, &m, &zone, &hours, &[], now));
            }
            // What the gate reads: every decision that goes out, at its send time.
            let history: Vec<PastSend> = sent
                .iter()
                .map(|s| PastSend { in_flight: s.at > now, ..s.clone() })
                .collect();
            let decision = decide(&policies, &m, &person, &history, now);
            if decision.outcome.goes_out() {
                sent.push(PastSend {
                    at: decision.send_at.expect("a send time"),
                    channel: channel.into(),
                    purpose: purpose.into(),
                    journey: None,
                    in_flight: false,
                });
                for cap in &caps {
                    let fullest = fullest_window(cap, &sent, &zone);
                    prop_assert!(
                        fullest <= cap.max as usize,
                        "{:?}: {} messages in a window after {:?} at {}; sent {:?}",
                        cap, fullest, decision, now, sent
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Quiet hours

fn is_quiet(from: Time, to: Time, at: Timestamp, zone: &TimeZone) -> bool {
    let t = at.to_zoned_datetime(zone.clone()).time();
    if from <= to {
        t >= from && t < to
    } else {
        t >= from || t < to
    }
}

/// The daylight saving changes of `zone` in 2025 and 2026 (none for zones without).
fn changes(zone: &TimeZone) -> Vec<Timestamp> {
    let until: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
    zone.following(start())
        .map(|t| t.timestamp())
        .take_while(|t| *t < until)
        .collect()
}

proptest! {
    #![proptest_config(config(2048))]

    /// Asked for around a daylight saving change (or at any time), a message that goes
    /// out goes out outside quiet hours in the person's local time, and one held waits
    /// only until they end: every minute from when it was wanted to when it goes is
    /// quiet.
    #[test]
    fn nothing_goes_out_inside_quiet_hours(
        zone in 0..5usize,
        change in any::<prop::sample::Index>(),
        quiet in quiet_hours(),
        near_change in prop::option::weighted(0.5, (-8i64..=8, -8i64..=8, any::<bool>())),
        offset in prop_oneof![-36i64 * 60..36 * 60, -180i64..180],
        seconds in prop_oneof![Just(0i64), 0i64..60],
        purpose in 0..PURPOSES.len(),
        not_before in prop::option::weighted(0.2, 0i64..30 * 60),
        best_hour in prop::option::weighted(0.2, prop::collection::vec((0usize..168, 1u32..5), 1..4)),
    ) {
        let Some(mut quiet) = quiet else { return Ok(()) };
        let person = consenting(Some(ZONES[zone]));
        let tz = TimeZone::get(ZONES[zone]).unwrap();
        let changes = changes(&tz);
        let change = changes[change.index(changes.len())];
        // Often quiet hours that start or end near the change, in the hour the clocks
        // skip or repeat: local times a few quarter hours either side of it.
        if let Some((from, to, both)) = near_change {
            let local = |quarters: i64| {
                let t = (change + SignedDuration::from_mins(15 * quarters)).to_zoned_datetime(tz.clone()).time();
                format!("{:02}:{:02}", t.hour(), t.minute())
            };
            quiet.to = local(to);
            if both {
                quiet.from = local(from);
            }
        }
        let (from, to): (Time, Time) = (quiet.from.parse().unwrap(), quiet.to.parse().unwrap());
        let applies = quiet.purposes.is_empty() || quiet.purposes.iter().any(|p| p == PURPOSES[purpose]);
        let policies = policies(Vec::new(), Some(quiet));
        let now = change + SignedDuration::from_mins(offset) + SignedDuration::from_secs(seconds);
        let mut m = message(PURPOSES[purpose], "email", not_before.map(|m| now + SignedDuration::from_mins(m)));
        if let Some(habits) = best_hour {
            let mut hours = vec![0u32; 168];
            for (hour, n) in habits {
                hours[hour] += n;
            }
            m.not_before = Some(best_send_time(&policies, &m, &tz, &hours, &[], now));
        }
        let decision = decide(&policies, &m, &person, &[], now);
        prop_assert!(decision.outcome.goes_out(), "{:?}", decision);
        let send_at = decision.send_at.unwrap();
        let wanted = m.not_before.filter(|t| *t > now).unwrap_or(now);
        prop_assert!(send_at >= wanted, "{:?}", decision);
        if !applies {
            prop_assert_eq!(send_at, wanted);
            return Ok(());
        }
        prop_assert!(
            !is_quiet(from, to, send_at, &tz),
            "goes out at {} local: {:?}", send_at.to_zoned_datetime(tz.clone()), decision
        );
        let mut at = wanted;
        while at < send_at {
            prop_assert!(
                is_quiet(from, to, at, &tz),
                "held past {} local, when quiet hours had ended, until {}",
                at.to_zoned_datetime(tz.clone()), send_at.to_zoned_datetime(tz.clone())
            );
            at += SignedDuration::from_mins(1);
        }
    }
}

// ---------------------------------------------------------------------------------
// Cases the properties found, kept as regression tests.

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Found by `no_frequency_cap_is_ever_exceeded`: a promotion timed to the person's best
/// hour (17:00 in Rome) was decided first; one asked for now (10:00) counted only the
/// day up to now, so both went out on one day under "one promotion a day".
#[test]
fn a_message_going_out_later_counts_for_one_going_out_now() {
    let policies = Policies::new(&PolicyConfig::default()).unwrap();
    let person = consenting(None);
    let now = at("2025-03-05T09:00:00Z");
    let best_hour = message("promotional", "email", Some(at("2025-03-05T16:00:00Z")));
    let first = decide(&policies, &best_hour, &person, &[], now);
    assert_eq!(first.outcome, Outcome::Hold);
    let history = [PastSend {
        at: first.send_at.unwrap(),
        channel: "email".into(),
        purpose: "promotional".into(),
        journey: None,
        in_flight: true,
    }];
    let second = decide(
        &policies,
        &message("promotional", "sms", None),
        &person,
        &history,
        now,
    );
    assert_eq!(second.outcome, Outcome::Suppress, "{second:?}");
    assert_eq!(second.reasons[0].code, "frequency_cap");
    // A rolling window the same: 45 minutes later is within 4 hours of now.
    let policies = policies_with_rolling_cap();
    let later = PastSend {
        at: now + SignedDuration::from_mins(45),
        ..history[0].clone()
    };
    let d = decide(
        &policies,
        &message("service", "email", None),
        &person,
        &[later],
        now,
    );
    assert_eq!(d.outcome, Outcome::Suppress, "{d:?}");
}

fn policies_with_rolling_cap() -> Policies {
    policies(
        vec![CapConfig {
            max: 1,
            channel: None,
            purpose: None,
            hours: Some(4),
            days: None,
        }],
        None,
    )
}

/// Found by `nothing_goes_out_inside_quiet_hours`: quiet hours from 03:00 to 02:00 leave
/// only 02:00–03:00, which the clocks skip on 29 March 2026 in Rome; the message went out
/// at 03:00, inside them. They end at 02:00 the next night.
#[test]
fn quiet_hours_whose_end_the_clocks_skip_end_the_next_night() {
    let policies = policies(
        Vec::new(),
        Some(QuietHoursConfig {
            from: "03:00".into(),
            to: "02:00".into(),
            purposes: Vec::new(),
        }),
    );
    let person = consenting(Some("Europe/Rome"));
    // 01:59 CET, a minute before the clocks go forward.
    let d = decide(
        &policies,
        &message("service", "email", None),
        &person,
        &[],
        at("2026-03-29T00:59:00Z"),
    );
    assert_eq!(d.send_at, Some(at("2026-03-30T00:00:00Z")), "02:00 CEST");
}

/// The night the clocks go back in Rome (03:00 CEST becomes 02:00 CET), quiet hours
/// until 02:30 end at the second 02:30 for someone asked for at 02:15 CET, not a day
/// later.
#[test]
fn quiet_hours_end_at_their_end_the_night_the_clocks_go_back() {
    let policies = policies(
        Vec::new(),
        Some(QuietHoursConfig {
            from: "22:00".into(),
            to: "02:30".into(),
            purposes: Vec::new(),
        }),
    );
    let person = consenting(Some("Europe/Rome"));
    let d = decide(
        &policies,
        &message("service", "email", None),
        &person,
        &[],
        at("2025-10-26T01:15:00Z"),
    );
    assert_eq!(d.send_at, Some(at("2025-10-26T01:30:00Z")), "02:30 CET");
    // Before the change, at 02:15 CEST, they end at 02:30 CEST.
    let d = decide(
        &policies,
        &message("service", "email", None),
        &person,
        &[],
        at("2025-10-26T00:15:00Z"),
    );
    assert_eq!(d.send_at, Some(at("2025-10-26T00:30:00Z")), "02:30 CEST");
}
