//! Candidate pairs: records that agree on every part of at least one blocking rule.
//!
//! Each rule gives every record a key (a code, or none when a part is missing); the
//! records of a key form a block. A pair is generated once, by the first rule whose
//! block holds it, so no global list of pairs needs sorting or de-duplicating, and the
//! blocks can be enumerated in parallel in a fixed order.

use std::collections::HashMap;

use super::settings::KeyPart;
use super::{FastHash, Table};

/// What blocking found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockingReport {
    pub pairs: usize,
    /// Blocks skipped for being larger than the maximum, and the records in them.
    pub skipped_blocks: usize,
    pub skipped_records: usize,
}

/// No key: a part of the rule is missing.
const NONE: u32 = u32::MAX;

/// The blocks of every rule.
#[derive(Debug, Clone, Default)]
pub struct Blocking {
    /// `keys[rule][record]`: the record's block under the rule, [`NONE`] when missing
    /// or when the block is too large to be used.
    keys: Vec<Vec<u32>>,
    /// Per rule, the records of its usable blocks of two or more, block after block,
    /// each block's in increasing order; and where each block starts (and the end).
    members: Vec<Vec<u32>>,
    starts: Vec<Vec<u32>>,
    /// Per rule, the pairs its blocks hold (counting pairs other rules hold too).
    pub pairs_per_rule: Vec<usize>,
    pub report: BlockingReport,
    link: bool,
}

impl Blocking {
    /// The blocks of each rule; rules naming an unknown column have none.
    pub fn new(table: &Table, rules: &[Vec<KeyPart>], max_block: usize) -> Self {
        let link = table.is_link();
        let mut blocking = Blocking {
            link,
            ..Blocking::default()
        };
        for rule in rules {
            let (mut keys, sizes) = rule_keys(table, rule);
            // Where each usable block goes among the members, in the order of the keys.
            let mut fill = vec![u32::MAX; sizes.len()];
            let mut starts = vec![0u32];
            let mut pairs = 0;
            for (key, &size) in sizes.iter().enumerate() {
                if size as usize > max_block {
                    blocking.report.skipped_blocks += 1;
                    blocking.report.skipped_records += size as usize;
                } else if size >= 2 {
                    let start = *starts.last().unwrap_or(&0);
                    fill[key] = start;
                    starts.push(start + size);
                }
            }
            let mut members = vec![0u32; *starts.last().unwrap_or(&0) as usize];
            for (row, key) in keys.iter_mut().enumerate() {
                if *key == NONE {
                    continue;
                }
                let k = *key as usize;
                if sizes[k] as usize > max_block {
                    *key = NONE;
                } else if sizes[k] >= 2 {
                    members[fill[k] as usize] = row as u32;
                    fill[k] += 1;
                }
            }
            for block in starts.windows(2) {
                let block = &members[block[0] as usize..block[1] as usize];
                pairs += if link {
                    let left = block
                        .iter()
                        .filter(|r| table.origin[**r as usize] == 0)
                        .count();
                    left * (block.len() - left)
                } else {
                    block.len() * (block.len() - 1) / 2
                };
            }
            blocking.keys.push(keys);
            blocking.members.push(members);
            blocking.starts.push(starts);
            blocking.pairs_per_rule.push(pairs);
        }
        blocking
    }

    /// Block `index` of `rule`: its records, in increasing order.
    fn block(&self, rule: usize, index: usize) -> &[u32] {
        let starts = &self.starts[rule];
        &self.members[rule][starts[index] as usize..starts[index + 1] as usize]
    }

    /// Rules.
    pub fn rules(&self) -> usize {
        self.keys.len()
    }

    /// Whether records `a` and `b` share a usable block of `rule`.
    #[inline]
    pub fn covers(&self, rule: usize, a: u32, b: u32) -> bool {
        let keys = &self.keys[rule];
        let key = keys[a as usize];
        key != NONE && key == keys[b as usize]
    }

    /// Splits the pairs of every rule into tasks of about `size` pairs, in order: each
    /// is (rule, block, first member's positions).
    pub fn tasks(&self, size: usize) -> Vec<Task> {
        let mut tasks = Vec::new();
        for (rule, starts) in self.starts.iter().enumerate() {
            let mut current = Task {
                rule,
                blocks: 0..0,
                split: None,
            };
            let mut pairs = 0;
            for index in 0..starts.len() - 1 {
                let n = (starts[index + 1] - starts[index]) as usize;
                let block_pairs = n * (n - 1) / 2;
                if block_pairs > size {
                    if !current.blocks.is_empty() {
                        tasks.push(current.clone());
                    }
                    // One block, split by the position of the pair's first record.
                    let mut start = 0;
                    while start < n {
                        let mut end = start;
                        let mut count = 0;
                        while end < n && count < size {
                            count += n - end - 1;
                            end += 1;
                        }
                        tasks.push(Task {
                            rule,
                            blocks: index..index + 1,
                            split: Some((start, end)),
                        });
                        start = end;
                    }
                    current = Task {
                        rule,
                        blocks: index + 1..index + 1,
                        split: None,
                    };
                    pairs = 0;
                    continue;
                }
                current.blocks.end = index + 1;
                pairs += block_pairs;
                if pairs >= size {
                    tasks.push(current.clone());
                    current = Task {
                        rule,
                        blocks: index + 1..index + 1,
                        split: None,
                    };
                    pairs = 0;
                }
            }
            if !current.blocks.is_empty() {
                tasks.push(current);
            }
        }
        tasks
    }

    /// Calls `emit(a, b)` for each pair of the task that no earlier rule generates, in a
    /// fixed order (blocks in order, then `a`, then `b`; `a < b`).
    pub fn pairs_of(&self, table: &Table, task: &Task, mut emit: impl FnMut(u32, u32)) {
        for members in task
            .blocks
            .clone()
            .map(|index| self.block(task.rule, index))
        {
            let (start, end) = task.split.unwrap_or((0, members.len()));
            for (i, &a) in members.iter().enumerate().take(end).skip(start) {
                for &b in &members[i + 1..] {
                    if self.link && table.origin[a as usize] == table.origin[b as usize] {
                        continue;
                    }
                    if (0..task.rule).any(|earlier| self.covers(earlier, a, b)) {
                        continue;
                    }
                    emit(a, b);
                }
            }
        }
    }
}

/// A share of the candidate pairs, to enumerate on one thread.
#[derive(Debug, Clone)]
pub struct Task {
    pub rule: usize,
    blocks: std::ops::Range<usize>,
    split: Option<(usize, usize)>,
}

/// Each record's key under a rule ([`NONE`] when a part is missing) and each key's
/// number of records. Keys are numbered in order of first appearance.
fn rule_keys(table: &Table, rule: &[KeyPart]) -> (Vec<u32>, Vec<u32>) {
    let parts: Vec<(usize, Option<usize>)> = rule
        .iter()
        .filter_map(|p| table.column(&p.column).map(|c| (c, p.prefix)))
        .collect();
    if parts.len() != rule.len() || parts.is_empty() {
        return (vec![NONE; table.len()], Vec::new());
    }
    // A part's code per record: the value's code, or the code of its prefix.
    let part_codes: Vec<Vec<u32>> = parts
        .iter()
        .map(|&(column, prefix)| {
            let codes = table.codes(column);
            let Some(n) = prefix else {
                return codes.to_vec();
            };
            let mut prefixes: HashMap<String, u32> = HashMap::new();
            let by_value: Vec<u32> = table
                .distinct(column)
                .iter()
                .map(|v| {
                    let p: String = v.chars().take(n).collect();
                    let next = prefixes.len() as u32 + 1;
                    *prefixes.entry(p).or_insert(next)
                })
                .collect();
            codes
                .iter()
                .map(|&c| if c == 0 { 0 } else { by_value[c as usize - 1] })
                .collect()
        })
        .collect();
    if let [codes] = &part_codes[..] {
        // One part: its codes are the keys (dense from 1).
        let mut sizes = vec![0u32; codes.iter().copied().max().unwrap_or(0) as usize];
        let keys = codes
            .iter()
            .map(|&code| {
                if code == 0 {
                    NONE
                } else {
                    sizes[code as usize - 1] += 1;
                    code - 1
                }
            })
            .collect();
        return (keys, sizes);
    }
    let mut numbering: HashMap<Vec<u32>, u32, FastHash> = HashMap::default();
    let mut sizes: Vec<u32> = Vec::new();
    let mut keys = Vec::with_capacity(table.len());
    let mut tuple = Vec::with_capacity(parts.len());
    for row in 0..table.len() {
        tuple.clear();
        tuple.extend(part_codes.iter().map(|codes| codes[row]));
        if tuple.contains(&0) {
            keys.push(NONE);
            continue;
        }
        let key = match numbering.get(&tuple) {
            Some(key) => *key,
            None => {
                let next = sizes.len() as u32;
                numbering.insert(tuple.clone(), next);
                sizes.push(0);
                next
            }
        };
        sizes[key as usize] += 1;
        keys.push(key);
    }
    (keys, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(column: &str) -> KeyPart {
        KeyPart {
            column: column.into(),
            prefix: None,
        }
    }

    #[test]
    fn each_pair_once_by_its_first_rule_and_large_blocks_skipped() {
        let records = [
            ("a", "rossi", "roma"),
            ("b", "rossi", "roma"),
            ("c", "rossi", "milano"),
            ("d", "bianchi", "milano"),
            ("e", "verdi", "torino"),
            ("f", "verdi", "torino"),
            ("g", "verdi", "torino"),
        ];
        let table = Table::new(
            vec!["surname".into(), "city".into()],
            records
                .iter()
                .map(|(id, s, c)| (id.to_string(), vec![s.to_string(), c.to_string()]))
                .collect(),
        );
        let rules = vec![vec![part("surname")], vec![part("city")]];
        let blocking = Blocking::new(&table, &rules, 2);
        // "rossi" (3) and "verdi" (3) exceed 2; "torino" (3) too.
        assert_eq!(blocking.report.skipped_blocks, 3);
        assert_eq!(blocking.pairs_per_rule, vec![0, 2]);
        let mut pairs = Vec::new();
        for task in blocking.tasks(1) {
            blocking.pairs_of(&table, &task, |a, b| pairs.push((a, b)));
        }
        assert_eq!(pairs, vec![(0, 1), (2, 3)]);

        let blocking = Blocking::new(&table, &rules, 10);
        let mut pairs = Vec::new();
        for task in blocking.tasks(2) {
            blocking.pairs_of(&table, &task, |a, b| pairs.push((a, b)));
        }
        pairs.sort_unstable();
        // (0, 1) is found by both rules but generated once; (4, 5), (4, 6), (5, 6) too.
        assert_eq!(
            pairs,
            vec![(0, 1), (0, 2), (1, 2), (2, 3), (4, 5), (4, 6), (5, 6)]
        );
    }
}
