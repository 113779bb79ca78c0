//! The audit log's entries and their hash chain: each record's hash covers its entry
//! and the previous record's hash, so an edited, removed or inserted record breaks the
//! chain from there on ([`verify`]).

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was done, by whom, to whom, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The key's name (`admin` for the data folder's own owner key).
    pub actor: String,
    /// The key's role.
    pub role: String,
    /// The method and route template, e.g. `POST /api/profiles/{id}/consents`.
    pub action: String,
    /// The person concerned, if one is.
    pub profile_id: Option<String>,
    /// The answer's HTTP status.
    pub outcome: u16,
}

/// A stored entry: its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub hash: String,
}

/// The hash of record `seq` holding `entry`, after the record whose hash is `previous`.
pub fn link(previous: &str, seq: i64, entry: &AuditEntry) -> String {
    let fields = (
        previous,
        seq,
        entry.at.as_microsecond(),
        &entry.actor,
        &entry.role,
        &entry.action,
        &entry.profile_id,
        entry.outcome,
    );
    let canonical = serde_json::to_vec(&fields).unwrap_or_default();
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("record {seq} does not follow record {after}: a record was removed or inserted")]
    Gap { after: i64, seq: i64 },
    #[error("record {seq} does not match its hash: it was changed, or one before it was")]
    Hash { seq: i64 },
}

/// Checks records in order, continuing a chain whose last record was `after` (0 and
/// [`GENESIS`] for the start) with hash `previous`; the last record's seq and hash.
pub fn verify<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    after: (i64, &str),
) -> Result<(i64, String), Broken> {
    let (mut last, mut previous) = (after.0, after.1.to_string());
    for record in records {
        if record.seq != last + 1 {
            return Err(Broken::Gap {
                after: last,
                seq: record.seq,
            });
        }
        if link(&previous, record.seq, &record.entry) != record.hash {
            return Err(Broken::Hash { seq: record.seq });
        }
        last = record.seq;
        previous = record.hash.clone();
    }
    Ok((last, previous))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut previous = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let entry = AuditEntry {
                    at: Timestamp::from_second(1_700_000_000 + seq).unwrap(),
                    actor: "admin".into(),
                    role: "owner".into(),
                    action: "GET /api/profiles/{id}/context".into(),
                    profile_id: Some(format!("p-{seq}")),
                    outcome: 200,
                };
                let hash = link(&previous, seq, &entry);
                previous = hash.clone();
                AuditRecord { seq, entry, hash }
            })
            .collect()
    }

    #[test]
    fn a_changed_removed_or_reordered_record_breaks_the_chain() {
        let records = chain(5);
        assert_eq!(verify(&records, (0, GENESIS)).unwrap().0, 5);
        // In two pieces, the second continuing the first.
        let (seq, hash) = verify(&records[..2], (0, GENESIS)).unwrap();
        assert!(verify(&records[2..], (seq, &hash)).is_ok());

        let mut changed = records.clone();
        changed[2].entry.profile_id = Some("p-99".into());
        assert_eq!(verify(&changed, (0, GENESIS)), Err(Broken::Hash { seq: 3 }));

        let mut removed = records.clone();
        removed.remove(3);
        assert_eq!(
            verify(&removed, (0, GENESIS)),
            Err(Broken::Gap { after: 3, seq: 5 })
        );

        // Renumbered after a removal, the hashes no longer match.
        let mut renumbered = removed.clone();
        renumbered[3].seq = 4;
        assert_eq!(
            verify(&renumbered, (0, GENESIS)),
            Err(Broken::Hash { seq: 4 })
        );

        // Removing the newest record leaves a valid chain: the store keeps its count.
        assert!(verify(&records[..4], (0, GENESIS)).is_ok());
    }
}
