//! Twilio's `X-Twilio-Signature`: the base64 HMAC-SHA1, under the account's auth token,
//! of the URL Twilio called followed by each form field's name and value, sorted by
//! name; compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header Twilio signs its callbacks in.
pub(super) const HEADER: &str = "x-twilio-signature";

/// Whether `signature` is Twilio's, under `auth_token`, for a callback to `url` (as
/// Twilio called it) with form `fields`.
pub(super) fn holds(
    auth_token: &str,
    url: &str,
    fields: &[(String, String)],
    signature: Option<&str>,
) -> bool {
    let Some(given) = signature.and_then(|s| STANDARD.decode(s.trim()).ok()) else {
        return false;
    };
    mac(auth_token, url, fields).verify_slice(&given).is_ok()
}

/// Twilio's signature of a callback (what a test server sends).
pub fn twilio_signature(auth_token: &str, url: &str, fields: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, fields).finalize().into_bytes())
}

/// The HMAC of what Twilio signs: the URL, then each form field's name and value, by
/// name.
fn mac(auth_token: &str, url: &str, fields: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilios_documented_example_signature_holds() {
        // Twilio's "Validating requests" example: auth token 12345, this URL and form.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let fields: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let signature = twilio_signature("12345", url, &fields);
        assert_eq!(signature, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        assert!(holds("12345", url, &fields, Some(&signature)));
        // The fields' order does not matter; each of them, the URL and the token do.
        let mut reversed = fields.clone();
        reversed.reverse();
        assert!(holds("12345", url, &reversed, Some(&signature)));
        assert!(!holds("12345", url, &fields[1..], Some(&signature)));
        assert!(!holds(
            "12345",
            "https://mycompany.com/myapp.php",
            &fields,
            Some(&signature)
        ));
        assert!(!holds("54321", url, &fields, Some(&signature)));
        assert!(!holds("12345", url, &fields, None));
        assert!(!holds("12345", url, &fields, Some("not base64!")));
    }
}
