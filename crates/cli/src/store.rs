//! Opening the store a configuration names: the embedded SQLite store in the data
//! folder (the default), or PostgreSQL (`[store] kind = "postgres"`, `url`; or
//! `--store-url` / `UNAVOCE_STORE_URL`, which win over the file).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use serde::Deserialize;
use unavoce_store::{SqliteLog, SqliteOptions, Store};
use unavoce_store_postgres::{PgOptions, PgStore};

use crate::config::Config;

/// The `[store]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `sqlite` (the default) or `postgres`.
    pub kind: Option<StoreKind>,
    /// The PostgreSQL connection string (`postgres://user@host:5432/unavoce`).
    pub url: Option<String>,
}

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// `--store-url`, set once from the command line.
static URL_FLAG: OnceLock<String> = OnceLock::new();

/// Records `--store-url` (or `UNAVOCE_STORE_URL`) for every command.
pub fn set_url_flag(url: Option<String>) {
    if let Some(url) = url.filter(|u| !u.is_empty()) {
        let _ = URL_FLAG.set(url);
    }
}

/// The store a command works on, of either kind.
pub struct OpenStore {
    pub store: Arc<dyn Store>,
    /// The same store when it is PostgreSQL: what the bus between nodes follows.
    pub postgres: Option<Arc<PgStore>>,
    /// Where it is, for people: the data folder, or the database without its password.
    pub location: String,
    /// The same store when it is SQLite: its check of every page runs beside the start.
    sqlite: Option<Arc<SqliteLog>>,
}

impl OpenStore {
    /// Waits for the embedded store's check of every page (at once for PostgreSQL):
    /// an error naming the file if it is damaged.
    pub async fn checked(&self) -> anyhow::Result<()> {
        if let Some(sqlite) = &self.sqlite {
            sqlite.checked().await?;
        }
        Ok(())
    }
}

/// Where the configuration (and `--store-url`) says the data is: a PostgreSQL URL, or
/// none for the data folder.
pub fn postgres_url(config: &Config) -> anyhow::Result<Option<String>> {
    if let Some(url) = URL_FLAG.get() {
        return Ok(Some(url.clone()));
    }
    match (config.store.kind, &config.store.url) {
        (None | Some(StoreKind::Sqlite), None) => Ok(None),
        (Some(StoreKind::Sqlite), Some(_)) => {
            bail!(
                "[store] has a url but kind = \"sqlite\"; say kind = \"postgres\" or drop the url"
            )
        }
        (None | Some(StoreKind::Postgres), Some(url)) => Ok(Some(url.clone())),
        (Some(StoreKind::Postgres), None) => bail!(
            "[store] kind = \"postgres\" needs url = \"postgres://…\" (or --store-url, UNAVOCE_STORE_URL)"
        ),
    }
}

/// Opens the store for `config`: PostgreSQL when it names one, else SQLite in `data`
/// with `sqlite` settings (PostgreSQL takes its queue length and commit observer).
/// Nothing is written to the embedded store before its check passes; wait for it with
/// [`OpenStore::checked`] before using what was read.
pub async fn open(
    config: &Config,
    data: &Path,
    sqlite: SqliteOptions,
    node: Option<&str>,
) -> anyhow::Result<OpenStore> {
    match postgres_url(config)? {
        Some(url) => {
            let options = PgOptions {
                queue_capacity: sqlite.queue_capacity,
                on_commit: sqlite.on_commit.clone(),
                node: node.map(str::to_string),
                ..PgOptions::default()
            };
            let location = unavoce_store_postgres::display_url(&url);
            let store = Arc::new(
                PgStore::open(&url, options)
                    .await
                    .with_context(|| format!("cannot open the store at {location}"))?,
            );
            Ok(OpenStore {
                store: store.clone(),
                postgres: Some(store),
                location,
                sqlite: None,
            })
        }
        None => {
            let store = Arc::new(SqliteLog::open(data, sqlite)?);
            Ok(OpenStore {
                store: store.clone(),
                postgres: None,
                location: data.display().to_string(),
                sqlite: Some(store),
            })
        }
    }
}

/// As [`open`], for a command that reads what a server wrote: a data folder with no
/// event log is refused rather than created empty.
pub async fn open_existing(config: &Config, data: &Path) -> anyhow::Result<OpenStore> {
    if postgres_url(config)?.is_none() && !data.join("events.db").exists() {
        bail!(
            "no event log in {}; pass --data with the server's data folder (or --store-url)",
            data.display()
        );
    }
    let opened = open(config, data, SqliteOptions::default(), None).await?;
    opened.checked().await?;
    Ok(opened)
}
