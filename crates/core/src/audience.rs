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

/// The longest expression accepted, in bytes: the CEL parser and evaluator recurse once
/// per operator of a chain (`a + b + c ...`), so a much longer one could overflow a
/// thread's stack.
pub const MAX_EXPRESSION_BYTES: usize = 2048;

/// The deepest nesting of parentheses, brackets and braces accepted: the parser's time
/// grows steeply with it.
pub const MAX_NESTING: usize = 32;

/// The longest chain of selections, calls on a value and indexes accepted
/// (`traits.a.b`, `x.size()`, `list[0][1]`): the evaluator recurses once per link.
pub const MAX_CHAIN: usize = 64;

/// Why an expression is not acceptable, or could not be evaluated for a person.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudienceError {
    #[error("the expression is empty")]
    Empty,
    #[error("the expression does not parse: {0}")]
    Syntax(String),
    #[error("the expression is too complex: {0}")]
    TooComplex(String),
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
        check_size(text)?;
        // The parser reports errors by panicking on some inputs; contain it.
        let compiled = std::panic::catch_unwind(|| cel::Program::compile(text))
            .map_err(|_| AudienceError::Syntax("unreadable expression".into()))?;
        let program = compiled.map_err(|e| AudienceError::Syntax(first_error(&e.to_string())))?;
        if nested_macro(program.expression(), false) {
            return Err(AudienceError::TooComplex(
                "a macro (all, exists, exists_one, filter, map) inside another's predicate \
                 multiplies its cost; write them one after the other"
                    .into(),
            ));
        }
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

/// Refuses an expression longer than [`MAX_EXPRESSION_BYTES`] or nested deeper than
/// [`MAX_NESTING`] (outside string literals and comments), before the parser sees it.
fn check_size(text: &str) -> Result<(), AudienceError> {
    if text.len() > MAX_EXPRESSION_BYTES {
        return Err(AudienceError::TooComplex(format!(
            "it is {} bytes long; at most {MAX_EXPRESSION_BYTES}",
            text.len()
        )));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut chain, mut longest) = (0usize, 0usize);
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        // A chain goes on through names, dots, indexes and calls; anything else ends it.
        if c == '.' || c == '[' {
            chain += 1;
            longest = longest.max(chain);
        } else if !(c.is_alphanumeric() || c.is_whitespace() || "_()]".contains(c)) {
            chain = 0;
        }
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '/' if text[at..].starts_with("//") => {
                chars.by_ref().find(|&(_, d)| d == '\n');
            }
            '\'' | '"' => {
                // A string: '..', "..", or tripled; raw (r'..') without escapes.
                let raw = text[..at].ends_with(['r', 'R']);
                let triple = text[at..].starts_with(&format!("{c}{c}{c}"));
                if triple {
                    chars.nth(1);
                }
                let mut quotes = 0;
                while let Some((_, d)) = chars.next() {
                    if d == '\\' && !raw {
                        chars.next();
                        quotes = 0;
                    } else if d == c {
                        quotes += 1;
                        if !triple || quotes == 3 {
                            break;
                        }
                    } else {
                        quotes = 0;
                    }
                }
            }
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(AudienceError::TooComplex(format!(
            "parentheses, brackets and braces nest {deepest} deep; at most {MAX_NESTING}"
        )));
    }
    if longest > MAX_CHAIN {
        return Err(AudienceError::TooComplex(format!(
            "a chain of {longest} selections, calls and indexes; at most {MAX_CHAIN}"
        )));
    }
    Ok(())
}

/// The first of the parser's errors (each repeats the expression).
fn first_error(errors: &str) -> String {
    match errors.get(1..).and_then(|rest| rest.find("\nERROR")) {
        Some(end) => errors[..end + 1].to_string(),
        None => errors.to_string(),
    }
}

/// Whether a macro's comprehension runs inside another's loop, where each would run
/// once per item of the other.
fn nested_macro(expr: &cel::IdedExpr, in_loop: bool) -> bool {
    use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr};
    fn entries(entries: &[IdedEntryExpr]) -> Vec<&cel::IdedExpr> {
        entries
            .iter()
            .flat_map(|e| match &e.expr {
                EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect()
    }
    let children: Vec<&cel::IdedExpr> = match &expr.expr {
        Expr::Comprehension(c) => {
            return in_loop
                || [&c.iter_range, &c.accu_init, &c.result]
                    .into_iter()
                    .any(|e| nested_macro(e, false))
                || [&c.loop_cond, &c.loop_step]
                    .into_iter()
                    .any(|e| nested_macro(e, true));
        }
        Expr::Call(call) => call.target.iter().map(|t| &**t).chain(&call.args).collect(),
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => entries(&map.entries),
        Expr::Struct(st) => entries(&st.entries),
        Expr::Select(select) => vec![&*select.operand],
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => Vec::new(),
    };
    children.into_iter().any(|e| nested_macro(e, in_loop))
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

    /// Expressions that crashed or hung the audience fuzz target (kept in
    /// fuzz/regressions/audience): refused with the reason before the parser sees them.
    #[test]
    fn expressions_that_would_overflow_the_stack_or_hang_are_refused() {
        let too_complex =
            |text: &str| matches!(Audience::parse(text), Err(AudienceError::TooComplex(_)));
        // Stack overflows in the parser: a chain of 20 000 selections or additions.
        assert!(too_complex(&format!("traits{} == 1", ".a".repeat(20_000))));
        assert!(too_complex(&format!("1{} > 0", "+1".repeat(20_000))));
        // Parse time growing steeply with nesting: 3 000 lists, and 40 within the length.
        assert!(too_complex(&format!(
            "{}{} == []",
            "[".repeat(3_000),
            "]".repeat(3_000)
        )));
        assert!(too_complex(&format!(
            "{}{} == []",
            "[".repeat(40),
            "]".repeat(40)
        )));
        // A million evaluations in 190 bytes: six macros, each inside the previous.
        let mut nested = "1".to_string();
        for v in ["a", "b", "c", "d", "e", "f"] {
            nested = format!("[1,2,3,4,5,6,7,8,9,10].map({v}, {nested})");
        }
        assert!(too_complex(&format!("size({nested}) > 0")));
        assert!(too_complex("[1,2].exists(a, [3,4].exists(b, a == b))"));
        // A stack overflow in the evaluator under the fuzzer's sanitizer: a chain of
        // 1 000 selections within the length (fuzz/regressions/audience/
        // stack-overflow-selection-chain), and the same with indexes.
        assert!(too_complex(&format!("traits{}", ".a".repeat(1_000))));
        assert!(too_complex(&format!("traits.a{} == 1", "[0]".repeat(65))));
        assert!(!too_complex(&format!(
            "traits{} == 1",
            ".a".repeat(MAX_CHAIN)
        )));

        // Within the limits: macros one after the other, brackets in strings and
        // comments, and the longest chain on a thread's smallest stack (tokio's 2 MiB).
        let giulia =
            card(&[json!({"type": "identify", "userId": "u", "traits": {"city": "Roma"}})]);
        for text in [
            "[1,2,3].map(x, 2).size() == 3",
            "[1,2].exists(a, true) && [3].all(b, true)",
            "traits.city != '((((((((((((((((((((((((((((((((((((((((' // ]]]] it's ((((\n && true",
        ] {
            assert_eq!(
                Audience::parse(text).unwrap().matches(&giulia),
                Ok(true),
                "{text}"
            );
        }
        let longest = format!("1{} > 0", "+1".repeat((MAX_EXPRESSION_BYTES - 5) / 2));
        assert!(longest.len() <= MAX_EXPRESSION_BYTES);
        let matched = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || Audience::parse(&longest).unwrap().matches(&giulia))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(matched, Ok(true));
    }

    #[test]
    fn a_syntax_error_names_the_first_error_only() {
        let Err(AudienceError::Syntax(message)) = Audience::parse("traits.city == ) ) ) ) )")
        else {
            panic!("a syntax error");
        };
        assert_eq!(message.matches("ERROR").count(), 1, "{message}");
    }
}
