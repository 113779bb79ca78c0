//! What to compare and how to find candidate pairs: from a settings file, or inferred
//! from the columns' names and contents.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Table;

/// How one column is compared; each kind has its own comparison levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonKind {
    /// Equal or not.
    Exact,
    /// Personal names: exact, Jaro–Winkler ≥ 0.92, ≥ 0.80, else.
    Name,
    /// Free text such as street addresses: exact, Jaro–Winkler ≥ 0.90, ≥ 0.70, else.
    Text,
    /// Codes and numbers typed by hand (postcodes, ids, phones): exact, one edit
    /// (Damerau–Levenshtein, so a swap of two digits is one), two edits, else.
    Code,
    /// Dates: exact, one edit in the digits, within 30 days, else.
    Date,
}

impl ComparisonKind {
    /// Levels, null excluded: index 1 is always "exact", the last is "else".
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Self::Exact => &["exact", "else"],
            Self::Name => &["exact", "jaro_winkler>=0.92", "jaro_winkler>=0.80", "else"],
            Self::Text => &["exact", "jaro_winkler>=0.90", "jaro_winkler>=0.70", "else"],
            Self::Code => &["exact", "one_edit", "two_edits", "else"],
            Self::Date => &["exact", "one_edit", "within_30_days", "else"],
        }
    }
}

/// One compared column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub column: String,
    pub kind: ComparisonKind,
    /// Adjust exact matches by how common the value is (a rare surname is stronger
    /// evidence than a common one).
    #[serde(default)]
    pub term_frequency: bool,
}

/// Part of a blocking key: a column, or its first `prefix` characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPart {
    pub column: String,
    #[serde(default)]
    pub prefix: Option<usize>,
}

/// A settings file (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub comparisons: Vec<Comparison>,
    /// Records that agree on every part of at least one rule become candidate pairs.
    pub blocking: Vec<Vec<KeyPart>>,
    /// Blocks with more records than this are skipped (a too-common key finds nothing
    /// useful and costs quadratic time); default 5,000.
    #[serde(default = "default_max_block")]
    pub max_block_size: usize,
    /// Random pairs sampled to estimate how often non-matches agree (u); default 1,000,000.
    #[serde(default = "default_u_sample")]
    pub u_sample_pairs: usize,
}

fn default_max_block() -> usize {
    5_000
}

fn default_u_sample() -> usize {
    1_000_000
}

/// Why settings cannot be used with a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the settings name column {0:?}, which the file does not have")]
    UnknownColumn(String),
    #[error("there is nothing to compare: no column other than the id column")]
    NothingToCompare,
    #[error("{0} comparisons: at most {1} can be used; drop the least telling ones")]
    TooManyComparisons(usize, usize),
    #[error("no blocking rule: add at least one, e.g. blocking = [[{{ column = \"surname\" }}]]")]
    NoBlocking,
}

impl Settings {
    /// Checks the settings against a table's columns.
    pub fn check(&self, table: &Table) -> Result<(), SettingsError> {
        if self.comparisons.is_empty() {
            return Err(SettingsError::NothingToCompare);
        }
        if self.blocking.is_empty() {
            return Err(SettingsError::NoBlocking);
        }
        let columns = self
            .comparisons
            .iter()
            .map(|c| &c.column)
            .chain(self.blocking.iter().flatten().map(|k| &k.column));
        for column in columns {
            if table.column(column).is_none() {
                return Err(SettingsError::UnknownColumn(column.clone()));
            }
        }
        Ok(())
    }

    /// Infers comparisons and blocking rules from the columns' names and contents.
    pub fn infer(table: &Table) -> Result<Settings, SettingsError> {
        let mut comparisons = Vec::new();
        for (index, name) in table.columns.iter().enumerate() {
            let lower = name.to_lowercase();
            let values: Vec<&str> = table.values_of(index).take(2_000).collect();
            if values.is_empty() {
                continue;
            }
            let kind = kind_by_name(&lower).unwrap_or_else(|| kind_by_content(&values));
            let term_frequency = matches!(kind, ComparisonKind::Name | ComparisonKind::Exact);
            comparisons.push(Comparison {
                column: name.clone(),
                kind,
                term_frequency,
            });
        }
        if comparisons.is_empty() {
            return Err(SettingsError::NothingToCompare);
        }
        let blocking = infer_blocking(table, &comparisons);
        // A column another column determines (the city of a postcode) adds no evidence
        // of its own, and comparing both breaks the model's independence assumption.
        let implied: Vec<String> = comparisons
            .par_iter()
            .filter(|b| {
                comparisons
                    .iter()
                    .any(|a| a.column != b.column && determines(table, &a.column, &b.column))
            })
            .map(|b| b.column.clone())
            .collect();
        comparisons.retain(|c| !implied.contains(&c.column));
        if blocking.is_empty() {
            return Err(SettingsError::NoBlocking);
        }
        Ok(Settings {
            comparisons,
            blocking,
            max_block_size: default_max_block(),
            u_sample_pairs: default_u_sample(),
        })
    }
}

/// Whether the values of column `a` determine those of `b`: `a` has more distinct values
/// than `b`, each repeated (three records a value on average: a near-unique column
/// "determines" everything trivially), and at least 95 % of records agree with the most
/// common `b` of their `a`.
pub(crate) fn determines(table: &Table, a: &str, b: &str) -> bool {
    let (Some(ia), Some(ib)) = (table.column(a), table.column(b)) else {
        return false;
    };
    // Each record's (a, b) codes, sorted: runs of equal a, and within them of equal b.
    let mut pairs: Vec<u64> = table
        .codes(ia)
        .iter()
        .zip(table.codes(ib))
        .filter(|(va, vb)| **va != 0 && **vb != 0)
        .map(|(va, vb)| (u64::from(*va) << 32) | u64::from(*vb))
        .collect();
    let total = pairs.len();
    pairs.sort_unstable();
    let mut b_seen = vec![false; table.distinct(ib).len() + 1];
    let (mut a_values, mut b_values, mut agreeing) = (0, 0, 0);
    let mut i = 0;
    while i < pairs.len() {
        let a_code = pairs[i] >> 32;
        let mut most = 0;
        while i < pairs.len() && pairs[i] >> 32 == a_code {
            let start = i;
            while i < pairs.len() && pairs[i] == pairs[start] {
                i += 1;
            }
            most = most.max(i - start);
            let b_code = (pairs[start] & u64::from(u32::MAX)) as usize;
            if !b_seen[b_code] {
                b_seen[b_code] = true;
                b_values += 1;
            }
        }
        a_values += 1;
        agreeing += most;
    }
    if total == 0 || a_values <= b_values || b_values < 2 || a_values * 3 > total {
        return false;
    }
    agreeing as f64 >= 0.95 * total as f64
}

fn kind_by_name(name: &str) -> Option<ComparisonKind> {
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    if has(&["birth", "dob", "date", "_at", "born"]) {
        Some(ComparisonKind::Date)
    } else if has(&[
        "first",
        "given",
        "surname",
        "last_name",
        "lastname",
        "family",
        "name",
        "nome",
        "cognome",
    ]) {
        Some(ComparisonKind::Name)
    } else if has(&["address", "street", "road", "via", "indirizzo"]) && !has(&["number", "num"]) {
        Some(ComparisonKind::Text)
    } else if has(&[
        "postcode",
        "zip",
        "cap",
        "post_code",
        "phone",
        "tel",
        "mobile",
        "ssn",
        "soc_sec",
        "tax",
        "fiscal",
        "id",
        "number",
        "num",
    ]) {
        Some(ComparisonKind::Code)
    } else if has(&[
        "city", "town", "suburb", "state", "country", "region", "province", "gender", "sex",
    ]) {
        Some(ComparisonKind::Exact)
    } else {
        None
    }
}

fn kind_by_content(values: &[&str]) -> ComparisonKind {
    let share = |f: &dyn Fn(&str) -> bool| {
        values.iter().filter(|v| f(v)).count() as f64 / values.len() as f64
    };
    if share(&|v| super::compare::parse_date(v).is_some()) > 0.8 {
        ComparisonKind::Date
    } else if share(&|v| {
        v.chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-' || c == '+')
    }) > 0.8
    {
        ComparisonKind::Code
    } else if share(&|v| v.contains(' ')) > 0.5 {
        ComparisonKind::Text
    } else {
        ComparisonKind::Name
    }
}

/// Blocking rules: every non-text column alone and every pair of them, each costed by
/// the candidate pairs it would make per record. Two records of one person meet when
/// some rule's columns are all intact in both, so rules are chosen for how many ways of
/// corrupting up to four columns leave one of them intact, per pair they cost, within a
/// budget of pairs per record for them all: at a million records, a broad rule (a date
/// of birth alone) costs more than it adds over a few specific ones.
fn infer_blocking(table: &Table, comparisons: &[Comparison]) -> Vec<Vec<KeyPart>> {
    let part = |c: &Comparison| KeyPart {
        column: c.column.clone(),
        prefix: None,
    };
    let keyed: Vec<&Comparison> = comparisons
        .iter()
        .filter(|c| c.kind != ComparisonKind::Text)
        .collect();
    let mut rules: Vec<Vec<KeyPart>> = keyed.iter().map(|c| vec![part(c)]).collect();
    for (i, a) in keyed.iter().enumerate() {
        for b in &keyed[i + 1..] {
            rules.push(vec![part(a), part(b)]);
        }
    }
    let sample = sample_rows(table, COST_SAMPLE);
    let scale = table.len().max(1) as f64 / sample.len().max(1) as f64;
    let mut costed: Vec<(f64, Vec<KeyPart>)> = rules
        .into_iter()
        .map(|rule| (pairs_per_record(table, &sample, &rule) * scale, rule))
        .filter(|(cost, _)| *cost > 0.0)
        .collect();
    costed.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Which keyed columns a rule uses (bit per column), and the share of records that
    // have all of them.
    let columns: Vec<&str> = keyed.iter().map(|c| c.column.as_str()).collect();
    let present = |name: &str| -> f64 {
        table.column(name).map_or(0.0, |c| {
            let codes = table.codes(c);
            sample.iter().filter(|r| codes[**r] != 0).count() as f64 / sample.len().max(1) as f64
        })
    };
    let presence: Vec<f64> = columns.iter().map(|c| present(c)).collect();
    let described: Vec<(f64, u32, f64)> = costed
        .iter()
        .map(|(cost, rule)| {
            let mut bits = 0u32;
            let mut share = 1.0;
            for p in rule {
                if let Some(i) = columns.iter().position(|c| *c == p.column) {
                    bits |= 1 << i;
                    share *= presence[i] * presence[i];
                }
            }
            (*cost, bits, share)
        })
        .collect();
    // Ways to corrupt up to four columns, the more columns the less likely.
    let corruptions: Vec<(u32, f64)> = (1u32..1 << columns.len().min(16))
        .filter(|s| s.count_ones() <= 4)
        .map(|s| (s, 0.5f64.powi(s.count_ones() as i32 - 1)))
        .collect();
    let mut covered = vec![0.0f64; corruptions.len()];
    let mut chosen: Vec<usize> = Vec::new();
    let mut spent = 0.0;
    while chosen.len() < MAX_RULES {
        let mut best: Option<(f64, usize)> = None;
        for (index, &(cost, bits, share)) in described.iter().enumerate() {
            if chosen.contains(&index)
                || cost > MAX_PAIRS_PER_RECORD
                || spent + cost > TOTAL_PAIRS_PER_RECORD
            {
                continue;
            }
            let gain: f64 = corruptions
                .iter()
                .zip(&covered)
                .filter(|((s, _), _)| s & bits == 0)
                .map(|((_, weight), now)| weight * (share - now).max(0.0))
                .sum();
            let value = gain / (cost + COST_OFFSET);
            if gain > 1e-9 && best.is_none_or(|(v, _)| value > v) {
                best = Some((value, index));
            }
        }
        let Some((_, index)) = best else { break };
        let (cost, bits, share) = described[index];
        for ((s, _), now) in corruptions.iter().zip(covered.iter_mut()) {
            if s & bits == 0 {
                *now = now.max(share);
            }
        }
        spent += cost;
        chosen.push(index);
    }
    let mut chosen: Vec<Vec<KeyPart>> = chosen.into_iter().map(|i| costed[i].1.clone()).collect();
    if chosen.len() < 2 {
        // Nothing affordable: the two cheapest rules, whatever they cost.
        chosen = costed
            .iter()
            .rev()
            .take(2)
            .map(|(_, rule)| rule.clone())
            .collect();
    }
    chosen
}

/// Rules expected to pair each record with more than this many others are left out.
const MAX_PAIRS_PER_RECORD: f64 = 30.0;
/// The chosen rules together, at most (as estimated: rules that overlap make fewer).
const TOTAL_PAIRS_PER_RECORD: f64 = 12.0;
/// What a rule costs beyond its pairs (reading its blocks), in pairs per record: keeps
/// a nearly free rule from counting as infinitely good value.
const COST_OFFSET: f64 = 0.5;
/// Inferred rules at most.
const MAX_RULES: usize = 8;
/// Records sampled to cost a rule.
const COST_SAMPLE: usize = 200_000;

/// Up to `n` rows, evenly spread.
fn sample_rows(table: &Table, n: usize) -> Vec<usize> {
    let step = (table.len() / n.max(1)).max(1);
    (0..table.len()).step_by(step).collect()
}

/// Candidate pairs a rule would produce per record among the `rows` sampled.
fn pairs_per_record(table: &Table, rows: &[usize], rule: &[KeyPart]) -> f64 {
    use std::collections::HashMap;
    let columns: Vec<&[u32]> = rule
        .iter()
        .filter_map(|p| table.column(&p.column))
        .map(|c| table.codes(c))
        .collect();
    let mut counts: HashMap<Vec<u32>, f64> = HashMap::new();
    'rows: for &row in rows {
        let mut key = Vec::with_capacity(columns.len());
        for codes in &columns {
            match codes[row] {
                0 => continue 'rows,
                code => key.push(code),
            }
        }
        *counts.entry(key).or_default() += 1.0;
    }
    let pairs: f64 = counts.values().map(|n| n * (n - 1.0) / 2.0).sum();
    pairs / rows.len().max(1) as f64
}
