//! The suppression list as the intake holds it: the keyed hashes of erased people's
//! identifiers. A message carrying one is refused (`subject_erased`) — not stored, not
//! quarantined — so an erased person is not silently created again.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use unavoce_core::Event;
use unavoce_core::identity::IdentityRules;
use unavoce_core::live::Live;
use unavoce_core::suppression::hashes_of;

/// The hashes in force, under the data folder's key and the identity rules (which say
/// how each identifier is read and normalised).
pub struct Suppressions {
    key: Vec<u8>,
    rules: Live<IdentityRules>,
    hashes: RwLock<HashSet<String>>,
}

impl Suppressions {
    /// A list holding `hashes`.
    pub fn new(
        key: Vec<u8>,
        rules: Arc<IdentityRules>,
        hashes: impl IntoIterator<Item = String>,
    ) -> Self {
        Suppressions {
            key,
            rules: Live::from(rules),
            hashes: RwLock::new(hashes.into_iter().collect()),
        }
    }

    /// The type and keyed hash of each identifier of `event`.
    pub fn hashes_of(&self, event: &Event) -> Vec<(String, String)> {
        hashes_of(&self.key, &self.rules.get(), event)
    }

    /// Reads identifiers under new identity rules (a reload of the configuration).
    pub fn set_rules(&self, rules: Arc<IdentityRules>) {
        self.rules.set(rules);
    }

    /// Puts hashes in force.
    pub fn add(&self, hashes: impl IntoIterator<Item = String>) {
        self.hashes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(hashes);
    }

    /// Puts exactly `hashes` in force (the list as stored, which another node changed).
    pub fn replace(&self, hashes: impl IntoIterator<Item = String>) {
        *self.hashes.write().unwrap_or_else(|e| e.into_inner()) = hashes.into_iter().collect();
    }

    /// Lifts a hash.
    pub fn lift(&self, hash: &str) {
        self.hashes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
    }

    /// Whether `event` carries a suppressed identifier (no hashing while none is).
    pub fn holds(&self, event: &Event) -> bool {
        let hashes = self.hashes.read().unwrap_or_else(|e| e.into_inner());
        !hashes.is_empty()
            && self
                .hashes_of(event)
                .iter()
                .any(|(_, hash)| hashes.contains(hash))
    }
}
