//! SMS through the Twilio Messages API: `POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! form-encoded, HTTP Basic with the account SID and auth token, with a status callback
//! so Twilio reports delivery back. Its settings are in `config.rs`; what Twilio calls
//! back with (status callbacks, messages from people) is read in `callback.rs`, once
//! `signature.rs` has checked it came from Twilio.

use async_trait::async_trait;
use unavoce_core::message::Rendering;

use super::http::{Answer, excerpt, http_client, text_at};
use super::{Accepted, Envelope, Failure, Provider};
use crate::config::ConfigError;

mod callback;
mod config;
mod signature;

pub use callback::TwilioCallbacks;
pub use config::TwilioConfig;
pub use signature::twilio_signature;

/// Where Twilio reports on the SMS it accepted (the status callback).
pub const STATUS_ROUTE: &str = "/webhooks/twilio/status";
/// Where Twilio hands over an SMS from a person.
pub const INBOUND_ROUTE: &str = "/webhooks/twilio/inbound";

/// The Twilio SMS provider.
pub struct Twilio {
    client: reqwest::Client,
    endpoint: String,
    account_sid: String,
    auth_token: String,
    sender: (&'static str, String),
    status_callback: Option<String>,
}

impl Twilio {
    /// `status_callback`: where Twilio reports delivery (this server's
    /// `/webhooks/twilio/status`).
    pub fn new(
        config: &TwilioConfig,
        status_callback: Option<String>,
    ) -> Result<Self, ConfigError> {
        let auth_token = config.auth_token.require("delivery.sms.auth_token")?;
        let sender = match (&config.messaging_service_sid, &config.from) {
            (Some(sid), _) => ("MessagingServiceSid", sid.clone()),
            (None, Some(from)) => ("From", from.clone()),
            (None, None) => {
                return Err(ConfigError::Invalid {
                    field: "delivery.sms".into(),
                    problem: "give from (the sending number) or messaging_service_sid".into(),
                });
            }
        };
        Ok(Twilio {
            client: http_client(),
            endpoint: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.api_url.trim_end_matches('/'),
                config.account_sid
            ),
            account_sid: config.account_sid.clone(),
            auth_token,
            sender,
            status_callback,
        })
    }
}

#[async_trait]
impl Provider for Twilio {
    fn kind(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, envelope: &Envelope) -> Result<Accepted, Failure> {
        let body = match &envelope.rendering {
            Rendering::Sms { text, .. } => text,
            _ => return Err(Failure::Permanent("not an SMS rendering".into())),
        };
        let mut form = vec![
            ("To", envelope.to.as_str()),
            (self.sender.0, self.sender.1.as_str()),
            ("Body", body.as_str()),
        ];
        if let Some(callback) = &self.status_callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        let request = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header("Idempotency-Key", &envelope.idempotency_key)
            .form(&form);
        let answer = Answer::of(request).await?;
        if !answer.status.is_success() {
            // Twilio's errors: {"code": 21211, "message": "...", "more_info": "...", "status": 400}
            let detail = match (answer.json.get("code"), text_at(&answer.json, "/message")) {
                (Some(code), Some(message)) => format!("Twilio error {code}: {message}"),
                _ => excerpt(&answer.text),
            };
            return Err(answer.failure(detail));
        }
        answer.accepted("/sid", "Twilio")
    }
}
