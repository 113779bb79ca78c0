//! `unavoce profile TYPE=VALUE`: one person's context card, from the data folder.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use unavoce_core::Identifier;
use unavoce_core::identity::graph::ProfileNode;
use unavoce_platform::ReadSide;
use unavoce_projections::IdentityProjection;
use unavoce_store::EventLog;

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
    /// Last interactions to show.
    #[arg(long, default_value_t = 10)]
    recent: usize,
}

pub async fn run(args: ProfileArgs) -> anyhow::Result<()> {
    let (config, data) = config::load_for_data(args.config.as_deref(), args.data)?;
    let log: Arc<dyn EventLog> = crate::store::open_existing(&config, &data).await?.store;
    let identity = ReadSide::open(log.clone(), &config.blueprint(String::new())?)
        .await?
        .identity;
    let node = holder(&identity, &args.identifier)?;
    let rules = identity.rules().clone();
    let card = identity.context_card(node.id, jiff::Timestamp::now()).await;
    log.close().await;
    let mut card = card?.with_context(|| format!("no profile holds {}", args.identifier))?;
    card.last_interactions.truncate(args.recent);

    if args.json {
        println!("{}", serde_json::to_string_pretty(&card)?);
        return Ok(());
    }
    let stage = serde_json::to_value(card.facts.lifecycle_stage)?;
    println!(
        "{} — profile {} — {} — {} events",
        card.name.as_deref().unwrap_or("(no name)"),
        card.profile_id,
        stage.as_str().unwrap_or("?"),
        node.event_count()
    );
    println!("\nNext best action: {}", card.next_best_action.summary);
    println!("  because {}", card.next_best_action.reason);
    if let Some(channel) = &card.facts.preferred_channel {
        println!("Preferred channel: {channel}");
    }
    println!("\nOpen cases");
    if card.facts.open_cases.is_empty() {
        println!("  none ({} resolved)", card.facts.resolved_cases);
    }
    for case in &card.facts.open_cases {
        println!(
            "  {} {} — opened {}",
            case.id,
            case.subject.as_deref().unwrap_or(""),
            case.opened_at
        );
        for touch in &case.touches {
            println!(
                "    {}  {:<22} {:<9} {}{}",
                touch.at,
                touch.touchpoint.as_deref().unwrap_or("-"),
                touch.channel.as_deref().unwrap_or("-"),
                touch.event,
                touch
                    .note
                    .as_ref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
    }
    println!("\nConsents");
    if card.facts.consents.is_empty() {
        println!("  none given");
    }
    for consent in &card.facts.consents {
        println!(
            "  {:<12} {:<10} {:<9} {} at {}",
            consent.purpose,
            consent.channel.as_deref().unwrap_or("all"),
            if consent.granted {
                "given"
            } else {
                "withdrawn"
            },
            consent.source,
            consent.at
        );
    }
    println!("\nIdentifiers");
    for (key, first) in &node.identifiers {
        let id = rules.identifier_of(key);
        println!(
            "  {:<14} {:<40} first seen {first}",
            id.kind.as_str(),
            id.value
        );
    }
    println!("\nComputed traits");
    for (name, value) in &card.facts.computed_traits {
        println!("  {name:<18} {value}");
    }
    println!("\nLast interactions");
    for e in &card.last_interactions {
        println!(
            "  {}  {:<22} {:<9} {} {}",
            e.at,
            e.touchpoint.as_deref().unwrap_or("-"),
            e.channel.as_deref().unwrap_or("-"),
            e.kind,
            e.name.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// The profile holding `identifier`, or why there is none.
pub(crate) fn holder(
    identity: &IdentityProjection,
    identifier: &Identifier,
) -> anyhow::Result<ProfileNode> {
    let key = identity
        .rules()
        .key_of(identifier)
        .with_context(|| format!("{identifier} is not a usable identifier"))?;
    let (node, ambiguous) = identity.read(|g| (g.lookup(&key).cloned(), g.is_ambiguous(&key)));
    if ambiguous {
        bail!(
            "{identifier} is shared by several people and identifies no one; use another identifier"
        );
    }
    node.with_context(|| format!("no profile holds {identifier}"))
}
