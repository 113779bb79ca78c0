//! What providers report back about the messages they accepted — delivered, read,
//! failed — as the person's events (`Message Delivered`, `Message Read`, `Message
//! Failed`) and the outbox entry's delivery; and the callbacks it comes by, taken in
//! plain parts ([`Callback`]) and handed to the provider's folder to check and read.

use jiff::Timestamp;
use unavoce_store::{EarlyReport, OutboxEntry, Settlement, StoreError};

use crate::config::{ConfigError, DeliveryConfig};
use crate::providers::twilio::TwilioCallbacks;
use crate::providers::whatsapp::{Notice, WhatsappCallbacks};
use unavoce_core::platform_events::{self, MessageOutcome};
use unavoce_projections::RecordError;

use crate::record::{entry_properties, record_about};
use crate::{Dispatcher, ReplyOutcome};

/// A provider's report on a message it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// It reached the person's device.
    Delivered,
    /// The person read it.
    Read,
    /// It did not reach them, and why.
    Failed(String),
}

impl Report {
    /// The outcome it reports, and the error with a failure.
    fn outcome(self) -> (MessageOutcome, Option<String>) {
        match self {
            Report::Delivered => (MessageOutcome::Delivered, None),
            Report::Read => (MessageOutcome::Read, None),
            Report::Failed(error) => (MessageOutcome::Failed, Some(error)),
        }
    }
}

/// A provider's report on one message, which it knows by its own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReport {
    /// The provider's id for the message (what it answered when it accepted it).
    pub provider_message_id: String,
    /// What it reports.
    pub report: Report,
}

/// A provider's call to this server, as it arrived, in plain parts (no HTTP library's
/// types): what the provider signs and what it says.
#[derive(Debug, Clone)]
pub struct Callback<'a> {
    /// The path and query string it was called at, e.g. `/webhooks/twilio/status`.
    pub path_and_query: &'a str,
    /// Its headers whose values are text: name (in any case) and value.
    pub headers: Vec<(&'a str, &'a str)>,
    /// Its body, as it came (signatures cover these bytes).
    pub body: &'a [u8],
}

impl<'a> Callback<'a> {
    /// The value of header `name` (compared in any case).
    pub(crate) fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Why a provider's callback is refused before anything is taken in: it does not
/// prove it comes from the provider, or it is not what the provider sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// That provider is not configured on this server.
    #[error("{0} is not configured on this server")]
    NotConfigured(&'static str),
    /// The provider's signature is missing or does not hold.
    #[error("the request does not carry {0}'s signature")]
    Forged(&'static str),
    /// Meta's verification of the webhook is not in subscribe mode with the configured
    /// token (or no token is configured).
    #[error("hub.mode must be subscribe and hub.verify_token the configured one")]
    NotVerified,
    /// The body is not what the provider sends (what is wrong with it).
    #[error("{0}")]
    Malformed(String),
    /// The body is not JSON (the parser's complaint).
    #[error("not JSON: {0}")]
    NotJson(String),
}

/// Why a provider's callback was not taken in.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// It was refused: nothing was taken in.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// What it said could not be recorded (what came before in the same callback was).
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Why something coming back could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The person's event could not be recorded.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Dispatcher {
    /// A provider's report on the message it knows as `provider_message_id`. When no
    /// entry holds that id yet — the provider reported before the attempt that sent it
    /// was settled — the report waits in the store, and is taken in when the attempt is
    /// ([`Dispatcher::take_in_early_reports`]).
    pub(crate) async fn provider_report(
        &self,
        provider_message_id: &str,
        report: Report,
    ) -> Result<(), ReportError> {
        let outbox = &self.platform().outbox;
        if let Some(entry) = outbox.outbox_by_provider_id(provider_message_id).await? {
            return self.take_in_report(&entry, report).await;
        }
        let (delivery, error) = report.outcome();
        outbox
            .park_report(EarlyReport {
                provider_message_id: provider_message_id.to_string(),
                delivery: delivery.verb().to_string(),
                error,
                received_at: Timestamp::now(),
            })
            .await?;
        // The attempt may have been settled since the look-up, before the report was
        // kept: whichever of the two comes second takes it in.
        if outbox
            .outbox_by_provider_id(provider_message_id)
            .await?
            .is_some()
        {
            self.take_in_early_reports(vec![provider_message_id.to_string()])
                .await?;
        }
        Ok(())
    }

    /// Takes in the reports that came before the sends of these provider ids were
    /// settled (called once they are).
    pub(crate) async fn take_in_early_reports(
        &self,
        provider_message_ids: Vec<String>,
    ) -> Result<(), ReportError> {
        let outbox = &self.platform().outbox;
        for early in outbox.take_early_reports(provider_message_ids).await? {
            let report = match MessageOutcome::from_verb(&early.delivery) {
                Some(MessageOutcome::Delivered) => Report::Delivered,
                Some(MessageOutcome::Read) => Report::Read,
                _ => Report::Failed(early.error.clone().unwrap_or_default()),
            };
            let taken_in = match outbox
                .outbox_by_provider_id(&early.provider_message_id)
                .await
            {
                Ok(Some(entry)) => self.take_in_report(&entry, report).await,
                Ok(None) => Err(ReportError::Store(StoreError::Storage(
                    "an early report's message is not in the outbox".into(),
                ))),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = taken_in {
                // Kept again, for the next start to take in.
                outbox.park_report(early).await?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// A report on `entry`: the person's event about it, and the entry's delivery.
    async fn take_in_report(&self, entry: &OutboxEntry, report: Report) -> Result<(), ReportError> {
        let (outcome, error) = report.outcome();
        let delivery = outcome.verb();
        let mut properties = entry_properties(entry);
        if let Some(error) = &error {
            properties.insert("error".into(), error.clone().into());
        }
        let mut message = platform_events::message_outcome(outcome, properties);
        message.insert(
            "messageId".into(),
            format!("delivery-{}-{delivery}", entry.id).into(),
        );
        record_about(self.platform(), entry.profile_id, message).await?;
        self.platform()
            .outbox
            .settle(vec![Settlement::Reported {
                id: entry.id,
                delivery: delivery.into(),
                error,
                at: Timestamp::now(),
            }])
            .await?;
        Ok(())
    }

    /// Twilio's status callback on an SMS: its report, when it says something new, is
    /// recorded.
    pub async fn twilio_status(&self, callback: &Callback<'_>) -> Result<(), CallbackError> {
        if let Some(r) = self.callbacks().twilio()?.status(callback)? {
            self.provider_report(&r.provider_message_id, r.report)
                .await?;
        }
        Ok(())
    }

    /// An SMS from a person, passed on by Twilio: taken in as their reply.
    pub async fn twilio_inbound(
        &self,
        callback: &Callback<'_>,
    ) -> Result<ReplyOutcome, CallbackError> {
        let m = self.callbacks().twilio()?.inbound(callback)?;
        Ok(self
            .reply("sms", &m.from, &m.text, m.provider_id.as_deref())
            .await?)
    }

    /// Meta's verification of the WhatsApp webhook, from its query string: the
    /// challenge to echo.
    pub fn whatsapp_verification(&self, query: &str) -> Result<String, Refusal> {
        self.callbacks().whatsapp_challenge(query)
    }

    /// A WhatsApp notification: each status of a message sent recorded as a report,
    /// each message from a person taken in as their reply, in order.
    pub async fn whatsapp_notification(
        &self,
        callback: &Callback<'_>,
    ) -> Result<(), CallbackError> {
        for notice in self.callbacks().whatsapp()?.notification(callback)? {
            match notice {
                Notice::Report(r) => {
                    self.provider_report(&r.provider_message_id, r.report)
                        .await?;
                }
                Notice::Message(m) => {
                    self.reply("whatsapp", &m.from, &m.text, m.provider_id.as_deref())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// The readers of the callbacks of the providers configured here.
pub(crate) struct Callbacks {
    twilio: Option<TwilioCallbacks>,
    whatsapp: Option<WhatsappCallbacks>,
}

impl Callbacks {
    /// The readers `config` sets up; `public_url` is where providers call back.
    pub(crate) fn new(config: &DeliveryConfig, public_url: &str) -> Result<Self, ConfigError> {
        Ok(Callbacks {
            twilio: config
                .sms
                .as_ref()
                .map(|c| TwilioCallbacks::new(c, public_url))
                .transpose()?,
            whatsapp: config
                .whatsapp
                .as_ref()
                .map(WhatsappCallbacks::new)
                .transpose()?,
        })
    }

    fn twilio(&self) -> Result<&TwilioCallbacks, Refusal> {
        self.twilio.as_ref().ok_or(Refusal::NotConfigured("Twilio"))
    }

    fn whatsapp(&self) -> Result<&WhatsappCallbacks, Refusal> {
        self.whatsapp
            .as_ref()
            .ok_or(Refusal::NotConfigured("WhatsApp"))
    }

    /// Meta's verification of the webhook; without WhatsApp configured, none holds.
    fn whatsapp_challenge(&self, query: &str) -> Result<String, Refusal> {
        self.whatsapp
            .as_ref()
            .and_then(|w| w.challenge(query))
            .ok_or(Refusal::NotVerified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credential, Pace, TwilioConfig, WhatsappConfig};
    use crate::verify::whatsapp_signature;

    fn credential(value: &str) -> Credential {
        Credential {
            value: Some(value.into()),
            env: None,
        }
    }

    fn twilio() -> TwilioConfig {
        TwilioConfig {
            api_url: "http://x".into(),
            account_sid: "AC1".into(),
            auth_token: credential("12345"),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            pace: Pace::default(),
        }
    }

    fn whatsapp() -> WhatsappConfig {
        WhatsappConfig {
            api_url: "http://x".into(),
            phone_number_id: "1".into(),
            access_token: credential("t"),
            app_secret: credential("app-secret"),
            verify_token: credential("verify-me"),
            pace: Pace::default(),
        }
    }

    #[test]
    fn a_provider_not_configured_here_takes_no_callback() {
        let none = Callbacks::new(&DeliveryConfig::default(), "https://me").unwrap();
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let signature = whatsapp_signature("app-secret", body);
        let callback = Callback {
            path_and_query: "/webhooks/whatsapp",
            headers: vec![("x-hub-signature-256", &signature)],
            body,
        };
        assert_eq!(
            none.whatsapp().and_then(|w| w.notification(&callback)),
            Err(Refusal::NotConfigured("WhatsApp"))
        );
        assert_eq!(none.twilio().err(), Some(Refusal::NotConfigured("Twilio")));
        assert_eq!(
            none.whatsapp_challenge(
                "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=42"
            ),
            Err(Refusal::NotVerified)
        );
        let both = Callbacks::new(
            &DeliveryConfig {
                sms: Some(twilio()),
                whatsapp: Some(whatsapp()),
                ..DeliveryConfig::default()
            },
            "https://me",
        )
        .unwrap();
        assert_eq!(
            both.whatsapp().and_then(|w| w.notification(&callback)),
            Ok(Vec::new())
        );
        assert!(both.twilio().is_ok());
        assert_eq!(
            both.whatsapp_challenge(
                "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=42"
            ),
            Ok("42".into())
        );
    }

    #[test]
    fn a_configured_provider_needs_the_secret_its_callbacks_are_signed_with() {
        let problem = |config: DeliveryConfig| {
            Callbacks::new(&config, "https://me")
                .err()
                .map(|e| e.to_string())
        };
        let no_app_secret = WhatsappConfig {
            app_secret: Credential::default(),
            ..whatsapp()
        };
        assert_eq!(
            problem(DeliveryConfig {
                whatsapp: Some(no_app_secret),
                ..DeliveryConfig::default()
            }),
            Some(
                "delivery.whatsapp.app_secret: is required: give value = \"...\" or env = \"VARIABLE\""
                    .into()
            )
        );
        let no_verify_token = WhatsappConfig {
            verify_token: Credential::default(),
            ..whatsapp()
        };
        assert_eq!(
            problem(DeliveryConfig {
                whatsapp: Some(no_verify_token),
                ..DeliveryConfig::default()
            }),
            None
        );
        let no_auth_token = TwilioConfig {
            auth_token: Credential::default(),
            ..twilio()
        };
        assert!(
            problem(DeliveryConfig {
                sms: Some(no_auth_token),
                ..DeliveryConfig::default()
            })
            .is_some_and(|p| p.starts_with("delivery.sms.auth_token: is required"))
        );
    }

    #[test]
    fn a_header_is_found_in_any_case() {
        let callback = Callback {
            path_and_query: "/",
            headers: vec![("X-Twilio-Signature", "a"), ("content-type", "b")],
            body: b"",
        };
        assert_eq!(callback.header("x-twilio-signature"), Some("a"));
        assert_eq!(callback.header("Content-Type"), Some("b"));
        assert_eq!(callback.header("x-hub-signature-256"), None);
    }
}
