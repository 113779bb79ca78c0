//! Signed webhooks: JSON posted to a URL with an `Idempotency-Key` and an HMAC-SHA256
//! signature over the timestamp and body (`X-Unavoce-Signature: t=…,v1=…`, made in
//! `signature.rs`), so the receiver can check it came from us, recently, and drop a
//! repeat. Its settings are in `config.rs`. A webhook does not call back.

use async_trait::async_trait;
use serde_json::{Value, json};
use unavoce_core::message::Rendering;

use super::http::{Answer, excerpt, http_client};
use super::{Accepted, Envelope, Failure, Provider};
use crate::config::ConfigError;

mod config;
mod signature;

pub use config::WebhookConfig;
pub use signature::signature;

/// A webhook destination.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
}

impl Webhook {
    /// `field` names the setting, for errors.
    pub fn new(config: &WebhookConfig, field: &str) -> Result<Self, ConfigError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                field: format!("{field}.url"),
                // Not quoted: a webhook's URL may hold a secret.
                problem: "must start with http:// or https://".into(),
            });
        }
        Ok(Webhook {
            client: http_client(),
            url: config.url.clone(),
            secret: config.secret.resolve(&format!("{field}.secret"))?,
        })
    }

    /// Posts `payload`, signed, under `idempotency_key`.
    pub async fn post(&self, payload: &Value, idempotency_key: &str) -> Result<(), Failure> {
        let body = serde_json::to_vec(payload)
            .map_err(|e| Failure::Permanent(format!("cannot encode the payload: {e}")))?;
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", idempotency_key);
        if let Some(secret) = &self.secret {
            let now = jiff::Timestamp::now().as_second();
            request = request.header("X-Unavoce-Signature", signature(secret, now, &body));
        }
        let answer = Answer::of(request.body(body)).await?;
        if answer.status.is_success() {
            return Ok(());
        }
        Err(answer.failure(excerpt(&answer.text)))
    }
}

/// The payload for a message handed to a webhook (a push or a call-center task).
fn message_payload(envelope: &Envelope) -> Value {
    let content = match &envelope.rendering {
        Rendering::Push { title, body } => json!({"title": title, "body": body}),
        Rendering::CallTask { summary } => json!({"summary": summary}),
        Rendering::Sms { text, .. } => json!({"text": text}),
        Rendering::Whatsapp { text, buttons } => json!({"text": text, "buttons": buttons}),
        Rendering::Email { subject, text, .. } => json!({"subject": subject, "text": text}),
    };
    json!({
        "type": "message",
        "id": envelope.idempotency_key,
        "message": envelope.message,
        "profile_id": envelope.profile_id,
        "to": envelope.to,
        "content": content,
    })
}

#[async_trait]
impl Provider for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, envelope: &Envelope) -> Result<Accepted, Failure> {
        self.post(&message_payload(envelope), &envelope.idempotency_key)
            .await
            .map(|()| Accepted {
                provider_message_id: Some(envelope.idempotency_key.clone()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credential, Pace};

    fn problem(url: &str, secret: Credential) -> Option<ConfigError> {
        let config = WebhookConfig {
            url: url.into(),
            secret,
            pace: Pace::default(),
        };
        Webhook::new(&config, "delivery.push").err()
    }

    #[test]
    fn a_webhook_needs_an_http_url_and_a_secret_that_is_there() {
        assert_eq!(
            problem("https://push.example/send", Credential::default()),
            None
        );
        assert_eq!(
            problem("push.example", Credential::default()).map(|e| e.to_string()),
            Some("delivery.push.url: must start with http:// or https://".into())
        );
        let unset = Credential {
            value: None,
            env: Some("UNAVOCE_TEST_WEBHOOK_SECRET_UNSET".into()),
        };
        assert_eq!(
            problem("http://push.example", unset),
            Some(ConfigError::MissingEnv {
                field: "delivery.push.secret".into(),
                env: "UNAVOCE_TEST_WEBHOOK_SECRET_UNSET".into(),
            })
        );
    }

    #[test]
    fn a_message_is_posted_with_its_content_and_who_it_is_for() {
        let envelope = Envelope {
            idempotency_key: "unavoce-9-1".into(),
            to: "device-1".into(),
            rendering: Rendering::Push {
                title: "Match tonight".into(),
                body: "In 4K".into(),
            },
            profile_id: unavoce_core::identity::ProfileId(3),
            message: "tv-offer".into(),
            outbox_id: 9,
        };
        assert_eq!(
            message_payload(&envelope),
            json!({
                "type": "message",
                "id": "unavoce-9-1",
                "message": "tv-offer",
                "profile_id": "p-3",
                "to": "device-1",
                "content": {"title": "Match tonight", "body": "In 4K"},
            })
        );
    }
}
