//! `unavoce import FILE --source NAME [--format csv|jsonl] [--mapping FILE]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::tz::TimeZone;
use unavoce_core::import::{CompiledMapping, Mapping};
use unavoce_intake::{FileFormat, ImportOptions, ImportReport, Intake};
use unavoce_store::{EventLog, SqliteOptions};

use crate::config;

#[derive(Args)]
pub struct ImportArgs {
    /// The file to import.
    file: PathBuf,
    /// The touchpoint or system the file comes from (e.g. store-rome-01); rows that name
    /// no touchpoint are recorded at it.
    #[arg(long)]
    source: String,
    /// File format [default: from the file's extension].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Mapping from columns to message fields (TOML); see docs/import.md.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Configuration file [default: ./unavoce.toml if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder [default: ./unavoce-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also write the full report (every rejected row) as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
}

/// Rejected rows printed on the terminal; the rest are in the report and quarantine.
const ERRORS_SHOWN: usize = 20;

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    let data = crate::data_dir(args.data, &config);
    let format = match args.format {
        Some(Format::Csv) => FileFormat::Csv,
        Some(Format::Jsonl) => FileFormat::Jsonl,
        None => format_from_extension(&args.file)?,
    };
    let mapping = match &args.mapping {
        Some(path) => load_mapping(path)?,
        None => CompiledMapping::new(Mapping::default(), TimeZone::UTC)?,
    };
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);

    let opened = crate::store::open(
        &config,
        &data,
        SqliteOptions {
            durability: config.ingest.durability()?,
            ..SqliteOptions::default()
        },
        None,
    )
    .await?;
    opened.checked().await?;
    let store = opened.store;
    // Erased people stay erased: their identifiers are refused here as by the server.
    let rules = config.blueprint(String::new())?.identity;
    let suppressions = unavoce_platform::erasure::suppressions(store.as_ref(), &rules).await?;
    let log: Arc<dyn EventLog> = store;
    let intake = Intake::new(log.clone()).with_suppressions(suppressions);
    let options = ImportOptions {
        source: args.source.trim().to_string(),
        format,
        mapping,
        rows_per_append: 2_000,
        file_name: args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if options.source.is_empty() {
        bail!("--source must name the touchpoint or system the file comes from");
    }

    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let report = intake
        .import(std::io::BufReader::new(file), &options, |p| {
            bar.set_position(p.bytes);
            bar.set_message(format!("{} rows", p.rows));
        })
        .await;
    bar.finish_and_clear();
    log.close().await;
    let report = report?;
    print_report(&args.file, &report, started.elapsed());
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        println!("Full report: {}", path.display());
    }
    Ok(())
}

fn print_report(file: &Path, report: &ImportReport, elapsed: std::time::Duration) {
    println!(
        "Imported {}: {} rows in {:.1}s — {} stored, {} already present, {} rejected",
        file.display(),
        report.rows,
        elapsed.as_secs_f64(),
        report.accepted,
        report.duplicates,
        report.errors.len()
    );
    for error in report.errors.iter().take(ERRORS_SHOWN) {
        let kept = error
            .quarantine_id
            .map_or_else(|| "not kept".to_string(), |id| format!("quarantine #{id}"));
        println!(
            "  line {}: {} — {} ({kept})",
            error.line,
            error.code.as_str(),
            error.message,
        );
    }
    if report.errors.len() > ERRORS_SHOWN {
        println!(
            "  … and {} more; see --report FILE or GET /api/quarantine",
            report.errors.len() - ERRORS_SHOWN
        );
    }
    if !report.errors.is_empty() {
        println!(
            "Rejected rows are kept in the quarantine: fix and replay them with POST /api/quarantine/{{id}}/replay."
        );
    }
}

fn format_from_extension(file: &Path) -> anyhow::Result<FileFormat> {
    match file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("csv") | Some("tsv") | Some("txt") => Ok(FileFormat::Csv),
        Some("jsonl") | Some("ndjson") | Some("json") => Ok(FileFormat::Jsonl),
        _ => bail!(
            "cannot tell the format of {} from its extension; pass --format csv or --format jsonl",
            file.display()
        ),
    }
}

fn load_mapping(path: &Path) -> anyhow::Result<CompiledMapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the mapping {}", path.display()))?;
    let mapping: Mapping = toml::from_str(&text)
        .with_context(|| format!("invalid mapping file {}", path.display()))?;
    let timezone = match &mapping.timezone {
        Some(name) => TimeZone::get(name)
            .with_context(|| format!("unknown time zone {name:?} in {}", path.display()))?,
        None => TimeZone::UTC,
    };
    CompiledMapping::new(mapping, timezone)
        .with_context(|| format!("invalid mapping file {}", path.display()))
}
