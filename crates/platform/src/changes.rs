//! What one node changes that the others sharing its store must take in: a shared
//! setting written (definitions made through the API, an operator's decisions about
//! the identity graph), a person erased, a suppression lifted. Each node announces its
//! own ([`Platform::announce`], and the store's settings as written) and takes in the
//! others' ([`Platform::take_in`]); on one node alone nobody listens.

use serde::{Deserialize, Serialize};
use unavoce_core::identity::{IdKey, ProfileId};
use unavoce_store::StoreError;

use crate::Platform;

/// A change another node must take in. Carries names and profile ids, never a
/// person's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A shared setting was written.
    Setting { name: String },
    /// The person of this profile was erased (their rows are gone from the store).
    Erased { profile: ProfileId },
    /// A suppression was lifted.
    SuppressionLifted,
    /// This node may have missed announcements (it was cut off from the others): read
    /// every shared setting and the suppression list again, and rebuild the identity
    /// graph from the log (which also drops whoever was erased meanwhile).
    Missed,
}

impl Platform {
    /// Tells whoever follows this node's changes (the bus between nodes).
    pub fn announce(&self, change: Change) {
        // No receiver (one node alone) is not an error.
        let _ = self.changes.send(change);
    }

    /// This node's changes, as they are announced.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Takes in a change another node made: definitions read again, the identity graph
    /// rebuilt under the stored decisions, an erased person taken out of this node's
    /// memory at once, the suppression list read again.
    pub async fn take_in(&self, change: &Change) -> Result<(), StoreError> {
        match change {
            Change::Setting { name } => self.take_in_settings(Some(name)).await?,
            Change::Missed => {
                self.take_in_settings(None).await?;
                self.reload_suppressions().await?;
            }
            Change::Erased { profile } => {
                self.reload_suppressions().await?;
                self.identity.catch_up().await?;
                let found: Option<(Vec<IdKey>, Vec<ProfileId>)> = self.identity.read(|g| {
                    g.profile(*profile).filter(|n| n.id == *profile).map(|n| {
                        let keys = n.identifiers.iter().map(|(k, _)| k.clone()).collect();
                        (keys, n.ids().collect())
                    })
                });
                let ids = found
                    .as_ref()
                    .map_or_else(|| vec![*profile], |(_, ids)| ids.clone());
                self.journeys.forget_people(&ids).await;
                if let Some((keys, _)) = found {
                    self.identity.forget(&keys, *profile).await?;
                }
            }
            Change::SuppressionLifted => self.reload_suppressions().await?,
        }
        Ok(())
    }

    /// Shared setting `name` (`None`: every one) read again by whoever holds it.
    async fn take_in_settings(&self, name: Option<&str>) -> Result<(), StoreError> {
        self.identity.take_in_setting(name);
        self.segments.take_in_setting(name).await?;
        self.journeys.take_in_setting(name).await?;
        self.broadcast_fallbacks.take_in_setting(name).await?;
        self.messages.take_in_setting(name).await?;
        self.insights.take_in_setting(name).await?;
        self.touchpoints.take_in_setting(name).await
    }

    /// The suppression list in force in the intake, as stored.
    async fn reload_suppressions(&self) -> Result<(), StoreError> {
        if let Some(list) = self.intake.suppressions() {
            let stored = self.erasing.suppressions().await?;
            list.replace(stored.into_iter().map(|s| s.hash));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_goes_as_json_naming_no_one() {
        let changes = [
            Change::Setting {
                name: "engagement.segments".into(),
            },
            Change::Erased {
                profile: ProfileId(42),
            },
            Change::SuppressionLifted,
            Change::Missed,
        ];
        for change in changes {
            let text = serde_json::to_string(&change).unwrap();
            assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
        }
        assert_eq!(
            serde_json::to_string(&Change::Erased {
                profile: ProfileId(42)
            })
            .unwrap(),
            r#"{"kind":"erased","profile":"p-42"}"#
        );
        assert!(serde_json::from_str::<Change>(r#"{"kind":"erased","profile":"42"}"#).is_err());
    }
}
