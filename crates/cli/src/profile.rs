//! `unavoce profile TYPE=VALUE`: one person's profile, from the data folder.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use unavoce_core::Identifier;
use unavoce_core::identity::IdentityRules;
use unavoce_core::profile::fold_traits;
use unavoce_engine::IdentityProjection;
use unavoce_store::{EventLog, SqliteLog, SqliteOptions};

use crate::config;

#[derive(Args)]
pub struct ProfileArgs {
    /// The identifier to look up, e.g. email=ada@example.com or user_id=cust-42.
    identifier: Identifier,
    /// Configuration file [default: ./unavoce.toml if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder [default: ./unavoce-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Recent interactions to show.
    #[arg(long, default_value_t = 10)]
    recent: usize,
}

pub async fn run(args: ProfileArgs) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    let data = crate::data_dir(args.data, &config);
    if !data.join("events.db").exists() {
        bail!(
            "no event log in {}; pass --data with the server's data folder",
            data.display()
        );
    }
    let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(&data, SqliteOptions::default())?);
    let rules = IdentityRules::new(config.identity.clone())?;
    let identity = IdentityProjection::open(log.clone(), rules.clone()).await?;
    let key = rules
        .key_of(&args.identifier)
        .with_context(|| format!("{} is not a usable identifier", args.identifier))?;
    let (node, ambiguous) = identity.read(|g| (g.lookup(&key).cloned(), g.is_ambiguous(&key)));
    if ambiguous {
        bail!(
            "{} is shared by several people and identifies no one; use another identifier",
            args.identifier
        );
    }
    let Some(node) = node else {
        bail!("no profile holds {}", args.identifier);
    };
    let events = log.events_at(node.events.clone()).await?;
    log.close().await;
    let traits = fold_traits(events.iter().map(|e| &e.event));
    let identifiers: Vec<Identifier> = node
        .identifiers
        .iter()
        .map(|(k, _)| rules.identifier_of(k))
        .collect();
    let recent: Vec<_> = events.iter().rev().take(args.recent).collect();

    if args.json {
        let out = json!({
            "id": node.id,
            "identifiers": identifiers,
            "traits": traits,
            "event_count": node.events.len(),
            "recent": recent.iter().map(|e| json!({
                "at": e.event.timestamp.to_string(),
                "type": e.event.event_type,
                "name": e.event.name,
                "touchpoint": e.event.touchpoint,
                "channel": e.event.channel,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "Profile {} — {} events, created {}",
        node.id,
        node.events.len(),
        node.created_at
    );
    println!("\nIdentifiers");
    for (key, first) in &node.identifiers {
        let id = rules.identifier_of(key);
        println!(
            "  {:<14} {:<40} first seen {first}",
            id.kind.as_str(),
            id.value
        );
    }
    println!("\nTraits");
    for (name, value) in &traits {
        println!(
            "  {name:<14} {:<40} {} at {}",
            value.value.to_string(),
            value.source,
            value.at
        );
    }
    println!("\nRecent interactions");
    for e in recent {
        println!(
            "  {}  {:<22} {:<9} {} {}",
            e.event.timestamp,
            e.event.touchpoint.as_deref().unwrap_or("-"),
            e.event.channel.as_deref().unwrap_or("-"),
            e.event.event_type,
            e.event.name.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
