//! A message definition as `POST /api/messages` takes it (JSON, then `Message::new`:
//! minijinja templates parsed, their variables checked, rendered for a sample person),
//! then rendered on each of its channels for a person whose traits are fuzzed too: a
//! typed error or a rendering, never a panic, a hang or unbounded memory.
//!
//! Input: the message's JSON, then optionally a NUL and a JSON object of traits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use unavoce_core::identity::ProfileId;
use unavoce_core::message::{Message, MessageConfig, Personalisation};
use unavoce_core::profile::ProfileState;
use unavoce_fuzz::{received_at, split_at_byte};

fuzz_target!(|data: &[u8]| {
    let (config, traits) = split_at_byte(data, 0);
    let Ok(config) = serde_json::from_slice::<MessageConfig>(config) else {
        return;
    };
    let Ok(message) = Message::new(config) else {
        return;
    };
    let mut facts = ProfileState::default().facts(&[], received_at());
    if let Ok(Value::Object(traits)) = serde_json::from_slice::<Value>(traits) {
        facts.traits = traits.into_iter().collect();
    }
    let person = Personalisation::new(ProfileId(7), &facts, "https://example.com/u/7".into());
    for channel in message.channels() {
        let _ = message.render(channel, &person);
    }
});
