//! Helpers for the core's unit tests.

use serde_json::Value;

use crate::profile::{ProfileFacts, ProfileState};
use crate::segment::{IntakeContext, normalise};

/// One person's facts at `now`, from messages (given user id
/// `u` and the time 2025-01-01 when they name none).
pub fn person(messages: &[Value], now: &str) -> ProfileFacts {
    let ctx = IntakeContext::new(now.parse().unwrap(), "test");
    let events: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut m = m.as_object().unwrap().clone();
            if !m.contains_key("userId") && !m.contains_key("anonymousId") {
                m.insert("userId".into(), "u".into());
            }
            m.entry("timestamp")
                .or_insert("2025-01-01T00:00:00Z".into());
            normalise(m, &ctx, || format!("m{i}")).unwrap()
        })
        .collect();
    let computed = crate::profile::default_computed_traits();
    ProfileState::fold(&events, &computed).facts(&computed, now.parse().unwrap())
}
