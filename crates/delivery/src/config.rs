//! The `[delivery]` settings: which provider carries each channel, how hard to retry,
//! and the credentials — given in the file or, better, named environment variables.
//! Each provider's own settings are in its folder (`providers/<name>/config.rs`) and
//! re-exported here.

use std::collections::BTreeMap;
use std::fmt;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use unavoce_core::journey::parse_duration;

pub use crate::providers::smtp::SmtpConfig;
pub use crate::providers::twilio::TwilioConfig;
pub use crate::providers::webhook::WebhookConfig;
pub use crate::providers::whatsapp::WhatsappConfig;

/// How messages leave: one provider per channel, and the retry policy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// How hard to retry a message that failed for now.
    #[serde(default)]
    pub retry: RetryConfig,
    /// E-mail over SMTP.
    pub email: Option<SmtpConfig>,
    /// SMS through the Twilio Messages API.
    pub sms: Option<TwilioConfig>,
    /// WhatsApp through the WhatsApp Cloud API.
    pub whatsapp: Option<WhatsappConfig>,
    /// Push notifications, handed to a signed webhook (your push gateway).
    pub push: Option<WebhookConfig>,
    /// Call-center tasks, handed to a signed webhook (your call-center software).
    pub call_task: Option<WebhookConfig>,
    /// Named webhooks departments subscribe with.
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookConfig>,
    /// The text that confirms an SMS or WhatsApp STOP (sent once) [default: "You are
    /// unsubscribed and will get no more messages from us here. Reply START to
    /// subscribe again."].
    pub opt_out_confirmation: Option<String>,
}

impl DeliveryConfig {
    /// The text that confirms a STOP.
    pub fn opt_out_confirmation(&self) -> String {
        self.opt_out_confirmation.clone().unwrap_or_else(|| {
            "You are unsubscribed and will get no more messages from us here. Reply START to subscribe again.".into()
        })
    }
}

/// Retries: exponential back-off with jitter, a cap on attempts, and an age after
/// which a message is no longer worth sending.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts at one message at most.
    pub max_attempts: u32,
    /// The first back-off; each next one doubles, up to `max_delay`.
    pub first_delay: String,
    /// The longest back-off.
    pub max_delay: String,
    /// A message not sent this long after it was due is given up.
    pub expire_after: String,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 8,
            first_delay: "30s".into(),
            max_delay: "1h".into(),
            expire_after: "2d".into(),
        }
    }
}

/// The retry policy, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts at one message at most.
    pub max_attempts: u32,
    /// The first back-off.
    pub first_delay: SignedDuration,
    /// The longest back-off.
    pub max_delay: SignedDuration,
    /// How long after it was due a message is still worth sending.
    pub expire_after: SignedDuration,
}

impl RetryConfig {
    /// Checks the durations.
    pub fn policy(&self) -> Result<RetryPolicy, ConfigError> {
        let duration = |field: &str, text: &str| {
            parse_duration(text).ok_or_else(|| ConfigError::Invalid {
                field: format!("delivery.retry.{field}"),
                problem: format!("{text:?} is not a duration like 30s, 5m, 1h or 2d"),
            })
        };
        if self.max_attempts == 0 {
            return Err(ConfigError::Invalid {
                field: "delivery.retry.max_attempts".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            first_delay: duration("first_delay", &self.first_delay)?,
            max_delay: duration("max_delay", &self.max_delay)?,
            expire_after: duration("expire_after", &self.expire_after)?,
        })
    }
}

/// How fast one provider may be called.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pace {
    /// Messages per second at most.
    pub per_second: f64,
    /// Messages in flight at once.
    pub concurrency: usize,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            per_second: 50.0,
            concurrency: 4,
        }
    }
}

/// A credential: given inline, or the name of the environment variable holding it.
/// Never printed.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The environment variable holding it (preferred over `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env {
            Some(env) => write!(f, "Credential(env {env})"),
            None if self.value.is_some() => f.write_str("Credential(***)"),
            None => f.write_str("Credential(none)"),
        }
    }
}

impl Credential {
    /// The secret, if one is given; an error if it names an unset variable.
    pub fn resolve(&self, field: &str) -> Result<Option<String>, ConfigError> {
        match (&self.value, &self.env) {
            (_, Some(env)) => match std::env::var(env) {
                Ok(value) if !value.is_empty() => Ok(Some(value)),
                _ => Err(ConfigError::MissingEnv {
                    field: field.to_string(),
                    env: env.clone(),
                }),
            },
            (Some(value), None) => Ok(Some(value.clone())),
            (None, None) => Ok(None),
        }
    }

    /// The secret, which must be given.
    pub fn require(&self, field: &str) -> Result<String, ConfigError> {
        self.resolve(field)?.ok_or_else(|| ConfigError::Invalid {
            field: field.to_string(),
            problem: "is required: give value = \"...\" or env = \"VARIABLE\"".into(),
        })
    }
}

/// A delivery setting that does not hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that cannot work.
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// A credential names an environment variable that is not set.
    #[error("{field}: the environment variable {env} is not set")]
    MissingEnv { field: String, env: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_comes_from_its_variable_and_never_shows() {
        let from_env = Credential {
            value: None,
            env: Some("UNAVOCE_TEST_SECRET_7".into()),
        };
        // SAFETY: this test alone uses this variable.
        unsafe { std::env::set_var("UNAVOCE_TEST_SECRET_7", "s3cret") };
        assert_eq!(from_env.require("x").unwrap(), "s3cret");
        let unset = Credential {
            value: None,
            env: Some("UNAVOCE_TEST_SECRET_UNSET".into()),
        };
        assert_eq!(
            unset
                .resolve("delivery.sms.auth_token")
                .unwrap_err()
                .to_string(),
            "delivery.sms.auth_token: the environment variable UNAVOCE_TEST_SECRET_UNSET is not set"
        );
        let inline = Credential {
            value: Some("s3cret".into()),
            env: None,
        };
        assert!(!format!("{inline:?}{from_env:?}").contains("s3cret"));
        assert!(Credential::default().require("x").is_err());
    }

    #[test]
    fn retry_durations_are_checked() {
        let bad = RetryConfig {
            first_delay: "soon".into(),
            ..RetryConfig::default()
        };
        assert!(
            bad.policy()
                .unwrap_err()
                .to_string()
                .contains("first_delay")
        );
        assert_eq!(RetryConfig::default().policy().unwrap().max_attempts, 8);
    }
}
