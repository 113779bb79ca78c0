//! `unavoce keys create|list|revoke` and `unavoce audit verify`: named API keys and the
//! audit log's chain, on the data folder (also while the server runs: a key made here
//! opens the API at once).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use std::sync::Arc;
use unavoce_core::access::Role;
use unavoce_core::audit::{AuditEntry, GENESIS, verify};
use unavoce_platform::keys::create_key;

use unavoce_store::Store;

use crate::config;

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    /// Configuration file [default: ./unavoce.toml if present].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data folder [default: ./unavoce-data].
    #[arg(long, global = true)]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key; it is printed once and kept only as a hash.
    Create {
        /// The key's name (letters, digits, `.`, `-`, `_`).
        name: String,
        /// owner, marketer, analyst or agent.
        #[arg(long)]
        role: Role,
    },
    /// Every key: name, role, created, last used.
    List,
    /// Revoke a key at once.
    Revoke { name: String },
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    /// Configuration file [default: ./unavoce.toml if present].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data folder [default: ./unavoce-data].
    #[arg(long, global = true)]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check that no audit record was changed, removed or inserted; prints the chain's
    /// head, to note elsewhere (a removed newest record shows only against it).
    Verify,
}

async fn open(
    config: Option<&std::path::Path>,
    data: Option<PathBuf>,
) -> anyhow::Result<Arc<dyn Store>> {
    let (config, data) = config::load_for_data(config, data)?;
    Ok(crate::store::open_existing(&config, &data).await?.store)
}

/// Records a change made on the command line in the audit log (actor `command-line`).
async fn audited(store: &dyn Store, action: &str, succeeded: bool) -> anyhow::Result<()> {
    let entry = AuditEntry {
        at: jiff::Timestamp::now(),
        actor: "command-line".into(),
        role: Role::Owner.as_str().into(),
        action: format!("CLI {action}"),
        profile_id: None,
        outcome: if succeeded { 200 } else { 400 },
    };
    store
        .audit(vec![entry])
        .await
        .context("cannot record the change in the audit log")
}

pub async fn keys(args: KeysArgs) -> anyhow::Result<()> {
    let store = open(args.config.as_deref(), args.data).await?;
    let action = match &args.command {
        KeysCommand::Create { .. } => Some("unavoce keys create"),
        KeysCommand::Revoke { .. } => Some("unavoce keys revoke"),
        KeysCommand::List => None,
    };
    let result = match args.command {
        KeysCommand::Create { name, role } => create_key(store.as_ref(), &name, role)
            .await
            .map(|key| {
                println!("{key}");
                eprintln!("key {name:?} ({role}) made: keep it now, it is not shown again");
            })
            .map_err(anyhow::Error::from),
        KeysCommand::List => store.keys().await.map_err(Into::into).map(|keys| {
            println!("{:<24} {:<9} {:<27} LAST USED", "NAME", "ROLE", "CREATED");
            for k in keys {
                let used = k.last_used_at.map_or("never".into(), |t| t.to_string());
                println!(
                    "{:<24} {:<9} {:<27} {used}",
                    k.name,
                    k.role,
                    k.created_at.to_string()
                );
            }
        }),
        KeysCommand::Revoke { name } => match store.revoke_key(&name).await {
            Ok(true) => {
                println!("key {name:?} revoked");
                Ok(())
            }
            Ok(false) => Err(anyhow::anyhow!("no key named {name:?}")),
            Err(e) => Err(e.into()),
        },
    };
    let recorded = match action {
        Some(action) => audited(store.as_ref(), action, result.is_ok()).await,
        None => Ok(()),
    };
    store.close().await;
    result.and(recorded)
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let store = open(args.config.as_deref(), args.data).await?;
    let AuditCommand::Verify = args.command;
    let mut head = (0, GENESIS.to_string());
    let result = loop {
        let records = match store.audit_chain(head.0, 10_000).await {
            Ok(records) => records,
            Err(e) => break Err(anyhow::Error::from(e)),
        };
        if records.is_empty() {
            break Ok(());
        }
        match verify(&records, (head.0, &head.1)) {
            Ok(next) => head = next,
            Err(broken) => break Err(anyhow::Error::from(broken)),
        }
    };
    store.close().await;
    result.context("the audit log's chain is broken")?;
    println!("audit log intact: {} records; head {}", head.0, head.1);
    Ok(())
}
