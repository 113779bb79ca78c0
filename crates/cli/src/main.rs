//! `unavoce`: the command-line entry point.

mod cluster;
mod config;
mod demo;
mod export;
mod governance;
mod import;
mod keys;
pub(crate) mod link;
mod migrate;
mod profile;
mod reload;
mod reports;
mod serve;
mod store;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "unavoce",
    version,
    about = "One view of each customer across every touchpoint; one voice for every department."
)]
struct Cli {
    /// Log format: human-readable text or JSON lines.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "UNAVOCE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// The PostgreSQL store (`postgres://user@host/db`) instead of the data folder's
    /// embedded one; wins over the config file's `[store]`.
    #[arg(long, global = true, env = "UNAVOCE_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
    /// The NATS server(s) through which nodes sharing a PostgreSQL store wake each
    /// other (`nats://host:4222`); wins over the config file's `[cluster] nats_url`.
    #[arg(long, global = true, env = "UNAVOCE_NATS_URL", hide_env_values = true)]
    nats_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (on the embedded store, or on PostgreSQL with --store-url).
    Serve(serve::ServeArgs),
    /// Build a demo company in a fresh data folder and serve it.
    Demo(demo::DemoArgs),
    /// Import a file from an offline touchpoint (CSV or JSON Lines).
    Import(import::ImportArgs),
    /// Probabilistic record linkage of one CSV file (dedupe) or two (link).
    Link(link::LinkArgs),
    /// Show one person's context card, looked up by any identifier (TYPE=VALUE).
    Profile(profile::ProfileArgs),
    /// KPIs per touchpoint or channel over a period.
    Kpis(reports::KpiArgs),
    /// Journeys: the most frequent paths, the funnel, attribution.
    Journeys(reports::JourneyArgs),
    /// The channel census: coverage of needs, usage and quality, gaps, recommendations.
    Census(reports::CensusArgs),
    /// Everything held about one person, as JSON Lines (their right of access).
    Export(export::ExportArgs),
    /// Named API keys with a role: create, list, revoke.
    Keys(governance::KeysArgs),
    /// The audit log: verify its hash chain.
    Audit(governance::AuditArgs),
    /// Move a data folder's embedded store into an empty PostgreSQL database, verified.
    Migrate(migrate::MigrateArgs),
    /// Run a benchmark and print its report.
    Bench(unavoce_bench::BenchArgs),
}

/// jemalloc: resolving identities allocates many small values per event, where the
/// system allocator costs measurably more, and a server runs for months: with mimalloc
/// the heap at rest rose 9–18 MiB per million events while the live heap stayed flat;
/// with jemalloc, whose background threads return freed pages also while the server
/// idles, about 2.4 (the soak in BENCHMARKS.md), and ingestion is no slower.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Where the data folder is unless `--data` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./unavoce-data";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    store::set_url_flag(cli.store_url);
    cluster::set_nats_url_flag(cli.nats_url);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Profile(args) => profile::run(args).await,
            Command::Link(args) => link::run(args),
            Command::Kpis(args) => reports::kpis(args).await,
            Command::Journeys(args) => reports::journeys(args).await,
            Command::Census(args) => reports::census(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Keys(args) => governance::keys(args).await,
            Command::Audit(args) => governance::audit(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Bench(args) => unavoce_bench::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("UNAVOCE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // The PostgreSQL driver logs every statement's parameters at debug level: they
        // hold people's data, which stays out of logs whatever the level asked for.
        .add_directive("tokio_postgres=warn".parse().expect("a constant directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The data folder from `--data`, the config file, or the default.
fn data_dir(flag: Option<PathBuf>, config: &config::Config) -> PathBuf {
    flag.or_else(|| config.server.data.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}
