//! The single customer view, folded from one person's events.
//!
//! Every function here is pure: it takes the person's events in log order (and `now`
//! where time matters) and returns part of the view. Nothing is stored that the events
//! cannot rebuild.

pub mod card;
pub mod cases;
pub mod computed;
pub mod consent;
pub mod engagement;
pub mod traits;

pub use card::{ContextCard, LifecycleStage, NextBestAction, context_card};
pub use cases::{Case, CaseEvent, CaseStatus, CaseTouch, case_event, case_id, fold_cases};
pub use computed::{Aggregate, ComputedTrait, default_computed_traits};
pub use consent::{Consent, ConsentKey, fold_consents};
pub use engagement::{ChannelEngagement, fold_engagement};
pub use traits::{TraitValue, fold_traits};
