//! The Fellegi–Sunter model: estimation and scoring.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use super::blocking::{Blocking, BlockingReport};
use super::compare::EncodedColumn;
#[cfg(test)]
use super::settings::{Comparison, KeyPart};
use super::settings::{ComparisonKind, Settings, SettingsError, determines};
use super::{FastHash, Table};

/// A candidate pair with its match weight (log2 Bayes factor with the prior) and
/// probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    pub left: u32,
    pub right: u32,
    pub weight: f64,
    pub probability: f64,
}

/// The result of a linkage: the candidate pairs scored at least the minimum, and the
/// fitted model.
#[derive(Debug, Clone)]
pub struct Linkage {
    pub pairs: Vec<ScoredPair>,
    pub blocking: BlockingReport,
    /// Share of matches among candidate pairs.
    pub lambda: f64,
    /// `m[c][level]`, `u[c][level]`; level 0 (missing) is unused.
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    pub em_iterations: usize,
}

const EM_MAX_ITERATIONS: usize = 100;
/// Evidence, in bits, that makes a pair count as a near-certain match for the prior.
const CERTAIN_BITS: f64 = 16.0;
/// Rules with more candidate pairs per record than this only generate candidates.
const TRAINING_PAIRS_PER_RECORD: usize = 30;
const EM_TOLERANCE: f64 = 1e-7;
/// Candidate pairs per unit of parallel work.
const TASK_PAIRS: usize = 1 << 16;
/// Bits per comparison in a packed comparison vector (levels 0 to 4).
const LEVEL_BITS: u32 = 3;
/// Comparisons a packed vector holds.
pub const MAX_COMPARISONS: usize = (u64::BITS / LEVEL_BITS) as usize;

/// The level of comparison `c` in a packed comparison vector.
#[inline]
fn level_in(gamma: u64, c: usize) -> usize {
    ((gamma >> (LEVEL_BITS as usize * c)) & 0b111) as usize
}

/// Links the records of `table` under `settings`, keeping the pairs scored at least
/// `min_probability`; `seed` drives the random pairs that estimate u, so a run is
/// reproducible. The work is spread over the threads of the current rayon pool; the
/// result does not depend on how many there are.
pub fn link(
    table: &Table,
    settings: &Settings,
    seed: u64,
    min_probability: f64,
) -> Result<Linkage, SettingsError> {
    link_observed(table, settings, seed, min_probability, &mut |_| {})
}

/// [`link`], calling `phase_done` with the name of each phase as it ends (blocking,
/// comparing, training, scoring), for a caller that times them.
pub fn link_observed(
    table: &Table,
    settings: &Settings,
    seed: u64,
    min_probability: f64,
    phase_done: &mut dyn FnMut(&str),
) -> Result<Linkage, SettingsError> {
    settings.check(table)?;
    if settings.comparisons.len() > MAX_COMPARISONS {
        return Err(SettingsError::TooManyComparisons(
            settings.comparisons.len(),
            MAX_COMPARISONS,
        ));
    }
    let comparisons: Vec<(usize, ComparisonKind)> = settings
        .comparisons
        .iter()
        .map(|c| (table.column(&c.column).unwrap_or(0), c.kind))
        .collect();
    let encoded: Vec<EncodedColumn> = comparisons
        .iter()
        .map(|&(column, kind)| EncodedColumn::new(table, column, kind))
        .collect();
    let blocking = Blocking::new(table, &settings.blocking, settings.max_block_size);
    phase_done("blocking");

    // Within a block, records agree on the blocking columns by construction, so that
    // agreement says nothing: m is trained one rule at a time with the rule's own
    // columns held out, and each comparison's m averaged over the rules that leave it in.
    // Train on specific rules only: a rule whose candidates are mostly non-matches
    // (a common surname alone) lets EM mistake any correlated structure among them
    // (same city, nearby postcodes) for the matches.
    let specific = table.len().max(1) * TRAINING_PAIRS_PER_RECORD;
    let smallest = blocking.pairs_per_rule.iter().copied().min().unwrap_or(0);
    // Which rule columns and compared columns determine one another, found in parallel.
    let mut questions: Vec<(&str, &str)> = Vec::new();
    for rule in &settings.blocking {
        for part in rule {
            for c in &settings.comparisons {
                questions.push((&part.column, &c.column));
                questions.push((&c.column, &part.column));
            }
        }
    }
    questions.sort_unstable();
    questions.dedup();
    let answers: Vec<bool> = questions
        .par_iter()
        .map(|(a, b)| a != b && determines(table, a, b))
        .collect();
    let determines_cached = |a: &str, b: &str| {
        questions
            .binary_search(&(a, b))
            .is_ok_and(|index| answers[index])
    };
    // (rule, mask keeping the comparisons it does not hold out, held out per comparison)
    let mut training: Vec<(usize, u64, Vec<bool>)> = Vec::new();
    for (index, rule) in settings.blocking.iter().enumerate() {
        let pairs = blocking.pairs_per_rule[index];
        if pairs == 0 || pairs > specific.max(smallest) {
            continue;
        }
        // Held out: the rule's columns, and columns tied to them (the postcode of a
        // city), which agree among the rule's non-matches too.
        let held_out: Vec<bool> = settings
            .comparisons
            .iter()
            .map(|c| {
                rule.iter().any(|part| {
                    part.column == c.column
                        || determines_cached(&part.column, &c.column)
                        || determines_cached(&c.column, &part.column)
                })
            })
            .collect();
        if held_out.iter().all(|h| *h) {
            continue;
        }
        let keep = held_out
            .iter()
            .enumerate()
            .filter(|(_, out)| !**out)
            .fold(0u64, |mask, (c, _)| {
                mask | (0b111 << (LEVEL_BITS as usize * c))
            });
        training.push((index, keep, held_out));
    }

    // Every candidate pair, once, with its comparison vector; and how often each vector
    // occurs among all pairs and among each training rule's pairs (held-out levels 0).
    let tasks = blocking.tasks(TASK_PAIRS);
    let chunks: Vec<Chunk> = tasks
        .par_iter()
        .map(|task| {
            let mut chunk = Chunk {
                pairs: Vec::new(),
                gammas: Vec::new(),
                all: PatternCounts::default(),
                per_rule: vec![PatternCounts::default(); training.len()],
            };
            blocking.pairs_of(table, task, |a, b| {
                let gamma = encoded.iter().enumerate().fold(0u64, |gamma, (c, column)| {
                    gamma
                        | (u64::from(column.level(a as usize, b as usize))
                            << (LEVEL_BITS as usize * c))
                });
                chunk.pairs.push((a, b));
                chunk.gammas.push(gamma);
                *chunk.all.entry(gamma).or_default() += 1;
                for (t, (rule, keep, _)) in training.iter().enumerate() {
                    if blocking.covers(*rule, a, b) {
                        *chunk.per_rule[t].entry(gamma & keep).or_default() += 1;
                    }
                }
            });
            chunk
        })
        .collect();
    let mut blocking_report = blocking.report.clone();
    blocking_report.pairs = chunks.iter().map(|c| c.pairs.len()).sum();
    drop(blocking);
    let sorted = |counts: &mut dyn Iterator<Item = &PatternCounts>| -> Vec<(u64, u64)> {
        let mut merged: BTreeMap<u64, u64> = BTreeMap::new();
        for part in counts {
            for (gamma, count) in part {
                *merged.entry(*gamma).or_default() += count;
            }
        }
        merged.into_iter().collect()
    };
    let all_patterns = sorted(&mut chunks.iter().map(|c| &c.all));
    let rule_patterns: Vec<Vec<(u64, u64)>> = (0..training.len())
        .map(|t| sorted(&mut chunks.iter().map(|c| &c.per_rule[t])))
        .collect();
    phase_done("comparing");

    let u = estimate_u(table, &encoded, settings.u_sample_pairs, seed);
    let mut m_sum: Vec<Vec<f64>> = comparisons
        .iter()
        .map(|(_, k)| vec![0.0; k.levels().len() + 1])
        .collect();
    let mut m_sessions = vec![0usize; comparisons.len()];
    let mut em_iterations = 0;
    for ((_, _, held_out), patterns) in training.iter().zip(&rule_patterns) {
        let (m, _, iterations) = expectation_maximisation(patterns, &u, &comparisons);
        em_iterations += iterations;
        for (c, out) in held_out.iter().enumerate() {
            if !out {
                m_sessions[c] += 1;
                for (sum, value) in m_sum[c].iter_mut().zip(&m[c]) {
                    *sum += value;
                }
            }
        }
    }
    let prior_m = initial_m(&comparisons);
    let m: Vec<Vec<f64>> = m_sum
        .into_iter()
        .zip(m_sessions)
        .enumerate()
        .map(|(c, (sum, sessions))| {
            if sessions == 0 {
                prior_m[c].clone()
            } else {
                sum.into_iter().map(|v| v / sessions as f64).collect()
            }
        })
        .collect();
    // How many matches to expect: the pairs whose evidence alone is overwhelming (a
    // Bayes factor of 2^16 or more), as Splink estimates it from deterministic rules.
    // Among millions of candidates, a fitted share of matches overestimates: small
    // departures from independence add up over the non-matches.
    let expected_matches = all_patterns
        .iter()
        .filter(|(gamma, _)| {
            let bits: f64 = (0..comparisons.len())
                .map(|c| (c, level_in(*gamma, c)))
                .filter(|(_, g)| *g != 0)
                .map(|(c, g)| (m[c][g] / u[c][g]).log2())
                .sum();
            bits >= CERTAIN_BITS
        })
        .map(|(_, count)| *count)
        .sum::<u64>()
        .max(1) as f64;
    // The prior: expected matches over every pair that could be formed.
    let possible = if table.is_link() {
        let left = table.origin.iter().filter(|o| **o == 0).count() as f64;
        left * (table.len() as f64 - left)
    } else {
        let n = table.len() as f64;
        n * (n - 1.0) / 2.0
    };
    let lambda = (expected_matches / possible.max(1.0)).clamp(1e-12, 0.5);
    phase_done("training");

    // Each level's weight, and for comparisons adjusted by term frequency the weight of
    // exact agreement on each value: its share of the column's values (at least one
    // record's) in place of u.
    let floor = 1.0 / table.len().max(2) as f64;
    let level_weights: Vec<Vec<f64>> = m
        .iter()
        .zip(&u)
        .map(|(m, u)| m.iter().zip(u).map(|(m, u)| (m / u).log2()).collect())
        .collect();
    let exact_weights: Vec<Option<Vec<f64>>> = settings
        .comparisons
        .iter()
        .zip(&comparisons)
        .enumerate()
        .map(|(c, (comparison, (column, _)))| {
            comparison.term_frequency.then(|| {
                let mut counts = vec![0.0f64; table.distinct(*column).len() + 1];
                let mut total: f64 = 0.0;
                for &code in table.codes(*column) {
                    if code != 0 {
                        counts[code as usize] += 1.0;
                        total += 1.0;
                    }
                }
                counts
                    .iter()
                    .map(|count| (m[c][1] / (count / total.max(1.0)).max(floor)).log2())
                    .collect()
            })
        })
        .collect();
    let prior = (lambda / (1.0 - lambda)).log2();
    let score = |a: u32, gamma: u64| -> f64 {
        let mut weight = prior;
        for c in 0..encoded.len() {
            let g = level_in(gamma, c);
            if g == 0 {
                continue;
            }
            weight += match (&exact_weights[c], g) {
                (Some(exact), 1) => exact[encoded[c].codes[a as usize] as usize],
                _ => level_weights[c][g],
            };
        }
        weight
    };
    let scored: Vec<Vec<ScoredPair>> = chunks
        .into_par_iter()
        .map(|chunk| {
            chunk
                .pairs
                .iter()
                .zip(&chunk.gammas)
                .filter_map(|(&(left, right), &gamma)| {
                    let weight = score(left, gamma);
                    let probability = 1.0 / (1.0 + (-weight).exp2());
                    (probability >= min_probability).then_some(ScoredPair {
                        left,
                        right,
                        weight,
                        probability,
                    })
                })
                .collect()
        })
        .collect();
    let mut pairs: Vec<ScoredPair> = scored.into_iter().flatten().collect();
    pairs.sort_unstable_by_key(|p| (p.left, p.right));
    phase_done("scoring");
    Ok(Linkage {
        pairs,
        blocking: blocking_report,
        lambda,
        m,
        u,
        em_iterations,
    })
}

/// How often each comparison vector occurs.
type PatternCounts = HashMap<u64, u64, FastHash>;

/// The candidate pairs of one task, their comparison vectors and counts.
struct Chunk {
    pairs: Vec<(u32, u32)>,
    gammas: Vec<u64>,
    all: PatternCounts,
    per_rule: Vec<PatternCounts>,
}

/// How often random pairs — almost all non-matches — reach each level.
fn estimate_u(
    table: &Table,
    encoded: &[EncodedColumn],
    samples: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = table.len();
    let link = table.is_link();
    let possible = n * n.saturating_sub(1) / 2;
    // The pairs, drawn in order from the seed; counted in parallel.
    let mut drawn: Vec<(u32, u32)> = Vec::new();
    if n >= 2 && possible <= samples {
        // Few enough pairs to count them all.
        for a in 0..n {
            for b in a + 1..n {
                if link && table.origin[a] == table.origin[b] {
                    continue;
                }
                drawn.push((a as u32, b as u32));
            }
        }
    } else if n >= 2 {
        let mut tries = 0;
        while drawn.len() < samples && tries < samples * 4 {
            tries += 1;
            let (a, b) = (rng.usize(..n), rng.usize(..n));
            if a == b || (link && table.origin[a] == table.origin[b]) {
                continue;
            }
            drawn.push((a as u32, b as u32));
        }
    }
    let empty = || -> Vec<Vec<u64>> {
        encoded
            .iter()
            .map(|e| vec![0; e.kind.levels().len() + 1])
            .collect()
    };
    let counts = drawn
        .par_chunks(TASK_PAIRS)
        .map(|chunk| {
            let mut counts = empty();
            for &(a, b) in chunk {
                for (c, column) in encoded.iter().enumerate() {
                    counts[c][column.level(a as usize, b as usize) as usize] += 1;
                }
            }
            counts
        })
        .reduce(empty, |mut x, y| {
            for (row, other) in x.iter_mut().zip(y) {
                for (v, o) in row.iter_mut().zip(other) {
                    *v += o;
                }
            }
            x
        });
    counts
        .into_iter()
        .map(|levels| {
            let levels: Vec<f64> = levels.into_iter().map(|c| c as f64).collect();
            // Laplace smoothing over the non-missing levels; level 0 is unused.
            let total: f64 = levels[1..].iter().sum::<f64>() + (levels.len() - 1) as f64;
            let mut u: Vec<f64> = levels.iter().map(|c| (c + 1.0) / total).collect();
            u[0] = 1.0;
            u
        })
        .collect()
}

/// The starting m: matches mostly agree exactly.
fn initial_m(comparisons: &[(usize, ComparisonKind)]) -> Vec<Vec<f64>> {
    comparisons
        .iter()
        .map(|(_, kind)| {
            let levels = kind.levels().len();
            let mut row = vec![1.0; levels + 1];
            for (l, value) in row.iter_mut().enumerate().skip(1) {
                *value = if l == 1 {
                    0.9
                } else {
                    0.1 / (levels - 1) as f64
                };
            }
            row
        })
        .collect()
}

/// Fits m and the share of matches λ among `patterns` (packed comparison vectors and
/// their counts, in a fixed order), with u held fixed and level 0 (missing or held out)
/// neutral; returns (m, λ, iterations).
fn expectation_maximisation(
    patterns: &[(u64, u64)],
    u: &[Vec<f64>],
    comparisons: &[(usize, ComparisonKind)],
) -> (Vec<Vec<f64>>, f64, usize) {
    let mut m = initial_m(comparisons);
    let mut lambda = 0.3;
    let mut iterations = 0;
    let width = comparisons.len();
    for _ in 0..EM_MAX_ITERATIONS {
        iterations += 1;
        let mut expected_matches = 0.0;
        let mut total = 0.0;
        let mut m_counts: Vec<Vec<f64>> = m.iter().map(|row| vec![0.0; row.len()]).collect();
        for &(gamma, count) in patterns {
            let count = count as f64;
            let (mut pm, mut pu) = (lambda, 1.0 - lambda);
            for c in 0..width {
                let g = level_in(gamma, c);
                if g != 0 {
                    pm *= m[c][g];
                    pu *= u[c][g];
                }
            }
            let p = pm / (pm + pu);
            expected_matches += count * p;
            total += count;
            for (c, counts) in m_counts.iter_mut().enumerate() {
                counts[level_in(gamma, c)] += count * p;
            }
        }
        let new_lambda = (expected_matches / total.max(1.0)).clamp(1e-6, 1.0 - 1e-6);
        let mut change = (new_lambda - lambda).abs();
        for (c, counts) in m_counts.iter().enumerate() {
            let seen: f64 = counts[1..].iter().sum::<f64>() + 1e-6 * (counts.len() - 1) as f64;
            for l in 1..counts.len() {
                let value = (counts[l] + 1e-6) / seen;
                change = change.max((value - m[c][l]).abs());
                m[c][l] = value;
            }
        }
        lambda = new_lambda;
        if change < EM_TOLERANCE {
            break;
        }
    }
    (m, lambda, iterations)
}

#[cfg(test)]
mod tests;
