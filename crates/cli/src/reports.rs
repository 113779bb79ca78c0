//! `unavoce kpis`, `unavoce journeys` and `unavoce census`: the read side's reports from
//! the data folder, as tables, JSON or CSV.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use unavoce_core::analytics::tabular::{
    CENSUS_SECTIONS, CensusSection, Table, attribution_table, census_table, funnel_table,
    kpi_table, link_table, path_table,
};
use unavoce_core::analytics::{Period, parse_time};
use unavoce_core::audience::Audience;
use unavoce_platform::ReadSide;
use unavoce_projections::{AudienceMembers, Reports};
use unavoce_store::EventLog;

use crate::config;

/// How to print a report.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// What every report takes.
#[derive(Args)]
pub struct ReportArgs {
    /// Start of the period (RFC 3339 time or YYYY-MM-DD, UTC), inclusive.
    #[arg(long, value_parser = time)]
    from: Option<jiff::Timestamp>,
    /// End of the period, exclusive.
    #[arg(long, value_parser = time)]
    to: Option<jiff::Timestamp>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Configuration file [default: ./unavoce.toml if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder [default: ./unavoce-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Count only the people of this audience, e.g. "traits.city == 'Roma'" or
    /// "open_cases > 0" (variables: traits, computed, stage, open_cases,
    /// resolved_cases, consents, preferred_channel).
    #[arg(long)]
    segment: Option<String>,
}

fn time(text: &str) -> Result<jiff::Timestamp, String> {
    parse_time(text)
        .ok_or_else(|| format!("{text:?} is neither an RFC 3339 time nor a YYYY-MM-DD date"))
}

#[derive(Args)]
pub struct KpiArgs {
    /// Per touchpoint or per channel.
    #[arg(long, value_enum, default_value = "touchpoint")]
    by: KpiGrouping,
    #[command(flatten)]
    common: ReportArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KpiGrouping {
    Touchpoint,
    Channel,
}

#[derive(Args)]
pub struct JourneyArgs {
    #[command(subcommand)]
    report: JourneyReport,
}

#[derive(Subcommand)]
pub enum JourneyReport {
    /// The most frequent paths between touchpoints (and, as CSV, the Sankey links).
    Paths {
        /// Touchpoints per path (1-10).
        #[arg(long, default_value_t = 4)]
        steps: usize,
        /// Paths to list.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[command(flatten)]
        common: ReportArgs,
    },
    /// People at each stage, conversion and drop-off.
    Funnel {
        #[command(flatten)]
        common: ReportArgs,
    },
    /// Conversions credited to touchpoints: first, last, linear, time decay.
    Attribution {
        #[command(flatten)]
        common: ReportArgs,
    },
}

#[derive(Args)]
pub struct CensusArgs {
    /// With --format csv or table: print only this section.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(CENSUS_SECTIONS))]
    section: Option<String>,
    #[command(flatten)]
    common: ReportArgs,
}

/// What a report command works on.
struct Opened {
    log: Arc<dyn EventLog>,
    reports: Arc<Reports>,
    period: Period,
    audience: Option<AudienceMembers>,
}

/// Opens the data folder's log, identity graph and registry for reports, and evaluates
/// the audience.
async fn open(args: &ReportArgs) -> anyhow::Result<Opened> {
    let audience = args
        .segment
        .as_deref()
        .map(Audience::parse)
        .transpose()
        .context("invalid --segment")?;
    let (config, data) = config::load_for_data(args.config.as_deref(), args.data.clone())?;
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        bail!("--from must be before --to");
    }
    let log: Arc<dyn EventLog> = crate::store::open_existing(&config, &data).await?.store;
    let read = ReadSide::open(log.clone(), &config.blueprint(String::new())?)
        .await
        .context("cannot read the event log")?;
    let period = Period {
        from: args.from,
        to: args.to,
    };
    let reports = read.reports;
    let audience = match audience {
        Some(audience) => {
            let members = reports.audience(&audience, jiff::Timestamp::now()).await?;
            eprintln!(
                "segment: {} of {} people{}",
                members.members.len(),
                members.evaluated,
                match &members.first_error {
                    Some(e) => format!("; it failed for {} (e.g. {e})", members.errors),
                    None => String::new(),
                }
            );
            Some(members)
        }
        None => None,
    };
    Ok(Opened {
        log,
        reports,
        period,
        audience,
    })
}

fn print(format: Format, report: &impl Serialize, tables: &[(&str, Table)]) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Format::Csv => {
            let (_, table) = tables.first().context("nothing to print")?;
            print!("{}", table.to_csv());
        }
        Format::Table => {
            for (i, (title, table)) in tables.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                if !title.is_empty() {
                    println!("{title}");
                }
                print!("{}", table.to_text());
            }
        }
    }
    Ok(())
}

pub async fn kpis(args: KpiArgs) -> anyhow::Result<()> {
    let o = open(&args.common).await?;
    let report = o.reports.kpis(o.period, o.audience.as_ref()).await?;
    o.log.close().await;
    let rows = match args.by {
        KpiGrouping::Touchpoint => &report.touchpoints,
        KpiGrouping::Channel => &report.channels,
    };
    let title = format!(
        "{} people, {} interactions",
        report.people, report.interactions
    );
    print(args.common.format, &report, &[(&title, kpi_table(rows))])
}

pub async fn journeys(args: JourneyArgs) -> anyhow::Result<()> {
    match args.report {
        JourneyReport::Paths { steps, top, common } => {
            if !(1..=unavoce_projections::MAX_PATH_STEPS).contains(&steps) {
                bail!(
                    "--steps must be between 1 and {}",
                    unavoce_projections::MAX_PATH_STEPS
                );
            }
            let o = open(&common).await?;
            let report = o
                .reports
                .paths(o.period, o.audience.as_ref(), steps, top)
                .await?;
            o.log.close().await;
            let tables = if common.format == Format::Csv {
                vec![("", link_table(&report))]
            } else {
                vec![("Most frequent paths (people, path)", path_table(&report))]
            };
            print(common.format, &report, &tables)
        }
        JourneyReport::Funnel { common } => {
            let o = open(&common).await?;
            let report = o.reports.funnel(o.period, o.audience.as_ref()).await?;
            o.log.close().await;
            let title = format!("{} people in the period", report.people);
            print(common.format, &report, &[(&title, funnel_table(&report))])
        }
        JourneyReport::Attribution { common } => {
            let o = open(&common).await?;
            let report = o.reports.attribution(o.period, o.audience.as_ref()).await?;
            o.log.close().await;
            let title = format!(
                "{} conversions, touches up to {} days before, time-decay half-life {} days",
                report.conversions, report.window_days, report.half_life_days
            );
            print(
                common.format,
                &report,
                &[(&title, attribution_table(&report))],
            )
        }
    }
}

pub async fn census(args: CensusArgs) -> anyhow::Result<()> {
    let o = open(&args.common).await?;
    let report = o.reports.census(o.period, o.audience.as_ref()).await?;
    o.log.close().await;
    let sections: Vec<&str> = match (&args.section, args.common.format) {
        (Some(section), _) => vec![section.as_str()],
        (None, Format::Csv) => vec!["usage"],
        (None, _) => CENSUS_SECTIONS.to_vec(),
    };
    let mut tables: Vec<(&str, Table)> = Vec::new();
    for name in sections {
        let section: CensusSection = name.parse().map_err(anyhow::Error::msg)?;
        let title = match section {
            CensusSection::Coverage => "Coverage: customer needs × touchpoints",
            CensusSection::Usage => "Usage and quality per touchpoint",
            CensusSection::Unregistered => "Channels customers use that are not registered",
            CensusSection::Recommendations => "Recommendations",
        };
        tables.push((title, census_table(&report, section)));
    }
    print(args.common.format, &report, &tables)?;
    if args.common.format == Format::Table && args.section.is_none() {
        // The recommendations read better as sentences than as a table.
        println!();
        for r in &report.recommendations {
            println!("- {}", r.text);
        }
    }
    Ok(())
}
