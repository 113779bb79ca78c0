//! `unavoce link FILE [FILE2] --id-column COL --output PAIRS.csv [--settings FILE]`:
//! probabilistic record linkage of one file (dedupe) or two (link).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use unavoce_core::linkage::{Settings, Table, link_observed};

#[derive(Args)]
pub(crate) struct LinkArgs {
    /// A CSV file with a header row.
    pub(crate) file: PathBuf,
    /// A second CSV file: link the two instead of deduplicating one.
    pub(crate) file2: Option<PathBuf>,
    /// The column holding each record's id.
    #[arg(long)]
    pub(crate) id_column: String,
    /// Where to write the scored pairs (`id_l,id_r,match_probability`).
    #[arg(long)]
    pub(crate) output: PathBuf,
    /// Comparisons and blocking rules (TOML); inferred from the columns when absent.
    #[arg(long)]
    pub(crate) settings: Option<PathBuf>,
    /// Write the settings used (inferred or given) to this file, to review or refine.
    #[arg(long)]
    pub(crate) save_settings: Option<PathBuf>,
    /// Pairs below this probability are not written.
    #[arg(long, default_value_t = 0.01)]
    pub(crate) min_probability: f64,
    /// Seed of the random pairs that estimate how often non-matches agree.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
}

pub fn run(args: LinkArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = started;
    let mut phase = |name: &str| {
        let now = Instant::now();
        eprintln!(
            "{name}: {:.1}s (total {:.1}s)",
            (now - last).as_secs_f64(),
            (now - started).as_secs_f64()
        );
        last = now;
    };
    let columns = read_csv(&args.file, &args.id_column, None)?;
    let mut table = Table::with_columns(columns.clone());
    read_csv(&args.file, &args.id_column, Some((&mut table, 0)))?;
    if let Some(file2) = &args.file2 {
        let columns2 = read_csv(file2, &args.id_column, None)?;
        if columns2 != columns {
            bail!(
                "{} and {} must have the same columns (besides {}): {:?} vs {:?}",
                args.file.display(),
                file2.display(),
                args.id_column,
                columns,
                columns2
            );
        }
        read_csv(file2, &args.id_column, Some((&mut table, 1)))?;
    }
    phase("reading");
    let settings = match &args.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<Settings>(&text)
                .with_context(|| format!("invalid settings file {}", path.display()))?
        }
        None => {
            let settings = Settings::infer(&table)?;
            phase("inferring settings");
            settings
        }
    };
    if let Some(path) = &args.save_settings {
        std::fs::write(path, toml::to_string_pretty(&settings)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let linkage = link_observed(
        &table,
        &settings,
        args.seed,
        args.min_probability,
        &mut phase,
    )?;

    // Most probable first; equal probabilities in the order of the records.
    let mut pairs: Vec<_> = linkage.pairs.iter().collect();
    pairs.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    writer.write_record(["id_l", "id_r", "match_probability"])?;
    let mut probability = String::new();
    for pair in &pairs {
        use std::fmt::Write as _;
        probability.clear();
        write!(probability, "{:.6}", pair.probability)?;
        writer.write_record([
            table.ids[pair.left as usize].as_str(),
            table.ids[pair.right as usize].as_str(),
            probability.as_str(),
        ])?;
    }
    writer.flush()?;
    phase("writing");

    let likely = pairs.iter().filter(|p| p.probability >= 0.5).count();
    eprintln!(
        "{} records, {} candidate pairs ({} blocks over {} records skipped as too large), {} pairs written, {} with probability ≥ 0.5, in {:.1}s",
        table.len(),
        linkage.blocking.pairs,
        linkage.blocking.skipped_blocks,
        linkage.blocking.skipped_records,
        pairs.len(),
        likely,
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "model: {:.2e} of all pairs match; per comparison, level: m / u",
        linkage.lambda
    );
    for (c, comparison) in settings.comparisons.iter().enumerate() {
        let levels: Vec<String> = comparison
            .kind
            .levels()
            .iter()
            .enumerate()
            .map(|(l, name)| {
                format!(
                    "{name} {:.3}/{:.4}",
                    linkage.m[c][l + 1],
                    linkage.u[c][l + 1]
                )
            })
            .collect();
        eprintln!(
            "  {:<16} {:?}: {}",
            comparison.column,
            comparison.kind,
            levels.join(", ")
        );
    }
    Ok(())
}

/// The columns of a CSV file (without the id column); with a table, also adds the
/// file's records to it, one at a time, from source `origin`.
fn read_csv(
    path: &Path,
    id_column: &str,
    into: Option<(&mut Table, u8)>,
) -> anyhow::Result<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .buffer_capacity(1 << 20)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{} has no header row", path.display()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    let id_index = headers
        .iter()
        .position(|h| h == id_column)
        .with_context(|| {
            format!(
                "{} has no column {id_column:?}; its columns are {headers:?}",
                path.display()
            )
        })?;
    let columns: Vec<String> = headers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != id_index)
        .map(|(_, h)| h.clone())
        .collect();
    let Some((table, origin)) = into else {
        return Ok(columns);
    };
    let mut row = csv::StringRecord::new();
    let mut line = 1;
    while reader
        .read_record(&mut row)
        .with_context(|| format!("{} line {}", path.display(), line + 1))?
    {
        line += 1;
        let id = row.get(id_index).unwrap_or_default().to_string();
        let values = row
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != id_index)
            .map(|(_, v)| v);
        table.push(id, values, origin);
    }
    Ok(columns)
}
