//! Putting a configuration file, read again, in force without a restart: the parts
//! that can change while requests are served (touchpoints, identity rules, policies,
//! segments, journeys, messages, subscriptions, providers) are first all checked, then
//! the changed ones replaced — a step that reads nothing and cannot fail — so an
//! invalid file changes nothing, and a valid one changes all it says at once.

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

use crate::assemble::{AssembleError, failed, messages_of};
use crate::{Blueprint, Platform};

/// A blueprint's live parts, each checked and compiled, and which of them changed:
/// ready to be put in force ([`Platform::reconfigure`]).
pub struct Reconfiguration {
    /// New identity rules, when they read identifiers as those in force do.
    identity: Option<Arc<IdentityRules>>,
    providers: Option<Providers>,
    policies: Option<Arc<Policies>>,
    touchpoints: Option<Vec<Touchpoint>>,
    segments: Option<Configured<Segment>>,
    journeys: Option<Configured<JourneyKind>>,
    messages: Option<Configured<MessageKind>>,
    subscriptions: Option<(Configured<SubscriptionKind>, Destinations)>,
    /// The changed parts that only a restart can put in force.
    held: Vec<&'static str>,
}

/// The parts a reconfiguration can change, by the name of their section of the
/// configuration file.
pub const LIVE_PARTS: [&str; 8] = [
    "identity",
    "delivery",
    "touchpoints",
    "policies",
    "segments",
    "journeys",
    "messages",
    "subscriptions",
];

impl Platform {
    /// Checks and compiles the parts of `blueprint` that `changed` names (sections of
    /// the configuration file, see [`LIVE_PARTS`]); the first that does not hold is the
    /// error, naming its part. New identity rules that read identifiers differently
    /// (other types, their order or normalisation, another default region) are held
    /// back for a restart: keys, stored decisions and suppression hashes made under the
    /// rules in force would not mean the same under them.
    pub fn check_reconfiguration(
        &self,
        blueprint: &Blueprint,
        changed: &[&str],
    ) -> Result<Reconfiguration, AssembleError> {
        let has = |part: &str| changed.contains(&part);
        let mut held = Vec::new();
        let identity = match has("identity") {
            true if self
                .identity
                .rules()
                .reads_identifiers_as(&blueprint.identity) =>
            {
                Some(blueprint.identity.clone())
            }
            true => {
                held.push("identity");
                None
            }
            false => None,
        };
        let providers = match has("delivery") {
            true => Some(
                Providers::check(&blueprint.delivery, &blueprint.public_url)
                    .map_err(failed("delivery"))?,
            ),
            false => None,
        };
        let destinations = crate::assemble::destinations(blueprint);
        Ok(Reconfiguration {
            identity,
            providers,
            policies: has("policies").then(|| blueprint.policies.clone()),
            touchpoints: has("touchpoints").then(|| blueprint.touchpoints.clone()),
            segments: (has("segments"))
                .then(|| Segments::check(&blueprint.segments).map_err(failed("segments")))
                .transpose()?,
            journeys: (has("journeys"))
                .then(|| Journeys::check(&blueprint.journeys).map_err(failed("journeys")))
                .transpose()?,
            messages: (has("messages") || has("delivery"))
                .then(|| Messages::check(&messages_of(blueprint)).map_err(failed("messages")))
                .transpose()?,
            subscriptions: (has("subscriptions") || has("delivery"))
                .then(|| {
                    Insights::check(&blueprint.subscriptions, &destinations)
                        .map_err(failed("subscriptions"))
                })
                .transpose()?
                .map(|checked| (checked, destinations)),
            held,
        })
    }

    /// Puts a checked reconfiguration in force on this node, all of it at once; returns
    /// the changed parts held back for a restart. Requests under way finish with what
    /// they started with; the next ones see the new definitions. New identity rules
    /// rebuild the projections from the log in the background (the graph in force
    /// serves until then; `identity.rebuilt()` waits for it); new providers take over
    /// once the attempts under way on the old ones finish.
    pub async fn reconfigure(&self, new: Reconfiguration) -> Vec<&'static str> {
        if let Some(rules) = new.identity {
            if let Some(suppressions) = self.intake.suppressions() {
                suppressions.set_rules(rules.clone());
            }
            self.identity.reconfigure(rules);
        }
        if let Some(providers) = new.providers {
            self.delivery.reconfigure(providers);
        }
        if let Some(policies) = new.policies {
            self.policies.set(policies);
        }
        if let Some(touchpoints) = new.touchpoints {
            self.touchpoints.reconfigure(&touchpoints).await;
        }
        if let Some(messages) = new.messages {
            self.messages.reconfigure(messages);
        }
        if let Some(segments) = new.segments {
            self.segments.reconfigure(segments);
        }
        if let Some(journeys) = new.journeys {
            self.journeys.reconfigure(journeys);
        }
        if let Some((subscriptions, destinations)) = new.subscriptions {
            self.insights.reconfigure(subscriptions, destinations);
        }
        new.held
    }
}
