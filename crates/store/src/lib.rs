//! Unavoce's durable state.
//!
//! The [`EventLog`] is the ground truth of the platform: an append-only log of events,
//! de-duplicated by `messageId`, and a quarantine of messages that could not be
//! accepted. Only a person's erasure and retention ([`Erasing`]) remove from it.
//! Everything else is derived from it. Callers see only this interface; SQL and SQLite
//! live in [`sqlite`] (and, for several nodes, in the `unavoce-store-postgres` crate),
//! which take each other's place without changing them.

mod commits;
mod decisions;
mod erasure;
mod event_row;
mod governance;
mod journeys;
mod leases;
mod log;
mod outbox;
pub mod sqlite;

pub use commits::{CommitInfo, CommitKind, CommitObserver};
pub use decisions::*;
pub use erasure::*;
pub use event_row::EventRow;
pub use governance::*;
pub use journeys::*;
pub use leases::{HeldHere, Lease, Leases};
pub use log::*;
pub use outbox::*;
pub use sqlite::{Durability, SqliteLog, SqliteOptions};

/// Everything the platform keeps, behind one name: what a store implements.
pub trait Store:
    EventLog + DecisionLog + JourneyStore + Outbox + Governance + Erasing + Leases
{
}

impl<T> Store for T where
    T: EventLog + DecisionLog + JourneyStore + Outbox + Governance + Erasing + Leases
{
}
