//! WhatsApp through the WhatsApp Cloud API: `POST /{phone-number-id}/messages` with a
//! bearer token; a text, or an interactive message with up to three reply buttons. Its
//! settings are in `config.rs`; what Meta calls back with (the webhook's verification,
//! statuses and messages from people) is read in `callback.rs`, once `signature.rs`
//! has checked it came from Meta.

use async_trait::async_trait;
use serde_json::{Value, json};
use unavoce_core::message::Rendering;

use super::http::{Answer, excerpt, http_client, text_at};
use super::{Accepted, Envelope, Failure, Provider};
use crate::config::ConfigError;

mod callback;
mod config;
mod signature;

pub use callback::{Notice, WhatsappCallbacks};
pub use config::WhatsappConfig;
pub use signature::whatsapp_signature;

/// Where Meta verifies the webhook and posts statuses and messages from people.
pub const WEBHOOK_ROUTE: &str = "/webhooks/whatsapp";

/// Graph API error codes that mean "slow down" (throughput, rate and spam limits).
const RATE_LIMIT_CODES: [i64; 6] = [4, 80007, 130429, 131048, 131056, 133016];
/// Codes that mean "the service had a problem; try again".
const TRANSIENT_CODES: [i64; 4] = [1, 2, 131000, 131016];

/// The WhatsApp Cloud API provider.
pub struct Whatsapp {
    client: reqwest::Client,
    endpoint: String,
    access_token: String,
}

impl Whatsapp {
    /// The provider for the number `config` describes.
    pub fn new(config: &WhatsappConfig) -> Result<Self, ConfigError> {
        Ok(Whatsapp {
            client: http_client(),
            endpoint: format!(
                "{}/{}/messages",
                config.api_url.trim_end_matches('/'),
                config.phone_number_id
            ),
            access_token: config
                .access_token
                .require("delivery.whatsapp.access_token")?,
        })
    }
}

/// The request body for one rendering to one number (digits only, as the API wants).
pub fn request_body(to: &str, rendering: &Rendering, key: &str) -> Option<Value> {
    let Rendering::Whatsapp { text, buttons } = rendering else {
        return None;
    };
    let to: String = to.chars().filter(char::is_ascii_digit).collect();
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "biz_opaque_callback_data": key,
    });
    if buttons.is_empty() {
        body["type"] = json!("text");
        body["text"] = json!({"preview_url": true, "body": text});
    } else {
        body["type"] = json!("interactive");
        body["interactive"] = json!({
            "type": "button",
            "body": {"text": text},
            "action": {"buttons": buttons.iter().enumerate().map(|(i, title)| json!({
                "type": "reply",
                "reply": {"id": format!("button-{}", i + 1), "title": title},
            })).collect::<Vec<_>>()},
        });
    }
    Some(body)
}

#[async_trait]
impl Provider for Whatsapp {
    fn kind(&self) -> &'static str {
        "whatsapp"
    }

    async fn send(&self, envelope: &Envelope) -> Result<Accepted, Failure> {
        let body = request_body(&envelope.to, &envelope.rendering, &envelope.idempotency_key)
            .ok_or_else(|| Failure::Permanent("not a WhatsApp rendering".into()))?;
        let request = self
            .client
            .post(&self.endpoint)
            .bearer_auth(&self.access_token)
            .json(&body);
        let answer = Answer::of(request).await?;
        if !answer.status.is_success() {
            // {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}
            let code = answer.json.pointer("/error/code").and_then(Value::as_i64);
            let detail = match (code, text_at(&answer.json, "/error/message")) {
                (Some(code), Some(message)) => format!("WhatsApp error {code}: {message}"),
                _ => excerpt(&answer.text),
            };
            let error = format!("HTTP {}: {detail}", answer.status.as_u16());
            return Err(match code {
                Some(c) if RATE_LIMIT_CODES.contains(&c) => Failure::RateLimited {
                    error,
                    retry_after: None,
                },
                Some(c) if TRANSIENT_CODES.contains(&c) => Failure::Transient(error),
                _ => answer.failure(detail),
            });
        }
        answer.accepted("/messages/0/id", "WhatsApp")
    }
}
