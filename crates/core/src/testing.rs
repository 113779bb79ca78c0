//! Helpers for the core's unit tests.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::profile::{ChannelEngagement, ContextCard, context_card, fold_engagement};
use crate::segment::{IntakeContext, normalise};

/// One person's context card and engagement at `now`, from messages (given user id
/// `u` and the time 2025-01-01 when they name none).
pub fn person(messages: &[Value], now: &str) -> (ContextCard, BTreeMap<String, ChannelEngagement>) {
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
    let refs: Vec<_> = events.iter().collect();
    let card = context_card(
        "p-1",
        Vec::new(),
        &refs,
        &crate::profile::default_computed_traits(),
        now.parse().unwrap(),
    );
    (card, fold_engagement(refs.iter().copied()))
}
