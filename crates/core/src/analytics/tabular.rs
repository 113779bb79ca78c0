//! The reports as flat tables, for CSV and for the terminal.

use super::attribution::AttributionReport;
use super::census::Census;
use super::kpis::Kpis;
use super::paths::{FunnelReport, PathReport};

/// A table of text cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// RFC 4180 CSV with a header line. A text cell a spreadsheet would take for a
    /// formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a
    /// leading `'`, as OWASP advises: touchpoint and event names come from outside.
    /// Numbers, negative ones included, are left as they are.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = line.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// Columns aligned with spaces, for a terminal.
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = line
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

fn csv_cell(cell: &str) -> String {
    let formula =
        cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.trim().parse::<f64>().is_err();
    let cell = &if formula {
        format!("'{cell}")
    } else {
        cell.to_string()
    };
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or(String::new(), |v| format!("{v:.decimals$}"))
}

/// One row per touchpoint (or channel).
pub fn kpi_table(kpis: &[Kpis]) -> Table {
    let mut table = Table::new(&[
        "touchpoint",
        "channel",
        "registered",
        "interactions",
        "reach",
        "share_of_customers",
        "conversions",
        "conversion_rate",
        "cost",
        "cost_per_conversion",
        "csat",
        "nps",
        "cases",
        "first_contact_resolution",
        "repeat_contact_rate",
        "cross_channel_repeat_rate",
        "time_to_resolution_hours",
        "channel_switch_rate",
        "abandonment_rate",
        "trend",
    ]);
    for k in kpis {
        table.rows.push(vec![
            k.touchpoint.clone().unwrap_or_default(),
            k.channel.clone().unwrap_or_default(),
            k.registered.to_string(),
            k.interactions.to_string(),
            k.reach.to_string(),
            opt(k.share_of_customers, 4),
            k.conversions.to_string(),
            opt(k.conversion_rate, 4),
            opt(k.cost, 2),
            opt(k.cost_per_conversion, 2),
            opt(k.csat, 4),
            opt(k.nps, 4),
            k.cases.to_string(),
            opt(k.first_contact_resolution, 4),
            opt(k.repeat_contact_rate, 4),
            opt(k.cross_channel_repeat_rate, 4),
            opt(k.time_to_resolution_hours, 1),
            opt(k.channel_switch_rate, 4),
            opt(k.abandonment_rate, 4),
            opt(k.trend, 4),
        ]);
    }
    table
}

/// The most frequent paths.
pub fn path_table(report: &PathReport) -> Table {
    let mut table = Table::new(&["people", "path"]);
    for s in &report.sequences {
        table
            .rows
            .push(vec![s.people.to_string(), s.touchpoints.join(" > ")]);
    }
    table
}

/// The Sankey links.
pub fn link_table(report: &PathReport) -> Table {
    let mut table = Table::new(&["source", "target", "people"]);
    for l in &report.links {
        table.rows.push(vec![
            l.source.clone(),
            l.target.clone(),
            l.value.to_string(),
        ]);
    }
    table
}

/// One row per stage.
pub fn funnel_table(report: &FunnelReport) -> Table {
    let mut table = Table::new(&[
        "stage",
        "people",
        "conversion_from_previous",
        "drop_off",
        "reached_any_order",
    ]);
    for s in &report.stages {
        table.rows.push(vec![
            s.stage.clone(),
            s.people.to_string(),
            opt(s.conversion_from_previous, 4),
            s.drop_off.to_string(),
            s.reached_any_order.to_string(),
        ]);
    }
    table
}

/// One row per credited touchpoint.
pub fn attribution_table(report: &AttributionReport) -> Table {
    let mut table = Table::new(&[
        "touchpoint",
        "first_touch",
        "last_touch",
        "linear",
        "time_decay",
    ]);
    for t in &report.touchpoints {
        table.rows.push(vec![
            t.touchpoint.clone().unwrap_or_default(),
            format!("{:.2}", t.first_touch),
            format!("{:.2}", t.last_touch),
            format!("{:.2}", t.linear),
            format!("{:.2}", t.time_decay),
        ]);
    }
    table
}

/// The names of the census's sections, each a table.
pub const CENSUS_SECTIONS: [&str; 4] = ["coverage", "usage", "unregistered", "recommendations"];

/// A section of the census.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CensusSection {
    Coverage,
    Usage,
    Unregistered,
    Recommendations,
}

impl std::str::FromStr for CensusSection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "coverage" => Ok(Self::Coverage),
            "usage" => Ok(Self::Usage),
            "unregistered" => Ok(Self::Unregistered),
            "recommendations" => Ok(Self::Recommendations),
            other => Err(format!(
                "the census's sections are {}; got {other:?}",
                CENSUS_SECTIONS.join(", ")
            )),
        }
    }
}

/// One section of the census as a table.
pub fn census_table(census: &Census, section: CensusSection) -> Table {
    match section {
        CensusSection::Coverage => {
            // needs × touchpoints: "active", "planned" or empty.
            let mut touchpoints: Vec<&String> = census
                .coverage
                .iter()
                .flat_map(|c| c.active.iter().chain(&c.planned))
                .collect();
            touchpoints.sort();
            touchpoints.dedup();
            let mut header = vec!["need"];
            header.extend(touchpoints.iter().map(|t| t.as_str()));
            let mut table = Table::new(&header);
            for c in &census.coverage {
                let mut row = vec![c.need.clone()];
                row.extend(touchpoints.iter().map(|t| {
                    if c.active.contains(t) {
                        "active".to_string()
                    } else if c.planned.contains(t) {
                        "planned".to_string()
                    } else {
                        String::new()
                    }
                }));
                table.rows.push(row);
            }
            table
        }
        CensusSection::Usage => {
            let mut table = Table::new(&[
                "touchpoint",
                "channel",
                "department",
                "status",
                "interactions",
                "share_of_customers",
                "trend",
                "csat",
                "nps",
                "first_contact_resolution",
                "repeat_contact_rate",
            ]);
            for u in &census.usage {
                table.rows.push(vec![
                    u.touchpoint.clone(),
                    u.channel.clone(),
                    u.department.clone(),
                    format!("{:?}", u.status).to_lowercase(),
                    u.interactions.to_string(),
                    opt(u.share_of_customers, 4),
                    opt(u.trend, 4),
                    opt(u.csat, 4),
                    opt(u.nps, 4),
                    opt(u.first_contact_resolution, 4),
                    opt(u.repeat_contact_rate, 4),
                ]);
            }
            table
        }
        CensusSection::Unregistered => {
            let mut table = Table::new(&[
                "touchpoint",
                "channel",
                "channel_unregistered",
                "interactions",
                "people",
            ]);
            for u in &census.unregistered_channels {
                table.rows.push(vec![
                    u.touchpoint.clone().unwrap_or_default(),
                    u.channel.clone().unwrap_or_default(),
                    u.channel_unregistered.to_string(),
                    u.interactions.to_string(),
                    u.people.to_string(),
                ]);
            }
            table
        }
        CensusSection::Recommendations => {
            let mut table = Table::new(&["kind", "subject", "recommendation"]);
            for r in &census.recommendations {
                table.rows.push(vec![
                    format!("{:?}", r.kind).to_lowercase(),
                    r.subject.clone(),
                    r.text.clone(),
                ]);
            }
            table
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_a_spreadsheet_would_run_are_neutralised_numbers_are_not() {
        let table = super::Table {
            header: vec!["touchpoint".into(), "trend".into()],
            rows: vec![
                vec!["=HYPERLINK(\"http://x\",\"y\")".into(), "-0.2500".into()],
                vec!["+cmd".into(), "1e3".into()],
                vec!["-2+3".into(), "@SUM(A1)".into()],
                vec!["\tx".into(), "web-shop".into()],
            ],
        };
        assert_eq!(
            table.to_csv(),
            "touchpoint,trend\r\n\
             \"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-0.2500\r\n\
             '+cmd,1e3\r\n\
             '-2+3,'@SUM(A1)\r\n\
             '\tx,web-shop\r\n"
        );
    }
}
