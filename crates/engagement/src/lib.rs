//! Unavoce's engagement: what the platform says to people and to departments.
//!
//! Every message to a person passes one gate path ([`gate`]): choose the channel, read
//! what was sent lately, `policy::decide`, and build the decision that is recorded
//! before anything is sent. Broadcasts ([`Engagement`]) and journeys ([`Journeys`]) both
//! go through it; a broadcast's fallbacks ([`BroadcastFallbacks`]) try each person's
//! next channel when a message fails or goes unread, through the gate again. Messages
//! ([`Messages`]) are rendered per channel and carry signed links ([`Links`]);
//! department subscriptions raise insights ([`Insights`]).

mod broadcasts;
mod fallbacks;
pub mod gate;
mod insights;
mod journeys;
pub mod links;
mod messages;

pub use broadcasts::{Broadcast, BroadcastReport, Engagement, PersonDecision};
pub use fallbacks::{BroadcastFallbacks, FALLBACK_REASON, FallbackAfterError, fallback_after};
pub use insights::{
    Destinations, INSIGHT_PURPOSE, Insights, SubscriptionDefinitionError, SubscriptionKind,
};
pub use journeys::{
    GroupStats, JourneyDefinitionError, JourneyKind, JourneyPositions, JourneyRevision,
    JourneyStats, Journeys, RunsOnRevision, RunsRevised,
};
pub use links::Links;
pub use messages::{CatalogEntry, MessageDefinitionError, MessageKind, Messages};
