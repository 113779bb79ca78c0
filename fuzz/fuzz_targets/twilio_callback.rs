//! What Twilio calls back with (`/webhooks/twilio/status` and `/inbound`): the form
//! body, the URL and the `X-Twilio-Signature` header, read by `TwilioCallbacks`. The
//! target signs the fuzzed form itself half of the time, so the readers behind the
//! signature check are reached: a typed refusal or what the callback says, never a
//! panic; an unsigned or wrongly signed callback is always refused as forged.
//!
//! Input: one control byte (sign it here, status or inbound), the path and query, a
//! newline, the signature header, a newline, the body.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use unavoce_delivery::config::{Credential, Pace};
use unavoce_delivery::twilio::{TwilioCallbacks, TwilioConfig, twilio_signature};
use unavoce_delivery::{Callback, Refusal};
use unavoce_fuzz::split_at_byte;

const TOKEN: &str = "twilio-auth-token";
const PUBLIC_URL: &str = "https://unavoce.example/";

static CALLBACKS: LazyLock<TwilioCallbacks> = LazyLock::new(|| {
    let config = TwilioConfig {
        api_url: "http://twilio.invalid".into(),
        account_sid: "AC1".into(),
        auth_token: Credential {
            value: Some(TOKEN.into()),
            env: None,
        },
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        pace: Pace::default(),
    };
    TwilioCallbacks::new(&config, PUBLIC_URL).expect("a valid configuration")
});

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let (path, rest) = split_at_byte(rest, b'\n');
    let (given, body) = split_at_byte(rest, b'\n');
    let (Ok(path), Ok(given)) = (std::str::from_utf8(path), std::str::from_utf8(given)) else {
        return;
    };
    let url = format!("{}{path}", PUBLIC_URL.trim_end_matches('/'));
    let right = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .map(|fields| twilio_signature(TOKEN, &url, &fields));
    let signature = match &right {
        Some(right) if control & 1 != 0 => right.clone(),
        _ => given.to_string(),
    };
    let valid = right.as_deref() == Some(signature.trim());
    let callback = Callback {
        path_and_query: path,
        headers: vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &signature),
        ],
        body,
    };
    let refusal = if control & 2 == 0 {
        CALLBACKS.status(&callback).err()
    } else {
        CALLBACKS.inbound(&callback).err()
    };
    match refusal {
        Some(Refusal::Forged(_)) => assert!(!valid, "rightly signed, yet refused as forged"),
        Some(Refusal::Malformed(_)) => {}
        Some(other) => panic!("unexpected refusal {other:?}"),
        None => assert!(valid, "a callback without Twilio's signature was read"),
    }
});
