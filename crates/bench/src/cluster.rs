//! `unavoce bench cluster`: ingestion through 1, 2 and 3 `unavoce serve` nodes sharing one
//! PostgreSQL store and one NATS server, against PostgreSQL's own bulk insert (binary
//! `COPY`) of the same rows into the same table; with how long the projections trail the
//! last acknowledgement, each node's peak memory, and what an event takes in PostgreSQL.
//!
//! PostgreSQL: a server where databases may be created, `UNAVOCE_TEST_POSTGRES_URL` or
//! `postgres://postgres@127.0.0.1:5432/postgres` (a fresh database per run, dropped after
//! it). NATS: `UNAVOCE_NATS_URL` or `nats://127.0.0.1:4222`. The nodes are this very
//! binary (`std::env::current_exe()`) run as `serve`, so build it with `--release`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio_postgres::NoTls;
use unavoce_store::{EventLog, EventRow};
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_store_postgres::{PgOptions, PgStore};

use super::{WRITE_KEY, median};

#[derive(Args)]
pub struct ClusterBenchArgs {
    /// Events to ingest in each run.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Messages per HTTP batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent HTTP clients, each sending its batches one after another to one node;
    /// the clients are spread round-robin over the nodes.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Cluster sizes to run, in nodes (one fresh database each).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    nodes: Vec<usize>,
    /// Rows per transaction of the raw baseline.
    #[arg(long, default_value_t = 10_000)]
    raw_rows_per_transaction: usize,
    /// Rounds of every run; the report gives medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const ADMIN_KEY: &str = "bench-admin-key-0123456789";
const NATS_URL: &str = "nats://127.0.0.1:4222";
/// How long a node may take to answer after it starts, and its projections to catch up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);

/// Each round: the raw baseline, then every cluster size end to end; medians reported.
pub async fn cluster_bench(args: ClusterBenchArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.nodes.is_empty() || args.nodes.contains(&0) {
        bail!("--events and every --nodes size must be at least 1");
    }
    let nats_url = std::env::var("UNAVOCE_NATS_URL").unwrap_or_else(|_| NATS_URL.into());
    check_nats(&nats_url).await?;
    let exe = std::env::current_exe().context("cannot find this binary to run as nodes")?;
    let messages = super::messages(args.events);
    let rows = super::rows(&messages)?;
    let bodies = super::bodies(&messages, args.batch);
    let bytes: usize = messages.iter().map(String::len).sum();
    drop(messages);
    println!(
        "Cluster benchmark: {} events (mean {} bytes of JSON), batches of {}, {} clients round-robin over the nodes, nodes {:?}, {} rounds, {} cores",
        rows.len(),
        bytes / rows.len(),
        args.batch,
        args.clients,
        args.nodes,
        args.rounds.max(1),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let mut raw_rates = Vec::new();
    let mut raw_bytes = Vec::new();
    let mut runs: BTreeMap<usize, Vec<Run>> = BTreeMap::new();
    for round in 1..=args.rounds.max(1) {
        let raw = raw_copy(&rows, args.raw_rows_per_transaction).await?;
        println!(
            "round {round}: raw COPY {:.0} events/s ({} rows per transaction); {:.0} bytes per event in PostgreSQL",
            raw.rate, args.raw_rows_per_transaction, raw.bytes_per_event
        );
        raw_rates.push(raw.rate);
        raw_bytes.push(raw.bytes_per_event);
        for &nodes in &args.nodes {
            let run = end_to_end(
                &exe,
                &nats_url,
                nodes,
                &bodies,
                args.clients,
                rows.len() as u64,
            )
            .await
            .with_context(|| format!("round {round}, {nodes} nodes"))?;
            println!(
                "round {round}, {nodes} node(s): {:.0} events/s acknowledged ({:.2} of raw); every node caught up {:.1} s after the last ack; peak RSS {} MiB (resident {} MiB, before any event {} MiB); {:.0} bytes per profile ({} profiles), {:.0} bytes per event in PostgreSQL",
                run.rate,
                run.rate / raw.rate,
                run.lag,
                mib_list(&run.peaks_mib),
                mib_list(&run.resident_mib),
                mib_list(&run.idle_mib),
                run.bytes_per_profile,
                run.profiles,
                run.bytes_per_event,
            );
            println!("    {}", run.load);
            runs.entry(nodes).or_default().push(run);
        }
    }

    let raw = median(&mut raw_rates);
    println!();
    println!(
        "| median of {} rounds | events/s | ratio to raw | projections caught up after the last ack (s) | peak RSS per node (MiB) | resident per node once caught up (MiB) | bytes per profile (peak less idle) |",
        args.rounds.max(1)
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!("| PostgreSQL binary COPY (baseline) | {raw:.0} | 1.00 | — | — | — | — |");
    let mut stored_bytes = Vec::new();
    for (nodes, runs) in &runs {
        let pick = |f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let rate = pick(|r| r.rate);
        stored_bytes.push(pick(|r| r.bytes_per_event));
        println!(
            "| {nodes} node{} end to end, acknowledged | {rate:.0} | {:.2} | {:.1} | {:.0} | {:.0} | {:.0} |",
            if *nodes == 1 { "" } else { "s" },
            rate / raw,
            pick(|r| r.lag),
            pick(|r| r.peaks_mib.iter().copied().fold(0.0, f64::max)),
            pick(|r| r.resident_mib.iter().copied().fold(0.0, f64::max)),
            pick(|r| r.bytes_per_profile),
        );
    }
    let profiles = runs
        .values()
        .flatten()
        .map(|r| r.profiles)
        .max()
        .unwrap_or(0);
    println!();
    println!(
        "{profiles} profiles ({:.1} events each), held by every node",
        rows.len() as f64 / profiles.max(1) as f64
    );
    println!(
        "PostgreSQL: {:.0} bytes per event (events table, its indexes and TOAST) after end-to-end ingestion, {:.0} after the baseline's COPY",
        median(&mut stored_bytes),
        median(&mut raw_bytes)
    );
    Ok(())
}

/// `[1.0, 2.0]` as `1 / 2`.
fn mib_list(values: &[f64]) -> String {
    let texts: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
    texts.join(" / ")
}

/// What the baseline measured.
struct Raw {
    rate: f64,
    bytes_per_event: f64,
}

/// PostgreSQL's own bulk insert of the same rows: binary `COPY` into Unavoce's `events`
/// table of a fresh database, from one connection, `per_transaction` rows per
/// transaction, each taking its positions as the appender does (the log's head row
/// locked, then moved past them).
async fn raw_copy(rows: &[EventRow], per_transaction: usize) -> anyhow::Result<Raw> {
    let database = TestDatabase::create().await.map_err(anyhow::Error::msg)?;
    let store = PgStore::open(&database.url, PgOptions::default())
        .await
        .context("cannot create Unavoce's schema in PostgreSQL")?;
    store.close().await;
    drop(store);
    let started = Instant::now();
    unavoce_store_postgres::bulk_insert_baseline(&database.url, rows, per_transaction)
        .await
        .context("the baseline's COPY failed")?;
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    let (client, connection) = tokio_postgres::connect(&database.url, NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let bytes_per_event = stored_bytes_per_event(&client, rows.len() as u64).await?;
    drop(client);
    let _ = connection.await;
    Ok(Raw {
        rate,
        bytes_per_event,
    })
}

/// The `events` table's size with its indexes and TOAST over its rows, after checking
/// that it holds `expected` events.
async fn stored_bytes_per_event(
    client: &tokio_postgres::Client,
    expected: u64,
) -> anyhow::Result<f64> {
    let row = client
        .query_one(
            "SELECT pg_total_relation_size('events'), count(*) FROM events",
            &[],
        )
        .await?;
    let (size, count): (i64, i64) = (row.get(0), row.get(1));
    if count as u64 != expected {
        bail!("PostgreSQL holds {count} events, not {expected}");
    }
    Ok(size as f64 / count.max(1) as f64)
}

/// What one end-to-end run measured.
struct Run {
    /// Acknowledged events per second, from the first batch sent to the last answered.
    rate: f64,
    /// Seconds from the last acknowledgement until every node's `/api/stats` showed
    /// every event: a stats request brings the node's identity projection up to the log.
    lag: f64,
    /// Each node's peak resident memory (VmHWM) once caught up, in MiB.
    peaks_mib: Vec<f64>,
    /// Each node's resident memory (VmRSS) once caught up, in MiB.
    resident_mib: Vec<f64>,
    /// Each node's resident memory before any event, in MiB.
    idle_mib: Vec<f64>,
    /// A node's peak less its resident memory before any event, per profile (the
    /// largest over the nodes).
    bytes_per_profile: f64,
    profiles: u64,
    bytes_per_event: f64,
    /// Where the time went, as a line of text.
    load: String,
}

/// One fresh database, `nodes` nodes on it, every body sent once round-robin, then the
/// catch-up waited for and the nodes and database measured.
async fn end_to_end(
    exe: &Path,
    nats_url: &str,
    nodes: usize,
    bodies: &[Bytes],
    clients: usize,
    events: u64,
) -> anyhow::Result<Run> {
    let cluster = Cluster::start(exe, nats_url, nodes).await?;
    let addresses: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.address).collect();
    let (pg_client, pg_connection) = tokio_postgres::connect(&cluster.database.url, NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let pg_connection = tokio::spawn(pg_connection);
    let pg_client = Arc::new(pg_client);
    let stop = Arc::new(AtomicBool::new(false));
    let lock_waits = tokio::spawn(sample_lock_waits(pg_client.clone(), stop.clone()));

    let cpu_before = cluster.cpu();
    let started = Instant::now();
    let accepted = send_round_robin(&addresses, bodies.to_vec(), clients).await?;
    let wall = started.elapsed().as_secs_f64();
    let acked_at = Instant::now();
    let cpu_after = cluster.cpu();
    stop.store(true, Ordering::Relaxed);
    let (samples, waiting) = lock_waits.await??;
    if accepted != events {
        bail!("the nodes acknowledged {accepted} events, not {events}");
    }

    // Every node at once: how long until its projections hold every event.
    let waits: Vec<_> = addresses
        .iter()
        .map(|&address| tokio::spawn(wait_for_events(address, events, acked_at)))
        .collect();
    let mut lag: f64 = 0.0;
    let mut profiles = 0;
    for wait in waits {
        let (seconds, held) = wait.await??;
        lag = lag.max(seconds);
        profiles = held;
    }
    let mut peaks_mib = Vec::new();
    let mut resident_mib = Vec::new();
    let mut idle_mib = Vec::new();
    let mut bytes_per_profile: f64 = 0.0;
    let mut commits = Vec::new();
    for node in &cluster.nodes {
        let peak = status_kib(node.pid(), "VmHWM:");
        peaks_mib.push(peak as f64 / 1024.0);
        resident_mib.push(status_kib(node.pid(), "VmRSS:") as f64 / 1024.0);
        idle_mib.push(node.idle_rss_kib as f64 / 1024.0);
        bytes_per_profile = bytes_per_profile
            .max(peak.saturating_sub(node.idle_rss_kib) as f64 * 1024.0 / profiles.max(1) as f64);
        commits.push(commit_stats(node.address, wall).await?);
    }
    let bytes_per_event = stored_bytes_per_event(&pg_client, events).await?;
    drop(pg_client);
    let _ = pg_connection.await;

    let cores = |before: f64, after: f64| (after - before) / wall;
    let load = format!(
        "while ingesting: nodes {:.2} cores, PostgreSQL {:.2}, the benchmark's clients {:.2}; appenders waiting for the log's head lock {:.2} on average (of {nodes}); group commits {}",
        cores(cpu_before.nodes, cpu_after.nodes),
        cores(cpu_before.postgres, cpu_after.postgres),
        cores(cpu_before.bench, cpu_after.bench),
        waiting as f64 / samples.max(1) as f64,
        commits.join("; "),
    );
    Ok(Run {
        rate: events as f64 / wall,
        lag,
        peaks_mib,
        resident_mib,
        idle_mib,
        bytes_per_profile,
        profiles,
        bytes_per_event,
        load,
    })
}

/// A fresh database and the nodes serving it; the nodes are killed (first) and the
/// database dropped when this is dropped.
struct Cluster {
    nodes: Vec<Node>,
    database: TestDatabase,
    /// The nodes' data folders, logs and config file.
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(exe: &Path, nats_url: &str, nodes: usize) -> anyhow::Result<Cluster> {
        let database = TestDatabase::create().await.map_err(anyhow::Error::msg)?;
        let dir = tempfile::tempdir()?;
        // A cluster name of its own: other clusters on the same NATS server (tests, other
        // runs) must not wake these nodes.
        let config = dir.path().join("unavoce.toml");
        let database_name = database.url.rsplit('/').next().unwrap_or_default();
        let unique = &database_name[database_name.len().saturating_sub(12)..];
        std::fs::write(
            &config,
            format!(
                "[cluster]\nname = \"bench-{}-{unique}\"\n",
                std::process::id()
            ),
        )?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            database,
            dir,
        };
        for n in 0..nodes {
            let node = Node::start(
                exe,
                &format!("bench-{}", (b'a' + n as u8) as char),
                cluster.dir.path(),
                &config,
                &cluster.database.url,
                nats_url,
            )
            .await?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// CPU seconds used so far by the nodes, PostgreSQL's processes and this one.
    fn cpu(&self) -> CpuSeconds {
        CpuSeconds {
            nodes: self
                .nodes
                .iter()
                .map(|n| super::cpu_seconds_of(n.pid()))
                .sum(),
            postgres: postgres_cpu_seconds(),
            bench: super::cpu_seconds(),
        }
    }
}

struct CpuSeconds {
    nodes: f64,
    postgres: f64,
    bench: f64,
}

/// One `unavoce serve` process; killed when dropped.
struct Node {
    address: SocketAddr,
    child: Child,
    /// Resident memory once it answered, before any event (KiB).
    idle_rss_kib: u64,
}

impl Node {
    /// Starts `exe serve` as node `name` and waits until it answers `/healthz`.
    async fn start(
        exe: &Path,
        name: &str,
        root: &Path,
        config: &Path,
        store_url: &str,
        nats_url: &str,
    ) -> anyhow::Result<Node> {
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log_path = root.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(exe)
            .args(["serve", "--listen", &address.to_string(), "--data"])
            .arg(root.join(name))
            .arg("--config")
            .arg(config)
            .args(["--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY])
            .args(["--node", name])
            .env("UNAVOCE_STORE_URL", store_url)
            .env("UNAVOCE_NATS_URL", nats_url)
            .env("UNAVOCE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let mut node = Node {
            address,
            child,
            idle_rss_kib: 0,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(exit) = node.child.try_wait()? {
                bail!(
                    "node {name} stopped at once ({exit}): {}",
                    log_tail(&log_path)
                );
            }
            if get(address, "/healthz")
                .await
                .is_ok_and(|(status, _)| status == StatusCode::OK)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "node {name} did not answer within {START_TIMEOUT:?}: {}",
                    log_tail(&log_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node.idle_rss_kib = status_kib(node.pid(), "VmRSS:");
        Ok(node)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines a node logged.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Fails clearly unless a NATS server answers at `url` (the first of a list).
async fn check_nats(url: &str) -> anyhow::Result<()> {
    let first = url.split(',').next().unwrap_or_default().trim();
    let host = first
        .split_once("://")
        .map_or(first, |(_, rest)| rest)
        .rsplit('@')
        .next()
        .unwrap_or_default();
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:4222")
    };
    let unreachable = |why: String| {
        anyhow::anyhow!(
            "NATS is not reachable at {host} ({why}): start nats-server, or set UNAVOCE_NATS_URL"
        )
    };
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&host),
    )
    .await
    .map_err(|_| unreachable("no answer within 5 s".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    let mut greeting = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::BufReader::new(stream).read_line(&mut greeting),
    )
    .await
    .map_err(|_| unreachable("no greeting within 5 s".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    if !greeting.starts_with("INFO") {
        return Err(unreachable("what answers is not a NATS server".into()));
    }
    Ok(())
}

/// Sends every body once: batch `i` by client `i % clients`, client `k` to node
/// `k % nodes`, over keep-alive connections. The events acknowledged.
async fn send_round_robin(
    addresses: &[SocketAddr],
    bodies: Vec<Bytes>,
    clients: usize,
) -> anyhow::Result<u64> {
    let clients = clients.max(1);
    let mut shares: Vec<Vec<Bytes>> = vec![Vec::new(); clients];
    for (i, body) in bodies.into_iter().enumerate() {
        shares[i % clients].push(body);
    }
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    );
    let tasks: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(k, share)| {
            tokio::spawn(super::client(
                addresses[k % addresses.len()],
                share,
                auth.clone(),
            ))
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await??;
    }
    Ok(accepted)
}

/// Polls the node's `/api/stats` until it shows `events` events; the seconds since
/// `since`, and the profiles it then holds.
async fn wait_for_events(
    address: SocketAddr,
    events: u64,
    since: Instant,
) -> anyhow::Result<(f64, u64)> {
    loop {
        let (status, body) = get(address, "/api/stats").await?;
        if status != StatusCode::OK {
            bail!("/api/stats on {address} answered {status}");
        }
        let stats: Value = serde_json::from_slice(&body).context("/api/stats answer")?;
        if stats["events"].as_u64().is_some_and(|held| held >= events) {
            let profiles = stats["profiles"].as_u64().unwrap_or(0);
            return Ok((since.elapsed().as_secs_f64(), profiles));
        }
        if since.elapsed() > CATCH_UP_TIMEOUT {
            bail!(
                "the node at {address} shows {} events {CATCH_UP_TIMEOUT:?} after the last ack, not {events}",
                stats["events"]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node's group commits from its `/metrics`: how many, their mean size, and the
/// share of the ingestion's `wall` seconds its appender spent committing.
async fn commit_stats(address: SocketAddr, wall: f64) -> anyhow::Result<String> {
    let (_, body) = get(address, "/metrics").await?;
    let text = String::from_utf8_lossy(&body);
    let metric = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let commits = metric("unavoce_event_log_commit_rows_count");
    Ok(format!(
        "{commits:.0} of {:.0} rows, busy {:.0}%",
        metric("unavoce_event_log_commit_rows_sum") / commits.max(1.0),
        metric("unavoce_event_log_commit_duration_seconds_sum") * 100.0 / wall
    ))
}

/// Samples, every 100 ms until `stop`, how many of the database's sessions wait for a
/// lock (under ingestion: appenders waiting for the log's head row). The samples taken
/// and the waiting sessions summed over them.
async fn sample_lock_waits(
    client: Arc<tokio_postgres::Client>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(u64, u64)> {
    let (mut samples, mut waiting) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await?;
        samples += 1;
        waiting += row.get::<_, i64>(0) as u64;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((samples, waiting))
}

/// GET `path` with the admin key, on a connection of its own: status and body.
async fn get(address: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, address.to_string())
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// A field of `/proc/<pid>/status` in KiB (Linux), or 0 where unknown.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds used by the live processes of a PostgreSQL server on this machine
/// (those named `postgres`), or 0 when it runs elsewhere.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim_end() == "postgres")
        })
        .map(super::cpu_seconds_of)
        .sum()
}
