//! One Segment message, as `/v1/{type}` or a batch item gives it to the normaliser:
//! `segment::normalise` must refuse it with a typed rejection or make an event that
//! holds every invariant, normalising it again gives the same event, and what the projections
//! read of an accepted event (its identifiers, the person's state) never panics.
//!
//! Input: one control byte (the endpoint's type, a default touchpoint, the registry),
//! then the message's JSON.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use unavoce_core::identity::{IdentityRules, extract};
use unavoce_core::profile::{ProfileState, default_computed_traits};
use unavoce_core::segment::{self, IntakeContext, TouchpointChannels};
use unavoce_core::{ChannelKind, EventType};
use unavoce_fuzz::{check_event, received_at};

static RULES: LazyLock<std::sync::Arc<IdentityRules>> = LazyLock::new(IdentityRules::default_rules);
static REGISTRY: LazyLock<TouchpointChannels> = LazyLock::new(|| {
    [
        ("web-shop".to_string(), ChannelKind::Web),
        ("store-rome-01".to_string(), ChannelKind::Store),
    ]
    .into()
});

fuzz_target!(|data: &[u8]| {
    let Some((&control, json)) = data.split_first() else {
        return;
    };
    let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let mut ctx = IntakeContext::new(received_at(), "fuzz");
    ctx.endpoint_type = EventType::ALL.get(usize::from(control & 7)).copied();
    if control & 8 != 0 {
        ctx.default_touchpoint = Some("store-rome-01");
    }
    if control & 16 != 0 {
        ctx.touchpoint_channels = Some(&REGISTRY);
    }
    let mut message: Map<String, Value> = message;
    if control & 32 != 0 {
        // A batch item: the envelope's defaults are its own message's.
        let envelope = message.clone();
        segment::apply_batch_defaults(&mut message, &envelope);
    }
    let Ok(event) = segment::normalise(message, &ctx, || "generated-id".into()) else {
        return;
    };
    check_event(&event);
    // Without a time of its own the event is at its reception, whatever `sentAt` says
    // (the stored message keeps `sentAt` but no `originalTimestamp`: normalising it
    // again would correct `timestamp` for a skew it never had).
    let mut stored = event.message.clone();
    if !stored.contains_key("originalTimestamp") {
        stored.remove("sentAt");
    }
    let again = segment::normalise(stored, &ctx, || "another-id".into())
        .expect("a normalised message is valid");
    // The same event; its message may only gain `originalTimestamp`.
    let columns = |e: &unavoce_core::Event| {
        let mut e = e.clone();
        e.message.clear();
        e
    };
    assert_eq!(
        columns(&again),
        columns(&event),
        "normalising twice changes the event"
    );
    for (key, value) in event.message.iter().filter(|(k, _)| *k != "sentAt") {
        assert_eq!(
            again.message.get(key),
            Some(value),
            "normalising twice changes {key}"
        );
    }

    let identifiers = extract(&event, &RULES);
    for key in &identifiers.keys {
        let _ = RULES.identifier_of(key);
    }
    let computed = default_computed_traits();
    let mut state = ProfileState::default();
    state.apply(&computed, 1, &event);
    let _ = state.facts(&computed, event.received_at);
});
