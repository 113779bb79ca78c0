//! Named definitions — segments, journeys, messages, subscriptions — from the config file (read-only
//! here) and from the API (kept in a setting), each checked and compiled when given.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use unavoce_core::redact::Redacted;

use serde::Serialize;
use serde::de::DeserializeOwned;
use unavoce_store::{EventLog, StoreError};

/// A kind of thing defined by name and compiled from its config (a segment, a journey,
/// a message, a subscription).
pub trait Definition: Send + Sync + 'static {
    /// What a definition compiles to.
    type Item: Send + Sync + 'static;
    type Config: Clone + Serialize + DeserializeOwned + Send + Sync;
    type Error: std::fmt::Display;
    /// Where those defined through the API are kept.
    const SETTING: &'static str;

    fn name(config: &Self::Config) -> &str;
    fn compile(config: Self::Config) -> Result<Self::Item, Self::Error>;
    fn config(item: &Self::Item) -> &Self::Config;
}

/// Why a definition was not taken.
#[derive(Debug)]
pub enum CatalogError<E> {
    Invalid(E),
    Exists(String),
    Store(StoreError),
}

/// A definition and where it came from.
pub struct Entry<D> {
    pub item: Arc<D>,
    /// `config` or `api`.
    pub origin: &'static str,
}

impl<D> Clone for Entry<D> {
    fn clone(&self) -> Self {
        Entry {
            item: self.item.clone(),
            origin: self.origin,
        }
    }
}

/// The definitions of one kind, by name.
pub struct Catalog<D: Definition> {
    entries: RwLock<BTreeMap<String, Entry<D::Item>>>,
    /// The config file's, compiled when the file is read.
    configured: RwLock<BTreeMap<String, Entry<D::Item>>>,
}

/// A config file's definitions of one kind, each checked and compiled: ready to take
/// the place of those in force ([`Catalog::reconfigure`]).
pub struct Configured<D: Definition>(BTreeMap<String, Entry<D::Item>>);

impl<D: Definition> Catalog<D> {
    /// The config file's definitions (which must all hold) and those defined earlier
    /// through the API (one that no longer holds, or that the config file now also
    /// defines, is left out with a warning).
    pub async fn open(
        log: &dyn EventLog,
        configured: &[D::Config],
    ) -> Result<Self, CatalogError<D::Error>> {
        let catalog = Catalog {
            entries: RwLock::new(BTreeMap::new()),
            configured: RwLock::new(Self::check(configured)?.0),
        };
        catalog.reload(log).await.map_err(CatalogError::Store)?;
        Ok(catalog)
    }

    /// Checks and compiles a config file's definitions; every one must hold.
    pub fn check(configured: &[D::Config]) -> Result<Configured<D>, CatalogError<D::Error>> {
        let mut entries = BTreeMap::new();
        for config in configured {
            let name = D::name(config).to_string();
            if entries.contains_key(&name) {
                return Err(CatalogError::Exists(name));
            }
            let item = Arc::new(D::compile(config.clone()).map_err(CatalogError::Invalid)?);
            entries.insert(
                name,
                Entry {
                    item,
                    origin: "config",
                },
            );
        }
        Ok(Configured(entries))
    }

    /// Puts a config file's definitions, read again, in the place of the earlier ones,
    /// at once and without failing (nothing is read from the store): those the file no
    /// longer has are gone, one the API had defined under a name the file now takes
    /// gives way to the file's, and the API's others stay. (An API definition the file
    /// had been shadowing comes back at the next [`Self::reload`], e.g. a restart.)
    pub fn reconfigure(&self, configured: Configured<D>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut next = configured.0.clone();
        for (name, entry) in entries.iter() {
            if entry.origin == "api" && !next.contains_key(name) {
                next.insert(name.clone(), entry.clone());
            }
        }
        *self.configured.write().unwrap_or_else(|e| e.into_inner()) = configured.0;
        *entries = next;
    }

    /// Reads the definitions made through the API again (another node may have made
    /// some), beside the config file's.
    pub async fn reload(&self, log: &dyn EventLog) -> Result<(), StoreError> {
        let stored: Vec<D::Config> = match log.setting(D::SETTING).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut entries = (self.configured.read())
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for config in stored {
            let name = D::name(&config).to_string();
            if entries.contains_key(&name) {
                tracing::warn!(%name, "defined through the API and now also in the config file; the config's definition is used");
                continue;
            }
            match D::compile(config) {
                Ok(item) => {
                    entries.insert(
                        name,
                        Entry {
                            item: Arc::new(item),
                            origin: "api",
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(%name, error = %Redacted(&e), "a definition made through the API no longer holds; it is left out")
                }
            }
        }
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
        Ok(())
    }

    /// Defines one more through the API: checked, stored, then in force.
    pub async fn define(
        &self,
        log: &dyn EventLog,
        config: D::Config,
    ) -> Result<Arc<D::Item>, CatalogError<D::Error>> {
        let name = D::name(&config).to_string();
        let item = D::compile(config.clone()).map_err(CatalogError::Invalid)?;
        let stored: Vec<D::Config> = {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if entries.contains_key(&name) {
                return Err(CatalogError::Exists(name));
            }
            entries
                .values()
                .filter(|e| e.origin == "api")
                .map(|e| D::config(&e.item).clone())
                .chain(std::iter::once(config))
                .collect()
        };
        log.put_setting(
            D::SETTING,
            serde_json::to_value(&stored).unwrap_or_default(),
        )
        .await
        .map_err(CatalogError::Store)?;
        let item = Arc::new(item);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                name,
                Entry {
                    item: item.clone(),
                    origin: "api",
                },
            );
        Ok(item)
    }

    pub fn get(&self, name: &str) -> Option<Entry<D::Item>> {
        self.entries.read().ok()?.get(name).cloned()
    }

    /// Every definition, by name.
    pub fn all(&self) -> Vec<Entry<D::Item>> {
        self.entries
            .read()
            .map(|e| e.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.read().map(|e| e.is_empty()).unwrap_or(true)
    }
}
