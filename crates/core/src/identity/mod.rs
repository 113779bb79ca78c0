//! Identity resolution: recognising one person behind the identifiers that events carry.
//!
//! - [`rules`]: which identifier types exist, their priority, limits, normalisation and
//!   blocked values (from the config file).
//! - [`extract`]: the identifiers of an event, normalised.
//! - [`graph`]: the deterministic identity graph, updated one event at a time.
//!
//! All of it is pure: the graph is a function of the events applied to it, in log
//! order, and of its rules, so replaying the log rebuilds it exactly.

pub mod extract;
mod fields;
pub mod graph;
pub mod rules;

pub use extract::{IdentifierSet, extract};
pub use graph::{
    DropReason, Dropped, EventLink, Flag, GraphParts, IdentityGraph, LinkRefusal, MergeRecord,
    ProfileId, Resolution, UnmergeRule,
};
pub use rules::{IdKey, IdentityConfig, IdentityRules, MAX_TYPES, Normalisation, TypeRule};
