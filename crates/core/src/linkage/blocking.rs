//! Candidate pairs: records that agree on every part of at least one blocking rule.

use std::collections::HashMap;

use super::Table;
use super::settings::KeyPart;

/// What blocking found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockingReport {
    pub pairs: usize,
    /// Blocks skipped for being larger than the maximum, and the records in them.
    pub skipped_blocks: usize,
    pub skipped_records: usize,
}

/// Candidate pairs `(i, j)` with `i < j`, sorted and distinct.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// The pairs each rule found, in the order of the rules.
    pub per_rule: Vec<Vec<(u32, u32)>>,
    /// Every pair any rule found.
    pub all: Vec<(u32, u32)>,
    pub report: BlockingReport,
}

/// Candidate pairs per rule and in all.
pub fn candidate_pairs(table: &Table, rules: &[Vec<KeyPart>], max_block: usize) -> Candidates {
    let mut report = BlockingReport::default();
    let mut per_rule = Vec::with_capacity(rules.len());
    let mut all: Vec<(u32, u32)> = Vec::new();
    let link = table.is_link();
    for rule in rules {
        let mut pairs: Vec<u64> = Vec::new();
        let parts: Vec<(usize, Option<usize>)> = rule
            .iter()
            .filter_map(|p| table.column(&p.column).map(|c| (c, p.prefix)))
            .collect();
        if parts.len() != rule.len() {
            continue;
        }
        let mut blocks: HashMap<String, Vec<u32>> = HashMap::new();
        'records: for row in 0..table.len() {
            let mut key = String::new();
            for (column, prefix) in &parts {
                let Some(value) = table.value(row, *column) else {
                    continue 'records;
                };
                match prefix {
                    Some(n) => key.extend(value.chars().take(*n)),
                    None => key.push_str(value),
                }
                key.push('\u{1f}');
            }
            blocks.entry(key).or_default().push(row as u32);
        }
        for members in blocks.values() {
            if members.len() > max_block {
                report.skipped_blocks += 1;
                report.skipped_records += members.len();
                continue;
            }
            for (i, a) in members.iter().enumerate() {
                for b in &members[i + 1..] {
                    if link && table.origin[*a as usize] == table.origin[*b as usize] {
                        continue;
                    }
                    pairs.push((u64::from(*a) << 32) | u64::from(*b));
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let pairs: Vec<(u32, u32)> = pairs
            .into_iter()
            .map(|p| ((p >> 32) as u32, p as u32))
            .collect();
        all.extend_from_slice(&pairs);
        per_rule.push(pairs);
    }
    all.sort_unstable();
    all.dedup();
    report.pairs = all.len();
    Candidates {
        per_rule,
        all,
        report,
    }
}
