//! Unavoce's durable state.
//!
//! The [`EventLog`] is the ground truth of the platform: an append-only log of events,
//! de-duplicated by `messageId`, and a quarantine of messages that could not be
//! accepted. Only a person's erasure and retention ([`Erasing`]) remove from it.
//! Everything else is derived from it. Callers see only this interface; SQL and SQLite
//! live in [`sqlite`], so a PostgreSQL implementation can take its place without
//! changing them.

mod decisions;
mod erasure;
mod governance;
mod journeys;
mod log;
mod outbox;
pub mod sqlite;

pub use decisions::*;
pub use erasure::*;
pub use governance::*;
pub use journeys::*;
pub use log::*;
pub use outbox::*;
pub use sqlite::{Durability, SqliteLog, SqliteOptions};
