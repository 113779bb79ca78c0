//! `unavoce export TYPE=VALUE`: everything held about one person, as JSON Lines — the
//! same records as `GET /api/profiles/{id}/export` — from the data folder.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use unavoce_core::Identifier;
use unavoce_core::audit::AuditEntry;
use unavoce_platform::PersonData;
use unavoce_server::export::PersonExport;
use unavoce_store::Store;

use crate::config;
use crate::profile::holder;

#[derive(Args)]
pub struct ExportArgs {
    /// The person, by any identifier, e.g. email=ada@example.com.
    identifier: Identifier,
    /// Where to write [default: <profile id>.jsonl]; `-` for standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Configuration file [default: ./unavoce.toml if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder [default: ./unavoce-data].
    #[arg(long)]
    data: Option<PathBuf>,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let (config, data) = config::load_for_data(args.config.as_deref(), args.data)?;
    let store = crate::store::open_existing(&config, &data).await?.store;
    let result = export(
        &store,
        &config.blueprint(String::new())?,
        &args.identifier,
        args.out,
    )
    .await;
    store.close().await;
    result
}

async fn export(
    store: &Arc<dyn Store>,
    blueprint: &unavoce_platform::Blueprint,
    identifier: &Identifier,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let person = PersonData::open(store.clone(), blueprint).await?;
    let profile = holder(&person.identity, identifier)?.id;
    let mut export = PersonExport::start(person, profile).await?;
    let path = out.unwrap_or_else(|| PathBuf::from(format!("{profile}.jsonl")));
    let mut sink: Box<dyn Write> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ))
    };
    let mut records = 0;
    while let Some(lines) = export.next_lines().await? {
        records += lines.len();
        for line in lines {
            sink.write_all(line.text.as_bytes())?;
        }
    }
    sink.flush()?;
    store
        .audit(vec![AuditEntry {
            at: jiff::Timestamp::now(),
            actor: "command-line".into(),
            role: "owner".into(),
            action: "CLI unavoce export".into(),
            profile_id: Some(profile.to_string()),
            outcome: 200,
        }])
        .await
        .context("cannot record the export in the audit log")?;
    if path.as_os_str() != "-" {
        eprintln!(
            "{records} records about {profile} written to {}",
            path.display()
        );
    }
    Ok(())
}
