//! Journeys: each person's runs, moved on as their events arrive and as time passes.
//!
//! The runner reads the log after its cursor (kept as a setting), after the identity
//! projection has applied those events, so every person's facts include them. For each
//! event it records conversions, wakes the person's waiting runs and starts the
//! journeys the event triggers; then it wakes the runs whose timers are due. Each run's
//! next steps come from the pure `Journey::advance`. Sends go through the policy gate,
//! and their decisions are saved with the runs in one transaction; profile updates and
//! notifications are appended first, as events with ids derived from the run and step,
//! so a step redone after a crash is not done twice. After a restart the active runs
//! and their timers are loaded back, so every waiting person resumes at the right step
//! at the right time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use unavoce_core::redact::Redacted;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use unavoce_core::identity::{ProfileId, extract};
use unavoce_core::journey::{
    Action, Delivery, Halt, Journey, JourneyConfig, JourneyError, JourneyPosition, Progress, RunAt,
    Trigger, Wake, delivery,
};
use unavoce_core::live::Live;
use unavoce_core::platform_events::{self, JOURNEY_SOURCE};
use unavoce_core::policy::{Decision, Outcome, PastSend, Policies};
use unavoce_core::profile::{ProfileFacts, ProfileState, message_step, segment_change};
use unavoce_core::{Event, EventType};
use unavoce_intake::Intake;
use unavoce_store::{
    DecisionLog, EventLog, EventQuery, JourneyRun, JourneyStore, NewDecision, RunCount, RunQuery,
    RunStatus, StoreError,
};

use crate::Messages;
use crate::gate::{Ask, Gate, Gated};
use unavoce_core::diff::FieldChange;
use unavoce_projections::IdentityProjection;
use unavoce_projections::catalog::{
    Catalog, CatalogError, ChangeError, Configured, Definition, Edit, Entry, History, Status,
};
use unavoce_projections::{People, Person, Recorder};

/// The log position the runner has handled.
const CURSOR_SETTING: &str = "engagement.journeys.cursor";
/// Events read per step.
const PAGE: usize = 1_000;
/// The most journeys a context card lists for one person.
const MAX_POSITIONS: usize = 20;
/// How often a run held at a send step by a paused message looks again.
const PAUSED_MESSAGE_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// The catalog's kind for journeys.
pub struct JourneyKind;

impl Definition for JourneyKind {
    type Item = Journey;
    type Config = JourneyConfig;
    type Error = JourneyError;
    const SETTING: &'static str = "engagement.journeys";

    fn name(config: &JourneyConfig) -> &str {
        &config.name
    }
    fn compile(config: JourneyConfig) -> Result<Journey, JourneyError> {
        Journey::new(config)
    }
    fn config(item: &Journey) -> &JourneyConfig {
        &item.config
    }
}

impl From<CatalogError<JourneyError>> for JourneyDefinitionError {
    fn from(e: CatalogError<JourneyError>) -> Self {
        match e {
            CatalogError::Invalid(e) => Self::Invalid(e),
            CatalogError::Exists(name) => Self::Exists(name),
            CatalogError::Store(e) => Self::Store(e),
        }
    }
}

/// Why a journey cannot be defined.
#[derive(Debug, thiserror::Error)]
pub enum JourneyDefinitionError {
    #[error(transparent)]
    Invalid(#[from] JourneyError),
    #[error("journey {0:?} already exists")]
    Exists(String),
    /// A new version's step mapping does not hold.
    #[error("{0}")]
    StepMapping(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happens to the people in a journey's runs when it gets a new version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunsOnRevision {
    /// They finish on the version they are following; newcomers enter the new one.
    Finish,
    /// They leave the journey (exit reason `revised`).
    Exit,
    /// They go on in the new version: from the step the mapping names for the step
    /// they are in (old step name → new step name), started afresh. Every step a run
    /// is in must be mapped.
    Move(BTreeMap<String, String>),
}

/// What a revision does to one run.
enum Revised {
    /// It goes on at this version.
    Finish(u32),
    /// It moves to this step of the new version.
    Move(usize),
    Exit,
}

/// A new version of a journey, made or (on a dry run) only checked.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyRevision {
    /// The version made; none on a dry run.
    pub version: Option<u32>,
    /// What changed from the version in force.
    pub changes: Vec<FieldChange>,
    /// What it does, or would do, to the runs in it.
    pub runs: RunsRevised,
}

/// What a new version of a journey does, or would do, to the runs in it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunsRevised {
    /// Runs moved, by (old step → new step).
    pub moved: BTreeMap<String, u64>,
    /// Runs left to finish on the version they follow.
    pub finishing: u64,
    pub exited: u64,
}

/// A journey with its figures.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyStats {
    #[serde(flatten)]
    pub definition: JourneyConfig,
    /// `config` or `api`.
    pub origin: &'static str,
    /// The version in force (0 for the config file's).
    pub version: u32,
    /// `active`, `paused` (nobody enters, runs hold where they are) or `retired`
    /// (nobody enters; runs go on to their end).
    pub status: Status,
    pub entered: u64,
    pub active: u64,
    pub exited: u64,
    pub completed: u64,
    /// People in each step now (active runs), by step name.
    pub in_step: BTreeMap<String, u64>,
    pub treatment: GroupStats,
    pub control: GroupStats,
}

/// What a journey would do for the people it could start for now.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyDryRun {
    pub journey: String,
    /// Profiles looked at.
    pub evaluated: u64,
    /// People it would start for: a segment trigger's members; for an event trigger,
    /// everyone its condition holds for, as if they did the event now.
    pub entered: u64,
    /// Of whom held out.
    pub control: u64,
    /// Messages by outcome (`send`, `hold`, `suppress`).
    pub outcomes: BTreeMap<String, u64>,
    /// Held or suppressed messages by reason code.
    pub reasons: BTreeMap<String, u64>,
    /// How the runs would end, by ending.
    pub ends: BTreeMap<String, u64>,
    /// The first people's runs.
    pub people: Vec<SimulatedRun>,
}

/// One person's simulated run: waits are taken as elapsed and awaited events as not
/// coming (their timeouts), against the person's facts of now.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedRun {
    pub profile_id: ProfileId,
    pub control: bool,
    pub messages: Vec<SimulatedMessage>,
    /// `completed`, `exited: <why>`, or `suppressed at <step>` (a real run would wait
    /// there for the person's next event).
    pub end: String,
}

/// A message of a simulated run, with the gate's decision.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedMessage {
    pub step: String,
    pub message: String,
    pub channel: String,
    #[serde(flatten)]
    pub decision: Decision,
}

/// One group's bookkeeping.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupStats {
    pub entered: u64,
    pub converted: u64,
    /// Converted over entered; `None` before anyone entered.
    pub conversion_rate: Option<f64>,
}

/// The runner's memory: the runs that can still move or convert.
#[derive(Default)]
struct Runs {
    /// Active runs, and finished ones still inside their goal window, by key.
    runs: HashMap<String, JourneyRun>,
    by_profile: HashMap<ProfileId, Vec<String>>,
    /// (journey, profile) pairs that ever entered.
    entered: HashSet<(String, ProfileId)>,
    timers: BTreeSet<(Timestamp, String)>,
    cursor: i64,
    /// When the cursor was last stored.
    cursor_saved: Option<std::time::Instant>,
}

/// What a pass changed, to save in one transaction.
#[derive(Default)]
struct Changes {
    runs: BTreeMap<String, JourneyRun>,
    decisions: Vec<NewDecision>,
    /// Profile updates and notifications, as messages to append.
    messages: Vec<Map<String, Value>>,
}

/// The journeys and their runs.
pub struct Journeys {
    identity: Arc<IdentityProjection>,
    recorder: Recorder,
    store: Arc<dyn JourneyStore>,
    gate: Gate,
    /// The message catalog: which channels a journey's message can go out on.
    messages: Arc<Messages>,
    catalog: Arc<Catalog<JourneyKind>>,
    state: tokio::sync::Mutex<Runs>,
    wake: tokio::sync::Notify,
}

impl Journeys {
    /// The journeys of the config file and those defined through the API, with their
    /// active runs loaded back.
    pub async fn open(
        identity: Arc<IdentityProjection>,
        intake: Intake,
        store: Arc<dyn JourneyStore>,
        decisions: Arc<dyn DecisionLog>,
        policies: Arc<Live<Policies>>,
        messages: Arc<Messages>,
        configured: &[JourneyConfig],
    ) -> Result<Arc<Self>, JourneyDefinitionError> {
        let log = identity.log().clone();
        let catalog = Arc::new(Catalog::<JourneyKind>::open(&*log, configured).await?);
        let runs = load_runs(&*log, &*store, &catalog).await?;
        Ok(Arc::new(Journeys {
            recorder: Recorder::new(identity.clone(), intake),
            identity,
            store,
            gate: Gate::new(policies, decisions),
            messages,
            catalog,
            state: tokio::sync::Mutex::new(runs),
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Takes the journeys over from whoever ran them before (another node, or this one
    /// before it lost its lease): their cursor and runs as stored.
    pub async fn resume(&self) -> Result<(), StoreError> {
        let runs = load_runs(&**self.identity.log(), &*self.store, &self.catalog).await?;
        *self.state.lock().await = runs;
        Ok(())
    }

    /// Runs the journeys on a task of its own: new events as they are stored (and every
    /// second, for writers in other processes), timers when they are due.
    pub fn run(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let journeys = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = journeys.step(Timestamp::now()).await {
                    tracing::warn!(error = %Redacted(&e), "journeys could not move on; retrying");
                }
                let next_timer = journeys.next_timer().await;
                let sleep = next_timer
                    .map(|at| Timestamp::now().duration_until(at))
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                tokio::select! {
                    _ = journeys.wake.notified() => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
        })
    }

    /// Wakes the runner (new events were stored).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    async fn next_timer(&self) -> Option<Timestamp> {
        self.state.lock().await.timers.first().map(|(at, _)| *at)
    }

    /// Handles the events stored before the step (not those stored meanwhile: under
    /// continuous ingestion the timers would wait for ever), then every timer due at
    /// `now`.
    pub async fn step(&self, now: Timestamp) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        // The identity projection has applied every event up to here, once.
        let mut applied = None;
        loop {
            if self.catalog.is_empty() {
                // No journey: nothing to read the events for, nor to resume after a
                // restart (which starts from the end of the log then) — and no reason
                // to make the identity projection catch up here, on this thread.
                state.cursor = *self.identity.log().committed().borrow();
                break;
            }
            let applied = match applied {
                Some(applied) => applied,
                None => *applied.insert(self.identity.catch_up().await?),
            };
            if state.cursor >= applied {
                break;
            }
            let page = self
                .identity
                .log()
                .events(EventQuery {
                    after_seq: Some(state.cursor),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.events.last().map(|e| e.seq.min(applied)) else {
                break;
            };
            // Facts are read as of now, after the events: never before them.
            let now = Timestamp::now().max(now);
            let mut changes = Changes::default();
            for stored in page.events.iter().filter(|e| e.seq <= applied) {
                self.on_event(&mut state, &mut changes, stored.seq, &stored.event, now)
                    .await?;
            }
            let changed = !changes.runs.is_empty();
            self.save(&mut state, changes).await?;
            state.cursor = last;
            // Stored at once when runs changed, so a restart never redoes a step.
            self.save_cursor(&mut state, changed).await?;
        }
        let due: Vec<String> = state
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect();
        if !due.is_empty() {
            let mut changes = Changes::default();
            for key in due {
                self.wake_run(&mut state, &mut changes, &key, Wake::Timer, None, now)
                    .await?;
            }
            self.save(&mut state, changes).await?;
        }
        Ok(())
    }

    /// Stores the cursor: at once when `now`, else at most every few seconds.
    async fn save_cursor(&self, state: &mut Runs, now: bool) -> Result<(), StoreError> {
        let due = state
            .cursor_saved
            .is_none_or(|at| at.elapsed() > Duration::from_secs(5));
        if now || due {
            self.identity
                .log()
                .put_setting(CURSOR_SETTING, json!(state.cursor))
                .await?;
            state.cursor_saved = Some(std::time::Instant::now());
        }
        Ok(())
    }

    async fn on_event(
        &self,
        state: &mut Runs,
        changes: &mut Changes,
        seq: i64,
        event: &Event,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(profile) = self.profile_of(event) else {
            return Ok(());
        };
        let name = match event.event_type {
            EventType::Track => event.name.as_deref().unwrap_or(""),
            _ => "",
        };
        // Conversions, then the person's runs, woken by the event.
        let keys = state.keys_of(&self.identity, profile);
        for key in &keys {
            let Some(run) = state.runs.get_mut(key) else {
                continue;
            };
            let Some(journey) = self.journey_of(run) else {
                continue;
            };
            if run.converted_at.is_none() && journey.converts(name, run.entered_at, event.timestamp)
            {
                run.converted_at = Some(event.timestamp);
                run.updated_at = now;
                changes.runs.insert(key.clone(), run.clone());
            }
        }
        // A segment's or journey's own bookkeeping wakes nobody and starts nothing,
        // except a segment entry, which is a trigger.
        let entered_segment = segment_change(event).and_then(|(s, entered)| entered.then_some(s));
        if event.source == JOURNEY_SOURCE {
            return Ok(());
        }
        let news = message_step(event);
        let news = news
            .as_ref()
            .map(|(channel, step)| (channel.as_str(), *step));
        for key in &keys {
            self.wake_run(state, changes, key, Wake::Event(name), news, now)
                .await?;
        }
        // A paused or retired journey takes nobody in.
        let journeys: Vec<Entry<Journey>> = (self.catalog.all().into_iter())
            .filter(Entry::is_active)
            .collect();
        let mut facts: Option<(ProfileFacts, Vec<String>)> = None;
        for Entry {
            item: journey,
            version,
            ..
        } in journeys
        {
            // The trigger first (cheap); the person's facts only for a trigger that
            // matches and asks about them: building them for every event kept the
            // runner behind ingestion.
            if !journey.triggers_on(name, entered_segment) {
                continue;
            }
            let pair = (journey.name().to_string(), profile);
            let busy = keys.iter().any(|k| {
                state
                    .runs
                    .get(k)
                    .is_some_and(|r| r.status == RunStatus::Active && r.journey == pair.0)
            });
            if busy || (!journey.config.reentry && state.entered.contains(&pair)) {
                continue;
            }
            if journey.trigger_needs_facts() {
                let (person, _) = match &facts {
                    Some(f) => f,
                    None => facts.insert(self.identity.person(profile, now)),
                };
                if !journey.trigger_holds_for(person) {
                    continue;
                }
            }
            let key = format!("{}:{}:{seq}", journey.name(), profile);
            let run = JourneyRun {
                key: key.clone(),
                journey: pair.0.clone(),
                profile_id: profile,
                entered_at: event.timestamp,
                control: journey.holds_out(profile),
                status: RunStatus::Active,
                step: 0,
                wake_at: None,
                waiting_for: None,
                blocked: false,
                watching: None,
                fallbacks: Vec::new(),
                exit_reason: None,
                converted_at: None,
                updated_at: now,
                version,
            };
            state.entered.insert(pair);
            state.remember(run);
            self.wake_run(state, changes, &key, Wake::Entered, None, now)
                .await?;
        }
        Ok(())
    }

    /// Moves one run on.
    async fn wake_run(
        &self,
        state: &mut Runs,
        changes: &mut Changes,
        key: &str,
        wake: Wake<'_>,
        news: Option<(&str, &str)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(mut run) = state.runs.get(key).cloned() else {
            return Ok(());
        };
        if run.status != RunStatus::Active {
            return Ok(());
        }
        let Some(entry) = self.catalog.get(&run.journey) else {
            return Ok(());
        };
        if entry.status == Status::Paused {
            // Held where it is; a timer that falls due meanwhile fires once resumed.
            return Ok(());
        }
        let Some(journey) = self.journey_of(&run) else {
            return Ok(());
        };
        // Only what the run waits for moves it: its timer, its event, news about a
        // message it watches, or — at a send the gate suppressed — any news about the
        // person.
        let due = match wake {
            Wake::Entered => true,
            Wake::Timer => run.wake_at.is_some_and(|at| at <= now),
            Wake::Event(name) => {
                run.blocked
                    || (run.watching.is_some() && news.is_some())
                    || run
                        .waiting_for
                        .as_deref()
                        .is_some_and(|w| w.eq_ignore_ascii_case(name))
            }
        };
        if !due {
            return Ok(());
        }
        let profile = self
            .identity
            .read(|g| g.profile(run.profile_id).map(|n| n.id))
            .unwrap_or(run.profile_id);
        let mut progress = Progress {
            step: run.step,
            wake_at: run.wake_at,
            waiting_for: run.waiting_for.clone(),
            control: run.control,
        };
        let mut wake = wake;
        // A message watched for delivery: engaged, the run moves on; failed or unread,
        // the next channel is tried.
        let mut fallback = None;
        let watched = run.watching.clone();
        if let Some(channel) = watched.clone() {
            match delivery(&channel, news, run.wake_at, now) {
                Delivery::Pending => return Ok(()),
                Delivery::Engaged => {
                    run.fallbacks.clear();
                    progress.sent();
                }
                Delivery::Failed | Delivery::Unread => {
                    if run.fallbacks.is_empty() {
                        progress.sent();
                    } else {
                        fallback = Some(run.fallbacks.remove(0));
                        progress.wake_at = None;
                    }
                }
            }
            run.watching = None;
            wake = Wake::Timer;
        }
        let (facts, reachable) = self.identity.person(profile, now);
        state
            .timers
            .remove(&(run.wake_at.unwrap_or(now), key.to_string()));
        let mut actions = Vec::new();
        let halt = loop {
            let halt = journey.advance(
                &mut progress,
                wake,
                &facts,
                &self.gate.policies(),
                now,
                &mut actions,
            );
            let Halt::Send {
                message,
                purpose,
                channel,
                fallback_after,
            } = &halt
            else {
                break halt;
            };
            match self.messages.get(message).map(|m| m.status) {
                Some(Status::Retired) => break Halt::Exited("message retired".into()),
                Some(Status::Paused) => {
                    // Held at this step, no decision taken, until the message is resumed
                    // (a fallback that was due waits with it).
                    if let Some(due) = fallback.take() {
                        run.fallbacks.insert(0, due);
                        run.watching = watched.clone();
                    }
                    progress.wake_at = Some(now + PAUSED_MESSAGE_RETRY);
                    break Halt::Waiting;
                }
                _ => {}
            }
            let channel = fallback.take().unwrap_or_else(|| channel.clone());
            let (decision, mut next_channels) = self
                .decide(
                    &journey,
                    &run,
                    profile,
                    &facts,
                    &reachable,
                    (message, purpose, &channel),
                    now,
                )
                .await?;
            if channel != "auto" {
                next_channels = std::mem::take(&mut run.fallbacks);
            }
            let sent = decision.outcome.goes_out();
            let (went_on, sent_at) = (decision.channel.clone(), decision.send_at);
            if sent || !run.blocked {
                changes.decisions.push(decision);
            }
            if !sent {
                run.blocked = true;
                break Halt::Waiting;
            }
            run.blocked = false;
            if let Some(after) = fallback_after
                && !next_channels.is_empty()
            {
                // Watched until it is read, or it fails, or the time runs out.
                run.watching = Some(went_on);
                run.fallbacks = next_channels;
                progress.wake_at = Some(sent_at.unwrap_or(now) + *after);
                break Halt::Waiting;
            }
            progress.sent();
            wake = Wake::Timer;
        };
        for action in actions {
            changes
                .messages
                .push(self.action_message(&run, profile, action, now));
        }
        run.step = progress.step;
        run.wake_at = progress.wake_at;
        run.waiting_for = progress.waiting_for;
        run.updated_at = now;
        match halt {
            Halt::Waiting | Halt::Send { .. } => {}
            Halt::Exited(reason) => {
                run.status = RunStatus::Exited;
                run.exit_reason = Some(reason);
            }
            Halt::Completed => run.status = RunStatus::Completed,
        }
        if run.status == RunStatus::Active
            && let Some(at) = run.wake_at
        {
            state.timers.insert((at, key.to_string()));
        }
        changes.runs.insert(key.to_string(), run.clone());
        state.runs.insert(key.to_string(), run);
        Ok(())
    }

    /// Decides a journey's message for a person through the gate: the decision to
    /// record, and the channels to fall back to.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        journey: &Journey,
        run: &JourneyRun,
        profile: ProfileId,
        facts: &ProfileFacts,
        reachable: &[String],
        (message, purpose, channel): (&String, &String, &String),
        now: Timestamp,
    ) -> Result<(NewDecision, Vec<String>), StoreError> {
        let history = self.history(profile, now).await?;
        let renders = self.renders(message);
        let ask = self.ask(journey, (message, purpose, channel), &renders);
        let reachable: Vec<&str> = reachable.iter().map(String::as_str).collect();
        let gated = self.gate.pass(&ask, facts, &reachable, &history, now);
        let decision = gated.record(&ask, run.profile_id, None, now);
        Ok((decision, gated.fallbacks))
    }

    /// The person's recent sends (theirs and those of profiles merged into theirs),
    /// for the caps and "one in flight per journey".
    async fn history(
        &self,
        profile: ProfileId,
        now: Timestamp,
    ) -> Result<Vec<PastSend>, StoreError> {
        let ids = self.identity.with_merged(profile);
        let found = self.gate.history(ids, now).await?;
        Ok(found.into_values().flatten().collect())
    }

    /// The channels a message has a rendering for (none, while it is not defined yet:
    /// any channel is then chosen, and its sends fail visibly in the outbox).
    fn renders(&self, message: &str) -> Vec<&'static str> {
        self.messages
            .get(message)
            .map(|e| e.message.channels())
            .unwrap_or_default()
    }

    /// A journey's message as the gate is asked it.
    fn ask<'a>(
        &self,
        journey: &'a Journey,
        (message, purpose, channel): (&'a str, &'a str, &'a str),
        renders: &'a [&'static str],
    ) -> Ask<'a> {
        Ask {
            message,
            purpose,
            channel,
            journey: Some(journey.name()),
            renders,
            best_hour_prior: None,
        }
    }

    /// A profile update or notification as a message of the person (without their
    /// identity when they have none to record it under: then it is quarantined with the
    /// reason, not lost).
    fn action_message(
        &self,
        run: &JourneyRun,
        profile: ProfileId,
        action: Action,
        now: Timestamp,
    ) -> Map<String, Value> {
        let (step, mut message) = match action {
            Action::UpdateProfile { step, traits } => {
                (step, platform_events::profile_update(traits))
            }
            Action::Notify {
                step,
                department,
                message: text,
            } => (
                step,
                platform_events::department_notified(&department, &text, &run.journey, profile),
            ),
        };
        message.insert("timestamp".into(), now.to_string().into());
        message.insert(
            "messageId".into(),
            format!("journey:{}:{step}", run.key).into(),
        );
        self.recorder
            .about(profile, message.clone())
            .unwrap_or(message)
    }

    /// Appends the profile updates and notifications, then saves the runs and their
    /// decisions together.
    async fn save(&self, state: &mut Runs, changes: Changes) -> Result<(), StoreError> {
        if !changes.messages.is_empty() {
            let report = self
                .recorder
                .record(JOURNEY_SOURCE, changes.messages, json!({"journeys": true}))
                .await?;
            if let Some(rejected) = report.rejected.first() {
                tracing::warn!(code = ?rejected.code, "a journey's profile update or notification was quarantined");
            }
        }
        let runs: Vec<JourneyRun> = changes.runs.into_values().collect();
        self.store
            .save_runs(runs.clone(), changes.decisions)
            .await?;
        // Finished runs are kept only while they can still convert.
        for run in runs.iter().filter(|r| r.status != RunStatus::Active) {
            let keep = self.journey_of(run).is_some_and(|j| {
                j.goal.as_ref().is_some_and(|(_, within)| {
                    run.converted_at.is_none() && run.entered_at + *within > Timestamp::now()
                })
            });
            if !keep {
                state.forget(&run.key);
            }
        }
        Ok(())
    }

    fn journey(&self, name: &str) -> Option<Arc<Journey>> {
        self.catalog.get(name).map(|e| e.item)
    }

    /// The version of its journey a run follows.
    fn journey_of(&self, run: &JourneyRun) -> Option<Arc<Journey>> {
        self.catalog.at_version(&run.journey, run.version)
    }

    /// The profile an event belongs to now.
    fn profile_of(&self, event: &Event) -> Option<ProfileId> {
        let set = extract(event, &self.identity.rules());
        self.identity
            .read(|g| set.keys.iter().find_map(|k| g.lookup(k).map(|n| n.id)))
    }

    /// Another node changed the shared setting `name` (`None`: any, perhaps): when it is the journeys'
    /// definitions, reads them again.
    pub async fn take_in_setting(&self, name: Option<&str>) -> Result<(), StoreError> {
        if name.is_none_or(|name| name == <JourneyKind as Definition>::SETTING) {
            self.catalog.reload(&**self.identity.log()).await?;
            self.nudge();
        }
        Ok(())
    }

    /// Checks a config file's journeys, read again; every one must hold.
    pub fn check(
        configured: &[JourneyConfig],
    ) -> Result<Configured<JourneyKind>, JourneyDefinitionError> {
        Ok(Catalog::check(configured)?)
    }

    /// Puts a config file's journeys, read again and checked, in force from the next
    /// step on: a run goes on under its journey's new definition, as after a restart.
    pub fn reconfigure(&self, configured: Configured<JourneyKind>) {
        self.catalog.reconfigure(configured);
        self.nudge();
    }

    /// Defines a journey through the API: checked, stored, and running from the next
    /// event on.
    pub async fn define(
        &self,
        config: JourneyConfig,
        edit: Edit<'_>,
    ) -> Result<(), JourneyDefinitionError> {
        self.catalog
            .define(&**self.identity.log(), config, edit)
            .await?;
        Ok(())
    }

    /// Makes `config` the journey's new version, doing `runs` to the people in it
    /// (checked first: a step mapping must place every active run); on a `dry_run`,
    /// tells what it would do and changes nothing.
    pub async fn revise(
        &self,
        config: JourneyConfig,
        runs: &RunsOnRevision,
        dry_run: bool,
        edit: Edit<'_>,
    ) -> Result<JourneyRevision, ChangeError<JourneyDefinitionError>> {
        let (journey, changes) =
            (self.catalog.check_revision(&config)).map_err(|e| e.map_invalid(Into::into))?;
        let mut state = self.state.lock().await;
        let Some(old) = self.catalog.get(journey.name()) else {
            return Err(ChangeError::NotFound(journey.name().to_string()));
        };
        let active: Vec<String> = (state.runs.values())
            .filter(|r| r.journey == journey.name() && r.status == RunStatus::Active)
            .map(|r| r.key.clone())
            .collect();
        let mut plan = Vec::new();
        let mut outcome = RunsRevised::default();
        // The steps of every version a run follows, which a mapping may name.
        let mut known: BTreeSet<String> = old.item.step_names.iter().cloned().collect();
        for key in &active {
            let run = &state.runs[key];
            let follows = self.journey_of(run).unwrap_or_else(|| old.item.clone());
            known.extend(follows.step_names.iter().cloned());
            let from = (follows.step_names.get(run.step).cloned())
                .unwrap_or_else(|| format!("step-{}", run.step + 1));
            let to = match runs {
                RunsOnRevision::Finish => {
                    outcome.finishing += 1;
                    // Pinned to the version in force now, when it followed whichever was.
                    Revised::Finish(if run.version == 0 {
                        old.version
                    } else {
                        run.version
                    })
                }
                RunsOnRevision::Exit => {
                    outcome.exited += 1;
                    Revised::Exit
                }
                RunsOnRevision::Move(mapping) => {
                    let target = mapping.get(&from).ok_or_else(|| {
                        ChangeError::Invalid(JourneyDefinitionError::StepMapping(format!(
                            "runs are in step {from:?}: the mapping must say where they go"
                        )))
                    })?;
                    let index = (journey.step_names.iter().position(|n| n == target))
                        .ok_or_else(|| {
                            ChangeError::Invalid(JourneyDefinitionError::StepMapping(format!(
                                "the mapping sends step {from:?} to {target:?}, which the new version does not have (its steps: {})",
                                journey.step_names.join(", ")
                            )))
                        })?;
                    *outcome
                        .moved
                        .entry(format!("{from} → {target}"))
                        .or_default() += 1;
                    Revised::Move(index)
                }
            };
            plan.push((key.clone(), to));
        }
        if let RunsOnRevision::Move(mapping) = runs
            && let Some(unknown) = mapping.keys().find(|k| !known.contains(*k))
        {
            return Err(ChangeError::Invalid(JourneyDefinitionError::StepMapping(
                format!("the mapping names step {unknown:?}, which the journey does not have"),
            )));
        }
        if dry_run {
            return Ok(JourneyRevision {
                version: None,
                changes,
                runs: outcome,
            });
        }
        let revision = self
            .catalog
            .revise(&**self.identity.log(), config, edit)
            .await
            .map_err(|e| e.map_invalid(Into::into))?;
        let now = Timestamp::now();
        let mut moved = Changes::default();
        let mut restart = Vec::new();
        for (key, to) in plan {
            let Some(mut run) = state.runs.get(&key).cloned() else {
                continue;
            };
            if let Revised::Finish(version) = to {
                if run.version != version {
                    run.version = version;
                    moved.runs.insert(key.clone(), run.clone());
                    state.runs.insert(key, run);
                }
                continue;
            }
            if let Some(at) = run.wake_at {
                state.timers.remove(&(at, key.clone()));
            }
            (run.wake_at, run.waiting_for, run.watching) = (None, None, None);
            run.fallbacks.clear();
            run.blocked = false;
            run.updated_at = now;
            if let Revised::Move(step) = to {
                run.step = step;
                run.version = revision.version;
                restart.push(key.clone());
            } else {
                run.status = RunStatus::Exited;
                run.exit_reason = Some("revised".into());
            }
            moved.runs.insert(key.clone(), run.clone());
            state.runs.insert(key, run);
        }
        for key in restart {
            self.wake_run(&mut state, &mut moved, &key, Wake::Entered, None, now)
                .await
                .map_err(ChangeError::Store)?;
        }
        self.save(&mut state, moved)
            .await
            .map_err(ChangeError::Store)?;
        Ok(JourneyRevision {
            version: Some(revision.version),
            changes: revision.changes,
            runs: outcome,
        })
    }

    /// Pauses (nobody enters; runs hold where they are), resumes or retires (nobody
    /// enters; runs go on to their end) a journey; the status it had.
    pub async fn set_status(
        &self,
        name: &str,
        status: Status,
        edit: Edit<'_>,
    ) -> Result<Status, ChangeError<JourneyDefinitionError>> {
        let was = self
            .catalog
            .set_status(&**self.identity.log(), name, status, edit)
            .await
            .map_err(|e| e.map_invalid(Into::into))?;
        self.nudge();
        Ok(was)
    }

    /// Drops the runs of erased people (their rows go from the store with them): no
    /// timer of theirs fires, and nothing of theirs is written back.
    pub async fn forget_people(&self, profiles: &[ProfileId]) {
        let mut state = self.state.lock().await;
        for profile in profiles {
            let keys = state.by_profile.get(profile).cloned().unwrap_or_default();
            for key in keys {
                if let Some(at) = state.runs.get(&key).and_then(|r| r.wake_at) {
                    state.timers.remove(&(at, key.clone()));
                }
                state.forget(&key);
            }
            state.entered.retain(|(_, p)| p != profile);
        }
    }

    /// The versions and changes of status of a journey defined through the API.
    pub fn versions(&self, name: &str) -> Option<History<JourneyConfig>> {
        self.catalog.history(name)
    }

    /// A journey by name.
    pub fn get(&self, name: &str) -> Option<Arc<Journey>> {
        self.journey(name)
    }

    /// Where a journey was defined (`config` or `api`).
    pub fn origin(&self, name: &str) -> Option<&'static str> {
        self.catalog.get(name).map(|e| e.origin)
    }

    /// Simulates `journey` (defined or only proposed) for everyone it could start for
    /// now: who would get what, on which channel, when; who would be suppressed and why.
    /// Records nothing.
    pub async fn dry_run(
        &self,
        journey: &Journey,
        list_limit: usize,
        now: Timestamp,
    ) -> Result<JourneyDryRun, StoreError> {
        let history = self.gate.history(Vec::new(), now).await?;
        let mut people = People::snapshot(&self.identity).await?;
        let mut report = JourneyDryRun {
            journey: journey.name().to_string(),
            evaluated: 0,
            entered: 0,
            control: 0,
            outcomes: BTreeMap::new(),
            reasons: BTreeMap::new(),
            ends: BTreeMap::new(),
            people: Vec::new(),
        };
        let simulate = |person: Person, state: &ProfileState| -> Option<SimulatedRun> {
            let enters = match &journey.trigger {
                Trigger::Segment(segment) => state.in_segment(segment),
                Trigger::Event(_) => journey
                    .trigger_when
                    .as_ref()
                    .is_none_or(|w| w.matches(&person.facts).unwrap_or(false)),
            };
            if !enters {
                return None;
            }
            let past = history.get(&person.id).map_or(&[][..], Vec::as_slice);
            Some(self.simulate(journey, person.id, &person, past, now))
        };
        while let Some(page) = people.map_page(now, &simulate) {
            report.evaluated += page.len() as u64;
            for run in page.into_iter().flatten() {
                report.entered += 1;
                report.control += u64::from(run.control);
                for m in &run.messages {
                    *report
                        .outcomes
                        .entry(m.decision.outcome.as_str().to_string())
                        .or_default() += 1;
                    for reason in &m.decision.reasons {
                        *report.reasons.entry(reason.code.to_string()).or_default() += 1;
                    }
                }
                let end = run.end.split(':').next().unwrap_or_default().to_string();
                *report.ends.entry(end).or_default() += 1;
                if report.people.len() < list_limit {
                    report.people.push(run);
                }
            }
        }
        Ok(report)
    }

    /// One person's run, simulated from entry.
    fn simulate(
        &self,
        journey: &Journey,
        id: ProfileId,
        person: &Person,
        past: &[PastSend],
        now: Timestamp,
    ) -> SimulatedRun {
        let control = journey.holds_out(id);
        let mut run = SimulatedRun {
            profile_id: id,
            control,
            messages: Vec::new(),
            end: "completed".into(),
        };
        let mut history = past.to_vec();
        let mut progress = Progress::start(control);
        let (mut at, mut wake) = (now, Wake::Entered);
        for _ in 0..=journey.steps.len() * 2 {
            match journey.advance(
                &mut progress,
                wake,
                &person.facts,
                &self.gate.policies(),
                at,
                &mut Vec::new(),
            ) {
                Halt::Waiting => match progress.wake_at {
                    Some(until) => (at, wake) = (until.max(at), Wake::Timer),
                    None => break,
                },
                Halt::Send {
                    message,
                    purpose,
                    channel,
                    ..
                } => {
                    let renders = self.renders(&message);
                    let ask = self.ask(journey, (&message, &purpose, &channel), &renders);
                    let reachable: Vec<&str> =
                        person.identifier_types.iter().map(String::as_str).collect();
                    let Gated {
                        channel, decision, ..
                    } = self
                        .gate
                        .pass(&ask, &person.facts, &reachable, &history, at);
                    let step = journey.step_names[progress.step].clone();
                    let suppressed = decision.outcome == Outcome::Suppress;
                    if !suppressed {
                        history.push(PastSend {
                            at: decision.send_at.unwrap_or(at),
                            channel: channel.clone(),
                            purpose: purpose.clone(),
                            journey: Some(journey.name().to_string()),
                            in_flight: false,
                        });
                    }
                    run.messages.push(SimulatedMessage {
                        step: step.clone(),
                        message,
                        channel,
                        decision,
                    });
                    if suppressed {
                        run.end = format!("suppressed at {step}");
                        return run;
                    }
                    progress.sent();
                    wake = Wake::Timer;
                }
                Halt::Exited(reason) => {
                    run.end = format!("exited: {reason}");
                    return run;
                }
                Halt::Completed => return run,
            }
        }
        run
    }

    /// Every journey's name.
    pub fn names(&self) -> Vec<String> {
        self.catalog
            .all()
            .iter()
            .map(|e| e.item.name().to_string())
            .collect()
    }

    /// A journey with its figures.
    pub async fn stats(&self, name: &str) -> Result<Option<JourneyStats>, StoreError> {
        let Some(entry) = self.catalog.get(name) else {
            return Ok(None);
        };
        let counts = self.store.run_counts(name).await?;
        Ok(Some(stats(&entry, &counts, |version| {
            self.catalog.at_version(name, version)
        })))
    }

    /// Where people are in the journeys, read from the runs as stored.
    pub fn positions(&self) -> JourneyPositions {
        JourneyPositions {
            catalog: self.catalog.clone(),
            store: self.store.clone(),
        }
    }

    /// A journey's runs, in key order after `after`.
    pub async fn runs(
        &self,
        name: &str,
        profile: Option<ProfileId>,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<JourneyRun>, StoreError> {
        self.store
            .runs(RunQuery {
                journey: Some(name.to_string()),
                profile_id: profile,
                active_only: false,
                after,
                limit,
            })
            .await
    }
}

impl Runs {
    fn remember(&mut self, run: JourneyRun) {
        let keys = self.by_profile.entry(run.profile_id).or_default();
        if !keys.contains(&run.key) {
            keys.push(run.key.clone());
        }
        if run.status == RunStatus::Active
            && let Some(at) = run.wake_at
        {
            self.timers.insert((at, run.key.clone()));
        }
        self.runs.insert(run.key.clone(), run);
    }

    fn forget(&mut self, key: &str) {
        if let Some(run) = self.runs.remove(key)
            && let Some(keys) = self.by_profile.get_mut(&run.profile_id)
        {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_profile.remove(&run.profile_id);
            }
        }
    }

    /// The keys of a person's runs, including those begun under profiles merged into
    /// theirs since.
    fn keys_of(&self, identity: &IdentityProjection, profile: ProfileId) -> Vec<String> {
        identity
            .with_merged(profile)
            .iter()
            .filter_map(|p| self.by_profile.get(p))
            .flatten()
            .cloned()
            .collect()
    }
}

/// A journey's figures from its run counts; `at_version` gives the versions that runs
/// still follow, whose step names count them.
fn stats(
    entry: &Entry<Journey>,
    counts: &[RunCount],
    at_version: impl Fn(u32) -> Option<Arc<Journey>>,
) -> JourneyStats {
    let journey = &entry.item;
    let mut out = JourneyStats {
        definition: journey.config.clone(),
        origin: entry.origin,
        version: entry.version,
        status: entry.status,
        entered: 0,
        active: 0,
        exited: 0,
        completed: 0,
        in_step: journey.step_names.iter().map(|n| (n.clone(), 0)).collect(),
        treatment: GroupStats::default(),
        control: GroupStats::default(),
    };
    for c in counts {
        out.entered += c.runs;
        match c.status {
            RunStatus::Active => {
                out.active += c.runs;
                let follows = at_version(c.version).unwrap_or_else(|| journey.clone());
                if let Some(name) = follows.step_names.get(c.step) {
                    *out.in_step.entry(name.clone()).or_default() += c.runs;
                }
            }
            RunStatus::Exited => out.exited += c.runs,
            RunStatus::Completed => out.completed += c.runs,
        }
        let group = if c.control {
            &mut out.control
        } else {
            &mut out.treatment
        };
        group.entered += c.runs;
        if c.converted {
            group.converted += c.runs;
        }
    }
    for group in [&mut out.treatment, &mut out.control] {
        group.conversion_rate =
            (group.entered > 0).then(|| group.converted as f64 / group.entered as f64);
    }
    out
}

/// The journeys' cursor and runs as stored: the active runs (and those whose goal is
/// still open) in memory, and who entered which journey.
async fn load_runs(
    log: &dyn EventLog,
    store: &dyn JourneyStore,
    catalog: &Catalog<JourneyKind>,
) -> Result<Runs, StoreError> {
    // A first start: journeys react to what happens from now on — from where the first
    // node to start stored it, so a node taking over does not skip what came between.
    let now = *log.committed().borrow();
    let cursor = log
        .setting_or_insert(CURSOR_SETTING, json!(now))
        .await?
        .as_i64()
        .unwrap_or(0);
    let mut runs = Runs {
        cursor,
        ..Default::default()
    };
    let mut after = None;
    loop {
        let page = store
            .runs(RunQuery {
                after: after.clone(),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        // A broadcast's fallback chains share the store; `BroadcastFallbacks` runs them.
        for run in page.into_iter().filter(|r| !crate::fallbacks::is_chain(r)) {
            runs.entered.insert((run.journey.clone(), run.profile_id));
            let goal_open = catalog
                .at_version(&run.journey, run.version)
                .is_some_and(|j| {
                    j.goal.as_ref().is_some_and(|(_, within)| {
                        run.converted_at.is_none() && run.entered_at + *within > Timestamp::now()
                    })
                });
            if run.status == RunStatus::Active || goal_open {
                runs.remember(run);
            }
        }
    }
    Ok(runs)
}

/// Where people are in the journeys, as the store holds the runs (whichever node runs
/// the journeys): for the context card, beside a running platform or over a data
/// folder read while no journey runs (an export).
#[derive(Clone)]
pub struct JourneyPositions {
    catalog: Arc<Catalog<JourneyKind>>,
    store: Arc<dyn JourneyStore>,
}

impl JourneyPositions {
    /// Over `store`, with the config file's journeys and those defined through the API.
    pub async fn open(
        log: &dyn EventLog,
        store: Arc<dyn JourneyStore>,
        configured: &[JourneyConfig],
    ) -> Result<Self, JourneyDefinitionError> {
        Ok(JourneyPositions {
            catalog: Arc::new(Catalog::open(log, configured).await?),
            store,
        })
    }

    /// Where the person of `profiles` (their profile id and those merged into it) is in
    /// each journey they are in, in the order they entered.
    pub async fn of(&self, profiles: &[ProfileId]) -> Result<Vec<JourneyPosition>, StoreError> {
        let mut positions = Vec::new();
        for profile in profiles {
            let runs = (self.store)
                .runs(RunQuery {
                    profile_id: Some(*profile),
                    active_only: true,
                    limit: MAX_POSITIONS,
                    ..RunQuery::default()
                })
                .await?;
            for run in &runs {
                let Some(journey) = self.catalog.at_version(&run.journey, run.version) else {
                    continue;
                };
                positions.push(journey.position(RunAt {
                    step: run.step,
                    entered_at: run.entered_at,
                    since: run.updated_at,
                    wake_at: run.wake_at,
                    waiting_for: run.waiting_for.as_deref(),
                    blocked: run.blocked,
                    watching: run.watching.as_deref(),
                    fallbacks: &run.fallbacks,
                    control: run.control,
                }));
            }
        }
        positions.sort_by(|a, b| (a.entered_at, &a.journey).cmp(&(b.entered_at, &b.journey)));
        positions.truncate(MAX_POSITIONS);
        Ok(positions)
    }
}
