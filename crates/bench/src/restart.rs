//! `unavoce bench restart`: a node's start over a large store from the projections'
//! snapshot and the log after it, against replaying the whole log (the start without a
//! snapshot) in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use jiff::Timestamp;
use unavoce_core::identity::IdentityRules;
use unavoce_core::profile::default_computed_traits;
use unavoce_projections::{IdentityProjection, Start};
use unavoce_store::{EventLog, SqliteLog, SqliteOptions};

use super::{current_rss_kib, proc_status_kib};

#[derive(Args)]
pub struct RestartBenchArgs {
    /// Events in the store at the restart.
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    /// Of those, events stored after the snapshot was taken (the tail replayed at start).
    #[arg(long, default_value_t = 100_000)]
    tail: usize,
    /// Keep the store in this folder (a new, empty folder).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Also compare the state started from the snapshot with the full replay's (holds
    /// both in memory).
    #[arg(long)]
    check: bool,
    /// Only start from the snapshot, over the store an earlier run left in `--data`
    /// (to profile the start alone); when that snapshot is not this build's, replay the
    /// log and take one instead.
    #[arg(long, requires = "data")]
    start_only: bool,
    /// With `--start-only`: start as after a crash, the store's clean-close record
    /// (`events.db.closed`) removed first, so that every page is checked.
    #[arg(long, requires = "start_only")]
    as_after_a_crash: bool,
}

/// The projections over `log`, with snapshots in `dir` when given; and how long the
/// start took.
async fn open(
    log: &Arc<dyn EventLog>,
    dir: Option<&Path>,
) -> anyhow::Result<(Arc<IdentityProjection>, f64)> {
    let started = Instant::now();
    let identity = IdentityProjection::open_with_snapshots(
        log.clone(),
        IdentityRules::default_rules(),
        Default::default(),
        Arc::new(default_computed_traits()),
        dir.map(Path::to_path_buf),
    )
    .await?;
    Ok((identity, started.elapsed().as_secs_f64()))
}

/// Forgets the process's peak memory so far (Linux), so the next reading of `VmHWM`
/// is the peak from now on.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The start from the snapshot over the store in `dir`, timed.
async fn start_only(dir: &Path, as_after_a_crash: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.join("events.db").exists(),
        "{} holds no store: run once without --start-only first",
        dir.display()
    );
    let record = dir.join("events.db.closed");
    if as_after_a_crash && record.exists() {
        std::fs::remove_file(&record)?;
    }
    // A node's start: the store opened (its files' headers checked), then the
    // projections beside the check of every page, as `unavoce serve` starts.
    let started = Instant::now();
    let sqlite = Arc::new(SqliteLog::open(dir, SqliteOptions::default())?);
    let store_opened = started.elapsed().as_secs_f64();
    let log: Arc<dyn EventLog> = sqlite.clone();
    let check = async {
        sqlite.checked().await?;
        anyhow::Ok(started.elapsed().as_secs_f64())
    };
    let snapshots = dir.join("snapshots");
    let (checked, opened) = tokio::join!(check, open(&log, Some(&snapshots)));
    let (checked, (restarted, took)) = (checked?, opened?);
    let ready = started.elapsed().as_secs_f64();
    if !matches!(restarted.start(), Start::Snapshot { .. }) {
        // A snapshot is tied to the build that wrote it: take one for this build.
        restarted.take_snapshot().await?;
        println!(
            "  no snapshot this build can use ({:?}): replayed the whole log in {took:.1} s and took one; run again",
            restarted.start()
        );
        log.close().await;
        return Ok(());
    }
    let (events, profiles) = restarted.read_with_interactions(|g, t| (t.len(), g.profile_count()));
    let check = if sqlite.opened_clean() {
        "with no check of every page (the store closed cleanly and unchanged since)".to_string()
    } else {
        format!("beside the check of every page (done {checked:.2} s from the start)")
    };
    println!(
        "  {events} events, {profiles} profiles: the store opened in {store_opened:.2} s, then the projections started from the snapshot and the log after it in {took:.2} s {check}: ready in {ready:.2} s, {:.0} MiB resident",
        current_rss_kib() as f64 / 1024.0
    );
    log.close().await;
    Ok(())
}

pub async fn restart_bench(args: RestartBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.tail < args.events, "--tail must be below --events");
    let temp = tempfile::tempdir()?;
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    if args.start_only {
        return start_only(&dir, args.as_after_a_crash).await;
    }
    anyhow::ensure!(
        !dir.join("events.db").exists(),
        "{} already holds a store: give an empty folder",
        dir.display()
    );
    let snapshots = dir.join("snapshots");
    let end: Timestamp = "2025-03-31T00:00:00Z".parse()?;
    println!(
        "Restart benchmark: {} events of generated journeys, the last {} stored after the snapshot",
        args.events, args.tail
    );
    let started = Instant::now();
    let (_, next) = super::load_journeys(&dir, 0, args.events - args.tail, usize::MAX, end).await?;
    println!(
        "  {} events loaded in {:.0} s (raw bulk insert)",
        args.events - args.tail,
        started.elapsed().as_secs_f64()
    );

    // A node that ran until the tail: its projections, and a snapshot of them.
    let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(&dir, SqliteOptions::default())?);
    let (identity, first_start) = open(&log, Some(&snapshots)).await?;
    let rss_before = current_rss_kib();
    reset_peak();
    let taken = identity
        .take_snapshot()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no snapshot was taken"))?;
    let peak_growth_mib = proc_status_kib("VmHWM:").saturating_sub(rss_before) as f64 / 1024.0;
    println!(
        "  projections built in {first_start:.1} s; snapshot at position {}: {:.0} MiB, taken in {:.2} s, the projection's writer held {:.2} s (catch_up waited that long), peak memory +{peak_growth_mib:.0} MiB over {:.0} MiB, and {} in the child process that wrote it",
        taken.seq,
        taken.bytes as f64 / (1 << 20) as f64,
        taken.took.as_secs_f64(),
        taken.held.as_secs_f64(),
        rss_before as f64 / 1024.0,
        taken.memory.map_or("none".into(), |m| format!(
            "{:.0} MiB",
            m as f64 / (1 << 20) as f64
        )),
    );
    drop(identity);
    log.close().await;
    drop(log);

    // The tail, stored while the node is down.
    super::load_journeys(&dir, next, args.tail, usize::MAX, end).await?;

    let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(&dir, SqliteOptions::default())?);
    // Baseline: the start without a snapshot.
    let (replayed, full) = open(&log, None).await?;
    let (events, profiles) = replayed.read_with_interactions(|g, t| (t.len(), g.profile_count()));
    let replayed = if args.check { Some(replayed) } else { None };
    // The start from the snapshot and the tail.
    let (restarted, from_snapshot) = open(&log, Some(&snapshots)).await?;
    anyhow::ensure!(
        matches!(restarted.start(), Start::Snapshot { .. }),
        "the snapshot was not used: {:?}",
        restarted.start()
    );
    let same = replayed.map(|r| r.same_as(&restarted));
    println!(
        "  {events} events, {profiles} profiles at the restart\n  full replay (baseline): {full:.1} s\n  snapshot + tail of {}: {from_snapshot:.2} s\n  ratio: {:.1}x faster{}",
        args.tail,
        full / from_snapshot.max(1e-9),
        match same {
            Some(true) => "; the state equals the full replay's",
            Some(false) => "; THE STATE DIFFERS FROM THE FULL REPLAY'S",
            None => "",
        }
    );
    anyhow::ensure!(
        same != Some(false),
        "snapshot + tail differs from a full replay"
    );
    log.close().await;
    Ok(())
}
