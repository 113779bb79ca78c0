//! The one gate path every message to a person takes, whoever sends it (a broadcast, a
//! journey): choose the channel, read what was sent to the person lately,
//! `policy::decide`, and build the decision the log records before anything is sent.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use unavoce_core::identity::ProfileId;
use unavoce_core::live::Live;
use unavoce_core::policy::{
    Decision, OutgoingMessage, PastSend, Policies, best_send_time, choose_channel, decide,
};
use unavoce_core::profile::ProfileFacts;
use unavoce_store::{DecisionLog, DecisionQuery, NewDecision, StoreError};

use crate::insights::INSIGHT_PURPOSE;

/// How far back the send history reaches (longer than any sensible cap window).
const HISTORY_DAYS: i64 = 62;

/// The channel recorded for a decision that found no channel to send on.
pub const NO_CHANNEL: &str = "none";

/// A message asked for one person.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The message definition.
    pub message: &'a str,
    /// `service`, `promotional`, ...
    pub purpose: &'a str,
    /// A channel kind, or `auto`: the best channel the person consented to and can be
    /// reached on (`policy::rank_channels`), the others being the fallbacks.
    pub channel: &'a str,
    /// The journey asking, if any.
    pub journey: Option<&'a str>,
    /// The channels the message has a rendering for: `auto` chooses among them (any,
    /// when empty).
    pub renders: &'a [&'a str],
    /// Send at the person's best hour rather than now, with everyone's hours of the
    /// week (168 counts) as the prior of their own.
    pub best_hour_prior: Option<&'a [u32]>,
}

/// What the gate decided for one person.
#[derive(Debug, Clone, PartialEq)]
pub struct Gated {
    /// The channel chosen, or [`NO_CHANNEL`].
    pub channel: String,
    /// With channel `auto`: the channels to try next, best first.
    pub fallbacks: Vec<String>,
    pub decision: Decision,
}

impl Gated {
    /// The decision as the decision log records it.
    pub fn record(
        &self,
        ask: &Ask,
        profile_id: ProfileId,
        broadcast: Option<String>,
        now: Timestamp,
    ) -> NewDecision {
        NewDecision {
            profile_id,
            message: ask.message.to_string(),
            purpose: ask.purpose.to_string(),
            channel: self.channel.clone(),
            journey: ask.journey.map(str::to_string),
            broadcast,
            decided_at: now,
            outcome: self.decision.outcome,
            send_at: self.decision.send_at,
            reasons: json!(self.decision.reasons),
        }
    }
}

/// The policies in force (a reload can replace them) and the log of what they decided.
pub struct Gate {
    policies: Arc<Live<Policies>>,
    decisions: Arc<dyn DecisionLog>,
}

impl Gate {
    pub fn new(policies: Arc<Live<Policies>>, decisions: Arc<dyn DecisionLog>) -> Self {
        Gate {
            policies,
            decisions,
        }
    }

    /// The policies in force now.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies.get()
    }

    /// The decision log the gate's decisions are recorded in.
    pub fn decisions(&self) -> &Arc<dyn DecisionLog> {
        &self.decisions
    }

    /// Decides `ask` for one person: `reachable` are the types of identifier they hold,
    /// `past` what was sent or held for them lately (see [`Gate::history`]).
    pub fn pass(
        &self,
        ask: &Ask,
        person: &ProfileFacts,
        reachable: &[&str],
        past: &[PastSend],
        now: Timestamp,
    ) -> Gated {
        let policies = self.policies.get();
        let chosen = choose_channel(
            &policies,
            ask.purpose,
            ask.channel,
            person,
            reachable,
            ask.renders,
        );
        let (channel, fallbacks) = match chosen {
            Ok(chosen) => chosen,
            Err(no_channel) => {
                return Gated {
                    channel: NO_CHANNEL.to_string(),
                    fallbacks: Vec::new(),
                    decision: no_channel,
                };
            }
        };
        let mut message = OutgoingMessage {
            message: ask.message.to_string(),
            purpose: ask.purpose.to_string(),
            channel: channel.clone(),
            journey: ask.journey.map(str::to_string),
            not_before: None,
        };
        if let Some(population) = ask.best_hour_prior {
            let mut hours = vec![0u32; 168];
            for e in person.engagement.values() {
                e.hour_of_week.add_to(&mut hours);
            }
            let zone = policies.time_zone(person);
            message.not_before = Some(best_send_time(
                &policies, &message, &zone, &hours, population, now,
            ));
        }
        let decision = decide(&policies, &message, person, past, now);
        Gated {
            channel,
            fallbacks,
            decision,
        }
    }

    /// What was sent or held lately for each of `profiles` (everyone when empty), by
    /// profile: what the frequency caps count, and whether a journey's message is
    /// still waiting to go out (in flight). Insights go to departments, not to the
    /// person: they count towards no cap.
    pub async fn history(
        &self,
        profiles: Vec<ProfileId>,
        now: Timestamp,
    ) -> Result<HashMap<ProfileId, Vec<PastSend>>, StoreError> {
        let mut history: HashMap<ProfileId, Vec<PastSend>> = HashMap::new();
        let mut after = None;
        loop {
            let page = self
                .decisions
                .decisions(DecisionQuery {
                    profile_ids: profiles.clone(),
                    sends_since: Some(now - SignedDuration::from_hours(24 * HISTORY_DAYS)),
                    after_id: after,
                    limit: 10_000,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(history);
            };
            after = Some(last.id);
            let to_the_person = page
                .into_iter()
                .map(|d| d.decision)
                .filter(|d| d.purpose != INSIGHT_PURPOSE);
            for d in to_the_person {
                history.entry(d.profile_id).or_default().push(PastSend {
                    at: d.send_at.unwrap_or(d.decided_at),
                    in_flight: d.send_at.is_some_and(|at| at > now),
                    channel: d.channel,
                    purpose: d.purpose,
                    journey: d.journey,
                });
            }
        }
    }
}
