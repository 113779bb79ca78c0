//! Unavoce's projections: state derived from the event log and kept current.
//!
//! A projection replays the log when it opens and then follows new commits. It holds
//! no state the log cannot rebuild, except the operator's decisions about it (unmerge
//! rules), which are stored as settings.

mod catalog;
mod engagement;
mod identity;
mod insights;
mod journeys;
mod links;
mod matching;
mod messages;
mod people;
mod reports;
mod segments;

mod touchpoints;

pub use engagement::{Broadcast, BroadcastReport, Engagement, PersonDecision};
pub use identity::{IdentityProjection, LinkDecision, LinkError, UnmergeError};
pub use insights::{Destinations, INSIGHT_PURPOSE, Insights, SubscriptionDefinitionError};
pub use journeys::{GroupStats, JOURNEY_SOURCE, JourneyDefinitionError, JourneyStats, Journeys};
pub use links::Links;
pub use matching::{MatchingReport, ReviewError, ReviewItem, ReviewStatus};
pub use messages::{CatalogEntry, MessageDefinitionError, Messages};
pub use reports::{AudienceMembers, MAX_PATH_STEPS, Reports};
pub use segments::{SegmentDefinition, SegmentError, SegmentInfo, Segments, TIME_SWEEP};
pub use touchpoints::{Origin, RegistryError, TouchpointRegistry};
