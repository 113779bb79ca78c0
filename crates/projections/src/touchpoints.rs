//! The touchpoint registry: touchpoints from the config file (read-only) and those
//! managed through the API (stored as a setting), with the channel of each for the intake.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use unavoce_core::Touchpoint;
use unavoce_core::segment::TouchpointChannels;
use unavoce_core::touchpoint::TouchpointError;
use unavoce_store::{EventLog, StoreError};

/// Where API-managed touchpoints are kept.
const MANAGED: &str = "touchpoints";

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] TouchpointError),
    #[error("touchpoint {0:?} is defined in the config file; change it there")]
    FromConfig(String),
    #[error("touchpoint {0:?} already exists")]
    Exists(String),
    #[error("touchpoint {0:?} does not exist")]
    NotFound(String),
    #[error("the path names touchpoint {path:?} but the body names {body:?}")]
    IdMismatch { path: String, body: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a touchpoint is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Config,
    Api,
}

/// Every registered touchpoint.
pub struct TouchpointRegistry {
    log: Arc<dyn EventLog>,
    /// The config file's, replaced when it is read again.
    config: RwLock<BTreeMap<String, Touchpoint>>,
    managed: tokio::sync::Mutex<BTreeMap<String, Touchpoint>>,
    all: RwLock<Vec<(Touchpoint, Origin)>>,
    channels: Arc<RwLock<TouchpointChannels>>,
}

impl TouchpointRegistry {
    /// The registry of the config file's touchpoints and the stored ones.
    pub async fn open(
        log: Arc<dyn EventLog>,
        config: &[Touchpoint],
    ) -> Result<Arc<Self>, StoreError> {
        let managed: BTreeMap<String, Touchpoint> = match log.setting(MANAGED).await? {
            Some(value) => serde_json::from_value::<Vec<Touchpoint>>(value)
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            None => BTreeMap::new(),
        };
        let registry = TouchpointRegistry {
            log,
            config: RwLock::new(config.iter().map(|t| (t.id.clone(), t.clone())).collect()),
            managed: tokio::sync::Mutex::new(managed.clone()),
            all: RwLock::new(Vec::new()),
            channels: Arc::new(RwLock::new(TouchpointChannels::new())),
        };
        registry.publish(&managed);
        Ok(Arc::new(registry))
    }

    /// Another node changed the shared setting `name` (`None`: any, perhaps): when it is the registered
    /// touchpoints, reads them again.
    pub async fn take_in_setting(&self, name: Option<&str>) -> Result<(), StoreError> {
        if name.is_some_and(|name| name != MANAGED) {
            return Ok(());
        }
        let stored: BTreeMap<String, Touchpoint> = match self.log.setting(MANAGED).await? {
            Some(value) => serde_json::from_value::<Vec<Touchpoint>>(value)
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut managed = self.managed.lock().await;
        *managed = stored;
        self.publish(&managed);
        Ok(())
    }

    /// Puts a config file's touchpoints, read again (and each checked), in the place of
    /// the earlier ones; one the API registered under an id the file now takes gives way
    /// to the file's.
    pub async fn reconfigure(&self, config: &[Touchpoint]) {
        let managed = self.managed.lock().await;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) =
            config.iter().map(|t| (t.id.clone(), t.clone())).collect();
        self.publish(&managed);
    }

    /// Whether touchpoint `id` comes from the config file.
    fn is_configured(&self, id: &str) -> bool {
        (self.config.read())
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    /// The touchpoint → channel map the intake reads, kept current.
    pub fn channels(&self) -> Arc<RwLock<TouchpointChannels>> {
        self.channels.clone()
    }

    /// Every touchpoint, in id order, with where it is defined.
    pub fn list(&self) -> Vec<(Touchpoint, Origin)> {
        self.all.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// One touchpoint.
    pub fn get(&self, id: &str) -> Option<(Touchpoint, Origin)> {
        self.list().into_iter().find(|(t, _)| t.id == id)
    }

    /// Registers a new touchpoint.
    pub async fn create(&self, touchpoint: Touchpoint) -> Result<Touchpoint, RegistryError> {
        touchpoint.validate()?;
        let mut managed = self.managed.lock().await;
        if self.is_configured(&touchpoint.id) || managed.contains_key(&touchpoint.id) {
            return Err(RegistryError::Exists(touchpoint.id));
        }
        managed.insert(touchpoint.id.clone(), touchpoint.clone());
        self.store(&managed).await?;
        Ok(touchpoint)
    }

    /// Replaces a touchpoint managed through the API (e.g. to retire it).
    pub async fn update(
        &self,
        id: &str,
        touchpoint: Touchpoint,
    ) -> Result<Touchpoint, RegistryError> {
        if touchpoint.id != id {
            return Err(RegistryError::IdMismatch {
                path: id.into(),
                body: touchpoint.id,
            });
        }
        touchpoint.validate()?;
        let mut managed = self.managed.lock().await;
        if self.is_configured(id) {
            return Err(RegistryError::FromConfig(id.into()));
        }
        if !managed.contains_key(id) {
            return Err(RegistryError::NotFound(id.into()));
        }
        managed.insert(id.to_string(), touchpoint.clone());
        self.store(&managed).await?;
        Ok(touchpoint)
    }

    /// Removes a touchpoint managed through the API. Its events stay in the log; they
    /// then count as coming from an unregistered touchpoint.
    pub async fn delete(&self, id: &str) -> Result<(), RegistryError> {
        let mut managed = self.managed.lock().await;
        if self.is_configured(id) {
            return Err(RegistryError::FromConfig(id.into()));
        }
        if managed.remove(id).is_none() {
            return Err(RegistryError::NotFound(id.into()));
        }
        self.store(&managed).await
    }

    async fn store(&self, managed: &BTreeMap<String, Touchpoint>) -> Result<(), RegistryError> {
        let list: Vec<&Touchpoint> = managed.values().collect();
        self.log
            .put_setting(MANAGED, serde_json::to_value(list).unwrap_or_default())
            .await?;
        self.publish(managed);
        Ok(())
    }

    fn publish(&self, managed: &BTreeMap<String, Touchpoint>) {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(Touchpoint, Origin)> = (config.values())
            .map(|t| (t.clone(), Origin::Config))
            .chain(
                (managed.values())
                    .filter(|t| !config.contains_key(&t.id))
                    .map(|t| (t.clone(), Origin::Api)),
            )
            .collect();
        all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        if let Ok(mut channels) = self.channels.write() {
            *channels = all.iter().map(|(t, _)| (t.id.clone(), t.channel)).collect();
        }
        if let Ok(mut slot) = self.all.write() {
            *slot = all;
        }
    }
}
