//! An audience or suppression expression as the API and the configuration take it
//! (`Audience::parse`, `Audience::parse_with(.., &["message"])`), evaluated for people
//! whose traits are fuzzed too: a typed error or a yes/no, never a panic or a hang.
//!
//! Input: the expression, then optionally a NUL and a JSON object of traits.
#![no_main]

use std::sync::{LazyLock, Once};

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use unavoce_core::audience::Audience;
use unavoce_core::profile::{ProfileFacts, ProfileState, default_computed_traits};
use unavoce_core::segment::{self, IntakeContext};
use unavoce_fuzz::{received_at, split_at_byte};

/// A person with these traits, a case open, a consent and a purchase.
fn person(traits: Map<String, Value>) -> ProfileFacts {
    let ctx = IntakeContext::new(received_at(), "fuzz");
    let messages = [
        json!({"type": "identify", "userId": "u", "traits": traits,
            "timestamp": "2024-05-01T00:00:00Z"}),
        json!({"type": "track", "userId": "u", "event": "Case Opened",
            "properties": {"case_id": "C1"}, "timestamp": "2024-05-02T00:00:00Z"}),
        json!({"type": "track", "userId": "u", "event": "Consent Given",
            "properties": {"purpose": "promotional"}, "timestamp": "2024-05-02T00:00:00Z"}),
        json!({"type": "track", "userId": "u", "event": "Order Completed",
            "properties": {"revenue": 19.9}, "timestamp": "2024-05-03T00:00:00Z"}),
    ];
    let events: Vec<_> = messages
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let Value::Object(m) = m else { return None };
            segment::normalise(m, &ctx, || format!("m{i}")).ok()
        })
        .collect();
    let computed = default_computed_traits();
    ProfileState::fold(&events, &computed).facts(&computed, received_at())
}

fuzz_target!(|data: &[u8]| {
    // `Audience::parse_with` contains the CEL parser's panics by design: only panics
    // that reach this target (uncaught) count, and they abort as findings.
    static DEFAULT_HOOK: Once = Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));

    let (expression, traits) = split_at_byte(data, 0);
    let Ok(expression) = std::str::from_utf8(expression) else {
        return;
    };
    let traits = match serde_json::from_slice::<Value>(traits) {
        Ok(Value::Object(traits)) => traits,
        _ => Map::new(),
    };
    static ANYONE: LazyLock<ProfileFacts> = LazyLock::new(|| person(Map::new()));
    let someone = (!traits.is_empty()).then(|| person(traits));
    let people: Vec<&ProfileFacts> = [Some(&*ANYONE), someone.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    if let Ok(audience) = Audience::parse(expression) {
        for &person in &people {
            let _ = audience.matches(person);
        }
    }
    if let Ok(rule) = Audience::parse_with(expression, &["message"]) {
        let message = json!({"purpose": "promotional", "channel": "email",
            "journey": "welcome", "message": "welcome-1"});
        for &person in &people {
            let _ = rule.matches_with(person, vec![("message", message.clone())]);
        }
    }
});
