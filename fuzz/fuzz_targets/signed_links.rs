//! The signed links in messages, as the server reads them from the path: unsubscribe
//! (`/unsubscribe/{profile}/{token}`), the open pixel (`/t/open/{id}/{token}`) and
//! tracked clicks (`/t/click/{id}/{token}/{target}`), checked by `Links::verify_*`.
//! A link holds exactly when it is the one made here; links made for fuzzed ids and
//! targets always hold.
//!
//! Input: lines: the profile (`p-42`), the outbox id, the token, the target.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use unavoce_core::identity::ProfileId;
use unavoce_engagement::links::Links;
use unavoce_fuzz::{MemoryLog, block_on};

static LINKS: LazyLock<Links> = LazyLock::new(|| {
    let secret = "ZnV6ei1mdXp6LWZ1enotZnV6ei1mdXp6LWZ1enotMzI"; // 32 bytes, base64url
    let log = MemoryLog::with_settings([(
        "engagement.link_secret".to_string(),
        Value::String(secret.into()),
    )]);
    block_on(Links::open(log.as_ref(), "https://unavoce.example/")).expect("links")
});

/// The last `n` path segments of a URL made here.
fn tail(url: &str, n: usize) -> Vec<&str> {
    let mut parts: Vec<&str> = url.rsplitn(n + 1, '/').take(n).collect();
    parts.reverse();
    parts
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(4, '\n');
    let (profile, id, token, target) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let links = &*LINKS;
    if let Ok(profile) = profile.parse::<ProfileId>() {
        let url = links.unsubscribe_url(profile);
        assert!(links.is_own(&url));
        let own = tail(&url, 1)[0];
        assert!(links.verify_unsubscribe(profile, own), "{url}");
        assert_eq!(links.verify_unsubscribe(profile, token), token == own);
    }
    let Ok(id) = id.parse::<i64>() else {
        return;
    };
    let url = links.open_url(id);
    let own = tail(&url, 1)[0];
    assert!(links.verify_open(id, own), "{url}");
    assert_eq!(links.verify_open(id, token), token == own);

    // A click link made for the fuzzed target gives it back; the fuzzed token and
    // target hold only when they are that link's.
    let url = links.click_url(id, target);
    let made = tail(&url, 2);
    assert_eq!(
        links.verify_click(id, made[0], made[1]).as_deref(),
        Some(target),
        "{url}"
    );
    if let Some(back) = links.verify_click(id, token, target) {
        let again = links.click_url(id, &back);
        assert_eq!(tail(&again, 2), [token, target], "{again}");
    }
});
