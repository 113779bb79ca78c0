//! A person's erasure (GDPR art. 17), following the identity graph: their identifiers
//! go on the suppression list first (so nothing new about them is taken in), then every
//! event under any of their identifiers, their quarantined messages, decisions, outbox
//! entries (pending ones cancelled), journey runs and review-queue entries are removed
//! in one transaction; the person leaves the projections at once, and a rebuild from
//! the log as it is now, shared by erasures close together, then makes them what a
//! fresh replay gives.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use unavoce_core::Identifier;
use unavoce_core::identity::{IdKey, IdentityRules, ProfileId};
use unavoce_core::suppression::suppression_hash;
use unavoce_intake::Suppressions;
use unavoce_store::{Erasure, ErasureReceipt, EventLog, Store, StoreError, Suppression};

use crate::Platform;
use crate::assemble::{AssembleError, failed};

/// The setting holding the key of the suppression list's hashes.
const KEY_SETTING: &str = "privacy.suppression_key";

/// Why an erasure did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("profile {0} does not exist")]
    NoSuchProfile(ProfileId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an erasure removed: the receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Erased {
    pub profile_id: ProfileId,
    pub erased_at: Timestamp,
    #[serde(flatten)]
    pub removed: ErasureReceipt,
    /// Queued possible matches naming the person, removed.
    pub review_entries: usize,
    /// The keyed hashes now on the suppression list (what an owner lifts).
    pub suppressions: Vec<Suppression>,
}

/// The key of the suppression list's hashes, made on first use.
pub async fn suppression_key(log: &dyn EventLog) -> Result<Vec<u8>, StoreError> {
    let stored = log
        .setting(KEY_SETTING)
        .await?
        .and_then(|v| v.as_str().map(str::to_string))
        .and_then(|hex| decode_hex(&hex))
        .filter(|k| k.len() == 32);
    if let Some(key) = stored {
        return Ok(key);
    }
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| StoreError::Storage(format!("no randomness for the suppression key: {e}")))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    // Nodes starting together on a new store all keep the one key stored first.
    let stored = log.setting_or_insert(KEY_SETTING, hex.into()).await?;
    stored
        .as_str()
        .and_then(decode_hex)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| StoreError::Storage("the stored suppression key is not one".into()))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

/// The suppression list in force in `store`, for an intake.
pub async fn suppressions(
    store: &dyn Store,
    rules: &Arc<IdentityRules>,
) -> Result<Arc<Suppressions>, AssembleError> {
    let key = suppression_key(store)
        .await
        .map_err(failed("suppressions"))?;
    let hashes = store.suppressions().await.map_err(failed("suppressions"))?;
    Ok(Arc::new(Suppressions::new(
        key,
        rules.clone(),
        hashes.into_iter().map(|s| s.hash),
    )))
}

/// Erases the person of `profile`; the receipt.
pub async fn erase(platform: &Platform, profile: ProfileId) -> Result<Erased, ErasureError> {
    let identity = &platform.identity;
    let rules = identity.rules().clone();
    identity.catch_up().await?;
    let identifiers = |id: ProfileId| {
        identity.read(|g| {
            g.profile(id).map(|n| {
                n.identifiers
                    .iter()
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<IdKey>>()
            })
        })
    };
    let keys = identifiers(profile).ok_or(ErasureError::NoSuchProfile(profile))?;
    let key = suppression_key(platform.intake.log().as_ref()).await?;
    let now = Timestamp::now();
    let suppressions: Vec<Suppression> = keys
        .iter()
        .map(|k| {
            let identifier = rules.identifier_of(k);
            let kind = identifier.kind.to_string();
            Suppression {
                hash: suppression_hash(&key, &kind, &identifier.value),
                kind,
                at: now,
            }
        })
        .collect();
    // From here on nothing new about the person is taken in.
    if let Some(list) = platform.intake.suppressions() {
        list.add(suppressions.iter().map(|s| s.hash.clone()));
    }
    // What arrived before that is theirs too.
    identity.catch_up().await?;
    let (node, seqs) = identity
        .profile_with_events(profile)
        .ok_or(ErasureError::NoSuchProfile(profile))?;
    let keys: Vec<IdKey> = node.identifiers.iter().map(|(k, _)| k.clone()).collect();
    let erased: Vec<Identifier> = keys.iter().map(|k| rules.identifier_of(k)).collect();
    let profile_ids: Vec<ProfileId> = node.ids().collect::<BTreeSet<_>>().into_iter().collect();
    // Their runs leave the journeys before their rows leave the store, so the runner
    // writes none of them back.
    platform.journeys.forget_people(&profile_ids).await;
    let removed = platform
        .erasing
        .erase(Erasure {
            seqs,
            profile_ids: profile_ids.clone(),
            identifier_values: erased.iter().map(|i| i.value.clone()).collect(),
            suppress: suppressions.clone(),
        })
        .await?;
    let review_entries = identity.forget_matches(&erased).await?;
    identity.forget(&keys, node.id).await?;
    platform.journeys.forget_people(&profile_ids).await;
    platform.announce(crate::changes::Change::Erased { profile: node.id });
    Ok(Erased {
        profile_id: profile,
        erased_at: now,
        removed,
        review_entries,
        suppressions,
    })
}

/// Lifts suppression `hash`: events carrying that identifier are taken in again.
pub async fn lift(platform: &Platform, hash: &str) -> Result<bool, StoreError> {
    let lifted = platform.erasing.lift_suppression(hash).await?;
    if let Some(list) = platform.intake.suppressions() {
        list.lift(hash);
    }
    platform.announce(crate::changes::Change::SuppressionLifted);
    Ok(lifted)
}
