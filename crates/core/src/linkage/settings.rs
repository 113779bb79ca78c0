//! What to compare and how to find candidate pairs: from a settings file, or inferred
//! from the columns' names and contents.

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
            .iter()
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
    use std::collections::HashMap;
    let (Some(ia), Some(ib)) = (table.column(a), table.column(b)) else {
        return false;
    };
    let mut by_a: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    let mut b_values: HashMap<&str, usize> = HashMap::new();
    let mut total = 0;
    for row in 0..table.len() {
        if let (Some(va), Some(vb)) = (table.value(row, ia), table.value(row, ib)) {
            *by_a.entry(va).or_default().entry(vb).or_default() += 1;
            *b_values.entry(vb).or_default() += 1;
            total += 1;
        }
    }
    if total == 0 || by_a.len() <= b_values.len() || b_values.len() < 2 || by_a.len() * 3 > total {
        return false;
    }
    let agreeing: usize = by_a
        .values()
        .map(|bs| bs.values().max().copied().unwrap_or(0))
        .sum();
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
/// the candidate pairs it would make per record; the affordable ones are kept, so that
/// two records of one person still meet when some fields have typos.
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
    // The broadest affordable rules find the most typo'd pairs; a rule that only
    // refines one already chosen (a column pair containing a chosen column) adds nothing.
    costed.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut chosen: Vec<Vec<KeyPart>> = Vec::new();
    for (cost, rule) in &costed {
        let refines = chosen.iter().any(|c| {
            c.iter()
                .all(|part| rule.iter().any(|p| p.column == part.column))
        });
        if *cost <= MAX_PAIRS_PER_RECORD && !refines && chosen.len() < MAX_RULES {
            chosen.push(rule.clone());
        }
    }
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
    let columns: Vec<usize> = rule
        .iter()
        .filter_map(|p| table.column(&p.column))
        .collect();
    let mut counts: HashMap<Vec<&str>, f64> = HashMap::new();
    'rows: for &row in rows {
        let mut key = Vec::with_capacity(columns.len());
        for &c in &columns {
            match table.value(row, c) {
                Some(v) => key.push(v),
                None => continue 'rows,
            }
        }
        *counts.entry(key).or_default() += 1.0;
    }
    let pairs: f64 = counts.values().map(|n| n * (n - 1.0) / 2.0).sum();
    pairs / rows.len().max(1) as f64
}
