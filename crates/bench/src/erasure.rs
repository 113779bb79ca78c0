//! `unavoce bench erasure`: erasing people from a large store while ingestion runs,
//! against the same ingestion without erasures, measured in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_core::{Identifier, IdentifierType};
use unavoce_intake::{Intake, Item, ItemBody, Submission};
use unavoce_platform::{Blueprint, Running, erasure};
use unavoce_store::{SqliteLog, SqliteOptions};

use super::{current_rss_kib, journeys_store, median, peak_rss_kib};

#[derive(Args)]
pub(super) struct ErasureBenchArgs {
    /// People to load (their generated journeys: about 7 events each).
    #[arg(long, default_value_t = 1_000_000)]
    people: usize,
    /// Keep the loaded store in this folder, and reuse it when it is already there
    /// (each run erases people from it: the next run erases others).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// People to erase, one after another.
    #[arg(long, default_value_t = 1_000)]
    erasures: usize,
    /// Concurrent ingestion clients, each sending batches of 100 events one after
    /// another through the intake.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds of ingestion alone, the baseline.
    #[arg(long, default_value_t = 30)]
    baseline_seconds: u64,
}

/// Events stored by the ingestion clients so far.
struct Ingestion {
    stored: AtomicU64,
    stop: AtomicBool,
}

/// A client: batches of 100 events about the people of the upper half (never erased),
/// one after another, until told to stop.
async fn client(intake: Intake, ingestion: Arc<Ingestion>, people: usize, id: usize) {
    let mut rng = fastrand::Rng::with_seed(id as u64);
    let now = Timestamp::now();
    let mut n = 0usize;
    while !ingestion.stop.load(Ordering::Acquire) {
        let items = (0..100)
            .map(|_| {
                n += 1;
                Item {
                    body: ItemBody::Parsed(incoming(&mut rng, people, now, id, n)),
                    origin: Value::Null,
                }
            })
            .collect();
        match intake
            .ingest(Submission {
                source: "bench",
                received_at: now,
                endpoint_type: None,
                default_touchpoint: None,
                envelope: None,
                items,
            })
            .await
        {
            Ok(outcome) => {
                ingestion
                    .stored
                    .fetch_add(outcome.accepted as u64, Ordering::AcqRel);
            }
            Err(e) => {
                eprintln!(
                    "bench ingestion failed: {}",
                    unavoce_core::redact::Redacted(&e)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// An event about a random person of the upper half, who is never erased.
fn incoming(
    rng: &mut fastrand::Rng,
    people: usize,
    now: Timestamp,
    client: usize,
    n: usize,
) -> Map<String, Value> {
    let user = format!("user-{:05}", rng.usize(people / 2..people));
    let at = now - SignedDuration::from_mins(rng.i64(1..60 * 24));
    let message = match rng.u8(..3) {
        0 => json!({"type": "track", "userId": user, "event": "Order Completed",
            "properties": {"revenue": rng.u32(10..500)}, "context": {"channel": "web"}}),
        1 => json!({"type": "track", "userId": user, "event": "Call Received",
            "context": {"channel": "phone"}}),
        _ => json!({"type": "page", "userId": user, "name": "Offers",
            "context": {"channel": "web"}}),
    };
    let Value::Object(mut message) = message else {
        return Map::new();
    };
    message.insert("timestamp".into(), at.to_string().into());
    message.insert(
        "messageId".into(),
        format!("erasure-bench-{}-{client}-{n}", now.as_millisecond()).into(),
    );
    message
}

/// Ingests with `clients` clients until `done` resolves; events stored per second.
async fn ingest_while<F: std::future::Future>(
    intake: &Intake,
    clients: usize,
    people: usize,
    done: F,
) -> (f64, F::Output) {
    let ingestion = Arc::new(Ingestion {
        stored: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..clients)
        .map(|id| tokio::spawn(client(intake.clone(), ingestion.clone(), people, id)))
        .collect();
    let started = Instant::now();
    let output = done.await;
    let stored = ingestion.stored.load(Ordering::Acquire);
    let elapsed = started.elapsed().as_secs_f64();
    ingestion.stop.store(true, Ordering::Release);
    for task in tasks {
        let _ = task.await;
    }
    (stored as f64 / elapsed, output)
}

pub(super) async fn erasure_bench(args: ErasureBenchArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    println!(
        "Erasure benchmark: {} people's generated journeys",
        args.people
    );
    let (dir, _) = journeys_store(args.data.as_deref(), &temp, args.people).await?;
    let store = Arc::new(SqliteLog::open(&dir, SqliteOptions::default())?);
    let before = current_rss_kib();
    let started = Instant::now();
    let running =
        Running::start(store.clone(), Blueprint::defaults("http://bench.invalid")?).await?;
    let platform = running.platform.clone();
    let identity = platform.identity.clone();
    // As `unavoce serve` runs it: the projection follows the log on its own thread.
    let follower = identity.follow()?;
    let profiles = identity.read(|g| g.profile_count());
    println!(
        "  {profiles} profiles built from the log in {:.0} s; memory +{:.0} MiB",
        started.elapsed().as_secs_f64(),
        current_rss_kib().saturating_sub(before) as f64 / 1024.0
    );

    // Who is erased: people of the lower half, at random, who are still there.
    let rules = identity.rules().clone();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut chosen: Vec<ProfileId> = Vec::new();
    let mut tries = 0;
    while chosen.len() < args.erasures && tries < args.erasures * 20 {
        tries += 1;
        let user = Identifier {
            kind: IdentifierType::UserId,
            value: format!("user-{:05}", rng.usize(..args.people / 2)),
        };
        let found = rules
            .key_of(&user)
            .and_then(|key| identity.read(|g| g.lookup(&key).map(|n| n.id)));
        if let Some(id) = found.filter(|id| !chosen.contains(id)) {
            chosen.push(id);
        }
    }
    if chosen.len() < args.erasures {
        bail!("found only {} people to erase", chosen.len());
    }

    let (baseline, ()) = ingest_while(
        &platform.intake,
        args.clients,
        args.people,
        tokio::time::sleep(Duration::from_secs(args.baseline_seconds)),
    )
    .await;
    identity.catch_up().await?;

    let erasing = async {
        let mut times = Vec::with_capacity(chosen.len());
        let mut events = 0u64;
        let started = Instant::now();
        for &id in &chosen {
            let one = Instant::now();
            let erased = erasure::erase(&platform, id).await?;
            times.push(one.elapsed().as_secs_f64() * 1000.0);
            events += erased.removed.events;
        }
        anyhow::Ok((times, events, started.elapsed().as_secs_f64()))
    };
    let (during, erased) = ingest_while(&platform.intake, args.clients, args.people, erasing).await;
    let (mut times, events, erasing_s) = erased?;
    let started = Instant::now();
    identity.catch_up().await?;
    identity.rebuilt().await;
    let exact_after = started.elapsed().as_secs_f64();
    let left = identity.read(|g| g.profile_count());

    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    let max = times[times.len() - 1];
    let p50 = median(&mut times);
    println!();
    println!(
        "| {} erasures among {profiles} people, {} ingestion clients | value |",
        chosen.len(),
        args.clients
    );
    println!("|---|---:|");
    println!("| ingestion alone (baseline), events/s | {baseline:.0} |");
    println!(
        "| ingestion during the erasures, events/s | {during:.0} (**{:.2}**× the baseline) |",
        during / baseline
    );
    println!(
        "| erasures, total | {erasing_s:.1} s ({:.1} per second) |",
        chosen.len() as f64 / erasing_s
    );
    println!(
        "| time per erasure: mean / p50 / p99 / max | {mean:.1} / {p50:.1} / {p99:.1} / {max:.1} ms |"
    );
    println!("| events removed | {events} |");
    println!(
        "| projections exactly a fresh replay again, after the last erasure | {exact_after:.1} s |"
    );
    println!();
    println!(
        "profiles left: {left}; peak memory (RSS) {:.0} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    if left + chosen.len() > profiles + (during * erasing_s) as usize {
        bail!(
            "{left} profiles left of {profiles} after erasing {}",
            chosen.len()
        );
    }
    running.stop().await;
    let _ = follower.join();
    unavoce_store::EventLog::close(store.as_ref()).await;
    Ok(())
}
