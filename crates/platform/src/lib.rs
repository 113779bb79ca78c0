//! Unavoce put together: the platform's parts over one store ([`Running::start`] from a
//! [`Blueprint`]), the same for `unavoce serve`, the CLI's commands, the tests and the
//! benchmarks. The HTTP edge (`unavoce-server`) and the binary only use what this
//! assembles; neither builds projections of its own.

mod assemble;
mod card;
pub mod changes;
pub mod erasure;
pub mod keys;
mod leased;
mod person_data;
mod read_side;
mod reload;
pub mod retention;

pub use assemble::{AssembleError, Blueprint, Platform, Running};
pub use person_data::PersonData;
pub use read_side::ReadSide;
pub use reload::{LIVE_PARTS, Reconfiguration};
