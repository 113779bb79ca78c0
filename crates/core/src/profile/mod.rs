//! The single customer view, folded from one person's events.
//!
//! Every function here is pure: it takes the person's events in log order (and `now`
//! where time matters) and returns part of the view. Each part is also a state that
//! takes in one event at a time and merges with another person's (`state.rs`), which
//! is how profiles are kept current. Nothing is stored that the events cannot rebuild.

pub mod card;
pub mod cases;
pub mod compact_value;
pub mod computed;
pub mod consent;
pub mod engagement;
pub mod latest;
pub mod recent;
pub mod search;
pub mod state;
pub mod traits;

pub use card::{ContextCard, NextBestAction, context_card};
pub use cases::{Case, CaseEvent, CaseLog, CaseStatus, CaseTouch, case_event, case_id, fold_cases};
pub use compact_value::CompactValue;
pub use computed::{Aggregate, ComputedState, ComputedTrait, default_computed_traits};
pub use consent::{
    Consent, ConsentKey, ConsentLine, Consents, applicable, consent_statement, fold_consents,
    is_consent_statement_name,
};
pub use engagement::{ChannelEngagement, HourCounts, MessageCounts, fold_engagement, message_step};
pub use recent::Recent;
pub use search::{SHOWN_IDENTIFIER_TYPES, SearchQuery};
pub use state::{LifecycleStage, ProfileFacts, ProfileState, segment_change};
pub use traits::{TraitValue, Traits};
