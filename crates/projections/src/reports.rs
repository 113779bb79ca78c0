//! The read side's reports over the whole log: touchpoint and channel KPIs, paths, the
//! funnel, attribution and the census, computed by `unavoce_core::analytics` from the
//! interaction table and the identity graph (so a person's events count once, merges
//! followed).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use unavoce_core::audience::Audience;
use unavoce_core::identity::ProfileId;

use unavoce_core::Touchpoint;
use unavoce_core::analytics::activity::{ActivityReport, Breakdown, activity_report};
use unavoce_core::analytics::attribution::{AttributionReport, attribution_report};
use unavoce_core::analytics::census::{Census, census};
use unavoce_core::analytics::kpis::{KpiReport, kpi_report};
use unavoce_core::analytics::paths::{FunnelReport, PathReport, funnel_report, path_report};
use unavoce_core::analytics::{NO_PERSON, Period, View};
use unavoce_store::StoreError;

use crate::people::{People, Person};
use crate::{IdentityProjection, TouchpointRegistry};

/// The longest path a path report follows.
pub const MAX_PATH_STEPS: usize = 10;

/// The people of an audience, as evaluated now.
#[derive(Debug, Clone, Default)]
pub struct AudienceMembers {
    pub members: HashSet<ProfileId>,
    /// Profiles the expression was evaluated for.
    pub evaluated: u64,
    /// Profiles for which it failed (counted as outside the audience).
    pub errors: u64,
    /// The first failure, to show the user.
    pub first_error: Option<String>,
}

/// Runs reports over what the projections hold.
pub struct Reports {
    identity: Arc<IdentityProjection>,
    registry: Arc<TouchpointRegistry>,
}

impl Reports {
    pub fn new(identity: Arc<IdentityProjection>, registry: Arc<TouchpointRegistry>) -> Self {
        Reports { identity, registry }
    }

    /// Evaluates an audience over every profile, as each person is at `now`.
    pub async fn audience(
        &self,
        audience: &Audience,
        now: Timestamp,
    ) -> Result<AudienceMembers, StoreError> {
        let mut people = People::snapshot(&self.identity).await?;
        let mut result = AudienceMembers::default();
        let evaluate = |person: Person, _: &_| (person.id, audience.matches(&person.facts));
        while let Some(page) = people.map_page(now, &evaluate) {
            for (id, matched) in page {
                result.evaluated += 1;
                match matched {
                    Ok(true) => {
                        result.members.insert(id);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        result.errors += 1;
                        result.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }
        Ok(result)
    }

    /// KPIs per touchpoint and per channel.
    pub async fn kpis(
        &self,
        period: Period,
        audience: Option<&AudienceMembers>,
    ) -> Result<KpiReport, StoreError> {
        self.run(period, audience, kpi_report).await
    }

    /// The most frequent paths of up to `steps` touchpoints (at most
    /// [`MAX_PATH_STEPS`]), and the `top` most frequent whole paths.
    pub async fn paths(
        &self,
        period: Period,
        audience: Option<&AudienceMembers>,
        steps: usize,
        top: usize,
    ) -> Result<PathReport, StoreError> {
        let steps = steps.clamp(1, MAX_PATH_STEPS);
        self.run(period, audience, |view| path_report(view, steps, top))
            .await
    }

    /// The funnel by stage.
    pub async fn funnel(
        &self,
        period: Period,
        audience: Option<&AudienceMembers>,
    ) -> Result<FunnelReport, StoreError> {
        self.run(period, audience, funnel_report).await
    }

    /// Attribution of the period's conversions to touchpoints.
    pub async fn attribution(
        &self,
        period: Period,
        audience: Option<&AudienceMembers>,
    ) -> Result<AttributionReport, StoreError> {
        self.run(period, audience, attribution_report).await
    }

    /// Events per day by channel or touchpoint.
    pub async fn activity(
        &self,
        period: Period,
        audience: Option<&AudienceMembers>,
        by: Breakdown,
    ) -> Result<ActivityReport, StoreError> {
        self.run(period, audience, |view| activity_report(view, by, 8))
            .await
    }

    /// The channel census.
    pub async fn census(
        &self,
        period: Period,
        audience: Option<&AudienceMembers>,
    ) -> Result<Census, StoreError> {
        self.run(period, audience, |view| census(view, &kpi_report(view)))
            .await
    }

    /// Catches up with the log, then runs `report` over a view of everything applied,
    /// counting only the audience's people when there is one.
    async fn run<R>(
        &self,
        period: Period,
        audience: Option<&AudienceMembers>,
        report: impl FnOnce(&View) -> R,
    ) -> Result<R, StoreError> {
        self.identity.catch_up().await?;
        let touchpoints: Vec<Touchpoint> =
            self.registry.list().into_iter().map(|(t, _)| t).collect();
        let rules = self.identity.analytics_rules().clone();
        Ok(self.identity.read_with_interactions(|graph, table| {
            // People are numbered in profile order; each row gets its event's profile.
            let mut people = vec![NO_PERSON; table.len()];
            let mut person_count = 0u32;
            let mut included = Vec::new();
            for node in graph.profiles_after(None) {
                if let Some(audience) = audience {
                    included.push(audience.members.contains(&node.id));
                }
                graph.for_each_event(node, |seq| {
                    if let Some(row) = table.position(seq) {
                        people[row] = person_count;
                    }
                });
                person_count += 1;
            }
            let view = View {
                table,
                people: &people,
                person_count,
                touchpoints: &touchpoints,
                rules: &rules,
                period,
                audience: audience.map(|_| included.as_slice()),
            };
            report(&view)
        }))
    }
}
