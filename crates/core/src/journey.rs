//! Journeys: multi-step flows that react to what the customer does.
//!
//! A journey starts for a person on a trigger (an event, with an optional condition, or
//! entering a segment) and runs its steps: waits (a duration, until an event with a
//! timeout, until the send window), branches on an expression, messages (decided by the
//! policy gate, outside this module), profile updates and notifications to a
//! department. Its exit condition is checked at every step; a conversion goal is an
//! event within a window of entry; a control group, chosen by a stable hash, goes
//! through the same steps without being contacted.
//!
//! [`Journey::advance`] is a pure function of the journey, the person's progress, their
//! facts and `now`: the engine stores the progress and acts on what it returns.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::audience::{Audience, AudienceError};
use crate::identity::ProfileId;
use crate::policy::{OutgoingMessage, Policies};
use crate::profile::ProfileFacts;

/// A journey as written in `[[journeys]]` or sent to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneyConfig {
    pub name: String,
    pub trigger: TriggerConfig,
    pub steps: Vec<StepConfig>,
    /// People for whom this holds leave the journey, checked at every step.
    #[serde(default)]
    pub exit_when: Option<String>,
    #[serde(default)]
    pub goal: Option<GoalConfig>,
    /// Percent of entrants held out as a control group (0–50).
    #[serde(default)]
    pub control_percent: u8,
    /// Whether a person may enter again after leaving.
    #[serde(default)]
    pub reentry: bool,
}

/// What starts a journey for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// A track event's name (any case).
    #[serde(default)]
    pub event: Option<String>,
    /// Entering this segment.
    #[serde(default)]
    pub segment: Option<String>,
    /// An audience expression the person must also match.
    #[serde(default)]
    pub when: Option<String>,
}

/// A conversion: the event, within a window of entering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalConfig {
    pub event: String,
    /// `30d`, `12h`, ...
    pub within: String,
}

/// One step as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepConfig {
    /// Waits a `duration`; or `until_event` (at most `timeout`); or `until_send_window`
    /// (the end of quiet hours in the person's time zone).
    Wait {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        duration: Option<String>,
        #[serde(default)]
        until_event: Option<String>,
        #[serde(default)]
        timeout: Option<String>,
        #[serde(default)]
        until_send_window: bool,
    },
    /// Goes to step `then` when the expression holds, else to `else` (the next step when
    /// absent). `exit` ends the journey.
    Branch {
        #[serde(default)]
        name: Option<String>,
        when: String,
        then: String,
        #[serde(default, rename = "else")]
        otherwise: Option<String>,
    },
    /// A message through the policy gate. With channel `auto` and `fallback_after`, the
    /// next best channel is tried when delivery fails or the message is not opened,
    /// clicked or answered within that time.
    Send {
        #[serde(default)]
        name: Option<String>,
        message: String,
        purpose: String,
        #[serde(default = "auto")]
        channel: String,
        #[serde(default)]
        fallback_after: Option<String>,
    },
    /// Sets traits on the person's profile.
    UpdateProfile {
        #[serde(default)]
        name: Option<String>,
        traits: Map<String, Value>,
    },
    /// Tells a department about the person.
    Notify {
        #[serde(default)]
        name: Option<String>,
        department: String,
        message: String,
    },
}

fn auto() -> String {
    "auto".into()
}

/// Why a journey definition is not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JourneyError {
    #[error("journey {journey:?}: {problem}")]
    Invalid { journey: String, problem: String },
    #[error("journey {journey:?}, {at}: {source}")]
    Expression {
        journey: String,
        at: String,
        #[source]
        source: AudienceError,
    },
}

/// Where a step goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Step(usize),
    Exit,
}

/// A checked step.
#[derive(Debug)]
pub enum Step {
    WaitFor(SignedDuration),
    WaitForEvent {
        event: String,
        timeout: SignedDuration,
    },
    WaitForSendWindow,
    Branch {
        when: Audience,
        then: Target,
        otherwise: Target,
    },
    Send {
        message: String,
        purpose: String,
        channel: String,
        fallback_after: Option<SignedDuration>,
    },
    UpdateProfile(Map<String, Value>),
    Notify {
        department: String,
        message: String,
    },
}

/// What `step` does, in words.
fn describe(step: &Step) -> String {
    match step {
        Step::WaitFor(duration) => format!("waiting {}, then the next step", spoken(*duration)),
        Step::WaitForEvent { event, timeout } => format!(
            "waiting for {event:?} (at most {}), then the next step",
            spoken(*timeout)
        ),
        Step::WaitForSendWindow => "waiting for the end of quiet hours".to_string(),
        Step::Branch { when, .. } => format!("choosing the way on `{}`", when.text()),
        Step::Send {
            message,
            purpose,
            channel,
            ..
        } => format!("sending {message:?} ({purpose}, {channel})"),
        Step::UpdateProfile(traits) => {
            let names: Vec<&str> = traits.keys().map(String::as_str).collect();
            format!("updating the profile ({})", names.join(", "))
        }
        Step::Notify { department, .. } => format!("notifying {department}"),
    }
}

/// A duration in the largest whole unit that holds it: `2d`, `36h`, `90m`, `45s`.
fn spoken(duration: SignedDuration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s != 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What starts a journey.
#[derive(Debug)]
pub enum Trigger {
    Event(String),
    Segment(String),
}

/// A checked journey.
#[derive(Debug)]
pub struct Journey {
    pub config: JourneyConfig,
    pub trigger: Trigger,
    pub trigger_when: Option<Audience>,
    pub steps: Vec<Step>,
    /// Each step's name (given, or `step-N`).
    pub step_names: Vec<String>,
    pub exit_when: Option<Audience>,
    /// The goal event and its window.
    pub goal: Option<(String, SignedDuration)>,
}

/// Where a person is in a journey: what the engine stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub step: usize,
    /// When a wait ends (or times out).
    pub wake_at: Option<Timestamp>,
    /// The event a wait is for.
    pub waiting_for: Option<String>,
    /// In the control group: messages, updates and notifications are skipped (the
    /// steps and their bookkeeping are the same).
    pub control: bool,
}

/// Why the engine looks at a person's journey now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake<'a> {
    /// They just entered.
    Entered,
    /// A timer is due.
    Timer,
    /// One of their events arrived (its name).
    Event(&'a str),
}

/// Something the engine must do for the person.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    UpdateProfile {
        step: usize,
        traits: Map<String, Value>,
    },
    Notify {
        step: usize,
        department: String,
        message: String,
    },
}

/// Where [`Journey::advance`] stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Halt {
    /// Until `wake_at`, or until the awaited event.
    Waiting,
    /// At a send step: the engine decides it through the gate, then moves on
    /// ([`Progress::step`] + 1) or stays (suppressed: tried again at the person's next
    /// event).
    Send {
        message: String,
        purpose: String,
        channel: String,
        fallback_after: Option<SignedDuration>,
    },
    /// Left early: the exit condition held, or a branch said `exit`.
    Exited(String),
    /// Past the last step.
    Completed,
}

/// Where one person is in one journey, as an agent's context card shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyPosition {
    pub journey: String,
    pub entered_at: Timestamp,
    /// The step the person is at (from 0), and its name.
    pub step: usize,
    pub step_name: String,
    /// Since when the run has been as it is (its last move).
    pub since: Timestamp,
    /// What the journey does next for the person, in words.
    pub next: String,
    /// When it does it, when a time is set (a wait's end, a deadline).
    pub next_at: Option<Timestamp>,
    /// In the control group: the steps run, nothing is sent.
    pub control: bool,
}

/// A run's state as the store keeps it, for [`Journey::position`].
#[derive(Debug, Clone, Copy)]
pub struct RunAt<'a> {
    pub step: usize,
    pub entered_at: Timestamp,
    pub since: Timestamp,
    pub wake_at: Option<Timestamp>,
    pub waiting_for: Option<&'a str>,
    /// A send the gate held: tried again at the person's next event.
    pub blocked: bool,
    /// A sent message watched on this channel until `wake_at`, then the next fallback.
    pub watching: Option<&'a str>,
    pub fallbacks: &'a [String],
    pub control: bool,
}

impl Journey {
    /// Where a run is and what comes next for the person, in words an agent reads.
    pub fn position(&self, run: RunAt<'_>) -> JourneyPosition {
        let step_name = (self.step_names.get(run.step))
            .cloned()
            .unwrap_or_else(|| format!("step-{}", run.step + 1));
        let next = match (self.steps.get(run.step), run.watching, run.waiting_for) {
            (_, Some(channel), _) => match run.fallbacks.first() {
                Some(fallback) => format!(
                    "watching the message sent on {channel}; without an answer, it is tried on {fallback}"
                ),
                None => format!("watching the message sent on {channel}, then the next step"),
            },
            (_, None, Some(event)) => format!("waiting for {event:?}, then the next step"),
            (
                Some(Step::Send {
                    message, channel, ..
                }),
                None,
                None,
            ) if run.blocked => format!(
                "the message {message:?} ({channel}) was held by the policies; tried again at the person's next event"
            ),
            (Some(step), None, None) => describe(step),
            (None, None, None) => "the journey ends".to_string(),
        };
        JourneyPosition {
            journey: self.config.name.clone(),
            entered_at: run.entered_at,
            step: run.step,
            step_name,
            since: run.since,
            next,
            next_at: run.wake_at,
            control: run.control,
        }
    }

    /// Checks a definition: names, durations, step targets and every expression.
    pub fn new(config: JourneyConfig) -> Result<Self, JourneyError> {
        let name = config.name.clone();
        let invalid = |problem: String| JourneyError::Invalid {
            journey: name.clone(),
            problem,
        };
        if !crate::is_valid_name(&name) {
            return Err(invalid(
                "the name must be 1 to 64 letters, digits, '-' or '_', starting with a letter"
                    .into(),
            ));
        }
        let expression = |at: &str, text: &str| {
            Audience::parse(text).map_err(|source| JourneyError::Expression {
                journey: name.clone(),
                at: at.to_string(),
                source,
            })
        };
        let trigger = match (&config.trigger.event, &config.trigger.segment) {
            (Some(event), None) if !event.trim().is_empty() => Trigger::Event(event.clone()),
            (None, Some(segment)) if !segment.trim().is_empty() => {
                Trigger::Segment(segment.clone())
            }
            _ => {
                return Err(invalid(
                    "the trigger needs exactly one of `event` or `segment`".into(),
                ));
            }
        };
        let trigger_when = config
            .trigger
            .when
            .as_deref()
            .map(|w| expression("the trigger's condition", w))
            .transpose()?;
        let exit_when = config
            .exit_when
            .as_deref()
            .map(|w| expression("exit_when", w))
            .transpose()?;
        if config.control_percent > 50 {
            return Err(invalid("control_percent must be between 0 and 50".into()));
        }
        let goal = config
            .goal
            .as_ref()
            .map(|g| {
                parse_duration(&g.within)
                    .map(|d| (g.event.clone(), d))
                    .ok_or_else(|| {
                        invalid(format!(
                            "goal.within: {:?} is not a duration like 30d or 12h",
                            g.within
                        ))
                    })
            })
            .transpose()?;
        if config.steps.is_empty() {
            return Err(invalid("a journey needs at least one step".into()));
        }
        let step_names: Vec<String> = config
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| step_name(s).unwrap_or_else(|| format!("step-{}", i + 1)))
            .collect();
        let target = |name: &str| -> Result<Target, JourneyError> {
            if name == "exit" {
                return Ok(Target::Exit);
            }
            step_names
                .iter()
                .position(|n| n == name)
                .map(Target::Step)
                .ok_or_else(|| invalid(format!("a branch goes to {name:?}, which is no step")))
        };
        let mut steps = Vec::with_capacity(config.steps.len());
        for (i, step) in config.steps.iter().enumerate() {
            let at = format!("step {:?}", step_names[i]);
            let duration = |field: &str, text: &str| {
                parse_duration(text).ok_or_else(|| {
                    invalid(format!(
                        "{at}: {field} {text:?} is not a duration like 2d, 36h or 30m"
                    ))
                })
            };
            steps.push(match step {
                StepConfig::Wait {
                    duration: Some(d),
                    until_event: None,
                    timeout: None,
                    until_send_window: false,
                    ..
                } => Step::WaitFor(duration("duration", d)?),
                StepConfig::Wait {
                    duration: None,
                    until_event: Some(event),
                    timeout: Some(t),
                    until_send_window: false,
                    ..
                } => Step::WaitForEvent {
                    event: event.clone(),
                    timeout: duration("timeout", t)?,
                },
                StepConfig::Wait {
                    duration: None,
                    until_event: None,
                    timeout: None,
                    until_send_window: true,
                    ..
                } => Step::WaitForSendWindow,
                StepConfig::Wait { .. } => {
                    return Err(invalid(format!(
                        "{at}: a wait takes a `duration`, or `until_event` with a `timeout`, or `until_send_window = true`"
                    )));
                }
                StepConfig::Branch {
                    when,
                    then,
                    otherwise,
                    ..
                } => Step::Branch {
                    when: expression(&at, when)?,
                    then: target(then)?,
                    otherwise: match otherwise {
                        Some(o) => target(o)?,
                        None => Target::Step(i + 1),
                    },
                },
                StepConfig::Send {
                    message,
                    purpose,
                    channel,
                    fallback_after,
                    ..
                } => {
                    let fallback_after = fallback_after
                        .as_deref()
                        .map(|f| duration("fallback_after", f))
                        .transpose()?;
                    if fallback_after.is_some() && channel != "auto" {
                        return Err(invalid(format!(
                            "{at}: a fallback needs channel \"auto\", which ranks the channels to fall back to"
                        )));
                    }
                    if message.trim().is_empty() || purpose.trim().is_empty() {
                        return Err(invalid(format!("{at}: `message` and `purpose` must not be empty")));
                    }
                    if channel != "auto" && channel.parse::<crate::ChannelKind>().is_err() {
                        return Err(invalid(format!("{at}: {channel:?} is not a channel")));
                    }
                    Step::Send {
                        message: message.clone(),
                        purpose: purpose.trim().to_lowercase(),
                        channel: channel.clone(),
                        fallback_after,
                    }
                }
                StepConfig::UpdateProfile { traits, .. } => Step::UpdateProfile(traits.clone()),
                StepConfig::Notify {
                    department,
                    message,
                    ..
                } => Step::Notify {
                    department: department.clone(),
                    message: message.clone(),
                },
            });
        }
        Ok(Journey {
            trigger,
            trigger_when,
            steps,
            step_names,
            exit_when,
            goal,
            config,
        })
    }

    /// The journey's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether an event starts the journey for a person with these facts.
    pub fn is_triggered_by(
        &self,
        name: &str,
        segment_entered: Option<&str>,
        facts: &ProfileFacts,
    ) -> bool {
        self.triggers_on(name, segment_entered) && self.trigger_holds_for(facts)
    }

    /// Whether an event named `name` (or the entry into `segment_entered`) is this
    /// journey's trigger, before its condition on the person: cheap, so asked first.
    pub fn triggers_on(&self, name: &str, segment_entered: Option<&str>) -> bool {
        match &self.trigger {
            Trigger::Event(event) => event.eq_ignore_ascii_case(name),
            Trigger::Segment(segment) => segment_entered == Some(segment.as_str()),
        }
    }

    /// Whether the trigger's condition on the person (`when`), if any, holds.
    pub fn trigger_holds_for(&self, facts: &ProfileFacts) -> bool {
        (self.trigger_when.as_ref()).is_none_or(|w| w.matches(facts).unwrap_or(false))
    }

    /// Whether the trigger has a condition on the person (which needs their facts).
    pub fn trigger_needs_facts(&self) -> bool {
        self.trigger_when.is_some()
    }

    /// Whether the person is in the control group: a stable hash of the journey and the
    /// profile (its text, `p-42`), so the split never changes and needs no storage.
    pub fn holds_out(&self, profile: ProfileId) -> bool {
        if self.config.control_percent == 0 {
            return false;
        }
        let profile = profile.to_string();
        // FNV-1a: stable across versions and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.config.name.bytes().chain([0]).chain(profile.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash % 100 < u64::from(self.config.control_percent)
    }

    /// Runs the person's journey from where they are until it must wait, send, or ends.
    pub fn advance(
        &self,
        progress: &mut Progress,
        wake: Wake<'_>,
        facts: &ProfileFacts,
        policies: &Policies,
        now: Timestamp,
        actions: &mut Vec<Action>,
    ) -> Halt {
        if let Some(exit) = &self.exit_when
            && exit.matches(facts).unwrap_or(false)
        {
            return Halt::Exited("exit condition".into());
        }
        // Branches may loop back; a journey that goes round without waiting is stopped.
        let control = progress.control;
        for _ in 0..=self.steps.len() * 2 {
            let Some(step) = self.steps.get(progress.step) else {
                return Halt::Completed;
            };
            let next = progress.step + 1;
            match step {
                Step::WaitFor(duration) => match progress.wake_at {
                    Some(at) if now >= at => progress.go(next),
                    Some(_) => return Halt::Waiting,
                    None => {
                        progress.wake_at = Some(now + *duration);
                        return Halt::Waiting;
                    }
                },
                Step::WaitForEvent { event, timeout } => {
                    let arrived = matches!(wake, Wake::Event(e) if e.eq_ignore_ascii_case(event));
                    match progress.wake_at {
                        Some(_) if arrived => progress.go(next),
                        Some(at) if now >= at => progress.go(next),
                        Some(_) => return Halt::Waiting,
                        None => {
                            progress.wake_at = Some(now + *timeout);
                            progress.waiting_for = Some(event.clone());
                            return Halt::Waiting;
                        }
                    }
                }
                Step::WaitForSendWindow => {
                    let purpose = self.next_purpose(progress.step);
                    let probe = OutgoingMessage {
                        message: String::new(),
                        purpose,
                        channel: String::new(),
                        journey: None,
                        not_before: None,
                    };
                    let zone = policies.time_zone(facts);
                    match crate::policy::quiet_until(policies, &probe, &zone, now) {
                        Some(until) => {
                            progress.wake_at = Some(until);
                            return Halt::Waiting;
                        }
                        None => progress.go(next),
                    }
                }
                Step::Branch {
                    when,
                    then,
                    otherwise,
                } => {
                    let target = if when.matches(facts).unwrap_or(false) {
                        *then
                    } else {
                        *otherwise
                    };
                    match target {
                        Target::Step(i) => progress.go(i),
                        Target::Exit => {
                            return Halt::Exited(format!(
                                "branch {}",
                                self.step_names[progress.step]
                            ));
                        }
                    }
                }
                Step::Send {
                    message,
                    purpose,
                    channel,
                    fallback_after,
                } => {
                    if control {
                        progress.go(next);
                    } else {
                        return Halt::Send {
                            message: message.clone(),
                            purpose: purpose.clone(),
                            channel: channel.clone(),
                            fallback_after: *fallback_after,
                        };
                    }
                }
                Step::UpdateProfile(traits) => {
                    if !control {
                        actions.push(Action::UpdateProfile {
                            step: progress.step,
                            traits: traits.clone(),
                        });
                    }
                    progress.go(next);
                }
                Step::Notify {
                    department,
                    message,
                } => {
                    if !control {
                        actions.push(Action::Notify {
                            step: progress.step,
                            department: department.clone(),
                            message: message.clone(),
                        });
                    }
                    progress.go(next);
                }
            }
        }
        Halt::Exited("the journey loops without waiting".into())
    }

    /// The purpose of the next send step from `step` (what quiet hours apply to).
    fn next_purpose(&self, step: usize) -> String {
        self.steps[step..]
            .iter()
            .find_map(|s| match s {
                Step::Send { purpose, .. } => Some(purpose.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "service".into())
    }

    /// Whether `event` at `at` converts a person who entered at `entered`.
    pub fn converts(&self, event: &str, entered: Timestamp, at: Timestamp) -> bool {
        self.goal.as_ref().is_some_and(|(goal, within)| {
            goal.eq_ignore_ascii_case(event) && at >= entered && at <= entered + *within
        })
    }
}

impl Progress {
    /// At the first step.
    pub fn start(control: bool) -> Self {
        Progress {
            step: 0,
            wake_at: None,
            waiting_for: None,
            control,
        }
    }

    fn go(&mut self, step: usize) {
        self.step = step;
        self.wake_at = None;
        self.waiting_for = None;
    }

    /// Moves past a send step that was decided.
    pub fn sent(&mut self) {
        let next = self.step + 1;
        self.go(next);
    }
}

fn step_name(step: &StepConfig) -> Option<String> {
    match step {
        StepConfig::Wait { name, .. }
        | StepConfig::Branch { name, .. }
        | StepConfig::Send { name, .. }
        | StepConfig::UpdateProfile { name, .. }
        | StepConfig::Notify { name, .. } => name.clone(),
    }
}

/// What news about a message sent on a channel means for its fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Opened, clicked or answered: no fallback.
    Engaged,
    /// Bounced or failed: fall back now.
    Failed,
    /// Nothing within the set time: fall back.
    Unread,
    /// Keep waiting.
    Pending,
}

/// Reads `news` — a message event's channel and step (`sent`, `delivered`, `opened`,
/// `clicked`, `replied`, `failed`), as `profile::message_step` gives it — about a
/// message watched on `channel` until `deadline`.
pub fn delivery(
    channel: &str,
    news: Option<(&str, &str)>,
    deadline: Option<Timestamp>,
    now: Timestamp,
) -> Delivery {
    match news {
        Some((on, step)) if on == channel => match step {
            "opened" | "clicked" | "replied" => return Delivery::Engaged,
            "failed" => return Delivery::Failed,
            _ => {}
        },
        _ => {}
    }
    if deadline.is_some_and(|d| d <= now) {
        Delivery::Unread
    } else {
        Delivery::Pending
    }
}

/// `90s`, `30m`, `36h`, `2d`, `1w`.
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].trim().parse().ok()?;
    if n <= 0 {
        return None;
    }
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    Some(SignedDuration::from_secs(n.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests;
