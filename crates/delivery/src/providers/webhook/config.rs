//! The settings of a webhook: `[delivery.push]`, `[delivery.call_task]` and each of
//! `[delivery.webhooks.<name>]`.

use serde::{Deserialize, Serialize};

use crate::config::{Credential, Pace};

/// A webhook: JSON posted to `url`, signed with HMAC-SHA256 under `secret`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where the JSON is posted (`http://` or `https://`).
    pub url: String,
    /// What it is signed with; unsigned without one.
    #[serde(default)]
    pub secret: Credential,
    /// How fast it may be called.
    #[serde(default)]
    pub pace: Pace,
}
