//! The suppression list of erased people: each identifier they held, kept only as a
//! keyed hash (HMAC-SHA256 under a secret of the data folder), so a new event carrying
//! one can be refused without the identifier being kept anywhere.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::Event;
use crate::identity::{IdentityRules, extract};

/// The keyed hash of identifier `value` of type `kind` (as the identity rules normalise
/// it), in hex.
pub fn suppression_hash(key: &[u8], kind: &str, value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keyed hashes of every identifier of `event` under `rules`: type and hash.
pub fn hashes_of(key: &[u8], rules: &IdentityRules, event: &Event) -> Vec<(String, String)> {
    extract(event, rules)
        .keys
        .iter()
        .map(|k| {
            let identifier = rules.identifier_of(k);
            let kind = identifier.kind.to_string();
            let hash = suppression_hash(key, &kind, &identifier.value);
            (kind, hash)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_the_key_the_type_and_the_value() {
        let h = suppression_hash(b"k", "email", "ada@example.com");
        assert_eq!(h.len(), 64);
        assert_eq!(h, suppression_hash(b"k", "email", "ada@example.com"));
        assert_ne!(h, suppression_hash(b"other", "email", "ada@example.com"));
        assert_ne!(h, suppression_hash(b"k", "user_id", "ada@example.com"));
        assert_ne!(h, suppression_hash(b"k", "email", "grace@example.com"));
    }
}
