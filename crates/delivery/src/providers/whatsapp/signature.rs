//! Meta's `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the body under
//! the app secret, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::providers::hex;

/// The header Meta signs its webhooks in.
pub(super) const HEADER: &str = "x-hub-signature-256";

/// Whether `signature` is Meta's, under `app_secret`, for this raw `body`.
pub(super) fn holds(app_secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(given) = signature
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .and_then(from_hex)
    else {
        return false;
    };
    mac(app_secret, body).verify_slice(&given).is_ok()
}

/// Meta's signature of a callback body (what a test server sends).
pub fn whatsapp_signature(app_secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex(&mac(app_secret, body).finalize().into_bytes())
    )
}

fn mac(app_secret: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    mac
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_body_under_its_secret() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let signature = whatsapp_signature("app-secret", body);
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), "sha256=".len() + 64);
        assert!(holds("app-secret", body, Some(&signature)));
        assert!(holds("app-secret", body, Some(&format!(" {signature} "))));
        assert!(!holds("app-secret", b"{}", Some(&signature)));
        assert!(!holds("other-secret", body, Some(&signature)));
        assert!(!holds(
            "app-secret",
            body,
            Some(&signature["sha256=".len()..])
        ));
        assert!(!holds("app-secret", body, Some("sha256=00")));
        assert!(!holds("app-secret", body, Some("sha256=zz")));
        assert!(!holds("app-secret", body, None));
    }
}
