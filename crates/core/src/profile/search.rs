//! Finding people by part of an identifier or of their name, as an agent types it.

use crate::identifier::Identifier;

/// What a search asks for: text an identifier or name must contain, in any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery(String);

impl SearchQuery {
    /// The fewest characters a query may have: fewer would match nearly everyone.
    pub const MIN_CHARS: usize = 2;

    /// The query for `text`, trimmed; `None` when shorter than [`Self::MIN_CHARS`].
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim().to_lowercase();
        (text.chars().count() >= Self::MIN_CHARS).then_some(SearchQuery(text))
    }

    /// Whether a person with these identifiers and this name matches: one of their
    /// identifier values, or their name, contains the query in any case.
    pub fn matches(&self, identifiers: &[Identifier], name: Option<&str>) -> bool {
        let contains = |text: &str| text.to_lowercase().contains(&self.0);
        identifiers.iter().any(|i| contains(&i.value)) || name.is_some_and(contains)
    }
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
}
