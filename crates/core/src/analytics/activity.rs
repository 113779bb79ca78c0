//! Activity over time: events per day by channel or by touchpoint, for the overview.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::View;

/// How activity is broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    Channel,
    Touchpoint,
}

/// One line of the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub name: String,
    /// Events per day, one per entry of [`ActivityReport::days`].
    pub counts: Vec<u64>,
    pub total: u64,
}

/// Events per day (UTC) of the period, the busiest `top` lines and `other`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityReport {
    pub by: Breakdown,
    /// `YYYY-MM-DD`, oldest first.
    pub days: Vec<String>,
    pub series: Vec<Series>,
}

const DAY_US: i64 = 86_400_000_000;
/// At most this many days are charted (the last ones of the period).
pub const MAX_DAYS: i64 = 366;

/// Events per day by channel or touchpoint over the view's period (bounded by the
/// data when open), at most [`MAX_DAYS`] days, the `top` busiest lines kept and the
/// rest summed as `other`. Events without a channel (touchpoint) count as `no channel`
/// (`no touchpoint`).
pub fn activity_report(view: &View, by: Breakdown, top: usize) -> ActivityReport {
    let rows = view.table.rows();
    let in_period = |at: i64| view.period.contains(at);
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for row in rows.iter().filter(|r| in_period(r.at)) {
        first = first.min(row.at);
        last = last.max(row.at);
    }
    if first > last {
        return ActivityReport {
            by,
            days: Vec::new(),
            series: Vec::new(),
        };
    }
    let last_day = last.div_euclid(DAY_US);
    let first_day = first.div_euclid(DAY_US).max(last_day - MAX_DAYS + 1);
    let days = (last_day - first_day + 1) as usize;
    let mut lines: HashMap<u32, Vec<u64>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if !in_period(row.at) {
            continue;
        }
        let person = view.people.get(i).copied().unwrap_or(super::NO_PERSON);
        if view.audience.is_some() && !view.counts(person) {
            continue;
        }
        let day = row.at.div_euclid(DAY_US);
        if day < first_day {
            continue;
        }
        let origin = view.table.origin(row);
        let sym = match by {
            Breakdown::Channel => origin.channel,
            Breakdown::Touchpoint => origin.touchpoint,
        };
        lines.entry(sym.0).or_insert_with(|| vec![0; days])[(day - first_day) as usize] += 1;
    }
    let mut series: Vec<Series> = lines
        .into_iter()
        .map(|(sym, counts)| {
            let name = view.table.symbols.name(super::Sym(sym));
            Series {
                name: if name.is_empty() {
                    format!("no {}", by_name(by))
                } else {
                    name.to_string()
                },
                total: counts.iter().sum(),
                counts,
            }
        })
        .collect();
    series.sort_by(|a, b| b.total.cmp(&a.total).then(a.name.cmp(&b.name)));
    if series.len() > top {
        let rest = series.split_off(top);
        let mut other = vec![0; days];
        for s in &rest {
            for (o, c) in other.iter_mut().zip(&s.counts) {
                *o += c;
            }
        }
        series.push(Series {
            name: "other".into(),
            total: other.iter().sum(),
            counts: other,
        });
    }
    ActivityReport {
        by,
        days: (0..days as i64)
            .map(|d| {
                let at =
                    Timestamp::UNIX_EPOCH + SignedDuration::from_micros((first_day + d) * DAY_US);
                at.strftime("%Y-%m-%d").to_string()
            })
            .collect(),
        series,
    }
}

fn by_name(by: Breakdown) -> &'static str {
    match by {
        Breakdown::Channel => "channel",
        Breakdown::Touchpoint => "touchpoint",
    }
}
