//! Comparing two values into a level.

use jiff::civil::Date;

use super::settings::ComparisonKind;

/// The level of a pair on one comparison: 0 when either value is missing, 1 for exact
/// agreement, then the kind's levels in order, the last being "else".
pub fn level(kind: ComparisonKind, a: Option<&str>, b: Option<&str>) -> u8 {
    let (Some(a), Some(b)) = (a, b) else {
        return 0;
    };
    if a == b {
        return 1;
    }
    let (ca, cb): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let days = |text: &str| parse_date(text).map(day_number);
    level_of(kind, &ca, &cb, days(a), days(b))
}

/// The level of two different, present values, from their characters and (for dates)
/// day numbers.
fn level_of(kind: ComparisonKind, a: &[char], b: &[char], da: Option<i32>, db: Option<i32>) -> u8 {
    match kind {
        ComparisonKind::Exact => 2,
        ComparisonKind::Name => jaro_winkler_level(a, b, 0.92, 0.80),
        ComparisonKind::Text => jaro_winkler_level(a, b, 0.90, 0.70),
        ComparisonKind::Code => {
            // The distance is at least the difference in length.
            if a.len().abs_diff(b.len()) > 2 || bag_distance(a, b) > 2 {
                return 4;
            }
            match damerau_levenshtein(a, b) {
                1 => 2,
                2 => 3,
                _ => 4,
            }
        }
        ComparisonKind::Date => {
            if a.len().abs_diff(b.len()) <= 1
                && bag_distance(a, b) <= 1
                && damerau_levenshtein(a, b) == 1
            {
                return 2;
            }
            match (da, db) {
                (Some(x), Some(y)) if (x - y).abs() <= 30 => 3,
                _ => 4,
            }
        }
    }
}

fn jaro_winkler_level(a: &[char], b: &[char], close: f64, far: f64) -> u8 {
    // Jaro's matches are at most the characters the two share (as multisets), and
    // Winkler's bonus at most 0.4 of the rest: when even that falls short, "else".
    let shared = (a.len() + b.len() - bag_difference(a, b)) / 2;
    if !a.is_empty() && !b.is_empty() {
        let m = shared as f64;
        let jaro_bound = (m / a.len() as f64 + m / b.len() as f64 + 1.0) / 3.0;
        if jaro_bound + 0.4 * (1.0 - jaro_bound) < far - 1e-9 {
            return 4;
        }
    }
    let similarity = jaro_winkler(a, b);
    if similarity >= close {
        2
    } else if similarity >= far {
        3
    } else {
        4
    }
}

/// A column's distinct values made ready to compare: their characters and, for dates,
/// day numbers, computed once instead of once per pair.
#[derive(Debug, Clone)]
pub struct EncodedColumn<'t> {
    pub kind: ComparisonKind,
    /// One code per record, 0 = missing (as [`Table::codes`](super::Table::codes)).
    pub codes: &'t [u32],
    chars: Vec<char>,
    /// `chars[starts[k - 1]..starts[k]]` are the characters of code `k`.
    starts: Vec<u32>,
    days: Vec<Option<i32>>,
}

impl<'t> EncodedColumn<'t> {
    pub fn new(table: &'t super::Table, column: usize, kind: ComparisonKind) -> Self {
        let distinct = table.distinct(column);
        let mut chars = Vec::new();
        let mut starts = Vec::with_capacity(distinct.len() + 1);
        starts.push(0);
        for value in distinct {
            chars.extend(value.chars());
            starts.push(chars.len() as u32);
        }
        let days = if kind == ComparisonKind::Date {
            distinct
                .iter()
                .map(|v| parse_date(v).map(day_number))
                .collect()
        } else {
            Vec::new()
        };
        EncodedColumn {
            kind,
            codes: table.codes(column),
            chars,
            starts,
            days,
        }
    }

    fn chars_of(&self, code: u32) -> &[char] {
        let k = code as usize;
        &self.chars[self.starts[k - 1] as usize..self.starts[k] as usize]
    }

    /// The level of records `a` and `b`: the same as [`level`] on their values.
    #[inline]
    pub fn level(&self, a: usize, b: usize) -> u8 {
        self.level_of_codes(self.codes[a], self.codes[b])
    }

    /// The level of two codes.
    pub fn level_of_codes(&self, a: u32, b: u32) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        if a == b {
            return 1;
        }
        let day = |code: u32| self.days.get(code as usize - 1).copied().flatten();
        level_of(
            self.kind,
            self.chars_of(a),
            self.chars_of(b),
            day(a),
            day(b),
        )
    }
}

fn day_number(date: Date) -> i32 {
    date.since(Date::constant(1970, 1, 1))
        .map(|span| span.get_days())
        .unwrap_or(i32::MAX / 2)
}

/// Jaro–Winkler similarity, the same arithmetic as `strsim::jaro_winkler` (so the same
/// levels), over characters decoded once.
pub fn jaro_winkler(a: &[char], b: &[char]) -> f64 {
    let sim = jaro(a, b);
    if sim > 0.7 {
        let prefix = a.iter().take(4).zip(b).take_while(|(x, y)| x == y).count();
        sim + 0.1 * prefix as f64 * (1.0 - sim)
    } else {
        sim
    }
}

fn jaro(a: &[char], b: &[char]) -> f64 {
    let (a_len, b_len) = (a.len(), b.len());
    if a_len == 0 && b_len == 0 {
        return 1.0;
    } else if a_len == 0 || b_len == 0 {
        return 0.0;
    }
    let search_range = (a_len.max(b_len) / 2).saturating_sub(1);
    let mut stack = [false; 128];
    let mut heap = Vec::new();
    let flags: &mut [bool] = if a_len + b_len <= stack.len() {
        &mut stack[..a_len + b_len]
    } else {
        heap.resize(a_len + b_len, false);
        &mut heap
    };
    let (a_flags, b_flags) = flags.split_at_mut(a_len);
    let mut matches = 0usize;
    for (i, x) in a.iter().enumerate() {
        let low = i.saturating_sub(search_range);
        let high = b_len.min(i + search_range + 1);
        for j in low..high {
            if *x == b[j] && !b_flags[j] {
                a_flags[i] = true;
                b_flags[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0;
    for (i, x) in a.iter().enumerate() {
        if a_flags[i] {
            while !b_flags[j] {
                j += 1;
            }
            if *x != b[j] {
                transpositions += 1;
            }
            j += 1;
        }
    }
    transpositions /= 2;
    ((matches as f64 / a_len as f64)
        + (matches as f64 / b_len as f64)
        + ((matches - transpositions) as f64 / matches as f64))
        / 3.0
}

/// The characters of `a` not in `b` plus those of `b` not in `a`, as multisets.
fn bag_difference(a: &[char], b: &[char]) -> usize {
    let mut counts = [0i8; 128];
    let mut other = 0usize;
    if a.len() + b.len() > 120 {
        return slow_bag_difference(a, b);
    }
    for c in a {
        match usize::try_from(u32::from(*c)) {
            Ok(i) if i < 128 => counts[i] += 1,
            _ => other += 1,
        }
    }
    for c in b {
        match usize::try_from(u32::from(*c)) {
            Ok(i) if i < 128 => counts[i] -= 1,
            _ => other += 1,
        }
    }
    if other > 0 {
        return slow_bag_difference(a, b);
    }
    counts.iter().map(|c| c.unsigned_abs() as usize).sum()
}

fn slow_bag_difference(a: &[char], b: &[char]) -> usize {
    let mut a: Vec<char> = a.to_vec();
    let mut b: Vec<char> = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    a.len() + b.len() - 2 * shared
}

/// A lower bound of the Damerau–Levenshtein distance: each edit adds or removes at most
/// one character on each side of the multisets' difference, a transposition none.
fn bag_distance(a: &[char], b: &[char]) -> usize {
    let difference = bag_difference(a, b);
    // difference = only-in-a + only-in-b, and |only-in-a − only-in-b| = |len a − len b|.
    (difference + a.len().abs_diff(b.len())) / 2
}

/// The (unrestricted) Damerau–Levenshtein distance, as `strsim::damerau_levenshtein`:
/// insertions, deletions, substitutions and transpositions of adjacent characters, with
/// edits allowed between transposed ones. Lowrance–Wagner, on the stack for short values.
pub fn damerau_levenshtein(a: &[char], b: &[char]) -> usize {
    let (la, lb) = (a.len(), b.len());
    if la == 0 {
        return lb;
    }
    if lb == 0 {
        return la;
    }
    const SHORT: usize = 34;
    let width = lb + 2;
    let mut stack = [0usize; SHORT * 8];
    let mut heap = Vec::new();
    let h: &mut [usize] = if (la + 2) * width <= stack.len() {
        &mut stack[..(la + 2) * width]
    } else {
        heap.resize((la + 2) * width, 0);
        &mut heap
    };
    let max = la + lb;
    h[0] = max;
    for i in 0..=la {
        h[(i + 1) * width] = max;
        h[(i + 1) * width + 1] = i;
    }
    for j in 0..=lb {
        h[j + 1] = max;
        h[width + j + 1] = j;
    }
    // The last row where each character of `a` was seen (characters are few: a list).
    let mut seen: Vec<(char, usize)> = Vec::new();
    for i in 1..=la {
        let mut last_match_column = 0;
        for j in 1..=lb {
            let i1 = seen
                .iter()
                .find(|(c, _)| *c == b[j - 1])
                .map_or(0, |(_, row)| *row);
            let j1 = last_match_column;
            let cost = if a[i - 1] == b[j - 1] {
                last_match_column = j;
                0
            } else {
                1
            };
            let substitution = h[i * width + j] + cost;
            let insertion = h[(i + 1) * width + j] + 1;
            let deletion = h[i * width + j + 1] + 1;
            let transposition = h[i1 * width + j1] + (i - i1 - 1) + 1 + (j - j1 - 1);
            h[(i + 1) * width + j + 1] =
                substitution.min(insertion).min(deletion).min(transposition);
        }
        match seen.iter_mut().find(|(c, _)| *c == a[i - 1]) {
            Some(entry) => entry.1 = i,
            None => seen.push((a[i - 1], i)),
        }
    }
    h[(la + 1) * width + lb + 1]
}

/// Reads `YYYYMMDD`, `YYYY-MM-DD` or `DD/MM/YYYY`.
pub fn parse_date(text: &str) -> Option<Date> {
    let text = text.trim();
    if text.len() == 8 && text.chars().all(|c| c.is_ascii_digit()) {
        let (y, rest) = text.split_at(4);
        let (m, d) = rest.split_at(2);
        return Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok();
    }
    if let Ok(date) = text.parse::<Date>() {
        return Some(date);
    }
    let parts: Vec<&str> = text.split('/').collect();
    if let [d, m, y] = parts[..] {
        return Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_per_kind() {
        use ComparisonKind::*;
        assert_eq!(level(Name, Some("giulia"), None), 0);
        assert_eq!(level(Name, Some("giulia"), Some("giulia")), 1);
        assert_eq!(level(Name, Some("giulia"), Some("guilia")), 2);
        assert_eq!(level(Name, Some("giulia"), Some("marco")), 4);
        assert_eq!(
            level(Code, Some("00184"), Some("00148")),
            2,
            "a swap is one edit"
        );
        assert_eq!(level(Code, Some("00184"), Some("00199")), 3);
        assert_eq!(level(Date, Some("19850412"), Some("19850421")), 2);
        assert_eq!(level(Date, Some("1985-04-12"), Some("1985-05-02")), 3);
        assert_eq!(level(Date, Some("19850412"), Some("19900101")), 4);
        assert_eq!(level(Exact, Some("roma"), Some("milano")), 2);
        assert_eq!(parse_date("12/04/1985"), parse_date("19850412"));
    }

    /// The reimplementations agree with `strsim` to the bit, on random short strings
    /// over a small alphabet (where repeats and transpositions are common).
    #[test]
    fn same_distances_as_strsim() {
        let mut rng = fastrand::Rng::with_seed(3);
        let alphabet: Vec<char> = "abcde12é".chars().collect();
        let word = |rng: &mut fastrand::Rng| -> String {
            (0..rng.usize(0..9))
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        };
        for _ in 0..20_000 {
            let (a, b) = (word(&mut rng), word(&mut rng));
            let (ca, cb): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            assert_eq!(
                damerau_levenshtein(&ca, &cb),
                strsim::damerau_levenshtein(&a, &b),
                "{a:?} {b:?}"
            );
            assert_eq!(
                jaro_winkler(&ca, &cb).to_bits(),
                strsim::jaro_winkler(&a, &b).to_bits(),
                "{a:?} {b:?}"
            );
        }
        // Levels, with their shortcuts, as computed before with `strsim` itself.
        let reference = |kind: ComparisonKind, a: &str, b: &str| -> u8 {
            let jw = |close, far| {
                let s = strsim::jaro_winkler(a, b);
                if s >= close {
                    2
                } else if s >= far {
                    3
                } else {
                    4
                }
            };
            match kind {
                ComparisonKind::Exact => 2,
                ComparisonKind::Name => jw(0.92, 0.80),
                ComparisonKind::Text => jw(0.90, 0.70),
                ComparisonKind::Code => match strsim::damerau_levenshtein(a, b) {
                    1 => 2,
                    2 => 3,
                    _ => 4,
                },
                ComparisonKind::Date => {
                    if strsim::damerau_levenshtein(a, b) == 1 {
                        return 2;
                    }
                    match (parse_date(a), parse_date(b)) {
                        (Some(x), Some(y)) if (x - y).get_days().abs() <= 30 => 3,
                        _ => 4,
                    }
                }
            }
        };
        let digits: Vec<char> = "0123456789".chars().collect();
        for _ in 0..20_000 {
            let (a, b) = (word(&mut rng), word(&mut rng));
            let (a, b) = (format!("{a}x"), format!("{b}x"));
            for kind in [
                ComparisonKind::Name,
                ComparisonKind::Text,
                ComparisonKind::Code,
            ] {
                assert_eq!(
                    level(kind, Some(&a), Some(&b)),
                    if a == b { 1 } else { reference(kind, &a, &b) },
                    "{kind:?} {a:?} {b:?}"
                );
            }
            let date = |rng: &mut fastrand::Rng| -> String {
                let mut d: Vec<char> = "19850412".chars().collect();
                for _ in 0..rng.usize(0..3) {
                    d[rng.usize(..8)] = digits[rng.usize(..10)];
                }
                d.into_iter().collect()
            };
            let (a, b) = (date(&mut rng), date(&mut rng));
            assert_eq!(
                level(ComparisonKind::Date, Some(&a), Some(&b)),
                if a == b {
                    1
                } else {
                    reference(ComparisonKind::Date, &a, &b)
                },
                "{a:?} {b:?}"
            );
        }
        let long: String = "abcdefghij".repeat(5);
        let other: String = "abdcefghij".repeat(5);
        let (ca, cb): (Vec<char>, Vec<char>) = (long.chars().collect(), other.chars().collect());
        assert_eq!(
            damerau_levenshtein(&ca, &cb),
            strsim::damerau_levenshtein(&long, &other)
        );
    }
}
