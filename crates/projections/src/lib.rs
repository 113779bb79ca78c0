//! Unavoce's projections: state derived from the event log and kept current.
//!
//! A projection replays the log when it opens and then follows new commits. It holds
//! no state the log cannot rebuild, except the operator's decisions about it (unmerge
//! rules, link decisions), which are stored as settings. The identity projection keeps
//! the identity graph, each profile's state and the interaction table; segments keep
//! memberships current; reports read the held state; named definitions (the catalog)
//! are kept here for segments and for the engagement stage that follows.

pub mod catalog;
pub mod clock;
mod forked;
mod identity;
mod mapped;
mod matching;
mod people;
mod profiles;
mod record;
mod reports;
mod segments;
mod snapshot;
mod touchpoints;

pub use identity::{
    IdentityProjection, LinkDecision, LinkError, ProfileStates, SnapshotTaken, Start, UnmergeError,
};
pub use matching::{MatchingReport, ReviewError, ReviewItem, ReviewStatus};
pub use people::{People, Person};
pub use profiles::{Found, ProfileView};
pub use record::{RecordError, Recorder};
pub use reports::{AudienceMembers, MAX_PATH_STEPS, Reports};
pub use segments::{
    Segment, SegmentDefinition, SegmentError, SegmentInfo, SegmentPreview, Segments, TIME_SWEEP,
};
pub use touchpoints::{Origin, RegistryError, TouchpointRegistry};
