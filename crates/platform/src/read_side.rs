//! The read side alone over a log: the identity projection, the touchpoint registry and
//! the reports — what one-shot commands (`unavoce profile`, the reports) and benchmarks
//! need, without the engagement stage or delivery.

use std::sync::Arc;

use unavoce_projections::{IdentityProjection, Reports, TouchpointRegistry};
use unavoce_store::EventLog;

use crate::Blueprint;
use crate::assemble::{AssembleError, failed};

/// The projections and reports over one log, replayed when opened.
pub struct ReadSide {
    pub identity: Arc<IdentityProjection>,
    pub touchpoints: Arc<TouchpointRegistry>,
    pub reports: Arc<Reports>,
}

impl ReadSide {
    /// Replays `log` into the projections `blueprint` describes (its identity rules,
    /// analytics rules, computed traits and touchpoints) — from its snapshot and the
    /// log after it, when it names a snapshot folder holding a valid one.
    pub async fn open(
        log: Arc<dyn EventLog>,
        blueprint: &Blueprint,
    ) -> Result<Self, AssembleError> {
        let touchpoints = TouchpointRegistry::open(log.clone(), &blueprint.touchpoints)
            .await
            .map_err(failed("touchpoints"))?;
        let identity = IdentityProjection::open_with_snapshots(
            log,
            blueprint.identity.clone(),
            blueprint.analytics.clone(),
            blueprint.computed.clone(),
            blueprint.snapshots.clone(),
        )
        .await
        .map_err(failed("profiles"))?;
        let reports = Arc::new(Reports::new(identity.clone(), touchpoints.clone()));
        Ok(ReadSide {
            identity,
            touchpoints,
            reports,
        })
    }
}
