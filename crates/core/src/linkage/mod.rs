//! Probabilistic record linkage for records with no shared identifier (store sign-up
//! forms, call-center notes): the Fellegi–Sunter model.
//!
//! Candidate pairs come from blocking rules; each pair is compared column by column
//! into levels (exact, close, far, missing); how often true matches (m) and non-matches
//! (u) reach each level is learned — u from random pairs, m and the share of matches by
//! expectation–maximisation over the candidates — and each pair gets a match weight and
//! probability, with exact agreement on rare values counting for more than on common ones.
//! Pure: the caller reads the files and picks the seed.

use std::collections::HashMap;

pub mod blocking;
pub mod compare;
pub mod model;
pub mod settings;

pub use model::{Linkage, ScoredPair, link, link_observed};
pub use settings::{Comparison, ComparisonKind, KeyPart, Settings, SettingsError};

/// Records to link: one or two sources with the same columns.
///
/// Stored by column, each value interned: a record holds one code per column (0 when
/// the value is missing), so a million records of ten columns take 40 MB of codes plus
/// each distinct value once, and equality of two values is equality of their codes.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub ids: Vec<String>,
    /// Which source each record comes from (0 or 1); pairs are only formed across
    /// sources when there are two.
    pub origin: Vec<u8>,
    /// `codes[c][r]`: the code of record `r`'s value in column `c`; 0 = missing.
    codes: Vec<Vec<u32>>,
    /// `distinct[c][code - 1]`: the values of column `c`, trimmed and lower-cased.
    distinct: Vec<Vec<Box<str>>>,
    index: Vec<HashMap<Box<str>, u32>>,
}

impl Table {
    /// A table of one source; values are cleaned (trimmed, lower-cased, empty = missing).
    pub fn new(columns: Vec<String>, records: Vec<(String, Vec<String>)>) -> Self {
        let mut table = Table::with_columns(columns);
        table.extend(records, 0);
        table
    }

    /// An empty table with these columns, to [`push`](Self::push) records into.
    pub fn with_columns(columns: Vec<String>) -> Self {
        let width = columns.len();
        Table {
            columns,
            codes: vec![Vec::new(); width],
            distinct: vec![Vec::new(); width],
            index: vec![HashMap::new(); width],
            ..Table::default()
        }
    }

    /// Adds the records of a second source.
    pub fn extend(&mut self, records: Vec<(String, Vec<String>)>, origin: u8) {
        for (id, values) in records {
            self.push(id, values.iter().map(String::as_str), origin);
        }
    }

    /// Adds one record, its values in column order (missing ones count as empty).
    pub fn push<'a>(&mut self, id: String, values: impl IntoIterator<Item = &'a str>, origin: u8) {
        let mut values = values.into_iter();
        let mut cleaned = String::new();
        for c in 0..self.columns.len() {
            let value = values.next().unwrap_or_default().trim();
            let code = if value.is_empty() {
                0
            } else {
                cleaned.clear();
                if value
                    .bytes()
                    .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
                {
                    cleaned.push_str(&value.to_lowercase());
                } else {
                    cleaned.push_str(value);
                }
                match self.index[c].get(cleaned.as_str()) {
                    Some(code) => *code,
                    None => {
                        let boxed: Box<str> = cleaned.as_str().into();
                        self.distinct[c].push(boxed.clone());
                        let code = self.distinct[c].len() as u32;
                        self.index[c].insert(boxed, code);
                        code
                    }
                }
            };
            self.codes[c].push(code);
        }
        self.ids.push(id);
        self.origin.push(origin);
    }

    /// Whether pairs must cross sources.
    pub fn is_link(&self) -> bool {
        self.origin.contains(&1)
    }

    /// Records.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// A value.
    pub fn value(&self, row: usize, column: usize) -> Option<&str> {
        let code = *self.codes.get(column)?.get(row)?;
        self.decode(column, code)
    }

    /// The non-missing values of a column.
    pub fn values_of(&self, column: usize) -> impl Iterator<Item = &str> + '_ {
        self.codes
            .get(column)
            .into_iter()
            .flatten()
            .filter_map(move |code| self.decode(column, *code))
    }

    /// The codes of a column's values, one per record (0 = missing; equal values, equal
    /// codes).
    pub fn codes(&self, column: usize) -> &[u32] {
        &self.codes[column]
    }

    /// The distinct values of a column: the value of code `k` is at `k - 1`.
    pub fn distinct(&self, column: usize) -> &[Box<str>] {
        &self.distinct[column]
    }

    /// The value of a code.
    pub fn decode(&self, column: usize, code: u32) -> Option<&str> {
        code.checked_sub(1)
            .map(|k| &*self.distinct[column][k as usize])
    }
}

/// A multiplicative hash for keys made of codes (comparison vectors, blocking keys):
/// SipHash is needlessly slow for keys that are numbers the table assigned.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FastHash;

#[derive(Debug, Default)]
pub(crate) struct FastHasher(u64);

const FAST_HASH_K: u64 = 0x517c_c1b7_2722_0a95;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(FAST_HASH_K);
    }
}
