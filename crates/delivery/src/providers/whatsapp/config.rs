//! The `[delivery.whatsapp]` settings.

use serde::{Deserialize, Serialize};

use crate::config::{Credential, Pace};

/// WhatsApp through the WhatsApp Cloud API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    /// Where the Graph API is [default: `https://graph.facebook.com/v21.0`].
    #[serde(default = "default_whatsapp_url")]
    pub api_url: String,
    /// The id of the business phone number that sends.
    pub phone_number_id: String,
    /// The token the API is called with.
    #[serde(default)]
    pub access_token: Credential,
    /// The app secret Meta signs its webhooks with (`X-Hub-Signature-256`).
    #[serde(default)]
    pub app_secret: Credential,
    /// The token Meta's webhook verification must present.
    #[serde(default)]
    pub verify_token: Credential,
    /// How fast the API may be called.
    #[serde(default)]
    pub pace: Pace,
}

fn default_whatsapp_url() -> String {
    "https://graph.facebook.com/v21.0".into()
}
