//! Unavoce's intake: the one way into the event log.
//!
//! Every source — the Segment-compatible HTTP API, file imports, replays from the
//! quarantine — hands raw messages to an [`Intake`]. Each message is validated and
//! normalised by `unavoce_core::segment`; valid ones are appended to the log, invalid
//! ones to the quarantine with the reason, in the same atomic append. Nothing that
//! arrives is dropped silently.

mod import;
mod pipeline;
mod suppressions;

pub use import::{FileFormat, ImportOptions, ImportProgress, ImportReport, RowError};
pub use pipeline::{
    IngestReport, Intake, IntakeError, Item, ItemBody, Observer, RejectedItem, ReplayOutcome,
    Submission,
};
pub use suppressions::Suppressions;
