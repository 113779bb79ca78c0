//! The `[delivery.sms]` settings.

use serde::{Deserialize, Serialize};

use crate::config::{Credential, Pace};

/// SMS through the Twilio Messages API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Where the API is [default: `https://api.twilio.com`].
    #[serde(default = "default_twilio_url")]
    pub api_url: String,
    /// The account's SID (`AC…`).
    pub account_sid: String,
    /// The account's auth token: it signs requests to Twilio and Twilio's callbacks.
    #[serde(default)]
    pub auth_token: Credential,
    /// The sending number (E.164), unless a messaging service sends.
    pub from: Option<String>,
    /// The messaging service that sends (`MG…`), instead of one number.
    pub messaging_service_sid: Option<String>,
    /// How fast Twilio may be called.
    #[serde(default)]
    pub pace: Pace,
}

fn default_twilio_url() -> String {
    "https://api.twilio.com".into()
}
