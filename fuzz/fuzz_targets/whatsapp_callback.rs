//! What Meta calls back with on the WhatsApp webhook: the verification `GET`'s query
//! string (`WhatsappCallbacks::challenge`) and signed notifications
//! (`WhatsappCallbacks::notification`: `X-Hub-Signature-256`, then the JSON's
//! statuses and messages). The target signs the fuzzed body itself half of the time,
//! so the reader behind the signature check is reached: a typed refusal or the
//! notices, never a panic; a wrongly signed notification is always refused as forged.
//!
//! Input: one control byte (sign it here), the query string or the signature header,
//! a newline, the body.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use unavoce_delivery::config::{Credential, Pace};
use unavoce_delivery::whatsapp::{WhatsappCallbacks, WhatsappConfig, whatsapp_signature};
use unavoce_delivery::{Callback, Refusal};
use unavoce_fuzz::split_at_byte;

const APP_SECRET: &str = "app-secret";
const VERIFY_TOKEN: &str = "verify-me";

static CALLBACKS: LazyLock<WhatsappCallbacks> = LazyLock::new(|| {
    let credential = |v: &str| Credential {
        value: Some(v.into()),
        env: None,
    };
    let config = WhatsappConfig {
        api_url: "http://graph.invalid".into(),
        phone_number_id: "1".into(),
        access_token: credential("token"),
        app_secret: credential(APP_SECRET),
        verify_token: credential(VERIFY_TOKEN),
        pace: Pace::default(),
    };
    WhatsappCallbacks::new(&config).expect("a valid configuration")
});

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let (line, body) = split_at_byte(rest, b'\n');
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    if CALLBACKS.challenge(line).is_some() {
        assert!(
            line.contains(VERIFY_TOKEN) || line.contains('%'),
            "{line:?}"
        );
    }
    let right = whatsapp_signature(APP_SECRET, body);
    let signature = if control & 1 != 0 {
        right.clone()
    } else {
        line.to_string()
    };
    let valid = signature
        .trim()
        .strip_prefix("sha256=")
        .is_some_and(|hex| right.ends_with(&hex.to_ascii_lowercase()) && hex.len() == 64);
    let callback = Callback {
        path_and_query: "/webhooks/whatsapp",
        headers: vec![("X-Hub-Signature-256", &signature)],
        body,
    };
    match CALLBACKS.notification(&callback) {
        Ok(notices) => {
            assert!(valid, "a notification without Meta's signature was read");
            assert!(notices.len() <= body.len(), "more notices than bytes");
        }
        Err(Refusal::Forged(_)) => assert!(!valid, "rightly signed, yet refused as forged"),
        Err(Refusal::NotJson(_)) => assert!(valid),
        Err(other) => panic!("unexpected refusal {other:?}"),
    }
});
