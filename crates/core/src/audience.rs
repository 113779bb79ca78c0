//! Audiences: who a report or a message is about, as a CEL expression over a person's
//! profile — `traits.city == "Roma" && computed.orders_90d > 0`, `open_cases > 0`,
//! `consents.promotional`, `stage == "loyal"`, `open_case_hours > 48`.
//!
//! The variables an expression can use are fixed ([`VARIABLES`]) and checked when the
//! expression is parsed, so a typo is an error at once rather than an empty audience.
//! An absent trait is not an error: a person without it is not in the audience (write
//! `has(traits.city)` to test for it).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::profile::ProfileFacts;

/// The variables an expression may use.
pub const VARIABLES: [&str; 8] = [
    "traits",
    "computed",
    "stage",
    "open_cases",
    "open_case_hours",
    "resolved_cases",
    "consents",
    "preferred_channel",
];

/// Why an expression is not acceptable, or could not be evaluated for a person.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudienceError {
    #[error("the expression is empty")]
    Empty,
    #[error("the expression does not parse: {0}")]
    Syntax(String),
    #[error("the expression uses {0:?}, which is not a profile variable; use {list}", list = VARIABLES.join(", "))]
    UnknownVariable(String),
    #[error("the expression gave {0} rather than true or false")]
    NotABoolean(String),
    #[error("the expression failed: {0}")]
    Evaluation(String),
}

/// A parsed audience expression.
pub struct Audience {
    text: String,
    program: cel::Program,
    /// The profile variables the expression uses: only these are computed for a person.
    uses: Vec<&'static str>,
}

impl std::fmt::Debug for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Audience").field(&self.text).finish()
    }
}

impl Audience {
    /// Parses and checks an expression.
    pub fn parse(text: &str) -> Result<Self, AudienceError> {
        Self::parse_with(text, &[])
    }

    /// Parses and checks an expression that may also use the `extra` variables (a
    /// suppression rule's `message`).
    pub fn parse_with(text: &str, extra: &[&str]) -> Result<Self, AudienceError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AudienceError::Empty);
        }
        // The parser reports errors by panicking on some inputs; contain it.
        let compiled = std::panic::catch_unwind(|| cel::Program::compile(text))
            .map_err(|_| AudienceError::Syntax("unreadable expression".into()))?;
        let program = compiled.map_err(|e| AudienceError::Syntax(e.to_string()))?;
        let references = program.references();
        let used = references.variables();
        if let Some(unknown) = used
            .iter()
            .find(|v| !VARIABLES.contains(v) && !extra.contains(v))
        {
            return Err(AudienceError::UnknownVariable(unknown.to_string()));
        }
        let uses = VARIABLES.into_iter().filter(|v| used.contains(v)).collect();
        Ok(Audience {
            text: text.to_string(),
            program,
            uses,
        })
    }

    /// The profile variables the expression reads.
    pub fn variables(&self) -> &[&'static str] {
        &self.uses
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the person is in the audience. A missing trait or key means "no"; any
    /// other failure is an error (the caller decides what it costs).
    pub fn matches(&self, person: &ProfileFacts) -> Result<bool, AudienceError> {
        self.matches_with(person, Vec::new())
    }

    /// As [`Self::matches`], with the values of the extra variables.
    pub fn matches_with(
        &self,
        person: &ProfileFacts,
        extra: Vec<(&'static str, Value)>,
    ) -> Result<bool, AudienceError> {
        // The built-in functions are registered once; each evaluation adds only the
        // person's variables, in a scope of its own.
        static ROOT: std::sync::LazyLock<cel::Context<'static>> =
            std::sync::LazyLock::new(cel::Context::default);
        let mut context = ROOT.new_inner_scope();
        let used = self.uses.iter().map(|name| (*name, variable(person, name)));
        for (name, value) in used.chain(extra) {
            let value =
                cel::to_value(value).map_err(|e| AudienceError::Evaluation(e.to_string()))?;
            context.add_variable_from_value(name, value);
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(AudienceError::NotABoolean(format!("{other:?}"))),
            Err(cel::ExecutionError::NoSuchKey(_)) => Ok(false),
            Err(e) => Err(AudienceError::Evaluation(e.to_string())),
        }
    }
}

/// The value of one of the [`VARIABLES`] for a person.
fn variable(person: &ProfileFacts, name: &str) -> Value {
    match name {
        "traits" => json!(person.traits),
        "computed" => json!(person.computed_traits),
        "stage" => json!(person.lifecycle_stage),
        "open_cases" => json!(person.open_cases.len()),
        "open_case_hours" => json!(person.open_case_hours),
        "resolved_cases" => json!(person.resolved_cases),
        "consents" => {
            // A purpose is consented when it is on some channel: each line is already
            // decided by the latest statement that applies to it.
            let mut consents: BTreeMap<&str, bool> = BTreeMap::new();
            for line in &person.consents {
                *consents.entry(line.purpose.as_str()).or_insert(false) |= line.granted;
            }
            json!(consents)
        }
        "preferred_channel" => json!(person.preferred_channel),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(messages: &[Value]) -> ProfileFacts {
        crate::testing::person(messages, "2024-06-30T00:00:00Z")
    }

    #[test]
    fn expressions_select_people_by_traits_cases_and_consents() {
        let giulia = card(&[
            json!({"type": "identify", "userId": "u", "traits": {"city": "Roma", "age": 41},
                "timestamp": "2024-06-01T00:00:00Z"}),
            json!({"type": "track", "userId": "u", "event": "Case Opened",
                "properties": {"case_id": "C1"}, "timestamp": "2024-06-02T00:00:00Z"}),
            json!({"type": "track", "userId": "u", "event": "Consent Given",
                "properties": {"purpose": "promotional"}, "timestamp": "2024-06-02T00:00:00Z"}),
        ]);
        let anonymous = card(&[json!({"type": "page", "anonymousId": "a", "name": "Home",
            "timestamp": "2024-06-01T00:00:00Z"})]);
        let check =
            |text: &str, card: &ProfileFacts| Audience::parse(text).unwrap().matches(card).unwrap();
        assert!(check("traits.city == 'Roma' && traits.age > 40", &giulia));
        assert!(check("open_cases > 0 && consents.promotional", &giulia));
        assert!(!check("traits.city == 'Roma'", &anonymous));
        assert!(check("!has(traits.city)", &anonymous));
        assert!(check("stage == 'prospect'", &giulia));
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        assert_eq!(Audience::parse("  ").unwrap_err(), AudienceError::Empty);
        assert!(matches!(
            Audience::parse("traits.city ==").unwrap_err(),
            AudienceError::Syntax(_)
        ));
        assert_eq!(
            Audience::parse("trait.city == 'Roma'").unwrap_err(),
            AudienceError::UnknownVariable("trait".into())
        );
        let giulia =
            card(&[json!({"type": "identify", "userId": "u", "traits": {"city": "Roma"}})]);
        assert!(matches!(
            Audience::parse("traits.city").unwrap().matches(&giulia),
            Err(AudienceError::NotABoolean(_))
        ));
    }
}
