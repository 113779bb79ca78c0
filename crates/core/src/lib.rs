//! Unavoce's pure domain.
//!
//! Everything here is a deterministic function of its inputs: time, identifiers and
//! randomness are passed in by the caller, and nothing touches a file, a socket or a
//! clock. The edges (`unavoce-intake`, `unavoce-server`, `unavoce-store`) do the I/O.

pub mod access;
pub mod analytics;
pub mod audience;
pub mod audit;
pub mod channel;
pub mod diff;
pub mod event;
pub mod identifier;
pub mod identity;
pub mod import;
pub mod journey;
pub mod linkage;
pub mod live;
pub mod log_time;
pub mod message;
pub mod name;
pub mod platform_events;
pub mod policy;
pub mod profile;
pub mod redact;
pub mod retention;
pub mod rows;
pub mod segment;
pub mod small_map;
pub mod subscription;
pub mod suppression;
pub mod touchpoint;

#[cfg(test)]
mod testing;

/// Whether `name` can name a segment or a journey: 1 to 64 letters, digits, `-` or `_`,
/// starting with a letter (it appears in URLs and event properties).
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub use channel::ChannelKind;
pub use event::{Event, EventType};
pub use identifier::{Identifier, IdentifierType};
pub use segment::{IntakeContext, Rejection, RejectionCode};
pub use touchpoint::{Presence, Touchpoint, TouchpointStatus};
