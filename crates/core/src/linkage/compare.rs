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
    match kind {
        ComparisonKind::Exact => 2,
        ComparisonKind::Name => jaro_winkler_level(a, b, 0.92, 0.80),
        ComparisonKind::Text => jaro_winkler_level(a, b, 0.90, 0.70),
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
}

fn jaro_winkler_level(a: &str, b: &str, close: f64, far: f64) -> u8 {
    let similarity = strsim::jaro_winkler(a, b);
    if similarity >= close {
        2
    } else if similarity >= far {
        3
    } else {
        4
    }
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
}
