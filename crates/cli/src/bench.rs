//! `unavoce bench ingest`: end-to-end ingestion through HTTP against the embedded
//! store's own raw bulk-insert rate for the same rows, measured in the same run.

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
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_intake::Intake;
use unavoce_server::{AppState, Keys, Metrics, WriteKey};
use unavoce_store::sqlite::{EventRow, bulk_insert_baseline};
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
}

#[derive(Args)]
struct IngestArgs {
    /// Events to ingest.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Messages per HTTP batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Commit durability for both runs: full (fsync) or normal.
    #[arg(long, default_value = "full")]
    durability: String,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.bench {
        Bench::Ingest(args) => ingest(args).await,
    }
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let durability = match args.durability.as_str() {
        "full" => Durability::Full,
        "normal" => Durability::Normal,
        other => bail!("--durability is {other:?}; expected full or normal"),
    };
    let messages = messages(args.events);
    let bytes: usize = messages
        .iter()
        .map(|m| Value::Object(m.clone()).to_string().len())
        .sum();
    println!(
        "Ingestion benchmark: {} events (mean {} bytes of JSON), batches of {}, {} clients, durability {}",
        messages.len(),
        bytes / messages.len().max(1),
        args.batch,
        args.clients,
        args.durability
    );

    // Baseline: the same rows, normalised beforehand, bulk-inserted by the store itself.
    let rows = rows(&messages)?;
    let raw_dir = tempfile::tempdir()?;
    let started = Instant::now();
    let raw_rows = rows.clone();
    let raw_path = raw_dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        bulk_insert_baseline(&raw_path, &raw_rows, 10_000, durability)
    })
    .await??;
    let raw_secs = started.elapsed().as_secs_f64();
    drop(rows);
    let raw_rss = peak_rss_kib();

    // End to end: a real server on loopback, real HTTP clients, every batch acknowledged.
    let e2e_dir = tempfile::tempdir()?;
    let (address, log) = start_server(e2e_dir.path(), durability).await?;
    let bodies = bodies(&messages, args.batch);
    drop(messages);
    let started = Instant::now();
    let accepted = send_all(address, bodies, args.clients).await?;
    let e2e_secs = started.elapsed().as_secs_f64();
    let stored = log.stats().await?.events;
    log.close().await;
    if accepted != args.events as u64 || stored != args.events as u64 {
        bail!(
            "expected {} events; the server acknowledged {accepted} and stored {stored}",
            args.events
        );
    }
    let peak_rss = peak_rss_kib();

    let raw_rate = args.events as f64 / raw_secs;
    let e2e_rate = args.events as f64 / e2e_secs;
    println!();
    println!("| run | events/s | seconds |");
    println!("|---|---:|---:|");
    println!("| raw bulk insert (baseline) | {raw_rate:.0} | {raw_secs:.2} |");
    println!("| HTTP /v1/batch end to end | {e2e_rate:.0} | {e2e_secs:.2} |");
    println!();
    println!(
        "ratio end-to-end / raw: {:.2} (target ≥ 0.50)",
        e2e_rate / raw_rate
    );
    println!(
        "peak memory (VmHWM): {:.0} MiB after the baseline, {:.0} MiB at the end",
        raw_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    Ok(())
}

/// Realistic messages: the demo company's traffic, with fresh ids.
fn messages(count: usize) -> Vec<Map<String, Value>> {
    let now = Timestamp::now();
    let mut out = Vec::with_capacity(count);
    let mut seed = 1;
    while out.len() < count {
        let chunk = crate::demo::generate(2_000, now, seed);
        out.extend(
            chunk
                .into_iter()
                .filter(|m| m.contains_key("userId") || m.contains_key("anonymousId")),
        );
        seed += 1;
    }
    out.truncate(count);
    for (i, m) in out.iter_mut().enumerate() {
        m.insert("messageId".into(), format!("bench-{i}").into());
    }
    out
}

fn rows(messages: &[Map<String, Value>]) -> anyhow::Result<Vec<EventRow>> {
    let ctx = IntakeContext {
        received_at: Timestamp::now(),
        source: "default",
        endpoint_type: None,
        default_touchpoint: None,
        touchpoint_channels: None,
    };
    messages
        .iter()
        .map(|m| {
            let event = normalise(m.clone(), &ctx, || "missing".to_string())
                .map_err(|r| anyhow::anyhow!("benchmark message invalid: {r}"))?;
            Ok(EventRow::from_event(&event)?)
        })
        .collect()
}

fn bodies(messages: &[Map<String, Value>], batch: usize) -> Vec<Bytes> {
    messages
        .chunks(batch.max(1))
        .map(|chunk| {
            let items: Vec<Value> = chunk.iter().map(|m| Value::Object(m.clone())).collect();
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({ "batch": items })).unwrap_or_default(),
            )
        })
        .collect()
}

const WRITE_KEY: &str = "bench-write-key-0123456789";

async fn start_server(
    dir: &std::path::Path,
    durability: Durability,
) -> anyhow::Result<(SocketAddr, Arc<dyn EventLog>)> {
    let metrics = Metrics::new();
    let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(
        dir,
        SqliteOptions {
            durability,
            ..SqliteOptions::default()
        },
    )?);
    let state = AppState {
        intake: Intake::new(log.clone()),
        keys: Arc::new(Keys {
            write_keys: vec![WriteKey {
                key: WRITE_KEY.into(),
                source: "default".into(),
            }],
            admin_key: "bench-admin".into(),
        }),
        metrics,
        touchpoints: Arc::new(Vec::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, unavoce_server::router(state)).await;
    });
    Ok((address, log))
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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
