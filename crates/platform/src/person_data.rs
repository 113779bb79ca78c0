//! What is held about one person, wherever it is kept: the parts a person's export
//! (and, later, their erasure) reads, from a running platform or straight from a data
//! folder with nothing running (`unavoce export`).

use std::sync::Arc;

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::profile::ContextCard;
use unavoce_engagement::{JourneyPositions, Messages};
use unavoce_projections::IdentityProjection;
use unavoce_store::{DecisionLog, EventLog, JourneyStore, Outbox, Store, StoreError};

use crate::assemble::{AssembleError, failed, messages_of};
use crate::{Blueprint, Platform, ReadSide};

/// The stores and projections that hold people's data.
#[derive(Clone)]
pub struct PersonData {
    pub identity: Arc<IdentityProjection>,
    pub log: Arc<dyn EventLog>,
    pub decisions: Arc<dyn DecisionLog>,
    pub outbox: Arc<dyn Outbox>,
    pub runs: Arc<dyn JourneyStore>,
    pub messages: Arc<Messages>,
    /// Where people are in the journeys (the context card's).
    pub journeys: JourneyPositions,
}

impl PersonData {
    /// The context card of `profile` at `now`, with the person's journeys.
    pub async fn context_card(
        &self,
        profile: ProfileId,
        now: Timestamp,
    ) -> Result<Option<ContextCard>, StoreError> {
        crate::card::context_card(&self.identity, &self.journeys, profile, now).await
    }

    /// The running platform's.
    pub fn of(platform: &Platform) -> PersonData {
        PersonData {
            identity: platform.identity.clone(),
            log: platform.intake.log().clone(),
            decisions: platform.decisions.clone(),
            outbox: platform.delivery.platform_outbox().clone(),
            runs: platform.journey_runs.clone(),
            messages: platform.messages.clone(),
            journeys: platform.journeys.positions(),
        }
    }

    /// A data folder's, replayed, with nothing started (no journey moves, nothing is
    /// sent): for commands that read while a server may be running.
    pub async fn open(
        store: Arc<dyn Store>,
        blueprint: &Blueprint,
    ) -> Result<PersonData, AssembleError> {
        let log: Arc<dyn EventLog> = store.clone();
        let identity = ReadSide::open(log.clone(), blueprint).await?.identity;
        let messages = Messages::open(
            identity.clone(),
            blueprint.public_url.clone(),
            &messages_of(blueprint),
        )
        .await
        .map_err(failed("messages"))?;
        let journeys = JourneyPositions::open(&*log, store.clone(), &blueprint.journeys)
            .await
            .map_err(failed("journeys"))?;
        Ok(PersonData {
            identity,
            log,
            decisions: store.clone(),
            outbox: store.clone(),
            runs: store,
            messages,
            journeys,
        })
    }
}
