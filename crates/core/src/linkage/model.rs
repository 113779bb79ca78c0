//! The Fellegi–Sunter model: estimation and scoring.

use std::collections::HashMap;

use super::Table;
use super::blocking::{BlockingReport, Candidates, candidate_pairs};
use super::compare::level;
#[cfg(test)]
use super::settings::{Comparison, KeyPart};
use super::settings::{ComparisonKind, Settings, SettingsError, determines};

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

/// Links the records of `table` under `settings`, keeping the pairs scored at least
/// `min_probability`; `seed` drives the random pairs that estimate u, so a run is
/// reproducible.
pub fn link(
    table: &Table,
    settings: &Settings,
    seed: u64,
    min_probability: f64,
) -> Result<Linkage, SettingsError> {
    settings.check(table)?;
    let comparisons: Vec<(usize, ComparisonKind)> = settings
        .comparisons
        .iter()
        .map(|c| (table.column(&c.column).unwrap_or(0), c.kind))
        .collect();
    let Candidates {
        per_rule,
        all: pairs,
        report: blocking,
    } = candidate_pairs(table, &settings.blocking, settings.max_block_size);
    let gammas = compare_pairs(table, &comparisons, &pairs);
    let u = estimate_u(table, &comparisons, settings.u_sample_pairs, seed);
    let width = comparisons.len().max(1);

    // Within a block, records agree on the blocking columns by construction, so that
    // agreement says nothing: m is trained one rule at a time with the rule's own
    // columns held out, and each comparison's m averaged over the rules that leave it in.
    let mut m_sum: Vec<Vec<f64>> = comparisons
        .iter()
        .map(|(_, k)| vec![0.0; k.levels().len() + 1])
        .collect();
    let mut m_sessions = vec![0usize; comparisons.len()];
    let mut em_iterations = 0;
    // Train on specific rules only: a rule whose candidates are mostly non-matches
    // (a common surname alone) lets EM mistake any correlated structure among them
    // (same city, nearby postcodes) for the matches.
    let specific = table.len().max(1) * TRAINING_PAIRS_PER_RECORD;
    let smallest = per_rule.iter().map(Vec::len).min().unwrap_or(0);
    for (rule, rule_pairs) in settings.blocking.iter().zip(&per_rule) {
        if rule_pairs.len() > specific.max(smallest) {
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
                        || determines(table, &part.column, &c.column)
                        || determines(table, &c.column, &part.column)
                })
            })
            .collect();
        let mut patterns: HashMap<Vec<u8>, u64> = HashMap::new();
        for pair in rule_pairs {
            let Ok(index) = pairs.binary_search(pair) else {
                continue;
            };
            let mut gamma = gammas[index * width..(index + 1) * width].to_vec();
            for (c, out) in held_out.iter().enumerate() {
                if *out {
                    gamma[c] = 0;
                }
            }
            *patterns.entry(gamma).or_default() += 1;
        }
        if patterns.is_empty() || held_out.iter().all(|h| *h) {
            continue;
        }
        let (m, _, iterations) = expectation_maximisation(&patterns, &u, &comparisons);
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
    let expected_matches = gammas
        .chunks_exact(width)
        .filter(|gamma| {
            let bits: f64 = gamma
                .iter()
                .enumerate()
                .filter(|(_, g)| **g != 0)
                .map(|(c, g)| (m[c][*g as usize] / u[c][*g as usize]).log2())
                .sum();
            bits >= CERTAIN_BITS
        })
        .count()
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

    // Term frequencies of values, for comparisons that adjust exact matches by them.
    let frequencies: Vec<Option<HashMap<&str, f64>>> = settings
        .comparisons
        .iter()
        .zip(&comparisons)
        .map(|(c, (column, _))| {
            c.term_frequency.then(|| {
                let mut counts: HashMap<&str, f64> = HashMap::new();
                let mut total: f64 = 0.0;
                for value in table.values_of(*column) {
                    *counts.entry(value).or_default() += 1.0;
                    total += 1.0;
                }
                counts.values_mut().for_each(|c| *c /= total.max(1.0));
                counts
            })
        })
        .collect();
    let floor = 1.0 / table.len().max(2) as f64;
    let prior = (lambda / (1.0 - lambda)).log2();
    let scored = pairs
        .iter()
        .zip(gammas.chunks_exact(width))
        .map(|(&(left, right), gamma)| {
            let mut weight = prior;
            for (c, &g) in gamma.iter().enumerate() {
                if g == 0 {
                    continue;
                }
                let g = g as usize;
                let u_value = match (&frequencies[c], g) {
                    (Some(tf), 1) => table
                        .value(left as usize, comparisons[c].0)
                        .and_then(|v| tf.get(v))
                        .copied()
                        .unwrap_or(u[c][1])
                        .max(floor),
                    _ => u[c][g],
                };
                weight += (m[c][g] / u_value).log2();
            }
            ScoredPair {
                left,
                right,
                weight,
                probability: 1.0 / (1.0 + (-weight).exp2()),
            }
        })
        .filter(|p| p.probability >= min_probability)
        .collect();
    Ok(Linkage {
        pairs: scored,
        blocking,
        lambda,
        m,
        u,
        em_iterations,
    })
}

/// The comparison levels of every pair, row-major, computed on two threads.
fn compare_pairs(
    table: &Table,
    comparisons: &[(usize, ComparisonKind)],
    pairs: &[(u32, u32)],
) -> Vec<u8> {
    let width = comparisons.len();
    let compare = |chunk: &[(u32, u32)]| {
        let mut out = Vec::with_capacity(chunk.len() * width);
        for &(a, b) in chunk {
            for &(column, kind) in comparisons {
                out.push(level(
                    kind,
                    table.value(a as usize, column),
                    table.value(b as usize, column),
                ));
            }
        }
        out
    };
    if pairs.len() < 10_000 {
        return compare(pairs);
    }
    let (first, second) = pairs.split_at(pairs.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| compare(second));
        let mut out = compare(first);
        out.extend(other.join().unwrap_or_default());
        out
    })
}

/// How often random pairs — almost all non-matches — reach each level.
fn estimate_u(
    table: &Table,
    comparisons: &[(usize, ComparisonKind)],
    samples: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = table.len();
    let mut counts: Vec<Vec<f64>> = comparisons
        .iter()
        .map(|(_, k)| vec![0.0; k.levels().len() + 1])
        .collect();
    let link = table.is_link();
    let possible = n * n.saturating_sub(1) / 2;
    if n >= 2 && possible <= samples {
        // Few enough pairs to count them all.
        for a in 0..n {
            for b in a + 1..n {
                if link && table.origin[a] == table.origin[b] {
                    continue;
                }
                for (c, &(column, kind)) in comparisons.iter().enumerate() {
                    counts[c]
                        [level(kind, table.value(a, column), table.value(b, column)) as usize] +=
                        1.0;
                }
            }
        }
    } else if n >= 2 {
        let mut drawn = 0;
        let mut tries = 0;
        while drawn < samples && tries < samples * 4 {
            tries += 1;
            let (a, b) = (rng.usize(..n), rng.usize(..n));
            if a == b || (link && table.origin[a] == table.origin[b]) {
                continue;
            }
            drawn += 1;
            for (c, &(column, kind)) in comparisons.iter().enumerate() {
                counts[c][level(kind, table.value(a, column), table.value(b, column)) as usize] +=
                    1.0;
            }
        }
    }
    counts
        .into_iter()
        .map(|levels| {
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

/// Fits m and the share of matches λ among `patterns`, with u held fixed and level 0
/// (missing or held out) neutral; returns (m, λ, iterations).
fn expectation_maximisation(
    patterns: &HashMap<Vec<u8>, u64>,
    u: &[Vec<f64>],
    comparisons: &[(usize, ComparisonKind)],
) -> (Vec<Vec<f64>>, f64, usize) {
    let mut m = initial_m(comparisons);
    let mut lambda = 0.3;
    let mut iterations = 0;
    for _ in 0..EM_MAX_ITERATIONS {
        iterations += 1;
        let mut expected_matches = 0.0;
        let mut total = 0.0;
        let mut m_counts: Vec<Vec<f64>> = m.iter().map(|row| vec![0.0; row.len()]).collect();
        for (gamma, &count) in patterns {
            let count = count as f64;
            let (mut pm, mut pu) = (lambda, 1.0 - lambda);
            for (c, &g) in gamma.iter().enumerate() {
                if g != 0 {
                    pm *= m[c][g as usize];
                    pu *= u[c][g as usize];
                }
            }
            let p = pm / (pm + pu);
            expected_matches += count * p;
            total += count;
            for (c, &g) in gamma.iter().enumerate() {
                m_counts[c][g as usize] += count * p;
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
