//! `unavoce bench decisions`: the policy gate and segment maintenance with many
//! profiles loaded, each against a baseline measured in the same run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use unavoce_core::audience::Audience;
use unavoce_engagement::{Broadcast, Engagement};
use unavoce_intake::{Intake, Item, ItemBody, Submission};
use unavoce_platform::{Blueprint, ReadSide};
use unavoce_projections::{SegmentDefinition, Segments};
use unavoce_store::{EventLog, SqliteLog, SqliteOptions};

use super::{current_rss_kib, journeys_store, median, peak_rss_kib};

#[derive(Args)]
pub(super) struct DecisionBenchArgs {
    /// People to load (their generated journeys: about 7 events each).
    #[arg(long, default_value_t = 1_000_000)]
    people: usize,
    /// Keep the loaded store in this folder, and reuse it when it is already there.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Incoming events for the segment maintenance measure.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Timed runs of each pass; the report gives medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// The segments maintained in the benchmark: the kinds of audience marketing and
/// service define (traits and consent, cases, money, loyalty, recent calls).
fn segments() -> Vec<SegmentDefinition> {
    [
        (
            "rome-promotions",
            "traits.city == 'Roma' && consents.promotional",
        ),
        ("open-problem", "open_cases > 0"),
        ("big-spenders", "computed.lifetime_value > 300"),
        ("loyal", "stage == 'loyal' || computed.orders_90d >= 2"),
        ("recent-callers", "computed.calls_30d > 0"),
    ]
    .into_iter()
    .map(|(name, expression)| SegmentDefinition {
        name: name.into(),
        expression: expression.into(),
        description: None,
    })
    .collect()
}

pub(super) async fn decision_bench(args: DecisionBenchArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    println!(
        "Decision benchmark: {} people's generated journeys",
        args.people
    );
    let (dir, end) = journeys_store(args.data.as_deref(), &temp, args.people).await?;
    let sqlite = Arc::new(SqliteLog::open(&dir, SqliteOptions::default())?);
    let log: Arc<dyn EventLog> = sqlite.clone();
    let before = current_rss_kib();
    let started = Instant::now();
    let ReadSide {
        identity, reports, ..
    } = ReadSide::open(log.clone(), &Blueprint::defaults("http://bench.invalid")?).await?;
    let profiles = identity.read(|g| g.profile_count());
    println!(
        "  {profiles} profiles built from the log in {:.0} s; memory +{:.0} MiB",
        started.elapsed().as_secs_f64(),
        current_rss_kib().saturating_sub(before) as f64 / 1024.0
    );

    // Baseline: every person's facts read once, as any audience evaluation does.
    let everyone = Audience::parse("true")?;
    let engagement = Engagement::new(
        identity.clone(),
        sqlite.clone(),
        unavoce_core::live::Live::new(Arc::new(unavoce_core::policy::Policies::new(
            &Default::default(),
        )?)),
    );
    let broadcast = |dry_run: bool, optimise_send_time: bool| Broadcast {
        message: "spring-offer".into(),
        audience: Audience::parse("true").expect("a valid expression"),
        purpose: "promotional".into(),
        channel: "auto".into(),
        optimise_send_time,
        fallback_after: None,
        dry_run,
        list_limit: 0,
        renders: Vec::new(),
    };
    let (mut baseline, mut dry, mut timed) = (Vec::new(), Vec::new(), Vec::new());
    let mut outcomes = Default::default();
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        let members = reports.audience(&everyone, end).await?;
        baseline.push(started.elapsed().as_secs_f64());
        if members.members.len() != profiles {
            bail!(
                "the baseline read {} of {profiles} people",
                members.members.len()
            );
        }
        let started = Instant::now();
        let report = engagement.broadcast(&broadcast(true, false), end).await?;
        dry.push(started.elapsed().as_secs_f64());
        outcomes = report.outcomes;
        let started = Instant::now();
        engagement.broadcast(&broadcast(true, true), end).await?;
        timed.push(started.elapsed().as_secs_f64());
    }
    let decided: u64 = outcomes.values().sum();
    if decided != profiles as u64 {
        bail!("{decided} decisions for {profiles} people");
    }
    let started = Instant::now();
    engagement.broadcast(&broadcast(false, false), end).await?;
    let recorded = started.elapsed().as_secs_f64();
    let (b, d, t) = (median(&mut baseline), median(&mut dry), median(&mut timed));
    let per_second = |s: f64| profiles as f64 / s;

    // Segments: the first evaluation of everyone, then incoming events.
    let intake = Intake::new(log.clone()).with_observer(identity.clone());
    let segments = Segments::open(identity.clone(), intake.clone(), &segments()).await?;
    let started = Instant::now();
    let entered = segments.update(end).await?;
    let first_pass = started.elapsed().as_secs_f64();
    identity.catch_up().await?;
    segments.update(end).await?;
    let (mut applying, mut maintaining, mut changes) = (0.0, 0.0, 0usize);
    let mut rng = fastrand::Rng::with_seed(5);
    let mut sent = 0;
    while sent < args.events {
        let n = (args.events - sent).min(5_000);
        let items = (0..n)
            .map(|i| Item {
                body: ItemBody::Parsed(incoming(&mut rng, args.people, end, sent + i)),
                origin: Value::Null,
            })
            .collect();
        intake
            .ingest(Submission {
                source: "bench",
                received_at: end,
                endpoint_type: None,
                default_touchpoint: None,
                envelope: None,
                items,
            })
            .await?;
        sent += n;
        let started = Instant::now();
        identity.catch_up().await?;
        applying += started.elapsed().as_secs_f64();
        let started = Instant::now();
        changes += segments.update(end).await?;
        maintaining += started.elapsed().as_secs_f64();
    }
    // Every recorded membership agrees with evaluating the expression afresh.
    identity.catch_up().await?;
    changes += segments.update(end).await?;
    identity.catch_up().await?;
    for segment in segments.list() {
        let fresh = reports
            .audience(&Audience::parse(&segment.definition.expression)?, end)
            .await?;
        if fresh.members.len() != segment.size {
            bail!(
                "segment {} holds {} people, its expression selects {}",
                segment.definition.name,
                segment.size,
                fresh.members.len()
            );
        }
    }
    let sizes: Vec<String> = segments
        .list()
        .iter()
        .map(|s| match &s.last_error {
            Some(e) => format!(
                "{} {} ({} errors: {e})",
                s.definition.name, s.size, s.errors
            ),
            None => format!("{} {}", s.definition.name, s.size),
        })
        .collect();

    println!();
    println!(
        "| {profiles} profiles, median of {} runs | seconds | decisions per second | ratio to baseline |",
        args.runs.max(1)
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| baseline: every person's facts read (audience `true`) | {b:.2} | {:.0} | 1.00 |",
        per_second(b)
    );
    println!(
        "| broadcast dry run: audience, channel auto, gate | {d:.2} | {:.0} | {:.2} |",
        per_second(d),
        d / b
    );
    println!(
        "| the same with send-time optimisation | {t:.2} | {:.0} | {:.2} |",
        per_second(t),
        t / b
    );
    println!(
        "| recorded broadcast (decisions and outbox written) | {recorded:.2} | {:.0} | {:.2} |",
        per_second(recorded),
        recorded / b
    );
    println!("outcomes: {outcomes:?}");
    println!();
    println!(
        "| segment maintenance, 5 segments | seconds | per event | ratio to applying the events |"
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| applying {} incoming events to identity and profiles (baseline) | {applying:.2} | {:.1} µs | 1.00 |",
        args.events,
        applying * 1e6 / args.events as f64
    );
    println!(
        "| evaluating the changed profiles and recording {changes} membership changes | {maintaining:.2} | {:.1} µs | {:.2} |",
        maintaining * 1e6 / args.events as f64,
        maintaining / applying
    );
    println!(
        "first evaluation of everyone: {first_pass:.1} s, {entered} entries recorded; sizes now: {}",
        sizes.join(", ")
    );
    println!(
        "peak memory (RSS) {:.0} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    log.close().await;
    Ok(())
}

/// One incoming event for a random existing person: a move, an order, a case opened or
/// resolved, a call, a page view.
fn incoming(
    rng: &mut fastrand::Rng,
    people: usize,
    end: Timestamp,
    n: usize,
) -> Map<String, Value> {
    let user = format!("user-{:05}", rng.usize(..people));
    let at = end - SignedDuration::from_mins(rng.i64(1..60 * 24 * 7));
    let city = ["Roma", "Milano", "Napoli"][rng.usize(..3)];
    let message = match rng.u8(..6) {
        0 => json!({"type": "identify", "userId": user, "traits": {"city": city}}),
        1 => json!({"type": "track", "userId": user, "event": "Order Completed",
            "properties": {"revenue": rng.u32(10..500)}, "context": {"channel": "web"}}),
        2 => json!({"type": "track", "userId": user, "event": "Case Opened",
            "properties": {"case_id": format!("BENCH-{n}")}, "context": {"channel": "phone"}}),
        3 => json!({"type": "track", "userId": user, "event": "Call Received",
            "context": {"channel": "phone"}}),
        _ => json!({"type": "page", "userId": user, "name": "Offers",
            "context": {"channel": "web"}}),
    };
    let mut message = match message {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    message.insert("timestamp".into(), at.to_string().into());
    message.insert("messageId".into(), format!("bench-{n}").into());
    message
}
