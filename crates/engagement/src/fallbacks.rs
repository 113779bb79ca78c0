//! Broadcast fallbacks: a broadcast on channel `auto` with `fallback_after` watches each
//! message it sent, and when it bounces or fails, or goes unread by the deadline, tries
//! the person's next ranked channel through the gate — as a journey's send step does.
//!
//! Each person's **chain** is kept as a run in the journeys' store (`JourneyStore`),
//! under its own key space (`broadcast:<id>:<profile>`, journey `broadcast:<id>`, which
//! no journey can be named): `step` counts the attempts, `watching` is the channel
//! watched until `wake_at`, `fallbacks` the channels still to try. So a chain is durable
//! on every store, erased with the person and copied by `unavoce migrate` as journey
//! runs are, and its fallback decisions are saved with it in one transaction. What the
//! broadcast asked (message, purpose, how long to wait) is its **plan**, a setting
//! (`engagement.broadcasts.<id>`), written before the chains and again once they are
//! all saved, which tells the other nodes sharing the store to load them.
//!
//! The runner reads the log after its cursor for news about the messages it watches
//! (the delivery events name their broadcast), and wakes the chains whose deadlines are
//! due. Each fallback is decided by the gate as any message is (consent, suppression,
//! caps, quiet hours) and recorded with a `fallback` reason saying why it was tried; a
//! fallback the gate refuses is recorded, and the next channel is tried at once; a chain
//! ends when a message is engaged with, or the last channel went out, or nothing is
//! left to try.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use unavoce_core::identity::{ProfileId, extract};
use unavoce_core::journey::{Delivery, delivery, parse_duration};
use unavoce_core::live::Live;
use unavoce_core::platform_events::MessageOutcome;
use unavoce_core::policy::{Outcome, PastSend, Policies, Reason};
use unavoce_core::profile::message_step;
use unavoce_core::redact::Redacted;
use unavoce_core::{Event, EventType};
use unavoce_projections::IdentityProjection;
use unavoce_store::{
    DecisionLog, EventQuery, JourneyRun, JourneyStore, NewDecision, RunQuery, RunStatus, StoreError,
};

use crate::Messages;
use crate::gate::{Ask, Gate};

/// What every chain's key and journey begin with; no journey's name can hold a `:`.
const CHAIN_PREFIX: &str = "broadcast:";
/// The log position the runner has handled.
const CURSOR_SETTING: &str = "engagement.broadcasts.fallbacks.cursor";
/// The settings holding broadcasts' plans: `engagement.broadcasts.<id>`.
const PLAN_SETTING_PREFIX: &str = "engagement.broadcasts.";
/// Events read per step.
const PAGE: usize = 1_000;
/// The reason code of a fallback decision: why the channel was tried.
pub const FALLBACK_REASON: &str = "fallback";

/// Why a broadcast's `fallback_after` cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FallbackAfterError {
    #[error(
        "`fallback_after` needs channel \"auto\" (the channels the person can be reached on, ranked, each tried in turn); this broadcast's channel is {0:?}"
    )]
    NotAuto(String),
    #[error(
        "`fallback_after` {0:?} is not a duration: a positive number and a unit, as in \"90s\", \"30m\", \"24h\", \"2d\" or \"1w\""
    )]
    NotADuration(String),
}

/// A broadcast's `fallback_after` (`24h`), read as journeys read theirs: only with
/// channel `auto`.
pub fn fallback_after(channel: &str, text: &str) -> Result<SignedDuration, FallbackAfterError> {
    if channel != "auto" {
        return Err(FallbackAfterError::NotAuto(channel.to_string()));
    }
    parse_duration(text).ok_or_else(|| FallbackAfterError::NotADuration(text.to_string()))
}

/// Whether `run` is a broadcast's fallback chain rather than a journey's run.
pub(crate) fn is_chain(run: &JourneyRun) -> bool {
    run.journey.starts_with(CHAIN_PREFIX)
}

/// The `journey` of a broadcast's chains.
fn chain_journey(broadcast: &str) -> String {
    format!("{CHAIN_PREFIX}{broadcast}")
}

/// The setting holding a broadcast's plan.
fn plan_setting(broadcast: &str) -> String {
    format!("{PLAN_SETTING_PREFIX}{broadcast}")
}

/// What a broadcast with fallbacks asked, as its chains need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub message: String,
    pub purpose: String,
    /// How long a message is watched for engagement before the next channel is tried.
    pub fallback_after_seconds: i64,
    /// The log position committed when the broadcast began: news about its messages
    /// comes after it.
    pub after: i64,
    /// Every chain is saved (written again once they are, to tell the other nodes).
    pub complete: bool,
}

impl Plan {
    fn fallback_after(&self) -> SignedDuration {
        SignedDuration::from_secs(self.fallback_after_seconds)
    }
}

/// A new chain: `profile` was sent `channel` (going out at `send_at`) in `broadcast`,
/// with `fallbacks` to try next.
pub(crate) fn chain(
    broadcast: &str,
    plan: &Plan,
    profile: ProfileId,
    channel: String,
    fallbacks: Vec<String>,
    send_at: Option<Timestamp>,
    now: Timestamp,
) -> JourneyRun {
    JourneyRun {
        key: format!("{CHAIN_PREFIX}{broadcast}:{profile}"),
        journey: chain_journey(broadcast),
        profile_id: profile,
        entered_at: now,
        control: false,
        status: RunStatus::Active,
        step: 0,
        wake_at: Some(send_at.unwrap_or(now) + plan.fallback_after()),
        waiting_for: None,
        blocked: false,
        watching: Some(channel),
        fallbacks,
        exit_reason: None,
        converted_at: None,
        updated_at: now,
        version: 0,
    }
}

/// The runner's memory: the chains still watching a message.
#[derive(Default)]
struct Chains {
    chains: HashMap<String, JourneyRun>,
    by_profile: HashMap<ProfileId, Vec<String>>,
    timers: BTreeSet<(Timestamp, String)>,
    /// Plans by broadcast id.
    plans: HashMap<String, Plan>,
    cursor: i64,
    /// When the cursor was last stored.
    cursor_saved: Option<std::time::Instant>,
}

impl Chains {
    fn remember(&mut self, chain: JourneyRun) {
        self.forget(&chain.key);
        if chain.status != RunStatus::Active {
            return;
        }
        let keys = self.by_profile.entry(chain.profile_id).or_default();
        keys.push(chain.key.clone());
        if let Some(at) = chain.wake_at {
            self.timers.insert((at, chain.key.clone()));
        }
        self.chains.insert(chain.key.clone(), chain);
    }

    fn forget(&mut self, key: &str) {
        let Some(chain) = self.chains.remove(key) else {
            return;
        };
        if let Some(at) = chain.wake_at {
            self.timers.remove(&(at, key.to_string()));
        }
        if let Some(keys) = self.by_profile.get_mut(&chain.profile_id) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_profile.remove(&chain.profile_id);
            }
        }
    }

    /// The keys of a person's chains, including those begun under profiles merged into
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

/// What a pass changed, to save in one transaction.
#[derive(Default)]
struct Changes {
    chains: Vec<JourneyRun>,
    decisions: Vec<NewDecision>,
}

/// News about a watched message, read from one event.
struct News<'a> {
    /// The broadcast the event names, if it names one.
    broadcast: Option<&'a str>,
    /// Its channel and step (`opened`, `failed` …), as `profile::message_step` reads it.
    channel: String,
    step: &'static str,
    /// What the event says happened (`bounced`, `failed`, `read` …).
    verb: &'static str,
}

impl<'a> News<'a> {
    /// The news an event brings about broadcasts' messages: an event about a message of
    /// a broadcast, or about no message of ours at all (a reply, another tool's report);
    /// not one about another message of ours (a journey's).
    fn of(event: &'a Event) -> Option<News<'a>> {
        if event.event_type != EventType::Track {
            return None;
        }
        let (channel, step) = message_step(event)?;
        let broadcast = event.get("properties.broadcast").and_then(Value::as_str);
        if broadcast.is_none() && event.get("properties.decision_id").is_some() {
            return None;
        }
        let verb = event
            .name
            .as_deref()
            .and_then(|n| n.rsplit_once(' '))
            .and_then(|(_, verb)| MessageOutcome::from_verb(verb))
            .map_or(step, MessageOutcome::verb);
        Some(News {
            broadcast,
            channel,
            step,
            verb,
        })
    }
}

/// Broadcasts' pending fallbacks and the runner that moves them on.
pub struct BroadcastFallbacks {
    identity: Arc<IdentityProjection>,
    store: Arc<dyn JourneyStore>,
    gate: Gate,
    /// The message catalog: which channels a broadcast's message renders on now.
    messages: Arc<Messages>,
    state: tokio::sync::Mutex<Chains>,
    wake: tokio::sync::Notify,
}

impl BroadcastFallbacks {
    /// The pending fallbacks as stored, with the runner's cursor.
    pub async fn open(
        identity: Arc<IdentityProjection>,
        store: Arc<dyn JourneyStore>,
        decisions: Arc<dyn DecisionLog>,
        policies: Arc<Live<Policies>>,
        messages: Arc<Messages>,
    ) -> Result<Arc<Self>, StoreError> {
        let chains = load(&identity, &*store).await?;
        Ok(Arc::new(BroadcastFallbacks {
            identity,
            store,
            gate: Gate::new(policies, decisions),
            messages,
            state: tokio::sync::Mutex::new(chains),
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Takes the fallbacks over from whoever ran them before (another node, or this one
    /// before it lost its lease): their cursor and chains as stored.
    pub async fn resume(&self) -> Result<(), StoreError> {
        let chains = load(&self.identity, &*self.store).await?;
        *self.state.lock().await = chains;
        Ok(())
    }

    /// Runs the fallbacks on a task of its own: news as it is stored (and every second,
    /// for writers in other processes), deadlines when they are due.
    pub fn run(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let fallbacks = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = fallbacks.step(Timestamp::now()).await {
                    tracing::warn!(error = %Redacted(&e), "broadcast fallbacks could not move on; retrying");
                }
                let next = fallbacks
                    .state
                    .lock()
                    .await
                    .timers
                    .first()
                    .map(|(at, _)| *at);
                let sleep = next
                    .map(|at| Timestamp::now().duration_until(at))
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                tokio::select! {
                    _ = fallbacks.wake.notified() => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
        })
    }

    /// Wakes the runner (new events were stored).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// How many chains are watching a message now (on the node holding them).
    pub async fn pending(&self) -> usize {
        self.state.lock().await.chains.len()
    }

    /// Another node changed the shared setting `name` (`None`: any, perhaps): when it is
    /// a broadcast's plan, loads its chains as stored.
    pub async fn take_in_setting(&self, name: Option<&str>) -> Result<(), StoreError> {
        match name {
            None => self.resume().await,
            Some(name) => match name.strip_prefix(PLAN_SETTING_PREFIX) {
                Some(id) if !name.ends_with(".cursor") && !id.contains('.') => {
                    self.take_in_broadcast(id).await
                }
                _ => Ok(()),
            },
        }
    }

    /// Loads broadcast `id`'s plan and active chains as stored, and reads the log again
    /// from where the broadcast began.
    async fn take_in_broadcast(&self, id: &str) -> Result<(), StoreError> {
        let log = self.identity.log();
        let Some(plan) = log.setting(&plan_setting(id)).await?.and_then(read_plan) else {
            return Ok(());
        };
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .runs(RunQuery {
                    journey: Some(chain_journey(id)),
                    active_only: true,
                    after: after.clone(),
                    limit: 10_000,
                    ..RunQuery::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            found.extend(page);
        }
        let mut state = self.state.lock().await;
        state.cursor = state.cursor.min(plan.after);
        state.plans.insert(id.to_string(), plan);
        for chain in found {
            state.remember(chain);
        }
        drop(state);
        self.nudge();
        Ok(())
    }

    /// Records a broadcast's decisions with the chains of those that went out, in one
    /// transaction, and watches the chains from now on. `plan` is stored first (see
    /// [`BroadcastFallbacks::plan_saved`]).
    pub(crate) async fn begin(
        &self,
        broadcast: &str,
        chains: Vec<JourneyRun>,
        decisions: Vec<NewDecision>,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        self.store.save_runs(chains.clone(), decisions).await?;
        if let Some(plan) = state.plans.get(broadcast) {
            state.cursor = state.cursor.min(plan.after);
        }
        for chain in chains {
            state.remember(chain);
        }
        drop(state);
        self.nudge();
        Ok(())
    }

    /// Stores broadcast `id`'s plan (before its chains, and again once they are all
    /// saved, with `complete`: the other nodes then load them).
    pub(crate) async fn plan_saved(&self, id: &str, plan: &Plan) -> Result<(), StoreError> {
        let value = serde_json::to_value(plan)
            .map_err(|e| StoreError::Storage(format!("a broadcast's plan: {e}")))?;
        self.identity
            .log()
            .put_setting(&plan_setting(id), value)
            .await?;
        self.state
            .lock()
            .await
            .plans
            .insert(id.to_string(), plan.clone());
        Ok(())
    }

    /// Handles the news stored before the step, then every deadline due at `now`.
    pub async fn step(&self, now: Timestamp) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let log = self.identity.log().clone();
        if state.chains.is_empty() {
            // Nothing watched: no news to read.
            let committed = *log.committed().borrow();
            state.cursor = state.cursor.max(committed);
            return self.save_cursor(&mut state, false).await;
        }
        let applied = self.identity.catch_up().await?;
        while state.cursor < applied {
            let page = log
                .events(EventQuery {
                    after_seq: Some(state.cursor),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.events.last().map(|e| e.seq.min(applied)) else {
                break;
            };
            let mut changes = Changes::default();
            for stored in page.events.iter().filter(|e| e.seq <= applied) {
                let Some(news) = News::of(&stored.event) else {
                    continue;
                };
                let Some(profile) = self.profile_of(&stored.event) else {
                    continue;
                };
                for key in state.keys_of(&self.identity, profile) {
                    self.wake_chain(&mut state, &mut changes, &key, Some(&news), now)
                        .await?;
                }
            }
            let changed = !changes.chains.is_empty();
            self.save(&mut state, changes).await?;
            state.cursor = last;
            // Stored at once when chains changed, so a restart never redoes a step.
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
                self.wake_chain(&mut state, &mut changes, &key, None, now)
                    .await?;
            }
            self.save(&mut state, changes).await?;
        }
        Ok(())
    }

    /// Stores the cursor: at once when `now`, else at most every few seconds.
    async fn save_cursor(&self, state: &mut Chains, now: bool) -> Result<(), StoreError> {
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

    /// Saves the chains moved on with their decisions, in one transaction.
    async fn save(&self, state: &mut Chains, changes: Changes) -> Result<(), StoreError> {
        if changes.chains.is_empty() && changes.decisions.is_empty() {
            return Ok(());
        }
        self.store
            .save_runs(changes.chains.clone(), changes.decisions)
            .await?;
        for chain in changes.chains {
            state.remember(chain);
        }
        Ok(())
    }

    /// Moves one chain on: `news` about the person's messages, or its deadline.
    async fn wake_chain(
        &self,
        state: &mut Chains,
        changes: &mut Changes,
        key: &str,
        news: Option<&News<'_>>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(mut chain) = state.chains.get(key).cloned() else {
            return Ok(());
        };
        let Some(broadcast) = chain.journey.strip_prefix(CHAIN_PREFIX).map(str::to_string) else {
            return Ok(());
        };
        if news.is_some_and(|n| n.broadcast.is_some_and(|b| b != broadcast)) {
            return Ok(());
        }
        let Some(watching) = chain.watching.clone() else {
            return Ok(());
        };
        let heard = news.map(|n| (n.channel.as_str(), n.step));
        let why = match delivery(&watching, heard, chain.wake_at, now) {
            Delivery::Pending => return Ok(()),
            Delivery::Engaged => {
                chain.watching = None;
                chain.wake_at = None;
                chain.fallbacks.clear();
                chain.status = RunStatus::Completed;
                chain.updated_at = now;
                changes.chains.push(chain.clone());
                state.remember(chain);
                return Ok(());
            }
            Delivery::Failed => {
                let verb = news.map_or("failed", |n| n.verb);
                format!("the {watching} message {verb}")
            }
            Delivery::Unread => format!(
                "the {watching} message was not read within {}",
                plan_wait(state.plans.get(&broadcast))
            ),
        };
        // The person as they are now: erased meanwhile, the chain is dropped unsaved
        // (its row went with them).
        let Some(profile) = self
            .identity
            .read(|g| g.profile(chain.profile_id).map(|n| n.id))
        else {
            state.forget(key);
            return Ok(());
        };
        let Some(plan) = state.plans.get(&broadcast).cloned() else {
            tracing::warn!(broadcast = %broadcast, "a broadcast's fallbacks have no plan stored; they end here");
            chain.status = RunStatus::Exited;
            chain.exit_reason = Some("the broadcast's plan is not stored".into());
            chain.watching = None;
            chain.wake_at = None;
            chain.updated_at = now;
            changes.chains.push(chain.clone());
            state.remember(chain);
            return Ok(());
        };
        let (facts, reachable) = self.identity.person(profile, now);
        let reachable: Vec<&str> = reachable.iter().map(String::as_str).collect();
        let mut history = self.history(profile, now).await?;
        let renders = self.renders(&plan.message);
        chain.watching = None;
        chain.wake_at = None;
        let mut why = why;
        let mut went_out = false;
        while !chain.fallbacks.is_empty() {
            let channel = chain.fallbacks.remove(0);
            chain.step += 1;
            let ask = Ask {
                message: &plan.message,
                purpose: &plan.purpose,
                channel: &channel,
                journey: None,
                renders: &renders,
                best_hour_prior: None,
            };
            let mut gated = self.gate.pass(&ask, &facts, &reachable, &history, now);
            gated.decision.reasons.insert(
                0,
                Reason {
                    code: FALLBACK_REASON,
                    detail: format!("{why}; trying {channel}"),
                },
            );
            let decision = gated.record(&ask, profile, Some(broadcast.clone()), now);
            changes.decisions.push(decision);
            if gated.decision.outcome.goes_out() {
                went_out = true;
                history.push(PastSend {
                    at: gated.decision.send_at.unwrap_or(now),
                    in_flight: gated.decision.send_at.is_some_and(|at| at > now),
                    channel: gated.channel.clone(),
                    purpose: plan.purpose.clone(),
                    journey: None,
                });
                if !chain.fallbacks.is_empty() {
                    chain.watching = Some(gated.channel);
                    chain.wake_at =
                        Some(gated.decision.send_at.unwrap_or(now) + plan.fallback_after());
                }
                break;
            }
            let refused: Vec<&str> = gated.decision.reasons[1..].iter().map(|r| r.code).collect();
            let outcome = if gated.decision.outcome == Outcome::Suppress {
                "suppressed"
            } else {
                "not sent"
            };
            why = format!("{channel} was {outcome} ({})", refused.join(", "));
        }
        if chain.watching.is_none() {
            if went_out {
                chain.status = RunStatus::Completed;
            } else {
                chain.status = RunStatus::Exited;
                chain.exit_reason = Some(format!("{why}; no channel left"));
            }
        }
        chain.updated_at = now;
        changes.chains.push(chain.clone());
        state.remember(chain);
        Ok(())
    }

    /// The person's recent sends (theirs and those of profiles merged into theirs),
    /// for the caps.
    async fn history(
        &self,
        profile: ProfileId,
        now: Timestamp,
    ) -> Result<Vec<PastSend>, StoreError> {
        let ids = self.identity.with_merged(profile);
        let found = self.gate.history(ids, now).await?;
        Ok(found.into_values().flatten().collect())
    }

    /// The channels a message has a rendering for (none, when it is no longer defined:
    /// any channel is then chosen, and its sends fail visibly in the outbox).
    fn renders(&self, message: &str) -> Vec<&'static str> {
        self.messages
            .get(message)
            .map(|e| e.message.channels())
            .unwrap_or_default()
    }

    /// The profile an event belongs to now.
    fn profile_of(&self, event: &Event) -> Option<ProfileId> {
        let set = extract(event, &self.identity.rules());
        self.identity
            .read(|g| set.keys.iter().find_map(|k| g.lookup(k).map(|n| n.id)))
    }
}

/// How long a plan waits, as said in a reason (`24h`, `90s`).
fn plan_wait(plan: Option<&Plan>) -> String {
    match plan.map(|p| p.fallback_after_seconds) {
        None => "the time set".into(),
        Some(s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
        Some(s) if s % 3_600 == 0 => format!("{}h", s / 3_600),
        Some(s) if s % 60 == 0 => format!("{}m", s / 60),
        Some(s) => format!("{s}s"),
    }
}

fn read_plan(value: Value) -> Option<Plan> {
    serde_json::from_value(value).ok()
}

/// The cursor, every active chain and their broadcasts' plans, as stored.
async fn load(
    identity: &IdentityProjection,
    store: &dyn JourneyStore,
) -> Result<Chains, StoreError> {
    let log = identity.log();
    // A first start: news from now on.
    let committed = *log.committed().borrow();
    let cursor = log
        .setting_or_insert(CURSOR_SETTING, json!(committed))
        .await?
        .as_i64()
        .unwrap_or(committed);
    let mut chains = Chains {
        cursor,
        ..Chains::default()
    };
    // Chains' keys sort together (byte order, on every store), after the prefix.
    let mut after = Some(CHAIN_PREFIX.to_string());
    'pages: loop {
        let page = store
            .runs(RunQuery {
                after: after.clone(),
                limit: 10_000,
                ..RunQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for run in page {
            if !run.key.starts_with(CHAIN_PREFIX) {
                break 'pages;
            }
            if is_chain(&run) && run.status == RunStatus::Active {
                chains.remember(run);
            }
        }
    }
    let broadcasts: BTreeSet<String> = chains
        .chains
        .values()
        .filter_map(|c| c.journey.strip_prefix(CHAIN_PREFIX).map(str::to_string))
        .collect();
    for id in broadcasts {
        if let Some(plan) = log.setting(&plan_setting(&id)).await?.and_then(read_plan) {
            chains.plans.insert(id, plan);
        }
    }
    Ok(chains)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_after_is_a_duration_on_channel_auto_only() {
        assert_eq!(
            fallback_after("auto", "24h"),
            Ok(SignedDuration::from_hours(24))
        );
        assert_eq!(
            fallback_after("email", "24h"),
            Err(FallbackAfterError::NotAuto("email".into()))
        );
        for text in ["soon", "0s", "-1h", ""] {
            assert_eq!(
                fallback_after("auto", text),
                Err(FallbackAfterError::NotADuration(text.into())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_chain_is_told_from_a_journey_s_run_even_of_a_journey_named_broadcast() {
        let plan = Plan {
            message: "m".into(),
            purpose: "promotional".into(),
            fallback_after_seconds: 90,
            after: 7,
            complete: false,
        };
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let chain = chain(
            "b-1",
            &plan,
            ProfileId(42),
            "email".into(),
            vec!["sms".into()],
            None,
            now,
        );
        assert!(is_chain(&chain));
        assert_eq!(chain.key, "broadcast:b-1:p-42");
        assert_eq!(chain.wake_at, Some(now + SignedDuration::from_secs(90)));
        let run = JourneyRun {
            key: "broadcast:p-42:3".into(),
            journey: "broadcast".into(),
            ..chain
        };
        assert!(!is_chain(&run));
    }

    #[test]
    fn a_plan_s_wait_is_said_in_its_largest_whole_unit() {
        let plan = |s| Plan {
            message: "m".into(),
            purpose: "p".into(),
            fallback_after_seconds: s,
            after: 0,
            complete: true,
        };
        let said: Vec<String> = [86_400 * 2, 7_200, 1_800, 90]
            .into_iter()
            .map(|s| plan_wait(Some(&plan(s))))
            .collect();
        assert_eq!(said, ["2d", "2h", "30m", "90s"]);
    }
}
