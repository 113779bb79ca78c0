//! Putting a configuration file, read again, in force without a restart: the parts
//! that can change while requests are served (touchpoints, identity rules, policies,
//! segments, journeys, messages, subscriptions, providers) are first all checked, then
//! all replaced, so an invalid file changes nothing.

use std::sync::Arc;

use unavoce_core::Touchpoint;
use unavoce_core::identity::IdentityRules;
use unavoce_core::policy::Policies;
use unavoce_delivery::Providers;
use unavoce_engagement::{
    Destinations, Insights, JourneyKind, Journeys, MessageKind, Messages, SubscriptionKind,
};
use unavoce_projections::catalog::Configured;
use unavoce_projections::{Segment, Segments};
use unavoce_store::StoreError;

use crate::assemble::{AssembleError, failed, messages_of};
use crate::{Blueprint, Platform};

/// A blueprint's live parts, each checked and compiled: ready to be put in force
/// ([`Platform::reconfigure`]).
pub struct Reconfiguration {
    identity: Arc<IdentityRules>,
    providers: Providers,
    policies: Arc<Policies>,
    touchpoints: Vec<Touchpoint>,
    segments: Configured<Segment>,
    journeys: Configured<JourneyKind>,
    messages: Configured<MessageKind>,
    subscriptions: Configured<SubscriptionKind>,
    destinations: Destinations,
}

impl Reconfiguration {
    /// Checks and compiles `blueprint`'s live parts; the first that does not hold is
    /// the error, naming its part.
    pub fn check(blueprint: &Blueprint) -> Result<Self, AssembleError> {
        let destinations = crate::assemble::destinations(blueprint);
        Ok(Reconfiguration {
            identity: blueprint.identity.clone(),
            providers: Providers::check(&blueprint.delivery, &blueprint.public_url)
                .map_err(failed("delivery"))?,
            policies: blueprint.policies.clone(),
            touchpoints: blueprint.touchpoints.clone(),
            segments: Segments::check(&blueprint.segments).map_err(failed("segments"))?,
            journeys: Journeys::check(&blueprint.journeys).map_err(failed("journeys"))?,
            messages: Messages::check(&messages_of(blueprint)).map_err(failed("messages"))?,
            subscriptions: Insights::check(&blueprint.subscriptions, &destinations)
                .map_err(failed("subscriptions"))?,
            destinations,
        })
    }
}

impl Platform {
    /// Puts a checked configuration in force on this node. Requests under way finish
    /// with what they started with; the next ones see the new definitions. New identity
    /// rules rebuild the projections from the log in the background (the graph in
    /// force serves until then; `identity.rebuilt()` waits for it); new providers take
    /// over once the attempts under way on the old ones finish.
    pub async fn reconfigure(&self, new: Reconfiguration) -> Result<(), StoreError> {
        if let Some(suppressions) = self.intake.suppressions() {
            suppressions.set_rules(new.identity.clone());
        }
        self.identity.reconfigure(new.identity);
        self.delivery.reconfigure(new.providers);
        self.policies.set(new.policies);
        self.touchpoints.reconfigure(&new.touchpoints).await;
        self.messages.reconfigure(new.messages).await?;
        self.segments.reconfigure(new.segments).await?;
        self.journeys.reconfigure(new.journeys).await?;
        self.insights
            .reconfigure(new.subscriptions, new.destinations)
            .await
    }
}
