//! The policy gate: every outgoing message passes it, whoever sends it.
//!
//! A decision is a pure function of the message, the person (their context card and
//! time zone), what was already sent to them, the policies and `now`: consent for the
//! message's purpose on its channel; suppression rules (CEL expressions over the person
//! and the message — by default, no promotion while a case is open); at most one
//! message in flight per person per journey; frequency caps over rolling windows and over
//! calendar days in the person's time zone; quiet hours in the person's time zone, which
//! hold a message to the end of the window rather than drop it.

use std::collections::BTreeMap;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audience::{Audience, AudienceError};
use crate::profile::ProfileFacts;

/// One message to one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The message definition it renders.
    pub message: String,
    /// `service`, `promotional`, ...
    pub purpose: String,
    /// The channel it would go out on.
    pub channel: String,
    /// The journey sending it, if any.
    #[serde(default)]
    pub journey: Option<String>,
    /// Not to go out before this moment (the person's best hour).
    #[serde(default)]
    pub not_before: Option<Timestamp>,
}

/// A message already decided for the person: what the caps count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastSend {
    pub at: Timestamp,
    pub channel: String,
    pub purpose: String,
    pub journey: Option<String>,
    /// Not yet delivered, failed or answered: the journey waits on it.
    pub in_flight: bool,
}

/// Whether a purpose needs a recorded yes, or goes out unless the person said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    Explicit,
    UnlessWithdrawn,
}

/// A suppression rule as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionConfig {
    pub name: String,
    /// A CEL expression over the person (see `audience::VARIABLES`) and `message`
    /// (`purpose`, `channel`, `journey`); true suppresses.
    pub when: String,
    /// What the decision log says.
    pub reason: String,
}

/// A frequency cap: at most `max` messages (matching `channel` and `purpose` when given)
/// in the last `hours`, or on the last `days` calendar days in the person's time zone
/// (today included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    pub max: u32,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub hours: Option<u32>,
    #[serde(default)]
    pub days: Option<u32>,
}

/// Quiet hours: from `from` to `to` local time (across midnight when `to` < `from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursConfig {
    pub from: String,
    pub to: String,
    /// The purposes they apply to; every purpose when empty.
    #[serde(default)]
    pub purposes: Vec<String>,
}

/// The `[policies]` table of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// For people whose `timezone` trait is absent or unknown.
    pub default_time_zone: String,
    /// Consent mode per purpose; a purpose not listed needs an explicit yes unless it is
    /// `service`.
    pub consent: BTreeMap<String, ConsentMode>,
    pub suppressions: Vec<SuppressionConfig>,
    pub caps: Vec<CapConfig>,
    pub quiet_hours: Option<QuietHoursConfig>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default_time_zone: "Europe/Rome".into(),
            consent: BTreeMap::from([
                ("service".to_string(), ConsentMode::UnlessWithdrawn),
                ("promotional".to_string(), ConsentMode::Explicit),
            ]),
            suppressions: vec![SuppressionConfig {
                name: "open_case".into(),
                when: "message.purpose == 'promotional' && open_cases > 0".into(),
                reason: "the customer has an open case".into(),
            }],
            caps: vec![
                CapConfig {
                    max: 3,
                    channel: None,
                    purpose: Some("promotional".into()),
                    hours: None,
                    days: Some(7),
                },
                CapConfig {
                    max: 1,
                    channel: None,
                    purpose: Some("promotional".into()),
                    hours: None,
                    days: Some(1),
                },
            ],
            quiet_hours: Some(QuietHoursConfig {
                from: "21:00".into(),
                to: "08:00".into(),
                purposes: Vec::new(),
            }),
        }
    }
}

/// Why a policy configuration is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("suppression rule {name:?}: {error}")]
    Suppression { name: String, error: AudienceError },
    #[error("a frequency cap needs exactly one of `hours` or `days`, at least 1")]
    CapWindow,
    #[error("quiet hours {0:?} is not a time like 21:00")]
    QuietTime(String),
}

struct Suppression {
    name: String,
    reason: String,
    rule: Audience,
}

enum CapWindow {
    Rolling(SignedDuration),
    CalendarDays(u32),
}

struct Cap {
    config: CapConfig,
    window: CapWindow,
}

struct QuietHours {
    from: Time,
    to: Time,
    purposes: Vec<String>,
}

impl QuietHours {
    /// Whether a local time is inside them.
    fn contains(&self, t: Time) -> bool {
        if self.from <= self.to {
            t >= self.from && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }
}

/// The compiled policies.
pub struct Policies {
    default_zone: TimeZone,
    consent: BTreeMap<String, ConsentMode>,
    suppressions: Vec<Suppression>,
    caps: Vec<Cap>,
    quiet: Option<QuietHours>,
}

impl Policies {
    /// Checks and compiles a configuration: every expression, time zone and time.
    pub fn new(config: &PolicyConfig) -> Result<Self, PolicyError> {
        let default_zone = TimeZone::get(&config.default_time_zone)
            .map_err(|_| PolicyError::TimeZone(config.default_time_zone.clone()))?;
        let suppressions = config
            .suppressions
            .iter()
            .map(|s| {
                Ok(Suppression {
                    name: s.name.clone(),
                    reason: s.reason.clone(),
                    rule: Audience::parse_with(&s.when, &["message"]).map_err(|error| {
                        PolicyError::Suppression {
                            name: s.name.clone(),
                            error,
                        }
                    })?,
                })
            })
            .collect::<Result<_, PolicyError>>()?;
        let caps = config
            .caps
            .iter()
            .map(|c| {
                let window = match (c.hours, c.days) {
                    (Some(h), None) if h > 0 => {
                        CapWindow::Rolling(SignedDuration::from_hours(i64::from(h)))
                    }
                    (None, Some(d)) if d > 0 => CapWindow::CalendarDays(d),
                    _ => return Err(PolicyError::CapWindow),
                };
                Ok(Cap {
                    config: c.clone(),
                    window,
                })
            })
            .collect::<Result<_, PolicyError>>()?;
        let time = |text: &str| {
            text.parse::<Time>()
                .map_err(|_| PolicyError::QuietTime(text.to_string()))
        };
        let quiet = match &config.quiet_hours {
            Some(q) => Some(QuietHours {
                from: time(&q.from)?,
                to: time(&q.to)?,
                purposes: q.purposes.clone(),
            }),
            None => None,
        };
        Ok(Policies {
            default_zone,
            consent: config.consent.clone(),
            suppressions,
            caps,
            quiet,
        })
    }

    /// Whether the person may get `purpose` messages on `channel`: an explicit yes for
    /// purposes that need one, no recorded no for the others.
    pub fn consented(&self, purpose: &str, channel: &str, person: &ProfileFacts) -> bool {
        let mode = self
            .consent
            .get(purpose)
            .copied()
            .unwrap_or(if purpose == "service" {
                ConsentMode::UnlessWithdrawn
            } else {
                ConsentMode::Explicit
            });
        match mode {
            ConsentMode::Explicit => person.consents_to(purpose, channel),
            ConsentMode::UnlessWithdrawn => person
                .consent_statement(purpose, channel)
                .is_none_or(|l| l.granted),
        }
    }

    /// The person's time zone: their `timezone` trait when it names one, else the default.
    pub fn time_zone(&self, person: &ProfileFacts) -> TimeZone {
        person
            .traits
            .get("timezone")
            .and_then(|v| v.as_str())
            .and_then(|name| TimeZone::get(name).ok())
            .unwrap_or_else(|| self.default_zone.clone())
    }
}

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Send now.
    Send,
    /// Send at `send_at` (the end of quiet hours).
    Hold,
    /// Do not send.
    Suppress,
}

impl Outcome {
    /// The outcome as the decision log spells it: `send`, `hold`, `suppress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Send => "send",
            Outcome::Hold => "hold",
            Outcome::Suppress => "suppress",
        }
    }

    /// The outcome `text` spells, if any.
    pub fn parse(text: &str) -> Option<Outcome> {
        [Outcome::Send, Outcome::Hold, Outcome::Suppress]
            .into_iter()
            .find(|o| o.as_str() == text)
    }

    /// Whether a message so decided goes out (now or when held), so it waits in the
    /// outbox; a suppressed one never does.
    pub fn goes_out(self) -> bool {
        self != Outcome::Suppress
    }
}

/// One reason behind a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// `no_consent`, `suppressed`, `in_flight`, `frequency_cap`, `quiet_hours`.
    pub code: &'static str,
    pub detail: String,
}

/// A decision and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// When it goes out (`None` when suppressed).
    pub send_at: Option<Timestamp>,
    /// Why it was held or suppressed (every reason that applies).
    pub reasons: Vec<Reason>,
}

/// Decides whether, and when, `message` goes to `person`.
pub fn decide(
    policies: &Policies,
    message: &OutgoingMessage,
    person: &ProfileFacts,
    history: &[PastSend],
    now: Timestamp,
) -> Decision {
    let mut reasons = Vec::new();
    let zone = policies.time_zone(person);

    if !policies.consented(&message.purpose, &message.channel, person) {
        reasons.push(Reason {
            code: "no_consent",
            detail: format!(
                "no consent for {} messages on {}",
                message.purpose, message.channel
            ),
        });
    }

    let message_value = json!({
        "purpose": message.purpose,
        "channel": message.channel,
        "journey": message.journey,
        "message": message.message,
    });
    for s in &policies.suppressions {
        match s
            .rule
            .matches_with(person, vec![("message", message_value.clone())])
        {
            Ok(true) => reasons.push(Reason {
                code: "suppressed",
                detail: format!("{} ({})", s.reason, s.name),
            }),
            Ok(false) => {}
            // A rule that cannot be evaluated for this person suppresses: when in doubt,
            // do not contact.
            Err(e) => reasons.push(Reason {
                code: "suppressed",
                detail: format!("rule {} could not be evaluated: {e}", s.name),
            }),
        }
    }

    if let Some(journey) = &message.journey
        && history
            .iter()
            .any(|h| h.in_flight && h.journey.as_deref() == Some(journey.as_str()))
    {
        reasons.push(Reason {
            code: "in_flight",
            detail: format!("a message of journey {journey} is still in flight"),
        });
    }

    let desired = message.not_before.filter(|t| *t > now).unwrap_or(now);
    let held_until = quiet_until(policies, message, &zone, desired);
    let send_at = held_until.unwrap_or(desired);
    for cap in &policies.caps {
        let c = &cap.config;
        if c.channel.as_ref().is_some_and(|ch| *ch != message.channel)
            || c.purpose.as_ref().is_some_and(|p| *p != message.purpose)
        {
            continue;
        }
        let counted: Vec<Timestamp> = history
            .iter()
            .filter(|h| c.channel.as_ref().is_none_or(|ch| *ch == h.channel))
            .filter(|h| c.purpose.as_ref().is_none_or(|p| *p == h.purpose))
            .map(|h| h.at)
            .collect();
        // Every window the message would go out in counts, not only the one ending with
        // it: a message held, or timed to a best hour, may go out after this one.
        let (count, window) = match cap.window {
            CapWindow::Rolling(d) => (
                fullest_rolling(&counted, send_at, d),
                format!("in {} hours", d.as_hours()),
            ),
            CapWindow::CalendarDays(days) => (
                fullest_days(&counted, send_at, &zone, days),
                if days == 1 {
                    "today".to_string()
                } else {
                    format!("in the last {days} days")
                },
            ),
        };
        if count >= c.max as usize {
            reasons.push(Reason {
                code: "frequency_cap",
                detail: format!(
                    "{count} {}messages{} {window} (cap {})",
                    c.purpose
                        .as_ref()
                        .map_or(String::new(), |p| format!("{p} ")),
                    c.channel
                        .as_ref()
                        .map_or(" on any channel".to_string(), |ch| format!(" on {ch}")),
                    c.max
                ),
            });
        }
    }

    if !reasons.is_empty() {
        return Decision {
            outcome: Outcome::Suppress,
            send_at: None,
            reasons,
        };
    }
    let local = |t: Timestamp| t.to_zoned_datetime(zone.clone());
    let mut reasons = Vec::new();
    if desired > now {
        reasons.push(Reason {
            code: "send_time",
            detail: format!("sent at the customer's best hour, {}", local(desired)),
        });
    }
    if let Some(until) = held_until {
        reasons.push(Reason {
            code: "quiet_hours",
            detail: format!(
                "quiet hours in {}; held until {}",
                zone.iana_name().unwrap_or("the customer's time zone"),
                local(until)
            ),
        });
    }
    Decision {
        outcome: if send_at > now {
            Outcome::Hold
        } else {
            Outcome::Send
        },
        send_at: Some(send_at),
        reasons,
    }
}

/// When quiet hours in `zone` apply to the message at `now`, the moment they end.
pub(crate) fn quiet_until(
    policies: &Policies,
    message: &OutgoingMessage,
    zone: &TimeZone,
    now: Timestamp,
) -> Option<Timestamp> {
    let quiet = policies.quiet.as_ref()?;
    if !quiet.purposes.is_empty() && !quiet.purposes.contains(&message.purpose) {
        return None;
    }
    let quiet_at = |t: Timestamp| quiet.contains(t.to_zoned_datetime(zone.clone()).time());
    if !quiet_at(now) {
        return None;
    }
    // They end when the local clock reaches `to` (twice, the night the clocks go back) or
    // when a daylight saving change moves it out of them (past `to`, or back before
    // `from`): the first such moment after now. A change can also skip the hours between
    // `to` and `from`, and then they end only the next day.
    let today = now.to_zoned_datetime(zone.clone()).date();
    let horizon = now + SignedDuration::from_hours(72);
    let reaching_to = (-1..=2)
        .filter_map(|n| today.checked_add(Span::new().days(n)).ok())
        .flat_map(|date| {
            let at = zone.to_ambiguous_timestamp(date.to_datetime(quiet.to));
            [at.earlier().ok(), at.later().ok()]
        })
        .flatten();
    let changes = zone
        .following(now)
        .map(|change| change.timestamp())
        .take_while(|t| *t <= horizon);
    let end = reaching_to
        .chain(changes)
        .filter(|t| *t > now && !quiet_at(*t))
        .min()
        .unwrap_or(horizon);
    Some(end)
}

/// The most of `sent` in one window of `d` (both ends included) that holds `at`: the
/// one ending at `at`, or one ending at a later message within `d` of it.
fn fullest_rolling(sent: &[Timestamp], at: Timestamp, d: SignedDuration) -> usize {
    std::iter::once(at)
        .chain(sent.iter().copied().filter(|t| *t > at && *t <= at + d))
        .map(|end| sent.iter().filter(|t| **t >= end - d && **t <= end).count())
        .max()
        .unwrap_or(0)
}

/// The most of `sent` on `days` consecutive calendar days in `zone` that include the
/// day of `at`.
fn fullest_days(sent: &[Timestamp], at: Timestamp, zone: &TimeZone, days: u32) -> usize {
    let day = |t: Timestamp| t.to_zoned_datetime(zone.clone()).date();
    let dates: Vec<Date> = sent.iter().map(|t| day(*t)).collect();
    let shift = |date: Date, n: i64| date.checked_add(Span::new().days(n)).unwrap_or(date);
    let days = i64::from(days);
    (0..days)
        .map(|k| {
            let first = shift(day(at), k + 1 - days);
            let last = shift(first, days - 1);
            dates.iter().filter(|d| (first..=last).contains(d)).count()
        })
        .max()
        .unwrap_or(0)
}

mod channel;
mod send_time;
pub use channel::{MESSAGE_CHANNELS, address_kind, choose_channel, rank_channels};
pub use send_time::best_send_time;

#[cfg(test)]
mod tests;
