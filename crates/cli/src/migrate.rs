//! `unavoce migrate --from DATA_FOLDER --to postgres://…`: moves a data folder's embedded
//! store into an empty PostgreSQL database, then verifies it: the same rows in every
//! table, and the same profiles when each store is replayed.
//!
//! Output names tables, counts and profile ids only, never an identifier or a trait.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use unavoce_core::identity::ProfileId;
use unavoce_platform::{Blueprint, ReadSide};
use unavoce_projections::IdentityProjection;
use unavoce_store::{EventLog, LogStats, SqliteLog, SqliteOptions};
use unavoce_store_postgres::migrate::{Migration, Progress};
use unavoce_store_postgres::{PgOptions, PgStore, display_url};

use crate::config;

#[derive(Args)]
pub struct MigrateArgs {
    /// The data folder whose embedded store is moved (it is left in place).
    #[arg(long, value_name = "DATA_FOLDER", default_value = crate::DEFAULT_DATA_DIR)]
    from: PathBuf,
    /// The PostgreSQL database to fill (`postgres://user@host/db`): it must hold no data.
    /// Not taken from --store-url or UNAVOCE_STORE_URL: say where the data goes (or in
    /// UNAVOCE_MIGRATE_TO, which keeps a password out of the process list).
    #[arg(
        long,
        value_name = "URL",
        env = "UNAVOCE_MIGRATE_TO",
        hide_env_values = true
    )]
    to: String,
    /// Configuration file, for the identity rules the verification replays under
    /// [default: ./unavoce.toml if present, else the data folder's].
    #[arg(long)]
    config: Option<PathBuf>,
}

/// How often progress is printed while a table is copied.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Profile ids named when the stores' profiles differ, at most.
const DIFFERENCES_SHOWN: usize = 10;

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    if !args.from.is_dir() {
        bail!(
            "no data folder at {}; pass --from with the server's data folder",
            args.from.display()
        );
    }
    let source = args.from.join("events.db");
    if !source.is_file() {
        bail!(
            "no event log (events.db) in {}; pass --from with the server's data folder",
            args.from.display()
        );
    }
    let (config, _) = config::load_for_data(args.config.as_deref(), Some(args.from.clone()))?;
    let blueprint = config.blueprint(String::new())?;
    let target = display_url(&args.to);

    // Nothing is copied from a store before SQLite has checked every page of it.
    println!("checking every page of {}…", source.display());
    let sqlite = Arc::new(
        SqliteLog::open(&args.from, SqliteOptions::default())
            .with_context(|| format!("cannot open {}", source.display()))?,
    );
    sqlite.checked().await?;
    let sqlite: Arc<dyn EventLog> = sqlite;

    println!("migrating {} to {target}", source.display());
    let started = Instant::now();
    let mut last_shown = Instant::now();
    let migration = unavoce_store_postgres::migrate::from_sqlite(&source, &args.to, |p| {
        show_progress(p, &mut last_shown)
    })
    .await
    .with_context(|| format!("cannot migrate {} to {target}", args.from.display()))?;
    let elapsed = started.elapsed();
    print_counts(&migration);
    println!(
        "copied {} rows in {:.1} s ({:.0} rows/s); new events are stored after position {}",
        migration.rows(),
        elapsed.as_secs_f64(),
        migration.rows() as f64 / elapsed.as_secs_f64().max(1e-3),
        migration.highest_seq
    );

    let unequal: Vec<&str> = migration
        .tables
        .iter()
        .filter(|t| t.in_sqlite != t.in_postgres)
        .map(|t| t.table)
        .collect();
    if !unequal.is_empty() {
        bail!(
            "verification failed: row counts differ in {}",
            unequal.join(", ")
        );
    }
    println!("verifying: replaying both stores…");
    let now = jiff::Timestamp::now();
    let before = replayed(sqlite, &blueprint, now)
        .await
        .context("cannot replay the SQLite store to verify")?;
    let postgres: Arc<dyn EventLog> = Arc::new(
        PgStore::open(&args.to, PgOptions::default())
            .await
            .with_context(|| format!("cannot open {target} to verify"))?,
    );
    let after = replayed(postgres, &blueprint, now)
        .await
        .context("cannot replay the PostgreSQL store to verify")?;
    compare(&before, &after)?;
    println!(
        "verified: {} events, {} profiles identical",
        after.stats.events,
        after.profiles.len()
    );
    Ok(())
}

/// Prints a table's progress, at most every [`PROGRESS_EVERY`].
fn show_progress(progress: Progress, last_shown: &mut Instant) {
    if progress.copied > 0
        && progress.copied < progress.of
        && last_shown.elapsed() >= PROGRESS_EVERY
    {
        eprintln!(
            "  {:<14} {} of {}",
            progress.table, progress.copied, progress.of
        );
        *last_shown = Instant::now();
    }
}

fn print_counts(migration: &Migration) {
    println!("{:<14} {:>12} {:>12}", "TABLE", "SQLITE", "POSTGRESQL");
    for table in &migration.tables {
        println!(
            "{:<14} {:>12} {:>12}",
            table.table, table.in_sqlite, table.in_postgres
        );
    }
}

/// What a store replays to: its counts and a digest of each profile.
struct Replayed {
    stats: LogStats,
    profiles: BTreeMap<ProfileId, u64>,
    unattributed: u64,
    flagged: usize,
}

/// Replays `log` into the read side and digests it; closes the log.
async fn replayed(
    log: Arc<dyn EventLog>,
    blueprint: &Blueprint,
    now: jiff::Timestamp,
) -> anyhow::Result<Replayed> {
    let result = async {
        let stats = log.stats().await?;
        let identity = ReadSide::open(log.clone(), blueprint).await?.identity;
        let (unattributed, flagged) = identity.read(|g| (g.unattributed(), g.flags().count()));
        anyhow::Ok(Replayed {
            stats,
            profiles: digests(&identity, now),
            unattributed,
            flagged,
        })
    }
    .await;
    log.close().await;
    result
}

/// Each profile's digest: its identity (identifiers with when each was linked, events,
/// merges, distinguishing traits) and its facts at `now` (traits, consents, cases…).
fn digests(identity: &IdentityProjection, now: jiff::Timestamp) -> BTreeMap<ProfileId, u64> {
    let computed = identity.computed_traits().clone();
    identity.read_people(|graph, people| {
        graph
            .profiles_after(None)
            .map(|node| {
                let mut hasher = DefaultHasher::new();
                node.id.hash(&mut hasher);
                node.created_at.hash(&mut hasher);
                node.identifiers.hash(&mut hasher);
                graph.events(node).hash(&mut hasher);
                for merge in node.merges() {
                    (merge.seq, merge.at, merge.into, merge.from).hash(&mut hasher);
                    (&merge.via, merge.decided).hash(&mut hasher);
                }
                node.traits().hash(&mut hasher);
                match people.get(&node.id) {
                    Some(state) => serde_json::to_vec(&state.facts(&computed, now))
                        .unwrap_or_default()
                        .hash(&mut hasher),
                    None => 0u8.hash(&mut hasher),
                }
                (node.id, hasher.finish())
            })
            .collect()
    })
}

/// What a failed verification advises: most likely the source changed after the copy.
const RETRY: &str = "is a server still writing to the data folder? Stop it, and migrate \
    into a new empty database";

/// Fails naming what differs: counts, or the ids of the profiles that do.
fn compare(sqlite: &Replayed, postgres: &Replayed) -> anyhow::Result<()> {
    if sqlite.stats != postgres.stats {
        bail!(
            "verification failed: the logs' counts differ (SQLite {} events, {} duplicates, {} quarantined; PostgreSQL {} events, {} duplicates, {} quarantined); {RETRY}",
            sqlite.stats.events,
            sqlite.stats.duplicates,
            sqlite.stats.quarantined,
            postgres.stats.events,
            postgres.stats.duplicates,
            postgres.stats.quarantined
        );
    }
    let differing: Vec<String> = sqlite
        .profiles
        .iter()
        .filter(|(id, digest)| postgres.profiles.get(id) != Some(digest))
        .map(|(id, _)| id)
        .chain(
            postgres
                .profiles
                .keys()
                .filter(|id| !sqlite.profiles.contains_key(id)),
        )
        .map(ToString::to_string)
        .collect();
    if !differing.is_empty() {
        let shown = differing[..differing.len().min(DIFFERENCES_SHOWN)].join(", ");
        bail!(
            "verification failed: {} of {} profiles differ between the stores ({shown}{}); {RETRY}",
            differing.len(),
            sqlite.profiles.len().max(postgres.profiles.len()),
            if differing.len() > DIFFERENCES_SHOWN {
                ", …"
            } else {
                ""
            }
        );
    }
    if (sqlite.unattributed, sqlite.flagged) != (postgres.unattributed, postgres.flagged) {
        bail!(
            "verification failed: events without identity {} vs {}, flagged identifiers {} vs {}; {RETRY}",
            sqlite.unattributed,
            postgres.unattributed,
            sqlite.flagged,
            postgres.flagged
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replayed(profiles: &[(i64, u64)]) -> Replayed {
        Replayed {
            stats: LogStats::default(),
            profiles: profiles
                .iter()
                .map(|(id, d)| (ProfileId(*id), *d))
                .collect(),
            unattributed: 0,
            flagged: 0,
        }
    }

    #[test]
    fn differing_profiles_are_named_by_id() {
        let a = replayed(&[(1, 10), (2, 20), (3, 30)]);
        let b = replayed(&[(1, 10), (2, 21), (4, 40)]);
        let error = compare(&a, &b).unwrap_err().to_string();
        assert!(error.contains("3 of 3 profiles differ"), "{error}");
        assert!(error.contains("p-2, p-3, p-4"), "{error}");
        assert!(compare(&a, &a).is_ok());
    }
}
