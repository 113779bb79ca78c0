//! The context card as an agent sees it: the profile's part (facts, cases, last
//! contacts, next best action) from the identity projection, and where the person is in
//! each journey from the journeys' runs.

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::profile::ContextCard;
use unavoce_engagement::JourneyPositions;
use unavoce_projections::IdentityProjection;
use unavoce_store::StoreError;

use crate::Platform;

impl Platform {
    /// The context card of `profile` at `now`, `None` if there is no such profile. Call
    /// `identity.catch_up()` first for a card with everything acknowledged so far.
    pub async fn context_card(
        &self,
        profile: ProfileId,
        now: Timestamp,
    ) -> Result<Option<ContextCard>, StoreError> {
        context_card(&self.identity, &self.journeys.positions(), profile, now).await
    }
}

/// The context card of `profile` at `now` from the identity projection, with where the
/// person is in each journey from the runs as stored.
pub async fn context_card(
    identity: &IdentityProjection,
    journeys: &JourneyPositions,
    profile: ProfileId,
    now: Timestamp,
) -> Result<Option<ContextCard>, StoreError> {
    let Some(mut card) = identity.context_card(profile, now).await? else {
        return Ok(None);
    };
    // Runs keep the profile id they started under: the ids merged into this one too.
    card.active_journeys = journeys.of(&identity.with_merged(profile)).await?;
    Ok(Some(card))
}
