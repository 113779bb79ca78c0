//! Signed webhooks: JSON posted to a URL with an `Idempotency-Key` and an HMAC-SHA256
//! signature over the timestamp and body (`X-Unavoce-Signature: t=…,v1=…`), so the
//! receiver can check it came from us, recently, and drop a repeat.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use unavoce_core::message::Rendering;

use crate::config::{ConfigError, WebhookConfig};
use crate::provider::{Accepted, Answer, Envelope, Failure, Provider, excerpt, http_client};

/// A webhook destination.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
}

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

impl Webhook {
    /// `field` names the setting, for errors.
    pub fn new(config: &WebhookConfig, field: &str) -> Result<Self, ConfigError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                field: format!("{field}.url"),
                problem: format!("{:?} is not an http(s) URL", config.url),
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
pub fn message_payload(envelope: &Envelope) -> Value {
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
