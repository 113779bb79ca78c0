//! Named definitions — segments, journeys, messages, subscriptions — from the config file (read-only
//! here) and from the API (kept in a setting), each checked and compiled when given.
//!
//! A definition made through the API lives: each change (`revise`) is a new version,
//! checked as a new definition is and kept beside its predecessors with who made it,
//! when, and what changed; it can be paused, resumed and retired ([`Status`]), each
//! change of status kept the same way. What a status means is each kind's to say
//! (a paused journey takes no one in and moves no run; a retired segment has no
//! members). The config file's definitions change only with the file.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use unavoce_core::redact::Redacted;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use unavoce_core::diff::{FieldChange, changes};
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

/// Why a change to a definition made through the API was not taken.
#[derive(Debug)]
pub enum ChangeError<E> {
    /// The new version does not hold.
    Invalid(E),
    /// No definition has this name.
    NotFound(String),
    /// Defined in the config file: it changes with the file, not through the API.
    DefinedInConfig(String),
    /// Retired: it no longer changes.
    Retired(String),
    /// Only a paused definition can be resumed.
    NotPaused(String),
    Store(StoreError),
}

impl<E> ChangeError<E> {
    /// The same error, with a definition that does not hold told as `F`.
    pub fn map_invalid<F>(self, f: impl FnOnce(E) -> F) -> ChangeError<F> {
        match self {
            ChangeError::Invalid(e) => ChangeError::Invalid(f(e)),
            ChangeError::NotFound(name) => ChangeError::NotFound(name),
            ChangeError::DefinedInConfig(name) => ChangeError::DefinedInConfig(name),
            ChangeError::Retired(name) => ChangeError::Retired(name),
            ChangeError::NotPaused(name) => ChangeError::NotPaused(name),
            ChangeError::Store(e) => ChangeError::Store(e),
        }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for ChangeError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::Invalid(e) => e.fmt(f),
            ChangeError::NotFound(name) => write!(f, "nothing is defined as {name:?}"),
            ChangeError::DefinedInConfig(name) => write!(
                f,
                "{name:?} is defined in the config file: change it there (it is read-only through the API)"
            ),
            ChangeError::Retired(name) => write!(f, "{name:?} is retired: it no longer changes"),
            ChangeError::NotPaused(name) => write!(f, "{name:?} is not paused"),
            ChangeError::Store(e) => e.fmt(f),
        }
    }
}

/// Whether a definition is in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Active,
    /// Held: what it does is suspended until it is resumed.
    Paused,
    /// For good: nobody new enters it; it never changes again.
    Retired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Retired => "retired",
        }
    }
}

/// One version of a definition made through the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version<C> {
    /// 1, 2, …
    pub version: u32,
    /// When, and which API key or session made it (unknown for definitions kept before
    /// versions were).
    pub at: Option<Timestamp>,
    pub by: Option<String>,
    pub config: C,
    /// What changed from the version before (nothing for the first).
    pub changes: Vec<FieldChange>,
}

/// A change of status, and who made it when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: Status,
    pub at: Timestamp,
    pub by: String,
}

/// A definition made through the API as it is kept: its versions, oldest first, its
/// status and how it came to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History<C> {
    pub status: Status,
    pub versions: Vec<Version<C>>,
    #[serde(default)]
    pub statuses: Vec<StatusChange>,
}

impl<C> History<C> {
    fn current(&self) -> Option<&Version<C>> {
        self.versions.last()
    }
}

/// As the setting holds a definition: its history, or (before versions were kept)
/// the definition alone.
#[derive(Deserialize)]
#[serde(untagged)]
enum Kept<C> {
    History(History<C>),
    Bare(C),
}

/// A definition's name and one of its versions.
type NameAndVersion = (String, u32);

/// A new version checked: compiled, and what it changes.
pub type Checked<D> = (Arc<D>, Vec<FieldChange>);

/// Who changes a definition, and when.
#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    pub by: &'a str,
    pub at: Timestamp,
}

/// A new version made (or, when nothing changed, the one in force).
pub struct Revision<D> {
    pub item: Arc<D>,
    pub version: u32,
    /// Empty when the new definition is the one in force: no version was made.
    pub changes: Vec<FieldChange>,
}

/// A definition, where it came from, its version and status.
pub struct Entry<D> {
    pub item: Arc<D>,
    /// `config` or `api`.
    pub origin: &'static str,
    /// The version in force (0 for the config file's, which are not versioned).
    pub version: u32,
    pub status: Status,
}

impl<D> Clone for Entry<D> {
    fn clone(&self) -> Self {
        Entry {
            item: self.item.clone(),
            origin: self.origin,
            version: self.version,
            status: self.status,
        }
    }
}

impl<D> Entry<D> {
    /// Whether it takes anyone new in (neither paused nor retired).
    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }
}

/// The definitions of one kind, by name.
pub struct Catalog<D: Definition> {
    entries: RwLock<BTreeMap<String, Entry<D::Item>>>,
    /// The config file's, compiled when the file is read.
    configured: RwLock<BTreeMap<String, Entry<D::Item>>>,
    /// The API's, as the setting keeps them.
    histories: RwLock<BTreeMap<String, History<D::Config>>>,
    /// Versions no longer in force, compiled when first asked for (a version never
    /// changes once made).
    earlier: RwLock<BTreeMap<NameAndVersion, Arc<D::Item>>>,
    /// One change through the API at a time (each writes the setting whole).
    writing: tokio::sync::Mutex<()>,
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
            histories: RwLock::new(BTreeMap::new()),
            earlier: RwLock::new(BTreeMap::new()),
            writing: tokio::sync::Mutex::new(()),
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
                    version: 0,
                    status: Status::Active,
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
        let kept: Vec<Kept<D::Config>> = match log.setting(D::SETTING).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut histories = BTreeMap::new();
        for kept in kept {
            let history = match kept {
                Kept::History(history) => history,
                Kept::Bare(config) => History {
                    status: Status::Active,
                    versions: vec![Version {
                        version: 1,
                        at: None,
                        by: None,
                        config,
                        changes: Vec::new(),
                    }],
                    statuses: Vec::new(),
                },
            };
            let Some(current) = history.current() else {
                continue;
            };
            histories.insert(D::name(&current.config).to_string(), history);
        }
        let mut entries = (self.configured.read())
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, history) in &histories {
            if entries.contains_key(name) {
                tracing::warn!(%name, "defined through the API and now also in the config file; the config's definition is used");
                continue;
            }
            let Some(current) = history.current() else {
                continue;
            };
            match D::compile(current.config.clone()) {
                Ok(item) => {
                    entries.insert(
                        name.clone(),
                        Entry {
                            item: Arc::new(item),
                            origin: "api",
                            version: current.version,
                            status: history.status,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(%name, error = %Redacted(&e), "a definition made through the API no longer holds; it is left out")
                }
            }
        }
        *self.histories.write().unwrap_or_else(|e| e.into_inner()) = histories;
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
        Ok(())
    }

    /// Defines one more through the API: checked, stored, then in force.
    pub async fn define(
        &self,
        log: &dyn EventLog,
        config: D::Config,
        edit: Edit<'_>,
    ) -> Result<Arc<D::Item>, CatalogError<D::Error>> {
        let _writing = self.writing.lock().await;
        let name = D::name(&config).to_string();
        let item = Arc::new(D::compile(config.clone()).map_err(CatalogError::Invalid)?);
        if self.get(&name).is_some() || self.history(&name).is_some() {
            return Err(CatalogError::Exists(name));
        }
        let history = History {
            status: Status::Active,
            versions: vec![Version {
                version: 1,
                at: Some(edit.at),
                by: Some(edit.by.to_string()),
                config,
                changes: Vec::new(),
            }],
            statuses: Vec::new(),
        };
        self.keep(log, &name, history, item.clone())
            .await
            .map_err(CatalogError::Store)?;
        Ok(item)
    }

    /// What `config` would change in the definition of its name, checked as a new
    /// version would be, without storing anything: the compiled definition and the
    /// fields that differ from the one in force.
    pub fn check_revision(
        &self,
        config: &D::Config,
    ) -> Result<Checked<D::Item>, ChangeError<D::Error>> {
        let name = D::name(config).to_string();
        let history = self.editable(&name)?;
        let item = Arc::new(D::compile(config.clone()).map_err(ChangeError::Invalid)?);
        let current = history
            .current()
            .ok_or_else(|| ChangeError::NotFound(name.clone()))?;
        let before = serde_json::to_value(&current.config).unwrap_or_default();
        let after = serde_json::to_value(config).unwrap_or_default();
        Ok((item, changes(&before, &after)))
    }

    /// Makes `config` the new version of the definition of its name: checked, kept
    /// with its predecessors, then in force. When nothing changed, no version is made.
    pub async fn revise(
        &self,
        log: &dyn EventLog,
        config: D::Config,
        edit: Edit<'_>,
    ) -> Result<Revision<D::Item>, ChangeError<D::Error>> {
        let _writing = self.writing.lock().await;
        let name = D::name(&config).to_string();
        let (item, changed) = self.check_revision(&config)?;
        let mut history = self.editable(&name)?;
        if changed.is_empty() {
            let entry = self.get(&name).ok_or(ChangeError::NotFound(name))?;
            return Ok(Revision {
                item: entry.item,
                version: entry.version,
                changes: Vec::new(),
            });
        }
        let version = history.current().map_or(0, |v| v.version) + 1;
        history.versions.push(Version {
            version,
            at: Some(edit.at),
            by: Some(edit.by.to_string()),
            config,
            changes: changed.clone(),
        });
        self.keep(log, &name, history, item.clone())
            .await
            .map_err(ChangeError::Store)?;
        Ok(Revision {
            item,
            version,
            changes: changed,
        })
    }

    /// Pauses, resumes (to `Active`) or retires the definition `name`; the status it
    /// had. Pausing a paused one, or resuming an active one, changes nothing.
    pub async fn set_status(
        &self,
        log: &dyn EventLog,
        name: &str,
        status: Status,
        edit: Edit<'_>,
    ) -> Result<Status, ChangeError<D::Error>> {
        let _writing = self.writing.lock().await;
        let mut history = self.editable(name)?;
        let was = history.status;
        if was == status {
            return Ok(was);
        }
        if status == Status::Active && was != Status::Paused {
            return Err(ChangeError::NotPaused(name.to_string()));
        }
        history.status = status;
        history.statuses.push(StatusChange {
            status,
            at: edit.at,
            by: edit.by.to_string(),
        });
        let entry = self
            .get(name)
            .ok_or_else(|| ChangeError::NotFound(name.to_string()))?;
        self.keep(log, name, history, entry.item)
            .await
            .map_err(ChangeError::Store)?;
        Ok(was)
    }

    /// The history of a definition made through the API.
    pub fn history(&self, name: &str) -> Option<History<D::Config>> {
        self.histories.read().ok()?.get(name).cloned()
    }

    /// The history of `name` when the API may change it.
    fn editable(&self, name: &str) -> Result<History<D::Config>, ChangeError<D::Error>> {
        let entry = self.get(name);
        if entry.as_ref().is_some_and(|e| e.origin == "config") {
            return Err(ChangeError::DefinedInConfig(name.to_string()));
        }
        // One that no longer compiles (left out of those in force) can still be mended.
        let history = self
            .history(name)
            .ok_or_else(|| ChangeError::NotFound(name.to_string()))?;
        if history.status == Status::Retired {
            return Err(ChangeError::Retired(name.to_string()));
        }
        Ok(history)
    }

    /// Stores every API definition with `name`'s history in it, then puts `item` in
    /// force as its current version and status.
    async fn keep(
        &self,
        log: &dyn EventLog,
        name: &str,
        history: History<D::Config>,
        item: Arc<D::Item>,
    ) -> Result<(), StoreError> {
        let mut histories = self
            .histories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let entry = Entry {
            item,
            origin: "api",
            version: history.current().map_or(0, |v| v.version),
            status: history.status,
        };
        histories.insert(name.to_string(), history);
        let stored: Vec<&History<D::Config>> = histories.values().collect();
        log.put_setting(
            D::SETTING,
            serde_json::to_value(&stored).unwrap_or_default(),
        )
        .await?;
        *self.histories.write().unwrap_or_else(|e| e.into_inner()) = histories;
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), entry);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Entry<D::Item>> {
        self.entries.read().ok()?.get(name).cloned()
    }

    /// `name` as it was at `version`: the one in force for 0 (the config file's, or
    /// whichever is in force) and for its own number, else an earlier version from
    /// its history, compiled once. `None` when there is no such version, or it no
    /// longer compiles (with a warning).
    pub fn at_version(&self, name: &str, version: u32) -> Option<Arc<D::Item>> {
        let entry = self.get(name)?;
        if version == 0 || version == entry.version {
            return Some(entry.item);
        }
        let key = (name.to_string(), version);
        if let Some(item) = self.earlier.read().ok()?.get(&key) {
            return Some(item.clone());
        }
        let history = self.history(name)?;
        let kept = history
            .versions
            .into_iter()
            .find(|v| v.version == version)?;
        match D::compile(kept.config) {
            Ok(item) => {
                let item = Arc::new(item);
                (self.earlier.write().ok()?).insert(key, item.clone());
                Some(item)
            }
            Err(e) => {
                tracing::warn!(%name, version, error = %Redacted(&e), "an earlier version no longer holds");
                None
            }
        }
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
