//! Finding people by part of an identifier or of their name, as an agent types it.

use crate::identifier::Identifier;

/// What a search asks for: text an identifier or name must contain, in any case. A
/// query that looks like a phone number as people write one (`347 555 0003`,
/// `+39 347-555-0003`, `0039 3475550003`) also matches phone numbers stored in E.164 by
/// its digits, as identifiers are normalised at intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    text: String,
    /// The query's digits when it is phone-like, without an international prefix
    /// (`+` or `00`).
    digits: Option<String>,
    /// The query read as a whole number in E.164, when the caller could (see
    /// [`SearchQuery::with_number`]).
    number: Option<String>,
}

impl SearchQuery {
    /// The fewest characters a query may have: fewer would match nearly everyone.
    pub const MIN_CHARS: usize = 2;

    /// The fewest digits a phone-like query needs before it is matched by its digits.
    const MIN_DIGITS: usize = 3;

    /// The query for `text`, trimmed; `None` when shorter than [`Self::MIN_CHARS`].
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim().to_lowercase();
        (text.chars().count() >= Self::MIN_CHARS).then(|| SearchQuery {
            digits: phone_digits(&text),
            number: None,
            text,
        })
    }

    /// The query as typed, trimmed and in lower case.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the query looks like a phone number (or part of one).
    pub fn is_phone_like(&self) -> bool {
        self.digits.is_some()
    }

    /// The query that also matches `number`, the query read as a whole phone number in
    /// E.164 by the identity rules (which know the default region, so a national number
    /// with a trunk prefix such as `07700 900123` finds `+447700900123`).
    pub fn with_number(mut self, number: Option<String>) -> Self {
        self.number = number;
        self
    }

    /// Whether a person with these identifiers and this name matches: one of their
    /// identifier values, or their name, contains the query in any case; or, for a
    /// phone-like query, one of their phone numbers contains its digits or is the number.
    pub fn matches(&self, identifiers: &[Identifier], name: Option<&str>) -> bool {
        let contains = |text: &str| text.to_lowercase().contains(&self.text);
        identifiers.iter().any(|i| {
            contains(&i.value)
                || self.number.as_deref() == Some(&*i.value)
                || (self.digits.as_deref())
                    .zip(i.value.strip_prefix('+'))
                    .is_some_and(|(digits, e164)| e164.contains(digits))
        }) || name.is_some_and(contains)
    }
}

/// The digits of a phone-like query: only digits, spaces, dashes, dots, slashes and
/// brackets, perhaps after `+`, with at least [`SearchQuery::MIN_DIGITS`] digits. An
/// international prefix (`+` or `00`) is dropped, as E.164 values hold the country code
/// after their `+`.
fn phone_digits(text: &str) -> Option<String> {
    let body = text.strip_prefix('+').unwrap_or(text);
    let phone_like = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '/' | '(' | ')'));
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    if !phone_like || digits.len() < SearchQuery::MIN_DIGITS {
        return None;
    }
    let digits = match digits.strip_prefix("00") {
        Some(rest) if !text.starts_with('+') && rest.len() >= SearchQuery::MIN_DIGITS => rest,
        _ => &digits,
    };
    Some(digits.to_string())
}

/// The identifier types a search shows of each person found (others, such as anonymous
/// or device ids, mean little to an agent).
pub const SHOWN_IDENTIFIER_TYPES: [&str; 4] = ["email", "phone", "user_id", "loyalty_id"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_matches_part_of_an_identifier_or_of_the_name_in_any_case() {
        assert_eq!(SearchQuery::new(" a "), None, "too short");
        let query = SearchQuery::new(" ROSSI ").unwrap();
        let email = Identifier {
            kind: "email".to_string().into(),
            value: "g.rossi@example.com".into(),
        };
        assert!(query.matches(std::slice::from_ref(&email), None));
        assert!(query.matches(&[], Some("Giulia Rossi")));
        assert!(!query.matches(&[], Some("Giulia Bianchi")));
        assert!(!query.matches(&[], None));
    }

    #[test]
    fn a_phone_number_is_found_however_it_is_written() {
        let phone = Identifier {
            kind: "phone".to_string().into(),
            value: "+393475550003".into(),
        };
        let found = |q: &str| {
            SearchQuery::new(q)
                .unwrap()
                .matches(std::slice::from_ref(&phone), None)
        };
        for written in [
            "3475550003",
            "347 555 0003",
            "347-555-0003",
            "(347) 555.0003",
            "+39 347 555 0003",
            "0039 347 555 0003",
            "+393475550003",
            "347 555",
        ] {
            assert!(found(written), "{written:?} should find the number");
        }
        for other in [
            "347 555 0004",
            "+44 347 555 0003",
            "0044 3475550003",
            "347 x 555",
        ] {
            assert!(!found(other), "{other:?} should not find the number");
        }
        let national = SearchQuery::new("07700 900123")
            .unwrap()
            .with_number(Some("+447700900123".into()));
        let uk = Identifier {
            kind: "phone".to_string().into(),
            value: "+447700900123".into(),
        };
        assert!(
            national.matches(&[uk], None),
            "the whole number, read by the rules"
        );
        assert!(!SearchQuery::new("rossi").unwrap().is_phone_like());
    }
}
