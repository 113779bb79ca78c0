//! `unavoce bench`: the benchmarks, each reported as a ratio against a baseline measured
//! in the same run — `ingest` (end-to-end ingestion through HTTP against the embedded
//! store's own raw bulk-insert rate for the same rows), `identity`, `context`, `link`,
//! `reports`, `decisions`, `delivery`, `erasure`, `cluster` and `soak`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use serde_json::{Map, Value};
use unavoce_core::identity::IdentityRules;
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_platform::{Blueprint, ReadSide, Running};
use unavoce_projections::IdentityProjection;
use unavoce_server::{AppState, Keys, Metrics, Sessions, WriteKey};
use unavoce_store::sqlite::bulk_insert_baseline;
use unavoce_store::{CommitKind, EventRow};
use unavoce_store::{Durability, EventLog, SqliteLog, SqliteOptions};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// HTTP /v1/batch end to end (parse, validate, de-duplicate, durable commit) against
    /// a raw bulk insert of the same rows into the same store.
    Ingest(IngestArgs),
    /// Incremental identity resolution per event, against parsing the same events.
    Identity(IdentityArgs),
    /// Context card latency with many profiles loaded, against reading one event and
    /// against the card folded from every event of the person.
    Context(ContextArgs),
    /// `unavoce link` on a generated file of people with typo'd duplicates.
    Link(LinkBenchArgs),
    /// The touchpoint KPI and path reports over many events, against a plain aggregate
    /// query over the same events in the same store.
    Reports(ReportBenchArgs),
    /// Policy decisions and segment maintenance with many profiles loaded.
    Decisions(engagement::DecisionBenchArgs),
    /// A broadcast through gate, rendering and outbox to local SMTP and webhook sinks,
    /// against sending the same messages directly.
    Delivery(delivery::DeliveryBenchArgs),
    /// Erasing people from a large store while ingestion runs, against the same
    /// ingestion without erasures.
    Erasure(erasure::ErasureBenchArgs),
    /// HTTP /v1/batch end to end through 1, 2 and 3 nodes sharing one PostgreSQL store
    /// and one NATS server, against PostgreSQL's own bulk insert (binary COPY) of the
    /// same rows; with projection lag, memory per node and bytes per event stored.
    Cluster(cluster::ClusterBenchArgs),
    /// A real server under SDK-shaped traffic at 70 % of the capacity measured first,
    /// with a journey, broadcasts and readers running: memory over time, `/v1/batch`
    /// latencies, every acknowledged event stored exactly once; `--overload` offers 200 %.
    Soak(soak::SoakBenchArgs),
    /// A start from the projections' snapshot and the log after it, against replaying
    /// the whole log, over the same store.
    Restart(restart::RestartBenchArgs),
}

mod cluster;
mod delivery;
mod engagement;
mod erasure;
mod restart;
mod soak;

#[derive(Args)]
struct ReportBenchArgs {
    /// Events to load.
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    /// Keep the loaded store in this folder, and reuse it when it is already there.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Timed runs of each query; the report gives medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(Args)]
struct LinkBenchArgs {
    /// People generated (a third of them twice).
    #[arg(long, default_value_t = 750_000)]
    people: usize,
    /// Keep the generated file here (to run Splink on the same file).
    #[arg(long)]
    write: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct ContextArgs {
    /// Profiles to load.
    #[arg(long, default_value_t = 1_000_000)]
    profiles: usize,
    /// Events of each person: an identify, a store purchase and a case opened by phone,
    /// then, an hour apart back in time, web pages, e-mails opened, products viewed and
    /// calls.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(3..))]
    events_per_person: u32,
    /// Context cards to time.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
}

#[derive(Args)]
struct IdentityArgs {
    /// People in the generated histories (about 8 events each).
    #[arg(long, default_value_t = 50_000)]
    people: usize,
}

#[derive(Args)]
struct IngestArgs {
    /// Events to ingest.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Messages per HTTP batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent HTTP clients, each sending its batches one after another (as one SDK
    /// instance does). A server under load hears from many SDKs at once.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Rows per transaction of the raw baseline.
    #[arg(long, default_value_t = 10_000)]
    raw_rows_per_transaction: usize,
    /// Rounds of both runs; the report gives medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Commit durability for both runs: full (fsync) or normal.
    #[arg(long, default_value = "full")]
    durability: String,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.bench {
        Bench::Ingest(args) => ingest(args).await,
        Bench::Identity(args) => identity(args),
        Bench::Context(args) => context(args).await,
        Bench::Link(args) => link_bench(args),
        Bench::Reports(args) => report_bench(args).await,
        Bench::Decisions(args) => engagement::decision_bench(args).await,
        Bench::Delivery(args) => delivery::delivery_bench(args).await,
        Bench::Erasure(args) => erasure::erasure_bench(args).await,
        Bench::Cluster(args) => cluster::cluster_bench(args).await,
        Bench::Soak(args) => soak::soak_bench(args).await,
        Bench::Restart(args) => restart::restart_bench(args).await,
    }
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let durability = match args.durability.as_str() {
        "full" => Durability::Full,
        "normal" => Durability::Normal,
        other => bail!("--durability is {other:?}; expected full or normal"),
    };
    let messages = messages(args.events);
    let bytes: usize = messages.iter().map(String::len).sum();
    println!(
        "Ingestion benchmark: {} events (mean {} bytes of JSON), batches of {}, {} clients, durability {}, {} rounds",
        messages.len(),
        bytes / messages.len().max(1),
        args.batch,
        args.clients,
        args.durability,
        args.rounds
    );
    // The baseline's rows: the same events, normalised beforehand.
    let started = Instant::now();
    let rows = Arc::new(rows(&messages)?);
    println!(
        "validation and normalisation alone: {:.1} µs per event on one core",
        started.elapsed().as_secs_f64() * 1e6 / rows.len().max(1) as f64
    );
    let bodies = bodies(&messages, args.batch);
    drop(messages);
    let prepared_rss = current_rss_kib();

    let mut raw_rates = Vec::new();
    let mut e2e_rates = Vec::new();
    let mut server_growth = 0;
    let mut e2e_cores = Vec::new();
    let mut resolved_rates = Vec::new();
    for round in 1..=args.rounds.max(1) {
        // Baseline: the store's own bulk insert of the same rows, no queue, no HTTP.
        let raw_dir = tempfile::tempdir()?;
        let raw_path = raw_dir.path().to_path_buf();
        let raw_rows = rows.clone();
        let per_transaction = args.raw_rows_per_transaction;
        let started = Instant::now();
        tokio::task::spawn_blocking(move || {
            bulk_insert_baseline(&raw_path, &raw_rows, per_transaction, durability)
        })
        .await??;
        raw_rates.push(args.events as f64 / started.elapsed().as_secs_f64());
        drop(raw_dir);

        // End to end: a real server on loopback, real HTTP clients, every batch
        // acknowledged only once durable.
        let e2e_dir = tempfile::tempdir()?;
        let before = current_rss_kib();
        let load = Arc::new(WriterLoad::default());
        let (address, log, identity, running, server) =
            start_server(e2e_dir.path(), durability, load.clone()).await?;
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let accepted = send_all(address, bodies.clone(), args.clients).await?;
        let wall = started.elapsed().as_secs_f64();
        let applied_at_acknowledgement = identity.applied();
        e2e_rates.push(args.events as f64 / wall);
        // Identity resolved: the projection has applied every acknowledged event.
        let resolved_to = identity.catch_up().await?;
        resolved_rates.push(args.events as f64 / started.elapsed().as_secs_f64());
        let profiles = identity.read(|graph| graph.profile_count());
        if resolved_to < args.events as i64 || profiles == 0 {
            bail!("the identity projection reached event {resolved_to} with {profiles} profiles");
        }
        e2e_cores.push((cpu_seconds() - cpu_before) / wall);
        server_growth = server_growth.max(current_rss_kib().saturating_sub(before));
        let stored = log.stats().await?.events;
        server.abort();
        running.stop().await;
        log.close().await;
        if accepted != args.events as u64 || stored != args.events as u64 {
            bail!(
                "expected {} events; the server acknowledged {accepted} and stored {stored}",
                args.events
            );
        }
        let commits = load
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        println!(
            "round {round}: raw {:.0} events/s, end to end {:.0} events/s acknowledged, {:.0} identity resolved, using {:.2} cores; writer busy {:.0}% over {commits} commits of {} rows on average; identities resolved for {applied_at_acknowledgement} events when the last was acknowledged",
            raw_rates[raw_rates.len() - 1],
            e2e_rates[e2e_rates.len() - 1],
            resolved_rates[resolved_rates.len() - 1],
            e2e_cores[e2e_cores.len() - 1],
            load.busy_micros.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e4 / wall,
            load.rows.load(std::sync::atomic::Ordering::Relaxed) / commits,
        );
    }

    let raw = median(&mut raw_rates);
    let e2e = median(&mut e2e_rates);
    let resolved = median(&mut resolved_rates);
    println!();
    println!(
        "| run (median of {} rounds) | events/s |",
        args.rounds.max(1)
    );
    println!("|---|---:|");
    println!("| raw bulk insert (baseline) | {raw:.0} |");
    println!("| HTTP /v1/batch end to end, acknowledged (durable) | {e2e:.0} |");
    println!("| HTTP /v1/batch end to end, identity resolved | {resolved:.0} |");
    println!();
    println!(
        "ratio end-to-end / raw: {:.2} acknowledged, {:.2} identity resolved (target ≥ 0.50)",
        e2e / raw,
        resolved / raw
    );
    println!(
        "memory: {:.0} MiB resident with the prepared data; the server grew it by at most {:.0} MiB while ingesting; process peak {:.0} MiB",
        prepared_rss as f64 / 1024.0,
        server_growth as f64 / 1024.0,
        peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}

/// Identity resolution, one event at a time, as the projection does it.
fn identity(args: IdentityArgs) -> anyhow::Result<()> {
    let start = "2024-01-01T00:00:00Z".parse()?;
    let data = unavoce_synthetic::omnichannel(args.people, 1, start, 365);
    let texts: Vec<String> = data
        .messages
        .iter()
        .map(|m| Value::Object(m.clone()).to_string())
        .collect();
    let ctx = IntakeContext::new(Timestamp::now(), "bench");
    let n = texts.len() as f64;
    println!(
        "Identity benchmark: {} events from {} people",
        texts.len(),
        args.people
    );

    // Baseline: parsing and normalising the same events.
    let started = Instant::now();
    let events: Vec<_> = texts
        .iter()
        .map(|t| {
            let m: Map<String, Value> = serde_json::from_str(t)?;
            normalise(m, &ctx, || "x".into()).map_err(|r| anyhow::anyhow!("{r}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let parse_us = started.elapsed().as_secs_f64() * 1e6 / n;

    let rules = IdentityRules::default_rules();
    let started = Instant::now();
    let sets: Vec<_> = events
        .iter()
        .map(|e| unavoce_core::identity::extract(e, &rules))
        .collect();
    let extract_us = started.elapsed().as_secs_f64() * 1e6 / n;

    let before_graph = current_rss_kib();
    let mut graph = unavoce_core::identity::IdentityGraph::new(rules.clone(), Vec::new());
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    for (i, (event, set)) in events.iter().zip(&sets).enumerate() {
        let one = Instant::now();
        graph.apply(i as i64 + 1, event.timestamp, set);
        worst = worst.max(one.elapsed());
    }
    let apply_us = started.elapsed().as_secs_f64() * 1e6 / n;
    let graph_kib = current_rss_kib().saturating_sub(before_graph);
    let resolve_us = extract_us + apply_us;
    println!();
    println!("| step | µs per event |");
    println!("|---|---:|");
    println!("| parse and normalise the event (baseline) | {parse_us:.2} |");
    println!("| extract and normalise identifiers | {extract_us:.2} |");
    println!("| apply to the identity graph | {apply_us:.2} |");
    println!("| incremental resolution (extract + apply) | {resolve_us:.2} |");
    println!();
    println!(
        "resolution / parsing: {:.2}; resolution {resolve_us:.2} µs per event (target < 50 µs); slowest single apply {} µs",
        resolve_us / parse_us,
        worst.as_micros()
    );
    println!(
        "{} profiles; the graph added {:.0} MiB resident, {:.0} bytes per profile ({:.1} events and {:.1} identifiers each)",
        graph.profile_count(),
        graph_kib as f64 / 1024.0,
        graph_kib as f64 * 1024.0 / graph.profile_count().max(1) as f64,
        n / graph.profile_count().max(1) as f64,
        graph
            .profiles_after(None)
            .map(|p| p.identifiers.len())
            .sum::<usize>() as f64
            / graph.profile_count().max(1) as f64,
    );
    Ok(())
}

/// Context card latency with `profiles` people in the store and the graph, each with
/// `events_per_person` events: identifier lookup, the held state and the events the card
/// shows read by log position; against reading one event, and against the card folded
/// from every event of the person (as before the profile state held the card's events).
async fn context(args: ContextArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let now = Timestamp::now();
    let ctx = IntakeContext::new(now, "bench");
    if args.profiles == 0 || args.samples == 0 {
        bail!("--profiles and --samples must be at least 1");
    }
    let per_person = args.events_per_person as usize;
    let total = (args.profiles)
        .checked_mul(per_person)
        .filter(|&t| i64::try_from(t).is_ok())
        .context("too many events")?;
    println!(
        "Context card benchmark: {} profiles, {per_person} events each",
        args.profiles
    );
    let started = Instant::now();
    let mut rows = Vec::with_capacity(150_000);
    for n in 0..args.profiles {
        let user = format!("user-{n:07}");
        let messages = [
            serde_json::json!({"type": "identify", "userId": user, "messageId": format!("i{n}"),
                "traits": {"firstName": "Giulia", "email": format!("p{n}@example.com")},
                "context": {"touchpoint": "web-shop"}}),
            serde_json::json!({"type": "track", "userId": user, "event": "Order Completed", "messageId": format!("o{n}"),
                "properties": {"revenue": 19.9}, "context": {"touchpoint": "store-rome-01", "channel": "store"}}),
            serde_json::json!({"type": "track", "userId": user, "event": "Case Opened", "messageId": format!("c{n}"),
                "properties": {"case_id": format!("C{n}"), "subject": "Outage"},
                "context": {"touchpoint": "call-center-milan", "channel": "phone"}}),
        ];
        let older = (1..=args.events_per_person - 3).map(|k| {
            let at = Timestamp::from_second(now.as_second() - i64::from(k) * 3_600)?;
            let id = format!("e{n}-{k}");
            Ok(match k % 4 {
                0 => serde_json::json!({"type": "page", "userId": user, "name": "Pricing",
                    "messageId": id, "timestamp": at, "context": {"touchpoint": "web-shop"}}),
                1 => serde_json::json!({"type": "track", "userId": user, "event": "Email Opened",
                    "messageId": id, "timestamp": at}),
                2 => serde_json::json!({"type": "track", "userId": user, "event": "Product Viewed",
                    "messageId": id, "timestamp": at, "context": {"touchpoint": "web-shop"}}),
                _ => serde_json::json!({"type": "track", "userId": user, "event": "Call Completed",
                    "messageId": id, "timestamp": at,
                    "context": {"touchpoint": "call-center-milan", "channel": "phone"}}),
            })
        });
        let older = older.collect::<Result<Vec<_>, jiff::Error>>()?;
        for m in messages.into_iter().chain(older) {
            let Value::Object(m) = m else { continue };
            let event = normalise(m, &ctx, || "x".into()).map_err(|r| anyhow::anyhow!("{r}"))?;
            rows.push(EventRow::from_event(&event)?);
        }
        if rows.len() >= 150_000 || n + 1 == args.profiles {
            // Streamed in chunks, so the load leaves no large buffer behind.
            let chunk = std::mem::take(&mut rows);
            let path = dir.path().to_path_buf();
            tokio::task::spawn_blocking(move || {
                bulk_insert_baseline(&path, &chunk, 50_000, Durability::Normal)
            })
            .await??;
        }
    }
    println!(
        "  loaded {total} events in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(dir.path(), SqliteOptions::default())?);
    let started = Instant::now();
    let before = current_rss_kib();
    let identity = ReadSide::open(log.clone(), &Blueprint::defaults("http://bench.invalid")?)
        .await?
        .identity;
    let profiles = identity.read(|g| g.profile_count());
    println!(
        "  identity graph replayed in {:.0} s: {profiles} profiles, {:.0} MiB ({:.0} bytes per profile)",
        started.elapsed().as_secs_f64(),
        current_rss_kib().saturating_sub(before) as f64 / 1024.0,
        current_rss_kib().saturating_sub(before) as f64 * 1024.0 / profiles.max(1) as f64
    );
    let rules = IdentityRules::default_rules();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut baseline = Vec::with_capacity(args.samples);
    let mut cards = Vec::with_capacity(args.samples);
    let mut shown = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let n = rng.usize(..args.profiles);
        // Baseline: one event read by its log position.
        let seq = rng.i64(1..=total as i64);
        let started = Instant::now();
        let one = log.events_at(vec![seq]).await?;
        baseline.push(started.elapsed());
        if one.is_empty() {
            bail!("event {seq} missing");
        }
        let started = Instant::now();
        let identifier = unavoce_core::Identifier {
            kind: "user_id".to_string().into(),
            value: format!("user-{n:07}"),
        };
        let key = rules
            .key_of(&identifier)
            .ok_or_else(|| anyhow::anyhow!("bad identifier"))?;
        let profile = identity
            .read(|g| g.lookup(&key).map(|node| node.id))
            .ok_or_else(|| anyhow::anyhow!("no profile for user-{n:07}"))?;
        let card = identity
            .context_card(profile, now)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no card for user-{n:07}"))?;
        cards.push(started.elapsed());
        if card.facts.open_cases.len() != 1 {
            bail!("the card of user-{n:07} lacks its open case");
        }
        shown.push((key, card));
    }
    // Baseline: the same people's cards folded from every event of theirs, timed apart so
    // that reading whole histories does not empty the store's cache for the reads above.
    let mut folded = Vec::with_capacity(args.samples);
    for (key, card) in &shown {
        let started = Instant::now();
        let profile = identity
            .read(|g| g.lookup(key).map(|n| n.id))
            .context("no profile")?;
        let every = identity
            .context_card_from_history(profile, now)
            .await?
            .context("no profile")?;
        folded.push(started.elapsed());
        if &every != card {
            bail!("a card from the held state differs from the card folded from every event");
        }
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
    };
    let (b50, b99) = (pct(&mut baseline, 0.50), pct(&mut baseline, 0.99));
    let (c50, c99) = (pct(&mut cards, 0.50), pct(&mut cards, 0.99));
    let (f50, f99) = (pct(&mut folded, 0.50), pct(&mut folded, 0.99));
    println!();
    println!("| {} samples | p50 ms | p99 ms |", args.samples);
    println!("|---|---:|---:|");
    println!("| read one event by position (baseline) | {b50:.3} | {b99:.3} |");
    println!(
        "| context card folded from every event (lookup, all read by position, fold; baseline) | {f50:.3} | {f99:.3} |"
    );
    println!(
        "| context card (lookup, held state, the events shown read by position) | {c50:.3} | {c99:.3} |"
    );
    println!();
    println!(
        "card / one event at p99: {:.1}; card / folded from every event at p99: {:.4}; card p99 {c99:.3} ms (target < 5 ms)",
        c99 / b99,
        c99 / f99
    );
    log.close().await;
    Ok(())
}

/// A store of `people` people's generated journeys, loaded in `data` (or reused when it
/// is already there), else in `temp`: its folder and the end of the generated period.
async fn journeys_store(
    data: Option<&std::path::Path>,
    temp: &tempfile::TempDir,
    people: usize,
) -> anyhow::Result<(std::path::PathBuf, Timestamp)> {
    let dir = data.map_or_else(|| temp.path().to_path_buf(), std::path::Path::to_path_buf);
    let end: Timestamp = "2025-03-31T00:00:00Z".parse()?;
    if dir.join("events.db").exists() {
        println!("  reusing the store in {}", dir.display());
    } else {
        let started = Instant::now();
        load_journeys(&dir, 0, usize::MAX, people, end).await?;
        println!(
            "  loaded in {:.0} s (raw bulk insert)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok((dir, end))
}

/// Loads generated journeys into a store, of people from `first` on: `events` events,
/// or fewer when everyone before `people` has had all of theirs. The touchpoints, and
/// the next person not stored.
async fn load_journeys(
    dir: &std::path::Path,
    first: usize,
    events: usize,
    people: usize,
    end: Timestamp,
) -> anyhow::Result<(Vec<unavoce_core::Touchpoint>, usize)> {
    let registry: Vec<unavoce_core::Touchpoint> =
        unavoce_synthetic::touchpoint_histories(1, 1, end)
            .touchpoints
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()?;
    let channels: unavoce_core::segment::TouchpointChannels =
        registry.iter().map(|t| (t.id.clone(), t.channel)).collect();
    let mut ctx = IntakeContext::new(end, "bench");
    ctx.touchpoint_channels = Some(&channels);
    let progress = indicatif::ProgressBar::new(events as u64);
    let (mut loaded, mut first) = (0usize, first);
    while loaded < events && first < people {
        let next = (first + 50_000).min(people);
        let data = unavoce_synthetic::touchpoint_histories_of(first..next, 11, end);
        first = next;
        let mut rows = Vec::with_capacity(data.messages.len());
        for (message, _) in data.messages.into_iter().take(events - loaded) {
            let event =
                normalise(message, &ctx, || "x".into()).map_err(|r| anyhow::anyhow!("{r}"))?;
            rows.push(EventRow::from_event(&event)?);
        }
        loaded += rows.len();
        progress.inc(rows.len() as u64);
        let path = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            bulk_insert_baseline(&path, &rows, 50_000, Durability::Normal)
        })
        .await??;
    }
    progress.finish_and_clear();
    Ok((registry, first))
}

/// The KPI and path reports over `events` events against a plain aggregate query.
async fn report_bench(args: ReportBenchArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let end: Timestamp = "2025-03-31T00:00:00Z".parse()?;
    println!(
        "Report benchmark: {} events of generated journeys",
        args.events
    );
    let started = Instant::now();
    let registry = if dir.join("events.db").exists() {
        println!("  reusing the store in {}", dir.display());
        unavoce_synthetic::touchpoint_histories(1, 1, end)
            .touchpoints
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<Vec<unavoce_core::Touchpoint>, _>>()?
    } else {
        let (registry, _) = load_journeys(&dir, 0, args.events, usize::MAX, end).await?;
        println!(
            "  loaded in {:.0} s (raw bulk insert)",
            started.elapsed().as_secs_f64()
        );
        registry
    };
    let sqlite = Arc::new(SqliteLog::open(&dir, SqliteOptions::default())?);
    let log: Arc<dyn EventLog> = sqlite.clone();
    let before = current_rss_kib();
    let started = Instant::now();
    let ReadSide {
        identity, reports, ..
    } = ReadSide::open(
        log.clone(),
        &Blueprint {
            touchpoints: registry,
            ..Blueprint::defaults("http://bench.invalid")?
        },
    )
    .await?;
    let replay = started.elapsed().as_secs_f64();
    let grown_mib = current_rss_kib().saturating_sub(before) as f64 / 1024.0;
    let (stored, profiles, table_mib) = identity.read_with_interactions(|g, t| {
        (
            t.len(),
            g.profile_count(),
            t.heap_bytes() as f64 / (1 << 20) as f64,
        )
    });
    println!(
        "  {stored} events, {profiles} profiles; projections built from the log in {replay:.0} s; memory +{grown_mib:.0} MiB (interaction table {table_mib:.0} MiB)"
    );
    let period = unavoce_core::analytics::Period {
        from: Some(end - jiff::SignedDuration::from_hours(90 * 24)),
        to: Some(end),
    };
    let (from, to) = (
        end.as_microsecond() - 90 * 86_400_000_000,
        end.as_microsecond(),
    );

    let mut baseline = Vec::new();
    let mut counts_only = Vec::new();
    let mut kpis = Vec::new();
    let mut paths = Vec::new();
    let mut checks = (0u64, 0u64);
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        let counts = sqlite.touchpoint_counts_baseline(from, to, true).await?;
        baseline.push(started.elapsed().as_secs_f64());
        checks.0 = counts.iter().map(|c| c.1).sum();
        let started = Instant::now();
        sqlite.touchpoint_counts_baseline(from, to, false).await?;
        counts_only.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        let report = reports.kpis(period, None).await?;
        kpis.push(started.elapsed().as_secs_f64());
        checks.1 = report.interactions;

        let started = Instant::now();
        let report = reports.paths(period, None, 4, 20).await?;
        paths.push(started.elapsed().as_secs_f64());
        if report.people == 0 {
            bail!("the path report found nobody");
        }
    }
    if checks.0 != checks.1 {
        bail!(
            "the baseline counted {} events in the period, the KPI report {}",
            checks.0,
            checks.1
        );
    }
    let (b, c, k, p) = (
        median(&mut baseline),
        median(&mut counts_only),
        median(&mut kpis),
        median(&mut paths),
    );
    println!();
    println!(
        "| {stored} events, median of {} runs | seconds | ratio to baseline |",
        args.runs.max(1)
    );
    println!("|---|---:|---:|");
    println!("| plain aggregate query (events, distinct senders per touchpoint) | {b:.2} | 1.00 |");
    println!(
        "| plain aggregate query (events per touchpoint only) | {c:.2} | {:.2} |",
        c / b
    );
    println!(
        "| touchpoint KPI report (20 figures per touchpoint and channel) | {k:.2} | {:.2} |",
        k / b
    );
    println!(
        "| path report (4 steps, Sankey + top paths) | {p:.2} | {:.2} |",
        p / b
    );
    println!();
    println!(
        "peak memory (RSS) {:.0} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    log.close().await;
    Ok(())
}

/// `unavoce link` on generated people: time, memory and quality against the truth.
fn link_bench(args: LinkBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = args
        .write
        .clone()
        .unwrap_or_else(|| dir.path().join("people.csv"));
    let (header, rows) = unavoce_synthetic::people_with_duplicates(args.people, 7);
    let mut writer = csv::Writer::from_path(&file)?;
    writer.write_record(&header)?;
    for row in &rows {
        writer.write_record(row)?;
    }
    writer.flush()?;
    let truth: std::collections::HashSet<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            r[0].strip_suffix("-dup")
                .map(|original| (original.to_string(), r[0].clone()))
        })
        .collect();
    println!(
        "Linkage benchmark: {} records ({} people, {} true pairs) in {}",
        rows.len(),
        args.people,
        truth.len(),
        file.display()
    );
    drop(rows);

    let output = dir.path().join("pairs.csv");
    let started = Instant::now();
    // The `unavoce link` command itself, as a user runs it.
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("link")
        .arg(&file)
        .args(["--id-column", "id", "--output"])
        .arg(&output)
        .status()?;
    if !status.success() {
        bail!("unavoce link failed: {status}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut predicted = std::collections::HashSet::new();
    for record in csv::Reader::from_path(&output)?.records() {
        let record = record?;
        if record[2].parse::<f64>()? >= 0.5 {
            let (a, b) = (record[0].to_string(), record[1].to_string());
            predicted.insert(if a <= b { (a, b) } else { (b, a) });
        }
    }
    let truth: std::collections::HashSet<(String, String)> = truth
        .into_iter()
        .map(|(a, b)| if a <= b { (a, b) } else { (b, a) })
        .collect();
    let hits = predicted.intersection(&truth).count() as f64;
    let precision = hits / predicted.len().max(1) as f64;
    let recall = hits / truth.len().max(1) as f64;
    println!();
    println!("| tool | precision | recall | F1 | seconds | peak MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| unavoce link | {precision:.4} | {recall:.4} | {:.4} | {seconds:.1} | {:.0} |",
        2.0 * precision * recall / (precision + recall).max(1e-9),
        children_peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}

/// The peak resident memory of the largest finished child process, in KiB.
fn children_peak_rss_kib() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if result == 0 {
        u64::try_from(usage.ru_maxrss).unwrap_or(0)
    } else {
        0
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Realistic messages, as JSON text: the demo company's traffic, with fresh ids.
fn messages(count: usize) -> Vec<String> {
    let now = Timestamp::now();
    let mut out = Vec::with_capacity(count);
    let mut seed = 1;
    while out.len() < count {
        for mut m in unavoce_demo::generate(2_000, now, seed) {
            if out.len() == count {
                break;
            }
            if m.contains_key("userId") || m.contains_key("anonymousId") {
                m.insert("messageId".into(), format!("bench-{}", out.len()).into());
                out.push(Value::Object(m).to_string());
            }
        }
        seed += 1;
    }
    out
}

fn rows(messages: &[String]) -> anyhow::Result<Vec<EventRow>> {
    let ctx = IntakeContext::new(Timestamp::now(), "default");
    messages
        .iter()
        .map(|m| {
            let m: Map<String, Value> = serde_json::from_str(m)?;
            let event = normalise(m, &ctx, || "missing".to_string())
                .map_err(|r| anyhow::anyhow!("benchmark message invalid: {r}"))?;
            Ok(EventRow::from_event(&event)?)
        })
        .collect()
}

fn bodies(messages: &[String], batch: usize) -> Vec<Bytes> {
    messages
        .chunks(batch.max(1))
        .map(|chunk| Bytes::from(format!("{{\"batch\":[{}]}}", chunk.join(","))))
        .collect()
}

const WRITE_KEY: &str = "bench-write-key-0123456789";

/// What the log's writer did during a run.
#[derive(Default)]
struct WriterLoad {
    commits: std::sync::atomic::AtomicU64,
    rows: std::sync::atomic::AtomicU64,
    busy_micros: std::sync::atomic::AtomicU64,
}

/// A benchmark server: its address, log, identity projection, and the tasks to stop.
type ServerParts = (
    SocketAddr,
    Arc<dyn EventLog>,
    Arc<IdentityProjection>,
    Running,
    tokio::task::JoinHandle<()>,
);

async fn start_server(
    dir: &std::path::Path,
    durability: Durability,
    load: Arc<WriterLoad>,
) -> anyhow::Result<ServerParts> {
    use std::sync::atomic::Ordering::Relaxed;
    let metrics = Metrics::new();
    let observer = metrics.clone();
    let sqlite = Arc::new(SqliteLog::open(
        dir,
        SqliteOptions {
            durability,
            on_commit: Some(Arc::new(move |info| {
                observer.record_commit(info);
                if info.kind == CommitKind::Group {
                    load.commits.fetch_add(1, Relaxed);
                    load.rows.fetch_add(info.rows as u64, Relaxed);
                }
                load.busy_micros
                    .fetch_add(info.duration.as_micros() as u64, Relaxed);
            })),
            ..SqliteOptions::default()
        },
    )?);
    let log: Arc<dyn EventLog> = sqlite.clone();
    let running = Running::start(sqlite, Blueprint::defaults("http://bench")?).await?;
    let identity = running.platform.identity.clone();
    identity.follow()?;
    let state = AppState {
        platform: running.platform.clone(),
        keys: Arc::new(Keys {
            write_keys: vec![WriteKey {
                key: WRITE_KEY.into(),
                source: "default".into(),
            }],
            admin_key: "bench-admin".into(),
            ..Keys::default()
        }),
        metrics,
        sessions: Arc::new(Sessions::for_public_url("http://bench")),
        config: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, unavoce_server::router(state)).await;
    });
    Ok((address, log, identity, running, server))
}

async fn send_all(address: SocketAddr, bodies: Vec<Bytes>, clients: usize) -> anyhow::Result<u64> {
    let clients = clients.max(1);
    let mut shares: Vec<Vec<Bytes>> = vec![Vec::new(); clients];
    for (i, body) in bodies.into_iter().enumerate() {
        shares[i % clients].push(body);
    }
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    );
    let mut tasks = Vec::new();
    for share in shares {
        let auth = auth.clone();
        tasks.push(tokio::spawn(
            async move { client(address, share, auth).await },
        ));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await??;
    }
    Ok(accepted)
}

async fn client(address: SocketAddr, bodies: Vec<Bytes>, auth: String) -> anyhow::Result<u64> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut accepted = 0;
    for body in bodies {
        loop {
            let request = Request::post("/v1/batch")
                .header(header::HOST, address.to_string())
                .header(header::AUTHORIZATION, &auth)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let answer = response.into_body().collect().await?.to_bytes();
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            if status != StatusCode::OK {
                bail!(
                    "batch answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                );
            }
            let answer: Value = serde_json::from_slice(&answer).context("batch answer")?;
            accepted += answer["accepted"].as_u64().unwrap_or(0);
            break;
        }
    }
    Ok(accepted)
}

/// Peak resident memory of this process, in KiB (Linux), or 0 where unknown.
fn peak_rss_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

/// Resident memory of this process now, in KiB (Linux), or 0 where unknown.
fn current_rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

/// CPU time (user + system) this process has used, in seconds (Linux), or 0.
fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// CPU time (user + system) process `pid` (or `self`) has used, in seconds (Linux), or 0.
fn cpu_seconds_of(pid: impl std::fmt::Display) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / 100.0)
        })
        .unwrap_or(0.0)
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
