//! Several nodes on one PostgreSQL store: the `[cluster]` section and `--nats-url`
//! (`UNAVOCE_NATS_URL`, which wins over the file). With a NATS URL, `serve` tells the
//! other nodes of its commits and reads theirs as soon as they are announced.

use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use unavoce_cluster::Changes;
use unavoce_cluster::{Bus, DEFAULT_CLUSTER_NAME, Wake, new_node_id};
use unavoce_core::redact::Redacted;
use unavoce_platform::Platform;
use unavoce_platform::changes::Change;
use unavoce_store_postgres::PgStore;

use crate::config::Config;

/// The `[cluster]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// The NATS server(s) that carry wake-ups between nodes (`nats://host:4222`;
    /// several separated by commas).
    pub nats_url: Option<String>,
    /// The cluster's name, for nodes of several clusters on one NATS server: letters,
    /// digits, `-` and `_` [default: unavoce].
    pub name: Option<String>,
}

impl ClusterSection {
    /// Checks the section when the config file is parsed.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(name) = &self.name {
            unavoce_cluster::check_cluster_name(name).context("invalid [cluster] section")?;
        }
        Ok(())
    }
}

/// `--nats-url`, set once from the command line.
static NATS_URL_FLAG: OnceLock<String> = OnceLock::new();

/// Records `--nats-url` (or `UNAVOCE_NATS_URL`).
pub fn set_nats_url_flag(url: Option<String>) {
    if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
        let _ = NATS_URL_FLAG.set(url);
    }
}

/// How this server will follow the other nodes: decided before the store opens.
pub struct Plan {
    url: String,
    name: String,
}

/// Whether `serve` follows other nodes (a NATS URL is set); a NATS URL with the SQLite
/// store, which no other node can share, is refused.
pub fn plan(config: &Config) -> anyhow::Result<Option<Plan>> {
    let Some(url) = NATS_URL_FLAG
        .get()
        .cloned()
        .or_else(|| config.cluster.nats_url.clone())
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    if crate::store::postgres_url(config)?.is_none() {
        bail!(
            "a NATS URL is set (--nats-url, UNAVOCE_NATS_URL or [cluster] nats_url), but the store is \
             the data folder's SQLite one, which no other node shares: use PostgreSQL \
             (--store-url, UNAVOCE_STORE_URL or [store]) or drop the NATS URL"
        );
    }
    let name = config
        .cluster
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.into());
    Ok(Some(Plan { url, name }))
}

/// Connected to NATS, not yet following.
pub struct Connected {
    bus: Bus,
    name: String,
}

/// The other nodes followed: stop it before the store closes.
pub struct Following {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _bus: Arc<Bus>,
}

impl Following {
    /// Stops announcing and following, and closes the connection to NATS.
    pub fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Plan {
    /// Connects to NATS as node `node` (its configured name, if any): before the
    /// platform starts, so that an unreachable server stops `serve` at once.
    pub async fn connect(self, node: Option<&str>) -> anyhow::Result<Connected> {
        let bus = Bus::connect(&self.url, &self.name, &new_node_id(node)).await?;
        Ok(Connected {
            bus,
            name: self.name,
        })
    }
}

impl Connected {
    /// Follows the other nodes' commits on `store` (the PostgreSQL store, which
    /// [`plan`] made sure of), waking `platform` for each; catches up first.
    pub async fn follow(
        self,
        store: Option<Arc<PgStore>>,
        platform: &Platform,
    ) -> anyhow::Result<Following> {
        let Some(store) = store else {
            bail!("following other nodes needs the PostgreSQL store");
        };
        let wake: Wake = {
            let platform = platform.clone();
            Arc::new(move || platform.others_committed())
        };
        let bus = Arc::new(self.bus);
        let committed = bus
            .follow(store.clone(), wake)
            .await
            .context("cannot follow the other nodes' commits")?;
        let changes = bus
            .changes()
            .await
            .context("cannot follow the other nodes' changes")?;
        let tasks = vec![
            committed,
            tokio::spawn(announce(bus.clone(), store, platform.clone())),
            tokio::spawn(take_in(bus.clone(), changes, platform.clone())),
        ];
        tracing::info!(
            nats = bus.servers(),
            cluster = %self.name,
            node = bus.node(),
            "following the other nodes' commits and changes"
        );
        Ok(Following { tasks, _bus: bus })
    }
}

/// Announces this node's changes: its platform's (erasures, lifted suppressions) and
/// the shared settings its store writes — but the cursors of leased work, which the
/// next holder reads from the store when it takes the lease.
async fn announce(bus: Arc<Bus>, store: Arc<PgStore>, platform: Platform) {
    let mut changes = platform.changes();
    let mut settings = store.settings_written();
    loop {
        let change = tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => change,
                Err(RecvError::Lagged(_)) => Change::Missed,
                Err(RecvError::Closed) => return,
            },
            name = settings.recv() => match name {
                Ok(name) if name.ends_with(".cursor") => continue,
                Ok(name) => Change::Setting { name },
                Err(RecvError::Lagged(_)) => Change::Missed,
                Err(RecvError::Closed) => return,
            },
        };
        let announced = match serde_json::to_vec(&change) {
            Ok(payload) => bus.announce(payload).await.map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = announced {
            tracing::warn!(error = %Redacted(&e), "a change could not be announced to the other nodes");
        }
    }
}

/// Takes in the other nodes' changes; after a reconnection to NATS, whatever may have
/// been announced meanwhile ([`Change::Missed`]).
async fn take_in(bus: Arc<Bus>, mut changes: Changes, platform: Platform) {
    let mut connections = bus.connections();
    let mut caught_up_on = (*connections.borrow_and_update()).max(1);
    loop {
        let change = tokio::select! {
            payload = changes.next() => match payload {
                Some(payload) => match serde_json::from_slice::<Change>(&payload) {
                    Ok(change) => change,
                    Err(_) => {
                        tracing::debug!(bytes = payload.len(), "ignored a message that is not a change");
                        continue;
                    }
                },
                None => return,
            },
            changed = connections.changed() => {
                if changed.is_err() {
                    return;
                }
                let connected = *connections.borrow_and_update();
                if connected <= caught_up_on {
                    continue;
                }
                caught_up_on = connected;
                Change::Missed
            }
        };
        if let Err(e) = platform.take_in(&change).await {
            tracing::warn!(error = %Redacted(&e), "another node's change could not be taken in");
        }
    }
}
