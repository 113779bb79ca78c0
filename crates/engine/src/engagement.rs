//! Engagement: messages to people, each through the policy gate, each decision recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::json;
use unavoce_core::audience::Audience;
use unavoce_core::policy::{
    Decision, Outcome, OutgoingMessage, PastSend, Policies, best_send_time, choose_channel, decide,
};
use unavoce_core::profile::engagement::hour_of_week;
use unavoce_store::{DecisionLog, DecisionQuery, NewDecision, StoreError};

use crate::IdentityProjection;
use crate::people::{People, Person};

/// How far back the send history reaches (longer than any sensible cap window).
const HISTORY_DAYS: i64 = 62;

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
    pub profile_id: String,
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

/// Decides messages through the gate and records the decisions.
pub struct Engagement {
    identity: Arc<IdentityProjection>,
    decisions: Arc<dyn DecisionLog>,
    policies: Arc<Policies>,
}

impl Engagement {
    pub fn new(
        identity: Arc<IdentityProjection>,
        decisions: Arc<dyn DecisionLog>,
        policies: Arc<Policies>,
    ) -> Self {
        Engagement {
            identity,
            decisions,
            policies,
        }
    }

    /// Decides `broadcast` for every person in its audience at `now`.
    pub async fn broadcast(
        &self,
        broadcast: &Broadcast,
        now: Timestamp,
    ) -> Result<BroadcastReport, StoreError> {
        self.identity.catch_up().await?;
        let id = format!("b-{}", now.as_microsecond());
        let history = send_history(&*self.decisions, Vec::new(), now).await?;
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
        let mut people = People::snapshot(&self.identity).await?;
        let mut report = BroadcastReport {
            broadcast: id.clone(),
            dry_run: broadcast.dry_run,
            evaluated: 0,
            audience: 0,
            outcomes: BTreeMap::new(),
            reasons: BTreeMap::new(),
            decisions: Vec::new(),
        };
        let decide_one = |person: Person, _: &_| -> Option<PersonDecision> {
            self.decide_for(broadcast, person, &history, &population, now)
        };
        while let Some(page) = people.map_page(now, &decide_one) {
            report.evaluated += page.len() as u64;
            let decided: Vec<PersonDecision> = page.into_iter().flatten().collect();
            report.audience += decided.len() as u64;
            for d in &decided {
                *report
                    .outcomes
                    .entry(outcome_name(d.decision.outcome).to_string())
                    .or_default() += 1;
                for reason in &d.decision.reasons {
                    *report.reasons.entry(reason.code.to_string()).or_default() += 1;
                }
            }
            if broadcast.dry_run {
                let room = broadcast.list_limit.saturating_sub(report.decisions.len());
                report.decisions.extend(decided.into_iter().take(room));
            } else {
                let rows = decided
                    .into_iter()
                    .map(|d| NewDecision {
                        profile_id: d.profile_id,
                        message: broadcast.message.clone(),
                        purpose: broadcast.purpose.clone(),
                        channel: d.channel,
                        journey: None,
                        broadcast: Some(id.clone()),
                        decided_at: now,
                        outcome: outcome_name(d.decision.outcome).to_string(),
                        send_at: d.decision.send_at,
                        reasons: json!(d.decision.reasons),
                    })
                    .collect();
                self.decisions.record_decisions(rows).await?;
            }
        }
        Ok(report)
    }

    /// One person's decision in a broadcast; `None` when they are not in its audience.
    fn decide_for(
        &self,
        broadcast: &Broadcast,
        person: Person,
        history: &HashMap<String, Vec<PastSend>>,
        population: &[u32],
        now: Timestamp,
    ) -> Option<PersonDecision> {
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
        let chosen = choose_channel(
            &self.policies,
            &broadcast.purpose,
            &broadcast.channel,
            &facts,
            &reachable,
            &broadcast.renders,
        );
        let (channel, fallbacks, decision) = match chosen {
            Ok((channel, fallbacks)) => {
                let mut message = OutgoingMessage {
                    message: broadcast.message.clone(),
                    purpose: broadcast.purpose.clone(),
                    channel: channel.clone(),
                    journey: None,
                    not_before: None,
                };
                if broadcast.optimise_send_time {
                    let mut hours = vec![0u32; 168];
                    for e in facts.engagement.values() {
                        e.hour_of_week.add_to(&mut hours);
                    }
                    let zone = self.policies.time_zone(&facts);
                    message.not_before = Some(best_send_time(
                        &self.policies,
                        &message,
                        &zone,
                        &hours,
                        population,
                        now,
                    ));
                }
                let past = history.get(&id.to_string()).map_or(&[][..], Vec::as_slice);
                let decision = decide(&self.policies, &message, &facts, past, now);
                (channel, fallbacks, decision)
            }
            Err(no_channel) => ("none".to_string(), Vec::new(), no_channel),
        };
        Some(PersonDecision {
            profile_id: id.to_string(),
            channel,
            fallbacks,
            decision,
        })
    }
}

/// What was sent or held recently for each of `profiles` (everyone when empty), by
/// profile: what the frequency caps count, and whether a journey's message is still
/// waiting to go out (in flight).
pub(crate) async fn send_history(
    decisions: &dyn DecisionLog,
    profiles: Vec<String>,
    now: Timestamp,
) -> Result<HashMap<String, Vec<PastSend>>, StoreError> {
    let mut history: HashMap<String, Vec<PastSend>> = HashMap::new();
    let mut after = None;
    loop {
        let page = decisions
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
        // Insights go to departments, not to the person: they count towards no cap.
        let to_the_person = page
            .into_iter()
            .map(|d| d.decision)
            .filter(|d| d.purpose != crate::insights::INSIGHT_PURPOSE);
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

/// A decision's outcome as the decision log spells it.
pub(crate) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Send => "send",
        Outcome::Hold => "hold",
        Outcome::Suppress => "suppress",
    }
}
