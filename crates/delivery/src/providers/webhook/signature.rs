//! How a receiver knows a webhook is ours: `X-Unavoce-Signature: t=…,v1=…`, the
//! hex HMAC-SHA256 under the webhook's secret of the Unix time it was sent, a dot,
//! and the body.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::providers::hex;

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_time_and_the_body() {
        // HMAC-SHA256 of `1700000000.{"a":1}` under `whsec`, computed independently.
        assert_eq!(
            signature("whsec", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
        let base = signature("whsec", 1_700_000_000, b"{}");
        assert_ne!(base, signature("whsec", 1_700_000_001, b"{}"));
        assert_ne!(base, signature("other", 1_700_000_000, b"{}"));
        assert_ne!(base, signature("whsec", 1_700_000_000, b"[]"));
    }
}
