//! `unavoce bench soak`: a real `unavoce serve` (this binary, `std::env::current_exe()`,
//! so build it with `--release`) under SDK-shaped traffic for a long time — at 70 % of
//! the capacity a short ramp measures first, in the same run — while a journey, periodic
//! broadcasts (push notifications to a local webhook sink) and readers (profile search,
//! context card, KPIs) run. It reports the server's memory over time (sampled every few
//! seconds: resident, and of it the anonymous part — what the node holds itself, as
//! opposed to file pages the kernel can drop), `/v1/batch` latencies, and, from the store once the server has
//! stopped, that every acknowledged `messageId` is stored exactly once and no refused one
//! at all. With `--overload`: steady load, then 200 % of capacity, then steady again —
//! the answers (503 with `Retry-After`), memory, and how soon the server recovers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use unavoce_store::{EventLog, EventQuery, SqliteLog, SqliteOptions};
use unavoce_synthetic::sdk_message;

use super::{WRITE_KEY, cpu_seconds, cpu_seconds_of};

#[derive(Args)]
pub(super) struct SoakBenchArgs {
    /// How long the soak runs at `--load` of the measured capacity, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// The soak's length in seconds instead (a quick run).
    #[arg(long)]
    seconds: Option<f64>,
    /// The share of the measured capacity the soak offers.
    #[arg(long, default_value_t = 0.7)]
    load: f64,
    /// Seconds of filling the store at full speed (16 clients) before the ramp, so the
    /// capacity is measured on a store that holds millions of events, as it does for
    /// most of the soak: an empty store's is higher, and falls as its indexes outgrow
    /// the page cache (BENCHMARKS.md).
    #[arg(long, default_value_t = 120.0)]
    fill_seconds: f64,
    /// Seconds of each of the ramp's three steps (4, 16 and 64 clients, each sending
    /// its batches one after another); the best step's acknowledged rate is the capacity.
    #[arg(long, default_value_t = 10.0)]
    ramp_step_seconds: f64,
    /// Overload instead of the soak: `--steady-seconds` at `--load`, then
    /// `--overload-seconds` at `--overload-load`, then `--recovery-seconds` at `--load`.
    #[arg(long)]
    overload: bool,
    #[arg(long, default_value_t = 30.0)]
    steady_seconds: f64,
    #[arg(long, default_value_t = 60.0)]
    overload_seconds: f64,
    #[arg(long, default_value_t = 2.0)]
    overload_load: f64,
    #[arg(long, default_value_t = 60.0)]
    recovery_seconds: f64,
    /// People the traffic comes from (a returning customer base; a third use the app).
    #[arg(long, default_value_t = 20_000)]
    people: usize,
    /// Messages per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Requests the clients keep in flight at most; a batch due while that many are
    /// unanswered is not sent (counted as held back by the clients).
    #[arg(long, default_value_t = 2_048)]
    max_in_flight: usize,
    /// The server's write queue (`ingest.queue_capacity`).
    #[arg(long, default_value_t = 512)]
    queue_capacity: usize,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 2.0)]
    sample_seconds: f64,
    /// Seconds between broadcasts during the run.
    #[arg(long, default_value_t = 120.0)]
    broadcast_every: f64,
    /// Minutes of soak between two measures of the heap at rest (the traffic, the
    /// readers and the broadcasts pause for each), so its course over the run shows
    /// whether it levels off.
    #[arg(long, default_value_t = 5.0)]
    rest_every: f64,
    /// The data folder (kept); a temporary one otherwise.
    #[arg(long)]
    data: Option<PathBuf>,
}

const ADMIN_KEY: &str = "soak-admin-key-0123456789";
/// Different batch contents the traffic cycles through (fresh ids and times each time).
const TEMPLATES: usize = 1_024;
const JOURNEY_WAIT_SECONDS: u32 = 20;

pub(super) async fn soak_bench(args: SoakBenchArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.people == 0 || args.load.is_nan() || args.load <= 0.0 {
        bail!("--batch, --people and --load must be positive");
    }
    let exe = std::env::current_exe().context("cannot find this binary to run as the server")?;
    let temporary = tempfile::tempdir()?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| temporary.path().join("data"));
    std::fs::create_dir_all(&data)?;
    let pushes = Arc::new(AtomicU64::new(0));
    let sink = webhook_sink(pushes.clone()).await?;
    let config = temporary.path().join("unavoce.toml");
    std::fs::write(&config, config_text(sink, args.queue_capacity))?;
    // Kept beside a data folder that is kept.
    let log_path = match &args.data {
        Some(data) => data.with_extension("serve.log"),
        None => temporary.path().join("serve.log"),
    };
    let mut server = Server::start(&exe, &data, &config, &log_path).await?;
    let run = Arc::new(Run::new(server.address, &args));
    println!(
        "Soak benchmark: {} people, SDK-shaped batches of {} (identify / track / page / screen with context, a quarter gzipped), queue capacity {}, {} cores; server pid {}, data {}",
        args.people,
        args.batch,
        args.queue_capacity,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        server.pid(),
        data.display()
    );
    let sampler = tokio::spawn(sample_memory(
        run.clone(),
        server.pid(),
        Duration::from_secs_f64(args.sample_seconds.max(0.1)),
    ));

    if args.fill_seconds > 0.0 {
        let rate = run
            .closed_loop(16, Duration::from_secs_f64(args.fill_seconds))
            .await;
        println!(
            "fill: {rate:.0} events/s acknowledged for {:.0} s, {} events stored",
            args.fill_seconds,
            run.acknowledged_events.load(Ordering::Relaxed)
        );
    }
    let mut rests = vec![("after the fill", run.at_rest(server.pid()).await)];
    // Capacity: the acknowledged rate the server sustains, closed loop.
    let mut capacity = 0.0f64;
    for clients in [4, 16, 64] {
        let rate = run
            .closed_loop(clients, Duration::from_secs_f64(args.ramp_step_seconds))
            .await;
        println!("ramp: {clients} clients, {rate:.0} events/s acknowledged");
        capacity = capacity.max(rate);
    }
    if capacity <= 0.0 {
        bail!(
            "nothing was acknowledged during the ramp: {}",
            log_tail(&log_path)
        );
    }
    if let Some(rejection) = run.first_rejection.lock().ok().and_then(|r| r.clone()) {
        bail!(
            "the server quarantined {} of the traffic's messages, e.g. {rejection}",
            run.rejected.load(Ordering::Relaxed)
        );
    }
    println!("capacity: {capacity:.0} events/s acknowledged");

    // The rest of the platform at work while the traffic runs.
    let background_stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|seed| tokio::spawn(read_loop(run.clone(), background_stop.clone(), seed)))
        .collect();
    let broadcaster = tokio::spawn(broadcast_loop(
        run.clone(),
        background_stop.clone(),
        Duration::from_secs_f64(args.broadcast_every.max(1.0)),
    ));

    let steady = capacity * args.load;
    let phases: Vec<(&str, f64, f64)> = if args.overload {
        vec![
            ("steady", steady, args.steady_seconds),
            (
                "overload",
                capacity * args.overload_load,
                args.overload_seconds,
            ),
            ("recovery", steady, args.recovery_seconds),
        ]
    } else {
        let seconds = args.seconds.unwrap_or(args.minutes * 60.0);
        vec![("soak", steady, seconds)]
    };
    let mut spans = Vec::new();
    for (name, rate, seconds) in &phases {
        println!(
            "{name}: {rate:.0} events/s offered ({:.0} % of capacity) for {seconds:.0} s",
            rate / capacity * 100.0
        );
        let from = run.elapsed();
        if args.overload {
            run.open_loop(*rate, Duration::from_secs_f64(*seconds), args.max_in_flight)
                .await;
        } else {
            // In stretches of `--rest-every`, the heap at rest measured after each.
            let stretch = (args.rest_every * 60.0).max(1.0);
            let mut left = *seconds;
            while left > 0.0 {
                let length = left.min(stretch);
                run.open_loop(*rate, Duration::from_secs_f64(length), args.max_in_flight)
                    .await;
                left -= length;
                if left > 0.0 {
                    run.paused.store(true, Ordering::SeqCst);
                    let rest = run.at_rest(server.pid()).await;
                    println!(
                        "at rest after {} events: heap {:.0} MiB",
                        rest.acknowledged,
                        mib(rest.heap_kib)
                    );
                    rests.push(("during the soak", rest));
                    run.paused.store(false, Ordering::SeqCst);
                }
            }
        }
        spans.push(Span {
            name,
            offered: *rate,
            from,
            to: run.elapsed(),
        });
    }
    run.drain().await;
    // The capacity again, with everything the run stored.
    let end_capacity = run
        .closed_loop(16, Duration::from_secs_f64(args.ramp_step_seconds))
        .await;
    run.drain().await;
    background_stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await?;
    }
    let broadcasts = broadcaster.await?;
    rests.push(("at the end", run.at_rest(server.pid()).await));
    run.sampling.store(false, Ordering::Relaxed);
    let rss = sampler.await?;

    // What the platform did meanwhile, once the outbox has caught up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = u64::MAX;
    while Instant::now() < deadline && pushes.load(Ordering::Relaxed) != last {
        last = pushes.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let stats = run.get_json("/api/stats").await.unwrap_or(Value::Null);
    let journey = run
        .get_json("/api/journeys/trial")
        .await
        .unwrap_or(Value::Null);
    let outbox = run
        .get_json("/api/outbox/summary")
        .await
        .unwrap_or(Value::Null);
    let server_cpu = cpu_seconds_of(server.pid());
    let peak_kib = status_kib(server.pid(), "VmHWM:");
    let exit = server.stop()?;

    report_latencies(&run, &spans, capacity);
    println!(
        "capacity at the start {capacity:.0} events/s acknowledged; at the end, 16 clients, {end_capacity:.0} ({:.2} of the start)",
        end_capacity / capacity
    );
    if let Some(error) = run.first_unanswered.lock().ok().and_then(|e| e.clone()) {
        println!("first request left unanswered: {error}");
    }
    report_series(&run, &rss);
    report_memory(&rss, &spans, "resident", |p| p.rss_kib);
    report_memory(&rss, &spans, "anonymous", |p| p.anon_kib);
    report_memory(&rss, &spans, "anonymous less SQLite's caches", heap_kib);
    report_floor(&rss, &spans);
    report_rest(&rests);
    println!(
        "(resident = anonymous + file pages; the interaction table ({} bytes per event) and the identity graph's event links ({}) are in mapped files, so they count as file pages; SQLite caches up to 256 MiB for the writer and 32 MiB per reader, anonymous)",
        std::mem::size_of::<unavoce_core::analytics::Interaction>(),
        std::mem::size_of::<unavoce_core::identity::EventLink>(),
    );
    report_log(&log_path);
    report_readers(&run);
    println!();
    println!(
        "platform meanwhile: {} broadcasts ({}), journey `trial`: {}, push notifications received by the sink: {}",
        broadcasts.len(),
        broadcasts.join("; "),
        short(&journey, &["entered", "active", "completed", "exited"]),
        pushes.load(Ordering::Relaxed)
    );
    println!(
        "outbox at the end: {}",
        outbox.get("counts").unwrap_or(&Value::Null)
    );
    println!(
        "server: {}, peak resident {} MiB, CPU {:.0} s ({:.2} cores over the run); this benchmark's own CPU {:.0} s; stopped with SIGTERM: {exit}",
        short(&stats, &["events", "profiles", "duplicates", "quarantined"]),
        peak_kib / 1024,
        server_cpu,
        server_cpu / run.elapsed().as_secs_f64(),
        cpu_seconds(),
    );

    // Exactly once, from the store itself.
    if !data.join("events.db").exists() {
        bail!(
            "{} has no events.db any more: something outside this benchmark removed the data folder during the run",
            data.display()
        );
    }
    let started = Instant::now();
    let store = SqliteLog::open(&data, SqliteOptions::default())
        .with_context(|| format!("cannot open the store at {}", data.display()))?;
    let opened = started.elapsed().as_secs_f64();
    let db_bytes = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    let check = run.check_stored(&store).await?;
    store.close().await;
    println!(
        "store: {:.2} GB, opened again in {opened:.1} s (its integrity check included); read back in {:.1} s",
        db_bytes as f64 / 1e9,
        started.elapsed().as_secs_f64() - opened,
    );
    println!(
        "acknowledged {} events in {} batches; stored {} of them; lost {}, duplicated {}; refused batches {} (events of refused batches stored: {}); unanswered batches {} (of their events stored: {})",
        check.acknowledged,
        check.acknowledged_batches,
        check.stored_acknowledged,
        check.lost,
        check.duplicated,
        check.refused_batches,
        check.stored_refused,
        check.unanswered_batches,
        check.stored_unanswered,
    );
    let quarantined = run.rejected.load(Ordering::Relaxed);
    if quarantined > 0 {
        println!("messages of accepted batches quarantined (counted as lost above): {quarantined}");
    }
    if check.lost > 0 || check.duplicated > 0 || check.stored_refused > 0 {
        bail!("the store does not hold exactly the acknowledged events");
    }
    Ok(())
}

/// The configuration the server runs with: a journey and broadcasts sending push
/// notifications (signed webhooks) to the local sink, no caps or quiet hours for
/// service messages.
fn config_text(sink: u16, queue_capacity: usize) -> String {
    format!(
        r#"
[ingest]
queue_capacity = {queue_capacity}

[policies]
caps = []
quiet_hours = {{ from = "21:00", to = "08:00", purposes = ["promotional"] }}

[delivery.push]
url = "http://127.0.0.1:{sink}/push"
secret = {{ value = "soak-webhook-secret" }}
pace = {{ per_second = 200, concurrency = 4 }}

[[messages]]
id = "welcome"
push = {{ title = "Welcome, {{{{ first_name }}}}", body = "Your trial has started" }}

[[messages]]
id = "welcome-2"
push = {{ title = "How is it going?", body = "Tap to see what is new" }}

[[messages]]
id = "news"
push = {{ title = "News for {{{{ first_name }}}}", body = "Faster fibre this month" }}

[[journeys]]
name = "trial"
trigger = {{ event = "Trial Started" }}
steps = [
  {{ type = "send", message = "welcome", purpose = "service", channel = "auto" }},
  {{ type = "wait", duration = "{JOURNEY_WAIT_SECONDS}s" }},
  {{ type = "send", message = "welcome-2", purpose = "service", channel = "auto" }},
]
"#
    )
}

/// A local webhook sink: answers 200 to every post and counts them.
async fn webhook_sink(received: Arc<AtomicU64>) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().fallback(move || {
        let received = received.clone();
        async move {
            received.fetch_add(1, Ordering::Relaxed);
            "{}"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// The `unavoce serve` under test; killed when dropped.
struct Server {
    address: SocketAddr,
    child: Child,
}

impl Server {
    async fn start(exe: &Path, data: &Path, config: &Path, log: &Path) -> anyhow::Result<Self> {
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(exe)
            .args(["serve", "--listen", &address.to_string(), "--data"])
            .arg(data)
            .arg("--config")
            .arg(config)
            .args(["--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY])
            .env("UNAVOCE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let mut server = Server { address, child };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(exit) = server.child.try_wait()? {
                bail!("the server stopped at once ({exit}): {}", log_tail(log));
            }
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("the server did not answer in time: {}", log_tail(log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and how it exited.
    fn stop(&mut self) -> anyhow::Result<String> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        Ok(self.child.wait()?.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines a log holds.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
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

/// Some fields of an object, as `name value, ...`.
fn short(value: &Value, fields: &[&str]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{f} {}", value.get(*f).unwrap_or(&Value::Null)))
        .collect();
    parts.join(", ")
}

/// A part of a batch template: text as is, or where a generated value goes.
enum Part {
    Text(String),
    /// The next message's `messageId`.
    Id,
    /// The time the batch is sent (`timestamp`, `sentAt`).
    Now,
}

/// A batch as an SDK sends it, with its ids and times left out.
struct Template(Vec<Part>);

const ID_MARK: &str = "\"@@id@@\"";
const NOW_MARK: &str = "\"@@now@@\"";

impl Template {
    fn new(body: &Value) -> Self {
        let text = body.to_string();
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        loop {
            let next = [(ID_MARK, Part::Id), (NOW_MARK, Part::Now)]
                .into_iter()
                .filter_map(|(mark, part)| rest.find(mark).map(|at| (at, mark.len(), part)))
                .min_by_key(|(at, _, _)| *at);
            let Some((at, len, part)) = next else {
                parts.push(Part::Text(rest.to_string()));
                return Template(parts);
            };
            parts.push(Part::Text(rest[..at].to_string()));
            parts.push(part);
            rest = &rest[at + len..];
        }
    }

    /// The body of batch `number`: message `i` gets id [`message_id`]`(nonce, number, i)`.
    fn render(&self, nonce: u32, number: u64, now: &str) -> Vec<u8> {
        let mut out = String::with_capacity(32 * 1024);
        let mut i = 0;
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Id => {
                    out.push('"');
                    out.push_str(&message_id(nonce, number, i));
                    out.push('"');
                    i += 1;
                }
                Part::Now => {
                    out.push('"');
                    out.push_str(now);
                    out.push('"');
                }
            }
        }
        out.into_bytes()
    }
}

/// A UUID-shaped `messageId` (as the SDKs make) that says which batch and message it is.
fn message_id(nonce: u32, batch: u64, i: u32) -> String {
    format!("{nonce:08x}-0000-4000-8000-{batch:08x}{i:04x}")
}

/// The batch and message of an id [`message_id`] made with `nonce`.
fn parse_message_id(nonce: u32, id: &str) -> Option<(u64, u32)> {
    let rest = id.strip_prefix(&format!("{nonce:08x}-0000-4000-8000-"))?;
    if rest.len() != 12 {
        return None;
    }
    Some((
        u64::from_str_radix(&rest[..8], 16).ok()?,
        u32::from_str_radix(&rest[8..], 16).ok()?,
    ))
}

/// One SDK message with the placeholders a [`Template`] fills: its id and its time.
fn message(rng: &mut fastrand::Rng, people: usize) -> Value {
    let mut m = sdk_message(rng, people);
    m["messageId"] = "@@id@@".into();
    m["timestamp"] = "@@now@@".into();
    m
}

fn templates(people: usize, batch: usize) -> Vec<Template> {
    (0..TEMPLATES)
        .map(|t| {
            let mut rng = fastrand::Rng::with_seed(t as u64);
            let messages: Vec<Value> = (0..batch).map(|_| message(&mut rng, people)).collect();
            Template::new(&json!({"batch": messages, "sentAt": "@@now@@"}))
        })
        .collect()
}

/// What became of a batch.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Unsent,
    Acknowledged,
    /// Answered 503 (or another refusal): nothing of it may be stored.
    Refused,
    /// No answer (connection failed): may or may not be stored.
    Unanswered,
}

/// One `/v1/batch` request.
#[derive(Clone, Copy)]
struct Sample {
    /// When it was answered, in milliseconds since the run started.
    at_ms: u32,
    latency_us: u32,
    status: u16,
    retry_after: bool,
}

/// One read.
struct Read {
    endpoint: &'static str,
    latency_us: u32,
    /// Why it failed.
    error: Option<String>,
}

/// A phase of the run.
struct Span {
    name: &'static str,
    offered: f64,
    from: Duration,
    to: Duration,
}

/// A run's traffic and what it observed.
struct Run {
    address: SocketAddr,
    auth: String,
    started: Instant,
    nonce: u32,
    batch: usize,
    people: usize,
    templates: Vec<Template>,
    next_batch: AtomicU64,
    fates: Mutex<Vec<Fate>>,
    samples: Mutex<Vec<Sample>>,
    reads: Mutex<Vec<Read>>,
    acknowledged_events: AtomicU64,
    in_flight: AtomicUsize,
    /// Set while the heap at rest is measured: the readers and the broadcasts wait.
    paused: AtomicBool,
    /// Reads and broadcasts unanswered.
    background_in_flight: AtomicUsize,
    held_back: AtomicU64,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    sampling: AtomicBool,
    /// Messages of accepted batches quarantined, and the first one's rejection.
    rejected: AtomicU64,
    first_rejection: Mutex<Option<String>>,
    /// Why the first request that got no answer got none.
    first_unanswered: Mutex<Option<String>>,
}

impl Run {
    fn new(address: SocketAddr, args: &SoakBenchArgs) -> Self {
        Run {
            address,
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
            ),
            started: Instant::now(),
            nonce: fastrand::u32(..),
            batch: args.batch,
            people: args.people,
            templates: templates(args.people, args.batch),
            next_batch: AtomicU64::new(0),
            fates: Mutex::new(Vec::new()),
            samples: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
            acknowledged_events: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            background_in_flight: AtomicUsize::new(0),
            held_back: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
            sampling: AtomicBool::new(true),
            rejected: AtomicU64::new(0),
            first_rejection: Mutex::new(None),
            first_unanswered: Mutex::new(None),
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A connection to the server: an idle one, or a new one.
    async fn connection(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some(mut sender) = idle else { break };
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let stream = tokio::net::TcpStream::connect(self.address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends a request: status, whether it had `Retry-After`, and the body.
    async fn request(
        &self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, bool, Bytes)> {
        let mut sender = self.connection().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let retry_after = response.headers().contains_key(header::RETRY_AFTER);
        let body = response.into_body().collect().await?.to_bytes();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(sender);
        }
        Ok((status, retry_after, body))
    }

    /// The server's `unavoce_sqlite_memory_bytes` gauge, in KiB (0 when unreadable).
    async fn sqlite_kib(&self) -> u64 {
        let Ok(request) = Request::get("/metrics")
            .header(header::HOST, self.address.to_string())
            .body(Full::new(Bytes::new()))
        else {
            return 0;
        };
        let Ok((StatusCode::OK, _, body)) = self.request(request).await else {
            return 0;
        };
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix("unavoce_sqlite_memory_bytes "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |bytes| bytes / 1024)
    }

    /// Waits until nothing is in flight (batches, reads, broadcasts) and the projections
    /// have applied every event acknowledged (a report catches them up first), then the
    /// lowest of [`REST_SAMPLES`] samples of the heap, one a second.
    async fn at_rest(&self, pid: u32) -> Rest {
        self.drain().await;
        while self.background_in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.get_json("/api/kpis/touchpoints").await;
        let mut heap_kib = u64::MAX;
        for _ in 0..REST_SAMPLES {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let anon = status_kib(pid, "RssAnon:");
            heap_kib = heap_kib.min(anon.saturating_sub(self.sqlite_kib().await));
        }
        Rest {
            at: self.elapsed().as_secs_f64(),
            acknowledged: self.acknowledged_events.load(Ordering::Relaxed),
            heap_kib,
        }
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let request = Request::get(path)
            .header(header::HOST, self.address.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
            .body(Full::new(Bytes::new()))?;
        let (status, _, body) = self.request(request).await?;
        if status != StatusCode::OK {
            bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        let request = Request::post(path)
            .header(header::HOST, self.address.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let (status, _, body) = self.request(request).await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// Sends the next batch once and records what became of it.
    async fn send_batch(&self) {
        let number = self.next_batch.fetch_add(1, Ordering::Relaxed);
        let template = &self.templates[(number % TEMPLATES as u64) as usize];
        let now = jiff::Timestamp::now().to_string();
        let body = template.render(self.nonce, number, &now);
        // A quarter of the batches gzipped, as SDKs configured to compress send them.
        let gzip = number.is_multiple_of(4);
        let body = if gzip { gzipped(&body) } else { body };
        let mut request = Request::post("/v1/batch")
            .header(header::HOST, self.address.to_string())
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "analytics-node/2.1.0");
        if gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        let Ok(request) = request.body(Full::new(Bytes::from(body))) else {
            return;
        };
        let sent = Instant::now();
        let answer = self.request(request).await;
        let latency_us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        let (fate, status, retry_after) = match answer {
            Ok((StatusCode::OK, retry_after, answer)) => {
                self.acknowledged_events
                    .fetch_add(self.batch as u64, Ordering::Relaxed);
                self.note_rejections(&answer);
                (Fate::Acknowledged, 200, retry_after)
            }
            Ok((status, retry_after, _)) => (Fate::Refused, status.as_u16(), retry_after),
            Err(e) => {
                if let Ok(mut first) = self.first_unanswered.lock() {
                    first.get_or_insert_with(|| format!("{e:#}"));
                }
                (Fate::Unanswered, 0, false)
            }
        };
        let at_ms = u32::try_from(self.elapsed().as_millis()).unwrap_or(u32::MAX);
        if let Ok(mut fates) = self.fates.lock() {
            let n = number as usize;
            if fates.len() <= n {
                fates.resize(n + 1, Fate::Unsent);
            }
            fates[n] = fate;
        }
        if let Ok(mut samples) = self.samples.lock() {
            samples.push(Sample {
                at_ms,
                latency_us,
                status,
                retry_after,
            });
        }
    }

    /// Counts the messages of an accepted batch that were quarantined instead (none
    /// should be: they would be missing from the store).
    fn note_rejections(&self, answer: &[u8]) {
        let answer: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
        if let Some(rejected) = answer["rejected"].as_array().filter(|r| !r.is_empty()) {
            self.rejected
                .fetch_add(rejected.len() as u64, Ordering::Relaxed);
            if let Ok(mut first) = self.first_rejection.lock() {
                first.get_or_insert_with(|| rejected[0].to_string());
            }
        }
    }

    /// `clients` clients each sending batches one after another for `length`; the
    /// acknowledged rate.
    async fn closed_loop(self: &Arc<Self>, clients: usize, length: Duration) -> f64 {
        let before = self.acknowledged_events.load(Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + length;
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let run = self.clone();
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        run.send_batch().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        let acknowledged = self.acknowledged_events.load(Ordering::Relaxed) - before;
        acknowledged as f64 / started.elapsed().as_secs_f64()
    }

    /// Batches offered at `rate` events per second for `length`, whatever the answers
    /// (open loop: many senders, as many SDK instances are), at most `max_in_flight`
    /// unanswered at once.
    async fn open_loop(self: &Arc<Self>, rate: f64, length: Duration, max_in_flight: usize) {
        let every = Duration::from_secs_f64(self.batch as f64 / rate.max(1.0));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let deadline = Instant::now() + length;
        while Instant::now() < deadline {
            ticks.tick().await;
            if self.in_flight.load(Ordering::Relaxed) >= max_in_flight {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let run = self.clone();
            tokio::spawn(async move {
                run.send_batch().await;
                run.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Waits until every request sent has been answered.
    async fn drain(&self) {
        while self.in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every event in the store: which batch and message it is, and how often.
    async fn check_stored(&self, store: &SqliteLog) -> anyhow::Result<Check> {
        let fates = self.fates.lock().map_or_else(|_| Vec::new(), |f| f.clone());
        let mut counts = vec![0u8; fates.len() * self.batch];
        let mut after = None;
        loop {
            let page = store
                .events(EventQuery {
                    after_seq: after,
                    limit: 10_000,
                    ..EventQuery::default()
                })
                .await?;
            for stored in &page.events {
                let Some((batch, i)) = parse_message_id(self.nonce, &stored.event.message_id)
                else {
                    continue; // the platform's own events
                };
                let at = batch as usize * self.batch + i as usize;
                match counts.get_mut(at) {
                    Some(count) => *count = count.saturating_add(1),
                    None => bail!("stored event {} was never sent", stored.event.message_id),
                }
            }
            match page.next_cursor {
                Some(cursor) if !page.events.is_empty() => after = Some(cursor),
                _ => break,
            }
        }
        let mut check = Check::default();
        for (n, fate) in fates.iter().enumerate() {
            let events = &counts[n * self.batch..(n + 1) * self.batch];
            let stored = events.iter().filter(|&&c| c > 0).count() as u64;
            check.duplicated += events.iter().filter(|&&c| c > 1).count() as u64;
            match fate {
                Fate::Acknowledged => {
                    check.acknowledged_batches += 1;
                    check.acknowledged += self.batch as u64;
                    check.stored_acknowledged += stored;
                    check.lost += self.batch as u64 - stored;
                }
                Fate::Refused => {
                    check.refused_batches += 1;
                    check.stored_refused += stored;
                }
                Fate::Unanswered => {
                    check.unanswered_batches += 1;
                    check.stored_unanswered += stored;
                }
                Fate::Unsent => {}
            }
        }
        Ok(check)
    }
}

#[derive(Default)]
struct Check {
    acknowledged: u64,
    acknowledged_batches: u64,
    stored_acknowledged: u64,
    lost: u64,
    duplicated: u64,
    refused_batches: u64,
    stored_refused: u64,
    unanswered_batches: u64,
    stored_unanswered: u64,
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Samples taken at rest, one a second.
const REST_SAMPLES: usize = 10;

/// The node's heap at rest (see [`Run::at_rest`]).
#[derive(Clone, Copy)]
struct Rest {
    /// Seconds since the run started.
    at: f64,
    acknowledged: u64,
    heap_kib: u64,
}

/// One sample of the server process.
#[derive(Clone, Copy)]
struct Probe {
    /// Seconds since the run started.
    at: f64,
    rss_kib: u64,
    /// Of which anonymous memory (heap, stacks, SQLite's caches): what the node holds
    /// itself; the rest is file pages (the binary, the projections' mapped row files),
    /// which the kernel can write back and drop.
    anon_kib: u64,
    /// Of the anonymous memory, SQLite's (its page caches: the writer's and each
    /// reader's, bounded by their sizes).
    sqlite_kib: u64,
    /// Events acknowledged so far.
    acknowledged: u64,
    /// The server's CPU seconds so far.
    cpu: f64,
    /// The machine's one-minute load average (other processes share the cores).
    load: f64,
}

async fn sample_memory(run: Arc<Run>, pid: u32, every: Duration) -> Vec<Probe> {
    let mut samples = Vec::new();
    while run.sampling.load(Ordering::Relaxed) {
        samples.push(Probe {
            at: run.elapsed().as_secs_f64(),
            rss_kib: status_kib(pid, "VmRSS:"),
            anon_kib: status_kib(pid, "RssAnon:"),
            sqlite_kib: run.sqlite_kib().await,
            acknowledged: run.acknowledged_events.load(Ordering::Relaxed),
            cpu: cpu_seconds_of(pid),
            load: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
                .unwrap_or(f64::NAN),
        });
        tokio::time::sleep(every).await;
    }
    samples
}

/// Profile search, the context card of the person found, and now and then the KPIs,
/// as an agent's and an analyst's screens ask for them.
async fn read_loop(run: Arc<Run>, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(_busy) = Busy::start(&run).await else {
            continue;
        };
        round += 1;
        let user = format!("user-{:06}", rng.usize(..run.people));
        let search = format!("/api/profiles/search?q={user}&limit=5");
        let found = timed(&run, "profile search", &search).await;
        if let Some(id) = found
            .as_ref()
            .and_then(|f| f["profiles"].get(0)?["id"].as_str().map(str::to_string))
        {
            let card = format!("/api/profiles/{id}/context");
            timed(&run, "context card", &card).await;
        }
        if round.is_multiple_of(10) {
            timed(&run, "KPIs by touchpoint", "/api/kpis/touchpoints").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A read or a broadcast under way, counted in [`Run::background_in_flight`].
struct Busy<'a>(&'a Run);

impl<'a> Busy<'a> {
    /// Counts one more under way, unless a rest point is being measured: then waits a
    /// little and answers `None`, for the caller to look again.
    async fn start(run: &'a Run) -> Option<Busy<'a>> {
        run.background_in_flight.fetch_add(1, Ordering::SeqCst);
        if run.paused.load(Ordering::SeqCst) {
            run.background_in_flight.fetch_sub(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            return None;
        }
        Some(Busy(run))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.background_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// GETs `path`, recording how long it took as a read of `endpoint`.
async fn timed(run: &Run, endpoint: &'static str, path: &str) -> Option<Value> {
    let started = Instant::now();
    let result = run.get_json(path).await;
    let latency_us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    if let Ok(mut reads) = run.reads.lock() {
        reads.push(Read {
            endpoint,
            latency_us,
            error: result.as_ref().err().map(ToString::to_string),
        });
    }
    result.ok()
}

/// A push broadcast to a third of the people (those on the fibre plan) at each turn;
/// what each decided.
async fn broadcast_loop(run: Arc<Run>, stop: Arc<AtomicBool>, every: Duration) -> Vec<String> {
    let mut done = Vec::new();
    let mut next = Instant::now() + every / 2;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let Some(_busy) = Busy::start(&run).await else {
            continue;
        };
        next += every;
        let body = json!({"message": "news", "audience": "traits.plan == 'fibra'",
            "purpose": "service", "channel": "push"});
        let started = Instant::now();
        let answer = run.post_json("/api/broadcasts", &body).await;
        let seconds = started.elapsed().as_secs_f64();
        done.push(match answer {
            Ok((status, report)) if status.is_success() => format!(
                "audience {}, sends {} in {seconds:.1} s",
                report["audience"], report["outcomes"]["send"]
            ),
            Ok((status, report)) => format!("{status}: {report}"),
            Err(e) => format!("failed: {e}"),
        });
    }
    done
}

/// The `p`th percentile (0..=100) of sorted values.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    f64::from(sorted[at.min(sorted.len() - 1)])
}

fn report_latencies(run: &Run, spans: &[Span], capacity: f64) {
    let samples = run
        .samples
        .lock()
        .map_or_else(|_| Vec::new(), |s| s.clone());
    println!();
    println!(
        "| phase | seconds | offered events/s | acknowledged events/s | ratio to capacity | batches 200 | 503 (with Retry-After) | other answers | no answer | /v1/batch p50 ms | p99 ms | max ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for span in spans {
        let (from, to) = (span.from.as_millis() as u32, span.to.as_millis() as u32);
        let within: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at_ms >= from && s.at_ms < to)
            .collect();
        let seconds = (span.to - span.from).as_secs_f64();
        let ok = within.iter().filter(|s| s.status == 200).count();
        let unavailable = within.iter().filter(|s| s.status == 503).count();
        let with_retry = within
            .iter()
            .filter(|s| s.status == 503 && s.retry_after)
            .count();
        let unanswered = within.iter().filter(|s| s.status == 0).count();
        let other = within.len() - ok - unavailable - unanswered;
        let mut latencies: Vec<u32> = within
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| s.latency_us)
            .collect();
        latencies.sort_unstable();
        let acknowledged = (ok * run.batch) as f64 / seconds;
        println!(
            "| {} | {seconds:.0} | {:.0} | {acknowledged:.0} | {:.2} | {ok} | {unavailable} ({with_retry}) | {other} | {unanswered} | {:.1} | {:.1} | {:.1} |",
            span.name,
            span.offered,
            acknowledged / capacity,
            percentile(&latencies, 50.0) / 1e3,
            percentile(&latencies, 99.0) / 1e3,
            latencies.last().map_or(f64::NAN, |&l| f64::from(l) / 1e3),
        );
    }
    println!(
        "batches held back by the clients (more than --max-in-flight unanswered): {}",
        run.held_back.load(Ordering::Relaxed)
    );
    // After an overload: how soon the refusals stopped.
    if let [.., overload, recovery] = spans
        && overload.name == "overload"
    {
        let end = overload.to.as_millis() as u32;
        let last_refusal = samples
            .iter()
            .filter(|s| s.status != 200 && s.at_ms >= end)
            .map(|s| s.at_ms)
            .max();
        match last_refusal {
            Some(at) => println!(
                "recovery: the last refusal came {:.1} s after the overload ended",
                f64::from(at - end) / 1e3
            ),
            None => println!("recovery: no refusal after the overload ended"),
        }
        let (from, to) = (
            recovery.from.as_millis() as u32,
            recovery.to.as_millis() as u32,
        );
        let mut per_second: Vec<String> = Vec::new();
        for second in 0..((to - from) / 1_000).min(15) {
            let (a, b) = (from + second * 1_000, from + (second + 1) * 1_000);
            let window: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.at_ms >= a && s.at_ms < b)
                .collect();
            let ok = window.iter().filter(|s| s.status == 200).count();
            per_second.push(format!(
                "{}/{}",
                ok * run.batch,
                (window.len() - ok) * run.batch
            ));
        }
        println!(
            "recovery, second by second (events acknowledged/refused): {}",
            per_second.join(" ")
        );
    }
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let covariance: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    covariance / variance
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The node's own heap in a sample: anonymous memory less SQLite's caches.
fn heap_kib(p: &Probe) -> u64 {
    p.anon_kib.saturating_sub(p.sqlite_kib)
}

/// What the node holds at rest (nothing in flight, every event applied) at each rest
/// point of the run: what its state grows by with the events stored, without what the
/// traffic holds while it passes through. The first point comes before the journey, the
/// broadcasts and the readers have run, so the change to the second includes what they
/// keep; the later changes show whether the heap levels off.
fn report_rest(rests: &[(&str, Rest)]) {
    println!();
    println!(
        "Heap at rest (anonymous less SQLite, lowest of {REST_SAMPLES} samples once nothing is in flight and the projections have caught up):"
    );
    println!();
    println!(
        "| rest point | at s | events acknowledged | heap MiB | change since the point before |"
    );
    println!("|---|---:|---:|---:|---|");
    let mut before: Option<Rest> = None;
    for (name, rest) in rests {
        let change = before.map_or(String::new(), |b| {
            let events = rest.acknowledged.saturating_sub(b.acknowledged) as f64 / 1e6;
            let grew = mib(rest.heap_kib) - mib(b.heap_kib);
            format!(
                "{grew:+.1} MiB over {events:.2} M events ({:+.1} MiB per million)",
                grew / events.max(1e-9)
            )
        });
        println!(
            "| {name} | {:.0} | {} | {:.0} | {change} |",
            rest.at,
            rest.acknowledged,
            mib(rest.heap_kib)
        );
        before = Some(*rest);
    }
}

/// The heap's floor: its lowest sample in each minute of a phase (between the reports'
/// working memory, which is freed after each, and in-flight batches), and the slope of
/// those floors.
fn report_floor(probes: &[Probe], spans: &[Span]) {
    println!();
    println!(
        "| phase | lowest heap (anonymous less SQLite) MiB in each minute | slope of those MiB per million events acknowledged |"
    );
    println!("|---|---|---:|");
    for span in spans {
        let (from, to) = (span.from.as_secs_f64(), span.to.as_secs_f64());
        let mut floors: Vec<(f64, f64)> = Vec::new();
        let mut minute = from;
        while minute < to {
            let lowest = probes
                .iter()
                .filter(|s| s.at >= minute && s.at < (minute + 60.0).min(to))
                .min_by_key(|s| heap_kib(s));
            if let Some(lowest) = lowest {
                floors.push((lowest.acknowledged as f64 / 1e6, mib(heap_kib(lowest))));
            }
            minute += 60.0;
        }
        if floors.len() < 3 {
            continue;
        }
        let listed: Vec<String> = floors.iter().map(|(_, m)| format!("{m:.0}")).collect();
        println!(
            "| {} | {} | {:.1} |",
            span.name,
            listed.join(", "),
            slope(&floors)
        );
    }
}

/// Memory over each phase, as `kib` reads it from a sample (`what` names it).
fn report_memory(probes: &[Probe], spans: &[Span], what: &str, kib: impl Fn(&Probe) -> u64) {
    let mib = |p: &Probe| mib(kib(p));
    println!();
    println!(
        "| phase | samples | {what} MiB: first quarter avg | last quarter avg | min | max | slope MiB/min | slope MiB per million events acknowledged | the same over the phase's second half |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for span in spans {
        let within: Vec<&Probe> = probes
            .iter()
            .filter(|s| s.at >= span.from.as_secs_f64() && s.at < span.to.as_secs_f64())
            .collect();
        if within.len() < 4 {
            continue;
        }
        let quarter = within.len() / 4;
        let average =
            |part: &[&Probe]| part.iter().map(|s| mib(s)).sum::<f64>() / part.len() as f64;
        let per_minute = slope(
            &within
                .iter()
                .map(|s| (s.at / 60.0, mib(s)))
                .collect::<Vec<_>>(),
        );
        let per_million = |part: &[&Probe]| {
            slope(
                &part
                    .iter()
                    .map(|s| (s.acknowledged as f64 / 1e6, mib(s)))
                    .collect::<Vec<_>>(),
            )
        };
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {per_minute:.1} | {:.1} | {:.1} |",
            span.name,
            within.len(),
            average(&within[..quarter]),
            average(&within[within.len() - quarter..]),
            within.iter().map(|s| mib(s)).fold(f64::MAX, f64::min),
            within.iter().map(|s| mib(s)).fold(0.0, f64::max),
            per_million(&within),
            per_million(&within[within.len() / 2..]),
        );
    }
}

/// The run in slices (about a minute, or a tenth of a short run): acknowledged and
/// refused rates, `/v1/batch` p99, the server's CPU, the machine's load and memory.
fn report_series(run: &Run, probes: &[Probe]) {
    let samples = run
        .samples
        .lock()
        .map_or_else(|_| Vec::new(), |s| s.clone());
    let (Some(first), Some(last)) = (probes.first(), probes.last()) else {
        return;
    };
    let length = last.at - first.at;
    let slice = if length > 600.0 {
        60.0
    } else {
        (length / 10.0).max(1.0)
    };
    println!();
    println!(
        "| from s | to s | acknowledged events/s | refused events/s | /v1/batch p99 ms | server cores | load average | resident MiB | anonymous MiB | of which SQLite MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut from = first.at;
    while from < last.at - 1.0 {
        let to = (from + slice).min(last.at);
        let in_slice: Vec<&Probe> = probes
            .iter()
            .filter(|p| p.at >= from && p.at <= to)
            .collect();
        let (Some(a), Some(b)) = (in_slice.first(), in_slice.last()) else {
            break;
        };
        let (a_ms, b_ms) = ((a.at * 1e3) as u32, (b.at * 1e3) as u32);
        let within: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at_ms >= a_ms && s.at_ms < b_ms)
            .collect();
        let seconds = (b.at - a.at).max(1e-3);
        let ok = within.iter().filter(|s| s.status == 200).count();
        let mut latencies: Vec<u32> = within
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| s.latency_us)
            .collect();
        latencies.sort_unstable();
        println!(
            "| {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.0} | {:.0} | {:.0} |",
            a.at,
            b.at,
            (ok * run.batch) as f64 / seconds,
            ((within.len() - ok) * run.batch) as f64 / seconds,
            percentile(&latencies, 99.0) / 1e3,
            (b.cpu - a.cpu) / seconds,
            in_slice.iter().map(|p| p.load).sum::<f64>() / in_slice.len() as f64,
            mib(b.rss_kib),
            mib(b.anon_kib),
            mib(b.sqlite_kib),
        );
        from = to;
    }
}

/// What the server logged at warn and error level, the most frequent messages first.
fn report_log(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in text.lines() {
        let Some(level) = ["ERROR", "WARN"]
            .into_iter()
            .find(|l| line.contains(&format!(" {l} ")))
        else {
            continue;
        };
        // `time LEVEL target: message fields`: the target and message, without fields.
        let rest = line
            .split_once(&format!(" {level} "))
            .map_or(line, |(_, r)| r);
        let message = rest.split(" error=").next().unwrap_or(rest);
        let message = message.split(" method=").next().unwrap_or(message);
        *counts.entry(format!("{level} {message}")).or_default() += 1;
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    println!();
    println!(
        "server log, warnings and errors: {}",
        if counts.is_empty() { "none" } else { "" }
    );
    for (message, count) in counts.iter().take(8) {
        println!("  {count} × {message}");
    }
}

fn report_readers(run: &Run) {
    let reads = run.reads.lock().map_or_else(
        |_| Vec::new(),
        |r| {
            r.iter()
                .map(|r| (r.endpoint, r.latency_us, r.error.is_none()))
                .collect::<Vec<_>>()
        },
    );
    println!();
    println!("| read during the run | requests | failed | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for endpoint in ["profile search", "context card", "KPIs by touchpoint"] {
        let mut latencies: Vec<u32> = reads
            .iter()
            .filter(|r| r.0 == endpoint)
            .map(|r| r.1)
            .collect();
        let failed = reads.iter().filter(|r| r.0 == endpoint && !r.2).count();
        latencies.sort_unstable();
        println!(
            "| {endpoint} | {} | {failed} | {:.1} | {:.1} |",
            latencies.len(),
            percentile(&latencies, 50.0) / 1e3,
            percentile(&latencies, 99.0) / 1e3
        );
    }
    if let Ok(reads) = run.reads.lock() {
        for endpoint in ["profile search", "context card", "KPIs by touchpoint"] {
            if let Some(error) = reads
                .iter()
                .filter(|r| r.endpoint == endpoint)
                .find_map(|r| r.error.as_deref())
            {
                println!("first failure of the {endpoint}: {error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_renders_ids_that_say_their_batch_and_message() {
        let mut rng = fastrand::Rng::with_seed(7);
        let messages: Vec<Value> = (0..3).map(|_| message(&mut rng, 50)).collect();
        let template = Template::new(&json!({"batch": messages, "sentAt": "@@now@@"}));
        let body = template.render(0xabc, 42, "2026-01-01T00:00:00Z");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["sentAt"], "2026-01-01T00:00:00Z");
        for (i, m) in body["batch"].as_array().unwrap().iter().enumerate() {
            let id = m["messageId"].as_str().unwrap();
            assert_eq!(parse_message_id(0xabc, id), Some((42, i as u32)));
            assert_eq!(m["timestamp"], "2026-01-01T00:00:00Z");
            assert!(m["anonymousId"].is_string() && m["context"]["library"].is_object());
        }
        assert_eq!(parse_message_id(0xabd, &message_id(0xabc, 1, 1)), None);
    }
}
