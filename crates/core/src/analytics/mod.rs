//! The read side's reports: touchpoint and channel KPIs, journey paths, the funnel,
//! attribution and the channel census.
//!
//! Every report is a pure function of the interaction table (one compact row per event,
//! [`InteractionTable`]), the person each row belongs to (from the identity graph, so
//! merges are followed), the touchpoint registry, the rules and a period. The
//! projections keep the table current; nothing here reads the log or the clock.

pub mod activity;
pub mod attribution;
pub mod census;
pub mod interaction;
pub mod kpis;
pub mod paths;
pub mod rules;
pub mod tabular;

use jiff::Timestamp;

use crate::touchpoint::Touchpoint;

pub use interaction::{
    CaseStep, Detail, Interaction, InteractionTable, Origin, Sym, Symbols, TableParts,
};
pub use rules::{AnalyticsConfig, AnalyticsRules, AnalyticsRulesError, EventMatcher};

/// The person of a row no identity could be given to.
pub const NO_PERSON: u32 = u32::MAX;

/// A half-open period `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Period {
    /// Whether a time (microseconds since the epoch) falls in the period.
    pub fn contains(&self, at: i64) -> bool {
        self.from.is_none_or(|f| at >= f.as_microsecond())
            && self.to.is_none_or(|t| at < t.as_microsecond())
    }
}

/// A period bound as people write it: an RFC 3339 time, or a `YYYY-MM-DD` date
/// (midnight UTC).
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    text.parse::<Timestamp>().ok().or_else(|| {
        text.parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    })
}

/// What every report reads.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub table: &'a InteractionTable,
    /// The person of each row of the table (same index), or [`NO_PERSON`]. People are
    /// numbered densely from 0.
    pub people: &'a [u32],
    /// How many people there are (one past the highest number in `people`).
    pub person_count: u32,
    pub touchpoints: &'a [Touchpoint],
    pub rules: &'a AnalyticsRules,
    pub period: Period,
    /// When given, only these people count (a segment); indexed by person.
    pub audience: Option<&'a [bool]>,
}

impl<'a> View<'a> {
    /// Whether a person counts in this view.
    pub fn counts(&self, person: u32) -> bool {
        person != NO_PERSON
            && self
                .audience
                .is_none_or(|a| a.get(person as usize) == Some(&true))
    }

    /// The registered touchpoint of a symbol.
    pub fn registered(&self, touchpoint: Sym) -> Option<&'a Touchpoint> {
        let id = self.table.symbols.name(touchpoint);
        self.touchpoints.iter().find(|t| t.id == id)
    }

    /// Each counted person's rows (all of them, in and out of the period), in time
    /// order (log order among equal times).
    pub fn histories(&self) -> Histories {
        let rows = self.table.rows();
        let mut starts = vec![0u32; self.person_count as usize + 1];
        for &person in self.people {
            if self.counts(person) {
                starts[person as usize + 1] += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut order = vec![0u32; starts.last().copied().unwrap_or(0) as usize];
        for (row, &person) in self.people.iter().enumerate() {
            if self.counts(person) {
                let slot = &mut fill[person as usize];
                order[*slot as usize] = row as u32;
                *slot += 1;
            }
        }
        for person in 0..self.person_count as usize {
            let slice = &mut order[starts[person] as usize..starts[person + 1] as usize];
            // Rows are in log order: a row's index breaks ties as its position would.
            if !slice
                .windows(2)
                .all(|w| (rows[w[0] as usize].at, w[0]) <= (rows[w[1] as usize].at, w[1]))
            {
                slice.sort_unstable_by_key(|&r| (rows[r as usize].at, r));
            }
        }
        Histories { starts, order }
    }
}

/// Rows grouped by person, each group in time order.
pub struct Histories {
    starts: Vec<u32>,
    order: Vec<u32>,
}

impl Histories {
    /// Each person with rows, and their row indices.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u32])> + '_ {
        (0..self.starts.len().saturating_sub(1)).filter_map(|p| {
            let rows = &self.order[self.starts[p] as usize..self.starts[p + 1] as usize];
            (!rows.is_empty()).then_some((p as u32, rows))
        })
    }
}

/// `part / whole`, or `None` when `whole` is 0.
pub(crate) fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests;
