//! Broadcasts: one message to an audience, each person's decision through the gate,
//! each decision recorded (or answered, on a dry run).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use unavoce_core::audience::Audience;
use unavoce_core::identity::ProfileId;
use unavoce_core::live::Live;
use unavoce_core::policy::{Decision, PastSend, Policies};
use unavoce_core::profile::engagement::hour_of_week;
use unavoce_store::{DecisionLog, StoreError};

use unavoce_projections::IdentityProjection;
use unavoce_projections::{People, Person};

use crate::fallbacks::{self, BroadcastFallbacks, Plan};
use crate::gate::{Ask, Gate, Gated};

/// One message to an audience.
#[derive(Debug)]
pub struct Broadcast {
    pub message: String,
    pub audience: Audience,
    pub purpose: String,
    /// A channel kind, or `auto`: the best channel the person consented to and can be
    /// reached on (`policy::rank_channels`).
    pub channel: String,
    /// Send each person at their best hour of the next day rather than now.
    pub optimise_send_time: bool,
    /// With channel `auto`: how long each message is watched; when it bounces or fails,
    /// or is not read by then, the person's next ranked channel is tried through the
    /// gate (`BroadcastFallbacks`). See [`crate::fallback_after`].
    pub fallback_after: Option<SignedDuration>,
    /// Decide, but record nothing.
    pub dry_run: bool,
    /// On a dry run, how many people's decisions to list (the totals count everyone).
    pub list_limit: usize,
    /// The channels the message has a rendering for: `auto` chooses among them.
    pub renders: Vec<&'static str>,
}

/// One person's decision in a broadcast.
#[derive(Debug, Clone, Serialize)]
pub struct PersonDecision {
    pub profile_id: ProfileId,
    pub channel: String,
    /// With channel `auto`: the channels to try next, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    #[serde(flatten)]
    pub decision: Decision,
}

/// What a broadcast decided.
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastReport {
    pub broadcast: String,
    pub dry_run: bool,
    /// Profiles the audience was evaluated for.
    pub evaluated: u64,
    /// People in the audience.
    pub audience: u64,
    /// Decisions by outcome (`send`, `hold`, `suppress`).
    pub outcomes: BTreeMap<String, u64>,
    /// Suppressed or held people by reason code.
    pub reasons: BTreeMap<String, u64>,
    /// The first people's decisions (a dry run, up to its `list_limit`), or none
    /// (recorded broadcasts: see the decision log).
    pub decisions: Vec<PersonDecision>,
}

/// Decides broadcasts through the gate and records the decisions.
pub struct Engagement {
    identity: Arc<IdentityProjection>,
    gate: Gate,
    /// Where broadcasts with `fallback_after` keep their chains.
    fallbacks: Option<Arc<BroadcastFallbacks>>,
}

impl Engagement {
    pub fn new(
        identity: Arc<IdentityProjection>,
        decisions: Arc<dyn DecisionLog>,
        policies: Arc<Live<Policies>>,
    ) -> Self {
        Engagement {
            identity,
            gate: Gate::new(policies, decisions),
            fallbacks: None,
        }
    }

    /// Broadcasts with `fallback_after` keep their chains in `fallbacks` (without it,
    /// such a broadcast is refused).
    pub fn with_fallbacks(mut self, fallbacks: Arc<BroadcastFallbacks>) -> Self {
        self.fallbacks = Some(fallbacks);
        self
    }

    /// Decides `broadcast` for every person in its audience at `now`.
    pub async fn broadcast(
        &self,
        broadcast: &Broadcast,
        now: Timestamp,
    ) -> Result<BroadcastReport, StoreError> {
        self.identity.catch_up().await?;
        let id = format!("b-{}", now.as_microsecond());
        let history = self.gate.history(Vec::new(), now).await?;
        // Everyone's hours of the week, the prior of each person's own.
        let population: Vec<u32> = if broadcast.optimise_send_time {
            self.identity.read_with_interactions(|_, table| {
                let mut hours = vec![0u32; 168];
                for row in table.rows() {
                    if let Ok(at) = Timestamp::from_microsecond(row.at) {
                        hours[hour_of_week(at)] += 1;
                    }
                }
                hours
            })
        } else {
            Vec::new()
        };
        let ask = Ask {
            message: &broadcast.message,
            purpose: &broadcast.purpose,
            channel: &broadcast.channel,
            journey: None,
            renders: &broadcast.renders,
            best_hour_prior: broadcast.optimise_send_time.then_some(&population[..]),
        };
        // With fallbacks, each message that goes out is watched (its chain).
        let watched = match broadcast.fallback_after {
            Some(after) if !broadcast.dry_run && broadcast.channel == "auto" => {
                let Some(fallbacks) = &self.fallbacks else {
                    return Err(StoreError::Storage(
                        "broadcast fallbacks are not running on this node".into(),
                    ));
                };
                let plan = Plan {
                    message: broadcast.message.clone(),
                    purpose: broadcast.purpose.clone(),
                    fallback_after_seconds: after.as_secs(),
                    after: *self.identity.log().committed().borrow(),
                    complete: false,
                };
                fallbacks.plan_saved(&id, &plan).await?;
                Some((fallbacks, plan))
            }
            _ => None,
        };
        let mut people = People::snapshot(&self.identity).await?;
        let mut report = BroadcastReport {
            broadcast: id,
            dry_run: broadcast.dry_run,
            evaluated: 0,
            audience: 0,
            outcomes: BTreeMap::new(),
            reasons: BTreeMap::new(),
            decisions: Vec::new(),
        };
        let decide_one = |person: Person, _: &_| -> Option<(ProfileId, Gated)> {
            self.decide_for(broadcast, &ask, person, &history, now)
        };
        while let Some(page) = people.map_page(now, &decide_one) {
            report.evaluated += page.len() as u64;
            let decided: Vec<(ProfileId, Gated)> = page.into_iter().flatten().collect();
            report.audience += decided.len() as u64;
            for (_, gated) in &decided {
                *report
                    .outcomes
                    .entry(gated.decision.outcome.as_str().to_string())
                    .or_default() += 1;
                for reason in &gated.decision.reasons {
                    *report.reasons.entry(reason.code.to_string()).or_default() += 1;
                }
            }
            if broadcast.dry_run {
                let room = broadcast.list_limit.saturating_sub(report.decisions.len());
                report
                    .decisions
                    .extend(
                        decided
                            .into_iter()
                            .take(room)
                            .map(|(id, gated)| PersonDecision {
                                profile_id: id,
                                channel: gated.channel,
                                fallbacks: gated.fallbacks,
                                decision: gated.decision,
                            }),
                    );
            } else if let Some((fallbacks, plan)) = &watched {
                let mut chains = Vec::new();
                let rows = decided
                    .into_iter()
                    .map(|(id, gated)| {
                        if gated.decision.outcome.goes_out() && !gated.fallbacks.is_empty() {
                            chains.push(fallbacks::chain(
                                &report.broadcast,
                                plan,
                                id,
                                gated.channel.clone(),
                                gated.fallbacks.clone(),
                                gated.decision.send_at,
                                now,
                            ));
                        }
                        gated.record(&ask, id, Some(report.broadcast.clone()), now)
                    })
                    .collect();
                fallbacks.begin(&report.broadcast, chains, rows).await?;
            } else {
                let rows = decided
                    .into_iter()
                    .map(|(id, gated)| gated.record(&ask, id, Some(report.broadcast.clone()), now))
                    .collect();
                self.gate.decisions().record_decisions(rows).await?;
            }
        }
        if let Some((fallbacks, plan)) = watched {
            // Every chain is saved: the other nodes load them now.
            let plan = Plan {
                complete: true,
                ..plan
            };
            fallbacks.plan_saved(&report.broadcast, &plan).await?;
        }
        Ok(report)
    }

    /// One person's decision in a broadcast; `None` when they are not in its audience.
    fn decide_for(
        &self,
        broadcast: &Broadcast,
        ask: &Ask,
        person: Person,
        history: &HashMap<ProfileId, Vec<PastSend>>,
        now: Timestamp,
    ) -> Option<(ProfileId, Gated)> {
        let Person {
            id,
            identifier_types,
            facts,
            ..
        } = person;
        if !broadcast.audience.matches(&facts).unwrap_or(false) {
            return None;
        }
        let reachable: Vec<&str> = identifier_types.iter().map(String::as_str).collect();
        let past = history.get(&id).map_or(&[][..], Vec::as_slice);
        Some((id, self.gate.pass(ask, &facts, &reachable, past, now)))
    }
}
