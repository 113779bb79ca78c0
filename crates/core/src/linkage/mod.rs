//! Probabilistic record linkage for records with no shared identifier (store sign-up
//! forms, call-center notes): the Fellegi–Sunter model.
//!
//! Candidate pairs come from blocking rules; each pair is compared column by column
//! into levels (exact, close, far, missing); how often true matches (m) and non-matches
//! (u) reach each level is learned — u from random pairs, m and the share of matches by
//! expectation–maximisation over the candidates — and each pair gets a match weight and
//! probability, with exact agreement on rare values counting for more than on common ones.
//! Pure: the caller reads the files and picks the seed.

pub mod blocking;
pub mod compare;
pub mod model;
pub mod settings;

pub use model::{Linkage, ScoredPair, link};
pub use settings::{Comparison, ComparisonKind, KeyPart, Settings, SettingsError};

/// Records to link: one or two sources with the same columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub ids: Vec<String>,
    /// `rows[r][c]`: the value of column `c` in record `r`, trimmed and lower-cased;
    /// `None` when empty.
    pub rows: Vec<Vec<Option<Box<str>>>>,
    /// Which source each record comes from (0 or 1); pairs are only formed across
    /// sources when there are two.
    pub origin: Vec<u8>,
}

impl Table {
    /// A table of one source; values are cleaned (trimmed, lower-cased, empty = missing).
    pub fn new(columns: Vec<String>, records: Vec<(String, Vec<String>)>) -> Self {
        let mut table = Table {
            columns,
            ..Table::default()
        };
        table.extend(records, 0);
        table
    }

    /// Adds the records of a second source.
    pub fn extend(&mut self, records: Vec<(String, Vec<String>)>, origin: u8) {
        for (id, values) in records {
            self.ids.push(id);
            self.rows.push(
                values
                    .into_iter()
                    .map(|v| {
                        let v = v.trim().to_lowercase();
                        (!v.is_empty()).then(|| v.into_boxed_str())
                    })
                    .collect(),
            );
            self.origin.push(origin);
        }
    }

    /// Whether pairs must cross sources.
    pub fn is_link(&self) -> bool {
        self.origin.contains(&1)
    }

    /// Records.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// A value.
    pub fn value(&self, row: usize, column: usize) -> Option<&str> {
        self.rows[row].get(column).and_then(|v| v.as_deref())
    }

    /// The non-missing values of a column.
    pub fn values_of(&self, column: usize) -> impl Iterator<Item = &str> + '_ {
        self.rows
            .iter()
            .filter_map(move |r| r.get(column).and_then(|v| v.as_deref()))
    }
}
