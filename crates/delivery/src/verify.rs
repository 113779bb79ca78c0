//! Checking that a callback really comes from the provider: Twilio's
//! `X-Twilio-Signature` (HMAC-SHA1 of the URL and the sorted form fields under the
//! auth token) and Meta's `X-Hub-Signature-256` (HMAC-SHA256 of the body under the app
//! secret), compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::config::{ConfigError, DeliveryConfig};

/// The secrets callbacks are checked with; a provider not configured takes none.
#[derive(Default)]
pub struct CallbackSecrets {
    twilio_auth_token: Option<String>,
    whatsapp_app_secret: Option<String>,
    whatsapp_verify_token: Option<String>,
}

impl std::fmt::Debug for CallbackSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackSecrets(***)")
    }
}

/// Whether a callback may be taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Genuine,
    /// The signature is missing or wrong.
    Forged,
    /// That provider is not configured here.
    NotConfigured,
}

impl CallbackSecrets {
    pub fn new(config: &DeliveryConfig) -> Result<Self, ConfigError> {
        let mut secrets = CallbackSecrets::default();
        if let Some(sms) = &config.sms {
            secrets.twilio_auth_token = Some(sms.auth_token.require("delivery.sms.auth_token")?);
        }
        if let Some(w) = &config.whatsapp {
            secrets.whatsapp_app_secret =
                Some(w.app_secret.require("delivery.whatsapp.app_secret")?);
            secrets.whatsapp_verify_token =
                w.verify_token.resolve("delivery.whatsapp.verify_token")?;
        }
        Ok(secrets)
    }

    /// A Twilio callback to `url` (as Twilio called it) with form `fields`.
    pub fn twilio(
        &self,
        url: &str,
        fields: &[(String, String)],
        signature: Option<&str>,
    ) -> Verdict {
        let Some(token) = &self.twilio_auth_token else {
            return Verdict::NotConfigured;
        };
        let Some(given) = signature.and_then(|s| STANDARD.decode(s.trim()).ok()) else {
            return Verdict::Forged;
        };
        let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(twilio_signed_text(url, fields).as_bytes());
        if mac.verify_slice(&given).is_ok() {
            Verdict::Genuine
        } else {
            Verdict::Forged
        }
    }

    /// A WhatsApp Cloud API callback with this raw `body`.
    pub fn whatsapp(&self, body: &[u8], signature: Option<&str>) -> Verdict {
        let Some(secret) = &self.whatsapp_app_secret else {
            return Verdict::NotConfigured;
        };
        let Some(given) = signature
            .and_then(|s| s.trim().strip_prefix("sha256="))
            .and_then(from_hex)
        else {
            return Verdict::Forged;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            Verdict::Genuine
        } else {
            Verdict::Forged
        }
    }

    /// Meta's webhook verification: the challenge to echo, if mode and token hold.
    pub fn whatsapp_challenge<'a>(
        &self,
        mode: &str,
        token: &str,
        challenge: &'a str,
    ) -> Option<&'a str> {
        let expected = self.whatsapp_verify_token.as_deref()?;
        (mode == "subscribe" && constant_time_eq(expected.as_bytes(), token.as_bytes()))
            .then_some(challenge)
    }
}

/// What Twilio signs: the URL, then each form field's name and value, by name.
pub fn twilio_signed_text(url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let mut text = url.to_string();
    for (name, value) in sorted {
        text.push_str(name);
        text.push_str(value);
    }
    text
}

/// Twilio's signature of a callback (what a test server sends).
pub fn twilio_signature(auth_token: &str, url: &str, fields: &[(String, String)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(twilio_signed_text(url, fields).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Meta's signature of a callback body (what a test server sends).
pub fn whatsapp_signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credential, Pace, TwilioConfig, WhatsappConfig};

    fn secrets() -> CallbackSecrets {
        let credential = |v: &str| Credential {
            value: Some(v.into()),
            env: None,
        };
        let config = DeliveryConfig {
            sms: Some(TwilioConfig {
                api_url: "http://x".into(),
                account_sid: "AC1".into(),
                auth_token: credential("12345"),
                from: Some("+15005550006".into()),
                messaging_service_sid: None,
                pace: Pace::default(),
            }),
            whatsapp: Some(WhatsappConfig {
                api_url: "http://x".into(),
                phone_number_id: "1".into(),
                access_token: credential("t"),
                app_secret: credential("app-secret"),
                verify_token: credential("verify-me"),
                pace: Pace::default(),
            }),
            ..DeliveryConfig::default()
        };
        CallbackSecrets::new(&config).unwrap()
    }

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
        let s = secrets();
        let signature = twilio_signature("12345", url, &fields);
        assert_eq!(signature, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        assert_eq!(s.twilio(url, &fields, Some(&signature)), Verdict::Genuine);
        assert_eq!(
            s.twilio(url, &fields[1..], Some(&signature)),
            Verdict::Forged
        );
        assert_eq!(s.twilio(url, &fields, None), Verdict::Forged);
    }

    #[test]
    fn whatsapp_signatures_and_the_verification_challenge() {
        let s = secrets();
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let signature = whatsapp_signature("app-secret", body);
        assert_eq!(s.whatsapp(body, Some(&signature)), Verdict::Genuine);
        assert_eq!(s.whatsapp(b"{}", Some(&signature)), Verdict::Forged);
        assert_eq!(
            s.whatsapp_challenge("subscribe", "verify-me", "42"),
            Some("42")
        );
        assert_eq!(s.whatsapp_challenge("subscribe", "guess", "42"), None);
        let none = CallbackSecrets::default();
        assert_eq!(
            none.whatsapp(body, Some(&signature)),
            Verdict::NotConfigured
        );
    }
}
