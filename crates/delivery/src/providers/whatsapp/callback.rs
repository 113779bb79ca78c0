//! What the WhatsApp Cloud API calls back with: Meta's verification of the webhook (a
//! `GET` with `hub.mode`, `hub.verify_token` and `hub.challenge`), and notifications,
//! signed with the app secret, whose `entry[].changes[].value` carry the statuses of
//! messages sent (delivered, read, failed) and messages from people (a text, a reply
//! button, a template's quick reply).

use std::collections::HashMap;

use serde_json::Value;

use super::WhatsappConfig;
use super::signature;
use crate::config::ConfigError;
use crate::feedback::{Callback, ProviderReport, Refusal, Report};
use crate::providers::http::text_at;
use crate::replies::Inbound;

/// Reads Meta's callbacks to this server, once they prove they come from Meta.
pub struct WhatsappCallbacks {
    app_secret: String,
    verify_token: Option<String>,
}

/// One thing a notification tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A status of a message sent.
    Report(ProviderReport),
    /// A message from a person.
    Message(Inbound),
}

impl WhatsappCallbacks {
    /// The reader for the app `config` describes (its app secret is required).
    pub fn new(config: &WhatsappConfig) -> Result<Self, ConfigError> {
        Ok(WhatsappCallbacks {
            app_secret: config.app_secret.require("delivery.whatsapp.app_secret")?,
            verify_token: config
                .verify_token
                .resolve("delivery.whatsapp.verify_token")?,
        })
    }

    /// Meta's verification of the webhook, from its query string: the challenge to
    /// echo, if the mode is `subscribe` and the token the configured one.
    pub fn challenge(&self, query: &str) -> Option<String> {
        let expected = self.verify_token.as_deref()?;
        let params: HashMap<String, String> = serde_urlencoded::from_str::<Vec<_>>(query)
            .ok()?
            .into_iter()
            .collect();
        let get = |k: &str| params.get(k).map_or("", String::as_str);
        let (mode, token) = (get("hub.mode"), get("hub.verify_token"));
        (mode == "subscribe" && constant_time_eq(expected.as_bytes(), token.as_bytes()))
            .then(|| get("hub.challenge").to_string())
    }

    /// What a notification tells, in its order (each change's statuses, then its
    /// messages), once its signature holds. Statuses and messages without what they
    /// need are passed over, as are statuses that say nothing new (`sent`).
    pub fn notification(&self, callback: &Callback<'_>) -> Result<Vec<Notice>, Refusal> {
        let signature = callback.header(signature::HEADER);
        if !signature::holds(&self.app_secret, callback.body, signature) {
            return Err(Refusal::Forged("WhatsApp"));
        }
        let payload: Value =
            serde_json::from_slice(callback.body).map_err(|e| Refusal::NotJson(e.to_string()))?;
        let mut notices = Vec::new();
        for change in changes(&payload) {
            for status in array(change, "statuses") {
                let (Some(id), Some(kind)) = (text_at(status, "/id"), text_at(status, "/status"))
                else {
                    continue;
                };
                let report = match kind {
                    "delivered" => Report::Delivered,
                    "read" => Report::Read,
                    "failed" => Report::Failed(format!(
                        "WhatsApp reports failed{}",
                        text_at(status, "/errors/0/title")
                            .map(|t| format!(": {t}"))
                            .unwrap_or_default()
                    )),
                    _ => continue,
                };
                notices.push(Notice::Report(ProviderReport {
                    provider_message_id: id.to_string(),
                    report,
                }));
            }
            for message in array(change, "messages") {
                let Some(from) = text_at(message, "/from") else {
                    continue;
                };
                let said = text_at(message, "/text/body")
                    .or_else(|| text_at(message, "/interactive/button_reply/title"))
                    .or_else(|| text_at(message, "/button/text"))
                    .unwrap_or("");
                notices.push(Notice::Message(Inbound {
                    from: from.to_string(),
                    text: said.to_string(),
                    provider_id: text_at(message, "/id").map(str::to_string),
                }));
            }
        }
        Ok(notices)
    }
}

/// `entry[].changes[].value` of a WhatsApp notification.
fn changes(payload: &Value) -> impl Iterator<Item = &Value> {
    array(payload, "entry")
        .flat_map(|entry| array(entry, "changes"))
        .filter_map(|change| change.get("value"))
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{Credential, Pace};
    use crate::providers::whatsapp::whatsapp_signature;

    fn callbacks(verify_token: Option<&str>) -> WhatsappCallbacks {
        let credential = |v: Option<&str>| Credential {
            value: v.map(str::to_string),
            env: None,
        };
        let config = WhatsappConfig {
            api_url: "http://x".into(),
            phone_number_id: "1".into(),
            access_token: credential(Some("t")),
            app_secret: credential(Some("app-secret")),
            verify_token: credential(verify_token),
            pace: Pace::default(),
        };
        WhatsappCallbacks::new(&config).unwrap()
    }

    /// Meta notifying `payload`, signed under `secret`.
    fn notify(payload: &Value, secret: &str) -> Result<Vec<Notice>, Refusal> {
        let body = payload.to_string();
        let signature = whatsapp_signature(secret, body.as_bytes());
        callbacks(None).notification(&Callback {
            path_and_query: "/webhooks/whatsapp",
            headers: vec![("X-Hub-Signature-256", &signature)],
            body: body.as_bytes(),
        })
    }

    #[test]
    fn the_verification_challenge_is_echoed_only_for_the_configured_token() {
        let c = callbacks(Some("verify-me"));
        assert_eq!(
            c.challenge("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=42"),
            Some("42".into())
        );
        assert_eq!(
            c.challenge("hub.challenge=a%20b&hub.verify_token=verify-me&hub.mode=subscribe"),
            Some("a b".into())
        );
        assert_eq!(
            c.challenge("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=42"),
            None
        );
        assert_eq!(
            c.challenge("hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=42"),
            None
        );
        assert_eq!(c.challenge(""), None);
        let without_token = callbacks(None);
        assert_eq!(
            without_token.challenge("hub.mode=subscribe&hub.verify_token=&hub.challenge=42"),
            None
        );
    }

    #[test]
    fn a_notification_tells_statuses_and_messages_in_its_order() {
        let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "statuses": [
                    {"id": "wamid.1", "status": "sent", "recipient_id": "393331234567"},
                    {"id": "wamid.1", "status": "delivered", "recipient_id": "393331234567"},
                    {"id": "wamid.2", "status": "read"},
                    {"id": "wamid.3", "status": "failed", "errors": [{"code": 131026, "title": "Message undeliverable"}]},
                    {"id": "wamid.4", "status": "failed"},
                    {"status": "read"}
                ],
                "messages": [
                    {"from": "393331234567", "id": "wamid.IN1", "type": "text", "text": {"body": "Stop"}},
                    {"id": "wamid.IN0", "type": "text", "text": {"body": "nobody"}}
                ]
            }},
            {"field": "messages", "value": {
                "contacts": [{"profile": {"name": "Ada"}, "wa_id": "393331234567"}],
                "messages": [
                    {"from": "393331234567", "id": "wamid.IN2", "type": "interactive",
                     "interactive": {"type": "button_reply", "button_reply": {"id": "button-2", "title": "No thanks"}}},
                    {"from": "393331234567", "id": "wamid.IN3", "type": "button", "button": {"text": "START", "payload": "x"}},
                    {"from": "393331234567", "type": "image"}
                ]
            }}
        ]}]});
        let report = |id: &str, report| {
            Notice::Report(ProviderReport {
                provider_message_id: id.into(),
                report,
            })
        };
        let message = |id: Option<&str>, text: &str| {
            Notice::Message(Inbound {
                from: "393331234567".into(),
                text: text.into(),
                provider_id: id.map(str::to_string),
            })
        };
        assert_eq!(
            notify(&payload, "app-secret"),
            Ok(vec![
                report("wamid.1", Report::Delivered),
                report("wamid.2", Report::Read),
                report(
                    "wamid.3",
                    Report::Failed("WhatsApp reports failed: Message undeliverable".into())
                ),
                report("wamid.4", Report::Failed("WhatsApp reports failed".into())),
                message(Some("wamid.IN1"), "Stop"),
                message(Some("wamid.IN2"), "No thanks"),
                message(Some("wamid.IN3"), "START"),
                message(None, ""),
            ])
        );
        assert_eq!(notify(&json!({"object": "page"}), "app-secret"), Ok(vec![]));
    }

    #[test]
    fn a_notification_is_read_only_when_meta_signed_it() {
        let payload = json!({"object": "whatsapp_business_account"});
        assert_eq!(notify(&payload, "guess"), Err(Refusal::Forged("WhatsApp")));
        let unsigned = callbacks(None).notification(&Callback {
            path_and_query: "/webhooks/whatsapp",
            headers: Vec::new(),
            body: b"{}",
        });
        assert_eq!(unsigned, Err(Refusal::Forged("WhatsApp")));
        let body = b"not json";
        let signature = whatsapp_signature("app-secret", body);
        let signed_nonsense = callbacks(None).notification(&Callback {
            path_and_query: "/webhooks/whatsapp",
            headers: vec![("x-hub-signature-256", &signature)],
            body,
        });
        assert!(matches!(signed_nonsense, Err(Refusal::NotJson(_))));
    }
}
