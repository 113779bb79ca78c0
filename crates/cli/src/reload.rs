//! Reloading the configuration file while serving (`SIGHUP`, `POST /api/config/reload`):
//! the whole file is read and checked as at start; if it holds, its live sections are
//! put in force, and the answer names the changed sections that need a restart.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use unavoce_platform::{LIVE_PARTS, Platform};
use unavoce_server::api::{ConfigReload, ConfigReloaded, ReloadRefused};

use crate::config;

/// The configuration file a server runs with, and what of it is in force.
pub struct ConfigFile {
    path: PathBuf,
    /// Where people and providers reach the server (links, callbacks).
    public_url: String,
    platform: Platform,
    /// The file's sections as last put in force; one reload at a time.
    in_force: tokio::sync::Mutex<toml::Table>,
}

impl ConfigFile {
    /// The file at `path`, whose `text` the server started with.
    pub fn new(path: PathBuf, text: &str, public_url: String, platform: Platform) -> Self {
        ConfigFile {
            path,
            public_url,
            platform,
            in_force: tokio::sync::Mutex::new(toml::from_str(text).unwrap_or_default()),
        }
    }

    /// Reads the file again, checks all of it, and puts its live sections in force.
    pub async fn reload_now(&self) -> Result<ConfigReloaded, ReloadRefused> {
        let mut in_force = self.in_force.lock().await;
        let file = self.path.display().to_string();
        let invalid = |reason: String| ReloadRefused::Invalid {
            file: file.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&self.path).map_err(|e| invalid(e.to_string()))?;
        let sections: toml::Table =
            toml::from_str(&text).map_err(|e| invalid(toml_reason(&e, &text)))?;
        let config = config::parse(&text).map_err(|e| invalid(reason(&e, &text)))?;
        let blueprint = config
            .blueprint(self.public_url.clone())
            .map_err(|e| invalid(reason(&e, &text)))?;
        let changed: Vec<String> = (sections.keys().chain(in_force.keys()))
            .filter(|name| sections.get(*name) != in_force.get(*name))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let live: Vec<&str> = (LIVE_PARTS.iter().copied())
            .filter(|part| changed.iter().any(|name| name == part))
            .collect();
        let checked = self
            .platform
            .check_reconfiguration(&blueprint, &live)
            .map_err(|e| invalid(e.to_string()))?;
        let held = self.platform.reconfigure(checked).await;
        let (applied, needs_restart): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .partition(|name| live.contains(&name.as_str()) && !held.contains(&name.as_str()));
        // What needs a restart stays as it was in force, so it is named again until then.
        for name in &applied {
            match sections.get(name) {
                Some(value) => in_force.insert(name.clone(), value.clone()),
                None => in_force.remove(name),
            };
        }
        Ok(ConfigReloaded {
            file,
            applied,
            needs_restart,
            live: LIVE_PARTS.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Reloads at every `SIGHUP`, saying in the log what changed or why nothing did.
    #[cfg(unix)]
    pub fn reload_on_hangup(self: std::sync::Arc<Self>) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match self.reload_now().await {
                    Ok(done) => tracing::info!(
                        file = %done.file,
                        applied = ?done.applied,
                        needs_restart = ?done.needs_restart,
                        "configuration reloaded"
                    ),
                    Err(refused) => tracing::warn!(%refused, "configuration not reloaded"),
                }
            }
        });
        Ok(())
    }
}

impl ConfigReload for ConfigFile {
    fn reload(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ConfigReloaded, ReloadRefused>> + Send + '_>> {
        Box::pin(self.reload_now())
    }
}

/// Why file `text` does not hold, without quoting it (a quoted line could hold a key).
fn reason(error: &anyhow::Error, text: &str) -> String {
    match error.downcast_ref::<toml::de::Error>() {
        Some(toml) => toml_reason(toml, text),
        None => format!("{error:#}"),
    }
}

/// A TOML error's line and message, without the quoted line.
fn toml_reason(error: &toml::de::Error, text: &str) -> String {
    match error.span() {
        Some(span) => {
            let line = 1 + text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            format!("line {line}: {}", error.message())
        }
        None => error.message().to_string(),
    }
}
