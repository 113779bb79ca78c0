//! The read side's reports over the whole log: touchpoint and channel KPIs, paths, the
//! funnel, attribution and the census, computed by `unavoce_core::analytics` from the
//! interaction table and the identity graph (so a person's events count once, merges
//! followed).

use std::sync::Arc;

use unavoce_core::Touchpoint;
use unavoce_core::analytics::attribution::{AttributionReport, attribution_report};
use unavoce_core::analytics::census::{Census, census};
use unavoce_core::analytics::journeys::{FunnelReport, PathReport, funnel_report, path_report};
use unavoce_core::analytics::kpis::{KpiReport, kpi_report};
use unavoce_core::analytics::{NO_PERSON, Period, View};
use unavoce_store::StoreError;

use crate::{IdentityProjection, TouchpointRegistry};

/// The longest path a path report follows.
pub const MAX_PATH_STEPS: usize = 10;

/// Runs reports over what the projections hold.
pub struct Reports {
    identity: Arc<IdentityProjection>,
    registry: Arc<TouchpointRegistry>,
}

impl Reports {
    pub fn new(identity: Arc<IdentityProjection>, registry: Arc<TouchpointRegistry>) -> Self {
        Reports { identity, registry }
    }

    /// KPIs per touchpoint and per channel.
    pub async fn kpis(&self, period: Period) -> Result<KpiReport, StoreError> {
        self.run(period, kpi_report).await
    }

    /// The most frequent paths of up to `steps` touchpoints (at most
    /// [`MAX_PATH_STEPS`]), and the `top` most frequent whole paths.
    pub async fn paths(
        &self,
        period: Period,
        steps: usize,
        top: usize,
    ) -> Result<PathReport, StoreError> {
        let steps = steps.clamp(1, MAX_PATH_STEPS);
        self.run(period, |view| path_report(view, steps, top)).await
    }

    /// The funnel by stage.
    pub async fn funnel(&self, period: Period) -> Result<FunnelReport, StoreError> {
        self.run(period, funnel_report).await
    }

    /// Attribution of the period's conversions to touchpoints.
    pub async fn attribution(&self, period: Period) -> Result<AttributionReport, StoreError> {
        self.run(period, attribution_report).await
    }

    /// The channel census.
    pub async fn census(&self, period: Period) -> Result<Census, StoreError> {
        self.run(period, |view| census(view, &kpi_report(view)))
            .await
    }

    /// Catches up with the log, then runs `report` over a view of everything applied.
    async fn run<R>(
        &self,
        period: Period,
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
            for node in graph.profiles_after(None) {
                for &seq in &node.events {
                    if let Some(row) = table.position(seq) {
                        people[row] = person_count;
                    }
                }
                person_count += 1;
            }
            let view = View {
                table,
                people: &people,
                person_count,
                touchpoints: &touchpoints,
                rules: &rules,
                period,
                audience: None,
            };
            report(&view)
        }))
    }
}
